"""SQLite schema versions: a version-1 file (whole ids in ``entry_ids``) is migrated to
version 2 when opened read-write, in one transaction; read-only it is refused; a newer
version is refused both ways.

The version-1 file is made here, with version 1's own table definitions, from the rows of a
log written by the current code (so its tiles and checkpoints are real).
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from log_testkit import ORIGIN, ed25519_key, entries, fill, make_data_dir, signer

from ironroot.cli import main
from ironroot.errors import StorageError
from ironroot.log import Log, SqliteLogStore, _sqlite, layout, verify_log

KEY = ed25519_key()

# Version 1 of the SQLite log store, as it was written.
_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id BLOB NOT NULL UNIQUE,
    entry BLOB NOT NULL
);
CREATE TABLE entries (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
CREATE TABLE entry_ids (
    entry_id BLOB PRIMARY KEY,
    idx INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE tiles (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
CREATE TABLE batch_data (
    size INTEGER NOT NULL,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (size, name)
) WITHOUT ROWID;
CREATE TABLE state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    hashes BLOB NOT NULL
);
"""

_COPIED = ("entries", "tiles", "checkpoints", "batch_data", "state", "pending")


def _id(entry: bytes) -> bytes:
    return hashlib.sha256(entry).digest()


def _version_1(tmp_path: Path, count: int) -> tuple[Path, list[bytes], Log]:
    """A version-1 log file of ``count`` entries (and the closed log that wrote its rows)."""
    items = entries(count)
    source = tmp_path / "source.sqlite3"
    log = Log(SqliteLogStore(source), origin=ORIGIN, note_signers=[signer(KEY)], max_batch=64)
    log.start()
    fill(log, items)
    log.close()
    path = tmp_path / "v1.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_V1_SCHEMA)
        conn.execute("ATTACH DATABASE ? AS source", (str(source),))
        conn.execute("BEGIN")
        for table in _COPIED:
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM source.{table}")  # noqa: S608
        conn.execute("INSERT INTO meta VALUES ('schema', '1'), ('origin', ?)", (ORIGIN,))
        rows = conn.execute("SELECT idx, entry FROM entries").fetchall()
        conn.executemany("INSERT INTO entry_ids VALUES (?, ?)", [(_id(e), i) for i, e in rows])
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE source")
    finally:
        conn.close()
    return path, items, log


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
        return {str(r[0]) for r in rows}
    finally:
        conn.close()


def _schema(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0])
    finally:
        conn.close()


def test_a_version_1_file_is_migrated_when_opened_for_writing(tmp_path: Path) -> None:
    path, items, old = _version_1(tmp_path, 300)
    store = SqliteLogStore(path)
    assert store.schema_version == 2
    assert _schema(path) == "2"
    assert "entry_ids" not in _tables(path)
    ids = [_id(e) for e in items]
    assert store.lookup([*ids, _id(b"absent")]) == {i: n for n, i in enumerate(ids)}
    assert store.count_entry_ids() == 300
    assert verify_log(store, origin=ORIGIN, verifiers=old.note_verifiers).size == 300
    # The migrated log goes on: a re-registration answers its old index, new entries follow.
    log = Log(store, origin=ORIGIN, note_signers=[signer(KEY)], max_batch=64)
    log.start()
    try:
        assert [r.index for r in fill(log, [items[7], b"after migration"])] == [7, 300]
    finally:
        log.close()
    reopened = SqliteLogStore(path, read_only=True)
    try:
        assert verify_log(reopened, origin=ORIGIN, verifiers=old.note_verifiers).size == 301
    finally:
        reopened.close()


def test_migration_keeps_ids_whose_keys_clash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, items, _ = _version_1(tmp_path, 300)
    monkeypatch.setattr(_sqlite, "_KEY_BYTES", 1)
    store = SqliteLogStore(path)
    try:
        ids = [_id(e) for e in items]
        assert store.lookup(ids) == {i: n for n, i in enumerate(ids)}
        conn = sqlite3.connect(path)
        try:
            keys, clashes = conn.execute(
                "SELECT (SELECT COUNT(*) FROM entry_keys), (SELECT COUNT(*) FROM entry_key_clashes)"
            ).fetchone()
        finally:
            conn.close()
        assert clashes > 0
        assert keys + clashes == 300
    finally:
        store.close()


def test_a_version_1_file_opened_read_only_is_refused(tmp_path: Path) -> None:
    path, _, _ = _version_1(tmp_path, 20)
    with pytest.raises(StorageError) as info:
        SqliteLogStore(path, read_only=True)
    assert info.value.code == "store-schema"
    assert "ironroot log migrate" in info.value.detail
    assert _schema(path) == "1"  # nothing was changed


@pytest.mark.parametrize("read_only", [False, True])
def test_a_newer_version_is_refused(tmp_path: Path, read_only: bool) -> None:
    path = tmp_path / "log.sqlite3"
    SqliteLogStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
    conn.close()
    with pytest.raises(StorageError) as info:
        SqliteLogStore(path, read_only=read_only)
    assert info.value.code == "store-schema"
    assert "upgrade Ironroot" in info.value.detail
    assert _schema(path) == "3"


def test_a_failed_migration_leaves_version_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, items, _ = _version_1(tmp_path, 50)

    def broken(conn: sqlite3.Connection, pairs: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(_sqlite, "_index", broken)
    with pytest.raises(StorageError):
        SqliteLogStore(path)
    assert _schema(path) == "1"
    assert "entry_ids" in _tables(path)
    monkeypatch.undo()
    store = SqliteLogStore(path)
    try:
        assert store.lookup([_id(items[49])]) == {_id(items[49]): 49}
    finally:
        store.close()


def test_log_migrate_reports_the_migration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = _version_1(tmp_path, 20)
    data = make_data_dir(tmp_path / "data", KEY)
    path.rename(layout.log_db_path(data))
    assert main(["log", "migrate", str(data), "--check"]) == 1
    assert "store-schema" in capsys.readouterr().err
    assert main(["log", "migrate", str(data)]) == 0
    assert "migrated from schema version 1 to 2" in capsys.readouterr().out
    assert main(["log", "migrate", str(data), "--check"]) == 0
    assert main(["log", "verify", str(data)]) == 0
