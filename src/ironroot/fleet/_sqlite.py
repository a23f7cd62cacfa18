"""The fleet's SQLite file (``fleet.db``: registry, events, credentials, admission state):
one connection per thread and file, WAL, durable commits (below), and write transactions that
either commit whole or roll back, with SQLite's own failures as ``StorageError`` naming the
file's role.

Every :class:`SqliteFile` of one file shares the thread's connection to it, so the stores
kept in one file (the registry, the credential store, the admission state) can write in one
transaction: :meth:`SqliteFile.tx` opened inside another on the same thread and file joins
it as a savepoint (a failure inside rolls back to the savepoint and propagates; only the
outermost transaction commits). One admission is therefore one commit, whatever number of
stores it writes to.

Commits are durable (``synchronous=FULL``: the WAL is synced before the commit returns),
except where a caller asks otherwise (``tx(durable=False)``): a commit that is atomic and
seen at once by every reader, and survives a crash of the process, but that a power cut or
OS crash before the next durable commit may undo. The fleet asks it only for a grant whose
loss fails closed — an admission: its credentials are then unknown to the store and refused,
the registry keeps the node's earlier status, and the node attests again — never for a
revocation, a quarantine or a hold, which are durable and, being later in the same WAL, make
every grant before them durable too.

A connection is reopened when the file it was opened on is no longer the one at its path
(removed, or replaced by another file): a write never goes to an unlinked file.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ironroot.errors import StorageError

__all__ = ["SqliteFile"]


_OPENED: itertools.count[int] = itertools.count()


@dataclass(slots=True)
class _Open:
    db: sqlite3.Connection
    identity: tuple[int, int]
    depth: int = 0
    ready: set[int] = field(default_factory=set)  # the SqliteFile serials set up on it
    opened: int = field(default_factory=lambda: next(_OPENED))  # this connection's serial


_CREATE = re.compile(r"CREATE\s+(TABLE|INDEX)\s+IF\s+NOT\s+EXISTS\s+(\w+)\b", re.IGNORECASE)
_LOCAL = threading.local()
_SERIALS = itertools.count()


def _opened() -> dict[str, _Open]:
    found: dict[str, _Open] | None = getattr(_LOCAL, "files", None)
    if found is None:
        found = _LOCAL.files = {}
    return found


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class SqliteFile:
    """One SQLite file of the fleet; ``what`` names its role in errors ("the fleet
    registry"); ``schema`` (``CREATE … IF NOT EXISTS`` statements, ``;``-separated) is run
    on first use."""

    def __init__(self, path: Path, what: str, schema: str | None = None) -> None:
        self.path = path
        self.what = what
        self._key = os.path.abspath(path)
        self._schema = [s.strip() for s in (schema or "").split(";") if s.strip()]
        created = [_CREATE.match(s) for s in self._schema]
        # what the schema makes (type, name), when it only makes tables and indexes
        self._objects = (
            {(m[1].lower(), m[2]) for m in created if m is not None} if all(created) else None
        )
        self._serial = next(_SERIALS)

    def _open(self) -> _Open:
        files = _opened()
        found = files.get(self._key)
        if found is not None:
            if found.depth or _identity(self._key) == found.identity:
                return self._set_up(found)
            files.pop(self._key)
            found.db.close()
        try:
            db = sqlite3.connect(self._key, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.what} cannot be opened: {exc}") from exc
        identity = _identity(self._key)
        if identity is None:
            db.close()
            raise StorageError(f"{self.what} cannot be opened: {self._key} is not there")
        found = files[self._key] = _Open(db, identity)
        return self._set_up(found)

    def _made(self, db: sqlite3.Connection) -> bool:
        """Whether the file holds every table and index of the schema already (a read: no
        lock a writer holds is waited for)."""
        if self._objects is None:
            return False
        try:
            held = {
                (str(kind), str(name))
                for kind, name in db.execute("SELECT type, name FROM sqlite_master")
            }
        except sqlite3.Error:
            return False
        return self._objects <= held

    def _set_up(self, found: _Open) -> _Open:
        """Run the schema once per connection, in one transaction (statement by statement,
        so that it may also run inside the caller's: ``executescript`` would commit that).
        A file that holds the schema's tables and indexes already is only read: a thread's
        first use of it (a server's fresh worker) does not wait for a writer's lock."""
        if self._schema and self._serial not in found.ready:
            db = found.db
            alone = not db.in_transaction  # then the whole schema is one commit
            if alone and self._made(db):
                found.ready.add(self._serial)
                return found
            try:
                if alone:
                    db.execute("BEGIN IMMEDIATE")
                for statement in self._schema:
                    db.execute(statement)
                if alone:
                    db.execute("COMMIT")
            except sqlite3.Error as exc:
                if alone and db.in_transaction:
                    db.execute("ROLLBACK")
                raise StorageError(f"{self.what} cannot be set up: {exc}") from exc
            found.ready.add(self._serial)
        return found

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to the file (opened on first use)."""
        return self._open().db

    @contextlib.contextmanager
    def tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed whole, or rolled back. Inside
        another transaction of this thread on the same file, a savepoint of it (the outermost
        transaction decides ``durable``).

        ``durable=False`` commits without waiting for the disk (``synchronous=NORMAL`` for
        this commit): only for writes whose loss fails closed (module docs)."""
        state = self._open()
        db = state.db
        depth = state.depth
        relaxed = depth == 0 and not durable
        begin, commit = (
            ("BEGIN IMMEDIATE", "COMMIT")
            if depth == 0
            else (f"SAVEPOINT s{depth}", f"RELEASE s{depth}")
        )
        try:
            if relaxed:
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute(begin)
        except sqlite3.Error as exc:
            self._restore(db, relaxed)
            raise StorageError(f"{self.what} failed: {exc}") from exc
        state.depth = depth + 1
        try:
            yield db
            db.execute(commit)
        except BaseException as exc:
            self._undo(db, depth)
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"{self.what} failed: {exc}") from exc
            raise
        finally:
            state.depth = depth
            self._restore(db, relaxed)

    def _restore(self, db: sqlite3.Connection, relaxed: bool) -> None:
        """Commits after a relaxed one are durable again (and so make it durable)."""
        if relaxed:
            try:
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:  # not usable any more: the next use reopens it
                _opened().pop(self._key, None)
                db.close()
                raise StorageError(f"{self.what} failed: {exc}") from exc

    def generation(self) -> tuple[int, int, int]:
        """What changes whenever anyone commits a write to the file: this thread's connection
        (its serial), SQLite's ``data_version`` (moved by every other connection's commit,
        of this process or another) and the changes this connection made itself. Equal
        generations, read on one thread, mean no commit came between them. Cheap (no table is
        read) and, the file being WAL, never waits for a writer's lock."""
        state = self._open()
        with self.read() as db:
            (version,) = db.execute("PRAGMA data_version").fetchone()
            return state.opened, int(version), db.total_changes

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection for reads: each statement sees the last commit (no write
        lock is taken, so readers never wait for a writer's sync); inside a transaction, that
        transaction. SQLite's failures become ``StorageError``."""
        db = self._open().db
        try:
            yield db
        except sqlite3.Error as exc:
            raise StorageError(f"{self.what} failed: {exc}") from exc

    def _undo(self, db: sqlite3.Connection, depth: int) -> None:
        if not db.in_transaction:
            return
        with contextlib.suppress(sqlite3.Error):
            if depth == 0:
                db.execute("ROLLBACK")
            else:
                db.execute(f"ROLLBACK TO s{depth}")
                db.execute(f"RELEASE s{depth}")
