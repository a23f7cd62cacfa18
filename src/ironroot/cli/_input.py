"""How a verb reads a file it was given: whole, within a size limit, and never waiting.

Every input file of the command line goes through :func:`read_input`, so that ``/dev/zero``,
a huge file or a named pipe with no writer is a typed error (exit 2) rather than a process
that fills memory or waits forever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from ironroot._fileio import read_limited

__all__ = ["MAX_INPUT", "read_input"]

MAX_INPUT: Final = 256 * 1024 * 1024
"""The largest file a verb reads (a firmware image, a log tile, a statement)."""


def read_input(path: Path | str, limit: int = MAX_INPUT) -> bytes:
    """The bytes of the file at ``path``; over ``limit`` bytes is ``LimitExceeded``."""
    return read_limited(Path(path), limit)
