"""Durable file writes for key material: temp file, fsync, rename, fsync of the directory.

A key file or an LMS state file is either the old bytes or the new bytes after a crash, never a
mix, and once the call returns the new bytes survive a power cut. The standard library has no
such call (``pathlib.Path.write_bytes`` neither syncs nor renames), so it is written here once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ironroot.errors import Conflict, LimitExceeded

__all__ = ["read_limited", "write_atomic"]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` durably and atomically, with permissions ``mode``.

    With ``exclusive`` the call fails with :class:`~ironroot.errors.Conflict` if ``path``
    exists (the new file is linked into place, which never replaces).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError as exc:
                raise Conflict(f"{path} already exists") from exc
            tmp.unlink()
        else:
            os.replace(tmp, path)
        _fsync_dir(directory)
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_limited(path: Path, limit: int) -> bytes:
    """Read a whole file of at most ``limit`` bytes; larger files raise ``LimitExceeded``."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise LimitExceeded(f"{path} is larger than {limit} bytes")
    return data
