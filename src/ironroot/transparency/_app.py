"""The HTTP face of the transparency service (SCRAPI + C2SP tlog-tiles reads), an ASGI app.

Every error is an RFC 9290 concise problem (CBOR), or RFC 9457 JSON when the client accepts
only JSON; the SCRAPI titles are used where SCRAPI defines one. Unexpected exceptions become a
503 problem (logged with their traceback), never a bare 500 page.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from typing import Any, Final

from prometheus_client import Counter, Gauge, Histogram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ironroot._httpclient import shown_url
from ironroot.cose import encode_cbor, encode_key_set
from ironroot.crypto import PublicKey, b64url_decode
from ironroot.errors import (
    ClockSkew,
    InvalidLocator,
    MalformedInput,
    NotFound,
    StorageError,
    Unauthorized,
)
from ironroot.http import (
    Handler,
    ServiceInfo,
    guarded,
    problem_app,
    problem_response,
    read_body,
    require_media_type,
    wants_json,
)
from ironroot.log import cache_control, parse_tile_path
from ironroot.transparency._cts import cts_routes
from ironroot.transparency._openapi import OPENAPI
from ironroot.transparency._registrar import LocalRegistrar, Registrar
from ironroot.transparency._service import TransparencyService
from ironroot.transparency._tiles_app import refuse_encoded_slash

__all__ = ["create_app"]

_log = logging.getLogger("ironroot.transparency")

COSE: Final = "application/cose"
CBOR: Final = "application/cbor"
_ENTRY_ID: Final = re.compile(r"[0-9a-f]{64}")
_KID: Final = re.compile(r"(?:[0-9a-f]{2})+")  # as the configuration's keys[].kid spell it
_IMMUTABLE: Final = {"Cache-Control": "public, max-age=31536000, immutable"}
_NO_CACHE: Final = {"Cache-Control": "no-cache"}
# A registration that runs (303, then 302 at its Location): when to poll again, as SCRAPI's
# examples and CTS's 202 say it
_PENDING: Final = {**_NO_CACHE, "Retry-After": "1"}


def _entry_id(request: Request) -> bytes:
    text = request.path_params["entry_id"]
    if not _ENTRY_ID.fullmatch(text):
        raise InvalidLocator("Operation locator is not in a valid form: 64 lowercase hex digits")
    return bytes.fromhex(text)


def _service_info(service: TransparencyService) -> ServiceInfo:
    """Readiness checks, links and the service's own metrics (beside the HTTP ones)."""

    def store() -> None:
        service.log.store.state()  # one read of the store's state row

    def keys() -> None:
        if not service.receipt_keys or not service.checkpoint_vkeys:
            raise StorageError("the receipt or checkpoint keys are not loaded")

    def clock() -> None:
        # The sequencer's clock too far behind the stored receipt time: nothing is integrated
        refusal = service.clock_refusal
        if refusal is not None:
            raise ClockSkew(refusal.detail, retry_after=refusal.retry_after)

    def integration() -> None:
        # The sequencer's last integration failed (a store or signer down, a pending page it
        # cannot read): registrations are acknowledged but none gets its receipt
        stalled = service.integration_stalled
        if stalled is not None:
            raise stalled

    info = ServiceInfo(
        name="transparency",
        description="Ironroot Code Transparency Service (SCITT, RFC 9943; C2SP tlog-tiles)",
        checks={"store": store, "keys": keys, "clock": clock, "integration": integration},
        links={
            "openapi": "/openapi.json",
            "checkpoint": "/checkpoint",
            "keys": "/.well-known/scitt-keys",
            "configuration": "/.well-known/transparency-configuration",
        },
        docs="docs/transparency.md",
        details=lambda: {"tree_size": service.log.tree_size},
    )
    Gauge(
        "ironroot_log_tree_size", "Entries in the log's latest tree", registry=info.registry
    ).set_function(lambda: service.log.tree_size)
    Gauge(
        "ironroot_log_queue_depth",
        "Registrations accepted and waiting for integration",
        registry=info.registry,
    ).set_function(lambda: service.in_flight)
    if service.witnessing is not None:
        witnessing = service.witnessing
        Gauge(
            "ironroot_log_witnessed_size",
            "Tree size of the latest checkpoint cosigned by the witness quorum (-1: none yet)",
            registry=info.registry,
        ).set_function(lambda: witnessing.published_size)
        Gauge(
            "ironroot_log_witnesses_ahead",
            "Witnesses that last said they cosigned a tree of this log's origin that the log "
            "does not extend (a larger size, or another root); the quorum of them stops writes",
            registry=info.registry,
        ).set_function(lambda: witnessing.witnesses_ahead)
    batches = Histogram(
        "ironroot_log_batch_size",
        "Entries integrated per batch (one checkpoint and one receipt signature each)",
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
        registry=info.registry,
    )
    service.add_batch_listener(batches.observe)
    return info


