"""The `gannet` command: a thin layer over the Python API.

Every user error ends as one sentence on stderr and exit status 2; Ctrl-C as exit 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gannet import config as config_module
from gannet import presets
from gannet.cli.evaluate import add_eval_parser, cmd_eval
from gannet.cli.parsing import Parser, add_config_flags, suggest
from gannet.config import FIELDS, TrainConfig, flag
from gannet.errors import GannetError
from gannet.interrupts import Terminated, deaf, sigterm_unwinds

ALLOW_UNVERIFIED = "--allow-unverified"


def build_parser() -> Parser:
    parser = Parser(
        prog="gannet", description="Generative Adversarial Nets (Goodfellow et al., 2014).", allow_abbrev=False
    )
    parser.add_argument(
        ALLOW_UNVERIFIED,
        action="store_true",
        help="load gannet checkpoints that carry no SHA-256 digest (old or edited files); accepted anywhere",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    train = sub.add_parser(
        "train",
        help="train a preset",
        allow_abbrev=False,
        description="Train a preset (default mnist); any hyper-parameter can be overridden.",
    )
    train.add_argument("preset_name", nargs="?", metavar="PRESET", help="a name from `gannet presets` [mnist]")
    train.add_argument("--config", type=Path, help="start from a config.json instead of a preset")
    train.add_argument("--run-dir", type=Path, help="where the run is written [runs/<preset>-<time>]")
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR_OR_CHECKPOINT",
        help="go on with a run to its --epochs; with another --run-dir, or from an older checkpoint, "
        "a branch: a new run that starts from that checkpoint with its history",
    )
    train.add_argument("--force", action="store_true", help="replace an existing run directory")
    train.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="show the progress bar [on a terminal]"
    )
    add_config_flags(train)

    sample = sub.add_parser("sample", help="draw samples from a trained generator", allow_abbrev=False)
    sample.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    sample.add_argument("-n", "--num-samples", type=int, default=64, help="how many samples [64]")
    sample.add_argument("-o", "--output", type=Path, help="picture to write [samples.png unless --npy]")
    sample.add_argument("--npy", type=Path, help="also write the raw array, shape (n, data_dim)")
    sample.add_argument("--seed", type=int, default=0, help="noise seed [0]")
    sample.add_argument("--label", type=int, help="a conditional model's class to draw [each sample a random class]")
    sample.add_argument("--device", default="cpu", help="cpu, cuda, ... [cpu]")
    sample.add_argument("--data-dir", help="data folder (1-D toys draw the data beside the samples)")

    average = sub.add_parser(
        "average",
        help="average a run's generators over its checkpoints (lifts the Parzen score)",
        allow_abbrev=False,
        description="Write the mean of the generator's weights after the given epochs (Polyak averaging; "
        "not in the paper) as a checkpoint that sample, eval and figures take.",
    )
    average.add_argument("run", metavar="RUN_DIR")
    average.add_argument("--epochs", required=True, metavar="FIRST-LAST", help="e.g. 280-550")
    average.add_argument("--every", type=int, default=1, help="take every N-th epoch from FIRST on [1]")
    average.add_argument(
        "-o", "--output", type=Path, help="file to write [RUN_DIR/checkpoints/average-FIRST-LAST-every-N.safetensors]"
    )

    add_eval_parser(sub)

    figures = sub.add_parser("figures", help="the paper's figures as PNG/PDF/SVG", allow_abbrev=False)
    figs = figures.add_subparsers(dest="figure", metavar="FIGURE", parser_class=Parser)
    figs.required = True
    specs = {
        "fig1": "Figure 1: the 1-D game in four panels (trains the toy, or takes a toy1d run)",
        "fig2": "Figure 2: samples, the right-most column the nearest training example of its neighbour",
        "fig3": "Figure 3: samples along straight lines in z",
        "classes": "a conditional model's samples, one row per class (each column one z)",
        "costs": "the tutorial's figure: J(G) against D(G(z)) for the three generator costs",
        "curves": "training curves from a run's metrics.jsonl",
    }
    for name, text in specs.items():
        fig = figs.add_parser(name, help=text, description=text, allow_abbrev=False)
        if name in ("fig2", "fig3", "classes", "curves"):
            fig.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT" if name != "curves" else "RUN_DIR")
        if name == "fig1":
            fig.add_argument("run", nargs="?", metavar="TOY1D_RUN_DIR", help="start from this run [train one]")
            fig.add_argument("--gif", type=Path, help="also animate the whole game into this GIF")
        if name in ("fig1", "fig2", "fig3", "classes"):
            fig.add_argument("--seed", type=int, default=0, help="seed [0]")
        if name == "classes":
            fig.add_argument("--columns", type=int, default=10, help="samples per class [10]")
        if name == "fig2":
            fig.add_argument("--rows", type=int, default=8, help="rows [8]")
            fig.add_argument("--columns", type=int, default=6, help="columns, the last for neighbours [6]")
            fig.add_argument("--data-dir", help="data folder (for the training set)")
        if name == "fig3":
            fig.add_argument("--rows", type=int, default=8, help="rows (lines in z) [8]")
            fig.add_argument("--steps", type=int, default=10, help="points along each line [10]")
        fig.add_argument("-o", "--output", type=Path, help=f"file to write [{name}.png]")
        fig.add_argument("--format", choices=["png", "pdf", "svg"], help="file type [from -o, else png]")

    sub.add_parser("theory", help="check Proposition 1 and Theorem 1 numerically", allow_abbrev=False)

    infer = sub.add_parser(
        "infer",
        help="train an inference net E(x) -> z for a trained generator",
        allow_abbrev=False,
        description="Learned approximate inference (paper section 7): "
        "regress the z that produced G(z), then reconstruct and interpolate real images.",
    )
    infer.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    infer.add_argument("--steps", type=int, default=2000, help="training steps of E, batch 100 [2000]")
    infer.add_argument("--seed", type=int, default=0, help="seed [0]")
    infer.add_argument("--data-dir", help="data folder (MNIST test images to reconstruct)")
    infer.add_argument("-o", "--output-dir", type=Path, help="where figures, weights and JSON go [RUN_DIR/inference]")

    sub.add_parser("presets", help="list the named presets", allow_abbrev=False)

    data = sub.add_parser("data", help="check or download data sets", allow_abbrev=False)
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser)
    data_sub.required = True
    check = data_sub.add_parser("check", help="say what is present and verified, and where")
    check.add_argument(
        "name", nargs="?", help="mnist, cifar10, tfd, toy1d, ring8, grid25 or folder:PATH [all but folders]"
    )
    check.add_argument("--data-dir")
    download = data_sub.add_parser("download", help="download and verify a data set")
    download.add_argument("name", choices=["mnist", "cifar10"])
    download.add_argument("--data-dir", help="where to put it [$GANNET_DATA, else the per-user cache]")
    return parser


def resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, Path | None]:
    """The run's config from the preset / config file / resumed run, with flag overrides."""
    overrides = {name: getattr(args, name) for name in FIELDS if hasattr(args, name)}
    if overrides.get("data_dir"):  # as meant where it was typed: later commands may run elsewhere
        overrides["data_dir"] = str(Path(overrides["data_dir"]).expanduser().resolve())
    if args.resume is not None:
        if args.config:
            raise GannetError("--resume continues a run with its own config; drop --config.")
        from gannet import checkpoints, runs
        from gannet.state import check_resume

        if not args.resume.exists():
            raise GannetError(f"Cannot resume: {args.resume} is not a gannet run directory or checkpoint.")
        run_dir = args.run_dir or checkpoints.run_dir_of(args.resume)
        if os.environ.get("RANK", "0") == "0":  # not while another process trains in it (torchrun: rank 0 asks)
            runs.check_free(run_dir)
        branch = runs.start_point(run_dir, args.resume)  # None: going on in run_dir itself
        if branch is not None:
            _, metadata, _ = checkpoints.load_weights(branch)
            previous = checkpoints.checkpoint_config(metadata, branch)
        else:
            runs.check_run_dir(run_dir, resume=True, force=False)  # a run directory, with its config.json
            previous = config_module.load(run_dir / "config.json")
        if args.preset_name and args.preset_name != previous.preset:
            raise GannetError(
                f"{args.resume} is a run of preset '{previous.preset}', not '{args.preset_name}'; "
                f"drop the preset name (a resumed run keeps its own config)."
            )
        config = config_module.from_dict(overrides, previous)
        check_resume(previous, config)  # the fields a resume may not change: refused before any work
        return config, run_dir
    if args.config is not None:
        if args.preset_name:
            raise GannetError("Give either a preset or --config, not both.")
        base = config_module.load(args.config)
    else:
        base = presets.preset_config(args.preset_name or "mnist")
    return config_module.from_dict(overrides, base), args.run_dir


