"""CUDA graphs in the training loop (graphs.py): the recorded iterations give the eager numbers.

The comparisons need a CUDA GPU and are skipped without one; when to record is decided on any
machine.
"""

import contextlib

import pytest
import torch

from gannet.checkpoints import load_state, load_weights
from gannet.config import TrainConfig
from gannet.game import examples_per_step, make_players, step
from gannet.graphs import GraphedIterations, graphs_apply
from gannet.metrics import read_metrics

from .conftest import SMALL_MNIST, gannet, timeless

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


@pytest.mark.parametrize(
    "changes, device, distributed, wanted",
    [
        ({}, CUDA, False, True),  # the preset
        ({"update": "alternating"}, CUDA, False, True),  # Algorithm 1 with k = 1
        ({}, torch.device("cpu"), False, False),
        ({"cuda_graphs": False}, CUDA, False, False),
        ({}, CUDA, True, False),
        ({"optimizer": "adam"}, CUDA, False, False),
        ({"update": "alternating", "k": 2}, CUDA, False, False),  # D's lr ticks inside an iteration
        ({"k": 2}, CUDA, False, True),  # k counts only in the alternating scheme
    ],
)
def test_iterations_are_recorded_only_where_the_recording_is_exact(changes, device, distributed, wanted):
    assert graphs_apply(TrainConfig(**changes), device, distributed) is wanted


def play(config, mnist, graphed, steps=8):
    """`steps` iterations of the preset's players on MNIST from seed 0; (players, statistics)."""
    torch.manual_seed(0)
    players = make_players(config, mnist, CUDA)
    train_set = mnist.train[:2000].to(CUDA)
    rows = examples_per_step(config)
    one = lambda batch: step(players, config, batch)  # noqa: E731
    stats = []
    eager = contextlib.nullcontext(lambda rows: one(train_set[rows]))
    with GraphedIterations(one, players, train_set, rows) if graphed else eager as iteration:
        for i in range(steps):
            stats.append(iteration(torch.arange(i * rows, (i + 1) * rows, device=CUDA)).clone())
    return players, torch.stack(stats)


@needs_cuda
@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_replayed_iterations_match_the_eager_ones_bit_for_bit(update, tiny_mnist):
    config = TrainConfig(update=update, momentum=0.6)  # dropout, the lr decay and momentum all in play
    eager, eager_stats = play(config, tiny_mnist, graphed=False)
    replayed, replayed_stats = play(config, tiny_mnist, graphed=True)
    assert torch.equal(eager_stats, replayed_stats)
    for a, b in ((eager.generator, replayed.generator), (eager.discriminator, replayed.discriminator)):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert torch.equal(p, q), name
    for a, b in ((eager.optimizer_g, replayed.optimizer_g), (eager.optimizer_d, replayed.optimizer_d)):
        lr = b.param_groups[0]["lr"]
        assert type(lr) is float and lr == a.param_groups[0]["lr"]  # a float again, the same count
        assert all(
            torch.equal(a.state[p]["momentum_buffer"], b.state[q]["momentum_buffer"])
            for p, q in zip(*(o.param_groups[0]["params"] for o in (a, b)))
        )
    assert replayed.scheduler_g.get_last_lr() == eager.scheduler_g.get_last_lr()
    assert replayed.schedules_in_step


@needs_cuda
def test_a_graphed_run_resumed_mid_way_is_the_eager_run(tmp_path, tiny_dir):
    common = ["--device", "cuda", "--data-dir", tiny_dir, *SMALL_MNIST]
    eager, graphed = tmp_path / "eager", tmp_path / "graphed"
    assert gannet("train", "mnist", "--epochs", 2, "--no-cuda-graphs", "--run-dir", eager, *common)[0] == 0
    assert gannet("train", "mnist", "--epochs", 1, "--run-dir", graphed, *common)[0] == 0
    assert gannet("train", "--resume", graphed, "--epochs", 2, "--no-progress")[0] == 0
    (wa, _, _), (wb, _, newest) = load_weights(eager), load_weights(graphed)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert timeless(read_metrics(eager)) == timeless(read_metrics(graphed))
    state = load_state(newest)
    assert all(type(group["lr"]) is float for group in state["optimizer_g"]["param_groups"])
