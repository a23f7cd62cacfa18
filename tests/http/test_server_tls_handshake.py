"""Hostile clients of an HTTPS server, over raw sockets: the TLS handshake is part of a
connection's life, counted against ``max_connections`` and bounded by ``header_timeout``
(a client that connects and sends nothing, half a ClientHello, or trickles one), and a
closing connection waits a bounded time for the client's ``close_notify``. Outcomes only:
what the server sends and that it closes, never how fast."""

from __future__ import annotations

import logging
import socket
import ssl
import threading

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.tls_pki import Pki, make_pki

from ironroot.http import (
    ServerLimits,
    ServerThread,
    ServerTls,
    client_context,
    problem_app,
    server_config,
)
from ironroot.http._server import PromptServer

pytestmark = pytest.mark.integration


async def _ok(request: Request) -> Response:
    return Response(b"ok")


APP = problem_app([Route("/ok", _ok)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls(pki: Pki) -> ServerTls:
    return ServerTls(pki.server_cert, pki.server_key)


def _tcp(server: ServerThread) -> socket.socket:
    host, port = server.url.removeprefix("https://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _closed_by_server(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (a reset counts as a close);
    ``TimeoutError`` if it keeps it open for the socket's 10 s."""
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def _client_hello(pki: Pki) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(pki.ca).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16"  # a handshake record
    return hello


@pytest.mark.parametrize("sent", ["nothing", "half a ClientHello"])
def test_a_handshake_not_finished_within_the_header_timeout_is_closed(
    tls: ServerTls, pki: Pki, sent: str, caplog: pytest.LogCaptureFixture
) -> None:
    limits = ServerLimits(header_timeout=0.5, keep_alive_timeout=30)
    hello = _client_hello(pki)
    with (
        caplog.at_level(logging.DEBUG, logger="ironroot.http"),
        ServerThread(APP, tls=tls, limits=limits) as server,
        _tcp(server) as sock,
    ):
        if sent != "nothing":
            sock.sendall(hello[: len(hello) // 2])
        assert _closed_by_server(sock) == b""  # no ServerHello, no alert: closed
    # the client's doing: a debug line, nothing louder (asyncio's logger included)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "closing a connection whose TLS handshake took over 0.5 s" in caplog.messages


def test_a_trickled_client_hello_is_closed_before_its_end(tls: ServerTls, pki: Pki) -> None:
    limits = ServerLimits(header_timeout=0.5, keep_alive_timeout=30)
    hello = _client_hello(pki)
    with ServerThread(APP, tls=tls, limits=limits) as server, _tcp(server) as sock:
        sock.settimeout(0.02)
        answer, sent = None, 0
        for byte in hello:  # one byte every 20 ms: the whole hello would take seconds
            try:
                sock.sendall(bytes([byte]))
                sent += 1
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                answer = b""
            break
    assert answer == b""  # closed by the server, not answered
    assert sent < len(hello)


def test_handshakes_in_progress_count_against_max_connections(
    tls: ServerTls, caplog: pytest.LogCaptureFixture
) -> None:
    limits = ServerLimits(header_timeout=30, keep_alive_timeout=30, max_connections=2)
    with ServerThread(APP, tls=tls, limits=limits) as server:
        held = [_tcp(server) for _ in range(2)]  # connected, never a byte sent
        try:
            with _tcp(server) as extra:
                assert _closed_by_server(extra) == b""  # at once: no handshake over the cap
            for sock in held:  # still open, still waiting for their ClientHello
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
        finally:
            for sock in held:
                sock.close()
    assert ("ironroot.http", logging.WARNING, "connection refused: 2 connections open") in [
        (r.name, r.levelno, r.getMessage()) for r in caplog.records
    ]


def test_a_handshake_cut_by_the_timeout_gives_its_place_back(tls: ServerTls, pki: Pki) -> None:
    limits = ServerLimits(header_timeout=0.3, keep_alive_timeout=30, max_connections=1)
    context = client_context(pki.ca)
    with ServerThread(APP, tls=tls, limits=limits) as server:
        for _ in range(3):  # more than the cap, one after the other
            with _tcp(server) as silent:
                assert _closed_by_server(silent) == b""
            with httpx.Client(verify=context) as client:
                assert client.get(f"{server.url}/ok").text == "ok"


class _TlsOverSocket:
    """A TLS client over a raw socket that never sends its own ``close_notify``."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")

    def _flush(self) -> None:
        if data := self.outgoing.read():
            self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed without close_notify")
        self.incoming.write(data)

    def handshake(self, *, flush: bool = True) -> None:
        """The handshake; ``flush=False`` holds the client's last message back, to go with
        what :meth:`send` sends next."""
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            else:
                if flush:
                    self._flush()
                return

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def read_until_close_notify(self) -> bytes:
        out = b""
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._fill()
                continue
            if not data:  # the close_notify (the ssl module reads it as the end)
                return out
            out += data


def test_a_closing_connection_waits_a_bounded_time_for_the_client_s_close_notify(
    tls: ServerTls, pki: Pki
) -> None:
    with ServerThread(APP, tls=tls) as server, _tcp(server) as sock:
        client = _TlsOverSocket(sock, client_context(pki.ca))
        client.handshake()
        client.send(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = client.read_until_close_notify()  # the server's close_notify: answered
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert answer.endswith(b"\r\n\r\nok")
        # never answered with ours: the server closes the connection all the same, after
        # about 5 s (well within the socket's 10 s; asyncio's default is 30 s)
        assert _closed_by_server(sock) == b""


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_request_sent_with_the_last_handshake_message_is_answered(
    tls: ServerTls, pki: Pki, loop: str
) -> None:
    server = ServerThread(APP, tls=tls)
    # asyncio's TLS decrypts it as the handshake ends, before the HTTP protocol takes over;
    # uvloop's a loop turn later
    server._server.config.loop = loop
    with server, _tcp(server) as sock:
        client = _TlsOverSocket(sock, client_context(pki.ca))
        client.handshake(flush=False)
        # one write: the client's Finished and the request, which the server decrypts
        # before the HTTP protocol has the connection
        client.send(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = client.read_until_close_notify()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\nok")


def test_a_handshake_in_progress_does_not_hold_the_stop(
    tls: ServerTls, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    limits = ServerLimits(
        header_timeout=30, keep_alive_timeout=30, shutdown_timeout=30, max_connections=1
    )
    server = ServerThread(APP, tls=tls, limits=limits)
    server.__enter__()
    with _tcp(server) as sock:
        sock.sendall(_client_hello(pki)[:10])
        with _tcp(server) as probe:  # refused: the first is accepted and counted
            assert _closed_by_server(probe) == b""
        server.__exit__(None, None, None)  # the graceful stop ends the handshake at once
        assert not server._thread.is_alive()
        assert _closed_by_server(sock) == b""
    # not cut after the shutdown timeout ("resetting 1 connection(s) still open")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "connection refused: 1 connections open"
    ]


def test_an_https_server_says_https_when_it_starts(
    tls: ServerTls, caplog: pytest.LogCaptureFixture
) -> None:
    config = server_config(APP, "127.0.0.1", 0, tls=tls, log_level="info")
    server = PromptServer(config)
    uvicorn_log = logging.getLogger("uvicorn")  # it does not propagate to the root logger
    uvicorn_log.addHandler(caplog.handler)  # after the configuration set uvicorn's logging up
    try:
        thread = threading.Thread(target=server.run)
        thread.start()
        assert server.ready.wait(10)
        server.stop()
        thread.join(10)
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    started = [r.getMessage() for r in caplog.records if "running on" in r.getMessage()]
    assert len(started) == 1
    assert started[0].startswith("Uvicorn running on https://127.0.0.1:")
    assert config.ssl is None  # the listener is plain TCP: the protocol does the handshake
