"""Open connections per client address (``max_connections_per_client``), and the slow
clients the limits cut off, over real sockets against a real server.

127.0.0.0/8 is all loopback on Linux: a client bound to 127.0.0.2 is another address than
one bound to 127.0.0.1, for the same server. Assertions are on outcomes (the status sent,
the connection closed or still open), never on timings.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.tls_pki import Pki, make_pki

import http_calls
from ironroot.errors import ConfigError
from ironroot.http import ServerLimits, ServerThread, ServerTls, client_context, problem_app
from ironroot.http import read_body as read_request_body

pytestmark = pytest.mark.integration


async def _ok(request: Request) -> Response:
    return Response(b"ok")


async def _echo(request: Request) -> Response:
    return Response(await read_request_body(request, 1 << 20))


APP = problem_app([Route("/ok", _ok, methods=["GET"]), Route("/echo", _echo, methods=["POST"])])


def _connect(server: ServerThread, source: str = "127.0.0.1") -> socket.socket:
    """A TCP connection to ``server`` from the loopback address ``source``."""
    host, port = server.url.split("://", 1)[1].split(":")
    return socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))


def _served(sock: socket.socket) -> bool:
    """One request on ``sock``, answered 200 (the connection is then kept)."""
    sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def _until_closed(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def _held(server: ServerThread, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    """``count`` connections from ``source``, each served once (so the server has them)."""
    held = [_connect(server, source) for _ in range(count)]
    for sock in held:
        assert _served(sock)
    return held


LIMITS = ServerLimits(header_timeout=30, keep_alive_timeout=30, max_connections_per_client=3)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread(APP, limits=LIMITS, name="per-client-test") as running:
        yield running


def test_the_default_allows_the_benchmarks_64_connections_from_one_address() -> None:
    assert ServerLimits().max_connections_per_client == 128
    limits = ServerLimits(header_timeout=30, keep_alive_timeout=30)
    with ServerThread(APP, limits=limits) as server:
        held = _held(server, 64)
        for sock in held:
            sock.close()


def test_one_connection_over_the_per_client_limit_is_refused_with_429(
    server: ServerThread,
) -> None:
    held = _held(server, 3)
    try:
        with _connect(server) as extra:
            raw = _until_closed(extra)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
        fields = head.lower().split(b"\r\n")
        assert b"retry-after: 1" in fields
        assert b"connection: close" in fields
        assert b"content-type: application/problem+json" in fields
        assert json.loads(body) == {
            "title": "Too Many Requests",
            "status": 429,
            "detail": "too many open connections from this address (3); retry later",
        }
        for sock in held:  # the client's own connections are still served
            assert _served(sock)
    finally:
        for sock in held:
            sock.close()


def test_other_addresses_are_served_while_one_is_at_its_limit(server: ServerThread) -> None:
    held = _held(server, 3)
    try:
        others = _held(server, 3, source="127.0.0.2")  # a limit of their own
        for sock in others:
            sock.close()
        assert http_calls.get(f"{server.url}/ok").status_code == 429  # 127.0.0.1's fourth
    finally:
        for sock in held:
            sock.close()


def test_a_closed_connection_gives_its_place_back(server: ServerThread) -> None:
    held = _held(server, 3)
    try:
        held.pop().close()
        # the server sees the close after a moment: a new connection is served once it has
        for _ in range(200):
            with _connect(server) as sock:
                sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                raw = _until_closed(sock)
            if not raw.startswith(b"HTTP/1.1 429 "):
                break
        assert raw.startswith(b"HTTP/1.1 200 ")
        # and the one served gave its place back too: every place is taken again, no more
        held += _held(server, 1)
        with _connect(server) as extra:
            assert _until_closed(extra).startswith(b"HTTP/1.1 429 ")
    finally:
        for sock in held:
            sock.close()


def test_connections_cut_by_the_server_give_their_places_back() -> None:
    limits = ServerLimits(header_timeout=0.3, keep_alive_timeout=0.3, max_connections_per_client=2)
    with ServerThread(APP, limits=limits) as server:
        for _ in range(3):  # idle and slow connections, more than the limit, one after another
            silent, slow = _connect(server), _connect(server)
            slow.sendall(b"GET /ok HTTP/1.1\r\n")
            assert _until_closed(silent) == b""
            assert _until_closed(slow).startswith(b"HTTP/1.1 408 ")
            silent.close()
            slow.close()
        assert http_calls.get(f"{server.url}/ok").status_code == 200


def test_refusals_per_client_are_not_a_warning_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ironroot.http")
    limits = ServerLimits(header_timeout=30, keep_alive_timeout=30, max_connections_per_client=1)
    with ServerThread(APP, limits=limits) as server:
        held = _held(server, 1)
        for _ in range(3):
            with _connect(server) as extra:
                assert _until_closed(extra).startswith(b"HTTP/1.1 429 ")
        held[0].close()
    refusals = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "ironroot.http" and r.getMessage().startswith("connection refused")
    ]
    message = "connection refused: 1 connections open from 127.0.0.1"
    assert refusals == [(logging.WARNING, message)] + [(logging.DEBUG, message)] * 2


def test_a_trusted_proxy_is_not_held_to_the_per_client_limit() -> None:
    # every client of a reverse proxy arrives from its address: the proxy limits them
    limits = ServerLimits(
        header_timeout=30,
        keep_alive_timeout=30,
        max_connections_per_client=1,
        trusted_proxies=("127.0.0.2",),
    )
    with ServerThread(APP, limits=limits) as server:
        proxied = _held(server, 3, source="127.0.0.2")
        held = _held(server, 1)
        try:
            with _connect(server) as extra:
                assert _until_closed(extra).startswith(b"HTTP/1.1 429 ")
        finally:
            for sock in proxied + held:
                sock.close()


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "8"])
def test_a_bad_per_client_limit_is_a_configuration_error(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^server.max_connections_per_client must be a pos"):
        ServerLimits.from_table({"max_connections_per_client": value}, "[server]")


# --- TLS: the limit applies from the accept, before any handshake --------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_over_tls_one_over_the_limit_is_closed_before_any_handshake(pki: Pki) -> None:
    tls = ServerTls(pki.server_cert, pki.server_key)
    with ServerThread(APP, tls=tls, limits=LIMITS) as server:
        silent = [_connect(server) for _ in range(3)]  # handshakes not begun: counted
        try:
            with _connect(server) as extra:
                assert _until_closed(extra) == b""  # closed at once, no handshake
            with (
                httpx.Client(verify=client_context(pki.ca)) as client,
                pytest.raises(httpx.TransportError),
            ):
                client.get(f"{server.url}/ok")
            for sock in silent:
                sock.close()
            # the places come back once the server has seen the closes
            context = client_context(pki.ca)
            status = None
            for _ in range(200):
                try:
                    with httpx.Client(verify=context) as client:
                        status = client.get(f"{server.url}/ok").status_code
                    break
                except httpx.TransportError:
                    continue
            assert status == 200
            # a served TLS connection holds its place until it closes
            with httpx.Client(verify=context, limits=httpx.Limits(max_connections=3)) as client:
                urls = [f"{server.url}/ok"] * 3
                assert [client.get(url).status_code for url in urls] == [200] * 3
        finally:
            for sock in silent:
                sock.close()


# --- slow clients: bounded whatever they send ----------------------------------------------

SLOW = ServerLimits(header_timeout=0.5, body_timeout=0.5, keep_alive_timeout=0.5)


def _dribble(sock: socket.socket, data: bytes) -> tuple[bytes, int]:
    """Send ``data`` one byte at a time, 20 ms apart (all of it would take far longer than
    the limit), until the server answers or closes; what it sent and how many bytes went."""
    sock.settimeout(0.02)
    sent = 0
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
            sent += 1
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return b"", sent
        sock.settimeout(10)
        return answer + _until_closed(sock), sent
    raise AssertionError("the server let the whole dribble through")


def test_a_head_sent_one_byte_at_a_time_is_cut_with_408() -> None:
    head = b"GET /ok HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: 1\r\n" * 100 + b"\r\n"
    with ServerThread(APP, limits=SLOW) as server, _connect(server) as sock:
        raw, sent = _dribble(sock, head)
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert sent < len(head)


def test_a_body_sent_one_byte_at_a_time_is_cut() -> None:
    body = b"x" * 1000
    with ServerThread(APP, limits=SLOW) as server, _connect(server) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        raw, sent = _dribble(sock, body)
    assert raw == b""  # closed: the request was never whole, so never answered
    assert sent < len(body)
