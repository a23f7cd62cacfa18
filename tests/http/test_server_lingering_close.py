"""A connection the server closes while its client is still sending is closed *lingering*:
the answer is flushed, the write side shut, the client's further input read and dropped until
it closes or a bound passes. Closed at once, the kernel would reset the connection for the
unread bytes, and the reset can reach the client before it has read the answer.

Each test repeats its exchange: without the lingering close they lost the answer in most
rounds on a 2-core machine. Real sockets against a real server; no timing is asserted beyond
"it ends" (socket timeouts bound every wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.http import ServerLimits, ServerThread, guarded, problem_app, read_body
from ironroot.http import _server as server_module
from raw_http import connect, read_all

pytestmark = pytest.mark.integration

_log = logging.getLogger("ironroot.test-http")
_ROUNDS = 20
_BODY_LIMIT = 64 * 1024


async def _ok(request: Request) -> Response:
    return Response(b"ok")


async def _slow(request: Request) -> Response:
    await asyncio.sleep(0.05)  # the connection is refused while this runs
    return Response(b"late")


async def _echo(request: Request) -> Response:
    return Response(await read_body(request, _BODY_LIMIT))


def _app():
    return problem_app(
        [
            Route("/ok", guarded(_ok, _log), methods=["GET"]),
            Route("/slow", guarded(_slow, _log), methods=["GET"]),
            Route("/echo", guarded(_echo, _log), methods=["POST"]),
        ]
    )


@pytest.fixture
def server() -> Iterator[ServerThread]:
    limits = ServerLimits(max_head_bytes=4096, keep_alive_timeout=5.0)
    with ServerThread(_app(), limits=limits, name="lingering-test") as running:
        yield running


def _status_and_body(raw: bytes) -> tuple[int, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One response, by its Content-Length (the server may keep the connection)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, f"the connection ended before a whole head: {raw!r}"
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection ended inside the body"
        body += chunk
    return int(head.split(b" ", 2)[1]), body


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send what the client would, in pieces, as long as the server takes it."""
    view = memoryview(data)
    for start in range(0, len(view), 65536):
        sock.sendall(view[start : start + 65536])


def test_a_413_before_the_body_is_read_reaches_a_client_still_sending(
    server: ServerThread,
) -> None:
    body = b"x" * (4 << 20)
    for _ in range(_ROUNDS):
        with connect(server) as sock:
            sock.sendall(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            _send_quietly(sock, body)  # the server answered long before this ends
            status, answer = _read_response(sock)
        assert status == 413
        assert answer  # the whole problem document, as its Content-Length says


def test_a_connection_answered_before_its_body_is_closed_once_idle() -> None:
    """The server reads and drops the rest of a body it answered early, keeping the
    connection; once the body is over, the keep-alive timeout applies again (it used to be
    disarmed by the body's bytes and never armed again: the connection was held for ever)."""
    limits = ServerLimits(keep_alive_timeout=0.3)
    with (
        ServerThread(_app(), limits=limits, name="lingering-idle") as running,
        connect(running) as sock,
    ):
        body = b"x" * (1 << 20)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        _send_quietly(sock, body)
        assert _read_response(sock)[0] == 413
        assert read_all(sock) == b""  # closed by the server, within the socket's timeout


def test_a_431_reaches_a_client_still_sending_its_head(server: ServerThread) -> None:
    for _ in range(_ROUNDS):
        with connect(server) as sock:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
            _send_quietly(sock, (b"X-More: " + b"b" * 200 + b"\r\n") * 2000)
            status, answer = _status_and_body(read_all(sock))
        assert status == 431
        assert json.loads(answer)["detail"] == "the request head is over 4096 bytes"


def test_a_connection_close_answer_survives_requests_pipelined_after_it(
    server: ServerThread,
) -> None:
    following = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n" + b"y" * 60000
    for _ in range(_ROUNDS):
        with connect(server) as sock:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            time.sleep(0.02)  # the server answers and closes before the rest arrives
            _send_quietly(sock, following * 4)
            raw = read_all(sock)
        status, answer = _status_and_body(raw)
        assert status == 200
        assert answer == b"ok"
        assert raw.count(b"HTTP/1.1 ") == 1  # what followed the close was never served


def _answer_while_sending(server: ServerThread, request: bytes) -> bytes:
    """What a client reads until the server's end of the stream while another thread sends
    ``request`` in one write (the server may stop taking it: ignored)."""
    with connect(server) as sock:

        def send() -> None:
            with contextlib.suppress(OSError):
                sock.sendall(request)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            return read_all(sock)
        finally:
            sender.join()


_MORE = 1 << 20  # past what the server reads at once: unread when it closes


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * _MORE, 431),
        (b"FOO /ok HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * _MORE, 501),
        (b"G(T /ok HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * _MORE, 400),
        (
            b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            + b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n" * (_MORE // 30),
            200,
        ),
    ],
    ids=["431", "501", "400", "close"],
)
def test_the_answer_and_a_clean_end_reach_a_client_sending_all_at_once(
    server: ServerThread, request_bytes: bytes, status: int
) -> None:
    # Closed at once, the server left most of the megabyte unread: the reset followed the
    # answer in every round (read_all raised ConnectionResetError after reading it).
    for _ in range(_ROUNDS):
        raw = _answer_while_sending(server, request_bytes)
        assert _status_and_body(raw)[0] == status
        assert raw.count(b"HTTP/1.1 ") == 1
        assert b"connection: close" in raw.lower()


