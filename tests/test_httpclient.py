"""``ironroot._httpclient``: an answer's whole deadline holds in its head as in its body."""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from urllib.parse import unquote

import httpx
import pytest

from ironroot._httpclient import (
    MAX_SHOWN_LOCATION,
    READABLE_CODINGS,
    bounded_response,
    location_elsewhere,
    path_segment,
    redirect_target,
)
from ironroot.errors import MalformedInput, PayloadTooLarge, Unreachable
from ironroot.transparency import TransparencyClient
from ironroot.witness import WitnessClient

pytestmark = pytest.mark.integration


@pytest.fixture
def dripping() -> Iterator[str]:
    """A server that answers every connection with a status line and headers one byte every
    50 ms, for ever: each wait is short, the whole never ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 100_000
            for byte in head:
                if stop.wait(0.05):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def test_a_head_dripped_byte_by_byte_is_cut_at_the_deadline(dripping: str) -> None:
    started = time.monotonic()
    with (
        httpx.Client(timeout=1.0) as client,
        pytest.raises(httpx.ReadTimeout, match=r"took longer than 0\.5 s"),
    ):
        bounded_response(
            client,
            "GET",
            dripping + "/x",
            limit=1024,
            too_large=lambda: PayloadTooLarge("too large"),
            total=0.5,
        )
    assert time.monotonic() - started < 3.0  # the old code waited for the head's end


def test_the_transparency_and_witness_clients_give_up_on_a_dripping_server(
    dripping: str,
) -> None:
    """Both clients bound the whole answer (four of their per-wait timeouts): a server that
    sends a byte now and then held them as long as it liked."""
    for make, call in (
        (lambda: TransparencyClient(dripping, timeout=0.2), lambda c: c.checkpoint()),
        (lambda: WitnessClient(dripping, timeout=0.2), lambda c: c.add_checkpoint(b"x", 0)),
    ):
        started = time.monotonic()
        with make() as client, pytest.raises(Unreachable):
            call(client)
        assert time.monotonic() - started < 3.0


def _gzip(chunks: Iterator[bytes]) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(packer.compress(chunk) for chunk in chunks) + packer.flush()


@pytest.fixture
def answering() -> Iterator[Callable[[bytes, bytes], str]]:
    """A server that answers every request with the body and ``Content-Encoding`` given
    (``answer(encoding, body)`` → its URL), on a real socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    answer: list[bytes] = [b""]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(answer[0])

    threading.Thread(target=serve, daemon=True).start()

    def set_answer(encoding: bytes, body: bytes) -> str:
        answer[0] = (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (encoding, len(body))
        ) + body
        return f"http://127.0.0.1:{listener.getsockname()[1]}/x"

    try:
        yield set_answer
    finally:
        listener.close()


def _get(url: str, limit: int = 1 << 20) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return bounded_response(
            client, "GET", url, limit=limit, too_large=lambda: PayloadTooLarge("too large")
        )


def test_a_compressed_body_is_bounded_as_it_is_decoded(
    answering: Callable[[bytes, bytes], str],
) -> None:
    """373 bytes of gzip inside gzip were 128 MiB in memory before the limit was looked at
    (httpx decodes a chunk with no bound on what it becomes): every stage now stops at the
    limit, and the peak memory of the read stays near it."""
    inner = _gzip(bytes(1 << 20) for _ in range(128))  # 128 MiB of zeros
    bomb = _gzip(iter((inner,)))
    assert len(bomb) < 1024
    url = answering(b"gzip, gzip", bomb)
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match="too large"):
            _get(url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    # Within the limit, the same codings decode to the body.
    body = b"checkpoint\n" * 1000
    assert _get(answering(b"gzip, gzip", _gzip(iter((_gzip(iter((body,))),))))).content == body
    assert _get(answering(b"x-gzip", _gzip(iter((body,))))).content == body
    assert _get(answering(b"deflate", zlib.compress(body))).content == body
    assert _get(answering(b"identity", body)).content == body


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        (
            b"br",
            b"\x0b\x02\x80hello\x03",
            "the answer's Content-Encoding 'br' is not one this client reads (gzip, deflate)",
        ),
        (
            b"gzip",
            _gzip(iter((b"x" * 5000,)))[:-9],
            "the answer's compressed body ends before its stream does",
        ),
        (
            b"gzip",
            _gzip(iter((b"x",))) + b"junk",
            "the answer's compressed body has bytes after its stream",
        ),
        (
            b"gzip",
            b"not gzip at all",
            "the answer's compressed body does not decode: Error -3 while decompressing data: "
            "incorrect header check",
        ),
    ],
)
def test_a_body_in_a_coding_not_read_or_broken_is_refused(
    answering: Callable[[bytes, bytes], str], encoding: bytes, body: bytes, message: str
) -> None:
    with pytest.raises(MalformedInput) as caught:
        _get(answering(encoding, body))
    assert caught.value.detail == message


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("db-key", "db-key"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("...", "..."),
        ("../x?y#z", "..%2Fx%3Fy%23z"),
        ("%2F", "%252F"),
        ("k é+;=&", "k%20%C3%A9%2B%3B%3D%26"),
    ],
)
def test_a_value_is_one_path_segment_that_decodes_back_to_it(value: str, segment: str) -> None:
    assert path_segment(value) == segment
    assert unquote(segment) == value
    resolved = httpx.URL("http://h/a/").join(f"{segment}/b")
    assert resolved.raw_path == f"/a/{segment}/b".encode()


