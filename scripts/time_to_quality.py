"""How long until good digits: the Parzen monitor and the MNIST FID of the generator each run
is meant to be sampled from (its mean with --average-from once averaging has begun, before that
its last; else its moving average with --ema-decay; else its last), against training minutes,
for one or more MNIST runs (docs/fast-mnist.md).

The monitor comes from each run's metrics.jsonl; FID (10,000 samples against the test set,
`gannet eval quality`'s) from the checkpoints the run kept (--keep-every): the moving average
is read from a checkpoint's training state, the mean generator is re-made from the kept
checkpoints since --average-from (every --keep-every epochs: an approximation of the mean of
every epoch). Scores are cached in RUN/fid-over-time.json. Minutes are the runs' own training
clocks (time/elapsed) or, with --seconds-per-epoch, epochs times that.

Averaging does not change training, so `--average-from RUN=A` shows a run as if it had been
trained with `--average-from A`: from a run that kept every epoch's checkpoint from A on
(--keep-every 1), the mean generator's monitor is recomputed from the checkpoints as training
computes it, and FID scores the mean of epochs A to each epoch.

    python scripts/time_to_quality.py runs/fast:mnist-fast runs/faithful:"mnist --average-from 100" \\
        --seconds-per-epoch 22.6 --fid-every 10 -o docs/fast-mnist-time.png
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from gannet import averaging, checkpoints, quality
from gannet.config import load as load_config
from gannet.metrics import read_metrics
from gannet.parzen import monitor_parzen
from gannet.sampling import checkpoint_dataset, load_generator

EPOCH_FILE = re.compile(r"^epoch-(\d+)\.safetensors$")


def kept_epochs(run_dir: Path) -> dict[int, Path]:
    """The whole-epoch checkpoints a run kept, by epoch."""
    found = (EPOCH_FILE.match(p.name) for p in (run_dir / "checkpoints").glob("epoch-*.safetensors"))
    return {int(m[1]): run_dir / "checkpoints" / m[0] for m in found if m}


def sampled_generator(run_dir: Path, epoch: int, kept: dict[int, Path], config, average_from: int) -> torch.nn.Module:
    """The generator the run stands for after `epoch`, from its kept checkpoints."""
    generator, _, _ = load_generator(kept[epoch])
    spaced = [e for e in sorted(kept) if not config.keep_every or e % config.keep_every == 0]  # not the newest 3
    averaged = [e for e in spaced if average_from and average_from <= e <= epoch]
    if averaged:  # the mean first, as checkpoints.sampled
        total: dict[str, torch.Tensor] = {}
        for e in averaged:
            averaging.add(total, load_generator(kept[e])[0].state_dict())
        generator.load_state_dict(averaging.generator_weights(total, len(averaged), generator.state_dict()))
    elif config.ema_decay and not average_from:  # a run with both: its last G until averaging begins
        state = torch.load(checkpoints.state_path(kept[epoch]), weights_only=True)
        generator.load_state_dict(state["ema"]["weights"])
    return generator.eval()


def fid_over_time(
    run_dir: Path, every: int, num_samples: int, data_dir: str | None, average_from: int | None
) -> dict[int, dict]:
    """{epoch: eval quality's record} for the kept epochs that are multiples of `every`, cached."""
    config = load_config(run_dir / "config.json")
    name = "fid-over-time.json" if average_from is None else f"fid-over-time-average-from-{average_from}.json"
    average_from = config.average_from if average_from is None else average_from
    cache = run_dir / name
    scores = {int(k): v for k, v in json.loads(cache.read_text()).items()} if cache.is_file() else {}
    kept = kept_epochs(run_dir)
    test = None
    for epoch in sorted(e for e in kept if e % every == 0 and e not in scores):
        generator = sampled_generator(run_dir, epoch, kept, config, average_from)
        test = checkpoint_dataset(config, data_dir).test if test is None else test
        record = quality.mnist_quality(generator, config, test, num_samples, seed=0)
        scores[epoch] = {k: record[k] for k in ("mnist_fid", "kl_to_uniform", "nearest_test_distance")}
        print(f"{run_dir.name} epoch {epoch}: FID {record['mnist_fid']:.2f}", flush=True)
        cache.write_text(json.dumps(scores, indent=1, sort_keys=True) + "\n")
    return scores


def monitor_curves(
    run_dir: Path, seconds_per_epoch: float | None, average_from: int | None, data_dir: str | None
) -> tuple[list, list, str]:
    """(minutes, last G's monitor), (minutes, the sampled generator's monitor), and its name."""
    config = load_config(run_dir / "config.json")
    if average_from is None:  # what training logged
        key = "parzen/valid_average" if config.average_from else "parzen/valid_ema" if config.ema_decay else None

        def sampled_at(r: dict) -> float:
            return r.get(key, r["parzen/valid"])
    else:
        key, recomputed = "parzen/valid_average", mean_monitor(run_dir, config, average_from, data_dir)

        def sampled_at(r: dict) -> float:
            return recomputed.get(r["epoch"], r["parzen/valid"])

    last, sampled = [], []
    for r in read_metrics(run_dir):
        if "parzen/valid" not in r:
            continue
        minutes = minutes_at(r, seconds_per_epoch, run_dir)
        last.append((minutes, r["parzen/valid"]))
        sampled.append((minutes, sampled_at(r)))
    name = {"parzen/valid_ema": "moving average", "parzen/valid_average": "mean generator"}.get(key, "last G")
    return last, sampled, name


def mean_monitor(run_dir: Path, config, average_from: int, data_dir: str | None) -> dict[int, float]:
    """{epoch: the monitor of the mean generator of epochs average_from..epoch}, as training
    computes it, from a checkpoint of every epoch (--keep-every 1)."""
    kept = kept_epochs(run_dir)
    epochs = range(average_from, max(kept) + 1)
    if missing := [e for e in epochs if e not in kept]:
        raise SystemExit(f"{run_dir} has no checkpoint of epoch {missing[0]}: --average-from needs --keep-every 1")
    data = checkpoint_dataset(config, data_dir)
    total: dict[str, torch.Tensor] = {}
    scores = {}
    for count, epoch in enumerate(epochs, start=1):
        generator = load_generator(kept[epoch])[0]
        averaging.add(total, generator.state_dict())
        generator.load_state_dict(averaging.generator_weights(total, count, generator.state_dict()))
        scores[epoch] = monitor_parzen(generator, config, data, torch.device("cpu"))["parzen/valid"]
    return scores


def minutes_at(record: dict, seconds_per_epoch: float | None, run_dir: Path) -> float:
    """The run's own clock, or epochs times --seconds-per-epoch where given (runs trained side by
    side, or paused, have clocks that say more about the machine's load than about the recipe)."""
    if seconds_per_epoch is not None:
        return record["epoch"] * seconds_per_epoch / 60
    if "time/elapsed" not in record:
        raise SystemExit(f"{run_dir}/metrics.jsonl has no training clock: give --seconds-per-epoch")
    return record["time/elapsed"] / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="RUN_DIR or RUN_DIR:LABEL")
    parser.add_argument("--seconds-per-epoch", type=float, help="minutes from epochs, not the runs' clocks")
    parser.add_argument("--fid-every", type=int, default=10, help="score every N-th epoch's generator [10]")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--average-from",
        action="append",
        default=[],
        metavar="RUN=A",
        help="show RUN as if trained with --average-from A (it kept every epoch: --keep-every 1)",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("time-to-quality.png"))
    args = parser.parse_args()
    windows = {}
    for item in args.average_from:
        run, _, first = item.rpartition("=")
        if not run or not first.isdigit() or int(first) < 1:
            parser.error(f"--average-from takes RUN=A, A an epoch (1 or more), not {item!r}")
        windows[Path(run)] = int(first)
    named = {Path(spec.partition(":")[0]) for spec in args.runs}
    if unknown := [str(run) for run in windows if run not in named]:
        parser.error(f"--average-from names {unknown[0]}, which is not one of the runs to draw")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for i, spec in enumerate(args.runs):
        path, _, label = spec.partition(":")
        run_dir = Path(path)
        label = label or run_dir.name
        colour = plt.get_cmap("tab10").colors[i]
        average_from = windows.get(run_dir)
        last, sampled, name = monitor_curves(run_dir, args.seconds_per_epoch, average_from, args.data_dir)
        left.plot(*zip(*sampled, strict=True), color=colour, label=f"{label} ({name})")
        if name != "last G":
            left.plot(*zip(*last, strict=True), color=colour, lw=0.7, alpha=0.5, label=f"{label} (last G)")
        scores = fid_over_time(run_dir, args.fid_every, args.num_samples, args.data_dir, average_from)
        per_epoch = {r["epoch"]: r for r in read_metrics(run_dir) if "parzen/valid" in r}
        clock = {e: minutes_at(r, args.seconds_per_epoch, run_dir) for e, r in per_epoch.items()}
        points = [(clock[e], s["mnist_fid"]) for e, s in scores.items() if e in clock]
        if points:
            right.plot(*zip(*sorted(points), strict=True), color=colour, marker=".", label=f"{label} ({name})")
    left.axhline(225, color="0.5", ls="--", lw=0.8)
    left.set(xlabel="training minutes", ylabel="Parzen monitor (validation, nats)", ylim=(0, None))
    left.legend(fontsize=7)
    right.axhline(12, color="0.5", ls="--", lw=0.8)
    right.set(xlabel="training minutes", ylabel="MNIST FID (10,000 samples)", yscale="log")
    right.legend(fontsize=7)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
