"""The SQLite log store: one file, WAL, ``synchronous=FULL``, one writer, many readers.

Schema (version 1)::

    meta(key TEXT PRIMARY KEY, value TEXT)                    -- schema version, origin
    pending(seq INTEGER PRIMARY KEY AUTOINCREMENT,            -- durable, not yet sequenced
            entry_id BLOB UNIQUE, entry BLOB)
    entries(idx INTEGER PRIMARY KEY, entry BLOB)              -- integrated, by index
    entry_ids(entry_id BLOB PRIMARY KEY, idx INTEGER)         -- SHA-256(entry) -> index
    tiles(level, idx, data BLOB, PRIMARY KEY(level, idx))     -- current bytes of each tile
    checkpoints(size INTEGER PRIMARY KEY, note BLOB)          -- every published checkpoint
    batch_data(size, name TEXT, value BLOB, PRIMARY KEY(size, name))
    state(id = 1, size INTEGER, hashes BLOB)                  -- compact range, 32 bytes each

Every :class:`StoreBatch` is one ``BEGIN IMMEDIATE … COMMIT`` on the write connection
(``isolation_level=None``: Python's sqlite3 opens no implicit transactions), checked by
:func:`~ironroot.log.check_batch` inside it, so after a crash the file holds either all of a
batch or none of it; with WAL and ``synchronous=FULL`` a commit that returned is on disk.
``BEGIN IMMEDIATE`` takes the write lock first, so the stored size the fence compares with
cannot change before the commit. A file whose schema version is newer than this code knows
is refused (:class:`StorageError` with code ``store-schema``); there is no older version yet.

The write connection belongs to the one writer thread (created by whoever opens the store,
then used only by it); readers get one connection per thread. Every ``sqlite3.Error``
becomes :class:`StorageError`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from ironroot.errors import StorageError
from ironroot.log._store import StoreBatch, TreeState, check_batch

__all__ = ["SCHEMA_VERSION", "SqliteLogStore"]

SCHEMA_VERSION = 1
"""The SQLite schema this code writes (``meta.schema``)."""
_HASH = 32
_FULL_TILE = 256 * _HASH
_IN_CHUNK = 500  # ids per "IN (...)" lookup, well under SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id BLOB NOT NULL UNIQUE,
    entry BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entry_ids (
    entry_id BLOB PRIMARY KEY,
    idx INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tiles (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batch_data (
    size INTEGER NOT NULL,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (size, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    hashes BLOB NOT NULL
);
"""


