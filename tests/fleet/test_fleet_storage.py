"""The fleet's storage: one SQLite file whose stores share a transaction, so an admission and a
quarantine are each one commit that holds whole or not at all (a quarantine durable, an
admission's grant without waiting for the disk); a file replaced under a connection is
reopened; the stores that had files of their own are imported once; the EAR and the evidence
it appraised are kept in the same file; several files are written at once."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world, prepare
from tests.platform.node_world import NOW, World, make_world

from durability import SyncLog
from ironroot._fileio import remove_write_temporaries
from ironroot.errors import AdmissionDenied, NotFound, StaleNonce, StorageError
from ironroot.fleet import (
    ADMISSION_DIR,
    AdmissionAuthority,
    Fleet,
    NodeEvidence,
    attest_node,
    latest_attestation,
    quarantine,
    store_attestation,
)
from ironroot.fleet._admission import _stores
from ironroot.fleet._credentials import CredentialStore
from ironroot.fleet._files import folder_lock, write_files
from ironroot.fleet._sqlite import SqliteFile

_SCHEMA = "CREATE TABLE IF NOT EXISTS t (a TEXT PRIMARY KEY)"


def _rows(file: SqliteFile) -> list[str]:
    with file.tx() as db:
        return [str(r[0]) for r in db.execute("SELECT a FROM t ORDER BY a")]


class _Stop(Exception):
    """Raised inside a transaction to see what it leaves behind."""


def _inner_fails(one: SqliteFile, two: SqliteFile) -> None:
    with one.tx() as db:
        db.execute("INSERT INTO t VALUES ('c')")
        try:
            with two.tx() as inner:
                inner.execute("INSERT INTO t VALUES ('d')")
                raise _Stop
        except _Stop:
            pass


def _outer_fails(one: SqliteFile, two: SqliteFile) -> None:
    with one.tx() as db:
        db.execute("INSERT INTO t VALUES ('e')")
        with two.tx() as inner:
            inner.execute("INSERT INTO t VALUES ('f')")
        raise _Stop


def _sqlite_fails(one: SqliteFile, two: SqliteFile) -> None:
    with one.tx() as db:
        db.execute("INSERT INTO t VALUES ('g')")
        with two.tx() as inner:
            inner.execute("INSERT INTO t VALUES ('a')")  # the key exists


def test_stores_of_one_file_share_a_transaction(tmp_path: Path) -> None:
    one = SqliteFile(tmp_path / "x.db", "one", _SCHEMA)
    two = SqliteFile(tmp_path / "x.db", "two", _SCHEMA)
    with one.tx() as db:
        db.execute("INSERT INTO t VALUES ('a')")
        with two.tx() as inner:
            assert inner is db  # the thread's one connection to the file
            inner.execute("INSERT INTO t VALUES ('b')")
    assert _rows(one) == ["a", "b"]

    # A failure inside an inner transaction undoes it alone when the outer one goes on ...
    _inner_fails(one, two)
    assert _rows(one) == ["a", "b", "c"]
    # ... and a failure of the outer one undoes everything inside it.
    with pytest.raises(_Stop):
        _outer_fails(one, two)
    assert _rows(two) == ["a", "b", "c"]
    # SQLite's own failures are typed, and leave nothing behind.
    with pytest.raises(StorageError, match="two failed"):
        _sqlite_fails(one, two)
    assert _rows(one) == ["a", "b", "c"]


def test_a_file_replaced_under_a_connection_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    first = SqliteFile(path, "first", _SCHEMA)
    with first.tx() as db:
        db.execute("INSERT INTO t VALUES ('old')")
    for name in ("x.db", "x.db-wal", "x.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    second = SqliteFile(path, "second", _SCHEMA)
    with second.tx() as db:
        db.execute("INSERT INTO t VALUES ('new')")
    assert _rows(first) == ["new"]  # the new file, not the unlinked one
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT a FROM t").fetchall() == [("new",)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("storage-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def test_an_admission_is_one_transaction(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the registry update fails, the credentials issued and the EAR are not kept
    either: nothing of the admission is there, and the node is still pending."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    request = prepare(fleet, authority, "node-0001").request()

    def broken(*args: object, **kwargs: object) -> None:
        with fleet.transaction():
            fleet.record("node-0001", "about-to-fail", {}, now=NOW)
        raise StorageError("the registry update failed")

    monkeypatch.setattr(fleet, "_set_status", broken)
    with pytest.raises(StorageError, match="registry update failed"):
        authority.admit(request, now=NOW)
    monkeypatch.undo()
    assert fleet.record_of("node-0001").status == "pending"
    assert CredentialStore(fleet.database).of_node("node-0001") == []
    assert authority.state.latest_ear("node-0001") is None
    assert [e.kind for e in fleet.events(node="node-0001")] == ["manufactured"]

    result = attest_node(fleet, "node-0001", now=NOW, authority=authority)
    assert fleet.record_of("node-0001").status == "admitted"
    assert authority.ear("node-0001") == authority.ear_by_id(result.ear_id)
    serials = {s.serial for s in CredentialStore(fleet.database).of_node("node-0001")}
    assert serials == {c.serial for c in result.credentials.values()}


def test_a_quarantine_is_one_transaction(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quarantine whose last write fails leaves the node admitted with its credentials
    and placements: no half-quarantined node."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    authority.place("vm-1", now=NOW, node="node-0001")
    real = fleet.record

    def failing(node: str | None, kind: str, *args: object, **kwargs: object) -> None:
        if kind == "quarantine-effects":
            raise StorageError("the event log is full")
        real(node, kind, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fleet, "record", failing)
    with pytest.raises(StorageError, match="event log is full"):
        quarantine(fleet, "node-0001", "suspected tampering", now=NOW)
    monkeypatch.undo()
    assert fleet.record_of("node-0001").status == "admitted"
    assert not any(s.revoked for s in authority.credentials.of_node("node-0001"))
    assert [p.state for p in authority.placements("node-0001")] == ["running"]
    assert authority.state.held("node-0001") is None

    quarantine(fleet, "node-0001", "suspected tampering", now=NOW)
    assert fleet.record_of("node-0001").status == "quarantined"
    assert all(s.revoked for s in authority.credentials.of_node("node-0001"))
    assert [p.state for p in authority.placements("node-0001")] == ["stopped"]


def test_a_node_keeps_its_latest_ear_and_the_one_it_was_admitted_on(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    first = attest_node(fleet, "node-0001", now=NOW, authority=authority)
    second = attest_node(fleet, "node-0001", now=NOW, authority=authority)
    # evidence for another nonce: refused, its EAR kept as the latest, the registry unchanged
    request = prepare(fleet, authority, "node-0001")
    stale = prepare(fleet, authority, "node-0001")
    with pytest.raises(StaleNonce):
        authority.admit(request.request(evidence=stale.evidence.encode()), now=NOW)
    assert fleet.record_of("node-0001").ear_id == second.ear_id
    assert authority.ear("node-0001") != authority.ear_by_id(second.ear_id)
    with pytest.raises(NotFound, match="no EAR"):
        authority.ear_by_id(first.ear_id)
    with sqlite3.connect(fleet.database) as db:
        assert db.execute("SELECT COUNT(*) FROM ears").fetchone() == (2,)


def _legacy(directory: Path) -> None:
    """The two files admission kept before its stores moved into fleet.db."""
    directory.mkdir(parents=True)
    with sqlite3.connect(directory / "credentials.db") as db:
        db.execute(
            "CREATE TABLE credentials (serial TEXT PRIMARY KEY, node TEXT NOT NULL, "
            "plane TEXT NOT NULL, ear_id TEXT NOT NULL, not_before TEXT NOT NULL, "
            "not_after TEXT NOT NULL, revoked_at TEXT, reason TEXT)"
        )
        db.execute(
            "INSERT INTO credentials VALUES ('0a', 'node-0001', 'control', 'urn:x', "
            "'2026-06-01T12:00:00Z', '2026-06-01T13:00:00Z', '2026-06-01T12:30:00Z', 'drift')"
        )
    with sqlite3.connect(directory / "admission.db") as db:
        db.execute("CREATE TABLE holds (node TEXT PRIMARY KEY, reason TEXT, at TEXT)")
        db.execute(
            "CREATE TABLE placements (vm TEXT PRIMARY KEY, node TEXT, state TEXT, at TEXT, "
            "reason TEXT NOT NULL DEFAULT '')"
        )
        db.execute("INSERT INTO holds VALUES ('node-0001', 'held by ops', '2026-06-01T12:00:00Z')")
        db.execute(
            "INSERT INTO placements VALUES ('vm-7', 'node-0001', 'running', "
            "'2026-06-01T12:00:00Z', '')"
        )


def test_the_stores_of_an_older_fleet_are_imported_once(aw: AdmissionWorld, tmp_path: Path) -> None:
    fleet = Fleet.create(tmp_path / "fleet", node_class=aw.node_class())
    fleet.add_nodes(1, vendor_ca=aw.vendor_ca, now=NOW)
    _legacy(fleet.directory / "admission")
    authority = AdmissionAuthority.init(
        fleet, vendor_roots=list(aw.vendor_ca.trust_anchors), now=NOW
    )
    status = authority.credentials.status("0a")
    assert status is not None
    assert status.reason == "drift"
    assert authority.state.held("node-0001") == "held by ops"
    assert [p.vm for p in authority.placements("node-0001")] == ["vm-7"]
    names = sorted(os.listdir(fleet.directory / "admission"))
    assert {"credentials.db.migrated", "admission.db.migrated"} <= set(names)
    assert not {"credentials.db", "admission.db"} & set(names)
    # once: what changes afterwards is not overwritten by the old rows
    authority.state.release("node-0001")
    stores = _stores(fleet)
    assert stores is not None
    assert stores[0].held("node-0001") is None


# --- durability of one commit -----------------------------------------------------------------


def _synchronous(file: SqliteFile) -> int:
    with file.read() as db:
        return int(db.execute("PRAGMA synchronous").fetchone()[0])


def test_a_commit_that_does_not_wait_for_the_disk_is_still_one_transaction(
    tmp_path: Path,
) -> None:
    """``durable=False`` changes when the commit reaches the disk, not what it holds: it is
    seen at once, a failure inside rolls it back whole, and the connection's next commit is
    durable again (``synchronous=FULL``, 2)."""
    one = SqliteFile(tmp_path / "f.db", "one", _SCHEMA)
    two = SqliteFile(tmp_path / "f.db", "two", _SCHEMA)
    with one.tx(durable=False) as db:
        db.execute("INSERT INTO t VALUES ('a')")
        with two.tx() as inner:
            inner.execute("INSERT INTO t VALUES ('b')")
    assert _synchronous(one) == 2
    assert _rows(two) == ["a", "b"]

    def stopped() -> None:
        with one.tx(durable=False) as db:
            db.execute("INSERT INTO t VALUES ('c')")
            raise _Stop

    def duplicate() -> None:
        with one.tx(durable=False) as db:
            db.execute("INSERT INTO t VALUES ('a')")  # the key exists

    with pytest.raises(_Stop):
        stopped()
    with pytest.raises(StorageError):
        duplicate()
    assert _synchronous(one) == 2
    assert _rows(one) == ["a", "b"]
    with sqlite3.connect(tmp_path / "f.db") as other:  # another connection sees the commits
        assert [r[0] for r in other.execute("SELECT a FROM t ORDER BY a")] == ["a", "b"]


# --- the EAR and its evidence -------------------------------------------------------------------


def test_the_ear_and_its_evidence_are_kept_in_fleet_db(aw: AdmissionWorld, tmp_path: Path) -> None:
    """An admission keeps the EAR and the evidence it appraised in fleet.db, in its one
    transaction: no files in ``admission/ears/``; audit exports read them back."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    result = attest_node(fleet, "node-0001", now=NOW, authority=authority)
    stored = latest_attestation(fleet.directory / ADMISSION_DIR, "node-0001")
    assert stored is not None
    assert stored.ear == result.appraisal.token
    assert stored.ear_id == fleet.record_of("node-0001").ear_id == result.ear_id
    assert NodeEvidence.decode(stored.evidence or b"").node == "node-0001"
    assert not (fleet.directory / ADMISSION_DIR / "ears").exists()
    assert latest_attestation(fleet.directory / ADMISSION_DIR, "node-0002") is None


