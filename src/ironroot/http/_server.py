"""Connection limits for every Ironroot HTTP service: one configuration, one protocol class.

uvicorn bounds neither the size of a request head nor the time a client may take to send it,
and it starts no idle timer on a fresh connection: a 50 MiB header, a thousand connections that
never send a byte, or a slowloris client dribbling a header a byte at a time would each hold
the server's memory or sockets indefinitely. Its ``limit_concurrency`` answers 503 to the
*request* but keeps the connection. Those controls live at the protocol level, below the ASGI
app, where no library offers them for httptools; :class:`_GuardedProtocol` is uvicorn's
httptools protocol with them added:

* ``max_head_bytes``: request line plus headers; over it → 431 and close. The trailer
  fields after a chunked body's last chunk are held to it too (431 and close, or only the
  close once the app has begun its answer), and dropped: the app sees the head's fields only;
* ``header_timeout``: from a connection's first byte (or the previous response) to the end of
  the head; over it → 408 and close (a fresh connection that sends nothing is closed after
  ``keep_alive_timeout``, like an idle keep-alive connection);
* ``body_timeout``: from the end of the head to the end of the body; over it → close (the app
  sees a client disconnect);
* ``send_timeout``: how long an answer may wait for its client to take more of it (the
  transport's buffer over its high-water mark: a client that keeps its TCP window shut, a
  slow read); over it → the connection is aborted, the rest of the answer dropped (the app
  sees a client disconnect). A close would wait for the client to take what is buffered;
  no other timer runs while an answer is being written. Over TLS the TLS layer pauses the
  protocol for what it holds (a streamed answer); an answer written in one piece goes whole
  to the TCP transport, unseen here, and the TLS close's wait (5 s after the keep-alive
  timeout) cuts it;
* ``max_connections``: open connections; one more → 503 with ``Retry-After`` and close;
  logged at warning once per ten seconds at most (:class:`_RefusalLog`), the rest at debug;
* ``max_connections_per_client``: open connections from one client address (the key of every
  per-client limit, :func:`ironroot._netaddr.client_key`: an IPv6 address counts as its
  /64), counted from the accept to the close, before any byte is read (:class:`_ClientSlots`,
  a dict lookup per connection); one more → 429 with ``Retry-After`` and close (the client's
  own excess, not the server's: a 503 would say the service is down for everyone), logged as
  the cap's refusals are. A peer among ``trusted_proxies`` is not held to it: every client of
  a reverse proxy arrives from the proxy's address;
* over TLS, the handshake is the connection's (:class:`TlsHandshake`), not the listener's
  as in uvicorn, where a client could hold any number of sockets for 60 s each, unseen by
  the limits, by connecting and sending nothing, half a ClientHello, or one a byte at a time:
  a connection counts against ``max_connections`` and ``max_connections_per_client`` from its
  accept (one more is closed at once: no handshake, so no 503 or 429), its handshake must be
  done within ``header_timeout``, and a closing TLS connection waits at most 5 s for the
  client's ``close_notify`` (asyncio: 30);
* ``shutdown_timeout``: how long a stopping server waits for the requests in flight and the
  responses still unread; then their tasks are cancelled and their connections cut;
* request lines other than HTTP/1.0 and HTTP/1.1 (HTTP/0.9, HTTP/2.0 sent as text) → 505;
  an HTTP/1.1 request without a ``Host`` field, or any request with two → 400 (RFC 9112 §3.2);
  an HTTP/1.0 request with a ``Transfer-Encoding`` field → 400 (RFC 9112 §6.1: its framing
  is faulty);
* a transfer coding other than ``chunked`` (``gzip, chunked``: the parser leaves the body
  coded) → 501 and close;
* an ``Upgrade`` request is served as HTTP/1.1, then its connection closed (the parser
  parses nothing after it); with a body (which the parser skips) → 400;
* a client that half-closes after its requests (it sends nothing more) still gets their
  answers, then the close (uvicorn closed at once, losing them; plain TCP only);
* a connection the server closes while its client may still be sending (a refused head, a
  ``Connection: close`` answer with more pipelined, an Upgrade) is closed *lingering*
  (:class:`_LingeringTransport`): the answer is flushed, the write side shut (FIN), and
  what the client still sends is read and dropped until it closes, for at most 5 s, while
  it sends something at least every second, and up to 4 MiB. Closing at once would make
  the kernel answer the unread bytes with a reset, which can reach the client before it has
  read the answer, losing it. Plain TCP only: asyncio's and uvloop's TLS transports cannot
  half-close, so over TLS the close is immediate, as before. A lingering connection still
  holds its socket, so it counts against ``max_connections``; one over that cap (503) and
  every connection of a stopping server close at once;
* a response sent before its request's body was read (a 413 on ``Content-Length``) keeps
  the connection: the rest of the body is read and dropped (within ``body_timeout``), then
  the keep-alive timeout applies;
* a method the HTTP parser does not know (llhttp knows a fixed set, HTTP's, WebDAV's and a
  few more, and refuses any other before the app sees the request: ``FOO``, ``get``, since
  methods are case-sensitive) → 501 and close (RFC 9110 §15.6.2: a method the server does
  not recognize); a method the parser knows but a route does not take stays the app's 405 with
  ``Allow``. A method that is no token (``G(T``, a leading space: a malformed request line)
  → 400. The method is read back from the request line when the refused request began the
  read it came in (every client that sends one request at a time); one that cannot be (it
  came behind another request in the same read, or began in an earlier read) is taken as
  not recognized: 501;
* what else the HTTP parser refuses (a byte no request target holds, two
  ``Content-Length``, a malformed chunk) → 400;
* a refusal of a request pipelined behind whole requests still owed their answers (in the
  app, or queued) waits for them: they are answered first, in order (RFC 9112 §9.3.2), then
  the refusal, then the close. Written at once, it closed the connection under the earlier
  requests, whose answers were lost, and a pipelining client took the refusal for the answer
  to its first request (a ``POST`` that had registered, a ``Content-Length`` too short whose
  leftover bytes were refused). A request whose own body is still coming is refused at once.

The refusals are RFC 9457 problem documents (JSON: no client has negotiated anything yet).
The 501 for a method may be the app's own: an app whose ``state.unknown_method`` is set (a
:data:`UnknownMethodAnswer`: the Redfish service, whose every error is a Redfish error)
answers it in its own format.

Over TLS, every request's scope carries the ASGI TLS extension (``scope["extensions"]["tls"]``,
asgi.readthedocs.io/en/latest/specs/tls.html), which uvicorn does not fill: ``tls_version``,
``client_cert_chain`` (the PEM certificate the client presented — its leaf; an empty list
without one), ``client_cert_name``, ``client_cert_error`` and ``server_cert`` (``None``), and
``cipher_suite`` (``None``: the standard library names suites, it does not number them).
A service that authorizes clients by their certificate reads it there.

uvicorn writes a response's status line and headers, then its body, as two writes: two
``send`` calls, and two wake-ups of the client, for every small response. The protocol hands
each request's cycle a :class:`_CoalescingTransport` that holds the head back until the first
body write and sends both at once (every response but HEAD's has one, if only ``b""``).
Nothing else changes on the wire: a ``100 Continue`` and a HEAD response's head go out at
once, and a held head is flushed before any close.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import json
import logging
import signal
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import FrameType
from typing import Any, Final, cast

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ironroot._netaddr import client_key
from ironroot.errors import ConfigError
from ironroot.http._tls import ServerTls
from ironroot.http._tls_handshake import TlsHandshake

__all__ = [
    "REFUSAL_HEADERS",
    "PromptServer",
    "ServerLimits",
    "UnknownMethodAnswer",
    "check_listen",
    "run_server",
    "server_config",
    "settle_heap",
]

UnknownMethodAnswer = Callable[[], tuple[int, Mapping[str, str], bytes]]
"""An app's answer (a 501 in its own format) to a method token the HTTP parser does not
know: status, headers, body."""

_log = logging.getLogger("ironroot.http")
_uvicorn_log = logging.getLogger("uvicorn.error")  # where uvicorn's own server logs
_TICK: Final = 0.1  # uvicorn's main-loop tick (seconds)
_SHUTDOWN_POLL: Final = 0.005  # how often a stopping server looks at its connections
_REASONS: Final = {
    400: "Bad Request",
    408: "Request Timeout",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
_VERSIONS: Final = frozenset({"1.0", "1.1"})
# RFC 9110 §5.6.2: a method is a token, one or more of these
_TCHAR: Final = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_UNKNOWN_METHOD: Final = "the request method is not recognized by this service"
_PARSER_REFUSAL: Final = "Invalid HTTP request received."  # uvicorn's warning, to debug
_TLS_VERSIONS: Final = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_CUT_GRACE: Final = 0.5  # how long the tasks of connections cut at shutdown have to end
_LINGER_RESET: Final = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
_DRAIN_TOTAL: Final = 5.0  # a closing connection reads and drops its client's input this long
_DRAIN_IDLE: Final = 1.0  # ... or until the client is this long without sending
_DRAIN_BYTES: Final = 4 << 20  # ... or until it has sent this much: then it closes all the same
# a head's bytes besides its method, target and header lines
_REQUEST_LINE_FRAME: Final = len(b"  HTTP/1.1\r\n\r\n")
_REFUSALS_WARNED_EVERY: Final = 10.0  # seconds between two warnings of refused connections


def _tls_extension(transport: asyncio.BaseTransport) -> dict[object, object] | None:
    """The ASGI TLS extension of a TLS connection (module docs); ``None`` over plain TCP."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


