"""The witness's state rolled back or swapped behind its back (a backup or a VM snapshot
restored, the database deleted, another witness's file copied in): its high-water file
(``<state>.cosigned``) refuses it. A rolled-back witness would cosign a checkpoint that extends
an older one but not the one it cosigned last: two inconsistent checkpoints cosigned, the one
thing a witness must never do (c2sp.org/tlog-witness)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from witness_testkit import ORIGIN, entries, grown, make_witness

import http_calls
from ironroot.cli import main
from ironroot.cose import Problem
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ForkDetected, InconsistentCheckpoint, StorageError
from ironroot.log import Checkpoint, Log, Note
from ironroot.witness import (
    AddCheckpoint,
    SqliteWitnessStore,
    StoredCheckpoint,
    Witness,
    WitnessThread,
)

ROLLED_BACK = r"rolled back or swapped"


@pytest.fixture(scope="module")
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture(scope="module")
def honest(log_key: PrivateKey) -> Log:
    return grown(log_key, entries(5), entries(6, 5))


@pytest.fixture(scope="module")
def forked(log_key: PrivateKey) -> Log:
    """The same first 5 entries, then others: extends 5, not the honest 11."""
    return grown(log_key, entries(5), entries(6, 5, tag=b"evil"))


def _open(path: Path, log_key: PrivateKey, key: PrivateKey) -> Witness:
    return make_witness(log_key, store=SqliteWitnessStore(path), key=key)


def _cosign(path: Path, log_key: PrivateKey, key: PrivateKey, body: bytes) -> None:
    witness = _open(path, log_key, key)
    try:
        witness.add_checkpoint(body)
    finally:
        witness.close()


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _copy(source: Path, target: Path) -> None:
    _remove(target)
    db = sqlite3.connect(source)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    shutil.copy(source, target)


@pytest.mark.parametrize("how", ["backup", "row deleted"])
def test_a_rolled_back_state_is_refused_not_a_fork_cosigned(
    tmp_path: Path, log_key: PrivateKey, honest: Log, forked: Log, how: str
) -> None:
    """Cosigned 5 (a backup taken), then the honest 11; the backup restored. The forked 11
    extends 5: the old witness cosigned it, and so both trees of size 11."""
    key = PrivateKey.generate(Algorithm.ED25519)
    path = tmp_path / "witness.sqlite3"
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    _copy(path, tmp_path / "backup")
    proof = tuple(honest.consistency_proof(5, 11))
    _cosign(path, log_key, key, AddCheckpoint(5, proof, honest.checkpoint()).encode())
    if how == "backup":
        _copy(tmp_path / "backup", path)
    else:
        db = sqlite3.connect(path)
        db.execute("DELETE FROM checkpoints")
        db.commit()
        db.close()
    old = 5 if how == "backup" else 0
    fork = AddCheckpoint(
        old, tuple(forked.consistency_proof(5, 11)) if old else (), forked.checkpoint()
    )
    witness = _open(path, log_key, key)
    try:
        with pytest.raises(StorageError, match=ROLLED_BACK):
            witness.add_checkpoint(fork.encode())
        with pytest.raises(StorageError, match=ROLLED_BACK):
            witness.latest(ORIGIN)
    finally:
        witness.close()


def test_a_deleted_state_is_refused_not_started_afresh(
    tmp_path: Path, log_key: PrivateKey, honest: Log
) -> None:
    """The database lost (deleted, or a fresh disk with the old config): a new one would start
    from size 0 and cosign any tree of the log, a fork of what it cosigned included."""
    key = PrivateKey.generate(Algorithm.ED25519)
    path = tmp_path / "witness.sqlite3"
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    _remove(path)
    with pytest.raises(StorageError, match=ROLLED_BACK):
        SqliteWitnessStore(path)


def test_another_witness_s_state_is_refused(
    tmp_path: Path, log_key: PrivateKey, honest: Log
) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    ours, theirs = tmp_path / "ours" / "witness.sqlite3", tmp_path / "theirs" / "witness.sqlite3"
    ours.parent.mkdir()
    theirs.parent.mkdir()
    _cosign(ours, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    _cosign(theirs, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    _copy(theirs, ours)
    with pytest.raises(StorageError, match=ROLLED_BACK):
        SqliteWitnessStore(ours)


def test_a_state_without_its_high_water_file_is_refused(
    tmp_path: Path, log_key: PrivateKey, honest: Log
) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    path = tmp_path / "witness.sqlite3"
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    Path(f"{path}.cosigned").unlink()
    with pytest.raises(StorageError, match=ROLLED_BACK):
        SqliteWitnessStore(path)


def test_a_malformed_high_water_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "witness.sqlite3"
    SqliteWitnessStore(path).close()
    Path(f"{path}.cosigned").write_bytes(b'{"instance": 5}')
    with pytest.raises(StorageError, match="is malformed"):
        SqliteWitnessStore(path)


def test_a_state_older_than_high_water_files_gets_one(
    tmp_path: Path, log_key: PrivateKey, honest: Log, forked: Log
) -> None:
    """A database written before high-water files (no instance, no file): bound as it is, and
    from then on protected."""
    key = PrivateKey.generate(Algorithm.ED25519)
    path = tmp_path / "witness.sqlite3"
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    proof = tuple(honest.consistency_proof(5, 11))
    _cosign(path, log_key, key, AddCheckpoint(5, proof, honest.checkpoint()).encode())
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key = 'instance'")
    db.commit()
    db.close()
    Path(f"{path}.cosigned").unlink()
    witness = _open(path, log_key, key)
    try:
        latest = witness.latest(ORIGIN)
        assert latest is not None
        assert latest.size == 11
    finally:
        witness.close()
    db = sqlite3.connect(path)
    db.execute("DELETE FROM checkpoints")  # its state lost behind its back: refused
    db.commit()
    db.close()
    witness = _open(path, log_key, key)
    try:
        with pytest.raises(StorageError, match=ROLLED_BACK):
            witness.add_checkpoint(AddCheckpoint(0, (), forked.checkpoint()).encode())
    finally:
        witness.close()


def test_a_witness_killed_between_its_commit_and_the_mark_catches_up(
    tmp_path: Path, log_key: PrivateKey, honest: Log
) -> None:
    """The mark is written after the commit: a witness killed in between (it never answered)
    leaves the mark behind, and the next open raises it."""
    key = PrivateKey.generate(Algorithm.ED25519)
    path = tmp_path / "witness.sqlite3"
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    mark = Path(f"{path}.cosigned").read_bytes()
    _cosign(
        path,
        log_key,
        key,
        AddCheckpoint(5, tuple(honest.consistency_proof(5, 11)), honest.checkpoint()).encode(),
    )
    Path(f"{path}.cosigned").write_bytes(mark)  # as if killed before the mark was raised
    store = SqliteWitnessStore(path)
    try:
        latest = store.latest(ORIGIN)
        assert latest is not None
        assert latest.size == 11
    finally:
        store.close()
    assert Path(f"{path}.cosigned").read_bytes() != mark


def test_witness_serve_refuses_a_lost_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], log_key: PrivateKey, honest: Log
) -> None:
    data = tmp_path / "wit"
    assert main(["witness", "init", "--data", str(data), "--name", "witness.example/w1"]) == 0
    store = SqliteWitnessStore(data / "witness.sqlite3")
    note = honest.checkpoint_at(5)
    root = Checkpoint.parse(Note.parse(note).body).root
    store.advance(None, StoredCheckpoint(ORIGIN, 5, root, note, 1))
    store.close()
    _remove(data / "witness.sqlite3")
    capsys.readouterr()
    assert main(["witness", "show", "--data", str(data)]) != 0
    assert "rolled back or swapped" in capsys.readouterr().err


def test_a_rolled_back_witness_answers_503_and_is_not_ready(
    tmp_path: Path, log_key: PrivateKey, honest: Log, forked: Log
) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    path = tmp_path / "witness.sqlite3"
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    _copy(path, tmp_path / "backup")
    proof = tuple(honest.consistency_proof(5, 11))
    _cosign(path, log_key, key, AddCheckpoint(5, proof, honest.checkpoint()).encode())
    _copy(tmp_path / "backup", path)
    witness = _open(path, log_key, key)
    try:
        with WitnessThread(witness) as server:
            fork = AddCheckpoint(5, tuple(forked.consistency_proof(5, 11)), forked.checkpoint())
            response = http_calls.post(f"{server.url}/add-checkpoint", content=fork.encode())
            assert response.status_code == 503
            assert Problem.from_cbor(response.content).extra["code"] == "storage"
            # anyone may ask: the answer names the files, not where the witness keeps them
            assert str(tmp_path) not in response.text
            assert "witness.sqlite3.cosigned" in response.text
            assert http_calls.get(f"{server.url}/ready").status_code == 503
    finally:
        witness.close()


def test_a_first_open_cut_short_before_its_high_water_file_is_not_refused_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_key: PrivateKey, honest: Log
) -> None:
    """The instance is committed, then the high-water file written: a first open killed, or
    out of disk space, in between left a database refused at every open after ("missing"),
    though nothing was ever cosigned that a rollback could undo."""

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    path = tmp_path / "witness.sqlite3"
    with monkeypatch.context() as patch:
        patch.setattr("ironroot._statedb.write_atomic", full)
        with pytest.raises(StorageError, match="cannot write the high-water file"):
            SqliteWitnessStore(path)
    assert not Path(f"{path}.cosigned").exists()
    key = PrivateKey.generate(Algorithm.ED25519)
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    # and from then on it is protected
    Path(f"{path}.cosigned").unlink()
    with pytest.raises(StorageError, match=ROLLED_BACK):
        SqliteWitnessStore(path)


@pytest.mark.parametrize("at", ["file", "commit"])
def test_the_first_open_of_an_older_state_cut_short_is_not_refused_for_ever(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    log_key: PrivateKey,
    honest: Log,
    forked: Log,
    at: str,
) -> None:
    """A database written before high-water files holds cosigned trees but no instance: its
    first open gave it one, committed, then wrote the high-water file. A crash (or a full
    disk) between the two left a database with an instance, trees and no file: refused at
    every open after ("missing"), for ever, though nothing was rolled back. The file is now
    written first, and a database without an instance that is exactly at the marks of the
    file beside it takes that file's instance. The crash is a fault at the file's write or
    at the instance's commit."""
    key = PrivateKey.generate(Algorithm.ED25519)
    path = tmp_path / "witness.sqlite3"
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key = 'instance'")
    db.commit()
    db.close()
    Path(f"{path}.cosigned").unlink()

    class Cut(BaseException):
        pass

    def cut(*args: object, **kwargs: object) -> None:
        raise Cut

    with monkeypatch.context() as patch:
        if at == "file":
            patch.setattr("ironroot._statedb.write_atomic", cut)
        else:
            patch.setattr("ironroot.witness._store.immediate", cut)
        with pytest.raises(Cut):
            SqliteWitnessStore(path)
    witness = _open(path, log_key, key)
    try:
        latest = witness.latest(ORIGIN)
        assert latest is not None
        assert latest.size == 5
    finally:
        witness.close()
    # and from then on it is protected
    db = sqlite3.connect(path)
    db.execute("DELETE FROM checkpoints")
    db.commit()
    db.close()
    witness = _open(path, log_key, key)
    try:
        with pytest.raises(StorageError, match=ROLLED_BACK):
            witness.add_checkpoint(AddCheckpoint(0, (), forked.checkpoint()).encode())
    finally:
        witness.close()


