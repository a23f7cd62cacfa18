"""What ``monitor status`` and ``monitor forks`` print of a log's own text: its origin.

A checkpoint's origin may hold any character but C0 controls (c2sp.org/tlog-checkpoint), and
a log followed on first use (no ``--key``) chooses its own: a right-to-left override that
reorders the rest of the line, an 8-bit CSI (U+009B) that some terminals read as an escape
sequence. The monitor's event lines and errors were shown (:func:`ironroot._text.shown`);
these two listings printed the origin as it is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import Log, NoteSigner, NoteVerifier, parse_tile_path
from ironroot.monitor import Monitor, MonitorStore

ORIGIN = "evil.example/\u202egol\u009b2K"
SHOWN = "evil.example/[U+202E]gol[U+009B]2K"
_KEY = PrivateKey.generate(Algorithm.ED25519)
_SIGNER = NoteSigner(ORIGIN, _KEY)


class _Fetcher:
    """A Log's read API by path."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path == "checkpoint":
            return self.log.checkpoint()
        address = parse_tile_path(path)
        if address.entries:
            return self.log.read_entry_bundle(address.index, address.width)
        return self.log.read_tile(address.level, address.index, address.width)


def _log(*items: bytes) -> Log:
    log = Log.open_memory(origin=ORIGIN, note_signers=[_SIGNER])
    log.start()
    for ticket in log.submit_many(list(items)):
        ticket.integrated.result(30)
    return log


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A monitor state that verified the log at size 1, then found a fork of it (another
    root at size 1, signed by the same key)."""
    path = tmp_path / "monitor.sqlite3"
    keys = (NoteVerifier.from_vkey(_SIGNER.verifier().vkey),)
    store = MonitorStore(path)
    honest, forked = _log(b"one"), _log(b"other")
    try:
        monitor = Monitor(store)
        monitor.check("https://evil.example", _Fetcher(honest), keys)
        (fork,) = monitor.check("https://evil.example", _Fetcher(forked), keys)
        assert fork.kind == "fork"
    finally:
        honest.close()
        forked.close()
        store.close()
    return path


def test_monitor_status_shows_the_origin(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "status", "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{SHOWN}: size 1 verified at ")
    assert not any(c in out for c in "\u202e\u009b")


def test_monitor_forks_shows_the_origin(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "forks", "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"#1 {SHOWN} at ")
    assert not any(c in out for c in "\u202e\u009b")


def test_the_monitor_logs_the_origin_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The fork's error record (and the keys trusted on first use, named by the log) reach
    stderr through Python's last-resort handler when no ``--log-format`` is given: as the
    record's message is, unshown."""
    with caplog.at_level("WARNING", logger="ironroot.monitor"):
        store = MonitorStore(tmp_path / "monitor.sqlite3")
        try:
            keys = (NoteVerifier.from_vkey(_SIGNER.verifier().vkey),)
            honest, forked = _log(b"one"), _log(b"other")
            try:
                Monitor(store).check("https://evil.example", _Fetcher(honest), keys)
                Monitor(store).check("https://evil.example", _Fetcher(forked), keys)
            finally:
                honest.close()
                forked.close()
        finally:
            store.close()
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage().startswith(f"fork of {SHOWN} at https://evil.example: ")


def test_monitor_verify_fork_shows_the_origin(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The proof of a fork is the forking log's own signed text: ``verify-fork`` printed its
    origin as it is."""
    out_dir = tmp_path / "forks"
    assert main(["monitor", "forks", "--state", str(state), "--out-dir", str(out_dir)]) == 0
    capsys.readouterr()
    vkey = _SIGNER.verifier().vkey
    assert main(["monitor", "verify-fork", str(out_dir / "fork-1.json"), "--key", vkey]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"fork proven: {SHOWN} signed two trees that no append-only log can hold\n"
    ), out
    assert not any(c in out for c in "\u202e\u009b")