def test_a_quarantining_attestation_keeps_its_evidence_too(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """An attestation that is not affirming quarantines the node with its EAR named in the
    registry, and that EAR's evidence is kept beside it (an audit can check one against the
    other)."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    request = prepare(fleet, authority, "node-0001")
    bad = NodeEvidence("node-0001", request.evidence.quote, {})  # every device missing
    with pytest.raises(AdmissionDenied):
        authority.admit(request.request(evidence=bad.encode()), now=NOW)
    record = fleet.record_of("node-0001")
    assert record.status == "quarantined"
    stored = latest_attestation(fleet.directory / ADMISSION_DIR, "node-0001")
    assert stored is not None
    assert stored.ear_id == record.ear_id
    assert stored.evidence == bad.encode()


def test_an_older_fleet_keeps_its_ears_files_and_its_ears_table_grows_a_column(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """A fleet whose ``ears`` table has no evidence column gets one when admission opens;
    an EAR stored there without evidence takes it from the ``admission/ears/`` files when
    they hold that EAR; a node with no EAR in fleet.db is read from the files."""
    fleet = Fleet.create(tmp_path / "fleet", node_class=aw.node_class())
    fleet.add_nodes(2, vendor_ca=aw.vendor_ca, now=NOW)
    with sqlite3.connect(fleet.database) as db:
        db.execute(
            "CREATE TABLE ears (ear_id TEXT PRIMARY KEY, node TEXT NOT NULL, at TEXT NOT NULL,"
            " token BLOB NOT NULL)"
        )
        db.execute("INSERT INTO ears VALUES ('urn:1', 'node-0001', 'x', x'6561722d31')")
    folder = fleet.directory / ADMISSION_DIR
    folder.mkdir()
    store_attestation(folder, "node-0001", b"ear-1", b"evidence-1")
    store_attestation(folder, "node-0002", b"ear-2", b"evidence-2")
    found = latest_attestation(folder, "node-0001")
    assert found is not None
    assert (found.ear, found.evidence) == (b"ear-1", b"evidence-1")
    store_attestation(folder, "node-0001", b"ear-other", b"evidence-other")
    found = latest_attestation(folder, "node-0001")
    assert found is not None
    assert (found.ear, found.evidence) == (b"ear-1", None)  # the files hold another EAR
    found = latest_attestation(folder, "node-0002")
    assert found is not None
    assert (found.ear, found.evidence) == (b"ear-2", b"evidence-2")

    AdmissionAuthority.init(fleet, vendor_roots=list(aw.vendor_ca.trust_anchors), now=NOW)
    with sqlite3.connect(fleet.database) as db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(ears)")]
    assert columns == ["ear_id", "node", "at", "token", "evidence"]
    result = attest_node(fleet, "node-0001", now=NOW)
    found = latest_attestation(folder, "node-0001")
    assert found is not None
    assert found.ear_id == result.ear_id
    assert found.evidence is not None


# --- several files at once ----------------------------------------------------------------------


@pytest.mark.parametrize("durable", [True, False])
def test_files_are_written_whole_with_their_modes(tmp_path: Path, durable: bool) -> None:
    (tmp_path / "b.txt").write_bytes(b"old")
    files = [
        (tmp_path / "a.key", b"secret", 0o600),
        (tmp_path / "b.txt", b"new", 0o644),
        (tmp_path / "c.bin", b"\x00" * 70_000, 0o644),
    ]
    write_files(files, durable=durable)
    for path, data, mode in files:
        assert path.read_bytes() == data
        assert os.stat(path).st_mode & 0o777 == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.key", "b.txt", "c.bin"]


def test_files_that_cannot_all_be_written_leave_no_temp_files(tmp_path: Path) -> None:
    """A folder that does not exist: the error propagates, the temp files made before it are
    removed and nothing was renamed."""
    with pytest.raises(FileNotFoundError):
        write_files([(tmp_path / "a", b"1", 0o644), (tmp_path / "missing" / "b", b"2", 0o644)])
    assert list(tmp_path.iterdir()) == []


_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from ironroot.fleet._files import write_files

    folder = Path(sys.argv[1])
    os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # killed at its rename
    write_files([(folder / "a.key", b"secret", 0o600), (folder / "b.txt", b"new", 0o644)])
    """
)


