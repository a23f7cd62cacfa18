"""COSE_Sign (RFC 9052 §4.1): parse, encode, sign and verify multi-signer messages (tag 98).

``COSE_Sign = [protected, unprotected, payload, [+ COSE_Signature]]`` and
``COSE_Signature = [protected, unprotected, signature]``. Each signature covers
``["Signature", body_protected, sign_protected, external_aad, payload]`` (RFC 9052 §4.4); the
structure is built from the protected header bytes exactly as received.

The header rules of :mod:`ironroot.cose._message` hold for the body and for every signer:
integer or text labels, no label in both buckets, ``alg`` and ``crit`` protected.

Critical headers: :meth:`CoseSign.verify_signature` refuses (``MalformedInput``) a body or
signer ``crit`` naming a label other than ``alg`` (RFC 9052 §3.1: nothing here processes one).

Algorithm: each signer's ``alg`` (1) normally sits in that signer's protected header. RFC 9052
lets it be absent when the key settles it, and real messages do that (the OCP SAFE CoRIM reports
signed with Azure Key Vault carry only a ``kid``). Ironroot keys are bound to exactly one
algorithm (a P-521 key is ES512 and nothing else), so a signer without ``alg`` is verified with
the key's own algorithm and cannot be confused into another one; a signer whose ``alg`` names
another algorithm than the key raises ``AlgorithmNotAccepted``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeAlias

from ironroot.cose._cbor import DEFAULT_LIMITS, Limits, _head, encode_bstr, encode_cbor
from ironroot.cose._headers import ALG, KID
from ironroot.cose._message import (
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

__all__ = ["COSE_SIGN_TAG", "CoseSign", "CoseSignature", "cose_sign"]

COSE_SIGN_TAG: Final = 98
_SIG_CONTEXT: Final = b"\x69Signature"  # the text "Signature", CBOR-encoded
_HeaderPair: TypeAlias = tuple[Mapping[object, object], Mapping[object, object]]


def _sig_structure(
    body_protected: bytes, sign_protected: bytes, external_aad: bytes, payload: bytes
) -> bytes:
    """``["Signature", body_protected, sign_protected, external_aad, payload]``."""
    return b"".join(
        (
            b"\x85",
            _SIG_CONTEXT,
            encode_bstr(body_protected),
            encode_bstr(sign_protected),
            encode_bstr(external_aad),
            _head(2, len(payload)),
            payload,
        )
    )


@dataclass(frozen=True, slots=True)
class CoseSignature(Headers):
    """One signer of a COSE_Sign. ``protected_bytes`` are exactly as received (they are signed)."""

    signature: bytes

    @property
    def algorithm(self) -> Algorithm | None:
        """The signer's protected ``alg``, or ``None`` when the key alone settles it."""
        if ALG not in self.protected:
            return None
        return Algorithm.from_cose_id(self.protected[ALG])

    @property
    def kid(self) -> bytes | None:
        """The signer's ``kid`` (4), protected or unprotected; ``None`` if absent."""
        kid = self.protected.get(KID, self.unprotected.get(KID))
        if kid is None:
            return None
        if not isinstance(kid, bytes) or not kid:
            raise MalformedInput("kid (4) must be a non-empty byte string")
        return kid

    def encode(self) -> bytes:
        return b"".join(
            (
                b"\x83",
                encode_bstr(self.protected_bytes),
                encode_cbor(self.unprotected),
                encode_bstr(self.signature),
            )
        )


def _decode_signature(
    item: object, limits: Limits, error: type[MalformedInput], index: int
) -> CoseSignature:
    what = f"signature {index}"
    if not isinstance(item, list | tuple) or len(item) != 3:
        raise error(f"{what} must be an array of three items")
    protected_bytes, unprotected, signature = item
    protected = protected_map(protected_bytes, limits, error, what)
    if not isinstance(unprotected, Mapping):
        raise error(f"{what} unprotected header must be a map")
    if not isinstance(signature, bytes):
        raise error(f"{what} signature must be a byte string")
    check_headers(protected, unprotected, error)
    assert isinstance(protected_bytes, bytes)  # checked by _protected_map
    return CoseSignature(
        protected_bytes=protected_bytes,
        protected=protected,
        unprotected=MappingProxyType(dict(unprotected)),
        signature=signature,
    )


