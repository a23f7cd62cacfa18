"""What makes a service operable, the same for every Ironroot service.

* ``GET /health``: liveness — the process answers (``200 {"status": "ok"}``);
* ``GET /ready``: readiness — each of the service's checks (store reachable, keys loaded, …)
  runs (in a worker thread, as ``/metrics`` collects: a check may wait for its store); ``200
  {"status": "ready", "checks": {...}}`` or ``503`` with the failing checks' reasons and a
  ``Retry-After`` as every 503 of Ironroot has (the longest delay the failing checks' errors
  ask for, else one second). Anyone may ask (a load balancer does), so a failing check's
  reason is said in general terms, ``code: title`` of its error (``storage: Storage
  Error``, ``clock-skew: Service Unavailable``: :func:`_ready_reason`), never its detail,
  which may name the server's files (a store that does not open names its path), its
  hosts or its devices; the detail goes to the log (``ironroot.ready``: a warning when a
  check starts failing or fails with another code, a line when it passes again), where
  the operator reads it;
* ``GET /metrics``: Prometheus text exposition (``prometheus-client``) of the service's own
  registry: ``ironroot_http_requests_total{route,method,status}``,
  ``ironroot_http_request_duration_seconds{route,method}`` and whatever the service adds
  (registrations, batch sizes, queue depth, appraisals by status, releases by decision, …);
* ``GET /``: what a person can read — service name, version, links (``/openapi.json`` where
  the service has one), its endpoints and where its documentation is — as HTML when the client
  prefers ``text/html`` (a browser), JSON otherwise (``curl``, scripts); the page carries
  ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'; base-uri 'none';
  form-action 'none'`` (no script, style or resource, never framed), ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``, and either answer
  ``Vary: Accept`` (a cache keeps one per kind of client);
* an access log (logger ``ironroot.access``): one line per request with the client, method,
  path, route, status, bytes and duration, as text or as one JSON object per line
  (:func:`configure_logging`).

:class:`Observed` wraps a service's ASGI app to count, time and log each request; routes are
labelled by their template (``/entries/{entry_id}``), never by the raw path, so label
cardinality stays bounded.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ironroot import __version__
from ironroot.errors import IronrootError

__all__ = [
    "Observed",
    "ServiceInfo",
    "operational_routes",
]

_access = logging.getLogger("ironroot.access")
_ready_log = logging.getLogger("ironroot.ready")
_CODE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
_PAGE_HEADERS: Final = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "vary": "Accept",
}
_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(slots=True)
class ServiceInfo:
    """A service as its operator sees it: name, one line of description, readiness checks
    (each raises an :class:`IronrootError` saying what is wrong), links for ``/``, its
    documentation (a page of the Ironroot docs, ``docs/<service>.md``, or a URL), extra
    ``/health`` members (``details``), and the registry its metrics live in (one per service
    instance: tests and embedded services never share counters)."""

    name: str
    description: str
    checks: Mapping[str, Callable[[], None]] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    docs: str | None = None
    details: Callable[[], Mapping[str, object]] | None = None
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    requests: Counter = field(init=False)
    latency: Histogram = field(init=False)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "ironroot_http_requests",
            "HTTP requests answered, by route template, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "ironroot_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ("route", "method"),
            buckets=_BUCKETS,
            registry=self.registry,
        )


def retry_after_seconds(exc: IronrootError) -> int:
    """The ``Retry-After`` seconds of a "not now" answer (429, 503) that ``exc`` caused (RFC
    9110 §10.2.3): the error's own delay, else a second (a fence refusal, a store error: the
    next attempt meets a new state)."""
    return max(1, int(getattr(exc, "retry_after", 1)))


def _ready_reason(exc: IronrootError) -> str:
    """What ``GET /ready`` tells anyone of a check that failed with ``exc``: ``code: title``,
    why in general terms (module docs). The code as the error carries it, unless it is not
    one of the program's own (an error made from another service's problem carries that
    service's text): then its class's."""
    code = exc.code if _CODE.fullmatch(exc.code) else type(exc).code
    return f"{code}: {exc.title}"


def _prefers_html(accept: str) -> bool:
    """True when an ``Accept`` header ranks ``text/html`` above JSON (RFC 9110 §12.5.1
    quality values; a browser's header, not ``*/*`` or a script's ``application/json``)."""
    html_q = json_q = 0.0
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media in ("text/html", "application/xhtml+xml"):
            html_q = max(html_q, q)
        elif media in ("application/json", "application/*"):
            json_q = max(json_q, q)
    return html_q > 0 and html_q > json_q


def _endpoints(routes: Sequence[BaseRoute]) -> list[str]:
    """``METHOD /path`` for each route a service serves (HEAD implied by GET left out)."""
    lines = []
    for route in routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path is None:
            continue
        verbs = sorted(set(methods or ()) - {"HEAD"}) or ["*"]
        lines.append(f"{' '.join(verbs)} {path}")
    return lines


def operational_routes(info: ServiceInfo, served: Sequence[BaseRoute] = ()) -> list[BaseRoute]:
    """``/``, ``/health``, ``/ready`` and ``/metrics`` for ``info``'s service; ``/`` also lists
    the ``served`` routes (the service's API)."""

    async def health(request: Request) -> Response:
        extra = dict(info.details()) if info.details is not None else {}
        return JSONResponse({"status": "ok", "service": info.name, **extra})

    # each failing check's code, as last logged: a probe every few seconds of a check that
    # keeps failing (a clock-skew detail counts the seconds) logs once, not at every probe
    logged: dict[str, str] = {}

    def note(name: str, failure: IronrootError | None) -> None:
        if failure is None:
            logged.pop(name, None)
            _ready_log.info("%s: readiness check %s passes again", info.name, name)
        elif logged.get(name) != failure.code:
            logged[name] = failure.code
            _ready_log.warning(
                "%s: readiness check %s fails: %s: %s",
                info.name,
                name,
                failure.code,
                failure.detail,
            )

    async def ready(request: Request) -> Response:
        results: dict[str, str] = {}
        failed: list[IronrootError] = []
        for name, check in info.checks.items():
            try:
                # a check may wait (for a store another thread or process holds): never in
                # the event loop, which serves every other client meanwhile
                await run_in_threadpool(check)
            except IronrootError as exc:
                failed.append(exc)
                results[name] = _ready_reason(exc)
                note(name, exc)
            else:
                results[name] = "ok"
                if name in logged:
                    note(name, None)
        if not failed:
            return JSONResponse({"status": "ready", "service": info.name, "checks": results})
        body = {"status": "not ready", "service": info.name, "checks": results}
        headers = {"Retry-After": str(max(retry_after_seconds(exc) for exc in failed))}
        return JSONResponse(body, status_code=503, headers=headers)

    async def metrics(request: Request) -> Response:
        # collecting may call into the service (a gauge that counts stored rows): a worker
        data = await run_in_threadpool(generate_latest, info.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    links = {"health": "/health", "ready": "/ready", "metrics": "/metrics", **info.links}
    endpoints = _endpoints(served)

    async def index(request: Request) -> Response:
        if _prefers_html(request.headers.get("accept", "")):
            return HTMLResponse(_page(info, links, endpoints), headers=_PAGE_HEADERS)
        body: dict[str, object] = {
            "service": info.name,
            "description": info.description,
            "version": __version__,
            "links": links,
            "endpoints": endpoints,
        }
        if info.docs is not None:
            body["docs"] = info.docs
        return JSONResponse(body, headers={"vary": "Accept"})

    return [
        Route("/", index, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def _page(info: ServiceInfo, links: Mapping[str, str], endpoints: Sequence[str]) -> str:
    """The ``/`` page for a person: no script, no external resource, everything escaped."""
    esc = html.escape
    items = "".join(
        f'<li><a href="{esc(href)}">{esc(name)}</a> <code>{esc(href)}</code></li>'
        for name, href in links.items()
    )
    api = "".join(f"<li><code>{esc(line)}</code></li>" for line in endpoints)
    docs = ""
    if info.docs is not None:
        target = (
            f'<a href="{esc(info.docs)}">{esc(info.docs)}</a>'
            if info.docs.startswith(("https://", "http://"))
            else f"<code>{esc(info.docs)}</code> in the Ironroot documentation"
        )
        docs = f"<p>Documentation: {target}</p>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Ironroot {esc(info.name)}</title></head><body>"
        f"<h1>Ironroot {esc(info.name)}</h1><p>{esc(info.description)}</p>"
        f"<p>Version {esc(__version__)}</p>{docs}<h2>Links</h2><ul>{items}</ul>"
        + (f"<h2>Endpoints</h2><ul>{api}</ul>" if api else "")
        + "</body></html>"
    )


class Observed:
    """ASGI middleware: counts and times every HTTP request and writes the access log line."""

    def __init__(self, app: Any, info: ServiceInfo) -> None:
        self.app = app
        self.info = info
        # The labelled series of each (route, method, status), looked up once: the label
        # values are bounded (route templates, the methods the HTTP parser knows, statuses).
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        size = 0

        async def observe(message: dict[str, Any]) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            self.record(scope, status, size, time.perf_counter() - start)

    def record(self, scope: dict[str, Any], status: int, size: int, elapsed: float) -> None:
        """Count and time one answered request and write its access line (for a path that
        answers without this middleware: :func:`~ironroot.http.problem_app`'s hot routes)."""
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = str(scope.get("method", ""))
        key = (template, method, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.info.requests.labels(template, method, str(status)),
                self.info.latency.labels(template, method),
            )
            self._series[key] = series
        series[0].inc()
        series[1].observe(elapsed)
        if _access.isEnabledFor(logging.INFO):
            self._access_line(scope, template, method, status, size, elapsed)

    def _access_line(
        self,
        scope: dict[str, Any],
        template: str,
        method: str,
        status: int,
        size: int,
        elapsed: float,
    ) -> None:
        client = scope.get("client") or ("-", 0)
        _access.info(
            '%s "%s %s HTTP/%s" %d %d %.1fms',
            client[0],
            method,
            scope.get("path", ""),
            scope.get("http_version", "1.1"),
            status,
            size,
            elapsed * 1000,
            extra={
                "service": self.info.name,
                "client": client[0],
                "method": method,
                "path": scope.get("path", ""),
                "route": template,
                "status": status,
                "bytes": size,
                "duration_ms": round(elapsed * 1000, 3),
            },
        )
