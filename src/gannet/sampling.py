"""Drawing samples from a trained generator."""

from __future__ import annotations

import dataclasses
import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from gannet import checkpoints
from gannet.config import TrainConfig
from gannet.data import Dataset, data_shape, dataset_for
from gannet.errors import GannetError
from gannet.images import MAX_PLOTTED, check_grid, save_samples_picture
from gannet.networks import Generator, build_networks
from gannet.noise import num_classes, sample_codes
from gannet.outputs import check_fits, check_seed, write_file


def load_generator(source: str | os.PathLike, device: str = "cpu") -> tuple[Generator, TrainConfig, Path]:
    """The generator of a run directory (its newest checkpoint's, or its moving average's if it
    was trained with --ema-decay), of a .safetensors file, or of a model that ships with gannet,
    by name ("mnist"; `gannet pretrained` lists them)."""
    tensors, metadata, path = checkpoints.load_weights(checkpoints.sampled(source))
    config = checkpoints.checkpoint_config(metadata, path)
    generator, _ = build_networks(config, data_shape(config))
    weights, _ = checkpoints.split_weights(tensors)
    try:
        generator.load_state_dict(weights)
    except RuntimeError:
        raise GannetError(
            f"{path} is a damaged gannet checkpoint: its generator weights do not fit its config."
        ) from None
    return generator.to(device).eval(), config, path


