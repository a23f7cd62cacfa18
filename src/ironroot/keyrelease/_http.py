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

Every refusal is an RFC 9290 concise problem (CBOR), or RFC 9457 JSON when the client accepts
JSON, with the error's machine code as the ``code`` member: 400 (malformed, expired, unknown
verifier, stale or mismatching nonce), 403 (``release-denied``, ``key-binding-mismatch``,
``invalid-release-policy``, ``key-not-exportable``), 404 (no such key), 413 (too large).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.cose import Limits, Problem, decode_cbor, encode_cbor
from ironroot.errors import (
    IronrootError,
    MalformedInput,
    NotFound,
    PayloadTooLarge,
    StorageError,
)
from ironroot.keyrelease._binding import WrappingKey, b64url, unb64url
from ironroot.keyrelease._format import RELEASED_KEY_CBOR, RELEASED_KEY_JSON
from ironroot.keyrelease._service import KeyReleaseService, ReleaseRequest

__all__ = [
    "KeyReleaseServerThread",
    "create_keyrelease_app",
    "keyrelease_routes",
    "parse_release_request",
]

_log = logging.getLogger("ironroot.keyrelease")

CBOR: Final = "application/cbor"
PROBLEM_CBOR: Final = "application/concise-problem-details+cbor"
PROBLEM_JSON: Final = "application/problem+json"
MAX_REQUEST_BYTES: Final = 512 * 1024
_BODY_LIMITS: Final = Limits(max_bytes=MAX_REQUEST_BYTES, max_depth=4, max_items=32)
_MEMBERS: Final = frozenset(("ear", "wrapping_key", "nonce"))


def _problem(request: Request, status: int, title: str, detail: str, code: str) -> Response:
    problem = Problem(title=title, detail=detail, status=status, extra={"code": code})
    accept = request.headers.get("accept", "")
    if "json" in accept and "cbor" not in accept:
        return Response(problem.to_json(), status, media_type=PROBLEM_JSON)
    return Response(problem.to_cbor(), status, media_type=PROBLEM_CBOR)


def _error(request: Request, exc: IronrootError) -> Response:
    return _problem(request, exc.http_status, exc.title, exc.detail, exc.code)


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"the request is {length} bytes; the limit is {MAX_REQUEST_BYTES}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise PayloadTooLarge(f"the request is over the limit of {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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


def parse_release_request(body: bytes, content_type: str) -> ReleaseRequest:
    """A release request from its JSON or CBOR body (see the module documentation)."""
    cbor = "cbor" in content_type
    value: Any
    if cbor:
        value = decode_cbor(body, _BODY_LIMITS)
    else:
        try:
            value = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise MalformedInput(f"the request is not JSON: {exc}") from exc
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise MalformedInput("the request is a map with text keys")
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


def _wants_cbor(request: Request, default: bool) -> bool:
    accept = request.headers.get("accept", "")
    if "cbor" in accept:
        return True
    if "json" in accept:
        return False
    return default


def keyrelease_routes(service: KeyReleaseService) -> list[Route]:
    """The key release routes, each answering errors with problem details."""

    async def challenge(request: Request) -> Response:
        nonce, expires = service.challenge()
        headers = {"Cache-Control": "no-store"}
        if CBOR in request.headers.get("accept", ""):
            body = encode_cbor({"nonce": nonce, "expires": expires})
            return Response(body, 201, media_type=CBOR, headers=headers)
        text = json.dumps({"nonce": b64url(nonce), "expires": expires})
        return Response(text, 201, media_type="application/json", headers=headers)

    async def release(request: Request) -> Response:
        name = request.path_params["name"]
        service.key(name)
        content_type = request.headers.get("content-type", "")
        parsed = parse_release_request(await _body(request), content_type)
        released = await run_in_threadpool(service.release, name, parsed)
        headers = {"Cache-Control": "no-store"}
        if _wants_cbor(request, "cbor" in content_type):
            return Response(released.to_cbor(), 200, media_type=RELEASED_KEY_CBOR, headers=headers)
        return Response(released.to_json(), 200, media_type=RELEASED_KEY_JSON, headers=headers)

    async def keys(request: Request) -> Response:
        return Response(json.dumps({"keys": sorted(service.keys)}), media_type="application/json")

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except IronrootError as exc:
                _log.info("key release refused: %s: %s", exc.code, exc.detail)
                return _error(request, exc)
            except Exception:  # a bug or an outside failure: a problem, never a bare 500 page
                _log.exception("unexpected error in %s %s", request.method, request.url.path)
                return _problem(
                    request, 503, "Service Unavailable", "the key service failed; retry", "storage"
                )

        return run

    return [
        Route("/keys/challenge", guarded(challenge), methods=["POST"]),
        Route("/keys/{name}/release", guarded(release), methods=["POST"]),
        Route("/keys", guarded(keys), methods=["GET"]),
    ]


def create_keyrelease_app(service: KeyReleaseService) -> Starlette:
    """An ASGI app serving only the key release routes."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {404: "Not Found", 405: "Method Not Allowed"}
        title = titles.get(exc.status_code, "Error")
        return _problem(request, exc.status_code, title, str(exc.detail), "http")

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(request, NotFound("no such resource"))

    return Starlette(
        routes=keyrelease_routes(service),
        exception_handlers={HTTPException: http_error, 404: not_found},
    )


class KeyReleaseServerThread:
    """Serve an ASGI app (the key service) over real HTTP from a background thread, for
    embedding in another program, the demo and the benchmark. Port 0 picks a free loopback
    port; ``url`` says which."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="ironroot-keyrelease", daemon=True
        )

    def __enter__(self) -> KeyReleaseServerThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise StorageError("the key release HTTP server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
