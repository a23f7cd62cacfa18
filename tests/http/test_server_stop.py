"""How an Ironroot HTTP server stops (``ironroot.http._server.PromptServer``): at once when
asked, and still gracefully: a request in flight is answered in full first, and an idle
keep-alive connection is closed, not left open. Outcomes only, never timings."""

from __future__ import annotations

import asyncio
import threading

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.http import ServerLimits, ServerThread, problem_app
from raw_http import connect, read_all

pytestmark = pytest.mark.integration


def test_a_request_in_flight_is_answered_before_the_server_stops() -> None:
    entered, release = threading.Event(), threading.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        await asyncio.to_thread(release.wait, 10)
        return Response(b"answered")

    server = ServerThread(problem_app([Route("/slow", slow)]))
    server.__enter__()
    stopper = threading.Thread(target=server.__exit__)
    with connect(server) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert entered.wait(10)
        stopper.start()
        stopper.join(0.3)
        assert stopper.is_alive()  # the stop waits for the response
        release.set()
        raw = read_all(sock)  # the answer, then the close: no keep-alive while stopping
    stopper.join(10)
    assert not stopper.is_alive()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(b"\r\n\r\nanswered")
    assert b"connection: close" in raw.lower()


def test_an_idle_keep_alive_connection_is_closed_by_the_stop() -> None:
    async def ok(request: Request) -> Response:
        return Response(b"ok")

    far_off = ServerLimits(keep_alive_timeout=60)  # longer than the socket's 10 s timeout
    with ServerThread(problem_app([Route("/ok", ok)]), limits=far_off) as server:
        sock = connect(server)
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close" not in head.lower()  # kept alive, now idle
    with sock:
        assert read_all(sock) == b""  # closed by the stop, not by the idle timeout


def test_a_server_stopped_as_it_starts_stops() -> None:
    async def ok(request: Request) -> Response:
        return Response(b"ok")

    for _ in range(20):
        with ServerThread(problem_app([Route("/ok", ok)])) as server:
            pass
        with pytest.raises(ConnectionRefusedError):
            connect(server)
