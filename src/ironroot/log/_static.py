"""A log's C2SP read API as static files: cache rules, a directory, a store read as served.

The read API (``checkpoint``, ``tile/<L>/<N>[.p/<W>]``, ``tile/entries/<N>[.p/<W>]``) is a
finite set of files, so any web server or object store can serve it. What may be cached, and
for how long, is the same whoever serves it (the service, ``ironroot log serve-tiles``, nginx,
a CDN) and is said once here, by :func:`cache_control`:

* ``checkpoint`` changes with every batch: ``no-cache`` (c2sp.org/tlog-tiles: "SHOULD prevent
  caching beyond a few seconds");
* a full tile or full entry bundle never changes: ``public, max-age=31536000, immutable``;
* a partial one (``.p/<W>``) never changes either, but it is only read at the tip of the tree
  and is deleted once its full tile exists, so it is cached briefly: ``public, max-age=60``.

:class:`DirectoryLogFetcher` reads such files from a directory (an export, a mounted bucket,
an unpacked archive), so ``verify_remote_log`` and :class:`~ironroot.log.TileTree` work offline
on it; whatever a name is there (a named pipe, a device, a directory), it is read without
waiting and within the largest resource's size (:func:`ironroot._fileio.read_limited`). It
reads nothing outside the directory: only canonical resource names, and never through a
symbolic link inside it (:func:`ironroot._fileio.read_beneath`: a link, to ``/etc/passwd``,
to a folder elsewhere or even to a file inside, is as absent, :class:`NotFound`); the
directory itself may be a link.
:class:`StoreLogFetcher` reads a log store as the service serves it, byte for byte: the
exporter's source when it runs beside the store instead of against the service.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Final

from ironroot._fileio import read_beneath
from ironroot.errors import (
    ConfigError,
    InputUnavailable,
    LimitExceeded,
    NotFound,
    PayloadTooLarge,
    StorageError,
)
from ironroot.log._store import LogReader
from ironroot.log._tiles import (
    HASH_SIZE,
    MAX_ENTRY_SIZE,
    TILE_WIDTH,
    TileAddress,
    encode_entry_bundle,
    parse_tile_path,
)
from ironroot.log._verify import CONFIG_PATH

__all__ = [
    "CACHE_CHECKPOINT",
    "CACHE_FULL",
    "CACHE_PARTIAL",
    "CHECKPOINT_PATH",
    "DirectoryLogFetcher",
    "StoreLogFetcher",
    "cache_control",
    "check_resource_path",
]

CHECKPOINT_PATH: Final = "checkpoint"
CACHE_CHECKPOINT: Final = "no-cache"
CACHE_FULL: Final = "public, max-age=31536000, immutable"
CACHE_PARTIAL: Final = "public, max-age=60"
# The largest resource of the read API: a full entry bundle of 256 maximal entries.
MAX_RESOURCE: Final = TILE_WIDTH * (2 + MAX_ENTRY_SIZE) + 4096


def check_resource_path(path: str) -> TileAddress | None:
    """The address of a tile path, ``None`` for ``checkpoint`` or the configuration document;
    :class:`MalformedInput` for anything else (so no other file is ever read)."""
    name = path.lstrip("/") if isinstance(path, str) else path
    if name in (CHECKPOINT_PATH, CONFIG_PATH):
        return None
    return parse_tile_path(name)


def cache_control(path: str) -> str:
    """The ``Cache-Control`` value for a resource of the read API (see the module doc)."""
    address = check_resource_path(path)
    if address is None:
        return CACHE_CHECKPOINT
    return CACHE_FULL if address.width is None else CACHE_PARTIAL


class DirectoryLogFetcher:
    """A :class:`~ironroot.log.LogFetcher` over a directory laid out like the read API.

    Only canonical resource names are read (a tile path, ``checkpoint``, the configuration
    document); a missing file raises :class:`NotFound`.
    """

    def __init__(self, directory: Path) -> None:
        self._root = Path(directory)
        if not self._root.is_dir():
            raise ConfigError(f"{self._root} is not a directory")

    @property
    def directory(self) -> Path:
        return self._root

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        check_resource_path(path)
        name = path.lstrip("/")
        file = self._root / name
        try:
            return read_beneath(self._root, name, MAX_RESOURCE)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, InputUnavailable) as exc:
            raise NotFound(f"{file} does not exist") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symbolic link: never followed, as if absent
                raise NotFound(f"{file} is a symbolic link, which is never followed") from exc
            raise StorageError(f"cannot read {file}: {exc.strerror}") from exc
        except LimitExceeded as exc:
            raise PayloadTooLarge(f"{file} is larger than any log resource") from exc


class StoreLogFetcher:
    """The read API of the log in ``store``, as the transparency service serves it.

    ``checkpoint`` is the store's latest unless ``checkpoint`` (a callable returning the
    note to publish, such as the witnessed one) is given. A tile or bundle the store does not
    hold raises :class:`NotFound`.
    """

    def __init__(self, store: LogReader, *, checkpoint: Callable[[], bytes] | None = None) -> None:
        self._store = store
        self._checkpoint = checkpoint

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        address = check_resource_path(path)
        if address is None:
            if path.lstrip("/") != CHECKPOINT_PATH:
                raise NotFound("a log store holds no transparency configuration")
            if self._checkpoint is not None:
                return self._checkpoint()
            note = self._store.checkpoint()
            if note is None:
                raise NotFound("the log has no checkpoint yet")
            return note
        if address.entries:
            start = address.index * TILE_WIDTH
            entries = self._store.entries(start, start + address.count)
            if len(entries) != address.count:
                raise NotFound(f"no entry bundle {address.path}")
            return encode_entry_bundle(entries)
        data = self._store.tile(address.level, address.index)
        need = address.count * HASH_SIZE
        if data is None or len(data) < need or (address.width is None and len(data) != need):
            raise NotFound(f"no tile {address.path}")
        return data[:need]
