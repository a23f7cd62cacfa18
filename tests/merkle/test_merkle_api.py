"""Public surface, known answers, argument checks and node-access efficiency of ironroot.merkle."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest

import ironroot.merkle as merkle
from ironroot.errors import InvalidProof, MalformedInput, NotFound
from ironroot.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

# RFC 6962 test leaves and the roots of their prefixes, as published with the transparency-dev
# and certificate-transparency test suites.
_LAST = "606162636465666768696a6b6c6d6e6f"
_RFC6962_ENTRIES = [
    bytes.fromhex(x)
    for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", _LAST)
]
_RFC6962_ROOTS = [
    bytes.fromhex(x)
    for x in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

H = b"\x11" * HASH_SIZE


def _tree(n: int) -> MemoryTree:
    return MemoryTree(i.to_bytes(4, "big") for i in range(n))


# --- surface and known answers ---------------------------------------------------------------


def test_public_surface_is_exact() -> None:
    assert sorted(merkle.__all__) == sorted(
        [
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
    )
    for name in merkle.__all__:
        assert hasattr(merkle, name)


def test_hash_definitions() -> None:
    assert HASH_SIZE == 32
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = b"\x0a" * 32, b"\x0b" * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert node_hash(a, b) != node_hash(b, a)


def test_rfc6962_known_roots() -> None:
    tree = MemoryTree()
    cr = CompactRange()
    for i, entry in enumerate(_RFC6962_ENTRIES):
        assert tree.append(entry) == i
        cr.append(leaf_hash(entry))
        assert tree.root() == cr.root() == _RFC6962_ROOTS[i]
    hashes = [leaf_hash(e) for e in _RFC6962_ENTRIES]
    for size in range(1, 9):
        assert root(hashes[:size]) == _RFC6962_ROOTS[size - 1]
        assert tree.root_at(size) == _RFC6962_ROOTS[size - 1]
    assert tree.root_at(0) == EMPTY_ROOT


def test_rfc6962_known_proofs() -> None:
    tree = MemoryTree(_RFC6962_ENTRIES)
    # Leaf 1 of 8 and the 1 -> 8 consistency proof, as published with transparency-dev/merkle.
    want = [
        bytes.fromhex("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        bytes.fromhex("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        bytes.fromhex("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ]
    assert tree.inclusion_proof(0) == want
    assert tree.consistency_proof(1) == want
    six_to_eight = tree.consistency_proof(6, 8)
    assert six_to_eight == [
        bytes.fromhex("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        bytes.fromhex("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        bytes.fromhex("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ]
    verify_consistency(6, 8, six_to_eight, _RFC6962_ROOTS[5], _RFC6962_ROOTS[7])


# --- CompactRange ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "hashes"),
    [
        (-1, []),
        (1, []),
        (3, [H]),
        (2, [H, H]),
        (0, [H]),
        (1, [H[:31]]),
        (1, [H + b"\x00"]),
        (1, ["x" * 32]),
        (True, [H]),
        (1.0, [H]),
    ],
)
def test_compact_range_rejects_bad_state(size: Any, hashes: Any) -> None:
    with pytest.raises(MalformedInput):
        CompactRange(size, hashes)


@pytest.mark.parametrize("bad", [b"", H[:31], H + b"\x00", bytearray(H), "x" * 32])
def test_compact_range_rejects_bad_leaf_and_stays_unchanged(bad: Any) -> None:
    cr = CompactRange()
    cr.append(H)
    with pytest.raises(MalformedInput):
        cr.append(bad)
    assert cr.size == 1
    assert cr.hashes == (H,)


def test_compact_range_copy_is_independent_and_not_hashable() -> None:
    cr = CompactRange(3, [H, b"\x22" * 32])
    other = cr.copy()
    other.append(H)
    assert cr.size == 3
    assert other.size == 4
    assert len(other.hashes) == 1
    assert cr != other
    with pytest.raises(TypeError):
        hash(cr)


# --- builders and MemoryTree -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "size"), [(0, 0), (5, 5), (6, 5), (-1, 5), (0, -1), (True, 5), (1.0, 5)]
)
def test_inclusion_proof_rejects_bad_arguments(index: Any, size: Any) -> None:
    with pytest.raises(MalformedInput):
        inclusion_proof(index, size, _tree(8).node)


@pytest.mark.parametrize(("size1", "size2"), [(5, 4), (-1, 4), (1, -1), (1, "4")])
def test_consistency_proof_rejects_bad_arguments(size1: Any, size2: Any) -> None:
    with pytest.raises(MalformedInput):
        consistency_proof(size1, size2, _tree(8).node)


def test_trivial_consistency_proofs_are_empty() -> None:
    tree = _tree(5)
    assert tree.consistency_proof(5) == []
    assert tree.consistency_proof(0, 5) == []
    assert tree.consistency_proof(0, 0) == []


def test_memory_tree_rejects_unknown_nodes_and_sizes() -> None:
    tree = _tree(5)
    assert tree.size == len(tree) == 5
    assert tree.node(2, 0) == root([leaf_hash(i.to_bytes(4, "big")) for i in range(4)])
    with pytest.raises(NotFound):
        tree.node(2, 1)  # leaves 4..7 are not all there yet
    with pytest.raises(NotFound):
        tree.node(3, 0)
    with pytest.raises(MalformedInput):
        tree.node(-1, 0)
    with pytest.raises(NotFound):
        tree.root_at(6)
    with pytest.raises(NotFound):
        tree.inclusion_proof(0, 6)
    with pytest.raises(NotFound):
        tree.consistency_proof(1, 6)
    with pytest.raises(MalformedInput):
        tree.append("text")  # type: ignore[arg-type]
    with pytest.raises(MalformedInput):
        tree.append_leaf_hash(b"short")
    assert tree.size == 5


def test_memory_tree_entry_and_leaf_hash_appends_agree() -> None:
    a = MemoryTree([b"one", b"two", b"three"])
    b = MemoryTree()
    for entry in (b"one", b"two", b"three"):
        b.append_leaf_hash(leaf_hash(entry))
    assert a.root() == b.root()
    resumed = a.compact_range(2)
    resumed.append(leaf_hash(b"three"))
    assert resumed.root() == a.root()


# --- verifier argument checks ----------------------------------------------------------------


def test_verify_inclusion_rejects_malformed_arguments() -> None:
    tree = _tree(7)
    leaf = tree.node(0, 3)
    proof = tree.inclusion_proof(3)
    r = tree.root()
    verify_inclusion(3, 7, leaf, proof, r)
    bad_calls: list[tuple[Any, ...]] = [
        (7, 7, leaf, proof, r),  # index == size
        (8, 7, leaf, proof, r),
        (-1, 7, leaf, proof, r),
        (3, -7, leaf, proof, r),
        (3, 0, leaf, proof, r),
        (True, 7, leaf, proof, r),
        (3, 7.0, leaf, proof, r),
        (3, 7, leaf[:31], proof, r),
        (3, 7, leaf + b"\x00", proof, r),
        (3, 7, leaf.hex(), proof, r),
        (3, 7, leaf, [*proof[:-1], proof[-1][:31]], r),
        (3, 7, leaf, [*proof[:-1], bytearray(proof[-1])], r),
        (3, 7, leaf, [*proof[:-1], None], r),
        (3, 7, leaf, b"".join(proof), r),
        (3, 7, leaf, [], r),
        (3, 7, leaf, proof, r[:31]),
        (3, 7, leaf, proof, None),
        (3, 7, leaf, proof, EMPTY_ROOT),
    ]
    for args in bad_calls:
        with pytest.raises(InvalidProof):
            verify_inclusion(*args)


def test_root_from_inclusion_proof_single_leaf() -> None:
    assert root_from_inclusion_proof(0, 1, H, []) == H
    with pytest.raises(InvalidProof):
        root_from_inclusion_proof(0, 1, H, [H])


def test_verify_consistency_rejects_malformed_arguments() -> None:
    tree = _tree(11)
    r3, r11 = tree.root_at(3), tree.root()
    proof = tree.consistency_proof(3)
    verify_consistency(3, 11, proof, r3, r11)
    verify_consistency(11, 11, [], r11, r11)
    bad_calls: list[tuple[Any, ...]] = [
        (11, 3, proof, r3, r11),  # size1 > size2
        (-3, 11, proof, r3, r11),
        (3, -11, proof, r3, r11),
        (False, 11, proof, r3, r11),
        (0, 11, [], EMPTY_ROOT, r11),  # from the empty tree
        (0, 0, [], EMPTY_ROOT, EMPTY_ROOT),
        (11, 11, [r11], r11, r11),  # equal sizes, non-empty proof
        (11, 11, [], r3, r11),  # equal sizes, different roots
        (11, 11, [], r11, None),
        (3, 11, [], r3, r11),  # empty proof
        (3, 11, proof[:-1], r3, r11),
        (3, 11, [*proof, r11], r3, r11),
        (3, 11, [proof[0][:31], *proof[1:]], r3, r11),
        (3, 11, [*proof[:-1], "x" * 32], r3, r11),
        (3, 11, b"".join(proof), r3, r11),
        (3, 11, proof, r3[:31], r11),
        (3, 11, proof, r3, r11 + b"\x00"),
        (3, 11, proof, r11, r3),
        (3, 4, proof, r3, r11),  # a proof for another size2
        (4, 11, proof, r3, r11),
    ]
    for args in bad_calls:
        with pytest.raises(InvalidProof):
            verify_consistency(*args)


def test_node_hash_rejects_bad_lengths() -> None:
    with pytest.raises(MalformedInput):
        node_hash(H[:31], H)
    with pytest.raises(MalformedInput):
        node_hash(H, H + b"\x00")
    with pytest.raises(MalformedInput):
        root([H, H[:31]])


# --- efficiency: count node() calls, never time ----------------------------------------------


class _CountingNodes:
    """A node source for a huge virtual tree: returns a fixed hash, checks and counts requests."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.calls: list[tuple[int, int]] = []

    def __call__(self, level: int, index: int) -> bytes:
        assert level >= 0
        assert index >= 0
        assert (index + 1) << level <= self.size, "asked for an incomplete subtree"
        self.calls.append((level, index))
        return hashlib.sha256(level.to_bytes(1, "big") + index.to_bytes(8, "big")).digest()


