"""Sampling throughput: samples/s of the MNIST preset's generator through `gannet.sample`
(the function `gannet sample` and `gannet eval parzen` call), at several batch sizes.

    python benchmarks/sampling.py [--n 50000] [--device cuda]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from gannet.config import TrainConfig
from gannet.networks import build_networks
from gannet.sampling import sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="samples per measurement [50000]")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    config = TrainConfig()
    torch.manual_seed(0)
    generator, _ = build_networks(config, (1, 28, 28))
    generator = generator.to(device).eval()
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"device {device}; MNIST preset G (100-1200-1200-784), {args.n:,} samples each"
    )
    sample(generator, config, 1_000, device=str(device))  # warm-up
    for batch in (100, 1_000, 10_000):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        out = sample(generator, config, args.n, device=str(device), batch_size=batch)
        out.sum().item()  # wait for the device
        seconds = time.perf_counter() - started
        print(f"  batch {batch:>6,}: {args.n / seconds:10,.0f} samples/s  ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
