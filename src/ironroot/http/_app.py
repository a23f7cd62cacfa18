"""Problem details, guarded handlers, the problem app and the server thread (see the package
documentation)."""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from ironroot.cose import Problem
from ironroot.errors import (
    ConfigError,
    CredentialRejected,
    IronrootError,
    NotFound,
    PayloadTooLarge,
    StorageError,
)
from ironroot.http._ops import Observed, ServiceInfo, operational_routes, retry_after_seconds
from ironroot.http._server import REFUSAL_HEADERS, PromptServer, ServerLimits, server_config
from ironroot.http._tls import ServerTls
from ironroot.http._tls_handshake import TlsHandshake

__all__ = [
    "PROBLEM_CBOR",
    "PROBLEM_JSON",
    "Handler",
    "ServerThread",
    "acceptable_media",
    "error_response",
    "guarded",
    "problem_app",
    "problem_response",
    "read_body",
    "wants_json",
]

PROBLEM_CBOR: Final = "application/concise-problem-details+cbor"
PROBLEM_JSON: Final = "application/problem+json"
Handler = Callable[[Request], Awaitable[Response]]


def _acceptable(accept: str) -> list[str]:
    """The media ranges of an ``Accept`` header that the client takes: those of a quality
    above 0 (RFC 9110 §12.5.1: ``q=0`` is "not acceptable"; an unreadable one counts as 0)."""
    ranges = []
    for item in accept.lower().split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranges.append(media)
    return ranges


def acceptable_media(request: Request) -> list[str]:
    """The media ranges (lower case) that ``request``'s ``Accept`` fields take, every field
    read as one list (RFC 9110 §5.3), those of quality 0 left out."""
    return _acceptable(", ".join(request.headers.getlist("accept")))


def _is(media: str, kind: str) -> bool:
    """``media`` (lower case) is ``application/<kind>`` or a ``+<kind>`` one (RFC 6839)."""
    return media == f"application/{kind}" or media.endswith(f"+{kind}")


def wants_json(request: Request) -> bool:
    """True when the client accepts JSON and not CBOR. Every ``Accept`` field counts, as
    one list (RFC 9110 §5.3), and media types are matched without regard to case."""
    if not any("json" in field.lower() for field in request.headers.getlist("accept")):
        return False
    ranges = acceptable_media(request)
    return any(_is(m, "json") for m in ranges) and not any(_is(m, "cbor") for m in ranges)


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str,
    code: str | None = None,
    extra: dict[str, object] | None = None,
) -> Response:
    """A problem-details response, CBOR or JSON as the client accepts, with the refusal
    security headers every Ironroot problem carries (``REFUSAL_HEADERS``: nosniff, a CSP that
    allows nothing, no-store)."""
    members = dict(extra or {})
    if code:
        members["code"] = code
    problem = Problem(title=title, detail=detail, status=status, extra=members)
    if wants_json(request):
        return Response(problem.to_json(), status, REFUSAL_HEADERS, media_type=PROBLEM_JSON)
    return Response(problem.to_cbor(), status, REFUSAL_HEADERS, media_type=PROBLEM_CBOR)


def challenges(exc: IronrootError) -> bool:
    """Whether the answer to ``exc`` carries an authentication challenge (RFC 9110 §11.6.1):
    a 401 for a missing or wrong credential. Not a 403 or a 429 (``RoleNotPermitted``,
    ``TooManyAttempts`` are ``Unauthorized`` too), which no other credential answers otherwise,
    and not a client certificate refused on a mutual-TLS plane (``CredentialRejected``): no
    HTTP authentication scheme carries one, and a challenge would send its client looking for
    a token."""
    return exc.http_status == 401 and not isinstance(exc, CredentialRejected)


def error_response(
    request: Request, exc: IronrootError, *, challenge: str | None = "Bearer"
) -> Response:
    """The problem for a typed error (its status, title, detail and code); a 401 that
    :func:`challenges` carries ``WWW-Authenticate: <challenge>`` (none with ``None``)."""
    response = problem_response(request, exc.http_status, exc.title, exc.detail, exc.code)
    if challenge is not None and challenges(exc):
        response.headers["WWW-Authenticate"] = challenge
    if exc.http_status in (429, 503):
        # Every "not now" says when to come back (RFC 9110 §10.2.3), as /ready's 503 does.
        response.headers["Retry-After"] = str(retry_after_seconds(exc))
    return response


