"""The `gannet` command's entry point, outside the gannet package: importing gannet (and torch
with it) takes seconds, and a Ctrl-C or SIGTERM in those seconds should end the command with a
sentence, as it does later, not with Python's traceback. Nothing has been done yet then."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

STOPPED_STARTING = "\ngannet: stopped while starting; nothing was done, so the same command starts afresh.\n"

_starting = True
_received: list[int] = []


def _stop(signum, frame) -> None:
    if _starting:
        # Inside the imports: end the process here rather than raise into them. An exception
        # raised in the middle of torch's import can cross its C++ code and abort the process,
        # or be swallowed or turned into a library's own error; nothing needs undoing yet.
        with contextlib.suppress(OSError):  # stderr closed (its reader gone): the exit status still says why
            os.write(sys.stderr.fileno(), STOPPED_STARTING.encode())
        os._exit(128 + signum)
    _received.append(signum)
    raise KeyboardInterrupt


def main() -> int:
    global _starting
    # Kept until the command's own handling takes over (gannet.cli.main's first line): given back
    # to the default here, a SIGTERM in between would end the process unannounced.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    from gannet.cli import main as gannet_main

    _starting = False
    try:
        return gannet_main()
    # A signal that comes before gannet.cli.main's own handling surfaces as KeyboardInterrupt, and
    # a Ctrl-C inside a library's lazy import can surface as another error.
    except (Exception, KeyboardInterrupt):  # noqa: BLE001
        if not _received:
            raise
        print("\ngannet: interrupted.", file=sys.stderr)
        return 128 + _received[0]
