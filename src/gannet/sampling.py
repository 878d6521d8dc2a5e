"""Drawing samples from a trained generator."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from gannet import checkpoints
from gannet.config import TrainConfig
from gannet.data import data_shape, dataset_for
from gannet.errors import GannetError
from gannet.images import save_samples_picture
from gannet.networks import Generator, build_networks
from gannet.noise import num_classes, sample_codes


def load_generator(source: str | os.PathLike, device: str = "cpu") -> tuple[Generator, TrainConfig, Path]:
    """The generator of a run directory's newest checkpoint, or of a .safetensors file."""
    tensors, metadata, path = checkpoints.load_weights(source)
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
    classes = num_classes(config)
    if label is not None and not classes:
        raise GannetError("--label needs a conditional model (trained with --conditional); this one is not.")
    asked = torch.as_tensor(label) if label is not None else None
    if asked is not None and not (asked.min() >= 0 and asked.max() < classes):
        raise GannetError(f"--label must be a class from 0 to {classes - 1}, not {label}.")
    rng = torch.Generator().manual_seed(seed)  # z drawn on the CPU: a seed means the same z on every device
    chunks = []
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        labels = label[start : start + size] if isinstance(label, torch.Tensor) else label
        z = sample_codes(config, size, "cpu", rng, labels).to(device)
        chunks.append(generator(z))
    return torch.cat(chunks) if chunks else torch.empty(0, generator.data_dim)


def write_samples(
    samples: torch.Tensor, config: TrainConfig, png: Path | None, npy: Path | None, data_dir: str | None = None
) -> None:
    """Save samples as a picture (a grid of images; 1-D and 2-D toys drawn over their data)
    and/or a .npy array."""
    shape = data_shape(config)
    if png is not None:
        data = None if len(shape) == 3 else dataset_for(dataclasses.replace(config, data_dir=data_dir)).train
        save_samples_picture(samples, shape, png, data)
    if npy is not None:
        Path(npy).parent.mkdir(parents=True, exist_ok=True)
        np.save(npy, samples.cpu().numpy().astype(np.float32))


def load_samples_file(path: str | os.PathLike, data_dim: int) -> torch.Tensor:
    """Samples made anywhere: an (N, data_dim) float array in [0, 1] from a .npy, or the
    first (or 'samples') array of a .npz. Anything else is one clear GannetError."""
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)  # no pickles: a file cannot run code
    except FileNotFoundError:
        raise GannetError(f"No samples file at {path}.") from None
    except (ValueError, OSError, EOFError) as error:
        raise GannetError(f"{path} is not a readable .npy or .npz array file ({error}).") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            if not loaded.files:
                raise GannetError(f"{path} holds no array.")
            loaded = loaded["samples"] if "samples" in loaded.files else loaded[loaded.files[0]]
    array = np.asarray(loaded)
    if array.ndim != 2 or array.shape[1] != data_dim:
        raise GannetError(f"{path} holds an array of shape {array.shape}; expected (N, {data_dim}).")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise GannetError(f"{path} holds {array.dtype} values; expected real numbers in [0, 1].")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise GannetError(f"{path} holds NaN or infinite values.")
    if array.min() < 0 or array.max() > 1:
        raise GannetError(f"{path} holds values in [{array.min():.3g}, {array.max():.3g}]; expected pixels in [0, 1].")
    return torch.from_numpy(array).float()