def cmd_train(args: argparse.Namespace) -> int:
    from gannet.averaging import running_average_path
    from gannet.interrupts import TrainingInterrupted
    from gannet.runs import default_run_dir, next_step
    from gannet.train import train

    config, run_dir = resolve_config(args)
    if args.resume is not None and args.force:
        raise GannetError("--resume and --force contradict each other; give one.")
    run_dir = run_dir or default_run_dir(config)
    say = print if os.environ.get("RANK", "0") == "0" else (lambda *a, **k: None)  # torchrun: rank 0 speaks
    try:
        train(config, run_dir, resume=args.resume or False, force=args.force, progress_bar=args.progress)
    except TrainingInterrupted as stopped:  # Ctrl-C or SIGTERM: a checkpoint was written
        say(f"\ngannet: {stopped}", file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM before training began, or a second Ctrl-C: no new checkpoint
        terminated = isinstance(stop, Terminated)
        print(f"\ngannet: {'terminated' if terminated else 'interrupted'}; {next_step(run_dir)}.", file=sys.stderr)
        return 143 if terminated else 130
    say(f"gannet: done; samples in {run_dir / 'samples'}, checkpoints in {run_dir / 'checkpoints'}.", file=sys.stderr)
    if config.average_from and config.epochs >= config.average_from:
        say(f"gannet: the averaged generator is {running_average_path(run_dir)}.", file=sys.stderr)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from gannet.data import data_shape
    from gannet.outputs import IMAGE_SUFFIXES, check_count, check_seed, check_writable
    from gannet.resources import resolve_device
    from gannet.sampling import check_picture, check_sample_count, load_generator, sample, write_samples

    check_count("-n", args.num_samples)
    check_seed(args.seed)
    output = args.output if args.output or args.npy else Path("samples.png")
    if output is not None:
        check_writable(output, IMAGE_SUFFIXES)
    if args.npy is not None:
        check_writable(args.npy, (".npy",), "--npy")
    device = str(resolve_device(args.device))
    generator, config, path = load_generator(args.source, device)
    check_sample_count(args.num_samples, generator.data_dim, "-n")
    if output is not None:
        check_picture(args.num_samples, data_shape(config))
    samples = sample(generator, config, args.num_samples, args.seed, device, label=args.label)
    write_samples(samples, config, output, args.npy, args.data_dir or config.data_dir)
    written = " and ".join(str(p) for p in (output, args.npy) if p)
    print(f"gannet: {args.num_samples} samples from {path} written to {written}.", file=sys.stderr)
    return 0


def cmd_average(args: argparse.Namespace) -> int:
    from gannet.averaging import average_checkpoints, parse_epochs

    first, last = parse_epochs(args.epochs)
    path, count = average_checkpoints(args.run, first, last, args.every, args.output)
    print(f"gannet: the mean generator of {count} checkpoints written to {path}.")
    print(f"  score it with `gannet eval parzen {path}`; sample from it with `gannet sample {path}`.")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    for name, entry in presets.PRESETS.items():
        print(f"{name}\n    {entry['description']}")
        for key, value in entry["values"].items():
            print(f"    --{flag(key)} {','.join(map(str, value)) if isinstance(value, list) else value}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from gannet import data

    if args.data_command == "download":
        target = data.search_dirs(args.data_dir)[0]
        where = data.download_mnist(target) if args.name == "mnist" else data.download_cifar10(target)
        print(f"gannet: {args.name} is in {where}, verified.")
        return 0
    if args.name:
        print(check_dataset(args.name, args.data_dir))
        return 0
    failures = 0
    for name in data.DATA_SHAPES:  # every data set, one line each, absent ones included
        try:
            print(check_dataset(name, args.data_dir))
        except GannetError as error:
            print(f"{name}: {error}")
            failures += name == "mnist"  # the others are optional
    return 1 if failures else 0


def check_dataset(name: str, data_dir: str | None) -> str:
    """One line: is the data set present and verified, and where."""
    from gannet import data

    if name in ("toy1d", "ring8", "grid25"):
        return f"{name}: generated from a fixed seed; no files needed."
    if name.startswith(data.FOLDER_PREFIX):
        if name == data.FOLDER_PREFIX:
            raise GannetError("folder: needs the path of a folder of images, e.g. folder:~/faces.")
        folder = Path(name[len(data.FOLDER_PREFIX) :]).expanduser()
        files = data.image_files(folder)
        return f"{name}: {len(files):,} PNG/JPEG images under {folder.resolve()} (decoded and cached on first use)."
    if name == "cifar10":
        path = data.find_cifar10(data_dir)
        if path is None:
            places = ", ".join(str(d / "cifar10") for d in data.search_dirs(data_dir))
            raise GannetError(f"CIFAR-10 is not present (looked in {places}); run `gannet data download cifar10`.")
        dataset = data.load_cifar10(path)
        return f"cifar10: present and verified in {path} ({_split_sizes(dataset)})."
    if name == "tfd":
        dataset = data.tfd(data_dir)
        return f"tfd: present in {data.find_tfd(data_dir)} (fold 0: {_split_sizes(dataset, 'unlabeled')})."
    if name != "mnist":
        raise GannetError(f"Unknown data set '{name}'; known: {', '.join(data.DATA_SHAPES)}, or folder:PATH.")
    folder = data.find_mnist(data_dir)
    if folder is None:
        places = ", ".join(str(d / "mnist") for d in data.search_dirs(data_dir))
        raise GannetError(f"MNIST is not present (looked in {places}); run `gannet data download mnist`.")
    dataset = data.load_mnist(folder)  # verifies every file's checksum
    return f"mnist: present and verified in {folder} ({_split_sizes(dataset)})."


def _split_sizes(dataset, train_name: str = "train") -> str:
    return f"{train_name} {len(dataset.train):,}, valid {len(dataset.valid):,}, test {len(dataset.test):,}"


def cmd_figures(args: argparse.Namespace) -> int:
    from gannet import figures
    from gannet.outputs import IMAGE_SUFFIXES, check_count, check_seed, check_writable

    output = args.output or Path(f"{args.figure}.png")
    if args.format and output.name not in ("", ".", ".."):
        output = output.with_suffix(f".{args.format}")
    output = check_writable(output, IMAGE_SUFFIXES)
    if getattr(args, "gif", None) is not None:
        check_writable(args.gif, (".gif",), "--gif")
    for name, low in (("rows", 1), ("columns", 2), ("steps", 2)):
        if hasattr(args, name):
            check_count(f"--{name}", getattr(args, name), low)
    if hasattr(args, "seed"):
        check_seed(args.seed)
    written = figures.make(args.figure, output, args)
    print(f"gannet: wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0


def cmd_theory(args: argparse.Namespace) -> int:
    from gannet.theory import check_all, format_table

    rows = check_all()
    print(format_table(rows))
    failed = [r for r in rows if not r.passed]
    if failed:
        print(f"gannet: {len(failed)} check(s) failed.", file=sys.stderr)
        return 1
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    import torch
    from safetensors.torch import save_file

    from gannet import data, inference
    from gannet.checkpoints import run_dir_of
    from gannet.images import save_grid
    from gannet.outputs import check_count, check_folder, check_seed, write_file, write_json
    from gannet.sampling import checkpoint_dataset, load_generator

    check_count("--steps", args.steps, 100, inference.MAX_STEPS)
    check_seed(args.seed)
    out = check_folder(args.output_dir or run_dir_of(args.source) / "inference", "--output-dir")
    generator, config, path = load_generator(args.source)
    shape = data.data_shape(config)
    if len(shape) != 3:
        raise GannetError(f"`gannet infer` reconstructs images; {path} was trained on {config.dataset}.")
    if config.conditional:
        raise GannetError(f"`gannet infer` learns E(x) -> z for an unconditional G; {path} is conditional.")
    # the run's own data set (folder runs included), before the training: --data-dir overrides where it lives
    test = checkpoint_dataset(config, args.data_dir).test[:1000]
    if len(test) < 10:
        raise GannetError(f"`gannet infer` shows 10 test images; {config.dataset} has {len(test)}.")
    encoder, losses = inference.train_encoder(generator, config, args.steps, seed=args.seed)
    recon = inference.reconstruct(encoder, generator, test)
    pixel_mse = torch.nn.functional.mse_loss(recon, test).item()
    mean_image_mse = torch.nn.functional.mse_loss(test.mean(0).expand(len(test), -1), test).item()
    record = {
        "source": str(path),
        "steps": args.steps,
        "code_mse": inference.code_error(encoder, generator, config),
        "reconstruction_mse": pixel_mse,
        "mean_image_mse": mean_image_mse,
        "training_loss_every_100": losses,
    }
    pairs = torch.stack([test[:10], recon[:10]], dim=1).reshape(20, -1)  # real above its reconstruction
    save_grid(pairs, shape, out / "reconstructions.png", ncols=2)
    rows = torch.cat([inference.interpolate(encoder, generator, test[2 * i], test[2 * i + 1], 10) for i in range(4)])
    save_grid(rows, shape, out / "interpolation.png", ncols=10)
    weights = {k: v.contiguous() for k, v in encoder.state_dict().items()}
    write_file(out / "encoder.safetensors", lambda tmp: save_file(weights, str(tmp)))
    write_json(out / "inference.json", record)
    print(
        f"{path}: code MSE {record['code_mse']:.4f} (1.0 = always answering 0); reconstruction MSE "
        f"{pixel_mse:.4f} per pixel (the mean test image: {mean_image_mse:.4f})"
    )
    print(
        f"  wrote {out / 'reconstructions.png'} (each real test digit beside G(E(x))), "
        f"{out / 'interpolation.png'}, encoder.safetensors, inference.json"
    )
    return 0


COMMANDS = {
    "infer": cmd_infer,
    "figures": cmd_figures,
    "theory": cmd_theory,
    "train": cmd_train,
    "sample": cmd_sample,
    "average": cmd_average,
    "eval": cmd_eval,
    "presets": cmd_presets,
    "data": cmd_data,
}


def run(argv: list[str]) -> int:
    parser = build_parser()
    if ALLOW_UNVERIFIED in argv:  # one switch for every command that loads a checkpoint, anywhere on the line
        from gannet import checkpoints

        checkpoints.allow_unverified(True)
        try:
            return run([a for a in argv if a != ALLOW_UNVERIFIED])
        finally:
            checkpoints.allow_unverified(False)
    if not argv:  # a bare `gannet`: show what it can do
        parser.print_help()
        return 0
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise GannetError(suggest(parser, argv, unknown))
    return COMMANDS[args.command](args)


def main(argv: list[str] | None = None) -> int:
    command, argv = argv is None, sys.argv[1:] if argv is None else argv
    with sigterm_unwinds(exiting=command):  # around the handlers too: a second SIGTERM while they print is ignored
        try:
            return run(argv)
        except GannetError as error:
            print(f"gannet: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as stop:
            if command:
                deaf()  # a second Ctrl-C now would end the process by signal, not with this line
            terminated = isinstance(stop, Terminated)
            print(f"\ngannet: {'terminated' if terminated else 'interrupted'}.", file=sys.stderr)
            return 143 if terminated else 130
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
