"""Servers started by tests in their own process, on a free port, once they answer.

A free port is found by binding port 0 and closing the socket; the server then binds it
itself. Between the two another process may take it (tests run in parallel): the server
then exits saying the address is in use. :func:`start_server` starts it again on another
port in that case, and only in that case: any other exit fails the test with the server's
output. A test that restarts a server on the same port on purpose picks it once with
:func:`free_port` and starts the process itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx
import pytest

import http_calls
from ironroot.errors import StorageError
from ironroot.http import ServerThread

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "Probe",
    "Started",
    "accepts_connections",
    "address_in_use",
    "answers",
    "free_port",
    "holds_listener",
    "server_thread",
    "start_server",
]

Probe = Callable[[subprocess.Popen[bytes], tuple[int, ...]], bool]
"""Whether a started server answers: given its process and its ports."""

# ``ironroot``: "config: cannot listen on 127.0.0.1:8000: Address already in use" (its own
# check) or uvicorn's "... address already in use" (a port taken after that check);
# DMTF's spdm-emu: "Bind error.  Error is 0x62" (errno 98, EADDRINUSE, in hex).
_IN_USE = re.compile(rb"address already in use|bind error\.\s+error is 0x62", re.IGNORECASE)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at this moment (another process may take it before the
    caller binds it: see :func:`start_server`)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def address_in_use(output: bytes) -> bool:
    """``output`` (of a server that exited) says the address it was to listen on was taken."""
    return _IN_USE.search(output) is not None


@dataclass(frozen=True)
class Started:
    process: subprocess.Popen[bytes]
    ports: tuple[int, ...]

    @property
    def port(self) -> int:
        return self.ports[0]


def answers(
    path: str = "/health",
    *,
    tls: bool = False,
    verify: Any = None,
    status: int | None = 200,
    port: int = 0,
) -> Probe:
    """GET ``path`` on the server's port ``port`` (an index into its ports) answers with
    ``status`` (any status when ``None``). ``verify`` goes to the client as it is (the
    process's shared trust when ``None``)."""

    def probe(process: subprocess.Popen[bytes], ports: tuple[int, ...]) -> bool:
        url = f"{'https' if tls else 'http'}://127.0.0.1:{ports[port]}{path}"
        options: dict[str, Any] = {"timeout": 5}
        if verify is not None:
            options["verify"] = verify
        try:
            answer = http_calls.get(url, **options)
        except httpx.HTTPError:
            return False
        return status is None or answer.status_code == status

    return probe


def accepts_connections(process: subprocess.Popen[bytes], ports: tuple[int, ...]) -> bool:
    """Every one of the server's ports accepts a TCP connection on 127.0.0.1."""
    for port in ports:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except OSError:
            return False
    return True


def holds_listener(process: subprocess.Popen[bytes], ports: tuple[int, ...]) -> bool:
    """The process itself holds a listening TCP socket on each of its ports (read from
    ``/proc``, without connecting: for a server that serves one connection only)."""
    listening: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    local_port = int(fields[1].rpartition(":")[2], 16)
                    listening.setdefault(local_port, set()).add(f"socket:[{fields[9]}]")
    try:
        fds = os.listdir(f"/proc/{process.pid}/fd")
    except OSError:
        return False
    held = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            held.add(os.readlink(f"/proc/{process.pid}/fd/{fd}"))
    return all(listening.get(port, set()) & held for port in ports)


def _end(process: subprocess.Popen[bytes], sink: IO[bytes], log: Path | None, pipes: bool) -> bytes:
    """Kill the process if it still runs; what it wrote."""
    if process.poll() is None:
        process.kill()
    if pipes:
        out, err = process.communicate(timeout=30)
        return (out or b"") + (err or b"")
    process.wait(timeout=30)
    if log is not None:
        return log.read_bytes()
    sink.seek(0)
    return sink.read()


def start_server(
    argv: Callable[..., Sequence[str]],
    ready: Probe,
    *,
    ports: int = 1,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    pipes: bool = False,
    timeout: float = 60,
    attempts: int = 5,
) -> Started:
    """Start ``argv(*ports)`` on ``ports`` free ports and wait until the process holds a
    listening socket on each (not another process that took one) and ``ready`` is true; on
    other ports again when it exits saying an address is in use (at most ``attempts`` times).

    Output: with ``pipes`` stdout and stderr are pipes the caller reads (the process is
    returned with them); with ``log`` both go to that file (rewritten at each attempt);
    otherwise to a temporary file, read only when the server fails to start. A server that
    exits for another reason, or does not answer within ``timeout`` seconds, fails the test
    with its output.
    """
    for _attempt in range(attempts):
        chosen = _free_ports(ports)
        command = [str(part) for part in argv(*chosen)]
        sink: IO[bytes]
        with log.open("wb") if log is not None else tempfile.TemporaryFile() as sink:
            if pipes:
                out: Any = subprocess.PIPE
                err: Any = subprocess.PIPE
            else:
                out, err = sink, subprocess.STDOUT
            process = subprocess.Popen(
                command, env=None if env is None else dict(env), cwd=cwd, stdout=out, stderr=err
            )
            deadline = time.monotonic() + timeout
            while not (holds_listener(process, chosen) and ready(process, chosen)):
                if process.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            else:
                return Started(process, chosen)
            exited = process.poll() is not None
            output = _end(process, sink, log, pipes)
        if not (exited and address_in_use(output)):
            how = f"exited with {process.returncode}" if exited else "did not answer"
            pytest.fail(f"{command[:4]} {how}:\n{output.decode(errors='replace')}")
    pytest.fail(f"{command[:4]} found no free port in {attempts} tries")


def _free_ports(count: int) -> tuple[int, ...]:
    """``count`` distinct free ports (all held while choosing, so none is chosen twice)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return tuple(int(probe.getsockname()[1]) for probe in probes)


@contextlib.contextmanager
def server_thread(
    app_for: Callable[[int], Starlette], *, attempts: int = 5, **options: Any
) -> Iterator[ServerThread]:
    """A :class:`ServerThread` serving ``app_for(port)`` on a free ``port`` (for an app that
    must know its port, as a dashboard naming its own Host), stopped at the end; on another
    port again when the one chosen was taken meanwhile."""
    for _attempt in range(attempts):
        port = free_port()
        server = ServerThread(app_for(port), port=port, **options)
        try:
            with _thread_exit_expected():
                server.__enter__()
        except StorageError:
            if not _taken(port):
                raise
            continue
        try:
            yield server
        finally:
            server.__exit__(None, None, None)
        return
    pytest.fail(f"no free port for a ServerThread in {attempts} tries")


@contextlib.contextmanager
def _thread_exit_expected() -> Iterator[None]:
    """uvicorn ends its thread with ``SystemExit`` when it cannot bind: while a server thread
    starts, that is reported by the StorageError of its start (not as an unhandled thread
    exception, which pytest turns into an error of the test)."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        thread = args.thread
        if (
            args.exc_type is SystemExit
            and thread is not None
            and thread.name.startswith("ironroot-")
        ):
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def _taken(port: int) -> bool:
    """Another socket listens on ``port`` (127.0.0.1)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
