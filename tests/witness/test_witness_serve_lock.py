"""Two ``ironroot witness serve`` on one data directory, as two real processes: the second
took no lock and served too, each process cosigning from its own copy of the latest
checkpoints it read at its start, so each could cosign a checkpoint the other had already
moved past. One process serves a witness directory at a time: the second is ``InUse`` (exit
2, one line naming the directory and the first's pid), and the directory is free again
once the first has stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ironroot.cli import main
from serving import Started, answers, free_port, start_server

pytestmark = pytest.mark.integration

NAME = "witness.example/serve-lock"


def _serve(data: Path) -> Started:
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "ironroot", "witness", "serve", "--data", str(data),
                "--port", str(port)]  # fmt: skip

    return start_server(command, answers("/health"), timeout=30)


def _stop(started: Started) -> None:
    started.process.send_signal(signal.SIGTERM)
    try:
        started.process.wait(timeout=30)
    finally:
        if started.process.poll() is None:
            started.process.kill()
            started.process.wait(timeout=30)


def test_a_second_serve_of_one_witness_directory_is_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "witness"
    assert main(["witness", "init", "--data", str(data), "--name", NAME]) == 0
    capsys.readouterr()
    first = _serve(data)
    try:
        argv = ["witness", "serve", "--data", str(data), "--port", str(free_port())]
        second = subprocess.Popen(
            [sys.executable, "-m", "ironroot", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            out, err = second.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            second.kill()
            second.communicate(timeout=30)
            pytest.fail("a second witness serve of one data directory served too")
        assert second.returncode == 2, err
        assert err.decode() == (
            f"ironroot: in-use: the witness data directory {data} is in use by another "
            f"process (pid {first.process.pid}); one process serves it at a time\n"
        )
        assert out == b""
        assert first.process.poll() is None  # the first serves on
    finally:
        _stop(first)
    _stop(_serve(data))  # the first's lock went with it
