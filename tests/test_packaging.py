"""What ships: the licence in the wheel, a checkout the quick start leaves clean, a container
image that runs unprivileged with a health check (static checks: Docker is not run here)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_the_licence() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]


def test_the_quick_start_leaves_no_untracked_files() -> None:
    ignored = set((ROOT / ".gitignore").read_text().split())
    written = ["/tsdata/", "/vendor.key", "/vendor.pub.pem", "/vendor.cose", "/release.json"]
    written += ["/release.cose", "/release.cose.ts", "/service-keys.cbor", "/tsdata-ro/"]
    assert [w for w in written if w not in ignored] == []


def test_the_image_runs_unprivileged_with_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#")
    assert "\nFROM python:3.11-slim\n" in text
    assert "\nUSER ironroot\n" in text
    assert 'VOLUME ["/data"]' in text
    assert "COPY deploy/healthcheck.py /usr/local/lib/ironroot/healthcheck.py\n" in text
    assert 'CMD ["python", "/usr/local/lib/ironroot/healthcheck.py"]' in text
    assert "curl" not in text.replace("no curl", "")
    assert 'ENTRYPOINT ["ironroot"]' in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)
    assert "deploy" not in ignored  # the health check is copied from it


def _probe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """deploy/healthcheck.py as the container runs it: a fresh interpreter, only its env."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IRONROOT_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "healthcheck.py"), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.integration
def test_the_health_check_probes_http_https_and_mutual_tls(tmp_path: Path) -> None:
    from starlette.applications import Starlette

    from ironroot.errors import ConfigError
    from ironroot.http import ServerThread, ServerTls, ServiceInfo, problem_app
    from tls_pki import make_pki

    pki = make_pki(tmp_path)
    ready = {"ok": True}

    def check() -> None:
        if not ready["ok"]:
            raise ConfigError("the store is not reachable")

    def app() -> Starlette:
        return problem_app([], ServiceInfo("probe", "a service to probe", checks={"s": check}))

    with ServerThread(app(), name="probe") as server:
        port = server.url.rsplit(":", 1)[1]
        # the image's settings: every address (probed on loopback), IRONROOT_PORT
        env = {"IRONROOT_HOST": "0.0.0.0", "IRONROOT_PORT": port}
        assert _probe(env).returncode == 0
        assert _probe(env, "--ready").returncode == 0
        ready["ok"] = False
        failed = _probe(env, "--ready")
        assert failed.returncode == 1
        assert f"unhealthy: http://127.0.0.1:{port}/ready" in failed.stderr
        assert _probe(env).returncode == 0  # alive, though not ready
    closed = _probe(env)
    assert closed.returncode == 1
    assert "unhealthy" in closed.stderr
    assert "Traceback" not in closed.stderr

    tls = ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    with ServerThread(app(), name="probe", tls=tls) as server:
        env = {"IRONROOT_PORT": server.url.rsplit(":", 1)[1]}
        env["IRONROOT_TLS_CERT"] = str(pki.server_cert)
        refused = _probe(env)  # mutual TLS, and no client certificate
        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr
        env["IRONROOT_CLIENT_CERT"] = str(pki.client_cert)
        env["IRONROOT_CLIENT_KEY"] = str(pki.client_key)
        assert _probe(env).returncode == 0, _probe(env).stderr
        url = {"IRONROOT_HEALTH_URL": server.url, **env}
        url["IRONROOT_PORT"] = "1"  # the explicit URL wins
        assert _probe(url).returncode == 0


UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))


def _exec_lines(unit: Path) -> list[list[str]]:
    return [
        shlex.split(line.split("=", 1)[1])
        for line in unit.read_text().splitlines()
        if line.startswith(("ExecStart=", "ExecStartPre="))
    ]


def test_a_systemd_unit_for_each_service_runs_commands_the_cli_knows() -> None:
    from ironroot.cli._main import build_parser

    assert [u.name for u in UNITS] == [
        "ironroot-attestation.service",
        "ironroot-keyrelease.service",
        "ironroot-transparency.service",
    ]
    for unit in UNITS:
        text = unit.read_text()
        assert "\nUser=ironroot\n" in text
        assert "\nNoNewPrivileges=yes\n" in text
        assert "\nKillSignal=SIGTERM\n" in text  # the services stop gracefully on it
        assert "Environment=IRONROOT_DATA=/var/lib/ironroot/" in text
        for argv in _exec_lines(unit):
            assert argv[0] == "/opt/ironroot/bin/ironroot"
            args = build_parser(argv[1:]).parse_args(argv[1:])  # SystemExit if it were wrong
            assert args.func is not None
    # docs/deploy.md shows the transparency unit as it is in the repository
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert (ROOT / "deploy/systemd/ironroot-transparency.service").read_text() in docs


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
@pytest.mark.parametrize("unit", UNITS, ids=[u.stem for u in UNITS])
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    ironroot = Path(sys.executable).with_name("ironroot")
    if not ironroot.exists():
        pytest.skip("the ironroot command is not installed beside this Python")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/ironroot/bin/ironroot", str(ironroot)))
    run = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", copy.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "Unknown" not in run.stderr
    assert "ignoring" not in run.stderr
