"""``ironroot serve`` (one process, and ``--workers 2``) stopped by SIGTERM while hostile
clients hold connections: idle ones, a head sent a few bytes at a time, a body half uploaded,
a registration whose client went away. The service exits 0 within its ``shutdown_timeout``,
with no traceback in its log, and keeps every registration it acknowledged."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config
from test_transparency_workers import ENV, _tree_size, _workers

import http_calls
from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from serving import start_server

STORE_INDEPENDENT = True  # the HTTP layer is the subject; SQLite is enough

COSE_HEAD = b"POST /entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/cose\r\n"


def _start(tmp_path: Path, workers: int) -> tuple[subprocess.Popen[bytes], int, PrivateKey]:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    with (data / "ironroot.toml").open("a") as config:
        config.write("[server]\nshutdown_timeout = 0.3\nkeep_alive_timeout = 60\n")

    def command(port: int) -> list[str]:
        argv = [sys.executable, "-m", "ironroot", "serve", "--data", str(data), "--port", str(port)]
        return [*argv, "--workers", str(workers)] if workers else argv

    def ready(process: subprocess.Popen[bytes], ports: tuple[int, ...]) -> bool:
        try:
            health = http_calls.get(f"http://127.0.0.1:{ports[0]}/health", timeout=5)
        except httpx.HTTPError:
            return False
        return health.status_code == 200 and len(_workers(process.pid)) == workers

    started = start_server(command, ready, env=ENV, log=tmp_path / "stderr")
    process, port = started.process, started.port
    return process, port, vendor


@pytest.mark.parametrize("workers", [0, 2])
def test_sigterm_with_hostile_clients_connected_exits_cleanly_and_keeps_what_it_acknowledged(
    tmp_path: Path, workers: int
) -> None:
    process, port, vendor = _start(tmp_path, workers)
    try:

        def connect() -> socket.socket:
            return socket.create_connection(("127.0.0.1", port), timeout=10)

        def statement(n: int) -> bytes:
            return create_statement(vendor, b"{}", iss=VENDOR_ISS, sub=f"pkg:fw/hostile{n}")

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            acknowledged = client.post(
                "/entries", content=statement(0), headers={"content-type": "application/cose"}
            )
            assert acknowledged.status_code == 201  # and the client's connection stays open
            held = [connect() for _ in range(40)]  # fresh connections that send nothing
            slow = connect()
            slow.sendall(b"GET /checkpoint HTTP/1.1\r\nHo")  # a head never finished
            half = connect()
            body = statement(1)
            half.sendall(COSE_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body[:20])
            gone = connect()  # a whole registration, then the client goes away
            gone.sendall(COSE_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            gone.close()
            time.sleep(0.2)  # what was sent has reached the service
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        for sock in [*held, slow, half]:
            with sock:
                sock.settimeout(10)
                # closed with nothing sent: a FIN, or a reset (the upload cut at the timeout;
                # a connection still in the listen queue when the listener closed)
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(65536) == b""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    log = (tmp_path / "stderr").read_text()
    assert "Traceback" not in log, log
    assert "Exception in ASGI application" not in log, log
    assert _tree_size(tmp_path / "ts") in (1, 2)  # the acknowledged one; the abandoned one maybe
