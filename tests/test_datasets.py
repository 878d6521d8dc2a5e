"""The 2-D toys and any folder of images (issue 5)."""

import numpy as np
import pytest
import torch
from PIL import Image

from gannet.data import check_dataset, folder_dataset, toy2d, toy2d_modes
from gannet.errors import GannetError
from gannet.sampling import load_generator

from .conftest import gannet


@pytest.mark.parametrize("name, modes, std", [("ring8", 8, 0.02), ("grid25", 25, 0.05)])
def test_toy2d_data_sits_on_its_modes(name, modes, std):
    data = toy2d(name)
    centres, s = toy2d_modes(name)
    assert len(centres) == modes and s == std and data.shape == (2,)
    nearest = torch.cdist(data.train, centres).argmin(dim=1)
    assert torch.equal(nearest, data.labels["train"])  # every point is closest to its own mode
    spread = (data.train - centres[data.labels["train"]]).std().item()
    assert spread == pytest.approx(std, rel=0.05)
    counts = torch.bincount(data.labels["train"], minlength=modes).float()
    assert counts.min() > 0.8 * counts.mean()  # equal mixture
    if name == "ring8":
        assert torch.allclose(centres.norm(dim=1), torch.full((8,), 2.0))


def test_ring8_trains_and_draws_a_scatter_plot(tmp_path):
    run_dir = tmp_path / "ring"
    assert gannet("train", "ring8", "--epochs", 2, "--run-dir", run_dir, "--no-progress")[0] == 0
    picture = Image.open(run_dir / "samples" / "epoch-0002.png")
    assert picture.size == (450, 450)
    assert gannet("sample", run_dir, "-n", 100, "--npy", tmp_path / "s.npy", "-o", tmp_path / "s.png")[0] == 0
    assert np.load(tmp_path / "s.npy").shape == (100, 2) and Image.open(tmp_path / "s.png").size == (450, 450)


@pytest.fixture
def image_folder(tmp_path, tiny_mnist):
    """120 digits of the small MNIST as PNG and JPEG files in nested folders, 28 × 28 grey."""
    root = tmp_path / "digits"
    for i in range(120):
        folder = root / f"class{i % 3}" / ("deep" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (tiny_mnist.train[i].reshape(28, 28).numpy() * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.{'png' if i % 4 else 'JPG'}")
    (root / "notes.txt").write_text("not an image")
    return root


def test_a_folder_of_images_is_decoded_once_and_cached(image_folder, tiny_mnist, monkeypatch):
    from gannet import data
    from gannet.data import folder

    first = folder_dataset(image_folder, 28, 1, progress=False)
    assert first.shape == (1, 28, 28) and len(first.train) + len(first.valid) + len(first.test) == 120
    assert len(first.valid) == len(first.test) == 6  # 5 % each
    everything = torch.cat([first.train, first.valid, first.test])
    # a PNG round-trips exactly (file 1 is a PNG; every fourth file is a lossy JPEG)
    assert any(torch.allclose(row, tiny_mnist.train[1], atol=1 / 255) for row in everything)
    assert len(list((data.cache_dir() / "folders").glob("*.npy"))) == 1

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(folder, "decode_image", no_decoding)
    again = folder_dataset(image_folder, 28, 1, progress=False)  # from the cache
    assert torch.equal(again.train, first.train)
    monkeypatch.undo()
    rgb = folder_dataset(image_folder, 16, 3, progress=False)  # another size: decoded anew
    assert rgb.shape == (3, 16, 16) and rgb.train.shape[1] == 768
    assert torch.allclose(rgb.train[:, :256], rgb.train[:, 256:512])  # grey in, equal channels out


def test_any_preset_trains_on_a_folder_and_the_networks_adapt(image_folder, tmp_path):
    run_dir = tmp_path / "run"
    code, _ = gannet(
        "train",
        "mnist",
        "--data",
        f"folder:{image_folder}",
        "--image-size",
        16,
        "--channels",
        3,
        "--epochs",
        1,
        "--batch-size",
        20,
        "--run-dir",
        run_dir,
        "--no-progress",
    )
    assert code == 0
    generator, config, _ = load_generator(run_dir)
    assert generator.output.out_features == 3 * 16 * 16 and config.channels == 3
    assert Image.open(run_dir / "samples" / "epoch-0001.png").mode == "RGB"


def test_folder_errors_are_one_sentence(tmp_path, capsys):
    code, out = gannet(
        "train", "mnist", "--data", f"folder:{tmp_path / 'none'}", "--run-dir", tmp_path / "r", capsys=capsys
    )
    assert code == 2 and "No folder of images at" in out.err
    (tmp_path / "empty").mkdir()
    with pytest.raises(GannetError, match="No PNG or JPEG images under"):
        folder_dataset(tmp_path / "empty", 28, 1)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(GannetError, match=r"x.png cannot be decoded as an image"):
        folder_dataset(tmp_path / "bad", 28, 1)
    code, out = gannet("train", "mnist", "--data", "cifar100", "--run-dir", tmp_path / "r2", capsys=capsys)
    assert code == 2 and "--data must be one of mnist, cifar10, tfd, toy1d, ring8, grid25 or folder:PATH" in out.err


def test_check_dataset_is_one_line_or_one_sentence(data_dir, tmp_path):
    assert check_dataset("mnist", data_dir) == (
        f"mnist: present and verified in {data_dir / 'mnist'} (train 50,000, valid 10,000, test 10,000)."
    )
    assert check_dataset("grid25") == "grid25: generated from a fixed seed; no files needed."
    with pytest.raises(GannetError, match=r"CIFAR-10 is not present \(looked in .*gannet data download cifar10"):
        check_dataset("cifar10", tmp_path)
    with pytest.raises(GannetError, match="Unknown data set 'svhn'"):
        check_dataset("svhn")


def test_data_check_says_what_is_there_and_where(image_folder, tiny_dir, capsys):
    code, out = gannet("data", "check", "--data-dir", tiny_dir, capsys=capsys)
    assert code == 0 and f"mnist: present and verified in {tiny_dir / 'mnist'}" in out.out
    assert "ring8: generated from a fixed seed" in out.out
    code, out = gannet("data", "check", f"folder:{image_folder}", capsys=capsys)
    assert code == 0 and "120 PNG/JPEG images under" in out.out
