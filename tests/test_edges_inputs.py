"""Hostile configs and data: every one ends as one sentence on stderr (exit 2) before a run
directory is written, never a traceback, a hang or a silently wrong result."""

from __future__ import annotations

import json
import struct
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from gannet import config as config_module
from gannet import resources
from gannet.data import decode_image
from gannet.networks import build_networks
from gannet.presets import PRESETS, preset_config

from .conftest import gannet

TOY = ["train", "toy1d", "--epochs", 1, "--no-progress", "--device", "cpu"]
GIB = 1 << 30


def refused(capsys, tmp_path, *args, words: tuple[str, ...] = ()) -> str:
    """Run the CLI; assert exit 2, one line naming `words`, no traceback, no run directory."""
    run_dir = tmp_path / "run"
    extra = ["--run-dir", run_dir] if args[0] == "train" else []
    code, out = gannet(*args, *extra, capsys=capsys)
    err = "".join(line for line in out.err.splitlines(True) if not line.startswith("gannet: training "))
    assert code == 2, err
    assert err.startswith("gannet: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, (word, err)
    assert not run_dir.exists()
    return err


@pytest.fixture
def little_memory(monkeypatch):
    """This machine has 2 GiB available, whatever it really has."""
    monkeypatch.setattr(resources, "available_memory", lambda: 2 * GIB)


# --- flags --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--seed", "-1"], ("--seed", "at least 0")),
        (["--seed", str(2**32)], ("--seed", "at most 4,294,967,295")),
        (["--seed", "99999999999999999999"], ("--seed", "at most")),
        (["--generator-init", "inf"], ("--generator-init", "(0, 100.0]")),
        (["--discriminator-init", "nan"], ("--discriminator-init",)),
        (["--generator-output-init", "inf"], ("--generator-output-init",)),
        (["--max-col-norm", "inf"], ("--max-col-norm", "positive number")),
        (["--lr-min", "nan"], ("--lr-min",)),
        (["--lr-min", "inf"], ("--lr-min",)),
        (["--lr-min", "1e300"], ("--lr-min", "from 0 to")),  # was a float32 overflow traceback
        (["--max-col-norm", "1e300"], ("--max-col-norm", "at most")),
        (["--generator-hidden", "32,,32"], ("--generator-hidden", "empty item")),  # was read as 32,32
        (["--lr-milestones", "1,"], ("--lr-milestones", "empty item")),
        (["--lr-decay", "inf"], ("--lr-decay",)),
        (["--lr-decay", "nan"], ("--lr-decay",)),
        (["--lr", "1e308"], ("--lr", "at most")),
        (["--lr-gamma", "1e200", "--lr-milestones", "1,2"], ("--lr-gamma", "--lr-milestones")),
        (["--momentum", "nan"], ("momentum",)),
        (["--input-keep", "nan"], ("--input-keep",)),
        (["--adam-betas", "nan,0.9"], ("--adam-betas",)),
        (["--grid-size", "101"], ("--grid-size", "at most 100")),
        (["--parzen-samples", "1000001"], ("--parzen-samples", "at most 1,000,000")),
        (["--train-limit", "99999999999999999999"], ("--train-limit", "at most")),
        (["--discriminator-hidden", "10000000000"], ("--discriminator-hidden", "at most")),
        (["--momentum-start-epoch", "-5"], ("--momentum-start-epoch", "at least 0")),
        (["--keep-every", "-1"], ("--keep-every", "at least 0")),
        (["--data", "folder:"], ("--data", "folder:PATH")),
        (["--channels", "2"], ("--channels", "1 or 3")),
    ],
)
def test_hostile_flags_are_one_sentence(capsys, tmp_path, flags, words):
    refused(capsys, tmp_path, *TOY, *flags, words=words)


@pytest.mark.parametrize(
    "flags, flag",
    [
        (["--latent-dim", "1000000000"], "--latent-dim"),
        (["--generator-hidden", "100000000,1"], "--generator-hidden"),
        (["--maxout-pieces", "1000000000"], "--maxout-pieces"),
        (["--batch-size", "1000000000"], "--batch-size"),
        (["--data", "folder:/nowhere", "--image-size", "100000"], "--image-size"),
        (["--data", "mnist", "--grid-size", "100", "--generator-hidden", "100000"], "--grid-size"),
    ],
)
def test_configs_beyond_memory_are_refused_naming_the_flag(capsys, tmp_path, little_memory, flags, flag):
    err = refused(capsys, tmp_path, *TOY, *flags, words=(flag, "GiB", "2.0 GiB is available", f"lower {flag}"))
    assert "asks for more memory" in err


