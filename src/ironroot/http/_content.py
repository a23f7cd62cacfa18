"""The JSON or CBOR a client chose: request maps in, challenge nonces out.

Services that take a request as a JSON object or the same map in CBOR (``Content-Type:
application/cbor``) read it with :func:`decode_request_map`; services that hand out single-use
challenge nonces answer ``POST .../challenge`` with :func:`challenge_handler`. An endpoint that
takes one kind of body checks the request's ``Content-Type`` with :func:`require_media_type`
before it reads the body: any other, or a declared ``charset`` other than ``utf-8``, is
``UnsupportedMediaType`` (a 415 problem).

A JSON request is held to I-JSON (RFC 7493) where Python's parser is lenient: no member name
twice in one object (which one would win is the parser's choice), no ``NaN`` or
``Infinity`` (not JSON at all), no number past a double's range (``1e400``: Python reads
it as infinity), no lone surrogate escape (``"\\ud800"``: not Unicode, and
no UTF-8 store, log line or certificate can hold it). Each is ``MalformedInput``, as CBOR's
duplicate keys and invalid text are.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ironroot._json import DECODER
from ironroot.cose import DEFAULT_LIMITS, Limits, decode_cbor, encode_cbor
from ironroot.crypto import b64url_encode
from ironroot.errors import MalformedInput, UnsupportedMediaType
from ironroot.http._app import Handler, acceptable_media

__all__ = ["CBOR", "challenge_handler", "decode_request_map", "require_media_type"]

CBOR: Final = "application/cbor"


def _decode_json(body: bytes) -> object:
    try:
        value = DECODER.decode(body.decode("utf-8"))
        # the one way to a lone surrogate is its escape; encoding the value back finds it
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as exc:  # UnicodeError is a ValueError
        raise MalformedInput(f"the request is not I-JSON: {exc}") from exc
    return value


def decode_request_map(
    body: bytes, *, cbor: bool = False, limits: Limits = DEFAULT_LIMITS
) -> Mapping[str, Any]:
    """A request body as a map with text keys: CBOR (within ``limits``) when ``cbor``, else
    I-JSON (module docs). ``MalformedInput`` for anything else."""
    value = decode_cbor(body, limits) if cbor else _decode_json(body)
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise MalformedInput("the request is a map with text keys")
    return value


def _charsets(parameters: str) -> list[str]:
    """The ``charset`` values among a ``Content-Type``'s ``parameters`` (what follows its
    first ``;``), in lower case, without quotes, at most 40 characters each."""
    found = []
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            found.append(value.strip().strip('"').lower()[:40])
    return found


def require_media_type(request: Request, *accepted: str, untyped: str | None = None) -> str:
    """The media type of ``request``'s body — its ``Content-Type`` without parameters, in
    lower case — when it is one of ``accepted``. A request without one (or with an empty one)
    is taken as ``untyped``; with ``None``, refused: its body could be anything. Anything
    else is ``UnsupportedMediaType`` (415), whose detail names what the endpoint takes; so is
    a request with two ``Content-Type`` fields (RFC 9110 §8.3 allows one: which one a proxy
    in front believed, and which one this reads, could differ). A body in a content coding
    (``Content-Encoding`` other than ``identity``: gzip, br, …) is ``UnsupportedMediaType``
    too (RFC 9110 §8.4.1): no endpoint decodes one, and read as it is, it is neither the body
    its client meant nor the one a proxy that decodes it inspected. A ``charset`` parameter
    other than ``utf-8`` (in any case, quoted or not; each one, when there are several) is
    ``UnsupportedMediaType`` too, whatever the type: JSON between systems is UTF-8 (RFC 8259
    §8.1) and is read as UTF-8, a form is read as UTF-8, and CBOR's and COSE's text strings
    are UTF-8 by definition (RFC 8949 §3.1), so a client that declares another encoding
    (``latin-1``, ``utf-16``, one unknown) meant a body this would misread. ``charset=utf-8``
    on a binary type is harmless and taken."""
    values = request.headers.getlist("content-type")
    given, _, parameters = (values[0] if values else "").partition(";")
    media = given.strip().lower() or untyped
    if media is None or media not in accepted or len(values) > 1:
        raise UnsupportedMediaType(f"the request body must be {' or '.join(accepted)}")
    for charset in _charsets(parameters):
        if charset != "utf-8":
            raise UnsupportedMediaType(f"the request body must be UTF-8 (charset={charset} given)")
    coding = ", ".join(request.headers.getlist("content-encoding"))
    if any(c.strip().lower() not in ("", "identity") for c in coding.split(",")):
        raise UnsupportedMediaType(
            f"the request body must not be in a content coding ({coding[:100]})"
        )
    return media


def client_identity(request: Request) -> str | None:
    """Whom a per-client limit counts ``request`` against: over mutual TLS, the certificate the
    client presented (``cert:sha256:`` and the hex SHA-256 of its DER: one client wherever it
    connects from, and two certificates behind one address are two clients), else the peer's
    address (``None`` when unknown), which the limit counts as ``ironroot._netaddr.client_key``
    does (an IPv6 address as its /64)."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if chain:
        der = ssl.PEM_cert_to_DER_cert(chain[0])
        return f"cert:sha256:{hashlib.sha256(der).hexdigest()}"
    return request.client.host if request.client else None


def challenge_handler(
    issue: Callable[[str | None], tuple[bytes, int] | Awaitable[tuple[bytes, int]]],
    *,
    blocking: bool = False,
) -> Handler:
    """A ``POST .../challenge`` handler: ``issue(client)`` gives a fresh single-use nonce
    and when it expires (POSIX seconds) for ``client`` (:func:`client_identity`: the client
    certificate's digest over mutual TLS, else the peer address); the answer is ``201``, never
    cached, JSON ``{"nonce": b64url, "expires": epoch}`` or, when the client accepts
    ``application/cbor`` (in any of its ``Accept`` fields, in any case, not with ``q=0``), CBOR
    ``{"nonce": bstr, "expires": int}``. ``blocking``: ``issue`` may wait (an HSM's durable
    audit record of a refusal) and runs in the thread pool, not on the event loop. ``issue``
    may also be a coroutine function, awaited on the event loop (one that does its own waits
    there, and its blocking work in the pool: the key release service's)."""

    async def challenge(request: Request) -> Response:
        client = client_identity(request)
        issued = await run_in_threadpool(issue, client) if blocking else issue(client)
        if not isinstance(issued, tuple):
            issued = await issued
        nonce, expires = issued
        headers = {"Cache-Control": "no-store"}
        if CBOR in acceptable_media(request):
            body = encode_cbor({"nonce": nonce, "expires": expires})
            return Response(body, 201, media_type=CBOR, headers=headers)
        text = json.dumps({"nonce": b64url_encode(nonce), "expires": expires})
        return Response(text, 201, media_type="application/json", headers=headers)

    return challenge
