"""A run directory's life: refused or claimed when a run starts (one process owns it, by a
lock), begun as a branch of another run, and what to run after a stop. The training state a
checkpoint carries is state.py's."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

from gannet import checkpoints
from gannet.config import TrainConfig
from gannet.errors import GannetError

_PICTURE = re.compile(r"epoch-(\d+)\.png")  # an epoch's sample picture, samples/epoch-0007.png


def default_run_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}"


LOCK_NAME = ".gannet.lock"
# What gannet itself writes into a run directory: only a folder holding nothing else may be
# replaced by --force (a user's own files never are).
# A temporary file of an atomic write that its process did not live to rename:
# checkpoints.write_atomic's `.NAME.XXXXXXXX.tmp`, outputs.write_file's `.STEM.XXXXXXXX.SUFFIX`.
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}(\.tmp|\.png|\.pdf|\.svg|\.gif|\.json|\.npy)")
_RUN_ENTRIES = re.compile(
    r"(config\.json|metrics\.jsonl|events\.out\.tfevents\..*|samples|checkpoints|inference(-.+)?"
    rf"|(parzen|quality|features|completion)(-.*)?\.json|\.gannet\.lock|{_TEMPORARY.pattern})"
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
    none yet, the same command with --force (or as it was, when no folder was kept: a branch
    stopped before it began)."""
    if not Path(run_dir).exists():
        return f"nothing was written to {run_dir}: run the same command again"
    newest = checkpoints.checkpoint_paths(run_dir)
    if newest:
        return f"the last checkpoint, {newest[-1].name}, is intact: continue with `gannet train --resume {run_dir}`"
    return f"no checkpoint was written, so there is nothing to resume: start again with --force --run-dir {run_dir}"
