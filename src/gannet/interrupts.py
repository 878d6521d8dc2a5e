"""Stopping a run cleanly: Ctrl-C (SIGINT) or SIGTERM asks the loop to finish its current step,
write a checkpoint and stop; a second Ctrl-C stops at once (the previous checkpoint is intact)."""

from __future__ import annotations

import signal
import threading

from gannet.errors import GannetError


class TrainingInterrupted(GannetError):
    """The run stopped on a signal after writing a checkpoint; exit status 128 + signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class StopRequest:
    """Context manager: while active, SIGINT and SIGTERM set `signum` instead of killing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
