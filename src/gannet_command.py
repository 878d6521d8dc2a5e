"""The `gannet` command's entry point, outside the gannet package: importing gannet (and torch
with it) takes seconds, and a Ctrl-C or SIGTERM in those seconds should end the command with a
sentence, as it does later, not with Python's traceback. Nothing has been done yet then."""

from __future__ import annotations

import signal
import sys

_received: list[int] = []


def _stop(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def main() -> int:
    # Kept until the command's own handling takes over (gannet.cli.main's first line): given back
    # to the default here, a SIGTERM in between would end the process unannounced.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        from gannet.cli import main as gannet_main
    except BaseException:
        if not _received:
            raise
    if _received:  # a library being imported may swallow the interrupt, or turn it into an error of its own
        print("\ngannet: stopped while starting; nothing was done, so the same command starts afresh.", file=sys.stderr)
        return 128 + _received[0]
    try:
        return gannet_main()
    # A Ctrl-C inside a library's lazy import can surface as another error, and a signal that
    # comes before gannet.cli.main's own handling as KeyboardInterrupt.
    except (Exception, KeyboardInterrupt):  # noqa: BLE001
        if not _received:
            raise
        print("\ngannet: interrupted.", file=sys.stderr)
        return 128 + _received[0]