def test_a_binding_cut_short_beside_a_database_not_at_its_marks_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_key: PrivateKey, honest: Log
) -> None:
    """The file of a binding cut short is taken only by the database it was written for, at
    the trees it recorded: one rolled back meanwhile (its trees removed) is refused."""
    key = PrivateKey.generate(Algorithm.ED25519)
    path = tmp_path / "witness.sqlite3"
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key = 'instance'")
    db.commit()
    db.close()
    Path(f"{path}.cosigned").unlink()

    class Cut(BaseException):
        pass

    def cut(*args: object, **kwargs: object) -> None:
        raise Cut

    with monkeypatch.context() as patch:
        patch.setattr("ironroot.witness._store.immediate", cut)
        with pytest.raises(Cut):
            SqliteWitnessStore(path)
    db = sqlite3.connect(path)
    db.execute("DELETE FROM checkpoints")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="has no instance but a high-water file") as info:
        SqliteWitnessStore(path)
    assert type(info.value) is StorageError


def _refuse(path: Path, log_key: PrivateKey, key: PrivateKey, body: bytes, kind: str) -> None:
    witness = _open(path, log_key, key)
    try:
        with pytest.raises(ForkDetected if kind == "fork" else InconsistentCheckpoint):
            witness.add_checkpoint(body)
    finally:
        witness.close()


