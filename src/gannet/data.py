"""Data sets, held in memory as tensors: MNIST and CIFAR-10 (with verified downloads), TFD
(user-supplied), the toys, and any folder of images.

Where data is looked for, in order: --data-dir, $GANNET_DATA, the per-user cache
(~/.cache/gannet, or $XDG_CACHE_HOME/gannet). MNIST lives in a `mnist/` folder there, as the
four IDX files, gzip-compressed or not; CIFAR-10 as `cifar10/cifar-10-python.tar.gz` (the
original python tarball); TFD as `tfd/TFD_48x48.mat`.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import math
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gannet.errors import GannetError


@dataclass
class Dataset:
    """Splits as float tensors of shape (N, data_dim); `shape` is one example's (C, H, W)
    for images or (d,) for vectors."""

    name: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    shape: tuple[int, ...]
    labels: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def data_dim(self) -> int:
        return self.train.shape[1]

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3


# --- where data lives ----------------------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gannet"


def search_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    """The folders data is looked for in, first match wins."""
    dirs = [Path(d).expanduser() for d in (data_dir, os.environ.get("GANNET_DATA")) if d]
    return [*dirs, cache_dir()]


# --- MNIST ---------------------------------------------------------------------------------

# MD5 and size of the *decompressed* files, so that any gzip of the right bytes passes.
MNIST_FILES = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 47_040_016),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60_008),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 7_840_016),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10_008),
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MNIST_TRAIN_SIZE = 50_000  # the paper: train on the first 50,000, validate on the last 10,000


def _mnist_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_mnist(data_dir: str | os.PathLike | None) -> Path | None:
    """The first `mnist/` folder holding all four files, or None."""
    for root in search_dirs(data_dir):
        folder = root / "mnist"
        if all(_mnist_file(folder, name) for name in MNIST_FILES):
            return folder
    return None


def _read_content(path: Path) -> bytes:
    """The decompressed bytes of an IDX file; a broken gzip is a GannetError naming it."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw  # gzip by its magic bytes
    except (OSError, EOFError, zlib.error) as error:
        raise GannetError(
            f"{path} is truncated or corrupt ({error}); delete it and run `gannet data download mnist` again."
        ) from None


def verify_mnist_content(name: str, content: bytes, source: str) -> None:
    md5, size = MNIST_FILES[name]
    digest = hashlib.md5(content).hexdigest()
    if len(content) != size or digest != md5:
        raise GannetError(
            f"{source} does not hold MNIST's {name}: its content has {len(content):,} bytes "
            f"and MD5 {digest}, expected {size:,} bytes and MD5 {md5}."
        )


def read_mnist_file(path: Path, name: str) -> np.ndarray:
    """One verified IDX file as a uint8 array: (N, 28, 28) images or (N,) labels."""
    content = _read_content(path)
    verify_mnist_content(name, content, str(path))
    ndim = content[3]  # IDX header: 0, 0, dtype (8 = uint8), number of dimensions
    dims = np.frombuffer(content, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * ndim).reshape(*dims.tolist())


def load_mnist(folder: Path) -> Dataset:
    """MNIST as the paper split it: train = first 50,000 training images, valid = last 10,000,
    test = the 10,000 test images; pixels scaled to [0, 1], flattened to 784."""
    arrays = {name: read_mnist_file(_mnist_file(folder, name), name) for name in MNIST_FILES}
    images = torch.from_numpy(arrays["train-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 255)
    labels = torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64))
    test = torch.from_numpy(arrays["t10k-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 255)
    n = MNIST_TRAIN_SIZE
    return Dataset(
        name="mnist",
        train=images[:n],
        valid=images[n:],
        test=test,
        shape=(1, 28, 28),
        labels={
            "train": labels[:n],
            "valid": labels[n:],
            "test": torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)),
        },
    )


def _fetch(url: str, destination: Path, name: str, progress: bool, verify) -> None:
    """Download `url` into a temporary file beside `destination`, check it with
    `verify(tmp, url)`, then rename it into place: a failure at any point leaves nothing
    half-written. `name` labels the progress bar."""
    from tqdm import tqdm

    handle, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        verify(Path(tmp), url)
        os.replace(tmp, destination)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def download_mnist(root: str | os.PathLike, mirrors: tuple[str, ...] = MNIST_MIRRORS, progress: bool = True) -> Path:
    """Put the four verified MNIST files in `root/mnist`, trying each mirror in turn; return
    that folder. Files already present and valid are kept."""
    folder = Path(root).expanduser() / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        existing = _mnist_file(folder, name)
        if existing is not None:
            verify_mnist_content(name, _read_content(existing), str(existing))
            continue
        failures = []
        for mirror in mirrors:
            try:
                _fetch(
                    f"{mirror}{name}.gz",
                    folder / f"{name}.gz",
                    name,
                    progress,
                    lambda tmp, source: verify_mnist_content(name, _read_content(tmp), source),  # noqa: B023 (runs now)
                )
                break
            except (OSError, urllib.error.URLError, GannetError) as error:
                reason = getattr(error, "reason", None) or error
                failures.append(f"{mirror} ({reason})")
        else:
            raise GannetError(f"Could not download MNIST's {name}: every mirror failed: {'; '.join(failures)}.")
    return folder


