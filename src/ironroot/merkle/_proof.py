"""Building RFC 9162 inclusion and consistency proofs from a node source.

The builders never see the whole tree: they ask ``node(level, index)`` for the hashes of
*complete* subtrees only (2**level leaves starting at leaf ``index * 2**level``, entirely
inside ``[0, size)``), which is what a tiled log stores. Where a proof needs a node on the
incomplete right edge of the tree (an "ephemeral" node, RFC 9162's MTH(D[k:n]) when n - k
is not a power of two), they compute it from the fewest complete subtrees that cover it.

The result is the same list of hashes as RFC 9162 §2.1.3.1 PATH and §2.1.4.1 PROOF, in the
same order (bottom up), as the property tests check against a literal transcription.

A tree has at most one ephemeral node per level: the last one. :func:`right_edge` computes
all of them for one tree size, bottom up, in one pass (one complete node and one hash per
level where the edge is incomplete); passing the result to :func:`inclusion_proof` makes the
proofs of many leaves at that size (a batch's receipts) share that work instead of each
folding its own ephemeral sibling again. The proofs are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable

from ironroot.errors import MalformedInput
from ironroot.merkle._hash import EMPTY_ROOT, _sha256

__all__ = [
    "NodeFn",
    "RightEdge",
    "consistency_proof",
    "inclusion_proof",
    "right_edge",
    "root_from_nodes",
]

NodeFn = Callable[[int, int], bytes]
"""``node(level, index)``: hash of the subtree over leaves [index << level, (index+1) << level)."""

RightEdge = tuple[bytes | None, ...]
"""The ephemeral nodes of one tree size by level (``None`` where the last node is complete):
what :func:`right_edge` returns and :func:`inclusion_proof` accepts."""

_NODE_PREFIX = b"\x01"


def _check_count(value: object, what: str) -> int:
    """``value`` if it is a non-negative ``int`` (not ``bool``), else :class:`MalformedInput`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedInput(f"{what} must be a non-negative integer")
    return value


def _ephemeral(level: int, index: int, size: int, node: NodeFn) -> bytes:
    """Hash of the incomplete subtree at (level, index): leaves [index * 2**level, size).

    The covered range splits into one perfect subtree per set bit of its length, largest
    first; RFC 9162 hashes such a range as their right-to-left fold.
    """
    start = index << level
    remaining = size - start
    parts: list[bytes] = []
    bit = remaining.bit_length() - 1
    while bit >= 0:
        if (remaining >> bit) & 1:
            parts.append(node(bit, start >> bit))
            start += 1 << bit
        bit -= 1
    acc = parts[-1]
    for i in range(len(parts) - 2, -1, -1):
        acc = _sha256(_NODE_PREFIX + parts[i] + acc).digest()
    return acc


def root_from_nodes(size: int, node: NodeFn) -> bytes:
    """The root of the tree of ``size`` leaves from its stored complete subtrees: one per set
    bit of ``size``, largest first, folded right to left (RFC 9162 §2.1.1); the empty root
    for 0. Raises :class:`MalformedInput` on a negative or non-integer size."""
    _check_count(size, "a tree size")
    if size == 0:
        return EMPTY_ROOT
    return _ephemeral(0, 0, size, node)


def right_edge(size: int, node: NodeFn) -> RightEdge:
    """The hashes of the incomplete nodes on the right edge of the tree of ``size`` leaves,
    one entry per level from the leaves (0) to the root's level, ``None`` where that level's
    last node is complete. Each comes from the one below: the last node of a level is its
    left child alone when it has no right child, else the hash of its complete left child and
    its right child (complete, or the ephemeral node just computed). ``()`` for 0 leaves.
    Raises :class:`MalformedInput` on a negative or non-integer size."""
    _check_count(size, "a tree size")
    if size == 0:
        return ()
    last_leaf = size - 1
    top = last_leaf.bit_length()
    edge: list[bytes | None] = [None] * (top + 1)
    for level in range(1, top + 1):
        last = last_leaf >> level
        if (last + 1) << level <= size:
            continue  # complete, as are the last nodes of every level below it
        below = level - 1
        right = last_leaf >> below  # the last node one level down
        value = edge[below]
        if value is None:
            value = node(below, right)
        if right == last << 1:  # no right child: the node is its left child
            edge[level] = value
        else:
            edge[level] = _sha256(_NODE_PREFIX + node(below, right - 1) + value).digest()
    return tuple(edge)


def _path(
    level: int,
    index: int,
    size: int,
    node: NodeFn,
    out: list[bytes],
    edge: RightEdge | None = None,
) -> None:
    """Append to ``out`` the siblings of the node (level, index) up to the root of [0, size).

    Below the level where the paths to ``index`` and to the last node diverge ("inner"),
    siblings are complete except possibly the topmost right one, which is ephemeral. Above
    it the path runs along the right border, where only left siblings exist, one per set
    bit of the remaining index, all complete.
    """
    last = (size - 1) >> level
    inner = (index ^ last).bit_length()
    for j in range(inner):
        lvl = level + j
        sibling = (index >> j) ^ 1
        if (sibling + 1) << lvl <= size:
            out.append(node(lvl, sibling))
        elif edge is not None and (known := edge[lvl]) is not None:
            out.append(known)  # the sibling is the level's last node, which is ephemeral
        else:
            out.append(_ephemeral(lvl, sibling, size, node))
    index >>= inner
    lvl = level + inner
    while index:
        if index & 1:
            out.append(node(lvl, index ^ 1))
        index >>= 1
        lvl += 1


def inclusion_proof(
    index: int, size: int, node: NodeFn, edge: RightEdge | None = None
) -> list[bytes]:
    """The RFC 9162 inclusion proof (audit path) for leaf ``index`` in the tree of ``size`` leaves.

    ``edge``, when given, is :func:`right_edge` of the same ``size`` and ``node``: its
    ephemeral nodes are used instead of being recomputed (:class:`MalformedInput` if it is
    not as long as that tree's levels). Raises :class:`MalformedInput` unless
    ``0 <= index < size``.
    """
    _check_count(index, "a leaf index")
    _check_count(size, "a tree size")
    if index >= size:
        raise MalformedInput(f"leaf index {index} is not below tree size {size}")
    if edge is not None and len(edge) != (size - 1).bit_length() + 1:
        raise MalformedInput(f"the right edge given is not one of a tree of size {size}")
    proof: list[bytes] = []
    _path(0, index, size, node, proof, edge)
    return proof


def consistency_proof(size1: int, size2: int, node: NodeFn) -> list[bytes]:
    """The RFC 9162 consistency proof that the tree of ``size1`` leaves is a prefix of ``size2``.

    Empty when ``size1 == size2`` or ``size1 == 0`` (there is nothing to prove; note that
    :func:`~ironroot.merkle.verify_consistency` refuses ``size1 == 0``, as transparency-dev
    does, since an empty tree commits to nothing). Raises :class:`MalformedInput` unless
    ``0 <= size1 <= size2``.
    """
    _check_count(size1, "the first tree size")
    _check_count(size2, "the second tree size")
    if size1 > size2:
        raise MalformedInput(f"tree size {size1} is larger than tree size {size2}")
    if size1 == 0 or size1 == size2:
        return []
    # The last complete subtree of the old tree's right edge: 2**shift leaves ending at size1.
    shift = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> shift
    proof: list[bytes] = []
    if index:
        # size1 is not a power of two, so the verifier does not know this subtree's hash.
        proof.append(node(shift, index))
    _path(shift, index, size2, node, proof)
    return proof