def _kept(path: Path) -> object:
    return json.loads(Path(f"{path}.cosigned").read_text()).get("kept")


@pytest.mark.parametrize("kind", ["fork", "inconsistent"])
@pytest.mark.parametrize("how", ["backup", "row deleted"])
def test_a_state_that_lost_its_evidence_is_refused(
    tmp_path: Path, log_key: PrivateKey, honest: Log, forked: Log, kind: str, how: str
) -> None:
    """Cosigned the honest 11 (a backup taken), then refused a fork (or a garbled proof) and
    kept its evidence; the backup restored. The old witness went on without a word: the
    evidence that the log forked was gone, and its state was the one cosigned still."""
    key = PrivateKey.generate(Algorithm.ED25519)
    path = tmp_path / "witness.sqlite3"
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
    proof = tuple(honest.consistency_proof(5, 11))
    _cosign(path, log_key, key, AddCheckpoint(5, proof, honest.checkpoint()).encode())
    _copy(path, tmp_path / "backup")
    if kind == "fork":
        refused = AddCheckpoint(11, (), forked.checkpoint())
    else:
        grown_more = grown(log_key, entries(5), entries(6, 5), entries(2, 11))
        refused = AddCheckpoint(11, (bytes(32),), grown_more.checkpoint())
    _refuse(path, log_key, key, refused.encode(), kind)
    kept = _kept(path)
    if how == "backup":
        _copy(tmp_path / "backup", path)
    else:
        db = sqlite3.connect(path)
        db.execute("DELETE FROM evidence")
        db.commit()
        db.close()
    witness = _open(path, log_key, key)
    try:
        with pytest.raises(
            StorageError,
            match=rf"the witness database witness.sqlite3 holds 0 evidence rows of {ORIGIN}, but "
            r"1 were kept \(its high-water file witness.sqlite3.cosigned\): the state was "
            r"rolled back or swapped, and cannot be trusted; the evidence that the log forked "
            "would be gone without a word",
        ) as lost:
            witness.latest(ORIGIN)
        assert lost.value.code == "storage"
        with pytest.raises(StorageError, match="evidence rows"):
            witness.add_checkpoint(refused.encode())  # nor kept again over the lost one
        with pytest.raises(StorageError, match="evidence rows"):
            witness.store.all_latest()
    finally:
        witness.close()
    assert _kept(path) == kept


