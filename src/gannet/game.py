"""Where the game is played: one update of the discriminator, of the generator, or of both.

`z` is G's input (noise.sample_codes): for a conditional model it ends in the one-hot label,
and `x` ends in the real examples' labels, so D always sees an example with its label.

Each step returns its statistics as one tensor on the training device,
[loss/d, loss/g, D(x), D(G(z))] (means over the minibatch), so that the loop can sum them
without waiting for the device; NaN marks a value the step did not compute.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gannet import distributed as dist
from gannet.data import data_shape
from gannet.losses import discriminator_loss, generator_loss
from gannet.masks import draw_masks
from gannet.networks import Discriminator, Generator, build_networks, clip_column_norms, with_labels
from gannet.noise import masked_codes, sample_codes, sample_noise
from gannet.optim import generator_lr, learning_rate, make_optimizer
from gannet.resources import compute_dtype

if TYPE_CHECKING:
    from gannet.config import TrainConfig
    from gannet.data import Dataset

STAT_NAMES = ("loss/d", "loss/g", "d/real", "d/fake")
UPDATE_SCHEMES = ("simultaneous", "alternating")  # the 2014 code's, Algorithm 1's


@dataclass
class Players:
    generator: Generator
    discriminator: Discriminator
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    scheduler_g: torch.optim.lr_scheduler.LRScheduler  # lr decay, one tick per update
    scheduler_d: torch.optim.lr_scheduler.LRScheduler
    generator_loss: str = "non-saturating"
    max_col_norm: float | None = None  # pylearn2's weight-norm constraint, after each update
    # torch.distributed: the players wrapped in DistributedDataParallel, for the forward passes
    # whose backward updates them (gradients averaged over the processes); None in one process
    ddp_generator: torch.nn.Module | None = None
    ddp_discriminator: torch.nn.Module | None = None
    # False while a CUDA graph replays the updates (graphs.py): the lr schedules then tick
    # outside the graph, after each replay
    schedules_in_step: bool = True
    # --precision bf16 where it pays (resources.compute_dtype): the forward passes run under
    # autocast to this dtype; the weights, their gradients and optimiser state stay float32
    compute_dtype: torch.dtype | None = None
    # --ema-decay: the moving average of G's parameters (float32, on G's device) and how many
    # G updates it has followed
    ema_decay: float = 0.0
    ema: list[torch.Tensor] | None = None
    ema_updates: int = 0

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of one forward pass: autocast to compute_dtype, or nothing. One per pass, not
        one per step: autocast caches each weight's cast until its context closes, and a weight
        updated inside the context would be read stale."""
        if self.compute_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.generator.output.weight.device.type, dtype=self.compute_dtype)

    @property
    def trained_generator(self) -> torch.nn.Module:
        return self.ddp_generator if self.ddp_generator is not None else self.generator

    @property
    def trained_discriminator(self) -> torch.nn.Module:
        return self.ddp_discriminator if self.ddp_discriminator is not None else self.discriminator

    def update_g(self) -> None:
        self.optimizer_g.step()
        if self.schedules_in_step:
            self.scheduler_g.step()
        if self.max_col_norm is not None:
            clip_column_norms(self.generator, self.max_col_norm)
        if self.schedules_in_step:  # a CUDA graph's replays update it after each replay (graphs.py)
            self.update_ema()

    def update_ema(self) -> None:
        """ema ← ema + (1 − d)·(θ_G − ema), d = min(ema_decay, (1 + n) / (10 + n)) after n updates:
        the warm-up keeps the first updates from dragging the initial weights along."""
        if self.ema is None:
            return
        n = self.ema_updates
        decay = min(self.ema_decay, (1 + n) / (10 + n))
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, list(self.generator.parameters()), 1 - decay)
        self.ema_updates += 1

    def ema_weights(self) -> dict[str, torch.Tensor]:
        """The moving average as G's state dict (its parameters are all of G's state)."""
        return dict(zip((name for name, _ in self.generator.named_parameters()), self.ema, strict=True))

    def update_d(self) -> None:
        self.optimizer_d.step()
        if self.schedules_in_step:
            self.scheduler_d.step()
        if self.max_col_norm is not None:
            clip_column_norms(self.discriminator, self.max_col_norm)


