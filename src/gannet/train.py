"""The training loop: an ordinary function, `train(config, run_dir)`, read top to bottom.

A run starts (start.py: the folder claimed, the data on the device, the players built, a
checkpoint restored), then plays epochs. An epoch is its steps, each `game.step` on one
minibatch (replayed as a CUDA graph on a GPU, graphs.py), then the end-of-epoch work:
averaging, the Parzen monitor and the best checkpoint, the summary line, the sample picture
and the checkpoint. Metrics are read off the device every `log_every` steps, the only time
the loop waits for it.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gannet import averaging, checkpoints
from gannet import distributed as dist
from gannet.background import BackgroundWriter, snapshot
from gannet.config import TrainConfig
from gannet.data import Dataset
from gannet.errors import GannetError
from gannet.game import STAT_NAMES, examples_per_step
from gannet.graphs import epoch_steps
from gannet.images import save_samples_picture
from gannet.interrupts import StopRequest, TrainingInterrupted
from gannet.metrics import CollapseWatch, MetricsWriter
from gannet.optim import momentum_at, scheduled_lrs, set_momentum
from gannet.parzen import monitor_parzen
from gannet.runs import RunLock, next_step
from gannet.start import Run, start
from gannet.state import resumed_config, training_state


def train(
    config: TrainConfig | None,
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
    lr milestones), the source run untouched. A resumed run keeps its config but for the fields
    in config.RESUMABLE (a GannetError says which others changed); those it takes from `config`,
    so pass the run's own (or None: the run's config.json, or the branch checkpoint's) to keep its
    checkpoint rotation and schedule as they were.

    progress_bar: True / False, or None to show it only on a terminal. Ctrl-C or SIGTERM:
    the current step finishes, a checkpoint is written, and TrainingInterrupted is raised.
    Started by torchrun, each process trains its share of every batch (distributed.py).
    """
    resume = resume if isinstance(resume, str | os.PathLike) else bool(resume)
    config = (config if config is not None else resumed_config(run_dir, resume)).validate()
    cluster = dist.join(config)
    owner: list[RunLock] = []  # rank 0's lock on the run directory, held until the run ends
    try:
        run = start(config, run_dir, resume, force, data, progress_bar, cluster, owner)
        with Loop(run, progress_bar) as loop, StopRequest() as stop:
            if run.resumed and run.progress.averaged:  # a branch starts with its checkpoint's average
                dist.on_main(cluster, loop.write_average)
            if run.resumed and run.players.ema is not None:  # and its moving average
                dist.on_main(cluster, loop.write_ema)
            mark = time.perf_counter()  # the run's clock: an epoch's end-of-epoch work counts in the next
            while run.progress.epoch < config.epochs:
                started = time.perf_counter()
                means = loop.play_epoch(stop)  # the epoch's steps; None if a signal came first
                now = time.perf_counter()
                run.progress.seconds, mark = run.progress.seconds + now - mark, now
                if means is None:
                    loop.stop(stop, loop.save_checkpoint())
                saved = loop.end_epoch(means, now - started)
                if run.progress.epoch == config.epochs:  # the last files, while a signal is still caught
                    loop.hand_over(wait=True)
                if loop.stopping(stop):  # a signal during the end-of-epoch work
                    loop.stop(stop, saved or loop.save_checkpoint())
        return run.run_dir
    finally:
        for lock in owner:
            lock.release()
        dist.leave(cluster)