def test_evidence_kept_is_tallied_and_an_older_high_water_file_gains_it(
    tmp_path: Path, log_key: PrivateKey, honest: Log, forked: Log
) -> None:
    """The positive path: the tally is raised as the evidence is kept, a replay keeps nothing
    and leaves it; a high-water file written before tallies (no ``kept``) is read as before
    and gains it."""
    key = PrivateKey.generate(Algorithm.ED25519)
    path = tmp_path / "witness.sqlite3"
    _cosign(path, log_key, key, AddCheckpoint(0, (), honest.checkpoint_at(11)).encode())
    assert _kept(path) == {}
    fork = AddCheckpoint(11, (), forked.checkpoint()).encode()
    _refuse(path, log_key, key, fork, "fork")
    kept = _kept(path)
    assert isinstance(kept, dict)
    assert kept[ORIGIN]["count"] == 1
    _refuse(path, log_key, key, fork, "fork")  # replayed: evidence kept once
    assert _kept(path) == kept
    old = json.loads(Path(f"{path}.cosigned").read_text())
    del old["kept"]
    Path(f"{path}.cosigned").write_text(json.dumps(old))
    store = SqliteWitnessStore(path)
    try:
        latest = store.latest(ORIGIN)
        assert latest is not None
        assert latest.size == 11
        assert len(store.evidence()) == 1
    finally:
        store.close()
    assert _kept(path) == kept