def test_temp_files_of_a_killed_writer_are_removed_by_the_next_locked_writer(
    tmp_path: Path,
) -> None:
    """A writer killed (SIGKILL) before its renames leaves its temp files; a writer holding the
    folder's lock removes those of the names it gives, and writes."""
    (tmp_path / "b.txt").write_bytes(b"old")
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert done.returncode == -9
    left = sorted(p for p in tmp_path.iterdir() if p.name != "b.txt")
    assert [p.name[: -len("XXXXXXXX.tmp")] for p in left] == [".a.key.", ".b.txt."]
    assert (tmp_path / "b.txt").read_bytes() == b"old"
    with folder_lock(tmp_path):
        assert remove_write_temporaries(tmp_path, ["b.txt"]) == [left[1]]
        assert remove_write_temporaries(tmp_path, ["a.key", "b.txt"]) == [left[0]]
        write_files([(tmp_path / "b.txt", b"new", 0o644)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]
    assert (tmp_path / "b.txt").read_bytes() == b"new"


def test_the_folder_lock_keeps_every_other_holder_out_until_released(tmp_path: Path) -> None:
    """The lock is the folder's own (no file is added): another open of it cannot take it
    while it is held, and can once it is released."""
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with folder_lock(tmp_path), pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    assert list(tmp_path.iterdir()) == []


def test_an_admission_syncs_no_file_and_a_quarantine_commits_durably(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No file of an admission is synced (the grant's commit does not wait either); the
    quarantine after it is committed with the connection back at ``synchronous=FULL``."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real(fd))
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    assert synced == []
    monkeypatch.undo()
    quarantine(fleet, "node-0001", "suspected tampering", now=NOW)
    assert _synchronous(SqliteFile(fleet.database, "the fleet registry")) == 2
    assert fleet.record_of("node-0001").status == "quarantined"


def test_the_import_of_an_older_fleets_stores_is_kept_through_a_power_cut(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old files are renamed ``.migrated`` once imported: a rename a power cut undid (the
    folder not synced) imports them again, bringing back rows removed since (a hold released
    held the node again)."""
    fleet = Fleet.create(tmp_path / "fleet", node_class=aw.node_class())
    _legacy(fleet.directory / "admission")
    log = SyncLog(monkeypatch)
    AdmissionAuthority.init(fleet, vendor_roots=list(aw.vendor_ca.trust_anchors), now=NOW)
    folder = fleet.directory / "admission"
    assert log.kept(folder / "credentials.db.migrated")
    assert log.kept(folder / "admission.db.migrated")
