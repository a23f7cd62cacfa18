"""The monitor's state rolled back or swapped behind its back (a backup restored, another
monitor's file copied in): its high-water file (``<state>.verified``) refuses it, since a
rolled-back state would accept a fork of what was verified, and a swapped one would skip
statements about watched subjects, both without a word."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from witness_testkit import ORIGIN, LogFetcher, entries, grown, statement

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StorageError
from ironroot.log import Log
from ironroot.monitor import Monitor, MonitorStore, Watch

ROLLED_BACK = r"was verified \(its high-water file .*\): the state was rolled back or swapped"


class At(LogFetcher):
    """The log as it was at ``size`` (its signed checkpoint then)."""

    def __init__(self, log: Log, size: int) -> None:
        super().__init__(log)
        self.size = size

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path == "checkpoint":
            return self.log.checkpoint_at(self.size)
        return super().fetch(path, accept=accept)


def _check(path: Path, log: Log, size: int, watch: Watch | None = None) -> list[str]:
    store = MonitorStore(path)
    try:
        events = Monitor(store, watch=watch).check("a", At(log, size), log.note_verifiers)
        return [e.kind for e in events]
    finally:
        store.close()


@pytest.fixture
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.mark.parametrize("how", ["backup", "row deleted"])
def test_a_rolled_back_state_is_refused_not_a_fork_accepted(
    tmp_path: Path, log_key: PrivateKey, how: str
) -> None:
    """Verified at 3 (a backup taken), then at 5; the backup restored. The forked log (the
    same first 3 entries, then others) extends 3 but not 5: the old monitor took it as the
    log's next checkpoint (no fork, exit 0)."""
    honest = grown(log_key, entries(3), entries(2, 3))
    forked = grown(log_key, entries(3), entries(5, 3, tag=b"evil"))
    path = tmp_path / "monitor.sqlite3"
    try:
        assert _check(path, honest, 3) == ["checkpoint"]
        shutil.copy(path, tmp_path / "backup")
        assert _check(path, honest, 5) == ["checkpoint"]
        if how == "backup":
            shutil.copy(tmp_path / "backup", path)
        else:
            db = sqlite3.connect(path)
            db.execute("DELETE FROM logs")
            db.commit()
            db.close()
        have = 3 if how == "backup" else 0
        store = MonitorStore(path)
        try:
            with pytest.raises(StorageError, match=f"holds {ORIGIN} at size {have}, but size 5"):
                Monitor(store).check("a", LogFetcher(forked), forked.note_verifiers)
            with pytest.raises(StorageError, match=ROLLED_BACK):
                store.states()
        finally:
            store.close()
        assert main(["monitor", "status", "--state", str(path)]) == 1
    finally:
        honest.close()
        forked.close()