def guarded(
    handler: Handler,
    log: logging.Logger,
    *,
    what: str = "the service",
    challenge: str | Callable[[Request], str | None] | None = "Bearer",
) -> Handler:
    """``handler`` with typed errors answered as problems (a 401's challenge ``challenge``,
    :func:`error_response`) and anything else as a 500 problem. ``challenge`` may be a
    function of the request, for a service whose scheme depends on it (Basic over TLS only,
    say): it is asked on an answer :func:`challenges` gives one only, and ``None`` from it
    is no challenge."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except IronrootError as exc:
            log.debug("%s %s refused: %s: %s", request.method, request.url.path, exc.code, exc)
            offered = challenge
            if callable(offered):
                offered = offered(request) if challenges(exc) else None
            return error_response(request, exc, challenge=offered)
        except ClientDisconnect:  # the client's event: nobody is left to answer
            log.debug("%s %s: the client disconnected", request.method, request.url.path)
            return Response(status_code=400)
        except Exception:  # a bug: a 500 problem whose id finds the traceback in the log
            incident = secrets.token_hex(8)
            log.exception(
                "unexpected error in %s %s [correlation id %s]",
                request.method,
                request.url.path,
                incident,
            )
            return problem_response(
                request,
                500,
                "Internal Server Error",
                f"{what} failed unexpectedly; correlation id {incident}",
                "internal",
                {"correlation_id": incident},
            )

    return run


class _HotRoutesApp(Starlette):
    """A Starlette app whose *hot* routes, when a request matches one fully (path and
    method), are answered without the middleware stack and the router: the route's own
    handler (a :func:`guarded` one, which answers every error itself) is called with a
    :class:`Request`, its :class:`Response` sent, and the request counted, timed and logged
    as :class:`Observed` would. Everything else, including a hot path with another method
    (405) or an unknown one (404), takes the full stack. Matching is the route's own
    (:meth:`Route.matches`), so a hot route answers exactly the requests the router would
    have given it, as long as no route listed before it also matches them."""

    def __init__(self, *, hot: Sequence[Route], observed: Observed | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._hot = tuple(hot)
        self._observed = observed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for route in self._hot:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope["app"] = self
                    scope.update(child)
                    scope["route"] = route
                    await self._answer(route, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

    async def _answer(self, route: Route, scope: Any, receive: Any, send: Any) -> None:
        start = time.perf_counter()
        status, size = 500, 0
        try:
            response = await route.endpoint(Request(scope, receive, send))
            status, size = response.status_code, len(response.body)
            await response(scope, receive, send)
        finally:
            if self._observed is not None:
                self._observed.record(scope, status, size, time.perf_counter() - start)


def sorted_allow(allow: str) -> str:
    """An ``Allow`` value with its methods sorted (RFC 9110 §10.2.1 gives no order; a stable
    one is what clients, caches and tests can compare)."""
    return ", ".join(sorted({m.strip() for m in allow.split(",") if m.strip()}))


def problem_app(
    routes: Sequence[BaseRoute], info: ServiceInfo | None = None, *, hot: Sequence[Route] = ()
) -> Starlette:
    """A Starlette app over ``routes`` whose unknown routes and methods answer problems; with
    ``info``, also ``/``, ``/health``, ``/ready``, ``/metrics`` and the access log and request
    metrics of every request (:class:`Observed`).

    ``hot`` names routes of ``routes`` (with :func:`guarded` handlers, and not shadowed by an
    earlier route) that carry most of a service's traffic: a request that matches one is
    answered without Starlette's middleware and router (the same handler, problems, metrics
    and access log; a fraction of the CPU)."""
    titles = {404: "Not Found", 405: "Method Not Allowed"}

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        title = titles.get(exc.status_code, "Error")
        response = problem_response(request, exc.status_code, title, str(exc.detail), "http")
        for name, value in (exc.headers or {}).items():  # 405 carries Allow
            response.headers[name] = value
        if "allow" in response.headers:  # Starlette's order is a set's: one order, sorted
            response.headers["allow"] = sorted_allow(response.headers["allow"])
        return response

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(request, NotFound("no such resource"))

    all_routes = list(routes)  # first match wins: a service's own route shadows ours
    middleware = []
    if info is not None:
        all_routes += operational_routes(info, routes)
        middleware.append(Middleware(Observed, info=info))
    unknown = [r for r in hot if r not in routes]
    if unknown:
        raise ValueError(f"hot routes must be among the routes: {unknown}")
    app = _HotRoutesApp(
        hot=hot,
        observed=Observed(None, info) if info is not None else None,
        routes=all_routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, 404: not_found},
    )
    # A path with a slash too many is a 404 problem like any unknown path: Starlette would
    # answer a 307 to the same path without it, built from the client's Host header.
    app.router.redirect_slashes = False
    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing anything over ``limit`` bytes before and while reading.

    A declared ``Content-Length`` is believed only in ASCII digits (RFC 9110 §8.6): ``str``
    takes ``"²"`` for a digit that ``int`` does not read."""
    length = request.headers.get("content-length")
    if length is not None and length.isascii() and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"the request is {length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class ServerThread:
    """Serve an ASGI app over real HTTP from a background thread (a context manager).

    Port 0 picks a free port; ``url`` says which. The listening socket is bound here, once,
    and handed to the server: a port picked by binding and closing a socket, then bound again
    by the server, could be taken in between by another process (parallel test runs did).
    """

    def __init__(
        self,
        app: Starlette,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "http",
        limits: ServerLimits | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        self._socket: socket.socket | None = None
        if port == 0:
            self._socket = socket.create_server((host, 0), backlog=2048)
            port = int(self._socket.getsockname()[1])
        self.url = f"{'https' if tls is not None else 'http'}://{host}:{port}"
        config = server_config(app, host, port, limits, tls=tls)
        self._config = config
        self._server = PromptServer(config)
        # a stop waits for the requests in flight up to the shutdown timeout, then cuts them
        self._stop_wait = (config.timeout_graceful_shutdown or 0) + 10
        sockets = None if self._socket is None else [self._socket]
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": sockets},
            name=f"ironroot-{name}",
            daemon=True,
        )

    def reload_tls(self) -> None:
        """Serve new connections what the server's TLS files hold now (a renewed certificate):
        a fresh context made of them is put in place at once, for every handshake after
        this; connections already open keep theirs. ``ConfigError`` when the files do not
        make one (the server keeps serving what it did), or when the server serves no TLS."""
        protocol = self._config.http
        if not (isinstance(protocol, type) and issubclass(protocol, TlsHandshake)):
            raise ConfigError(f"{self.url} serves no TLS: nothing to reload")
        protocol.context = protocol.tls.context()  # one assignment: never a half-made context

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.ready.wait(0.01):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise StorageError("the HTTP server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
        self._thread.join(timeout=self._stop_wait)
        if self._socket is not None:
            self._socket.close()
