"""What speeds the game up (the paper's section 7): epochs and training time until the MNIST
preset's Parzen monitor first reaches a target, for each way of playing it.

Each setting is one `gannet train mnist` with a few flags changed (the update scheme and k, or
the prior p_z); each runs from every seed until its monitor (`parzen/valid` in metrics.jsonl)
reaches --target, when the script stops it (SIGINT: gannet writes a checkpoint and stops), or
until --max-epochs, or until the game collapses (D rejects every sample, D(G(z)) < 0.001, for ten
epochs: the run is given up, and the table says so). A run already in OUT that reached the
target is read, not trained again; one stopped short goes on with --resume (to a raised
--max-epochs too). Ctrl-C stops the script and the runs in progress, each with its checkpoint:
the same command goes on from there. Prints a Markdown table and draws the monitor against
training minutes. Flags this script does not know go to every `gannet train` (--device cuda, say).

    python scripts/game_speed.py --data-dir ../shared/data --target 150 --seeds 1 2 --jobs 2 \\
        --out runs/game-speed --figure docs/game-speed.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gannet.metrics import CollapseWatch, read_metrics

# name -> flags beside `gannet train mnist`; the first is the preset as it is
SETTINGS: dict[str, list[str]] = {
    "simultaneous (the preset)": [],
    "Algorithm 1, k = 1": ["--update", "alternating", "--k", "1"],
    "Algorithm 1, k = 2": ["--update", "alternating", "--k", "2"],
    "Algorithm 1, k = 5": ["--update", "alternating", "--k", "5"],
    "z uniform on (-1, 1)": ["--noise", "uniform"],
    "z Gaussian": ["--noise", "gaussian"],
}
SHORT = {  # run-directory names
    "simultaneous (the preset)": "simultaneous",
    "Algorithm 1, k = 1": "alternating-k1",
    "Algorithm 1, k = 2": "alternating-k2",
    "Algorithm 1, k = 5": "alternating-k5",
    "z uniform on (-1, 1)": "noise-uniform",
    "z Gaussian": "noise-gaussian",
}


def history(run_dir: Path) -> list[dict]:
    """The run's metrics records, in order ([] before its first); a line being written is dropped."""
    return read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []


def monitor(records: list[dict]) -> list[dict]:
    """The Parzen monitor records (epoch, time/elapsed, parzen/valid) among a run's records."""
    return [r for r in records if "parzen/valid" in r]


def collapsed(records: list[dict]) -> int | None:
    """The epoch from which D has rejected every sample for ten epochs in a row (metrics.CollapseWatch
    over the logged intervals, as gannet train warns of it): the game has collapsed and the run is
    given up. None while it has not."""
    watch = CollapseWatch()
    for r in records:
        if "d/fake" in r and watch.update(r["epoch"], r["d/fake"]):
            return watch.since
    return None


def settled(records: list[dict], target: float) -> bool:
    """Whether a run is over for this script: its monitor reached the target, or its game collapsed."""
    return first_reaching(monitor(records), target) is not None or collapsed(records) is not None


def first_reaching(records: list[dict], target: float) -> dict | None:
    """The first monitor record at or above `target`, or None."""
    return next((r for r in records if r["parzen/valid"] >= target), None)


# Ctrl-C: every run in progress writes its checkpoint and stops, and no other run starts (the
# same command goes on from there)
STOP = threading.Event()
RUNNING: set[subprocess.Popen] = set()


