"""``ironroot log verify`` on a data directory (its log in SQLite or PostgreSQL) and on a
served log."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import IronrootError
from ironroot.log import CONFIG_PATH, Log, NoteSigner, layout, parse_tile_path
from ironroot_pg import TestStore, add_store_to_config, raw_sql, test_store

ORIGIN = "cli.example/log"


def _data_dir(
    path: Path, key: PrivateKey, count: int, tag: bytes = b"e", store: TestStore | None = None
) -> Path:
    (path / "keys").mkdir(parents=True)
    layout.checkpoint_key_path(path).write_bytes(key.to_pem())
    layout.checkpoint_public_key_path(path).write_bytes(key.public_key.to_pem())
    layout.config_path(path).write_text(
        f'service_issuer = "https://cli.example/log"\n[log]\norigin = "{ORIGIN}"\n'
    )
    if store is not None:
        add_store_to_config(path, store)
    log = Log.open(path, origin=ORIGIN, note_signers=[NoteSigner(ORIGIN, key)], max_batch=50)
    tickets = log.submit_many([tag + b" %d" % i for i in range(count)])
    log.start()
    for ticket in tickets:
        ticket.integrated.result(30)
    log.close()
    return path


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture(params=["sqlite", "postgresql"])
def data_dir(request: pytest.FixtureRequest, tmp_path: Path, key: PrivateKey) -> Iterator[Path]:
    with test_store(request.param) as store:
        yield _data_dir(tmp_path / "data", key, 300, store=store)


def test_verify_dir(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "verify", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert f"ok: log {ORIGIN} verified" in out
    assert "size:        300" in out
    assert "checkpoints: 7" in out


def test_verify_dir_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "verify", str(data_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True
    assert (result["size"], result["tiles"], result["entry_bundles"]) == (300, 3, 2)


def _tamper(data_dir: Path) -> None:
    raw_sql(data_dir, "UPDATE tiles SET data = ? WHERE level = 0 AND idx = 0", bytes(8192))


def test_tampered_dir_exits_1(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _tamper(data_dir)
    assert main(["log", "verify", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert "storage" in err
    assert "tile 0/0 differs" in err


def test_tampered_dir_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _tamper(data_dir)
    assert main(["log", "verify", str(data_dir), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result == {
        "ok": False,
        "error": {"code": "storage", "message": result["error"]["message"], "check": None},
    }


def test_earlier_checkpoint(
    data_dir: Path, key: PrivateKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    early = raw_sql(data_dir, "SELECT note FROM checkpoints WHERE size = 100")[0][0]
    (tmp_path / "early").write_bytes(early)
    assert main(["log", "verify", str(data_dir), "--checkpoint", str(tmp_path / "early")]) == 0
    assert "consistent with the earlier checkpoint at size 100" in capsys.readouterr().out

    fork = _data_dir(tmp_path / "fork", key, 120, tag=b"fork")
    forked = raw_sql(fork, "SELECT note FROM checkpoints WHERE size = 100")[0][0]
    (tmp_path / "forked").write_bytes(forked)
    assert main(["log", "verify", str(data_dir), "--checkpoint", str(tmp_path / "forked")]) == 1
    assert "inconsistent-checkpoint" in capsys.readouterr().err


def test_explicit_key_and_origin(
    data_dir: Path, key: PrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    vkey = NoteSigner(ORIGIN, key).verifier().vkey
    assert main(["log", "verify", str(data_dir), "--key", vkey, "--origin", ORIGIN]) == 0
    other = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ED25519)).verifier().vkey
    assert main(["log", "verify", str(data_dir), "--key", other]) == 1
    assert "does not verify" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["log", "verify", "/nonexistent/dir"],
        ["log", "verify", "https://log.example", "--key", "x+00000000+AA=="],
        ["log", "verify", "."],
    ],
)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2


# --- over HTTP ----------------------------------------------------------------------------


_TILE_DELAY = {"s": 0.0}  # seconds each tile or entry bundle waits before its answer


@pytest.fixture
def server(tmp_path: Path, key: PrivateKey) -> Iterator[tuple[str, Log]]:
    log = Log.open_memory(origin=ORIGIN, note_signers=[NoteSigner(ORIGIN, key)])
    log.start()
    for ticket in log.submit_many([b"served %d" % i for i in range(270)]):
        ticket.integrated.result(30)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.removeprefix("/log/")
            if path.startswith("tile/"):
                time.sleep(_TILE_DELAY["s"])
            try:
                if path == "checkpoint":
                    body = log.checkpoint()
                elif path == CONFIG_PATH:
                    assert self.headers["Accept"] == "application/json"
                    keys = [v.vkey for v in log.note_verifiers]
                    body = json.dumps(
                        {"checkpoint_origin": ORIGIN, "checkpoint_keys": keys}
                    ).encode()
                else:
                    address = parse_tile_path(path)
                    body = (
                        log.read_entry_bundle(address.index, address.width)
                        if address.entries
                        else log.read_tile(address.level, address.index, address.width)
                    )
            except IronrootError:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/log/", log
    finally:
        httpd.shutdown()
        httpd.server_close()
        log.close()


@pytest.mark.integration
def test_verify_url(server: tuple[str, Log], capsys: pytest.CaptureFixture[str]) -> None:
    url, log = server
    assert main(["log", "verify", url, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["ok"], result["size"], result["tiles"]) == (True, 270, 3)
    assert base64.b64decode(result["root"]) == log.root()


@pytest.mark.integration
def test_verify_url_with_a_foreign_key(server: tuple[str, Log]) -> None:
    url, _ = server
    other = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ED25519)).verifier().vkey
    assert main(["log", "verify", url, "--key", other, "--origin", ORIGIN]) == 1


@pytest.mark.integration
def test_verify_url_within_a_deadline(
    server: tuple[str, Log], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log answering each resource just within the per-request bound, but slowly, held
    ``log verify URL`` as long as it liked: ``--deadline`` bounds the whole read."""
    url, _ = server
    monkeypatch.setitem(_TILE_DELAY, "s", 0.3)
    started = time.monotonic()
    assert main(["log", "verify", url, "--deadline", "0.5", "--json"]) == 1
    assert time.monotonic() - started < 5
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "unreachable"
    assert "the log was not read within 0.5 s" in error["message"]
    monkeypatch.setitem(_TILE_DELAY, "s", 0.0)
    assert main(["log", "verify", url, "--deadline", "30"]) == 0
    capsys.readouterr()
    for bad in ("0", "-1", "nan", "inf"):
        assert main(["log", "verify", url, "--deadline", bad]) == 2
    assert main(["log", "verify", ".", "--deadline", "5"]) == 2  # a directory has no deadline


