"""COSE_Sign1 (RFC 9052 §4.2): parse, encode, sign and verify single-signer messages.

A message is parsed once into a frozen :class:`Sign1`. The protected header is kept as the
exact bytes received (the signature covers them) beside its decoded map. The Sig_structure
(RFC 9052 §4.4) is built directly from those bytes, without re-encoding anything.

Header rules enforced on every message: labels are integers or text; no label appears in both
buckets; ``alg`` (1) and ``crit`` (2) are protected; ``crit`` is a non-empty array naming
labels present in the protected header.

Algorithm checks in :meth:`Sign1.verify`: the verifier's algorithm must be the message's
protected ``alg``; a mismatch raises ``AlgorithmNotAccepted`` (not ``BadSignature``) because
it is a key/algorithm binding failure, not evidence of a tampered signature, and callers map it
to SCRAPI's "Bad Signature Algorithm". EdDSA (-8) and Ed25519 (-19) are the same algorithm
over an Ed25519 key (RFC 9864) and are accepted for each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import cbor2

from ironroot.cose._cbor import DEFAULT_LIMITS, Limits, _head, decode_cbor, encode_bstr, encode_cbor
from ironroot.cose._headers import ALG, CRIT
from ironroot.crypto import Algorithm, Signer, Verifier
from ironroot.errors import (
    AlgorithmNotAccepted,
    LimitExceeded,
    MalformedInput,
    UnsupportedAlgorithm,
)

__all__ = ["COSE_SIGN1_TAG", "Sign1", "sign1"]

COSE_SIGN1_TAG: Final = 18
_SIG1_CONTEXT: Final = b"\x6aSignature1"  # the text "Signature1", CBOR-encoded
_EMPTY_MAP: Final[Mapping[object, object]] = MappingProxyType({})
_EDDSA_PAIR: Final = frozenset((Algorithm.EDDSA, Algorithm.ED25519))


def sig_structure(protected_bytes: bytes, external_aad: bytes, payload: bytes) -> bytes:
    """``["Signature1", protected, external_aad, payload]``, deterministically encoded."""
    return b"".join(
        (
            b"\x84",
            _SIG1_CONTEXT,
            encode_bstr(protected_bytes),
            encode_bstr(external_aad),
            _head(2, len(payload)),
            payload,
        )
    )


def _is_label(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def _fail(error: type[MalformedInput], exc: MalformedInput) -> MalformedInput:
    """Re-type a generic parse error as the caller's layer error; size limits stay as they are."""
    if isinstance(exc, (LimitExceeded, error)):
        return exc
    return error(exc.detail)


def _decode_sign1(
    data: bytes, limits: Limits, require_tag: bool, error: type[MalformedInput]
) -> Sign1:
    try:
        obj = decode_cbor(data, limits)
    except MalformedInput as exc:
        raise _fail(error, exc) from exc
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != COSE_SIGN1_TAG:
            raise error(f"CBOR tag {obj.tag} is not COSE_Sign1 (18)")
        obj = obj.value
    elif require_tag:
        raise error("COSE_Sign1 must carry CBOR tag 18")
    if not isinstance(obj, list | tuple) or len(obj) != 4:
        raise error("COSE_Sign1 must be an array of four items")
    protected_bytes, unprotected, payload, signature = obj
    if not isinstance(protected_bytes, bytes):
        raise error("protected header must be a byte string")
    if not isinstance(unprotected, Mapping):
        raise error("unprotected header must be a map")
    if payload is not None and not isinstance(payload, bytes):
        raise error("payload must be a byte string or nil")
    if not isinstance(signature, bytes):
        raise error("signature must be a byte string")
    protected: Mapping[object, object]
    if protected_bytes in (b"", b"\xa0"):
        protected = _EMPTY_MAP
    else:
        try:
            decoded = decode_cbor(protected_bytes, limits)
        except MalformedInput as exc:
            raise _fail(error, exc) from exc
        if not isinstance(decoded, Mapping):
            raise error("protected header must encode a map")
        protected = MappingProxyType(dict(decoded))
    _check_headers(protected, unprotected, error)
    return Sign1(
        protected_bytes=protected_bytes,
        protected=protected,
        unprotected=MappingProxyType(dict(unprotected)),
        payload=payload,
        signature=signature,
    )


def _check_headers(
    protected: Mapping[object, object],
    unprotected: Mapping[object, object],
    error: type[MalformedInput],
) -> None:
    for label in protected:
        if not _is_label(label):
            raise error("header labels must be integers or text")
    for label in unprotected:
        if not _is_label(label):
            raise error("header labels must be integers or text")
        if label in protected:
            raise error(f"header {label!r} appears in both the protected and unprotected header")
    if ALG in unprotected:
        raise error("alg (1) must be in the protected header")
    if CRIT in unprotected:
        raise error("crit (2) must be in the protected header")
    if CRIT in protected:  # present, whatever its value: null is not an absent crit
        check_crit(protected, error)