def create_app(service: TransparencyService, registrar: Registrar | None = None) -> Starlette:
    """The ASGI application for ``service`` (which the caller starts and closes).

    ``registrar`` is how ``POST /entries`` registers: by default into ``service``'s own log
    (:class:`LocalRegistrar`); an HTTP worker passes its link to the sequencer."""
    config = service.config
    if registrar is None:
        registrar = LocalRegistrar(service)
    # Compared as SHA-256 digests: hmac.compare_digest on the tokens themselves takes a
    # different time when the lengths differ, which told a client each token's length.
    tokens = tuple(hashlib.sha256(t.encode()).digest() for t in config.write_tokens)
    key_set = encode_key_set(list(service.receipt_keys))
    keys_by_kid = {k.kid: k for k in service.receipt_keys}
    info = _service_info(service)
    registrations = Counter(
        "ironroot_registrations",
        "POST /entries (SCRAPI, and the CTS API's) answered, by outcome (integrated: 201 with a"
        " receipt, or CTS's 202 succeeded; pending: 303, or CTS's 202 running)",
        ("outcome",),
        registry=info.registry,
    )
    integrated, pending = registrations.labels("integrated"), registrations.labels("pending")

    def check_token(request: Request) -> None:
        if not tokens:
            return
        fields = request.headers.getlist("authorization")
        if len(fields) > 1:
            # RFC 9110 §11.6.2 allows one: which one a proxy in front checked or replaced,
            # and which one this would read, could differ
            raise Unauthorized("the request has more than one Authorization field")
        scheme, _, given = (fields[0] if fields else "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Unauthorized("a bearer token is required to register statements")
        given_digest = hashlib.sha256(given.strip().encode()).digest()
        ok = False
        for token in tokens:  # compare with every token: no early exit on a match
            ok |= hmac.compare_digest(given_digest, token)
        if not ok:
            raise Unauthorized("the bearer token is not valid")

    async def post_entries(request: Request) -> Response:
        check_token(request)
        require_media_type(request, COSE)
        body = await read_body(request, config.max_statement_bytes)
        registered = await registrar.register(body, config.registration_wait)
        location = f"/entries/{registered.entry_id.hex()}"
        if registered.receipt is None:  # not integrated in time, or not readable yet: poll
            pending.inc()
            return Response(b"", 303, headers={"Location": location, **_PENDING})
        integrated.inc()
        return Response(registered.receipt, 201, media_type=COSE, headers={"Location": location})

    async def get_entry(request: Request) -> Response:
        entry_id = _entry_id(request)
        receipts = service.receipts(entry_id)
        location = f"/entries/{entry_id.hex()}"
        if receipts is None:
            return Response(b"", 302, headers={"Location": location, **_PENDING})
        return Response(
            receipts[0], 200, media_type=COSE, headers={"Location": location, **_IMMUTABLE}
        )

    async def get_receipts(request: Request) -> Response:
        entry_id = _entry_id(request)
        receipts = service.receipts(entry_id)
        if receipts is None:
            location = f"/entries/{entry_id.hex()}"
            return Response(b"", 302, headers={"Location": location, **_PENDING})
        return Response(encode_cbor(list(receipts)), 200, media_type=CBOR, headers=_IMMUTABLE)

    async def get_statement(request: Request) -> Response:
        entry_id = _entry_id(request)
        if service.status(entry_id) is None:
            location = f"/entries/{entry_id.hex()}"
            return Response(b"", 302, headers={"Location": location, **_PENDING})
        return Response(
            service.transparent_statement(entry_id), 200, media_type=COSE, headers=_IMMUTABLE
        )

    async def scitt_keys(request: Request) -> Response:
        return Response(key_set, 200, media_type=CBOR)

    def key_named(text: str) -> PublicKey | None:
        """The key whose kid ``text`` spells: in lowercase hex, as the configuration's
        ``keys[].kid``, or in unpadded base64url, which SCRAPI requires for a kid that is
        not URL-safe (a thumbprint's bytes). Canonical spellings only: ``bytes.fromhex``
        also reads upper case and spaces (" 4C95 BC2F"), a base64 decoder padding."""
        key = keys_by_kid.get(bytes.fromhex(text)) if _KID.fullmatch(text) else None
        if key is None:
            try:
                key = keys_by_kid.get(b64url_decode(text, what="the kid"))
            except MalformedInput:
                return None
        return key

    async def scitt_key(request: Request) -> Response:
        key = key_named(request.path_params["kid"])
        if key is None:
            return problem_response(
                request,
                404,
                "No such key",
                "No key could be found for this kid value",
                NotFound.code,
            )
        return Response(encode_cbor(key.to_cose_key(include_kid=True)), 200, media_type=CBOR)

    def configuration() -> dict[str, Any]:
        return {
            "issuer": config.service_issuer,
            "receipt_algorithms": [a.label for a in config.receipt_algorithms],
            "accepted_algorithms": sorted(a.label for a in config.accepted_algorithms),
            "max_statement_bytes": config.max_statement_bytes,
            "registration_policy": config.policy,
            "scitt_keys_uri": "/.well-known/scitt-keys",
            "keys": [{"kid": k.kid.hex(), "alg": k.algorithm.label} for k in service.receipt_keys],
            "checkpoint_origin": config.origin,
            "checkpoint_keys": list(service.checkpoint_vkeys),
            "write_requires_token": bool(tokens),
            # a witness's URL without its user information: never a password, published
            "witnesses": [
                {"url": shown_url(w.url), "key": w.verifier.vkey} for w in config.witnesses
            ],
            "witness_quorum": config.witness_quorum,
        }

    async def transparency_configuration(request: Request) -> Response:
        body = configuration()
        if wants_json(request):
            return JSONResponse(body)
        return Response(encode_cbor(body), 200, media_type=CBOR)

    async def checkpoint(request: Request) -> Response:
        return Response(
            service.published_checkpoint(),
            200,
            media_type="text/plain; charset=utf-8",
            headers=_NO_CACHE,
        )

    async def tile(request: Request) -> Response:
        refuse_encoded_slash(request)
        address = parse_tile_path("tile/" + request.path_params["path"])
        if address.entries:
            data = service.log.read_entry_bundle(address.index, address.width)
        else:
            data = service.log.read_tile(address.level, address.index, address.width)
        headers = {"Cache-Control": cache_control(address.path)}  # full: immutable; partial: 60 s
        return Response(data, 200, media_type="application/octet-stream", headers=headers)

    async def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    def _guard(handler: Handler) -> Handler:
        return guarded(handler, _log, what="the transparency service")

    hot = [  # nearly all the traffic: answered without the middleware stack (problem_app)
        Route("/entries", _guard(post_entries), methods=["POST"]),
        Route("/entries/{entry_id}", _guard(get_entry), methods=["GET"]),
    ]
    routes = [
        *hot,
        Route("/entries/{entry_id}/statement", _guard(get_statement), methods=["GET"]),
        Route("/entries/{entry_id}/receipts", _guard(get_receipts), methods=["GET"]),
        Route("/.well-known/scitt-keys", _guard(scitt_keys), methods=["GET"]),
        Route("/.well-known/scitt-keys/{kid}", _guard(scitt_key), methods=["GET"]),
        Route(
            "/.well-known/transparency-configuration",
            _guard(transparency_configuration),
            methods=["GET"],
        ),
        Route("/checkpoint", _guard(checkpoint), methods=["GET"]),
        Route("/tile/{path:path}", _guard(tile), methods=["GET"]),
        Route("/openapi.json", _guard(openapi), methods=["GET"]),
    ]
    if config.cts_prefix:  # the Microsoft CTS API, for pyscitt and other CTS clients
        routes += cts_routes(
            service, config.cts_prefix, check_token, _guard, registrar, registrations
        )
    return problem_app(routes, info, hot=hot)
