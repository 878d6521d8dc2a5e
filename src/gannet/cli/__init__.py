"""The `gannet` command: a thin layer over the Python API.

Every user error ends as one sentence on stderr and exit status 2; Ctrl-C as exit 130.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from gannet import __version__, presets
from gannet import config as config_module
from gannet.cli.complete import add_complete_parser, cmd_complete
from gannet.cli.evaluate import add_eval_parser, cmd_eval
from gannet.cli.export import add_completion_parser, add_export_parser, cmd_completion, cmd_export
from gannet.cli.figures import add_figures_parser, cmd_figures
from gannet.cli.parsing import SOURCE_HELP, Parser, add_config_flags, add_shared_flags, config_flags, suggest
from gannet.config import FIELDS, TrainConfig
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
    parser.add_argument("--version", action="version", version=f"gannet {__version__}")
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
    add_shared_flags(train, progress="show the progress bar")
    add_config_flags(train)

    sample = sub.add_parser("sample", help="draw samples from a trained generator", allow_abbrev=False)
    sample.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    add_shared_flags(
        sample,
        num_samples=(64, "how many samples"),
        output="picture to write [samples.png unless --npy]",
    )
    sample.add_argument("--npy", type=Path, help="also write the raw array, shape (n, data_dim)")
    add_shared_flags(sample, seed="noise seed")
    sample.add_argument("--label", type=int, help="a conditional model's class to draw [each sample a random class]")
    add_shared_flags(
        sample,
        device=("cpu", "cpu, cuda, ..."),
        data_dir="data folder, for the 1-D and 2-D toys drawn over their data",
    )

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
    add_shared_flags(average, output="file to write [RUN_DIR/checkpoints/average-FIRST-LAST-every-N.safetensors]")

    add_eval_parser(sub)
    add_figures_parser(sub)
    add_export_parser(sub)
    add_complete_parser(sub)
    sub.add_parser("theory", help="check Proposition 1 and Theorem 1 numerically", allow_abbrev=False)

    infer = sub.add_parser(
        "infer",
        help="train an inference net E(x) -> z for a trained generator",
        allow_abbrev=False,
        description="Learned approximate inference (paper section 7): "
        "regress the z that produced G(z), then reconstruct and interpolate real images.",
    )
    infer.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    infer.add_argument("--steps", type=int, default=2000, help="training steps of E, batch 100, at least 100 [2000]")
    add_shared_flags(
        infer,
        seed="seed",
        data_dir="data folder of the test images to reconstruct",
        output_dir="where figures, weights and JSON go [RUN_DIR/inference; RUN_DIR/inference-CKPT for its "
        "checkpoint CKPT; ./inference-NAME for a shipped model]",
        progress="show the progress bar",
    )

    sub.add_parser("presets", help="list the named presets, as flags of `gannet train`", allow_abbrev=False)
    sub.add_parser(
        "pretrained",
        help="list the models that ship with gannet, with their scores (use a name as SOURCE)",
        allow_abbrev=False,
        description="List the trained models inside the package: what each is, its scores, the command that "
        "trained it and its file. A name goes wherever a generator is read: gannet sample mnist.",
    )

    data = sub.add_parser("data", help="check or download data sets", allow_abbrev=False)
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser)
    data_sub.required = True
    check = data_sub.add_parser("check", help="say what is present and verified, and where")
    check.add_argument(
        "name", nargs="?", help="mnist, cifar10, tfd, toy1d, ring8, grid25 or folder:PATH [all but folders]"
    )
    add_shared_flags(check, data_dir="data folder [$GANNET_DATA, else the per-user cache]")
    download = data_sub.add_parser("download", help="download and verify a data set")
    download.add_argument("name", choices=["mnist", "cifar10"])
    add_shared_flags(download, data_dir="where to put it [$GANNET_DATA, else the per-user cache]")
    add_completion_parser(sub)
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
            from gannet.pretrained import refuse_history

            refuse_history(args.resume, "training state to resume (train from it with a new run instead)")
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
    from gannet import checkpoints
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
    taken = checkpoints.sampled(run_dir)
    for path, what in ((checkpoints.average_path(run_dir), "mean"), (checkpoints.ema_path(run_dir), "moving-average")):
        if path.is_file():
            note = f", which `gannet sample {run_dir}` and `gannet eval` take," if path == taken else ""
            say(f"gannet: the {what} generator{note} is {path}.", file=sys.stderr)
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
    """Each preset's description, then the flags of `gannet train` that make it, one a line."""
    for name, entry in presets.PRESETS.items():
        print(f"{name}\n    {entry['description']}")
        for words in config_flags(entry["values"]):
            print(f"    {shlex.join(words)}")
    return 0


def cmd_pretrained(args: argparse.Namespace) -> int:
    from gannet import pretrained

    print(pretrained.describe())
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from gannet import data

    if args.data_command == "download":
        target = data.search_dirs(args.data_dir)[0]
        where = data.download_mnist(target) if args.name == "mnist" else data.download_cifar10(target)
        print(f"gannet: {args.name} is in {where}, verified.")
        return 0
    if args.name:
        print(data.check_dataset(args.name, args.data_dir))
        return 0
    failures = 0
    for name in data.DATA_SHAPES:  # every data set, one line each, absent ones included
        try:
            print(data.check_dataset(name, args.data_dir))
        except GannetError as error:
            print(f"{name}: {error}")
            failures += name == "mnist"  # the others are optional
    return 1 if failures else 0


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
    from gannet.inference import infer

    record, out = infer(args.source, args.output_dir, args.steps, args.seed, args.data_dir, args.progress)
    print(
        f"{record['source']}: code MSE {record['code_mse']:.4f} (1.0 = always answering 0); reconstruction MSE "
        f"{record['reconstruction_mse']:.4f} per pixel (the mean test image: {record['mean_image_mse']:.4f})"
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
    "export": cmd_export,
    "complete": cmd_complete,
    "presets": cmd_presets,
    "pretrained": cmd_pretrained,
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
    if args.command == "completion":  # the one command that reads the parser itself
        return cmd_completion(args, parser)
    return COMMANDS[args.command](args)


class ReaderMayLeave:
    """The command's stdout. When its reader goes away (`gannet eval parzen RUN | head -1`), the
    rest of the output is dropped and the command goes on to write its files and results: a
    print must not end a long evaluation before its -o file is written."""

    def __init__(self, stream) -> None:
        self.stream, self.gone = stream, False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self.leave()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self.leave()

    def leave(self) -> None:
        self.gone = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())  # the exit's own flush then succeeds

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    command, argv = argv is None, sys.argv[1:] if argv is None else argv
    if command and not isinstance(sys.stdout, ReaderMayLeave):
        sys.stdout = ReaderMayLeave(sys.stdout)
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
