"""EARs as signed tokens: a JWT (compact JWS) or a CWT (COSE_Sign1), made and checked.

JWTs are built by hand (three base64url segments; the JSON is ours) and parsed with
``joserfc``'s strict compact-JWS reader; every signature is made and checked with
:mod:`ironroot.crypto` (JWS ECDSA signatures are the same fixed ``r ‖ s`` as COSE's).

Which of the two a token is, is told by its first byte (``0xd2``: tag 18, a CWT). Size, key
and time checks are here, and one nesting and count limit for both forms (a JWT's JSON is held
to the CWT's CBOR limits); the claims-sets are ``_claims``'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry, extract_compact

from ironroot._json import DECODER
from ironroot.cose import CRIT, KID, Limits, Sign1, decode_cbor, encode_cbor, sign1
from ironroot.crypto import Algorithm, PublicKey, Signer, Verifier, b64url_decode, b64url_encode
from ironroot.ear._claims import cbor_claims, json_claims, result_from_cbor, result_from_json
from ironroot.ear._model import AttestationResult
from ironroot.errors import (
    AlgorithmNotAccepted,
    LimitExceeded,
    MalformedInput,
    ResultExpired,
    UnknownIssuer,
)

__all__ = [
    "CLOCK_SKEW",
    "CWT_MEDIA_TYPE",
    "JWT_MEDIA_TYPE",
    "MAX_TOKEN_BYTES",
    "decode_ear",
    "key_map",
    "read_ear_unchecked",
    "sign_ear_cwt",
    "sign_ear_jwt",
    "verify_ear",
]

JWT_MEDIA_TYPE: Final = "application/eat+jwt"
CWT_MEDIA_TYPE: Final = "application/eat+cwt"
MAX_TOKEN_BYTES: Final = 256 * 1024
CLOCK_SKEW: Final = 60
_JWT_ALGORITHMS: Final = frozenset((Algorithm.ES256, Algorithm.ES384, Algorithm.ES512))
_LIMITS: Final = Limits(max_bytes=MAX_TOKEN_BYTES, max_depth=12, max_items=4096)


def sign_ear_jwt(result: AttestationResult, signer: Signer) -> bytes:
    """The EAR as a compact JWS (``typ`` JWT, ``kid`` the base64url RFC 9679 thumbprint)."""
    if signer.algorithm not in _JWT_ALGORITHMS:
        raise AlgorithmNotAccepted(f"EAR JWTs are signed ES256/384/512, not {signer.algorithm}")
    header = {"alg": signer.algorithm.label, "typ": "JWT", "kid": b64url_encode(signer.kid)}
    segments = [
        b64url_encode(json.dumps(part, separators=(",", ":"), sort_keys=True).encode())
        for part in (header, json_claims(result))
    ]
    signing_input = ".".join(segments).encode("ascii")
    return signing_input + b"." + b64url_encode(signer.sign(signing_input)).encode("ascii")


def sign_ear_cwt(result: AttestationResult, signer: Signer) -> bytes:
    """The EAR as a CWT: COSE_Sign1 (tag 18) with ``alg`` and ``kid`` protected."""
    return sign1(signer, encode_cbor(cbor_claims(result)), {KID: signer.kid}).encode()


def key_map(keys: Mapping[bytes, Verifier] | Iterable[PublicKey]) -> dict[bytes, Verifier]:
    """``{kid: verifier}`` from a mapping or from public keys (keyed by their thumbprints)."""
    if isinstance(keys, Mapping):
        return dict(keys)
    return {key.kid: key for key in keys}


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:  # UTF-8 only (RFC 8259 §8.1, RFC 7519 §7.2): json.loads would guess UTF-16/32
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput(f"{what} are not UTF-8") from exc
    if text.startswith("\ufeff"):
        raise MalformedInput(f"{what} are not UTF-8 JSON: a byte order mark leads them")
    try:  # no NaN or Infinity (not JSON), no number past a double's range (read as infinity)
        value = DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedInput(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedInput(f"{what} must be a JSON object")
    _within_limits(value, what)
    return value


def _within_limits(value: object, what: str) -> None:
    """``LimitExceeded`` unless ``value`` nests and counts within :data:`_LIMITS`, as a CWT's
    claims must (the CBOR decoder checks those): a JWT is no way around them. And
    ``MalformedInput`` for text (a member name or a string) that is not Unicode: JSON's
    ``\\ud800`` escapes half a surrogate pair, no character (RFC 8259 §8.2, I-JSON RFC 7493
    §2.1), which a CWT cannot carry nor UTF-8 write. Walked without recursion."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children: Iterable[object]
        if isinstance(node, dict):
            children = node.values()
            for name in node:
                _unicode(name, what)
        elif isinstance(node, list):
            children = node
        else:
            if isinstance(node, str):
                _unicode(node, what)
            continue
        if depth > _LIMITS.max_depth:
            raise LimitExceeded(f"{what} nest deeper than {_LIMITS.max_depth}")
        if len(node) > _LIMITS.max_items:
            raise LimitExceeded(f"{what} hold a container of over {_LIMITS.max_items} entries")
        pending.extend((child, depth + 1) for child in children)


