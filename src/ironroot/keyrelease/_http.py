"""Secure key release over HTTP (Starlette routes, mountable beside the other apps).

``POST /keys/challenge``
    a fresh single-use release nonce: ``201`` JSON ``{"nonce": b64url, "expires": epoch}``, or
    CBOR ``{"nonce": bstr, "expires": int}`` with ``Accept: application/cbor``.
``POST /keys/{name}/release``
    JSON ``{"ear": text, "wrapping_key": PEM text | b64url SPKI DER | RSA JWK object, "nonce":
    b64url}`` where ``ear`` is the EAR JWT, or a CWT as base64url; or CBOR
    (``Content-Type: application/cbor``) ``{"ear": bstr / tstr, "wrapping_key": bstr (SPKI
    DER) / tstr (PEM) / map (JWK), "nonce": bstr}``. ``200`` with the released key
    (``application/vnd.ironroot.released-key+json`` or ``+cbor``: the request's form, unless
    ``Accept`` asks for the other).
``GET /keys``
    ``{"keys": [name, ...]}``: the names of the releasable keys.
``/admin/...``
    an HSM crypto officer administers the running service's HSM (``ironroot.keyrelease._admin``).

Every refusal is an RFC 9290 concise problem (CBOR), or RFC 9457 JSON when the client accepts
JSON, with the error's machine code as the ``code`` member: 400 (malformed, expired, unknown
verifier, stale or mismatching nonce), 403 (``release-denied``, ``key-binding-mismatch``,
``invalid-release-policy``, ``key-not-exportable``), 404 (no such key), 413 (too large).
A degenerate wrapping key (an all-zero or short ML-KEM key, an RSA modulus with a small
factor: ``ironroot.crypto.check_wrapping_key``) is a 400 ``degenerate-wrapping-key``, before
the nonce is spent or the HSM asked. Every refusal of a release is counted by its code
(``ironroot_releases``) and logged as a warning with the key's name; the HSM's own refusals
are in its audit log too.

Each client (its certificate over mutual TLS, else its address, an IPv6 one as its /64:
``ironroot.http.client_identity``) may have ``REFUSALS_PER_CLIENT`` (32) refused
challenges and releases within ``REFUSAL_WINDOW`` (60) seconds; past them every challenge and
release it sends is refused ``429`` ``too-many-attempts`` with ``Retry-After`` (the seconds
until the oldest refusal leaves the window) before the HSM is asked, so it costs no HSM
commit and leaves no HSM audit record (it is counted and logged here). The HSM's own refusals
are durable before they are answered, each a commit of the root of trust's counter: this
bounds how many one client can cause (``ironroot.http.LoginThrottle``, which counts failed
logins the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Final, TypeVar

from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.cose import Limits
from ironroot.errors import ConfigError, HsmErrorState, IronrootError, MalformedInput
from ironroot.hsm import OwedRefusals, WrappingKey
from ironroot.http import (
    CBOR,
    Handler,
    LoginThrottle,
    ServerThread,
    ServiceInfo,
    acceptable_media,
    challenge_handler,
    client_identity,
    decode_request_map,
    guarded,
    problem_app,
    read_body,
    require_media_type,
)
from ironroot.keyrelease._admin import admin_routes
from ironroot.keyrelease._format import RELEASED_KEY_CBOR, RELEASED_KEY_JSON, unb64url
from ironroot.keyrelease._service import HsmVault, KeyReleaseService, ReleaseRequest

__all__ = [
    "KeyReleaseServerThread",
    "create_keyrelease_app",
    "keyrelease_info",
    "keyrelease_routes",
    "parse_release_request",
]

_log = logging.getLogger("ironroot.keyrelease")
_T = TypeVar("_T")

MAX_REQUEST_BYTES: Final = 512 * 1024
_BODY_LIMITS: Final = Limits(max_bytes=MAX_REQUEST_BYTES, max_depth=4, max_items=32)
_MEMBERS: Final = frozenset(("ear", "wrapping_key", "nonce"))
_MAX_LOGGED_NAME: Final = 128  # a key name, or as much of an unknown one as is logged
REFUSALS_PER_CLIENT: Final = 32
"""Refused challenges and releases one client address may have within ``REFUSAL_WINDOW``
seconds; past them the service answers ``429`` before the HSM is asked (module docs)."""
REFUSAL_WINDOW: Final = 60


async def _body(request: Request) -> bytes:
    return await read_body(request, MAX_REQUEST_BYTES)


def _ear(value: object, *, cbor: bool) -> bytes:
    if isinstance(value, str):
        if "." in value:
            return value.strip().encode("ascii", "replace")
        if cbor:
            raise MalformedInput("ear text must be a JWT")
        return unb64url(value, "ear")
    if cbor and isinstance(value, bytes):
        return value
    raise MalformedInput("ear must be a JWT (text) or a CWT (bytes, or base64url in JSON)")


def _wrapping_key(value: object, *, cbor: bool) -> WrappingKey:
    if isinstance(value, Mapping):
        return WrappingKey.parse(value)
    if isinstance(value, str):
        if value.lstrip().startswith("-----"):
            return WrappingKey.parse(value)
        if cbor:
            raise MalformedInput("wrapping_key text must be PEM")
        return WrappingKey.parse(unb64url(value, "wrapping_key"))
    if cbor and isinstance(value, bytes):
        return WrappingKey.parse(value)
    raise MalformedInput("wrapping_key must be SPKI (PEM, DER) or an RSA JWK")


def parse_release_request(body: bytes, media_type: str) -> ReleaseRequest:
    """A release request from its body: CBOR when ``media_type`` is ``application/cbor``,
    else JSON (see the module documentation)."""
    cbor = media_type == CBOR
    value = decode_request_map(body, cbor=cbor, limits=_BODY_LIMITS)
    if set(value) != _MEMBERS:
        raise MalformedInput("the request has exactly ear, wrapping_key and nonce")
    nonce = value["nonce"]
    if cbor:
        if not isinstance(nonce, bytes):
            raise MalformedInput("nonce must be a byte string")
    else:
        nonce = unb64url(nonce, "nonce")
    return ReleaseRequest(
        ear=_ear(value["ear"], cbor=cbor),
        wrapping_key=_wrapping_key(value["wrapping_key"], cbor=cbor),
        nonce=nonce,
    )


def _is(media: str, kind: str) -> bool:
    return media == f"application/{kind}" or media.endswith(f"+{kind}")


def _wants_cbor(request: Request, default: bool) -> bool:
    """CBOR when the client takes it, JSON when it takes JSON and not CBOR, else the
    request's form; every ``Accept`` field, without regard to case, and a range of quality
    0 is one the client refuses (RFC 9110 §12.5.1): CBOR refused that way is JSON."""
    ranges = acceptable_media(request)
    if any(_is(m, "cbor") for m in ranges):
        return True
    if any(_is(m, "json") for m in ranges):
        return False
    if any("cbor" in field.lower() for field in request.headers.getlist("accept")):
        return False  # named, at quality 0
    return default


def _client(request: Request) -> str:
    """Whom the refusal limit counts: the client certificate over mutual TLS, else the
    address (the challenge limits count the same client)."""
    return client_identity(request) or "-"


def keyrelease_info(service: KeyReleaseService) -> ServiceInfo:
    """The key service as its operator sees it: ready when its HSM is operational, an EAR
    verifier is installed there and every offered key is in it."""
    vault = service.vault

    def hsm() -> None:
        if isinstance(vault, HsmVault) and vault.hsm.state != "operational":
            raise HsmErrorState(f"the HSM is {vault.hsm.state}: {vault.hsm.error}")

    def verifiers() -> None:
        if isinstance(vault, HsmVault) and not vault.verifiers():
            raise ConfigError(
                "no EAR verifier is installed in the HSM: every release is refused",
                code="no-verifier",
            )

    def keys() -> None:
        for entry in service.keys.values():
            vault.key_type(entry.handle)  # NotFound when the HSM no longer holds it

    return ServiceInfo(
        name="keyrelease",
        description="Ironroot secure key release: keys leave the HSM only to attested TEEs",
        checks={"hsm": hsm, "verifiers": verifiers, "keys": keys},
        links={"challenge": "/keys/challenge", "keys": "/keys"},
        docs="docs/keyrelease.md",
        details=lambda: {"keys": len(service.keys)},
    )


async def _asking_hsm(service: KeyReleaseService, call: Callable[[], _T]) -> _T:
    """``call()``, which asks the service's vault, run in the thread pool: the HSM's refusal
    is durable before it is answered, and may wait for a commit, which the event loop must
    not (and the refusals arriving together then share one). A refusal that waits only for
    the HSM's refusal budget (up to ``1 / refusal_commit_rate`` seconds) waits here, on the
    event loop, not in a worker thread (``Hsm.owing_refusals``): a flood of them never holds
    the pool, and a release arriving meanwhile finds a thread. Neither the result nor the
    refusal is answered before the HSM says its records are durable, or until the error
    that says why they are not is raised instead."""
    vault = service.vault
    if not isinstance(vault, HsmVault):
        return await run_in_threadpool(call)
    hsm = vault.hsm
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    owing: list[OwedRefusals] = []

    def wake() -> None:  # any thread, a commit's: the loop wakes the waiter
        loop.call_soon_threadsafe(woken.set)

    def owed_call() -> _T:
        with hsm.owing_refusals(wake) as owed:
            owing.append(owed)
            return call()

    try:
        return await run_in_threadpool(owed_call)
    finally:
        for owed in owing:
            while owed.ticket:  # records owed: not answered before they are durable
                woken.clear()
                wait = await run_in_threadpool(hsm.settle_owed, owed)
                if not wait:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), wait)


def keyrelease_routes(
    service: KeyReleaseService,
    info: ServiceInfo | None = None,
    *,
    refusals: LoginThrottle | None = None,
) -> list[Route]:
    """The key release routes, each answering errors with problem details; with ``info``,
    releases by decision (``released`` or the refusal's code) and, for an HSM vault, the HSM's
    operations by result go to its registry. ``refusals`` counts each client address's
    refused challenges and releases (default: ``REFUSALS_PER_CLIENT`` in ``REFUSAL_WINDOW``
    seconds; ``LoginThrottle(0, 1)`` limits nothing): past them, ``429`` first (module
    docs)."""
    if refusals is None:
        refusals = LoginThrottle(REFUSALS_PER_CLIENT, REFUSAL_WINDOW, attempts="refused requests")
    decisions: Counter | None = None
    if info is not None:
        decisions = Counter(
            "ironroot_releases",
            "POST /keys/{name}/release answers, by decision: released, or the refusal's code",
            ("decision",),
            registry=info.registry,
        )
        if isinstance(service.vault, HsmVault):
            operations = Counter(
                "ironroot_hsm_operations",
                "HSM operations the key service's HSM audited, by operation and result",
                ("operation", "result"),
                registry=info.registry,
            )
            service.vault.hsm.add_listener(
                lambda operation, result: operations.labels(operation, result).inc()
            )

    async def release(request: Request) -> Response:
        name = request.path_params["name"]
        client = _client(request)
        try:
            refusals.check(client)  # 429 before anything: the HSM is not asked
            service.key(name)
            # JSON or CBOR (untyped: JSON); any other type is a 415, not a guess
            media_type = require_media_type(
                request, "application/json", CBOR, untyped="application/json"
            )
            parsed = parse_release_request(await _body(request), media_type)
            try:
                released = await _asking_hsm(service, lambda: service.release(name, parsed))
            except IronrootError:
                refusals.failed(client)  # the HSM's (or the gate's) refusal: counted
                raise
        except IronrootError as exc:
            # every refusal, the HSM's or one before it was asked (no such key, a malformed
            # request, a degenerate wrapping key): counted and logged by its code
            if decisions is not None:
                decisions.labels(exc.code).inc()
            _log.warning("release of %r refused: %s", name[:_MAX_LOGGED_NAME], exc.code)
            raise
        if decisions is not None:
            decisions.labels("released").inc()
        headers = {"Cache-Control": "no-store"}
        if _wants_cbor(request, media_type == CBOR):
            return Response(released.to_cbor(), 200, media_type=RELEASED_KEY_CBOR, headers=headers)
        return Response(released.to_json(), 200, media_type=RELEASED_KEY_JSON, headers=headers)

    async def keys(request: Request) -> Response:
        return Response(json.dumps({"keys": sorted(service.keys)}), media_type="application/json")

    def _guard(handler: Handler) -> Handler:
        return guarded(handler, _log, what="the key service")

    async def issue(client: str | None) -> tuple[bytes, int]:
        who = client or "-"
        refusals.check(who)
        try:
            return await _asking_hsm(service, lambda: service.challenge(client))
        except IronrootError:
            refusals.failed(who)
            raise

    challenge = challenge_handler(issue)
    return [
        Route("/keys/challenge", _guard(challenge), methods=["POST"]),
        Route("/keys/{name}/release", _guard(release), methods=["POST"]),
        Route("/keys", _guard(keys), methods=["GET"]),
    ]


def create_keyrelease_app(
    service: KeyReleaseService,
    *,
    admin: str = "loopback",
    refusals: LoginThrottle | None = None,
) -> Starlette:
    """An ASGI app serving the key release routes, with ``/``, ``/health``, ``/ready``,
    ``/metrics``, the access log and the ``/admin`` routes for ``admin`` clients
    (:data:`ironroot.keyrelease._admin.ADMIN_REACH`); ``refusals`` as
    :func:`keyrelease_routes`."""
    info = keyrelease_info(service)
    routes = [
        *keyrelease_routes(service, info, refusals=refusals),
        *admin_routes(service, reach=admin),
    ]
    return problem_app(routes, info)


class KeyReleaseServerThread(ServerThread):
    """Serve an ASGI app (the key service) over real HTTP from a background thread, for
    embedding in another program, the demo and the benchmark. Port 0 picks a free loopback
    port; ``url`` says which."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(app, host, port, name="keyrelease")
