"""Verifying RFC 9162 inclusion (§2.1.3.2) and consistency (§2.1.4.2) proofs.

The loops are the RFC's algorithms step for step (the ``fn``/``sn`` walk). Before them,
every input is checked so that a malformed value fails closed with :class:`InvalidProof`
and nothing else: sizes and indices must be non-negative integers, hashes 32-byte
``bytes``, and the proof exactly as long as the sizes require. The edge cases the RFC
leaves to the caller follow transparency-dev/merkle and its test vectors: equal sizes need
an empty proof and equal roots; a consistency proof from the empty tree is refused.

A proof binds a root to a leaf (or to an older root), not to a tree size: the same hashes
can fit two sizes whose proofs have the same shape. The size is authenticated by whoever
signs the (size, root) pair, the checkpoint or receipt, so callers verify that signature.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from ironroot.errors import InvalidProof
from ironroot.merkle._hash import HASH_SIZE, _sha256

__all__ = [
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

_NODE_PREFIX = b"\x01"


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidProof(f"{what} must be a non-negative integer")
    return value


def _hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise InvalidProof(f"{what} must be {HASH_SIZE} bytes")
    return value


def _sequence(proof: object) -> Sequence[object]:
    if isinstance(proof, (bytes, bytearray, str)) or not isinstance(proof, Sequence):
        raise InvalidProof("a proof must be a sequence of hashes")
    return proof


def _proof_hashes(proof: Sequence[bytes], want: int) -> Sequence[bytes]:
    _sequence(proof)
    if len(proof) != want:
        raise InvalidProof(f"the proof has {len(proof)} hashes where {want} are required")
    for p in proof:
        if not isinstance(p, bytes) or len(p) != HASH_SIZE:
            raise InvalidProof(f"every proof hash must be {HASH_SIZE} bytes")
    return proof


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for leaf ``leaf_hash`` at ``index`` in a tree of ``size``.

    Raises :class:`InvalidProof` if ``index >= size``, a hash is not 32 bytes or the proof
    has the wrong length for ``(index, size)``.
    """
    _count(index, "the leaf index")
    _count(size, "the tree size")
    if index >= size:
        raise InvalidProof(f"leaf index {index} is not below tree size {size}")
    r = _hash(leaf_hash, "the leaf hash")
    inner = (index ^ (size - 1)).bit_length()
    _proof_hashes(proof, inner + (index >> inner).bit_count())

    # RFC 9162 §2.1.3.2 steps 2-5.
    fn = index
    sn = size - 1
    for p in proof:
        if sn == 0:
            raise InvalidProof("the proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = _sha256(_NODE_PREFIX + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(_NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("the proof is shorter than the tree is high")
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``proof`` shows ``leaf_hash`` at ``index`` in the tree of ``size`` with ``root``.

    Returns ``None`` or raises :class:`InvalidProof`.
    """
    computed = root_from_inclusion_proof(index, size, leaf_hash, proof)
    expected = _hash(root, "the root hash")
    if not hmac.compare_digest(computed, expected):
        raise InvalidProof("the inclusion proof does not lead to the root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (``size1``, ``root1``) is a prefix of the tree (``size2``, ``root2``).

    Returns ``None`` or raises :class:`InvalidProof`. Equal sizes need an empty proof and
    equal roots; ``size1 == 0`` is refused (an empty tree commits to nothing, so no proof
    from it means anything; start from the first non-empty checkpoint instead).
    """
    _count(size1, "the first tree size")
    _count(size2, "the second tree size")
    if size1 > size2:
        raise InvalidProof(f"tree size {size1} is larger than tree size {size2}")
    if size1 == 0:
        raise InvalidProof("a consistency proof from the empty tree proves nothing")
    _sequence(proof)
    if not isinstance(root1, bytes) or not isinstance(root2, bytes):
        raise InvalidProof("a root hash must be bytes")
    if size1 == size2:
        if len(proof) != 0:
            raise InvalidProof("trees of equal size need an empty consistency proof")
        if not hmac.compare_digest(root1, root2):
            raise InvalidProof("trees of equal size have different roots")
        return
    _hash(root1, "the first root hash")
    _hash(root2, "the second root hash")
    # RFC 9162 §2.1.4.2 step 1.
    if len(proof) == 0:
        raise InvalidProof("the consistency proof is empty")
    shift = (size1 & -size1).bit_length() - 1
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> inner).bit_count()
    power_of_two = size1 == 1 << shift
    _proof_hashes(proof, inner - shift + border + (0 if power_of_two else 1))

    # Step 2: a power-of-two first tree is itself the seed subtree; otherwise the proof
    # starts with it. Steps 3-7 follow, with `seed`/`start` in place of a prepended list.
    if power_of_two:
        seed, start = root1, 0
    else:
        seed, start = proof[0], 1
    fn = size1 - 1
    sn = size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = seed
    for i in range(start, len(proof)):
        c = proof[i]
        if sn == 0:
            raise InvalidProof("the proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            fr = _sha256(_NODE_PREFIX + c + fr).digest()
            sr = _sha256(_NODE_PREFIX + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(_NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("the proof is shorter than the tree is high")
    if not hmac.compare_digest(fr, root1) or not hmac.compare_digest(sr, root2):
        raise InvalidProof("the consistency proof does not lead to both roots")