_MAX_TIMEOUT: Final = 86400
"""The longest ``[server]`` timeout (a day) that :class:`ServerLimits` takes."""


@dataclass(frozen=True)
class ServerLimits:
    """What one client may hold of a server: sizes in bytes, times in seconds; and whom the
    server believes about a client's address.

    ``trusted_proxies``: the addresses or networks (``"10.0.0.5"``, ``"10.0.0.0/8"``) of
    reverse proxies whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` headers name the
    client. Empty (the default): those headers are ignored from everyone, and a request's
    client is the peer of its connection, as audit records, Redfish sessions and access logs
    must have it (uvicorn's own default believes any client on 127.0.0.1).

    ``max_connections_per_client``: open connections from one peer address (an IPv6 one as
    its /64); one more is answered 429 and closed (module docs). A peer among
    ``trusted_proxies`` is held to ``max_connections`` only. The default, 128, is an eighth of
    ``max_connections``: eight addresses are needed to fill the server, and a benchmark or a
    NAT gateway's 64 connections from one address still pass.
    """

    max_head_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    keep_alive_timeout: float = 5.0
    send_timeout: float = 60.0
    max_connections: int = 1024
    max_connections_per_client: int = 128
    shutdown_timeout: float = 30.0
    trusted_proxies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        proxies = self.trusted_proxies
        if isinstance(proxies, str) or not isinstance(proxies, list | tuple):
            raise ConfigError("server.trusted_proxies must be a list of addresses or networks")
        for proxy in proxies:
            try:
                if not isinstance(proxy, str):
                    raise TypeError(proxy)
                ipaddress.ip_network(proxy, strict=False)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"server.trusted_proxies: {proxy!r} is not an IP address or network"
                ) from None
        object.__setattr__(self, "trusted_proxies", tuple(proxies))
        for name in ("max_head_bytes", "max_connections", "max_connections_per_client"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"server.{name} must be a positive integer")
        for name in (
            "header_timeout",
            "body_timeout",
            "keep_alive_timeout",
            "send_timeout",
            "shutdown_timeout",
        ):
            value = getattr(self, name)
            # not 0 < nan, and an infinite timeout is a guard switched off without saying so
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value <= _MAX_TIMEOUT
            ):
                raise ConfigError(
                    f"server.{name} must be a number of seconds above 0, at most {_MAX_TIMEOUT}"
                )

    @classmethod
    def from_table(cls, table: object, where: str) -> ServerLimits:
        """Limits from a configuration table (``[server]``); absent keys keep their default."""
        if table is None:
            return cls()
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
        return cls(**table)


