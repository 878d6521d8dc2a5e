"""Data sets, held in memory as tensors: MNIST and CIFAR-10 (with verified downloads), TFD
(user-supplied), the toys, and any folder of images; one module each, `load_dataset` by name.

Where data is looked for, in order: --data-dir, $GANNET_DATA, the per-user cache
(~/.cache/gannet, or $XDG_CACHE_HOME/gannet). MNIST lives in a `mnist/` folder there, as the
four IDX files, gzip-compressed or not; CIFAR-10 as `cifar10/cifar-10-python.tar.gz` (the
original python tarball); TFD as `tfd/TFD_48x48.mat`.
"""

from __future__ import annotations

import os
from pathlib import Path

from gannet.data.cifar_tar import (
    CIFAR10_ARCHIVE,
    CIFAR10_TEST,
    CIFAR10_TRAIN,
    cifar10,
    download_cifar10,
    find_cifar10,
    global_contrast_normalize,
    load_cifar10,
)
from gannet.data.folder import FOLDER_PREFIX, decode_image, folder_dataset, image_files
from gannet.data.mnist_idx import MNIST_FILES, download_mnist, find_mnist, load_mnist, mnist, read_mnist_file
from gannet.data.store import Dataset, cache_dir, search_dirs
from gannet.data.tfd_mat import TFD_FILE, find_tfd, load_tfd, tfd
from gannet.data.toys import TOY1D_MEAN, TOY1D_STD, toy1d, toy2d, toy2d_modes
from gannet.errors import GannetError

__all__ = [
    "CIFAR10_ARCHIVE",
    "CIFAR10_TEST",
    "CIFAR10_TRAIN",
    "DATA_SHAPES",
    "FOLDER_PREFIX",
    "MNIST_FILES",
    "NUM_CLASSES",
    "TFD_FILE",
    "TOY1D_MEAN",
    "TOY1D_STD",
    "Dataset",
    "cache_dir",
    "check_dataset",
    "cifar10",
    "data_shape",
    "dataset_for",
    "decode_image",
    "download_cifar10",
    "download_mnist",
    "find_cifar10",
    "find_mnist",
    "find_tfd",
    "folder_dataset",
    "global_contrast_normalize",
    "image_files",
    "load_cifar10",
    "load_dataset",
    "load_mnist",
    "load_tfd",
    "mnist",
    "read_mnist_file",
    "search_dirs",
    "tfd",
    "toy1d",
    "toy2d",
    "toy2d_modes",
]


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool | None = True,
    image_size: int = 28,
    channels: int = 1,
) -> Dataset:
    if name == "toy1d":
        return toy1d()
    if name in ("ring8", "grid25"):
        return toy2d(name)
    if name == "mnist":
        return mnist(data_dir, download=download, progress=progress is not False)
    if name == "cifar10":
        return cifar10(data_dir, download=download, progress=progress is not False)
    if name == "tfd":
        return tfd(data_dir)
    if name.startswith(FOLDER_PREFIX):
        return folder_dataset(name[len(FOLDER_PREFIX) :], image_size, channels, progress)
    raise GannetError(f"Unknown data set '{name}'; known: {', '.join(DATA_SHAPES)}, or folder:PATH.")


def dataset_for(config, progress: bool | None = True) -> Dataset:
    """The data set a TrainConfig names."""
    return load_dataset(config.dataset, config.data_dir, config.download, progress, config.image_size, config.channels)


NUM_CLASSES = {"mnist": 10, "cifar10": 10, "ring8": 8, "grid25": 25}  # labelled data sets (ring8/grid25: mode index)
DATA_SHAPES = {
    "mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "tfd": (1, 48, 48),
    "toy1d": (1,),
    "ring8": (2,),
    "grid25": (2,),
}


def data_shape(config) -> tuple[int, ...]:
    """One example's shape under a TrainConfig, known without loading the data set."""
    if config.dataset.startswith(FOLDER_PREFIX):
        return (config.channels, config.image_size, config.image_size)
    return DATA_SHAPES[config.dataset]


def check_dataset(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """One line for `gannet data check`: is the data set present and verified, and where; a
    GannetError (one sentence, saying what to do) where it is not."""
    if name in ("toy1d", "ring8", "grid25"):
        return f"{name}: generated from a fixed seed; no files needed."
    if name.startswith(FOLDER_PREFIX):
        if name == FOLDER_PREFIX:
            raise GannetError("folder: needs the path of a folder of images, e.g. folder:~/faces.")
        folder = Path(name[len(FOLDER_PREFIX) :]).expanduser()
        files = image_files(folder)
        return f"{name}: {len(files):,} PNG/JPEG images under {folder.resolve()} (decoded and cached on first use)."
    if name == "cifar10":
        path = find_cifar10(data_dir)
        if path is None:
            places = ", ".join(str(d / "cifar10") for d in search_dirs(data_dir))
            raise GannetError(f"CIFAR-10 is not present (looked in {places}); run `gannet data download cifar10`.")
        return f"cifar10: present and verified in {path} ({_split_sizes(load_cifar10(path))})."
    if name == "tfd":
        dataset = tfd(data_dir)
        return f"tfd: present in {find_tfd(data_dir)} (fold 0: {_split_sizes(dataset, 'unlabeled')})."
    if name != "mnist":
        raise GannetError(f"Unknown data set '{name}'; known: {', '.join(DATA_SHAPES)}, or folder:PATH.")
    folder = find_mnist(data_dir)
    if folder is None:
        places = ", ".join(str(d / "mnist") for d in search_dirs(data_dir))
        raise GannetError(f"MNIST is not present (looked in {places}); run `gannet data download mnist`.")
    return f"mnist: present and verified in {folder} ({_split_sizes(load_mnist(folder))})."  # checksums checked


def _split_sizes(dataset: Dataset, train_name: str = "train") -> str:
    return f"{train_name} {len(dataset.train):,}, valid {len(dataset.valid):,}, test {len(dataset.test):,}"
