"""Checkpoints: weights as .safetensors (with the run's config in its metadata, so one file is
enough to sample from), training state beside it as a torch file loaded with weights_only.

A checkpoint `checkpoints/epoch-0007.safetensors` + `epoch-0007.state.pt` is written state
first, weights last, each to a temporary file that is flushed and renamed: a crash at any
moment leaves the previous checkpoint whole, and a weights file always has its state.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from gannet import config as config_module
from gannet import pretrained
from gannet.config import TrainConfig
from gannet.errors import GannetError
from gannet.outputs import UMASK

FORMAT = "gannet"
FORMAT_VERSION = "2"  # 2: SHA-256 digests of the content and of the training state
# epoch-0003.safetensors: after 3 epochs; epoch-0003-step-00001600.safetensors: stopped inside
# the 4th epoch, after step 1600 (Ctrl-C / SIGTERM).
_NAME = re.compile(r"epoch-(\d+)(?:-step-(\d+))?\.safetensors$")


def _order(path: Path) -> tuple[int, int]:
    epoch, step = _NAME.search(path.name).groups()
    return int(epoch), int(step or 0)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a flushed temporary file and a rename (then flush the
    folder, so that the new name survives a power cut too)."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~UMASK)  # mkstemp's 0600 would hide the files from the user's group
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def checkpoint_paths(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints (weights files), oldest first."""
    folder = Path(run_dir) / "checkpoints"
    found = [p for p in folder.glob("epoch-*.safetensors") if _NAME.search(p.name)]
    return sorted(found, key=_order)


def state_path(weights: Path) -> Path:
    return weights.with_name(weights.name.replace(".safetensors", ".state.pt"))


