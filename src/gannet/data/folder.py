"""Any folder of PNG/JPEG images, centre-cropped and resized, decoded once and cached."""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from gannet.data.store import Dataset, cache_dir
from gannet.errors import GannetError
from gannet.resources import check_folder_fits

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
DECODER_VERSION = 2  # part of the cache key: 2 reads 16-bit PNGs right (1 clipped them to white)
FOLDER_PREFIX = "folder:"


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "not there"
        raise GannetError(f"No folder of images at {folder}: it is {what}.")
    try:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as error:  # a sub-folder that cannot be listed
        raise GannetError(f"Cannot list the images under {folder} ({error}).") from None
    if not files:
        raise GannetError(f"No PNG or JPEG images under {folder} (searched recursively).")
    return files


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")  # 16-bit PNGs open in one of these


def _pixels(image, size: int, channels: int) -> np.ndarray:
    """(size, size[, 3]) floats in [0, 1] of any PIL image, centre-cropped and resized: 8-bit
    modes as PIL converts them; 16-bit grey scaled by 65535 (PIL's own conversion to 8 bits
    would clip everything above 255 to white)."""
    from PIL import Image

    if image.mode not in SIXTEEN_BIT_MODES:
        image = _square(image.convert("L" if channels == 1 else "RGB"), size)
        return np.asarray(image, dtype=np.float32) / 255
    grey = (np.asarray(image, dtype=np.float64) / 65535).clip(0, 1).astype(np.float32)  # (H, W)
    grey = np.asarray(_square(Image.fromarray(grey, mode="F"), size)).clip(0, 1)  # bicubic overshoots
    return grey if channels == 1 else np.repeat(grey[..., None], 3, axis=2)


def _square(image, size: int):
    """A PIL image centre-cropped to a square and resized (bicubic) to size x size."""
    from PIL import Image

    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)


def decode_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image as (channels·size·size,) float32 in [0, 1]: centre-cropped to a square, resized."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():  # PIL warns of images past ~89 M pixels, errs past twice that
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                pixels = _pixels(image, size, channels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise GannetError(
            f"{path} claims more than {Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb, or a picture "
            "far larger than any training image); shrink it or remove it from the folder."
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, zlib.error, struct.error) as error:
        # PIL's decoders fail in many ways on damaged files (Image.UnidentifiedImageError is an OSError)
        raise GannetError(f"{path} cannot be decoded as an image ({error}); repair it or remove it.") from None
    except MemoryError:
        raise GannetError(f"{path} is too large to decode in the memory available.") from None
    return (pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)).reshape(-1)  # (C·H·W,)


def _write_cache(cache: Path, pixels: np.ndarray) -> None:
    """Keep the decoded images for the next run; a cache that cannot be written only costs time."""
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp, pixels)
        os.replace(tmp, cache)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def folder_dataset(folder: str | os.PathLike, size: int, channels: int, progress: bool | None = True) -> Dataset:
    """Every PNG/JPEG under `folder`, decoded once and cached (keyed by the files' names, sizes
    and times, the size and the channels): the next run reads one array. A fixed-seed shuffle
    splits off 5 % (at most 1,000) for validation and as many for test."""
    from tqdm import tqdm

    folder = Path(folder).expanduser().resolve()
    files = image_files(folder)
    check_folder_fits(str(folder), len(files), size, channels)
    key = hashlib.sha256(f"{DECODER_VERSION}:{size}:{channels}".encode())
    try:
        for f in files:
            stat = f.stat()
            key.update(f"{f.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    except OSError as error:  # a file removed while we looked
        raise GannetError(f"The images under {folder} changed while being listed ({error}); try again.") from None
    cache = cache_dir() / "folders" / f"{key.hexdigest()[:24]}.npy"
    shape = (len(files), channels * size * size)
    try:
        pixels = np.load(cache, allow_pickle=False)
        if pixels.shape != shape or pixels.dtype != np.float32:
            raise ValueError("a cache of other images")
    except (OSError, ValueError, EOFError):
        pixels = np.empty(shape, dtype=np.float32)  # (N, C·H·W), filled in place: no second copy
        for i, f in enumerate(tqdm(files, desc="decoding images", unit="img", disable=progress is False)):
            pixels[i] = decode_image(f, size, channels)
        _write_cache(cache, pixels)
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
