"""Training across processes with torch.distributed, as launched by torchrun.

`torchrun --nproc-per-node N -m gannet train PRESET` starts N copies of the command; each
finds its rank in the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR …)
and joins the process group: NCCL when it trains on a GPU, gloo on CPUs. What changes:

- G and D are each wrapped in DistributedDataParallel: gradients are averaged over the
  processes during the backward pass, so every rank takes the same update.
- The preset's batch stays the *global* batch: every rank shuffles the training set with the
  same seeded generator each epoch and takes its 1/N slice of each global minibatch, so the N
  slices together are exactly the minibatch one process would have used.
- The noise z of a step is drawn for the whole global batch from a generator that is the same
  on every rank, and each rank takes its slice: the same z one process would have drawn.
  Dropout masks come from each rank's own torch RNG (seeded by rank), so with dropout on, a
  distributed run is a different sample of the same training process than a single one; with
  dropout off (`--input-keep 1 --hidden-keep 1`) the two compute the same updates.
- Only rank 0 writes: metrics (averaged over ranks), pictures, checkpoints. A checkpoint holds
  every rank's RNG state, so a resumed distributed run continues exactly; its weights are the
  plain modules' (no `module.` prefix), so it loads in a single process and the other way round.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

from gannet.errors import GannetError

if TYPE_CHECKING:
    from gannet.config import TrainConfig


@dataclass(frozen=True)
class Cluster:
    rank: int
    world: int
    local_rank: int
    owns_group: bool = True  # joined here (and left here); False if the caller set the group up

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise GannetError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number of processes.") from None


def join(config: TrainConfig) -> Cluster | None:
    """Join the process group torchrun set up (None when this is the only process)."""
    world = world_size()
    if world <= 1:
        return None
    if config.batch_size % world:
        raise GannetError(
            f"--batch-size {config.batch_size} is the global batch and must divide evenly among the "
            f"{world} processes; choose a batch size that is a multiple of {world}."
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    gpu = config.device != "cpu" and torch.cuda.is_available()
    if gpu:
        if local_rank >= torch.cuda.device_count():
            raise GannetError(
                f"Process {local_rank} of this machine has no GPU of its own ({torch.cuda.device_count()} here): "
                "start one process per GPU (--nproc-per-node), or train on CPUs with --device cpu."
            )
        torch.cuda.set_device(local_rank)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if gpu else "gloo")
    return Cluster(dist.get_rank(), dist.get_world_size(), local_rank, owns)


def leave(cluster: Cluster | None) -> None:
    if cluster is not None and cluster.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def weights_digest(*modules: torch.nn.Module) -> str:
    """SHA-256 of the modules' parameters, byte for byte: equal digests, identical weights."""
    digest = hashlib.sha256()
    for module in modules:
        for p in module.parameters():
            digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_in_step(cluster: Cluster | None, *modules: torch.nn.Module) -> list[str]:
    """Every rank's weights digest; a GannetError if the ranks' weights differ (they never
    should: DDP gives every rank the same update)."""
    digests = gather(weights_digest(*modules), cluster)
    if len(set(digests)) > 1:
        raise GannetError(f"The processes' weights have drifted apart (digests {digests}); please report this bug.")
    return digests


def device_for(cluster: Cluster, device: torch.device) -> torch.device:
    """Each process of a GPU run trains on the GPU of its local rank."""
    return torch.device("cuda", cluster.local_rank) if device.type == "cuda" else device


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.parallel.DistributedDataParallel:
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def my_slice(rows: torch.Tensor, cluster: Cluster | None, groups: int = 1) -> torch.Tensor:
    """This rank's share of a global batch made of `groups` consecutive minibatches (k for
    Algorithm 1): the same 1/N of each minibatch, in order."""
    if cluster is None:
        return rows
    per_group = rows.shape[0] // groups
    share = per_group // cluster.world
    grouped = rows.reshape(groups, per_group, *rows.shape[1:])
    return grouped[:, cluster.rank * share : (cluster.rank + 1) * share].reshape(groups * share, *rows.shape[1:])


def sum_over_ranks(t: torch.Tensor, cluster: Cluster | None, op: str = "sum") -> torch.Tensor:
    if cluster is None:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return t


def anyone(flag: bool, cluster: Cluster | None, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any (a stop request must stop all together)."""
    if cluster is None:
        return flag
    return bool(sum_over_ranks(torch.tensor([int(flag)], device=device), cluster, "max").item())


def gather(obj, cluster: Cluster | None) -> list:
    """Every rank's `obj`, in rank order (on every rank)."""
    if cluster is None:
        return [obj]
    out = [None] * cluster.world
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj, cluster: Cluster | None):
    """Rank 0's `obj` on every rank."""
    if cluster is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(cluster: Cluster | None, work):
    """Run `work()` on rank 0 only and hand its result to every rank; a GannetError there is
    raised on every rank (so that no rank waits for one that has given up)."""
    if cluster is None:
        return work()
    result, error = None, None
    if cluster.main:
        try:
            result = work()
        except GannetError as e:
            error = str(e)
    result, error = broadcast((result, error), cluster)
    if error is not None:
        raise GannetError(error)
    return result
