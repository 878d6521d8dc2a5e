"""`gannet complete`: fill in any hidden part of real images with an --all-conditionals model."""

from __future__ import annotations

import argparse
import sys

from gannet.cli.parsing import SOURCE_HELP, add_shared_flags
from gannet.masks import MASK_NAMES


def add_complete_parser(sub: argparse._SubParsersAction) -> None:
    complete = sub.add_parser(
        "complete",
        help="fill in the hidden part of real images (a model trained with --all-conditionals)",
        allow_abbrev=False,
        description="For each real image: the image with its hidden part shaded, then N completions drawn "
        "by G from the observed pixels (one row per image).",
    )
    complete.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    complete.add_argument(
        "--mask",
        default="top-half",
        help=f"what is hidden: {', '.join(MASK_NAMES)} (dark or transparent = hidden) [top-half]",
    )
    complete.add_argument("--images", default="test:0-9", help="which real images, SPLIT:INDICES [test:0-9]")
    add_shared_flags(
        complete,
        num_samples=(8, "completions of each image"),
        output="picture to write [completions.png]",
        seed="noise seed (and random:RATE's mask)",
        device=("cpu", "cpu, cuda, ..."),
        data_dir="data folder of the real images",
    )


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def cmd_complete(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from gannet import completion
    from gannet.data import data_shape
    from gannet.images import check_grid, save_grid
    from gannet.masks import named_mask
    from gannet.outputs import IMAGE_SUFFIXES, check_count, check_seed, check_writable
    from gannet.resources import resolve_device
    from gannet.sampling import checkpoint_dataset, load_generator

    check_count("-n", args.num_samples)
    check_seed(args.seed)
    output = check_writable(args.output or Path("completions.png"), IMAGE_SUFFIXES)
    device = str(resolve_device(args.device))
    generator, config, path = load_generator(args.source, device)
    completion.check_completes(generator, path)
    shape = data_shape(config)
    mask = named_mask(args.mask, shape, args.seed)
    images, _, indices = completion.select_images(args.images, checkpoint_dataset(config, args.data_dir))
    check_grid(
        f"-n {args.num_samples:,} with {len(indices):,} images",
        len(indices) * (args.num_samples + 1),
        shape,
        args.num_samples + 1,
        scale=2,
    )
    filled = completion.complete(generator, config, images, mask, args.num_samples, args.seed)  # (N, n, D)
    rows = torch.cat([completion.shown_masked(images, mask, shape).unsqueeze(1), filled], dim=1)  # (N, 1 + n, D)
    save_grid(rows.reshape(-1, rows.shape[-1]), shape, output, ncols=args.num_samples + 1)
    hidden = int((mask == 0).sum()) // shape[0]
    split = args.images.split(":")[0]
    print(
        f"gannet: {plural(args.num_samples, 'completion')} of {plural(len(indices), split + ' image')} "
        f"({hidden} of {shape[1] * shape[2]} pixels hidden: {args.mask}) from {path} written to {output}.",
        file=sys.stderr,
    )
    return 0
