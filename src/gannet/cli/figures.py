"""`gannet figures`: the paper's figures, drawn by gannet.figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gannet.cli.parsing import SOURCE_HELP, Parser, add_shared_flags

FIGURES = {
    "fig1": "Figure 1: the 1-D game in four panels (trains the toy, or takes a toy1d run)",
    "fig2": "Figure 2: samples, the right-most column the nearest training example of its neighbour",
    "fig3": "Figure 3: samples along straight lines in z",
    "classes": "a conditional model's samples, one row per class (each column one z)",
    "costs": "the tutorial's figure: J(G) against D(G(z)) for the three generator costs",
    "curves": "training curves from a run's metrics.jsonl (several runs overlaid)",
}
# what each figure takes besides -o and --format, as gannet.figures.make's keywords
OPTIONS = ("run", "seed", "rows", "columns", "steps", "data_dir", "gif", "progress", "x")


def add_figures_parser(sub: argparse._SubParsersAction) -> None:
    figures = sub.add_parser("figures", help="the paper's figures as PNG/PDF/SVG", allow_abbrev=False)
    figs = figures.add_subparsers(dest="figure", metavar="FIGURE", parser_class=Parser)
    figs.required = True
    for name, text in FIGURES.items():
        fig = figs.add_parser(name, help=text, description=text, allow_abbrev=False)
        if name in ("fig2", "fig3", "classes", "curves"):
            if name == "curves":
                fig.add_argument("run", metavar="RUN_DIR", nargs="+", help="one run, or several to overlay")
                fig.add_argument(
                    "--x", choices=["step", "epoch", "minutes"], default="step", help="the horizontal axis [step]"
                )
            else:
                fig.add_argument("run", metavar="SOURCE", help=SOURCE_HELP)
        if name == "fig1":
            fig.add_argument("run", nargs="?", metavar="TOY1D_RUN_DIR", help="start from this run [train one]")
            fig.add_argument("--gif", type=Path, help="also animate the whole game into this GIF")
        if name in ("fig1", "fig2", "fig3", "classes"):
            add_shared_flags(fig, seed="seed")
        if name == "classes":
            fig.add_argument("--columns", type=int, default=10, help="samples per class [10]")
        if name == "fig2":
            fig.add_argument("--rows", type=int, default=8, help="rows [8]")
            fig.add_argument("--columns", type=int, default=6, help="columns, the last for neighbours [6]")
            add_shared_flags(fig, data_dir="data folder of the training set")
        if name == "fig3":
            fig.add_argument("--rows", type=int, default=8, help="rows (lines in z) [8]")
            fig.add_argument("--steps", type=int, default=10, help="points along each line [10]")
        add_shared_flags(fig, output=f"file to write [{name}.png]")
        fig.add_argument("--format", choices=["png", "pdf", "svg"], help="file type [from -o, else png]")
        if name == "fig1":  # the one that takes a while (a minute or more on a CPU)
            add_shared_flags(fig, progress="show the progress bar")


def cmd_figures(args: argparse.Namespace) -> int:
    from gannet import figures
    from gannet.errors import GannetError
    from gannet.outputs import IMAGE_SUFFIXES, check_writable

    output = args.output or Path(f"{args.figure}.png")
    suffix = output.suffix.lower()
    if args.format and suffix in IMAGE_SUFFIXES and suffix != f".{args.format}":
        raise GannetError(f"-o {output.name} and --format {args.format} disagree; give one of them.")
    if args.format and output.name not in ("", ".", ".."):
        output = output.with_suffix(f".{args.format}")
    output = check_writable(output, IMAGE_SUFFIXES)
    if getattr(args, "gif", None) is not None:
        check_writable(args.gif, (".gif",), "--gif")
    written = figures.make(args.figure, output, **{k: getattr(args, k) for k in OPTIONS if hasattr(args, k)})
    source = ""
    if args.figure in ("fig2", "fig3", "classes"):  # which generator: a run may stand for its moving average
        from gannet import checkpoints

        source = f" from {checkpoints.resolve(checkpoints.sampled(args.run))}"
    print(f"gannet: wrote {', '.join(map(str, written))}{source}", file=sys.stderr)
    return 0
