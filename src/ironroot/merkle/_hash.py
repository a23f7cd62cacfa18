"""RFC 9162 §2.1.1 hashing: leaf and interior node hashes, and the Merkle Tree Hash of a list.

Hand-written because no maintained Python library implements the RFC 9162 tree with the
compact-range and tile hooks the log needs; the hash itself is :mod:`hashlib`'s SHA-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ironroot.errors import MalformedInput

__all__ = ["EMPTY_ROOT", "HASH_SIZE", "leaf_hash", "node_hash", "root"]

HASH_SIZE: int = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

EMPTY_ROOT: bytes = _sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string: the root of the tree of size 0."""


def leaf_hash(entry: bytes) -> bytes:
    """The leaf hash of one log entry: SHA-256(0x00 || entry)."""
    return _sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right).

    Raises :class:`MalformedInput` if either child is not a 32-byte hash.
    """
    if len(left) != HASH_SIZE or len(right) != HASH_SIZE:
        raise MalformedInput(f"a Merkle tree hash must be {HASH_SIZE} bytes")
    return _sha256(_NODE_PREFIX + left + right).digest()


def _check_hash(value: object, what: str) -> bytes:
    """``value`` if it is a 32-byte ``bytes`` value, else :class:`MalformedInput`."""
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise MalformedInput(f"{what} must be {HASH_SIZE} bytes")
    return value


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Combine a compact range (largest subtree first) into the root of the tree it covers.

    The RFC 9162 tree puts the largest power-of-two subtree on the left at every split, so
    the root is the right-to-left fold of the perfect subtrees named by the set bits of
    the size. An empty sequence is the empty tree.
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        acc = _sha256(_NODE_PREFIX + hashes[i] + acc).digest()
    return acc


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over a list of leaf hashes (RFC 9162 §2.1.1); :data:`EMPTY_ROOT` for ``[]``.

    Runs in one pass with a stack of at most log2(n) perfect subtrees, so it needs no
    recursion and no copy of the list. Raises :class:`MalformedInput` if a leaf hash is
    not 32 bytes.
    """
    stack: list[bytes] = []
    push = stack.append
    pop = stack.pop
    for count, h in enumerate(leaf_hashes):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise MalformedInput(f"leaf hash {count} must be {HASH_SIZE} bytes")
        # `count` leaves are already on the stack; merge while the new leaf closes a subtree.
        while count & 1:
            h = _sha256(_NODE_PREFIX + pop() + h).digest()
            count >>= 1
        push(h)
    return _fold(stack)