class SqliteLogStore:
    """A :class:`~ironroot.log.LogStore` (and :class:`~ironroot.log.AuditReader`) in one
    SQLite file."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self._path = Path(path)
        self._read_only = read_only
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        if read_only and not self._path.exists():
            raise StorageError(f"no log database at {self._path}")
        try:
            self._writer = self._connect(write=not read_only)
            if read_only:
                self._check_schema()
            else:
                self._writer.execute("PRAGMA journal_mode=WAL")
                self._writer.execute("PRAGMA synchronous=FULL")
                self._writer.executescript(_SCHEMA)
                self._init_meta()
        except sqlite3.Error as exc:
            self.close()
            raise StorageError(f"cannot open the log database {self._path}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    def _connect(self, *, write: bool) -> sqlite3.Connection:
        if write:
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
        else:
            uri = f"{self._path.resolve().as_uri()}?mode=ro"
            if not self._path.with_name(self._path.name + "-wal").exists():
                # A cleanly stopped log (no write-ahead log beside it) is read as immutable:
                # SQLite then creates no -wal/-shm files, so a read-only copy verifies too.
                uri += "&immutable=1"
            conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.execute("PRAGMA query_only=1")
        # The id index takes random keys: a larger page cache keeps appends off the disk.
        conn.execute(f"PRAGMA cache_size={-65536 if write else -16384}")
        with self._lock:
            self._connections.append(conn)
        return conn

    def _check_schema(self) -> None:
        row = self._writer.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            raise StorageError(f"{self._path} is not a log database (no schema version)")
        _check_version(row[0])

    def _init_meta(self) -> None:
        conn = self._writer
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                conn.execute("INSERT OR IGNORE INTO state VALUES (1, 0, x'')")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        else:
            _check_version(row[0])

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError("the log store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect(write=False)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open the log database: {exc}") from exc
            self._local.conn = conn
        return conn

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        try:
            row = self._reader().execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"log database read failed: {exc}") from exc
        return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._reader().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"log database read failed: {exc}") from exc

    # --- the log's reads --------------------------------------------------------------------

    def state(self) -> TreeState:
        row = self._one("SELECT size, hashes FROM state WHERE id = 1")
        if row is None:
            raise StorageError("the log database has no state row")
        size, blob = row
        if not isinstance(size, int) or not isinstance(blob, bytes) or len(blob) % _HASH:
            raise StorageError("the log state row is malformed")
        return TreeState(size, tuple(blob[i : i + _HASH] for i in range(0, len(blob), _HASH)))

    def lookup(self, entry_ids: Sequence[bytes]) -> dict[bytes, int | None]:
        conn = self._reader()
        try:
            found: dict[bytes, int | None] = dict(_integrated(conn, entry_ids))
            rest = [i for i in entry_ids if i not in found]
            found.update(dict.fromkeys(_pending(conn, rest)))
        except sqlite3.Error as exc:
            raise StorageError(f"log database read failed: {exc}") from exc
        return found

    def pending(self) -> list[tuple[bytes, bytes]]:
        rows = self._all("SELECT entry_id, entry FROM pending ORDER BY seq")
        return [(bytes(i), bytes(e)) for i, e in rows]

    def entries(self, start: int, stop: int) -> list[bytes]:
        rows = self._all(
            "SELECT entry FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, stop)
        )
        return [bytes(r[0]) for r in rows]

    def tile(self, level: int, index: int) -> bytes | None:
        row = self._one("SELECT data FROM tiles WHERE level = ? AND idx = ?", (level, index))
        return None if row is None else bytes(row[0])

    def checkpoint(self, size: int | None = None) -> bytes | None:
        if size is None:
            row = self._one("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
        else:
            row = self._one("SELECT note FROM checkpoints WHERE size = ?", (size,))
        return None if row is None else bytes(row[0])

    def batch_size_of(self, index: int) -> int | None:
        row = self._one("SELECT MIN(size) FROM checkpoints WHERE size > ?", (index,))
        return None if row is None or row[0] is None else int(row[0])

    def batch_data(self, size: int) -> dict[str, bytes] | None:
        if self._one("SELECT 1 FROM checkpoints WHERE size = ?", (size,)) is None:
            return None
        rows = self._all("SELECT name, value FROM batch_data WHERE size = ?", (size,))
        return {str(name): bytes(value) for name, value in rows}

    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    # --- audit reads ------------------------------------------------------------------------

    def iter_entries(self) -> Iterator[tuple[int, bytes]]:
        # Its own connection: one read transaction (a consistent snapshot) for the whole scan.
        try:
            conn = self._connect(write=False)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the log database: {exc}") from exc
        try:
            cursor = conn.execute("SELECT idx, entry FROM entries ORDER BY idx")
            while rows := cursor.fetchmany(4096):
                for idx, entry in rows:
                    yield int(idx), bytes(entry)
        except sqlite3.Error as exc:
            raise StorageError(f"log database read failed: {exc}") from exc
        finally:
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            conn.close()

    def checkpoint_sizes(self) -> list[int]:
        return [int(r[0]) for r in self._all("SELECT size FROM checkpoints ORDER BY size")]

    def batch_data_sizes(self) -> list[int]:
        rows = self._all("SELECT DISTINCT size FROM batch_data ORDER BY size")
        return [int(r[0]) for r in rows]

    def count_tiles(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM tiles")[0])

    def count_entry_ids(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM entry_ids")[0])

    def storage_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(f"{self._path}{suffix}")
        return total

    # --- the write (the writer thread only) ---------------------------------------------

    def write(self, batch: StoreBatch) -> None:
        if self._read_only:
            raise StorageError("the log store is read-only")
        if self._closed:
            raise StorageError("the log store is closed")
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                check_batch(batch, _View(conn))
                _apply(conn, batch)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"log database write failed: {exc}") from exc

    def close(self) -> None:
        self._closed = True
        with self._lock:
            connections, self._connections = self._connections, []
        # Readers first: the last connection to close checkpoints the WAL into the main
        # file, and only the read-write one can.
        for conn in sorted(connections, key=lambda c: c is self._writer):
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _check_version(value: object) -> None:
    try:
        version = int(str(value))
    except ValueError:
        version = -1
    if version != SCHEMA_VERSION:
        newer = version > SCHEMA_VERSION
        raise StorageError(
            f"the log database has schema version {value!r}; this Ironroot knows "
            f"{SCHEMA_VERSION}" + (": upgrade Ironroot to open it" if newer else ""),
            code="store-schema",
        )


def _chunks(items: Sequence[bytes] | Collection[bytes]) -> Iterator[tuple[bytes, ...]]:
    values = tuple(items)
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _integrated(
    conn: sqlite3.Connection, entry_ids: Collection[bytes]
) -> Iterator[tuple[bytes, int]]:
    for chunk in _chunks(entry_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT entry_id, idx FROM entry_ids WHERE entry_id IN ({marks})",  # noqa: S608
            chunk,
        )
        for entry_id, idx in rows:
            yield bytes(entry_id), int(idx)


def _pending(conn: sqlite3.Connection, entry_ids: Collection[bytes]) -> Iterator[bytes]:
    for chunk in _chunks(entry_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT entry_id FROM pending WHERE entry_id IN ({marks})",  # noqa: S608
            chunk,
        )
        for (entry_id,) in rows:
            yield bytes(entry_id)


class _View:
    """What :func:`check_batch` reads, inside the write transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def stored_size(self) -> int:
        row = self._conn.execute("SELECT size FROM state WHERE id = 1").fetchone()
        if row is None:
            raise StorageError("the log database has no state row")
        return int(row[0])

    def integrated_among(self, entry_ids: Collection[bytes]) -> set[bytes]:
        return {entry_id for entry_id, _ in _integrated(self._conn, entry_ids)}

    def pending_among(self, entry_ids: Collection[bytes]) -> set[bytes]:
        return set(_pending(self._conn, entry_ids))

    def tiles(self, keys: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found = {}
        for level, index in keys:
            row = self._conn.execute(
                "SELECT data FROM tiles WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
            if row is not None:
                found[(level, index)] = bytes(row[0])
        return found

    def has_checkpoint(self, size: int) -> bool:
        row = self._conn.execute("SELECT 1 FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return row is not None

    def meta_values(self, keys: Collection[str]) -> dict[str, str]:
        found = {}
        for key in keys:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is not None:
                found[key] = str(row[0])
        return found


def _apply(conn: sqlite3.Connection, batch: StoreBatch) -> None:
    """Write a checked batch (inside the transaction)."""
    if batch.meta:
        conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", list(batch.meta.items()))
    if batch.pending:
        conn.executemany(
            "INSERT OR IGNORE INTO pending (entry_id, entry) VALUES (?, ?)", batch.pending
        )
    if batch.cleared:
        conn.executemany("DELETE FROM pending WHERE entry_id = ?", [(i,) for i in batch.cleared])
    if batch.integrated:
        first = batch.first_index
        conn.executemany(
            "INSERT INTO entries (idx, entry) VALUES (?, ?)",
            [(first + i, e) for i, (_, e) in enumerate(batch.integrated)],
        )
        conn.executemany(
            "INSERT INTO entry_ids (entry_id, idx) VALUES (?, ?)",
            [(eid, first + i) for i, (eid, _) in enumerate(batch.integrated)],
        )
    conn.executemany(
        "INSERT INTO tiles (level, idx, data) VALUES (?, ?, ?) "
        "ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data",
        [(level, index, data) for (level, index), data in batch.tiles.items()],
    )
    if batch.state is not None:
        size = batch.state.size
        conn.execute(
            "UPDATE state SET size = ?, hashes = ? WHERE id = 1",
            (size, b"".join(batch.state.hashes)),
        )
        conn.execute("INSERT INTO checkpoints (size, note) VALUES (?, ?)", (size, batch.checkpoint))
        if batch.batch_data:
            conn.executemany(
                "INSERT INTO batch_data (size, name, value) VALUES (?, ?, ?)",
                [(size, k, v) for k, v in batch.batch_data.items()],
            )
