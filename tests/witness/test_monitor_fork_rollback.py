"""A monitor database that lost a fork proof it kept (a backup taken before the fork was found
restored, the row deleted or edited): its high-water file (``<state>.verified``) tallies the
fork proofs kept per log (a count and a running digest), so the loss is refused as a state
rolled back is, instead of the only evidence that the log equivocated being gone without a
word."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from witness_testkit import ORIGIN, LogFetcher, entries, grown

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StorageError
from ironroot.log import Log
from ironroot.monitor import Monitor, MonitorStore

LOST = (
    rf"the monitor database .*m.sqlite3 holds 0 fork proofs of {ORIGIN}, but 1 were kept "
    r"\(its high-water file .*m.sqlite3.verified\): the state was rolled back or swapped, and "
    r"cannot be trusted; the proof that the log forked would be gone without a word"
)
OTHER = rf"holds other fork proofs of {ORIGIN} than the 1 kept"


@pytest.fixture(scope="module")
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture(scope="module")
def honest(log_key: PrivateKey) -> Log:
    return grown(log_key, entries(6))


@pytest.fixture(scope="module")
def forked(log_key: PrivateKey) -> Log:
    """The same size as the honest log, other entries: a fork of what was verified."""
    return grown(log_key, entries(6, tag=b"evil"))


def _check(path: Path, log: Log) -> list[str]:
    store = MonitorStore(path)
    try:
        return [e.kind for e in Monitor(store).check("a", LogFetcher(log), log.note_verifiers)]
    finally:
        store.close()


def _forks(path: Path) -> int:
    store = MonitorStore(path, create=False)
    try:
        return len(store.forks())
    finally:
        store.close()


def _marks(path: Path) -> dict[str, object]:
    value = json.loads(Path(f"{path}.verified").read_text())
    assert isinstance(value, dict)
    return value


def _edit(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()


@pytest.mark.parametrize("how", ["backup", "row deleted", "row edited", "row replaced"])
def test_a_state_that_lost_a_fork_proof_is_refused(
    tmp_path: Path, honest: Log, forked: Log, how: str
) -> None:
    """Verified the honest log (a backup taken), then found the fork and kept its proof; the
    backup restored (or the proof deleted, edited, or another put in its place). The old
    monitor opened it without a word: the proof was gone, and the state was at the verified
    size still."""
    path = tmp_path / "m.sqlite3"
    assert _check(path, honest) == ["checkpoint"]
    shutil.copy(path, tmp_path / "backup")
    assert _check(path, forked) == ["fork"]
    assert _forks(path) == 1
    kept = _marks(path).get("kept")
    if how == "backup":
        shutil.copy(tmp_path / "backup", path)
    elif how == "row deleted":
        _edit(path, "DELETE FROM forks")
    elif how == "row edited":
        _edit(path, "UPDATE forks SET at = at + 1")
    else:  # deleted, and a row with the same content but a new id in its place
        _edit(path, "INSERT INTO forks (origin, proof, at) SELECT origin, proof, at FROM forks")
        _edit(path, "DELETE FROM forks WHERE id = (SELECT min(id) FROM forks)")
    store = MonitorStore(path)  # the open itself raises no mark it could not
    try:
        with pytest.raises(StorageError, match=LOST if how in ("backup", "row deleted") else OTHER):
            store.states()
        with pytest.raises(StorageError) as refused:
            store.state(ORIGIN)
        assert refused.value.code == "storage"
        assert refused.value.exit_code == 1
        with pytest.raises(StorageError, match="fork proofs"):  # not a new fork kept over it
            Monitor(store).check("a", LogFetcher(forked), forked.note_verifiers)
        with pytest.raises(StorageError, match="fork proofs"):
            store.add_fork(ORIGIN, b"{}", 1)
    finally:
        store.close()
    assert _marks(path)["kept"] == kept  # never lowered to what the database holds now
    assert main(["monitor", "status", "--state", str(path)]) == 1


def test_a_fork_kept_is_tallied_and_found_again_under_its_one_proof(
    tmp_path: Path, honest: Log, forked: Log
) -> None:
    path = tmp_path / "m.sqlite3"
    assert _check(path, honest) == ["checkpoint"]
    assert _marks(path)["kept"] == {}
    assert _check(path, forked) == ["fork"]
    kept = _marks(path)["kept"]
    assert isinstance(kept, dict)
    assert kept[ORIGIN]["count"] == 1
    assert _check(path, forked) == ["fork"]  # found again: kept once, the tally as it was
    assert _marks(path)["kept"] == kept
    assert _forks(path) == 1
    assert main(["monitor", "status", "--state", str(path)]) == 0


@pytest.mark.parametrize("fork", [False, True])
def test_a_high_water_file_older_than_tallies_gains_them(
    tmp_path: Path, honest: Log, forked: Log, fork: bool
) -> None:
    """A high-water file written before fork proofs were tallied (no ``kept``): read as
    before, and it gains the tally of what the database holds as it is opened; from then on
    a lost proof is refused."""
    path = tmp_path / "m.sqlite3"
    assert _check(path, honest) == ["checkpoint"]
    if fork:
        assert _check(path, forked) == ["fork"]
    old = _marks(path)
    del old["kept"]
    Path(f"{path}.verified").write_text(json.dumps(old))
    store = MonitorStore(path, create=False)
    try:
        assert [s.size for s in store.states()] == [6]
    finally:
        store.close()
    marks = _marks(path)
    assert marks["logs"] == old["logs"]
    kept = marks["kept"]
    assert isinstance(kept, dict)
    assert [t["count"] for t in kept.values()] == ([1] if fork else [])
    if fork:
        _edit(path, "DELETE FROM forks")
        with pytest.raises(StorageError, match=LOST):
            _check(path, honest)
    else:
        assert _check(path, honest) == []


def test_a_tally_behind_the_database_is_no_alarm(tmp_path: Path, honest: Log, forked: Log) -> None:
    """A crash after the fork's row committed and before its tally was written leaves the
    tally behind: the next open raises it to the rows that begin with the ones tallied."""
    path = tmp_path / "m.sqlite3"
    assert _check(path, honest) == ["checkpoint"]
    before = Path(f"{path}.verified").read_bytes()
    assert _check(path, forked) == ["fork"]
    after = _marks(path)
    Path(f"{path}.verified").write_bytes(before)
    store = MonitorStore(path)
    try:
        assert [s.size for s in store.states()] == [6]
    finally:
        store.close()
    assert _marks(path) == after
