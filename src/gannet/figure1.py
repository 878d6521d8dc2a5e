"""Figure 1 of the paper: the 1-D game, in four panels.

(a) near convergence: p_g is close to p_data and D is a partially accurate classifier;
(b) after the inner loop has trained D (G fixed): D approaches D* = p_data / (p_data + p_g);
(c) after updates of G (D fixed): D's gradient has moved G(z) towards regions classified as data;
(d) after playing on: p_g = p_data and D(x) = 1/2 everywhere.

Each panel: data density (black dots), the generator's density estimated from samples (green),
D(x) (blue, dashed), and below them lines from a uniform z-axis to x = G(z).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gannet import checkpoints, images
from gannet.config import TrainConfig
from gannet.data import TOY1D_MEAN, TOY1D_STD, Dataset, toy1d
from gannet.errors import GannetError
from gannet.game import Players, alternating_step, discriminator_step, generator_step, make_players
from gannet.images import pyplot
from gannet.noise import sample_noise
from gannet.outputs import write_file
from gannet.presets import preset_config

PANELS = {
    "a": "(a) near convergence",
    "b": "(b) after training D",
    "c": "(c) after updating G",
    "d": "(d) at the optimum",
}
ARROWS = 25  # z → G(z) lines drawn per panel


@dataclass
class Schedule:
    """Iterations of each phase (the toy's batch is 100)."""

    warmup: int = 500  # alternating iterations before panel (a)
    d_steps: int = 1500  # D alone, G fixed: panel (b)
    d_batch: int = 500  # larger batches for that phase: D gets close to D* rather than to noise
    g_steps: int = 10  # G alone, D fixed: panel (c)
    g_lr: float = 0.002  # plain SGD there: Adam's stale second moments turn D's steep edge into a leap
    settle: int = 3000  # the game played on: panel (d)
    frame_every: int = 25  # iterations between GIF frames


def kde(points: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density estimate with Scott's bandwidth."""
    h = 1.06 * points.std() * len(points) ** (-1 / 5)
    z = (grid[:, None] - points[None, :]) / h
    return np.exp(-0.5 * z * z).mean(axis=1) / (h * math.sqrt(2 * math.pi))


def data_density(grid: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * ((grid - TOY1D_MEAN) / TOY1D_STD) ** 2) / (TOY1D_STD * math.sqrt(2 * math.pi))


@dataclass
class Snapshot:
    """What one panel or frame draws: G's samples and D on a grid."""

    grid: np.ndarray
    d: np.ndarray
    z: np.ndarray
    x: np.ndarray  # G(z) for the samples z (sorted by z)
    label: str


X_RANGE = (TOY1D_MEAN - 4 * TOY1D_STD - 1.5, TOY1D_MEAN + 4 * TOY1D_STD + 1.0)


@torch.no_grad()
def snapshot(players: Players, prior: str, label: str, n: int = 4000) -> Snapshot:
    G, D = players.generator.eval(), players.discriminator.eval()
    z = sample_noise(prior, n, 1, generator=torch.Generator().manual_seed(0)).sort(dim=0).values
    grid = np.linspace(*X_RANGE, 400)
    d = torch.sigmoid(D(torch.from_numpy(grid).float()[:, None])).numpy()
    x = G(z).numpy()[:, 0]
    G.train()
    D.train()
    return Snapshot(grid, d, z.numpy()[:, 0], x, label)


def draw(ax, shot: Snapshot, z_range: tuple[float, float], with_optimum: bool = False) -> None:
    """One panel in the paper's style; `with_optimum` adds D* = p_data / (p_data + p_g)."""
    grid = shot.grid
    p_data, p_g = data_density(grid), kde(shot.x, grid)
    scale = 1.0 / max(p_data.max(), p_g.max())  # the taller density peaks at height 1
    ax.plot(grid[::5], p_data[::5] * scale, "k.", ms=3, label="data")
    ax.plot(grid, p_g * scale, "g-", lw=1.5, label="p_g")
    ax.plot(grid, shot.d, "b--", lw=1.5, label="D(x)")
    if with_optimum:
        ax.plot(grid, p_data / (p_data + p_g + 1e-12), color="b", lw=0.6, alpha=0.6, label="D*(x)")
    lo, hi = X_RANGE
    z_lo, z_hi = z_range
    y_z, y_x = -0.55, -0.15  # the z-axis below, the x-axis above it
    ax.hlines([y_z, y_x], lo, hi, color="k", lw=1)
    chosen = np.linspace(0, len(shot.z) - 1, ARROWS).astype(int)
    for i in chosen:
        zx = lo + (shot.z[i] - z_lo) / (z_hi - z_lo) * (hi - lo)  # z drawn across the whole axis
        ax.annotate(
            "",
            xy=(np.clip(shot.x[i], lo, hi), y_x),
            xytext=(zx, y_z),
            arrowprops={"arrowstyle": "->", "lw": 0.6, "color": "0.3"},
        )
    ax.text(lo, y_z - 0.08, "z", va="top", fontsize=8)
    ax.text(lo, y_x + 0.03, "x", va="bottom", fontsize=8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.7, 1.3)
    ax.set_yticks([])
    ax.set_title(shot.label, fontsize=9)


def batches(data: Dataset, size: int, rng: torch.Generator):
    while True:
        yield data.train[torch.randint(len(data.train), (size,), generator=rng)]


def play(
    players: Players,
    config: TrainConfig,
    data: Dataset,
    schedule: Schedule,
    on_frame=None,
    progress: bool | None = False,
) -> dict[str, Snapshot]:
    """Run the four phases; return the panels' snapshots. `on_frame(snapshot)` gets GIF frames;
    `progress`: a bar over all the phases' iterations (None: on a terminal)."""
    total = schedule.warmup + schedule.d_steps + schedule.g_steps + schedule.settle
    with tqdm(total=total, desc="figure 1", unit="it", disable=None if progress is None else not progress) as bar:
        rng = torch.Generator().manual_seed(config.seed)
        draw_x = batches(data, config.batch_size, rng)
        m, prior = config.batch_size, config.noise

        def noise():
            return sample_noise(prior, m, config.latent_dim)

        def phase(iterations: int, step, label: str) -> None:
            bar.set_postfix_str(label)
            for i in range(iterations):
                step()
                bar.update()
                if on_frame is not None and i % schedule.frame_every == 0:
                    on_frame(snapshot(players, prior, label, n=1500))

        shots = {}
        phase(schedule.warmup, lambda: alternating_step(players, [next(draw_x)], [noise(), noise()]), "training")
        shots["a"] = snapshot(players, prior, PANELS["a"])
        big_x = batches(data, schedule.d_batch, rng)
        phase(
            schedule.d_steps,
            lambda: discriminator_step(players, next(big_x), sample_noise(prior, schedule.d_batch, config.latent_dim)),
            "training D (G fixed)",
        )
        shots["b"] = snapshot(players, prior, PANELS["b"])
        sgd = torch.optim.SGD(players.generator.parameters(), lr=schedule.g_lr)
        plain = dataclasses.replace(
            players, optimizer_g=sgd, scheduler_g=torch.optim.lr_scheduler.LambdaLR(sgd, lambda n: 1)
        )
        phase(schedule.g_steps, lambda: generator_step(plain, noise()), "updating G (D fixed)")
        shots["c"] = snapshot(players, prior, PANELS["c"])
        phase(schedule.settle, lambda: alternating_step(players, [next(draw_x)], [noise(), noise()]), "training")
        shots["d"] = snapshot(players, prior, PANELS["d"])
        return shots


def toy_players(run_dir: str | os.PathLike | None, seed: int) -> tuple[Players, TrainConfig]:
    """Fresh toy players (preset toy1d), or those of a toy1d run directory's newest checkpoint."""
    config = preset_config("toy1d", seed=seed)
    if run_dir is not None:
        tensors, metadata, path = checkpoints.load_weights(run_dir)
        config = checkpoints.checkpoint_config(metadata, path)
        if config.dataset != "toy1d" or config.latent_dim != 1:
            raise GannetError(f"Figure 1 needs a toy1d run; {path} was trained on {config.dataset}.")
    torch.manual_seed(config.seed)
    players = make_players(config, toy1d(), torch.device("cpu"))
    if run_dir is not None:
        weights_g, weights_d = checkpoints.split_weights(tensors)
        try:
            players.generator.load_state_dict(weights_g)
            players.discriminator.load_state_dict(weights_d)
        except RuntimeError:
            raise GannetError(f"{path} is a damaged gannet checkpoint: its weights do not fit its config.") from None
    return players, config


def figure1(
    path: Path,
    run_dir: str | os.PathLike | None = None,
    gif: Path | None = None,
    seed: int = 0,
    schedule: Schedule | None = None,
    progress: bool | None = None,
) -> tuple[Path, dict[str, Snapshot]]:
    """Write Figure 1 to `path` (and the whole game as an animated GIF to `gif`); `progress`:
    a bar over the game's iterations (None: on a terminal)."""
    schedule = schedule or Schedule()
    players, config = toy_players(run_dir, seed)
    if run_dir is not None:
        schedule = dataclasses.replace(schedule, warmup=0)  # the run's checkpoint is panel (a)
    z_range = (-math.sqrt(3), math.sqrt(3)) if config.noise == "uniform-sqrt3" else (-1.0, 1.0)
    if config.noise == "gaussian":
        z_range = (-3.0, 3.0)
    frames: list[np.ndarray] = []
    on_frame = (lambda shot: frames.append(render(shot, z_range))) if gif else None
    shots = play(players, config, toy1d(), schedule, on_frame, progress)
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    for ax, key in zip(axes, PANELS):
        draw(ax, shots[key], z_range, with_optimum=key == "b")
    axes[1].legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    images.save_figure(fig, path, dpi=150, bbox_inches="tight")  # as figures.py's
    if gif:
        save_gif(frames, gif)
    return Path(path), shots


def render(shot: Snapshot, z_range: tuple[float, float]) -> np.ndarray:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=80)
    draw(ax, shot, z_range)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def save_gif(frames: list[np.ndarray], path: Path, ms_per_frame: int = 80) -> Path:
    from PIL import Image

    pictures = [Image.fromarray(f) for f in frames]
    return write_file(
        path,
        lambda tmp: pictures[0].save(tmp, save_all=True, append_images=pictures[1:], duration=ms_per_frame, loop=0),
    )
