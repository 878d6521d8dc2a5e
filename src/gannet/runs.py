"""A run directory's life: refused or created when a run starts, and the state a checkpoint
carries beyond the weights (progress, optimizers, schedules, every RNG), so that a resumed run
continues exactly where it stopped, step for step."""

from __future__ import annotations

import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gannet import checkpoints
from gannet import distributed as dist
from gannet.config import TrainConfig
from gannet.errors import GannetError
from gannet.game import Players
from gannet.optim import milestone_factor

_PICTURE = re.compile(r"epoch-(\d+)\.png")  # an epoch's sample picture, samples/epoch-0007.png


@dataclass
class Progress:
    """Where the run is; saved in every checkpoint, so that a resumed run continues exactly."""

    epoch: int = 0  # finished epochs
    step: int = 0  # finished iterations (one G update each)
    best_parzen: float = float("-inf")  # best monitored Parzen LL so far
    # Inside an epoch (a checkpoint written on Ctrl-C / SIGTERM is taken mid-epoch):
    position: int = 0  # iterations done in the current epoch
    order: torch.Tensor | None = None  # the epoch's shuffled example indices; None between epochs
    total: torch.Tensor | None = None  # (4,) sums of the epoch's step statistics
    interval: torch.Tensor | None = None  # (4,) sums since the last metrics record
    since_log: int = 0
    first_bad: torch.Tensor | None = None  # (2,) first step with a non-finite D / G loss, −1 if none
    # --average-from: float64 sums of G's weights after each epoch averaged so far (on the CPU)
    average: dict[str, torch.Tensor] | None = None
    averaged: int = 0  # how many epochs those sums hold

    def state_dict(self) -> dict:
        return {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> Progress:
        return cls(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in state.items()})


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_run_dir(run_dir: Path, resume: bool, force: bool, branch: bool = False) -> None:
    """Refuse a run directory that cannot be used; touches nothing (make_run_dir does, later)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise GannetError(f"{run_dir} is a file, not a run directory; give --run-dir a folder.")
    if resume:
        if not (run_dir / "config.json").is_file():
            raise GannetError(f"Cannot resume: {run_dir} is not a gannet run directory (no config.json).")
    elif run_dir.exists() and any(run_dir.iterdir()) and not force:
        if branch:
            raise GannetError(
                f"Run directory {run_dir} already exists; a branch needs a new one: give another --run-dir."
            )
        raise GannetError(
            f"Run directory {run_dir} already exists; pass --resume to continue it or --force to replace it."
        )


def make_run_dir(run_dir: Path, resume: bool) -> None:
    """Create (or, after --force, empty) the run directory: only once the data and the networks
    are ready, so a run that fails before its first step leaves no directory and replaces none."""
    if resume:
        return
    if run_dir.exists() and any(run_dir.iterdir()):  # check_run_dir let it through: --force
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def start_point(run_dir: Path, resume: bool | str | os.PathLike) -> Path | None:
    """The checkpoint that `run_dir` branches from, or None when the run starts afresh (resume
    False) or continues `run_dir` itself (True, or run_dir's own newest checkpoint). Any other
    run directory (its newest checkpoint) or epoch-NNNN checkpoint starts `run_dir` as a branch."""
    if resume is False or resume is True:
        return None
    checkpoint = checkpoints.resolve(resume)
    if not checkpoints.state_path(checkpoint).is_file():
        raise GannetError(
            f"{checkpoint} has no training state beside it ({checkpoints.state_path(checkpoint).name}); "
            "a run can go on only from an epoch-NNNN checkpoint."
        )
    if checkpoints.run_dir_of(checkpoint).resolve() == run_dir.resolve():
        if checkpoint.resolve() != checkpoints.resolve(run_dir).resolve():
            raise GannetError(
                f"{checkpoint.name} is not the newest checkpoint of {run_dir}; give --run-dir a new folder "
                "to branch from it (going on in place would drop the later checkpoints)."
            )
        return None
    if run_dir.resolve() in checkpoint.resolve().parents:
        raise GannetError(f"{run_dir} holds {checkpoint}; a branch needs a folder of its own.")
    return checkpoint


def copy_history(checkpoint: Path, run_dir: Path) -> None:
    """Begin the branch `run_dir` with what its source run had made up to `checkpoint`: the
    checkpoint (so the branch can itself be resumed), the config it was written under, the
    metrics and TensorBoard logs (records after the checkpoint are dropped when training
    starts), the sample pictures of its epochs, and best.safetensors if no later than it
    (average.safetensors is written from the checkpoint's state when training starts)."""
    source = checkpoints.run_dir_of(checkpoint)
    _, metadata, _ = checkpoints.load_weights(checkpoint)
    epoch = int(metadata["epoch"])
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for path in (checkpoint, checkpoints.state_path(checkpoint)):
        shutil.copy2(path, folder / path.name)
    checkpoints.checkpoint_config(metadata, checkpoint).save(run_dir / "config.json")
    best = source / "checkpoints" / "best.safetensors"
    if best.is_file() and int(checkpoints.load_weights(best)[1]["epoch"]) <= epoch:
        shutil.copy2(best, folder / best.name)
    for path in [source / "metrics.jsonl", *source.glob("events.out.tfevents.*")]:
        if path.is_file():
            shutil.copy2(path, run_dir / path.name)
    pictures = [p for p in (source / "samples").glob("epoch-*.png") if _PICTURE.fullmatch(p.name)]
    (run_dir / "samples").mkdir(exist_ok=True)
    for picture in pictures:
        if int(_PICTURE.fullmatch(picture.name)[1]) <= epoch:
            shutil.copy2(picture, run_dir / "samples" / picture.name)


def follow_schedule(players: Players) -> None:
    """Set both optimizers' lr to what this config's schedule gives their next update (after
    loading a checkpoint whose run had other --lr-milestones; the same value otherwise)."""
    for scheduler in (players.scheduler_g, players.scheduler_d):
        scheduler.last_epoch -= 1
        scheduler.step()  # back to the same count: lr = base lr × this config's rule(count)


def check_schedule_change(previous: TrainConfig, config: TrainConfig, progress: Progress) -> None:
    """On --resume, the lr milestones may change only for epochs not yet begun, and
    --average-from only while no epoch has been averaged (and to an epoch not yet finished)."""
    begun = progress.epoch + (progress.order is not None)
    if any(milestone_factor(previous, e) != milestone_factor(config, e) for e in range(begun)):
        raise GannetError(
            f"--lr-milestones and --lr-gamma may change on --resume only at milestones of {begun} or later: "
            f"this run has begun {begun} epochs under the old ones."
        )
    if config.average_from != previous.average_from and (
        progress.averaged or 0 < config.average_from <= progress.epoch
    ):
        raise GannetError(
            f"--average-from may change on --resume only before averaging has begun, to an epoch after "
            f"{progress.epoch} (this run has finished {progress.epoch} epochs"
            f"{f', {progress.averaged} of them averaged' if progress.averaged else ''})."
        )


def training_state(
    players: Players,
    progress: Progress,
    data_rng: torch.Generator,
    fixed_noise: torch.Tensor,
    noise_rng: torch.Generator | None = None,
    cluster: dist.Cluster | None = None,
) -> dict:
    """Everything beyond the weights that the next step depends on (plain types and tensors
    only: it is loaded back with weights_only=True). A distributed run's also holds the shared
    noise generator and every rank's torch RNG (collected from all ranks: call on every rank)."""
    numpy_state = np.random.get_state()
    extra = {}
    if cluster is not None:
        own = [torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []]
        extra = {
            "rng_noise": noise_rng.get_state().cpu(),
            "rng_ranks": dist.gather(own, cluster),
            "rank_weights_sha256": dist.check_in_step(cluster, players.generator, players.discriminator),
        }
    return {
        **extra,
        "epoch": progress.epoch,
        "step": progress.step,
        "progress": progress.state_dict(),
        "optimizer_g": players.optimizer_g.state_dict(),
        "optimizer_d": players.optimizer_d.state_dict(),
        "scheduler_g": players.scheduler_g.state_dict(),
        "scheduler_d": players.scheduler_d.state_dict(),
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "rng_data": data_rng.get_state(),
        "rng_numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "rng_python": random.getstate(),
        "fixed_noise": fixed_noise.cpu(),
    }


def restore(
    source: Path,
    players: Players,
    data_rng: torch.Generator,
    device: torch.device,
    noise_rng: torch.Generator | None = None,
    cluster: dist.Cluster | None = None,
) -> tuple[Progress, torch.Tensor]:
    """Load `source` (a checkpoint, or a run directory's newest) into the players and the RNGs; return the
    progress and the fixed noise of the sample grids. A checkpoint of a distributed run gives
    each rank its own RNG state back when the number of processes is the same."""
    tensors, _, path = checkpoints.load_weights(source)
    weights_g, weights_d = checkpoints.split_weights(tensors)
    players.generator.load_state_dict(weights_g)
    players.discriminator.load_state_dict(weights_d)
    state = checkpoints.load_state(path)
    players.optimizer_g.load_state_dict(state["optimizer_g"])
    players.optimizer_d.load_state_dict(state["optimizer_d"])
    players.scheduler_g.load_state_dict(state["scheduler_g"])
    players.scheduler_d.load_state_dict(state["scheduler_d"])
    torch.set_rng_state(state["rng_torch"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    data_rng.set_state(state["rng_data"])
    if "rng_numpy" in state:  # states from before mid-epoch checkpoints lack these three
        kind, keys, *rest = state["rng_numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
        random.setstate(state["rng_python"])
    if noise_rng is not None:
        noise_rng.set_state(state["rng_noise"] if "rng_noise" in state else global_rng_state(device))
        ranks = state.get("rng_ranks", [])
        if len(ranks) == cluster.world:
            torch.set_rng_state(ranks[cluster.rank][0])
            if ranks[cluster.rank][1] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(ranks[cluster.rank][1])
        else:  # a different number of processes: a fresh, distinct stream per rank
            torch.manual_seed(int(torch.randint(2**31, (1,))) + cluster.rank)
    if "progress" not in state:  # taken at an epoch's end, like every checkpoint of that time
        return Progress(state["epoch"], state["step"], state.get("best_parzen", float("-inf"))), state["fixed_noise"]
    return Progress.from_state(state["progress"], device), state["fixed_noise"]


def global_rng_state(device: torch.device) -> torch.Tensor:
    """The state of torch's default generator on `device`."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
