"""COSE Receipts (RFC 9942) for the RFC9162_SHA256 verifiable data structure.

A receipt is a COSE_Sign1 whose payload is detached: the Merkle tree root, which the verifier
recomputes from the entry and the inclusion proof. The service signs once per integrated batch:
the protected header bytes ``P`` and the signature over ``["Signature1", P, h'', root]`` are the
same for every entry of that root, and each entry's receipt differs only in its unprotected
``vdp`` (396) map, ``{-1: [bstr .cbor [tree_size, leaf_index, [* hash]]]}``.

RFC 9942 writes the inclusion path as ``[+ bstr]``; the tree of size one has an empty path, so
an empty path is accepted (and produced) for that tree only; the Merkle check requires the
path length that the size and index imply. Consistency proofs (``-2``) are parsed and kept
(``Receipt.parse``, for inspection); verifying one needs the old tree's root, which an
inclusion receipt does not carry, so :func:`verify_receipt` refuses a receipt that holds any:
nothing it returns as verified carries a proof nobody checked.

The protected CWT claims (15) are the service's word about the receipt, and a verifier holds
the service to them once the signature verifies: with ``issuer`` (the transparency service the
keys belong to, RFC 9943: a receipt's ``iss`` names the service that issued it), ``iss`` must
be exactly that service; with ``now``, the receipt time ``iat`` may be at most ``leeway``
seconds ahead of it (another clock's skew; a receipt dated later was not issued yet, or by a
clock nobody should trust), and an ``nbf`` or ``exp`` the service put there must hold. Claims
are parsed on every receipt (``iss`` non-empty text, ``iat`` an unsigned integer, ``nbf`` and
``exp`` integers); other claims are carried, not judged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import cbor2

from ironroot.cose._cbor import DEFAULT_LIMITS, Limits, decode_cbor, encode_bstr, encode_cbor
from ironroot.cose._headers import (
    ALG,
    CRIT,
    CWT_CLAIMS,
    CWT_EXP,
    CWT_IAT,
    CWT_ISS,
    CWT_NBF,
    KID,
    VDP,
    VDP_CONSISTENCY,
    VDP_INCLUSION,
    VDS,
    VDS_RFC9162_SHA256,
)
from ironroot.cose._message import check_understood
from ironroot.cose._sign1 import Sign1, decode_sign1, sig_structure
from ironroot.crypto import Algorithm, Verifier, check_cbor_labels
from ironroot.errors import (
    InvalidProof,
    LimitExceeded,
    MalformedInput,
    MalformedReceipt,
    UnknownIssuer,
    UnsupportedAlgorithm,
    VerificationFailed,
)
from ironroot.merkle import HASH_SIZE, leaf_hash, root_from_inclusion_proof

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "Receipt",
    "build_receipt",
    "receipt_protected_header",
    "receipt_to_be_signed",
    "verify_receipt",
]

_EMPTY_AAD: Final = b""
# The protected header parameters a receipt verifier acts on; a receipt whose crit (2) names
# any other must be rejected (RFC 9052 §3.1).
_UNDERSTOOD: Final = frozenset((ALG, CRIT, KID, CWT_CLAIMS, VDS))
_RECEIPT_LEEWAY: Final = 300
"""Seconds a receipt's ``iat`` (or ``nbf``) may be ahead of a verifier's ``now``: the service's
own default ``max_clock_skew``."""


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """An RFC 9162 inclusion proof: ``leaf_index`` in the tree of ``tree_size``."""

    tree_size: int
    leaf_index: int
    path: tuple[bytes, ...]

    def encode(self) -> bytes:
        """``[tree_size, leaf_index, [path...]]``, deterministic CBOR (the bstr contents).

        Arrays of unsigned integers and byte strings have one encoding (cbor2 always writes
        shortest heads and definite lengths), so the C encoder is used on this hot path."""
        return cbor2.dumps([self.tree_size, self.leaf_index, list(self.path)])


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """An RFC 9162 consistency proof from ``tree_size_1`` to ``tree_size_2``."""

    tree_size_1: int
    tree_size_2: int
    path: tuple[bytes, ...]


def _proof_items(raw: object, limits: Limits, what: str) -> tuple[int, int, tuple[bytes, ...]]:
    if not isinstance(raw, bytes):
        raise MalformedReceipt(f"{what} must be a byte string wrapping CBOR")
    try:
        items = decode_cbor(raw, limits)
    except LimitExceeded:
        raise
    except MalformedInput as exc:
        raise MalformedReceipt(f"{what}: {exc.detail}") from exc
    if not isinstance(items, list | tuple) or len(items) != 3:
        raise MalformedReceipt(f"{what} must be an array of three items")
    first, second, path = items
    if not _is_uint(first) or not _is_uint(second):
        raise MalformedReceipt(f"{what} sizes and indices must be unsigned integers")
    if not isinstance(path, list | tuple):
        raise MalformedReceipt(f"{what} path must be an array")
    if len(path) > limits.max_path:
        raise LimitExceeded(f"{what} path of {len(path)} hashes exceeds {limits.max_path}")
    for node in path:
        if not isinstance(node, bytes) or len(node) != HASH_SIZE:
            raise MalformedReceipt(f"{what} path hashes must be {HASH_SIZE}-byte strings")
    return first, second, tuple(path)


def _proof_list(vdp: Mapping[object, object], label: int, limits: Limits) -> tuple[object, ...]:
    if label not in vdp:
        return ()
    proofs = vdp[label]  # null too: not an absent proof list
    if not isinstance(proofs, list | tuple) or not proofs:
        raise MalformedReceipt(f"vdp {label} must be a non-empty array of proofs")
    if len(proofs) > limits.max_proofs:
        raise LimitExceeded(f"{len(proofs)} proofs exceed the limit of {limits.max_proofs}")
    return tuple(proofs)


def _claims(
    protected: Mapping[object, object],
) -> tuple[str | None, int | None, int | None, int | None]:
    """``(iss, iat, nbf, exp)`` of the protected CWT claims (15), each ``None`` when absent."""
    if CWT_CLAIMS not in protected:
        return None, None, None, None
    claims = protected[CWT_CLAIMS]  # present, whatever its value: null is not absent
    if not isinstance(claims, Mapping):
        raise MalformedReceipt("CWT claims (15) must be a map")
    # 1.0 or true would be found as iss (1) by a Python lookup: not by another verifier
    check_cbor_labels(claims, "CWT claim label", MalformedReceipt)
    iss, iat = claims.get(CWT_ISS), claims.get(CWT_IAT)
    nbf, exp = claims.get(CWT_NBF), claims.get(CWT_EXP)
    if CWT_ISS in claims and not (isinstance(iss, str) and iss):
        raise MalformedReceipt("CWT claim iss (1) must be non-empty text")
    if CWT_IAT in claims and not _is_uint(iat):
        raise MalformedReceipt("CWT claim iat (6) must be an unsigned integer")
    if CWT_NBF in claims and not _is_int(nbf):
        raise MalformedReceipt("CWT claim nbf (5) must be an integer")
    if CWT_EXP in claims and not _is_int(exp):
        raise MalformedReceipt("CWT claim exp (4) must be an integer")
    return iss, iat, nbf, exp


@dataclass(frozen=True, slots=True)
class Receipt:
    """A parsed RFC 9942 receipt (RFC9162_SHA256), not yet verified."""

    sign1: Sign1
    algorithm: Algorithm
    kid: bytes
    issuer: str | None
    iat: int | None
    inclusion_proofs: tuple[InclusionProof, ...]
    consistency_proofs: tuple[ConsistencyProof, ...] = ()
    nbf: int | None = None
    exp: int | None = None

    def check_times(self, now: float, leeway: float = _RECEIPT_LEEWAY) -> None:
        """The time claims of a receipt verified before, judged at ``now`` (POSIX seconds)
        exactly as :func:`verify_receipt` judges them (``VerificationFailed``
        ``receipt-from-the-future``, ``receipt-not-yet-valid``, ``receipt-expired``): for a
        caller that remembers a verified receipt and must still judge it at each use."""
        _check_claims(self, None, now, leeway)

    @classmethod
    def parse(cls, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Receipt:
        """Parse a receipt; every structural fault raises ``MalformedReceipt``."""
        msg = decode_sign1(data, limits, True, MalformedReceipt)
        protected = msg.protected
        if msg.payload is not None:
            raise MalformedReceipt("a receipt's payload (the tree root) must be detached")
        if ALG not in protected:
            raise MalformedReceipt("receipt protected header lacks alg (1)")
        try:
            algorithm = Algorithm.from_cose_id(protected[ALG])
        except UnsupportedAlgorithm as exc:
            raise MalformedReceipt(exc.detail, code=exc.code) from exc
        check_understood(protected, _UNDERSTOOD, MalformedReceipt)
        vds = protected.get(VDS)
        if vds is None or VDS in msg.unprotected:
            raise MalformedReceipt("receipt protected header lacks vds (395)")
        if not _is_uint(vds) or vds != VDS_RFC9162_SHA256:  # not 1.0 or true either
            raise MalformedReceipt(f"unsupported verifiable data structure {vds!r}")
        kid = protected.get(KID)
        if not isinstance(kid, bytes) or not kid:
            raise MalformedReceipt("receipt protected header needs a non-empty kid (4)")
        issuer, iat, nbf, exp = _claims(protected)
        vdp = msg.unprotected.get(VDP)
        if not isinstance(vdp, Mapping):
            raise MalformedReceipt("receipt unprotected header lacks the vdp (396) map")
        check_cbor_labels(vdp, "vdp (396) label", MalformedReceipt)
        inclusion = []
        for raw in _proof_list(vdp, VDP_INCLUSION, limits):
            size, index, path = _proof_items(raw, limits, "inclusion proof")
            if index >= size:
                raise MalformedReceipt(f"leaf index {index} is not below tree size {size}")
            inclusion.append(InclusionProof(tree_size=size, leaf_index=index, path=path))
        consistency = []
        for raw in _proof_list(vdp, VDP_CONSISTENCY, limits):
            size1, size2, path = _proof_items(raw, limits, "consistency proof")
            if size1 > size2:
                raise MalformedReceipt("consistency proof sizes are out of order")
            consistency.append(ConsistencyProof(tree_size_1=size1, tree_size_2=size2, path=path))
        if not inclusion and not consistency:
            raise MalformedReceipt("vdp (396) holds neither inclusion nor consistency proofs")
        return cls(
            sign1=dataclasses.replace(msg, understood=_UNDERSTOOD),
            algorithm=algorithm,
            kid=kid,
            issuer=issuer,
            iat=iat,
            inclusion_proofs=tuple(inclusion),
            consistency_proofs=tuple(consistency),
            nbf=nbf,
            exp=exp,
        )


def receipt_protected_header(algorithm: Algorithm, kid: bytes, issuer: str, iat: int) -> bytes:
    """``{1: alg, 4: kid, 15: {1: iss, 6: iat}, 395: 1}`` as deterministic CBOR."""
    return encode_cbor(
        {
            ALG: algorithm.cose_id,
            KID: kid,
            CWT_CLAIMS: {CWT_ISS: issuer, CWT_IAT: iat},
            VDS: VDS_RFC9162_SHA256,
        }
    )


def receipt_to_be_signed(protected_bytes: bytes, root: bytes) -> bytes:
    """``["Signature1", P, h'', root]``: the bytes the service signs once per batch."""
    return sig_structure(protected_bytes, _EMPTY_AAD, root)


# {396: {-1: [ <one bstr> ]}}: single-key maps, so the encoding is fixed up to the bstr.
_UNPROTECTED_PREFIX = encode_cbor({VDP: {VDP_INCLUSION: [b""]}})[:-1]


def build_receipt(protected_bytes: bytes, signature: bytes, proof: InclusionProof) -> bytes:
    """``18([P, {396: {-1: [bstr .cbor proof]}}, nil, signature])`` for one entry of a batch."""
    return b"".join(
        (
            b"\xd2\x84",
            encode_bstr(protected_bytes),
            _UNPROTECTED_PREFIX,
            encode_bstr(proof.encode()),
            b"\xf6",
            encode_bstr(signature),
        )
    )


def verify_receipt(
    receipt: bytes | Receipt,
    entry: bytes,
    keys: Mapping[bytes, Verifier],
    *,
    issuer: str | None = None,
    now: float | None = None,
    leeway: float = _RECEIPT_LEEWAY,
) -> Receipt:
    """Verify that ``receipt`` proves ``entry`` (a log entry) is in a tree the service signed.

    Raises ``MalformedReceipt`` (structure, vds, claims of the wrong type, consistency proofs
    beside the inclusion ones), ``UnknownIssuer`` ``untrusted-service`` (kid not in ``keys``;
    with ``issuer``, a receipt whose ``iss`` is absent or another: a receipt of a service the
    verifier does not trust, named so here once for every relying party; ``unknown-issuer``
    is a Signed Statement's issuer),
    ``InvalidProof`` (a proof that does not fit its tree, or proofs leading to different
    roots), ``AlgorithmNotAccepted`` (key and receipt algorithms differ), ``BadSignature``
    (the signature does not cover the root the proofs imply: another entry, another tree,
    a tampered proof or signature) and, with ``now`` (POSIX seconds), ``VerificationFailed``
    code ``receipt-from-the-future`` (``iat`` more than ``leeway`` seconds after ``now``),
    ``receipt-not-yet-valid`` or ``receipt-expired`` (its ``nbf`` or ``exp``). The claims are
    judged after the signature: they are the service's word only once it verifies.
    """
    parsed = receipt if isinstance(receipt, Receipt) else Receipt.parse(receipt)
    if not parsed.inclusion_proofs:
        raise MalformedReceipt("the receipt carries no inclusion proof")
    if parsed.consistency_proofs:
        # unprotected, and not checkable without the old root: refused, never passed on
        raise MalformedReceipt(
            "the receipt carries consistency proofs, which an inclusion receipt cannot verify"
        )
    verifier = keys.get(parsed.kid)
    if verifier is None:
        raise UnknownIssuer(
            "the receipt's kid is not a trusted service key", code="untrusted-service"
        )
    leaf = leaf_hash(entry)
    roots = {
        root_from_inclusion_proof(p.leaf_index, p.tree_size, leaf, p.path)
        for p in parsed.inclusion_proofs
    }
    if len(roots) != 1:
        raise InvalidProof("the receipt's inclusion proofs lead to different roots")
    parsed.sign1.verify(verifier, detached_payload=roots.pop())
    _check_claims(parsed, issuer, now, leeway)
    return parsed


def _check_claims(receipt: Receipt, issuer: str | None, now: float | None, leeway: float) -> None:
    """The verified receipt's claims against the expected ``issuer`` and the clock."""
    if issuer is not None:
        if receipt.issuer is None:
            raise UnknownIssuer(
                f"the receipt names no issuer (CWT claim iss), and the transparency service "
                f"{issuer[:200]!r} is expected",
                code="untrusted-service",
            )
        if receipt.issuer != issuer:
            raise UnknownIssuer(
                f"the receipt is issued by {receipt.issuer[:200]!r}, not by the transparency "
                f"service {issuer[:200]!r}",
                code="untrusted-service",
            )
    if now is None:
        return
    t = int(now)
    if receipt.iat is not None and receipt.iat - now > leeway:
        raise VerificationFailed(
            f"the receipt is issued at {receipt.iat} (CWT iat), {receipt.iat - t} s after now "
            f"({t}): more than the {leeway:g} s a clock may be ahead",
            code="receipt-from-the-future",
        )
    if receipt.nbf is not None and receipt.nbf - now > leeway:
        raise VerificationFailed(
            f"the receipt is not valid before {receipt.nbf} (CWT nbf; now {t})",
            code="receipt-not-yet-valid",
        )
    if receipt.exp is not None and now >= receipt.exp:
        raise VerificationFailed(
            f"the receipt expired at {receipt.exp} (CWT exp; now {t})", code="receipt-expired"
        )
