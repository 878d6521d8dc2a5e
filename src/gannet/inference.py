"""Learned approximate inference (paper §7): for a trained G, an encoder E(x) ≈ z trained by
regressing the z that produced G(z), on fresh noise every step (`infer`, `gannet infer RUN_DIR`).

E mirrors G: an MLP with ReLU hidden layers of G's widths, reversed, and a linear output.
With it, real images get codes: x → E(x) → G(E(x)) reconstructs them, and straight lines
between E(x₁) and E(x₂) interpolate between two real images.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from gannet import pretrained
from gannet.checkpoints import result_path
from gannet.config import TrainConfig
from gannet.data import data_shape
from gannet.errors import GannetError
from gannet.images import save_grid
from gannet.networks import Generator
from gannet.noise import sample_noise
from gannet.outputs import check_count, check_folder, check_seed, write_file, write_json
from gannet.sampling import checkpoint_dataset, load_generator

MAX_STEPS = 1_000_000  # bounds a mistyped count: at batch 100, a million steps show E 100 million images


def make_encoder(config: TrainConfig, data_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = data_dim
    for h in reversed(config.generator_hidden):
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, config.latent_dim))


def load_encoder(path: str | os.PathLike, config: TrainConfig, data_dim: int) -> nn.Sequential:
    """The encoder `gannet infer` wrote (encoder.safetensors) for a generator of `config`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    encoder = make_encoder(config, data_dim)
    try:
        encoder.load_state_dict(load_file(str(path)))
    except (OSError, SafetensorError, RuntimeError) as error:
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise GannetError(f"{path} is not an encoder of this run's generator ({detail}).") from None
    return encoder.eval()


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


def infer(
    source: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    steps: int = 2000,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> tuple[dict, Path]:
    """Train E for the generator of `source` (a run directory or checkpoint), then reconstruct
    and interpolate its data set's first test images. Writes reconstructions.png (each of 10
    real images beside G(E(x))), interpolation.png (4 rows of 10), encoder.safetensors and
    inference.json into `output_dir` [RUN_DIR/inference; RUN_DIR/inference-CHECKPOINT for one of its
    checkpoints; ./inference-NAME for a shipped model];
    returns that record and the folder.
    `data_dir`: where the test images are, else where the run found them."""
    check_count("--steps", steps, 100, MAX_STEPS)
    check_seed(seed)
    # a shipped model's folder is the installed package: its E goes to ./inference-NAME instead
    default = result_path(source, "inference") or Path(f"inference-{pretrained.name_of(source)}")
    out = check_folder(output_dir or default, "--output-dir")
    generator, config, path = load_generator(source)
    shape = data_shape(config)
    if len(shape) != 3:
        raise GannetError(f"`gannet infer` reconstructs images; {path} was trained on {config.dataset}.")
    if config.conditional or config.all_conditionals:
        kind = "conditional" if config.conditional else "a model of every conditional (--all-conditionals)"
        raise GannetError(f"`gannet infer` learns E(x) -> z for an unconditional G; {path} is {kind}.")
    # the run's own data set (folder runs included), before the training: data_dir overrides where it lives
    test = checkpoint_dataset(config, data_dir).test[:1000]
    if len(test) < 10:
        raise GannetError(f"`gannet infer` shows 10 test images; {config.dataset} has {len(test)}.")
    encoder, losses = train_encoder(generator, config, steps, seed=seed, progress=progress)
    recon = reconstruct(encoder, generator, test)
    record = {
        "source": str(path),
        "steps": steps,
        "code_mse": code_error(encoder, generator, config),
        "reconstruction_mse": F.mse_loss(recon, test).item(),
        "mean_image_mse": F.mse_loss(test.mean(0).expand(len(test), -1), test).item(),  # a baseline
        "training_loss_every_100": losses,
    }
    pairs = torch.stack([test[:10], recon[:10]], dim=1).reshape(20, -1)  # real above its reconstruction
    save_grid(pairs, shape, out / "reconstructions.png", ncols=2)
    rows = torch.cat([interpolate(encoder, generator, test[2 * i], test[2 * i + 1], 10) for i in range(4)])
    save_grid(rows, shape, out / "interpolation.png", ncols=10)
    weights = {k: v.contiguous() for k, v in encoder.state_dict().items()}
    write_file(out / "encoder.safetensors", lambda tmp: save_file(weights, str(tmp)))
    write_json(out / "inference.json", record)
    return record, out
