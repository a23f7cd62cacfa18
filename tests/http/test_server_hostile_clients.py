"""Hostile clients against every Ironroot HTTP server (``ironroot.http.PromptServer`` and its
protocol), over real sockets: a head sent whole but over the limit, malformed requests, and a
client that never reads its response when the server stops. Outcomes only, never timings."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ironroot.errors import ConfigError
from ironroot.http import (
    ServerLimits,
    ServerThread,
    ServerTls,
    client_context,
    guarded,
    problem_app,
    read_body,
)
from raw_http import connect, read_all

_log = logging.getLogger("ironroot.test-hostile")

pytestmark = pytest.mark.integration


async def _ok(request: Request) -> Response:
    return Response(b"ok")


async def _body(request: Request) -> Response:
    return Response(await request.body())


async def _big(request: Request) -> Response:
    return Response(b"x" * (16 << 20))  # far more than two socket buffers


async def _stream(request: Request) -> StreamingResponse:
    async def chunks() -> Iterator[bytes]:  # type: ignore[misc]
        for _ in range(256):
            yield b"y" * (64 << 10)

    return StreamingResponse(chunks())


LIMITS = ServerLimits(max_head_bytes=4096, shutdown_timeout=0.2)


def _app():  # type: ignore[no-untyped-def]
    routes = [Route("/ok", _ok), Route("/big", _big), Route("/stream", _stream)]
    return problem_app([*routes, Route("/body", _body, methods=["POST"])])


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread(_app(), limits=LIMITS, name="hostile-test") as running:
        yield running


def _problem(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    assert b"connection: close" in head.lower()
    return int(raw.split(b" ", 2)[1]), json.loads(body)


@pytest.mark.parametrize("size", [5000, 60_000])
def test_a_head_over_the_limit_sent_in_one_piece_is_refused_with_431(
    server: ServerThread, size: int
) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * size + b"\r\n\r\n")
        status, problem = _problem(read_all(sock))
    assert status == 431
    assert problem == {
        "title": "Request Header Fields Too Large",
        "status": 431,
        "detail": "the request head is over 4096 bytes",
    }


def test_a_long_request_target_sent_in_one_piece_is_refused_with_431(
    server: ServerThread,
) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ok?" + b"q" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _ = _problem(read_all(sock))
    assert status == 431


def test_a_head_just_under_the_limit_in_one_piece_is_served(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 3900 + b"\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"G(T /ok HTTP/1.1\r\nHost: x\r\n\r\n",  # a method that is no token (RFC 9110 §9.1)
        b" GET /ok HTTP/1.1\r\nHost: x\r\n\r\n",  # nor is an empty one
        b"GET /ok\xff HTTP/1.1\r\nHost: x\r\n\r\n",  # a byte no request target holds
        b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_a_malformed_request_gets_a_400_problem(
    server: ServerThread, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    uvicorn_log = logging.getLogger("uvicorn")  # it does not propagate to the root logger
    uvicorn_log.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG), connect(server) as sock:
            sock.sendall(request_bytes)
            status, problem = _problem(read_all(sock))
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert status == 400
    assert problem == {
        "title": "Bad Request",
        "status": 400,
        "detail": "the request is not valid HTTP/1.1",
    }
    # the client's fault: a debug line, not a warning a flood of such requests would repeat
    assert [r.levelname for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "a request the HTTP parser refuses" in caplog.text


_NOT_IMPLEMENTED = {
    "title": "Not Implemented",
    "status": 501,
    "detail": "the request method is not recognized by this service",
}


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"FOO /ok HTTP/1.1\r\nHost: x\r\n\r\n",
        b"get /ok HTTP/1.1\r\nHost: x\r\n\r\n",  # methods are case-sensitive (RFC 9110 §9.1)
        b"GETX /ok HTTP/1.1\r\nHost: x\r\n\r\n",
        b"FAKEMETHODFORTEST /no/such/path HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\nFOO /ok HTTP/1.1\r\nHost: x\r\n\r\n",  # after an empty line (RFC 9112 §2.2)
        b"FOO",  # the method only, the rest still to come
        b"FOO\r\n\r\n",  # the method only
        # behind a whole request in the same read: its method cannot be read back
        b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nFOO /ok HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=[
        "FOO",
        "lowercase",
        "GETX",
        "no route",
        "after CRLF",
        "method so far",
        "method only",
        "pipelined",
    ],
)
def test_a_method_the_service_does_not_recognize_gets_a_501_problem(
    server: ServerThread, request_bytes: bytes
) -> None:
    # RFC 9110 §15.6.2: it was a 400, as if the request were malformed
    with connect(server) as sock:
        sock.sendall(request_bytes)
        if request_bytes == b"FOO":
            sock.shutdown(socket.SHUT_WR)
        raw = read_all(sock)
    if request_bytes.startswith(b"GET /ok "):  # a request before it is answered first
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
        raw = raw[raw.index(b"HTTP/1.1 ", 1) :]
    assert raw.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert b"\r\nx-content-type-options: nosniff\r\n" in raw
    status, problem = _problem(raw)
    assert (status, problem) == (501, _NOT_IMPLEMENTED)


def test_a_known_method_a_route_does_not_take_stays_405_with_allow(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(b"PROPFIND /body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = read_all(sock)
    head = raw.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 405 method not allowed\r\n")
    assert b"\r\nallow: post\r\n" in head


def test_an_app_may_answer_a_method_the_parser_does_not_know(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``app.state.unknown_method`` answers an unrecognized method token in the app's own
    format (the Redfish service's 501 is a Redfish error), wherever the request came in its
    read; a method that is no token stays the layer's 400; an answer that fails is logged
    and the client gets the layer's 501."""
    calls: list[None] = []

    def answer() -> tuple[int, dict[str, str], bytes]:
        calls.append(None)
        if len(calls) == 3:
            raise RuntimeError("a bug in the app's answer")
        return 501, {"Content-Type": "text/plain"}, b"not implemented here"

    app = _app()
    app.state.unknown_method = answer
    with ServerThread(app, limits=LIMITS, name="unknown-method") as server:
        with connect(server) as sock:
            sock.sendall(b"FAKEMETHODFORTEST /a%20b/c?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            raw = read_all(sock)
        with connect(server) as sock:  # behind a whole request in the same read
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nFOO /ok HTTP/1.1\r\n\r\n")
            pipelined = read_all(sock)
        with caplog.at_level(logging.ERROR, logger="ironroot.http"), connect(server) as sock:
            sock.sendall(b"FOO /fails HTTP/1.1\r\nHost: x\r\n\r\n")
            failed = _problem(read_all(sock))
        with connect(server) as sock:
            sock.sendall(b"G(T /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            malformed = _problem(read_all(sock))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert b"\r\nContent-Type: text/plain\r\n" in head
    assert head.endswith(b"\r\nconnection: close")
    assert b"x-content-type-options: nosniff" in head
    assert body == b"not implemented here"
    assert pipelined.endswith(b"\r\n\r\nnot implemented here")
    assert len(calls) == 3
    assert failed == (501, _NOT_IMPLEMENTED)
    assert "a bug in the app's answer" in caplog.text
    assert malformed[0] == 400
    assert malformed[1]["detail"] == "the request is not valid HTTP/1.1"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /ok HTTP/1.1\r\n\r\n",
        b"GET /ok HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /ok HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
    ],
    ids=["1.1 without Host", "two Hosts", "1.0 with two Hosts"],
)
def test_a_request_without_its_one_host_gets_a_400_problem(
    server: ServerThread, request_bytes: bytes
) -> None:
    # RFC 9112 §3.2 (a MUST): it was served, under whichever Host a proxy did not route by
    with connect(server) as sock:
        sock.sendall(request_bytes)
        status, problem = _problem(read_all(sock))
    assert status == 400
    assert problem["detail"] == "an HTTP/1.1 request has one Host field; any request at most one"


