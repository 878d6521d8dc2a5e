"""Train the MNIST classifier that `gannet eval quality` uses, and write its weights into the
package (src/gannet/assets/mnist_classifier.safetensors). Deterministic on a CPU (seed 0).

    python scripts/train_classifier.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from safetensors.torch import save_file

from gannet.data import load_mnist
from gannet.quality import CLASSIFIER_PATH, predict, train_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("-o", "--output", type=Path, default=CLASSIFIER_PATH)
    args = parser.parse_args()
    mnist = load_mnist(args.data_dir / "mnist")
    started = time.perf_counter()
    model = train_classifier(mnist.train, mnist.labels["train"], args.epochs)
    for split in ("valid", "test"):
        accuracy = (predict(model, getattr(mnist, split))[0] == mnist.labels[split]).double().mean().item()
        print(f"{split} accuracy: {accuracy:.4f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.output))
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KB) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
