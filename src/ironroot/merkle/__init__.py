"""RFC 9162 Merkle tree math, pure: hashes, roots, compact ranges, proofs and their checks.

Everything here takes bytes and integers and returns values or raises; storage is the
caller's, reached only through the ``node(level, index)`` callback of the proof builders
and the ``visit`` hook of :class:`CompactRange`. Verification raises
:class:`ironroot.errors.InvalidProof` on every bad input; builders raise
:class:`ironroot.errors.MalformedInput` on bad arguments.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.merkle._compact import CompactRange, Visitor
    from ironroot.merkle._hash import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash, root
    from ironroot.merkle._memory import MemoryTree
    from ironroot.merkle._proof import (
        NodeFn,
        RightEdge,
        consistency_proof,
        inclusion_proof,
        right_edge,
        root_from_nodes,
    )
    from ironroot.merkle._verify import (
        root_from_inclusion_proof,
        verify_consistency,
        verify_inclusion,
    )

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MemoryTree",
    "NodeFn",
    "RightEdge",
    "Visitor",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "right_edge",
    "root",
    "root_from_inclusion_proof",
    "root_from_nodes",
    "verify_consistency",
    "verify_inclusion",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
