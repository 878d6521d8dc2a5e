"""Put a trained model into the package as a shipped model (`gannet pretrained`), scored by the
paper's protocol, and record it in src/gannet/assets/pretrained/manifest.json.

    python scripts/ship_pretrained.py mnist runs/pretrained-mnist/checkpoints/average.safetensors \\
        --command "gannet train mnist --average-from 100 --keep-every 10" --data-dir ../shared/data \\
        --description "the paper's MNIST preset, 250 epochs; the mean generator of epochs 100-250"

The weights are scored in float32, then rounded to float16 and to bfloat16 and scored again:
the file is stored in the first of those whose Parzen score moves by less than 0.1 nats, else in
float32. The scores recorded (in the file's metadata and the manifest) are those of the weights
as stored: Parzen (10,000 samples from seed 0, sigma chosen on the first 1,000 validation
images, all 10,000 test images) and `gannet eval quality`'s (10,000 samples from seed 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import time
from pathlib import Path

import torch

import gannet
from gannet import checkpoints, parzen, pretrained, quality
from gannet.data import data_shape, load_mnist
from gannet.networks import build_networks
from gannet.sampling import sample

SEED, NUM_SAMPLES = 0, 10_000
LARGEST_CHANGE = 0.1  # nats of Parzen score that storing in 16 bits may cost
ROUNDINGS = (torch.float16, torch.bfloat16)


def score(tensors: dict[str, torch.Tensor], config, mnist) -> dict:
    """Parzen and `eval quality` scores of the generator in `tensors` (any float type, read as float32)."""
    generator, _ = build_networks(config, data_shape(config))
    generator.load_state_dict(checkpoints.split_weights(tensors)[0])
    generator.eval()
    samples = sample(generator, config, NUM_SAMPLES, SEED)
    result = parzen.evaluate(samples, mnist.valid[:1000], mnist.test, progress=True)
    scores = {"parzen": result.log_likelihood, "parzen_se": result.standard_error, "parzen_sigma": result.sigma}
    measured = quality.mnist_quality(generator, config, mnist.test, NUM_SAMPLES, SEED)
    scores.update({k: v for k, v in measured.items() if k != "class_counts"})
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the name users load it by, e.g. mnist")
    parser.add_argument("checkpoint", type=Path, help="the .safetensors checkpoint to ship")
    parser.add_argument("--command", required=True, help="the exact command that trained it")
    parser.add_argument("--description", required=True, help="what it is, one line")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    started = time.perf_counter()
    tensors, metadata, path = checkpoints.load_weights(args.checkpoint)
    config = checkpoints.checkpoint_config(metadata, path)
    config = dataclasses.replace(config, data_dir=None)  # the trainer's folder means nothing to a user
    mnist = load_mnist(args.data_dir / "mnist")

    measured = {"float32": score(tensors, config, mnist)}
    print(f"float32: {pretrained.scores_line(measured['float32'])}")
    dtype = torch.float32
    for rounding in ROUNDINGS:
        name = str(rounding).removeprefix("torch.")
        measured[name] = score({k: v.to(rounding) for k, v in tensors.items()}, config, mnist)
        change = measured[name]["parzen"] - measured["float32"]["parzen"]
        print(f"{name}: {pretrained.scores_line(measured[name])}  (Parzen {change:+.3f} nats)")
        if abs(change) < LARGEST_CHANGE:
            dtype = rounding
            break
    stored = str(dtype).removeprefix("torch.")
    scores = measured[stored]

    notes = {
        "name": args.name,
        "description": args.description,
        "command": args.command,
        "seed": str(config.seed),
        "gannet_version": gannet.__version__,
        "date": datetime.date.today().isoformat(),
        "scores": json.dumps(scores),
        "trained_from": metadata.get("sha256", ""),
        **{k: metadata[k] for k in ("averaged_epochs",) if k in metadata},
    }
    target = pretrained.FOLDER / f"{args.name}.safetensors"
    weights = {k: v.to(dtype) for k, v in tensors.items()}
    checkpoints.save_weights(target, int(metadata["epoch"]), weights, config, notes)

    entries = json.loads(pretrained.MANIFEST.read_text()) if pretrained.MANIFEST.is_file() else {}
    content = target.read_bytes()
    entries[args.name] = {
        "file": target.name,
        "sha256": hashlib.sha256(content).hexdigest(),
        "bytes": len(content),
        "dtype": stored,
        "description": args.description,
        "command": args.command,
        "seed": config.seed,
        "gannet_version": gannet.__version__,
        "date": notes["date"],
        "scores": scores,
        "scores_by_dtype": {k: {"parzen": v["parzen"], "parzen_se": v["parzen_se"]} for k, v in measured.items()},
    }
    pretrained.MANIFEST.write_text(json.dumps(entries, indent=2) + "\n")
    print(f"wrote {target} ({len(content) / 1e6:.1f} MB, {stored}) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
