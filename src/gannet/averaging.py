"""The generator averaged over a run's checkpoints (Polyak–Ruppert averaging of its weights).

Not in the paper: its 2014 code sampled from the last generator. The preset's learning rate
decays so slowly that late in a run it is still large, and the generator's weights wander around
a good point from epoch to epoch; their mean sits nearer it. What that does to Table 1's Parzen
score and to FID: docs/reproducing-table1.md.

The averaged file is a weights-only checkpoint, as best.safetensors: the mean generator, and the
discriminator of the last of those checkpoints (an averaged D has no use); `gannet sample`, `eval`
and `figures` take it like any checkpoint.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import torch
from tqdm import tqdm

from gannet import checkpoints
from gannet.config import TrainConfig
from gannet.errors import GannetError
from gannet.outputs import WriteFailed, check_writable

_SPAN = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.safetensors$")  # after a whole epoch (not epoch-N-step-M)


def parse_epochs(text: str) -> tuple[int, int]:
    """'280-550' -> (280, 550)."""
    match = _SPAN.match(text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise GannetError(f"--epochs takes FIRST-LAST, two epoch numbers with 1 <= FIRST <= LAST, not {text!r}.")
    return int(match[1]), int(match[2])


def default_path(run_dir: Path, first: int, last: int, every: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"average-{first:04d}-{last:04d}-every-{every}.safetensors"


def average_checkpoints(
    run_dir: str | os.PathLike, first: int, last: int, every: int = 1, output: str | os.PathLike | None = None
) -> tuple[Path, int]:
    """Average the generators of `run_dir`'s checkpoints after epochs first, first + every, ...,
    up to last; write the result (default RUN_DIR/checkpoints/average-FIRST-LAST-every-N.safetensors).
    Returns (the file, how many checkpoints went into it)."""
    run_dir = Path(run_dir)
    if not 1 <= first <= last:
        raise GannetError(f"--epochs takes FIRST-LAST with 1 <= FIRST <= LAST, not {first}-{last}.")
    if every < 1:
        raise GannetError("--every must be at least 1.")
    if not (run_dir / "checkpoints").is_dir():
        from gannet.pretrained import refuse_history

        refuse_history(run_dir, "checkpoints of epochs to average")
        raise GannetError(f"{run_dir} is not a gannet run directory (it has no checkpoints/ folder).")
    epochs = range(first, last + 1, every)
    target = Path(output) if output is not None else default_path(run_dir, first, epochs[-1], every)
    check_output(target)
    kept = {int(m[1]) for p in (run_dir / "checkpoints").iterdir() if (m := _EPOCH_FILE.match(p.name))}
    # counted, not listed: FIRST-LAST may span billions of epochs
    missing = len(epochs) - sum(epoch in epochs for epoch in kept)
    if missing:
        first_missing = itertools.islice((epoch for epoch in epochs if epoch not in kept), 5)
        shown = ", ".join(map(str, first_missing)) + (f" and {missing - 5:,} more" if missing > 5 else "")
        raise GannetError(
            f"{run_dir} has no checkpoint after epoch {shown}; a run keeps them with --keep-every "
            f"(e.g. --keep-every {every}), or average the epochs it has."
        )
    paths = [run_dir / "checkpoints" / f"epoch-{epoch:04d}.safetensors" for epoch in epochs]
    total: dict[str, torch.Tensor] = {}
    for path in tqdm(paths, desc="averaging", unit="checkpoint", leave=False, disable=None):  # None: on a terminal
        tensors, metadata, _ = checkpoints.load_weights(path)
        generator, discriminator = checkpoints.split_weights(tensors)
        if total and {k: v.shape for k, v in generator.items()} != {k: v.shape for k, v in total.items()}:
            raise GannetError(f"{path.name}'s generator does not have the shapes of {paths[0].name}'s.")
        add(total, generator)
    config = checkpoints.checkpoint_config(metadata, paths[-1])
    weights = mean_weights(total, len(paths), generator, discriminator)
    notes = {"averaged_epochs": ",".join(map(str, epochs)), "averaged_from": str(run_dir)}
    try:
        return checkpoints.save_weights(target, epochs[-1], weights, config, notes), len(paths)
    except OSError as error:  # a full disk: the weights file is written whole or not at all
        raise WriteFailed(target, error) from None


TRAINING_FILES = re.compile(r"^(epoch-\d+(-step-\d+)?|best|average|ema)\.safetensors$")


def check_output(path: Path) -> None:
    """The averaged file's path: a .safetensors file that can be written, and not one of the
    files training writes (an epoch's checkpoint, best or the running average), which it would replace."""
    check_writable(path, (".safetensors",))
    if path.is_file() and TRAINING_FILES.match(path.name):
        raise GannetError(f"-o {path} would replace a checkpoint that training wrote; name another file.")


def add(total: dict[str, torch.Tensor], generator: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add a generator's weights to float64 sums on the CPU (kept in place); returns them."""
    for name, weight in generator.items():
        weight = weight.detach().to("cpu", torch.float64)
        total[name] = total[name].add_(weight) if name in total else weight.clone()
    return total


def mean_weights(
    total: dict[str, torch.Tensor],
    count: int,
    generator: dict[str, torch.Tensor],
    discriminator: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """A checkpoint's flat weights: the mean generator (in `generator`'s dtypes), and `discriminator`."""
    weights = {f"generator.{k}": v for k, v in generator_weights(total, count, generator).items()}
    weights.update({f"discriminator.{k}": v.detach().cpu() for k, v in discriminator.items()})
    return weights


def generator_weights(
    total: dict[str, torch.Tensor], count: int, like: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The mean generator's state dict, in the dtypes of `like` (a generator's state dict)."""
    return {k: (v / count).to(like[k].dtype) for k, v in total.items()}


def write_ema(
    run_dir: Path,
    epoch: int,
    ema: dict[str, torch.Tensor],
    updates: int,
    discriminator: torch.nn.Module | dict[str, torch.Tensor],
    config: TrainConfig,
) -> Path:
    """Training with --ema-decay: checkpoints/ema.safetensors, the moving average of G's weights
    after `updates` G updates (up to `epoch`), beside the discriminator of that epoch."""
    weights = checkpoints.flat_weights(ema, discriminator)
    notes = {"ema_updates": str(updates)}
    return checkpoints.save_weights(checkpoints.ema_path(run_dir), epoch, weights, config, notes)


def write_running_average(
    run_dir: Path,
    epoch: int,
    total: dict[str, torch.Tensor],
    count: int,
    generator: dict[str, torch.Tensor],
    discriminator: dict[str, torch.Tensor],
    config: TrainConfig,
) -> Path:
    """Training with --average-from: checkpoints/average.safetensors, the mean of the generators
    after the last `count` epochs (up to `epoch`), beside `discriminator`; `generator`: a state
    dict in the dtypes to write."""
    weights = mean_weights(total, count, generator, discriminator)
    notes = {"averaged_epochs": f"{epoch - count + 1}-{epoch}"}
    return checkpoints.save_weights(checkpoints.average_path(run_dir), epoch, weights, config, notes)
