"""MNIST: the four IDX files (gzip-compressed or not) in a `mnist/` data folder, verified by
MD5, downloaded from the standard mirrors when missing, split as the paper split them."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.error
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from gannet.data.store import Dataset, data_folder, download_missing, fetch, search_dirs
from gannet.errors import GannetError

# MD5 and size of the *decompressed* files, so that any gzip of the right bytes passes.
MNIST_FILES = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 47_040_016),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60_008),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 7_840_016),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10_008),
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_TRAIN_SIZE = 50_000  # the paper: train on the first 50,000, validate on the last 10,000


def _mnist_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_mnist(data_dir: str | os.PathLike | None) -> Path | None:
    """The first `mnist/` folder holding all four files, or None."""
    for root in search_dirs(data_dir):
        folder = root / "mnist"
        if all(_mnist_file(folder, name) for name in MNIST_FILES):
            return folder
    return None


def _read_content(path: Path) -> bytes:
    """The decompressed bytes of an IDX file; a broken gzip is a GannetError naming it."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise GannetError(f"Cannot read {path} ({error.strerror or error}).") from None
    try:
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw  # gzip by its magic bytes
    except (OSError, EOFError, zlib.error) as error:
        raise GannetError(
            f"{path} is truncated or corrupt ({error}); delete it and run `gannet data download mnist` again."
        ) from None


def verify_mnist_content(name: str, content: bytes, source: str) -> None:
    md5, size = MNIST_FILES[name]
    digest = hashlib.md5(content).hexdigest()
    if len(content) != size or digest != md5:
        raise GannetError(
            f"{source} does not hold MNIST's {name}: its content has {len(content):,} bytes "
            f"and MD5 {digest}, expected {size:,} bytes and MD5 {md5}."
        )


def read_mnist_file(path: Path, name: str) -> np.ndarray:
    """One verified IDX file as a uint8 array: (N, 28, 28) images or (N,) labels."""
    content = _read_content(path)
    verify_mnist_content(name, content, str(path))
    ndim = content[3]  # IDX header: 0, 0, dtype (8 = uint8), number of dimensions
    dims = np.frombuffer(content, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim).reshape(*dims.tolist())


def _pixels(images: np.ndarray) -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 784) float32 in [0, 1]. The same numbers as NumPy's
    astype(float32) / 255 (both divide exactly representable integers, correctly rounded), but
    faster: one allocation, and torch's threads."""
    with warnings.catch_warnings():  # a read-only view of the file's bytes; .float() copies it
        warnings.simplefilter("ignore", UserWarning)
        pixels = torch.from_numpy(images.reshape(len(images), -1))
    return pixels.float().div_(255)


def load_mnist(folder: Path) -> Dataset:
    """MNIST as the paper split it: train = first 50,000 training images, valid = last 10,000,
    test = the 10,000 test images; pixels scaled to [0, 1], flattened to 784."""
    arrays = {name: read_mnist_file(_mnist_file(folder, name), name) for name in MNIST_FILES}
    images = _pixels(arrays["train-images-idx3-ubyte"])
    labels = torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64))
    test = _pixels(arrays["t10k-images-idx3-ubyte"])
    n = MNIST_TRAIN_SIZE
    return Dataset(
        name="mnist",
        train=images[:n],
        valid=images[n:],
        test=test,
        shape=(1, 28, 28),
        labels={
            "train": labels[:n],
            "valid": labels[n:],
            "test": torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)),
        },
    )


def download_mnist(root: str | os.PathLike, mirrors: tuple[str, ...] = MNIST_MIRRORS, progress: bool = True) -> Path:
    """Put the four verified MNIST files in `root/mnist`, trying each mirror in turn; return
    that folder. Files already present and valid are kept."""
    folder = data_folder(root, "mnist")
    for name in MNIST_FILES:
        existing = _mnist_file(folder, name)
        if existing is not None:
            verify_mnist_content(name, _read_content(existing), str(existing))
            continue
        failures = []
        for mirror in mirrors:
            try:
                fetch(
                    f"{mirror}{name}.gz",
                    folder / f"{name}.gz",
                    name,
                    progress,
                    lambda tmp, source: verify_mnist_content(name, _read_content(tmp), source),  # noqa: B023 (runs now)
                )
                break
            except (OSError, http.client.HTTPException, urllib.error.URLError, GannetError) as error:
                reason = getattr(error, "reason", None) or error
                failures.append(f"{mirror} ({reason})")
        else:
            raise GannetError(f"Could not download MNIST's {name}: every mirror failed: {'; '.join(failures)}.")
    return folder


def mnist(data_dir: str | os.PathLike | None, download: bool = True, progress: bool = True) -> Dataset:
    folder = find_mnist(data_dir)
    if folder is None:
        folder = download_missing(
            "MNIST", "mnist", "mnist/", data_dir, download, lambda t: download_mnist(t, progress=progress)
        )
    return load_mnist(folder)
