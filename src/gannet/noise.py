"""The noise prior p_z."""

from __future__ import annotations

import math

import torch

SQRT3 = math.sqrt(3.0)
# p_z: uniform on (−√3, √3) (the 2014 code's), uniform on (−1, 1), a standard Gaussian
NOISE_PRIORS = ("uniform-sqrt3", "uniform", "gaussian")


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


def sample_codes(
    config,
    n: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    labels: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """G's input for n samples: z ~ p_z, shape (n, latent_dim); for a conditional model z
    followed by the one-hot class label, shape (n, latent_dim + classes); for an
    --all-conditionals model z followed by an empty observation (masked_codes, nothing observed). Labels are drawn
    uniformly (from `generator` after z) unless given: one int for all, or an (n,) tensor."""
    z = sample_noise(config.noise, n, config.latent_dim, device, generator)
    if getattr(config, "all_conditionals", False):  # nothing observed: G draws whole images
        return masked_codes(z, z.new_zeros(n, pixels(config)), z.new_zeros(n, pixels(config)))
    classes = num_classes(config)
    if not classes:
        return z
    if labels is None:
        labels = torch.randint(classes, (n,), device=device, generator=generator)
    return append_labels(z, torch.as_tensor(labels, device=device).expand(n), classes)


def append_labels(x: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Each row of x followed by its label, one-hot: (n, d) -> (n, d + classes). How a
    conditional model's labels travel: after z into G, after each example into D."""
    return torch.cat([x, torch.nn.functional.one_hot(labels, classes).to(x.dtype)], dim=1)


def masked_codes(z: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """An --all-conditionals G's input: z, the observed pixels (hidden ones zeroed), the mask
    (1 = observed): (n, latent_dim + 2 · pixels). Its last `pixels` entries, the mask, D sees too."""
    return torch.cat([z, torch.where(mask.bool(), x, 0), mask], dim=1)  # NaN in a hidden pixel stays out


def pixels(config) -> int:
    """Values in one example (C·H·W for images)."""
    from gannet.data import data_shape

    return math.prod(data_shape(config))


def num_classes(config) -> int:
    """Classes a model is conditioned on: 0 for an unconditional one."""
    from gannet.data import NUM_CLASSES

    return NUM_CLASSES.get(config.dataset, 0) if config.conditional else 0
