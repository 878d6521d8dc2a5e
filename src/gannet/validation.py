"""What a config may hold: every field's range and allowed values, and the consistency of the
architecture it describes. `TrainConfig.validate()` runs these checks before anything is
allocated; each failure is one sentence naming the flag."""

from __future__ import annotations

import math
import re

from gannet import resources
from gannet.config import FIELDS, TrainConfig, coerce, flag
from gannet.data import DATA_SHAPES, NUM_CLASSES
from gannet.errors import GannetError
from gannet.networks import ACTIVATIONS

# The range of every integer field, checked by validate() before anything is allocated. Counts
# stop at 2**31 - 1 (what every tensor index and file format takes); the seed at NumPy's limit
# (torch and random take more); sizes that ask for memory are bounded by resources.py instead.
COUNT_MAX = 2**31 - 1
SEED_MAX = 2**32 - 1  # np.random.seed takes [0, 2**32 - 1]
GRID_SIZE_MAX = 100  # 10,000 samples in a picture of 2,800 x 2,800 MNIST pixels
PARZEN_SAMPLES_MAX = 1_000_000  # 100 times the paper's; the monitor's cost grows with it, every epoch
RANGES: dict[str, tuple[int, int]] = {
    "image_size": (4, COUNT_MAX),
    "train_limit": (1, COUNT_MAX),
    "epochs": (1, COUNT_MAX),
    "batch_size": (1, COUNT_MAX),
    "k": (1, COUNT_MAX),
    "latent_dim": (1, COUNT_MAX),
    "generator_hidden": (1, COUNT_MAX),
    "generator_deconv_shape": (1, COUNT_MAX),
    "generator_deconv_kernel": (1, COUNT_MAX),
    "generator_deconv_stride": (1, COUNT_MAX),
    "discriminator_hidden": (1, COUNT_MAX),
    "maxout_pieces": (1, COUNT_MAX),
    "discriminator_conv_channels": (1, COUNT_MAX),
    "discriminator_conv_kernels": (1, COUNT_MAX),
    "discriminator_conv_pads": (0, COUNT_MAX),
    "discriminator_conv_pools": (1, COUNT_MAX),
    "discriminator_conv_pool_strides": (1, COUNT_MAX),
    "discriminator_conv_pieces": (1, COUNT_MAX),
    "lr_milestones": (1, COUNT_MAX),
    "momentum_start_epoch": (0, COUNT_MAX),
    "momentum_saturate_epoch": (0, COUNT_MAX),
    "average_from": (0, COUNT_MAX),
    "seed": (0, SEED_MAX),
    "log_every": (1, COUNT_MAX),
    "checkpoint_every": (1, COUNT_MAX),
    "keep_checkpoints": (1, COUNT_MAX),
    "keep_every": (0, COUNT_MAX),
    "grid_size": (1, GRID_SIZE_MAX),
    "parzen_every": (0, COUNT_MAX),
    "parzen_samples": (1, PARZEN_SAMPLES_MAX),
}
INIT_MAX = 100.0  # weights uniform on (-r, r): past r ~ 1 every unit saturates; past 100 nothing is learnt
FLOAT32_MAX = 3.4e38  # the weights' type: a norm cap past it cannot be compared with them
LARGEST_RATE = 3.4e38  # float32's largest number: a learning rate the parameters can be multiplied by
PRESET_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"  # it names the run's folder (runs/<preset>-<time>)


def check(config: TrainConfig) -> None:
    """Raise GannetError on values no run could use, or a run this machine's memory cannot
    hold (resources.py). Cheap: comparisons and arithmetic, nothing allocated."""
    for name in FIELDS:  # a Python caller may set any value; a config file's were coerced
        coerce(name, getattr(config, name))
    checks = _range_checks(config) + _float_checks(config) + _string_checks(config)
    checks.append((config.channels in (1, 3), f"--channels must be 1 or 3, not {config.channels}"))
    for name, field in FIELDS.items():  # every field with a fixed set of values
        if not (choices := field.metadata["choices"]):
            continue
        checks.append((getattr(config, name) in choices, f"--{flag(name)} must be one of {', '.join(choices)}"))
    checks += _architecture_checks(config)
    checks.append(
        (
            not config.conditional or config.dataset in NUM_CLASSES,
            f"--conditional needs a labelled data set ({', '.join(NUM_CLASSES)}), not {config.dataset}",
        )
    )
    if config.all_conditionals:
        checks.append((not config.conditional, "--all-conditionals and --conditional cannot be combined"))
        checks.append(
            (
                len(DATA_SHAPES.get(config.dataset, (1, 1, 1))) == 3,  # a folder: images
                f"--all-conditionals completes images; {config.dataset} holds points, not images",
            )
        )
    for ok, message in checks:
        if not ok:
            raise GannetError(f"{message}.")
    resources.check_fits(config)