def mnist(data_dir: str | os.PathLike | None, download: bool = True, progress: bool = True) -> Dataset:
    folder = find_mnist(data_dir)
    if folder is None:
        folder = _download_missing(
            "MNIST", "mnist", "mnist/", data_dir, download, lambda t: download_mnist(t, progress=progress)
        )
    return load_mnist(folder)


def _download_missing(title: str, name: str, what: str, data_dir, download: bool, fetch) -> Path:
    """A data set found nowhere: `fetch(target)` it into the first data folder, or say where
    it was looked for and what to do (one GannetError)."""
    places = ", ".join(str(d / name) for d in search_dirs(data_dir))
    if not download:
        raise GannetError(
            f"{title} was not found (looked in {places}); run `gannet data download {name}` "
            f"or point --data-dir (or $GANNET_DATA) at a folder holding {what}."
        )
    target = search_dirs(data_dir)[0]
    try:
        return fetch(target)
    except GannetError as error:
        raise GannetError(
            f"{title} was not found (looked in {places}) and downloading it into {target} "
            f"failed: {error} Point --data-dir at a folder holding {what}."
        ) from None


# --- CIFAR-10 ------------------------------------------------------------------------------

CIFAR10_URLS = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",)
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_SUM = ("c58f30108f718f92721af3b95e74349a", 170_498_071)  # MD5 and size of the original tarball
CIFAR10_TRAIN = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST = "cifar-10-batches-py/test_batch"
GCN_SCALE = 55.0  # the paper's global contrast normalisation