def test_the_parzen_monitor_is_counted_only_when_it_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda: GIB)
    big = ["--parzen-samples", "1000000", "--latent-dim", "500"]
    refused(capsys, tmp_path, *TOY, *big, "--parzen-every", "1", words=("--parzen-samples",))
    config = preset_config("toy1d", parzen_samples=1_000_000, latent_dim=500, parzen_every=0)
    assert "--parzen-samples" not in [need.flag for need in resources.needs(config)]


def test_every_preset_fits_and_validates_cheaply(monkeypatch):
    for name in PRESETS:
        for conditional in (False, True) if PRESETS[name]["values"].get("dataset", "mnist") != "tfd" else (False,):
            if conditional and PRESETS[name]["values"].get("dataset") == "toy1d":
                continue
            config = preset_config(name, conditional=conditional)
            assert sum(n.bytes for n in resources.needs(config)) < 4 * GIB  # what the paper's models take
    config = preset_config("cifar10-fc")
    started = time.perf_counter()
    for _ in range(100):
        config.validate()
    assert (time.perf_counter() - started) / 100 < 0.01  # arithmetic, not allocation


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"conditional": True, "generator_hidden": [50, 60], "discriminator_hidden": [30]},
        {"dataset": "folder:/x", "image_size": 17, "channels": 3, "generator_hidden": [5]},
        {"dataset": "ring8", "conditional": True, "generator_hidden": [7], "discriminator_hidden": [9, 4]},
    ],
)
def test_the_parameter_estimate_counts_what_the_networks_hold(overrides):
    config = preset_config("mnist", **overrides)
    from gannet.data import data_shape

    generator, discriminator = build_networks(config, data_shape(config))
    real = sum(p.numel() for p in [*generator.parameters(), *discriminator.parameters()])
    assert resources.parameter_count(config) == real


@pytest.mark.parametrize("pads, pools, strides", [([4, 3, 3], [4, 4, 2], [2, 2, 2]), ([0, 1, 2], [3, 2, 2], [2, 3, 1])])
def test_the_parameter_estimate_follows_convolutions(pads, pools, strides):
    config = preset_config(
        "cifar10-conv",
        generator_hidden=[64, 800],
        generator_deconv_shape=[8, 10, 10],
        discriminator_hidden=[20],
        discriminator_conv_pads=pads,
        discriminator_conv_pools=pools,
        discriminator_conv_pool_strides=strides,
    )
    generator, discriminator = build_networks(config, (3, 32, 32))
    real = sum(p.numel() for p in [*generator.parameters(), *discriminator.parameters()])
    assert resources.parameter_count(config) == real


# --- config files -------------------------------------------------------------------------


def config_text(**values) -> str:
    return json.dumps({**config_module.TrainConfig(dataset="toy1d", epochs=1).to_dict(), **values})


@pytest.mark.parametrize(
    "text, words",
    [
        ("[" * 100_000 + "]" * 100_000, ("nested too deeply",)),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, ("nested too deeply",)),
        (config_text().replace('"seed": 0', '"seed": ' + "9" * 5000), ("not a JSON config file", "4300")),
        (config_text().replace('"generator_init": 0.05', '"generator_init": 1e400'), ("--generator-init",)),
        (config_text().replace('"lr": 0.1', '"lr": NaN'), ("--lr", "positive")),
        (config_text(seed=-1), ("--seed", "at least 0")),
        (config_text(seed=2**40), ("--seed", "at most")),
        (config_text(generator_hidden=[[32], [32]]), ("'generator_hidden' must be int",)),
        (config_text(adam_betas={"a": [1]}), ("'adam_betas' must be a list of float",)),
        (config_text(discriminator_hidden=[1] * 100_000 + ["x"]), ("'discriminator_hidden' must be int, not 'x'",)),
        (config_text(preset="../../escape"), ("'preset' names a run's folder",)),
        (config_text(preset=""), ("'preset'",)),
        (config_text(dataset="folder:/tmp/\u0000x"), ("NUL",)),
        (config_text(data_dir="/tmp/\u0000x"), ("NUL",)),
        (json.dumps({"a\nb": 1}), ("Unknown config key(s): 'a\\nb'",)),
        (" " * (2 << 20) + "{}", ("larger than 1 MiB",)),
    ],
)
def test_hostile_config_files_are_one_sentence(capsys, tmp_path, text, words):
    path = tmp_path / "config.json"
    path.write_text(text)
    refused(capsys, tmp_path, "train", "--config", path, "--no-progress", words=words)


def test_a_config_path_that_is_a_folder_or_a_device_is_refused(capsys, tmp_path):
    folder = tmp_path / "config.json"
    folder.mkdir()
    refused(capsys, tmp_path, "train", "--config", folder, words=("is a folder",))
    if Path("/dev/zero").exists():  # read whole, it never ends
        refused(capsys, tmp_path, "train", "--config", "/dev/zero", words=("not a regular file",))


