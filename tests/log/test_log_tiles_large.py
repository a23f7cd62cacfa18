"""Tile arithmetic of very large trees (2^40 and up to the largest tree size, 2^63 - 1), fast.

A tree whose leaves are all one entry has, at every level, one hash for every complete
subtree: each full tile is 256 copies of it and each partial tile is that many copies. So a
log of any size is served from a handful of bytes, its root is known independently (the
RFC 6962 fold of one subtree hash per bit of the size), and the fetcher below refuses every
resource a tree of its size does not have: a wrong tile index, level or width anywhere in
``TileTree`` or ``export_tiles`` is a :class:`NotFound` the test sees as a failure.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from log_testkit import ORIGIN, ed25519_key, signer

from ironroot.errors import NotFound
from ironroot.log import (
    Checkpoint,
    DirectoryLogFetcher,
    LogIdentity,
    TileTree,
    export_tiles,
    parse_tile_path,
    sign_checkpoint,
)
from ironroot.merkle import leaf_hash, node_hash, verify_consistency, verify_inclusion

KEY = ed25519_key()
SIGNER = signer(KEY)
IDENTITY = LogIdentity(ORIGIN, (SIGNER.verifier(),))
ENTRY = b"the same entry"
_SUBTREE = [leaf_hash(ENTRY)]
for _ in range(63):
    _SUBTREE.append(node_hash(_SUBTREE[-1], _SUBTREE[-1]))


def uniform_root(size: int) -> bytes:
    """RFC 6962 root of ``size`` equal leaves: one subtree per set bit, folded right to left."""
    bits = [k for k in range(size.bit_length()) if size >> k & 1]
    root = _SUBTREE[bits[0]]
    for k in bits[1:]:
        root = node_hash(_SUBTREE[k], root)
    return root


class UniformLog:
    """Serves the read API of a tree of ``size`` equal leaves; anything else is NotFound."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.requests: list[str] = []

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        self.requests.append(path)
        if path == "checkpoint":
            return sign_checkpoint(Checkpoint(ORIGIN, self.size, uniform_root(self.size)), [SIGNER])
        address = parse_tile_path(path)
        count = self.size >> (8 * address.level)
        full, width = divmod(count, 256)
        exists = (
            address.index < full
            if address.width is None
            else (address.index == full and address.width == width)
        )
        if not exists:
            raise NotFound(f"a tree of {self.size} has no {path}")
        if address.entries:
            return (struct.pack(">H", len(ENTRY)) + ENTRY) * address.count
        return _SUBTREE[8 * address.level] * address.count


SIZES = [
    (1 << 40) - 1,
    1 << 40,
    (1 << 40) + 256 * 3 + 7,
    999_999_999_999_999,  # six three-digit groups in a level-0 index
    (1 << 63) - 1,  # the largest tree a checkpoint can name
]


@pytest.mark.parametrize("size", SIZES)
def test_the_root_of_a_very_large_tree_comes_from_its_tiles(size: int) -> None:
    served = UniformLog(size)
    tree = TileTree(served, size)
    assert tree.root() == uniform_root(size)
    assert tree.root(size - 1) == uniform_root(size - 1)
    assert len(served.requests) <= 20  # the right edge: a few tiles per level


@pytest.mark.parametrize("size", SIZES)
def test_proofs_of_a_very_large_tree_verify(size: int) -> None:
    tree = TileTree(UniformLog(size), size)
    root = uniform_root(size)
    for index in (0, size // 3, size - 257, size - 1):
        proof = tree.inclusion_proof(index)
        verify_inclusion(index, size, leaf_hash(ENTRY), proof, root)
    for old in (1, 1 << 39, size - 300, size - 1):
        proof = tree.consistency_proof(old)
        verify_consistency(old, size, proof, uniform_root(old), root)
    assert tree.entries(size - 2, size) == [ENTRY, ENTRY]


def _sparse_export(out: Path, size: int) -> None:
    """What an export of ``size`` holds that the next export reads: its checkpoint and the
    tiles of its right edge (the rest of a 2^40 tree is never read again)."""
    source = UniformLog(size)
    TileTree(source, size).root()
    for path in [*source.requests, "checkpoint"]:
        file = out / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(source.fetch(path))


@pytest.mark.parametrize("old", [(1 << 40) + 5, (1 << 40) - 3, 999_999_999_999_000])
def test_a_mirror_of_a_very_large_tree_grows(tmp_path: Path, old: int) -> None:
    new = old + 300
    _sparse_export(tmp_path, old)
    source = UniformLog(new)
    report = export_tiles(source, tmp_path, identity=IDENTITY)
    assert (report.previous_size, report.size, report.root) == (old, new, uniform_root(new))
    assert report.entry_bundles == len([p for p in source.requests if "entries" in p])
    # what was written is the new tree, readable from the directory alone
    assert TileTree(DirectoryLogFetcher(tmp_path), new).root() == uniform_root(new)
    again = export_tiles(UniformLog(new), tmp_path, identity=IDENTITY)
    assert (again.tiles, again.entry_bundles, again.checkpoint_written) == (0, 0, False)
