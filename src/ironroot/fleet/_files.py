"""Several small files written durably at once: :func:`ironroot._fileio.write_atomic` for each
(temp file in the same folder, written, fsynced, renamed into place; each file is the old
bytes or the new bytes after a crash, never a mix), with the fsyncs of the files issued
together from a few threads and each folder synced once after the last rename.

Why. A durable write costs a journal commit of the filesystem, and on a busy disk that commit
is most of its time; fsyncs issued together are committed together (ext4 and XFS group them),
so four files cost about one commit instead of four. What a crash may leave is unchanged from
writing them one after the other without a folder sync in between: each file whole, some new
and some old until the folder sync returns. A caller whose files must agree checks them when
it reads them (the node's credentials do: a sealed key that is not its certificate's key is
refused).

``durable=False`` writes files that need not survive a power cut: a reader still never sees
a part of one (each is renamed into place whole), but after a power cut a file may be old,
empty or damaged, so the reader must detect that and recover. The node's credentials written
by an admission are such files (:func:`ironroot.fleet.store_node_credentials`): short-lived,
their keys sealed under authenticated encryption (a damaged file does not open), and a node
whose credential does not load attests again.

What a write killed before its renames leaves behind, its temp files
(``.<name>.XXXXXXXX.tmp``), stays until a writer that holds the folder's lock
(:func:`folder_lock`: no other writer of the folder can be under way) removes them
(:func:`ironroot._fileio.remove_write_temporaries`): only regular
files named exactly as a temp file of one of its names go; a link, a folder and every other
name stay. A writer that holds no such lock removes none: they may be another's write under
way.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from ironroot._fileio import fsync_dir

__all__ = ["folder_lock", "write_files"]


_WORKERS: Final = 4
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL  # one small pool per process, made on first use
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="ironroot-fsync")
        return _POOL


@contextlib.contextmanager
def folder_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the folder ``directory`` itself (no lock file is
    added to it) until the block ends: every writer of the folder takes it, so its holder
    knows no other write of the folder is under way. ``OSError`` when the folder cannot be
    opened."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_files(files: Sequence[tuple[Path, bytes, int]], *, durable: bool = True) -> None:
    """Write each ``(path, data, mode)`` atomically and durably (module docs); when this
    returns, every file is in place and survives a power cut. On an error the files renamed
    before it stay, the temp files are removed and the ``OSError`` propagates.

    ``durable=False`` skips the syncs: each file is still replaced by a rename, so a reader
    sees the old bytes or the new ones, never a part; but a power cut may leave a file old,
    empty or partly written. Only for files whose loss or damage the reader detects and
    recovers from (module docs)."""
    temps: list[tuple[int, Path, Path]] = []
    try:
        for path, data, mode in files:
            directory = path.parent if str(path.parent) else Path()
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
            temps.append((fd, Path(name), path))
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        if durable and len(temps) == 1:
            os.fsync(temps[0][0])
        elif durable:  # together: the file system commits them in one journal commit
            for future in [_pool().submit(os.fsync, fd) for fd, _, _ in temps]:
                future.result()
        for n, (fd, temp, path) in enumerate(temps):
            temps[n] = (-1, temp, path)
            os.close(fd)
        while temps:
            _, temp, path = temps[0]
            os.replace(temp, path)
            temps.pop(0)
    finally:
        for fd, temp, _ in temps:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
    if durable:
        for directory in dict.fromkeys(path.parent for path, _, _ in files):
            fsync_dir(directory)
