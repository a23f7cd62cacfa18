"""``ironroot dashboard`` and ``ironroot fleet serve --dashboard``: the verbs, their exit codes
and messages, and the servers they start (real subprocesses, real sockets)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.web.web_world import WebWorld

import http_calls
from ironroot.cli import main
from ironroot.http import client_context

pytestmark = pytest.mark.integration


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_passwd_adds_an_operator_from_a_password_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "password"
    secret.write_text("a long enough password\n")
    secret.chmod(0o600)
    monkeypatch.setenv("IRONROOT_DASHBOARD_PASSWORD_FILE", str(secret))
    code, out, err = _run(["dashboard", "passwd", "--data", str(tmp_path), "--user", "alice"])
    assert code == 0, err
    assert "operator alice added" in out
    code, out, _ = _run(["dashboard", "operators", "--data", str(tmp_path), "--json"])
    assert code == 0
    assert json.loads(out) == {"ok": True, "operators": ["alice"]}
    code, out, _ = _run(
        ["dashboard", "passwd", "--data", str(tmp_path), "--user", "alice", "--json"]
    )
    assert json.loads(out) == {"ok": True, "user": "alice", "added": False}
    assert (tmp_path / "dashboard" / "session.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("password", "code", "message"),
    [
        ("short\n", 2, "password-length"),
        ("", 2, "password-length"),
    ],
)
def test_passwd_refuses_a_bad_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str, code: int, message: str
) -> None:
    secret = tmp_path / "password"
    secret.write_text(password)
    secret.chmod(0o600)
    got, _, err = _run(
        [
            "dashboard", "passwd", "--data", str(tmp_path), "--user", "alice",
            "--password-file", str(secret),
        ]
    )  # fmt: skip
    assert got == code
    assert message in err
    assert not (tmp_path / "dashboard" / "operators.json").exists()


def test_passwd_never_takes_a_password_it_cannot_read_safely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IRONROOT_DASHBOARD_PASSWORD", raising=False)
    monkeypatch.delenv("IRONROOT_DASHBOARD_PASSWORD_FILE", raising=False)
    code, _, err = _run(["dashboard", "passwd", "--data", str(tmp_path), "--user", "alice"])
    assert code == 2  # no terminal to prompt on, no file, no variable
    assert "IRONROOT_DASHBOARD_PASSWORD" in err
    monkeypatch.setenv("IRONROOT_DASHBOARD_PASSWORD", "a long enough password")
    monkeypatch.setenv("IRONROOT_DASHBOARD_PASSWORD_FILE", str(tmp_path / "f"))
    code, _, err = _run(["dashboard", "passwd", "--data", str(tmp_path), "--user", "alice"])
    assert code == 2
    assert "both" in err


def test_serving_a_directory_with_nothing_to_show_is_refused(tmp_path: Path) -> None:
    code, _, err = _run(["dashboard", "--data", str(tmp_path), "--port", str(_free_port())])
    assert code == 2
    assert "holds nothing to show" in err
    code, _, err = _run(["dashboard", "--data", str(tmp_path / "missing")])
    assert code == 2
    assert "is not a directory" in err
    code, _, err = _run(["dashboard"])
    assert code == 2
    assert "give --data DIR" in err


def test_serving_with_a_host_name_that_is_not_one_is_refused(world: WebWorld) -> None:
    argv = ["dashboard", "--data", str(world.data), "--port", str(_free_port())]
    code, _, err = _run([*argv, "--allowed-host", "https://dash.example/"])
    assert code == 2
    assert "--allowed-host: 'https://dash.example/' is not a host name" in err


def _wait(url: str, served: Served, **options: object) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"the server exited {served.process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            http_calls.get(url, timeout=5, **options)  # type: ignore[arg-type]
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


class Served:
    """A server in a subprocess; ``out`` and ``err`` once it stopped."""

    def __init__(self, argv: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ironroot", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out = self.err = ""

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            out, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        self.out, self.err = out.decode(), err.decode()
        return self.process.returncode


@contextlib.contextmanager
def _server(argv: list[str]) -> Iterator[Served]:
    served = Served(argv)
    try:
        yield served
    finally:
        served.stop()


def test_ironroot_dashboard_serves_the_data_directory(world: WebWorld) -> None:
    port = _free_port()
    argv = ["dashboard", "--data", str(world.data), "--port", str(port)]
    with _server([*argv, "--allowed-host", "dash.example"]) as served:
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/health", served)
        page = http_calls.get(base + "/log")
        assert page.status_code == 200
        assert http_calls.get(base + "/log", headers={"host": "dash.example"}).status_code == 200
        rebound = http_calls.get(base + "/log", headers={"host": f"rebound.evil.example:{port}"})
        assert rebound.status_code == 421
        assert "strict-transport-security" not in page.headers  # plain HTTP: browsers ignore it
        assert http_calls.get(base + "/fleet").status_code == 303
        assert http_calls.get(base + "/log/ops-log").status_code == 200
    assert served.process.returncode == 0, served.err
    assert f"dashboard of {world.data} on {base}/" in served.out


def test_bound_to_every_address_with_no_name_it_says_it_answers_none(world: WebWorld) -> None:
    """``--host 0.0.0.0`` names no address a client sends as its Host: without
    ``--allowed-host`` every request gets 421, and the start says so."""
    port = _free_port()
    argv = ["dashboard", "--data", str(world.data), "--host", "0.0.0.0", "--port", str(port)]
    with _server(argv) as served:
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/health", served)
        assert http_calls.get(base + "/log").status_code == 421
    assert "answers no Host name: every request gets 421" in served.err


def test_fleet_serve_mounts_the_dashboard(world: WebWorld) -> None:
    ports = [_free_port() for _ in range(3)]
    argv = [
        "fleet", "serve", "--fleet", str(world.fleet.directory), "--dashboard", str(world.data),
        "--port", str(ports[0]), "--control-port", str(ports[1]), "--data-port", str(ports[2]),
    ]  # fmt: skip
    ca = client_context(world.fleet.directory / "admission" / "ca.cert.pem")
    with _server(argv) as served:
        base = f"https://127.0.0.1:{ports[0]}"
        _wait(base + "/health", served, verify=ca)
        login = http_calls.get(base + "/dashboard/login", verify=ca)
        assert login.status_code == 200
        assert 'action="/dashboard/login"' in login.text
        cookie = login.headers["set-cookie"]
        assert "Secure" in cookie
        assert "Path=/dashboard" in cookie
        assert login.headers["strict-transport-security"] == "max-age=31536000"
        assert http_calls.get(base + "/dashboard/log/ops-log", verify=ca).status_code == 200
        fleet = http_calls.get(base + "/dashboard/fleet", verify=ca)
        assert fleet.status_code == 303
        assert fleet.headers["location"] == "/dashboard/login?next=%2Ffleet"
    assert f"dashboard {base}/dashboard/" in served.err
