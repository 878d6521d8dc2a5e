"""The machine's resources: the device a run trains on, and how much memory a training config
will ask for, estimated from the config alone (arithmetic, nothing allocated), against how much
the machine has: TrainConfig.validate refuses a run that cannot fit with one sentence naming
the flag that asks for most of it.

The estimate is of host memory. On a GPU the players live in device memory, but their
checkpoints, the data set and the pictures pass through the host as well.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from gannet.errors import GannetError
from gannet.outputs import available_memory  # one reading of the machine's memory for all checks

if TYPE_CHECKING:
    import torch

    from gannet.config import TrainConfig

BYTES = 4  # float32
# Copies of every parameter a run holds: the weights, their gradients and the checkpoint's
# serialised bytes, plus the optimizer's state (SGD: the momentum; Adam: two moments).
PARAMETER_COPIES = {"sgd": 4, "adam": 5}
ACTIVATION_COPIES = 3  # each layer's output, its gradient and its dropout mask
GENERATOR_CHUNK = 10_000  # the Parzen monitor runs G on this many codes at a time (parzen.py)
PARZEN_BUDGET = 256 << 20  # the Parzen estimate's distance blocks (parzen._chunk_size)
CHECK_ABOVE = 1 << 30  # below 1 GiB the machine is not asked: validate() stays arithmetic


class Need(NamedTuple):
    """Bytes some part of a run needs, the flag that sets most of them, and what they are."""

    bytes: int
    flag: str
    what: str


def _blame(sizes: dict[str, int]) -> str:
    """The flag of the largest factor of a layer's size."""
    return max(sizes, key=sizes.get)


def _conv_output(size: int, kernel: int, pad: int, pool: int, stride: int) -> tuple[int, int]:
    """(side after the convolution, side after the ceil-mode pool) of a ConvMaxout layer."""
    conv = max(size + 2 * pad - kernel + 1, 1)
    pooled = max(math.ceil((conv - pool) / stride) + 1, 1)
    if (pooled - 1) * stride >= conv:  # PyTorch drops a last window that starts past the edge
        pooled -= 1
    return conv, max(pooled, 1)


def generator_layers(config: TrainConfig, shape: tuple[int, ...], classes: int) -> list[tuple[int, int, str]]:
    """(parameters, output units per example, flag) of each layer of networks.Generator."""
    data_dim = math.prod(shape)
    widths = [config.latent_dim + classes, *config.generator_hidden]
    layers = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        flag = _blame({"--latent-dim" if i == 0 else "--generator-hidden": a, "--generator-hidden": b})
        layers.append((a * b + b, b, flag))
    if config.generator_deconv_shape:
        channels, k = config.generator_deconv_shape[0], config.generator_deconv_kernel
        layers.append((channels * shape[0] * k * k + data_dim, data_dim, "--generator-deconv-shape"))
    else:
        flag = _blame({"--generator-hidden": widths[-1], _data_flag(config): data_dim})
        layers.append((widths[-1] * data_dim + data_dim, data_dim, flag))
    return layers


def discriminator_layers(config: TrainConfig, shape: tuple[int, ...], classes: int) -> list[tuple[int, int, str]]:
    """(parameters, output units per example, flag) of each layer of networks.Discriminator."""
    layers = []
    width = math.prod(shape)
    if config.discriminator_conv_channels and len(shape) == 3:
        (c, h, w), pieces = shape, config.discriminator_conv_pieces
        kinds = ("channels", "kernels", "pads", "pools", "pool_strides")
        for channels, kernel, pad, pool, stride in zip(*(getattr(config, f"discriminator_conv_{k}") for k in kinds)):
            (conv_h, h), (conv_w, w) = (_conv_output(s, kernel, pad, pool, stride) for s in (h, w))
            flag = _blame({"--discriminator-conv-channels": channels, "--discriminator-conv-pieces": pieces})
            units = channels * pieces * conv_h * conv_w + channels * h * w  # the conv's maps, then pooled
            layers.append((c * channels * pieces * kernel * kernel + channels * pieces, units, flag))
            c = channels
        width = c * h * w
    inputs, pieces = width + classes, config.maxout_pieces
    first = "--discriminator-conv-channels" if config.discriminator_conv_channels else _data_flag(config)
    for i, units in enumerate(config.discriminator_hidden):
        flag = _blame({first if i == 0 else "--discriminator-hidden": inputs, "--discriminator-hidden": units})
        flag = "--maxout-pieces" if pieces > max(inputs, units) else flag
        layers.append((inputs * units * pieces + units * pieces, units * (pieces + 1), flag))
        inputs, first = units, "--discriminator-hidden"
    layers.append((inputs + 1, 1, "--discriminator-hidden"))
    return layers


def _data_flag(config: TrainConfig) -> str:
    """The flag that sets the data's size: --image-size for folders; else the layer's other side."""
    return "--image-size" if config.dataset.startswith("folder:") else "--generator-hidden"


def parameter_count(config: TrainConfig) -> int:
    """Parameters of G and D together, as networks.build_networks makes them."""
    shape, classes = _shape_and_classes(config)
    return sum(p for p, _, _ in generator_layers(config, shape, classes) + discriminator_layers(config, shape, classes))


def _shape_and_classes(config: TrainConfig) -> tuple[tuple[int, ...], int]:
    from gannet.data import NUM_CLASSES, data_shape  # here: gannet.data imports torch

    return data_shape(config), NUM_CLASSES.get(config.dataset, 0) if config.conditional else 0


