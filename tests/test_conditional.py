"""The conditional model (the paper's section 7): labels given to both players."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gannet import data
from gannet.errors import GannetError
from gannet.networks import build_networks
from gannet.noise import sample_codes, sample_noise
from gannet.presets import preset_config
from tests.conftest import SMALL_MNIST, gannet


def test_codes_of_an_unconditional_model_are_its_noise():
    config = preset_config("mnist")
    a = sample_codes(config, 7, generator=torch.Generator().manual_seed(3))
    b = sample_noise(config.noise, 7, config.latent_dim, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)  # unconditional runs draw exactly what they drew before


def test_codes_of_a_conditional_model_end_in_the_one_hot_label():
    config = preset_config("mnist", conditional=True)
    codes = sample_codes(config, 4, labels=torch.tensor([3, 0, 9, 3]))
    assert codes.shape == (4, 110)
    assert codes[:, 100:].argmax(1).tolist() == [3, 0, 9, 3] and codes[:, 100:].sum(1).tolist() == [1, 1, 1, 1]
    drawn = sample_codes(config, 5_000, generator=torch.Generator().manual_seed(0))[:, 100:].argmax(1)
    counts = torch.bincount(drawn, minlength=10)
    assert counts.min() > 400 and counts.max() < 600  # uniform over the ten classes


def test_conditional_players_read_the_label():
    config = preset_config("mnist", conditional=True)
    G, D = build_networks(config, (1, 28, 28))
    assert G.hidden[0].in_features == 110 and D.hidden[0].linear.in_features == 784 + 10
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 5]), 10).float()
    out = G(torch.cat([torch.zeros(2, 100), one_hot], 1))
    assert out.shape == (2, 784) and not torch.equal(out[0], out[1])  # same z, two labels
    D.eval()
    image = torch.rand(1, 784).expand(2, -1)
    logits = D(torch.cat([image, one_hot], 1))
    assert logits[0] != logits[1]  # one image, two labels
    D.train()
    D.input_keep, D.hidden_keep = 1e-6, 1.0  # (almost) every pixel dropped: the label never is
    logits = D(torch.cat([image, one_hot], 1))
    assert logits[0] != logits[1]


def test_conditional_needs_a_labelled_data_set():
    for name in ("tfd", "toy1d"):
        with pytest.raises(GannetError, match="--conditional needs a labelled data set"):
            preset_config(name, conditional=True)


def test_training_pairs_each_example_with_its_own_label(tiny_mnist):
    from gannet.start import training_examples

    config = preset_config("mnist", conditional=True, train_limit=300)
    examples = training_examples(config, tiny_mnist)
    assert examples.shape == (300, 794)
    assert torch.equal(examples[:, :784], tiny_mnist.train[:300])
    assert torch.equal(examples[:, 784:].argmax(1), tiny_mnist.labels["train"][:300])


def test_conditional_ring8_puts_each_label_on_its_mode(tmp_path, capsys):
    """The behaviour that matters: asked for class c, G draws from mode c."""
    run = tmp_path / "ring"
    code, _ = gannet(
        "train", "ring8", "--conditional", "--epochs", 8, "--run-dir", run, "--no-progress", capsys=capsys
    )  # fmt: skip
    assert code == 0
    modes, _ = data.toy2d_modes("ring8")
    hits = []
    for label in range(8):
        out = tmp_path / f"s{label}.npy"
        code, _ = gannet("sample", run, "--label", label, "-n", 500, "--npy", out, capsys=capsys)
        assert code == 0
        nearest = torch.cdist(torch.from_numpy(np.load(out)), modes).argmin(1)
        hits.append((nearest == label).double().mean().item())
    assert min(hits) > 0.9, hits


def test_conditional_mnist_end_to_end(tmp_path, tiny_dir, capsys):
    run = tmp_path / "cmnist"
    code, _ = gannet(
        "train", "mnist", "--conditional", "--epochs", 1, "--data-dir", tiny_dir, "--run-dir", run, *SMALL_MNIST,
        "--parzen-samples", 500, capsys=capsys,
    )  # fmt: skip
    assert code == 0
    assert json.loads((run / "config.json").read_text())["conditional"] is True
    code, _ = gannet("sample", run, "--label", 3, "-n", 16, "--npy", tmp_path / "three.npy", capsys=capsys)
    assert code == 0 and np.load(tmp_path / "three.npy").shape == (16, 784)
    code, _ = gannet("figures", "classes", run, "-o", tmp_path / "classes.png", "--columns", 6, capsys=capsys)
    assert code == 0
    picture = Image.open(tmp_path / "classes.png")
    assert picture.size == (3 * (6 * 30 + 2), 3 * (10 * 30 + 2))  # 10 rows (one per digit) of 6, scale 3
    code, captured = gannet("eval", "quality", run, "--num-samples", 200, "--data-dir", tiny_dir, capsys=capsys)
    assert code == 0 and "label accuracy" in captured.out
    accuracy = json.loads((run / "quality.json").read_text())["label_accuracy"]
    assert 0 <= accuracy <= 1
    code, captured = gannet("sample", run, "--label", 10, capsys=capsys)
    assert code == 2 and "--label must be a class from 0 to 9, not 10." in captured.err


def test_label_and_classes_figure_refuse_an_unconditional_run(mnist_run, tmp_path, capsys):
    code, captured = gannet("sample", mnist_run, "--label", 3, capsys=capsys)
    assert code == 2 and "--label needs a conditional model" in captured.err
    code, captured = gannet("figures", "classes", mnist_run, "-o", tmp_path / "c.png", capsys=capsys)
    assert code == 2 and "is not a conditional model" in captured.err