@pytest.mark.integration
def test_verify_url_that_serves_nothing() -> None:
    assert main(["log", "verify", "http://127.0.0.1:9/"]) == 1


@pytest.mark.integration
def test_verify_url_with_another_origin_fails(
    server: tuple[str, Log], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--origin`` without ``--key`` was ignored for a URL: the log was verified under the
    origin and keys the server itself named, and the check passed (exit 0) for a log that
    is not the one asked for."""
    url, _ = server
    assert main(["log", "verify", url, "--origin", "another.example/log", "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert (error["code"], error["message"]) == (
        "verification-failed",
        f"the log names its origin {ORIGIN!r}, not 'another.example/log' (--origin)",
    )
    assert main(["log", "verify", url, "--origin", ORIGIN]) == 0


@pytest.mark.integration
def test_export_from_a_url_with_another_origin_writes_nothing(
    server: tuple[str, Log], tmp_path: Path
) -> None:
    url, _ = server
    out = tmp_path / "mirror"
    argv = ["log", "export-tiles", str(out), "--url", url, "--origin", "another.example/log"]
    assert main(argv) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["log", "verify", "http://log.example/prefix/", "--json"],
        ["log", "export-tiles", "OUT", "--url", "http://log.example/prefix/", "--json"],
        ["log", "export-tiles", "OUT", "--url", "http://192.0.2.7:8080/", "--json"],
    ],
)
def test_keys_are_never_fetched_over_plain_http_from_another_host(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--key``, the checkpoint keys come from the log's transparency configuration:
    over plain HTTP to a host other than the loopback, anyone on the path could serve their
    own keys, checkpoint and tiles, and the log was reported verified (exit 0). Keys fetched
    so are refused before anything is asked of the host (as ``--service-keys`` does)."""
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    error = json.loads(capsys.readouterr().out.splitlines()[-1])["error"]
    assert error["code"] == "config"
    assert error["message"] == (
        "keys fetched over plain HTTP could be swapped by anyone on the path: give the log's "
        "--origin and --key, or an https:// URL (http:// is read for keys from a loopback "
        "address only)"
    )
    assert not (tmp_path / "out").exists()
