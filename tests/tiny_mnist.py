"""A small MNIST the tests write themselves, in MNIST's own file format: the four IDX files of
synthetic 28 × 28 "digits" (seven-segment glyphs, each one shifted, scaled, slanted and drawn
with its own stroke), with balanced labels, the same bytes on every run.

gannet's loader checks each file's MD5 and size and splits the training file at 50,000 images;
`accept` points both at these files for the length of a test (a monkeypatch), so that the real
loader, the real CLI and the real downloader read them as they would read MNIST."""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gannet.data import mnist_idx

# Enough for what the tests count: `--train-limit 1000` (10 steps an epoch), 2,000 training
# images for the feature probes, 2,000 test images for the Parzen batch that does not fit.
TRAIN, VALID, TEST = 2_000, 200, 2_000

# Seven segments between six corners of a 10 × 18 box centred at (14, 14): (x0, y0, x1, y1).
_SEGMENTS = {
    "a": (9, 5, 19, 5),  # top
    "b": (19, 5, 19, 14),  # upper right
    "c": (19, 14, 19, 23),  # lower right
    "d": (9, 23, 19, 23),  # bottom
    "e": (9, 14, 9, 23),  # lower left
    "f": (9, 5, 9, 14),  # upper left
    "g": (9, 14, 19, 14),  # middle
}
_DIGITS = ["abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg"]
_MASKS = np.array([[s in _DIGITS[d] for s in _SEGMENTS] for d in range(10)])  # (10, 7)


def draw_digits(labels: np.ndarray, seed: int) -> np.ndarray:
    """(N,) labels -> (N, 28, 28) uint8 images: black background, white anti-aliased strokes."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    ends = np.array(list(_SEGMENTS.values()), dtype=np.float64).reshape(1, 7, 2, 2) - 14  # (1, 7, 2 ends, xy)
    ends = ends + rng.uniform(-1, 1, (n, 7, 2, 2))  # each corner wobbles
    scale, slant = rng.uniform(0.8, 1.1, (n, 1, 1)), rng.uniform(-0.3, 0.3, (n, 1, 1))
    x = scale * ends[..., 0] + slant * ends[..., 1] + 14 + rng.uniform(-3, 3, (n, 1, 1))  # (N, 7, 2)
    y = scale * ends[..., 1] + 14 + rng.uniform(-3, 3, (n, 1, 1))
    grid_y, grid_x = np.mgrid[0:28, 0:28].reshape(2, 1, 1, 784).astype(np.float32)
    x, y = x[..., None].astype(np.float32), y[..., None].astype(np.float32)  # (N, 7, 2, 1)
    # squared distance from each pixel to each segment, the nearest point t of the way along it: (N, 7, 784)
    x0, y0, dx, dy = x[:, :, 0], y[:, :, 0], x[:, :, 1] - x[:, :, 0], y[:, :, 1] - y[:, :, 0]
    t = np.clip(((grid_x - x0) * dx + (grid_y - y0) * dy) / np.maximum(dx * dx + dy * dy, 1e-6), 0, 1)
    squared = np.square(grid_x - x0 - t * dx) + np.square(grid_y - y0 - t * dy)
    squared[~_MASKS[labels]] = np.inf  # segments the digit does not have
    distance = np.sqrt(squared.min(axis=1))  # (N, 784)
    half_width = rng.uniform(0.8, 1.6, (n, 1))
    ink = np.clip(half_width + 0.5 - distance, 0, 1) * rng.uniform(0.75, 1.0, (n, 1))
    return np.rint(ink * 255).astype(np.uint8).reshape(n, 28, 28)


def balanced_labels(n: int, seed: int) -> np.ndarray:
    """0-9 equally often (n a multiple of 10), in a shuffled order."""
    return np.random.default_rng(seed).permutation(np.arange(n) % 10).astype(np.uint8)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: two zero bytes, the type (8 = unsigned byte), the number of dimensions, each
    dimension as a big-endian 32-bit integer, then the values."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@dataclass(frozen=True)
class TinyMnist:
    """What `write` made: the data folder (holding mnist/), the arrays, and each file's MD5 and
    size as gannet's MNIST_FILES lists them."""

    root: Path
    images: dict[str, np.ndarray]  # "train" (train + valid, as MNIST's training file) and "test"
    labels: dict[str, np.ndarray]
    files: dict[str, tuple[str, int]]

    @property
    def folder(self) -> Path:
        return self.root / "mnist"


def write(root: Path, compress: bool = True, seed: int = 0) -> TinyMnist:
    """The four files in root/mnist, gzip-compressed (as the mirrors serve them) or not."""
    labels = {"train": balanced_labels(TRAIN + VALID, seed), "test": balanced_labels(TEST, seed + 1)}
    images = {split: draw_digits(labels[split], seed + 2 + i) for i, split in enumerate(labels)}
    contents = {
        "train-images-idx3-ubyte": idx_bytes(images["train"]),
        "train-labels-idx1-ubyte": idx_bytes(labels["train"]),
        "t10k-images-idx3-ubyte": idx_bytes(images["test"]),
        "t10k-labels-idx1-ubyte": idx_bytes(labels["test"]),
    }
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        if compress:  # mtime 0: the same bytes every time
            (folder / f"{name}.gz").write_bytes(gzip.compress(content, compresslevel=6, mtime=0))
        else:
            (folder / name).write_bytes(content)
    files = {name: (hashlib.md5(content).hexdigest(), len(content)) for name, content in contents.items()}
    return TinyMnist(root, images, labels, files)


def accept(monkeypatch: pytest.MonkeyPatch, tiny: TinyMnist) -> None:
    """Make gannet's MNIST loader take these files for MNIST: their digests, and a split after
    TRAIN images (MNIST's is after 50,000)."""
    for name, digest in tiny.files.items():
        monkeypatch.setitem(mnist_idx.MNIST_FILES, name, digest)  # the one dict gannet.data shares
    monkeypatch.setattr(mnist_idx, "MNIST_TRAIN_SIZE", TRAIN)
