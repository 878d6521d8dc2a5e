"""The training loop: an ordinary function, `train(config, run_dir)`.

It holds the data on the training device as one tensor, shuffles it by index each epoch,
plays the game (game.py) and does the bookkeeping: metrics every `log_every` steps (the only
time it waits for the device), a sample picture each epoch, a checkpoint every
`checkpoint_every` epochs.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gannet import averaging, checkpoints
from gannet import config as config_module
from gannet import distributed as dist
from gannet.config import TrainConfig
from gannet.data import Dataset, dataset_for
from gannet.errors import GannetError
from gannet.game import STAT_NAMES, Players, alternating_step, simultaneous_step
from gannet.graphs import GraphedIterations, graphs_apply
from gannet.images import save_samples_picture
from gannet.interrupts import StopRequest, TrainingInterrupted
from gannet.metrics import MetricsWriter
from gannet.networks import build_networks
from gannet.noise import append_labels, num_classes, sample_codes
from gannet.optim import learning_rate, make_optimizer, momentum_at, scheduled_lrs, set_momentum
from gannet.parzen import PAPER_SIGMAS, parzen_log_likelihoods
from gannet.runs import (
    Progress,
    RunLock,
    begin_branch,
    check_free,
    check_run_dir,
    check_schedule_change,
    claim_run_dir,
    default_run_dir,
    follow_schedule,
    global_rng_state,
    next_step,
    restore,
    start_point,
    training_state,
)

MONITOR_VALID = 1_000  # the *last* 1,000 validation images: the final protocol picks σ on the first


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GannetError(f"--device {name!r} is not a device name (try cpu, cuda or cuda:0).") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GannetError(f"--device {name} was asked for, but PyTorch sees no CUDA GPU here.")
    return device


def make_players(config: TrainConfig, data: Dataset, device: torch.device) -> Players:
    generator, discriminator = build_networks(config, data.shape, data.train)
    generator.to(device).train()
    discriminator.to(device).train()
    optimizer_g = make_optimizer(generator.parameters(), config)
    optimizer_d = make_optimizer(discriminator.parameters(), config)
    steps = max(len(data.train[: config.train_limit]) // examples_per_step(config), 1)  # per epoch

    def schedule(updates_per_epoch: int) -> Callable[[int], float]:
        return lambda updates: learning_rate(config, updates, updates_per_epoch) / config.lr

    return Players(
        generator,
        discriminator,
        optimizer_g,
        optimizer_d,
        torch.optim.lr_scheduler.LambdaLR(optimizer_g, schedule(steps)),
        torch.optim.lr_scheduler.LambdaLR(optimizer_d, schedule(steps * d_updates_per_step(config))),
        config.generator_loss,
        config.max_col_norm,
    )


@torch.no_grad()
def monitor_parzen(
    generator: torch.nn.Module, config: TrainConfig, data: Dataset, device: torch.device, name: str = "parzen/valid"
) -> dict[str, float]:
    """The 2014 code's training monitor: Parzen LL of validation images under samples from
    fixed noise, at the best σ of the paper's grid. Cheap (one matrix product), noisy, and
    only for comparing epochs of one run: `gannet eval parzen` gives the paper's figure."""
    G = generator.eval()
    z = sample_codes(config, config.parzen_samples, generator=torch.Generator().manual_seed(config.seed))
    samples = torch.cat([G(chunk.to(device)) for chunk in z.split(10_000)])
    G.train()
    lls = parzen_log_likelihoods(data.valid[-MONITOR_VALID:].to(device), samples, PAPER_SIGMAS).mean(dim=1)
    best = int(lls.argmax())
    return {name: lls[best].item(), name.replace("valid", "sigma"): PAPER_SIGMAS[best]}


def save_epoch_picture(players: Players, data: Dataset, fixed_noise: torch.Tensor, path: Path, title: str) -> None:
    G, D = players.generator.eval(), players.discriminator.eval()
    with torch.no_grad():
        samples = G(fixed_noise)
    save_samples_picture(samples, data.shape, path, data.train, discriminator=D, title=title)
    G.train()
    D.train()


