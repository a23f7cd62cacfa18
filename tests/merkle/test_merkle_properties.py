"""Property tests against a literal transcription of RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1.

The reference below is deliberately naive (recursive, slicing lists): it is the RFC's
definitions written out, so that the fast code is checked against the text itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache, lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.errors import InvalidProof, MalformedInput
from ironroot.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    right_edge,
    root,
    root_from_inclusion_proof,
    root_from_nodes,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 300
_SETTINGS = settings(max_examples=examples(60), deadline=None)


# --- the RFC, naively ------------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(d: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (the RFC's MTH with the leaf hashing already done).

    Remembered by the exact leaves: the properties below ask for the same subtrees thousands of
    times (every proof of every size), and the RFC's recursion recomputes each from its leaves.
    """
    return _naive_mth(tuple(d))


@lru_cache(maxsize=4096)
def _naive_mth(d: tuple[bytes, ...]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = _split(n)
    return hashlib.sha256(b"\x01" + _naive_mth(d[:k]) + _naive_mth(d[k:])).digest()


def naive_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*naive_path(m, d[:k]), naive_mth(d[k:])]
    return [*naive_path(m - k, d[k:]), naive_mth(d[:k])]


def naive_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [naive_mth(d)]
    k = _split(n)
    if m <= k:
        return [*naive_subproof(m, d[:k], b), naive_mth(d[k:])]
    return [*naive_subproof(m - k, d[k:], False), naive_mth(d[:k])]


def naive_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return naive_subproof(m, d, True)


# --- shared data -----------------------------------------------------------------------------


@cache
def _leaves() -> tuple[bytes, ...]:
    return tuple(leaf_hash(i.to_bytes(4, "big") + b"entry") for i in range(MAX_SIZE))


@cache
def _tree() -> MemoryTree:
    tree = MemoryTree()
    for h in _leaves():
        tree.append_leaf_hash(h)
    return tree


@st.composite
def _index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(0, size - 1)), size


@st.composite
def _two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(1, size2)), size2


# --- roots -----------------------------------------------------------------------------------


@_SETTINGS
@given(st.lists(st.binary(max_size=40), max_size=70))
def test_root_matches_rfc(entries: list[bytes]) -> None:
    hashes = [leaf_hash(e) for e in entries]
    assert root(hashes) == naive_mth(hashes)


def test_root_and_compact_range_match_rfc_at_every_size() -> None:
    leaves = _leaves()
    tree = _tree()
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT == naive_mth([])
    for size in range(1, MAX_SIZE + 1):
        cr.append(leaves[size - 1])
        want = naive_mth(leaves[:size])
        assert cr.size == size
        assert len(cr.hashes) == size.bit_count()
        assert cr.root() == want
        assert root(leaves[:size]) == want
        assert tree.root_at(size) == want
        assert tree.compact_range(size) == cr


def test_visit_reports_every_complete_node_once() -> None:
    leaves = _leaves()
    seen: dict[tuple[int, int], bytes] = {}
    calls: list[tuple[int, int]] = []

    def visit(level: int, index: int, h: bytes) -> None:
        assert (level, index) not in seen, f"node ({level}, {index}) reported twice"
        seen[(level, index)] = h
        calls.append((level, index))

    cr = CompactRange()
    for size in range(1, MAX_SIZE + 1):
        calls.clear()
        cr.append(leaves[size - 1], visit)
        # The new leaf first, then each node it completes, bottom up.
        assert calls[0] == (0, size - 1)
        assert [lvl for lvl, _ in calls] == list(range(len(calls)))
        # Exactly the complete nodes of [0, size) have been reported so far.
        want = {(lvl, i) for lvl in range(size.bit_length()) for i in range(size >> lvl)}
        assert set(seen) == want
    for (lvl, i), h in seen.items():
        assert h == naive_mth(leaves[i << lvl : (i + 1) << lvl])


@_SETTINGS
@given(st.lists(st.binary(max_size=8), max_size=40), st.integers(0, 40))
def test_compact_range_extend_equals_appends_and_resumes(entries: list[bytes], cut: int) -> None:
    hashes = [leaf_hash(e) for e in entries]
    cut = min(cut, len(hashes))
    whole = CompactRange()
    whole.extend(hashes)
    part = CompactRange()
    part.extend(hashes[:cut])
    resumed = CompactRange(part.size, part.hashes)
    snapshot = resumed.copy()
    resumed.extend(hashes[cut:])
    assert resumed == whole
    assert resumed.root() == whole.root() == naive_mth(hashes)
    assert snapshot.size == cut  # the copy did not move


# --- inclusion -------------------------------------------------------------------------------


@_SETTINGS
@given(_index_and_size())
def test_inclusion_proof_matches_rfc_and_verifies(case: tuple[int, int]) -> None:
    index, size = case
    leaves = _leaves()
    tree = _tree()
    want = naive_path(index, leaves[:size])
    proof = inclusion_proof(index, size, tree.node)
    assert proof == want
    assert tree.inclusion_proof(index, size) == want
    r = naive_mth(leaves[:size])
    assert root_from_inclusion_proof(index, size, leaves[index], proof) == r
    verify_inclusion(index, size, leaves[index], proof, r)