def test_another_monitors_state_is_refused_not_watched_statements_skipped(
    tmp_path: Path, log_key: PrivateKey
) -> None:
    """Monitor A (watching pkg:fw/bmc) verified 3 entries; monitor B (watching nothing) read
    the statement about pkg:fw/bmc that came next. B's file copied over A's: the old A started
    from B's size and never reported the statement."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    log = grown(log_key, entries(3), [statement(vendor, "pkg:fw/bmc")])
    mine, theirs = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    watch = Watch(frozenset({"pkg:fw/bmc"}))
    try:
        assert _check(mine, log, 3, watch) == ["checkpoint"]
        assert _check(theirs, log, 4) == ["checkpoint"]
        shutil.copy(theirs, mine)
        with pytest.raises(StorageError, match="is not the one its high-water file"):
            _check(mine, log, 4, watch)
        assert main(["monitor", "status", "--state", str(mine)]) == 1
    finally:
        log.close()


def test_a_state_without_its_high_water_file_is_refused(
    tmp_path: Path, log_key: PrivateKey
) -> None:
    log = grown(log_key, entries(3))
    path = tmp_path / "monitor.sqlite3"
    try:
        _check(path, log, 3)
        Path(f"{path}.verified").unlink()
        with pytest.raises(StorageError, match=r"monitor.sqlite3.verified of .* is missing"):
            MonitorStore(path)
        # nor is a high-water file beside a database that has no instance (restored from
        # before the monitor kept one, or built by hand)
        _check(tmp_path / "other.sqlite3", log, 3)
        shutil.copy(tmp_path / "other.sqlite3.verified", f"{path}.verified")
        db = sqlite3.connect(path)
        db.execute("DELETE FROM meta WHERE key = 'instance'")
        db.commit()
        db.close()
        with pytest.raises(StorageError, match="has no instance but a high-water file"):
            MonitorStore(path)
    finally:
        log.close()


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"instance": "", "logs": {}}',
        '{"instance": "x", "logs": {"o": {"size": -1, "root": "", "note": ""}}}',
        '{"instance": "x", "logs": {"o": {"size": 1, "root": "!!", "note": ""}}}',
        '{"instance": "x", "logs": {}, "kept": []}',
        '{"instance": "x", "logs": {}, "kept": {"o": {"count": -1, "digest": ""}}}',
        '{"instance": "x", "logs": {}, "kept": {"o": {"count": true, "digest": ""}}}',
        '{"instance": "x", "logs": {}, "kept": {"o": {"count": 1, "digest": "AAAA"}}}',
        '{"instance": "x", "logs": {}, "kept": {"o": {"count": 1}}}',
        "[" * 5000,
    ],
)
def test_a_malformed_high_water_file_is_refused(
    tmp_path: Path, log_key: PrivateKey, text: str
) -> None:
    log = grown(log_key, entries(3))
    path = tmp_path / "monitor.sqlite3"
    try:
        _check(path, log, 3)
        Path(f"{path}.verified").write_text(text)
        with pytest.raises(StorageError, match=r"the high-water file .* is malformed"):
            MonitorStore(path)
    finally:
        log.close()


def test_a_high_water_mark_whose_note_is_not_its_checkpoint_is_refused(
    tmp_path: Path, log_key: PrivateKey
) -> None:
    log = grown(log_key, entries(3), entries(2, 3))
    path = tmp_path / "monitor.sqlite3"
    try:
        _check(path, log, 5)
        marks = json.loads(Path(f"{path}.verified").read_text())
        marks["logs"][ORIGIN]["size"] = 9  # raised by hand: the note says 5
        Path(f"{path}.verified").write_text(json.dumps(marks))
        with pytest.raises(StorageError, match=r"high-water mark .* that is not its note's"):
            MonitorStore(path)
    finally:
        log.close()


def test_a_high_water_file_behind_the_state_is_no_alarm(
    tmp_path: Path, log_key: PrivateKey
) -> None:
    """A crash after the state committed and before the high-water file was replaced leaves
    it behind: the state is what was verified last, and the next advance raises the mark."""
    log = grown(log_key, entries(3), entries(2, 3), entries(2, 5))
    path = tmp_path / "monitor.sqlite3"
    try:
        _check(path, log, 3)
        shutil.copy(f"{path}.verified", tmp_path / "old-marks")
        _check(path, log, 5)
        shutil.copy(tmp_path / "old-marks", f"{path}.verified")
        assert _check(path, log, 7) == ["checkpoint"]
        marks = json.loads(Path(f"{path}.verified").read_text())
        assert marks["logs"][ORIGIN]["size"] == 7
    finally:
        log.close()


def test_a_state_file_older_than_high_water_files_gets_one(
    tmp_path: Path, log_key: PrivateKey
) -> None:
    log = grown(log_key, entries(3), entries(2, 3))
    path = tmp_path / "monitor.sqlite3"
    try:
        _check(path, log, 3)
        Path(f"{path}.verified").unlink()
        db = sqlite3.connect(path)
        db.execute("DELETE FROM meta WHERE key = 'instance'")
        db.commit()
        db.close()
        store = MonitorStore(path, create=False)
        assert [s.size for s in store.states()] == [3]
        store.close()
        marks = json.loads(Path(f"{path}.verified").read_text())
        assert marks["logs"][ORIGIN]["size"] == 3
        assert _check(path, log, 5) == ["checkpoint"]
    finally:
        log.close()


def test_a_memory_store_has_no_high_water_file(tmp_path: Path, log_key: PrivateKey) -> None:
    log = grown(log_key, entries(3))
    store = MonitorStore(":memory:")
    try:
        Monitor(store).check("a", LogFetcher(log), log.note_verifiers)
        assert list(tmp_path.iterdir()) == []
    finally:
        store.close()
        log.close()


def test_a_state_file_is_bound_to_the_path_it_is_opened_by(
    tmp_path: Path, log_key: PrivateKey
) -> None:
    """The documented limit: the high-water file sits beside the path given, so a second
    path to the same file (a link) has none and is refused; so is a link swapped to another
    monitor's file, whose high-water file is elsewhere."""
    log = grown(log_key, entries(3))
    try:
        _check(tmp_path / "real.sqlite3", log, 3)
        (tmp_path / "link.sqlite3").symlink_to(tmp_path / "real.sqlite3")
        with pytest.raises(StorageError, match=r"link.sqlite3.verified of .* is missing"):
            MonitorStore(tmp_path / "link.sqlite3")
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "m.sqlite3").symlink_to(tmp_path / "real.sqlite3")
        shutil.copy(tmp_path / "real.sqlite3.verified", tmp_path / "mine" / "m.sqlite3.verified")
        assert _check(tmp_path / "mine" / "m.sqlite3", log, 3) == []
        _check(tmp_path / "other.sqlite3", log, 3)
        (tmp_path / "mine" / "m.sqlite3").unlink()
        (tmp_path / "mine" / "m.sqlite3").symlink_to(tmp_path / "other.sqlite3")
        with pytest.raises(StorageError, match="is not the one its high-water file"):
            MonitorStore(tmp_path / "mine" / "m.sqlite3")
    finally:
        log.close()


def test_a_first_open_cut_short_before_its_high_water_file_is_not_refused_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_key: PrivateKey
) -> None:
    """The instance is committed, then the high-water file written: a first open killed, or
    out of disk space, in between left a state refused at every open after ("missing"),
    though nothing was ever verified that a rollback could undo."""

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    path = tmp_path / "monitor.sqlite3"
    with monkeypatch.context() as patch:
        patch.setattr("ironroot._statedb.write_atomic", full)
        with pytest.raises(StorageError, match="cannot write the high-water file"):
            MonitorStore(path)
    assert not Path(f"{path}.verified").exists()
    log = grown(log_key, entries(3))
    try:
        assert _check(path, log, 3) == ["checkpoint"]
        Path(f"{path}.verified").unlink()  # and from then on it is protected
        with pytest.raises(StorageError, match="is missing"):
            MonitorStore(path)
    finally:
        log.close()
