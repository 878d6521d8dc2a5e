"""Which pixels a model of every conditional p(x_S | x_not S) is shown (the paper's section 7).

A mask is a (N, C·H·W) float tensor over flattened images: 1 where a pixel is observed, 0 where
it is hidden (in S) and G draws it; a pixel's channels are hidden together. Training draws
each row's mask from one of MASK_FAMILIES, chosen uniformly:

- random: each pixel hidden independently, at a rate drawn uniformly from (0, 1) per image
  (the Multi-Prediction DBM's masks);
- rectangle: one rectangle hidden, each side from a quarter to under three quarters of the
  image's (7 to 20 pixels on MNIST);
- half: the top, bottom, left or right half hidden;
- quadrant: one of the four quadrants hidden;
- all: every pixel hidden, so that the same G is also an unconditional generator (`gannet
  sample` and every evaluation draw it so).

Every draw is a tensor operation on the device (no Python randomness), from one torch.Generator.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from gannet.errors import GannetError

MASK_FAMILIES = ("random", "rectangle", "half", "quadrant", "all")
# the masks `gannet complete --mask` names, beside a PNG file of the image's size
MASK_NAMES = ("top-half", "bottom-half", "left-half", "right-half", "square:N", "random:RATE", "FILE.png")


def draw_masks(
    n: int,
    shape: tuple[int, int, int],
    device: torch.device | str = "cpu",
    rng: torch.Generator | None = None,
    family: str | None = None,
) -> torch.Tensor:
    """n masks for images of `shape` (C, H, W), each from a uniformly chosen family (or all from
    `family`, one of MASK_FAMILIES): (n, C·H·W)."""
    channels, height, width = shape
    rows = torch.arange(height, device=device).view(1, height, 1)  # (1, H, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)  # (1, 1, W)

    def uniform(*size: int) -> torch.Tensor:
        return torch.rand(*size, device=device, generator=rng)

    chosen_family = (uniform(n) * len(MASK_FAMILIES)).long().clamp(max=len(MASK_FAMILIES) - 1).view(n, 1, 1)
    if family is not None:  # the same draws as ever, then one family for every row
        chosen_family = torch.full_like(chosen_family, MASK_FAMILIES.index(family))
    # random: each pixel hidden at the image's rate
    hidden_random = uniform(n, height, width) < uniform(n, 1, 1)
    # rectangle: sides from 1/4 to 3/4 of the image's, anywhere inside it
    h = (height * (0.25 + 0.5 * uniform(n, 1, 1))).long()
    w = (width * (0.25 + 0.5 * uniform(n, 1, 1))).long()
    top, left = ((height - h + 1) * uniform(n, 1, 1)).long(), ((width - w + 1) * uniform(n, 1, 1)).long()
    hidden_rectangle = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
    # half: 0 top, 1 bottom, 2 left, 3 right
    side = (uniform(n, 1, 1) * 4).long().clamp(max=3)
    upper, leftmost = rows < height // 2, cols < width // 2
    hidden_half = torch.where(side < 2, upper == (side == 0), leftmost == (side == 2))
    # quadrant: the vertical and the horizontal half it lies in
    vertical, horizontal = uniform(n, 1, 1) < 0.5, uniform(n, 1, 1) < 0.5
    hidden_quadrant = (upper == vertical) & (leftmost == horizontal)
    hidden = torch.stack(
        [hidden_random, hidden_rectangle, hidden_half, hidden_quadrant, torch.ones_like(hidden_random)]
    )  # (families, n, H, W)
    chosen = hidden.gather(0, chosen_family.unsqueeze(0).expand(1, n, height, width))[0]  # (n, H, W)
    return (~chosen).float().unsqueeze(1).expand(n, channels, height, width).reshape(n, -1)


def named_mask(spec: str, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """One mask (C·H·W,) from `gannet complete --mask`: top-half, bottom-half, left-half,
    right-half, square:N (an N×N square hidden in the middle), random:RATE (each pixel hidden
    with probability RATE, from `seed`), or a PNG file of the image's size (dark or transparent =
    hidden). A mask that hides nothing is refused."""
    channels, height, width = shape
    rows, cols = torch.arange(height).view(height, 1), torch.arange(width).view(1, width)
    halves = {
        "top-half": rows < height // 2,
        "bottom-half": rows >= height // 2,
        "left-half": cols < width // 2,
        "right-half": cols >= width // 2,
    }
    kind, _, value = spec.partition(":")
    if spec in halves:
        hidden = halves[spec].expand(height, width)
    elif kind == "square" and value:
        side = int(value) if value.isascii() and value.isdigit() else 0
        if not 1 <= side <= min(height, width):
            raise GannetError(f"--mask square:N hides an N×N square: N from 1 to {min(height, width)}, not {value}.")
        top, left = (height - side) // 2, (width - side) // 2
        hidden = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    elif kind == "random" and value:
        rate = _number(value)
        if not 0 < rate <= 1:
            raise GannetError(f"--mask random:RATE hides each pixel with probability RATE in (0, 1], not {value}.")
        hidden = torch.rand(height, width, generator=torch.Generator().manual_seed(seed)) < rate
    elif spec.lower().endswith(".png"):
        hidden = _mask_file(Path(spec).expanduser(), height, width)
    else:
        raise GannetError(f"--mask takes {', '.join(MASK_NAMES)}; not {spec!r}.")
    if not hidden.any():
        raise GannetError(f"--mask {spec} hides no pixel of these {width}×{height} images: nothing to complete.")
    return (~hidden).float().expand(channels, height, width).reshape(-1)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _mask_file(path: Path, height: int, width: int) -> torch.Tensor:
    """An image file's dark or transparent pixels (below half intensity or half opacity) as the
    hidden ones. Its size is checked before its pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.size != (width, height):
                    raise GannetError(
                        f"{path} is {image.width}×{image.height}; the model's images are {width}×{height}."
                    )
                grey = np.asarray(image.convert("L"), dtype=np.float32) / 255
                opacity = np.asarray(image.convert("RGBA"), dtype=np.float32)[..., 3] / 255
    except FileNotFoundError:
        raise GannetError(f"No mask file at {path}.") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as error:
        raise GannetError(f"{path} is not a readable image ({error}).") from None
    return torch.from_numpy((grey < 0.5) | (opacity < 0.5))


def hidden_diversity(completions: torch.Tensor, mask: torch.Tensor) -> float:
    """The mean Euclidean distance between two completions of one image over its hidden pixels,
    averaged over every pair: completions (n, D) of one image, mask (D,) (1 = observed)."""
    n = len(completions)
    if n < 2:
        raise GannetError("Diversity compares completions: draw at least 2.")
    hidden = completions[:, mask == 0]  # (n, hidden pixels)
    distances = torch.cdist(hidden.double().unsqueeze(0), hidden.double().unsqueeze(0))[0]  # (n, n)
    return (distances.sum() / (n * (n - 1))).item()
