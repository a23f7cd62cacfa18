"""The SQLite store's id → index map: 8-byte keys, clashes kept whole, the window in memory.

A log is filled through :class:`Log` on a store whose window is small, so that keys are
merged into ``entry_keys`` several times; every look-up, before and after a merge, from this
store object, from a second one and after a reopen, gives exactly the index of each entry.
Key clashes are made by narrowing the key to one byte (256 keys for 300 entries). Tampering
with the stored keys is found by ``verify_log``.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from log_testkit import ORIGIN, ed25519_key, entries, fill, signer

from ironroot.errors import StorageError
from ironroot.log import Log, NoteVerifier, SqliteLogStore, _sqlite, verify_log

KEY = ed25519_key()
VERIFIERS: list[NoteVerifier] = []


def _id(entry: bytes) -> bytes:
    return hashlib.sha256(entry).digest()


def _sql(path: Path, statement: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return list(conn.execute(statement, args).fetchall())
    finally:
        conn.close()


def _log(store: SqliteLogStore) -> Log:
    log = Log(store, origin=ORIGIN, note_signers=[signer(KEY)], max_batch=16)
    VERIFIERS[:] = log.note_verifiers
    log.start()
    return log


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "log.sqlite3"


def _filled(path: Path, count: int, window: int | None) -> list[bytes]:
    """A log of ``count`` entries written by a store whose window is ``window`` entries."""
    items = entries(count)
    log = _log(SqliteLogStore(path, index_window=window))
    try:
        fill(log, items)
    finally:
        log.close()
    return items


def _stored_keys(path: Path) -> tuple[int, int, int]:
    """(keys stored, clashes stored, entries indexed)."""
    row = _sql(
        path,
        "SELECT (SELECT COUNT(*) FROM entry_keys), (SELECT COUNT(*) FROM entry_key_clashes),"
        " (SELECT indexed FROM entry_key_state)",
    )[0]
    return int(row[0]), int(row[1]), int(row[2])  # type: ignore[call-overload]


def _report(store: SqliteLogStore) -> int:
    return verify_log(store, origin=ORIGIN, verifiers=VERIFIERS).size


def test_the_window_is_merged_into_keys_and_every_id_is_found(path: Path) -> None:
    items = _filled(path, 300, window=64)
    keys, clashes, indexed = _stored_keys(path)
    assert indexed >= 256  # merged at least four times, in batches of 16
    assert (keys + clashes, clashes) == (indexed, 0)
    ids = [_id(e) for e in items]
    for store in (SqliteLogStore(path), SqliteLogStore(path, read_only=True)):
        try:
            assert store.lookup([*ids, _id(b"absent"), b"short"]) == {
                entry_id: index for index, entry_id in enumerate(ids)
            }
            assert store.count_entry_ids() == 300
            assert _report(store) == 300
        finally:
            store.close()


def test_a_default_window_keeps_a_small_log_in_memory(path: Path) -> None:
    items = _filled(path, 100, window=None)
    assert _stored_keys(path) == (0, 0, 0)
    store = SqliteLogStore(path, read_only=True)
    try:
        assert store.lookup([_id(items[42])]) == {_id(items[42]): 42}
    finally:
        store.close()


def test_a_second_store_object_sees_what_the_first_merged(path: Path) -> None:
    first = SqliteLogStore(path, index_window=32)
    second = SqliteLogStore(path, index_window=32)
    log = _log(first)
    try:
        early = entries(40, tag=b"early")
        fill(log, early)
        # The second object's window holds the early entries...
        assert second.lookup([_id(early[39])]) == {_id(early[39]): 39}
        late = entries(80, tag=b"late")
        fill(log, late)
        # ...and after the first merged them, it finds them among the keys.
        assert _stored_keys(path)[2] >= 96
        ids = [_id(e) for e in early + late]
        assert second.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
    finally:
        log.close()
        second.close()


def test_re_registration_answers_the_stored_index_after_a_merge(path: Path) -> None:
    items = _filled(path, 200, window=32)
    log = _log(SqliteLogStore(path, index_window=32))
    try:
        again = fill(log, [items[3], items[150], items[199]])
        assert [r.index for r in again] == [3, 150, 199]
        assert log.tree_size == 200
    finally:
        log.close()


def test_ids_whose_keys_clash_are_kept_whole(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sqlite, "_KEY_BYTES", 1)  # 256 keys for 300 entries
    items = _filled(path, 300, window=50)
    keys, clashes, indexed = _stored_keys(path)
    assert keys <= 256
    assert clashes > 0
    assert keys + clashes == indexed
    store = SqliteLogStore(path)
    try:
        ids = [_id(e) for e in items]
        assert store.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
        # An id that shares a key with stored entries but is not one of them is unknown.
        assert store.lookup([_id(b"never registered")]) == {}
        assert _report(store) == 300
    finally:
        store.close()


def test_the_window_grows_with_the_log() -> None:
    assert _sqlite.index_window(0) == _sqlite.index_window(1 << 20) == 1 << 16
    assert _sqlite.index_window(10_000_000) == 625_000
    assert _sqlite.index_window(1 << 30) == 1 << 20


def test_a_window_of_zero_is_refused(path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SqliteLogStore(path, index_window=0)


@pytest.fixture
def merged(path: Path) -> Path:
    """A log of 300 entries whose first 256 or more have their keys stored."""
    _filled(path, 300, window=32)
    assert _stored_keys(path)[2] >= 256
    return path


@pytest.mark.parametrize(
    ("tamper", "what"),
    [
        pytest.param(
            "UPDATE entry_keys SET idx = 7 WHERE idx = 8", "does not map entry 8", id="key-moved"
        ),
        pytest.param("DELETE FROM entry_keys WHERE idx = 9", "does not map entry 9", id="gone"),
        pytest.param(
            "INSERT INTO entry_keys VALUES (12345, 3)",
            "ids of entries that are not in the log",
            id="extra-key",
        ),
        pytest.param(
            "INSERT INTO entry_key_clashes VALUES (zeroblob(32), 3)",
            "ids of entries that are not in the log",
            id="extra-clash",
        ),
        pytest.param(
            "UPDATE entry_key_state SET indexed = 250",
            "ids of entries that are not in the log",
            id="window-overlaps-keys",
        ),
        pytest.param(
            "UPDATE entries SET entry = x'00' WHERE idx = 5", "does not map entry 5", id="entry"
        ),
    ],
)
def test_tampered_keys_fail_the_whole_log_check(merged: Path, tamper: str, what: str) -> None:
    _sql(merged, tamper)
    store = SqliteLogStore(merged, read_only=True)
    try:
        with pytest.raises(StorageError) as info:
            _report(store)
        assert type(info.value) is StorageError
        assert what in info.value.detail
    finally:
        store.close()


def test_a_missing_entry_in_the_window_is_a_storage_error(path: Path) -> None:
    items = _filled(path, 40, window=None)
    _sql(path, "DELETE FROM entries WHERE idx = 20")
    store = SqliteLogStore(path, read_only=True)
    try:
        with pytest.raises(StorageError, match="entry 20 is missing"):
            store.lookup([_id(items[0])])
    finally:
        store.close()


def test_merge_index_stores_the_whole_window_now(path: Path) -> None:
    items = _filled(path, 40, window=None)
    store = SqliteLogStore(path)
    try:
        assert store.merge_index() == 40
        assert store.merge_index() == 0
        assert _stored_keys(path) == (40, 0, 40)
        assert store.lookup([_id(items[39])]) == {_id(items[39]): 39}
    finally:
        store.close()
    read_only = SqliteLogStore(path, read_only=True)
    try:
        with pytest.raises(StorageError, match="read-only"):
            read_only.merge_index()
    finally:
        read_only.close()