REFUSAL_HEADERS: Final[Mapping[str, str]] = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cache-control": "no-store",
}
"""What every refusal of the protocol and of :func:`ironroot.http.problem_app` (405) carries."""
_REFUSAL_HEADERS: Final = b"".join(
    f"{name}: {value}\r\n".encode("latin-1") for name, value in REFUSAL_HEADERS.items()
)


def _app_refusal(status: int, headers: Mapping[str, str], body: bytes) -> bytes:
    """An app's own refusal, sent by the protocol (and the connection closed)."""
    given = {name.lower() for name in headers}
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
    lines += [
        f"{name}: {value}\r\n".encode("latin-1")
        for name, value in headers.items()
        if name.lower() not in ("content-length", "connection")
    ]
    lines += [
        f"{name}: {value}\r\n".encode("latin-1")
        for name, value in REFUSAL_HEADERS.items()
        if name not in given
    ]
    lines.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
    return b"".join(lines) + body


def _is_method_token(head: bytes) -> bool:
    """Whether the request line at the start of ``head`` (empty lines before it skipped, as
    the parser does) begins with a method token: one or more ``tchar``, then a space, the
    line's end, or the end of what came (the rest of the line still to come)."""
    line = head.lstrip(b"\r\n")
    size = next((i for i, byte in enumerate(line) if byte not in _TCHAR), len(line))
    return size > 0 and line[size : size + 1] in (b" ", b"\r", b"\n", b"")


def _refusal(status: int, detail: str, extra_headers: bytes = b"") -> bytes:
    title = _REASONS[status]
    body = json.dumps({"title": title, "status": status, "detail": detail}).encode()
    return (
        f"HTTP/1.1 {status} {title}\r\n".encode()
        + b"content-type: application/problem+json\r\n"
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n"
        # what every service's own answers carry: a refusal is never sniffed into markup,
        # framed, or kept by a cache (the dashboard's pages are HTML in the same origin)
        + _REFUSAL_HEADERS
        + extra_headers
        + b"\r\n"
        + body
    )