def needs(config: TrainConfig) -> list[Need]:
    """The memory a run of `config` needs, in parts: the players (weights, gradients, optimizer
    state), one step's activations, the per-epoch picture and the Parzen monitor."""
    shape, classes = _shape_and_classes(config)
    g_layers = generator_layers(config, shape, classes)
    d_layers = discriminator_layers(config, shape, classes)
    layers = g_layers + d_layers
    parameters = sum(p for p, _, _ in layers)
    copies = PARAMETER_COPIES.get(config.optimizer, 5)
    g_parameters = sum(p for p, _, _ in g_layers)
    player_bytes = (parameters * copies + (g_parameters if config.average_from else 0)) * BYTES
    biggest = max(layers, key=lambda layer: layer[0])
    out = [Need(player_bytes, biggest[2], f"G and D have {parameters:,} parameters")]
    # one step: G's layers on a batch, D's on the real and the fake batch
    per_example = sum(u for _, u, _ in g_layers) + 2 * sum(u for _, u, _ in d_layers)
    widest = max(layers, key=lambda layer: layer[1])
    flag = "--batch-size" if config.batch_size > widest[1] else widest[2]
    step = config.batch_size * per_example * ACTIVATION_COPIES * BYTES
    out.append(Need(step, flag, f"one step on a batch of {config.batch_size:,}"))
    g_per_code = config.latent_dim + classes + sum(u for _, u, _ in g_layers)
    if len(shape) == 3:  # the per-epoch picture: grid_size² samples, and the picture's RGB pixels
        pictures = config.grid_size**2
        picture = pictures * (g_per_code * BYTES + math.prod(shape[1:]) * 3)
        out.append(Need(picture, "--grid-size", f"a picture of {pictures:,} samples"))
    if config.parzen_every:
        samples = config.parzen_samples
        kept = samples * (config.latent_dim + classes + math.prod(shape)) * BYTES
        chunk = min(samples, GENERATOR_CHUNK) * g_per_code * BYTES
        out.append(Need(kept + chunk + PARZEN_BUDGET, "--parzen-samples", f"{samples:,} Parzen samples"))
    return out


def gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_fits(config: TrainConfig) -> None:
    """A GannetError naming the flag that asks for most memory, if the run cannot fit."""
    parts = needs(config)
    total = sum(p.bytes for p in parts)
    if total < CHECK_ABOVE:
        return
    available = available_memory()
    if total <= available:
        return
    worst = max(parts, key=lambda p: p.bytes)
    raise GannetError(
        f"{worst.flag} asks for more memory than this machine has: the run needs about {gib(total)} "
        f"({worst.what}: {gib(worst.bytes)}) and {gib(available)} is available; lower {worst.flag}."
    )


def check_folder_fits(folder: str, images: int, size: int, channels: int) -> None:
    """A GannetError if decoding `images` images of size² × channels pixels cannot fit."""
    needed = 2 * images * size * size * channels * BYTES  # the decoded array and its shuffled copy
    if needed < CHECK_ABOVE:
        return
    available = available_memory()
    if needed > available:
        raise GannetError(
            f"--image-size {size} asks for more memory than this machine has: {images:,} images of "
            f"{channels}x{size}x{size} pixels under {folder} need about {gib(needed)} and {gib(available)} "
            "is available; lower --image-size."
        )


def resolve_device(name: str, float64: bool = False) -> torch.device:
    """The device a --device value names. "auto": a CUDA GPU if there is one, else Apple's GPU
    (MPS) if there is one, else the CPU. `float64`: the work needs double precision, which MPS
    lacks, so "auto" passes over MPS and an explicit "mps" is refused."""
    import torch  # here: validate() reads this module and stays cheap

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() and not float64 else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GannetError(f"--device {name!r} is not a device name (try cpu, cuda, cuda:0 or mps).") from None
    if device.type not in ("cpu", "cuda", "mps"):  # meta, xpu, ...: tensors gannet cannot compute or read back
        raise GannetError(f"--device {name}: gannet runs on cpu, cuda (cuda:N) or mps.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GannetError(f"--device {name} was asked for, but PyTorch sees no CUDA GPU here.")
    if device.type == "mps" and not _mps_available():
        raise GannetError(f"--device {name} was asked for, but PyTorch sees no Apple GPU (MPS) here.")
    if device.type == "mps" and float64:
        raise GannetError(f"--device {name}: Apple's GPU (MPS) has no float64, which this needs; use --device cpu.")
    return device


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)  # absent from some builds of torch
    return bool(mps is not None and mps.is_available())


PRECISIONS = ("fp32", "bf16")  # --precision


def compute_dtype(precision: str, device: torch.device) -> tuple[torch.dtype | None, str | None]:
    """The dtype of the training step's arithmetic for --precision on `device` (None: float32
    throughout) and, where bf16 was asked for and cannot pay here, one sentence saying why the
    run goes on in float32. bfloat16 pays on CUDA GPUs that have it and on CPUs with AVX512_BF16
    or AMX; elsewhere a CPU emulates it, dozens of times slower than float32."""
    import torch

    if precision == "fp32":
        return None, None
    if device.type == "cuda":
        if torch.cuda.get_device_capability(device) >= (8, 0):  # Ampere on; older GPUs emulate it
            return torch.bfloat16, None
        why = f"{torch.cuda.get_device_name(device)} has no bfloat16 arithmetic (it came with Ampere GPUs)"
    elif device.type == "cpu":
        if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
            return torch.bfloat16, None
        why = (
            f"this CPU ({cpu_name()}) has neither AVX512_BF16 nor AMX, so bfloat16 products would run far "
            "slower than float32"
        )
    else:
        why = f"gannet's bfloat16 step runs on CPUs and CUDA GPUs, not on {device.type}"
    return None, f"--precision bf16: {why}; training in float32 instead."


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else the platform's processor string."""
    import platform

    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
