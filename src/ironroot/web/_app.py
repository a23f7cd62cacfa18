"""The dashboard's HTTP face: server-rendered pages (Starlette + Jinja2), read-only.

=====================================  =========  ===========================================
page                                    who        shows
=====================================  =========  ===========================================
``/``                                   operator   the overview: counts, logs, latest alerts
``/fleet``                              operator   the nodes (filters ``status``, ``class``,
                                                   ``q``; 100 a ``page``), counts by state,
                                                   attestation plot
``/fleet/nodes/{node}``                 operator   the node's chain of trust (SVG) and events
``/log``                                anyone     the logs, registrations plot
``/log/{log}``                          anyone     its entries, newest first (``page``)
``/log/{log}/entries/{id}``             anyone     a statement, its receipts verified here and
                                                   the inclusion proof
``/log/{log}/entries/{id}/statement.cose``  anyone  the transparent statement (bytes)
``/log/{log}/checkpoints``              anyone     checkpoints, consistency, cosignatures
``/reviews``                            operator   OCP SAFE reviews per firmware digest
``/keys``                               operator   HSM keys (metadata), audit chain, releases
``/alerts``                             operator   monitor and witness alarms, quarantines
``/login`` (GET, POST), ``/logout``     anyone     the login form; logging out (POST)
``/static/dashboard.css``               anyone     the one stylesheet
``/health``, ``/ready``               anyone     as every Ironroot service
``/metrics``                            operator   Prometheus text, as every Ironroot service;
                                        or token   also to ``Authorization: Bearer`` with the
                                                   ``[metrics]`` token (a scraper)
=====================================  =========  ===========================================

An operator page asked for without a session redirects (303) to ``/login?next=<page>``;
``/metrics`` without a session or the token is a 401 problem (RFC 9290, ``WWW-Authenticate:
Bearer``), as a scraper expects, not a redirect to a form. Every
response carries ``Content-Security-Policy: default-src 'none'; style-src 'self'; img-src
'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`` (no script runs, no
inline style, nothing from elsewhere), ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: same-origin``, ``Cache-Control: no-store`` and
``Cross-Origin-Opener-Policy: same-origin`` (a page of another site that opens the dashboard
keeps no handle on its window, to navigate it to a look-alike login); served over TLS, also
``Strict-Transport-Security: max-age=31536000`` (RFC 6797: a browser that has seen it goes on
to the dashboard by HTTPS only, so a network attacker cannot strip TLS from a later visit and
read the login; not ``includeSubDomains``, as the dashboard does not speak for its domain's
other hosts; not sent over plain HTTP, where browsers ignore it). Templates are autoescaped
(every value from a log, a fleet or an HSM is text, never markup). Errors are pages with
their status (a typed error's, or 500 with a correlation id that the log line repeats); a
path with a slash too many is a 404 page, never a redirect.

**Host names.** Served by ``ironroot dashboard`` (:func:`dashboard_hosts`), a request whose
``Host`` is not one the dashboard answers to is a 421 problem (RFC 9290, code
``misdirected``) before any route runs, static files and ``/health`` included: a page of
another site whose name was rebound to the dashboard's address (DNS rebinding) cannot read it
or log in from the victim's browser. 421 Misdirected Request (RFC 9110 §15.5.20) says what
happened, a request for an authority this server does not answer for, where 400 would call
a well-formed request malformed.

The app serves at the root or mounted under a prefix (``fleet serve`` mounts it at
``/dashboard``): every link, and over plain HTTP the cookies' path, follow the ASGI
``root_path`` (over TLS the cookies are ``__Host-`` ones, for the path ``/``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from importlib import resources
from typing import Any, Final

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ironroot._netaddr import is_loopback_host
from ironroot.errors import (
    IronrootError,
    MalformedInput,
    StorageError,
    TooManyAttempts,
    Unauthorized,
)
from ironroot.http import (
    Observed,
    ServiceInfo,
    error_response,
    operational_routes,
    problem_response,
    read_body,
    require_media_type,
    retry_after_seconds,
    sorted_allow,
)
from ironroot.web._auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    LoginAttempt,
    Session,
    cookie_name,
    new_login_nonce,
)
from ironroot.web._dashboard import Dashboard
from ironroot.web._text import Trouble, visible

__all__ = ["HSTS", "SECURITY_HEADERS", "create_dashboard_app", "dashboard_hosts"]

_log = logging.getLogger("ironroot.web")
HSTS: Final = ("strict-transport-security", "max-age=31536000")
_PUBLIC_DETAILS: Final = {  # what a 5xx page says to a visitor not signed in: no file names
    "operators-unreadable": (
        "the operators file of this dashboard cannot be read now, so nobody can log in: the "
        "server's log says why; try again once it is repaired"
    ),
}
SECURITY_HEADERS: Final = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
_MAX_FORM: Final = 8 * 1024
_FORM: Final = "application/x-www-form-urlencoded"
ENTRY_TEXT: Final = 256
"""Characters of an issuer or a subject a row of a log's entries shows (the statement's page
shows all of it): a statement may hold 64 KiB of either, and the page is public."""
_NAV: Final = (
    ("/", "Overview"),
    ("/fleet", "Fleet"),
    ("/log", "Log"),
    ("/reviews", "Reviews"),
    ("/keys", "Keys & audit"),
    ("/alerts", "Alerts"),
)
Page = Callable[[Request], Awaitable[Response]]


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ironroot.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["segment"] = lambda value: urllib.parse.quote(str(value), safe="")
    env.filters["compact"] = _compact
    env.globals["entry_text"] = ENTRY_TEXT
    env.filters["short"] = lambda value, n=16: (
        value if len(str(value)) <= n else f"{str(value)[:n]}…"
    )
    return env


@pass_context
def _finalize(context: Context, value: object) -> object:
    """Every value a template prints: text from data with its hidden characters shown
    (:func:`ironroot.web._text.visible`); the server's own trouble (a
    :class:`~ironroot.web._text.Trouble`: where it keeps its files) whole to a signed-in
    operator only, to anyone else as :attr:`~ironroot.web._text.Trouble.PUBLIC`; markup (the
    SVG pictures, which do the same for their texts) as it is."""
    if isinstance(value, Trouble) and context.get("session") is None:
        return Trouble.PUBLIC
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def _static(name: str) -> bytes:
    return resources.files("ironroot.web").joinpath(f"static/{name}").read_bytes()


def _compact(value: object, limit: int = 400) -> str:
    """An event detail value as one line of text (JSON for lists and maps)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _safe_next(value: str | None) -> str:
    """A path inside the dashboard to go to after logging in (never another site, and never
    out of the prefix the dashboard is mounted at: no ``.`` or ``..`` segment in the path,
    percent-encoded or not, as a browser resolves ``/dashboard/%2e%2e/x`` to ``/x``)."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 32 for c in value)
        or len(value) > 512
    ):
        return "/"
    path = value.partition("?")[0].partition("#")[0]
    if any(s.lower().replace("%2e", ".") in (".", "..") for s in path.split("/")):
        return "/"
    return value


def dashboard_hosts(bound: str, port: int, names: Iterable[str]) -> frozenset[str]:
    """The ``Host`` values a dashboard listening on ``bound:port`` answers: ``names`` (the
    operator's, e.g. a reverse proxy's ``dash.example``; one without a port matches any port),
    and ``localhost``, ``127.0.0.1`` and ``[::1]`` with the port when ``bound`` is a loopback
    address, or else ``bound`` with the port (not an unspecified ``0.0.0.0`` or ``::``, which
    no client names)."""
    hosts = {name.lower() for name in names}
    if is_loopback_host(bound):
        hosts |= {f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"}
    else:
        try:
            address = ipaddress.ip_address(bound)
        except ValueError:
            hosts.add(f"{bound.lower()}:{port}")  # a name to listen on
        else:
            if not address.is_unspecified:
                literal = f"[{address}]" if address.version == 6 else str(address)
                hosts.add(f"{literal}:{port}")
    return frozenset(hosts)


def create_dashboard_app(
    dashboard: Dashboard, *, allowed_hosts: Collection[str] | None = None
) -> Starlette:
    """The dashboard as an ASGI app (module docs): answering only the ``Host`` values in
    ``allowed_hosts`` (:func:`dashboard_hosts`), or any (``None``: mounted in a server that
    decides, as ``fleet serve`` over TLS)."""
    env = _environment()
    css = _static("dashboard.css")
    icon = _static("favicon.svg")
    info = ServiceInfo(
        "dashboard", "Ironroot dashboard: the trust plane, read-only", docs="dashboard"
    )

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def cookie(request: Request, name: str) -> str | None:
        """The value of the cookie ``name`` (over TLS only its ``__Host-`` one: _auth docs)."""
        return request.cookies.get(cookie_name(name, tls=request.url.scheme == "https"))

    def session_of(request: Request) -> Session | None:
        try:
            session = dashboard.session_keys.session(
                cookie(request, SESSION_COOKIE),
                dashboard.operators,
                now=int(dashboard.now().timestamp()),
                lifetime=dashboard.config.session_lifetime,
            )
            if dashboard.ended_sessions.ended(session.id):
                return None  # logged out: a copy of its cookie is no session
        except Unauthorized:
            return None
        except IronrootError as exc:  # which sessions ended cannot be read: none is valid
            _log.warning("no session can be checked now: %s", exc)
            return None
        return session

    def render(
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        session: Session | None = None,
    ) -> HTMLResponse:
        prefix = root(request)
        value = cookie(request, SESSION_COOKIE)
        logout_token = ""
        if session and value:
            logout_token = dashboard.session_keys.csrf(value, form="logout")
        html = env.get_template(template).render(
            **context,
            title=dashboard.title,
            nav=_NAV,
            path=request.url.path[len(prefix) :] or "/",
            session=session,
            logout_token=logout_token,
            url=lambda path: prefix + path,
            now=dashboard.now(),
        )
        return HTMLResponse(html, status_code=status)

    def error_page(
        request: Request, status: int, title: str, detail: str, session: Session | None
    ) -> HTMLResponse:
        return render(
            request,
            "error.html",
            {"status": status, "heading": title, "detail": detail},
            status=status,
            session=session,
        )

    def failure_page(request: Request, exc: IronrootError, session: Session | None) -> Response:
        """The page of a typed error: its status and title; for the server's trouble (5xx)
        the detail names files and hosts of the machine, for the log and signed-in
        operators, not for anyone else."""
        detail = exc.detail
        if exc.http_status >= 500:
            _log.warning("%s %s: %s", request.method, request.url.path, exc)
            if session is None:
                detail = _PUBLIC_DETAILS.get(
                    exc.code, "a source of this page cannot be read now; try again shortly"
                )
        else:
            _log.debug("%s %s: %s", request.method, request.url.path, exc)
        response = error_page(request, exc.http_status, exc.title, detail, session)
        if exc.http_status in (429, 503):  # every "not now" says when to come back
            response.headers["retry-after"] = str(retry_after_seconds(exc))
        return response

    async def guarded(
        request: Request, answer: Awaitable[Response], session: Session | None
    ) -> Response:
        """``answer``, or the page of what went wrong: a typed error's page, or a 500 page
        with a correlation id the log repeats (a bug), never Starlette's bare 500 without
        the security headers."""
        try:
            return await answer
        except IronrootError as exc:
            return failure_page(request, exc, session)
        except Exception:
            incident = secrets.token_hex(8)
            _log.exception("unexpected error in %s [correlation id %s]", request.url.path, incident)
            return error_page(
                request,
                500,
                "Internal Server Error",
                f"the dashboard failed unexpectedly; correlation id {incident}",
                session,
            )

    def page(
        handler: Callable[[Request, Session | None], Awaitable[Response]], *, public: bool
    ) -> Page:
        async def run(request: Request) -> Response:
            session = session_of(request)
            if session is None and not public:
                try:  # which sessions ended cannot be read: no login would help, say so
                    dashboard.ended_sessions.ended("")
                except IronrootError as exc:
                    unreadable = StorageError(f"the ended sessions cannot be read: {exc.detail}")
                    return failure_page(request, unreadable, None)
                target = request.url.path[len(root(request)) :] or "/"
                if request.url.query:
                    target += "?" + request.url.query
                query = urllib.parse.urlencode({"next": target})
                return RedirectResponse(f"{root(request)}/login?{query}", status_code=303)
            return await guarded(request, handler(request, session), session)

        return run

    def view(
        template: str,
        build: Callable[..., Mapping[str, Any]],
        *,
        public: bool = False,
        **fixed: Any,
    ) -> Page:
        async def handler(request: Request, session: Session | None) -> Response:
            args = {**fixed, **request.path_params}
            context = await run_in_threadpool(build, **args)
            return render(request, template, context, session=session)

        return page(handler, public=public)

    # --- pages ------------------------------------------------------------------------------

    def page_number(request: Request) -> int:
        try:
            return int(request.query_params.get("page", "1"))
        except ValueError as exc:
            raise MalformedInput("page is a number") from exc

    async def fleet(request: Request, session: Session | None) -> Response:
        q = request.query_params
        context = await run_in_threadpool(
            dashboard.fleet_page,
            status=q.get("status", "")[:32],
            node_class=q.get("class", "")[:64],
            query=q.get("q", "")[:128],
            page=page_number(request),
        )
        return render(request, "fleet.html", context, session=session)

    async def entries(request: Request, session: Session | None) -> Response:
        number = page_number(request)
        context = await run_in_threadpool(dashboard.log_entries, request.path_params["log"], number)
        return render(request, "log_entries.html", context, session=session)

    async def statement_file(request: Request, session: Session | None) -> Response:
        source = dashboard.log(request.path_params["log"])
        data = await run_in_threadpool(source.transparent_statement, request.path_params["entry"])
        name = request.path_params["entry"][:16].lower()  # hex digits: the log checked
        return Response(
            data,
            media_type="application/cose",
            headers={"content-disposition": f'attachment; filename="{name}.cose"'},
        )

    # --- login ------------------------------------------------------------------------------

    def cookie_args(request: Request) -> dict[str, Any]:
        """How the dashboard's cookies are set: over TLS as ``__Host-`` ones (``Secure``,
        ``Path=/``, no ``Domain``: see :func:`cookie_name`), over plain HTTP for its path."""
        tls = request.url.scheme == "https"
        return {
            "path": "/" if tls else root(request) or "/",
            "httponly": True,
            "samesite": "strict",
            "secure": tls,
        }

    def set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
        tls = request.url.scheme == "https"
        response.set_cookie(cookie_name(name, tls=tls), value, max_age=age, **cookie_args(request))

    def delete_cookie(request: Request, response: Response, name: str) -> None:
        tls = request.url.scheme == "https"
        response.delete_cookie(cookie_name(name, tls=tls), **cookie_args(request))

    def login_form(
        request: Request, *, status: int = 200, error: str | None = None, user: str = ""
    ) -> Response:
        nonce = new_login_nonce()
        response = render(
            request,
            "login.html",
            {
                "csrf": dashboard.session_keys.csrf(nonce, form="login"),
                "next": _safe_next(request.query_params.get("next")),
                "error": error,
                "user": user,
                "no_operators": not dashboard.operators.names,
            },
            status=status,
        )
        set_cookie(request, response, LOGIN_COOKIE, nonce, 3600)
        return response

    async def login_page(request: Request) -> Response:
        if session_of(request) is not None:
            return RedirectResponse(
                root(request) + _safe_next(request.query_params.get("next")), status_code=303
            )
        return await guarded(request, run_in_threadpool(login_form, request), None)

    def check_origin(request: Request) -> None:
        """``Unauthorized`` (``csrf``) for a form sent with an ``Origin`` other than the
        dashboard's; for https://<its host> when it is served as http://<its host>, saying
        why: a proxy ends TLS in front of it and is not trusted to say so."""
        origin = request.headers.get("origin")
        expected = f"{request.url.scheme}://{request.url.netloc}"
        if origin is None or origin == expected:
            return
        if request.url.scheme == "http" and origin == f"https://{request.url.netloc}":
            raise Unauthorized(
                f"the form was sent from {origin}, and this dashboard is served as {expected}: "
                "behind a proxy that ends TLS, name the proxy in [server] trusted_proxies",
                code="csrf",
            )
        raise Unauthorized("the form was not sent from this dashboard", code="csrf")

    def posted(handler: Page) -> Page:
        """``handler`` (it reads a form), where a client gone before its form's end is the
        client's event, a debug line, as in every service (:func:`ironroot.http.guarded`),
        not a 500 and an error with a traceback: nobody is left to answer."""

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except ClientDisconnect:
                _log.debug("%s %s: the client disconnected", request.method, request.url.path)
                return Response(status_code=400)

        async def run(request: Request) -> Response:
            # a damaged operators' file is the server's trouble, a page, not a bare 500
            return await guarded(request, answer(request), None)

        return run

    async def form(request: Request) -> dict[str, str]:
        """The fields of a posted form: a body of another type (JSON, multipart, text) is
        ``UnsupportedMediaType`` (415), not read as a form whatever it claims to be."""
        require_media_type(request, _FORM, untyped=_FORM)
        body = await read_body(request, _MAX_FORM)
        try:
            fields = urllib.parse.parse_qs(
                body.decode("utf-8"), keep_blank_values=True, max_num_fields=8, strict_parsing=False
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedInput("the form is not URL-encoded UTF-8") from exc
        return {k: v[0] for k, v in fields.items()}

    async def login(request: Request) -> Response:
        client = request.client.host if request.client is not None else "-"
        try:
            attempt = dashboard.throttle.begin(client)
        except TooManyAttempts as exc:
            response = error_page(request, 429, exc.title, exc.detail, None)
            response.headers["retry-after"] = str(exc.retry_after)
            return response
        try:
            return await log_in(request, client, attempt)
        finally:
            dashboard.throttle.end(attempt)

    async def log_in(request: Request, client: str, attempt: LoginAttempt) -> Response:
        try:
            fields = await form(request)
            check_origin(request)
            dashboard.session_keys.check_csrf(
                cookie(request, LOGIN_COOKIE), fields.get("csrf"), form="login"
            )
        except IronrootError as exc:
            return login_form(
                request, status=exc.http_status if exc.http_status != 401 else 403, error=exc.detail
            )
        user = fields.get("user", "")[:64]
        try:
            dashboard.throttle.begin_account(attempt, user)
        except TooManyAttempts as exc:
            _log.info("dashboard login refused for %r from %s: %s", user, client, exc.code)
            refused = error_page(request, 429, exc.title, exc.detail, None)
            refused.headers["retry-after"] = str(exc.retry_after)
            return refused
        try:
            name = await run_in_threadpool(
                dashboard.operators.authenticate, user, fields.get("password", "")[:1024]
            )
        except Unauthorized as exc:  # a wrong password, an unknown user, a locked account
            attempt.failed = True
            _log.info("dashboard login refused for %r from %s: %s", user, client, exc.code)
            return login_form(
                request, status=401, error="unknown user or wrong password", user=user
            )
        tag = dashboard.operators.tag(name)
        assert tag is not None
        value = dashboard.session_keys.issue(
            name,
            tag,
            now=int(dashboard.now().timestamp()),
            lifetime=dashboard.config.session_lifetime,
        )
        _log.info("dashboard login of %s from %s", name, client)
        response = RedirectResponse(root(request) + _safe_next(fields.get("next")), status_code=303)
        set_cookie(request, response, SESSION_COOKIE, value, dashboard.config.session_lifetime)
        delete_cookie(request, response, LOGIN_COOKIE)
        return response

    post_login = posted(login)

    async def login_route(request: Request) -> Response:
        """The form (GET, HEAD) and the login (POST): one route, so that a 405 there names
        all three (two routes for one path answer the first one's methods alone)."""
        return await (post_login if request.method == "POST" else login_page)(request)

    async def logout(request: Request) -> Response:
        value = cookie(request, SESSION_COOKIE)
        try:
            fields = await form(request)
            check_origin(request)
            dashboard.session_keys.check_csrf(value, fields.get("csrf"), form="logout")
        except Unauthorized as exc:
            return error_page(request, 403, "Forbidden", exc.detail, session_of(request))
        except IronrootError as exc:  # not a form, too large, not UTF-8: its own status
            return error_page(request, exc.http_status, exc.title, exc.detail, session_of(request))
        session = session_of(request)
        if session is not None:
            try:
                await run_in_threadpool(
                    dashboard.ended_sessions.end, session, now=int(dashboard.now().timestamp())
                )
            except IronrootError as exc:
                _log.warning("logging %s out failed: %s", session.user, exc)
                return error_page(request, exc.http_status, exc.title, exc.detail, session)
        response = RedirectResponse(f"{root(request)}/login", status_code=303)
        delete_cookie(request, response, SESSION_COOKIE)
        return response

    async def stylesheet(request: Request) -> Response:
        return Response(css, media_type="text/css", headers={"cache-control": "max-age=3600"})

    async def favicon(request: Request) -> Response:
        return Response(icon, media_type="image/svg+xml", headers={"cache-control": "max-age=3600"})

    routes: list[BaseRoute] = [
        Route("/", view("overview.html", dashboard.overview), methods=["GET"]),
        Route("/fleet", page(fleet, public=False), methods=["GET"]),
        Route("/fleet/nodes/{node}", view("node.html", dashboard.node_page), methods=["GET"]),
        Route("/log", view("log_index.html", dashboard.log_index, public=True), methods=["GET"]),
        Route("/log/{log}", page(entries, public=True), methods=["GET"]),
        Route(
            "/log/{log}/checkpoints",
            view("checkpoints.html", dashboard.checkpoints, public=True),
            methods=["GET"],
        ),
        Route(
            "/log/{log}/entries/{entry}/statement.cose",
            page(statement_file, public=True),
            methods=["GET"],
        ),
        Route(
            "/log/{log}/entries/{entry}",
            view("statement.html", dashboard.statement, public=True),
            methods=["GET"],
        ),
        Route("/reviews", view("reviews.html", dashboard.reviews), methods=["GET"]),
        Route("/keys", view("keys.html", dashboard.keys_page), methods=["GET"]),
        Route("/alerts", view("alerts.html", dashboard.alerts), methods=["GET"]),
        Route("/login", login_route, methods=["GET", "POST"]),
        Route("/logout", posted(logout), methods=["POST"]),
        Route("/static/dashboard.css", stylesheet, methods=["GET"]),
        Route("/static/favicon.svg", favicon, methods=["GET"]),
    ]
    operational = {getattr(r, "path", ""): r for r in operational_routes(info, routes)}
    scrape = operational.pop("/metrics")
    assert isinstance(scrape, Route)

    def scraper(request: Request) -> bool:
        expected = dashboard.config.metrics_token_sha256
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if expected is None or scheme.lower() != "bearer" or not token.strip():
            return False
        given = hashlib.sha256(token.strip().encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(given, expected)

    async def metrics(request: Request) -> Response:
        """The service's metrics, for a signed-in operator or the configured scraper: they
        tell who logs in and when, which pages fail, how large the fleet is."""
        if not scraper(request) and session_of(request) is None:
            return error_response(
                request,
                Unauthorized(
                    "the metrics are for operators: sign in, or present the [metrics] bearer token",
                    code="metrics",
                ),
            )
        response = await scrape.endpoint(request)
        assert isinstance(response, Response)
        return response

    routes += [r for path, r in operational.items() if path != "/"]
    routes.append(Route("/metrics", metrics, methods=["GET"]))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {404: "Not Found", 405: "Method Not Allowed"}
        response = error_page(
            request,
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            "no such page" if exc.status_code == 404 else str(exc.detail),
            session_of(request),
        )
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        if "allow" in response.headers:  # Starlette's order is a set's: sorted, one order
            response.headers["allow"] = sorted_allow(response.headers["allow"])
        return response

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        dashboard.close()

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(_SecurityHeaders),
            Middleware(Observed, info=info),
            *([] if allowed_hosts is None else [Middleware(_AllowedHosts, hosts=allowed_hosts)]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    # A path with a slash too many is a 404 page like any unknown path: Starlette would
    # answer a 307 to the same path without it, an absolute URL built from the client's Host
    # header (another site's, if the client says so), as ironroot.http.problem_app says.
    app.router.redirect_slashes = False
    return app


class _AllowedHosts:
    """ASGI middleware: a 421 problem for a ``Host`` the dashboard does not answer (module
    docs), before any route. Not Starlette's ``TrustedHostMiddleware``: it compares the name
    without the port and answers a plain-text 400, where a dashboard answers for a name and
    port (``localhost:8480``, not any local service's port) with an RFC 9290 problem."""

    def __init__(self, app: Any, hosts: Collection[str]) -> None:
        self.app = app
        self._hosts = frozenset(h.lower() for h in hosts)
        # a name without a port: a DNS name or an IPv4 address (no ':'), or a bracketed IPv6
        # literal (its ':'s are inside the brackets)
        self._any_port = frozenset(h for h in self._hosts if h.endswith("]") or ":" not in h)

    def _allowed(self, host: str) -> bool:
        host = host.lower()
        if host in self._hosts:
            return True
        name, colon, port = host.rpartition(":")
        return bool(colon) and port.isdigit() and name in self._any_port

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = [v for k, v in scope.get("headers", []) if k == b"host"]
        host = hosts[0].decode("latin-1") if len(hosts) == 1 else ""
        if self._allowed(host):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        _log.info("%s %s: refused for Host %r", request.method, request.url.path, host[:100])
        response = problem_response(
            request,
            421,
            "Misdirected Request",
            "this dashboard does not answer for that host name",
            "misdirected",
        )
        await response(scope, receive, send)


class _SecurityHeaders:
    """ASGI middleware: the security headers (module docs) on every response."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        self._tls_headers = [*self._headers, (HSTS[0].encode(), HSTS[1].encode())]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = self._tls_headers if scope.get("scheme") == "https" else self._headers

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k, v) for k, v in headers if k not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
