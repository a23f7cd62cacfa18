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
import threading
from pathlib import Path

import pytest
from log_testkit import ORIGIN, ed25519_key, entries, fill, signer

from ironroot.errors import StorageError
from ironroot.log import Log, NoteVerifier, SqliteLogStore, _sqlite, verify_log
from ironroot.log._sqlite_window import Window

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
    # Merges run on the store's merger thread, each up to the size it reads, so where they
    # ended depends on timing; what holds is that none was due when the store closed.
    assert 300 - 64 < indexed <= 300
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
    finally:
        log.close()  # the first object finishes its due merges as it closes
    try:
        # ...and after the first merged them, it finds them among the keys.
        assert _stored_keys(path)[2] >= 96
        ids = [_id(e) for e in early + late]
        assert second.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
    finally:
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
    assert _sqlite.index_window(0) == _sqlite.index_window(1 << 18) == 1 << 16
    assert _sqlite.index_window(10_000_000) == 2_500_000
    assert _sqlite.index_window(1 << 30) == 1 << 22


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


def test_keys_left_by_a_merge_cut_short_are_harmless(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge stores its keys a slice per transaction; one that stops after some slices
    leaves keys of window entries behind: look-ups and the log check are unchanged, and the
    next merge stores every key once and moves ``indexed``."""
    items = _filled(path, 40, window=None)
    ids = [_id(e) for e in items]
    monkeypatch.setattr(_sqlite, "_SLICE_KEYS", 4)  # 8 slices for 40 entries
    calls: list[int] = []
    real_index = _sqlite._index

    def fail_after_two(conn: sqlite3.Connection, rows: list[tuple[int, int]]) -> None:
        calls.append(len(rows))
        if len(calls) > 2:
            raise sqlite3.OperationalError("disk I/O error")
        real_index(conn, rows)

    monkeypatch.setattr(_sqlite, "_index", fail_after_two)
    store = SqliteLogStore(path)
    try:
        with pytest.raises(StorageError, match="disk I/O error"):
            store.merge_index()
        keys, clashes, indexed = _stored_keys(path)
        assert (indexed, clashes) == (0, 0)
        assert 0 < keys == sum(calls[:2]) < 40
        assert store.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
        assert store.count_entry_ids() == 40
        monkeypatch.setattr(_sqlite, "_index", real_index)
        assert store.merge_index() == 40
        assert _stored_keys(path) == (40, 0, 40)
        assert store.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
    finally:
        store.close()
    fresh = SqliteLogStore(path, read_only=True)
    try:
        assert store.last_merge is not None
        assert store.last_merge.entries == 40
        assert fresh.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
    finally:
        fresh.close()


def test_appends_go_on_while_the_window_is_merged(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merge runs on a thread of its own: batches are written and acknowledged, and
    every id is found, while it is held up; closing the store finishes it."""
    held = threading.Event()
    release = threading.Event()
    real_keys = Window.keys

    def slow_keys(window: Window, first: int, stop_bucket: int, stop: int) -> list[tuple[int, int]]:
        held.set()  # between two slices: the merge holds no lock here
        assert release.wait(timeout=60)
        return real_keys(window, first, stop_bucket, stop)

    monkeypatch.setattr(Window, "keys", slow_keys)
    store = SqliteLogStore(path, index_window=32)
    log = _log(store)
    try:
        first = entries(32, tag=b"first")
        fill(log, first)
        assert held.wait(timeout=60)  # the merge of the first 32 is under way, and waits
        later = entries(48, tag=b"later")
        assert [r.index for r in fill(log, later)] == list(range(32, 80))
        assert store.indexed() == 0
        ids = [_id(e) for e in first + later]
        assert store.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
        release.set()
    finally:
        release.set()
        log.close()
    assert _stored_keys(path)[2] >= 64  # the due merges finished before the store closed
    reader = SqliteLogStore(path, read_only=True)
    try:
        assert reader.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
        assert _report(reader) == 80
    finally:
        reader.close()


def test_a_failed_merge_is_retried_by_a_later_batch(
    path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures = [1]
    failing = threading.Event()
    real_index = _sqlite._index

    def fail_once(conn: sqlite3.Connection, rows: list[tuple[int, int]]) -> None:
        if failures:
            failures.pop()
            failing.set()
            raise sqlite3.OperationalError("database or disk is full")
        real_index(conn, rows)

    monkeypatch.setattr(_sqlite, "_index", fail_once)
    items = entries(100)
    log = _log(SqliteLogStore(path, index_window=32))
    try:
        fill(log, items[:48])  # fills the window: the merger's first attempt fails
        assert failing.wait(60)
        fill(log, items[48:])  # later batches, after the failure began: they ask again
    finally:
        log.close()
    assert "merging the entry-id window into the key index failed" in caplog.text
    keys, clashes, indexed = _stored_keys(path)
    assert indexed >= 64
    assert (keys + clashes, clashes) == (indexed, 0)
    store = SqliteLogStore(path, read_only=True)
    try:
        ids = [_id(e) for e in items]
        assert store.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
        assert _report(store) == 100
    finally:
        store.close()


def test_the_window_holds_sixteen_bytes_per_entry() -> None:
    window = Window(_sqlite._KEY_BYTES)
    ids = [_id(i.to_bytes(4, "big")) for i in range(4096)]
    window.extend(0, ids)
    assert sum(len(b) for b in window._gens[0]) == 16 * 4096
    assert window.find(ids[7]) == [7]
    assert window.find(_id(b"absent")) == []
    assert window.find(ids[7][:8] + bytes(24)) == [7]  # a key only says where to look
    assert window.keys(0, _sqlite._BUCKETS, 10) == sorted(
        (_sqlite._key(entry_id), index) for index, entry_id in enumerate(ids[:10])
    )


def test_a_look_up_does_not_wait_for_the_window_to_forget_merged_entries(path: Path) -> None:
    """Entries merged by another store object stay in this one's window until a thread drops
    them; a look-up that finds the drop taken goes on with them, and still answers right."""
    items = _filled(path, 40, window=None)
    ids = [_id(e) for e in items]
    merger = SqliteLogStore(path)  # open first: the reader then reads a live file, not a copy
    reader = SqliteLogStore(path, read_only=True)
    try:
        assert reader.lookup(ids[:1]) == {ids[0]: 0}  # its window: all 40
        assert merger.merge_index() == 40
        with reader._window.dropping():  # as if another thread were dropping them
            assert reader.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
            assert reader._window.start == 0
        assert reader.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
        assert reader._window.start == 40
    finally:
        reader.close()
        merger.close()


def test_a_merge_freezes_the_window_and_forgets_it_at_once() -> None:
    window = Window(_sqlite._KEY_BYTES)
    ids = [_id(i.to_bytes(4, "big")) for i in range(110)]
    window.extend(0, ids[:100])
    assert window.freeze() == 100
    window.extend(100, ids[100:])  # joins fresh buckets while the merge runs
    assert window.freeze() == 100  # a merge that failed: the same again
    assert window.find(ids[5]) == [5]
    assert window.find(ids[105]) == [105]
    assert window.keys(0, _sqlite._BUCKETS, 100) == sorted(
        (_sqlite._key(entry_id), index) for index, entry_id in enumerate(ids[:100])
    )
    window.drop_before(100)
    assert (window.start, window.stop, len(window._gens)) == (100, 110, 1)
    assert window.find(ids[5]) == []
    assert window.find(ids[105]) == [105]


@pytest.mark.parametrize("who", ["writer", "reader"])
def test_a_look_up_that_a_merge_overtakes_still_finds_every_entry(
    path: Path, monkeypatch: pytest.MonkeyPatch, who: str
) -> None:
    """A look-up reads ``indexed``, then the window. A merge that moves ``indexed`` and
    forgets its entries from the window in between must not make integrated entries unknown,
    though their ids were found absent from the stored keys before they were integrated (by
    the log's own look-up of each new id, or a client polling while they were pending)."""
    writer = SqliteLogStore(path)
    reader = SqliteLogStore(path, read_only=True)
    store = writer if who == "writer" else reader
    items = entries(40)
    ids = [_id(e) for e in items]
    log = _log(writer)
    try:
        assert reader.lookup(ids) == {}  # polled before they were registered
        fill(log, items)  # the log looks each new id up before it writes it
        real_find = Window.find
        merged: list[int] = []

        def find_after_a_merge(window: Window, entry_id: bytes) -> list[int]:
            if not merged:  # the merger's last step lands between the two reads
                merged.append(writer.merge_index())
                if store is reader:  # another thread of the reader forgets the merged ones
                    other = threading.Thread(target=reader.lookup, args=([_id(b"other")],))
                    other.start()
                    other.join()
            return real_find(window, entry_id)

        monkeypatch.setattr(Window, "find", find_after_a_merge)
        assert store.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
        assert merged == [40]
        assert store._window.start == 40
    finally:
        monkeypatch.undo()
        log.close()
        reader.close()


def test_a_reader_opened_while_the_log_was_stopped_reads_what_a_restarted_writer_appends(
    path: Path,
) -> None:
    """A cleanly stopped log has no write-ahead log: a reader opened then reads the file as
    immutable (so that a read-only copy verifies). When a writer opens the log again, the
    same reader (the dashboard keeps one across the service's restarts) must read what it
    appends, not the file as it was."""
    early = _filled(path, 10, window=None)
    assert not path.with_name(path.name + "-wal").exists()
    reader = SqliteLogStore(path, read_only=True)
    try:
        assert reader.state().size == 10
        log = _log(SqliteLogStore(path))
        try:
            late = entries(5, tag=b"late")
            fill(log, late)
            assert reader.state().size == 15
            ids = [_id(e) for e in early + late]
            assert reader.lookup(ids) == {entry_id: index for index, entry_id in enumerate(ids)}
            assert reader.entries(10, 15) == late
        finally:
            log.close()
    finally:
        reader.close()


def test_a_reader_opened_while_the_log_was_stopped_reads_a_whole_run_of_the_writer(
    path: Path,
) -> None:
    """As above, but the writer starts, appends and stops cleanly between two reads (the
    dashboard idle while the service restarts): no write-ahead log is left, yet the reader
    must not go on with its cached pages beside the file's new ones (a torn view: an old
    state with a new checkpoint, and entries its id index cannot find)."""
    _filled(path, 300, window=None)
    reader = SqliteLogStore(path, read_only=True)
    try:
        assert reader.state().size == 300
        assert len(reader.tile(0, 1) or b"") == 44 * 32
        log = _log(SqliteLogStore(path))
        fill(log, entries(600, 300, tag=b"late"))
        log.close()
        assert not path.with_name(path.name + "-wal").exists()
        assert reader.state().size == 900
        assert len(reader.tile(0, 1) or b"") == 256 * 32
        assert reader.checkpoint() == reader.checkpoint(900)
        assert _report(reader) == 900
    finally:
        reader.close()
