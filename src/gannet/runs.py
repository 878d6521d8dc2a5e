"""A run directory's life: refused or created when a run starts, and the state a checkpoint
carries beyond the weights (progress, optimizers, schedules, every RNG), so that a resumed run
continues exactly where it stopped, step for step."""

from __future__ import annotations

import fcntl
import math
import os
import random
import re
import shutil
import socket
import tempfile
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


LOCK_NAME = ".gannet.lock"
# What gannet itself writes into a run directory: only a folder holding nothing else may be
# replaced by --force (a user's own files never are).
# A temporary file of an atomic write that its process did not live to rename:
# checkpoints.write_atomic's `.NAME.XXXXXXXX.tmp`, outputs.write_file's `.STEM.XXXXXXXX.SUFFIX`.
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}(\.tmp|\.png|\.pdf|\.svg|\.gif|\.json|\.npy)")
_RUN_ENTRIES = re.compile(
    r"(config\.json|metrics\.jsonl|events\.out\.tfevents\..*|samples|checkpoints|inference"
    rf"|(parzen|quality|features)(-.*)?\.json|\.gannet\.lock|{_TEMPORARY.pattern})"
)


class RunLock:
    """A run directory belongs to one process at a time: an exclusive flock on
    RUN_DIR/.gannet.lock, which the kernel releases when the process ends however it ends (so
    no lock is ever left stale by a crash or kill -9). The file names its owner for the message
    that another process gets."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, patience: float = 1.0) -> RunLock:
        """Take the lock, or raise a GannetError naming its owner; waits up to `patience` seconds
        (another command's check_free holds it for an instant)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                owner = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise GannetError(
                    f"{self.path.parent} is in use by {owner}; wait for that run to end (or stop it) first."
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"gannet process {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def check_free(run_dir: Path) -> None:
    """Refuse, naming the owner, a run directory that another process is training in now (the
    earliest check, so that its half-written state is not read; the lock itself is taken later)."""
    if (Path(run_dir) / LOCK_NAME).is_file():
        RunLock(run_dir).acquire(patience=0).release()


def _protected(run_dir: Path) -> str | None:
    """Why `run_dir` can never be a new run's folder (it would hold, or be replaced over, other
    files: an empty --run-dir or an unset $VAR means the working folder), or None."""
    path, cwd = run_dir.resolve(), Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        return "the working folder or one of its parents"
    if path == Path.home().resolve() or path in Path.home().resolve().parents:
        return "the home folder or one of its parents"
    return None


def holds_only_a_run(run_dir: Path) -> bool:
    """Whether every entry of `run_dir` is one gannet writes (so --force may replace it)."""
    return all(_RUN_ENTRIES.fullmatch(p.name) for p in run_dir.iterdir())


def _occupied(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(p.name != LOCK_NAME for p in run_dir.iterdir())


def check_run_dir(run_dir: Path, resume: bool, force: bool, branch: bool = False) -> None:
    """Refuse a run directory that cannot be used; touches nothing (claim_run_dir does, later)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise GannetError(f"{run_dir} is a file, not a run directory; give --run-dir a folder.")
    if resume:
        if not (run_dir / "config.json").is_file():
            raise GannetError(f"Cannot resume: {run_dir} is not a gannet run directory (no config.json).")
        return
    why = _protected(run_dir)
    if why is not None:
        raise GannetError(f"--run-dir {str(run_dir)!r} is {why}; give the run a folder of its own.")
    if _occupied(run_dir):
        if branch:
            raise GannetError(
                f"Run directory {run_dir} already exists; a branch needs a new one: give another --run-dir."
            )
        if not force:
            raise GannetError(
                f"Run directory {run_dir} already exists; pass --resume to continue it or --force to replace it."
            )
        if not holds_only_a_run(run_dir):
            raise GannetError(
                f"--force replaces only gannet run directories, and {run_dir} holds other files; "
                "give another --run-dir."
            )
    _check_writable(run_dir)


def _check_writable(run_dir: Path) -> None:
    """Refuse a run directory that cannot be written, before any work is done: a file is made
    and removed in it or, while it does not exist yet, in the nearest folder above it."""
    folder = run_dir
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise GannetError(f"--run-dir {run_dir} cannot be made: {folder} is a file.")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise GannetError(f"--run-dir {run_dir} cannot be written ({error.strerror or error} in {folder}).") from None


def claim_run_dir(run_dir: Path, resume: bool, force: bool) -> RunLock:
    """Make this process the run directory's one owner (RunLock) and return the lock. A fresh
    run's folder is created, or, with --force, emptied — under the lock, so that of two runs
    started together on one folder one trains and the other is refused. Called only once the
    data and the networks are ready, so a run that fails before its first step replaces nothing."""
    try:
        if not resume:
            run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir).acquire()
    except OSError as error:
        raise GannetError(f"Could not create run directory {run_dir} ({error.strerror or error}).") from None
    try:
        if resume:
            for folder in (run_dir, run_dir / "checkpoints", run_dir / "samples"):
                for leftover in folder.glob(".*"):
                    if _TEMPORARY.fullmatch(leftover.name) and leftover.is_file():
                        leftover.unlink(missing_ok=True)  # a killed writer's
        elif _occupied(run_dir):  # checked before, but another process may have written since
            check_run_dir(run_dir, resume=False, force=force)
            for entry in run_dir.iterdir():
                if entry.name != LOCK_NAME:
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    except BaseException:
        lock.release()
        raise
    return lock


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


def begin_branch(branch: Path, run_dir: Path) -> None:
    """Copy the source run's history into the freshly claimed branch folder; a copy that fails
    removes the folder again, so that the same command can simply be retried."""
    try:
        copy_history(branch, run_dir)
    except (OSError, GannetError) as error:
        shutil.rmtree(run_dir, ignore_errors=True)
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise GannetError(f"Could not begin the branch {run_dir} ({reason}); nothing was kept.") from None


def next_step(run_dir: Path) -> str:
    """What to run after a run stopped early: a resume from its newest checkpoint, or, with
    none yet, the same command with --force."""
    newest = checkpoints.checkpoint_paths(run_dir)
    if newest:
        return f"the last checkpoint, {newest[-1].name}, is intact: continue with `gannet train --resume {run_dir}`"
    return f"no checkpoint was written, so there is nothing to resume: start again with --force --run-dir {run_dir}"


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
