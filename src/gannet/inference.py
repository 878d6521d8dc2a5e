"""Learned approximate inference (paper §7): for a trained G, an encoder E(x) ≈ z trained by
regressing the z that produced G(z), on fresh noise every step (`gannet infer RUN_DIR`).

E mirrors G: an MLP with ReLU hidden layers of G's widths, reversed, and a linear output.
With it, real images get codes: x → E(x) → G(E(x)) reconstructs them, and straight lines
between E(x₁) and E(x₂) interpolate between two real images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gannet.config import TrainConfig
from gannet.networks import Generator
from gannet.noise import sample_noise

MAX_STEPS = 1_000_000  # bounds a mistyped count: at batch 100, a million steps show E 100 million images


def make_encoder(config: TrainConfig, data_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = data_dim
    for h in reversed(config.generator_hidden):
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, config.latent_dim))


def train_encoder(
    generator: Generator,
    config: TrainConfig,
    steps: int = 2000,
    batch: int = 100,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool | None = None,
) -> tuple[nn.Sequential, list[float]]:
    """E minimising mean ‖E(G(z)) − z‖² over fresh z ~ p_z; returns E and the loss every 100 steps."""
    torch.manual_seed(seed)
    generator.eval().requires_grad_(False)
    encoder = make_encoder(config, generator.data_dim)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    losses, running = [], 0.0
    for step in tqdm(
        range(steps), desc="inference net", unit="step", disable=None if progress is None else not progress
    ):
        z = sample_noise(config.noise, batch, config.latent_dim)
        with torch.no_grad():
            x = generator(z)  # (B, data_dim)
        loss = F.mse_loss(encoder(x), z)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += loss.item()
        if (step + 1) % 100 == 0:
            losses.append(running / 100)
            running = 0.0
    return encoder.eval(), losses


@torch.no_grad()
def code_error(encoder: nn.Module, generator: Generator, config: TrainConfig, n: int = 2000, seed: int = 1) -> float:
    """Mean squared error of E(G(z)) against z, per coordinate, on fresh noise (z has unit variance
    under the paper's prior, so 1.0 is the error of always answering 0)."""
    z = sample_noise(config.noise, n, config.latent_dim, generator=torch.Generator().manual_seed(seed))
    return F.mse_loss(encoder(generator(z)), z).item()


@torch.no_grad()
def reconstruct(encoder: nn.Module, generator: Generator, x: torch.Tensor) -> torch.Tensor:
    return generator(encoder(x))


@torch.no_grad()
def interpolate(encoder: nn.Module, generator: Generator, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """G along the straight line from E(a) to E(b): (steps, data_dim)."""
    za, zb = encoder(a[None]), encoder(b[None])
    t = torch.linspace(0, 1, steps)[:, None]
    return generator((1 - t) * za + t * zb)
