"""Connection limits and error answers of every Ironroot HTTP service, over real sockets.

Each limit is configured small so a test takes well under a second; the assertions are on
outcomes (the status sent, the connection closed), never on timings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import http_calls
from ironroot.errors import ConfigError, StorageError
from ironroot.http import ServerLimits, ServerThread, guarded, problem_app, read_body
from ironroot.http._server import _CoalescingTransport, _RefusalLog
from raw_http import connect, read_all

pytestmark = pytest.mark.integration

_log = logging.getLogger("ironroot.test-http")


async def _ok(request: Request) -> Response:
    return Response(b"ok")


async def _echo(request: Request) -> Response:
    return Response(await read_body(request, 1 << 20))


async def _boom(request: Request) -> Response:
    raise RuntimeError("a bug")


async def _storage(request: Request) -> Response:
    raise StorageError("the disk is gone")


def _app():
    return problem_app(
        [
            Route("/ok", guarded(_ok, _log), methods=["GET"]),
            Route("/echo", guarded(_echo, _log), methods=["POST"]),
            Route("/boom", guarded(_boom, _log, what="the test service"), methods=["GET"]),
            Route("/storage", guarded(_storage, _log), methods=["GET"]),
        ]
    )


LIMITS = ServerLimits(
    max_head_bytes=4096,
    header_timeout=0.5,
    body_timeout=0.5,
    keep_alive_timeout=0.5,
    max_connections=4,
)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread(_app(), limits=LIMITS, name="limits-test") as running:
        yield running


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def _problem(raw: bytes) -> dict[str, object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    return json.loads(body)


def test_oversized_head_is_refused_with_431_and_closed(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 64 * 1024)
        raw = read_all(sock)
    assert _status(raw) == 431
    assert _problem(raw)["status"] == 431


def test_head_under_the_limit_is_served(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 2000 + b"\r\n\r\n")
        assert _status(sock.recv(65536)) == 200


def test_slowloris_head_is_cut_with_408(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(0.1)
        raw = b""
        for _ in range(200):  # one header line at a time, never finishing the head
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                raw += sock.recv(65536)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                pass
            if raw:
                break
        sock.settimeout(10)
        raw += read_all(sock)
    assert _status(raw) == 408


def test_idle_fresh_connection_is_closed(server: ServerThread) -> None:
    with connect(server) as sock:
        assert read_all(sock) == b""


def test_idle_keep_alive_connection_is_closed(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = read_all(sock)
    assert _status(raw) == 200
    assert raw.endswith(b"ok")


def test_connection_cap_answers_503_with_retry_after() -> None:
    limits = ServerLimits(keep_alive_timeout=30, header_timeout=30, max_connections=3)
    with ServerThread(_app(), limits=limits) as server:
        held = [connect(server) for _ in range(3)]
        try:
            for sock in held:  # make sure the server has accepted them all
                sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
                assert _status(sock.recv(65536)) == 200
            with connect(server) as extra:
                raw = read_all(extra)
            assert _status(raw) == 503
            assert b"retry-after: 1" in raw.lower()
        finally:
            for sock in held:
                sock.close()
        # the cap counts open connections: once they close, clients are served again
        assert http_calls.get(f"{server.url}/ok").status_code == 200


@pytest.mark.parametrize(
    "line", [b"GET /ok HTTP/2.0\r\nHost: x\r\n\r\n", b"GET /ok HTTP/0.9\r\n\r\n"]
)
def test_other_http_versions_are_refused_with_505(server: ServerThread, line: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(line)
        raw = read_all(sock)
    assert _status(raw) == 505


def test_simple_http09_request_is_not_served(server: ServerThread) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /ok\r\n")
        raw = read_all(sock)
    assert b"200" not in raw.split(b"\r\n", 1)[0]
    assert not raw.endswith(b"ok")


def test_slow_body_is_cut_and_logged_at_debug_only(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with connect(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        raw = read_all(sock)
    assert raw == b""
    server_errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert server_errors == []


def test_client_disconnect_mid_body_is_a_debug_event(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with connect(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123")
    # a request on another connection is answered after the disconnect has been handled
    for _ in range(50):
        if any("disconnected" in r.getMessage() for r in caplog.records):
            break
        http_calls.get(f"{server.url}/ok")
    assert [r.levelno for r in caplog.records if "disconnected" in r.getMessage()] == [
        logging.DEBUG
    ]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_unexpected_error_is_500_with_a_correlation_id_in_the_log(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    response = http_calls.get(f"{server.url}/boom", headers={"accept": "application/json"})
    assert response.status_code == 500
    problem = response.json()
    assert problem["code"] == "internal"
    incident = problem["correlation_id"]
    assert incident in problem["detail"]
    logged = [r for r in caplog.records if incident in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None


def test_storage_error_is_still_a_retryable_503(server: ServerThread) -> None:
    response = http_calls.get(f"{server.url}/storage", headers={"accept": "application/json"})
    assert response.status_code == 503
    assert response.json()["code"] == "storage"


def test_405_names_the_allowed_methods(server: ServerThread) -> None:
    response = http_calls.post(f"{server.url}/ok", headers={"accept": "application/json"})
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert response.json()["status"] == 405


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_head_bytes": 0}, "server.max_head_bytes must be a positive integer"),
        (
            {"header_timeout": -1},
            "server.header_timeout must be a number of seconds above 0, at most 86400",
        ),
        ({"max_connections": True}, "server.max_connections must be a positive integer"),
        ({"slowness": 1}, "[server]: unknown setting(s) slowness"),
        ([], "[server] must be a table"),
    ],
)
def test_bad_limits_are_configuration_errors(table: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerLimits.from_table(table, "[server]")
    assert str(caught.value) == message


# --- one write per response ------------------------------------------------------------------


class _Recorder:
    """Stands in for the socket transport: records what is written and whether it closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class _Cycle:
    def __init__(self, method: str = "GET") -> None:
        self.scope = {"method": method}
        self.response_started = False