class _CoalescingTransport:
    """The transport of one request/response cycle: the response head waits for the first
    body write so that head and body leave in one ``send``; everything else passes through."""

    __slots__ = ("_cycle", "_head", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._held = False  # the head was taken (once per cycle)

    def write(self, data: bytes) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head + data)
        elif not self._held and self._cycle.response_started:
            # The first write after the response started is its head (uvicorn writes it once).
            # A HEAD response has no body write to carry it: it goes out as it is.
            self._held = True
            if self._cycle.scope["method"] == "HEAD":
                self._transport.write(data)
            else:
                self._head = bytes(data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _LingeringTransport:
    """A plain TCP connection's transport whose :meth:`close` lingers (module docs): it shuts
    the write side once what was written is sent, then waits for the client's end of stream
    while its protocol drops what arrives (:meth:`is_closing` is true from the close), for at
    most ``_DRAIN_TOTAL`` seconds, ``_DRAIN_IDLE`` between reads and ``_DRAIN_BYTES`` read;
    then it closes.
    Writes after the close are dropped; everything else passes through to the transport."""

    __slots__ = ("_idle", "_left", "_loop", "_total", "_transport", "closing", "direct")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._idle: asyncio.TimerHandle | None = None
        self._total: asyncio.TimerHandle | None = None
        self._left = 0  # bytes the client may still send while lingering
        self.closing = False  # close() was called: lingering or closed
        self.direct = False  # close at once (the server is stopping)

    def is_closing(self) -> bool:
        return self.closing or self._transport.is_closing()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Dropped once closing, as a closed transport drops it: a response still being
        written when the connection closed (a stopping server) has nowhere to go, and the
        write side may be shut already."""
        if not self.closing:
            self._transport.write(data)

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        transport = self._transport
        if self.direct or transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        try:
            transport.write_eof()  # after what is buffered has been sent
            if not transport.is_reading():  # paused by flow control: the rest is dropped
                transport.resume_reading()
        except (OSError, RuntimeError):
            transport.close()
            return
        self._total = self._loop.call_later(_DRAIN_TOTAL, self.end)
        self._left = _DRAIN_BYTES
        self.received(0)

    def received(self, size: int) -> None:
        """``size`` bytes arrived while lingering (dropped): the client is still sending;
        wait again, unless it has sent ``_DRAIN_BYTES`` since the close."""
        if self._total is None:
            return
        self._left -= size
        if self._left < 0:
            self.end()
            return
        if self._idle is not None:
            self._idle.cancel()
        self._idle = self._loop.call_later(_DRAIN_IDLE, self.end)

    def end(self) -> None:
        """Stop lingering: close now (the client closed, a bound passed, or the server stops)."""
        self.direct = True
        for timer in (self._idle, self._total):
            if timer is not None:
                timer.cancel()
        self._idle = self._total = None
        if self.closing and not self._transport.is_closing():
            self._transport.close()

    def lingering(self) -> bool:
        return self._total is not None

    def abort(self) -> None:
        self.end()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _reset(transport: asyncio.Transport) -> None:
    """Cut a connection: an RST at once (SO_LINGER 0), not after what its client never
    reads, and the transport aborted (its buffer dropped; the app sees the client gone)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    if isinstance(transport, _LingeringTransport):
        transport.direct = True
    transport.abort()


class _RefusalLog:
    """The log of one server's connections refused over ``max_connections`` (or over
    ``max_connections_per_client``: one log of its own): a warning at most every
    ``_REFUSALS_WARNED_EVERY`` seconds, the refusals in between at debug and counted in the
    next warning. A client that opens connections past the cap must not write a warning line
    for each (as the parser's refusals are not: see below)."""

    def __init__(self) -> None:
        self._next = float("-inf")  # the event loop's time of the next warning
        self._quiet = 0  # refusals logged at debug since the last warning

    def refused(self, open_connections: int, now: float, client: str | None = None) -> None:
        """A connection was refused with ``open_connections`` open (from ``client``, when the
        refusal is the per-client limit's), at loop time ``now``."""
        what = "connection refused: %d connections open" + (" from %s" if client else "")
        args: tuple[object, ...] = (open_connections, client) if client else (open_connections,)
        if now < self._next:
            self._quiet += 1
            _log.debug(what, *args)
            return
        self._next = now + _REFUSALS_WARNED_EVERY
        quiet, self._quiet = self._quiet, 0
        if quiet:
            _log.warning(what + " (and %d more since the last warning)", *args, quiet)
        else:
            _log.warning(what, *args)


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _ClientSlots:
    """One server's open connections per client address (``max_connections_per_client``):
    a connection takes a place from its accept (:meth:`take`) and gives it back when it
    closes (:meth:`give_back`), a dict lookup each. Only addresses with a connection open
    are held, so memory is bounded by the server's open connections. One event loop uses
    it (no lock): a server and its connections run on one."""

    def __init__(self, limit: int, exempt: Sequence[_Network]) -> None:
        self.limit = limit
        self._exempt = tuple(exempt)
        self._open: dict[str, int] = {}
        self.refusals = _RefusalLog()

    def key(self, transport: asyncio.BaseTransport) -> str | None:
        """Whose places the connection on ``transport`` takes: its peer's key; ``None`` for a
        peer held to no per-client limit (a trusted proxy; a Unix socket's peer)."""
        peer = transport.get_extra_info("peername")
        if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
            return None
        host = peer[0]
        if self._exempt:
            try:
                address = ipaddress.ip_address(host.partition("%")[0])
            except ValueError:
                return client_key(host)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            if any(address in network for network in self._exempt):
                return None
        return client_key(host)

    def take(self, key: str) -> int | None:
        """A place for one more connection from ``key``; when it has ``limit`` open already,
        none: how many it has open (the connection is refused)."""
        held = self._open.get(key, 0)
        if held >= self.limit:
            return held
        self._open[key] = held + 1
        return None

    def give_back(self, key: str) -> None:
        held = self._open.get(key, 0) - 1
        if held > 0:
            self._open[key] = held
        else:
            self._open.pop(key, None)


def _not_a_parser_refusal(record: logging.LogRecord) -> bool:
    """Drops uvicorn's warning about each request its parser refuses: the client's fault,
    answered with a 400 or 501 problem (:meth:`_GuardedProtocol.send_400_response` logs it
    at debug);
    at warning, every malformed request a client cares to send would add a line to the log."""
    return record.msg != _PARSER_REFUSAL


_uvicorn_log.addFilter(_not_a_parser_refusal)


class _GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of :class:`ServerLimits` enforced."""

    limits: ServerLimits = ServerLimits()
    refusals: _RefusalLog = _RefusalLog()
    clients: _ClientSlots = _ClientSlots(ServerLimits().max_connections_per_client, ())
    unknown_method: UnknownMethodAnswer | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True
        self._head_bytes = 0  # bytes received while the head is incomplete
        self._head_size = 0  # the parsed head's bytes: request line and header lines
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None  # armed while writing is paused
        self._send_left = 0  # what the transport held when the send timer was armed
        self._tls: dict[object, object] | None = None
        self._last = False  # an Upgrade request was read: nothing after it is parsed
        self._chunk_open = False  # a chunk's size line was read, none of its data yet
        self._tail_read = False  # the read being parsed holds trailer bytes only (so far)
        self._trailer_bytes = 0  # bytes of the reads that held trailer bytes only
        self._trailer_size = 0  # the parsed trailer fields' bytes
        self._read = b""  # the read being parsed
        self._begun = 0  # the requests begun in it
        self.client_slot: str | None = None  # whose place in ``clients`` the connection holds
        self.slot_taken = False  # the place was taken (here, or by the TLS handshake)
        # A refusal of a request pipelined behind others still owed an answer: sent once
        # they are answered (RFC 9112 §9.3.2: answers in the order of the requests)
        self._held: bytes | None = None

    # --- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._tls = _tls_extension(transport)  # asyncio calls this after the TLS handshake
        if self._tls is None:
            # Duck-typed: it forwards everything but write(), close() and abort().
            transport = cast(asyncio.Transport, _LingeringTransport(transport, self.loop))
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.refusals.refused(len(self.connections) - 1, self.loop.time())
            if isinstance(self.transport, _LingeringTransport):
                self.transport.direct = True  # one over the cap holds no socket for long
            self._refuse(503, "too many open connections; retry later", b"retry-after: 1\r\n")
            return
        if not self.slot_taken:  # over TLS the handshake took it, at the accept
            self.slot_taken = True
            key = self.clients.key(transport)
            held = None if key is None else self.clients.take(key)
            if held is not None:
                self.clients.refusals.refused(held, self.loop.time(), key)
                if isinstance(self.transport, _LingeringTransport):
                    self.transport.direct = True
                self._refuse(
                    429,
                    f"too many open connections from this address ({held}); retry later",
                    b"retry-after: 1\r\n",
                )
                return
            self.client_slot = key
        # an idle fresh connection is closed like an idle keep-alive one
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.keep_alive_timeout, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        if self.client_slot is not None:
            self.clients.give_back(self.client_slot)
            self.client_slot = None
        if isinstance(self.transport, _LingeringTransport):
            self.transport.end()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        """The server stops: connections close at once from now on, lingering ones too."""
        if isinstance(self.transport, _LingeringTransport):
            self.transport.direct = True
            if self.transport.lingering():
                self.transport.end()
        super().shutdown()

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol's
        """The client half-closed: it sends nothing more, but may still read. uvicorn lets
        asyncio close the transport, losing the answers of the requests in flight; here the
        transport stays open until the last whole request read is answered (that answer says
        ``Connection: close``). A request cut short, or nothing in flight: close now. Over
        TLS asyncio closes anyway (the return value is ignored there)."""
        if isinstance(self.transport, _LingeringTransport):
            self.transport.direct = True  # nothing more comes: a close need not wait for it
        if self._tls is not None or self.transport.is_closing():
            return None  # asyncio closes the transport (a lingering close ends here)
        if self._held is not None:
            return True  # the answers owed, then the refusal, then the close
        last = self.cycle  # the last request whose head was read (in flight or queued)
        if last is None or last.response_complete or last.more_body or not self._awaiting_head:
            return None
        self._cancel_timers()  # a head begun after it will never be whole: it is dropped
        last.keep_alive = False
        return True

    # --- the answer's way out -------------------------------------------------------------

    def pause_writing(self) -> None:
        """The transport holds more than it may of what was written (the client is not
        taking it as fast as it comes): the answer waits, and the client must take some of
        it at least every ``send_timeout`` (:meth:`_send_timed_out`)."""
        super().pause_writing()
        if self._send_timer is None:
            self._arm_send_timer()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _arm_send_timer(self) -> None:
        self._send_left = self.transport.get_write_buffer_size()
        self._send_timer = self.loop.call_later(self.limits.send_timeout, self._send_timed_out)

    def _send_timed_out(self) -> None:
        """``send_timeout`` passed with writing paused: a client that took some of its
        answer meanwhile (what the transport holds shrank) has as long again; one that took
        none (a slow read: a TCP window kept shut) is cut, the connection reset and what
        was left unsent dropped. A close would wait for the client to take it (asyncio
        flushes before it closes), and the socket, the buffered answer and the place among
        ``max_connections`` would be held for as long as the client cares to wait."""
        self._send_timer = None
        # closing or not: asyncio's close waits for the buffer to drain as well
        if self.transport.get_write_buffer_size() < self._send_left:
            self._arm_send_timer()
            return
        _log.debug(
            "a client took none of its answer for %.0f s: connection cut",
            self.limits.send_timeout,
        )
        self._cancel_timers()
        _reset(self.transport)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _refuse(self, status: int, detail: str, extra_headers: bytes = b"") -> None:
        self._send_refusal(_refusal(status, detail, extra_headers))

    def _refused(self) -> bool:
        """Nothing more is read as requests: the connection closes, or a refusal waits."""
        return self._held is not None or self.transport.is_closing()

    def _owed(self) -> bool:
        """Whole requests read before the one being refused still wait for their answers
        (in the app, or queued behind the one there). A refused request whose own body is
        still coming is the newest: queued, it is taken out of the queue (never run); in
        the app, it is refused at once, as before."""
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return False
        if not cycle.more_body:
            return True
        queued = [entry for entry in self.pipeline if entry[0] is cycle]
        for entry in queued:
            self.pipeline.remove(entry)
        return bool(queued)

    def _send_refusal(self, refusal: bytes) -> None:
        """Answer ``refusal`` and close: at once, or, when requests read before the refused
        one are still owed their answers, after the last of them (:meth:`_owed`)."""
        self._cancel_timers()
        if self.transport.is_closing() or self._held is not None:
            return
        if self._owed():
            self._held = refusal
            self.flow.pause_reading()  # nothing more is read as requests meanwhile
            return
        self.transport.write(refusal)
        self.transport.close()

    def on_response_complete(self) -> None:
        # the last answer owed: nothing queued behind it (the refused request never is)
        last = self._held is not None and not self.pipeline
        super().on_response_complete()  # starts the next request queued, if any
        if last and self._held is not None:
            refusal, self._held = self._held, None
            self._unset_keepalive_if_required()
            if not self.transport.is_closing():  # a "Connection: close" answer closed it
                self.transport.write(refusal)
                self.transport.close()

    # --- head ----------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to what its parser refuses is plain text; ours is a problem.
        # uvicorn calls this while it handles the parser's error, so that error is at hand.
        error = sys.exc_info()[1]
        _log.debug("a request the HTTP parser refuses: %s (%s)", msg, error)
        if isinstance(error, httptools.HttpParserInvalidMethodError) and (
            # the method can be read back only when its request began the read (module docs)
            self._begun != 1 or self._head_bytes != len(self._read) or _is_method_token(self._read)
        ):
            self._not_implemented()
            return
        self._refuse(400, "the request is not valid HTTP/1.1")

    def _not_implemented(self) -> None:
        """Answer a method the parser does not know: 501, the app's own when it has one."""
        answer = self.unknown_method
        if answer is not None:
            try:
                refusal = _app_refusal(*answer())
            except Exception:  # the app's bug: logged, and the layer's answer
                _log.exception("the app's answer to an unknown method failed")
            else:
                self._send_refusal(refusal)
                return
        self._refuse(501, _UNKNOWN_METHOD)

    def on_message_begin(self) -> None:
        self._begun += 1
        super().on_message_begin()
        self._head_size = 0
        self._chunk_open = self._tail_read = False
        self._trailer_bytes = self._trailer_size = 0
        if self._tls is not None:
            extensions: dict[str, dict[object, object]] = {"tls": dict(self._tls)}
            self.scope["extensions"] = extensions

    def data_received(self, data: bytes) -> None:
        if self._refused() or self._last:
            if isinstance(self.transport, _LingeringTransport):
                self.transport.received(len(data))  # dropped; the client is still sending
            return
        if self._awaiting_head:
            self._head_bytes += len(data)
        # After a chunk's size line and before any of its data, the next bytes are its data
        # or, after the last chunk, trailers: a read of which the parser makes no data, no
        # chunk's end and no message's end (only trailer fields, or the start of one it
        # holds until the line ends) was all trailers. Counted like an unfinished head.
        self._tail_read = self._chunk_open and not self._awaiting_head
        self._read, self._begun = data, 0
        super().data_received(data)
        if self._refused():
            return
        if self._tail_read:
            self._trailer_bytes += len(data)
            if self._trailer_bytes > self.limits.max_head_bytes:
                self._trailers_too_large()
                return
        # The timers start only for what this data left unfinished: a request whose head and
        # body arrive in one read (nearly all) never arms one.
        if self._awaiting_head:
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, f"the request head is over {self.limits.max_head_bytes} bytes")
            elif self._head_bytes and self._head_timer is None:
                self._head_timer = self.loop.call_later(
                    self.limits.header_timeout, self._head_timed_out
                )
        elif self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_timed_out)

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._awaiting_head:  # a trailer field (after the last chunk): dropped
            self._trailer_size += len(name) + len(value) + 4
            if self._trailer_size > self.limits.max_head_bytes:
                self._trailers_too_large()
            return
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def _trailers_too_large(self) -> None:
        if self._refused():
            return
        detail = f"the request trailers are over {self.limits.max_head_bytes} bytes"
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            # the app answered before the body's end: a refusal has no place on the wire
            _log.debug("closing a connection: %s", detail)
            self._cancel_timers()
            self.transport.close()
        else:
            self._refuse(431, detail)

    def _unsupported_upgrade_warning(self) -> None:
        # uvicorn warns (and suggests a WebSocket library) for every Upgrade request: a
        # client's choice, served as HTTP/1.1 (on_headers_complete)
        _log.debug("an Upgrade request was served as HTTP/1.1; its connection closes")

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._awaiting_head:
            self._refuse(408, f"the request head took over {self.limits.header_timeout} s")

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._refused():  # a request pipelined after a refused one
            return
        # A head that arrived in one read (data_received only counts what is unfinished)
        size = self._head_size + len(self.parser.get_method()) + _REQUEST_LINE_FRAME
        if size > self.limits.max_head_bytes:
            self._refuse(431, f"the request head is over {self.limits.max_head_bytes} bytes")
            return
        version = self.parser.get_http_version()
        if version not in _VERSIONS:
            self._refuse(505, f"HTTP/{version} is not served; use HTTP/1.1")
            return
        hosts, transfer, coded = 0, False, False  # one pass over the fields (every request)
        for name, value in self.headers:
            if name == b"host":
                hosts += 1
            elif name == b"transfer-encoding":
                transfer = True
                coded = coded or any(c.strip().lower() != b"chunked" for c in value.split(b","))
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            # RFC 9112 §3.2: a 400, as a proxy in front may have routed by another Host
            self._refuse(400, "an HTTP/1.1 request has one Host field; any request at most one")
            return
        if transfer and version == "1.0":
            # RFC 9112 §6.1: its framing is faulty (HTTP/1.0 has no transfer codings). The
            # parser reads the chunks, where an HTTP/1.0 proxy in front framed the body
            # otherwise: the service would take other bytes, or another request, than it.
            self._refuse(
                400, "an HTTP/1.0 request has no Transfer-Encoding; its framing is not known"
            )
            return
        if coded:
            # The parser reads the chunks and leaves the body coded ("gzip, chunked"), or
            # ignores a coding it does not know: the service would take other bytes than
            # a proxy in front that decoded them. RFC 9112 §6.1: 501.
            self._refuse(501, "a transfer coding other than chunked is not implemented")
            return
        if self.parser.should_upgrade():
            # The parser skips an Upgrade request's body and parses nothing after it (it
            # hands the rest of the connection over): the request is served as HTTP/1.1
            # (RFC 9110 §7.8: the server may ignore Upgrade) if it has no body, then the
            # connection closes; the bytes after it are never taken for requests.
            if any(
                (name == b"content-length" and value.strip() != b"0")
                or name == b"transfer-encoding"
                for name, value in self.headers
            ):
                self._refuse(400, "an Upgrade request with a body is not served")
                return
            self._last = True
        super().on_headers_complete()
        if self._last and self.cycle is not None:
            self.cycle.keep_alive = False
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            # Duck-typed: it forwards everything but write() and close() to the transport.
            cycle.transport = cast(asyncio.Transport, _CoalescingTransport(self.transport, cycle))

    # --- body ----------------------------------------------------------------------------

    def on_chunk_header(self) -> None:
        self._chunk_open = True

    def on_chunk_complete(self) -> None:
        self._chunk_open = self._tail_read = False

    def on_body(self, body: bytes) -> None:
        self._chunk_open = self._tail_read = False
        if self._refused():
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._tail_read = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._awaiting_head = True
        if self._refused():
            return
        super().on_message_complete()
        cycle = self.cycle
        if (
            cycle is not None
            and cycle.response_complete
            and self.timeout_keep_alive_task is None
            and not self.pipeline
        ):
            # The rest of a body answered early (a 413) has been read and dropped: the
            # connection is idle now, and the bytes had disarmed its keep-alive timer.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.limits.keep_alive_timeout, self.timeout_keep_alive_handler
            )

    def _body_timed_out(self) -> None:
        self._body_timer = None
        _log.debug(
            "closing a connection whose request body took over %s s", self.limits.body_timeout
        )
        if not self.transport.is_closing():
            self.transport.close()


