"""The toys, drawn once from a fixed seed: Figure 1's 1-D Gaussian and the 2-D mixtures of
the mode-collapse benchmarks."""

from __future__ import annotations

import math

import torch

from gannet.data.store import Dataset

TOY1D_MEAN, TOY1D_STD = 2.0, 0.5  # away from 0, where G starts, so the game has work to do
TOY1D_SIZES = {"train": 10_000, "valid": 1_000, "test": 1_000}


def toy1d() -> Dataset:
    """Figure 1's data: x ~ N(2, 0.5²), drawn once from a fixed seed (the same data set for
    every run, as a real data set would be)."""
    rng = torch.Generator().manual_seed(20140610)
    splits = {k: TOY1D_MEAN + TOY1D_STD * torch.randn(n, 1, generator=rng) for k, n in TOY1D_SIZES.items()}
    return Dataset(name="toy1d", shape=(1,), **splits)


TOY2D_SIZES = {"train": 20_000, "valid": 2_000, "test": 2_000}


def toy2d_modes(name: str) -> tuple[torch.Tensor, float]:
    """(modes (K, 2), standard deviation) of ring8 (8 Gaussians on a circle of radius 2, std 0.02)
    or grid25 (a 5×5 grid of Gaussians at −4, −2, …, 4, std 0.05), the usual settings."""
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([2 * angles.cos(), 2 * angles.sin()], dim=1).float(), 0.02
    ticks = torch.arange(-4.0, 5.0, 2.0)
    return torch.cartesian_prod(ticks, ticks), 0.05


def toy2d(name: str) -> Dataset:
    """Equal mixtures of isotropic Gaussians, drawn once from a fixed seed; labels = mode index."""
    modes, std = toy2d_modes(name)
    rng = torch.Generator().manual_seed(20140610)
    splits, labels = {}, {}
    for split, n in TOY2D_SIZES.items():
        which = torch.randint(len(modes), (n,), generator=rng)
        splits[split] = modes[which] + std * torch.randn(n, 2, generator=rng)
        labels[split] = which
    return Dataset(name=name, shape=(2,), labels=labels, **splits)
