"""The command line's parsing: an ArgumentParser whose errors are one sentence, list and
optional value types, one flag per TrainConfig field, and "did you mean" for unknown options."""

from __future__ import annotations

import argparse
import difflib

from gannet.config import FIELDS, TrainConfig, field_type, flag
from gannet.errors import GannetError


class Parser(argparse.ArgumentParser):
    """argparse whose errors become GannetError (one sentence, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        where = "" if self.prog == "gannet" else f"{self.prog}: "  # main() already says "gannet: error:"
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


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field; absent flags leave the preset's value alone."""
    defaults = TrainConfig()
    group = parser.add_argument_group("hyper-parameters (defaults: the paper's MNIST model)")
    for name, f in FIELDS.items():
        if name == "preset":
            continue
        scalar, is_list, optional = field_type(name)
        default = getattr(defaults, name)
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
