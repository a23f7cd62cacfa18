"""``ironroot monitor`` never prints or emits the password of a ``--url`` that carries one
(``https://user:password@host/``, basic auth).

The HTTP fetcher named the URL without its user information
(:func:`ironroot._httpclient.shown_url`), but the monitor printed the operator's ``--url`` as
given: in ``failed …`` lines, the ``url`` of ``--json``/``--ndjson`` failures and events, the
messages of its errors (exit lines), its log records (the key trusted on first use, a fork).
A URL that does not parse is named by a fixed placeholder, never as typed. What the state
keys by URL (the pins trusted on first use) is unchanged: the URL as given.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hostile_http import HostileServer, bounded
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import IronrootError
from ironroot.log import CONFIG_PATH, Log, NoteSigner, parse_tile_path
from ironroot.monitor import MonitorStore

ORIGIN = "password.example/log"
SIGNER = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ED25519))
VKEY = SIGNER.verifier().vkey
PASSWORD = "s3cret-Pa55word"
UNPARSED = "(a URL that does not parse)"


def _log(*items: bytes) -> Log:
    log = Log.open_memory(origin=ORIGIN, note_signers=[SIGNER])
    log.start()
    for ticket in log.submit_many(list(items)):
        ticket.integrated.result(30)
    return log


@pytest.fixture(scope="module")
def logs() -> Iterator[dict[str, Log]]:
    made = {"honest": _log(b"one", b"two"), "forked": _log(b"one", b"evil")}
    yield made
    for log in made.values():
        log.close()


def _source(log: Log) -> Callable[[str], bytes | None]:
    def source(path: str) -> bytes | None:
        try:
            if path == "checkpoint":
                return log.checkpoint()
            if path == CONFIG_PATH:
                return json.dumps({"checkpoint_origin": ORIGIN, "checkpoint_keys": [VKEY]}).encode()
            address = parse_tile_path(path)
            if address.entries:
                return log.read_entry_bundle(address.index, address.width)
            return log.read_tile(address.level, address.index, address.width)
        except IronrootError:
            return None

    return source


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://operator:{PASSWORD}@", 1)


def _closed_port() -> str:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert "operator:" not in text


def test_monitor_once_names_no_password(
    logs: dict[str, Log],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Trusted on first use (a warning naming the URL), verified (an event), then forked
    (an error record and a FORK line), beside a URL that cannot be reached (``failed``)."""
    state = tmp_path / "monitor.sqlite3"
    down = _closed_port()
    with (
        HostileServer(_source(logs["honest"])) as server,
        bounded(60),
        caplog.at_level("WARNING", logger="ironroot.monitor"),
    ):
        url = _with_password(server.url)
        argv = ["monitor", "once", "--state", str(state), "--url", url, "--url",
                _with_password(down), "--check-timeout", "2"]  # fmt: skip
        assert main([*argv, "--json"]) == 1
        first = capsys.readouterr()
        server.source = _source(logs["forked"])
        assert main(argv) == 1
        second = capsys.readouterr()
    doc = json.loads(first.out)
    assert [e["url"] for e in doc["events"]] == [server.url]
    assert [f["url"] for f in doc["failures"]] == [down]
    assert doc["error"]["message"].startswith(f"{down}: ")
    assert second.out.startswith(f"FORK {ORIGIN} at {server.url}: ")
    assert second.err.startswith(f"failed {down}: unreachable: ")
    logged = [r.getMessage() for r in caplog.records]
    assert any(f"served by {server.url} on first use" in m for m in logged)
    assert any(m.startswith(f"fork of {ORIGIN} at {server.url}: ") for m in logged)
    _no_password(first.out, first.err, second.out, second.err, *logged)
    # the pin is kept under the URL as given: the next run finds it, trusting nothing anew
    store = MonitorStore(state, create=False)
    try:
        assert store.pin(url) == (ORIGIN, (VKEY,))
        assert store.pin(server.url) is None
    finally:
        store.close()
    assert main(["monitor", "status", "--state", str(state)]) == 0
    assert main(["monitor", "status", "--state", str(state), "--json"]) == 0
    assert main(["monitor", "forks", "--state", str(state), "--json"]) == 0
    shown = capsys.readouterr()
    assert f"{ORIGIN}: size 2 verified at " in shown.out
    _no_password(shown.out, shown.err)


