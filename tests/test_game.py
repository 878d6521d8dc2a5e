"""The update steps against a straightforward re-implementation of the same maths."""

import copy

import pytest
import torch

from gannet.config import TrainConfig
from gannet.data import Dataset
from gannet.game import alternating_step, discriminator_step, generator_step, make_players, simultaneous_step

SMALL = TrainConfig(
    latent_dim=5,
    generator_hidden=[16],
    discriminator_hidden=[8, 8],
    maxout_pieces=3,
    momentum=0.5,
    generator_loss="non-saturating",
)


def small_players(config=SMALL, seed=0):
    torch.manual_seed(seed)
    data = Dataset("fake", torch.rand(64, 12), torch.rand(8, 12), torch.rand(8, 12), (1, 3, 4))
    return make_players(config, data, torch.device("cpu")), data


def sgd_first_step(params, grads, lr):
    # momentum buffers start at the gradient: p ← p − lr·g on the first update
    return [p.detach() - lr * g for p, g in zip(params, grads)]


def test_simultaneous_step_applies_both_gradients_from_one_forward_pass():
    players, data = small_players()
    G, D = copy.deepcopy(players.generator), copy.deepcopy(players.discriminator)
    x, z = data.train[:10], torch.rand(10, 5) * 2 - 1

    torch.manual_seed(1)  # the same dropout masks in both computations
    simultaneous_step(players, x, z)

    torch.manual_seed(1)
    fake = G(z)
    logits_real, logits_fake = D(x), D(fake)
    loss_d = 0.5 * (
        torch.nn.functional.softplus(-logits_real).mean() + torch.nn.functional.softplus(logits_fake).mean()
    )
    loss_g = -torch.log(torch.sigmoid(logits_fake)).mean()
    grads_d = torch.autograd.grad(loss_d, list(D.parameters()), retain_graph=True)
    grads_g = torch.autograd.grad(loss_g, list(G.parameters()))
    for got, want in zip(players.discriminator.parameters(), sgd_first_step(D.parameters(), grads_d, 0.1)):
        assert torch.allclose(got, want, atol=1e-6)
    for got, want in zip(players.generator.parameters(), sgd_first_step(G.parameters(), grads_g, 0.1)):
        assert torch.allclose(got, want, atol=1e-6)


def test_discriminator_step_leaves_the_generator_alone_and_vice_versa():
    players, data = small_players()
    G0, D0 = copy.deepcopy(players.generator), copy.deepcopy(players.discriminator)
    discriminator_step(players, data.train[:10], torch.rand(10, 5))
    assert all(torch.equal(a, b) for a, b in zip(G0.parameters(), players.generator.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(D0.parameters(), players.discriminator.parameters()))

    D1 = copy.deepcopy(players.discriminator)
    grads_before = [p.grad.clone() for p in players.discriminator.parameters()]
    generator_step(players, torch.rand(10, 5))
    assert all(torch.equal(a, b) for a, b in zip(D1.parameters(), players.discriminator.parameters()))
    # D's weight gradients are not even computed during G's step
    assert all(torch.equal(p.grad, g) for p, g in zip(players.discriminator.parameters(), grads_before))
    assert all(p.requires_grad for p in players.discriminator.parameters())


@pytest.mark.parametrize("k", [1, 3])
def test_alternating_step_takes_k_discriminator_updates_per_generator_update(k):
    players, data = small_players(TrainConfig(**{**SMALL.to_dict(), "update": "alternating", "k": k}))
    xs = list(data.train[: 10 * k].split(10))
    zs = [torch.rand(10, 5) for _ in range(k + 1)]
    stats = alternating_step(players, xs, zs)
    assert players.scheduler_d.last_epoch == k and players.scheduler_g.last_epoch == 1
    assert torch.isfinite(stats).all() and stats.shape == (4,)


def test_minimax_generator_step_descends_log_one_minus_d():
    config = TrainConfig(**{**SMALL.to_dict(), "generator_loss": "minimax", "momentum": 0.0})
    players, _ = small_players(config)
    G, D = copy.deepcopy(players.generator), copy.deepcopy(players.discriminator)
    z = torch.rand(10, 5)
    torch.manual_seed(3)
    generator_step(players, z)
    torch.manual_seed(3)
    loss = torch.log1p(-torch.sigmoid(D(G(z)))).mean()
    grads = torch.autograd.grad(loss, list(G.parameters()))
    for got, want in zip(players.generator.parameters(), sgd_first_step(G.parameters(), grads, 0.1)):
        assert torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_steps_match_a_plain_loop_with_torchs_reference_sgd(update):
    # gannet's players (fused SGD, its own step functions) against torch's single-tensor SGD
    # with a LambdaLR decay and the update written out, for several steps: momentum and the
    # decay included. Without dropout, so that both draw nothing at random; larger initial
    # weights than the paper's, so that both players move well beyond the tolerance.
    changes = {
        "update": update,
        "input_keep": 1.0,
        "hidden_keep": 1.0,
        "generator_init": 0.5,
        "discriminator_init": 0.5,
    }
    config = TrainConfig(**{**SMALL.to_dict(), **changes})
    players, data = small_players(config)
    G, D = copy.deepcopy(players.generator), copy.deepcopy(players.discriminator)
    decayed = lambda n: config.lr_decay ** (-n)  # noqa: E731  (lr / 1.000004^n; the floor is far)
    opt_g = torch.optim.SGD(G.parameters(), lr=config.lr, momentum=config.momentum, foreach=False)
    opt_d = torch.optim.SGD(D.parameters(), lr=config.lr, momentum=config.momentum, foreach=False)
    decay_g, decay_d = (torch.optim.lr_scheduler.LambdaLR(o, decayed) for o in (opt_g, opt_d))
    softplus = torch.nn.functional.softplus

    def descend(net, opt, decay, loss, **kwargs):
        for p, g in zip(net.parameters(), torch.autograd.grad(loss, list(net.parameters()), **kwargs)):
            p.grad = g
        opt.step()
        decay.step()

    for step in range(4):
        x, z, z2 = data.train[10 * step : 10 * step + 10], torch.rand(10, 5) * 2 - 1, torch.rand(10, 5) * 2 - 1
        if update == "simultaneous":
            simultaneous_step(players, x, z)
            logits_real, logits_fake = D(x), D(G(z))
            loss_d = 0.5 * (softplus(-logits_real).mean() + softplus(logits_fake).mean())
            grads_g = torch.autograd.grad(softplus(-logits_fake).mean(), list(G.parameters()), retain_graph=True)
            descend(D, opt_d, decay_d, loss_d)  # both gradients taken before either player moves
            for p, g in zip(G.parameters(), grads_g):
                p.grad = g
            opt_g.step()
            decay_g.step()
        else:
            alternating_step(players, [x], [z, z2])
            descend(D, opt_d, decay_d, 0.5 * (softplus(-D(x)).mean() + softplus(D(G(z).detach())).mean()))
            descend(G, opt_g, decay_g, softplus(-D(G(z2))).mean())
    before = small_players(config)[0]
    for start, now in ((before.generator, G), (before.discriminator, D)):
        moved = max((a - b).abs().max().item() for a, b in zip(start.parameters(), now.parameters()))
        assert moved > 1e-3  # the comparison below is not between untouched weights
    for mine, theirs in ((players.generator, G), (players.discriminator, D)):
        for a, b in zip(mine.parameters(), theirs.parameters()):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
