"""How a run starts: its folder checked and claimed, the data put on the training device, the
players built from the seed, and, on a resume or a branch, a checkpoint's state restored.

Every check that can refuse the run comes before anything is written: a refused run leaves
its folder (or the lack of one) as it was.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gannet import checkpoints
from gannet import config as config_module
from gannet import distributed as dist
from gannet.config import TrainConfig
from gannet.data import Dataset, dataset_for
from gannet.errors import GannetError
from gannet.game import Players, examples_per_step, make_players
from gannet.noise import append_labels, num_classes, sample_codes
from gannet.resources import compute_dtype, resolve_device
from gannet.runs import RunLock, begin_branch, check_free, check_run_dir, claim_run_dir, default_run_dir, start_point
from gannet.state import Progress, check_resume, follow_schedule, global_rng_state, restore


@dataclass
class Run:
    """A run at its start: what the loop (train.py) plays on."""

    config: TrainConfig
    run_dir: Path
    data: Dataset
    train_set: torch.Tensor  # (N, data_dim [+ classes]) on the training device
    players: Players
    progress: Progress
    fixed_noise: torch.Tensor  # z of the per-epoch sample pictures
    data_rng: torch.Generator  # the order of the examples, epoch by epoch
    noise_rng: torch.Generator | None = None  # distributed runs: the global batch's z
    cluster: dist.Cluster | None = None
    resumed: bool = False  # in place, or as a branch

    @property
    def main(self) -> bool:
        """Whether this process writes the run's files (rank 0 of a distributed run)."""
        return self.cluster is None or self.cluster.main


def start(
    config: TrainConfig,
    run_dir: str | Path | None,
    resume: bool | str | os.PathLike,
    force: bool,
    data: Dataset | None,
    progress_bar: bool | None,
    cluster: dist.Cluster | None,
    owner: list[RunLock],
) -> Run:
    """Check and claim the run directory (its lock appended to `owner`, rank 0 only), load the
    data, build and seed the players, restore the checkpoint `resume` points at; say what starts."""
    run_dir = dist.broadcast(Path(run_dir) if run_dir is not None else default_run_dir(config), cluster)
    resumed = resume is not False
    dist.on_main(cluster, lambda: check_free(run_dir))
    branch = start_point(run_dir, resume)  # None: a fresh run, or run_dir's own checkpoint
    in_place = resumed and branch is None
    dist.on_main(cluster, lambda: check_run_dir(run_dir, in_place, force, branch is not None))
    previous = None
    if in_place:  # owned from the start: nothing else may write it while we read its state
        dist.on_main(cluster, lambda: owner.append(claim_run_dir(run_dir, True, False)))
        previous = config_module.load(run_dir / "config.json")
        check_resume(previous, config)  # before any data is read

    main = cluster is None or cluster.main
    device = resolve_device(config.device)
    if cluster is not None:
        device = dist.device_for(cluster, device)
    if data is None:
        data = dataset_for(config, progress_bar if main else False)
    dtype, fallback = compute_dtype(config.precision, device)
    if main and fallback:
        print(f"gannet: {fallback}", file=sys.stderr)
    arithmetic = "; bfloat16 arithmetic" if dtype is not None else ""  # what this machine does of --precision
    if main and not resumed:  # once its device and data are there; a resume, once its checkpoint is read
        print(f"gannet: {announcement(config, run_dir, Progress(), resumed, branch)}{arithmetic}", file=sys.stderr)
    train_set = training_examples(config, data).to(device)  # resident on the device
    steps_per_epoch = len(train_set) // examples_per_step(config)
    if steps_per_epoch == 0:
        raise GannetError(
            f"One step needs {examples_per_step(config)} training examples (batch size × k) but the "
            f"training set has {len(train_set)}; lower --batch-size or --k."
        )
    players, data_rng, noise_rng = seeded_players(config, data, device, cluster)
    fixed_noise = grid_noise(config, data)
    progress = Progress()
    if resumed:  # read and checked before a branch's folder is made: a refused branch leaves none
        source = branch or run_dir
        progress, fixed_noise, metadata = restore(
            source, players, data_rng, device, fixed_noise, steps_per_epoch, noise_rng, cluster
        )
        previous = previous or checkpoints.checkpoint_config(metadata, branch)
        check_resume(previous, config, progress)
        if progress.epoch > config.epochs:
            raise GannetError(
                f"{source} has finished {progress.epoch} epochs already; "
                f"--epochs cannot go below that (give {progress.epoch} or more)."
            )
        follow_schedule(players)
    if not in_place:  # a fresh run or a branch: its folder is claimed now
        dist.on_main(cluster, lambda: owner.append(claim_run_dir(run_dir, False, force)))
    if branch is not None:
        dist.on_main(cluster, lambda: begin_branch(branch, run_dir))
    dist.on_main(cluster, lambda: config.save(run_dir / "config.json"))
    if main and resumed:
        print(f"gannet: {announcement(config, run_dir, progress, resumed, branch)}{arithmetic}", file=sys.stderr)
    if cluster is not None:
        players.ddp_generator = dist.wrap(players.generator, device)
        players.ddp_discriminator = dist.wrap(players.discriminator, device)
    fields = (config, run_dir, data, train_set, players, progress, fixed_noise.to(device), data_rng, noise_rng)
    return Run(*fields, cluster=cluster, resumed=resumed)


def announcement(config: TrainConfig, run_dir: Path, progress: Progress, resumed: bool, branch: Path | None) -> str:
    """The line that says what starts: a fresh run, a resume (from which step), or a branch."""
    if not resumed:
        return f"training '{config.preset}' for {config.epochs} epoch{'s' * (config.epochs != 1)} in {run_dir}"
    inside = progress.order is not None
    where = (
        f"inside epoch {progress.epoch + 1}" if inside else f"after epoch {progress.epoch}"
    ) + f" of {config.epochs}"
    if progress.epoch == config.epochs:
        where += "; nothing to train: raise --epochs to go on"
    if branch is not None:
        return f"branching {run_dir} off {branch}, from step {progress.step} ({where})"
    return f"resuming '{config.preset}' in {run_dir} from step {progress.step} ({where})"


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


def training_examples(config: TrainConfig, data: Dataset) -> torch.Tensor:
    """The training set as D reads it: each example, followed by its one-hot label for a
    conditional model (so that a shuffled minibatch keeps examples and labels together)."""
    x = data.train[: config.train_limit]
    classes = num_classes(config)
    if not classes:
        return x
    return append_labels(x, data.labels["train"][: config.train_limit], classes)
