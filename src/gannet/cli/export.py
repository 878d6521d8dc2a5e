"""`gannet export` (G as an ONNX or TorchScript file, by gannet.export) and `gannet completion`
(the shell's completion script, generated from the parser by shtab)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gannet.cli.parsing import SOURCE_HELP, add_shared_flags

EXPORT_SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript"}
DEFAULT_FILES = {"onnx": "generator.onnx", "torchscript": "generator.pt"}
SHELLS = ("bash", "zsh")


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export",
        help="write the generator as an ONNX or TorchScript file",
        allow_abbrev=False,
        description="Write G alone as a file that runs without gannet: input z (and a conditional model's "
        "class label, int64; an --all-conditionals model's images and masks), output the samples (N, data_dim), "
        "N free. The file's metadata names p_z.",
    )
    export.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    export.add_argument(
        "--format", choices=["onnx", "torchscript"], help="file type [from -o's suffix (.onnx, .pt), else onnx]"
    )
    add_shared_flags(export, output="file to write [generator.onnx, or generator.pt for torchscript]")


def add_completion_parser(sub: argparse._SubParsersAction) -> None:
    completion = sub.add_parser(
        "completion",
        help="print the shell completion script (bash or zsh)",
        allow_abbrev=False,
        description="Print a completion script for gannet's commands and flags; docs/usage.md says where it goes.",
    )
    completion.add_argument("shell", choices=SHELLS)


def cmd_export(args: argparse.Namespace) -> int:
    from gannet.export import export_generator

    suffix = args.output.suffix.lower() if args.output else ""
    format = args.format or EXPORT_SUFFIXES.get(suffix, "onnx")
    path, metadata = export_generator(args.source, args.output or Path(DEFAULT_FILES[format]), format)
    classes = int(metadata["classes"])
    label = f", and label: (N,) int64 from 0 to {classes - 1}" if classes else ""
    if metadata["inputs"].startswith("z, observed"):
        label = f", observed and mask: (N, {metadata['data_dim']}) each (mask 1 = observed, 0 = drawn)"
    print(f"gannet: the generator of {metadata['source']} written to {path} ({format}).", file=sys.stderr)
    print(
        f"  input z: (N, {metadata['latent_dim']}) float32 from p_z = {metadata['noise']}{label}; "
        f"output: (N, {metadata['data_dim']}) samples.",
        file=sys.stderr,
    )
    return 0


def cmd_completion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import shtab

    _complete_paths(parser, shtab.FILE)
    print(shtab.complete(parser, shell=args.shell), end="")
    return 0


PATH_WORDS = ("RUN_DIR", "CHECKPOINT", "SOURCE", "FILE", "DIR")  # metavars of arguments that name files or folders


def _complete_paths(parser: argparse.ArgumentParser, files: dict) -> None:
    """Mark every argument that names a file or folder, in every subcommand, to complete as a
    path: shtab completes an unmarked argument with nothing."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in set(action.choices.values()):
                _complete_paths(subparser, files)
        elif action.type is Path or any(word in str(action.metavar or "") for word in PATH_WORDS):
            action.complete = files  # type: ignore[attr-defined]  # shtab reads this attribute
