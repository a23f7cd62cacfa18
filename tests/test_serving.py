"""tests/serving.py: a server whose port was taken between the choice and its start is started
again on another port; a server that fails for another reason fails the test with its output.

The race is made certain: the first port offered is one this test already listens on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import serving
from spdm._spdm_emu import RESPONDER, emu_dir

pytestmark = pytest.mark.integration

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The first ports offered are held (listened on) by this test; the ports offered, in order."""
    with socket.create_server(("127.0.0.1", 0)) as busy:
        held = int(busy.getsockname()[1])
        offered: list[int] = []
        real_free_ports, real_free_port = serving._free_ports, serving.free_port

        def free_ports(count: int) -> tuple[int, ...]:
            chosen = (held, *real_free_ports(count)[1:]) if not offered else real_free_ports(count)
            offered.append(chosen[0])
            return chosen

        def free_port(host: str = "127.0.0.1") -> int:
            chosen = held if not offered else real_free_port(host)
            offered.append(chosen)
            return chosen

        monkeypatch.setattr(serving, "_free_ports", free_ports)
        monkeypatch.setattr(serving, "free_port", free_port)
        yield offered


def _stop(started: serving.Started) -> None:
    started.process.kill()
    started.process.wait(timeout=30)


def test_ironroot_serve_on_a_taken_port_is_started_on_another(
    taken: list[int], tmp_path: Path
) -> None:
    def command(port: int) -> list[str]:
        serve = [sys.executable, "-m", "ironroot", "serve", "--data", str(tmp_path / "ts")]
        return [*serve, "--port", str(port)]

    env = {**os.environ, "PYTHONPATH": SRC}
    log = tmp_path / "serve.log"
    started = serving.start_server(command, serving.answers(), env=env, log=log)
    try:
        assert len(taken) == 2
        assert started.port == taken[1] != taken[0]
    finally:
        _stop(started)


def test_the_messages_of_a_taken_address_are_recognised(tmp_path: Path) -> None:
    """What ``ironroot serve`` and spdm_responder_emu print when the port is taken."""
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = str(busy.getsockname()[1])
        argv = [sys.executable, "-m", "ironroot", "serve", "--data", str(tmp_path / "ts")]
        env = {**os.environ, "PYTHONPATH": SRC}
        ironroot = subprocess.run(
            [*argv, "--port", port], env=env, capture_output=True, timeout=120, check=False
        )
        assert ironroot.returncode == 2
        assert b"ironroot: config: cannot listen on 127.0.0.1:" in ironroot.stderr
        assert serving.address_in_use(ironroot.stderr)
        try:
            emu = emu_dir()
        except pytest.skip.Exception:
            return
        emulator = subprocess.run(
            [str(emu / RESPONDER), "--port", port], cwd=emu, capture_output=True, timeout=60
        )
        assert emulator.returncode != 0
        assert serving.address_in_use(emulator.stdout + emulator.stderr)
    assert not serving.address_in_use(b"ironroot: config: port 0: a TCP port is 1-65535\n")


def test_a_server_that_exits_otherwise_fails_the_test_with_its_output() -> None:
    def command(port: int) -> list[str]:
        return [sys.executable, "-c", f"import sys; sys.exit('no such data directory {port}')"]

    with pytest.raises(pytest.fail.Exception, match="exited with 1:\nno such data directory"):
        serving.start_server(command, serving.answers())


def test_a_server_thread_on_a_taken_port_is_started_on_another(taken: list[int]) -> None:
    def app(port: int) -> Starlette:
        return Starlette(routes=[Route("/", lambda request: PlainTextResponse(str(port)))])

    with serving.server_thread(app) as server:
        assert len(taken) == 2
        assert server.url == f"http://127.0.0.1:{taken[1]}"
        assert serving.http_calls.get(server.url).text == str(taken[1])