def _coalescing(method: str = "GET") -> tuple[Any, _Recorder, _Cycle]:
    recorder, cycle = _Recorder(), _Cycle(method)
    return _CoalescingTransport(recorder, cycle), recorder, cycle  # type: ignore[arg-type]


def test_a_response_head_and_body_leave_in_one_write() -> None:
    transport, recorder, cycle = _coalescing()
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response: at once
    assert recorder.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    cycle.response_started = True
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert len(recorder.writes) == 1  # the head waits for the body
    transport.write(b"ok")
    transport.write(b"more")  # later writes pass through
    assert recorder.writes[1:] == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", b"more"]
    assert not transport.is_closing()


def test_a_held_head_is_flushed_before_a_close() -> None:
    transport, recorder, cycle = _coalescing()
    cycle.response_started = True
    transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    transport.close()  # the app failed after starting its response
    assert recorder.writes == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]
    assert recorder.closed


def test_a_head_response_is_not_held() -> None:
    transport, recorder, cycle = _coalescing("HEAD")
    cycle.response_started = True
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert recorder.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"]


def test_pipelined_requests_with_head_and_an_expect_100_are_all_answered(
    server: ServerThread,
) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
            b"HEAD /ok HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        raw = read_all(sock)
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert raw.endswith(b"ok")
    assert raw.count(b"\r\n\r\nok") == 2  # the HEAD answer has no body
    with connect(server) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: 5\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"hello")
        raw = read_all(sock)
    assert _status(raw) == 200
    assert raw.endswith(b"\r\n\r\nhello")


def test_connections_refused_over_the_cap_are_not_a_warning_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a client opening connection after connection past the cap wrote a warning line for each
    caplog.set_level(logging.DEBUG, logger="ironroot.http")
    limits = ServerLimits(keep_alive_timeout=30, header_timeout=30, max_connections=1)
    with ServerThread(_app(), limits=limits) as server, connect(server) as held:
        held.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _status(held.recv(65536)) == 200
        for _ in range(5):
            with connect(server) as extra:
                assert _status(read_all(extra)) == 503
    refusals = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "ironroot.http" and r.getMessage().startswith("connection refused")
    ]
    assert (
        refusals
        == [(logging.WARNING, "connection refused: 1 connections open")]
        + [(logging.DEBUG, "connection refused: 1 connections open")] * 4
    )


def test_the_next_warning_says_how_many_refusals_were_logged_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = _RefusalLog()
    for open_connections, now in ((3, 100.0), (3, 101.0), (3, 109.9), (4, 110.0), (4, 125.0)):
        log.refused(open_connections, now)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "connection refused: 3 connections open",
        "connection refused: 4 connections open (and 2 more since the last warning)",
        "connection refused: 4 connections open",
    ]
