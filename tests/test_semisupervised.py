import json

import pytest
import torch

from gannet.networks import Discriminator
from gannet.semisupervised import discriminator_features, fit_linear, labelled_subset, linear_probe

from .conftest import gannet


def test_labelled_subset_takes_n_of_each_class_reproducibly():
    labels = torch.arange(10).repeat(30)
    idx = labelled_subset(labels, 7, seed=1)
    assert torch.bincount(labels[idx]).tolist() == [7] * 10
    assert torch.equal(idx, labelled_subset(labels, 7, seed=1))
    assert len(labelled_subset(labels, None)) == 300


def test_the_linear_fit_is_the_same_every_time():
    x = torch.randn(60, 5, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    torch.manual_seed(1)  # the global generator's state must not matter: the fit starts from zeros
    first = fit_linear(x, y, steps=20)
    torch.manual_seed(2)
    second = fit_linear(x, y, steps=20)
    assert torch.equal(first.weight, second.weight) and torch.equal(first.bias, second.bias)


def test_features_are_the_maxout_layers_without_dropout():
    torch.manual_seed(0)
    D = Discriminator(12, [6, 4], pieces=3, input_keep=0.5, hidden_keep=0.5).train()
    x = torch.rand(9, 12)
    features = discriminator_features(D, x)
    h1 = D.hidden[0](x)
    assert (
        features.shape == (9, 10) and torch.equal(features[:, :6], h1) and torch.equal(features[:, 6:], D.hidden[1](h1))
    )


def test_linear_probe_separates_separable_classes_and_not_random_ones():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 5, generator=g) * 5
    y = torch.arange(3).repeat(200)
    x = centres[y] + 0.3 * torch.randn(600, 5, generator=g)
    assert linear_probe(x[:300], y[:300], x[300:], y[300:], per_class=10) == 1.0
    shuffled = y[torch.randperm(600, generator=g)]
    assert linear_probe(x[:300], shuffled[:300], x[300:], shuffled[300:], per_class=None) < 0.5


def test_eval_features_writes_the_table(mnist_run, tiny_dir, capsys):
    code, out = gannet("eval", "features", mnist_run, "--num-train", 2000, "--data-dir", tiny_dir, capsys=capsys)
    assert code == 0 and "10 per class" in out.out and "all 2,000" in out.out
    if not (mnist_run / "inference").exists():  # says why there is no E(x) column, and how to get one
        assert f"no E(x) column: nothing at {mnist_run / 'inference' / 'encoder.safetensors'}" in out.out
    table = json.loads((mnist_run / "features.json").read_text())["test_accuracy"]
    assert set(table) == {"10", "100", "all"}
    assert all(0.1 < row["pixels"] <= 1 and 0 <= row["discriminator"] <= 1 for row in table.values())
    assert table["all"]["pixels"] > table["10"]["pixels"]  # more labels help a pixel classifier
    code, out = gannet("eval", "features", mnist_run, "--num-train", 50, capsys=capsys)
    assert code == 2 and "--num-train must be at least 100" in out.err


def test_eval_features_probes_the_inference_nets_code_when_there_is_one(mnist_run, tiny_dir, tmp_path, capsys):
    from gannet.inference import infer, load_encoder
    from gannet.sampling import load_generator
    from gannet.semisupervised import encoder_features, linear_probe

    _, folder = infer(mnist_run, tmp_path / "inference", steps=100, data_dir=tiny_dir, progress=False)
    encoder_file = folder / "encoder.safetensors"
    args = ("eval", "features", mnist_run, "--num-train", 2000, "--encoder", encoder_file, "-o", tmp_path / "f.json")
    code, out = gannet(*args, capsys=capsys)
    assert code == 0 and f"E(x): {encoder_file}" in out.out
    record = json.loads((tmp_path / "f.json").read_text())
    assert record["encoder"] == str(encoder_file) and set(record["test_accuracy"]["10"]) == {
        "discriminator", "pixels", "encoder"
    }  # fmt: skip
    # the figure is the probe on E(x) itself, recomputed
    _, config, _ = load_generator(mnist_run)
    E = load_encoder(encoder_file, config, 784)
    from gannet.data import load_mnist

    mnist = load_mnist(tiny_dir / "mnist")
    codes = encoder_features(E, mnist.train[:2000])
    assert codes.shape == (2000, config.latent_dim)
    direct = linear_probe(
        codes, mnist.labels["train"][:2000], encoder_features(E, mnist.test), mnist.labels["test"], 10
    )
    assert record["test_accuracy"]["10"]["encoder"] == pytest.approx(direct, abs=1e-12)
    code, out = gannet("eval", "features", mnist_run, "--encoder", tmp_path / "none.safetensors", capsys=capsys)
    assert code == 2 and "No encoder at" in out.err
