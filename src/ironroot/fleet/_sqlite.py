"""The fleet's SQLite files (registry, admission state, credentials): one connection per
thread, WAL, synchronous commits, and write transactions that either commit whole or roll
back, with SQLite's own failures as ``StorageError`` naming the file's role."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from ironroot.errors import StorageError

__all__ = ["SqliteFile"]


class SqliteFile:
    """One SQLite file of the fleet; ``what`` names it in errors ("the fleet registry")."""

    def __init__(self, path: Path, what: str, schema: str | None = None) -> None:
        self.path = path
        self.what = what
        self._local = threading.local()
        if schema is not None:
            self.connection().executescript(schema)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise StorageError(f"{self.what} cannot be opened: {exc}") from exc
            self._local.db = db
        return db

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): committed whole, or rolled back."""
        db = self.connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"{self.what} failed: {exc}") from exc
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
