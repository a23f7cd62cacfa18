"""A hostile HTTP server for the tests of Ironroot's clients: a real socket on 127.0.0.1.

:class:`HostileServer` answers each request (HTTP/1.1, one request per connection) from
``source(path)`` (an honest resource, ``None`` for a 404) unless ``attacks`` names the path:
then that :data:`Answer` writes to the socket whatever it likes — an endless body, a
``Content-Length`` of a petabyte, bytes trickled one by one, a redirect, a gzip bomb, a 429
with an absurd ``Retry-After``, a connection closed half way. Each answer gives up once the
client closes its side or the server stops, so no test leaves a thread behind for long.

:func:`bounded` is a test's own timeout (no pytest-timeout here): a client that still waits
after that many seconds fails the test with :class:`Hung` instead of holding the run.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from types import FrameType

__all__ = [
    "Answer",
    "HostileServer",
    "Hung",
    "bounded",
    "close_mid_body",
    "endless_body",
    "gzip_bomb",
    "huge_length",
    "ok",
    "redirect",
    "refuse",
    "retry_after",
    "trickle_body",
    "trickle_head",
]

Answer = Callable[[socket.socket, threading.Event], None]
"""Writes one answer to the connection; ``stop`` is set when the server stops."""

_ZEROS = bytes(64 * 1024)


def _head(status: int, headers: Mapping[str, str] | None = None, *, close: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _send(conn: socket.socket, data: bytes) -> bool:
    """``data`` sent; ``False`` once the client has gone."""
    try:
        conn.sendall(data)
    except OSError:
        return False
    return True


def ok(body: bytes, headers: Mapping[str, str] | None = None, status: int = 200) -> Answer:
    """An honest answer: ``body`` with its length."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        _send(conn, _head(status, {"Content-Length": str(len(body)), **(headers or {})}) + body)

    return answer


def _zeros_until(
    conn: socket.socket, stop: threading.Event, frame: Callable[[bytes], bytes]
) -> None:
    while not stop.is_set() and _send(conn, frame(_ZEROS)):
        pass


def endless_body(*, chunked: bool = False) -> Answer:
    """Zeros for ever: in chunks, or (no length) until a close that never comes."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        if chunked:
            _send(conn, _head(200, {"Transfer-Encoding": "chunked"}))
            _zeros_until(conn, stop, lambda data: b"%x\r\n%s\r\n" % (len(data), data))
        else:
            _send(conn, _head(200))
            _zeros_until(conn, stop, lambda data: data)

    return answer


def huge_length(length: int = 10**15) -> Answer:
    """A ``Content-Length`` of ``length`` (a petabyte), then zeros for as long as it is read."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        _send(conn, _head(200, {"Content-Length": str(length)}))
        _zeros_until(conn, stop, lambda data: data)

    return answer


def trickle_body(every: float = 0.05, length: int = 1 << 20) -> Answer:
    """A head at once, then a body of ``length`` zeros one byte every ``every`` seconds: each
    wait is short, the whole would take weeks."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        if not _send(conn, _head(200, {"Content-Length": str(length)})):
            return
        while not stop.wait(every) and _send(conn, b"\0"):
            pass

    return answer


def trickle_head(every: float = 0.05) -> Answer:
    """A status line and then a header one byte every ``every`` seconds, never ending."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        if not _send(conn, b"HTTP/1.1 200 OK\r\nX-Slow: "):
            return
        while not stop.wait(every) and _send(conn, b"a"):
            pass

    return answer


def redirect(location: str, status: int = 302) -> Answer:
    return ok(b"", {"Location": location}, status)


def retry_after(value: str, status: int = 503) -> Answer:
    return ok(b"busy", {"Retry-After": value}, status)


def close_mid_body(body: bytes, sent: int) -> Answer:
    """``body``'s length claimed, ``sent`` bytes of it sent, the connection then closed."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        _send(conn, _head(200, {"Content-Length": str(len(body))}) + body[:sent])

    return answer


def refuse() -> Answer:
    """The connection closed with no answer at all."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        return

    return answer


@cache
def _bomb(expanded: int, layers: int) -> bytes:
    data = b""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunks = [packer.compress(_ZEROS) for _ in range(expanded // len(_ZEROS))]
    data = b"".join(chunks) + packer.flush()
    for _ in range(layers - 1):
        data = zlib.compress(data, 9, wbits=16 + zlib.MAX_WBITS)
    return data


def gzip_bomb(expanded: int = 64 << 20, layers: int = 1) -> Answer:
    """``expanded`` zeros gzipped (``layers`` times: ``Content-Encoding: gzip, gzip``),
    honestly framed: a few hundred KiB on the wire."""

    return ok(_bomb(expanded, layers), {"Content-Encoding": ", ".join(["gzip"] * layers)})


class HostileServer:
    """Serves ``source`` but for the paths of ``attacks`` (both without the prefix's ``/``);
    :attr:`requests` lists every path asked for, in order."""

    def __init__(
        self,
        source: Callable[[str], bytes | None] = lambda path: None,
        attacks: Mapping[str, Answer] | None = None,
    ) -> None:
        self.source = source
        self.attacks: dict[str, Answer] = dict(attacks or {})
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._listener: socket.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> HostileServer:
        accepting = threading.Thread(target=self._accept, daemon=True)
        accepting.start()
        self._threads.append(accepting)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):  # wakes the thread in accept(), as close does not
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
            except OSError:
                return
            if not _read_body(conn, head):
                return
            target = head.split(b" ", 2)[1].decode("latin-1") if b" " in head else "/"
            path = target.split("?", 1)[0].lstrip("/")
            self.requests.append(path)
            attack = self.attacks.get(path)
            if attack is not None:
                attack(conn, self._stop)
            else:
                body = self.source(path)
                answer = ok(body) if body is not None else ok(b"not found", status=404)
                answer(conn, self._stop)
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)


def _read_body(conn: socket.socket, head: bytes) -> bool:
    """The request's body (its ``Content-Length``, up to 1 MiB) read and dropped: a POST's
    bytes left unread would make the close a reset, which may lose the answer on its way;
    ``False`` once the client has gone."""
    lines = head.split(b"\r\n\r\n", 1)
    length = 0
    for line in lines[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = min(int(value.strip()), 1 << 20)
    left = length - len(lines[1]) if len(lines) > 1 else length
    try:
        while left > 0:
            chunk = conn.recv(min(left, 65536))
            if not chunk:
                return False
            left -= len(chunk)
    except OSError:
        return False
    return True


class Hung(BaseException):  # not an Exception: no client code may catch it
    """A client still waiting when its test's own timeout ran out."""


@contextlib.contextmanager
def bounded(seconds: int, what: str = "the client") -> Iterator[None]:
    """Fail with :class:`Hung` if the block still runs after ``seconds`` (SIGALRM: the main
    thread, where pytest and its xdist workers run tests)."""

    def hung(_signum: int, _frame: FrameType | None) -> None:
        raise Hung(f"{what} still waited after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
