"""``ironroot._httpclient``: an answer's whole deadline holds in its head as in its body."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from ironroot._httpclient import bounded_response
from ironroot.errors import PayloadTooLarge, Unreachable
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
