"""Files a run writes while it trains on: the end of each epoch hands its checkpoint, its
averaged generators and its sample picture to one background thread, so that serialising,
hashing, fsync and rendering leave the training path (on a GPU they were most of a short
epoch), with every guarantee of a synchronous write kept:

- What is written is a snapshot taken when the work is handed over (`snapshot`): the steps
  that follow cannot change it, so a checkpoint holds exactly the state after its epoch.
- The pieces run one at a time in the order handed over, each file through
  checkpoints.write_atomic (a crash leaves the previous file whole), a checkpoint's rotation
  after its own write, as before; after a failed piece none of the rest runs.
- At most one epoch's work is in flight: `submit` first waits for the previous, and `wait`
  raises the first error a piece met (a full disk, say) in the training thread, where the
  run stops with its one sentence as when the write was synchronous; `check` raises it as
  soon as it is known, without waiting (the loop asks at each metrics record). The loop waits
  before a stop is reported, before a non-finite stop names the newest checkpoint, and for
  the last epoch's files while Ctrl-C is still caught (train.py).
- A wait is on an Event, never on Thread.join: a KeyboardInterrupt inside join makes Python
  3.11 count a running thread as stopped, and the interpreter would then exit without it,
  cutting a file short. Unjoined, the non-daemon writer is waited for at exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch


def snapshot(value: Any) -> Any:
    """A copy of `value` (tensors in nested dicts, lists and tuples, and plain values) whose
    tensors training can no longer change: each is cloned on its own device, where it is fast
    and needs no synchronisation; the writer copies it to the host."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: snapshot(item) for key, item in value.items()}
    if isinstance(value, list):
        return [snapshot(item) for item in value]
    if isinstance(value, tuple):
        items = [snapshot(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value  # numbers, strings, None: not changed in place


class BackgroundWriter:
    """One epoch's file work at a time, on a thread of its own (see the module's docstring)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._done = threading.Event()  # set when the submitted pieces have run (or one failed)
        self._error: BaseException | None = None

    def submit(self, pieces: list[Callable[[], object]]) -> None:
        """Run `pieces` in order on a new thread, once the previous submission has finished."""
        self.wait()
        if pieces:
            self._done.clear()
            # not a daemon: an interpreter that exits mid-write first lets the file be finished
            self._thread = threading.Thread(target=self._run, args=(pieces,), name="gannet-writer")
            self._thread.start()

    def _run(self, pieces: list[Callable[[], object]]) -> None:
        try:
            for piece in pieces:
                piece()
        except BaseException as error:  # noqa: BLE001 - handed to the training thread by wait()
            self._error = error
        finally:
            self._done.set()

    def wait(self) -> None:
        """Return once the work handed over is written; raise the first error it met."""
        if self._thread is not None:
            self._done.wait()
            self._thread = None
        self.check()

    def check(self) -> None:
        """Raise the error the work handed over met, if it has already failed; never waits."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    @property
    def busy(self) -> bool:
        return self._thread is not None and not self._done.is_set()
