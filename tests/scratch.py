"""Scratch directories in memory, for tests that write the same files thousands of times."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["in_memory"]

_TMPFS = Path("/dev/shm")


@contextlib.contextmanager
def in_memory(prefix: str = "ironroot-") -> Iterator[Path]:
    """A scratch directory on tmpfs (``/dev/shm``, where the machine has one; else the usual
    temporary directory), removed afterwards.

    Every write of a node or an HSM is made durable (``fsync`` of the file and of its
    directory). On a disk shared with other work those syncs, not the checks under test, are
    most of the time of a test that updates and boots nodes or runs HSM commands again and
    again. Such tests prove the same on tmpfs when their cuts, if any, are injected faults or
    SIGKILLs (the kernel's page cache outlives a killed process): only a cut of the machine's
    power would tell the two apart, and no test makes one."""
    base = _TMPFS if _TMPFS.is_dir() and os.access(_TMPFS, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix=prefix, dir=base) as directory:
        yield Path(directory)
