"""How a verb reads a file it was given: whole, within a size limit, and never waiting.

Every input file of the command line goes through :func:`read_input`, so that ``/dev/zero``,
a huge file or a named pipe with no writer is a typed error (exit 2) rather than a process
that fills memory or waits forever.

A file holding a secret with nothing to recognise it by (a sealing secret, a credential, a
token: raw bytes) is read with :func:`read_secret`, or named with :func:`note_secret` when a
library reads it: the command remembers which file that is (device and inode, so any other
name of it too), and :func:`~ironroot.cli._output.write_output` never replaces it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from ironroot._fileio import read_limited, read_limited_fd

__all__ = ["MAX_INPUT", "forget_secrets", "note_secret", "read_input", "read_secret", "secret_read"]

MAX_INPUT: Final = 256 * 1024 * 1024
"""The largest file a verb reads (a firmware image, a log tile, a statement)."""


def read_input(path: Path | str, limit: int = MAX_INPUT) -> bytes:
    """The bytes of the file at ``path``; over ``limit`` bytes is ``LimitExceeded``."""
    return read_limited(Path(path), limit)


_secrets: dict[tuple[int, int], Path] = {}
"""The files this command read secrets from, by (device, inode); emptied as each command
starts (:func:`forget_secrets`)."""


def read_secret(path: Path | str, limit: int) -> bytes:
    """:func:`read_input` of a file holding a secret, remembered as one (module docs)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        found = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    _secrets[(found.st_dev, found.st_ino)] = Path(path)
    return read_limited_fd(fd, Path(path), limit)


def note_secret(path: Path | str) -> None:
    """Remember ``path`` as a file holding a secret that a library reads (if it exists)."""
    try:
        found = os.stat(path)
    except OSError:
        return
    _secrets[(found.st_dev, found.st_ino)] = Path(path)


def secret_read(found: os.stat_result) -> Path | None:
    """The name a secret was read under from the file ``found`` describes, if one was."""
    return _secrets.get((found.st_dev, found.st_ino))


def forget_secrets() -> None:
    """Start a command with no secret files remembered."""
    _secrets.clear()
