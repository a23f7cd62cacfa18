"""``ironroot serve`` as an operator runs it, in its own process: mutual TLS from the command
line, health and metrics over it, clients with and without ``--ca`` and a client certificate,
a graceful stop on SIGTERM, and ``ironroot log verify`` on a read-only copy of the stopped
data directory that opens nothing for writing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

import ironroot
from ironroot.cli import main
from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.http import client_context
from ironroot.log import StoreConfig
from serving import answers, start_server
from tls_pki import Pki, make_pki

pytestmark = pytest.mark.integration

SRC = str(Path(ironroot.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC, "PYTHONDONTWRITEBYTECODE": "1"}
for _name in [n for n in ENV if n.startswith("IRONROOT_") and n != "IRONROOT_VECTORS"]:
    del ENV[_name]


@dataclass
class Served:
    url: str
    data: Path
    pki: Pki
    statement: Path
    process: subprocess.Popen[bytes]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    pki = make_pki(tmp_path)
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    statement = tmp_path / "release.cose"
    statement.write_bytes(create_statement(vendor, b"{}", iss=VENDOR_ISS, sub="pkg:fw/served"))
    env = {**ENV, "IRONROOT_ACCESS_LOG": "1"}  # the access log is checked below (off by default)

    def command(port: int) -> list[str]:
        argv = [sys.executable, "-m", "ironroot", "serve", "--data", str(data)]
        argv += ["--port", str(port), "--log-format", "json", "--tls-cert", str(pki.server_cert)]
        return [*argv, "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca)]

    mutual = client_context(pki.ca, pki.client_cert, pki.client_key)
    started = start_server(command, answers(tls=True, verify=mutual), env=env, pipes=True)
    process = started.process
    url = f"https://127.0.0.1:{started.port}"
    try:
        yield Served(url, data, pki, statement, process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_served_over_mutual_tls_then_stopped_and_verified_read_only(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = served.pki
    mutual = ["--ca", str(pki.ca), "--client-cert", str(pki.client_cert)]
    mutual += ["--client-key", str(pki.client_key)]
    register = ["statement", "register", str(served.statement), "--url", served.url]
    register += ["--out", str(tmp_path / "release.cose.ts")]

    assert main([*register, *mutual]) == 0
    capsys.readouterr()
    # without --ca the private CA is not trusted: exit 1, and the message says what to give
    assert main(register) == 1
    assert "certificate is not trusted" in capsys.readouterr().err
    # with the CA but no client certificate, mutual TLS refuses the connection
    assert main([*register, "--ca", str(pki.ca), "--json"]) == 1
    failure = json.loads(capsys.readouterr().out)
    assert failure["ok"] is False
    assert failure["error"]["code"] == "unreachable"
    assert "client certificate" in failure["error"]["message"]
    # the same from the environment
    with pytest.MonkeyPatch.context() as env:
        env.setenv("IRONROOT_CA", str(pki.ca))
        env.setenv("IRONROOT_CLIENT_CERT", str(pki.client_cert))
        env.setenv("IRONROOT_CLIENT_KEY", str(pki.client_key))
        assert main(["log", "verify", served.url]) == 0

    context = client_context(pki.ca, pki.client_cert, pki.client_key)
    with httpx.Client(base_url=served.url, verify=context, timeout=30) as http:
        assert http.get("/ready").json()["status"] == "ready"
        assert 'ironroot_registrations_total{outcome="integrated"} 1.0' in http.get("/metrics").text
        assert http.get("/", headers={"Accept": "text/html"}).text.startswith("<!doctype html>")

    served.process.send_signal(signal.SIGTERM)
    _out, err = served.process.communicate(timeout=60)
    assert served.process.returncode == 0, err.decode()
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    start = next(line for line in lines if line["logger"] == "ironroot.transparency")
    assert start["message"].startswith(f"transparency service on {served.url}: data ")
    assert any(line.get("path") == "/entries" and line["status"] == 201 for line in lines)

    _verify_read_only(served.data, tmp_path / "copy")


# Run in a fresh interpreter: an audit hook records every file opened for writing, every
# directory change, and the database name SQLite is opened with, under the data directory.
_AUDITED = r"""
import json, os, sys
root = os.path.realpath(sys.argv[1])
seen = {"writes": [], "changes": [], "sqlite": []}
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def inside(path):
    if isinstance(path, int):
        return False
    return os.path.realpath(os.fsdecode(path)).startswith(root)

def hook(event, args):
    if event == "open" and inside(args[0]):
        path, mode, flags = args
        if (mode and any(c in mode for c in "wax+")) or (not mode and flags & WRITE):
            seen["writes"].append(os.fsdecode(path))
    elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate",
                   "os.chmod", "os.utime", "os.link", "os.symlink") and inside(args[0]):
        seen["changes"].append(event)
    elif event == "sqlite3.connect":
        seen["sqlite"].append(os.fsdecode(args[0]))

sys.addaudithook(hook)
from ironroot.cli import main
code = main(["log", "verify", sys.argv[1], "--json"])
print(json.dumps({"code": code, **seen}), file=sys.stderr)
"""


def _verify_read_only(data: Path, copy: Path) -> None:
    shutil.copytree(data, copy)
    assert not [p.name for p in copy.iterdir() if p.name.endswith(("-wal", "-shm"))]
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        before = sorted((str(p), p.stat().st_mtime_ns) for p in copy.rglob("*"))
        run = subprocess.run(
            [sys.executable, "-c", _AUDITED, str(copy)],
            env=ENV,
            capture_output=True,
            timeout=120,
            check=False,
        )
        report = json.loads(run.stderr.decode().strip().splitlines()[-1])
        assert report["code"] == 0, run.stdout.decode()
        assert json.loads(run.stdout)["ok"] is True
        assert report["writes"] == []
        assert report["changes"] == []
        if StoreConfig.of_data_dir(copy).kind == "postgresql":
            # Read in one read-only snapshot of the server; nothing under DIR is touched.
            assert report["sqlite"] == []
        else:
            assert report["sqlite"], "the log was not read through SQLite"
        for name in report["sqlite"]:
            assert name.startswith("file:")
            assert "mode=ro" in name
            assert "immutable=1" in name
        assert sorted((str(p), p.stat().st_mtime_ns) for p in copy.rglob("*")) == before
    finally:
        for path in [copy, *copy.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
