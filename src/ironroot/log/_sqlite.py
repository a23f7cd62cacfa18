"""The SQLite log store: one file, WAL, ``synchronous=FULL``, one writer, many readers.

Schema (version 2)::

    meta(key TEXT PRIMARY KEY, value TEXT)                    -- schema version, origin
    pending(seq INTEGER PRIMARY KEY AUTOINCREMENT,            -- durable, not yet sequenced
            entry_id BLOB UNIQUE, entry BLOB)
    entries(idx INTEGER PRIMARY KEY, entry BLOB)              -- integrated, by index
    entry_keys(key INTEGER PRIMARY KEY, idx INTEGER)          -- id's first 8 bytes -> index
    entry_key_clashes(entry_id BLOB PRIMARY KEY, idx INTEGER) -- ids whose key was taken
    entry_key_state(id = 1, indexed INTEGER)                  -- entries [0, indexed) have keys
    tiles(level, idx, data BLOB, PRIMARY KEY(level, idx))     -- current bytes of each tile
    checkpoints(size INTEGER PRIMARY KEY, note BLOB)          -- every published checkpoint
    batch_data(size, name TEXT, value BLOB, PRIMARY KEY(size, name))
    state(id = 1, size INTEGER, hashes BLOB)                  -- compact range, 32 bytes each

The id → index map (ADR 0010) stores no id. ``entry_keys`` is keyed by the first 8 bytes of
the id read as a signed big-endian integer: a rowid B-tree of about 20 bytes per entry. A key
says where an entry *may* be; a look-up is confirmed only when the SHA-256 of the entry stored
at that index is the id asked for, so a key shared by two ids never answers for the wrong
one. The second id of such a pair (about one in 2^64 / n for a log of n entries; handled, and
tested with narrowed keys) is kept whole in ``entry_key_clashes``.

An append writes no key. The entries from ``indexed`` on are the **window** (ADR 0011): each
store object keeps their keys and indices in memory, 16 bytes per entry, made by reading and
hashing those entries (all of them on its first look-up, then the new ones), shared by its
threads; a window key, like a stored one, counts only when the entry it points at hashes to
the id. Once the window holds :func:`index_window` entries (a quarter of the indexed ones,
2^16 to 2^22), the batch that filled it wakes the store's merger thread and returns: on a
connection of its own, the merger freezes the window's buckets (new ids join fresh ones),
stores their keys into ``entry_keys`` one slice of the key space per transaction (about
2,048 keys, in key order), taking the write lock only when no write of the store waits for
it, then moves ``indexed`` in a last transaction and forgets the frozen buckets. So no
append writes a random page, no batch waits for more than a slice, and a merge writes each
page of the index about once. A look-up reads the window first, then the stored keys, so an
entry merged in between is found in one or the other. A merge is idempotent and may fail or
stop harmlessly: keys of window entries that a slice stored are stored again (a no-op) by
the next merge, and ``indexed`` moves only after them all (the window stays, a later batch
asks again). :meth:`SqliteLogStore.close` lets a due merge finish.

Every :class:`StoreBatch` is one ``BEGIN IMMEDIATE … COMMIT`` on the write connection
(``isolation_level=None``: Python's sqlite3 opens no implicit transactions), checked by
:func:`~ironroot.log.check_batch` inside it, so after a crash the file holds either all of a
batch or none of it; with WAL and ``synchronous=FULL`` a commit that returned is on disk.
``BEGIN IMMEDIATE`` takes the write lock first, so the stored size the fence compares with
cannot change before the commit.

Versions: a file whose schema version is newer than this code knows is refused
(:class:`StorageError` with code ``store-schema``). Opening an older file read-write migrates
it, in one transaction under the write lock (a second process that opens it at the same time
finds it migrated): version 1 kept the whole id in ``entry_ids(entry_id BLOB PRIMARY KEY,
idx)``; its rows become keys, in key order (the window starts empty), and the table goes
(its pages are reused as the log grows; ``VACUUM`` returns them to the file system). A
read-only open of an older file is refused with ``store-schema`` (open it read-write once,
e.g. ``ironroot log migrate DIR``).

The write connection belongs to the one writer thread (created by whoever opens the store,
then used only by it), the merger has its own, and readers get one connection per thread.
Every ``sqlite3.Error`` becomes :class:`StorageError`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ironroot._statedb import immediate
from ironroot.errors import StorageError
from ironroot.log._sqlite_window import BUCKETS as _BUCKETS
from ironroot.log._sqlite_window import Window
from ironroot.log._store import StoreBatch, TreeState, check_batch

__all__ = ["SCHEMA_VERSION", "MergeStats", "SqliteLogStore", "index_window"]

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""The SQLite schema this code writes (``meta.schema``); version 1 files are migrated."""
_HASH = 32
_FULL_TILE = 256 * _HASH
_IN_CHUNK = 500  # ids per "IN (...)" lookup, well under SQLite's variable limit
_KEY_BYTES = 8  # bytes of the id that make its key in entry_keys
_WINDOW_MIN = 1 << 16
_WINDOW_MAX = 1 << 22
_WINDOW_SHARE = 4
_SLICE_KEYS = 2048  # keys per merge transaction, about (a few ms of the write lock)
_MERGE_CHECKPOINT = 8  # the merger checkpoints the WAL after so many slices
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1  # SQLite's INTEGER


