"""Training configuration: one typed dataclass whose defaults are the paper's MNIST model.

Every field is a command-line flag (`--batch-size` for `batch_size`); the help text below is
the flag's documentation. Presets (presets.py) are data: a dict of fields that differ from
these defaults. A run writes its resolved config to `config.json`; loading that file repeats
the run exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gannet.data import DATA_SHAPES
from gannet.errors import GannetError
from gannet.game import UPDATE_SCHEMES
from gannet.losses import GENERATOR_LOSSES
from gannet.networks import ACTIVATIONS, GENERATOR_OUTPUTS
from gannet.noise import NOISE_PRIORS
from gannet.optim import OPTIMIZERS
from gannet.resources import PRECISIONS

# The fields a resumed run may change: where it runs and for how long, not what it is; the
# learning-rate cuts of epochs not yet begun and the averaging of epochs not yet finished
# (state.check_resume says when).
RESUMABLE = frozenset(
    {
        "epochs",
        "device",
        "data_dir",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "keep_every",
        "lr_milestones",
        "lr_gamma",
        "average_from",
    }
)


def option(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field carrying its flag's help text (and allowed values)."""
    metadata = {"help": help, "choices": choices}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    # --- what is trained, on what --------------------------------------------------------
    preset: str = option("mnist", "Name of the preset these values started from.")
    dataset: str = option("mnist", f"Data set: {', '.join(DATA_SHAPES)}, or folder:PATH (any PNG/JPEG images).")
    image_size: int = option(28, "folder:PATH data: images are centre-cropped and resized to N x N.")
    channels: int = option(1, "folder:PATH data: 1 (grey) or 3 (RGB).")
    data_dir: str | None = option(None, "Folder holding data sets (else $GANNET_DATA, else the per-user cache).")
    download: bool = option(True, "Download a missing data set into the data folder.")
    train_limit: int | None = option(
        None, "Use only the first N training examples (quick experiments and smoke tests)."
    )
    # --- the game --------------------------------------------------------------------------
    epochs: int = option(250, "Total number of epochs (passes of D over the training set).")
    batch_size: int = option(100, "Minibatch size m (real examples and noise vectors).")
    k: int = option(1, "Discriminator steps per generator step (alternating updates only).")
    update: str = option(
        "simultaneous",
        "simultaneous: both players' gradients from one forward pass, one update (the 2014 "
        "code); alternating: k D steps on fresh minibatches, then one G step (Algorithm 1).",
        UPDATE_SCHEMES,
    )
    generator_loss: str = option(
        "non-saturating",
        "Generator cost: -log D(G(z)) (non-saturating), log(1 - D(G(z))) (minimax) or "
        "-exp(logit D(G(z))) (maximum-likelihood).",
        tuple(GENERATOR_LOSSES),
    )
    noise: str = option(
        "uniform-sqrt3",
        "Prior p_z: uniform on (-sqrt 3, sqrt 3) (unit variance, the paper's), uniform on "
        "(-1, 1), or a standard Gaussian.",
        NOISE_PRIORS,
    )
    latent_dim: int = option(100, "Dimension of z.")
    conditional: bool = option(
        False,
        "Condition both players on the class label (the paper's section 7; mnist, cifar10, ring8, grid25): "
        "G gets a one-hot label beside z, D beside x.",
    )
    all_conditionals: bool = option(
        False,
        "One model of every conditional p(x_S | x_not S) (the paper's section 7; image data): G gets z, the "
        "observed pixels and the mask and draws the hidden ones, D judges the completed image beside the mask; "
        "masks from random pixels, rectangles, halves, quadrants and the whole image (masks.py). "
        "`gannet complete` fills any mask.",
    )
    # --- the networks ----------------------------------------------------------------------
    generator_hidden: list[int] = option([1200, 1200], "Widths of G's hidden layers, e.g. 1200,1200.")
    generator_activations: list[str] = option(
        ["relu"], f"Activation of each G hidden layer ({' or '.join(ACTIVATIONS)}), or one for all of them."
    )
    generator_output: str = option(
        "sigmoid", "G's output unit: sigmoid (pixels in [0, 1]) or linear.", GENERATOR_OUTPUTS
    )
    generator_init: float = option(0.05, "G's weights start uniform on (-r, r).")
    generator_output_init: float | None = option(None, "G's output layer starts uniform on (-r, r) (default: as G).")
    generator_deconv_shape: list[int] = option(
        [], "Convolutional G: reshape the last hidden layer to C,H,W and end in one transposed convolution."
    )
    generator_deconv_kernel: int = option(5, "Convolutional G: kernel size of the transposed convolution.")
    generator_deconv_stride: int = option(3, "Convolutional G: stride of the transposed convolution.")
    generator_bias_from_data: bool = option(
        True, "Start G's output bias at the logit of each pixel's mean (the 2014 code)."
    )
    discriminator_hidden: list[int] = option([240, 240], "Units of D's maxout layers.")
    maxout_pieces: int = option(5, "Linear pieces per maxout unit.")
    discriminator_conv_channels: list[int] = option(
        [], "Convolutional D: channels of each conv-maxout layer before the maxout layers (images only)."
    )
    discriminator_conv_kernels: list[int] = option([], "Convolutional D: kernel size of each conv layer.")
    discriminator_conv_pads: list[int] = option([], "Convolutional D: zero padding of each conv layer.")
    discriminator_conv_pools: list[int] = option([], "Convolutional D: max-pool window of each conv layer.")
    discriminator_conv_pool_strides: list[int] = option([], "Convolutional D: max-pool stride of each conv layer.")
    discriminator_conv_pieces: int = option(2, "Convolutional D: pieces per conv-maxout unit.")
    discriminator_init: float = option(0.005, "D's weights start uniform on (-r, r).")
    input_keep: float = option(0.8, "Dropout: probability of keeping each input of D.")
    hidden_keep: float = option(0.5, "Dropout: probability of keeping each hidden unit of D.")
    # --- optimisation ----------------------------------------------------------------------
    optimizer: str = option("sgd", "sgd (with momentum, the paper's) or adam.", OPTIMIZERS)
    lr: float = option(0.1, "Initial learning rate of both players (of D alone with --generator-lr).")
    generator_lr: float | None = option(
        None, "G's own initial learning rate (default: --lr); decayed on the same schedule as D's."
    )
    lr_decay: float = option(1.000004, "After every update the learning rate is divided by this.")
    lr_min: float = option(1e-6, "The learning rate never decays below this.")
    lr_milestones: list[int] = option(
        [],
        "After each of these epochs the learning rate is multiplied by --lr-gamma, e.g. 270,280 "
        "(PyTorch's MultiStepLR, on top of the decay; not in the paper). May be changed on --resume "
        "for epochs not yet begun.",
    )
    lr_gamma: float = option(0.2, "The factor applied at each of --lr-milestones.")
    max_col_norm: float | None = option(
        None, "After each update, cap the L2 norm of every unit's incoming weights (pylearn2's max_col_norm)."
    )
    momentum: float = option(0.5, "SGD momentum at the start.")
    momentum_final: float = option(0.7, "SGD momentum once the ramp ends.")
    momentum_start_epoch: int = option(1, "Epoch at which the momentum ramp starts.")
    momentum_saturate_epoch: int = option(250, "Epoch at which the momentum reaches its final value.")
    adam_betas: list[float] = option([0.5, 0.999], "Adam's (beta1, beta2).")
    average_from: int = option(
        0,
        "From this epoch on, keep the mean of the generator's weights after every epoch in "
        "checkpoints/average.safetensors (0: off), which the commands that sample a run then take for it "
        "(before a moving average). Polyak averaging, not in the paper; it does not change training "
        "(docs/reproducing-table1.md).",
    )
    ema_decay: float = option(
        0.0,
        "Keep an exponential moving average of G's weights, updated after every G update with this decay "
        "(0: off; e.g. 0.999), warmed up as min(decay, (1 + n) / (10 + n)) after n updates: "
        "checkpoints/ema.safetensors (written with each checkpoint), which the commands that sample a run "
        "(sample, eval parzen/quality/completion, figures fig2/fig3/classes, export, infer, complete) then take "
        "for it, unless --average-from has begun its mean. Not in the paper; it does not change training, "
        "and is fixed for a run (not changed on --resume).",
    )
    # --- bookkeeping -----------------------------------------------------------------------
    seed: int = option(0, "Random seed: the same seed on the same CPU gives the same numbers.")
    device: str = option(
        "auto",
        "Where to train: auto (a CUDA GPU if present, else Apple's MPS if present, else cpu), cpu, cuda, cuda:1, mps",
    )
    precision: str = option(
        "fp32",
        "Arithmetic of the training step: fp32, or bf16 (matrix products and element-wise work in bfloat16; "
        "weights, optimiser state, losses, statistics and every evaluation stay float32). bf16 pays on CUDA GPUs "
        "and on CPUs with AVX512_BF16 or AMX; elsewhere the run says so and trains in float32.",
        PRECISIONS,
    )
    cuda_graphs: bool = option(
        True,
        "On a CUDA GPU, record each training iteration as a CUDA graph and replay it (one launch instead of "
        "~150; the same numbers); off: launch every kernel from Python. Used in one process with SGD and k = 1.",
    )
    log_every: int = option(100, "Write metrics every N steps.")
    checkpoint_every: int = option(1, "Write a checkpoint every N epochs (and at the end).")
    keep_checkpoints: int = option(3, "How many of the newest checkpoints to keep.")
    keep_every: int = option(
        0,
        "Also keep the checkpoint of every N-th epoch (0: none), for `gannet average` "
        "(an MNIST checkpoint takes ~30 MB, ~50 MB with --average-from). Lowering it on --resume "
        "keeps those kept before.",
    )
    grid_size: int = option(10, "Sample grids are N x N images.")
    parzen_every: int = option(
        1, "Every N epochs, a cheap Parzen estimate on 1,000 validation images (0: never); the best is kept."
    )
    parzen_samples: int = option(10_000, "Generator samples for that estimate.")

    def validate(self) -> TrainConfig:
        """Raise GannetError on values no run could use, or a run this machine's memory cannot
        hold (resources.py); return self. Cheap: comparisons and arithmetic, nothing allocated."""
        from gannet.validation import check  # it reads FIELDS, defined below

        check(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _shown(value: Any) -> str:
    """A value as a message shows it: its repr, cut short."""
    return _clip(repr(value))


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else f"{text[: width - 3]}..."


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def flag(name: str) -> str:
    """The command-line spelling of a field: batch_size -> batch-size."""
    return name.replace("_", "-")


@functools.cache  # validate() asks for every field's
def field_type(name: str) -> tuple[type, bool, bool]:
    """(scalar type, is a list, may be None) of a field, read from its annotation."""
    hint = _HINTS[name]
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional, hint = True, args[0]
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], True, optional
    return hint, False, optional


