"""A monitor database that lost a smaller checkpoint it kept to settle (``behind``: a backup
taken before a URL served it restored, the row deleted): its high-water file
(``<state>.verified``) holds, per log, the smaller checkpoints kept and not yet settled, so
the loss is refused as a state rolled back is.

Old behaviour: the high-water file held each log's largest verified checkpoint and the tally
of the fork proofs kept, not the smaller checkpoints kept; a copy taken after the last new
state but before a URL served a smaller one (a split view: a fork shown once) opened without a
word, and the only signed trace of that fork was gone — the next round that read the
verified tree settled nothing and found no fork.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import InconsistentCheckpoint, StorageError
from ironroot.log import Checkpoint, Log, NoteSigner, NoteVerifier, parse_tile_path
from ironroot.monitor import Monitor, MonitorStore

ORIGIN = "behind-rollback.example/log"
_SIGNER = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ED25519))
_KEYS = (NoteVerifier.from_vkey(_SIGNER.verifier().vkey),)
LOG_URL, MIRROR = "https://log.example", "https://mirror.example"
LOST = (
    rf"the monitor database .*m.sqlite3 lost 1 of the 1 smaller checkpoints of {ORIGIN} it "
    r"kept to settle \(its high-water file .*m.sqlite3.verified\): the state was rolled back "
    r"or swapped, and cannot be trusted; a smaller checkpoint kept may be the only signed "
    r"trace of a fork, gone without a word"
)


class _Served:
    """A log's tiles and entry bundles, and its checkpoint."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path == "checkpoint":
            return self.log.checkpoint()
        address = parse_tile_path(path)
        if address.entries:
            return self.log.read_entry_bundle(address.index, address.width)
        return self.log.read_tile(address.level, address.index, address.width)


def _log(items: list[bytes]) -> Log:
    log = Log.open_memory(origin=ORIGIN, note_signers=[_SIGNER])
    log.start()
    for ticket in log.submit_many(items):
        ticket.integrated.result(30)
    return log


@pytest.fixture(scope="module")
def honest() -> Iterator[Log]:
    log = _log([b"entry %d" % i for i in range(20)])
    yield log
    log.close()


@pytest.fixture(scope="module")
def split() -> Iterator[Log]:
    """Another view at a smaller size, signed by the log's key: what a mirror shows once."""
    log = _log([b"other %d" % i for i in range(7)])
    yield log
    log.close()


def _check(path: Path, url: str, log: Log) -> list[str]:
    store = MonitorStore(path)
    try:
        return [e.kind for e in Monitor(store).check(url, _Served(log), _KEYS)]
    finally:
        store.close()


def _split_view_kept(path: Path, split: Log) -> None:
    with pytest.raises(InconsistentCheckpoint):
        _check(path, MIRROR, split)


def _water(path: Path) -> dict[str, object]:
    value = json.loads(Path(f"{path}.verified").read_text())
    assert isinstance(value, dict)
    return value


def _edit(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()


def _size(split: Log) -> int:
    return Checkpoint.parse(split.checkpoint().split(b"\n\n")[0] + b"\n").size


@pytest.mark.parametrize("how", ["backup", "row deleted"])
def test_a_state_that_lost_a_smaller_checkpoint_it_kept_is_refused(
    tmp_path: Path,
    honest: Log,
    split: Log,
    how: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "m.sqlite3"
    assert _check(path, LOG_URL, honest) == ["checkpoint"]
    shutil.copy(path, tmp_path / "backup")
    _split_view_kept(path, split)
    if how == "backup":
        shutil.copy(tmp_path / "backup", path)
    else:
        _edit(path, "DELETE FROM behind")
    store = MonitorStore(path)
    try:
        with pytest.raises(StorageError, match=LOST) as refused:
            store.state(ORIGIN)
        assert refused.value.code == "storage"
        assert refused.value.exit_code == 1
        with pytest.raises(StorageError, match=LOST):
            store.states()
        with pytest.raises(StorageError, match=LOST):
            store.behind(ORIGIN)
        # the round that reads the verified tree would have settled nothing, found no fork
        with pytest.raises(StorageError, match=LOST):
            Monitor(store).check(LOG_URL, _Served(honest), _KEYS)
    finally:
        store.close()
    capsys.readouterr()
    assert main(["monitor", "status", "--state", str(path)]) == 1
    err = capsys.readouterr().err
    assert "lost 1 of the 1 smaller checkpoints" in err
    assert "rolled back or swapped" in err


def test_a_smaller_checkpoint_settled_leaves_the_high_water_file(
    tmp_path: Path, honest: Log, split: Log
) -> None:
    path = tmp_path / "m.sqlite3"
    assert _check(path, LOG_URL, honest) == ["checkpoint"]
    assert _water(path)["held"] == {}
    _split_view_kept(path, split)
    held = _water(path)["held"]
    assert isinstance(held, dict)
    assert list(held) == [ORIGIN]
    assert len(held[ORIGIN]) == 1
    assert _check(path, LOG_URL, honest) == ["fork"]  # settled: a fork, its proof kept
    assert _water(path)["held"] == {}
    assert main(["monitor", "status", "--state", str(path)]) == 0


def test_a_high_water_file_behind_the_kept_checkpoints_is_no_alarm(
    tmp_path: Path, honest: Log, split: Log
) -> None:
    """A crash after the smaller checkpoint's row committed and before the high-water file
    was written leaves the file behind: the next open raises it to the rows kept."""
    path = tmp_path / "m.sqlite3"
    assert _check(path, LOG_URL, honest) == ["checkpoint"]
    before = Path(f"{path}.verified").read_bytes()
    _split_view_kept(path, split)
    after = _water(path)
    Path(f"{path}.verified").write_bytes(before)
    store = MonitorStore(path)
    try:
        assert [b.size for b in store.behind(ORIGIN)] == [_size(split)]
    finally:
        store.close()
    assert _water(path) == after


def test_a_kept_checkpoint_settled_but_not_yet_deleted_is_no_alarm(
    tmp_path: Path, honest: Log, split: Log
) -> None:
    """A crash after the high-water file let the smaller checkpoint go and before its row was
    deleted leaves the row: no alarm, and the next round settles it again."""
    path = tmp_path / "m.sqlite3"
    assert _check(path, LOG_URL, honest) == ["checkpoint"]
    before = Path(f"{path}.verified").read_bytes()
    _split_view_kept(path, split)
    Path(f"{path}.verified").write_bytes(before)  # the file without it: as the settling wrote
    assert _check(path, LOG_URL, honest) == ["fork"]
    assert _water(path)["held"] == {}


def test_a_high_water_file_older_than_kept_checkpoints_gains_them(
    tmp_path: Path, honest: Log, split: Log
) -> None:
    """A high-water file written before smaller checkpoints were held (no ``held``): read as
    before, and it gains the ones the database holds as it is opened; from then on a lost
    one is refused."""
    path = tmp_path / "m.sqlite3"
    assert _check(path, LOG_URL, honest) == ["checkpoint"]
    _split_view_kept(path, split)
    old = _water(path)
    held = old.pop("held")
    Path(f"{path}.verified").write_text(json.dumps(old))
    MonitorStore(path, create=False).close()
    assert _water(path)["held"] == held
    _edit(path, "DELETE FROM behind")
    with pytest.raises(StorageError, match=LOST):
        _check(path, LOG_URL, honest)
