"""Filling in hidden pixels: `gannet complete` with an --all-conditionals model, and the measures
of how well it does beside two baselines (docs/evaluations.md).

complete() draws, for each real image and one mask, n completions G(z, x·m, m) from a seed.
The baselines complete the same images under the same masks: `mean_fill` puts the training
set's mean image in the hidden pixels; `best_match` finds, by gradient descent on z, the
unconditional generator's image nearest the observed pixels (one per random start).
"""

from __future__ import annotations

import re

import torch
from tqdm import trange

from gannet.config import TrainConfig
from gannet.data import Dataset
from gannet.errors import GannetError
from gannet.masks import hidden_diversity
from gannet.networks import Generator
from gannet.noise import masked_codes, sample_codes, sample_noise
from gannet.outputs import check_seed

SPLITS = ("train", "valid", "test")
SHADE = (0.15, 0.45)  # a hidden pixel, beside its completions: a checkerboard, unlike digits and borders


def select_images(spec: str, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """`--images test:0-9` (also 'valid:3', 'train:0,5,9'): (images (N, D), their labels or
    None, the indices)."""
    match = re.fullmatch(r"(train|valid|test):([0-9,\-]+)", spec)
    if not match:
        raise GannetError(
            f"--images takes SPLIT:INDICES, e.g. test:0-9 or valid:3,7 (SPLIT one of train, valid, test), not {spec!r}."
        )
    split, text = match[1], match[2]
    images = getattr(dataset, split)
    spans = []
    for part in text.split(","):
        bounds = part.split("-")
        if not all(b.isdigit() for b in bounds) or len(bounds) > 2 or int(bounds[0]) > int(bounds[-1]):
            raise GannetError(f"--images: {part!r} is not an index or a range FIRST-LAST.")
        spans.append((int(bounds[0]), int(bounds[-1])))
    last = max(end for _, end in spans)  # checked before any list is built: test:0-99999999 is one sentence
    if last >= len(images):
        raise GannetError(f"--images: {split} has {len(images):,} images (0 to {len(images) - 1:,}), not {last:,}.")
    indices = [i for first, end in spans for i in range(first, end + 1)]
    if len(indices) > 1000:
        raise GannetError(f"--images names {len(indices):,} images; a picture takes at most 1,000 rows.")
    labels = dataset.labels.get(split)
    chosen = torch.tensor(indices)
    return images[chosen], (labels[chosen] if labels is not None else None), indices


def check_completes(generator: Generator, source: object) -> None:
    if not generator.masked:
        raise GannetError(
            f"{source} draws whole images; completing a masked image needs a model trained with --all-conditionals."
        )


@torch.no_grad()
def complete(
    generator: Generator, config: TrainConfig, images: torch.Tensor, masks: torch.Tensor, n: int, seed: int = 0
) -> torch.Tensor:
    """n completions of each image under its mask (masks (D,) for all, or (N, D); 1 = observed):
    (N, n, D), the observed pixels the images' own. z is drawn on the CPU from `seed`."""
    check_seed(seed)
    if n < 1:
        raise GannetError(f"-n must be at least 1, not {n}.")
    count, width = images.shape
    masks = masks.expand(count, width)
    z = sample_noise(config.noise, count * n, config.latent_dim, "cpu", torch.Generator().manual_seed(seed))
    device = next(generator.parameters()).device
    codes = masked_codes(z, images.repeat_interleave(n, 0), masks.repeat_interleave(n, 0))  # (N·n, ...)
    filled = torch.cat([generator(chunk.to(device)).cpu() for chunk in codes.split(10_000)])
    return filled.view(count, n, width)


def shown_masked(images: torch.Tensor, masks: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """The images as a user sees them before completion: hidden pixels a grey checkerboard."""
    _, height, width = shape
    squares = (torch.arange(height).view(-1, 1) + torch.arange(width).view(1, -1)) % 2  # (H, W)
    shade = torch.where(squares.bool(), SHADE[1], SHADE[0]).expand(shape).reshape(-1)  # (C·H·W,)
    return torch.where(masks.bool(), images, shade)


def mean_fill(images: torch.Tensor, masks: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """The hidden pixels filled with the training set's mean image: (N, 1, D)."""
    return (images * masks + train.mean(0) * (1 - masks)).unsqueeze(1)


def best_match(
    generator: Generator,
    config: TrainConfig,
    images: torch.Tensor,
    masks: torch.Tensor,
    n: int,
    steps: int = 200,
    seed: int = 0,
    progress: bool | None = None,
) -> torch.Tensor:
    """The unconditional generator's images nearest the observed pixels, one per random start of
    z (Adam on ‖m·(G(z) − x)‖², z kept in p_z's range for the uniform priors), with the
    observed pixels put back: (N, n, D). `progress`: a bar over the steps (None: on a terminal)."""
    count, width = images.shape
    rng = torch.Generator().manual_seed(seed)
    z = sample_codes(config, count * n, "cpu", rng).requires_grad_(True)  # (N·n, latent)
    target, mask = images.repeat_interleave(n, 0), masks.expand(count, width).repeat_interleave(n, 0)
    optimizer = torch.optim.Adam([z], lr=0.05)
    generator.requires_grad_(False)
    limit = {"uniform-sqrt3": 3**0.5, "uniform": 1.0}.get(config.noise)
    try:
        for _ in trange(
            steps, desc="best match", unit="step", leave=False, disable=None if progress is None else not progress
        ):
            loss = ((generator(z) - target) * mask).pow(2).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if limit is not None:
                with torch.no_grad():
                    z.clamp_(-limit, limit)
        with torch.no_grad():
            drawn = generator(z)
    finally:
        generator.requires_grad_(True)
    return (target * mask + drawn * (1 - mask)).view(count, n, width)


def scores(
    completions: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor, classifier: torch.nn.Module
) -> dict[str, float]:
    """accuracy: the share of completions (N, n, D) the classifier reads as their image's label;
    diversity: the mean pairwise distance between one image's completions over its hidden
    pixels (masks (N, D)), averaged over the images (0 where n = 1, as for the mean fill)."""
    from gannet.quality import predict

    count, n, width = completions.shape
    predicted, _ = predict(classifier, completions.reshape(count * n, width))
    accuracy = (predicted.view(count, n) == labels.view(count, 1)).double().mean().item()
    masks = masks.expand(count, width)
    diversity = 0.0
    if n > 1:
        spread = [hidden_diversity(completions[i], masks[i]) for i in range(count) if (masks[i] == 0).any()]
        diversity = sum(spread) / len(spread) if spread else 0.0
    return {"accuracy": accuracy, "diversity": diversity}
