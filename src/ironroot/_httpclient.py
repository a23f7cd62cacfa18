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

The limit is on the body as decoded. httpx decodes a ``Content-Encoding`` one received chunk
at a time with no bound on what a chunk becomes: 373 bytes of gzip inside gzip
(``Content-Encoding: gzip, gzip``) were 128 MiB in memory before the limit was looked at.
The body is read here as it came (``iter_raw``) and undone by :class:`_Decoding`, each of
whose stages (``gzip``, ``x-gzip``, ``deflate``, as many as the header lists) gives at most
``limit`` bytes; any other coding is refused (``MalformedInput``), as is a compressed body
cut before its stream's end or followed by other bytes.

:func:`path_segment` is how every client puts a caller's value (a key name, an entry id) into
a request's path: as exactly one segment, which the server decodes back to the value.

:func:`in_clear_elsewhere` is the rule before a client sends a secret (a bearer token, an
officer's credential) or trusts keys it fetches: plain ``http://`` to a host that is not the
loopback (``ironroot._netaddr.is_loopback_host``) is refused by the caller.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

import httpx

from ironroot._netaddr import is_loopback_host
from ironroot._text import shown
from ironroot.errors import IronrootError, MalformedInput, StorageError

__all__ = [
    "MAX_RETRY_AFTER",
    "MAX_SHOWN_LOCATION",
    "READABLE_CODINGS",
    "TOTAL_TIMEOUTS",
    "UNPARSED_URL",
    "Cutoff",
    "answer_retry_after",
    "bounded_response",
    "checked_url",
    "in_clear_elsewhere",
    "location_elsewhere",
    "malformed_answer",
    "path_segment",
    "redirect_target",
    "service_answer",
    "shown_url",
]

_BODY_FRAMING: Final = frozenset(("content-encoding", "content-length", "transfer-encoding"))
READABLE_CODINGS: Final = "gzip, deflate, identity"
"""The ``Accept-Encoding`` every bounded read sends unless its caller names one: the codings
:class:`_Decoding` undoes."""
TOTAL_TIMEOUTS: Final = 4
MAX_RETRY_AFTER: Final = 3600
"""The longest ``Retry-After`` a client honours: a service that asks for more asks for
nothing sane (Ironroot's say 1 s)."""


def checked_url(url: str, what: str) -> str:
    """``url``, once httpx can parse it and a request can be sent to it; otherwise
    ``MalformedInput`` naming ``what`` (a port that is no number or outside 1-65535, which
    httpx takes and the socket layer wraps; a bracket left open, a control character, bytes
    that are not UTF-8 from a command line or the environment; a scheme other than http and
    https; no host). The URL itself is left out of the message: it may carry a user's
    password."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        # httpx's reason, without the part of the URL it quotes after it (``Invalid port:
        # 'SECRET'`` for a password with a ``/`` in it)
        why = re.split(r"[:,]", str(exc), maxsplit=1)[0].strip() or "httpx cannot read it"
        raise MalformedInput(f"the URL of {what} is not valid: {why}") from None
    except UnicodeError:  # a surrogate for a byte that is not UTF-8 (os.fsdecode)
        raise MalformedInput(f"the URL of {what} is not valid: it is not UTF-8 text") from None
    if parsed.scheme not in ("http", "https"):
        why = f"its scheme is {parsed.scheme or 'missing'}, not http or https"
    elif not parsed.host:
        why = "it names no host"
    elif parsed.port is not None and not 1 <= parsed.port <= 65535:
        why = f"port {parsed.port} is not 1-65535"
    else:
        return url
    raise MalformedInput(f"the URL of {what} is not valid: {why}")


UNPARSED_URL: Final = "(a URL that does not parse)"
"""What :func:`shown_url` names a URL httpx cannot read by: never the text as given, which
may hold a password where the parser gave up."""


def shown_url(url: str | httpx.URL) -> str:
    """``url`` as messages, log lines and output name it: without its user information
    (``user:password@``, a credential for basic auth); :data:`UNPARSED_URL` for one httpx
    cannot read (a bracket left open, a control character, text that is not UTF-8)."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        return str(parsed.copy_with(username=None, password=None))
    except (httpx.InvalidURL, UnicodeError):
        return UNPARSED_URL


def in_clear_elsewhere(url: str | httpx.URL) -> bool:
    """Whether ``url`` is plain HTTP (any other scheme but ``https``) to a host that is not the
    loopback, as the HTTP client reads it; a URL httpx cannot read counts as such."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, UnicodeError):
        return True
    return parsed.scheme != "https" and not is_loopback_host(parsed.host)


def path_segment(text: str) -> str:
    """``text`` as one path segment of a request's URL, whatever it holds: every character
    but the unreserved ones percent-encoded (``/``, ``?``, ``#``, ``%`` too), and a value that
    is a dot segment (``.``, ``..``, which the HTTP client resolves away: ``/keys/../x`` is
    ``/x``) spelled with ``%2E``. The server decodes it back to ``text``; a caller's value can
    never reach another route of the service, or another service behind the same host."""
    quoted = quote(text, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def malformed_answer(service: str, why: str) -> StorageError:
    """An answer of ``service`` (its name and shown URL) that does not parse: the service's
    failure (``StorageError`` ``malformed-answer``, exit 1), not the caller's input."""
    return StorageError(f"{service} {why}", code="malformed-answer")


MAX_SHOWN_LOCATION: Final = 300
"""The most characters of a ``Location`` a message names (:func:`redirect_target`); a longer
one is cut there, and ``...`` says so."""


def redirect_target(response: httpx.Response) -> str:
    """Where a redirect points, for a message: its ``Location`` resolved against the request,
    without user information, query or fragment (which may carry a credential or a token).
    The clients of a service (the log fetcher, the witness, transparency and key release
    clients, ``attest --keys URL``) follow no redirect: a ``3xx`` from the URL they were given
    is ``ConfigError`` ``redirect`` naming this, so that their user gives the new URL (the
    transparency client reads SCRAPI's own ``303``/``302`` of a registration, unfollowed,
    and refuses one whose ``Location`` leaves the service: :func:`location_elsewhere`); so
    does a Redfish ``SimpleUpdate``'s fetch, in its ``TransferFailed``.

    The ``Location`` is the server's text, going into messages, logs and a Redfish answer: it
    is named as it goes on the wire — its host in IDNA form (``xn--…``, never the homograph
    it decodes to), its path percent-encoded (``%1b`` stays so, never an ESC) — with any
    character :func:`ironroot._text.shown` spells as a code point so spelled, and at most
    :data:`MAX_SHOWN_LOCATION` characters of it."""
    location = response.headers.get("location")
    if not location:
        return "nowhere (no Location)"
    try:
        target = response.request.url.join(location)
        netloc = target.netloc.decode("ascii", "backslashreplace")
        path = target.raw_path.split(b"?", 1)[0].decode("ascii", "backslashreplace")
    except (httpx.InvalidURL, ValueError, TypeError):
        return "a Location that is no URL"
    where = shown(f"{target.scheme}://{netloc}{path}")
    if target.query or target.fragment:
        where += "?(hidden)"
    return where if len(where) <= MAX_SHOWN_LOCATION else where[:MAX_SHOWN_LOCATION] + "..."


def location_elsewhere(response: httpx.Response) -> bool:
    """Whether the answer's ``Location``, resolved against its request's URL (a relative one
    is the request's origin), points at another origin than the request's — another scheme,
    host or port (a scheme's default port is that port, a host's case no difference) — or is
    no URL. An answer without a ``Location`` points nowhere: ``False``. A client that reads a
    ``Location`` of its service (the transparency client's registration: SCRAPI's ``303`` and
    ``302``, and a ``201``'s) refuses one elsewhere as a redirect (``ConfigError``
    ``redirect``, naming :func:`redirect_target`) and asks nothing there."""
    location = response.headers.get("location")
    if not location:
        return False
    here = response.request.url
    try:
        target = here.join(location)
    except (httpx.InvalidURL, ValueError, TypeError):
        return True
    return _origin(target) != _origin(here)


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    # httpx leaves a default port it was given as it is when the scheme is in capitals
    # (``HTTP://h:80/`` has port 80, ``http://h:80/`` none): the port is the scheme's then
    return url.scheme, url.raw_host, url.port or _DEFAULT_PORTS.get(url.scheme)


def answer_retry_after(response: httpx.Response) -> int | None:
    """The answer's ``Retry-After`` in seconds when it is a number of them (ASCII digits) of
    at most :data:`MAX_RETRY_AFTER`; ``None`` for none, or one of any other form (a date, a
    fraction, a negative or absurd number)."""
    value = response.headers.get("retry-after", "").strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 5:
        return None
    seconds = int(value)
    return seconds if seconds <= MAX_RETRY_AFTER else None


def service_answer(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    service: str,
    limit: int,
    total: float | None = None,
    **request: Any,
) -> httpx.Response:
    """:func:`bounded_response` for the client of ``service`` (its name and shown URL): an
    answer past ``limit`` bytes is ``StorageError`` ``answer-too-large`` and one in a content
    coding the reader does not undo :func:`malformed_answer` — the service's failures (exit
    1), never ``MalformedInput`` (exit 2: nothing the caller gave was wrong)."""
    try:
        return bounded_response(
            client,
            method,
            path,
            limit=limit,
            too_large=lambda: StorageError(
                f"{service} answered {method} {path} with more than {limit} bytes",
                code="answer-too-large",
            ),
            total=total,
            **request,
        )
    except MalformedInput as exc:
        raise malformed_answer(
            service, f"answered {method} {path} in a form this client cannot read: {exc.detail}"
        ) from exc


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
    headers = httpx.Headers(request.get("headers"))
    if "accept-encoding" not in headers:
        # httpx's default names br and zstd whenever those packages are installed, codings
        # this reader refuses: a server or CDN that honoured it would fail every answer
        headers["Accept-Encoding"] = READABLE_CODINGS
    request = {**request, "headers": headers}
    with client.stream(method, url, **request) as streamed:
        if streamed.is_stream_consumed:  # an answer made in memory (a mock transport): read
            decoding, body = _Decoding([]), iter((streamed.content,))
        else:
            codings = streamed.headers.get_list("content-encoding", split_commas=True)
            decoding, body = _Decoding(codings), streamed.iter_raw()
        data = bytearray()
        for raw in body:
            data += decoding.feed(raw, limit - len(data), too_large)
            if deadline is not None and time.monotonic() > deadline:
                raise httpx.ReadTimeout(
                    f"the answer took longer than {total:g} s", request=streamed.request
                )
        data += decoding.end(limit - len(data), too_large)
    # the header bytes as they came: decoded text (latin-1 beyond ASCII) would not encode again
    kept = [
        (name, value)
        for name, value in streamed.headers.raw
        if name.decode("latin-1").lower() not in _BODY_FRAMING
    ]
    return httpx.Response(
        streamed.status_code, headers=kept, content=bytes(data), request=streamed.request
    )


class _Decoding:
    """A body's ``Content-Encoding`` undone as its bytes arrive, each stage bounded (module
    docs); ``codings`` as the header lists them (applied in that order, undone in reverse)."""

    _WBITS: Final = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 15}

    def __init__(self, codings: list[str]) -> None:
        names = [c.strip().lower() for c in codings]
        names = [n for n in names if n not in ("", "identity")]
        if unknown := [n for n in names if n not in self._WBITS]:
            raise MalformedInput(
                f"the answer's Content-Encoding {unknown[0][:40]!r} is not one this client "
                "reads (gzip, deflate)"
            )
        self._stages = [zlib.decompressobj(self._WBITS[n]) for n in reversed(names)]
        self._raw = 0

    def feed(self, data: bytes, room: int, too_large: Callable[[], IronrootError]) -> bytes:
        """``data`` through every stage, each giving at most ``room`` bytes (else
        ``too_large()``)."""
        self._raw += len(data)
        return self._through(0, data, room, too_large)

    def _through(
        self, first: int, data: bytes, room: int, too_large: Callable[[], IronrootError]
    ) -> bytes:
        if len(data) > room and not self._stages[first:]:
            raise too_large()
        for stage in self._stages[first:]:
            if not data:
                return b""
            try:
                data = stage.decompress(data, max(room, 0) + 1)
            except zlib.error as exc:
                raise MalformedInput(
                    f"the answer's compressed body does not decode: {exc}"
                ) from None
            if len(data) > room or stage.unconsumed_tail:
                raise too_large()
        return data

    def end(self, room: int, too_large: Callable[[], IronrootError]) -> bytes:
        """The rest, once the body has ended: ``MalformedInput`` when a stage's stream is cut
        short or followed by more bytes (an empty body is none: no stream began)."""
        out = bytearray()
        if not self._raw:
            return bytes(out)
        for n, stage in enumerate(self._stages):
            # Nothing is pending (every call had room for all its output): what a stage's
            # flush gives goes through the stages after it.
            out += self._through(n + 1, stage.flush(), room - len(out), too_large)
            if not stage.eof:
                raise MalformedInput("the answer's compressed body ends before its stream does")
            if stage.unused_data:
                raise MalformedInput("the answer's compressed body has bytes after its stream")
        return bytes(out)


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
