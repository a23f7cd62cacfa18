"""``ironroot`` when its standard streams are not what a terminal gives: a reader of stdout that
went away (``| head``), stdout or stderr closed before it starts (``>&-``), Ctrl-C before the
verb runs or while it runs. Each is one quiet exit code or one line, never a traceback. Each
test runs the command in a process of its own: the streams are the process's."""

from __future__ import annotations

import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ironroot.cli import main


def _big_key(tmp_path: Path) -> Path:
    """A key whose ``key show`` prints more than a pipe's write buffer (ML-DSA-87: ~9 KB)."""
    assert main(["key", "generate", "--alg", "ML-DSA-87", "--out", str(tmp_path / "k")]) == 0
    return tmp_path / "k.pub.pem"


def _ironroot(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "ironroot", *argv], timeout=120, check=False, **kwargs
    )


def test_a_reader_that_went_away_mid_output_is_a_quiet_exit_1_not_unreachable(
    tmp_path: Path,
) -> None:
    key = _big_key(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the verb writes its first line
    try:
        run = _ironroot("key", "show", str(key), stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert run.returncode == 1
    assert run.stderr == b""  # not "ironroot: unreachable: cannot reach the peer"


def test_stdout_closed_refuses_a_verb_that_prints_a_result(tmp_path: Path) -> None:
    key = _big_key(tmp_path)
    run = _ironroot("key", "show", str(key), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    preexec_fn=lambda: os.close(1))  # fmt: skip
    assert run.returncode == 2
    assert run.stderr == (
        b"ironroot: input-unavailable: stdout is closed: the result could not be printed\n"
    )
    out = tmp_path / "fresh"
    run = _ironroot("key", "generate", "--alg", "ES256", "--out", str(out), stderr=subprocess.PIPE,
                    preexec_fn=lambda: os.close(1))  # fmt: skip
    assert run.returncode == 2
    assert not list(tmp_path.glob("fresh*"))  # refused before it did anything


def test_stderr_closed_keeps_the_failure_line_off_stdout(tmp_path: Path) -> None:
    run = _ironroot("key", "show", str(tmp_path / "missing"), "--json", capture_output=True,
                    preexec_fn=lambda: os.close(2))  # fmt: skip
    assert run.returncode == 2
    assert json.loads(run.stdout)["error"]["code"] == "input-unavailable"  # one object only


@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_ctrl_c_while_the_verb_runs_is_one_line_exit_130_and_no_output_file(
    tmp_path: Path, json_flag: tuple[str, ...]
) -> None:
    """Ctrl-C while ``statement register`` waits on a service that never answers: one line
    (and under ``--json`` the one failure object), exit 130, and no ``--out`` file."""
    assert main(["key", "generate", "--alg", "ES256", "--out", str(tmp_path / "k")]) == 0
    (tmp_path / "p.json").write_text("{}")
    statement = tmp_path / "s.cose"
    argv = ["statement", "sign", str(tmp_path / "p.json"), "--key", str(tmp_path / "k.key"),
            "--iss", "https://i.example", "--sub", "s", "--out", str(statement)]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "receipt.cbor"
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.settimeout(60)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        process = subprocess.Popen(
            [sys.executable, "-m", "ironroot", "statement", "register", str(statement),
             "--url", url, "--out", str(out), *json_flag],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        connection, _ = silent.accept()  # the verb is waiting for the answer now
        with connection:
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr == b"ironroot: interrupted: stopped by Ctrl-C (SIGINT)\n"
    if json_flag:
        assert json.loads(stdout) == {
            "ok": False,
            "error": {
                "code": "interrupted",
                "message": "stopped by Ctrl-C (SIGINT)",
                "check": None,
            },
        }
    else:
        assert stdout == b""
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["k.cose", "k.key", "k.pub.pem", "p.json", "s.cose"]
    )


def test_ctrl_c_while_the_command_loads_is_exit_130_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ironroot.cli import _main

    def interrupted(argv: object = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_main, "build_parser", interrupted)
    try:
        code = main(["key", "show", "k"])
    except KeyboardInterrupt:  # escaping, it would stop the test session too
        pytest.fail("Ctrl-C escaped main() with a traceback")
    assert code == 130
    assert capsys.readouterr().err == "ironroot: interrupted: stopped by Ctrl-C (SIGINT)\n"


def test_ctrl_c_while_python_imports_the_command_is_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Importing(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            if name == "main":  # `from ironroot.cli import main`, interrupted
                raise KeyboardInterrupt
            raise AttributeError(name)

    monkeypatch.setitem(sys.modules, "ironroot.cli", Importing("ironroot.cli"))
    monkeypatch.delitem(sys.modules, "ironroot.__main__", raising=False)
    code: object = None
    try:
        runpy.run_module("ironroot", run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped python -m ironroot with a traceback")
    assert code == 130
    assert capsys.readouterr().err == "ironroot: interrupted: stopped by Ctrl-C (SIGINT)\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_stdout_on_a_full_disk_is_one_line_and_exit_2_not_a_traceback(
    tmp_path: Path, json_flag: tuple[str, ...]
) -> None:
    """``> /dev/full``: the result cannot be written (ENOSPC). Under ``--json`` the object is
    printed after the verb ran, where only a reader that went away was handled."""
    key = _big_key(tmp_path)
    with open("/dev/full", "wb") as full:
        run = _ironroot("key", "show", str(key), *json_flag, stdout=full, stderr=subprocess.PIPE)
    assert run.returncode == 2
    assert b"Traceback" not in run.stderr
    assert run.stderr.decode().splitlines() == [
        "ironroot: input-unavailable: stdout: no space left on device: the result could not be "
        "printed"
        if json_flag
        else "ironroot: input-unavailable: no space left on device"
    ]
