"""What an operator's page costs as the logs grow: the overview, the alerts, the reviews and the
keys pages read every entry of every log (an unannounced release, a SAFE review or an HSM's
audit checkpoint may be anywhere in it), and the overview's alerts check the latest 1,000
checkpoints of each. The logs are append-only and anyone an issuer policy admits writes to
them: a page that parsed all of it again on every view grew with the log (some 160 us an
entry: a log of 10^6 entries was minutes per view). What was read is kept; a view reads what
was added since. Each test fails if its defence goes."""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.web.conftest import log_in
from tests.web.web_world import WebWorld

import ironroot.web._logs as web_logs
from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.http import ServerThread
from ironroot.log import (
    Checkpoint,
    NoteSigner,
    SqliteLogStore,
    TileTree,
    layout,
    sign_checkpoint,
)
from ironroot.log import open_checkpoint as open_note
from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService
from ironroot.web import Dashboard, LogSource, create_dashboard_app
from ironroot.web._logs import EntryRow

pytestmark = pytest.mark.integration

ISSUER = "https://anyone.example"


def _public_log(root: Path) -> tuple[Path, PrivateKey]:
    log = root / "pub-log"
    log.mkdir()
    issuer = PrivateKey.generate(Algorithm.ES384)
    (log / "issuer.pub.pem").write_bytes(issuer.public_key.to_pem())
    (log / "ironroot.toml").write_text(
        '[transparency]\nservice_issuer = "https://pub.example"\nbatch_linger = 0.0\n'
        f'[[transparency.issuers]]\niss = "{ISSUER}"\nkey = "issuer.pub.pem"\n'
        '[log]\norigin = "pub.example/log"\n'
    )
    return log, issuer


def _register(log: Path, issuer: PrivateKey, subjects: list[str]) -> None:
    with (
        TransparencyService.open(log) as service,
        ServiceThread(service) as running,
        TransparencyClient(running.url) as writer,
    ):
        for subject in subjects:
            writer.register(create_statement(issuer, b"{}", iss=ISSUER, sub=subject))


