"""A log database restored from an older backup, then the log restarted: the log never signs
a checkpoint inconsistent with one it signed before.

Before, only a writer that was running when the database went back noticed (it remembered
its head in memory); a restarted one took the restored, smaller tree as the log, gave the
indexes of acknowledged entries to new ones and signed new checkpoints at sizes it had
signed with other roots: a fork of its own making. With ``high_water`` the log keeps the
latest checkpoint it signed in a file outside the database, written before any entry of a
batch is acknowledged; a store behind it (or beside it: another root at its size) is not
written to: every submission is ``StoreUnavailable`` (code ``store-rolled-back``, 503 with
``Retry-After``), ``stalled`` says why, and nothing is signed.

The restore is real: the SQLite files are copied aside, more is registered, the log is
closed, the copy put back, and the log opened again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from log_testkit import ORIGIN, ed25519_key, entries, fill, signer

from ironroot.errors import ConfigError, StoreUnavailable
from ironroot.log import Checkpoint, Log, Note, NoteSigner, layout, sign_checkpoint

_KEY = ed25519_key()


def _open(data: Path, *, high_water: Path | None) -> Log:
    log = Log.open(data, origin=ORIGIN, note_signers=[signer(_KEY)], high_water=high_water)
    log.start()
    return log


def _files(data: Path) -> list[Path]:
    db = layout.log_db_path(data)
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def _backup(data: Path, to: Path) -> None:
    to.mkdir()
    for path in _files(data):
        shutil.copy2(path, to / path.name)


def _restore(backup: Path, data: Path) -> None:
    for path in _files(data):
        path.unlink()
    for path in backup.iterdir():
        shutil.copy2(path, layout.log_db_path(data).parent / path.name)


def _stored_sizes(data: Path) -> list[int]:
    log = Log.open(data, origin=ORIGIN, note_signers=[signer(_KEY)])
    try:
        return [log.tree_size]
    finally:
        log.close()


def _refused(log: Log) -> None:
    for attempt in range(2):  # refused, and again: it does not pick up from there
        ticket = log.submit(b"after the restore %d" % attempt)
        with pytest.raises(StoreUnavailable, match="restored from an older copy") as err:
            ticket.integrated.result(30)
        assert err.value.code == "store-rolled-back"
        assert err.value.retry_after >= 1
    assert log.stalled is not None
    assert log.stalled.code == "store-rolled-back"


def _signed_size(high_water: Path) -> int:
    return Checkpoint.parse(Note.parse(high_water.read_bytes()).body).size


def test_a_restart_on_a_database_restored_from_an_older_backup_signs_nothing(
    tmp_path: Path,
) -> None:
    data, high_water = tmp_path / "data", tmp_path / "signed-checkpoint"
    data.mkdir()
    log = _open(data, high_water=high_water)
    fill(log, entries(3))
    log.close()
    _backup(data, tmp_path / "backup")  # at tree size 3
    log = _open(data, high_water=high_water)
    acknowledged = fill(log, entries(2, start=3))
    assert [a.tree_size for a in acknowledged] == [5, 5]
    log.close()
    assert _signed_size(high_water) == 5
    _restore(tmp_path / "backup", data)

    log = _open(data, high_water=high_water)
    try:
        assert log.tree_size == 3  # what was signed at 3 is still served
        _refused(log)
    finally:
        log.close()
    assert _stored_sizes(data) == [3]  # no second checkpoint of size 4 or 5 was signed
    assert _signed_size(high_water) == 5


def test_a_restored_database_grown_beside_the_signed_tree_is_refused(tmp_path: Path) -> None:
    data, high_water = tmp_path / "data", tmp_path / "signed-checkpoint"
    data.mkdir()
    log = _open(data, high_water=high_water)
    fill(log, entries(3))
    log.close()
    _backup(data, tmp_path / "backup")
    log = _open(data, high_water=high_water)
    fill(log, entries(2, start=3))
    log.close()
    _restore(tmp_path / "backup", data)
    log = _open(data, high_water=None)  # a run without the record: another tree at size 5
    fill(log, entries(2, start=3, tag=b"other"))
    log.close()

    log = _open(data, high_water=high_water)
    try:
        assert log.tree_size == 5
        _refused(log)
    finally:
        log.close()


def test_a_log_ahead_of_its_record_moves_it_on_and_an_empty_record_is_written(
    tmp_path: Path,
) -> None:
    data, high_water = tmp_path / "data", tmp_path / "signed-checkpoint"
    data.mkdir()
    log = _open(data, high_water=None)  # before the record existed
    fill(log, entries(3))
    log.close()
    log = _open(data, high_water=high_water)
    try:
        assert _signed_size(high_water) == 3  # recorded at open
        fill(log, entries(1, start=3))
        assert _signed_size(high_water) == 4
        assert log.stalled is None
    finally:
        log.close()


def test_a_record_of_another_origin_or_damaged_is_refused_at_open(tmp_path: Path) -> None:
    data, high_water = tmp_path / "data", tmp_path / "signed-checkpoint"
    data.mkdir()
    log = _open(data, high_water=high_water)
    log.close()
    other = NoteSigner("other.example/log", _KEY)
    high_water.write_bytes(sign_checkpoint(Checkpoint("other.example/log", 0, b"\0" * 32), [other]))
    with pytest.raises(ConfigError, match="signed-checkpoint"):
        _open(data, high_water=high_water)
    high_water.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="signed-checkpoint"):
        _open(data, high_water=high_water)


def test_a_batch_whose_checkpoint_cannot_be_recorded_is_not_acknowledged(
    tmp_path: Path,
) -> None:
    data, high_water = tmp_path / "data", tmp_path / "signed-checkpoint"
    data.mkdir()
    log = _open(data, high_water=high_water)
    try:
        fill(log, entries(2))
        high_water.unlink()
        high_water.mkdir()  # the file cannot be replaced now
        first = log.submit(b"not recorded")
        with pytest.raises(StoreUnavailable, match="cannot be recorded") as err:
            first.integrated.result(30)
        assert err.value.code == "high-water-unwritten"
        with pytest.raises(StoreUnavailable) as err:  # nor anything after it
            log.submit(b"after it").integrated.result(30)
        assert err.value.code == "high-water-unwritten"
        assert log.tree_size == 3  # committed: it was the batch's record that failed
        high_water.rmdir()
        again = log.submit(b"not recorded").integrated.result(30)
        assert (again.index, again.tree_size) == (2, 3)  # answered from the store
        assert _signed_size(high_water) == 3
        assert fill(log, [b"after it"])[0].tree_size == 4
        assert _signed_size(high_water) == 4
    finally:
        log.close()


def test_a_log_held_on_outside_evidence_writes_nothing_and_keeps_the_first_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``refuse_writes``: the service's hold when a quorum of witnesses cosigned a tree the
    log does not extend (the whole data directory restored, ``signed-checkpoint`` with it)."""
    log = Log.open_memory(origin=ORIGIN, note_signers=[signer(_KEY)])
    log.start()
    try:
        fill(log, entries(2))
        assert log.stalled is None
        log.refuse_writes("the witnesses say so")
        log.refuse_writes("a second reason")
        stalled = log.stalled
        assert stalled is not None
        assert (stalled.code, stalled.detail) == ("store-rolled-back", "the witnesses say so")
        for attempt in range(2):
            ticket = log.submit(b"after the hold %d" % attempt)
            with pytest.raises(StoreUnavailable) as err:
                ticket.integrated.result(30)
            assert (err.value.code, err.value.detail) == ("store-rolled-back", stalled.detail)
            assert err.value.retry_after >= 1
        assert log.tree_size == 2
    finally:
        log.close()
    held = [r.getMessage() for r in caplog.records if r.name == "ironroot.log"]
    assert held.count("the witnesses say so") == 1
