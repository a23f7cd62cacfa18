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
    CWT_IAT,
    CWT_ISS,
    KID,
    VDP,
    VDP_CONSISTENCY,
    VDP_INCLUSION,
    VDS,
    VDS_RFC9162_SHA256,
)
from ironroot.cose._message import check_understood
from ironroot.cose._sign1 import Sign1, decode_sign1, sig_structure
from ironroot.crypto import Algorithm, Verifier
from ironroot.errors import (
    InvalidProof,
    LimitExceeded,
    MalformedInput,
    MalformedReceipt,
    UnknownIssuer,
    UnsupportedAlgorithm,
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


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
        issuer: str | None = None
        iat: int | None = None
        if CWT_CLAIMS in protected:  # present, whatever its value: null is not absent
            claims = protected[CWT_CLAIMS]
            if not isinstance(claims, Mapping):
                raise MalformedReceipt("CWT claims (15) must be a map")
            iss_value, iat_value = claims.get(CWT_ISS), claims.get(CWT_IAT)
            if CWT_ISS in claims and not isinstance(iss_value, str):
                raise MalformedReceipt("CWT claim iss (1) must be text")
            if CWT_IAT in claims and not _is_uint(iat_value):
                raise MalformedReceipt("CWT claim iat (6) must be an unsigned integer")
            issuer, iat = iss_value, iat_value
        vdp = msg.unprotected.get(VDP)
        if not isinstance(vdp, Mapping):
            raise MalformedReceipt("receipt unprotected header lacks the vdp (396) map")
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
    receipt: bytes | Receipt, entry: bytes, keys: Mapping[bytes, Verifier]
) -> Receipt:
    """Verify that ``receipt`` proves ``entry`` (a log entry) is in a tree the service signed.

    Raises ``MalformedReceipt`` (structure, vds, consistency proofs beside the inclusion
    ones), ``UnknownIssuer`` (kid not in ``keys``),
    ``InvalidProof`` (a proof that does not fit its tree, or proofs leading to different
    roots), ``AlgorithmNotAccepted`` (key and receipt algorithms differ) and ``BadSignature``
    (the signature does not cover the root the proofs imply: another entry, another tree,
    a tampered proof or signature).
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
        raise UnknownIssuer("the receipt's kid is not a trusted service key")
    leaf = leaf_hash(entry)
    roots = {
        root_from_inclusion_proof(p.leaf_index, p.tree_size, leaf, p.path)
        for p in parsed.inclusion_proofs
    }
    if len(roots) != 1:
        raise InvalidProof("the receipt's inclusion proofs lead to different roots")
    parsed.sign1.verify(verifier, detached_payload=roots.pop())
    return parsed
