"""Optimisers and the paper's schedules (the 2014 code's pylearn2 callbacks)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gannet.config import TrainConfig

OPTIMIZERS = ("sgd", "adam")  # SGD with momentum (the paper's), or Adam


def make_optimizer(
    params: Iterable[torch.nn.Parameter], config: TrainConfig, lr: float | None = None
) -> torch.optim.Optimizer:
    """The config's optimiser over `params`, starting at `lr` (default: config.lr)."""
    params = list(params)
    lr = config.lr if lr is None else lr
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(config.adam_betas))
    # SGD: one fused kernel per step instead of a few per parameter (CPU and CUDA); the same update
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.SGD(params, lr=lr, momentum=config.momentum, fused=fused)


def generator_lr(config: TrainConfig) -> float:
    """G's initial learning rate: --generator-lr, else the players' shared --lr."""
    return config.lr if config.generator_lr is None else config.generator_lr


def learning_rate(config: TrainConfig, updates: int, updates_per_epoch: int, lr: float | None = None) -> float:
    """The rate for the player's update number `updates` (0-based): lr / decay^updates (pylearn2's
    ExponentialDecay(1.000004, min_lr=1e-6)), times the milestones' factor for the update's epoch,
    floored at lr_min. `updates_per_epoch`: the player's updates in one epoch; `lr`: the player's
    initial rate (default: config.lr)."""
    lr = config.lr if lr is None else lr
    factor = milestone_factor(config, updates // updates_per_epoch)
    try:
        decay = config.lr_decay**updates
    except OverflowError:  # a steep --lr-decay: the rate has long reached its floor
        return config.lr_min
    return max(lr / decay * factor, config.lr_min)


def milestone_factor(config: TrainConfig, epoch: int) -> float:
    """lr_gamma to the number of lr_milestones passed by epoch `epoch` (0-based): milestone M
    cuts the rate from the epoch after the M-th on, as MultiStepLR does."""
    return config.lr_gamma ** sum(epoch >= m for m in config.lr_milestones)


def momentum_at(config: TrainConfig, epoch: int) -> float:
    """SGD momentum during epoch `epoch` (0-based): pylearn2's MomentumAdjustor(start=1,
    saturate=250) counts epochs from 1, so the ramp runs linearly from `momentum` in the first
    epoch to `momentum_final` in epoch 250 and stays there."""
    span = config.momentum_saturate_epoch - config.momentum_start_epoch
    if span == 0:
        alpha = 1.0 if epoch + 1 >= config.momentum_start_epoch else 0.0
    else:
        alpha = min(max((epoch + 1 - config.momentum_start_epoch) / span, 0.0), 1.0)
    return config.momentum * (1 - alpha) + config.momentum_final * alpha


def set_momentum(optimizer: torch.optim.Optimizer, momentum: float) -> None:
    """Set SGD's momentum (Adam has none and is left alone)."""
    for group in optimizer.param_groups:
        if "momentum" in group:
            group["momentum"] = momentum


def scheduled_lrs(scheduler: torch.optim.lr_scheduler.LambdaLR) -> list[float]:
    """The learning rates (one per parameter group) that `scheduler` gives its optimizer's next
    update, as Python floats: what LambdaLR writes into the param groups, computed afresh (while
    a CUDA graph replays, the groups hold float32 copies on the GPU: graphs.py)."""
    return [base * rule(scheduler.last_epoch) for rule, base in zip(scheduler.lr_lambdas, scheduler.base_lrs)]