@pytest.mark.parametrize(
    ("bounds", "chunk"),
    [
        # a byte every 10 ms: never idle, cut at the total bound
        ({"_DRAIN_TOTAL": 0.5, "_DRAIN_IDLE": 600.0}, b"z"),
        # 64 KiB every 10 ms: cut at the byte bound, long before the time bounds
        ({"_DRAIN_TOTAL": 600.0, "_DRAIN_IDLE": 600.0, "_DRAIN_BYTES": 1 << 20}, b"z" * 65536),
    ],
    ids=["time", "bytes"],
)
def test_a_client_that_keeps_sending_is_cut_after_the_bound_and_others_are_served(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch, bounds: dict[str, float], chunk: bytes
) -> None:
    for name, value in bounds.items():
        monkeypatch.setattr(server_module, name, value)
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        # the answer and the server's half-close: it sends nothing more, but still reads
        assert _status_and_body(read_all(sock)) == (200, b"ok")
        # closed entirely only at the bound: until then every send is taken and dropped
        assert _sends_until_refused(sock, chunk, tries=3000)
    with connect(server) as other:
        other.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _status_and_body(read_all(other)) == (200, b"ok")


def test_a_client_that_sends_nothing_more_and_never_closes_is_closed_when_idle(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "_DRAIN_IDLE", 0.2)
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _status_and_body(read_all(sock)) == (200, b"ok")  # answer, then end of stream
        sock.settimeout(10)
        time.sleep(0.5)  # past the idle bound: the server has closed its side entirely
        assert _sends_until_refused(sock)


def _sends_until_refused(
    sock: socket.socket, chunk: bytes = b"late" * 1024, tries: int = 50
) -> bool:
    """Whether sends of ``chunk``, 10 ms apart, are refused (reset) within ``tries``: the
    server has closed its socket (a half-closed one takes them)."""
    for _ in range(tries):
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return True
        time.sleep(0.01)
    return False


def test_a_stopping_server_does_not_wait_for_lingering_connections(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(server_module, "_DRAIN_TOTAL", 600.0)
    monkeypatch.setattr(server_module, "_DRAIN_IDLE", 600.0)
    limits = ServerLimits(shutdown_timeout=5.0)
    running = ServerThread(_app(), limits=limits, name="lingering-stop").__enter__()
    with connect(running) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _status_and_body(read_all(sock)) == (200, b"ok")  # lingering now, for 600 s
        running.__exit__(None, None, None)  # waits for the thread up to 5 s + 10 s
        assert not running._thread.is_alive()
        assert _sends_until_refused(sock)  # the stop closed it
    # closed as the stop began: one that waited would have been cut at the shutdown timeout
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(
    "behind",
    [
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /ok HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    ],
    ids=["malformed chunk", "two Host fields"],
)
def test_a_request_refused_behind_one_in_the_app_is_refused_after_its_answer(
    server: ServerThread, behind: bytes
) -> None:
    """Refused in its body (queued behind the request in the app: it never runs) or in its
    head: the answer owed goes out first, then the 400, then the close."""
    with connect(server) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" + behind)
        raw = read_all(sock)
    first, _, refusal = raw.partition(b"\r\n\r\nlate")
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert refusal.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert refusal.count(b"\r\n\r\n") == 1  # one answer, then the close


def test_a_response_still_being_made_when_a_request_behind_it_is_refused_goes_out_first(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """A request in the app, then a malformed one behind it on the same connection: the
    request read first is answered first (RFC 9112 §9.3.2), then the refusal, then the
    close (lingering), with no error in the log. The refusal used to close the connection
    at once, and the first response, written later, was dropped: a pipelining client took
    the refusal for the answer to its first request."""
    uvicorn_log = logging.getLogger("uvicorn")  # it does not propagate to the root logger
    uvicorn_log.addHandler(caplog.handler)
    try:
        for _ in range(3):
            with caplog.at_level(logging.DEBUG), connect(server) as sock:
                sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nFOO /ok HTTP/1.1\r\n\r\n")
                raw = read_all(sock)  # both answers, then the close
                first, _, refusal = raw.partition(b"\r\n\r\nlate")
                assert first.startswith(b"HTTP/1.1 200 OK\r\n")
                assert refusal.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
                assert refusal.endswith(b'"the request method is not recognized by this service"}')
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
