"""Any folder of PNG/JPEG images, centre-cropped and resized, decoded once and cached."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from gannet.data.store import Dataset, cache_dir
from gannet.errors import GannetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
FOLDER_PREFIX = "folder:"


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise GannetError(f"No folder of images at {folder}.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise GannetError(f"No PNG or JPEG images under {folder} (searched recursively).")
    return files


def decode_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as (channels·size·size,) float32 in [0, 1]: centre-cropped to a square, resized."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
            pixels = np.asarray(image, dtype=np.float32) / 255
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise GannetError(f"{path} cannot be decoded as an image ({error}).") from None
    return (pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)).reshape(-1)  # (C·H·W,)


def folder_dataset(folder: str | os.PathLike, size: int, channels: int, progress: bool | None = True) -> Dataset:
    """Every PNG/JPEG under `folder`, decoded once and cached (keyed by the files' names, sizes
    and times, the size and the channels): the next run reads one array. A fixed-seed shuffle
    splits off 5 % (at most 1,000) for validation and as many for test."""
    from tqdm import tqdm

    folder = Path(folder).expanduser().resolve()
    files = image_files(folder)
    key = hashlib.sha256(f"{size}:{channels}".encode())
    for f in files:
        stat = f.stat()
        key.update(f"{f.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    cache = cache_dir() / "folders" / f"{key.hexdigest()[:24]}.npy"
    try:
        pixels = np.load(cache, allow_pickle=False)
    except (OSError, ValueError):
        pixels = np.stack(
            [
                decode_image(f, size, channels)
                for f in tqdm(files, desc="decoding images", unit="img", disable=progress is False)
            ]
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, pixels)
        os.replace(tmp, cache)
    order = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(0))
    held = min(1_000, len(pixels) // 20)
    images = torch.from_numpy(pixels)[order]
    return Dataset(
        name=f"{FOLDER_PREFIX}{folder}",
        train=images[2 * held :] if held else images,
        valid=images[:held] if held else images,
        test=images[held : 2 * held] if held else images,
        shape=(channels, size, size),
    )