def _bound(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A read's integer arguments held to SQLite's INTEGER range (which no stored index, size
    or level leaves), so a caller's out-of-range number reads nothing rather than raising
    ``OverflowError``, as in the other stores."""
    return tuple(
        min(max(a, _INT_MIN), _INT_MAX) if isinstance(a, int) and not isinstance(a, bool) else a
        for a in args
    )


def _blob(value: object) -> bytes:
    """A BLOB column's value as bytes; ``StorageError`` for anything else. A damaged row's
    text or integer is never converted: ``bytes("…")`` raised ``TypeError`` out of every
    reader, and ``bytes(10**10)`` is ten gigabytes of zeros, not an entry."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, memoryview):
        return value.tobytes()
    raise StorageError(
        f"the log database holds a {type(value).__name__} where bytes belong: it is damaged"
    )


def _file_id(path: Path) -> tuple[int, int] | None:
    """The device and inode of the file at ``path`` (``None``: none there, or unreadable).

    The writer's connection keeps the file it opened: one moved, deleted or replaced under a
    running log would take writes that no later open sees (deleted: lost, and the next open
    began a new empty log). One ``stat`` per batch tells."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _check_regular(path: Path) -> None:
    """``StorageError`` unless ``path`` is absent or a regular file (a link to one too):
    SQLite's read-only open of a named pipe waits for a writer forever, and a device or a
    folder is no database either."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot open the log database {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        raise StorageError(f"{path} is not a regular file, so not a log database")


def _integer(value: object) -> int:
    """An INTEGER column's value; ``StorageError`` for anything else. SQLite stores what a
    damaged row was given (text, a blob, a real): ``int()`` raised ``ValueError`` out of every
    reader, or rounded ``5.5`` to a size that is there."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise StorageError(
        f"the log database holds a {type(value).__name__} where an integer belongs: it is damaged"
    )


def index_window(indexed: int) -> int:
    """How many entries wait in the window before their keys are merged, once ``indexed``
    entries have theirs stored: a quarter of those, from 2^16 up to 2^22.

    A merge writes about every page of ``entry_keys`` (there are fewer pages than new keys),
    so its cost grows with the log; a window that grows with it keeps the cost per appended
    entry the same, up to 4 × 2^22 entries (beyond, it grows again, slowly: ADR 0011).
    """
    return min(_WINDOW_MAX, max(_WINDOW_MIN, indexed // _WINDOW_SHARE))


@dataclass(frozen=True, slots=True)
class MergeStats:
    """What the last merge of the window into the stored keys did (the benchmark reads it)."""

    entries: int
    """Entries whose keys it stored."""
    slices: int
    """Transactions it took, one per slice of the key space (and one to move ``indexed``)."""
    seconds: float
    """Wall-clock time from its start to its last commit."""
    waited: float
    """Of ``seconds``, the time it waited for this store's writes (which go first)."""
    cpu_seconds: float
    """CPU time of the thread that merged."""


_ABSENT_MAX = 1 << 16  # ids remembered as absent from the stored keys
_MIGRATE_CHUNK = 50_000  # version-1 ids copied per statement while migrating
# The WAL file is cut back to this after a checkpoint (a large batch may have grown it).
_WAL_LIMIT = 4 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id BLOB NOT NULL UNIQUE,
    entry BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entry_keys (key INTEGER PRIMARY KEY, idx INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entry_key_clashes (
    entry_id BLOB PRIMARY KEY,
    idx INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entry_key_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    indexed INTEGER NOT NULL
);
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

    def __init__(
        self, path: Path, *, read_only: bool = False, index_window: int | None = None
    ) -> None:
        """``index_window``: a fixed window instead of :func:`index_window`'s (tests)."""
        if index_window is not None and index_window < 1:
            raise ValueError("index_window must be at least 1")
        self._path = Path(path)
        self._wal = self._path.with_name(self._path.name + "-wal")
        self._read_only = read_only
        self._fixed_window = index_window
        self._window = Window(_KEY_BYTES)
        # Ids found absent from the stored keys while ``indexed`` was this: they stay absent
        # until a merge (the writer looks each new id up twice: the log, then the batch rules).
        self._absent: tuple[int, set[bytes]] = (-1, set())
        # Ids found nowhere while the window was (indexed, stop) as here: the batch rules'
        # look-up of a new id, right after the log's, then reads neither window nor page.
        self._missing: tuple[tuple[int, int], set[bytes]] = ((-1, -1), set())
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        # Read connections opened while the log was stopped, read as immutable (see _reader),
        # each with the file's stamp when it was opened.
        self._immutable: dict[sqlite3.Connection, tuple[int, int, int] | None] = {}
        self._closed = False
        # One transaction of this object's at a time: the writer's, or a merge slice's. The
        # writer goes first: a merge takes its next slice only when no write is waiting.
        self._write_lock = threading.Lock()
        self._writes_waiting = 0
        self._turn = threading.Condition()
        # The merger thread (started by the first write that fills the window).
        self._merger: threading.Thread | None = None
        self._merge_wanted = False
        self._closing = False
        self._last_merge: MergeStats | None = None
        _check_regular(self._path)
        if read_only and not self._path.exists():
            raise StorageError(f"no log database at {self._path}")
        try:
            self._writer = self._connect(write=not read_only)
            # The file the writer opened: a write refuses once another is at the path.
            self._file = _file_id(self._path)
            if read_only:
                self._check_schema()
            else:
                self._writer.execute("PRAGMA journal_mode=WAL")
                self._writer.execute("PRAGMA synchronous=FULL")
                self._writer.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
                self._init_schema()
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
            stamp = self._stamp()  # before the open: a change in between is seen as one
            immutable = not self._wal.exists()
            if immutable:
                # A cleanly stopped log (no write-ahead log beside it) is read as immutable:
                # SQLite then creates no -wal/-shm files, so a read-only copy verifies too.
                uri += "&immutable=1"
            conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.execute("PRAGMA query_only=1")
            if immutable:
                with self._lock:
                    self._immutable[conn] = stamp
        # The id keys land at random pages: a larger page cache keeps appends off the disk.
        conn.execute(f"PRAGMA cache_size={-65536 if write else -16384}")
        with self._lock:
            self._connections.append(conn)
        return conn

    def _stamp(self) -> tuple[int, int, int] | None:
        """The database file's identity, size and modification time (``None``: unreadable)."""
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _check_schema(self) -> None:
        row = self._writer.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            raise StorageError(f"{self._path} is not a log database (no schema version)")
        _check_version(row[0])

    def _init_schema(self) -> None:
        """Create the tables of a new file, or migrate an older one, in one transaction."""
        conn = self._writer
        with immediate(conn):
            has_meta = conn.execute(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            row = None
            if has_meta:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            version = SCHEMA_VERSION if row is None else _version(row[0])
            if version > SCHEMA_VERSION or version < 1:
                _check_version(row[0] if row else None)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                conn.execute("INSERT OR IGNORE INTO state VALUES (1, 0, x'')")
                conn.execute("INSERT OR IGNORE INTO entry_key_state VALUES (1, 0)")
            elif version == 1:
                _migrate_from_1(conn)
                conn.execute(
                    "INSERT OR REPLACE INTO entry_key_state SELECT 1, size FROM state WHERE id = 1"
                )

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError("the log store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if (
            conn is not None
            and conn in self._immutable
            and (self._wal.exists() or self._stamp() != self._immutable.get(conn))
        ):
            # Opened while the log was stopped, as immutable: SQLite would go on reading the
            # file as it was (and unlocked, while a writer copies its pages back into it), its
            # cached pages beside the file's new ones. A writer has opened the log since (it
            # runs, or it ran and stopped, which changed the file): read it anew.
            self._local.conn = None
            with self._lock:
                self._immutable.pop(conn, None)
                if conn in self._connections:
                    self._connections.remove(conn)
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            conn = None
        if conn is None:
            try:
                conn = self._connect(write=False)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open the log database: {exc}") from exc
            self._local.conn = conn
        return conn

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        try:
            row = self._reader().execute(sql, _bound(args)).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"log database read failed: {exc}") from exc
        return row

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._reader().execute(sql, _bound(args)).fetchall()
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
            found: dict[bytes, int | None] = dict(self._integrated(conn, entry_ids))
            rest = [i for i in entry_ids if i not in found]
            found.update(dict.fromkeys(_pending(conn, rest)))
        except sqlite3.Error as exc:
            raise StorageError(f"log database read failed: {exc}") from exc
        return found

    def pending(self, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        if limit is None:
            rows = self._all("SELECT seq, entry_id, entry FROM pending ORDER BY seq")
        else:
            rows = self._all(
                "SELECT seq, entry_id, entry FROM pending ORDER BY seq LIMIT ?", (max(limit, 0),)
            )
        out = []
        for seq, entry_id, entry in rows:
            if not isinstance(entry_id, bytes | memoryview) or not isinstance(
                entry, bytes | memoryview
            ):
                # Named, so that an operator can find the row: the writer cannot read past it
                wrong = entry_id if not isinstance(entry_id, bytes | memoryview) else entry
                raise StorageError(
                    f"the log database's pending row {seq} holds a {type(wrong).__name__} "
                    "where bytes belong: it is damaged"
                )
            out.append((_blob(entry_id), _blob(entry)))
        return out

    def count_pending(self) -> int:
        row = self._one("SELECT COUNT(*) FROM pending")
        return 0 if row is None else int(row[0])

    def entries(self, start: int, stop: int) -> list[bytes]:
        rows = self._all(
            "SELECT entry FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, stop)
        )
        return [_blob(r[0]) for r in rows]

    def tile(self, level: int, index: int) -> bytes | None:
        row = self._one("SELECT data FROM tiles WHERE level = ? AND idx = ?", (level, index))
        return None if row is None else _blob(row[0])

    def checkpoint(self, size: int | None = None) -> bytes | None:
        if size is None:
            row = self._one("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
        else:
            row = self._one("SELECT note FROM checkpoints WHERE size = ?", (size,))
        return None if row is None else _blob(row[0])

    def batch_size_of(self, index: int) -> int | None:
        row = self._one("SELECT MIN(size) FROM checkpoints WHERE size > ?", (index,))
        return None if row is None or row[0] is None else _integer(row[0])

    def batch_data(self, size: int) -> dict[str, bytes] | None:
        if self._one("SELECT 1 FROM checkpoints WHERE size = ?", (size,)) is None:
            return None
        rows = self._all("SELECT name, value FROM batch_data WHERE size = ?", (size,))
        return {str(name): _blob(value) for name, value in rows}

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
                    yield _integer(idx), _blob(entry)
        except sqlite3.Error as exc:
            raise StorageError(f"log database read failed: {exc}") from exc
        finally:
            with self._lock:
                self._immutable.pop(conn, None)
                if conn in self._connections:
                    self._connections.remove(conn)
            conn.close()

    def checkpoint_sizes(self) -> list[int]:
        return [_integer(r[0]) for r in self._all("SELECT size FROM checkpoints ORDER BY size")]

    def batch_data_sizes(self) -> list[int]:
        rows = self._all("SELECT DISTINCT size FROM batch_data ORDER BY size")
        return [_integer(r[0]) for r in rows]

    def count_tiles(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM tiles")[0])

    def count_entry_ids(self) -> int:
        # The keys stored for entries before ``indexed``, and the entries of the window
        # (indexed in memory, from themselves). Keys of window entries (stored by a merge
        # under way, or one cut short) are not counted: the window answers for those.
        row = self._one(
            "SELECT (SELECT COUNT(*) FROM entry_keys WHERE idx < k.indexed)"
            " + (SELECT COUNT(*) FROM entry_key_clashes WHERE idx < k.indexed)"
            " + (SELECT COUNT(*) FROM entries WHERE idx >= k.indexed)"
            " FROM entry_key_state AS k WHERE k.id = 1"
        )
        if row is None:
            raise StorageError("the log database has no entry-key state row")
        return int(row[0])

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
        if _file_id(self._path) != self._file:
            raise StorageError(
                f"the log database {self._path} is no longer the file this store opened "
                "(moved, deleted or replaced since): nothing more is written to it; restart "
                "the service"
            )
        conn = self._writer
        try:
            with self._writing(), immediate(conn):
                check_batch(batch, _View(conn, self))
                _apply(conn, batch)
        except sqlite3.Error as exc:
            raise StorageError(f"log database write failed: {exc}") from exc
        if batch.state is not None:
            self._window.extend(batch.first_index, [i for i, _ in batch.integrated])
            if batch.state.size - self._window.start >= self._window_for(self._window.start):
                self._merge_soon()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the write lock for a batch, ahead of any merge slice waiting for it."""
        with self._turn:
            self._writes_waiting += 1
        try:
            self._write_lock.acquire()
        finally:
            with self._turn:
                self._writes_waiting -= 1
                self._turn.notify_all()
        try:
            yield
        finally:
            self._write_lock.release()

    def indexed(self) -> int:
        """How many entries, from index 0, have their keys stored (the rest are the window)."""
        row = self._one("SELECT indexed FROM entry_key_state WHERE id = 1")
        if row is None:
            raise StorageError("the log database has no entry-key state row")
        return _integer(row[0])

    @property
    def last_merge(self) -> MergeStats | None:
        """What the last merge of this store object did (``None``: none yet)."""
        return self._last_merge

    def merge_index(self) -> int:
        """Store the keys of every entry in the window now, whatever its size (a bulk load,
        a quiet moment), on the calling thread; returns how many. Writers call it from the
        writer thread."""
        if self._read_only:
            raise StorageError("the log store is read-only")
        if self._closed:
            raise StorageError("the log store is closed")
        try:
            return self._merge(self._writer, due_only=False)
        except sqlite3.Error as exc:
            raise StorageError(f"log database write failed: {exc}") from exc

    def _merge_soon(self) -> None:
        """After a batch filled the window: have the merger thread merge it. The batch is
        committed and acknowledged meanwhile; a merge that fails leaves the window as it was
        (its entries are still found), and the next batch asks again."""
        with self._turn:
            if self._closing:
                return
            self._merge_wanted = True
            if self._merger is None:
                self._merger = threading.Thread(
                    target=self._merge_loop, name="ironroot-sqlite-merge", daemon=True
                )
                self._merger.start()
            self._turn.notify_all()

    def _merge_loop(self) -> None:
        """The merger thread: merge while a merge is due; on close, finish what is due."""
        conn: sqlite3.Connection | None = None
        while True:
            with self._turn:
                while not self._merge_wanted and not self._closing:
                    self._turn.wait()
                if not self._merge_wanted:
                    return
                self._merge_wanted = False
            try:
                if conn is None:
                    conn = self._connect(write=True)
                    # No fsync per slice: WAL recovery keeps a prefix of the commits, so a
                    # merge's last commit (``indexed``) survives only with all its slices,
                    # and losing any of them loses nothing (the window holds the entries).
                    # The merger copies its pages back itself, outside the write lock,
                    # rather than leave that to the writer's next commit.
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.execute("PRAGMA wal_autocheckpoint=0")
                while self._merge(conn, due_only=True):
                    pass
            except (sqlite3.Error, StorageError) as exc:
                _log.warning("merging the entry-id window into the key index failed: %s", exc)
            except Exception:  # a bug: say so, and let the next batch ask again
                _log.exception("merging the entry-id window into the key index failed")

    def _window_for(self, indexed: int) -> int:
        return self._fixed_window or index_window(indexed)

    def _merge(self, conn: sqlite3.Connection, *, due_only: bool) -> int:
        """Store the keys of the window's entries up to the stored size, in key order, one
        slice of the key space per transaction, then move ``indexed`` (when the window holds
        :meth:`_window_for` entries, if ``due_only``); returns how many entries it indexed.

        A slice stores keys of entries at or past ``indexed``, which the window still holds:
        readers find those entries in the window either way. A merge cut short leaves such
        keys behind; the next one stores them again (``INSERT OR IGNORE``: a no-op), so a
        merge is idempotent, and ``indexed`` moves only after every slice of it committed.
        """
        started, cpu = time.perf_counter(), time.thread_time()
        indexed, size = self._refresh(conn)
        if size <= indexed or (due_only and size - indexed < self._window_for(indexed)):
            return 0
        # The merge goes up to where the window stands now (at least the size just read):
        # new records go to fresh buckets meanwhile, and once ``indexed`` moves the frozen
        # ones go at once, with no walk over the buckets in any batch's way.
        size = self._window.freeze()
        if size <= indexed:  # frozen by a merge that failed, and merged since by another
            self._window.drop_before(indexed)
            size = self._window.freeze()
            if size <= indexed:
                return 0
        slices = _BUCKETS
        while slices > 1 and (size - indexed) // slices < _SLICE_KEYS:
            slices //= 2
        span = _BUCKETS // slices
        waited = 0.0
        for number, first in enumerate(range(0, _BUCKETS, span), 1):
            rows = self._window.keys(first, first + span, size)
            if rows:
                waited += self._merge_step(conn, functools.partial(_index, conn, rows))
            if conn is not self._writer and number % _MERGE_CHECKPOINT == 0:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        # This thread, not the writer's next look-up, drops the merged entries from the
        # window: it holds the window's drop from before ``indexed`` moves.
        with self._window.dropping():
            waited += self._merge_step(
                conn,
                lambda: conn.execute(
                    "UPDATE entry_key_state SET indexed = MAX(indexed, ?) WHERE id = 1", (size,)
                ),
            )
            self._window.drop_before(size)
        if conn is not self._writer:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._last_merge = MergeStats(
            entries=size - indexed,
            slices=slices + 1,
            seconds=time.perf_counter() - started,
            waited=waited,
            cpu_seconds=time.thread_time() - cpu,
        )
        return size - indexed

    def _merge_step(self, conn: sqlite3.Connection, work: Callable[[], object]) -> float:
        """Run ``work`` in a write transaction of its own once no write of this store waits
        for the lock; returns the seconds it waited."""
        started = time.perf_counter()
        with self._turn:
            self._turn.wait_for(lambda: self._writes_waiting == 0)
        with self._write_lock:
            waited = time.perf_counter() - started
            with immediate(conn):
                work()
        return waited

    def _refresh(self, conn: sqlite3.Connection) -> tuple[int, int]:
        """Bring the window up to the stored size; return (indexed, size) as read."""
        row = conn.execute(
            "SELECT k.indexed, s.size FROM entry_key_state AS k, state AS s "
            "WHERE k.id = 1 AND s.id = 1"
        ).fetchone()
        if row is None:
            raise StorageError("the log database has no state row")
        indexed, size = _integer(row[0]), _integer(row[1])
        self._window.catch_up(conn, indexed, size)
        return indexed, size

    def _integrated(
        self, conn: sqlite3.Connection, entry_ids: Collection[bytes]
    ) -> Iterator[tuple[bytes, int]]:
        """(id, index) of those ids that are integrated: first the window (refreshed before
        the keys are read, so that an entry merged meanwhile is found in one or the other),
        then the stored keys."""
        # Read before ``indexed``: a merge that moves it after this read and forgets its
        # entries from the window before they are looked for there bumps it, and then the
        # ids remembered as absent from the stored keys are looked for there after all.
        drops = self._window.drops
        indexed, _ = self._refresh(conn)
        at, absent = self._absent
        if at != indexed:
            absent = set()
            self._absent = (indexed, absent)
        window_at = (indexed, self._window.stop)
        seen_at, missing = self._missing
        if seen_at != window_at:
            missing = set()
            self._missing = (window_at, missing)
        rest: list[bytes] = []
        skipped: list[bytes] = []  # found absent from the stored keys before, not in the window
        maybe: dict[int, set[bytes]] = {}  # window index -> the ids asked for with its key
        asked = set(entry_ids) - missing
        for entry_id in asked:
            hits = self._window.find(entry_id)
            for idx in hits:
                maybe.setdefault(idx, set()).add(entry_id)
            if not hits:
                (skipped if entry_id in absent else rest).append(entry_id)
        if skipped and self._window.drops != drops:
            rest.extend(skipped)
        found: dict[bytes, int] = {}
        if maybe:
            # The window holds keys: an id is where its key is only if the entry there hashes
            # to it. One that does not is looked for among the stored keys.
            unconfirmed = set().union(*maybe.values())
            query = "SELECT idx, entry FROM entries WHERE idx IN"
            for idx, entry in _select_in(conn, query, list(maybe)):
                entry_id = hashlib.sha256(entry).digest()
                if entry_id in maybe[_integer(idx)]:
                    unconfirmed.discard(entry_id)
                    found[entry_id] = _integer(idx)
            rest.extend(unconfirmed)
        if rest:
            stored = dict(_stored(conn, rest))
            found.update(stored)
            if len(absent) < _ABSENT_MAX:
                absent.update(i for i in rest if i not in stored)
        if len(missing) < _ABSENT_MAX:
            missing.update(i for i in asked if i not in found)
        yield from found.items()

    def close(self) -> None:
        """Close every connection, after the merger finished the merge that is due (if a
        write filled the window: seconds at 10^7 entries)."""
        with self._turn:
            self._closing = True
            merger = self._merger
            self._turn.notify_all()
        if merger is not None and merger is not threading.current_thread():
            merger.join()
        self._closed = True
        with self._lock:
            connections, self._connections = self._connections, []
            self._immutable.clear()
        # Readers first: the last connection to close checkpoints the WAL into the main
        # file, and only the read-write one can.
        for conn in sorted(connections, key=lambda c: c is self._writer):
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def stored_version(path: Path) -> int:
    """The schema version recorded in the SQLite log at ``path`` (0: none), read without
    changing anything (``ironroot log migrate`` reports it)."""
    _check_regular(Path(path))
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the log database {path}: {exc}") from exc
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.Error:
        return 0
    finally:
        conn.close()
    return 0 if row is None else max(0, _version(row[0]))


def _version(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


def _check_version(value: object) -> None:
    """Refuse a file of another version (a read-only open, or one no migration reaches)."""
    version = _version(value)
    if version != SCHEMA_VERSION:
        if version > SCHEMA_VERSION:
            hint = ": upgrade Ironroot to open it"
        elif version >= 1:
            hint = ": open it read-write once (ironroot log migrate) to migrate it"
        else:
            hint = ""
        raise StorageError(
            f"the log database has schema version {value!r}; this Ironroot knows "
            f"{SCHEMA_VERSION}" + hint,
            code="store-schema",
        )


def _migrate_from_1(conn: sqlite3.Connection) -> None:
    """Version 1 → 2 (inside the open transaction): whole ids become 8-byte keys."""
    cursor = conn.execute("SELECT entry_id, idx FROM entry_ids ORDER BY entry_id")
    while rows := cursor.fetchmany(_MIGRATE_CHUNK):
        _index(conn, sorted((_key(_blob(entry_id)), _integer(idx)) for entry_id, idx in rows))
    conn.execute("DROP TABLE entry_ids")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))


def _key(entry_id: bytes) -> int:
    """The key of an id in ``entry_keys``: its first bytes, a signed big-endian integer."""
    return int.from_bytes(entry_id[:_KEY_BYTES], "big", signed=True)


def _index(conn: sqlite3.Connection, rows: Sequence[tuple[int, int]]) -> None:
    """Store each (key, index), given in key order; an entry whose key another entry has
    is stored whole (its id, from the entry) among the clashes. Idempotent."""
    before = conn.total_changes
    conn.executemany("INSERT OR IGNORE INTO entry_keys (key, idx) VALUES (?, ?)", rows)
    if conn.total_changes - before == len(rows):
        return
    # Some keys were taken: by an entry stored before, by another one of these, or by this
    # very entry (a merge that was cut short stored it).
    owners = dict(
        _select_in(conn, "SELECT key, idx FROM entry_keys WHERE key IN", [k for k, _ in rows])
    )
    clashing = [idx for key, idx in rows if owners.get(key) != idx]
    if clashing:
        query = "SELECT idx, entry FROM entries WHERE idx IN"
        conn.executemany(
            "INSERT OR IGNORE INTO entry_key_clashes (entry_id, idx) VALUES (?, ?)",
            [
                (hashlib.sha256(entry).digest(), int(idx))
                for idx, entry in _select_in(conn, query, clashing)
            ],
        )


def _chunks(items: Sequence[bytes] | Collection[bytes]) -> Iterator[tuple[bytes, ...]]:
    values = tuple(items)
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _select_in(
    conn: sqlite3.Connection, query: str, values: Sequence[Any]
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``query IN (values)``, a chunk of values per statement."""
    for start in range(0, len(values), _IN_CHUNK):
        chunk = values[start : start + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        yield from conn.execute(f"{query} ({marks})", chunk)


def _stored(conn: sqlite3.Connection, entry_ids: Collection[bytes]) -> Iterator[tuple[bytes, int]]:
    """(id, index) of those ids whose keys are stored: a key's index counts only when the entry
    stored there hashes to the id; the rest are looked for among the clashes."""
    by_key: dict[int, set[bytes]] = {}
    for entry_id in set(entry_ids):
        by_key.setdefault(_key(entry_id), set()).add(entry_id)
    candidates: dict[int, set[bytes]] = {}
    for key, idx in _select_in(conn, "SELECT key, idx FROM entry_keys WHERE key IN", list(by_key)):
        candidates.setdefault(_integer(idx), set()).update(by_key[key])
    rest = {entry_id for ids in by_key.values() for entry_id in ids}
    if candidates:
        query = "SELECT idx, entry FROM entries WHERE idx IN"
        for idx, entry in _select_in(conn, query, list(candidates)):
            entry_id = hashlib.sha256(entry).digest()
            if entry_id in candidates[_integer(idx)]:
                rest.discard(entry_id)
                yield entry_id, _integer(idx)
    if rest:
        query = "SELECT entry_id, idx FROM entry_key_clashes WHERE entry_id IN"
        for entry_id, idx in _select_in(conn, query, list(rest)):
            yield _blob(entry_id), _integer(idx)


def _pending(conn: sqlite3.Connection, entry_ids: Collection[bytes]) -> Iterator[bytes]:
    for chunk in _chunks(entry_ids):
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT entry_id FROM pending WHERE entry_id IN ({marks})",  # noqa: S608
            chunk,
        )
        for (entry_id,) in rows:
            yield _blob(entry_id)


class _View:
    """What :func:`check_batch` reads, inside the write transaction."""

    def __init__(self, conn: sqlite3.Connection, store: SqliteLogStore) -> None:
        self._conn = conn
        self._store = store

    def stored_size(self) -> int:
        row = self._conn.execute("SELECT size FROM state WHERE id = 1").fetchone()
        if row is None:
            raise StorageError("the log database has no state row")
        return _integer(row[0])

    def integrated_among(self, entry_ids: Collection[bytes]) -> set[bytes]:
        return {entry_id for entry_id, _ in self._store._integrated(self._conn, entry_ids)}

    def pending_among(self, entry_ids: Collection[bytes]) -> set[bytes]:
        return set(_pending(self._conn, entry_ids))

    def tiles(self, keys: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found = {}
        for level, index in keys:
            row = self._conn.execute(
                "SELECT data FROM tiles WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
            if row is not None:
                found[(level, index)] = _blob(row[0])
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
    if batch.cleared or batch.refused:
        conn.executemany(
            "DELETE FROM pending WHERE entry_id = ?",
            [(i,) for i in (*batch.cleared, *batch.refused)],
        )
    if batch.integrated:
        first = batch.first_index
        conn.executemany(
            "INSERT INTO entries (idx, entry) VALUES (?, ?)",
            [(first + i, e) for i, (_, e) in enumerate(batch.integrated)],
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
