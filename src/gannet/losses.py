"""The players' costs, computed from D's logits l (D = σ(l)) so that no log(0) can occur:
log σ(l) = −softplus(−l) and log(1 − σ(l)) = −softplus(l).

Each cost is the quantity its player *descends*.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """½·[BCE(1, D(x)) + BCE(0, D(G(z)))] = −½·mean[log D(x)] − ½·mean[log(1 − D(G(z)))].

    Descending it ascends Algorithm 1's (1/m) Σ [log D(x) + log(1 − D(G(z)))]; the ½ is the
    2014 code's, and the paper's learning rates were tuned with it.
    """
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def minimax_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """J(G) = mean log(1 − D(G(z))): the game's own value; dJ/dl = −σ(l) vanishes when D
    confidently rejects the samples (l → −∞), so G learns little early on."""
    return -F.softplus(logits_fake).mean()


def non_saturating_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """J(G) = −mean log D(G(z)): same fixed point, dJ/dl = σ(l) − 1 → −1 when D rejects."""
    return F.softplus(-logits_fake).mean()


def maximum_likelihood_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """J(G) = −mean exp(σ⁻¹(D(G(z)))) = −mean exp(l): with D = D* its expected gradient is
    that of maximum likelihood (tutorial, seeds/004); high variance."""
    return -torch.exp(logits_fake).mean()


GENERATOR_LOSSES = {
    "minimax": minimax_loss,
    "non-saturating": non_saturating_loss,
    "maximum-likelihood": maximum_likelihood_loss,
}


def generator_loss(logits_fake: torch.Tensor, kind: str) -> torch.Tensor:
    return GENERATOR_LOSSES[kind](logits_fake)
