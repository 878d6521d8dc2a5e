"""Pictures of samples: image grids (Pillow) and 1-D histograms (matplotlib)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gannet.errors import GannetError
from gannet.outputs import check_fits, write_file

MAX_SIDE = 65_535  # pixels per side of a picture: PDF and SVG (matplotlib) allow no more, nor would a viewer
MAX_PLOTTED = 1_000_000  # points in a 1-D histogram or 2-D scatter: beyond it only the drawing time grows


def grid_size(n: int, shape: tuple[int, int, int], ncols: int | None = None, scale: int = 1, pad: int = 2):
    """(width, height) in pixels of the grid `grid_array` tiles n images into, drawn at `scale`."""
    _, h, w = shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    return scale * (ncols * (w + pad) + pad), scale * (nrows * (h + pad) + pad)


def check_grid(asked: str, n: int, shape: tuple[int, int, int], ncols: int | None = None, scale: int = 1) -> None:
    """Refuse a grid picture of n images (`asked`, in the user's words) wider or taller than
    MAX_SIDE pixels, or one whose drawing needs more memory than is available."""
    width, height = grid_size(n, shape, ncols, scale)
    if max(width, height) > MAX_SIDE:
        raise GannetError(
            f"{asked} makes a picture of {width:,} × {height:,} pixels; at most {MAX_SIDE:,} fit in each direction."
        )
    c = shape[0]
    # float32 canvas, its uint8 copy and the picture scaled (RGB at most), besides n images as floats, twice
    check_fits(asked, width * height // scale**2 * c * 5 + width * height * 3 + 8 * n * c * shape[1] * shape[2])


def grid_array(images: torch.Tensor, shape: tuple[int, int, int], ncols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (n, C·H·W) images into one uint8 array (rows, cols[, C]) with a `pad`-pixel grey
    border between cells. Images in [0, 1] are drawn as they are; images in any other range
    (CIFAR-10's contrast-normalised pixels) are drawn each as x / (2·max|x|) + ½, the way the
    2014 code showed them."""
    c, h, w = shape
    n = images.shape[0]
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    cells = images.detach().float().cpu().reshape(n, -1)
    if n and (cells.min() < 0 or cells.max() > 1):
        cells = cells / (2 * cells.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)) + 0.5
    cells = cells.clamp(0, 1).reshape(n, c, h, w).numpy()
    canvas = np.full((c, nrows * (h + pad) + pad, ncols * (w + pad) + pad), 0.5, dtype=np.float32)
    for i, cell in enumerate(cells):
        top, left = pad + (i // ncols) * (h + pad), pad + (i % ncols) * (w + pad)
        canvas[:, top : top + h, left : left + w] = cell
    pixels = np.rint(canvas * 255).astype(np.uint8)
    return pixels[0] if c == 1 else pixels.transpose(1, 2, 0)


def save_grid(
    images: torch.Tensor, shape: tuple[int, int, int], path: Path, ncols: int | None = None, scale: int = 2
) -> Path:
    """Write a grid of images (PNG, PDF or SVG), each pixel drawn as scale × scale."""
    picture = Image.fromarray(grid_array(images, shape, ncols))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return save_picture(picture, path)


def save_picture(picture: Image.Image, path: Path) -> Path:
    """Write a Pillow picture as PNG, or as PDF or SVG through matplotlib (by the suffix)."""
    if Path(path).suffix.lower() not in (".pdf", ".svg"):
        return write_file(path, picture.save)
    plt = pyplot()
    fig = plt.figure(figsize=(picture.width / 150, picture.height / 150))
    fig.figimage(np.asarray(picture), resize=True)
    return save_figure(fig, path, dpi=150)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, **savefig_options) -> Path:
    """Write a matplotlib figure (type from the suffix), creating folders, then free it."""
    try:
        return write_file(path, lambda tmp: fig.savefig(tmp, **savefig_options))
    finally:
        pyplot().close(fig)


def save_histogram(
    samples: torch.Tensor,
    data: torch.Tensor,
    path: Path,
    discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    title: str = "",
) -> Path:
    """1-D samples against the data: both histograms as densities, and D(x) when given."""
    plt = pyplot()

    x_s, x_d = samples.detach().cpu().flatten().numpy(), data.cpu().flatten().numpy()
    lo = float(min(np.percentile(x_d, 0.1), np.percentile(x_s, 0.5))) - 0.5
    hi = float(max(np.percentile(x_d, 99.9), np.percentile(x_s, 99.5))) + 0.5
    bins = np.linspace(lo, hi, 80)
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.hist(x_d, bins=bins, density=True, color="black", alpha=0.35, label="data")
    ax.hist(x_s, bins=bins, density=True, histtype="step", color="green", lw=2, label="G(z)")
    if discriminator is not None:
        grid = torch.linspace(lo, hi, 400).unsqueeze(1)
        device = next(discriminator.parameters()).device if isinstance(discriminator, torch.nn.Module) else "cpu"
        with torch.no_grad():
            d = torch.sigmoid(discriminator(grid.to(device))).cpu().numpy()
        ax2 = ax.twinx()
        ax2.plot(grid.numpy()[:, 0], d, "b--", label="D(x)")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("D(x)")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def save_scatter(samples: torch.Tensor, data: torch.Tensor, path: Path, title: str = "") -> Path:
    """2-D samples (green) over the data (black)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.scatter(*data[:5000].cpu().numpy().T, s=2, c="black", alpha=0.3, label="data")
    ax.scatter(*samples.detach().cpu().numpy().T, s=2, c="green", alpha=0.5, label="G(z)")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8, markerscale=4)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def save_samples_picture(
    samples: torch.Tensor,
    shape: tuple[int, ...],
    path: Path,
    data: torch.Tensor | None = None,
    discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    title: str = "",
) -> Path:
    """The picture that suits the data: a grid of images, a 1-D histogram, or a 2-D scatter
    (the last two drawn over `data`)."""
    if len(shape) == 3:
        return save_grid(samples, shape, path)
    if shape == (2,):
        return save_scatter(samples, data, path, title)
    return save_histogram(samples, data, path, discriminator=discriminator, title=title)
