"""metrics.jsonl (one JSON object per logging interval) and TensorBoard event files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gannet.errors import GannetError


class MetricsWriter:
    """Appends to a run's metrics. `resume_step`: the step of the checkpoint a run resumes
    from; records written after it (by the interrupted process) are dropped, from
    metrics.jsonl and from TensorBoard, so that the resumed run does not log them twice."""

    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_step is not None and self.path.exists():
            from gannet.checkpoints import write_atomic  # metrics.py stays free of torch otherwise

            kept = [r for r in read_metrics(run_dir) if r["step"] <= resume_step]
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept).encode())  # all or nothing
        self._file = self.path.open("a")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(log_dir=str(run_dir), purge_step=purge)

    def write(self, step: int, values: dict[str, Any]) -> None:
        """One record: `step` plus named scalars (NaN written as null)."""
        record = {"step": step}
        record.update({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in record.items():
                if name != "step" and isinstance(value, int | float):
                    self._tb.add_scalar(name, value, step)

    def image(self, name: str, path: Path, step: int) -> None:
        """A picture the run wrote (a PNG), shown in TensorBoard's images tab at `step`."""
        if self._tb is not None:
            import numpy as np
            from PIL import Image

            with Image.open(path) as picture:
                pixels = np.asarray(picture.convert("RGB"))  # (H, W, 3) uint8: grids, scatters, histograms alike
            self._tb.add_image(name, pixels, step, dataformats="HWC")

    def text(self, name: str, text: str) -> None:
        """A text shown in TensorBoard's text tab (Markdown)."""
        if self._tb is not None:
            self._tb.add_text(name, text, 0)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The run's records. A last line cut short (the process was killed while writing it) is
    dropped; anything else unreadable is a GannetError."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise GannetError(f"Cannot read {path} ({getattr(error, 'strerror', None) or error}).") from None
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError
        except ValueError:
            if number == len(lines):
                break  # a record cut short by a crash
            raise GannetError(f"{path} is damaged: line {number} is not a metrics record.") from None
        records.append(record)
    return records


class CollapseWatch:
    """Whether the game has collapsed: D has rejected every sample, its mean D(G(z)) under
    `below`, for `epochs` epochs in a row. Early in the MNIST preset's game D(G(z)) often dips
    to 0.009-0.06 for a few epochs and G recovers; the runs that stayed under 0.001 for ten
    epochs had not recovered when given up, at epochs 17-28 (docs/game-speed.md). Fed one
    (epoch, D(G(z))) at a time, in order: an epoch's logging intervals, or its mean."""

    def __init__(self, below: float = 1e-3, epochs: int = 10) -> None:
        self.below, self.epochs = below, epochs
        self.since: int | None = None  # the first epoch of the current run of rejections
        self.collapsed = False

    def update(self, epoch: int, d_fake: float) -> bool:
        """Record one epoch's (or logging interval's) mean D(G(z)); True the first time the
        rejections have lasted `epochs` epochs (then `since` says from when)."""
        if not d_fake < self.below:  # NaN too: not a rejection
            self.since = None
            return False
        self.since = epoch if self.since is None else self.since
        if not self.collapsed and epoch - self.since + 1 >= self.epochs:
            self.collapsed = True
            return True
        return False