def test_a_python_caller_gets_the_same_checks():
    config = config_module.TrainConfig(dataset="toy1d")
    config.seed = "1"  # type: ignore[assignment]
    with pytest.raises(config_module.GannetError, match="'seed' must be int"):
        config.validate()


# --- data ---------------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_a_file_where_the_mnist_folder_belongs_is_one_sentence(capsys, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").write_text("not a folder")
    data = tmp_path / "data"
    words = ("mnist is a file where a data folder belongs",)
    refused(capsys, tmp_path, "train", "mnist", "--data-dir", data, "--epochs", 1, "--no-progress", words=words)
    refused(capsys, tmp_path, "data", "download", "mnist", "--data-dir", data, words=words)
    refused(capsys, tmp_path, "data", "download", "cifar10", "--data-dir", data / "mnist", words=("Cannot make",))


def test_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)  # black to white
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    assert Image.open(tmp_path / "ramp.png").mode.startswith("I")
    for channels in (1, 3):
        pixels = decode_image(tmp_path / "ramp.png", 64, channels).reshape(channels, 64, 64)
        assert pixels.min() >= 0 and pixels.max() <= 1
        np.testing.assert_allclose(pixels[0], ramp / 65535, atol=2e-3)  # before: everything above 255 white
        assert (pixels == pixels[0]).all()


def test_a_png_claiming_a_huge_size_is_refused_naming_it(capsys, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    header = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 0, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 100))
    (folder / "bomb.png").write_bytes(bomb + png_chunk(b"IEND", b""))
    refused(
        capsys, tmp_path, *TOY[:1], "--data", f"folder:{folder}", *TOY[2:], words=("bomb.png", "decompression bomb")
    )


@pytest.mark.parametrize("damage", ["truncated", "junk"])
def test_a_damaged_image_in_a_folder_is_refused_naming_it(capsys, tmp_path, damage):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "good.png")
    good = (folder / "good.png").read_bytes()
    (folder / "bad.png").write_bytes(good[: len(good) // 2] if damage == "truncated" else b"not an image")
    refused(capsys, tmp_path, "train", "--data", f"folder:{folder}", *TOY[2:], words=("bad.png", "cannot be decoded"))


def test_folders_that_hold_no_images_are_one_sentence(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    refused(capsys, tmp_path, "train", "--data", f"folder:{tmp_path / 'empty'}", *TOY[2:], words=("No PNG or JPEG",))
    refused(capsys, tmp_path, "data", "check", f"folder:{tmp_path / 'empty'}", words=("No PNG or JPEG",))
    refused(
        capsys, tmp_path, "train", "--data", f"folder:{tmp_path / 'file'}", *TOY[2:], words=("a file, not a folder",)
    )
    refused(capsys, tmp_path, "data", "check", f"folder:{tmp_path / 'file'}", words=("a file, not a folder",))
    refused(capsys, tmp_path, "data", "check", "folder:", words=("folder: needs the path",))


def test_a_folder_too_large_to_decode_is_refused_before_decoding(capsys, tmp_path, monkeypatch):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / f"{i}.png")
    monkeypatch.setattr(resources, "available_memory", lambda: 2 * GIB)
    monkeypatch.setattr(resources, "check_fits", lambda config: None)  # the networks' estimate passes
    words = ("--image-size 4096", "40 images", "lower --image-size")
    refused(capsys, tmp_path, "train", "--data", f"folder:{folder}", "--image-size", 4096, *TOY[2:], words=words)


def test_a_truncated_cifar10_tarball_is_one_sentence(capsys, tmp_path):
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as archive:
        archive.add(__file__, arcname="cifar-10-batches-py/data_batch_1")
    (folder / "cifar-10-python.tar.gz").write_bytes((folder / "cifar-10-python.tar.gz").read_bytes()[:500])
    refused(capsys, tmp_path, "data", "check", "cifar10", "--data-dir", tmp_path / "data", words=("is not CIFAR-10's",))


@pytest.mark.parametrize(
    "contents, words",
    [
        ({"images": np.zeros((10, 48, 48), np.uint8)}, ("has no 'folds'",)),
        ({"folds": np.zeros((10, 5))}, ("has no 'images'",)),
        ({"images": np.zeros((10, 48, 48)), "folds": np.zeros((10, 5))}, ("float64 images",)),
    ],
)
def test_a_tfd_file_without_its_arrays_is_one_sentence(capsys, tmp_path, contents, words):
    scipy_io = pytest.importorskip("scipy.io")
    folder = tmp_path / "data" / "tfd"
    folder.mkdir(parents=True)
    scipy_io.savemat(folder / "TFD_48x48.mat", contents)
    refused(capsys, tmp_path, "data", "check", "tfd", "--data-dir", tmp_path / "data", words=words)
