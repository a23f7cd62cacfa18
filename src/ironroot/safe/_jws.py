"""Compact JWS (RFC 7515 §7.1) for Short Form Reports: parse with ``joserfc``, sign and verify
with :mod:`ironroot.crypto`.

``joserfc`` splits the token, checks the base64url segments strictly, enforces size limits and
checks the registered header parameters (types, ``crit``); it never sees a key. The signature
check is done here: JWS ES384/ES512 signatures are the fixed-length ``r ‖ s`` that
:meth:`ironroot.crypto.PublicKey.verify` takes, over ``BASE64URL(header) || '.' ||
BASE64URL(payload)`` exactly as received. (PyJWT was the alternative; it verifies with its own
key objects and exposes no signing input without verifying, so ``joserfc``'s unverified
``extract_compact`` fits better.)

OCP allows ES384, ES512, PS384 and PS512 for SFRs; every published report is ES512. Ironroot
accepts ES384 and ES512 (RSA-PSS is not in its algorithm suite): any other ``alg`` — ``none``,
``HS256``, ``PS384``, ``RS256`` — raises ``AlgorithmNotAccepted`` before any key is touched, and
a header ``alg`` that is not the provider key's algorithm raises it too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry, extract_compact
from joserfc.util import urlsafe_b64decode, urlsafe_b64encode

from ironroot.crypto import Algorithm, PublicKey, Signer
from ironroot.errors import AlgorithmNotAccepted, LimitExceeded, MalformedReport
from ironroot.safe._keys import ProviderKeys
from ironroot.safe._model import DEFAULT_SAFE_LIMITS, SafeLimits, load_json

__all__ = ["ACCEPTED_JWS_ALGORITHMS", "CompactJws", "parse_compact_jws", "sign_compact_jws"]

ACCEPTED_JWS_ALGORITHMS: Final = frozenset(("ES384", "ES512"))
_MAX_HEADER: Final = 4096
_MAX_SIGNATURE: Final = 1024


def _registry(limits: SafeLimits) -> JWSRegistry:
    registry = JWSRegistry(algorithms=sorted(ACCEPTED_JWS_ALGORITHMS), strict_check_header=True)
    registry.max_header_length = _MAX_HEADER
    registry.max_payload_length = limits.max_report_bytes * 4 // 3 + 4
    registry.max_signature_length = _MAX_SIGNATURE
    return registry


@dataclass(frozen=True, slots=True)
class CompactJws:
    """A parsed, not yet verified compact JWS."""

    header: Mapping[str, object]
    payload: bytes
    signing_input: bytes
    signature: bytes
    alg: str
    kid: str
    typ: str | None

    def verify(self, providers: ProviderKeys) -> PublicKey:
        """Check the signature with the key ``kid`` names; return that key.

        ``AlgorithmNotAccepted`` for an ``alg`` outside ES384/ES512 or not the key's;
        ``UnknownIssuer`` if no provider key answers to ``kid``; ``BadSignature`` otherwise.
        """
        if self.alg not in ACCEPTED_JWS_ALGORITHMS:
            raise AlgorithmNotAccepted(f"JWS alg {self.alg!r} is not accepted (ES384, ES512)")
        key = providers.lookup(self.kid)
        if key.algorithm != Algorithm.from_label(self.alg):
            raise AlgorithmNotAccepted(
                f"JWS alg is {self.alg}, the key for {self.kid!r} is {key.algorithm.label}"
            )
        key.verify(self.signature, self.signing_input)
        return key


def parse_compact_jws(data: bytes, limits: SafeLimits = DEFAULT_SAFE_LIMITS) -> CompactJws:
    """Split and decode a compact JWS (surrounding whitespace allowed); no trust decisions.

    Raises ``MalformedReport`` (``LimitExceeded`` for sizes) for anything that is not three
    strict base64url segments with a JSON header holding text ``alg`` and ``kid``.
    """
    if not isinstance(data, bytes | bytearray):
        raise MalformedReport("a JWS must be bytes")
    if len(data) > limits.max_report_bytes * 4 // 3 + _MAX_HEADER + _MAX_SIGNATURE:
        raise LimitExceeded(f"JWS of {len(data)} bytes exceeds the report size limit")
    token = bytes(data).strip()
    registry = _registry(limits)
    try:
        obj = extract_compact(token, registry=registry)
        header = obj.headers()
        # joserfc decodes the header with a last-member-wins ``json.loads``: decode it again,
        # strictly, so that a header such as ``{"alg":"none","alg":"ES512"}`` (which another
        # verifier may read as its first member) is refused rather than read one way here.
        load_json(urlsafe_b64decode(obj.segments["header"]), limits, "JWS header")
        if not isinstance(header, dict):
            raise MalformedReport("JWS header must be a JSON object")
        registry.check_header(header)
        signature = urlsafe_b64decode(obj.segments["signature"])
    except MalformedReport:
        raise
    except JoseError as exc:
        detail = f"not a compact JWS: {exc.error}: {exc.description or ''}".rstrip(": ")
        if exc.error == "exceeded_size":
            raise LimitExceeded(detail) from exc
        raise MalformedReport(detail) from exc
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        # binascii.Error (padding, the standard alphabet) says nothing of itself
        detail = str(exc) or "a segment is not strict unpadded base64url"
        raise MalformedReport(f"not a compact JWS: {detail}") from exc
    alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
    if not isinstance(alg, str) or not alg:
        raise MalformedReport("JWS header alg must be text")
    if not isinstance(kid, str) or not kid:
        raise MalformedReport("JWS header kid must name the review provider")
    if typ is not None and not isinstance(typ, str):
        raise MalformedReport("JWS header typ must be text")
    if "crit" in header:
        raise MalformedReport("JWS header crit names extensions this verifier does not process")
    return CompactJws(
        header=MappingProxyType(dict(header)),
        payload=obj.payload,
        signing_input=obj.segments["header"] + b"." + obj.segments["payload"],
        signature=signature,
        alg=alg,
        kid=kid,
        typ=typ,
    )


def sign_compact_jws(payload: bytes, signer: Signer, kid: str, *, typ: str = "JWT") -> bytes:
    """Sign ``payload`` as a compact JWS with header ``{"alg", "kid", "typ"}``."""
    alg = signer.algorithm.label
    if alg not in ACCEPTED_JWS_ALGORITHMS:
        raise AlgorithmNotAccepted(f"SFRs are signed with ES384 or ES512, not {alg}")
    if not kid:
        raise MalformedReport("the kid must name the review provider")
    header = json.dumps({"alg": alg, "kid": kid, "typ": typ}, separators=(",", ":"))
    signing_input = urlsafe_b64encode(header.encode("utf-8")) + b"." + urlsafe_b64encode(payload)
    return signing_input + b"." + urlsafe_b64encode(signer.sign(signing_input))