@pytest.mark.parametrize(
    "request_bytes",
    [b"GET /ok HTTP/1.0\r\n\r\n", b"GET /ok HTTP/1.1\r\nHOST: x\r\n\r\n"],
    ids=["1.0 without Host", "1.1 with one"],
)
def test_a_request_with_its_one_host_is_served(server: ServerThread, request_bytes: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(request_bytes)
        assert read_all(sock).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    "codings",
    [[b"gzip, chunked"], [b"x", b"chunked"], [b"identity, chunked"], [b"deflate", b"Chunked"]],
)
def test_a_transfer_coding_other_than_chunked_gets_a_501_problem(
    server: ServerThread, codings: list[bytes]
) -> None:
    # the chunks were read and the body taken as it was, still coded (or the coding ignored)
    fields = b"".join(b"Transfer-Encoding: " + coding + b"\r\n" for coding in codings)
    with connect(server) as sock:
        sock.sendall(b"POST /body HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n2\r\nok\r\n0\r\n\r\n")
        status, problem = _problem(read_all(sock))
    assert status == 501
    assert problem == {
        "title": "Not Implemented",
        "status": 501,
        "detail": "a transfer coding other than chunked is not implemented",
    }


@pytest.mark.parametrize(
    "fields",
    [b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip, chunked\r\n"],
    ids=["chunked", "another coding"],
)
def test_an_http_1_0_request_with_a_transfer_coding_gets_a_400_problem(
    server: ServerThread, fields: bytes
) -> None:
    # RFC 9112 §6.1 (a MUST): its framing is faulty. The chunks were read and the body
    # served, where an HTTP/1.0 proxy in front framed it by the close. (With a
    # Content-Length too, the parser refuses it: 400.)
    with connect(server) as sock:
        sock.sendall(b"POST /body HTTP/1.0\r\n" + fields + b"\r\n2\r\nok\r\n0\r\n\r\n")
        status, problem = _problem(read_all(sock))
    assert status == 400
    assert problem == {
        "title": "Bad Request",
        "status": 400,
        "detail": "an HTTP/1.0 request has no Transfer-Encoding; its framing is not known",
    }


@pytest.mark.parametrize("coding", [b"chunked", b"CHUNKED", b" chunked "])
def test_a_chunked_body_is_served(server: ServerThread, coding: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
            + coding
            + b"\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n"
        )
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\nok")


@pytest.mark.parametrize("path", ["/ok/", "/nowhere/"])
def test_a_path_with_a_trailing_slash_is_a_404_problem_not_a_redirect(
    server: ServerThread, path: str
) -> None:
    with connect(server) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        head = read_all(sock).partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 404 ")
    assert b"content-type: application/concise-problem-details+cbor" in head
    assert b"location:" not in head


_WARMED: list[bool] = []


def _fds() -> int:
    """The process's open descriptors, counted after one server has started and stopped in
    this process: the first server's event loop opens a pipe pair the loop library keeps for
    the process (not per server), which a test run first in its process would otherwise count
    as a leak."""
    if not _WARMED:
        with ServerThread(_app(), limits=LIMITS, name="hostile-warm-up"):
            pass
        _WARMED.append(True)
    gc.collect()  # what earlier tests left for the collector is closed before counting
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("path", ["/big", "/stream"])
def test_a_client_that_never_reads_does_not_hold_the_stop(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    fds, threads = _fds(), threading.active_count()
    server = ServerThread(_app(), limits=LIMITS, name="hostile-stop")
    uvicorn_log = logging.getLogger("uvicorn")  # it does not propagate to the root logger
    uvicorn_log.addHandler(caplog.handler)
    server.__enter__()
    sock = connect(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert sock.recv(16).startswith(b"HTTP/1.1 200")  # the response is on its way; no more reads
    with sock:
        server.__exit__(None, None, None)
        assert not server._thread.is_alive()  # the stop returned because the thread ended
        sock.settimeout(10)
        with pytest.raises(ConnectionResetError):  # cut by the server, unread bytes dropped
            read_all(sock)
    uvicorn_log.removeHandler(caplog.handler)
    assert (_fds(), threading.active_count()) == (fds, threads)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ironroot.http", "WARNING", "resetting 1 connection(s) still open at shutdown")
    ]


@pytest.mark.parametrize("value", [0, -1, True, "5"])
def test_a_bad_shutdown_timeout_is_a_configuration_error(value: object) -> None:
    with pytest.raises(
        ConfigError, match=r"server\.shutdown_timeout must be a number of seconds above 0"
    ):
        ServerLimits.from_table({"shutdown_timeout": value}, "[server]")


@pytest.mark.parametrize(
    "refused",
    [
        b"GET /ok HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 5000 + b"\r\n\r\n",
    ],
)
def test_a_request_pipelined_after_a_refused_one_is_not_answered(
    server: ServerThread, refused: bytes
) -> None:
    with connect(server) as sock:
        sock.sendall(refused + b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = read_all(sock)
    status, _ = _problem(raw)
    assert status in (431, 505)
    assert raw.count(b"HTTP/1.1 ") == 1  # the refusal, then the close


async def _upload(request: Request) -> Response:
    return Response(await read_body(request, 1 << 20))


def test_a_body_upload_in_flight_at_the_stop_is_cut_after_the_shutdown_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fds, threads = _fds(), threading.active_count()
    app = problem_app([Route("/upload", guarded(_upload, _log), methods=["POST"])])
    server = ServerThread(app, limits=LIMITS, name="hostile-upload")
    uvicorn_log = logging.getLogger("uvicorn")
    uvicorn_log.addHandler(caplog.handler)
    server.__enter__()
    with connect(server) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        with caplog.at_level(logging.DEBUG, logger="ironroot.test-hostile"):
            server.__exit__(None, None, None)  # waits for the body, up to the timeout
        assert not server._thread.is_alive()
        with pytest.raises(ConnectionResetError):
            read_all(sock)
    uvicorn_log.removeHandler(caplog.handler)
    assert (_fds(), threading.active_count()) == (fds, threads)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ironroot.http", "WARNING", "resetting 1 connection(s) still open at shutdown"),
        ("ironroot.test-hostile", "DEBUG", "POST /upload: the client disconnected"),
    ]


async def _echo(request: Request) -> Response:
    return Response(b"got:" + await read_body(request, 1000))


@pytest.fixture
def echo_server() -> Iterator[ServerThread]:
    app = problem_app([Route("/echo", _echo, methods=["GET", "POST"])])
    with ServerThread(app, limits=LIMITS, name="hostile-upgrade") as running:
        yield running


UPGRADE = b"Connection: Upgrade\r\nUpgrade: foo\r\n"


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\n\r\nhello",
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
)
def test_an_upgrade_request_with_a_body_is_refused_not_served_without_it(
    echo_server: ServerThread, framing: bytes
) -> None:
    with connect(echo_server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\n" + UPGRADE + framing)
        raw = read_all(sock)
    status, problem = _problem(raw)
    assert status == 400
    assert problem["detail"] == "an Upgrade request with a body is not served"
    assert raw.count(b"HTTP/1.1 ") == 1


def test_an_upgrade_request_is_served_as_http11_then_the_connection_closes(
    echo_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    uvicorn_log = logging.getLogger("uvicorn")
    uvicorn_log.addHandler(caplog.handler)
    try:
        with connect(echo_server) as sock:
            # what follows an upgrade request on its connection is never parsed as HTTP. Two
            # writes: the second may arrive after the server closed, which it does lingering
            # (the bytes are read and dropped, so no reset can overtake the answer).
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n" + UPGRADE + b"\r\n")
            time.sleep(0.02)
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nsmuggled")
            raw = read_all(sock)
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.count(b"HTTP/1.1 ") == 1
    assert b"connection: close" in raw.lower()
    assert raw.endswith(b"\r\n\r\ngot:")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_the_body_of_an_upgrade_request_is_never_served_as_a_request(
    echo_server: ServerThread,
) -> None:
    inner = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"  # a request smuggled as the body
    with connect(echo_server) as sock:
        head = b"POST /echo HTTP/1.1\r\nHost: x\r\n" + UPGRADE
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(inner))
        sock.sendall(inner)
        raw = read_all(sock)
    status, _ = _problem(raw)
    assert status == 400
    assert raw.count(b"HTTP/1.1 ") == 1


async def _slow(request: Request) -> Response:
    await asyncio.sleep(0.05)  # the client's half-close arrives while this runs
    return Response(b"answered")


@pytest.mark.parametrize("pipelined", [1, 3])
def test_a_client_that_half_closes_after_its_requests_gets_every_answer(pipelined: int) -> None:
    app = problem_app([Route("/slow", _slow)])
    with ServerThread(app, limits=LIMITS) as server, connect(server) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n" * pipelined)
        sock.shutdown(socket.SHUT_WR)  # nothing more to send: the answers still come
        raw = read_all(sock)
    assert raw.count(b"HTTP/1.1 200 ") == pipelined
    assert raw.endswith(b"\r\n\r\nanswered")
    assert raw.lower().count(b"connection: close") == 1  # on the last answer


def test_a_half_close_in_the_middle_of_a_body_closes_the_connection(
    echo_server: ServerThread,
) -> None:
    with connect(echo_server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == b""  # the body will never be whole: closed, not held


# --- chunked trailers -----------------------------------------------------------------------


async def _field_names(request: Request) -> Response:
    body = await read_body(request, 1000)  # the trailers come after the body, before its end
    names = b",".join(name for name, _ in request.scope["headers"])
    return Response(b"body:" + body + b" fields:" + names)


@pytest.fixture
def trailer_server() -> Iterator[ServerThread]:
    app = problem_app([Route("/fields", guarded(_field_names, _log), methods=["POST"])])
    with ServerThread(app, limits=LIMITS, name="hostile-trailers") as running:
        yield running


CHUNKED = (
    b"POST /fields HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n"
)


def test_trailers_over_the_head_limit_in_one_piece_are_refused_with_431(
    trailer_server: ServerThread,
) -> None:
    trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 100) for i in range(2000))
    with connect(trailer_server) as sock:
        sock.sendall(CHUNKED + trailers + b"\r\n")
        raw = read_all(sock)
    status, problem = _problem(raw)
    assert status == 431
    assert problem == {
        "title": "Request Header Fields Too Large",
        "status": 431,
        "detail": "the request trailers are over 4096 bytes",
    }
    assert raw.count(b"HTTP/1.1 ") == 1  # the app never answered


@pytest.mark.parametrize("line_end", [b"\r\n", b""])
def test_trailers_trickled_over_the_head_limit_are_refused_with_431(
    trailer_server: ServerThread, line_end: bytes
) -> None:
    # many whole trailer lines, or one line that never ends, in pieces the server reads apart
    with connect(trailer_server) as sock:
        sock.sendall(CHUNKED)
        for i in range(64):
            try:
                sock.sendall(b"X-T%d: " % i + b"v" * 500 + line_end)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.005)
        raw = read_all(sock)
    status, problem = _problem(raw)
    assert status == 431
    assert problem["detail"] == "the request trailers are over 4096 bytes"


