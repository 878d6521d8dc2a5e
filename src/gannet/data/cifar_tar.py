"""CIFAR-10: the original python tarball in `cifar10/`, verified by MD5, downloaded when
missing, its pickled batches read by an unpickler that builds NumPy arrays and nothing else;
contrast-normalised as the 2014 code did."""

from __future__ import annotations

import codecs
import http.client
import io
import os
import pickle
import tarfile
import urllib.error
import zlib
from pathlib import Path

import numpy as np
import torch

from gannet.data.store import Dataset, data_folder, download_missing, fetch, file_md5, search_dirs
from gannet.errors import GannetError

CIFAR10_URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_SUM = ("c58f30108f718f92721af3b95e74349a", 170_498_071)  # MD5 and size of the original tarball
CIFAR10_TRAIN = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST = "cifar-10-batches-py/test_batch"
GCN_SCALE = 55.0  # the paper's global contrast normalisation


def global_contrast_normalize(x: np.ndarray, scale: float = GCN_SCALE, min_divisor: float = 1e-8) -> np.ndarray:
    """pylearn2's global_contrast_normalize as the 2014 code called it: each row minus its
    mean, then scaled to an L2 norm of `scale` (rows of norm ~0 are left unscaled)."""
    x = x.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.sqrt((x**2).sum(axis=1, keepdims=True)) / scale
    norms[norms < min_divisor] = 1.0
    return (x / norms).astype(np.float32)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's batches (dicts of lists, strings and one uint8 array) and nothing
    else: a pickle naming any other callable is refused before it runs."""

    _reconstruct = np.zeros(0).__reduce__()[0]  # wherever this NumPy keeps it
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3 pickles bytes at protocol 2
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def verify_cifar10_archive(path: Path, source: str) -> None:
    try:
        md5, size = file_md5(path)
    except OSError as error:
        raise GannetError(f"Cannot read {source} ({error.strerror or error}).") from None
    if (md5, size) != CIFAR10_SUM:
        raise GannetError(
            f"{source} is not CIFAR-10's {CIFAR10_ARCHIVE}: it has {size:,} bytes and MD5 {md5}, "
            f"expected {CIFAR10_SUM[1]:,} bytes and MD5 {CIFAR10_SUM[0]}."
        )


def _read_batch(archive: tarfile.TarFile, member: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the python tarball: (images (N, 3072) uint8, labels (N,) int64)."""
    try:
        raw = archive.extractfile(member).read()
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
        batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in batch.items()}
        images, labels = batch["data"], np.asarray(batch["labels"], dtype=np.int64)
        ok = isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
        if not (ok and images.shape[1] == 3072 and len(labels) == len(images) and labels.min() >= 0):
            raise ValueError("not 3,072-pixel uint8 images with one label each")
    except (KeyError, AttributeError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as error:
        raise GannetError(f"{path} is damaged: its {member} cannot be read ({error}).") from None
    return images, labels


def find_cifar10(data_dir: str | os.PathLike | None) -> Path | None:
    for root in search_dirs(data_dir):
        if (root / "cifar10" / CIFAR10_ARCHIVE).is_file():
            return root / "cifar10" / CIFAR10_ARCHIVE
    return None


def load_cifar10(path: Path) -> Dataset:
    """CIFAR-10 as the 2014 code used it: train = the first 40,000 training images, valid =
    the last 10,000, test = the test batch; each image contrast-normalised (GCN, scale 55),
    kept in (3, 32, 32) order as the batches store it."""
    verify_cifar10_archive(path, str(path))
    try:
        with tarfile.open(path, "r:gz") as archive:
            train = [_read_batch(archive, member, path) for member in CIFAR10_TRAIN]
            test_images, test_labels = _read_batch(archive, CIFAR10_TEST, path)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
        raise GannetError(f"{path} is truncated or corrupt ({error}).") from None
    images = np.concatenate([b[0] for b in train])
    labels = torch.from_numpy(np.concatenate([b[1] for b in train]))
    n = len(images) * 4 // 5  # 40,000 of 50,000: batches 1-4 train, batch 5 validates
    pixels = torch.from_numpy(global_contrast_normalize(images))
    return Dataset(
        name="cifar10",
        train=pixels[:n],
        valid=pixels[n:],
        test=torch.from_numpy(global_contrast_normalize(test_images)),
        shape=(3, 32, 32),
        labels={"train": labels[:n], "valid": labels[n:], "test": torch.from_numpy(test_labels)},
    )


def download_cifar10(root: str | os.PathLike, urls: tuple[str, ...] = CIFAR10_URLS, progress: bool = True) -> Path:
    """Put the verified tarball in `root/cifar10` (kept if already there and valid); return its path."""
    folder = data_folder(root, "cifar10")
    destination = folder / CIFAR10_ARCHIVE
    if destination.is_file():
        verify_cifar10_archive(destination, str(destination))
        return destination
    failures = []
    for url in urls:
        try:
            fetch(url, destination, "cifar-10", progress, verify_cifar10_archive)
            return destination
        except (OSError, http.client.HTTPException, urllib.error.URLError, GannetError) as error:
            failures.append(f"{url} ({str(getattr(error, 'reason', None) or error).rstrip('.')})")
    raise GannetError(f"Could not download CIFAR-10: every source failed: {'; '.join(failures)}.")


def cifar10(data_dir: str | os.PathLike | None, download: bool = True, progress: bool = True) -> Dataset:
    path = find_cifar10(data_dir)
    if path is None:
        what = f"cifar10/{CIFAR10_ARCHIVE}"
        path = download_missing(
            "CIFAR-10", "cifar10", what, data_dir, download, lambda t: download_cifar10(t, progress=progress)
        )
    return load_cifar10(path)
