"""The command line's parsing: an ArgumentParser whose errors are one sentence, list and
optional value types, one flag per TrainConfig field (in groups), the flags that several
commands share (declared once), and "did you mean" for unknown options."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from gannet.config import FIELDS, TrainConfig, field_type, flag
from gannet.errors import GannetError


class Parser(argparse.ArgumentParser):
    """argparse whose errors become GannetError (one sentence, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        where = "" if self.prog == "gannet" else f"{self.prog}: "  # main() already says "gannet: error:"
        for action in self._actions:  # a sub-command left out: name the ones there are
            if isinstance(action, argparse._SubParsersAction) and message.endswith(f"required: {action.metavar}"):
                message += f" (one of {', '.join(action.choices)})"
        raise GannetError(f"{where}{message}.")


def list_of(scalar: type):
    def parse(text: str) -> list:
        if not text.replace(",", "").strip():
            return []  # `--lr-milestones ''`: none (each command says whether none will do)
        parts = text.split(",")
        if any(not part.strip() for part in parts):  # "1,,2" or "1,": a number left out, not meant
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {scalar.__name__}s, got an empty item in {text!r}"
            )
        try:
            return [scalar(part) for part in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {scalar.__name__}s, got {text!r}") from None

    parse.__name__ = f"list of {scalar.__name__}"
    return parse


def _or_none(scalar: type):
    def parse(text: str):
        return None if text.lower() == "none" else scalar(text)

    parse.__name__ = scalar.__name__
    return parse


# `gannet train --help` shows the TrainConfig fields in these groups, in this order. Every field
# but `preset` (the positional PRESET) is in exactly one (tests/test_cli.py checks it).
CONFIG_GROUPS: dict[str, tuple[str, ...]] = {
    "data": ("dataset", "image_size", "channels", "data_dir", "download", "train_limit"),
    "model (G and D; defaults: the paper's MNIST model)": (
        "latent_dim",
        "noise",
        "conditional",
        "all_conditionals",
        "generator_hidden",
        "generator_activations",
        "generator_output",
        "generator_init",
        "generator_output_init",
        "generator_deconv_shape",
        "generator_deconv_kernel",
        "generator_deconv_stride",
        "generator_bias_from_data",
        "discriminator_hidden",
        "maxout_pieces",
        "discriminator_conv_channels",
        "discriminator_conv_kernels",
        "discriminator_conv_pads",
        "discriminator_conv_pools",
        "discriminator_conv_pool_strides",
        "discriminator_conv_pieces",
        "discriminator_init",
        "input_keep",
        "hidden_keep",
    ),
    "optimiser (the game's updates and their schedule)": (
        "epochs",
        "batch_size",
        "k",
        "update",
        "generator_loss",
        "optimizer",
        "lr",
        "generator_lr",
        "lr_decay",
        "lr_min",
        "lr_milestones",
        "lr_gamma",
        "max_col_norm",
        "momentum",
        "momentum_final",
        "momentum_start_epoch",
        "momentum_saturate_epoch",
        "adam_betas",
    ),
    "run (where it runs, what it logs and keeps)": (
        "seed",
        "device",
        "precision",
        "cuda_graphs",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "keep_every",
        "grid_size",
        "parzen_every",
        "parzen_samples",
        "average_from",
        "ema_decay",
    ),
}
NOT_FLAGS = ("preset",)  # the positional PRESET names it


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, in CONFIG_GROUPS' groups and order; absent flags leave the
    preset's value alone. A field missing from CONFIG_GROUPS still gets its flag, in a group
    "other", rather than vanishing from the command line."""
    for title, names in CONFIG_GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            _add_config_flag(group, name)
    grouped = {name for names in CONFIG_GROUPS.values() for name in names}
    others = [name for name in FIELDS if name not in grouped and name not in NOT_FLAGS]
    if others:
        group = parser.add_argument_group("other")
        for name in others:
            _add_config_flag(group, name)


def _add_config_flag(group: argparse._ArgumentGroup, name: str) -> None:
    f = FIELDS[name]
    scalar, is_list, optional = field_type(name)
    default = getattr(TrainConfig(), name)
    shown = ",".join(map(str, default)) if is_list else default
    kwargs = {"dest": name, "default": argparse.SUPPRESS, "help": f"{f.metadata['help']} [{shown}]"}
    if scalar is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif is_list:
        kwargs.update(type=list_of(scalar), metavar="A,B")
    else:
        kwargs.update(type=_or_none(scalar) if optional else scalar, choices=f.metadata["choices"])
        kwargs["metavar"] = "{" + ",".join(f.metadata["choices"]) + "}" if f.metadata["choices"] else None
    aliases = ["--data"] if name == "dataset" else []  # `--data folder:PATH`, as users write it
    group.add_argument(f"--{flag(name)}", *aliases, **kwargs)


def config_flags(values: dict) -> list[list[str]]:
    """Config values as the train command's flags, each as the words that parse back to it:
    booleans as --flag / --no-flag, lists comma-separated, None as `none`."""
    flags = []
    for name, value in values.items():
        if isinstance(value, bool):
            flags.append([f"--{'' if value else 'no-'}{flag(name)}"])
        else:
            text = ",".join(map(str, value)) if isinstance(value, list) else "none" if value is None else str(value)
            flags.append([f"--{flag(name)}", text])
    return flags


# The flags that sample, eval, figures, infer and data share: name, type, default and what the
# default means, declared here once; each command says in its help what the flag is for there.
RUN_DATA = "[the run's own (its config.json), else $GANNET_DATA, else the per-user cache]"
SHARED_FLAGS: dict[str, tuple[tuple[str, ...], dict]] = {
    "seed": (("--seed",), {"type": int, "default": 0, "metavar": "N"}),
    "data_dir": (("--data-dir",), {"metavar": "DIR", "shown": RUN_DATA}),
    "device": (("--device",), {"default": "auto"}),
    "num_samples": (("-n", "--num-samples"), {"type": int, "default": 10_000, "metavar": "N"}),
    "output": (("-o", "--output"), {"type": Path, "metavar": "FILE"}),
    "output_dir": (("-o", "--output-dir"), {"type": Path, "metavar": "DIR"}),
    "progress": (
        ("--progress",),
        {"action": argparse.BooleanOptionalAction, "default": None, "shown": "[on a terminal]"},
    ),
}


# what a generator to sample, evaluate or export may be, in every command that takes one
SOURCE_HELP = (
    "a run directory (its mean generator if trained with --average-from, else its moving average if trained "
    "with --ema-decay, else its newest checkpoint), a .safetensors checkpoint, or a shipped model's name "
    "(gannet pretrained)"
)


def add_shared_flags(parser: argparse.ArgumentParser, **helps: str | tuple) -> None:
    """Add the SHARED_FLAGS named by keyword, each with its help text for this command, or with
    (default, help) where this command's default differs. What the default is follows the help,
    unless the help says it itself ("[...]")."""
    for name, help in helps.items():
        options, kwargs = SHARED_FLAGS[name]
        kwargs = dict(kwargs)
        shown = kwargs.pop("shown", None)
        default, help = help if isinstance(help, tuple) else (kwargs.get("default"), help)
        if shown is None and default is not None:
            shown = f"[{default:,}]" if type(default) is int else f"[{default}]"
        if shown and "[" not in help:
            help = f"{help} {shown}"
        parser.add_argument(*options, **{**kwargs, "dest": name, "default": default, "help": help})


def suggest(parser: argparse.ArgumentParser, argv: list[str], unknown: list[str]) -> str:
    """'unknown option --lrr; did you mean --lr?' for the first unknown option."""
    chosen = parser
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for word in argv:
            if word in action.choices:
                chosen = action.choices[word]
                break
    known = [s for a in chosen._actions for s in a.option_strings if s.startswith("--")]
    option = next((u.split("=")[0] for u in unknown if u.startswith("-")), None)
    if option is None:
        return f"unexpected argument(s): {' '.join(unknown)}."
    close = difflib.get_close_matches(option, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f"; see `{chosen.prog} --help`."
    return f"{chosen.prog}: unknown option {option}{hint}"