def test_trailers_under_the_limit_are_read_and_dropped(trailer_server: ServerThread) -> None:
    with connect(trailer_server) as sock:
        sock.sendall(CHUNKED)
        sock.sendall(b"X-Trailer: " + b"t" * 2000 + b"\r\n")
        sock.sendall(b"Expect: 100-continue\r\n\r\n")
        raw = read_all(sock)
    assert raw.startswith(b"HTTP/1.1 200 ")
    # the app sees the request's header fields only, never the trailers
    assert raw.endswith(b"body:hello fields:host,transfer-encoding,connection")


def test_trailers_over_the_limit_after_an_early_answer_close_the_connection(
    server: ServerThread,
) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n")
        answer = sock.recv(65536)  # answered before its body's end
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"\r\n\r\nok")
        sock.sendall(b"X-Pad: " + b"v" * 5000 + b"\r\n")
        assert read_all(sock) == b""  # closed: no refusal after an answer, no second answer


def _slow_reader_app():  # type: ignore[no-untyped-def]
    return problem_app([Route("/big", _big), Route("/stream", _stream)])


@pytest.mark.parametrize("path", ["/big", "/stream"])
def test_a_client_that_stops_reading_its_answer_is_cut_after_the_send_timeout(path: str) -> None:
    """Slow read: a client that asks for a large answer and takes none of it (a zero TCP
    window) held its connection, its place among ``max_connections`` and the buffered
    answer for ever: no head, body or keep-alive timer runs while a response is being
    written, and asyncio's close waits for the buffer to drain. ``send_timeout`` cuts it."""
    limits = ServerLimits(send_timeout=1.0, shutdown_timeout=0.2)
    with ServerThread(_slow_reader_app(), limits=limits, name="slow-read") as server:
        sock = connect(server)  # 16 MiB: more than the socket buffers at both ends hold
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(16).startswith(b"HTTP/1.1 200")
        time.sleep(3)  # takes nothing more, well past the send timeout
        with sock, pytest.raises(ConnectionResetError):  # cut: the rest was dropped
            read_all(sock)