def train(
    config: TrainConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool | str | Path = False,
    force: bool = False,
    progress_bar: bool | None = None,
    data: Dataset | None = None,
) -> Path:
    """Train `config` in `run_dir`; return run_dir.

    resume: True goes on from run_dir's newest checkpoint; a checkpoint file, or another run
    directory (its newest checkpoint), starts run_dir as a branch of that run: a new folder that
    begins with the run's history up to that checkpoint and trains on from it (say with other
    lr milestones), the source run untouched.

    progress_bar: True / False, or None to show it only on a terminal. Ctrl-C or SIGTERM:
    the current step finishes, a checkpoint is written, and TrainingInterrupted is raised.
    Started by torchrun, each process trains its share of every batch (distributed.py).
    """
    config.validate()
    resume = resume if isinstance(resume, str | os.PathLike) else bool(resume)
    cluster = dist.join(config)
    try:
        return _train(config, run_dir, resume, force, progress_bar, data, cluster)
    finally:
        dist.leave(cluster)


def _train(
    config: TrainConfig,
    run_dir: str | Path | None,
    resume: bool | str | Path,
    force: bool,
    progress_bar: bool | None,
    data: Dataset | None,
    cluster: dist.Cluster | None,
) -> Path:
    run_dir = dist.broadcast(Path(run_dir) if run_dir is not None else default_run_dir(config), cluster)
    resuming = resume is not False  # in place, or as a branch
    dist.on_main(cluster, lambda: check_free(run_dir))
    branch = start_point(run_dir, resume)  # None: a fresh run, or run_dir's own checkpoint
    in_place = resuming and branch is None
    dist.on_main(cluster, lambda: check_run_dir(run_dir, in_place, force, branch is not None))
    owner: list[RunLock] = []  # rank 0's lock on run_dir, held until the run ends
    try:
        if in_place:  # owned from the start: nothing else may write it while we read its state
            dist.on_main(cluster, lambda: owner.append(claim_run_dir(run_dir, True, False)))
        return _train_owned(config, run_dir, resume, branch, force, progress_bar, data, cluster, owner)
    finally:
        for lock in owner:
            lock.release()


def _train_owned(
    config: TrainConfig,
    run_dir: Path,
    resume: bool | str | Path,
    branch: Path | None,
    force: bool,
    progress_bar: bool | None,
    data: Dataset | None,
    cluster: dist.Cluster | None,
    owner: list[RunLock],
) -> Path:
    main = cluster is None or cluster.main
    resuming = resume is not False
    device = resolve_device(config.device)
    if cluster is not None:
        device = dist.device_for(cluster, device)
    if data is None:
        data = dataset_for(config, progress_bar if main else False)
    train_set = training_examples(config, data).to(device)  # (N, data_dim [+ classes]), resident
    steps_per_epoch = len(train_set) // examples_per_step(config)
    if steps_per_epoch == 0:
        raise GannetError(
            f"One step needs {examples_per_step(config)} training examples (batch size × k) but the "
            f"training set has {len(train_set)}; lower --batch-size or --k."
        )

    players, data_rng, noise_rng = seeded_players(config, data, device, cluster)
    fixed_noise = grid_noise(config, data)
    progress = Progress()
    if resuming:  # read and checked before a branch's folder is made: a refused branch leaves none
        source = branch or run_dir
        progress, fixed_noise, metadata = restore(
            source, players, data_rng, device, fixed_noise, steps_per_epoch, noise_rng, cluster
        )
        if branch is not None:
            previous = checkpoints.checkpoint_config(metadata, branch)
        else:
            previous = config_module.load(run_dir / "config.json")
        check_schedule_change(previous, config, progress)
        if progress.epoch > config.epochs:
            raise GannetError(
                f"{source} has finished {progress.epoch} epochs already; "
                f"--epochs cannot go below that (give {progress.epoch} or more)."
            )
        follow_schedule(players)
    if branch is not None or not resuming:  # a fresh run or a branch: its folder is claimed now
        dist.on_main(cluster, lambda: owner.append(claim_run_dir(run_dir, False, force)))
    if branch is not None:
        dist.on_main(cluster, lambda: begin_branch(branch, run_dir))
    dist.on_main(cluster, lambda: config.save(run_dir / "config.json"))
    fixed_noise = fixed_noise.to(device)
    if cluster is not None:
        players.ddp_generator = dist.wrap(players.generator, device)
        players.ddp_discriminator = dist.wrap(players.discriminator, device)

    writer = MetricsWriter(run_dir, resume_step=progress.step if resuming else None) if main else None
    bar = tqdm(
        total=config.epochs * steps_per_epoch,
        initial=progress.step,
        unit="step",
        dynamic_ncols=True,
        disable=(None if progress_bar is None else not progress_bar) if main else True,  # None: only on a terminal
    )
    loop = Loop(
        players, config, data, train_set, run_dir, progress, writer, bar, fixed_noise, data_rng, noise_rng, cluster
    )
    try:
        if resuming and progress.averaged:  # a branch starts with the average of its checkpoint
            dist.on_main(cluster, loop.write_average)
        play(loop)
    except OSError as error:  # a full disk or a lost mount while writing a picture, a log, best.safetensors
        what = Path(str(error.filename)).name if error.filename else "to the run directory"
        raise GannetError(f"Could not write {what} ({error.strerror or error}); {next_step(run_dir)}.") from None
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return run_dir


