"""TileTree: a served log's nodes, roots, proofs and entries, computed from its tiles only,
equal the log's own; a partial tile the log no longer serves is read from the full one."""

from __future__ import annotations

import pytest
from log_testkit import ORIGIN, LogBackedFetcher, ed25519_key, entries, fill, signer

from ironroot.errors import MalformedInput, NotFound, VerificationFailed
from ironroot.log import Log, TileTree
from ironroot.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion


@pytest.fixture(scope="module")
def log() -> Log:
    log = Log.open_memory(origin=ORIGIN, note_signers=[signer(ed25519_key())])
    log.start()
    fill(log, entries(700))  # 700 entries: two full level-0 tiles and a partial
    return log


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 257, 511, 512, 513, 700])
def test_roots_and_proofs_match_the_log(log: Log, size: int) -> None:
    tree = TileTree(LogBackedFetcher(log), size)
    assert tree.root() == log.root(size)
    for old in {1, size // 2, size - 1} - {0}:
        proof = tree.consistency_proof(old)
        assert proof == log.consistency_proof(old, size)
        verify_consistency(old, size, proof, log.root(old), tree.root())
    index = size // 3
    proof = tree.inclusion_proof(index)
    verify_inclusion(index, size, leaf_hash(log.entry(index)), proof, tree.root())
    assert tree.entries(0, size) == [log.entry(i) for i in range(size)]
    assert len(tree.compact_range()) == size.bit_count()


def test_the_empty_tree(log: Log) -> None:
    assert TileTree(LogBackedFetcher(log), 0).root() == EMPTY_ROOT


class FullTilesOnly(LogBackedFetcher):
    """A log that deleted its partial tiles once the full ones existed."""

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if ".p/" in path and not path.startswith(("tile/0/002", "tile/entries/002", "tile/1/")):
            raise NotFound(path)
        return super().fetch(path, accept=accept)


def test_a_missing_partial_tile_is_read_from_the_full_tile(log: Log) -> None:
    tree = TileTree(FullTilesOnly(log), 300)
    assert tree.root() == log.root(300)
    assert tree.entries(290, 300) == [log.entry(i) for i in range(290, 300)]


class Nothing(LogBackedFetcher):
    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        raise NotFound(path)


class Short(LogBackedFetcher):
    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        return super().fetch(path, accept=accept)[:-1]


def test_missing_or_short_tiles_fail_verification(log: Log) -> None:
    with pytest.raises(VerificationFailed):
        TileTree(Nothing(log), 10).root()
    with pytest.raises(VerificationFailed):
        TileTree(Short(log), 256).root()
    with pytest.raises(VerificationFailed):
        TileTree(Short(log), 10).entries(0, 10)


def test_outside_the_tree_is_refused(log: Log) -> None:
    tree = TileTree(LogBackedFetcher(log), 10)
    with pytest.raises(MalformedInput):
        tree.root(11)
    with pytest.raises(MalformedInput):
        tree.node(4, 0)
    with pytest.raises(MalformedInput):
        tree.entries(5, 11)


class Longer(LogBackedFetcher):
    """A log that serves its edge tile and bundle of a tree of 296 with one item too many:
    more hashes or entries than the width their names say (and the checkpoint allows)."""

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        data = super().fetch(path, accept=accept)
        if path == "tile/0/001.p/40":
            return data + bytes(32)
        if path == "tile/entries/001.p/40":
            return data + b"\x00\x03abc"
        return data


def test_a_partial_tile_longer_than_its_width_fails_verification(log: Log) -> None:
    # c2sp.org/tlog-tiles: the partial tile of a tree of size s has exactly
    # floor(s / 256**l) mod 256 hashes; one with more is not the tile its name says
    with pytest.raises(VerificationFailed) as info:
        TileTree(Longer(log), 296).root()
    assert info.value.detail == "tile 0/1 is 1312 bytes, not 40 hashes"


def test_a_partial_entry_bundle_with_more_entries_than_its_width_fails(log: Log) -> None:
    with pytest.raises(VerificationFailed) as info:
        TileTree(Longer(log), 296).entries(256, 296)
    assert info.value.detail == (
        "entry bundle 1 is malformed: the entry bundle has more entries than expected"
    )


class ShortFullTiles(FullTilesOnly):
    """A log that deleted its partial tiles and serves full tiles and bundles one item short."""

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        data = super().fetch(path, accept=accept)
        if path == "tile/0/001":
            return data[:-32]
        if path == "tile/entries/001":
            return self.log.read_entry_bundle(1, 255)
        return data


def test_a_full_tile_read_for_a_partial_one_must_be_full(log: Log) -> None:
    # "Full tiles MUST be exactly 256 hashes wide": a short one stands for no partial tile
    with pytest.raises(VerificationFailed) as info:
        TileTree(ShortFullTiles(log), 300).root()
    assert info.value.detail == "tile 0/1 is 8160 bytes, not 256 hashes"
    with pytest.raises(VerificationFailed) as info:
        TileTree(ShortFullTiles(log), 300).entries(290, 300)
    assert (
        info.value.detail
        == "entry bundle 1 is malformed: the entry bundle has 255 entries, not 256"
    )
