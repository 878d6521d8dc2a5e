import pytest
import torch

from gannet.config import TrainConfig
from gannet.data import toy1d
from gannet.game import make_players, simultaneous_step
from gannet.noise import sample_noise
from gannet.optim import learning_rate, momentum_at, scheduled_lrs
from gannet.presets import preset_config


def test_learning_rate_decays_by_the_factor_each_update_to_its_floor():
    config = TrainConfig()
    assert learning_rate(config, 0, 500) == 0.1
    assert learning_rate(config, 1, 500) == pytest.approx(0.1 / 1.000004)
    assert learning_rate(config, 125_000, 500) == pytest.approx(0.1 * 1.000004**-125_000)  # ≈ 0.0607
    fast = TrainConfig(lr=1e-3, lr_decay=10.0, lr_min=1e-6)
    assert learning_rate(fast, 2, 500) == pytest.approx(1e-5)
    assert learning_rate(fast, 5, 500) == 1e-6  # 1e-8 would be below the floor


def test_milestones_cut_the_rate_from_the_epoch_after_each():
    config = TrainConfig(lr=0.1, lr_decay=1.0, lr_milestones=[2, 3], lr_gamma=0.5, lr_min=0.02)
    # 10 updates per epoch: epochs 0-1 (updates 0-19) at 0.1, epoch 2 at 0.05, then 0.025
    assert [learning_rate(config, u, 10) for u in (0, 19, 20, 29, 30, 500)] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    assert learning_rate(TrainConfig(lr_milestones=[1], lr_gamma=1e-6), 500, 500) == 1e-6  # the floor holds
    decayed = TrainConfig(lr_milestones=[270])
    assert learning_rate(decayed, 135_000, 500) == 0.1 / 1.000004**135_000 * 0.2


def test_each_player_counts_its_own_updates_per_epoch():
    # Algorithm 1 with k = 2: D makes 2 updates per iteration, G one
    config = preset_config("toy1d", update="alternating", k=2, lr_decay=1.0, lr_milestones=[1], lr_gamma=0.5)
    players = make_players(config, toy1d(), torch.device("cpu"))
    steps = len(toy1d().train) // 200
    rule_g, rule_d = players.scheduler_g.lr_lambdas[0], players.scheduler_d.lr_lambdas[0]
    assert (rule_g(steps - 1), rule_g(steps)) == (1.0, 0.5)
    assert (rule_d(2 * steps - 1), rule_d(2 * steps)) == (1.0, 0.5)


def test_momentum_ramps_linearly_from_epoch_1_to_250():
    config = TrainConfig()
    assert momentum_at(config, 0) == 0.5  # epoch 1
    assert momentum_at(config, 1) == pytest.approx(0.5 + 0.2 / 249)
    assert momentum_at(config, 124) == pytest.approx(0.5 + 0.2 * 124 / 249)
    assert momentum_at(config, 249) == pytest.approx(0.7)  # epoch 250
    assert momentum_at(config, 600) == pytest.approx(0.7)


def tiny_players(**overrides):
    """(config, players) of a 1-D toy with 4-unit players, SGD at lr 0.1 decayed by 1.5 an update."""
    values = {"lr": 0.1, "lr_decay": 1.5, "latent_dim": 1, "generator_hidden": [4], "discriminator_hidden": [4]}
    config = TrainConfig(preset="toy1d", dataset="toy1d", generator_output="linear", **{**values, **overrides})
    torch.manual_seed(0)
    return config, make_players(config, toy1d(), torch.device("cpu"))


def test_optimizers_follow_the_schedule_update_by_update():
    config, players = tiny_players()
    data = toy1d()
    for update in range(3):
        assert players.optimizer_d.param_groups[0]["lr"] == pytest.approx(learning_rate(config, update, 500))
        # the floats that graphs.py puts back after a CUDA graph held the rates: exactly the scheduler's
        assert scheduled_lrs(players.scheduler_d) == [players.optimizer_d.param_groups[0]["lr"]]
        simultaneous_step(players, data.train[:10], sample_noise("uniform", 10, 1))
    assert players.optimizer_g.param_groups[0]["lr"] == pytest.approx(0.1 / 1.5**3)


def test_generator_lr_sets_g_alone_and_both_decay_alike():
    _, players = tiny_players(generator_lr=0.3, lr_min=0.05)
    data = toy1d()
    assert players.optimizer_g.param_groups[0]["lr"] == pytest.approx(0.3)
    assert players.optimizer_d.param_groups[0]["lr"] == pytest.approx(0.1)
    for _ in range(3):
        simultaneous_step(players, data.train[:10], sample_noise("uniform", 10, 1))
    # 0.3 / 1.5^3 = 0.0889; D's 0.1 / 1.5^3 = 0.0296 stops at the floor, 0.05
    assert players.optimizer_g.param_groups[0]["lr"] == pytest.approx(0.3 / 1.5**3)
    assert players.optimizer_d.param_groups[0]["lr"] == pytest.approx(0.05)


def test_generator_lr_equal_to_lr_trains_the_same_numbers():
    def trained(**overrides):
        config = preset_config("toy1d", **overrides)
        torch.manual_seed(0)
        players = make_players(config, toy1d(), torch.device("cpu"))
        for _ in range(3):
            simultaneous_step(players, toy1d().train[:100], sample_noise("uniform", 100, 1))
        return [p.detach().clone() for p in players.generator.parameters()]

    plain, explicit = trained(), trained(generator_lr=preset_config("toy1d").lr)
    assert all(torch.equal(a, b) for a, b in zip(plain, explicit))
    faster = trained(generator_lr=10 * preset_config("toy1d").lr)
    assert not all(torch.equal(a, b) for a, b in zip(plain, faster))
