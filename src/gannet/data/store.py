"""What every data set shares: the Dataset type, where data is looked for, and how a file is
downloaded without ever leaving half of it behind.

Where data is looked for, in order: --data-dir, $GANNET_DATA, the per-user cache
(~/.cache/gannet, or $XDG_CACHE_HOME/gannet).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gannet.errors import GannetError


@dataclass
class Dataset:
    """Splits as float tensors of shape (N, data_dim); `shape` is one example's (C, H, W)
    for images or (d,) for vectors."""

    name: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    shape: tuple[int, ...]
    labels: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def data_dim(self) -> int:
        return self.train.shape[1]

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gannet"


def search_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    """The folders data is looked for in, first match wins."""
    dirs = [Path(d).expanduser() for d in (data_dir, os.environ.get("GANNET_DATA")) if d]
    return [*dirs, cache_dir()]


def fetch(url: str, destination: Path, name: str, progress: bool, verify) -> None:
    """Download `url` into a temporary file beside `destination`, check it with
    `verify(tmp, url)`, then rename it into place: a failure at any point leaves nothing
    half-written. `name` labels the progress bar."""
    from tqdm import tqdm

    handle, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        verify(Path(tmp), url)
        os.replace(tmp, destination)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def download_missing(title: str, name: str, what: str, data_dir, download: bool, fetch) -> Path:
    """A data set found nowhere: `fetch(target)` it into the first data folder, or say where
    it was looked for and what to do (one GannetError)."""
    places = ", ".join(str(d / name) for d in search_dirs(data_dir))
    if not download:
        raise GannetError(
            f"{title} was not found (looked in {places}); run `gannet data download {name}` "
            f"or point --data-dir (or $GANNET_DATA) at a folder holding {what}."
        )
    target = search_dirs(data_dir)[0]
    missing = [d for d in (target / name, *(target / name).parents) if not d.exists()]
    try:
        return fetch(target)
    except (GannetError, OSError) as error:  # OSError: the folder cannot be made or written
        for folder in missing:  # deepest first: the folders made for it, while still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise GannetError(
            f"{title} was not found (looked in {places}) and downloading it into {target} "
            f"failed: {error} Point --data-dir at a folder holding {what}."
        ) from None


def data_folder(root: str | os.PathLike, name: str) -> Path:
    """`root/name`, made if missing; a GannetError if it cannot be (a file in the way, no permission)."""
    folder = Path(root).expanduser() / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if folder.exists() and not folder.is_dir():
            raise GannetError(f"{folder} is a file where a data folder belongs; move it out of the way.") from None
        raise GannetError(f"Cannot make the data folder {folder} ({error.strerror or error}).") from None
    return folder


def file_md5(path: Path) -> tuple[str, int]:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest(), path.stat().st_size