def test_every_bounded_read_asks_only_for_the_codings_it_reads() -> None:
    """httpx's default ``Accept-Encoding`` names br and zstd whenever those packages are
    installed; a server or CDN honouring it would make every answer fail. A read asks for what
    it decodes, unless its caller names codings of its own."""
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("accept-encoding"))
        return httpx.Response(200, content=b"ok")

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://t") as client:
        for headers in ({}, {"Accept-Encoding": "identity"}):
            answer = bounded_response(
                client,
                "GET",
                "/x",
                limit=16,
                too_large=lambda: PayloadTooLarge("too large"),
                headers=headers,
            )
            assert answer.content == b"ok"
        bounded_response(
            client, "GET", "/x", limit=16, too_large=lambda: PayloadTooLarge("too large")
        )
    assert seen == [READABLE_CODINGS, "identity", READABLE_CODINGS]
    assert READABLE_CODINGS == "gzip, deflate, identity"


def _answer(location: str | None, url: str = "https://ts.example:8443/a/entries") -> httpx.Response:
    """A ``303`` to ``url`` with ``location`` as its ``Location`` (sent as UTF-8)."""
    headers = {} if location is None else {"Location": location.encode()}
    return httpx.Response(303, headers=headers, request=httpx.Request("POST", url))


@pytest.mark.parametrize(
    ("location", "where"),
    [
        ("/entries/e1", "https://ts.example:8443/entries/e1"),
        ("e1?token=s3cret#f", "https://ts.example:8443/a/e1?(hidden)"),
        ("https://u:pw@other.example/x", "https://other.example/x"),
        (
            "/x%1b%5b2J%0d%0aforged%e2%80%ae",
            "https://ts.example:8443/x%1b%5b2J%0d%0aforged%e2%80%ae",
        ),
        ("/a\u202eb\x9bc", "https://ts.example:8443/a%E2%80%AEb%C2%9Bc"),
        ("http://xn--80ak6aa92e.com/", "http://xn--80ak6aa92e.com/"),
        ("http://[::1]:8/x", "http://[::1]:8/x"),
        ("/x\x1b[2J", "a Location that is no URL"),
        ("http://[::1/x", "a Location that is no URL"),
        (None, "nowhere (no Location)"),
        ("/" + "a" * 1000, ("https://ts.example:8443/" + "a" * 1000)[:MAX_SHOWN_LOCATION] + "..."),
    ],
)
def test_a_redirect_target_is_named_as_on_the_wire_without_controls_bounded(
    location: str | None, where: str
) -> None:
    """Where a ``Location`` points, as a message names it: the server's text. Its path was
    named percent-decoded (``%1b`` became an ESC, ``%0a`` a line break) and its host
    IDNA-decoded (``xn--80ak6aa92e`` the Cyrillic homograph of a vendor's name); now as it
    goes on the wire, never a control or bidirectional character, at most 300 characters."""
    shown = redirect_target(_answer(location))
    assert shown == where
    assert shown.isascii()
    assert shown.isprintable()


@pytest.mark.parametrize(
    ("location", "elsewhere"),
    [
        (None, False),
        ("/entries/e1", False),
        ("e1", False),
        ("../../entries/e1?x", False),
        ("https://ts.example:8443/entries/e1", False),
        ("HTTPS://TS.EXAMPLE:8443/entries/e1", False),
        ("//ts.example:8443/entries/e1", False),
        ("https://u:pw@ts.example:8443/entries/e1", False),
        ("https://ts.example/entries/e1", True),
        ("http://ts.example:8443/entries/e1", True),
        ("https://other.example:8443/entries/e1", True),
        ("//other.example:8443/entries/e1", True),
        ("https://ts.example.other.example:8443/entries/e1", True),
        ("http://[::1/x", True),
    ],
)
def test_a_location_elsewhere_is_another_scheme_host_or_port(
    location: str | None, elsewhere: bool
) -> None:
    assert location_elsewhere(_answer(location)) is elsewhere


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("https://ts.example/", "https://ts.example:443/e"),
        ("https://ts.example:443/", "https://ts.example/e"),
        ("http://ts.example/", "HTTP://ts.example:80/e"),
    ],
)
def test_a_schemes_default_port_is_that_port(url: str, location: str) -> None:
    assert location_elsewhere(_answer(location, url)) is False
    assert location_elsewhere(_answer(location.replace("ts.", "other."), url)) is True