def _range_checks(config: TrainConfig) -> list[tuple[bool, str]]:
    """Every integer field within its range (RANGES), each list's items too."""
    checks = []
    for name, (low, high) in RANGES.items():
        value = getattr(config, name)
        values = value if isinstance(value, list) else [] if value is None else [value]
        ok = all(low <= v <= high for v in values)
        low_or_high = f"at least {low:,}" if any(v < low for v in values) else f"at most {high:,}"
        checks.append((ok, f"--{flag(name)} must be {low_or_high}"))
    checks += [
        (
            config.lr_milestones == sorted(set(config.lr_milestones)),
            "--lr-milestones must be increasing epoch numbers of at least 1",
        ),
        (
            config.momentum_saturate_epoch >= config.momentum_start_epoch,
            "--momentum-saturate-epoch must not come before --momentum-start-epoch",
        ),
        (len(config.discriminator_hidden) >= 1, "D needs at least one hidden layer"),
    ]
    return checks


def _float_checks(config: TrainConfig) -> list[tuple[bool, str]]:
    """Every float field a finite number in its range (comparisons with NaN are False)."""
    inits = [config.generator_init, config.discriminator_init]
    inits += [] if config.generator_output_init is None else [config.generator_output_init]
    return [
        (config.lr > 0, "--lr must be a positive number"),
        (config.lr <= LARGEST_RATE, f"--lr must be at most {LARGEST_RATE:g}"),
        (
            config.generator_lr is None or 0 < config.generator_lr <= LARGEST_RATE,
            f"--generator-lr must be a positive number of at most {LARGEST_RATE:g}",
        ),
        (1 <= config.lr_decay < math.inf, "--lr-decay must be a number of at least 1 (it divides the rate)"),
        (0 <= config.lr_min <= LARGEST_RATE, f"--lr-min must be a number from 0 to {LARGEST_RATE:g}"),
        (0 < config.lr_gamma < math.inf, "--lr-gamma must be a positive number"),
        (
            _largest_rate(max(config.lr, config.generator_lr or 0), config.lr_gamma, len(config.lr_milestones))
            <= LARGEST_RATE,
            f"--lr-gamma at each of --lr-milestones raises the learning rate past {LARGEST_RATE:g}",
        ),
        (0 <= config.momentum < 1 and 0 <= config.momentum_final < 1, "momentum must be in [0, 1)"),
        (0 <= config.ema_decay < 1, "--ema-decay must be in [0, 1) (0: off)"),
        (
            0 < config.input_keep <= 1 and 0 < config.hidden_keep <= 1,
            "--input-keep and --hidden-keep must be in (0, 1]",
        ),
        (
            all(0 < r <= INIT_MAX for r in inits),
            f"init ranges (--generator-init, --discriminator-init, --generator-output-init) must be in (0, {INIT_MAX}]",
        ),
        (
            config.max_col_norm is None or 0 < config.max_col_norm <= FLOAT32_MAX,
            f"--max-col-norm must be a positive number of at most {FLOAT32_MAX:g}",
        ),
        (
            len(config.adam_betas) == 2 and all(0 <= b < 1 for b in config.adam_betas),
            "--adam-betas takes two numbers in [0, 1)",
        ),
    ]


def _string_checks(config: TrainConfig) -> list[tuple[bool, str]]:
    strings = [config.preset, config.dataset, config.device, config.data_dir or ""]
    return [
        (all("\x00" not in s for s in strings), "config text must not contain NUL characters"),
        (
            re.fullmatch(PRESET_NAME, config.preset) is not None,
            f"'preset' names a run's folder: letters, digits, '.', '-' or '_', not {config.preset!r}",
        ),
        (
            config.dataset in DATA_SHAPES or (config.dataset.startswith("folder:") and len(config.dataset) > 7),
            f"--data must be one of {', '.join(DATA_SHAPES)} or folder:PATH, not {config.dataset!r}",
        ),
    ]


def _architecture_checks(config: TrainConfig) -> list[tuple[bool, str]]:
    kinds = ("channels", "kernels", "pads", "pools", "pool_strides")
    convs = [getattr(config, f"discriminator_conv_{k}") for k in kinds]
    deconv = config.generator_deconv_shape
    return [
        (
            all(a in ACTIVATIONS for a in config.generator_activations)
            and len(config.generator_activations) in (1, len(config.generator_hidden)),
            f"--generator-activations takes {' or '.join(ACTIVATIONS)}, one for all hidden layers or one per layer",
        ),
        (
            len({len(c) for c in convs}) == 1,
            "the --discriminator-conv-* lists (channels, kernels, pads, pools, pool-strides) must be equally long",
        ),
        (
            not deconv or len(deconv) == 3,
            "--generator-deconv-shape takes three numbers C,H,W",
        ),
        (
            not deconv or (config.generator_hidden and math.prod(deconv) == config.generator_hidden[-1]),
            "--generator-deconv-shape C,H,W must hold exactly the last hidden layer's units (C*H*W)",
        ),
    ]


def _largest_rate(lr: float, gamma: float, milestones: int) -> float:
    """The larger of the largest learning rate the schedule reaches and its largest factor
    (lr_gamma > 1 raises the rate at each milestone); inf when out of range. Computed in logs:
    gamma ** milestones may overflow a float."""
    if not (0 < lr < math.inf and 0 < gamma < math.inf):
        return math.inf
    growth = milestones * max(math.log(gamma), 0.0)
    return math.exp(min(max(math.log(lr) + growth, growth), 709.0))
