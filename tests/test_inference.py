import json

import torch
from PIL import Image

from gannet.config import TrainConfig
from gannet.inference import code_error, infer, interpolate, make_encoder, train_encoder
from gannet.networks import build_networks
from gannet.sampling import load_generator

from .conftest import gannet


def test_the_encoder_learns_to_recover_z():
    # a small random G whose output depends strongly on z (a trained MNIST G may ignore many of
    # z's directions, and then no encoder can recover them)
    config = TrainConfig(latent_dim=3, generator_hidden=[32], generator_init=0.5)
    torch.manual_seed(0)
    generator, _ = build_networks(config, 20)
    untrained = make_encoder(config, 20).eval()
    encoder, losses = train_encoder(generator, config, steps=1500, progress=False)
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0]
    assert code_error(encoder, generator, config) < 0.5 * code_error(untrained, generator, config)


def test_interpolation_runs_from_one_code_to_the_other(mnist_run):
    generator, config, _ = load_generator(mnist_run)
    encoder = make_encoder(config, 784).eval()
    a, b = torch.rand(784), torch.rand(784)
    path = interpolate(encoder, generator, a, b, steps=5)
    with torch.no_grad():
        assert torch.allclose(path[0], generator(encoder(a[None]))[0], atol=1e-6)
        assert torch.allclose(path[-1], generator(encoder(b[None]))[0], atol=1e-6)


def test_gannet_infer_writes_figures_weights_and_errors(mnist_run, tiny_dir, tmp_path, capsys):
    code, out = gannet("infer", mnist_run, "--steps", 200, "--data-dir", tiny_dir, "-o", tmp_path, capsys=capsys)
    assert code == 0 and "reconstruction MSE" in out.out
    record = json.loads((tmp_path / "inference.json").read_text())
    assert 0 < record["reconstruction_mse"] < 1 and record["code_mse"] > 0 and record["steps"] == 200
    assert Image.open(tmp_path / "reconstructions.png").size == (2 * (2 * 30 + 2), 2 * (10 * 30 + 2))
    assert Image.open(tmp_path / "interpolation.png").size == (2 * (10 * 30 + 2), 2 * (4 * 30 + 2))
    assert (tmp_path / "encoder.safetensors").is_file()
    code, out = gannet("infer", mnist_run, "--steps", 5, capsys=capsys)
    assert code == 2 and "--steps must be at least 100" in out.err


def test_infer_returns_the_record_it_writes(mnist_run, tiny_dir, tmp_path):
    record, out = infer(mnist_run, tmp_path / "inference", steps=100, data_dir=tiny_dir, progress=False)
    assert out == tmp_path / "inference" and json.loads((out / "inference.json").read_text()) == record
    assert record["steps"] == 100 and len(record["training_loss_every_100"]) == 1
