"""The end of an epoch on the training path: the checkpoint, the averaged generators and the sample
grid handed to the writer thread (background.py) against the same files written in the loop, as
gannet did before (the writer's pieces run at once in the training thread).

    python benchmarks/epoch_end.py --data-dir ../shared/data [--device cuda] [--epochs 6] [--repeats 2]

Prints, for each way and repeat, the seconds `Loop.end_epoch` held the training thread in each
epoch and the whole run's seconds (the MNIST preset with --average-from 1, so every epoch also
writes the mean generator; the Parzen monitor off, since it is not file work).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import tempfile
import time
from pathlib import Path

from gannet.background import BackgroundWriter
from gannet.presets import preset_config

loop_module = importlib.import_module("gannet.train")  # gannet.train is also the function's name


def run(args: argparse.Namespace, synchronous: bool) -> tuple[list[float], float]:
    """(end_epoch seconds per epoch, whole run seconds) for one way of writing."""
    ends: list[float] = []
    end_epoch, submit = loop_module.Loop.end_epoch, BackgroundWriter.submit

    def timed_end(self, *rest):
        started = time.perf_counter()
        saved = end_epoch(self, *rest)
        ends.append(time.perf_counter() - started)
        return saved

    def inline(self, pieces):  # the writes in the caller's thread, one after another
        self.wait()
        for piece in pieces:
            piece()

    loop_module.Loop.end_epoch = timed_end
    if synchronous:
        BackgroundWriter.submit = inline
    config = preset_config(
        "mnist",
        epochs=args.epochs,
        train_limit=args.train_limit,
        data_dir=str(args.data_dir),
        device=args.device,
        average_from=1,
        parzen_every=0,
    )
    try:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            loop_module.train(config, Path(folder) / "run", progress_bar=False)
            whole = time.perf_counter() - started
    finally:
        loop_module.Loop.end_epoch, BackgroundWriter.submit = end_epoch, submit
    return ends, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="MNIST's folder [../shared/data]")
    parser.add_argument("--device", default="cpu", help="cpu or cuda [cpu]")
    parser.add_argument("--epochs", type=int, default=6, help="epochs a run [6]")
    parser.add_argument("--train-limit", type=int, default=10_000, help="training examples an epoch [10000]")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each way, alternated [2]")
    args = parser.parse_args()
    for _ in range(args.repeats):
        for synchronous in (True, False):
            ends, whole = run(args, synchronous)
            way = "in the loop   " if synchronous else "writer thread "
            shown = " ".join(f"{s:.3f}" for s in ends)
            print(f"{way} end of epoch {statistics.median(ends):.3f} s (median; {shown}), whole run {whole:.2f} s")


if __name__ == "__main__":
    main()