def seeded_players(
    config: TrainConfig, data: Dataset, device: torch.device, cluster: dist.Cluster | None
) -> tuple[Players, torch.Generator, torch.Generator | None]:
    """Seed every RNG from config.seed, then build the players: (players, the data-order RNG,
    the shared noise RNG of a distributed run or None)."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    data_rng = torch.Generator().manual_seed(config.seed)
    players = make_players(config, data, device)
    noise_rng = None
    if cluster is not None:
        # z for the global batch: one stream, the same on every rank (and the one a single
        # process draws from); dropout masks: each rank's own stream
        noise_rng = torch.Generator(device=device)
        noise_rng.set_state(global_rng_state(device))
        torch.manual_seed(config.seed + 1 + cluster.rank)
    return players, data_rng, noise_rng


def grid_noise(config: TrainConfig, data: Dataset) -> torch.Tensor:
    """The fixed z of the per-epoch sample pictures (a conditional model's: one class per row)."""
    picture_size = config.grid_size**2 if data.is_image else 5_000  # a 1-D histogram needs more
    row_labels = (torch.arange(picture_size) // config.grid_size) % max(num_classes(config), 1)
    return sample_codes(
        config,
        picture_size,
        generator=torch.Generator().manual_seed(config.seed),
        labels=row_labels if data.is_image else None,
    )


def play(loop: Loop) -> None:
    """Epochs until config.epochs; a signal ends the run with a checkpoint where it stands
    (mid-epoch, or the epoch's own when it arrives during the end-of-epoch work)."""
    progress, config = loop.progress, loop.config
    with StopRequest() as stop:
        while progress.epoch < config.epochs:
            loop.bar.set_description(f"epoch {progress.epoch + 1}/{config.epochs}")
            started = time.perf_counter()
            means = loop.play_epoch(stop)
            saved = loop.save_checkpoint() if means is None else loop.finish_epoch(means, time.perf_counter() - started)
            if means is None or loop.stopping(stop):
                path = saved or loop.save_checkpoint()
                done = progress.epoch == config.epochs
                then = "the run is complete" if done else f"continue with `gannet train --resume {loop.run_dir}`"
                raise TrainingInterrupted(
                    f"{signal.Signals(stop.signum).name} received: stopped after step {progress.step}, "
                    f"checkpoint {path.name} written; {then}.",
                    stop.signum,
                )


def training_examples(config: TrainConfig, data: Dataset) -> torch.Tensor:
    """The training set as D reads it: each example, followed by its one-hot label for a
    conditional model (so that a shuffled minibatch keeps examples and labels together)."""
    x = data.train[: config.train_limit]
    classes = num_classes(config)
    if not classes:
        return x
    return append_labels(x, data.labels["train"][: config.train_limit], classes)


def d_updates_per_step(config: TrainConfig) -> int:
    """D's updates in one iteration: k for Algorithm 1 (each on its own minibatch), one otherwise."""
    return config.k if config.update == "alternating" else 1


def examples_per_step(config: TrainConfig) -> int:
    """Training examples one iteration consumes: a minibatch per D update."""
    return config.batch_size * d_updates_per_step(config)


def play_step(
    players: Players,
    config: TrainConfig,
    batch: torch.Tensor,
    noise_rng: torch.Generator | None = None,
    cluster: dist.Cluster | None = None,
) -> torch.Tensor:
    """One iteration of the configured update scheme on `batch` (batch_size × k examples, or
    this rank's share of them)."""
    device = batch.device

    def codes() -> torch.Tensor:  # z for the global batch; this rank's slice of it
        return dist.my_slice(sample_codes(config, config.batch_size, device, noise_rng), cluster)

    if config.update == "simultaneous":
        return simultaneous_step(players, batch, codes())
    zs = [codes() for _ in range(config.k + 1)]
    return alternating_step(players, list(batch.split(len(batch) // config.k)), zs)


def epoch_iterations(
    players: Players,
    config: TrainConfig,
    train_set: torch.Tensor,
    noise_rng: torch.Generator | None = None,
    cluster: dist.Cluster | None = None,
) -> contextlib.AbstractContextManager[Callable[[torch.Tensor], torch.Tensor]]:
    """An epoch's `iteration(rows) -> statistics`: play_step on the training examples at `rows`
    (this rank's share of them), recorded as a CUDA graph where graphs.py applies; one per epoch."""

    def iteration(rows: torch.Tensor) -> torch.Tensor:
        batch = train_set[dist.my_slice(rows, cluster, d_updates_per_step(config))]
        return play_step(players, config, batch, noise_rng, cluster)

    if not graphs_apply(config, train_set.device, cluster is not None):
        return contextlib.nullcontext(iteration)
    step = lambda batch: play_step(players, config, batch)  # noqa: E731
    return GraphedIterations(step, players, train_set, examples_per_step(config))


@dataclass
class Loop:
    """The state the epochs share; its methods are the loop's two halves."""

    players: Players
    config: TrainConfig
    data: Dataset
    train_set: torch.Tensor
    run_dir: Path
    progress: Progress
    writer: MetricsWriter
    bar: tqdm
    fixed_noise: torch.Tensor
    data_rng: torch.Generator
    noise_rng: torch.Generator | None = None  # distributed runs: the global batch's z
    cluster: dist.Cluster | None = None

    def play_epoch(self, stop: StopRequest) -> dict[str, float] | None:
        """Play the rest of the current epoch; return its mean statistics, or None if a stop
        was requested (the epoch's position is then kept in `progress` for the checkpoint).

        Statistics and the non-finite flags stay on the device; they are read (the only
        sync) every `log_every` steps."""
        config, p, device = self.config, self.progress, self.train_set.device
        for optimizer in (self.players.optimizer_g, self.players.optimizer_d):
            set_momentum(optimizer, momentum_at(config, p.epoch))
        if p.order is None:  # a new epoch
            p.order = torch.randperm(len(self.train_set), generator=self.data_rng).to(device)
            p.position, p.since_log = 0, 0
            p.total, p.interval = torch.zeros(4, device=device), torch.zeros(4, device=device)
        if p.first_bad is None:
            p.first_bad = torch.full((2,), -1, dtype=torch.long, device=device)
        per_step = examples_per_step(config)
        steps = len(self.train_set) // per_step
        with epoch_iterations(self.players, config, self.train_set, self.noise_rng, self.cluster) as iteration:
            while p.position < steps:
                stats = iteration(p.order[p.position * per_step : (p.position + 1) * per_step])
                p.total += stats
                p.interval += stats
                bad = ~torch.isfinite(stats[:2])  # (2,): D's and G's loss
                p.first_bad = torch.where((p.first_bad < 0) & bad, p.step + 1, p.first_bad)
                p.position, p.since_log, p.step = p.position + 1, p.since_log + 1, p.step + 1
                self.bar.update(1)
                if p.step % config.log_every == 0 or p.position == steps:
                    self.log_interval()
                if self.stopping(stop) and p.position < steps:
                    return None
        total = dist.sum_over_ranks(p.total, self.cluster) / (self.cluster.world if self.cluster else 1)
        means = dict(zip(STAT_NAMES, (total / steps).tolist()))
        p.epoch, p.order, p.position, p.total, p.interval = p.epoch + 1, None, 0, None, None
        return means

    def stopping(self, stop: StopRequest) -> bool:
        """Whether to stop now. The processes of a distributed run decide together, and only
        right after a metrics record (the same steps on every rank): no per-step sync."""
        if self.cluster is None:
            return stop.requested
        return self.progress.since_log == 0 and dist.anyone(stop.requested, self.cluster, self.train_set.device)

    def log_interval(self) -> None:
        """Read the interval's means and the non-finite flags off the device in one go."""
        p, world = self.progress, self.cluster.world if self.cluster else 1
        interval = dist.sum_over_ranks(p.interval, self.cluster) / world
        first_bad = dist.sum_over_ranks(p.first_bad, self.cluster, "max")
        values = torch.cat([interval / p.since_log, first_bad.to(p.interval.dtype)]).tolist()
        if max(values[4:]) >= 0:
            self.check_finite()
        if self.writer is not None:  # rank 0 of a distributed run
            log_metrics(self.writer, self.bar, self.players, p, dict(zip(STAT_NAMES, values[:4])))
        p.interval.zero_()
        p.since_log = 0

    def finish_epoch(self, means: dict[str, float], seconds: float) -> Path | None:
        """After epoch `progress.epoch`: Parzen monitor, summary line, sample picture, checkpoint
        (returned, when this epoch writes one)."""
        self.check_finite()  # before the average, best.safetensors or a checkpoint keep them
        dist.on_main(self.cluster, lambda: self.report_epoch(means, seconds))
        if self.progress.epoch % self.config.checkpoint_every == 0 or self.progress.epoch == self.config.epochs:
            return self.write_checkpoint()
        return None

    def check_finite(self) -> None:
        """Stop, keeping the last checkpoint, if a loss since the last metrics record or the
        weights themselves are NaN or infinite (a signal or an epoch's end may come between two
        records, and the last update may have gone bad after its loss was computed)."""
        p = self.progress
        first_bad = dist.sum_over_ranks(p.first_bad, self.cluster, "max").tolist() if p.first_bad is not None else []
        weights = [*self.players.generator.parameters(), *self.players.discriminator.parameters()]
        finite = bool(torch.stack([torch.isfinite(w).all() for w in weights]).all())
        if max(first_bad, default=-1) < 0 and finite:
            return
        if max(first_bad, default=-1) >= 0:
            player = "discriminator" if first_bad[0] >= 0 else "generator"
            what = f"The {player}'s loss became NaN or infinite at step {int(min(s for s in first_bad if s >= 0))}"
        else:
            what = f"The weights became NaN or infinite by step {p.step}"
        newest = checkpoints.checkpoint_paths(self.run_dir)
        kept = f"the last checkpoint, {newest[-1].name}, is untouched" if newest else "no checkpoint was written"
        raise GannetError(f"{what}; the run stops ({kept}). Try a lower --lr.")

    def report_epoch(self, means: dict[str, float], seconds: float) -> None:
        """Rank 0's part of an epoch's end: Parzen monitor, summary line, sample picture."""
        config, p = self.config, self.progress
        note = ""
        averaging_now = bool(config.average_from) and p.epoch >= config.average_from
        if averaging_now:  # Polyak averaging of G
            p.average, p.averaged = averaging.add(p.average or {}, self.players.generator.state_dict()), p.averaged + 1
            self.write_average()
        if config.parzen_every and p.epoch % config.parzen_every == 0:
            device = self.fixed_noise.device
            monitor = monitor_parzen(self.players.generator, config, self.data, device)
            if averaging_now:  # the same monitor for the mean generator
                mean = copy.deepcopy(self.players.generator)
                mean.load_state_dict(averaging.generator_weights(p.average, p.averaged, mean.state_dict()))
                monitor.update(monitor_parzen(mean, config, self.data, device, "parzen/valid_average"))
            self.writer.write(p.step, {"epoch": p.epoch - 1, **monitor})
            note = f"  parzen/valid {monitor['parzen/valid']:.1f}"
            if monitor["parzen/valid"] > p.best_parzen:
                p.best_parzen = monitor["parzen/valid"]
                checkpoints.save_best(self.run_dir, p.epoch, players_weights(self.players), config, monitor)
                note += " (best)"
            if averaging_now:
                note += f"  average {monitor['parzen/valid_average']:.1f}"
        self.bar.write(
            f"epoch {p.epoch}/{config.epochs}  step {p.step}  "
            f"loss/d {means['loss/d']:.4f}  loss/g {means['loss/g']:.4f}  "
            f"D(x) {means['d/real']:.3f}  D(G(z)) {means['d/fake']:.3f}{note}  {seconds:.1f} s",
            file=sys.stderr,
        )
        picture = self.run_dir / "samples" / f"epoch-{p.epoch:04d}.png"
        save_epoch_picture(self.players, self.data, self.fixed_noise, picture, title=f"epoch {p.epoch}")

    def write_average(self) -> None:
        """checkpoints/average.safetensors: the mean generator of the epochs summed in progress."""
        p, players = self.progress, self.players
        averaging.write_running_average(
            self.run_dir, p.epoch, p.average, p.averaged, players.generator, players.discriminator, self.config
        )

    def save_checkpoint(self) -> Path:
        """Write a checkpoint (rank 0; every rank of a distributed run must call this), never
        of weights that are not finite."""
        self.check_finite()
        return self.write_checkpoint()

    def write_checkpoint(self) -> Path:
        """save_checkpoint without the check, for callers that have just made it."""
        p = self.progress
        if self.cluster is not None and p.total is not None:
            # mid-epoch: every rank resumes from rank 0's state, so store the ranks' average
            # partial sums; each rank adds its own steps to it, and the epoch's all-reduce is right
            p.total = dist.sum_over_ranks(p.total, self.cluster) / self.cluster.world
            p.interval = dist.sum_over_ranks(p.interval, self.cluster) / self.cluster.world
        state = training_state(
            self.players, self.progress, self.data_rng, self.fixed_noise, self.noise_rng, self.cluster
        )
        return dist.on_main(
            self.cluster,
            lambda: checkpoints.save(
                self.run_dir,
                players_weights(self.players),
                state,
                self.config,
                self.config.keep_checkpoints,
                self.config.keep_every,
            ),
        )


def players_weights(players: Players) -> dict[str, torch.Tensor]:
    return checkpoints.flat_weights(players.generator, players.discriminator)


def log_metrics(
    writer: MetricsWriter, bar: tqdm, players: Players, progress: Progress, values: dict[str, float]
) -> None:
    """Write one metrics record (the interval's means, read off the device by the caller)."""
    values = {
        **values,
        "epoch": progress.epoch,  # the epoch being played (0-based)
        "lr/g": scheduled_lrs(players.scheduler_g)[0],  # param_groups hold GPU tensors while a CUDA graph replays
        "lr/d": scheduled_lrs(players.scheduler_d)[0],
        "momentum": players.optimizer_d.param_groups[0].get("momentum", float("nan")),
    }
    writer.write(progress.step, values)
    bar.set_postfix(
        {
            "D(x)": f"{values['d/real']:.3f}",
            "D(G(z))": f"{values['d/fake']:.3f}",
            "loss/d": f"{values['loss/d']:.3f}",
            "loss/g": f"{values['loss/g']:.3f}",
        },
        refresh=False,
    )
