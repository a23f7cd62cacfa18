"""How a verb reads a file it was given: whole, within a size limit, and never waiting.

Every input file of the command line goes through :func:`read_input`, so that ``/dev/zero``,
a huge file or a named pipe with no writer is a typed error (exit 2) rather than a process
that fills memory or waits forever. ``-`` is stdin, read within the same limit (as ``-`` is
stdout for an output).

A file holding a secret with nothing to recognise it by (a sealing secret, a credential, a
token: raw bytes) is read with :func:`read_secret`, or named with :func:`note_secret` when a
library reads it: the command remembers which file that is (device and inode, so any other
name of it too), and :func:`~ironroot.cli._output.write_output` never replaces it. A folder
whose files are state the command keeps (an HSM's sealed key store, a root of trust's fuses)
is named with :func:`note_folder`: no output replaces a file beneath it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from ironroot._fileio import read_limited, read_limited_fd

__all__ = [
    "MAX_INPUT",
    "folder_used",
    "forget_secrets",
    "named_as_folder",
    "note_folder",
    "note_named_as_folder",
    "note_secret",
    "read_input",
    "read_secret",
    "secret_read",
]

MAX_INPUT: Final = 256 * 1024 * 1024
"""The largest file a verb reads (a firmware image, a log tile, a statement)."""


def read_input(path: Path | str, limit: int = MAX_INPUT) -> bytes:
    """The bytes of the file at ``path`` (``-``: stdin, as for an output ``-`` is stdout);
    over ``limit`` bytes is ``LimitExceeded``."""
    if str(path) == "-":
        return read_limited_fd(os.dup(0), Path("-"), limit)
    return read_limited(Path(path), limit)


_secrets: dict[tuple[int, int], Path] = {}
"""The files this command read secrets from, by (device, inode); emptied as each command
starts (:func:`forget_secrets`)."""

_folders: set[Path] = set()
"""The folders of state this command uses, resolved; emptied with :data:`_secrets`."""


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


def note_folder(path: Path | str) -> None:
    """Remember ``path`` as a folder of state the command uses (module docs)."""
    _folders.add(Path(os.path.realpath(path)))


def folder_used(target: Path) -> Path | None:
    """The folder of state that ``target`` (a resolved path) lies beneath, if any."""
    return next((f for f in sorted(_folders) if target.is_relative_to(f)), None)


_named_as_folders: set[Path] = set()
"""The paths this command was given with a trailing ``/`` (which ``Path`` drops)."""


def note_named_as_folder(path: Path) -> None:
    """Remember that ``path`` was given ending in ``/``: it names a folder."""
    _named_as_folders.add(path)


def named_as_folder(path: Path) -> bool:
    """Whether ``path`` was given ending in ``/`` (a name of a folder, not of a file)."""
    return path in _named_as_folders


def forget_secrets() -> None:
    """Start a command with no secret files, no folders of state and no names of folders
    remembered."""
    _secrets.clear()
    _folders.clear()
    _named_as_folders.clear()
