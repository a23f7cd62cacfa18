"""The fleet's three HTTP services: admission, the control plane and the data plane — real TLS
servers (uvicorn through :mod:`ironroot.http`), the planes requiring mutual TLS.

**Admission** (HTTPS; no client certificate: a node asks before it has one):

=========================================  ==================================================
``POST /fleet/admission/challenge``        JSON ``{"node": id}`` → ``{"nonce": base64url,
                                           "expires": epoch seconds}`` (single use, 120 s,
                                           for that node's admission only)
``POST /fleet/admission``                  CBOR :class:`ironroot.fleet.AdmissionRequest` →
                                           CBOR :class:`ironroot.fleet.AdmissionResult`
                                           (``application/cbor``)
``GET /fleet/ca``                          the fleet CA certificate (PEM)
``GET /fleet/crl``                         the CRL of revoked credentials (DER)
``GET /fleet/verifier-key``                the key EARs are signed with (PEM)
``/health``, ``/ready``, ``/metrics``      as every Ironroot service
=========================================  ==================================================

**Control plane** (mutual TLS; a current ``control``-plane credential of a node, or of an
operator: :func:`ironroot.fleet.check_caller`):

=========================================  ==================================================
``GET /v1/whoami``                         the caller's credential
``GET /v1/nodes``                          the node registry (an operator only: a node is
                                           403 ``operator-required``)
``GET /v1/nodes/{id}``                     a node's record (a node: its own only, else 403
                                           ``not-own-node`` before the registry is asked)
``GET /v1/placements``                     every VM placement (a node: those on it)
``POST /v1/placements``                    (an operator only, ``operator-required`` before
                                           the body is read) JSON ``{"vm": name,
                                           "node"?: id}`` (no other member) → 201 the
                                           placement, on an admitted node with a current
                                           attestation only (409 otherwise)
``POST /v1/rollouts``                      (a node only: ``node-required``) JSON
                                           ``{"class"?, "wave_size"?, "nodes"?,
                                           "dry_run"?}`` → the rollout's report of the
                                           caller's own node (when the server runs
                                           rollouts: :func:`desired_rollout`)
=========================================  ==================================================

An operator's credential (``ironroot fleet operator issue``: the scheduler's, a person's)
reads the whole registry and places VMs; a node's reads its own record and placements, since
its attestation says what it runs, not that it may see or steer its peers (where every VM
runs is what a co-residency attack starts from; a node placing VMs could squat their names).

A rollout started on the control plane brings the **caller's own node** to its class's
desired state *in force* — a document approved by the class's signers on the log (two-person
rule, :mod:`ironroot.fleet._desired`) — through the platform's receipt-gated updates: a
control-plane client can start convergence, never choose firmware. Least privilege: every
control-plane client is a node, admitted by its own attestation, and that proves nothing about
its right to act for others, so a node's credential starts no rollout of other nodes, of its
class or of the fleet (an update reboots what it updates: a compromised node must not take its
peers down at a time of its choosing), and never accepts the loss of a recovery image. Without
``class`` and ``nodes`` the request is the caller's class and ``[caller]``; naming any other
class or node, or ``"nodes": null`` (every node of the class, to the trigger), is 403
``rollout-not-own-node`` (``RoleNotPermitted``), and any component in
``allow_recovery_removal`` 403 ``recovery-removal-not-permitted`` — accepting that an update
leaves a component nothing to recover to is the operator's, with the fleet's directory in hand
(``ironroot fleet rollout --allow-recovery-removal``), as are rollouts of a class in waves.
These are refused before the fleet is asked what the request names (an unknown class or node is
the same 403), each also a warning in the log (logger ``ironroot.fleet``: the node, from its
credential, and the code), since asking is what a compromised node does; a member of the wrong
type is 400 as before. The request is then checked (the
:data:`RolloutTrigger`'s first step: its members and types, the class and that it has a
desired state, the nodes). One it
accepts counts against its node's rate: every rollout, a dry run too, holds its class's
rollout lock while it plans, and the operator's rollout of the class is refused ``in-use``
meanwhile, so a node may ask five times at once, then once a minute (a token bucket per node,
at the plane's clock); over that, 503 ``rollout-rate`` (``Overloaded``) with ``Retry-After``.
Only then is it recorded (``rollout-requested``, with the caller's node and the request as run:
its ``class`` and ``nodes`` filled in) and run, so a refused one (a 400, 403, 404 or 503
problem) leaves no event and a request refused by the checks costs no token. A run that
starts and then fails on what only the run can find is on the record and cost its token:
the class's rollout lock held (409 ``in-use``: checked before, it could be taken between the
check and the run, and a node looping on a held lock is what the rate bounds), the desired
state's approvals lapsed by the run's clock, a release the plan needs missing (404, found
while planning under the lock), a desired state being published (409): each was asked for,
and the record says so.

**Data plane** (mutual TLS; a current ``data``-plane credential): ``GET /v1/whoami`` and
``GET /v1/placements`` (the VMs placed on the caller's node).

Every request to a plane runs :func:`ironroot.fleet.check_credential` against the registry and
the credential store at the server's clock: the TLS handshake only proves the client holds a
key the fleet CA certified; which plane, whether it is current, revoked, and whether its node
is still admitted are decided per request, so a node quarantined while its connection stays
open is refused at its next request; a request with a body is checked again once the body
is read, before it acts (a node quarantined while it sends the body is refused). Refusals are
RFC 9290 problem details (CBOR, or JSON when the client accepts only JSON) with the error's
``code``: 401 ``credential-expired``, ``credential-revoked``, ``credential-unknown``, …; 403
``wrong-plane``, ``node-not-admitted``.

Request bodies are of the media type their endpoint takes, checked before they are read
(:func:`ironroot.http.require_media_type`): the JSON endpoints take ``application/json`` (a
body without ``Content-Type`` is taken as JSON), ``POST /fleet/admission`` only
``application/cbor``; any other is 415 ``unsupported-media-type``. The JSON answers (a
challenge's nonce, the planes') carry ``Cache-Control: no-store`` and
``X-Content-Type-Options: nosniff``, as the problems do: a node's state may have changed by the
next request, and a nonce is single use.

A change a web page made (``POST /v1/placements``, ``POST /v1/rollouts`` with an ``Origin``,
or a ``Sec-Fetch-Site`` other than ``none``) is 403 ``cross-site-request``
(``RoleNotPermitted``) before the caller is checked or the body read: a person's operator
credential kept in a browser goes with every request the browser makes, a page's of any site
included, and a ``POST`` without ``Content-Type`` needs no CORS preflight. The planes serve no
page, and their clients send neither header.

:class:`FleetServers` runs the three on loopback in background threads (tests, embedding);
:func:`serve_fleet` runs them until SIGINT/SIGTERM (``ironroot fleet serve``), optionally with
the continuous scanner. The servers' TLS certificate is issued by the fleet CA for the host
they listen on (unless it is the wildcard ``0.0.0.0`` or ``::``, which no client connects
to), the ``server_names`` given (DNS names or IP addresses: those clients reach the servers
by, e.g. behind ``--host 0.0.0.0``; see :func:`_certificate_hosts`) and ``localhost``,
``127.0.0.1``, valid 7 days (dated 5 minutes back, for clients whose clocks run behind), at
each start, and renewed (a new key and certificate, served to every new connection) once half
of that has passed: a fleet served for longer than a week stays reachable.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.serialization import Encoding
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ironroot._fileio import make_dirs, write_atomic
from ironroot.crypto import Algorithm, PrivateKey, load_certificate, save_signer
from ironroot.errors import (
    ConfigError,
    IronrootError,
    MalformedInput,
    NotFound,
    Overloaded,
    RoleNotPermitted,
)
from ironroot.fleet._admission import AdmissionAuthority, AdmissionRequest
from ironroot.fleet._credentials import (
    Credential,
    OperatorCredential,
    check_caller,
    check_credential,
)
from ironroot.fleet._fleet import Fleet
from ironroot.http import (
    Handler,
    ServerLimits,
    ServerThread,
    ServerTls,
    ServiceInfo,
    decode_request_map,
    error_response,
    guarded,
    problem_app,
    read_body,
    require_media_type,
    settle_heap,
    stop_on_signals,
)

__all__ = [
    "FleetServers",
    "RolloutTrigger",
    "admission_app",
    "decode_nonce",
    "desired_rollout",
    "plane_app",
    "serve_fleet",
    "server_tls",
]

_log = logging.getLogger("ironroot.fleet")
_MAX_JSON: Final = 64 * 1024
_MAX_ADMISSION: Final = 2 * 1024 * 1024
_TLS_DAYS: Final = 7  # the servers' TLS certificate's validity
_TLS_RENEW: Final = dt.timedelta(days=_TLS_DAYS / 2)  # renewed once this much has passed
_TLS_CHECK: Final = 600.0  # seconds between two looks at whether it is due
_DNS_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # RFC 1123, A-labels
_MAX_DNS_NAME: Final = 253
_ROLLOUT_BURST: Final = 5  # rollout requests a node may make at once
_ROLLOUT_EVERY: Final = 60.0  # seconds for each one more
_CBOR: Final = "application/cbor"
_JSON: Final = "application/json"
_ANSWER_HEADERS: Final = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
Clock = Callable[[], dt.datetime]
RolloutTrigger = Callable[[Mapping[str, Any]], Callable[[dt.datetime], Mapping[str, Any]]]
"""``trigger(request) -> start``: what ``POST /v1/rollouts`` runs, in two steps.
``trigger(request)`` checks the request (the body's JSON object) and what it names against the
fleet, changing nothing, and raises the typed error of a request it refuses; ``start(now)``
runs the rollout and returns its JSON-ready report. The control plane records
``rollout-requested`` between the two: a request ``trigger`` refuses leaves no event; one
``start`` fails (module docs: a held lock, a missing release) is on the record."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _answer(value: Any, *, status: int = 200) -> JSONResponse:
    """A JSON answer that no cache keeps (a node's state, a placement, a credential, a
    single-use nonce: each may have changed by the next request) and no client sniffs, as
    every problem of the services already is."""
    return JSONResponse(value, status, _ANSWER_HEADERS)


async def _json_body(request: Request) -> Mapping[str, Any]:
    """The request's JSON object (I-JSON: :func:`ironroot.http.decode_request_map`); a body
    of another media type is refused before it is read (415), one without any taken as
    JSON."""
    require_media_type(request, _JSON, untyped=_JSON)
    return decode_request_map(await read_body(request, _MAX_JSON))


def _own_rollout(caller: Credential, body: Mapping[str, Any]) -> dict[str, Any]:
    """The rollout request ``body`` as ``caller`` may make it: of its own node, of its own
    class (module docs), with ``class`` and ``nodes`` filled in when absent. A ``class`` or
    ``nodes`` naming anything else, or an ``allow_recovery_removal`` naming any component, is
    ``RoleNotPermitted`` (403) before the fleet is asked whether it exists; a member of the
    wrong type is left to the trigger's check (400)."""
    scoped = {**body}
    name = scoped.setdefault("class", caller.node_class)
    nodes = scoped.setdefault("nodes", [caller.node])  # absent; an explicit null stays null
    allowed = scoped.get("allow_recovery_removal")
    refused = f"a node's credential rolls out that node only: {caller.node} (class "
    refused += f"{caller.node_class}) may not roll out "
    if isinstance(name, str) and name != caller.node_class:
        raise RoleNotPermitted(refused + f"class {name}", code="rollout-not-own-node")
    if nodes is None and isinstance(name, str):  # the trigger's "every node of the class"
        raise RoleNotPermitted(refused + f"every node of class {name}", code="rollout-not-own-node")
    if isinstance(nodes, list) and all(isinstance(n, str) for n in nodes):
        others = [n for n in dict.fromkeys(nodes) if n != caller.node]
        if others:  # the first few named: a refusal does not echo 64 KiB of the request
            named = ", ".join(others[:5]) + (f" and {len(others) - 5} more" * (len(others) > 5))
            raise RoleNotPermitted(refused + named, code="rollout-not-own-node")
    if isinstance(allowed, list) and allowed and all(isinstance(n, str) for n in allowed):
        raise RoleNotPermitted(
            "allow_recovery_removal is the operator's (ironroot fleet rollout "
            "--allow-recovery-removal), never a node's request",
            code="recovery-removal-not-permitted",
        )
    return scoped


class _RolloutRate:
    """How often each node may ask for a rollout: a token bucket per node (``_ROLLOUT_BURST``
    at once, one more each ``_ROLLOUT_EVERY`` seconds of the plane's clock). Its callers are
    admitted nodes, so it holds one bucket per node of the fleet at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # node -> (tokens, at)

    def take(self, node: str, now: dt.datetime) -> None:
        """One token of ``node``'s, or ``Overloaded`` ``rollout-rate`` (nothing taken)."""
        t = now.timestamp()
        with self._lock:
            tokens, at = self._buckets.get(node, (float(_ROLLOUT_BURST), t))
            tokens = min(float(_ROLLOUT_BURST), tokens + max(0.0, t - at) / _ROLLOUT_EVERY)
            if tokens < 1.0:
                wait = max(1, math.ceil((1.0 - tokens) * _ROLLOUT_EVERY))
                raise Overloaded(
                    f"{node} asks for rollouts more often than once a minute "
                    f"({_ROLLOUT_BURST} at once): retry in {wait} s",
                    code="rollout-rate",
                    retry_after=wait,
                )
            self._buckets[node] = (tokens - 1.0, t)


# --- admission ------------------------------------------------------------------------------


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(request, NotFound("no such resource"))


class _ToSlash:
    """A mounted app's ``prefix`` without its slash (``/dashboard``, what a person types): a
    ``GET`` or ``HEAD`` is ``308`` to ``prefix/`` with the request's query; another method is
    ``otherwise``'s (the service's 404 problem), as before. The Location is the fixed prefix
    and the query, never the request's host or path: no open redirect. (An ASGI app, not a
    function: a route takes a function as a GET-only request handler.)"""

    def __init__(self, prefix: str, otherwise: ASGIApp) -> None:
        self._target = prefix.rstrip("/") + "/"
        self._otherwise = otherwise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self._otherwise(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {"Location": f"{self._target}?{query}" if query else self._target}
        await Response(status_code=308, headers=headers | _ANSWER_HEADERS)(scope, receive, send)


def admission_app(
    authority: AdmissionAuthority,
    *,
    clock: Clock = _utc_now,
    mounts: Mapping[str, ASGIApp] | None = None,
) -> Starlette:
    """The admission service (module docs); ``mounts`` adds apps under path prefixes (the
    dashboard under ``/dashboard``: ``ironroot fleet serve --dashboard DIR``; a ``GET`` of a
    prefix without its slash is a 308 to it), each answering,
    counting and logging its own requests (the service's public ``/metrics`` count none of
    them; ``/`` links to each)."""

    async def challenge(request: Request) -> Response:
        body = await _json_body(request)
        node = body.get("node")
        if not isinstance(node, str) or set(body) != {"node"}:
            raise MalformedInput('a challenge request is {"node": id}, no other member')
        peer = request.client.host if request.client is not None else None
        nonce, expires = await run_in_threadpool(
            lambda: authority.challenge(clock(), client=peer, node=node)
        )
        encoded = base64.urlsafe_b64encode(nonce).rstrip(b"=").decode("ascii")
        return _answer({"nonce": encoded, "expires": expires})

    async def admit(request: Request) -> Response:
        require_media_type(request, _CBOR)
        body = await read_body(request, _MAX_ADMISSION)
        parsed = AdmissionRequest.decode(body)
        result = await run_in_threadpool(authority.admit, parsed, now=clock())
        return Response(result.encode(), media_type=_CBOR)

    async def ca(request: Request) -> Response:
        return Response(authority.ca.pem, media_type="application/x-pem-file")

    async def crl(request: Request) -> Response:
        data = await run_in_threadpool(authority.crl, now=clock())
        return Response(data, media_type="application/pkix-crl")

    async def verifier_key(request: Request) -> Response:
        return Response(authority.verifier_key.to_pem(), media_type="application/x-pem-file")

    routes: list[BaseRoute] = [
        Route("/fleet/admission/challenge", guarded(challenge, _log), methods=["POST"]),
        Route("/fleet/admission", guarded(admit, _log, what="admission"), methods=["POST"]),
        Route("/fleet/ca", guarded(ca, _log), methods=["GET"]),
        Route("/fleet/crl", guarded(crl, _log), methods=["GET"]),
        Route("/fleet/verifier-key", guarded(verifier_key, _log), methods=["GET"]),
    ]
    info = ServiceInfo(
        "fleet admission",
        "Node admission: challenge, evidence, appraisal, short-lived credentials",
        links={prefix.strip("/"): f"{prefix.rstrip('/')}/" for prefix in mounts or {}},
        docs="fleet",
    )
    service = problem_app(routes, info)
    if not mounts:
        return service
    # A mounted app answers, counts and logs its requests itself, beside the service, not
    # inside it: the service's /metrics are anyone's, and counted there too, the dashboard's
    # POST /login 401s and 303s told anyone who logs in and when (its own are an operator's).
    outer = Starlette(
        routes=[
            *(Route(prefix.rstrip("/"), _ToSlash(prefix, service)) for prefix in mounts),
            *(Mount(prefix, app=mounted) for prefix, mounted in mounts.items()),
            Mount("", app=service),
        ],
        exception_handlers={404: _not_found},  # a target that is no path ("*"): as the service
    )
    outer.router.redirect_slashes = False
    return outer


# --- the planes -----------------------------------------------------------------------------


def _presented(request: Request) -> bytes | None:
    """The client certificate of the request's TLS connection (PEM), if any."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return chain[0].encode("ascii") if chain else None


Caller = Credential | OperatorCredential


def _refused(credential: Credential, code: str) -> None:
    """A node asking for what is not its own is what a compromised node does: a warning."""
    _log.warning("%s asked the control plane for what is not its own (%s)", credential.node, code)


def _not_from_a_page(request: Request) -> None:
    """``RoleNotPermitted`` ``cross-site-request`` (403) for a change a web page made: one
    with an ``Origin``, or a ``Sec-Fetch-Site`` other than ``none`` (the user's own
    navigation). A client certificate in a browser goes with every request the browser
    makes to the plane, a page's of any site included, and a ``POST`` without a
    ``Content-Type`` (taken as JSON) needs no CORS preflight; the planes serve no page, and
    their clients (the scheduler, a node's agent, ``curl``) send neither header."""
    site = request.headers.get("sec-fetch-site", "none")
    origin = request.headers.get("origin")
    if origin is None and site.strip().lower() == "none":
        return
    made_by = f"the web origin {origin[:100]!r}" if origin is not None else f"a {site[:32]!r} page"
    # a page of another site acting through an operator's browser: the operator should know
    _log.warning("%s %s: refused, a request from %s", request.method, request.url.path, made_by)
    raise RoleNotPermitted(
        f"a request {made_by} made with a credential a browser holds may not change the fleet",
        code="cross-site-request",
    )


def _operator(credential: Caller, what: str) -> OperatorCredential:
    """``credential`` when it is an operator's; a node's is ``RoleNotPermitted``
    ``operator-required`` (403)."""
    if isinstance(credential, OperatorCredential):
        return credential
    _refused(credential, "operator-required")
    raise RoleNotPermitted(
        f"{what} is an operator's (ironroot fleet operator issue), not a node's: "
        f"{credential.node} may read its own record and placements",
        code="operator-required",
    )


def plane_app(
    authority: AdmissionAuthority,
    plane: str,
    *,
    clock: Clock = _utc_now,
    rollout: RolloutTrigger | None = None,
) -> Starlette:
    """The control plane (``plane="control"``) or the data plane (``"data"``) (module docs)."""
    if plane not in ("control", "data"):
        raise ConfigError("a plane is control or data")
    fleet = authority.fleet
    rate = _RolloutRate()

    async def caller(request: Request) -> Caller:
        presented = _presented(request)
        return await run_in_threadpool(
            check_caller if plane == "control" else check_credential,
            presented,
            plane=plane,
            ca=authority.ca,
            store=authority.credentials,
            fleet=fleet,
            now=clock(),
        )

    async def caller_and_body(request: Request) -> tuple[Caller, Mapping[str, Any]]:
        """The caller and its request's JSON body: the caller checked before the body is read
        (a refused caller sends none) and again once it is, when the request acts — a client
        may take the body timeout to send it, and a node quarantined (or a credential revoked
        or expired) meanwhile is refused, not served on its standing at the head."""
        await caller(request)
        body = await _json_body(request)
        return await caller(request), body

    async def whoami(request: Request) -> Response:
        credential = await caller(request)
        return _answer(credential.to_json())

    async def nodes(request: Request) -> Response:
        _operator(await caller(request), "reading the whole registry")
        records = await run_in_threadpool(fleet.records)
        counts = await run_in_threadpool(fleet.status_counts)
        return _answer({"counts": counts, "nodes": [r.to_json() for r in records]})

    async def node(request: Request) -> Response:
        credential = await caller(request)
        wanted = request.path_params["node"]
        if isinstance(credential, Credential) and wanted != credential.node:
            _refused(credential, "not-own-node")  # before the registry is asked: no oracle
            raise RoleNotPermitted(
                f"a node's credential reads that node's record only ({credential.node})",
                code="not-own-node",
            )
        record = await run_in_threadpool(fleet.record_of, wanted)
        return _answer(record.to_json())

    async def placements(request: Request) -> Response:
        credential = await caller(request)
        scope = None if isinstance(credential, OperatorCredential) else credential.node
        found = await run_in_threadpool(authority.placements, scope)
        return _answer({"placements": [p.to_json() for p in found]})

    async def place(request: Request) -> Response:
        _not_from_a_page(request)
        _operator(await caller(request), "placing a VM")  # a node sends no body
        body = await _json_body(request)
        operator = _operator(await caller(request), "placing a VM")  # as it acts (below)
        vm, target = body.get("vm"), body.get("node")
        if (
            not isinstance(vm, str)
            or (target is not None and not isinstance(target, str))
            or not set(body) <= {"vm", "node"}  # a misspelt "node" is not "anywhere"
        ):
            raise MalformedInput('a placement is {"vm": name, "node"?: id}, no other member')
        placement = await run_in_threadpool(
            authority.place, vm, now=clock(), node=target, requested_by=operator.holder
        )
        return _answer(placement.to_json(), status=201)

    async def start_rollout(request: Request) -> Response:
        _not_from_a_page(request)
        caller_credential, body = await caller_and_body(request)
        if rollout is None:
            raise NotFound("this control plane runs no rollouts")
        if isinstance(caller_credential, OperatorCredential):
            raise RoleNotPermitted(
                "POST /v1/rollouts rolls out the calling node: an operator's rollouts run "
                "with the fleet's directory (ironroot fleet rollout)",
                code="node-required",
            )
        credential = caller_credential
        try:
            scoped = _own_rollout(credential, body)  # the caller's own node, or 403
        except RoleNotPermitted as exc:  # what a compromised node does: say so, not at debug
            _log.warning(
                "%s asked the control plane for a rollout it may not start (%s)",
                credential.node,
                exc.code,
            )
            raise
        start = await run_in_threadpool(rollout, scoped)  # a refused request records nothing
        rate.take(credential.node, clock())  # what would run, and hold the class's lock
        # in a worker, as every registry write: waiting for the write lock here on the event
        # loop would hold up every other request of the plane until the writer commits
        await run_in_threadpool(
            fleet.record, credential.node, "rollout-requested", scoped, now=clock()
        )
        report = await run_in_threadpool(start, clock())
        return _answer(dict(report))

    async def placements_or_place(request: Request) -> Response:
        return await (place(request) if request.method == "POST" else placements(request))

    def route(path: str, handler: Handler, *methods: str) -> Route:
        return Route(path, guarded(handler, _log, what=f"the {plane} plane"), methods=[*methods])

    # One route per path: a 405 answer's Allow names every method the path has.
    routes = [route("/v1/whoami", whoami, "GET")]
    if plane == "data":
        routes.append(route("/v1/placements", placements, "GET"))
    else:
        routes += [
            route("/v1/placements", placements_or_place, "GET", "POST"),
            route("/v1/nodes", nodes, "GET"),
            route("/v1/nodes/{node}", node, "GET"),
        ]
        if rollout is not None:
            routes.append(route("/v1/rollouts", start_rollout, "POST"))
    return problem_app(routes)


def desired_rollout(fleet: Fleet, releases: Sequence[Path] = ()) -> RolloutTrigger:
    """The rollout ``POST /v1/rollouts`` runs: :func:`ironroot.fleet.rollout` of a class (the
    body's ``class``, default the fleet's first) to its desired state in force, with the
    class's own releases and those in the ``releases`` directories
    (:meth:`ironroot.fleet.ReleaseSet.load`); ``wave_size`` (default 1), ``nodes``,
    ``dry_run`` and ``allow_recovery_removal`` (component names, default none) from the body
    (the control plane gives it the caller's own node and class, and refuses a node's
    ``allow_recovery_removal``: module docs). The trigger's check (:data:`RolloutTrigger`)
    refuses a body with other members or of other types (``MalformedInput``), and whatever
    :func:`~ironroot.fleet.rollout` refuses in its arguments: an unknown class or node
    (``NotFound``), a class without a desired state (``NotFound``: no rollout to record), a
    wave size under 1, a node given twice or of another class, an
    ``allow_recovery_removal`` name that is not a component (``ConfigError``)."""
    from ironroot.fleet._desired import DesiredStore
    from ironroot.fleet._rollout import ReleaseSet, rollout, rollout_selection

    def trigger(body: Mapping[str, Any]) -> Callable[[dt.datetime], Mapping[str, Any]]:
        unknown = set(body) - {"class", "wave_size", "nodes", "dry_run", "allow_recovery_removal"}
        if unknown:
            raise MalformedInput(f"unknown rollout settings: {', '.join(sorted(unknown))}")
        name = body["class"] if "class" in body else fleet.classes()[0]
        wave_size = body.get("wave_size", 1)
        nodes = body.get("nodes")
        dry_run = body.get("dry_run", False)
        allowed = body.get("allow_recovery_removal", [])
        if (
            not isinstance(name, str)
            or isinstance(wave_size, bool)
            or not isinstance(wave_size, int)
            or not isinstance(dry_run, bool)
            or (
                nodes is not None
                and not (isinstance(nodes, list) and all(isinstance(n, str) for n in nodes))
            )
            or not (isinstance(allowed, list) and all(isinstance(n, str) for n in allowed))
        ):
            raise MalformedInput(
                'a rollout is {"class": name, "wave_size": int, "nodes": [id], "dry_run": bool, '
                '"allow_recovery_removal": [component]}'
            )
        rollout_selection(
            fleet,
            node_class=name,
            wave_size=wave_size,
            nodes=nodes,
            allow_recovery_removal=allowed,
        )
        if DesiredStore(fleet).version(name) == 0:  # refused here, not by the run: unrecorded
            raise NotFound(
                f"class {name} has no desired state (run `ironroot fleet desired publish`)"
            )

        def start(now: dt.datetime) -> Mapping[str, Any]:
            found = ReleaseSet.of_class(fleet.node_class(name))
            for directory in releases:
                found.load(directory)
            report = rollout(
                fleet,
                found,
                now=now,
                node_class=name,
                wave_size=wave_size,
                nodes=nodes,
                dry_run=dry_run,
                allow_recovery_removal=allowed,
            )
            return report.to_json()

        return start

    return trigger


# --- serving --------------------------------------------------------------------------------


def _server_name(name: str) -> str:
    """``name`` as a certificate names it: an IP address in its compressed form, or a DNS
    name as lower-case A-labels without a final dot; ``ConfigError`` for anything else (a
    wildcard, an address no client connects to, a zone index, an empty label)."""
    what = f"--server-name {name!r}"
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{what}: a server name is a DNS name or an IP address")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is not None:
        if address.is_unspecified or address.is_multicast:
            raise ConfigError(f"{what}: no client connects to this address")
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise ConfigError(f"{what}: a certificate names an address without a zone index")
        return str(address)
    if "*" in name:
        raise ConfigError(f"{what}: the fleet CA issues no wildcard name; name each host")
    host = name[:-1] if name.endswith(".") else name
    try:
        ascii_name = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ConfigError(f"{what}: not a DNS name or an IP address") from None
    labels = ascii_name.split(".")
    if (
        len(ascii_name) > _MAX_DNS_NAME
        or not all(_DNS_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()  # 10.1.1 or 300.1.1.1: no host name, and no address either
    ):
        raise ConfigError(f"{what}: not a DNS name or an IP address")
    return ascii_name


def _certificate_hosts(host: str, server_names: Sequence[str] = ()) -> tuple[str, ...]:
    """The names the fleet servers' TLS certificate carries (module docs): ``host`` (unless
    it is a wildcard address), each of ``server_names`` (checked: ``ConfigError`` for one
    that is no DNS name or IP address), then ``localhost`` and ``127.0.0.1``; once each."""
    if isinstance(server_names, str):
        raise ConfigError("server_names is a list of DNS names or IP addresses")
    names = [_server_name(name) for name in server_names]
    try:
        listening = ipaddress.ip_address(host)
    except ValueError:
        listening = None
    own = [] if listening is not None and listening.is_unspecified else [host]
    return tuple(dict.fromkeys((*own, *names, "localhost", "127.0.0.1")))


def server_tls(
    authority: AdmissionAuthority, *, hosts: tuple[str, ...], now: dt.datetime | None = None
) -> tuple[ServerTls, ServerTls]:
    """A fresh server key and certificate from the fleet CA for ``hosts`` (with
    ``localhost`` and ``127.0.0.1``; :func:`_certificate_hosts` makes them of a listening
    host and the server names), written to ``admission/tls/``: the admission server's
    TLS, and the planes' (mutual TLS: client certificates from the fleet CA, their validity
    checked per request)."""
    folder = authority.directory / "tls"
    make_dirs(folder)
    key = PrivateKey.generate(Algorithm.ES384)
    names = tuple(dict.fromkeys((*hosts, "localhost", "127.0.0.1")))
    der = authority.ca.issue_server(
        key.public_key, hosts=names, now=now or _utc_now(), days=_TLS_DAYS
    )
    save_signer(key, folder / "server.key.pem", overwrite=True)
    pem = load_certificate(der, der_only=True).public_bytes(Encoding.PEM)
    write_atomic(folder / "server.cert.pem", pem, mode=0o644)
    ca_file = authority.directory / "ca.cert.pem"
    cert, key_file = folder / "server.cert.pem", folder / "server.key.pem"
    return (
        ServerTls(cert, key_file),
        ServerTls(cert, key_file, client_ca=ca_file, check_client_time=False),
    )


class FleetServers:
    """Admission, control plane and data plane served from background threads (a context
    manager); port 0 picks free loopback ports. ``clock`` is the time the planes and
    admission judge by (default: the wall clock); ``mounts`` are apps served under path
    prefixes of the admission server (:func:`admission_app`). ``tls_clock`` is the time the
    servers' TLS certificate is issued and renewed at (default: the wall clock, which TLS
    clients check it against): a background thread renews it once half its validity has
    passed (:meth:`renew_tls`). The certificate names ``host`` (unless it is ``0.0.0.0`` or
    ``::``), ``server_names`` (DNS names or IP addresses, checked: ``ConfigError``),
    ``localhost`` and ``127.0.0.1``."""

    def __init__(
        self,
        authority: AdmissionAuthority,
        *,
        host: str = "127.0.0.1",
        ports: tuple[int, int, int] = (0, 0, 0),
        clock: Clock = _utc_now,
        limits: ServerLimits | None = None,
        rollout: RolloutTrigger | None = None,
        mounts: Mapping[str, ASGIApp] | None = None,
        tls_clock: Clock = _utc_now,
        server_names: Sequence[str] = (),
    ) -> None:
        self.authority = authority
        self._hosts = _certificate_hosts(host, server_names)
        self._tls_clock = tls_clock
        self._tls_issued = tls_clock()
        plain, mutual = server_tls(authority, hosts=self._hosts, now=self._tls_issued)
        self._tls_lock = threading.Lock()  # one renewal at a time
        self._renewing = threading.Event()  # set: stop renewing
        self._renewer = threading.Thread(target=self._renew, name="fleet-tls-renewal", daemon=True)
        self.ca_file: Path = authority.directory / "ca.cert.pem"
        self._threads = [
            ServerThread(
                admission_app(authority, clock=clock, mounts=mounts),
                host,
                ports[0],
                name="fleet-admission",
                limits=limits,
                tls=plain,
            ),
            ServerThread(
                plane_app(authority, "control", clock=clock, rollout=rollout),
                host,
                ports[1],
                name="fleet-control",
                limits=limits,
                tls=mutual,
            ),
            ServerThread(
                plane_app(authority, "data", clock=clock),
                host,
                ports[2],
                name="fleet-data",
                limits=limits,
                tls=mutual,
            ),
        ]
        self.admission_url, self.control_url, self.data_url = (t.url for t in self._threads)

    def renew_tls(self, *, force: bool = False) -> bool:
        """Renew the servers' TLS certificate when half its validity has passed at
        ``tls_clock`` (or at once with ``force``): a new key and certificate from the fleet
        CA, served to every new connection of the three servers (connections open keep
        theirs). Whether it renewed."""
        with self._tls_lock:
            now = self._tls_clock()
            if not force and now - self._tls_issued < _TLS_RENEW:
                return False
            server_tls(self.authority, hosts=self._hosts, now=now)
            for thread in self._threads:
                thread.reload_tls()
            self._tls_issued = now
        _log.info("the fleet servers' TLS certificate was renewed")
        return True

    def _renew(self) -> None:
        while not self._renewing.wait(_TLS_CHECK):
            try:
                self.renew_tls()
            except (IronrootError, OSError) as exc:  # the certificate served stays; next time
                _log.warning("the fleet servers' TLS certificate was not renewed: %s", exc)

    def __enter__(self) -> FleetServers:
        started: list[ServerThread] = []
        try:
            for thread in self._threads:
                thread.__enter__()
                started.append(thread)
        except BaseException:
            for thread in reversed(started):
                thread.__exit__(None, None, None)
            raise
        self._renewer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._renewing.set()
        if self._renewer.is_alive():
            self._renewer.join()
        for thread in reversed(self._threads):
            thread.__exit__(None, None, None)


def serve_fleet(
    authority: AdmissionAuthority,
    *,
    host: str,
    ports: tuple[int, int, int],
    limits: ServerLimits | None = None,
    scan_period: float | None = None,
    poll: Callable[[], Iterable[Any]] | None = None,
    rollout: RolloutTrigger | None = None,
    on_start: Callable[[str, str, str], None] | None = None,
    mounts: Mapping[str, ASGIApp] | None = None,
    server_names: Sequence[str] = (),
) -> None:
    """Serve admission, the control plane and the data plane until SIGINT/SIGTERM
    (``on_start(admission_url, control_url, data_url)`` once all three listen); with
    ``scan_period`` (seconds), the continuous scanner re-attests the fleet in the background
    (:class:`ironroot.fleet.Scanner` with :func:`ironroot.fleet.scan_attest`); with
    ``poll`` (e.g. :meth:`ironroot.fleet.LogTriggers.poll`), every round also re-attests the
    nodes the logs' new statements concern; with ``rollout``, ``POST /v1/rollouts`` runs it;
    ``mounts`` are apps the admission server serves under path prefixes (the dashboard);
    ``server_names``: the names the servers' TLS certificate carries besides ``host``
    (:class:`FleetServers`)."""
    from ironroot.fleet._admission import scan_attest
    from ironroot.fleet._scan import Scanner

    _certificate_hosts(host, server_names)  # a bad name is refused before anything starts

    scanner: Scanner | None = None
    worker: threading.Thread | None = None
    if scan_period is not None:
        scanner = Scanner(
            authority.fleet,
            scan_attest(authority.fleet, authority),
            period=scan_period,
            maintain=lambda now: authority.credentials.prune(now=now),
        )
        worker = threading.Thread(
            target=scanner.follow,
            kwargs={
                "clock": _utc_now,
                "interval": max(1.0, scan_period / 10),
                **({"poll": poll} if poll is not None else {}),
            },
            name="fleet-scanner",
            daemon=True,
        )

    settle_heap()  # this process serves until it stops, as run_server's do
    with (
        stop_on_signals() as stop,
        FleetServers(
            authority,
            host=host,
            ports=ports,
            limits=limits,
            rollout=rollout,
            mounts=mounts,
            server_names=server_names,
        ) as servers,
    ):
        if on_start is not None:
            on_start(servers.admission_url, servers.control_url, servers.data_url)
        if worker is not None:
            worker.start()
        while not stop.wait(1.0):
            pass
        if scanner is not None:
            scanner.stop()
        if worker is not None:
            worker.join(timeout=60)


def decode_nonce(text: str) -> bytes:
    """A challenge nonce from its base64url text (``MalformedInput``)."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedInput("the nonce is not base64url") from exc