def global_contrast_normalize(x: np.ndarray, scale: float = GCN_SCALE, min_divisor: float = 1e-8) -> np.ndarray:
    """pylearn2's global_contrast_normalize as the 2014 code called it: each row minus its
    mean, then scaled to an L2 norm of `scale` (rows of norm ~0 are left unscaled)."""
    x = x.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.sqrt((x**2).sum(axis=1, keepdims=True)) / scale
    norms[norms < min_divisor] = 1.0
    return (x / norms).astype(np.float32)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's batches (dicts of lists, strings and one uint8 array) and nothing
    else: a pickle naming any other callable is refused before it runs."""

    _reconstruct = np.zeros(0).__reduce__()[0]  # wherever this NumPy keeps it
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how Python 3 pickles bytes at protocol 2
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _file_sum(path: Path) -> tuple[str, int]:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest(), path.stat().st_size


def verify_cifar10_archive(path: Path, source: str) -> None:
    md5, size = _file_sum(path)
    if (md5, size) != CIFAR10_SUM:
        raise GannetError(
            f"{source} is not CIFAR-10's {CIFAR10_ARCHIVE}: it has {size:,} bytes and MD5 {md5}, "
            f"expected {CIFAR10_SUM[1]:,} bytes and MD5 {CIFAR10_SUM[0]}."
        )


def _read_batch(archive: tarfile.TarFile, member: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the python tarball: (images (N, 3072) uint8, labels (N,) int64)."""
    try:
        raw = archive.extractfile(member).read()
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
        batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in batch.items()}
        images, labels = batch["data"], np.asarray(batch["labels"], dtype=np.int64)
        ok = isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
        if not (ok and images.shape[1] == 3072 and len(labels) == len(images) and labels.min() >= 0):
            raise ValueError("not 3,072-pixel uint8 images with one label each")
    except (KeyError, AttributeError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as error:
        raise GannetError(f"{path} is damaged: its {member} cannot be read ({error}).") from None
    return images, labels


def find_cifar10(data_dir: str | os.PathLike | None) -> Path | None:
    for root in search_dirs(data_dir):
        if (root / "cifar10" / CIFAR10_ARCHIVE).is_file():
            return root / "cifar10" / CIFAR10_ARCHIVE
    return None


def load_cifar10(path: Path) -> Dataset:
    """CIFAR-10 as the 2014 code used it: train = the first 40,000 training images, valid =
    the last 10,000, test = the test batch; each image contrast-normalised (GCN, scale 55),
    kept in (3, 32, 32) order as the batches store it."""
    verify_cifar10_archive(path, str(path))
    try:
        with tarfile.open(path, "r:gz") as archive:
            train = [_read_batch(archive, member, path) for member in CIFAR10_TRAIN]
            test_images, test_labels = _read_batch(archive, CIFAR10_TEST, path)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
        raise GannetError(f"{path} is truncated or corrupt ({error}).") from None
    images = np.concatenate([b[0] for b in train])
    labels = torch.from_numpy(np.concatenate([b[1] for b in train]))
    n = len(images) * 4 // 5  # 40,000 of 50,000: batches 1-4 train, batch 5 validates
    pixels = torch.from_numpy(global_contrast_normalize(images))
    return Dataset(
        name="cifar10",
        train=pixels[:n],
        valid=pixels[n:],
        test=torch.from_numpy(global_contrast_normalize(test_images)),
        shape=(3, 32, 32),
        labels={"train": labels[:n], "valid": labels[n:], "test": torch.from_numpy(test_labels)},
    )


def download_cifar10(root: str | os.PathLike, urls: tuple[str, ...] = CIFAR10_URLS, progress: bool = True) -> Path:
    """Put the verified tarball in `root/cifar10` (kept if already there and valid); return its path."""
    folder = Path(root).expanduser() / "cifar10"
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / CIFAR10_ARCHIVE
    if destination.is_file():
        verify_cifar10_archive(destination, str(destination))
        return destination
    failures = []
    for url in urls:
        try:
            _fetch(url, destination, "cifar-10", progress, verify_cifar10_archive)
            return destination
        except (OSError, urllib.error.URLError, GannetError) as error:
            failures.append(f"{url} ({str(getattr(error, 'reason', None) or error).rstrip('.')})")
    raise GannetError(f"Could not download CIFAR-10: every source failed: {'; '.join(failures)}.")


def cifar10(data_dir: str | os.PathLike | None, download: bool = True, progress: bool = True) -> Dataset:
    path = find_cifar10(data_dir)
    if path is None:
        what = f"cifar10/{CIFAR10_ARCHIVE}"
        path = _download_missing(
            "CIFAR-10", "cifar10", what, data_dir, download, lambda t: download_cifar10(t, progress=progress)
        )
    return load_cifar10(path)


# --- TFD (the Toronto Face Database) ---------------------------------------------------------

TFD_FILE = "TFD_48x48.mat"
TFD_PLACES = ("tfd", "faces/TFD")  # under a data folder; the second is pylearn2's layout
TFD_FOLD_CODES = {"unlabeled": 0, "train": 1, "valid": 2, "test": 3}


def find_tfd(data_dir: str | os.PathLike | None) -> Path | None:
    for root in search_dirs(data_dir):
        for place in TFD_PLACES:
            if (root / place / TFD_FILE).is_file():
                return root / place / TFD_FILE
    return None


def load_tfd(path: Path, fold: int = 0) -> Dataset:
    """TFD as pylearn2 read it for the 2014 code: `images` (N, 48, 48) uint8 scaled to [0, 1];
    `folds` (N, 5) marks each image per fold as 0 unlabeled, 1 train, 2 valid, 3 test. The GAN
    trains on the unlabeled images (tfd_pretrain/train.yaml); σ is picked on fold `fold`'s
    validation images and the Parzen estimate is taken on its test images."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise GannetError("Reading TFD's .mat file needs SciPy: pip install 'gannet[tfd]'.") from None
    try:
        mat = loadmat(path)
        images, folds = np.asarray(mat["images"]), np.asarray(mat["folds"])
    except Exception as error:  # SciPy's parser fails in many ways on foreign bytes; all mean the same
        raise GannetError(f"{path} is not TFD's 48x48 .mat file (with 'images' and 'folds'): {error}.") from None
    if images.ndim != 3 or images.shape[1:] != (48, 48) or folds.ndim != 2 or len(folds) != len(images):
        raise GannetError(
            f"{path} holds images of shape {images.shape} and folds of shape {folds.shape}; "
            "expected (N, 48, 48) and (N, 5)."
        )
    if not 0 <= fold < folds.shape[1]:
        raise GannetError(f"TFD has folds 0 to {folds.shape[1] - 1}, not {fold}.")
    pixels = torch.from_numpy(images.reshape(len(images), 48 * 48).astype(np.float32) / 255)
    which = torch.from_numpy(folds[:, fold].astype(np.int64))
    splits = {name: pixels[which == code] for name, code in TFD_FOLD_CODES.items()}
    empty = [name for name in ("unlabeled", "valid", "test") if len(splits[name]) == 0]
    if empty:
        raise GannetError(f"{path} has no {' or '.join(empty)} images in fold {fold}.")
    return Dataset(name="tfd", train=splits["unlabeled"], valid=splits["valid"], test=splits["test"], shape=(1, 48, 48))


def tfd(data_dir: str | os.PathLike | None) -> Dataset:
    path = find_tfd(data_dir)
    if path is None:
        places = ", ".join(str(d / TFD_PLACES[0]) for d in search_dirs(data_dir))
        raise GannetError(
            f"TFD is licence-restricted and cannot be downloaded: put your copy of {TFD_FILE} in one of "
            f"{places} (or point --data-dir at a folder holding tfd/{TFD_FILE})."
        )
    return load_tfd(path)


# --- the 1-D toy of Figure 1 ---------------------------------------------------------------

TOY1D_MEAN, TOY1D_STD = 2.0, 0.5  # away from 0, where G starts, so the game has work to do
TOY1D_SIZES = {"train": 10_000, "valid": 1_000, "test": 1_000}


def toy1d() -> Dataset:
    """Figure 1's data: x ~ N(2, 0.5²), drawn once from a fixed seed (the same data set for
    every run, as a real data set would be)."""
    rng = torch.Generator().manual_seed(20140610)
    splits = {k: TOY1D_MEAN + TOY1D_STD * torch.randn(n, 1, generator=rng) for k, n in TOY1D_SIZES.items()}
    return Dataset(name="toy1d", shape=(1,), **splits)


# --- the 2-D mode-collapse benchmarks -----------------------------------------------------

TOY2D_SIZES = {"train": 20_000, "valid": 2_000, "test": 2_000}


def toy2d_modes(name: str) -> tuple[torch.Tensor, float]:
    """(modes (K, 2), standard deviation) of ring8 (8 Gaussians on a circle of radius 2, std 0.02)
    or grid25 (a 5×5 grid of Gaussians at −4, −2, …, 4, std 0.05), the usual settings."""
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([2 * angles.cos(), 2 * angles.sin()], dim=1).float(), 0.02
    ticks = torch.arange(-4.0, 5.0, 2.0)
    return torch.cartesian_prod(ticks, ticks), 0.05


def toy2d(name: str) -> Dataset:
    """Equal mixtures of isotropic Gaussians, drawn once from a fixed seed; labels = mode index."""
    modes, std = toy2d_modes(name)
    rng = torch.Generator().manual_seed(20140610)
    splits, labels = {}, {}
    for split, n in TOY2D_SIZES.items():
        which = torch.randint(len(modes), (n,), generator=rng)
        splits[split] = modes[which] + std * torch.randn(n, 2, generator=rng)
        labels[split] = which
    return Dataset(name=name, shape=(2,), labels=labels, **splits)


# --- any folder of images ------------------------------------------------------------------

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


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool | None = True,
    image_size: int = 28,
    channels: int = 1,
) -> Dataset:
    if name == "toy1d":
        return toy1d()
    if name in ("ring8", "grid25"):
        return toy2d(name)
    if name == "mnist":
        return mnist(data_dir, download=download, progress=progress is not False)
    if name == "cifar10":
        return cifar10(data_dir, download=download, progress=progress is not False)
    if name == "tfd":
        return tfd(data_dir)
    if name.startswith(FOLDER_PREFIX):
        return folder_dataset(name[len(FOLDER_PREFIX) :], image_size, channels, progress)
    raise GannetError(f"Unknown data set '{name}'; known: {', '.join(DATA_SHAPES)}, or folder:PATH.")


def dataset_for(config, progress: bool | None = True) -> Dataset:
    """The data set a TrainConfig names."""
    return load_dataset(config.dataset, config.data_dir, config.download, progress, config.image_size, config.channels)


NUM_CLASSES = {"mnist": 10, "cifar10": 10, "ring8": 8, "grid25": 25}  # labelled data sets (ring8/grid25: mode index)
DATA_SHAPES = {
    "mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "tfd": (1, 48, 48),
    "toy1d": (1,),
    "ring8": (2,),
    "grid25": (2,),
}


def data_shape(config) -> tuple[int, ...]:
    """One example's shape under a TrainConfig, known without loading the data set."""
    if config.dataset.startswith(FOLDER_PREFIX):
        return (config.channels, config.image_size, config.image_size)
    return DATA_SHAPES[config.dataset]