def check_crit(protected: Mapping[object, object], error: type[MalformedInput]) -> list[object]:
    """The labels of the protected ``crit`` (2): RFC 9052 §3.1 makes it a non-empty array of
    integer or text labels, each present in the protected header. ``[]`` when absent; any
    other value (null, a map, a number, an empty array) raises ``error``."""
    if CRIT not in protected:
        return []
    crit = protected[CRIT]
    if not isinstance(crit, list | tuple) or not crit:
        raise error("crit (2) must be a non-empty array of header labels")
    for label in crit:
        if not _is_label(label):
            raise error("crit (2) labels must be integers or text")
        if label not in protected:
            raise error(f"crit names {label!r}, which is not in the protected header")
    return list(crit)


@dataclass(frozen=True, slots=True)
class Sign1:
    """A parsed COSE_Sign1. ``protected_bytes`` are exactly as received (they are signed)."""

    protected_bytes: bytes
    protected: Mapping[object, object]
    unprotected: Mapping[object, object]
    payload: bytes | None
    signature: bytes

    @classmethod
    def decode(
        cls, data: bytes, limits: Limits = DEFAULT_LIMITS, *, require_tag: bool = True
    ) -> Sign1:
        """Parse a COSE_Sign1; raises ``MalformedInput`` (``LimitExceeded`` for limits)."""
        return _decode_sign1(data, limits, require_tag, MalformedInput)

    def encode(self) -> bytes:
        """Tag 18 around the four items, protected header bytes unchanged."""
        return b"".join(
            (
                b"\xd2\x84",
                encode_bstr(self.protected_bytes),
                encode_cbor(self.unprotected),
                b"\xf6" if self.payload is None else encode_bstr(self.payload),
                encode_bstr(self.signature),
            )
        )

    @property
    def algorithm(self) -> Algorithm:
        """Protected ``alg``: ``MalformedInput`` if absent, ``UnsupportedAlgorithm`` if unknown."""
        if ALG not in self.protected:
            raise MalformedInput("protected header lacks alg (1)")
        return Algorithm.from_cose_id(self.protected[ALG])

    def to_be_signed(
        self, detached_payload: bytes | None = None, external_aad: bytes = b""
    ) -> bytes:
        """The Sig_structure bytes; a detached payload must be given iff the message has none."""
        if self.payload is None:
            if detached_payload is None:
                raise MalformedInput("the payload is detached: pass it to verify")
            payload = detached_payload
        else:
            if detached_payload is not None:
                raise MalformedInput("the payload is attached: a detached payload is not allowed")
            payload = self.payload
        return sig_structure(self.protected_bytes, external_aad, payload)

    def verify(self, verifier: Verifier, *, detached_payload: bytes | None = None) -> None:
        """Return ``None`` if the signature verifies; raise otherwise.

        ``AlgorithmNotAccepted`` if the verifier is for another algorithm than the protected
        ``alg``; ``BadSignature`` if the signature does not verify.
        """
        alg = self.algorithm
        if not _compatible(alg, verifier.algorithm):
            raise AlgorithmNotAccepted(
                f"message is signed with {alg.label}, the key is for {verifier.algorithm.label}"
            )
        verifier.verify(self.signature, self.to_be_signed(detached_payload))


def _compatible(message: Algorithm, key: Algorithm) -> bool:
    return message == key or (message in _EDDSA_PAIR and key in _EDDSA_PAIR)


def sign1(
    signer: Signer,
    payload: bytes,
    protected: Mapping[object, object],
    unprotected: Mapping[object, object] | None = None,
    *,
    detached: bool = False,
) -> Sign1:
    """Sign ``payload``; the protected ``alg`` (1) is set from ``signer.algorithm``."""
    header: dict[object, object] = {ALG: signer.algorithm.cose_id}
    for label, value in protected.items():
        if label == ALG and value != signer.algorithm.cose_id:
            raise UnsupportedAlgorithm(f"protected alg {value!r} is not the signer's algorithm")
        header[label] = value
    others: Mapping[object, object] = MappingProxyType(dict(unprotected or {}))
    _check_headers(header, others, MalformedInput)
    protected_bytes = encode_cbor(header)
    signature = signer.sign(sig_structure(protected_bytes, b"", payload))
    return Sign1(
        protected_bytes=protected_bytes,
        protected=MappingProxyType(header),
        unprotected=others,
        payload=None if detached else payload,
        signature=signature,
    )