def run_one(setting: str, seed: int, args: argparse.Namespace) -> dict | None:
    """Train one setting from one seed until its monitor reaches the target (or --max-epochs);
    None when the script is stopping."""
    run_dir = args.out / f"{SHORT[setting]}-seed{seed}"
    if STOP.is_set():
        return None
    records = history(run_dir)
    scores = monitor(records)
    if not settled(records, args.target) and (not scores or scores[-1]["epoch"] < args.max_epochs):
        if (run_dir / "config.json").is_file():
            command = ["gannet", "train", "--resume", str(run_dir), "--epochs", str(args.max_epochs)]
        else:
            command = ["gannet", "train", "mnist", *SETTINGS[setting], "--seed", str(seed), "--run-dir", str(run_dir)]
            command += ["--epochs", str(args.max_epochs), "--keep-checkpoints", "1", *args.gannet_flags]
            if args.data_dir:
                command += ["--data-dir", str(args.data_dir)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        with open(args.out / f"{run_dir.name}.log", "a") as log:
            process = subprocess.Popen([*command, "--no-progress"], stdout=log, stderr=subprocess.STDOUT, env=env)
            RUNNING.add(process)
            while process.poll() is None:
                time.sleep(5)
                if settled(history(run_dir), args.target):
                    process.send_signal(signal.SIGINT)  # gannet writes its checkpoint and stops
                    process.wait()
            RUNNING.discard(process)
        records = history(run_dir)
        if process.returncode == 128 + signal.SIGINT and not settled(records, args.target):
            STOP.set()  # a Ctrl-C reached the run itself (the terminal signals the whole group)
            return None
        if process.returncode not in (0, 128 + signal.SIGINT):
            print(f"{run_dir.name}: gannet train exited with {process.returncode}; see {log.name}", file=sys.stderr)
    scores = monitor(records)
    reached = first_reaching(scores, args.target)
    result = {"setting": setting, "seed": seed, "run_dir": str(run_dir), "flags": SETTINGS[setting]}
    result["epochs"] = reached["epoch"] if reached else None
    result["minutes"] = reached["time/elapsed"] / 60 if reached else None
    result["last_epoch"] = scores[-1]["epoch"] if scores else 0
    result["last_monitor"] = scores[-1]["parzen/valid"] if scores else None
    result["collapsed"] = collapsed(records) if reached is None else None
    result["curve"] = [(r["time/elapsed"] / 60, r["parzen/valid"]) for r in scores]
    print(f"{run_dir.name}: {describe(result, args.target)}", flush=True)
    return result


def describe(result: dict, target: float) -> str:
    if result.get("collapsed") is not None:
        given_up = result["last_epoch"]
        return f"collapsed from epoch {result['collapsed']} (D rejected every sample), given up at {given_up}"
    if result["epochs"] is None:
        return f"not {target:g} in {result['last_epoch']} epochs"
    return f"{target:g} after {result['epochs']} epochs, {result['minutes']:.1f} min"


def table(results: list[dict], target: float) -> str:
    """Markdown: each setting's epochs and minutes to the target, per seed and their mean."""
    seeds = sorted({r["seed"] for r in results})
    head = f"| setting | flags | {' | '.join(f'seed {s}: epochs / min' for s in seeds)} | mean epochs / min |"
    lines = [head, "| --- | --- |" + " --- |" * (len(seeds) + 1)]
    for setting in SETTINGS:
        rows = [r for r in results if r["setting"] == setting]
        if not rows:
            continue
        cells = []
        for seed in seeds:
            row = next((r for r in rows if r["seed"] == seed), None)
            if row is None:
                cells.append("—")
            elif row.get("collapsed") is not None:
                cells.append(f"collapsed from {row['collapsed']}")
            elif row["epochs"] is None:
                last = row.get("last_monitor")
                cells.append(f"not in {row['last_epoch']}" + (f" (monitor {last:.0f})" if last is not None else ""))
            else:
                cells.append(f"{row['epochs']} / {row['minutes']:.1f}")
        done = [r for r in rows if r["epochs"] is not None]
        mean = "—"
        if len(done) == len(rows):
            epochs, minutes = (statistics.mean(r[key] for r in done) for key in ("epochs", "minutes"))
            mean = f"{epochs:.1f} / {minutes:.1f}"
        flags = " ".join(SETTINGS[setting]) or "(none)"
        lines.append(f"| {setting} | `{flags}` | {' | '.join(cells)} | {mean} |")
    return "\n".join(lines) + f"\n\n(epochs and training minutes until the Parzen monitor first reached {target:g})"


def figure(results: list[dict], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    colours = dict(zip(SETTINGS, plt.get_cmap("tab10").colors, strict=False))
    labelled = set()
    for r in sorted(results, key=lambda r: (list(SETTINGS).index(r["setting"]), r["seed"])):
        if r["curve"]:
            minutes, score = zip(*r["curve"], strict=True)
            label = None if r["setting"] in labelled else r["setting"]
            labelled.add(r["setting"])
            ax.plot(minutes, score, color=colours[r["setting"]], label=label, lw=1.2)
    ax.axhline(target, color="0.5", ls="--", lw=0.8)
    ax.set_xlabel("training minutes")
    ax.set_ylabel("Parzen monitor (validation, nats)")
    ax.set_ylim(bottom=max(-100, ax.get_ylim()[0]))
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Flags it does not know go to every `gannet train`. Ctrl-C stops it; the same command goes on.",
    )
    parser.add_argument("--target", type=float, default=150.0, help="Parzen monitor score to reach [150]")
    parser.add_argument("--max-epochs", type=int, default=200, help="give up on a run after this many [200]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="a run of each setting per seed [1 2]")
    parser.add_argument("--settings", nargs="+", choices=list(SHORT.values()), help="a subset, by run name")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side [1]")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run [1]")
    parser.add_argument("--data-dir", type=Path, help="where MNIST is [gannet's default places]")
    parser.add_argument("--out", type=Path, default=Path("runs/game-speed"), help="the runs' folder [runs/game-speed]")
    parser.add_argument("--figure", type=Path, help="also draw the monitor against minutes into this PNG")
    args, args.gannet_flags = parser.parse_known_args()  # the rest go to every `gannet train`
    if not math.isfinite(args.target) or args.max_epochs < 1 or args.jobs < 1 or args.threads < 1:
        parser.error("--target must be a number, --max-epochs, --jobs and --threads at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in SETTINGS if args.settings is None or SHORT[s] in args.settings]
    work = [(setting, seed) for seed in args.seeds for setting in chosen]
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_one, *job, args) for job in work]
        try:
            results = [future.result() for future in futures]
        except KeyboardInterrupt:
            STOP.set()
            for process in list(RUNNING):
                process.send_signal(signal.SIGINT)  # each writes its checkpoint and stops
            pool.shutdown(cancel_futures=True)
            sys.exit("game_speed.py: stopped; each run in progress wrote a checkpoint, and the same command goes on.")
    if STOP.is_set():
        sys.exit("game_speed.py: stopped; each run in progress wrote a checkpoint, and the same command goes on.")
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(table(results, args.target))
    if args.figure:
        figure(results, args.target, args.figure)


if __name__ == "__main__":
    main()
