"""A service's small SQLite state file (the monitor's, the witness's): opened once, WAL with
``synchronous=FULL`` (a commit is durable when it returns), its schema created if missing,
and its schema version checked against ``meta('schema')``; :func:`immediate` is a write
transaction on such a connection (or any autocommit one). Every ``sqlite3.Error`` while
opening becomes :class:`~ironroot.errors.StorageError` naming the file's role; a file that is
not such a database, or holds another schema version, is refused and closed. So is one whose
schema holds bytes that are not UTF-8: SQLite's error message quotes them, and Python's
``sqlite3`` raises ``UnicodeDecodeError`` decoding it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ironroot.errors import StorageError

__all__ = ["immediate", "open_state_db"]


def open_state_db(
    path: Path | str, what: str, schema: str, version: str, *, create: bool = True
) -> sqlite3.Connection:
    """The connection to the ``what`` database at ``path`` (``:memory:`` for a throwaway
    one), in autocommit mode and shareable across threads (the caller serialises access).

    ``schema`` creates the tables when missing and must include ``meta(key, value)``;
    ``create=False`` opens only an existing database of this kind (for reading state)."""
    where = str(path)
    if not create and not Path(where).is_file():
        raise StorageError(f"no {what} state at {where}")
    try:
        db = sqlite3.connect(where, isolation_level=None, check_same_thread=False, timeout=30.0)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the {what} database {where}: {exc}") from exc
    try:
        if not create:
            db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(schema)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (version,))
        elif row[0] != version:
            raise StorageError(f"{where} has {what} schema {row[0]!r}, not {version}")
    except sqlite3.Error as exc:
        db.close()
        raise StorageError(f"{where} is not a {what} database: {exc}") from exc
    except UnicodeDecodeError as exc:  # the error message of a schema that is not UTF-8
        db.close()
        raise StorageError(f"{where} is not a {what} database: its schema is not UTF-8") from exc
    except StorageError:
        db.close()
        raise
    return db


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE … COMMIT`` transaction on an autocommit connection: the write
    lock is taken first, so what the body reads stays what it writes against (a
    compare-and-set); rolled back when the body raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