@pytest.mark.parametrize("size", [10**6, 2**20, 2**20 + 1, 2**20 - 1, 1000])
def test_inclusion_proof_asks_for_few_nodes(size: int) -> None:
    bound = 2 * math.ceil(math.log2(size))
    for index in {0, 1, size // 3, size // 2, size - 2, size - 1}:
        nodes = _CountingNodes(size)
        proof = inclusion_proof(index, size, nodes)
        assert len(nodes.calls) <= bound
        assert len(set(nodes.calls)) == len(nodes.calls)
        assert len(proof) <= math.ceil(math.log2(size))


@pytest.mark.parametrize("size2", [10**6, 2**20 + 1])
def test_consistency_proof_asks_for_few_nodes(size2: int) -> None:
    bound = 2 * math.ceil(math.log2(size2)) + 1
    for size1 in {1, 2, 3, 1000, size2 // 2 + 1, size2 - 1}:
        nodes = _CountingNodes(size2)
        consistency_proof(size1, size2, nodes)
        assert len(nodes.calls) <= bound
        assert len(set(nodes.calls)) == len(nodes.calls)


def test_a_proof_that_is_not_a_sequence_fails_closed() -> None:
    # None, a number or a generator as the proof raised TypeError from len(), not
    # InvalidProof. (Equal sizes compare the roots as given, whatever their length, as the
    # transparency-dev vector sizes-are-equal-one-and-proof-is-empty requires.)
    tree = _tree(11)
    r11, leaf = tree.root(), tree.node(0, 3)
    cases: list[tuple[Any, tuple[Any, ...]]] = [
        (verify_consistency, (11, 11, None, r11, r11)),
        (verify_consistency, (3, 11, 5, r11, r11)),
        (verify_consistency, (3, 11, iter([r11]), r11, r11)),
        (verify_inclusion, (3, 7, leaf, None, r11)),
        (root_from_inclusion_proof, (0, 2, leaf, 5)),
        (root_from_inclusion_proof, (0, 2, leaf, iter([leaf]))),
    ]
    for function, args in cases:
        with pytest.raises(InvalidProof, match=r"^a proof must be a sequence of hashes$") as caught:
            function(*args)
        assert type(caught.value) is InvalidProof
