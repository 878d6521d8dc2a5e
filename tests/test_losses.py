"""Each cost pinned against numbers worked out by hand from its formula (softplus(a) =
log(1 + e^a), σ(a) = 1/(1 + e^-a)), value and gradient with respect to D's logit."""

import math

import pytest
import torch

from gannet.losses import (
    discriminator_loss,
    generator_loss,
    maximum_likelihood_loss,
    minimax_loss,
    non_saturating_loss,
)


def value_and_grad(fn, logits):
    logits = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    value = fn(logits)
    (grad,) = torch.autograd.grad(value, logits)
    return value.item(), grad.tolist()


def test_discriminator_loss_is_half_the_two_cross_entropies():
    # real logits (0, 2): mean[softplus(-0), softplus(-2)] = (0.693147 + 0.126928) / 2
    # fake logits (-1, 1): mean[softplus(-1), softplus(1)] = (0.313262 + 1.313262) / 2
    value = discriminator_loss(
        torch.tensor([0.0, 2.0], dtype=torch.float64), torch.tensor([-1.0, 1.0], dtype=torch.float64)
    )
    assert value.item() == pytest.approx(0.6116496417, abs=1e-9)


def test_discriminator_loss_gradient_pushes_real_up_and_fake_down():
    real = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    fake = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    discriminator_loss(real, fake).backward()
    # d/dl ½ softplus(-l) = -½ σ(-l) = -¼ at 0; d/dl ½ softplus(l) = ½ σ(l) = ¼ at 0
    assert real.grad.item() == pytest.approx(-0.25)
    assert fake.grad.item() == pytest.approx(0.25)


def test_minimax_value_and_gradient():
    value, grad = value_and_grad(minimax_loss, [-1.0, 1.0])
    assert value == pytest.approx(-0.8132616875, abs=1e-9)  # mean log(1 - σ(l))
    assert grad == pytest.approx([-0.1344707107, -0.3655292893], abs=1e-9)  # -σ(l) / m


def test_non_saturating_value_and_gradient():
    value, grad = value_and_grad(non_saturating_loss, [-1.0, 1.0])
    assert value == pytest.approx(0.8132616875, abs=1e-9)  # -mean log σ(l)
    assert grad == pytest.approx([-0.3655292893, -0.1344707107], abs=1e-9)  # (σ(l) - 1) / m


def test_maximum_likelihood_value_and_gradient():
    value, grad = value_and_grad(maximum_likelihood_loss, [0.0, math.log(2.0)])
    assert value == pytest.approx(-1.5)  # -mean exp(l) = -(1 + 2) / 2
    assert grad == pytest.approx([-0.5, -1.0])  # -exp(l) / m


def test_minimax_gradient_vanishes_where_d_rejects_the_samples():
    # D(G(z)) = σ(-10) ≈ 4.5e-5: the minimax cost's gradient is -σ(-10), the non-saturating
    # cost's σ(-10) - 1: about 22,000 times larger.
    _, minimax = value_and_grad(minimax_loss, [-10.0])
    _, saturating_fix = value_and_grad(non_saturating_loss, [-10.0])
    assert minimax[0] == pytest.approx(-4.5397868702e-05, rel=1e-8)
    assert saturating_fix[0] == pytest.approx(-0.9999546021, rel=1e-9)
    assert abs(saturating_fix[0] / minimax[0]) > 2e4


@pytest.mark.parametrize("kind", ["minimax", "non-saturating", "maximum-likelihood"])
def test_costs_share_the_fixed_point_direction(kind):
    # Every cost must make G push D(G(z)) up: dJ/dl < 0 at any logit.
    _, grad = value_and_grad(lambda logits: generator_loss(logits, kind), [-3.0, 0.0, 3.0])
    assert all(g < 0 for g in grad)


def test_costs_are_finite_at_extreme_logits():
    logits = torch.tensor([-200.0, 200.0])
    assert torch.isfinite(discriminator_loss(logits, logits))
    assert torch.isfinite(minimax_loss(logits))
    assert torch.isfinite(non_saturating_loss(logits))
