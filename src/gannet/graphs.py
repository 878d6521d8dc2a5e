"""One training iteration recorded as a CUDA graph and replayed (the training loop on a GPU).

An iteration of the MNIST model launches ~150 small kernels; launched one at a time from
Python they keep a fast GPU waiting: it is busy for a fraction of each iteration.
Recorded once as a CUDA graph, the iteration is a single launch. What a recording fixes, and
how each is kept right:
- addresses: each minibatch is gathered into one fixed buffer before the replay, and the
  statistics come back in one fixed tensor (valid until the next replay);
- learning rates: they change after every update, so while the recording lives each
  optimizer's lr is a one-element tensor on the GPU that the schedulers write into (they tick
  after each replay, outside the graph); they are floats again once the recorder closes;
- momentum: constant within an epoch, and the loop records afresh every epoch;
- random numbers (noise, dropout masks): the default CUDA generator's offset advances with
  every replay by what the eager iteration would draw.
Before recording, one iteration runs eagerly on the recording stream: a real update, which also
creates the momentum buffers and the libraries' workspaces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from gannet import distributed as dist
from gannet.game import Players, d_updates_per_step, examples_per_step, step
from gannet.optim import scheduled_lrs

if TYPE_CHECKING:
    from gannet.config import TrainConfig


def epoch_steps(
    players: Players,
    config: TrainConfig,
    train_set: torch.Tensor,
    noise_rng: torch.Generator | None = None,
    cluster: dist.Cluster | None = None,
) -> contextlib.AbstractContextManager[Callable[[torch.Tensor], torch.Tensor]]:
    """An epoch's `step(rows) -> statistics`: game.step on the training examples at `rows` (this
    rank's share of them), recorded as a CUDA graph where graphs apply; one per epoch."""

    def eager(rows: torch.Tensor) -> torch.Tensor:
        batch = train_set[dist.my_slice(rows, cluster, d_updates_per_step(config))]
        return step(players, config, batch, noise_rng, cluster)

    if not graphs_apply(config, train_set.device, cluster is not None):
        return contextlib.nullcontext(eager)
    return GraphedIterations(lambda batch: step(players, config, batch), players, train_set, examples_per_step(config))


def graphs_apply(config: TrainConfig, device: torch.device, distributed: bool) -> bool:
    """Whether the loop records its iterations: on a CUDA device, in one process, with SGD
    (Adam's step is not recordable as built) and at most one D update per iteration (k D
    updates inside one replay would share one learning rate; the eager loop ticks it between),
    for the 2014 models and the conditional one."""
    return (
        config.cuda_graphs
        and device.type == "cuda"
        and not distributed
        and config.optimizer == "sgd"
        and (config.update == "simultaneous" or config.k == 1)
        and not config.all_conditionals  # its masks are drawn eagerly (not yet recorded and checked on a GPU)
    )


class GraphedIterations:
    """`step(batch) -> statistics`, recorded at the first call and replayed at the others.

    Use one per epoch, as a context manager: it puts the learning rates on the GPU and back.
    """

    def __init__(
        self, step: Callable[[torch.Tensor], torch.Tensor], players: Players, train_set: torch.Tensor, rows: int
    ):
        self.step, self.players, self.train_set = step, players, train_set
        self.batch = torch.empty(rows, *train_set.shape[1:], dtype=train_set.dtype, device=train_set.device)
        self.stream = torch.cuda.Stream(train_set.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.stats: torch.Tensor | None = None

    def __enter__(self) -> GraphedIterations:
        device = self.train_set.device
        for optimizer in (self.players.optimizer_g, self.players.optimizer_d):
            for group in optimizer.param_groups:
                group["lr"] = torch.tensor(group["lr"], dtype=torch.float32, device=device)
        self.players.schedules_in_step = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.players.schedules_in_step = True
        for scheduler in (self.players.scheduler_g, self.players.scheduler_d):
            lrs = scheduled_lrs(scheduler)  # exact: the GPU held them in float32
            for group, lr in zip(scheduler.optimizer.param_groups, lrs):
                group["lr"] = lr
            scheduler._last_lr = lrs  # the scheduler's own record, in its state_dict: floats as in an eager run
        if self.graph is not None:
            self.graph.reset()
            self.graph, self.stats = None, None

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """One iteration on the training examples at `rows`; its statistics (game.py)."""
        torch.index_select(self.train_set, 0, rows, out=self.batch)
        if self.graph is None:
            stats = self._record()
        else:
            self.graph.replay()
            stats = self.stats
        self.players.scheduler_d.step()
        self.players.scheduler_g.step()
        self.players.update_ema()  # outside the graph: its decay changes while it warms up
        return stats

    def _record(self) -> torch.Tensor:
        """Play one iteration eagerly on the recording stream, then record the next one (which
        records without running)."""
        current = torch.cuda.current_stream(self.train_set.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            stats = self.step(self.batch).clone()
        current.wait_stream(self.stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=self.stream):
            self.stats = self.step(self.batch)
        return stats