def test_the_error_of_one_url_names_no_password(
    logs: dict[str, Log],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With one URL the round's error is the command's, its message naming the URL: a log
    gone back (its smaller checkpoint kept with the URL), then a ``behind`` event naming the
    URL that served the kept checkpoint."""
    state = tmp_path / "monitor.sqlite3"
    back = _log(b"one")
    try:
        with HostileServer(_source(logs["honest"])) as server, bounded(30):
            url = _with_password(server.url)
            argv = ["monitor", "once", "--state", str(state), "--url", url, "--key", VKEY,
                    "--check-timeout", "2", "--json"]  # fmt: skip
            assert main(argv) == 0
            capsys.readouterr()
            server.source = _source(back)
            assert main(argv) == 1
            gone = capsys.readouterr()
            server.source = _source(logs["honest"])
            with caplog.at_level("WARNING", logger="ironroot.monitor"):
                assert main(argv) == 0
            kept = capsys.readouterr()
    finally:
        back.close()
    error = json.loads(gone.out)["error"]
    assert error["message"].startswith(f"{server.url} serves {ORIGIN} at size 1, smaller "), error
    events = json.loads(kept.out)["events"]
    assert [(e["event"], e["url"]) for e in events] == [("behind", server.url)]
    _no_password(gone.out, gone.err, kept.out, kept.err, *(r.getMessage() for r in caplog.records))


def test_monitor_follow_names_no_password(
    logs: dict[str, Log],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = tmp_path / "monitor.sqlite3"
    down = _closed_port()
    with (
        HostileServer(_source(logs["honest"])) as server,
        bounded(60),
        caplog.at_level("WARNING", logger="ironroot.monitor"),
    ):
        code = main(["monitor", "follow", "--state", str(state), "--url",
                     _with_password(server.url), "--url", _with_password(down), "--key", VKEY,
                     "--check-timeout", "2", "--rounds", "1", "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(d["event"], d["url"]) for d in lines] == [
        ("checkpoint", server.url),
        ("error", down),
    ]
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"round 1: {down}: unreachable: ") for m in logged)
    _no_password(out, err, *logged)


@pytest.mark.parametrize(
    "url",
    [
        f"http://operator:{PASSWORD}@[::1",  # a bracket left open
        f"http://operator:{PASSWORD}@h\udcff/",  # a byte that is not UTF-8 (os.fsdecode)
        f"http://operator:{PASSWORD}@bad\x01host/",  # a control character
    ],
)
def test_a_url_that_does_not_parse_is_named_by_a_placeholder(
    logs: dict[str, Log],
    url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = tmp_path / "monitor.sqlite3"
    with (
        HostileServer(_source(logs["honest"])) as server,
        bounded(30),
        caplog.at_level("WARNING", logger="ironroot.monitor"),
    ):
        argv = ["--state", str(state), "--url", server.url, "--url", url, "--key", VKEY,
                "--check-timeout", "2"]  # fmt: skip
        assert main(["monitor", "once", *argv, "--json"]) == 1
        once = capsys.readouterr()
        assert main(["monitor", "once", *argv]) == 1
        text = capsys.readouterr()
        assert main(["monitor", "follow", *argv, "--rounds", "1", "--json"]) == 1
        follow = capsys.readouterr()
    assert [f["url"] for f in json.loads(once.out)["failures"]] == [UNPARSED]
    assert text.err.startswith(f"failed {UNPARSED}: malformed: the URL of the log is not valid: ")
    assert json.loads(follow.out.splitlines()[-1])["url"] == UNPARSED
    logged = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith(f"round 1: {UNPARSED}: malformed: the URL of the log is not valid: ")
        for m in logged
    )
    _no_password(once.out, once.err, text.out, text.err, follow.out, follow.err, *logged)


def test_a_url_of_another_scheme_is_refused_naming_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["monitor", "once", "--state", str(tmp_path / "m.sqlite3"), "--url",
                 f"ftp://operator:{PASSWORD}@logs.example/", "--key", VKEY])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(
        "ironroot: config: --url 'ftp://logs.example/': a log URL starts with http:// or https://"
    ), err
    _no_password(out, err)
