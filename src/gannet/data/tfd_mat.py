"""TFD, the Toronto Face Database: licence-restricted, so never downloaded; the user's
TFD_48x48.mat (under `tfd/`, or pylearn2's `faces/TFD/`), read with SciPy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from gannet.data.store import Dataset, search_dirs
from gannet.errors import GannetError

TFD_FILE = "TFD_48x48.mat"
TFD_PLACES = ("tfd", "faces/TFD")  # under a data folder; the second is pylearn2's layout
TFD_FOLD_CODES = {"unlabeled": 0, "train": 1, "valid": 2, "test": 3}


def find_tfd(data_dir: str | os.PathLike | None) -> Path | None:
    for root in search_dirs(data_dir):
        for place in TFD_PLACES:
            if (root / place / TFD_FILE).is_file():
                return root / place / TFD_FILE
    return None


def load_tfd(path: Path, fold: int = 0) -> Dataset:
    """TFD as pylearn2 read it for the 2014 code: `images` (N, 48, 48) uint8 scaled to [0, 1];
    `folds` (N, 5) marks each image per fold as 0 unlabeled, 1 train, 2 valid, 3 test. The GAN
    trains on the unlabeled images (tfd_pretrain/train.yaml); σ is picked on fold `fold`'s
    validation images and the Parzen estimate is taken on its test images."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise GannetError("Reading TFD's .mat file needs SciPy: pip install 'gannet[tfd]'.") from None
    try:
        mat = loadmat(path)
    except Exception as error:  # SciPy's parser fails in many ways on foreign bytes; all mean the same
        raise GannetError(f"{path} is not TFD's 48x48 .mat file (with 'images' and 'folds'): {error}.") from None
    missing = [key for key in ("images", "folds") if key not in mat]
    if missing:
        raise GannetError(f"{path} is not TFD's 48x48 .mat file: it has no {' and no '.join(map(repr, missing))}.")
    images, folds = np.asarray(mat["images"]), np.asarray(mat["folds"])
    if images.dtype != np.uint8 or not np.issubdtype(folds.dtype, np.number):
        raise GannetError(
            f"{path} holds {images.dtype} images and {folds.dtype} folds; TFD's are uint8 pixels and numeric folds."
        )
    if images.ndim != 3 or images.shape[1:] != (48, 48) or folds.ndim != 2 or len(folds) != len(images):
        raise GannetError(
            f"{path} holds images of shape {images.shape} and folds of shape {folds.shape}; "
            "expected (N, 48, 48) and (N, 5)."
        )
    if not 0 <= fold < folds.shape[1]:
        raise GannetError(f"TFD has folds 0 to {folds.shape[1] - 1}, not {fold}.")
    pixels = torch.from_numpy(images.reshape(len(images), 48 * 48).astype(np.float32) / 255)
    which = torch.from_numpy(folds[:, fold].astype(np.int64))
    splits = {name: pixels[which == code] for name, code in TFD_FOLD_CODES.items()}
    empty = [name for name in ("unlabeled", "valid", "test") if len(splits[name]) == 0]
    if empty:
        raise GannetError(f"{path} has no {' or '.join(empty)} images in fold {fold}.")
    return Dataset(name="tfd", train=splits["unlabeled"], valid=splits["valid"], test=splits["test"], shape=(1, 48, 48))


def tfd(data_dir: str | os.PathLike | None) -> Dataset:
    path = find_tfd(data_dir)
    if path is None:
        places = ", ".join(str(d / TFD_PLACES[0]) for d in search_dirs(data_dir))
        raise GannetError(
            f"TFD is licence-restricted and cannot be downloaded: put your copy of {TFD_FILE} in one of "
            f"{places} (or point --data-dir at a folder holding tfd/{TFD_FILE})."
        )
    return load_tfd(path)
