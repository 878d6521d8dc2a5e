"""Parzen evaluation: gannet's protocol against the 2014 script's direct computation.

The whole protocol is: sigma search (1,000 validation images × 10 sigmas) + the test set
(10,000 images), each against 10,000 samples of 784 pixels. The direct computation is the
2014 script's: for each batch of 10 points, broadcast x − μ into a (10, N, 784) array, square,
sum, log-mean-exp; once per sigma. By default it is timed on --direct-rows points per phase
and scaled to the full protocol (its cost is linear in the number of points, after one
warm-up batch); --full times all of it (9 minutes on a 2-core CPU). --command also times the whole
`gannet eval parzen CHECKPOINT` command (a fresh process: Python and torch start-up, loading and
verifying MNIST, sampling 10,000 digits, the protocol; the ceiling's cache warm, as from a
user's second evaluation on), three times, against the same direct time. Its samples come from
--checkpoint, a trained generator (how much of the test phase is pruned depends on how its
samples spread; the README's figure is for the averaged MNIST generator of Table 1), else from an
untrained MNIST-preset generator, whose grey blobs all lie so close together that no pair can be
left out.

    python benchmarks/parzen.py --data-dir ../shared/data [--device cuda] [--full] [--command [--checkpoint CKPT]]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gannet.data import load_mnist
from gannet.parzen import PAPER_SIGMAS, evaluate, parzen_log_likelihoods


def direct_log_likelihoods(x: np.ndarray, mu: np.ndarray, sigma: float, batch_size: int = 10) -> np.ndarray:
    """The 2014 script (parzen_ll.py), in numpy float32 as Theano ran it."""
    out = []
    for start in range(0, len(x), batch_size):
        a = (x[start : start + batch_size, None, :] - mu[None, :, :]) / sigma  # (B, N, d)
        e = -0.5 * (a**2).sum(axis=2)  # (B, N)
        top = e.max(axis=1, keepdims=True)
        log_mean = top[:, 0] + np.log(np.exp(e - top).mean(axis=1))
        out.append(log_mean - mu.shape[1] * np.log(sigma * np.sqrt(2 * np.pi)))
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--direct-rows", type=int, default=100, help="points per phase timed for the direct method")
    parser.add_argument("--full", action="store_true", help="time the direct method on the whole protocol")
    parser.add_argument("--command", action="store_true", help="also time the whole `gannet eval parzen` command")
    parser.add_argument("--checkpoint", type=Path, help="with --command: the generator to sample [an untrained one]")
    args = parser.parse_args()

    mnist = load_mnist(args.data_dir / "mnist")
    # Stand-in samples: 10,000 training images (the cost does not depend on what the samples are).
    samples, valid, test = mnist.train[:10_000], mnist.valid[:1_000], mnist.test
    device = torch.device(args.device)

    timings = {}
    for name, dtype, prune in (
        ("float64", torch.float64, None),
        ("float32, all pairs", torch.float32, False),
        ("float32", torch.float32, None),
    ):
        s, v, t = (a.to(device) for a in (samples, valid, test))
        evaluate(s, v[:10], t[:10], dtype=dtype, prune=prune)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = evaluate(s, v, t, dtype=dtype, prune=prune)
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings[name] = (time.perf_counter() - start, result)

    rows = len(valid) * len(PAPER_SIGMAS) + len(test)  # point-sigma evaluations of the protocol
    mu = samples.numpy()
    if args.full:
        start = time.perf_counter()
        for sigma in PAPER_SIGMAS:
            direct_log_likelihoods(valid.numpy(), mu, sigma)
        direct_log_likelihoods(test.numpy(), mu, timings["float64"][1].sigma)
        direct_seconds, how = time.perf_counter() - start, "measured on the whole protocol"
    else:
        n = args.direct_rows
        # warm-up: the first batches pay for first-touching their (10, N, 784) arrays (41 against
        # 28-29 ms a point on the CI machine kind), which a whole run pays once (--full: 27.5 ms)
        direct_log_likelihoods(test[-10:].numpy(), mu, 0.2)
        start = time.perf_counter()
        direct = direct_log_likelihoods(test[:n].numpy(), mu, 0.2)
        per_row = (time.perf_counter() - start) / n
        direct_seconds, how = per_row * rows, f"timed on {n} points, × {rows:,} point-sigma rows"
        fast = parzen_log_likelihoods(test[:n].double(), samples.double(), [0.2])[0].numpy()
        print(f"direct vs gannet on {n} test points (sigma 0.2): max |diff| = {np.abs(direct - fast).max():.2e} nats")

    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, device {device}"
    )
    print(f"direct 2014 computation: {direct_seconds:8.1f} s  ({how})")
    for name, (seconds, result) in timings.items():
        print(f"gannet {name + ':':19} {seconds:8.2f} s  {direct_seconds / seconds:7.0f}× faster  {result}")
    delta = abs(timings["float64"][1].log_likelihood - timings["float32"][1].log_likelihood)
    print(f"float32 vs float64 mean test LL: |diff| = {delta:.2e} nats")
    if args.command:
        seconds = time_command(args.data_dir, args.device, args.checkpoint)
        best, runs = min(seconds), ", ".join(f"{t:.2f}" for t in seconds)
        print(f"whole command:      {best:8.2f} s  {direct_seconds / best:7.0f}× faster  (runs: {runs} s)")


def time_command(data_dir: Path, device: str, checkpoint: Path | None = None, repeats: int = 3) -> list[float]:
    """Wall seconds of `gannet eval parzen CHECKPOINT` in fresh processes (after one untimed run
    that fills the ceiling's cache); without a checkpoint, for an untrained MNIST-preset one."""
    from gannet import checkpoints
    from gannet.data import data_shape
    from gannet.networks import build_networks
    from gannet.presets import preset_config

    with tempfile.TemporaryDirectory() as folder:
        path = checkpoint
        if path is None:
            config = preset_config("mnist")
            torch.manual_seed(0)
            generator, discriminator = build_networks(config, data_shape(config))
            weights = checkpoints.flat_weights(generator, discriminator)
            path = checkpoints.save_weights(Path(folder) / "untrained.safetensors", 0, weights, config, {})
        command = [sys.executable, "-m", "gannet", "eval", "parzen", str(path), "--data-dir", str(data_dir)]
        command += ["--device", device, "-o", str(Path(folder) / "parzen.json")]
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(folder) / "cache")}  # not the user's cache
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        return times[1:]


if __name__ == "__main__":
    main()
