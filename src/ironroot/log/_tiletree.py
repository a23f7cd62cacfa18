"""A served log's tree at one size, read through its C2SP tiles: nodes, roots, proofs, entries.

A monitor, a witness's client and a relying party that only has the read API (``checkpoint``,
``tile/<L>/<N>[.p/<W>]``, ``tile/entries/<N>[.p/<W>]``) compute what they need from tiles:
the hash of any complete subtree of the tree (``node``), the root of any prefix (``root``),
RFC 9162 consistency and inclusion proofs, and the entries themselves. Nothing here is
trusted: the caller checks what it computes against a signed checkpoint (``root(size)`` must
be the checkpoint's root), and only then relies on it.

The tile that holds a node is the one the tree of ``size`` has: full, or partial of the width
that size gives. A log may delete a partial tile once the full one exists (c2sp.org/
tlog-tiles lets clients use a full tile's prefix instead), so a partial tile that is not found
is read as the prefix of the full one.
"""

from __future__ import annotations

from typing import Final

from ironroot.errors import IronrootError, MalformedInput, VerificationFailed
from ironroot.log._tiles import (
    HASH_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    entry_bundle_path,
    parse_entry_bundle,
    tile_hash_range,
    tile_path,
)
from ironroot.log._verify import LogFetcher, _served, _served_edge
from ironroot.merkle import consistency_proof, inclusion_proof, root_from_nodes

__all__ = ["TileTree"]

_MAX_CACHED: Final = 4096


def _check_size(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedInput(f"{what} must be a non-negative integer")
    return value


class TileTree:
    """The tree of ``size`` leaves of the log behind ``fetcher``, computed from its tiles.

    Raises :class:`VerificationFailed` when the log does not serve a tile or entry bundle the
    tree needs, or serves one of the wrong length (or larger than any log resource).
    """

    def __init__(self, fetcher: LogFetcher, size: int) -> None:
        self._fetcher = fetcher
        self._size = _check_size(size, "a tree size")
        self._tiles: dict[tuple[int, int], tuple[bytes, ...]] = {}
        self.fetched = 0
        """How many tiles and entry bundles this tree has fetched (each is fetched once)."""

    @property
    def size(self) -> int:
        return self._size

    def _read(self, full_path: str, partial_path: str | None) -> tuple[bytes, bool]:
        """The resource and whether it is the one asked for: ``False`` when it is the full
        version of a partial one the log no longer serves (whose prefix is then read)."""
        self.fetched += 1
        if partial_path is None:
            return _served(self._fetcher, full_path), True
        return _served_edge(self._fetcher, partial_path, full_path)

    def _tile(self, level: int, index: int) -> tuple[bytes, ...]:
        key = (level, index)
        cached = self._tiles.get(key)
        if cached is not None:
            return cached
        count = self._size >> (TILE_HEIGHT * level)
        full = (index + 1) * TILE_WIDTH <= count
        width = TILE_WIDTH if full else count - index * TILE_WIDTH
        if width <= 0:
            raise MalformedInput(f"tile {level}/{index} is beyond a tree of size {self._size}")
        data, exact = self._read(
            tile_path(level, index), None if full else tile_path(level, index, width)
        )
        # exactly the hashes its name says: a full tile 256, a partial one its width
        served = width if exact else TILE_WIDTH
        if len(data) != served * HASH_SIZE:
            raise VerificationFailed(
                f"tile {level}/{index} is {len(data)} bytes, not {served} hashes"
            )
        data = data[: width * HASH_SIZE]
        hashes = tuple(data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE))
        if len(self._tiles) >= _MAX_CACHED:
            self._tiles.clear()
        self._tiles[key] = hashes
        return hashes

    def node(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree of ``2**level`` leaves starting at
        ``index * 2**level``; it must lie inside the tree."""
        _check_size(level, "a node level")
        _check_size(index, "a node index")
        if (index + 1) << level > self._size:
            raise MalformedInput(f"node {level}/{index} is not inside a tree of {self._size}")
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height
        tile_index, offset = divmod(first, TILE_WIDTH)
        hashes = self._tile(tile_level, tile_index)
        part = hashes[offset : offset + (1 << height)]
        return part[0] if height == 0 else tile_hash_range(part)

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree's prefix of ``size`` leaves (default: the whole tree)."""
        size = self._size if size is None else _check_size(size, "a tree size")
        if size > self._size:
            raise MalformedInput(f"tree size {size} is beyond {self._size}")
        return root_from_nodes(size, self.node)

    def compact_range(self, size: int | None = None) -> tuple[bytes, ...]:
        """The complete-subtree hashes of the prefix of ``size`` leaves, largest first (the
        compact range ``[0, size)``: what an appender needs to extend that tree)."""
        size = self._size if size is None else _check_size(size, "a tree size")
        if size > self._size:
            raise MalformedInput(f"tree size {size} is beyond {self._size}")
        out = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                out.append(self.node(level, start >> level))
                start += 1 << level
        return tuple(out)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof from ``size1`` to ``size2`` (default: the tree)."""
        size2 = self._size if size2 is None else size2
        if size2 > self._size:
            raise MalformedInput(f"tree size {size2} is beyond {self._size}")
        return consistency_proof(size1, size2, self.node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 inclusion proof of leaf ``index`` in the prefix of ``size`` leaves."""
        size = self._size if size is None else size
        if size > self._size:
            raise MalformedInput(f"tree size {size} is beyond {self._size}")
        return inclusion_proof(index, size, self.node)

    def entries(self, start: int, stop: int) -> list[bytes]:
        """The entries ``start`` to ``stop - 1``, from the tree's entry bundles."""
        _check_size(start, "an entry index")
        _check_size(stop, "an entry index")
        if not start <= stop <= self._size:
            raise MalformedInput(f"entries {start}..{stop} are not inside a tree of {self._size}")
        out: list[bytes] = []
        index = start // TILE_WIDTH
        while index * TILE_WIDTH < stop:
            first = index * TILE_WIDTH
            full = first + TILE_WIDTH <= self._size
            width = TILE_WIDTH if full else self._size - first
            data, exact = self._read(
                entry_bundle_path(index), None if full else entry_bundle_path(index, width)
            )
            try:
                # exactly the entries its name says (a full bundle for a deleted partial one)
                bundle = parse_entry_bundle(data, width if exact else TILE_WIDTH)[:width]
            except IronrootError as exc:
                raise VerificationFailed(
                    f"entry bundle {index} is malformed: {exc.detail}"
                ) from exc
            lo = max(start, first) - first
            hi = min(stop, first + width) - first
            out.extend(bundle[lo:hi])
            index += 1
        return out
