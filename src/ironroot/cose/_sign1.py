"""COSE_Sign1 (RFC 9052 §4.2): parse, encode, sign and verify single-signer messages.

A message is parsed once into a frozen :class:`Sign1`. The protected header is kept as the
exact bytes received (the signature covers them) beside its decoded map. The Sig_structure
(RFC 9052 §4.4) is built directly from those bytes, without re-encoding anything.

Header rules enforced on every message: labels are integers or text; no label appears in both
buckets; ``alg`` (1) and ``crit`` (2) are protected; ``crit`` is a non-empty array naming
labels present in the protected header.

Critical headers: :meth:`Sign1.verify` refuses (``MalformedInput``) a message whose protected
``crit`` names a label other than ``alg`` unless the parser that made the :class:`Sign1` processes
it (``understood``: a Signed Statement's or a receipt's headers), RFC 9052 §3.1; a bare
:meth:`Sign1.decode` understands none, so a caller acting on a message it parsed generically
never acts on one whose signer required a header to be enforced.

Algorithm checks in :meth:`Sign1.verify`: the verifier's algorithm must be the message's
protected ``alg``; a mismatch raises ``AlgorithmNotAccepted`` (not ``BadSignature``) because
it is a key/algorithm binding failure, not evidence of a tampered signature, and callers map it
to SCRAPI's "Bad Signature Algorithm". EdDSA (-8) and Ed25519 (-19) are the same algorithm
over an Ed25519 key (RFC 9864) and are accepted for each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import cbor2

from ironroot.cose._cbor import DEFAULT_LIMITS, Limits, _head, encode_bstr, encode_cbor
from ironroot.cose._headers import ALG
from ironroot.cose._message import (
    EMPTY_MAP,
    Headers,
    check_headers,
    check_understood,
    compatible,
    decode_tagged,
    encode_message,
    payload_to_sign,
    protected_map,
    signer_header,
)
from ironroot.crypto import Algorithm, Signer, Verifier
from ironroot.errors import AlgorithmNotAccepted, MalformedInput

__all__ = ["COSE_SIGN1_TAG", "Sign1", "sign1"]

COSE_SIGN1_TAG: Final = 18
_SIG1_CONTEXT: Final = b"\x6aSignature1"  # the text "Signature1", CBOR-encoded


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


def decode_sign1(
    data: bytes, limits: Limits, require_tag: bool, error: type[MalformedInput]
) -> Sign1:
    """Parse a COSE_Sign1, raising ``error`` (the caller's layer error) for what is wrong."""
    protected_bytes, unprotected, payload, signature = decode_tagged(
        data, limits, tag=COSE_SIGN1_TAG, name="COSE_Sign1", require_tag=require_tag, error=error
    )
    if not isinstance(protected_bytes, bytes):
        raise error("protected header must be a byte string")
    if not isinstance(unprotected, Mapping):
        raise error("unprotected header must be a map")
    if payload is not None and not isinstance(payload, bytes):
        raise error("payload must be a byte string or nil")
    if not isinstance(signature, bytes):
        raise error("signature must be a byte string")
    protected = protected_map(protected_bytes, limits, error)
    check_headers(protected, unprotected, error)
    return Sign1(
        protected_bytes=protected_bytes,
        protected=protected,
        unprotected=MappingProxyType(dict(unprotected)) if unprotected else EMPTY_MAP,
        payload=payload,
        signature=signature,
    )


def unchecked_protected_header(data: bytes) -> Mapping[object, object] | None:
    """The protected header of ``data`` read as a COSE_Sign1 (tagged 18 or not) by a plain
    CBOR decode, nothing else checked: for bytes the strict parse refused, where a reader
    still looks at what they name (the log monitor their CWT claims, the firmware reader an
    LMS-leaves header). ``None`` when they are not CBOR, not a four-item array, when its first
    item is not a non-empty byte string, or when that does not decode to a map; it never
    raises. Not a message's header to act on: nothing here is verified."""
    try:
        message = cbor2.loads(data)
        if isinstance(message, cbor2.CBORTag) and message.tag == COSE_SIGN1_TAG:
            message = message.value
        if not isinstance(message, list | tuple) or len(message) != 4:
            return None
        protected = message[0]
        header = cbor2.loads(protected) if isinstance(protected, bytes) and protected else None
    except (Exception, RecursionError):  # hostile CBOR of any kind: no header to read
        return None
    return header if isinstance(header, Mapping) else None


@dataclass(frozen=True, slots=True)
class Sign1(Headers):
    """A parsed COSE_Sign1. ``protected_bytes`` are exactly as received (they are signed)."""

    payload: bytes | None
    signature: bytes
    understood: frozenset[object] = field(default=frozenset(), compare=False, repr=False)
    """Header labels the parser that made this message processes (beside ``alg``): those its
    ``crit`` may name (module docs)."""

    @classmethod
    def decode(
        cls, data: bytes, limits: Limits = DEFAULT_LIMITS, *, require_tag: bool = True
    ) -> Sign1:
        """Parse a COSE_Sign1; raises ``MalformedInput`` (``LimitExceeded`` for limits)."""
        return decode_sign1(data, limits, require_tag, MalformedInput)

    def encode(self) -> bytes:
        """Tag 18 around the four items, protected header bytes unchanged."""
        return encode_message(
            b"\xd2\x84",
            self.protected_bytes,
            self.unprotected,
            self.payload,
            encode_bstr(self.signature),
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
        payload = payload_to_sign(self.payload, detached_payload)
        return sig_structure(self.protected_bytes, external_aad, payload)

    def verify(self, verifier: Verifier, *, detached_payload: bytes | None = None) -> None:
        """Return ``None`` if the signature verifies; raise otherwise.

        ``MalformedInput`` if ``crit`` names a header outside :attr:`understood`;
        ``AlgorithmNotAccepted`` if the verifier is for another algorithm than the protected
        ``alg``; ``BadSignature`` if the signature does not verify.
        """
        check_understood(self.protected, self.understood, MalformedInput)
        alg = self.algorithm
        if not compatible(alg, verifier.algorithm):
            raise AlgorithmNotAccepted(
                f"message is signed with {alg.label}, the key is for {verifier.algorithm.label}"
            )
        verifier.verify(self.signature, self.to_be_signed(detached_payload))


def sign1(
    signer: Signer,
    payload: bytes,
    protected: Mapping[object, object],
    unprotected: Mapping[object, object] | None = None,
    *,
    detached: bool = False,
) -> Sign1:
    """Sign ``payload``; the protected ``alg`` (1) is set from ``signer.algorithm``."""
    header = signer_header(signer, protected)
    others: Mapping[object, object] = MappingProxyType(dict(unprotected or {}))
    check_headers(header, others, MalformedInput)
    protected_bytes = encode_cbor(header)
    signature = signer.sign(sig_structure(protected_bytes, b"", payload))
    return Sign1(
        protected_bytes=protected_bytes,
        protected=MappingProxyType(header),
        unprotected=others,
        payload=None if detached else payload,
        signature=signature,
    )
