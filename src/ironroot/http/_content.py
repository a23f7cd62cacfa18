"""The JSON or CBOR a client chose: request maps in, challenge nonces out.

Services that take a request as a JSON object or the same map in CBOR (``Content-Type:
application/cbor``) read it with :func:`decode_request_map`; services that hand out single-use
challenge nonces answer ``POST .../challenge`` with :func:`challenge_handler`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from ironroot.cose import Limits, decode_cbor, encode_cbor
from ironroot.crypto import b64url_encode
from ironroot.errors import MalformedInput
from ironroot.http._app import Handler

__all__ = ["CBOR", "challenge_handler", "decode_request_map"]

CBOR: Final = "application/cbor"


def decode_request_map(body: bytes, *, cbor: bool, limits: Limits) -> Mapping[str, Any]:
    """A request body as a map with text keys: CBOR (within ``limits``) when ``cbor``, else
    JSON. ``MalformedInput`` for anything else."""
    value: object
    if cbor:
        value = decode_cbor(body, limits)
    else:
        try:
            value = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise MalformedInput(f"the request is not JSON: {exc}") from exc
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise MalformedInput("the request is a map with text keys")
    return value


def challenge_handler(issue: Callable[[str | None], tuple[bytes, int]]) -> Handler:
    """A ``POST .../challenge`` handler: ``issue(client host)`` gives a fresh single-use nonce
    and when it expires (POSIX seconds); the answer is ``201``, never cached, JSON ``{"nonce":
    b64url, "expires": epoch}`` or, with ``Accept: application/cbor``, CBOR ``{"nonce": bstr,
    "expires": int}``."""

    async def challenge(request: Request) -> Response:
        nonce, expires = issue(request.client.host if request.client else None)
        headers = {"Cache-Control": "no-store"}
        if CBOR in request.headers.get("accept", ""):
            body = encode_cbor({"nonce": nonce, "expires": expires})
            return Response(body, 201, media_type=CBOR, headers=headers)
        text = json.dumps({"nonce": b64url_encode(nonce), "expires": expires})
        return Response(text, 201, media_type="application/json", headers=headers)

    return challenge
