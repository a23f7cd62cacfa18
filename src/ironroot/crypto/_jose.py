"""Strict helpers for JOSE encodings: unpadded base64url (RFC 7515 §2) and JWK objects.

The standard library's ``base64.urlsafe_b64decode`` silently accepts padding, discards no
characters but tolerates non-canonical trailing bits, and raises ``binascii.Error`` (a
``ValueError``); JWK members must be canonical unpadded base64url, so the check is written here
once and every failure becomes :class:`~ironroot.errors.MalformedInput`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from ironroot.errors import LimitExceeded, MalformedInput

__all__ = ["MAX_JWK_BYTES", "b64url_decode", "b64url_encode", "jwk_bytes", "jwk_str", "parse_jwk"]

MAX_JWK_BYTES = 64 * 1024
"""Largest JWK text accepted (an ML-DSA-87 public JWK is about 3.5 KB)."""

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, *, what: str = "value") -> bytes:
    """Decode canonical unpadded base64url; anything else raises ``MalformedInput``."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedInput(f"{what} is not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedInput(f"{what} is not unpadded base64url") from exc
    if b64url_encode(data) != text:
        raise MalformedInput(f"{what} is not canonical base64url")
    return data


def parse_jwk(jwk: Mapping[str, object] | str | bytes) -> Mapping[str, object]:
    """Accept a JWK as a mapping or as JSON text; return the mapping."""
    if isinstance(jwk, Mapping):
        return jwk
    if not isinstance(jwk, str | bytes | bytearray):  # a JWK Set's "keys" may hold anything
        raise MalformedInput(f"a JWK is a JSON object, not {type(jwk).__name__}")
    if len(jwk) > MAX_JWK_BYTES:
        raise LimitExceeded(f"JWK larger than {MAX_JWK_BYTES} bytes")
    try:
        value = json.loads(jwk)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedInput(f"JWK is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedInput("JWK must be a JSON object")
    return value


def jwk_str(jwk: Mapping[str, object], name: str) -> str:
    """A required string member of a JWK."""
    value = jwk.get(name)
    if not isinstance(value, str):
        raise MalformedInput(f"JWK member {name!r} must be a string")
    return value


def jwk_bytes(jwk: Mapping[str, object], name: str, size: int | None = None) -> bytes:
    """A required base64url member of a JWK, optionally of an exact decoded size."""
    data = b64url_decode(jwk_str(jwk, name), what=f"JWK member {name!r}")
    if size is not None and len(data) != size:
        raise MalformedInput(f"JWK member {name!r} must be {size} bytes, not {len(data)}")
    return data
