"""Stale temporary files as ``ironroot._fileio.write_atomic`` killed midway leaves them, and
look-alikes that are not: what a component cleans at its start, under its lock."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

KEPT_NAMES = (
    "keystore.sealed.abcd1234.tmp",  # no leading dot
    ".keystore.sealed.abcd123.tmp",  # seven random characters
    ".keystore.sealed.abcd12345.tmp",  # nine
    ".keystore.sealed.ABCD1234.tmp",  # mkstemp draws no capitals
    ".keystore.sealed.abcd-234.tmp",  # nor a dash
    ".keystore.sealed.abcd1234.tmp.bak",
    ".keystore.sealed.abcd1234.temp",
    "..abcd1234.tmp",  # no name
    ".lock",
    "keystore.sealed",
)


def stale_temporary(folder: Path, name: str = "keystore.sealed") -> Path:
    """A temporary file exactly as a ``write_atomic(folder / name, ...)`` killed before its
    rename leaves it (the name ``tempfile.mkstemp`` draws)."""
    fd, made = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.write(fd, b"half a key")
    os.close(fd)
    return Path(made)


def plant_look_alikes(folder: Path) -> list[Path]:
    """Files (and a folder and a link) named like a stale temporary but not one: kept."""
    planted = []
    for name in KEPT_NAMES:
        path = folder / name
        if not path.exists():
            path.write_bytes(b"keep me")
        planted.append(path)
    (folder / ".dir.abcd1234.tmp").mkdir()  # the name, but a folder
    planted.append(folder / ".dir.abcd1234.tmp")
    (folder / ".link.abcd1234.tmp").symlink_to(folder / "keystore.sealed")  # a link
    planted.append(folder / ".link.abcd1234.tmp")
    return planted