class _Counted:
    """Every range of entries a store is asked for, every checkpoint note the dashboard
    opens (its signature checked) and every consistency proof it makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries: list[tuple[int, int]] = []
        self.notes: list[int] = []
        self.proofs: list[tuple[int, int]] = []
        entries, proof, opened = SqliteLogStore.entries, TileTree.consistency_proof, open_note

        def counted_entries(store: SqliteLogStore, start: int, stop: int) -> list[bytes]:
            self.entries.append((start, stop))
            return entries(store, start, stop)

        def counted_proof(tree: TileTree, old: int, new: int) -> list[bytes]:
            self.proofs.append((old, new))
            return proof(tree, old, new)

        def counted_open(note: bytes, *args: Any, **kwargs: Any) -> Checkpoint:
            checkpoint = opened(note, *args, **kwargs)
            self.notes.append(checkpoint.size)
            return checkpoint

        monkeypatch.setattr(SqliteLogStore, "entries", counted_entries)
        monkeypatch.setattr(TileTree, "consistency_proof", counted_proof)
        monkeypatch.setattr(web_logs, "open_checkpoint", counted_open)

    def read(self) -> int:
        """Entries read since the last call."""
        total = sum(stop - start for start, stop in self.entries)
        self.entries.clear()
        return total


@pytest.fixture
def public_log(tmp_path: Path) -> tuple[Path, PrivateKey]:
    log, issuer = _public_log(tmp_path)
    _register(log, issuer, [f"pkg:x/{n}" for n in range(6)])
    return log, issuer


def test_every_entry_is_parsed_once_and_a_later_view_reads_what_was_added(
    public_log: tuple[Path, PrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, issuer = public_log
    counted = _Counted(monkeypatch)
    source = LogSource(log)
    first = source.all_entries()
    assert [r.sub for r in first] == [f"pkg:x/{n}" for n in range(6)]
    assert counted.read() == 6
    assert source.all_entries() == first
    assert counted.read() == 0  # was 6: the whole log again on every page
    _register(log, issuer, ["pkg:x/6", "pkg:x/7"])
    counted.read()  # the service's own reads
    later = source.all_entries()
    assert later[:6] == first
    assert [r.sub for r in later[6:]] == ["pkg:x/6", "pkg:x/7"]
    assert all(r.registered is not None for r in later)
    assert counted.read() == 2
    source.close()


def test_a_log_file_replaced_is_read_again_from_its_start(
    public_log: tuple[Path, PrivateKey], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _issuer = public_log
    (tmp_path / "other").mkdir()
    other, other_issuer = _public_log(tmp_path / "other")
    _register(other, other_issuer, [f"pkg:y/{n}" for n in range(8)])  # longer: not a rewind
    counted = _Counted(monkeypatch)
    source = LogSource(log)
    assert len(source.all_entries()) == 6
    shutil.copy2(log / "log.sqlite3", tmp_path / "kept.sqlite3")
    (log / "log.sqlite3").unlink()
    shutil.copy2(other / "log.sqlite3", log / "log.sqlite3")  # the service restored another
    counted.read()
    assert [r.sub for r in source.all_entries()] == [f"pkg:y/{n}" for n in range(8)]
    assert counted.read() == 8
    source.close()


def test_the_checkpoints_the_alerts_check_are_verified_once(
    public_log: tuple[Path, PrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, issuer = public_log
    counted = _Counted(monkeypatch)
    source = LogSource(log)
    first = source.checkpoints(limit=1000)
    assert first
    assert all(r.signed and r.consistent is not False for r in first)
    assert sorted(counted.notes) == sorted(r.size for r in first)
    assert len(counted.proofs) == len(first) - 2  # none from 0, none before the first
    counted.notes.clear()
    counted.proofs.clear()
    assert source.checkpoints(limit=1000) == first
    assert counted.notes == []  # was every note opened and every proof made again
    assert counted.proofs == []
    _register(log, issuer, ["pkg:x/6"])
    later = source.checkpoints(limit=1000)
    assert later[1:] == first
    assert later[0].consistent is True
    assert later[0].consistent_with == first[0].size
    assert counted.notes == [later[0].size]
    assert counted.proofs == [(first[0].size, later[0].size)]
    source.close()


def test_a_checkpoint_rewritten_in_place_after_a_view_is_caught(
    public_log: tuple[Path, PrivateKey],
) -> None:
    log, _issuer = public_log
    source = LogSource(log)
    sizes = [r.size for r in reversed(source.checkpoints())]
    assert all(r.consistent is not False for r in source.checkpoints())
    key = PrivateKey.from_pem(layout.checkpoint_key_path(log).read_bytes())
    forged = sign_checkpoint(
        Checkpoint(source.origin, sizes[-2], bytes(32)), [NoteSigner(source.origin, key)]
    )
    with contextlib.closing(sqlite3.connect(log / "log.sqlite3")) as db, db:
        db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (forged, sizes[-2]))
    rows = {row.size: row for row in source.checkpoints()}  # the same store, kept open
    assert rows[sizes[-2]].root == "00" * 32
    assert rows[sizes[-2]].consistent is False
    assert rows[sizes[-1]].consistent is False
    assert (rows[sizes[-2]].error or "").startswith("invalid-proof")
    source.close()


def test_a_second_view_of_the_overview_parses_no_entry_again(
    world: WebWorld, public_log: tuple[Path, PrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _issuer = public_log
    root = log.parent
    state = root / "dashboard"
    state.mkdir(mode=0o700)
    for name in ("operators.json", "session.key"):
        shutil.copy2(world.data / "dashboard" / name, state / name)
    (root / "dashboard.toml").write_text(  # the world's fleet: its products are looked for
        f'[sources]\nlogs = ["pub-log"]\nfleet = "{world.data / "fleet"}"\n'
        f'keyrelease = ["{world.data / "keyrelease"}"]\n'
    )
    counted = _Counted(monkeypatch)
    with (
        ServerThread(create_dashboard_app(Dashboard.open(root))) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        counted.read()
        for page in ("/", "/alerts", "/reviews", "/keys"):
            assert operator.get(page).status_code == 200, page
        assert counted.read() == 6
        for page in ("/", "/alerts", "/reviews", "/keys"):
            assert operator.get(page).status_code == 200, page
        assert counted.read() == 0


def test_the_public_registrations_chart_reads_each_batch_once(
    public_log: tuple[Path, PrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the chart is on the public /log page: 2,048 batches' receipt data read and decoded
    # on every request was some 0.1 s of the server's time for any anonymous GET
    log, issuer = public_log
    reads: list[int] = []
    batch_data = SqliteLogStore.batch_data

    def counted(store: SqliteLogStore, size: int) -> dict[str, bytes] | None:
        reads.append(size)
        return batch_data(store, size)

    monkeypatch.setattr(SqliteLogStore, "batch_data", counted)
    source = LogSource(log)
    first = source.registrations()
    assert sum(n for _, n in first) == 6
    assert len(reads) == len(first)
    reads.clear()
    assert source.registrations() == first
    assert reads == []  # was every batch again
    _register(log, issuer, ["pkg:x/6"])
    reads.clear()
    later = source.registrations()
    assert later[:-1] == first
    assert later[-1][1] == 1
    assert len(reads) == 1
    source.close()


def test_a_long_first_reading_of_the_entries_holds_back_no_public_page(
    public_log: tuple[Path, PrivateKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first reading of a long log's entries takes minutes at 10^6: the public pages'
    # checkpoints and chart, which keep what they verified too, do not wait for it
    log, _issuer = public_log
    source = LogSource(log)
    parsing, release = threading.Event(), threading.Event()
    row = LogSource._row

    def slow(index: int, entry: bytes, registered: int | None = None) -> EntryRow:
        parsing.set()
        release.wait(10)
        return row(index, entry, registered)

    monkeypatch.setattr(LogSource, "_row", staticmethod(slow))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        reading = pool.submit(source.all_entries)
        assert parsing.wait(10)
        started = time.monotonic()
        assert source.checkpoints()
        assert source.registrations()
        waited = time.monotonic() - started
        release.set()
        assert len(reading.result(10)) == 6
    assert waited < 5
    source.close()
