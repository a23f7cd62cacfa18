"""Hybrid (classical + post-quantum) signatures for firmware manifests and quotes.

A :class:`HybridSigner` signs the *same* bytes with a classical key (ECDSA or EdDSA) and a
post-quantum key (ML-DSA or HSS-LMS) and returns one value, the deterministic CBOR (RFC 8949
§4.2.1; an array of integers and byte strings has exactly one shortest encoding) of::

    [classical_alg, classical_sig, pq_alg, pq_sig]

where each ``alg`` is the COSE algorithm id and each ``sig`` the COSE-encoded signature (ECDSA
as fixed-width r ‖ s). :class:`HybridVerifier` accepts the value only if it is exactly that
encoding, both algorithm ids are the ones its keys are bound to, and *both* signatures verify;
each failure raises :class:`~ironroot.errors.BadSignature` naming the half that failed. So the
pair stays secure while either algorithm does.

The hybrid key id is ``SHA-256(CBOR([classical_kid, pq_kid]))`` over the two RFC 9679 kids.

There is no registered COSE algorithm for such a pair, so the hybrid types expose their two
algorithms rather than one ``algorithm``: COSE users attach two separate signatures (two
COSE_Signature entries, or two receipts) instead, and use this type only for Ironroot's own
formats (the firmware manifest, the RoT quote).
"""

from __future__ import annotations

import hashlib
from typing import Final

import cbor2

from ironroot.crypto._algorithms import Algorithm
from ironroot.crypto._interface import Signer, Verifier
from ironroot.errors import BadSignature, UnsupportedAlgorithm

__all__ = ["HybridSigner", "HybridVerifier", "hybrid_kid"]

MAX_HYBRID_SIGNATURE_BYTES: Final = 256 * 1024


def hybrid_kid(classical_kid: bytes, pq_kid: bytes) -> bytes:
    """SHA-256 of the CBOR array ``[classical_kid, pq_kid]``."""
    return hashlib.sha256(cbor2.dumps([classical_kid, pq_kid])).digest()


def _is_cbor_int(value: object) -> bool:
    """A CBOR integer (major type 0 or 1), not a bignum: ``cbor2`` decodes tags 2 and 3 to
    ``int`` too, and one of 20,000 bits made the error message raise ``ValueError``."""
    return type(value) is int and -(1 << 64) <= value < 1 << 64


def _check_pair(classical: Algorithm, pq: Algorithm) -> None:
    if classical.is_post_quantum:
        raise UnsupportedAlgorithm(f"{classical.label} is not a classical algorithm")
    if not pq.is_post_quantum:
        raise UnsupportedAlgorithm(f"{pq.label} is not a post-quantum algorithm")


class HybridVerifier:
    """Verifies a hybrid signature: both halves must verify."""

    __slots__ = ("_classical", "_kid", "_pq")

    def __init__(self, classical: Verifier, pq: Verifier) -> None:
        _check_pair(classical.algorithm, pq.algorithm)
        self._classical = classical
        self._pq = pq
        self._kid = hybrid_kid(classical.kid, pq.kid)

    @property
    def classical(self) -> Verifier:
        return self._classical

    @property
    def pq(self) -> Verifier:
        return self._pq

    @property
    def algorithms(self) -> tuple[Algorithm, Algorithm]:
        """(classical, post-quantum)."""
        return self._classical.algorithm, self._pq.algorithm

    @property
    def kid(self) -> bytes:
        return self._kid

    def verify(self, signature: bytes, data: bytes) -> None:
        """Return ``None`` if both halves verify over ``data``; raise ``BadSignature``."""
        if not isinstance(signature, bytes) or len(signature) > MAX_HYBRID_SIGNATURE_BYTES:
            raise BadSignature("hybrid signature has the wrong size")
        try:
            value = cbor2.loads(signature)
        except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
            raise BadSignature("hybrid signature is not CBOR") from exc
        if (
            not isinstance(value, list)
            or len(value) != 4
            or not all(_is_cbor_int(value[i]) for i in (0, 2))
            or not all(isinstance(value[i], bytes) for i in (1, 3))
        ):
            raise BadSignature("hybrid signature is not [alg, sig, alg, sig]")
        if cbor2.dumps(value) != signature:
            raise BadSignature("hybrid signature is not deterministically encoded")
        classical_alg, classical_sig, pq_alg, pq_sig = value
        for role, verifier, alg, sig in (
            ("classical", self._classical, classical_alg, classical_sig),
            ("post-quantum", self._pq, pq_alg, pq_sig),
        ):
            if alg != verifier.algorithm.cose_id:
                raise BadSignature(
                    f"{role} half names algorithm {alg}, expected {verifier.algorithm.label}"
                )
            try:
                verifier.verify(sig, data)
            except BadSignature as exc:
                raise BadSignature(
                    f"{role} {verifier.algorithm.label} half does not verify: {exc.detail}"
                ) from exc

    def __repr__(self) -> str:
        a, b = self.algorithms
        return f"HybridVerifier({a.label}+{b.label}, kid={self._kid.hex()[:16]}…)"


class HybridSigner:
    """Signs the same data with a classical and a post-quantum :class:`Signer`."""

    __slots__ = ("_classical", "_pq", "_verifier")

    def __init__(self, classical: Signer, pq: Signer) -> None:
        _check_pair(classical.algorithm, pq.algorithm)
        self._classical = classical
        self._pq = pq
        self._verifier = HybridVerifier(classical.verifier(), pq.verifier())

    @property
    def classical(self) -> Signer:
        return self._classical

    @property
    def pq(self) -> Signer:
        return self._pq

    @property
    def algorithms(self) -> tuple[Algorithm, Algorithm]:
        """(classical, post-quantum)."""
        return self._verifier.algorithms

    @property
    def kid(self) -> bytes:
        return self._verifier.kid

    def verifier(self) -> HybridVerifier:
        return self._verifier

    def sign(self, data: bytes) -> bytes:
        """``CBOR([classical_alg, classical_sig, pq_alg, pq_sig])`` over the same ``data``."""
        classical_sig = self._classical.sign(data)
        pq_sig = self._pq.sign(data)
        return cbor2.dumps(
            [self._classical.algorithm.cose_id, classical_sig, self._pq.algorithm.cose_id, pq_sig]
        )

    def __repr__(self) -> str:
        a, b = self.algorithms
        return f"HybridSigner({a.label}+{b.label}, kid={self.kid.hex()[:16]}…)"