def _decode_sign(
    data: bytes, limits: Limits, require_tag: bool, error: type[MalformedInput]
) -> CoseSign:
    protected_bytes, unprotected, payload, signers = decode_tagged(
        data, limits, tag=COSE_SIGN_TAG, name="COSE_Sign", require_tag=require_tag, error=error
    )
    protected = protected_map(protected_bytes, limits, error, "body")
    if not isinstance(unprotected, Mapping):
        raise error("unprotected header must be a map")
    if payload is not None and not isinstance(payload, bytes):
        raise error("payload must be a byte string or nil")
    if not isinstance(signers, list | tuple) or not signers:
        raise error("COSE_Sign needs a non-empty array of signatures")
    check_headers(protected, unprotected, error)
    assert isinstance(protected_bytes, bytes)  # checked by _protected_map
    return CoseSign(
        protected_bytes=protected_bytes,
        protected=protected,
        unprotected=MappingProxyType(dict(unprotected)),
        payload=payload,
        signatures=tuple(
            _decode_signature(item, limits, error, i) for i, item in enumerate(signers)
        ),
    )


@dataclass(frozen=True, slots=True)
class CoseSign(Headers):
    """A parsed COSE_Sign: body headers, payload and one or more signers."""

    payload: bytes | None
    signatures: tuple[CoseSignature, ...]

    @classmethod
    def decode(
        cls, data: bytes, limits: Limits = DEFAULT_LIMITS, *, require_tag: bool = True
    ) -> CoseSign:
        """Parse a COSE_Sign; raises ``MalformedInput`` (``LimitExceeded`` for limits)."""
        return _decode_sign(data, limits, require_tag, MalformedInput)

    def encode(self) -> bytes:
        """Tag 98 around the four items; every protected header's bytes unchanged."""
        signers = b"".join((_head(4, len(self.signatures)), *(s.encode() for s in self.signatures)))
        return encode_message(
            b"\xd8\x62\x84", self.protected_bytes, self.unprotected, self.payload, signers
        )

    def to_be_signed(
        self,
        signature: CoseSignature,
        detached_payload: bytes | None = None,
        external_aad: bytes = b"",
    ) -> bytes:
        """The Sig_structure one signer signed; a detached payload iff the message has none."""
        payload = payload_to_sign(self.payload, detached_payload)
        return _sig_structure(
            self.protected_bytes, signature.protected_bytes, external_aad, payload
        )

    def verify_signature(
        self,
        signature: CoseSignature,
        verifier: Verifier,
        *,
        detached_payload: bytes | None = None,
    ) -> None:
        """Return ``None`` if ``signature`` (one of this message's signers) verifies.

        ``MalformedInput`` if the body's or the signer's ``crit`` names a header other than
        ``alg``; ``AlgorithmNotAccepted`` if the signer's ``alg`` is not the verifier's
        algorithm, ``UnsupportedAlgorithm`` if it is unknown, ``BadSignature`` if it does not
        verify.
        """
        if signature not in self.signatures:
            raise MalformedInput("the signature is not one of this message's signers")
        check_understood(self.protected, (), MalformedInput)
        check_understood(signature.protected, (), MalformedInput)
        alg = signature.algorithm
        if alg is not None and not compatible(alg, verifier.algorithm):
            raise AlgorithmNotAccepted(
                f"signer uses {alg.label}, the key is for {verifier.algorithm.label}"
            )
        verifier.verify(signature.signature, self.to_be_signed(signature, detached_payload))


def cose_sign(
    signers: Sequence[Signer],
    payload: bytes,
    protected: Mapping[object, object] | None = None,
    unprotected: Mapping[object, object] | None = None,
    *,
    signer_headers: Sequence[_HeaderPair] | None = None,
    detached: bool = False,
) -> CoseSign:
    """Sign ``payload`` once per signer.

    Each signer's protected header gets ``alg`` (1) from ``signer.algorithm``; extra headers
    for signer *i* come from ``signer_headers[i]`` as ``(protected, unprotected)``.
    """
    if not signers:
        raise MalformedInput("COSE_Sign needs at least one signer")
    if signer_headers is not None and len(signer_headers) != len(signers):
        raise MalformedInput("signer_headers must have one entry per signer")
    body: dict[object, object] = dict(protected or {})
    body_unprotected: Mapping[object, object] = MappingProxyType(dict(unprotected or {}))
    check_headers(body, body_unprotected, MalformedInput)
    body_bytes = encode_cbor(body) if body else b""
    made: list[CoseSignature] = []
    for i, signer in enumerate(signers):
        extra_p, extra_u = signer_headers[i] if signer_headers is not None else ({}, {})
        header = signer_header(signer, extra_p)
        others: Mapping[object, object] = MappingProxyType(dict(extra_u))
        check_headers(header, others, MalformedInput)
        sign_bytes = encode_cbor(header)
        sig = signer.sign(_sig_structure(body_bytes, sign_bytes, b"", payload))
        made.append(
            CoseSignature(
                protected_bytes=sign_bytes,
                protected=MappingProxyType(header),
                unprotected=others,
                signature=sig,
            )
        )
    return CoseSign(
        protected_bytes=body_bytes,
        protected=MappingProxyType(body),
        unprotected=body_unprotected,
        payload=None if detached else payload,
        signatures=tuple(made),
    )