def test_a_client_that_reads_slowly_but_steadily_gets_its_whole_answer() -> None:
    """A pause shorter than ``send_timeout`` after every 2 MiB, longer than it in all: the
    timeout is for a stall, not for the whole answer."""
    limits = ServerLimits(send_timeout=1.0, shutdown_timeout=0.2)
    with ServerThread(_slow_reader_app(), limits=limits, name="slow-read") as server:
        sock = connect(server)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = bytearray()
        pauses = 0
        with sock:
            while chunk := sock.recv(1 << 20):
                received += chunk
                if len(received) >> 21 > pauses:
                    pauses += 1
                    time.sleep(0.3)
    assert received.startswith(b"HTTP/1.1 200")
    assert received.count(b"x") == 16 << 20
    assert pauses >= 7


def test_a_client_that_stops_reading_a_streamed_answer_over_tls_is_cut(tmp_path: Path) -> None:
    """Over TLS the HTTP protocol is paused by the TLS layer once what it holds is over its
    mark (a streamed answer: a one-piece one is handed whole to the TCP transport, and the
    TLS close's wait bounds it); the same ``send_timeout`` cuts it."""
    from tls_pki import make_pki

    pki = make_pki(tmp_path)
    limits = ServerLimits(send_timeout=1.0, shutdown_timeout=0.2)
    tls = ServerTls(pki.server_cert, pki.server_key)
    with ServerThread(_slow_reader_app(), limits=limits, tls=tls, name="slow-read") as server:
        host, port = server.url.removeprefix("https://").split(":")
        raw = socket.create_connection((host, int(port)), timeout=10)
        with client_context(pki.ca).wrap_socket(raw, server_hostname=host) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(16).startswith(b"HTTP/1.1 200")
            time.sleep(3)  # takes nothing more, well past the send timeout
            received = 0
            with contextlib.suppress(ConnectionResetError, ssl.SSLError):
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
    assert received < 256 * (64 << 10) // 2  # cut: most of the answer was never sent
