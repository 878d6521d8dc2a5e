"""The noise prior p_z."""

from __future__ import annotations

import math

import torch

SQRT3 = math.sqrt(3.0)


def sample_noise(
    prior: str,
    n: int,
    dim: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """n vectors z ~ p_z, shape (n, dim). uniform-sqrt3 is U(−√3, √3), the 2014 code's prior:
    zero mean, unit variance, like the Gaussian."""
    if prior == "gaussian":
        return torch.randn(n, dim, device=device, generator=generator)
    u = torch.rand(n, dim, device=device, generator=generator)  # U(0, 1)
    half_width = SQRT3 if prior == "uniform-sqrt3" else 1.0
    return (2 * u - 1) * half_width