class Loop:
    """The epochs' shared state (the Run) with the metrics log and the progress bar; its
    methods are the loop's parts."""

    def __init__(self, run: Run, progress_bar: bool | None) -> None:
        self.run, p = run, run.progress
        self.collapse = CollapseWatch()  # D rejecting every sample for epochs on end: said once
        self.files = BackgroundWriter()  # checkpoints, averages, pictures: written while training goes on
        self.pending: list[Callable[[], object]] = []  # this epoch's, handed over at its end
        self.writer = MetricsWriter(run.run_dir, resume_step=p.step if run.resumed else None) if run.main else None
        self.bar = tqdm(
            total=run.config.epochs * (len(run.train_set) // examples_per_step(run.config)),
            initial=p.step,
            unit="step",
            dynamic_ncols=True,
            disable=(None if progress_bar is None else not progress_bar) if run.main else True,  # None: a terminal
        )
        if self.writer is not None and not run.resumed:  # TensorBoard's text tab: the resolved config
            self.writer.text("config", f"```\n{json.dumps(run.config.to_dict(), indent=2)}\n```")

    def __enter__(self) -> Loop:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: object) -> None:
        try:
            try:
                self.hand_over(wait=True)  # the last files are whole on disk before the run says so
            finally:
                self.bar.close()
                if self.writer is not None:
                    self.writer.close()  # flushes TensorBoard's events: may meet the full disk the run stopped on
        except Exception as closing:
            if error is None and not isinstance(closing, OSError):
                raise
            error = error or closing
        if isinstance(error, OSError):  # a full disk or a lost mount while writing a picture, a log, a file
            what = Path(str(error.filename)).name if error.filename else "to the run directory"
            raise GannetError(
                f"Could not write {what} ({error.strerror or error}); {next_step(self.run.run_dir)}."
            ) from None

    # --- the steps -------------------------------------------------------------------------

    def play_epoch(self, stop: StopRequest) -> dict[str, float] | None:
        """Play the rest of the current epoch; return its mean statistics, or None if a stop
        was requested (the epoch's position is then kept in `progress` for the checkpoint).

        Statistics and the non-finite flags stay on the device; they are read (the only
        sync) every `log_every` steps."""
        run, p = self.run, self.run.progress
        config, device = run.config, run.train_set.device
        self.bar.set_description(f"epoch {p.epoch + 1}/{config.epochs}")
        for optimizer in (run.players.optimizer_g, run.players.optimizer_d):
            set_momentum(optimizer, momentum_at(config, p.epoch))
        if p.order is None:  # a new epoch
            p.order = torch.randperm(len(run.train_set), generator=run.data_rng).to(device)
            p.position, p.since_log = 0, 0
            p.total, p.interval = torch.zeros(4, device=device), torch.zeros(4, device=device)
        if p.first_bad is None:
            p.first_bad = torch.full((2,), -1, dtype=torch.long, device=device)
        per_step = examples_per_step(config)
        steps = len(run.train_set) // per_step
        with epoch_steps(run.players, config, run.train_set, run.noise_rng, run.cluster) as step:
            while p.position < steps:
                stats = step(p.order[p.position * per_step : (p.position + 1) * per_step])
                p.total += stats
                p.interval += stats
                bad = ~torch.isfinite(stats[:2])  # (2,): D's and G's loss
                p.first_bad = torch.where((p.first_bad < 0) & bad, p.step + 1, p.first_bad)
                p.position, p.since_log, p.step = p.position + 1, p.since_log + 1, p.step + 1
                self.bar.update(1)
                if p.step % config.log_every == 0 or p.position == steps:
                    self.log_interval()
                    self.files.check()  # the last epoch's files failed (a full disk): stop now
                if self.stopping(stop) and p.position < steps:
                    return None
        total = dist.sum_over_ranks(p.total, run.cluster) / (run.cluster.world if run.cluster else 1)
        means = dict(zip(STAT_NAMES, (total / steps).tolist()))
        p.epoch, p.order, p.position, p.total, p.interval = p.epoch + 1, None, 0, None, None
        return means

    def log_interval(self) -> None:
        """Read the interval's means and the non-finite flags off the device in one go; write
        one metrics record."""
        run, p = self.run, self.run.progress
        world = run.cluster.world if run.cluster else 1
        interval = dist.sum_over_ranks(p.interval, run.cluster) / world
        first_bad = dist.sum_over_ranks(p.first_bad, run.cluster, "max")
        values = torch.cat([interval / p.since_log, first_bad.to(p.interval.dtype)]).tolist()
        if max(values[4:]) >= 0:
            self.check_finite()
        if self.writer is not None:  # rank 0 of a distributed run
            players = run.players
            record = {
                **dict(zip(STAT_NAMES, values[:4])),
                "epoch": p.epoch + 1,  # the epoch being played, counted from 1 as on the console
                "lr/g": scheduled_lrs(players.scheduler_g)[0],  # param_groups hold GPU tensors in a CUDA graph
                "lr/d": scheduled_lrs(players.scheduler_d)[0],
                "momentum": players.optimizer_d.param_groups[0].get("momentum", float("nan")),
            }
            self.writer.write(p.step, record)
            names = {"D(x)": "d/real", "D(G(z))": "d/fake", "loss/d": "loss/d", "loss/g": "loss/g"}
            self.bar.set_postfix({shown: f"{record[name]:.3f}" for shown, name in names.items()}, refresh=False)
        p.interval.zero_()
        p.since_log = 0

    # --- the end of an epoch ---------------------------------------------------------------

    def end_epoch(self, means: dict[str, float], seconds: float) -> Path | None:
        """After epoch `progress.epoch`: the average, the Parzen monitor and the best checkpoint,
        the summary line, the sample picture (rank 0), then the checkpoint (returned, when this
        epoch writes one). Nothing is kept of weights that are not finite."""
        run, p = self.run, self.run.progress
        self.check_finite()
        if run.main:
            averaging_now = bool(run.config.average_from) and p.epoch >= run.config.average_from
            if averaging_now:
                self.add_to_average()
            monitor, best = self.monitor(averaging_now)
            # every epoch's end is on record, monitored or not (`figures curves --x epoch|minutes`)
            self.writer.write(p.step, {"epoch": p.epoch, "time/elapsed": p.seconds, **monitor})
            self.report(means, monitor, best, seconds)
            self.picture()
        saved = None
        if p.epoch % run.config.checkpoint_every == 0 or p.epoch == run.config.epochs:
            saved = self.write_checkpoint()
        self.hand_over()
        return saved

    def later(self, work: Callable[..., object], *args: Any) -> None:
        """Have `work(*args)` done on the writer thread with the rest of this epoch's files, from
        a snapshot of `args` taken now (background.py)."""
        args = snapshot(args)
        self.pending.append(lambda: work(*args))

    def hand_over(self, wait: bool = False) -> None:
        """Start writing the files asked for since the last hand-over (once the previous ones are
        written); with `wait`, return when they are on disk."""
        pieces, self.pending = self.pending, []
        self.files.submit(pieces)
        if wait:
            self.files.wait()

    def add_to_average(self) -> None:
        """Polyak averaging: add G's weights to the sums, write the mean generator."""
        p = self.run.progress
        p.average = averaging.add(p.average or {}, self.run.players.generator.state_dict())
        p.averaged += 1
        self.write_average()

    def write_average(self) -> None:
        """checkpoints/average.safetensors: the mean generator of the epochs summed in progress."""
        run, p = self.run, self.run.progress
        G, D = run.players.generator.state_dict(), run.players.discriminator.state_dict()
        self.later(averaging.write_running_average, run.run_dir, p.epoch, p.average, p.averaged, G, D, run.config)

    def write_ema(self) -> None:
        """checkpoints/ema.safetensors: the moving average of G's weights (--ema-decay), written with
        each checkpoint (mid-epoch ones too) and when a run resumes or branches."""
        run, players = self.run, self.run.players
        ema, D = players.ema_weights(), players.discriminator.state_dict()
        self.later(averaging.write_ema, run.run_dir, run.progress.epoch, ema, players.ema_updates, D, run.config)

    def generator_with(self, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
        """A copy of the training generator holding `weights` (the mean or the moving average)."""
        generator = copy.deepcopy(self.run.players.generator)
        generator.load_state_dict(weights)
        return generator

    def monitor(self, averaging_now: bool) -> tuple[dict[str, float], bool]:
        """The Parzen monitor (every `parzen_every` epochs; with averaging, of the mean generator
        too), for the epoch's record in metrics.jsonl; a new best generator is kept as best.safetensors.
        Returns the scores ({} in epochs without) and whether they are the best so far."""
        run, p = self.run, self.run.progress
        config = run.config
        if not config.parzen_every or p.epoch % config.parzen_every:
            return {}, False
        device = run.fixed_noise.device
        monitor = monitor_parzen(run.players.generator, config, run.data, device)
        if averaging_now:
            mean = averaging.generator_weights(p.average, p.averaged, run.players.generator.state_dict())
            monitor.update(monitor_parzen(self.generator_with(mean), config, run.data, device, "parzen/valid_average"))
        if run.players.ema is not None:
            ema = self.generator_with(run.players.ema_weights())
            monitor.update(monitor_parzen(ema, config, run.data, device, "parzen/valid_ema"))
        best = monitor["parzen/valid"] > p.best_parzen
        if best:
            p.best_parzen = monitor["parzen/valid"]
            weights = checkpoints.flat_weights(run.players.generator, run.players.discriminator)
            self.later(checkpoints.save_best, run.run_dir, p.epoch, weights, config, monitor)
        return monitor, best

    def report(self, means: dict[str, float], monitor: dict[str, float], best: bool, seconds: float) -> None:
        """The epoch's summary line, and once, if the game has collapsed, a line saying so."""
        p, config = self.run.progress, self.run.config
        note = ""
        if monitor:
            note = f"  parzen/valid {monitor['parzen/valid']:.1f}" + (" (best)" if best else "")
            if "parzen/valid_average" in monitor:
                note += f"  average {monitor['parzen/valid_average']:.1f}"
            if "parzen/valid_ema" in monitor:
                note += f"  ema {monitor['parzen/valid_ema']:.1f}"
        self.bar.write(
            f"epoch {p.epoch}/{config.epochs}  step {p.step}  "
            f"loss/d {means['loss/d']:.4f}  loss/g {means['loss/g']:.4f}  "
            f"D(x) {means['d/real']:.3f}  D(G(z)) {means['d/fake']:.3f}{note}  {seconds:.1f} s  "
            f"({clock(p.seconds)} in all)",
            file=sys.stderr,
        )
        if self.collapse.update(p.epoch, means["d/fake"]):
            self.bar.write(
                f"gannet: the game has collapsed: D has rejected every sample (mean D(G(z)) under "
                f"{self.collapse.below:g}) for {self.collapse.epochs} epochs, since epoch {self.collapse.since}, "
                "and such runs have not recovered in gannet's trials; stop it (Ctrl-C) and try another --seed.",
                file=sys.stderr,
            )

    def picture(self) -> None:
        """samples/epoch-NNNN.png: the generator on the fixed noise (with D's view for toys), also
        logged to TensorBoard."""
        run, p = self.run, self.run.progress
        G, D = run.players.generator.eval(), run.players.discriminator.eval()
        with torch.no_grad():
            samples = G(run.fixed_noise)
        path = run.run_dir / "samples" / f"epoch-{p.epoch:04d}.png"
        if len(run.data.shape) == 3:  # a grid of images: drawn on the writer thread
            self.later(self.draw, samples, path, p.epoch, p.step)
        else:  # a toy's histogram or scatter shows D as it is now, drawn with pyplot: here
            self.draw(samples, path, p.epoch, p.step, D)
        G.train()
        D.train()

    def draw(
        self, samples: torch.Tensor, path: Path, epoch: int, step: int, discriminator: torch.nn.Module | None = None
    ) -> None:
        run = self.run
        save_samples_picture(samples, run.data.shape, path, run.data.train, discriminator, title=f"epoch {epoch}")
        self.writer.image("samples", path, step)  # beside the scalars in TensorBoard

    # --- checkpoints and stops ---------------------------------------------------------------

    def check_finite(self) -> None:
        """Stop, keeping the last checkpoint, if a loss since the last metrics record or the
        weights themselves are NaN or infinite (a signal or an epoch's end may come between two
        records, and the last update may have gone bad after its loss was computed)."""
        run, p = self.run, self.run.progress
        first_bad = dist.sum_over_ranks(p.first_bad, run.cluster, "max").tolist() if p.first_bad is not None else []
        weights = [*run.players.generator.parameters(), *run.players.discriminator.parameters()]
        finite = bool(torch.stack([torch.isfinite(w).all() for w in weights]).all())
        if max(first_bad, default=-1) < 0 and finite:
            return
        if max(first_bad, default=-1) >= 0:
            player = "discriminator" if first_bad[0] >= 0 else "generator"
            what = f"The {player}'s loss became NaN or infinite at step {int(min(s for s in first_bad if s >= 0))}"
        else:
            what = f"The weights became NaN or infinite by step {p.step}"
        self.files.wait()  # the checkpoint being written, if any, is the last one kept
        newest = checkpoints.checkpoint_paths(run.run_dir)
        kept = f"the last checkpoint, {newest[-1].name}, is untouched" if newest else "no checkpoint was written"
        raise GannetError(f"{what}; the run stops ({kept}). Try a lower --lr.")

    def save_checkpoint(self) -> Path:
        """Write a checkpoint (rank 0; every rank of a distributed run must call this), never
        of weights that are not finite; `stop` waits for it to be on disk."""
        self.check_finite()
        return self.write_checkpoint()

    def write_checkpoint(self) -> Path:
        """save_checkpoint without the check, for callers that have just made it."""
        run, p = self.run, self.run.progress
        if run.cluster is not None and p.total is not None:
            # mid-epoch: every rank resumes from rank 0's state, so store the ranks' average
            # partial sums; each rank adds its own steps to it, and the epoch's all-reduce is right
            p.total = dist.sum_over_ranks(p.total, run.cluster) / run.cluster.world
            p.interval = dist.sum_over_ranks(p.interval, run.cluster) / run.cluster.world
        state = training_state(run.players, p, run.data_rng, run.fixed_noise, run.noise_rng, run.cluster)
        weights = checkpoints.flat_weights(run.players.generator, run.players.discriminator)
        config = run.config
        if run.main:  # rank 0 writes
            self.later(
                checkpoints.save, run.run_dir, weights, state, config, config.keep_checkpoints, config.keep_every
            )
            if run.players.ema is not None:  # after every checkpoint (and at a resume): the two agree
                self.write_ema()
        return checkpoints.checkpoint_path(run.run_dir, state)

    def stopping(self, stop: StopRequest) -> bool:
        """Whether to stop now. The processes of a distributed run decide together, and only
        right after a metrics record (the same steps on every rank): no per-step sync."""
        run = self.run
        if run.cluster is None:
            return stop.requested
        return run.progress.since_log == 0 and dist.anyone(stop.requested, run.cluster, run.train_set.device)

    def stop(self, stop: StopRequest, checkpoint: Path) -> None:
        """End the run on a signal, its checkpoint written: TrainingInterrupted says what next."""
        self.hand_over(wait=True)
        run, p = self.run, self.run.progress
        then = (
            "the run is complete"
            if p.epoch == run.config.epochs
            else f"continue with `gannet train --resume {run.run_dir}`"
        )
        raise TrainingInterrupted(
            f"{signal.Signals(stop.signum).name} received: stopped after step {p.step}, "
            f"checkpoint {checkpoint.name} written; {then}.",
            stop.signum,
        )


def clock(seconds: float) -> str:
    """3725.2 -> '1:02:05', 65 -> '1:05': a run's training time as the epoch line shows it."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