def save(
    run_dir: Path,
    weights: dict[str, torch.Tensor],
    state: dict[str, Any],
    config: TrainConfig,
    keep: int,
    keep_every: int = 0,
) -> Path:
    """Write a checkpoint of `state` (its "epoch", "step" and "progress" name it), then delete
    all but the `keep` newest and those after a multiple of `keep_every` epochs (for `gannet
    average`), now or when the checkpoint was written. Returns the weights file. A failed write (a
    full disk, say) is an OSError naming the checkpoint; the previous one is untouched."""
    path = checkpoint_path(run_dir, state)
    path.parent.mkdir(parents=True, exist_ok=True)
    epoch, step = state["epoch"], state["step"]
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        write_atomic(state_path(path), buffer.getvalue())
        metadata = {**_metadata(epoch, step, config), "state_sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}
        _write_weights(path, weights, metadata)
    except OSError as error:  # named for the caller's sentence (train: what is intact, what to run next)
        raise OSError(error.errno, error.strerror or str(error), f"checkpoint {path.name}") from None
    for old in checkpoint_paths(run_dir)[:-keep]:
        epoch, step = _NAME.search(old.name).groups()
        if step is None and any(every and int(epoch) % every == 0 for every in (keep_every, _kept_every(old))):
            continue
        state_path(old).unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return path


def checkpoint_path(run_dir: Path, state: dict[str, Any]) -> Path:
    """The weights file `save` writes `state` to: named by its epoch, and its step when the state
    is from inside an epoch (a stop)."""
    epoch, step = state["epoch"], state["step"]
    mid_epoch = state.get("progress", {}).get("position", 0) > 0
    name = f"epoch-{epoch:04d}-step-{step:08d}.safetensors" if mid_epoch else f"epoch-{epoch:04d}.safetensors"
    return Path(run_dir) / "checkpoints" / name


def _kept_every(path: Path) -> int:
    """The --keep-every a checkpoint was written under (0 if unreadable): a checkpoint kept then is
    never pruned later, when a resumed run lowers --keep-every (`gannet average` may need it)."""
    try:
        with safe_open(path, "pt") as f:
            values = json.loads((f.metadata() or {}).get("config", "{}"))
        every = values.get("keep_every", 0) if isinstance(values, dict) else 0
        return every if type(every) is int and every > 0 else 0
    except Exception:  # noqa: BLE001 (safetensors' own error type, a cut file, bad JSON): not spared
        return 0


def save_best(
    run_dir: Path, epoch: int, weights: dict[str, torch.Tensor], config: TrainConfig, scores: dict[str, float]
) -> Path:
    """Write `checkpoints/best.safetensors` (weights only, for sampling and evaluation)."""
    return save_weights(Path(run_dir) / "checkpoints" / "best.safetensors", epoch, weights, config, scores)


def save_weights(
    path: Path, epoch: int, weights: dict[str, torch.Tensor], config: TrainConfig, notes: dict[str, Any]
) -> Path:
    """A weights-only checkpoint (no training state: for sampling and evaluation), with `notes`
    (scores, what it was made from) in its metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = _metadata(epoch, None, config)
    metadata.update({k: v if isinstance(v, str) else repr(v) for k, v in notes.items()})
    _write_weights(path, weights, metadata)
    return path


def _write_weights(path: Path, weights: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    tensors = {name: t.detach().cpu().contiguous() for name, t in weights.items()}
    metadata = {**metadata, "sha256": content_digest(tensors, metadata)}
    write_atomic(path, safetensors_bytes(tensors, metadata=metadata))


def content_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 over the metadata (but its own digest) and every tensor's name, shape, type and
    bytes: a flipped bit anywhere in a checkpoint is caught on loading, not trained on."""
    digest = hashlib.sha256()
    for key in sorted(k for k in metadata if k != "sha256"):
        digest.update(f"{key}={metadata[key]}\n".encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _metadata(epoch: int, step: int | None, config: TrainConfig) -> dict[str, str]:
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "epoch": str(epoch),
        "config": json.dumps(config.to_dict()),
    }
    if step is not None:
        metadata["step"] = str(step)
    return metadata


def resolve(source: str | os.PathLike) -> Path:
    """A weights file from a run directory (its newest checkpoint), a .safetensors path, or the
    name of a model that ships with gannet (`gannet pretrained`; a path that exists wins, and
    its errors say which shipped model it hides)."""
    shipped = pretrained.shipped_path(source)
    if shipped is not None:
        return shipped
    source = Path(source)
    if source.is_dir():
        found = checkpoint_paths(source)
        if not found:
            raise GannetError(
                f"{source} holds no checkpoint (no checkpoints/epoch-*.safetensors){pretrained.hidden(source)}."
            )
        return found[-1]
    if not source.is_file():
        names = ", ".join(pretrained.names())
        shipped = f" (nor a shipped model: {names})" if names else ""
        raise GannetError(f"No run directory or checkpoint at {source}{shipped}.")
    return source


def ema_path(run_dir: str | os.PathLike) -> Path:
    """Where a run trained with --ema-decay keeps its moving-average generator."""
    return Path(run_dir) / "checkpoints" / "ema.safetensors"


def average_path(run_dir: str | os.PathLike) -> Path:
    """Where a run trained with --average-from keeps its mean generator."""
    return Path(run_dir) / "checkpoints" / "average.safetensors"


def sampled(source: str | os.PathLike) -> str | os.PathLike:
    """The weights that sampling and evaluation take for `source`: a run directory stands for the
    generator it was trained to give, its mean generator once --average-from has begun averaging
    (checkpoints/average.safetensors), else its moving average with --ema-decay
    (checkpoints/ema.safetensors), else its newest checkpoint; anything else for itself (resolve)."""
    if pretrained.shipped_path(source) is None and Path(source).is_dir():
        for kept in (average_path(source), ema_path(source)):
            if kept.is_file():
                return kept
    return source


def run_dir_of(source: str | os.PathLike) -> Path:
    """Where evaluations of a run-or-checkpoint argument write their results: the run
    directory (a checkpoint lives in RUN_DIR/checkpoints/), or, for a weights file kept
    anywhere else, the folder holding it. A shipped model has none (see result_path)."""
    source = Path(source)
    if source.is_dir():
        return source
    path = resolve(source)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def result_path(source: str | os.PathLike, name: str) -> Path | None:
    """An evaluation's default result file (or folder) `name` beside its source (run_dir_of): a
    run directory's is RUN/name (parzen.json); a weights file's carries the file's name, so that
    scoring a run's checkpoints never overwrites the run's own result (RUN/parzen-epoch-0250.json
    for RUN/checkpoints/epoch-0250.safetensors; `name` may be a path, whose first part is named so).
    None for a model that ships with gannet: its results are printed, and written only where -o
    says, never into the installed package."""
    if pretrained.is_shipped(source):
        return None
    if Path(source).is_dir():
        return Path(source) / name
    first, *rest = Path(name).parts
    first = f"{Path(first).stem}-{resolve(source).stem}{Path(first).suffix}"
    return run_dir_of(source).joinpath(first, *rest)


_unverified_allowed = False


def allow_unverified(allowed: bool = True) -> None:
    """Let load_weights accept gannet checkpoints without a digest (`--allow-unverified`): the
    files of gannet's first format, or ones whose digest was removed. Off by default."""
    global _unverified_allowed
    _unverified_allowed = allowed


def load_weights(source: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str], Path]:
    """(tensors, metadata, path) of a gannet checkpoint; anything else is a GannetError."""
    path = resolve(source)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises its own error types for bad files
        raise GannetError(
            f"{path} is not a gannet checkpoint (not a readable safetensors file: {error}){pretrained.hidden(source)}."
        ) from None
    if metadata.get("format") != FORMAT:
        other = f"a safetensors file of another tool (format {metadata['format']!r})" if "format" in metadata else None
        raise GannetError(f"{path} is not a gannet checkpoint ({other or 'its metadata names no gannet format'}).")
    if "sha256" not in metadata and not _unverified_allowed:
        raise GannetError(
            f"{path} carries no SHA-256 digest (a checkpoint from before gannet wrote them, or one whose "
            "metadata was edited), so corruption in it would go unnoticed; load it anyway with --allow-unverified."
        )
    if "sha256" in metadata and metadata["sha256"] != content_digest(tensors, metadata):
        raise GannetError(f"{path} is corrupt: its content does not match the SHA-256 recorded when it was written.")
    bad = next((name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:  # training never writes one (train.py checks first): a hand-made or edited file
        raise GannetError(
            f"{path} holds NaN or infinite weights (in {bad}): the weights are damaged or diverged; "
            "use an earlier checkpoint."
        )
    for key in ("epoch", "step"):
        if key in metadata and not (metadata[key].isascii() and metadata[key].isdigit()):  # not "²"
            raise GannetError(f"{path} is a damaged gannet checkpoint: its {key} {metadata[key]!r} is not a number.")
    return tensors, metadata, path


def checkpoint_config(metadata: dict[str, str], path: Path) -> TrainConfig:
    try:
        values = json.loads(metadata["config"])
        if not isinstance(values, dict):
            raise ValueError
    except (KeyError, ValueError):
        raise GannetError(f"{path} is a damaged gannet checkpoint: its config is missing or unreadable.") from None
    return config_module.from_dict(values)


def load_state(weights: Path, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """The training state beside a weights file, loaded with weights_only=True: tensors and
    plain containers only, so a crafted pickle cannot run code. `metadata`: the weights file's,
    when the caller has loaded it already (checked against its digest)."""
    path = state_path(weights)
    if metadata is None:
        _, metadata, _ = load_weights(weights)
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise GannetError(f"{path} is missing: the checkpoint cannot be resumed.") from None
    if "state_sha256" in metadata and hashlib.sha256(content).hexdigest() != metadata["state_sha256"]:
        raise GannetError(f"{path} is corrupt: its content does not match the SHA-256 recorded in {weights.name}.")
    try:
        return torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a security boundary: whatever the bytes did, refuse them
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise GannetError(f"{path} was refused: it is not a safe gannet training state ({first_line}).") from None


def split_weights(tensors: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Generator and discriminator state dicts from a checkpoint's flat names."""
    parts: dict[str, dict] = {"generator": {}, "discriminator": {}}
    for name, tensor in tensors.items():
        player, _, key = name.partition(".")
        if player in parts:
            parts[player][key] = tensor
    return parts["generator"], parts["discriminator"]


def flat_weights(
    generator: torch.nn.Module | dict[str, torch.Tensor], discriminator: torch.nn.Module | dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors: each player's state dict (of the module, or as given) under its name."""
    players = {"generator": generator, "discriminator": discriminator}
    return {
        f"{player}.{k}": v
        for player, weights in players.items()
        for k, v in (weights.state_dict() if isinstance(weights, torch.nn.Module) else weights).items()
    }
