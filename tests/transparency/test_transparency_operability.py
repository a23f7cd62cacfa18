"""/health, /ready, /metrics, / and the one-process lock of the transparency service."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import InUse
from ironroot.transparency import ServiceThread, TransparencyService
from serving import free_port
from stale_files import plant_look_alikes, stale_temporary

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_operational_endpoints(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    statement = create_statement(vendor, b"{}", iss=VENDOR_ISS, sub="pkg:x/1")
    with (
        caplog.at_level(logging.INFO, logger="ironroot.access"),
        TransparencyService.open(data, clock=lambda: NOW) as service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert client.get("/health").json() == {
            "status": "ok",
            "service": "transparency",
            "tree_size": 0,
        }
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {
            "store": "ok",
            "keys": "ok",
            "clock": "ok",
            "integration": "ok",
        }
        posted = client.post(
            "/entries", content=statement, headers={"Content-Type": "application/cose"}
        )
        assert posted.status_code == 201
        client.get(f"/entries/{'00' * 32}")  # a 404, labelled by its route template
        metrics = client.get("/metrics").text
        assert 'ironroot_registrations_total{outcome="integrated"} 1.0' in metrics
        assert "ironroot_log_tree_size 1.0" in metrics
        assert "ironroot_log_batch_size_count 1.0" in metrics
        assert (
            'ironroot_http_requests_total{method="GET",route="/entries/{entry_id}",status="404"}'
            " 1.0" in metrics
        )
        assert 'route="/entries",status="201"' in metrics
        page = client.get("/", headers={"Accept": "text/html"})
        assert "<h1>Ironroot transparency</h1>" in page.text
        assert client.get("/").json()["links"]["openapi"] == "/openapi.json"
    lines = [r.getMessage() for r in caplog.records if r.name == "ironroot.access"]
    assert any('"POST /entries HTTP/1.1" 201' in line for line in lines)


def test_one_process_serves_a_data_directory(tmp_path: Path) -> None:
    data = write_config(tmp_path / "data")
    with TransparencyService.open(data, clock=lambda: NOW):
        with pytest.raises(InUse, match="is in use by another process") as caught:
            TransparencyService.open(data, clock=lambda: NOW)
        assert caught.value.exit_code == 2
    # released on close: the directory opens again
    TransparencyService.open(data, clock=lambda: NOW).close()


def test_a_start_removes_the_temporaries_a_killed_write_left_under_its_lock(
    tmp_path: Path,
) -> None:
    data = write_config(tmp_path / "data")
    TransparencyService.open(data, clock=lambda: NOW).close()  # made keys/
    stale = [stale_temporary(data / "keys", "receipt-keys.cbor"), stale_temporary(data)]
    kept = plant_look_alikes(data / "keys")
    with TransparencyService.open(data, clock=lambda: NOW):
        # another start, refused the lock, removes nothing: a write may be under way
        late = stale_temporary(data / "keys", "checkpoint.pub.pem")
        with pytest.raises(InUse):
            TransparencyService.open(data, clock=lambda: NOW)
        assert late.exists()
    assert not any(p.exists() for p in stale)
    assert all(p.is_symlink() or p.exists() for p in kept)
    assert late.exists()  # until the next start


@pytest.mark.parametrize("port", ["0", "99999", "-1"])
def test_serve_refuses_a_bad_port_before_creating_anything(tmp_path: Path, port: str) -> None:
    from ironroot.cli import main

    assert main(["serve", "--data", str(tmp_path / "d"), "--port", port]) == 2
    assert not (tmp_path / "d").exists()


def test_serve_refuses_a_port_in_use_before_creating_anything(tmp_path: Path) -> None:
    import socket

    from ironroot.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--data", str(tmp_path / "d"), "--port", str(port)]) == 2
    assert not (tmp_path / "d").exists()


def test_json_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from ironroot.http import configure_logging

    configure_logging("info", "json", access_log=True)
    try:
        logging.getLogger("ironroot.access").info("hello", extra={"status": 200, "route": "/x"})
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert (line["level"], line["message"], line["status"], line["route"]) == (
            "info",
            "hello",
            200,
            "/x",
        )
        assert line["time"].endswith("+00:00")
    finally:
        logging.getLogger("ironroot").handlers.clear()
        logging.getLogger("ironroot").setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/%1b%5b2J", "/[U+001B][2J"),
        ("/x%0a2026-06-01 INFO ironroot: forged", "/x[U+000A]2026-06-01"),
    ],
)
def test_a_request_s_path_reaches_a_text_log_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str, shown: str
) -> None:
    """The access line quotes the request's path, which the server has percent-decoded: any
    client put an escape sequence (ESC [2J clears the operator's terminal) or a line break
    (a forged line) into a text log."""
    from ironroot.http import configure_logging

    configure_logging("info", "text", access_log=True)
    try:
        data = write_config(tmp_path / "data")
        with (
            TransparencyService.open(data, clock=lambda: NOW) as service,
            ServiceThread(service) as server,
        ):
            assert httpx.get(server.url + path).status_code == 404
        err = capsys.readouterr().err
    finally:
        logging.getLogger("ironroot").handlers.clear()
        logging.getLogger("ironroot").setLevel(logging.NOTSET)
    (line,) = [x for x in err.splitlines() if "ironroot.access" in x]
    assert f'"GET {shown}' in line
    assert "\x1b" not in err
    assert "forged" not in err.replace(line, "")


def test_serve_takes_flags_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """IRONROOT_DATA, _HOST, _PORT, _LOG_LEVEL, _LOG_FORMAT and _TLS_* configure ``serve``; a
    flag given beside one wins."""

    import uvicorn

    from ironroot.cli import main
    from ironroot.http import ServerTls
    from tls_pki import make_pki

    pki = make_pki(tmp_path)
    served: list[uvicorn.Config] = []
    monkeypatch.setattr(
        uvicorn.Server, "run", lambda self, sockets=None: served.append(self.config)
    )

    env_port, flag_port = free_port(), free_port()
    monkeypatch.setenv("IRONROOT_DATA", str(tmp_path / "ts"))
    monkeypatch.setenv("IRONROOT_HOST", "127.0.0.1")
    monkeypatch.setenv("IRONROOT_PORT", str(env_port))
    monkeypatch.setenv("IRONROOT_LOG_FORMAT", "json")
    monkeypatch.setenv("IRONROOT_LOG_LEVEL", "info")
    monkeypatch.setenv("IRONROOT_TLS_CERT", str(pki.server_cert))
    monkeypatch.setenv("IRONROOT_TLS_KEY", str(pki.server_key))
    monkeypatch.setenv("IRONROOT_TLS_CLIENT_CA", str(pki.ca))
    assert main(["serve"]) == 0
    config = served.pop()
    assert (config.host, config.port) == ("127.0.0.1", env_port)
    # the server's protocol does the TLS handshake, with these files (a required client CA)
    assert config.http.tls == ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    err = capsys.readouterr().err
    assert f'"message":"transparency service on https://127.0.0.1:{env_port}: data ' in err
    assert (tmp_path / "ts" / "ironroot.toml").is_file()  # IRONROOT_DATA was used

    monkeypatch.delenv("IRONROOT_TLS_CLIENT_CA")
    other = tmp_path / "flagged"
    argv = ["serve", "--data", str(other), "--port", str(flag_port), "--log-format", "text"]
    assert main([*argv, "--log-level", "warning"]) == 0
    config = served.pop()
    assert config.port == flag_port
    assert config.http.tls == ServerTls(pki.server_cert, pki.server_key)  # no client CA
    assert (other / "ironroot.toml").is_file()
    assert "transparency service on" not in capsys.readouterr().err  # warning: no start-up line
    monkeypatch.setenv("IRONROOT_PORT", "eighty")
    assert main(["serve", "--data", str(other)]) == 2
    assert "IRONROOT_PORT='eighty' is not a port number" in capsys.readouterr().err


def test_a_failing_readiness_check_names_no_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``/ready`` answers anyone: a log store that cannot be read answered with its error's
    detail, which may name the database's file. It says the check's error kind now; the
    detail is in the service's log."""
    from ironroot.errors import StorageError

    secret = str(tmp_path / "data" / "log.db")

    def unreadable(self: object) -> object:
        raise StorageError(f"cannot open the log database {secret}: disk I/O error")

    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    with (
        caplog.at_level(logging.WARNING, logger="ironroot.ready"),
        TransparencyService.open(data, clock=lambda: NOW) as service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        monkeypatch.setattr(type(service.log.store), "state", unreadable)  # either store
        ready = client.get("/ready")
        monkeypatch.undo()
    assert ready.status_code == 503
    assert ready.json()["checks"]["store"] == "storage: Storage Error"
    assert secret not in ready.text
    assert str(tmp_path) not in ready.text
    assert any(secret in r.getMessage() for r in caplog.records if r.name == "ironroot.ready")
