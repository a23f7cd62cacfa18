"""What a disk can do under the SQLite log.

A full disk (SQLite's ``max_page_count`` on the writer's connection: its writes then fail
with ``SQLITE_FULL`` as on a full file system, with no root needed for a tmpfs). SQLite rolls
a transaction back by itself on ``SQLITE_FULL``; the store's own ``ROLLBACK`` then failed
("cannot rollback - no transaction is active") and that error, not the full disk, was what
every registration and the log said.

A database file moved, deleted or replaced under the running log: the writer's connection
still had the old file open, so registrations were acknowledged (201) into a file no longer
at the log's path (deleted: gone at the next restart, which then began a new empty log under
the same key)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from log_testkit import ORIGIN, ed25519_key, entries, signer

from durability import SyncLog, unsynced_names
from ironroot.errors import StorageError
from ironroot.log import Integrated, Log, SqliteLogStore, verify_log

SIGNERS = [signer(ed25519_key())]


def test_a_full_disk_is_named_and_the_log_goes_on_once_there_is_room(tmp_path: Path) -> None:
    store = SqliteLogStore(tmp_path / "log.sqlite3")
    with Log(store, origin=ORIGIN, note_signers=SIGNERS) as log:
        for ticket in log.submit_many(entries(20)):
            ticket.integrated.result(20)
        writer = store._writer  # the writer's connection: where SQLite's size limit applies
        pages = writer.execute("PRAGMA page_count").fetchone()[0]
        writer.execute(f"PRAGMA max_page_count = {pages}")
        big = [b"big %d " % i + b"y" * 60000 for i in range(3)]
        for ticket in log.submit_many(big):
            with pytest.raises(StorageError) as caught:
                ticket.integrated.result(20)
            assert caught.value.detail == ("log database write failed: database or disk is full")
        assert log.stalled is None  # nothing waits: each registration was answered 503
        writer.execute("PRAGMA max_page_count = 1073741823")
        tickets = log.submit_many(big)
        assert [t.integrated.result(20) for t in tickets] == [
            Integrated(20 + i, 23) for i in range(3)
        ]
        assert log.stalled is None
    reader = SqliteLogStore(tmp_path / "log.sqlite3", read_only=True)
    try:
        verify_log(reader, origin=ORIGIN, verifiers=[SIGNERS[0].verifier()])
    finally:
        reader.close()


@pytest.mark.parametrize("how", ["deleted", "moved", "replaced"])
def test_a_database_file_gone_from_its_path_is_never_written(tmp_path: Path, how: str) -> None:
    path = tmp_path / "log.sqlite3"
    with Log(SqliteLogStore(path), origin=ORIGIN, note_signers=SIGNERS) as log:
        for ticket in log.submit_many(entries(3)):
            ticket.integrated.result(20)
        for suffix in ("", "-wal", "-shm"):
            here = Path(f"{path}{suffix}")
            if not here.exists():
                continue
            if how == "deleted":
                os.remove(here)
            else:
                shutil.move(here, tmp_path / f"moved.sqlite3{suffix}")
        if how == "replaced":
            shutil.copy(tmp_path / "moved.sqlite3", path)
        (ticket,) = log.submit_many([b"after"])
        with pytest.raises(StorageError) as caught:
            ticket.durable.result(20)
        assert caught.value.detail == (
            f"the log database {path} is no longer the file this store opened (moved, deleted "
            "or replaced since): nothing more is written to it; restart the service"
        )
        assert log.stalled is None


def test_a_new_data_directory_is_kept_through_a_power_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data directory ``Log.open`` makes for a new SQLite log has its name synced into its
    folder (``make_dirs``): a power cut would lose the log's file with the folder's name,
    every acknowledged entry with it. (The database's own files are SQLite's to sync.)"""
    sync = SyncLog(monkeypatch)
    data = tmp_path / "new" / "data"
    with Log.open(data, origin=ORIGIN, note_signers=SIGNERS) as log:
        log.submit_many(entries(1))[0].integrated.result(20)
    lost = [p for p in unsynced_names(tmp_path / "new", sync) if p.parent != data]
    assert [str(p.relative_to(tmp_path)) for p in lost] == []
