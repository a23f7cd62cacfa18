"""Wait for SIGINT/SIGTERM: what a long-running command does once its servers are up.

Kept apart from ``_server`` so that a command that only waits (a mirror that follows a log)
does not load the web stack.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["stop_on_signals"]


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGINT or SIGTERM sets while the block runs (the block decides how to
    stop: ``while not stop.wait(1.0): ...``); the previous handlers come back after it. Call it
    from the main thread, as :func:`signal.signal` requires."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