def server_config(
    app: Any,
    host: str,
    port: int,
    limits: ServerLimits | None = None,
    *,
    log_level: str = "warning",
    tls: ServerTls | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration every Ironroot service runs with: httptools, ``limits``, and
    HTTPS (mutual TLS with a client CA) when ``tls`` is given: with ``tls.context()``, the
    handshake done by the protocol (:class:`TlsHandshake`), not by uvicorn's listener."""
    limits = limits or ServerLimits()
    proxies = [ipaddress.ip_network(proxy, strict=False) for proxy in limits.trusted_proxies]
    members = {  # this server's
        "limits": limits,
        "refusals": _RefusalLog(),
        "clients": _ClientSlots(limits.max_connections_per_client, proxies),
    }
    answer = getattr(getattr(app, "state", None), "unknown_method", None)
    if answer is not None:  # a plain function as a class member would be bound to the protocol
        members["unknown_method"] = staticmethod(answer)
    protocol = type("IronrootHttpProtocol", (_GuardedProtocol,), members)
    http: type[asyncio.Protocol] = protocol
    if tls is not None:
        handshake = {"http": protocol, "tls": tls, "context": tls.context()}
        http = type("IronrootTlsProtocol", (TlsHandshake,), handshake)
    # uvicorn annotates it int; it is a number of seconds (PromptServer.shutdown's timeout)
    options: dict[str, Any] = {"timeout_graceful_shutdown": limits.shutdown_timeout}
    if limits.trusted_proxies:
        options.update(proxy_headers=True, forwarded_allow_ips=list(limits.trusted_proxies))
    else:
        options.update(proxy_headers=False)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        ws="none",  # no service speaks WebSocket: an Upgrade request is plain HTTP/1.1
        server_header=False,
        timeout_keep_alive=max(1, round(limits.keep_alive_timeout)),
        **options,
    )