def _unicode(text: str, what: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedInput(
                f"{what} hold text that is not Unicode (a \\u escape of a lone surrogate)"
            ) from exc


def _registry() -> JWSRegistry:
    registry = JWSRegistry(
        algorithms=sorted(a.label for a in _JWT_ALGORITHMS), strict_check_header=True
    )
    registry.max_payload_length = MAX_TOKEN_BYTES
    return registry


def _decode_jwt(token: bytes, keys: Mapping[bytes, Verifier]) -> AttestationResult:
    registry = _registry()
    try:
        obj = extract_compact(token, registry=registry)
        # joserfc reads the header with ``json.loads``: a member given twice is its last one
        # there, and UTF-16 or a byte order mark pass. Read it again as the claims are read
        # (``_json``), so that ``{"alg": "ES256", "alg": "ES384"}`` or two kids (another
        # reader may take the first) is refused rather than read one way here.
        header = _json(
            b64url_decode(obj.segments["header"].decode("ascii"), what="the JWS header"),
            "the JWS header",
        )
        registry.check_header(header)
        signature = b64url_decode(obj.segments["signature"].decode("ascii"), what="signature")
        signing_input = obj.segments["header"] + b"." + obj.segments["payload"]
        payload = obj.payload
    except JoseError as exc:
        raise MalformedInput(f"not a compact JWS: {exc.description or exc.error}") from exc
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise MalformedInput(f"not a compact JWS: {exc}") from exc
    alg, kid = header.get("alg"), header.get("kid")
    if "crit" in header:
        raise MalformedInput("JWS header crit names extensions this verifier does not process")
    if not isinstance(kid, str):
        raise UnknownIssuer("the EAR's JWS header names no kid")
    verifier = keys.get(b64url_decode(kid, what="kid"))
    if verifier is None:
        raise UnknownIssuer(f"no verifier key has kid {kid}")
    if not isinstance(alg, str) or Algorithm.from_label(alg) is not verifier.algorithm:
        raise AlgorithmNotAccepted(f"JWS alg {alg!r} is not the key's algorithm")
    verifier.verify(signature, signing_input)
    return result_from_json(_json(payload, "the JWT claims"))


def _decode_cwt(token: bytes, keys: Mapping[bytes, Verifier]) -> AttestationResult:
    message = Sign1.decode(token, _LIMITS)
    if CRIT in message.protected:  # as for a JWS: no header extension is processed here
        raise MalformedInput("COSE header crit names headers this verifier does not process")
    kid = message.protected.get(KID)
    if not isinstance(kid, bytes):
        raise UnknownIssuer("the EAR's COSE header names no kid")
    verifier = keys.get(kid)
    if verifier is None:
        raise UnknownIssuer(f"no verifier key has kid {kid.hex()}")
    message.verify(verifier)
    return _cwt_result(message)


def _cwt_result(message: Sign1) -> AttestationResult:
    if message.payload is None:
        raise MalformedInput("the CWT payload is detached")
    claims = decode_cbor(message.payload, _LIMITS)
    if not isinstance(claims, Mapping):
        raise MalformedInput("the CWT claims are not a map")
    return result_from_cbor(claims)


def _token_bytes(token: bytes | str) -> bytes:
    if isinstance(token, str):
        data = token.encode("ascii", "replace")
    elif isinstance(token, bytes | bytearray | memoryview):
        data = bytes(token)
    else:  # bytes() of an integer is that many zero bytes, of a list its items
        raise MalformedInput(
            f"an EAR is a JWT (text or bytes) or a CWT (bytes), not {type(token).__name__}"
        )
    if len(data) > MAX_TOKEN_BYTES:
        raise LimitExceeded(f"an EAR is at most {MAX_TOKEN_BYTES} bytes")
    return data


def read_ear_unchecked(token: bytes | str) -> AttestationResult:
    """An EAR's claims read as :func:`decode_ear` reads them (the same limits and strict
    JSON or CBOR), its signature **not** checked: for showing a token to a person who has no
    verifier key at hand (``ironroot attest explain`` without ``--keys`` says so), never for a
    decision."""
    data = _token_bytes(token)
    if data[:1] == b"\xd2":
        return _cwt_result(Sign1.decode(data, _LIMITS))
    parts = data.strip().split(b".")
    if len(parts) != 3:
        raise MalformedInput("an EAR is a JWT (three base64url parts) or a CWT (COSE_Sign1)")
    try:
        payload = b64url_decode(parts[1].decode("ascii"), what="the JWT claims")
    except UnicodeDecodeError as exc:
        raise MalformedInput("the JWT claims are not base64url") from exc
    return result_from_json(_json(payload, "the JWT claims"))


def decode_ear(
    token: bytes | str, keys: Mapping[bytes, Verifier] | Iterable[PublicKey]
) -> AttestationResult:
    """Check the signature of a JWT or CWT EAR and parse it; no time checks (see
    :func:`verify_ear`)."""
    data = _token_bytes(token)
    verifiers = key_map(keys)
    if not verifiers:
        raise UnknownIssuer("no verifier keys are configured: an empty key set trusts nothing")
    if data[:1] == b"\xd2":
        return _decode_cwt(data, verifiers)
    return _decode_jwt(data.strip(), verifiers)


def verify_ear(
    token: bytes | str,
    keys: Mapping[bytes, Verifier] | Iterable[PublicKey],
    *,
    now: datetime,
) -> AttestationResult:
    """Verify an EAR (JWT or CWT, told apart by the first byte) and return its claims.

    Raises ``UnknownIssuer`` when no key has its ``kid``, ``BadSignature`` /
    ``AlgorithmNotAccepted`` when the signature does not verify with it, ``ResultExpired``
    after ``exp`` (or when issued in the future, or before ``nbf``, beyond a minute of clock
    skew), and
    ``MalformedInput`` for anything that does not parse as an EAR.
    """
    if now.tzinfo is None:
        raise MalformedInput("now must be timezone-aware")
    result = decode_ear(token, keys)
    t = int(now.timestamp())
    if result.exp is not None and t >= result.exp:
        raise ResultExpired(f"the EAR expired at {result.exp} (now {t})")
    if result.nbf is not None and t + CLOCK_SKEW < result.nbf:
        raise ResultExpired(f"the EAR is not valid before {result.nbf} (now {t})")
    if result.iat > t + CLOCK_SKEW:
        raise ResultExpired(f"the EAR is issued in the future ({result.iat}, now {t})")
    return result
