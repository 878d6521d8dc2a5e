"""A trained generator G as a file that runs without gannet: ONNX (onnxruntime, browsers, other
languages) or TorchScript (`torch.jit.load`, C++'s libtorch).

The exported graph is G alone: its input is z, shape (N, latent_dim), drawn from the model's
p_z (the file's metadata names it), and for a conditional model also the class label, an (N,)
int64 tensor that the graph appends one-hot to z as gannet does (noise.append_labels); an
--all-conditionals model's inputs are z, the images (N, data_dim; hidden pixels any value) and
their masks (N, data_dim; 1 = observed). Its output is the samples, shape (N, data_dim). N is free.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from gannet.data import data_shape
from gannet.errors import GannetError
from gannet.masks import draw_masks
from gannet.networks import Generator
from gannet.noise import append_labels, masked_codes, num_classes, sample_codes, sample_noise
from gannet.outputs import check_writable, write_file

if TYPE_CHECKING:
    from gannet.config import TrainConfig

FORMATS = {"onnx": (".onnx",), "torchscript": (".pt", ".pth")}  # each format's file name endings
INSTALL_EXTRA = 'pip install -e ".[export]"'
TOLERANCE = 1e-5  # the exported file's samples against gannet's own, checked before the file is kept
ONNX_LIMIT = 2**31 - (16 << 20)  # protobuf's 2 GiB, less room for the graph itself


class LabelledGenerator(nn.Module):
    """G with the label as its own input: G([z, one_hot(label)]), (N, latent_dim), (N,) -> (N, data_dim)."""

    def __init__(self, generator: Generator, classes: int) -> None:
        super().__init__()
        self.generator, self.classes = generator, classes

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return self.generator(append_labels(z, label, self.classes))  # (N, data_dim)


class MaskedGenerator(nn.Module):
    """An --all-conditionals G with its parts as inputs: (z, observed, mask) -> the completed
    images, (N, latent_dim), (N, data_dim), (N, data_dim) -> (N, data_dim); mask 1 = observed."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, observed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.generator(masked_codes(z, observed, mask))  # (N, data_dim)


def export_generator(
    source: str | os.PathLike, path: str | os.PathLike, format: str = "onnx", flag: str = "-o"
) -> tuple[Path, dict[str, str]]:
    """Write the generator of `source` (a run directory or checkpoint, as `load_generator` takes)
    to `path` as ONNX or TorchScript; return the path and the metadata stored in the file.
    The file is checked against gannet's own samples before it is put in place."""
    from gannet import __version__
    from gannet.sampling import load_generator

    if format not in FORMATS:
        raise GannetError(f"--format {format!r} is not an export format; use {' or '.join(FORMATS)}.")
    path = check_writable(path, FORMATS[format], flag)
    if format == "onnx":
        _check_onnx_installed()
    generator, config, checkpoint = load_generator(source, "cpu")
    classes = num_classes(config)
    model = LabelledGenerator(generator, classes).eval() if classes else generator
    if generator.masked:
        model = MaskedGenerator(generator).eval()
    inputs, checks = example_inputs(config, 3), example_inputs(config, 5, seed=1)  # checked at another N
    metadata = {
        "gannet_version": __version__,
        "source": str(checkpoint),
        "noise": config.noise,  # the p_z that z must be drawn from (gannet.noise.sample_noise)
        "latent_dim": str(config.latent_dim),
        "classes": str(classes),
        "data_shape": json.dumps(list(generator.data_shape)),
        "data_dim": str(generator.data_dim),
        "inputs": ", ".join(input_names(model)) + (" (int64)" if classes else ""),
    }
    write = _write_onnx if format == "onnx" else _write_torchscript
    with torch.no_grad():
        expected = model(*checks)
        write_file(path, lambda tmp: _check(write(model, inputs, tmp, metadata), checks, expected, format))
    return path, metadata


def example_inputs(config: TrainConfig, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """The exported graph's inputs for n samples, as gannet draws them: (z,), or (z, label) for
    a conditional model, where sample_codes(config, n, seed) would give [z, one_hot(label)]."""
    rng = torch.Generator().manual_seed(seed)
    if config.all_conditionals:  # z, images with a part hidden, their masks
        z = sample_noise(config.noise, n, config.latent_dim, "cpu", rng)
        shape = data_shape(config)
        return z, torch.rand(n, math.prod(shape), generator=rng), draw_masks(n, shape, "cpu", rng)
    codes = sample_codes(config, n, "cpu", rng)
    if not num_classes(config):
        return (codes,)
    return codes[:, : config.latent_dim], codes[:, config.latent_dim :].argmax(1)  # (N, latent_dim), (N,)


def _check_onnx_installed() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401  (torch.onnx.export's exporter is written with it)
    except ImportError as missing:
        raise GannetError(
            f"ONNX export needs the optional packages onnx, onnxscript and onnxruntime ({missing.name} is "
            f"not installed); install them with `{INSTALL_EXTRA}`."
        ) from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without the warnings torch's exporters raise about their own internals (deprecations of
    torch.jit, a missing torchvision's operators): nothing a user of gannet can act on."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


def _write_onnx(model: nn.Module, inputs: tuple, tmp: Path, metadata: dict[str, str]) -> Path:
    # torch.export's exporter (dynamo=True, the default since torch 2.9; it needs onnxscript):
    # the TorchScript-based one (dynamo=False) warns that it will be removed.
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    if size > ONNX_LIMIT:
        raise GannetError(f"The generator's {size / 2**30:.1f} GiB of weights exceed ONNX's 2 GiB file limit.")
    names = input_names(model)
    with _quiet():
        program = torch.onnx.export(
            model,
            inputs,
            dynamo=True,
            verbose=False,  # no progress lines on stdout
            external_data=False,  # one file, weights inside
            input_names=names,
            output_names=["samples"],
            dynamic_shapes={name: {0: "batch"} for name in names},  # keyed by forward's arguments
        )
    program.model.metadata_props.update(metadata)
    program.save(tmp, external_data=False)
    return tmp


def _write_torchscript(model: nn.Module, inputs: tuple, tmp: Path, metadata: dict[str, str]) -> Path:
    # Traced, not scripted: G's forward branches on Python attributes (its deconvolution shape),
    # which tracing fixes and scripting cannot type. torch 2.13 marks torch.jit deprecated (in
    # favour of torch.export, whose files torch.jit.load and libtorch do not read), but it works.
    with _quiet():
        traced = torch.jit.trace(model, inputs)
        torch.jit.save(traced, str(tmp), _extra_files={"gannet.json": json.dumps(metadata)})
    return tmp


def _check(tmp: Path, inputs: tuple, expected: torch.Tensor, format: str) -> None:
    """Refuse the exported file unless it gives gannet's samples (at another N than it was traced at)."""
    got = run_exported(tmp, *inputs, format=format)
    error = (got - expected).abs().max().item()
    if not error <= TOLERANCE:
        raise GannetError(f"The exported {format} file's samples differ from gannet's by {error:.2g}; not written.")


def input_names(model: nn.Module) -> list[str]:
    """The exported graph's inputs, named as the model's forward names them: z [, label], or
    z, observed, mask."""
    return list(inspect.signature(model.forward).parameters)


def run_exported(path: str | os.PathLike, *inputs: torch.Tensor, format: str = "onnx"):
    """Samples from an exported file, (N, data_dim), given its inputs (z [, label], or z,
    observed, mask): by onnxruntime for ONNX, torch.jit.load else."""
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
        return torch.from_numpy(session.run(None, feed)[0])
    with _quiet():
        return torch.jit.load(str(path), map_location="cpu")(*inputs)
