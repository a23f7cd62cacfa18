"""Durability contract of the whole service: kill -9 `ironroot serve` under load, restart,
and check that every acknowledged entry is there and every published checkpoint is consistent.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot._trust import system_trust
from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import Log, open_checkpoint, verify_log_dir
from ironroot.log.layout import load_checkpoint_signer
from ironroot.transparency import load_config
from serving import accepts_connections, start_server

pytestmark = pytest.mark.integration


def _start(data: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``ironroot serve`` over ``data`` on a free port, once it accepts connections."""

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "ironroot", "serve", "--data", str(data), "--port", str(port)]

    started = start_server(command, accepts_connections, timeout=30)
    return started.process, started.port


def test_kill_9_never_loses_an_acknowledged_entry(tmp_path: Path) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    statements = [
        create_statement(vendor, f'{{"n": {i}}}'.encode(), iss=VENDOR_ISS, sub=f"pkg:x/{i}")
        for i in range(1500)
    ]
    acked: set[str] = set()
    checkpoints: list[bytes] = []
    lock = threading.Lock()
    cursor = iter(statements)
    rng = random.Random(9)

    for _round in range(3):
        proc, port = _start(data)
        url = f"http://127.0.0.1:{port}"
        stop = threading.Event()

        def load(url: str = url, stop: threading.Event = stop) -> None:
            with httpx.Client(base_url=url, timeout=5, verify=system_trust()) as client:
                while not stop.is_set():
                    with lock:
                        body = next(cursor, None)
                    if body is None:
                        return
                    try:
                        r = client.post(
                            "/entries", content=body, headers={"Content-Type": "application/cose"}
                        )
                    except httpx.HTTPError:
                        return  # the server died mid-request: not acknowledged
                    if r.status_code in (201, 303):
                        with lock:
                            acked.add(r.headers["location"].rsplit("/", 1)[1])
                    if rng.random() < 0.05:
                        try:
                            cp = client.get("/checkpoint")
                        except httpx.HTTPError:
                            return
                        with lock:
                            checkpoints.append(cp.content)

        threads = [threading.Thread(target=load) for _ in range(6)]
        with lock:
            start_count = len(acked)
        for t in threads:
            t.start()
        # Kill at a random moment once the load is flowing (however slow the machine is).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if len(acked) - start_count >= 30:
                    break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for t in threads:
            t.join()

    assert len(acked) > 50, "the load did not get going"

    # Restart: every acknowledged entry resolves to a receipt.
    proc, port = _start(data)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for entry_id in sorted(acked):
                for _ in range(100):
                    r = client.get(f"/entries/{entry_id}")
                    if r.status_code != 302:
                        break
                    time.sleep(0.05)
                assert r.status_code == 200, entry_id
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    # The stored log recomputes, and every checkpoint published before a crash is a prefix
    # of the final tree (same root at its size) and carries a valid signature.
    verify_log_dir(data)
    config = load_config(data)
    signer = load_checkpoint_signer(data, config.origin)
    log = Log.open(data, origin=config.origin, note_signers=[signer])
    try:
        for note in checkpoints:
            cp = open_checkpoint(note, [signer.verifier()])
            assert log.root(cp.size) == cp.root
        assert log.tree_size >= len(acked)
    finally:
        log.close()
