"""--ema-decay: the moving average of G's weights, kept beside training without changing it."""

import dataclasses

import pytest
import torch

from gannet import checkpoints
from gannet.config import TrainConfig
from gannet.errors import GannetError
from gannet.game import generator_step
from gannet.sampling import load_generator
from tests.conftest import SMALL_MNIST, gannet
from tests.test_game import SMALL, small_players


def weights(path):
    tensors, metadata, _ = checkpoints.load_weights(path)
    return (*checkpoints.split_weights(tensors), metadata)


def test_the_moving_average_follows_gs_updates_with_its_warm_up():
    decay = 0.9
    # a D whose gradient moves G visibly within a few updates
    players, _ = small_players(dataclasses.replace(SMALL, ema_decay=decay, discriminator_init=0.1))
    G = players.generator
    expected = [p.detach().clone() for p in G.parameters()]  # it starts at G's initial weights
    start = [e.clone() for e in expected]
    torch.manual_seed(1)
    for n in range(12):
        generator_step(players, torch.rand(10, 5) * 2 - 1)
        d = min(decay, (1 + n) / (10 + n))  # 0.1, 0.18, ... then 0.9 from the 9th update on
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, G.parameters())]
    assert players.ema_updates == 12
    for got, want, p, p0 in zip(players.ema, expected, G.parameters(), start):
        assert torch.allclose(got, want, atol=1e-7, rtol=0)
        assert (got - p).norm() > 0.1 * (p - p0).norm() > 0  # an average that lags G, not G itself


def test_ema_decay_must_be_below_one():
    with pytest.raises(GannetError, match=r"^--ema-decay must be in \[0, 1\)"):
        TrainConfig(ema_decay=1.0).validate()


def test_a_run_keeps_its_moving_average_without_changing_training_and_resumes_it_exactly(tmp_path, tiny_dir, capsys):
    common = ["--data-dir", tiny_dir, "--device", "cpu", "--keep-checkpoints", 5, *SMALL_MNIST]
    plain, ema, half = tmp_path / "plain", tmp_path / "ema", tmp_path / "half"
    assert gannet("train", "mnist", "--epochs", 2, "--run-dir", plain, *common)[0] == 0
    code, out = gannet("train", "mnist", "--epochs", 2, "--ema-decay", 0.9, "--run-dir", ema, *common, capsys=capsys)
    assert code == 0
    assert f"is {ema / 'checkpoints' / 'ema.safetensors'}." in out.err
    assert "  ema " in out.err  # the epoch line shows the average's monitor
    for name in ("epoch-0001.safetensors", "epoch-0002.safetensors"):  # training itself is untouched
        a, b = weights(plain / "checkpoints" / name), weights(ema / "checkpoints" / name)
        assert all(torch.equal(a[i][k], b[i][k]) for i in (0, 1) for k in a[i])
    g, d, metadata = weights(ema / "checkpoints" / "ema.safetensors")
    g2, d2, _ = weights(ema / "checkpoints" / "epoch-0002.safetensors")
    assert metadata["epoch"] == "2" and metadata["ema_updates"] == "20"  # 10 steps an epoch
    assert all(torch.equal(d[k], d2[k]) for k in d)  # beside the epoch's D
    assert all(not torch.equal(g[k], g2[k]) for k in g)
    # the run's generator, for sample and eval, is the moving average
    generator, _, path = load_generator(ema)
    assert path == ema / "checkpoints" / "ema.safetensors"
    assert all(torch.equal(v, g[k]) for k, v in generator.state_dict().items())
    assert load_generator(plain)[2] == plain / "checkpoints" / "epoch-0002.safetensors"
    code, out = gannet("figures", "fig3", ema, "-o", tmp_path / "fig3.png", capsys=capsys)
    assert code == 0 and out.err.strip().endswith(f"from {ema / 'checkpoints' / 'ema.safetensors'}")
    # one epoch, then a resume: the same average bit for bit
    assert gannet("train", "mnist", "--epochs", 1, "--ema-decay", 0.9, "--run-dir", half, *common)[0] == 0
    assert gannet("train", "--resume", half, "--epochs", 2, "--no-progress")[0] == 0
    resumed, _, resumed_metadata = weights(half / "checkpoints" / "ema.safetensors")
    assert resumed_metadata["ema_updates"] == "20"
    assert all(torch.equal(resumed[k], g[k]) for k in g)
    metrics = (half / "metrics.jsonl").read_text()
    assert '"parzen/valid_ema"' in metrics
    # a branch starts with its checkpoint's moving average in place, before it trains a step
    branch = tmp_path / "branch"
    source = ema / "checkpoints" / "epoch-0001.safetensors"
    assert gannet("train", "--resume", source, "--run-dir", branch, "--epochs", 1, "--no-progress")[0] == 0
    g1, _, branched = weights(branch / "checkpoints" / "ema.safetensors")
    assert (branched["epoch"], branched["ema_updates"]) == ("1", "10")
    assert not any(torch.equal(g1[k], g[k]) for k in g)  # epoch 1's average, not epoch 2's
