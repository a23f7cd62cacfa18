"""An in-memory RFC 9162 tree, for tests and small uses (receipts for one batch, demos).

It keeps every complete node, level by level, filled by :class:`CompactRange`'s ``visit``
hook exactly as a tiled log would, and answers proofs through the same builders the log
uses. Memory is about two hashes per leaf.
"""

from __future__ import annotations

from collections.abc import Iterable

from ironroot.errors import MalformedInput, NotFound
from ironroot.merkle._compact import CompactRange
from ironroot.merkle._hash import _fold, leaf_hash
from ironroot.merkle._proof import _check_count, consistency_proof, inclusion_proof

__all__ = ["MemoryTree"]


class MemoryTree:
    """A growing Merkle tree held in memory, with roots and proofs at any past size."""

    __slots__ = ("_levels", "_range")

    def __init__(self, entries: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = []
        self._range = CompactRange()
        for entry in entries:
            self.append(entry)

    def _store(self, level: int, index: int, h: bytes) -> None:
        levels = self._levels
        if level == len(levels):
            levels.append([])
        levels[level].append(h)

    def append(self, entry: bytes) -> int:
        """Add a log entry (its leaf hash is SHA-256(0x00 || entry)); returns its index."""
        if not isinstance(entry, (bytes, bytearray, memoryview)):
            raise MalformedInput("a log entry must be bytes")
        return self.append_leaf_hash(leaf_hash(bytes(entry)))

    def append_leaf_hash(self, leaf_hash: bytes) -> int:
        """Add a leaf by its 32-byte leaf hash; returns its index."""
        index = self._range.size
        self._range.append(leaf_hash, self._store)
        return index

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._range.size

    def __len__(self) -> int:
        return self._range.size

    def root(self) -> bytes:
        """The root hash of the whole tree."""
        return self._range.root()

    def _check_size(self, size: int) -> int:
        _check_count(size, "a tree size")
        if size > self._range.size:
            raise NotFound(f"the tree has {self._range.size} leaves, not {size}")
        return size

    def _edge(self, size: int) -> list[bytes]:
        """The compact range hashes of the tree at ``size`` leaves, largest subtree first."""
        levels = self._levels
        hashes: list[bytes] = []
        start = 0
        bit = size.bit_length() - 1
        while bit >= 0:
            if (size >> bit) & 1:
                hashes.append(levels[bit][start >> bit])
                start += 1 << bit
            bit -= 1
        return hashes

    def root_at(self, size: int) -> bytes:
        """The root hash the tree had when it held ``size`` leaves."""
        return _fold(self._edge(self._check_size(size)))

    def node(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree of 2**level leaves from leaf ``index * 2**level``.

        Raises :class:`NotFound` if that subtree is not complete yet.
        """
        _check_count(level, "a level")
        _check_count(index, "a node index")
        if level >= len(self._levels) or index >= len(self._levels[level]):
            raise NotFound(f"no complete subtree at level {level}, index {index}")
        return self._levels[level][index]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion proof for leaf ``index`` in the tree of ``size`` leaves (default: all)."""
        n = self._range.size if size is None else self._check_size(size)
        return inclusion_proof(index, n, self.node)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The consistency proof from the tree of ``size1`` leaves to ``size2`` (default: all)."""
        n = self._range.size if size2 is None else self._check_size(size2)
        return consistency_proof(size1, n, self.node)

    def compact_range(self, size: int | None = None) -> CompactRange:
        """The compact range of the tree at ``size`` leaves (default: all), to resume appending."""
        if size is None:
            return self._range.copy()
        return CompactRange(size, self._edge(self._check_size(size)))