def coerce(name: str, value: Any) -> Any:
    """Check one value from a config file or preset against the field's type."""
    scalar, is_list, optional = field_type(name)
    if value is None and optional:
        return None
    values = value if is_list else [value]
    if is_list and not isinstance(value, list):
        raise GannetError(f"'{name}' must be a list of {scalar.__name__}, not {_shown(value)}.")
    out = []
    for v in values:
        if scalar is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if type(v) is not scalar:
            raise GannetError(f"'{name}' must be {scalar.__name__}, not {_shown(v)}.")
        out.append(v)
    return out if is_list else out[0]


def from_dict(values: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A config from `base` (else the defaults) with `values` applied, each checked."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        keys = ", ".join(k if k.isidentifier() else repr(k) for k in unknown)  # repr: no newline gets through
        raise GannetError(f"Unknown config key(s): {_clip(keys)}.")
    checked = {name: coerce(name, value) for name, value in values.items()}
    return dataclasses.replace(base or TrainConfig(), **checked).validate()


CONFIG_MAX_BYTES = 1 << 20  # a config.json is ~2 kB; anything this big is not one


def load(path: Path) -> TrainConfig:
    """Read a config.json written by a run (or by hand)."""
    path = Path(path)
    try:
        if not path.exists():
            raise GannetError(f"No config file at {path}.")
        if not path.is_file():  # a folder, a device such as /dev/zero, a pipe that never ends
            raise GannetError(f"{path} is {'a folder' if path.is_dir() else 'not a regular file'}, not a config.json.")
        with open(path, "rb") as f:
            raw = f.read(CONFIG_MAX_BYTES + 1)
    except OSError as error:
        raise GannetError(f"Cannot read the config file {path} ({error.strerror or error}).") from None
    if len(raw) > CONFIG_MAX_BYTES:
        raise GannetError(f"{path} is larger than {CONFIG_MAX_BYTES >> 20} MiB, too large for a config.json.")
    try:
        values = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError, or an integer of 4,300+ digits
        raise GannetError(f"{path} is not a JSON config file ({error}).") from None
    except RecursionError:
        raise GannetError(f"{path} is not a config file: its JSON is nested too deeply.") from None
    if not isinstance(values, dict):
        raise GannetError(f"{path} must hold a JSON object of config keys.")
    return from_dict(values)