@torch.no_grad()
def sample(
    generator: Generator,
    config: TrainConfig,
    n: int,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 10_000,
    label: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """n samples G(z), z ~ p_z, shape (n, data_dim), drawn reproducibly from `seed`; a
    conditional model's of class `label` (one int, or an (n,) tensor of classes; else each
    sample of a uniformly drawn class)."""
    check_sample_count(n, generator.data_dim)
    check_seed(seed)
    classes = num_classes(config)
    if label is not None and not classes:
        raise GannetError("--label needs a conditional model (trained with --conditional); this one is not.")
    if isinstance(label, torch.Tensor) and label.numel():
        low, high = int(label.min()), int(label.max())
    else:
        low = high = 0 if isinstance(label, torch.Tensor) else label
    if label is not None and not (low >= 0 and high < classes):
        raise GannetError(f"--label must be a class from 0 to {classes - 1}, not {label}.")
    rng = torch.Generator().manual_seed(seed)  # z drawn on the CPU: a seed means the same z on every device
    chunks = []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        labels = label[start : start + size] if isinstance(label, torch.Tensor) else label
        z = sample_codes(config, size, "cpu", rng, labels).to(device)
        chunks.append(generator(z))
        if not torch.isfinite(chunks[-1]).all():  # a diverged or damaged generator: no samples, not NaN ones
            raise GannetError("The generator produces NaN or infinite values: its weights are damaged or diverged.")
    return torch.cat(chunks) if chunks else torch.empty(0, generator.data_dim)


def check_sample_count(n: int, data_dim: int, flag: str | None = None) -> None:
    """Refuse a number of samples below 0, or more than the memory holds: the samples, float32,
    and their chunks while they are joined (twice n × data_dim × 4 bytes). `flag`: the option
    that asked for them, for the message."""
    asked = (
        f"{n:,} samples of {data_dim:,} values" if flag is None else f"{flag} {n:,} (samples of {data_dim:,} values)"
    )
    if n < 0:
        raise GannetError(f"{asked}: a number of samples cannot be negative.")
    check_fits(asked, 2 * 4 * n * data_dim, "ask for fewer samples")


def check_picture(n: int, shape: tuple[int, ...], flag: str = "-n") -> None:
    """Refuse a picture of n samples that cannot be drawn: an image grid too large, or more
    points than a histogram or scatter plot should take."""
    if len(shape) == 3:
        check_grid(f"{flag} {n:,}", n, shape, scale=2)  # save_grid's scale
    elif n > MAX_PLOTTED:
        raise GannetError(
            f"A picture draws at most {MAX_PLOTTED:,} samples, not {n:,}; write more with --npy alone (no -o)."
        )


def write_samples(
    samples: torch.Tensor, config: TrainConfig, png: Path | None, npy: Path | None, data_dir: str | None = None
) -> None:
    """Save samples as a picture (a grid of images; 1-D and 2-D toys drawn over their data)
    and/or a .npy array, each written whole or not at all."""
    shape = data_shape(config)
    if png is not None:
        data = None if len(shape) == 3 else dataset_for(dataclasses.replace(config, data_dir=data_dir)).train
        save_samples_picture(samples, shape, png, data)
    if npy is not None:
        array = samples.detach().cpu().numpy().astype(np.float32, copy=False)
        write_file(npy, lambda tmp: np.save(tmp, array))


def checkpoint_dataset(config: TrainConfig, data_dir: str | os.PathLike | None = None) -> Dataset:
    """The data set a checkpoint's config names, from `data_dir` (the user's) where given, else
    where the run found it (its config's data_dir), else the usual places ($GANNET_DATA, the
    per-user cache), downloaded there if need be. Never into the folder a checkpoint names:
    a checkpoint comes from anywhere, and reading one must not create folders it chooses."""
    if data_dir:
        return dataset_for(dataclasses.replace(config, data_dir=str(data_dir)))
    if config.data_dir:
        try:
            return dataset_for(dataclasses.replace(config, download=False))
        except GannetError:  # not there (any more): look in the usual places
            pass
    return dataset_for(dataclasses.replace(config, data_dir=None))


def load_samples_file(path: str | os.PathLike, data_dim: int) -> torch.Tensor:
    """Samples made anywhere: an (N, data_dim) float array in [0, 1] from a .npy, or the
    first (or 'samples') array of a .npz. Anything else is one clear GannetError."""
    path = Path(path)
    unreadable = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)  # no pickles: a file cannot run code
    except FileNotFoundError:
        raise GannetError(f"No samples file at {path}.") from None
    except IsADirectoryError:
        raise GannetError(f"{path} is a folder; give a .npy or .npz file of samples.") from None
    except unreadable as error:
        raise GannetError(f"{path} is not a readable .npy or .npz array file ({error}).") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if not loaded.files:
                raise GannetError(f"{path} holds no array.")
            name = "samples" if "samples" in loaded.files else loaded.files[0]
            try:
                _check_samples_shape(path, *_npz_header(loaded, name), data_dim)  # before reading it
                array = loaded[name]
            except unreadable as error:
                raise GannetError(f"{path}'s array {name!r} cannot be read ({error}).") from None
    else:
        _check_samples_shape(path, loaded.shape, loaded.dtype, data_dim)
        array = loaded
    try:
        array = np.asarray(array, dtype=np.float64)  # reads a memory-mapped .npy
    except unreadable as error:
        raise GannetError(f"{path} cannot be read ({error}).") from None
    if not np.isfinite(array).all():
        raise GannetError(f"{path} holds NaN or infinite values.")
    if array.min() < 0 or array.max() > 1:
        raise GannetError(f"{path} holds values in [{array.min():.3g}, {array.max():.3g}]; expected pixels in [0, 1].")
    return torch.from_numpy(array).float()


def _npz_header(npz: np.lib.npyio.NpzFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """An .npz member's shape and dtype from its header, without reading its data."""
    member = name if name in npz.zip.namelist() else f"{name}.npy"
    with npz.zip.open(member) as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return shape, dtype


def _check_samples_shape(path: Path, shape: tuple[int, ...], dtype: np.dtype, data_dim: int) -> None:
    if len(shape) != 2 or shape[1] != data_dim:
        raise GannetError(f"{path} holds an array of shape {shape}; expected (N, {data_dim}).")
    if shape[0] == 0:
        raise GannetError(f"{path} holds no samples (an array of 0 rows).")
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise GannetError(f"{path} holds {dtype} values; expected real numbers in [0, 1].")
    # the array as float64 to check it, then float32
    check_fits(f"{path}'s {shape[0]:,} samples", math.prod(shape) * (dtype.itemsize + 8 + 4), "give fewer samples")
