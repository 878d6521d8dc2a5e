"""Stopping a run cleanly: Ctrl-C (SIGINT) or SIGTERM asks the loop to finish its current step,
write a checkpoint and stop; a second Ctrl-C stops at once (the previous checkpoint is intact)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from gannet.errors import GannetError


class TrainingInterrupted(GannetError):
    """The run stopped on a signal after writing a checkpoint; exit status 128 + signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop (start-up, sampling, evaluation): unwinds as Ctrl-C
    does, so that locks are released, half-made folders removed and the command says so; exit 143."""


def _terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not kill the unwinding unannounced
    raise Terminated


def deaf() -> None:
    """The command is ending: a further Ctrl-C or SIGTERM must not cut its last words short."""
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)


@contextlib.contextmanager
def sigterm_unwinds(exiting: bool = False) -> Iterator[None]:
    """While active, SIGTERM raises Terminated instead of killing the process unannounced
    (StopRequest takes it over while a run trains, and gives it back). `exiting`: the process
    ends right after, so a late SIGTERM (a second one, say) is ignored rather than fatal."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        if exiting:
            deaf()
        elif signal.getsignal(signal.SIGTERM) is _terminated:  # else terminated: stay deaf while exiting
            signal.signal(signal.SIGTERM, previous)


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
