"""The state a checkpoint carries beyond the weights (progress, optimizers, schedules, every
RNG), so that a resumed run continues exactly where it stopped, step for step; and the rules
for what a resumed run may change."""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gannet import checkpoints
from gannet import config as config_module
from gannet import distributed as dist
from gannet.config import FIELDS, RESUMABLE, TrainConfig, flag
from gannet.errors import GannetError
from gannet.game import Players
from gannet.optim import milestone_factor


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
    seconds: float = 0.0  # wall time spent training so far, over every session of the run

    def state_dict(self) -> dict:
        return {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}

    @classmethod
    def from_state(cls, state: dict, device: torch.device) -> Progress:
        return cls(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in state.items()})


def follow_schedule(players: Players) -> None:
    """Set both optimizers' lr to what this config's schedule gives their next update (after
    loading a checkpoint whose run had other --lr-milestones; the same value otherwise)."""
    for scheduler in (players.scheduler_g, players.scheduler_d):
        scheduler.last_epoch -= 1
        scheduler.step()  # back to the same count: lr = base lr × this config's rule(count)


def resumed_config(run_dir: str | os.PathLike | None, resume: bool | str | os.PathLike) -> TrainConfig:
    """The config a resume goes on with when none is given: the run's own (its config.json, or
    the checkpoint's that a branch starts from)."""
    if resume is False:
        raise GannetError("train() needs a config, unless it resumes a run (resume=True or a checkpoint).")
    if resume is True:
        if run_dir is None:
            raise GannetError("Resuming needs the run directory to go on in.")
        return config_module.load(Path(run_dir) / "config.json")
    _, metadata, path = checkpoints.load_weights(resume)
    return checkpoints.checkpoint_config(metadata, path)


def check_resume(previous: TrainConfig, config: TrainConfig, progress: Progress | None = None) -> None:
    """A resumed run (or a branch) keeps every field of its `previous` config but the RESUMABLE
    ones; and with its `progress` known, the lr milestones may change only for epochs not yet
    begun, --average-from only while no epoch has been averaged (and to an epoch not yet finished)."""
    changed = [name for name in FIELDS if name not in RESUMABLE and getattr(previous, name) != getattr(config, name)]
    if changed:
        names = ", ".join("the preset" if name == "preset" else f"--{flag(name)}" for name in changed)
        raise GannetError(f"A resumed run keeps its hyper-parameters; {names} cannot change on --resume.")
    if progress is None:
        return
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
    if players.ema is not None:
        extra["ema"] = {
            "updates": players.ema_updates,
            "weights": {k: v.cpu() for k, v in players.ema_weights().items()},
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
    fixed_noise: torch.Tensor,
    steps: int,
    noise_rng: torch.Generator | None = None,
    cluster: dist.Cluster | None = None,
) -> tuple[Progress, torch.Tensor, dict[str, str]]:
    """Load `source` (a checkpoint, or a run directory's newest) into the players and the RNGs; return the
    progress, the fixed noise of the sample grids and the checkpoint's metadata. A checkpoint of a
    distributed run gives each rank its own RNG state back when the number of processes is the same.
    A state that could not go on in this run (`fixed_noise` its own, `steps` per epoch) is refused here."""
    tensors, metadata, path = checkpoints.load_weights(source)
    state = checkpoints.load_state(path, metadata)
    try:
        progress, noise = _restore(tensors, state, players, data_rng, device, noise_rng, cluster)
        _check_fits(progress, noise, fixed_noise, steps)
        return progress, noise, metadata
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as error:
        # digests make this a hand-made or foreign file: say which part does not fit, in one line
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise GannetError(
            f"{path} cannot be resumed: its weights or training state do not fit this run ({detail})."
        ) from None


def _restore(
    tensors: dict[str, torch.Tensor],
    state: dict,
    players: Players,
    data_rng: torch.Generator,
    device: torch.device,
    noise_rng: torch.Generator | None,
    cluster: dist.Cluster | None,
) -> tuple[Progress, torch.Tensor]:
    weights_g, weights_d = checkpoints.split_weights(tensors)
    players.generator.load_state_dict(weights_g)
    players.discriminator.load_state_dict(weights_d)
    players.optimizer_g.load_state_dict(state["optimizer_g"])
    players.optimizer_d.load_state_dict(state["optimizer_d"])
    players.scheduler_g.load_state_dict(state["scheduler_g"])
    players.scheduler_d.load_state_dict(state["scheduler_d"])
    if players.ema is not None:  # a run with --ema-decay (which cannot be switched on at a resume)
        ema = state["ema"]
        if type(ema["updates"]) is not int or ema["updates"] < 0:
            raise ValueError("its moving average's update count is not a whole number")
        for name, mine in players.ema_weights().items():
            saved = ema["weights"][name]
            if saved.shape != mine.shape:
                raise ValueError(f"its moving average's {name} has the shape {tuple(saved.shape)}")
            mine.copy_(saved)
        players.ema_updates = ema["updates"]
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
        progress = Progress(state["epoch"], state["step"], state.get("best_parzen", float("-inf")))
    else:
        progress = Progress.from_state(state["progress"], device)
    counts = (progress.epoch, progress.step, progress.position, progress.averaged)
    if not all(type(n) is int and n >= 0 for n in counts) or not isinstance(state["fixed_noise"], torch.Tensor):
        raise ValueError("its progress counters are not whole numbers")
    return progress, state["fixed_noise"]


def _check_fits(progress: Progress, noise: torch.Tensor, like: torch.Tensor, steps: int) -> None:
    """A hand-made state's parts must have the shapes this run gives them (digests only prove
    that nobody changed a file since it was written, not who wrote it): ValueError if not."""
    p = progress
    if noise.shape != like.shape or noise.dtype != like.dtype or not torch.isfinite(noise).all():
        raise ValueError(f"its fixed noise is not a finite {tuple(like.shape)} tensor")
    if type(p.best_parzen) not in (int, float) or math.isnan(p.best_parzen) or p.best_parzen == math.inf:
        raise ValueError(f"its best Parzen score {p.best_parzen!r} is not a number")
    if type(p.seconds) not in (int, float) or not 0 <= p.seconds < math.inf:
        raise ValueError(f"its training time {p.seconds!r} is not a number of seconds")
    sums = p.average.values() if isinstance(p.average, dict) else [None]
    if p.averaged and not all(isinstance(t, torch.Tensor) for t in sums):
        raise ValueError(f"it counts {p.averaged} averaged epochs but holds no sums")
    if p.order is None:
        if p.position != 0:
            raise ValueError("it is inside an epoch but holds no data order")
        return
    parts = (p.order, p.total, p.interval, p.first_bad)
    if not all(isinstance(t, torch.Tensor) for t in parts) or (p.total.shape, p.interval.shape) != ((4,), (4,)):
        raise ValueError("its mid-epoch sums are not this run's")
    if p.order.dtype != torch.long or p.order.dim() != 1 or p.first_bad.shape != (2,):
        raise ValueError("its data order is not a list of example indices")
    in_range = len(p.order) == 0 or 0 <= int(p.order.min()) <= int(p.order.max()) < len(p.order)
    if not 0 < p.position < steps or not in_range:
        raise ValueError(f"its position {p.position} or data order does not fit an epoch of {steps} steps")


def global_rng_state(device: torch.device) -> torch.Tensor:
    """The state of torch's default generator on `device`."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
