"""`gannet eval`: the paper's Parzen protocol, sample quality and D's features, as commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from gannet.cli.parsing import SOURCE_HELP, Parser, add_shared_flags, list_of
from gannet.config import flag
from gannet.errors import GannetError


def result_help(name: str) -> str:
    """-o's help: where an evaluation's result goes by default (checkpoints.result_path)."""
    return (
        f"JSON result [RUN_DIR/{name}.json; for a checkpoint X.safetensors, {name}-X.json in its run "
        "(or its own folder); a shipped model: none]"
    )


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("eval", help="evaluate a generator", allow_abbrev=False)
    eval_sub = evaluate.add_subparsers(dest="eval_command", metavar="METRIC", parser_class=Parser)
    eval_sub.required = True
    parzen = eval_sub.add_parser(
        "parzen",
        help="Parzen-window log-likelihood of the test set (Table 1)",
        allow_abbrev=False,
        description="The paper's protocol: a Gaussian Parzen window on generator samples, sigma "
        "chosen on validation images, mean test log-likelihood ± standard error.",
    )
    parzen.add_argument("source", nargs="?", metavar="SOURCE", help=SOURCE_HELP)
    parzen.add_argument(
        "--samples", type=Path, help="evaluate an (N, 784) .npy/.npz array in [0, 1] instead (N, 2304 for tfd)"
    )
    parzen.add_argument(
        "--dataset", default="mnist", choices=["mnist", "tfd"], help="test and validation data (tfd: fold 0) [mnist]"
    )
    parzen.add_argument("--sigma", type=float, help="use this sigma (skip the validation search)")
    parzen.add_argument(
        "--sigmas", type=list_of(float), metavar="A,B,...", help="sigmas to search [logspace(-1, 0, 10)]"
    )
    add_shared_flags(parzen, num_samples="samples to draw from G")
    parzen.add_argument(
        "--num-valid", type=int, help="first N validation images [1000 for mnist, all for tfd, as the 2014 script]"
    )
    parzen.add_argument("--num-test", type=int, default=10_000, help="first N test images [10000]")
    parzen.add_argument("--batch-size", type=int, help="test rows per chunk [chosen to bound memory]")
    add_shared_flags(
        parzen,
        device="auto (cuda if present, else cpu: the estimate sums in float64, which Apple's MPS lacks), cpu, cuda",
        seed="noise seed for the samples",
        data_dir="data folder of the test and validation images",
        progress="show the progress bars",
    )
    parzen.add_argument(
        "--ceiling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score 10,000 real training images as 'samples', the estimator's ceiling",
    )
    parzen.add_argument(
        "--by-class",
        action="store_true",
        help="also print each digit class's mean test LL beside real training images' at the same sigma",
    )
    add_shared_flags(parzen, output=result_help("parzen"))

    quality = eval_sub.add_parser(
        "quality",
        help="class coverage and an MNIST FID; modes covered for the 2-D toys",
        allow_abbrev=False,
        description="Sample quality beyond Parzen: for MNIST runs, a shipped classifier's class histogram "
        "(KL to uniform) and the Fréchet distance of its features to the test set's; for ring8/grid25 "
        "runs, the modes covered and the share of samples within 3 sigma of a mode.",
    )
    quality.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    add_shared_flags(
        quality,
        num_samples="samples to draw",
        seed="noise seed",
        data_dir="data folder of MNIST's test images",
        output=result_help("quality"),
    )

    features = eval_sub.add_parser(
        "features",
        help="linear classifiers on D's features vs raw pixels, with 10, 100 and all labels",
        allow_abbrev=False,
        description="Semi-supervised use of the discriminator: test accuracy of a linear classifier on D's "
        "hidden features and on raw pixels, trained with 10 and 100 labelled examples per class and with all labels.",
    )
    features.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    add_shared_flags(features, data_dir="data folder of MNIST")
    features.add_argument("--num-train", type=int, help="use the first N training images [all 50,000]")
    features.add_argument(
        "--encoder",
        type=Path,
        help="an E(x) from `gannet infer`, probed too [RUN_DIR/inference/encoder.safetensors if any; "
        "inference-CKPT/ for its checkpoint CKPT]",
    )
    add_shared_flags(features, output=result_help("features"))

    completion = eval_sub.add_parser(
        "completion",
        help="an --all-conditionals model's completions: label accuracy and diversity per mask family",
        allow_abbrev=False,
        description="For each mask family of training but the whole image (random, rectangle, half, "
        "quadrant), complete test images n times; report the share of completions the "
        "shipped MNIST classifier reads as the image's own digit, and the mean pairwise distance between one "
        "image's completions over its hidden pixels, beside the hidden part filled with the mean training image "
        "and, with --baseline, an unconditional generator's best match to the observed pixels.",
    )
    completion.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    completion.add_argument(
        "--baseline", metavar="SOURCE", help="an unconditional MNIST generator to match the observed pixels with"
    )
    completion.add_argument(
        "--num-images", type=int, default=300, metavar="N", help="the first N test images (at most 10,000) [300]"
    )
    add_shared_flags(
        completion,
        num_samples=(8, "completions of each image, at least 2 (and random starts of the baseline's search)"),
        seed="noise and mask seed",
        data_dir="data folder of MNIST",
        output=result_help("completion"),
        progress="show the baseline's progress bar",
    )


def cmd_eval(args: argparse.Namespace) -> int:
    if args.eval_command == "completion":
        return cmd_completion(args)
    if args.eval_command == "quality":
        return cmd_quality(args)
    if args.eval_command == "features":
        return cmd_features(args)
    return cmd_parzen(args)


def cmd_features(args: argparse.Namespace) -> int:
    from gannet import checkpoints, data
    from gannet.inference import load_encoder
    from gannet.networks import build_networks
    from gannet.outputs import check_writable, write_json
    from gannet.sampling import checkpoint_dataset
    from gannet.semisupervised import probe_table

    if args.num_train is not None and args.num_train < 100:
        raise GannetError(f"--num-train must be at least 100 (10 labelled images per digit), not {args.num_train:,}.")
    output = args.output or checkpoints.result_path(args.source, "features.json")
    if output is not None:
        output = check_writable(output, (".json",))
    tensors, metadata, path = checkpoints.load_weights(args.source)
    config = checkpoints.checkpoint_config(metadata, path)
    if config.dataset != "mnist" or config.conditional or config.all_conditionals:
        kind = f"trained on {config.dataset}"
        kind = "conditional" if config.conditional else "--all-conditionals" if config.all_conditionals else kind
        raise GannetError(f"Feature probes need an unconditional D trained on MNIST; {path} is {kind}.")
    _, discriminator = build_networks(config, data.data_shape(config))
    discriminator.load_state_dict(checkpoints.split_weights(tensors)[1])
    mnist = checkpoint_dataset(config, args.data_dir)
    n = args.num_train or len(mnist.train)
    encoder_path = args.encoder or checkpoints.result_path(args.source, "inference/encoder.safetensors")
    encoder = None
    if args.encoder is not None or (encoder_path is not None and encoder_path.is_file()):
        if not encoder_path.is_file():
            raise GannetError(f"No encoder at {encoder_path}; `gannet infer` trains one.")
        encoder = load_encoder(encoder_path, config, mnist.train.shape[1])
    train_x, train_y = mnist.train[:n], mnist.labels["train"][:n]
    table = probe_table(discriminator, train_x, train_y, mnist.test, mnist.labels["test"], encoder=encoder)
    print(f"{path}: test accuracy of a linear classifier (logistic regression)")
    columns = {"discriminator": "D features", "pixels": "raw pixels", "encoder": "E(x)"}
    shown = [name for name in columns if name in table["all"]]
    print(f"  {'labels':<18} " + " ".join(f"{columns[name]:>10}" for name in shown))
    for n, row in table.items():
        label = f"all {len(mnist.train[: args.num_train or None]):,}" if n == "all" else f"{n} per class"
        print(f"  {label:<18} " + " ".join(f"{row[name]:>10.4f}" for name in shown))
    if encoder is not None:
        print(f"  E(x): {encoder_path}")
    elif encoder_path is not None:  # the place `gannet infer SOURCE` writes to holds none
        print(f"  no E(x) column: nothing at {encoder_path} (`gannet infer {args.source}` trains one)")
    record = {"source": str(path), "test_accuracy": table}
    if output is not None:
        write_json(output, {**record, "encoder": str(encoder_path)} if encoder is not None else record)
        print(f"  saved to {output}")
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    import torch

    from gannet import completion, data, quality
    from gannet.checkpoints import result_path
    from gannet.masks import MASK_FAMILIES, draw_masks
    from gannet.outputs import check_count, check_fits, check_seed, check_writable, write_json
    from gannet.sampling import checkpoint_dataset, load_generator

    check_count("--num-images", args.num_images)
    check_count("-n", args.num_samples, low=2)
    check_seed(args.seed)
    output = args.output or result_path(args.source, "completion.json")
    if output is not None:
        output = check_writable(output, (".json",))
    generator, config, path = load_generator(args.source)
    completion.check_completes(generator, path)
    if config.dataset != "mnist":
        raise GannetError(
            f"Completion scores read digits with the MNIST classifier; {path} was trained on {config.dataset}."
        )
    baseline = None
    if args.baseline is not None:
        baseline, baseline_config, baseline_path = load_generator(args.baseline)
        if baseline.masked or baseline_config.conditional or baseline_config.dataset != "mnist":
            raise GannetError(f"--baseline takes an unconditional MNIST generator; {baseline_path} is not one.")
    mnist = checkpoint_dataset(config, args.data_dir)
    if args.num_images > len(mnist.test):
        raise GannetError(f"--num-images: MNIST has {len(mnist.test):,} test images, not {args.num_images:,}.")
    # the completions' inputs and images of one family at once, float32
    drawn = args.num_images * args.num_samples * (config.latent_dim + 3 * generator.data_dim) * 4
    check_fits(f"--num-images {args.num_images:,} with -n {args.num_samples:,}", 2 * drawn, "ask for fewer")
    images, labels = mnist.test[: args.num_images], mnist.labels["test"][: args.num_images]
    classifier = quality.load_classifier()
    rng = torch.Generator().manual_seed(args.seed)
    table: dict[str, dict] = {}
    for family in (f for f in MASK_FAMILIES if f != "all"):
        masks = draw_masks(len(images), tuple(data.DATA_SHAPES["mnist"]), "cpu", rng, family)
        filled = completion.complete(generator, config, images, masks, args.num_samples, args.seed)
        row = {
            "model": completion.scores(filled, masks, labels, classifier),
            "mean image": completion.scores(
                completion.mean_fill(images, masks, mnist.train), masks, labels, classifier
            ),
        }
        if baseline is not None:
            matched = completion.best_match(
                baseline, baseline_config, images, masks, args.num_samples, seed=args.seed, progress=args.progress
            )
            row["best match"] = completion.scores(matched, masks, labels, classifier)
        row["hidden_share"] = 1 - masks.mean().item()
        table[family] = row
    methods = [m for m in ("model", "best match", "mean image") if m in table["random"]]
    print(f"{path}: {len(images):,} test images, {args.num_samples} completions each; accuracy / diversity")
    print(f"  {'masks':<10} {'hidden':>7} " + " ".join(f"{m:>18}" for m in methods))
    for family, row in table.items():
        cells = " ".join(f"{100 * row[m]['accuracy']:>9.1f} % / {row[m]['diversity']:>4.2f}" for m in methods)
        print(f"  {family:<10} {100 * row['hidden_share']:>6.1f}% {cells}")
    record = {
        "source": str(path),
        "baseline": baseline and str(baseline_path),
        "num_images": len(images),
        "table": table,
    }
    if output is not None:
        write_json(output, record)
        print(f"  saved to {output}")
    return 0


def cmd_quality(args: argparse.Namespace) -> int:
    import dataclasses

    from gannet import data, quality
    from gannet.checkpoints import result_path
    from gannet.outputs import check_count, check_seed, check_writable, write_json
    from gannet.sampling import check_sample_count, checkpoint_dataset, load_generator, sample

    check_count("--num-samples", args.num_samples, low=2)
    check_seed(args.seed)
    output = args.output or result_path(args.source, "quality.json")
    if output is not None:
        output = check_writable(output, (".json",))
    generator, config, path = load_generator(args.source)
    check_sample_count(args.num_samples, generator.data_dim, "--num-samples")
    record: dict = {"source": str(path), "dataset": config.dataset, "num_samples": args.num_samples}
    if config.dataset in ("ring8", "grid25"):
        modes, std = data.toy2d_modes(config.dataset)
        result = quality.toy_quality(sample(generator, config, args.num_samples, args.seed), modes, std)
        record.update(dataclasses.asdict(result))
        print(
            f"{path}: {result.modes_covered}/{result.modes} modes covered, "
            f"{100 * result.high_quality:.1f} % of samples within 3 sigma of a mode"
        )
    elif config.dataset == "mnist":
        test = checkpoint_dataset(config, args.data_dir).test
        record.update(quality.mnist_quality(generator, config, test, args.num_samples, args.seed))
        print(f"{path}: MNIST FID {record['mnist_fid']:.2f}, class KL to uniform {record['kl_to_uniform']:.4f} nats")
        print("  predicted classes: " + " ".join(f"{d}:{c}" for d, c in enumerate(record["class_counts"])))
        print(f"  mean distance from a sample to its nearest test image: {record['nearest_test_distance']:.3f}")
        if config.conditional:  # does G draw the digit it is asked for?
            print(
                f"  label accuracy: {100 * record['label_accuracy']:.1f} % of samples classified as the digit asked for"
            )
    else:
        raise GannetError(
            f"Quality metrics exist for mnist, ring8 and grid25 runs; {path} was trained on {config.dataset}."
        )
    if output is not None:
        write_json(output, record)
        print(f"  saved to {output}")
    return 0


def cmd_parzen(args: argparse.Namespace) -> int:
    import math

    from gannet import checkpoints, data, parzen
    from gannet.checkpoints import result_path
    from gannet.outputs import check_count, check_fits, check_seed, check_writable, write_json
    from gannet.resources import resolve_device
    from gannet.sampling import check_sample_count, checkpoint_dataset, load_generator, load_samples_file, sample

    if (args.source is None) == (args.samples is None):
        raise GannetError("Give a run directory or checkpoint, or --samples FILE (one of the two).")
    if args.num_valid is None:
        args.num_valid = 1_000 if args.dataset == "mnist" else 1 << 62
    for name in ("num_samples", "num_valid", "num_test", "batch_size"):
        if getattr(args, name) is not None:
            check_count(f"--{flag(name)}", getattr(args, name))
    if args.sigma is not None:
        parzen.check_sigmas([args.sigma], "--sigma")
    if args.sigmas is not None:
        parzen.check_sigmas(args.sigmas)
    check_seed(args.seed)
    output = args.output or (result_path(args.source, "parzen.json") if args.source is not None else None)
    if output is not None:
        output = check_writable(output, (".json",))
    device = resolve_device(args.device, float64=True)
    # the samples first: a wrong file or model is reported before the data set is loaded and verified
    if args.samples is not None:
        samples = load_samples_file(args.samples, math.prod(data.DATA_SHAPES[args.dataset]))
        origin = str(args.samples)
        dataset = data.load_dataset(args.dataset, args.data_dir)
    else:
        generator, config, path = load_generator(args.source, str(device))
        if config.dataset != args.dataset:
            raise GannetError(f"{path} was trained on {config.dataset}, not {args.dataset}.")
        check_sample_count(args.num_samples, generator.data_dim, "--num-samples")
        samples = sample(generator, config, args.num_samples, args.seed, str(device))
        origin = str(path)
        dataset = checkpoint_dataset(config, args.data_dir)  # where the run found it, unless --data-dir
    sigmas = args.sigmas or parzen.PAPER_SIGMAS
    valid, test = dataset.valid[: args.num_valid].to(device), dataset.test[: args.num_test].to(device)
    if args.batch_size is not None:  # blocks of (rows, samples) distances and their exponentials, float32
        rows = min(args.batch_size, max(len(valid), len(test)))
        check_fits(f"--batch-size {args.batch_size:,} with {len(samples):,} samples", 8 * rows * len(samples))
    labels = dataset.labels["test"][: args.num_test] if "test" in dataset.labels else None
    if args.by_class and labels is None:
        raise GannetError(f"--by-class needs test labels, and {args.dataset}'s test images have none.")
    protocol = {"sigmas": sigmas, "chunk_size": args.batch_size, "test_labels": labels, "progress": args.progress}
    result = parzen.evaluate(samples.to(device), valid, test, sigma=args.sigma, **protocol)
    real_images = dataset.train[: len(samples)]  # the ceiling's "samples"
    print(f"{origin}: {result}  [{result.num_samples:,} samples, {result.num_test:,} test images]")
    record = {"source": origin, "dataset": args.dataset, "num_valid": len(valid), **result.to_dict()}
    ceiling = None
    if args.ceiling:
        ceiling = parzen.ceiling(args.dataset, real_images, valid, test, sigma=args.sigma, **protocol)
        print(f"  ceiling: {len(samples):,} real training images as samples: {ceiling}")
        record["ceiling"] = ceiling.to_dict()
    if args.by_class:
        real = ceiling
        if ceiling is not None and ceiling.sigma != result.sigma:  # classes compare at one sigma
            real = parzen.evaluate(real_images.to(device), valid, test, sigma=result.sigma, **protocol)
        print(parzen.format_by_class(result, real))
    table = "; ".join(f"{k} {v} ± {e}" for k, (v, e) in parzen.TABLE1[args.dataset].items())
    print(f"  Table 1 ({args.dataset.upper()}): {table}")
    last = checkpoints.resolve(args.source) if args.source is not None and Path(args.source).is_dir() else None
    if last is not None and Path(origin) != last:  # the run stands for its mean or moving average
        kept = checkpoints.result_path(last, "parzen.json")
        print(f"  the run's last generator: gannet eval parzen {last} (with the same options; into {kept})")
    if output is not None:
        write_json(output, record)
        print(f"  saved to {output}")
    return 0
