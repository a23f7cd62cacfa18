"""Compact ranges: the right edge of a Merkle tree, enough to append and to compute the root.

A tree of ``size`` leaves is, under RFC 9162's split rule, a sequence of perfect subtrees,
one per set bit of ``size``, largest (leftmost) first. Keeping only their hashes lets the
log append a leaf in amortised O(1) hashes and compute the root in O(log n), without ever
reading the stored tree back. The ``visit`` hook reports every complete node as it is
created, which is how the log fills its tiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ironroot.errors import MalformedInput
from ironroot.merkle._hash import HASH_SIZE, _check_hash, _fold, _sha256

__all__ = ["CompactRange", "Visitor"]

Visitor = Callable[[int, int, bytes], None]
"""``visit(level, index, hash)``: the complete node covering leaves
``[index * 2**level, (index + 1) * 2**level)`` now has hash ``hash``."""

_NODE_PREFIX = b"\x01"


class CompactRange:
    """The right edge of the tree [0, size): one hash per set bit of size, largest subtree first."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise MalformedInput("a compact range size must be a non-negative integer")
        stack = [_check_hash(h, "a compact range hash") for h in hashes]
        if len(stack) != size.bit_count():
            raise MalformedInput(
                f"a compact range of size {size} holds {size.bit_count()} hashes, not {len(stack)}"
            )
        self._size = size
        self._hashes = stack

    @property
    def size(self) -> int:
        """The number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect-subtree hashes of the right edge, largest subtree first."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes, visit: Visitor | None = None) -> None:
        """Add one leaf hash at index ``size``.

        ``visit`` is called with ``(0, old_size, leaf_hash)`` and then, bottom up, with every
        complete node that this leaf closes.
        """
        h = _check_hash(leaf_hash, "a leaf hash")
        index = self._size
        stack = self._hashes
        if visit is not None:
            visit(0, index, h)
        level = 0
        # An odd index at a level is a right child: merge it with its left sibling.
        while index & 1:
            h = _sha256(_NODE_PREFIX + stack.pop() + h).digest()
            index >>= 1
            level += 1
            if visit is not None:
                visit(level, index, h)
        stack.append(h)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes], visit: Visitor | None = None) -> None:
        """Append each leaf hash in order (see :meth:`append`)."""
        append = self.append
        for h in leaf_hashes:
            append(h, visit)

    def root(self) -> bytes:
        """The RFC 9162 root hash of the tree [0, size)."""
        return _fold(self._hashes)

    def copy(self) -> CompactRange:
        """An independent copy (appending to one does not change the other)."""
        other = CompactRange.__new__(CompactRange)
        other._size = self._size
        other._hashes = list(self._hashes)
        return other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, hashes=<{len(self._hashes)} x {HASH_SIZE} bytes>)"
