"""--precision bf16: the step's arithmetic in bfloat16, everything the run keeps in float32."""

import copy
import dataclasses

import pytest
import torch

from gannet.config import TrainConfig
from gannet.errors import GannetError
from gannet.game import alternating_step, simultaneous_step
from gannet.resources import compute_dtype
from tests.conftest import SMALL_MNIST, gannet
from tests.test_game import SMALL, small_players

CPU = torch.device("cpu")


def cpu_has_bf16(monkeypatch, avx512_bf16: bool, amx: bool = False) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


def test_bf16_is_used_where_the_cpu_has_it_and_refused_in_one_sentence_where_not(monkeypatch):
    assert compute_dtype("fp32", CPU) == (None, None)
    cpu_has_bf16(monkeypatch, avx512_bf16=True)
    assert compute_dtype("bf16", CPU) == (torch.bfloat16, None)
    cpu_has_bf16(monkeypatch, avx512_bf16=False, amx=True)
    assert compute_dtype("bf16", CPU) == (torch.bfloat16, None)
    cpu_has_bf16(monkeypatch, avx512_bf16=False)
    dtype, why = compute_dtype("bf16", CPU)
    assert dtype is None
    assert why.startswith("--precision bf16: this CPU (") and why.endswith("training in float32 instead.")
    assert why.count(". ") == 0  # one sentence
    assert compute_dtype("bf16", torch.device("meta"))[0] is None


def played(update: str, dtype: torch.dtype | None, seed: int = 1, steps: int = 5):
    """The small players after `steps` iterations (the same seed, data and noise for every dtype),
    with the dtype of D's first hidden layer's output seen during the last one."""
    # a D whose gradients do not cancel to nothing: bfloat16's error is relative to the terms summed
    players, data = small_players(dataclasses.replace(SMALL, discriminator_init=0.1, generator_bias_from_data=False))
    players.compute_dtype = dtype
    seen = []
    players.discriminator.hidden[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    start = copy.deepcopy([*players.generator.parameters(), *players.discriminator.parameters()])
    torch.manual_seed(seed)
    for n in range(steps):
        x, z = data.train[10 * n : 10 * n + 10], torch.rand(10, 5) * 2 - 1
        if update == "simultaneous":
            stats = simultaneous_step(players, x, z)
        else:
            stats = alternating_step(players, [x], [z, torch.rand(10, 5) * 2 - 1])
    return players, start, seen[-1], stats


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_a_bf16_step_moves_the_float32_weights_as_float32_does_within_bf16s_precision(update):
    fp32, start, seen32, _ = played(update, None)
    bf16, _, seen16, stats = played(update, torch.bfloat16)
    assert (seen32, seen16) == (torch.float32, torch.bfloat16)  # the products did run in bfloat16
    params16 = [*bf16.generator.parameters(), *bf16.discriminator.parameters()]
    # master weights, their gradients, momentum and the statistics stay float32
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in params16)
    for optimizer in (bf16.optimizer_g, bf16.optimizer_d):
        assert all(s["momentum_buffer"].dtype == torch.float32 for s in optimizer.state.values())
    assert stats.dtype == torch.float32
    # each player's move over five updates: bfloat16's rounding moves it by under 15 % of what other
    # noise and dropout masks on the same minibatches move float32's
    other, _, _, _ = played(update, None, seed=2)
    runs = [[*run.generator.parameters(), *run.discriminator.parameters()] for run in (bf16, fp32, other)]
    sizes = [sum(p.numel() for p in player.parameters()) for player in (bf16.generator, bf16.discriminator)]
    moves = [torch.cat([(p.detach() - p0).flatten() for p, p0 in zip(params, start)]).split(sizes) for params in runs]
    for move16, move32, noisy in zip(*moves):
        assert not torch.equal(move16, move32)  # it is not float32 arithmetic under another name
        assert (move16 - move32).norm() < 0.15 * (noisy - move32).norm()  # 0.003-0.07 measured


def test_the_cli_says_it_trains_in_float32_where_bf16_cannot_pay(tiny_dir, tmp_path, monkeypatch, capsys):
    cpu_has_bf16(monkeypatch, avx512_bf16=False)
    run = tmp_path / "run"
    args = ["--precision", "bf16", "--epochs", 1, "--run-dir", run, "--data-dir", tiny_dir, *SMALL_MNIST]
    code, out = gannet("train", "mnist", *args, capsys=capsys)
    assert code == 0
    assert "--precision bf16: this CPU" in out.err and "training in float32 instead." in out.err
    assert '"precision": "bf16"' in (run / "config.json").read_text()  # what was asked, for a machine that has it


def test_a_config_files_precision_must_be_one_of_the_choices():
    with pytest.raises(GannetError, match=r"^--precision must be one of fp32, bf16"):
        TrainConfig(precision="fp64").validate()


def test_gpus_before_ampere_are_told_they_emulate_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    for capability, dtype in (((7, 0), None), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        got, why = compute_dtype("bf16", torch.device("cuda:1"))
        assert got == dtype and (why is None) == (dtype is not None)
    assert why is None
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert "Tesla V100 has no bfloat16 arithmetic" in compute_dtype("bf16", torch.device("cuda"))[1]


def test_a_run_in_bf16_says_so_when_it_starts(tmp_path, monkeypatch, capsys):
    cpu_has_bf16(monkeypatch, avx512_bf16=True)  # emulated here, but the toy's networks are small
    code, out = gannet(
        "train",
        "toy1d",
        "--precision",
        "bf16",
        "--epochs",
        1,
        "--run-dir",
        tmp_path / "run",
        "--no-progress",
        capsys=capsys,
    )
    assert code == 0
    assert f"training 'toy1d' for 1 epoch in {tmp_path / 'run'}; bfloat16 arithmetic" in out.err
    assert "float32 instead" not in out.err
