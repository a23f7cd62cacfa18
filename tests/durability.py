"""What a power cut keeps: a record of every ``fsync`` a call makes, by the path it synced.

A power cut keeps a file's bytes only once the file was synced, and keeps a name in a folder
(a file or folder created, renamed or linked there) only once that folder was synced after
the name landed. :class:`SyncLog` records each ``os.fsync`` (the path its descriptor names,
in order); :func:`unsynced_names` lists the names beneath a folder whose folder was not
synced after they were made, that is what a power cut right after the call could lose.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest

__all__ = ["SyncLog", "unsynced_names"]


class SyncLog:
    """Every ``os.fsync`` while installed (``monkeypatch``), by resolved path, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[Path] = []
        self._held: dict[Path, set[str]] = {}  # a folder: the names it held when synced
        real = os.fsync

        def fsync(fd: int) -> None:
            path = Path(os.readlink(f"/proc/self/fd/{fd}"))
            self.paths.append(path)
            if path.is_dir():
                self._held.setdefault(path, set()).update(os.listdir(path))
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    def synced(self, path: Path) -> bool:
        """Whether ``path`` (a file's bytes, a folder's names) was synced."""
        return Path(path).resolve() in self.paths

    def kept(self, path: Path) -> bool:
        """Whether ``path``'s name was in its folder when that folder was synced."""
        path = Path(path).resolve()
        return path.name in self._held.get(path.parent, set())


def unsynced_names(root: Path, log: SyncLog, *, ignore: Iterable[str] = (".lock",)) -> list[Path]:
    """Each file or folder at or beneath ``root`` whose folder was not synced while holding
    its name (lock files, whose name carries no state, are left out: ``ignore`` lists their
    suffixes)."""
    root = Path(root).resolve()
    names = [root, *sorted(root.rglob("*"))]
    return [p for p in names if not any(p.name.endswith(s) for s in ignore) and not log.kept(p)]