def check_listen(host: str, port: int) -> None:
    """Refuse a port out of range, an unknown host or a port in use (``ConfigError``, one
    line) before a service creates anything on disk. A host IDNA cannot encode (an empty
    label, one over 63 characters, a character IDNA refuses) is no host name either."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"port {port}: a TCP port is 1-65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"host {host}: {exc.strerror or exc}") from exc
    except UnicodeError as exc:  # the idna codec, before any lookup
        raise ConfigError(f"host {host}: not a host name ({exc})") from exc
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


class _Stopped(Exception):
    """Raised by our handler when uvicorn re-raises the SIGINT/SIGTERM it shut down on."""


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


YOUNG_COLLECTION_THRESHOLD: Final = 7000
"""Allocations (less deallocations) of container objects between two collections of the
youngest generation in a serving process: ten times CPython's 700. A request's objects live
for the request (tens of milliseconds under load): collected every 700 allocations, each was
walked several times while in flight and promoted with the rest; every 7,000, most are freed
by reference counting first. Measured with ``bench/registration.py --workers 2``: the
sequencer's collector CPU fell from 0.49-0.59 s to 0.22-0.23 s over the run (about 10 µs per
registration), with no full collection left in the run; 50,000 made each young collection
cost ~25 ms (a pause in the middle of a batch) for no less CPU. Garbage in reference cycles
waits for at most that many allocations: a few MiB."""


def settle_heap() -> None:
    """Ready a serving process's collector once start-up is done (``run_server``, the
    transparency sequencer and ``ironroot fleet serve`` call it just before serving, and
    ``ironroot fleet attest`` before a batch of nodes): what start-up made (modules, the
    app, keys, configuration) lives as long as the process, so it is frozen out of every
    collection (:func:`gc.freeze`); a full collection then walks only what serving made. And
    the youngest generation is collected every :data:`YOUNG_COLLECTION_THRESHOLD`
    allocations. Process-wide: for a process's main thread that is about to serve until it
    stops, never for a library call."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def run_server(
    config: uvicorn.Config,
    *,
    sockets: list[socket.socket] | None = None,
    before: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Serve ``config`` until SIGINT/SIGTERM, then return normally after uvicorn's graceful
    shutdown (uvicorn re-raises the signal once it has shut down; the handler installed here
    turns that into a return, so the caller's ``finally`` closes its stores before exit).

    ``sockets``: already bound listening sockets to serve on (the HTTP workers share one);
    ``before``: awaited on the server's event loop before it starts listening, once uvicorn's
    signal handlers are in place (a worker opens its link to the sequencer there, and stops
    itself with SIGTERM when the link closes, whenever that happens).

    A process's main thread (it installs signal handlers) serves until it stops: the heap is
    settled for serving first (:func:`settle_heap`)."""
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = PromptServer(config) if before is None else _StartingServer(config, before)
    settle_heap()
    try:
        server.run(sockets=sockets)
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class PromptServer(uvicorn.Server):
    """uvicorn's server, stopping as soon as it is asked to.

    uvicorn looks at ``should_exit`` every 0.1 s, and its shutdown sleeps 0.1 s after asking
    each connection to close, then looks every 0.1 s whether they have: 0.15-0.2 s of nothing
    at every stop. Here the main loop keeps uvicorn's 0.1 s tick (:meth:`on_tick`: the
    ``Date`` header once a second, the request limit) but wakes at once when :meth:`stop`
    (from any thread) or SIGINT/SIGTERM asks it to exit; and the shutdown takes uvicorn's
    steps in uvicorn's order (stop listening, ask every connection to close once its response
    is out: an idle keep-alive one closes at once; wait for the connections, then for the
    app's tasks, up to ``timeout_graceful_shutdown``, cancelling what is left and cutting the
    connections still open (a client that reads nothing would hold them for ever); the lifespan
    shutdown unless forced), looking every few milliseconds whether the connections and
    tasks are done.

    ``ready`` is set once the server listens (``started``), for a thread that waits on it."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_asked: asyncio.Event | None = None

    def stop(self) -> None:
        """Ask for the graceful shutdown; from any thread, before or after the start."""
        self.should_exit = True
        self._wake()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._wake()

    def _wake(self) -> None:
        # The main loop sets both before it first looks at should_exit: when either is unset
        # here, that look is still to come and sees should_exit already true.
        loop, exit_asked = self._loop, self._exit_asked
        if loop is None or exit_asked is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: the server has stopped
            loop.call_soon_threadsafe(exit_asked.set)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()

    def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
        # uvicorn names the scheme after its listener's TLS (config.ssl); TLS is the
        # protocol's here (TlsHandshake): an HTTPS server says https all the same
        protocol = self.config.http_protocol_class
        if not (isinstance(protocol, type) and issubclass(protocol, TlsHandshake)):
            super()._log_started_message(listeners)
            return
        self.config.ssl = protocol.context
        try:
            super()._log_started_message(listeners)
        finally:
            self.config.ssl = None

    async def main_loop(self) -> None:
        self._exit_asked = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000  # uvicorn's tick count: 0.1 s ticks, one day
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TICK):
                    await self._exit_asked.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        _uvicorn_log.info("Shutting down")
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        state = self.server_state
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                await self._until_empty(state.connections, "connections to close")
                await self._until_empty(state.tasks, "background tasks to complete")
                for server in self.servers:
                    await server.wait_closed()
        except TimeoutError:
            self._cut(state.connections)
            # The tasks of the cut connections see their client gone and end on their own.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CUT_GRACE):
                    await self._until_empty(state.tasks, "the cut connections' tasks")
            if state.tasks:
                _uvicorn_log.error(
                    "Cancel %s running task(s), timeout graceful shutdown exceeded",
                    len(state.tasks),
                )
            for task in state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()

    @staticmethod
    def _cut(connections: Collection[Any]) -> None:
        """Reset the connections still open when the graceful shutdown is over: a client that
        stopped reading would hold a closing one (and its socket) for ever. The app's task
        sees the client gone (its ``send`` returns, ``receive`` says ``http.disconnect``)."""
        if connections:
            _log.warning("resetting %d connection(s) still open at shutdown", len(connections))
        for connection in list(connections):
            _reset(connection.transport)

    async def _until_empty(self, items: Collection[object], what: str) -> None:
        if not items or self.force_exit:
            return
        await asyncio.sleep(0)  # a transport closed just now is gone after one turn
        if items and not self.force_exit:
            _uvicorn_log.info("Waiting for %s. (CTRL+C to force quit)", what)
        while items and not self.force_exit:
            await asyncio.sleep(_SHUTDOWN_POLL)


class _StartingServer(PromptServer):
    """A uvicorn server that awaits ``before`` first thing in its start-up."""

    def __init__(self, config: uvicorn.Config, before: Callable[[], Awaitable[object]]) -> None:
        super().__init__(config)
        self._before = before

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self._before()
        await super().startup(sockets=sockets)
