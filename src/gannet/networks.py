"""The two players: an MLP generator G(z) and a maxout discriminator D(x) (PAPER.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gannet.config import TrainConfig


class Maxout(nn.Module):
    """h_i = max_j (x·W_ij + b_ij): `units` outputs, each the max of `pieces` affine maps.

    Unit i's pieces are columns i·pieces … i·pieces + pieces − 1 of one Linear layer, the
    layout of pylearn2's Maxout, so weights carry over column for column.
    """

    def __init__(self, in_features: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)  # (B, units * pieces)
        return z.view(*z.shape[:-1], self.units, self.pieces).amax(dim=-1)  # (B, units)


class Generator(nn.Module):
    """G(z): ReLU hidden layers, then a sigmoid (pixels in [0, 1]) or linear output."""

    def __init__(self, latent_dim: int, hidden: list[int], data_dim: int, output: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(width, data_dim)
        self.sigmoid_output = output == "sigmoid"
        self.latent_dim, self.data_dim = latent_dim, data_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = self.output(self.hidden(z))  # (B, data_dim)
        return torch.sigmoid(a) if self.sigmoid_output else a


class Discriminator(nn.Module):
    """D(x) as a logit: maxout layers with dropout on the input and on each hidden layer.

    Dropout is inverted (kept units scaled by 1/keep: 1.25 on the input and 2 on hidden
    layers for the paper's 0.8 and 0.5), so evaluation needs no rescaling, as in pylearn2.
    """

    def __init__(self, data_dim: int, hidden: list[int], pieces: int, input_keep: float, hidden_keep: float) -> None:
        super().__init__()
        widths = [data_dim, *hidden]
        self.hidden = nn.ModuleList(Maxout(a, b, pieces) for a, b in zip(widths, hidden))
        self.output = nn.Linear(widths[-1], 1)
        self.input_keep, self.hidden_keep = input_keep, hidden_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.dropout(x, 1 - self.input_keep, self.training)
        for layer in self.hidden:
            h = F.dropout(layer(h), 1 - self.hidden_keep, self.training)
        return self.output(h).squeeze(-1)  # (B,) logits; D(x) = sigmoid(logit)


def init_uniform(module: nn.Module, r: float) -> None:
    """Weights uniform on (−r, r), biases zero: pylearn2's `irange` initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -r, r)
            nn.init.zeros_(m.bias)


def marginal_logits(train: torch.Tensor) -> torch.Tensor:
    """logit of each pixel's mean, clipped to [1e-7, 1 − 1e-7] as pylearn2 did: with it as the
    output bias, a G that ignores z already draws the data's average image."""
    mean = train.double().mean(dim=0).clamp(1e-7, 1 - 1e-7)
    return torch.logit(mean).float()


def build_networks(
    config: TrainConfig, data_dim: int, train: torch.Tensor | None = None
) -> tuple[Generator, Discriminator]:
    """Both players, initialised as the paper's code did (uses the torch RNG)."""
    generator = Generator(config.latent_dim, config.generator_hidden, data_dim, config.generator_output)
    discriminator = Discriminator(
        data_dim, config.discriminator_hidden, config.maxout_pieces, config.input_keep, config.hidden_keep
    )
    init_uniform(generator, config.generator_init)
    init_uniform(discriminator, config.discriminator_init)
    if config.generator_bias_from_data and train is not None:
        with torch.no_grad():
            generator.output.bias.copy_(marginal_logits(train))
    return generator, discriminator
