"""``ironroot dashboard`` and ``ironroot fleet serve --dashboard``: the verbs, their exit codes
and messages, and the servers they start (real subprocesses, real sockets)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest
from tests.web.web_world import OPERATOR, PASSWORD, WebWorld

import http_calls
from ironroot.cli import main
from ironroot.http import client_context
from serving import Probe, answers, free_port, start_server

pytestmark = pytest.mark.integration


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


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
    code, _, err = _run(["dashboard", "--data", str(tmp_path), "--port", str(free_port())])
    assert code == 2
    assert "holds nothing to show" in err
    code, _, err = _run(["dashboard", "--data", str(tmp_path / "missing")])
    assert code == 2
    assert "is not a directory" in err
    code, _, err = _run(["dashboard"])
    assert code == 2
    assert "give --data DIR" in err


def test_serving_with_a_host_name_that_is_not_one_is_refused(world: WebWorld) -> None:
    argv = ["dashboard", "--data", str(world.data), "--port", str(free_port())]
    code, _, err = _run([*argv, "--allowed-host", "https://dash.example/"])
    assert code == 2
    assert "--allowed-host: 'https://dash.example/' is not a host name" in err


class Served:
    """A server in a subprocess on free ports, answering; ``out`` and ``err`` once it
    stopped."""

    def __init__(self, argv: Callable[..., list[str]], ready: Probe, ports: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
        started = start_server(
            lambda *chosen: [sys.executable, "-m", "ironroot", *argv(*chosen)],
            ready,
            ports=ports,
            env=env,
            pipes=True,
        )
        self.process, self.ports = started.process, started.ports
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
def _server(
    argv: Callable[..., list[str]], ready: Probe | None = None, *, ports: int = 1
) -> Iterator[Served]:
    """``ironroot *argv(*ports)`` once it answers ``ready`` (any answer from ``/health``)."""
    served = Served(argv, ready or answers(status=None), ports)
    try:
        yield served
    finally:
        served.stop()


def test_ironroot_dashboard_serves_the_data_directory(world: WebWorld) -> None:

    def argv(port: int) -> list[str]:
        serve = ["dashboard", "--data", str(world.data), "--port", str(port)]
        return [*serve, "--allowed-host", "dash.example"]

    with _server(argv) as served:
        port = served.ports[0]
        base = f"http://127.0.0.1:{port}"
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

    def argv(port: int) -> list[str]:
        return ["dashboard", "--data", str(world.data), "--host", "0.0.0.0", "--port", str(port)]

    with _server(argv) as served:
        base = f"http://127.0.0.1:{served.ports[0]}"
        assert http_calls.get(base + "/log").status_code == 421
    assert "answers no Host name: every request gets 421" in served.err


_CLEAR: Final = "plain HTTP on an address other hosts reach: operators' passwords and session"


def test_plain_http_on_an_address_other_hosts_reach_is_warned_of(world: WebWorld) -> None:
    """Over plain HTTP a password typed into the login and the session cookie (not
    ``Secure``) cross the network in clear: on 0.0.0.0 without TLS the start says so, and
    what to do; on a loopback address (where a TLS proxy on the same host fronts it) not."""

    def argv(port: int) -> list[str]:
        serve = ["dashboard", "--data", str(world.data), "--host", "0.0.0.0", "--port", str(port)]
        return [*serve, "--allowed-host", "dash.example"]

    with _server(argv) as served:
        base = f"http://127.0.0.1:{served.ports[0]}"
        assert http_calls.get(base + "/log", headers={"host": "dash.example"}).status_code == 200
    assert _CLEAR in served.err
    assert "--tls-cert" in served.err

    def loopback(port: int) -> list[str]:
        return ["dashboard", "--data", str(world.data), "--port", str(port)]

    with _server(loopback) as served:
        pass
    assert _CLEAR not in served.err


def test_fleet_serve_mounts_the_dashboard(world: WebWorld) -> None:

    def argv(port: int, control: int, data: int) -> list[str]:
        return [
            "fleet", "serve", "--fleet", str(world.fleet.directory), "--dashboard", str(world.data),
            "--port", str(port), "--control-port", str(control), "--data-port", str(data),
        ]  # fmt: skip

    ca = client_context(world.fleet.directory / "admission" / "ca.cert.pem")
    with _server(argv, answers(tls=True, verify=ca, status=None), ports=3) as served:
        base = f"https://127.0.0.1:{served.ports[0]}"
        login = http_calls.get(base + "/dashboard/login", verify=ca)
        assert login.status_code == 200
        assert 'action="/dashboard/login"' in login.text
        cookie = login.headers["set-cookie"]
        # over TLS a __Host- cookie, whose path is the whole host's (RFC 6265bis §4.1.3.2)
        assert cookie.startswith("__Host-ironroot_login=")
        assert "Secure" in cookie
        assert "Path=/;" in cookie
        assert login.headers["strict-transport-security"] == "max-age=31536000"
        assert http_calls.get(base + "/dashboard/log/ops-log", verify=ca).status_code == 200
        fleet = http_calls.get(base + "/dashboard/fleet", verify=ca)
        assert fleet.status_code == 303
        assert fleet.headers["location"] == "/dashboard/login?next=%2Ffleet"
    assert f"dashboard {base}/dashboard/" in served.err


def test_behind_a_trusted_tls_proxy_a_login_works_and_its_cookie_is_secure(
    world: WebWorld, tmp_path: Path
) -> None:
    """Behind a proxy that ends TLS the browser's ``Origin`` is https://<host>; the dashboard
    refused every login (another origin) and, its cookie not ``Secure``, would have sent the
    session in clear past the proxy. ``[server] trusted_proxies`` in ``dashboard.toml``
    names the proxy, whose ``X-Forwarded-Proto`` and ``X-Forwarded-For`` are then believed,
    as every Ironroot server does; the docs promised the setting, the file refused it."""
    state = tmp_path / "dashboard"
    state.mkdir(mode=0o700)
    for name in ("operators.json", "session.key"):
        (state / name).write_bytes((world.data / "dashboard" / name).read_bytes())
        (state / name).chmod(0o600)
    (tmp_path / "dashboard.toml").write_text(
        f'[sources]\nlogs = ["{world.data / "ops-log"}"]\n'
        '[server]\ntrusted_proxies = ["127.0.0.1"]\n'
    )

    def argv(port: int) -> list[str]:
        return ["dashboard", "--data", str(tmp_path), "--port", str(port)]

    with _server(argv) as served:
        base = f"http://127.0.0.1:{served.ports[0]}"
        proxied = {"x-forwarded-proto": "https", "x-forwarded-for": "192.0.2.7"}
        form = http_calls.get(base + "/login", headers=proxied)
        token = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        cookie = form.headers["set-cookie"].split(";", 1)[0]
        answer = http_calls.post(
            base + "/login",
            data={"user": OPERATOR, "password": PASSWORD, "csrf": token},
            headers={**proxied, "origin": f"https://127.0.0.1:{served.ports[0]}", "cookie": cookie},
        )
        assert answer.status_code == 303, answer.text
        assert "Secure" in answer.headers["set-cookie"]
        assert answer.headers["strict-transport-security"] == "max-age=31536000"
    assert served.process.returncode == 0, served.err


def test_a_server_table_that_is_wrong_is_refused(world: WebWorld, tmp_path: Path) -> None:
    (tmp_path / "dashboard.toml").write_text('[server]\ntrusted_proxies = ["proxy.example"]\n')
    code, _, err = _run(["dashboard", "--data", str(tmp_path)])
    assert code == 2
    assert "server.trusted_proxies: 'proxy.example' is not an IP address or network" in err
