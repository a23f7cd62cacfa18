"""An HTTP client's answer read within a bound, for every Ironroot client of another party.

A client of a transparency service, a witness or a log's read API must not hold whatever a
hostile or broken server sends: :func:`bounded_response` reads the answer as it streams in
and stops at ``limit`` bytes with the caller's error, so memory is bounded by the limit, not
by the server. The answer comes back as an ``httpx.Response`` with its body read (decoded)
and the headers that still describe it (the framing ones, which described the bytes on the
wire, dropped). With ``total``, the whole answer must arrive within that many seconds: httpx's
timeouts bound each wait, not their sum, so a server that sends a byte now and then would
otherwise hold the client as long as it likes — in its body (checked between reads) or in its
status line and headers, which httpx reads to their end before it answers: at the deadline a
:class:`Cutoff` shuts the request's sockets down. httpx's own errors (and that timeout, as
``httpx.ReadTimeout``) pass through: each caller names the party it could not reach. Written
here because httpx has no size limit on a response body and no overall deadline.

:data:`TOTAL_TIMEOUTS` is the overall deadline Ironroot's clients give a whole answer, in
waits: with httpx's ``timeout`` of 10 s for each wait, an answer must be in within 40 s.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx

from ironroot.errors import IronrootError, MalformedInput

__all__ = ["TOTAL_TIMEOUTS", "Cutoff", "bounded_response", "checked_url"]

_BODY_FRAMING: Final = frozenset(("content-encoding", "content-length", "transfer-encoding"))
TOTAL_TIMEOUTS: Final = 4


def checked_url(url: str, what: str) -> str:
    """``url``, once httpx can parse it; otherwise ``MalformedInput`` naming ``what`` (a port
    that is no number, a bracket left open, a control character). The URL itself is left
    out of the message: it may carry a user's password."""
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise MalformedInput(f"the URL of {what} is not valid: {exc}") from None
    return url


def bounded_response(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    limit: int,
    too_large: Callable[[], IronrootError],
    total: float | None = None,
    **request: Any,
) -> httpx.Response:
    """``client``'s answer to ``method url`` (``request``: httpx's ``headers``, ``content``
    …), its body read as it streams in; ``too_large()`` is raised once the body passes
    ``limit`` bytes, ``httpx.ReadTimeout`` once the answer — its status line, headers or
    body — is still coming ``total`` seconds after the request began."""
    if total is None:
        return _read(client, method, url, limit, too_large, None, request)
    with Cutoff(total) as cutoff:
        request["extensions"] = {**request.get("extensions", {}), "trace": cutoff.trace}
        try:
            return _read(client, method, url, limit, too_large, total, request)
        except httpx.TransportError as exc:
            if not cutoff.expired:
                raise
            try:
                request_made: httpx.Request | None = exc.request
            except RuntimeError:  # an error raised before httpx named the request
                request_made = None
            raise httpx.ReadTimeout(
                f"the answer took longer than {total:g} s", request=request_made
            ) from None


def _read(
    client: httpx.Client,
    method: str,
    url: str,
    limit: int,
    too_large: Callable[[], IronrootError],
    total: float | None,
    request: dict[str, Any],
) -> httpx.Response:
    deadline = None if total is None else time.monotonic() + total
    with client.stream(method, url, **request) as streamed:
        data = bytearray()
        for chunk in streamed.iter_bytes():
            data += chunk
            if len(data) > limit:
                raise too_large()
            if deadline is not None and time.monotonic() > deadline:
                raise httpx.ReadTimeout(
                    f"the answer took longer than {total:g} s", request=streamed.request
                )
    kept = [
        (name, value)
        for name, value in streamed.headers.multi_items()
        if name.lower() not in _BODY_FRAMING
    ]
    return httpx.Response(
        streamed.status_code, headers=kept, content=bytes(data), request=streamed.request
    )


class Cutoff:
    """Shuts down every connection a request opens once ``seconds`` have passed (a timer
    thread), so that a read waiting for a server that sends its status line or headers a byte
    at a time ends then (httpx raises a transport error; :attr:`expired` tells the caller
    why). Give :meth:`trace` as the request's ``trace`` extension: httpcore reports each
    connection as it is opened, and again once TLS wraps it; one opened after the cut is shut
    down at once."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False
        self._timer = threading.Timer(seconds, self.cut)
        self._timer.daemon = True

    def __enter__(self) -> Cutoff:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            late = self.expired
        if late:
            _shut(sock)

    def cut(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already, or detached when TLS wrapped it
        sock.shutdown(socket.SHUT_RDWR)