def _stats(loss_d, loss_g, logits_real, logits_fake) -> torch.Tensor:
    nan = torch.full((), float("nan"), device=logits_fake.device)
    d_real = torch.sigmoid(logits_real).mean() if logits_real is not None else nan
    return torch.stack(
        [
            loss_d.detach() if loss_d is not None else nan,
            loss_g.detach() if loss_g is not None else nan,
            d_real.detach(),
            torch.sigmoid(logits_fake).mean().detach(),
        ]
    )  # (4,)


def discriminator_step(players: Players, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """θd ← θd + ∇θd (1/m) Σ [log D(x) + log(1 − D(G(z)))]  (ascend; G held fixed)."""
    G, D = players.generator, players.trained_discriminator
    with torch.no_grad(), players.autocast():
        fake = with_labels(G(z), z, G)  # (m, data_dim [+ classes])
    with players.autocast():
        logits_real, logits_fake = D(x), D(fake)  # (m,), (m,)
    logits_real, logits_fake = logits_real.float(), logits_fake.float()  # losses in float32
    loss_d = discriminator_loss(logits_real, logits_fake)
    players.optimizer_d.zero_grad(set_to_none=True)
    loss_d.backward()
    players.update_d()
    return _stats(loss_d, None, logits_real, logits_fake)


def generator_step(players: Players, z: torch.Tensor) -> torch.Tensor:
    """θg ← θg − ∇θg J(G), J(G) = (1/m) Σ log(1 − D(G(z))) or its non-saturating / ML form
    (D held fixed: its parameters get no gradient)."""
    # D is used unwrapped: it takes no update here, so DDP must not wait for its gradients
    G, D = players.generator, players.discriminator
    D.requires_grad_(False)  # only D's input gradient is needed: skip its weight gradients
    try:
        with players.autocast():
            logits_fake = D(with_labels(players.trained_generator(z), z, G))  # (m,)
        logits_fake = logits_fake.float()
        loss_g = generator_loss(logits_fake, players.generator_loss)
        players.optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
    finally:
        D.requires_grad_(True)
    players.update_g()
    return _stats(None, loss_g, None, logits_fake)


def alternating_step(players: Players, xs: list[torch.Tensor], zs: list[torch.Tensor]) -> torch.Tensor:
    """Algorithm 1: k discriminator steps, each on a fresh minibatch and noise batch
    (len(xs) == k), then one generator step on fresh noise zs[k]."""
    d_stats = torch.stack([discriminator_step(players, x, z) for x, z in zip(xs, zs)]).mean(0)
    g_stats = generator_step(players, zs[-1])
    return torch.stack([d_stats[0], g_stats[1], d_stats[2], d_stats[3]])


def simultaneous_step(players: Players, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The 2014 code: one forward pass (same samples, same dropout masks); D descends its
    cost, G descends J(G), both gradients taken before either player moves."""
    G, D = players.generator, players.discriminator
    with players.autocast():
        fake = with_labels(players.trained_generator(z), z, G)  # (m, data_dim [+ classes])
        logits_real, logits_fake = players.trained_discriminator(x), players.trained_discriminator(fake)  # (m,), (m,)
    logits_real, logits_fake = logits_real.float(), logits_fake.float()  # losses in float32
    loss_d = discriminator_loss(logits_real, logits_fake)
    loss_g = generator_loss(logits_fake, players.generator_loss)
    players.optimizer_d.zero_grad(set_to_none=True)
    players.optimizer_g.zero_grad(set_to_none=True)
    # `inputs=` keeps each backward to its own player: loss_d fills only D's gradients, loss_g
    # flows through D (input gradients only) into G's.
    loss_d.backward(inputs=list(D.parameters()), retain_graph=True)
    loss_g.backward(inputs=list(G.parameters()))
    players.update_d()
    players.update_g()
    return _stats(loss_d, loss_g, logits_real, logits_fake)


def step(
    players: Players,
    config: TrainConfig,
    batch: torch.Tensor,
    noise_rng: torch.Generator | None = None,
    cluster: dist.Cluster | None = None,
) -> torch.Tensor:
    """One iteration of the configured update scheme on `batch` (batch_size × k examples, or
    this rank's share of them), on fresh noise: the training loop's step."""

    def codes() -> torch.Tensor:  # z for the global batch; this rank's slice of it
        return dist.my_slice(sample_codes(config, config.batch_size, batch.device, noise_rng), cluster)

    xs = list(batch.split(len(batch) // config.k)) if config.update == "alternating" else [batch]
    if config.all_conditionals:  # each minibatch: D sees its images beside masks, G completes them
        return masked_step(players, config, xs, noise_rng, cluster)
    if config.update == "simultaneous":
        return simultaneous_step(players, batch, codes())
    zs = [codes() for _ in range(config.k + 1)]
    return alternating_step(players, xs, zs)


def masked_step(
    players: Players,
    config: TrainConfig,
    xs: list[torch.Tensor],
    noise_rng: torch.Generator | None,
    cluster: dist.Cluster | None,
) -> torch.Tensor:
    """An --all-conditionals iteration: for each minibatch x, masks m (masks.draw_masks) and z;
    D sees [x, m] as real and [G(z, x·m, m), m] as fake, where G's image keeps x's observed
    pixels (networks.Generator); G's update completes the last minibatch under fresh masks."""
    device, shape = xs[0].device, data_shape(config)

    def masked(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (real for D, codes for G)
        z = dist.my_slice(sample_noise(config.noise, config.batch_size, config.latent_dim, device, noise_rng), cluster)
        mask = dist.my_slice(draw_masks(config.batch_size, shape, device, noise_rng), cluster)
        return torch.cat([x, mask], dim=1), masked_codes(z, x, mask)

    if config.update == "simultaneous":
        return simultaneous_step(players, *masked(xs[0]))
    pairs = [masked(x) for x in xs]
    return alternating_step(players, [real for real, _ in pairs], [z for _, z in pairs] + [masked(xs[-1])[1]])


def d_updates_per_step(config: TrainConfig) -> int:
    """D's updates in one iteration: k for Algorithm 1 (each on its own minibatch), one otherwise."""
    return config.k if config.update == "alternating" else 1


def examples_per_step(config: TrainConfig) -> int:
    """Training examples one iteration consumes: a minibatch per D update."""
    return config.batch_size * d_updates_per_step(config)


def make_players(config: TrainConfig, data: Dataset, device: torch.device) -> Players:
    """Both networks, initialised as the config says, with their optimisers and lr schedules."""
    generator, discriminator = build_networks(config, data.shape, data.train)
    generator.to(device).train()
    discriminator.to(device).train()
    optimizer_g = make_optimizer(generator.parameters(), config, generator_lr(config))
    optimizer_d = make_optimizer(discriminator.parameters(), config)
    steps = max(len(data.train[: config.train_limit]) // examples_per_step(config), 1)  # per epoch

    def schedule(updates_per_epoch: int, lr: float = config.lr) -> Callable[[int], float]:
        return lambda updates: learning_rate(config, updates, updates_per_epoch, lr) / lr

    players = Players(
        generator,
        discriminator,
        optimizer_g,
        optimizer_d,
        torch.optim.lr_scheduler.LambdaLR(optimizer_g, schedule(steps, generator_lr(config))),
        torch.optim.lr_scheduler.LambdaLR(optimizer_d, schedule(steps * d_updates_per_step(config))),
        config.generator_loss,
        config.max_col_norm,
        compute_dtype=compute_dtype(config.precision, device)[0],
        ema_decay=config.ema_decay,
    )
    if config.ema_decay:
        players.ema = [p.detach().clone() for p in generator.parameters()]
    return players