@_SETTINGS
@given(st.integers(1, MAX_SIZE))
def test_right_edge_holds_each_levels_incomplete_last_node(size: int) -> None:
    leaves = _leaves()
    tree = _tree()  # its node() refuses incomplete nodes: right_edge asks for complete ones
    edge = right_edge(size, tree.node)
    assert len(edge) == (size - 1).bit_length() + 1
    for level, value in enumerate(edge):
        last = (size - 1) >> level
        if (last + 1) << level <= size:
            assert value is None
        else:
            assert value == naive_mth(leaves[last << level : size])
    top = edge[-1] if edge[-1] is not None else tree.node(len(edge) - 1, 0)
    assert top == naive_mth(leaves[:size]) == root_from_nodes(size, tree.node)


@_SETTINGS
@given(st.integers(1, MAX_SIZE))
def test_inclusion_proofs_sharing_a_right_edge_are_the_rfcs(size: int) -> None:
    leaves = _leaves()
    tree = _tree()
    edge = right_edge(size, tree.node)
    for index in range(size):
        proof = inclusion_proof(index, size, tree.node, edge)
        assert proof == inclusion_proof(index, size, tree.node)
        assert proof == naive_path(index, leaves[:size])


def test_right_edge_of_no_tree_and_bad_arguments() -> None:
    tree = _tree()
    assert right_edge(0, tree.node) == ()
    for bad in (-1, True, 1.5, "3"):
        with pytest.raises(MalformedInput):
            right_edge(bad, tree.node)  # type: ignore[arg-type]
    with pytest.raises(MalformedInput):  # the edge of another tree's height
        inclusion_proof(3, 9, tree.node, right_edge(5, tree.node))
    with pytest.raises(MalformedInput):
        inclusion_proof(3, 9, tree.node, ())


@_SETTINGS
@given(_index_and_size(), st.data())
def test_inclusion_tampering_is_rejected(case: tuple[int, int], data: st.DataObject) -> None:
    index, size = case
    leaves = _leaves()
    tree = _tree()
    proof = tree.inclusion_proof(index, size)
    r = tree.root_at(size)
    if proof:
        pos = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = bytearray(proof[pos])
        bad[bit // 8] ^= 1 << (bit % 8)
        tampered = [*proof[:pos], bytes(bad), *proof[pos + 1 :]]
        with pytest.raises(InvalidProof):
            verify_inclusion(index, size, leaves[index], tampered, r)
        with pytest.raises(InvalidProof):
            verify_inclusion(index, size, leaves[index], proof[:-1], r)
    with pytest.raises(InvalidProof):
        verify_inclusion(index, size, leaves[index], [*proof, r], r)
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
        with pytest.raises(InvalidProof):
            verify_inclusion(other, size, leaves[index], proof, r)
        with pytest.raises(InvalidProof):
            verify_inclusion(index, size, leaves[other], proof, r)
    with pytest.raises(InvalidProof):
        verify_inclusion(index, size, leaves[index], proof, tree.root_at(size - 1))


# --- consistency -----------------------------------------------------------------------------


@_SETTINGS
@given(_two_sizes())
def test_consistency_proof_matches_rfc_and_verifies(case: tuple[int, int]) -> None:
    size1, size2 = case
    leaves = _leaves()
    tree = _tree()
    want = naive_proof(size1, leaves[:size2])
    proof = consistency_proof(size1, size2, tree.node)
    assert proof == want
    assert tree.consistency_proof(size1, size2) == want
    verify_consistency(size1, size2, proof, naive_mth(leaves[:size1]), naive_mth(leaves[:size2]))


@_SETTINGS
@given(_two_sizes(), st.data())
def test_consistency_tampering_is_rejected(case: tuple[int, int], data: st.DataObject) -> None:
    size1, size2 = case
    tree = _tree()
    proof = tree.consistency_proof(size1, size2)
    r1, r2 = tree.root_at(size1), tree.root_at(size2)
    if proof:
        pos = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = bytearray(proof[pos])
        bad[bit // 8] ^= 1 << (bit % 8)
        tampered = [*proof[:pos], bytes(bad), *proof[pos + 1 :]]
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size2, tampered, r1, r2)
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size2, proof[1:], r1, r2)
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size2, proof, r2, r1)
    with pytest.raises(InvalidProof):
        verify_consistency(size1, size2, [*proof, r1], r1, r2)
    if size1 > 1:
        # A root of another size never passes for size1.
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size2, proof, tree.root_at(size1 - 1), r2)
    if size2 < MAX_SIZE:
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size2, proof, r1, tree.root_at(size2 + 1))


@_SETTINGS
@given(leaves=st.lists(st.binary(max_size=8), max_size=70))
def test_root_from_nodes_is_the_root_of_every_prefix(leaves: list[bytes]) -> None:
    tree = MemoryTree()
    for leaf in leaves:
        tree.append_leaf_hash(leaf_hash(leaf))
    for size in range(len(leaves) + 1):
        assert root_from_nodes(size, tree.node) == root([leaf_hash(x) for x in leaves[:size]])


def test_root_from_nodes_refuses_a_negative_size() -> None:
    with pytest.raises(MalformedInput):
        root_from_nodes(-1, MemoryTree().node)
