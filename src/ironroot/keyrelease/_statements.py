"""The release statements the key service handed out, kept for the audit (ADR 0015).

Every released key goes to the TEE with the HSM's signed release statement; the service keeps
a copy of each, durably, before the response leaves (:meth:`KeyReleaseService.release`), so
that ``ironroot audit export`` can put them in the node's bundle, where ``audit verify``
matches each to the one HSM audit record that binds its digest. A statement is public
evidence (digests, a handle, a time): nothing secret is kept.

The store is the key service's SQLite file ``<data>/releases.db`` (WAL, ``synchronous=FULL``:
a kept statement is on disk when :meth:`ReleaseStatements.keep` returns) with one table::

    statements(seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order they were kept in
               digest BLOB UNIQUE,                     -- SHA-256 of the statement
               kept_at INTEGER,                        -- POSIX seconds, the service's clock
               key_name TEXT,                          -- the name the key is offered under
               statement BLOB)                         -- the COSE_Sign1 bytes the TEE got

It is bounded: after each insert only the newest ``limit`` statements stay (default 10,000,
about 20 MB; ``[keyrelease] keep_statements``). Older ones are dropped; their audit records
stay in the HSM's chain, bound to their digests, and a TEE's own copy still matches them.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from ironroot._statedb import immediate, open_state_db
from ironroot.errors import ConfigError, StorageError

__all__ = ["DEFAULT_KEEP", "RELEASES_DB", "ReleaseStatements"]

RELEASES_DB: Final = "releases.db"
DEFAULT_KEEP: Final = 10_000
MAX_KEEP: Final = 1_000_000
MAX_STATEMENT: Final = 64 * 1024
_SCHEMA_VERSION: Final = "1"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS statements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    digest BLOB NOT NULL UNIQUE,
    kept_at INTEGER NOT NULL,
    key_name TEXT NOT NULL,
    statement BLOB NOT NULL
);
"""


class ReleaseStatements:
    """The kept release statements (module docs): ``path`` a file, or ``:memory:``."""

    def __init__(
        self,
        path: Path | str,
        *,
        limit: int = DEFAULT_KEEP,
        create: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``create=False`` opens only an existing store (for reading, as export does)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_KEEP:
            raise ConfigError(f"the key service keeps 1 to {MAX_KEEP} release statements")
        self._path = str(path)
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._db = open_state_db(path, "key service", _SCHEMA, _SCHEMA_VERSION, create=create)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _failed(self, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"the key service database {self._path} failed: {exc}")

    def keep(self, key_name: str, statement: bytes) -> None:
        """Keep ``statement`` (durable when this returns), dropping the oldest beyond the
        limit; ``StorageError`` when it cannot be written."""
        if not isinstance(statement, bytes) or not 0 < len(statement) <= MAX_STATEMENT:
            raise StorageError("a release statement to keep is 1 to 64 KiB of bytes")
        digest = hashlib.sha256(statement).digest()
        try:
            with self._lock, immediate(self._db):
                self._db.execute(
                    "INSERT OR IGNORE INTO statements (digest, kept_at, key_name, statement) "
                    "VALUES (?, ?, ?, ?)",
                    (digest, int(self._clock()), key_name, statement),
                )
                self._db.execute(
                    "DELETE FROM statements WHERE seq <= (SELECT MAX(seq) FROM statements) - ?",
                    (self._limit,),
                )
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def statements(self, limit: int | None = None) -> tuple[bytes, ...]:
        """The kept statements, oldest first (the newest ``limit`` of them when given)."""
        count = self._limit if limit is None else max(0, limit)
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT statement FROM (SELECT seq, statement FROM statements "
                    "ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                    (count,),
                ).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc
        found = tuple(row[0] for row in rows)
        if not all(isinstance(s, bytes) and 0 < len(s) <= MAX_STATEMENT for s in found):
            raise StorageError(f"the key service database {self._path} holds a malformed row")
        return found
