"""How a verb writes a file it was asked for: whole or not at all.

:func:`write_output` writes a temporary file beside the target and renames it into place, so
a write that fails part way (a full disk, a file-size limit) leaves no half-written output and
an output named the same as an input leaves the input as it was. A target that is no regular
file (``/dev/stdout``, a pipe) is written in place; a symbolic link is followed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ironroot._fileio import write_atomic
from ironroot.errors import InputUnavailable

__all__ = ["check_output", "write_output"]


def check_output(path: Path) -> None:
    """Raise what :func:`write_output` would for ``path`` before writing a byte: a verb that
    writes several files checks each of them first, so that none is left without the others."""
    _target(path)


def write_output(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """``data`` written to ``path`` atomically (module docs); permissions ``mode``."""
    target, kind = _target(path)
    if kind is not None and not stat.S_ISREG(kind):
        with target.open("wb") as handle:
            handle.write(data)
        return
    write_atomic(target, data, mode=mode)


def _target(path: Path) -> tuple[Path, int | None]:
    """The file ``path`` names (a symbolic link followed) and its type, if it exists."""
    target = Path(os.path.realpath(path))
    try:
        kind: int | None = target.stat().st_mode
    except FileNotFoundError:
        kind = None
    if kind is not None and stat.S_ISDIR(kind):
        raise InputUnavailable(f"{path}: is a directory, not a file")
    if kind is None and not target.parent.is_dir():
        raise InputUnavailable(f"{path}: the folder {target.parent} does not exist")
    return target, kind
