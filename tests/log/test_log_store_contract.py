"""The store contract: every store (memory, SQLite, PostgreSQL) passes exactly these tests.

A store keeps what a batch writes and gives it back through the reads; it refuses every batch
that :func:`check_batch` refuses, with the same error class and code, and then holds exactly
what it held before (a refused batch writes nothing). The fence holds between two store
objects on one log, and between two writers racing with batches prepared from one size.
A new store is one more parameter of ``any_store``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from log_testkit import ORIGIN, ed25519_key, signer

from ironroot.errors import NotFound, StaleBatch, StorageError
from ironroot.log import (
    AuditableStore,
    Checkpoint,
    MemoryLogStore,
    StoreBatch,
    StoreLogFetcher,
    TreeState,
    sign_checkpoint,
    tiles_for_size,
)
from ironroot.merkle import CompactRange, MemoryTree, leaf_hash
from ironroot_pg import test_store

SIGNERS = [signer(ed25519_key())]


def _id(entry: bytes) -> bytes:
    return hashlib.sha256(entry).digest()


def _tiles(tree: MemoryTree, size: int) -> dict[tuple[int, int], bytes]:
    out = {}
    for address in tiles_for_size(size):
        first = address.index * 256
        out[(address.level, address.index)] = b"".join(
            tree.node(8 * address.level, first + i) for i in range(address.count)
        )
    return out


class Builder:
    """Makes the batches a log would write, from a tree it keeps in memory."""

    def __init__(self, entries: Sequence[bytes] = ()) -> None:
        self.entries: list[bytes] = []
        self.tree = MemoryTree()
        self.compact = CompactRange()
        self._add(entries)

    def _add(self, entries: Sequence[bytes]) -> None:
        for entry in entries:
            self.entries.append(entry)
            self.tree.append(entry)
            self.compact.append(leaf_hash(entry))

    def copy(self, size: int | None = None) -> Builder:
        """A builder at ``size`` (default: this one's) that has not written what follows."""
        return Builder(self.entries[: len(self.entries) if size is None else size])

    @property
    def size(self) -> int:
        return len(self.entries)

    def checkpoint(self, size: int, root: bytes | None = None) -> bytes:
        root = self.tree.root_at(size) if root is None else root
        return sign_checkpoint(Checkpoint(ORIGIN, size, root), SIGNERS)

    def empty(self) -> StoreBatch:
        return StoreBatch(
            first_index=0,
            state=TreeState(0, ()),
            checkpoint=self.checkpoint(0),
            meta={"origin": ORIGIN},
        )

    def integrate(
        self,
        entries: Sequence[bytes],
        *,
        cleared: Sequence[bytes] = (),
        batch_data: dict[str, bytes] | None = None,
    ) -> StoreBatch:
        """A batch integrating ``entries`` (the ids in ``cleared`` are pending among them);
        the builder moves on as if it committed."""
        first = self.size
        before = _tiles(self.tree, first)
        self._add(entries)
        after = _tiles(self.tree, self.size)
        return StoreBatch(
            first_index=first,
            integrated=[(_id(e), e) for e in entries],
            cleared=list(cleared),
            tiles={k: v for k, v in after.items() if before.get(k) != v},
            state=TreeState(self.size, self.compact.hashes),
            checkpoint=self.checkpoint(self.size),
            batch_data=batch_data,
        )


def _entries(count: int, tag: bytes = b"e") -> list[bytes]:
    return [tag + b" %d" % i for i in range(count)]


@dataclass(frozen=True)
class Opened:
    """A store under test, and how to open another store object on the same log."""

    kind: str
    store: AuditableStore
    again: Callable[[], AuditableStore]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened]:
    if request.param == "memory":
        memory = MemoryLogStore()
        yield Opened("memory", memory, lambda: memory)
        return
    with test_store(request.param) as where:
        config = where.config()
        opened: list[AuditableStore] = []

        def again() -> AuditableStore:
            store = config.open(tmp_path)
            opened.append(store)
            return store

        try:
            yield Opened(request.param, again(), again)
        finally:
            for store in opened:
                store.close()


def _snapshot(store: AuditableStore, ids: Sequence[bytes] = ()) -> dict[str, Any]:
    """Everything the reads give: equal snapshots, equal stores."""
    state = store.state()
    sizes = store.checkpoint_sizes()
    return {
        "state": state,
        "lookup": store.lookup(list(ids)),
        "pending": sorted(store.pending()),
        "entries": list(store.iter_entries()),
        "range": store.entries(0, state.size),
        "tiles": {
            (a.level, a.index): store.tile(a.level, a.index) for a in tiles_for_size(state.size)
        },
        "checkpoints": {s: store.checkpoint(s) for s in sizes},
        "latest": store.checkpoint(),
        "batch_data": {s: store.batch_data(s) for s in sizes},
        "batch_data_sizes": store.batch_data_sizes(),
        "count_tiles": store.count_tiles(),
        "count_ids": store.count_entry_ids(),
        "origin": store.meta("origin"),
    }


def _filled(store: AuditableStore) -> Builder:
    """A store holding 300 integrated entries in two batches and 2 pending ones."""
    builder = Builder()
    store.write(builder.empty())
    store.write(builder.integrate(_entries(200), batch_data={"r": b"first"}))
    store.write(builder.integrate(_entries(100, b"f")))
    store.write(StoreBatch(first_index=300, pending=[(_id(b"p0"), b"p0"), (_id(b"p1"), b"p1")]))
    return builder


# --- what a fresh store holds ---------------------------------------------------------------


def test_a_fresh_store_is_empty(any_store: Opened) -> None:
    store = any_store.store
    assert store.state() == TreeState(0, ())
    assert store.lookup([bytes(32)]) == {}
    assert store.lookup([]) == {}
    assert store.pending() == []
    assert store.entries(0, 10) == []
    assert store.tile(0, 0) is None
    assert store.checkpoint() is None
    assert store.checkpoint(0) is None
    assert store.batch_size_of(0) is None
    assert store.batch_data(0) is None
    assert store.meta("origin") is None
    assert list(store.iter_entries()) == []
    assert store.checkpoint_sizes() == []
    assert store.count_tiles() == store.count_entry_ids() == 0


# --- writes and reads -----------------------------------------------------------------------


def test_what_is_written_is_read_back(any_store: Opened) -> None:
    store = any_store.store
    builder = _filled(store)
    entries = _entries(200) + _entries(100, b"f")
    assert store.state() == TreeState(300, builder.compact.hashes)
    assert store.meta("origin") == ORIGIN
    ids = [_id(e) for e in entries]
    assert store.lookup([*ids, _id(b"p1"), bytes(32)]) == {
        **{entry_id: index for index, entry_id in enumerate(ids)},
        _id(b"p1"): None,
    }
    assert store.pending() == [(_id(b"p0"), b"p0"), (_id(b"p1"), b"p1")]
    assert store.pending(1) == [(_id(b"p0"), b"p0")]  # a page: the oldest first
    assert store.pending(5) == store.pending()
    assert store.pending(0) == []
    assert store.count_pending() == 2
    assert store.entries(0, 300) == entries
    assert store.entries(199, 202) == entries[199:202]
    assert store.entries(299, 400) == [entries[299]]
    assert list(store.iter_entries()) == list(enumerate(entries))
    assert {(a.level, a.index): store.tile(a.level, a.index) for a in tiles_for_size(300)} == (
        _tiles(builder.tree, 300)
    )
    assert store.count_tiles() == 3  # 0/0 full, 0/1 partial, 1/0 partial
    assert store.count_entry_ids() == 300
    assert store.checkpoint_sizes() == [0, 200, 300]
    assert (
        store.checkpoint() == store.checkpoint(300) == builder.checkpoint(300, builder.tree.root())
    )
    assert store.checkpoint(100) is None
    assert [store.batch_size_of(i) for i in (0, 199, 200, 299, 300)] == [200, 200, 300, 300, None]
    assert store.batch_data(200) == {"r": b"first"}
    assert store.batch_data(300) == {}
    assert store.batch_data(250) is None
    assert store.batch_data_sizes() == [200]
    assert store.storage_bytes() > sum(len(e) for e in entries)


def test_numbers_beyond_any_index_read_nothing(any_store: Opened) -> None:
    # e.g. the last canonical entry bundle (index 2**55 - 1) read as served: its entries
    # end at 2**63, one past SQLite's largest integer
    store = any_store.store
    _filled(store)
    huge = 1 << 64
    bundle = "tile/entries/x036/x028/x797/x018/x963/967"
    with pytest.raises(NotFound, match="no entry bundle"):
        StoreLogFetcher(store).fetch(bundle)
    assert store.entries((1 << 63) - 256, 1 << 63) == []
    assert store.entries(299, huge) == store.entries(299, 300)
    assert store.tile(0, huge) is None
    assert store.checkpoint(huge) is None
    assert store.batch_size_of(huge) is None
    assert store.batch_data(huge) is None


def test_pending_rows_are_integrated_and_cleared_in_one_write(any_store: Opened) -> None:
    store = any_store.store
    builder = _filled(store)
    store.write(StoreBatch(first_index=300, pending=[(_id(b"p1"), b"p1")]))  # idempotent
    batch = builder.integrate([b"p0", b"p1", b"new"], cleared=[_id(b"p0"), _id(b"p1")])
    store.write(batch)
    assert store.pending() == []
    assert store.lookup([_id(b"p0"), _id(b"new")]) == {_id(b"p0"): 300, _id(b"new"): 302}
    assert store.state().size == 303


def test_a_store_reopened_holds_the_same(any_store: Opened) -> None:
    if any_store.kind == "memory":
        pytest.skip("the memory store lives as long as its object")
    _filled(any_store.store)
    before = _snapshot(any_store.store, [_id(b"p0"), _id(b"f 7")])
    any_store.store.close()
    assert _snapshot(any_store.again(), [_id(b"p0"), _id(b"f 7")]) == before


# --- the rules: every refusal writes nothing ------------------------------------------------


def _good(builder: Builder) -> StoreBatch:
    return builder.copy().integrate([b"n0", b"n1"])


def _pending(*entries: bytes, first_index: int = 300) -> StoreBatch:
    return StoreBatch(first_index=first_index, pending=[(_id(e), e) for e in entries])


_REFUSED: dict[str, Callable[[Builder], StoreBatch]] = {
    "clear-not-pending": lambda b: b.copy().integrate([b"n0"], cleared=[_id(b"n0")]),
    "integrate-integrated": lambda b: b.copy().integrate([b"e 3"]),
    "integrate-twice-in-a-batch": lambda b: b.copy().integrate([b"n0", b"n0"]),
    "pending-integrated": lambda b: _pending(b"e 5"),
    "pending-and-integrated-in-a-batch": lambda b: replace(_good(b), pending=[(_id(b"n0"), b"n0")]),
    "pending-not-cleared": lambda b: b.copy().integrate([b"p0"]),
    "cleared-not-integrated": lambda b: replace(_good(b), cleared=[_id(b"p0")]),
    "id-not-hash": lambda b: StoreBatch(first_index=300, pending=[(bytes(32), b"x")]),
    "entry-too-large": lambda b: _pending(b"x" * 65536),
    "size-mismatch": lambda b: replace(
        _good(b),
        state=TreeState(303, _good(b).state.hashes),  # type: ignore[union-attr]
    ),
    "state-without-checkpoint": lambda b: replace(_good(b), checkpoint=None),
    "checkpoint-of-another-size": lambda b: replace(_good(b), checkpoint=b.checkpoint(300)),
    "checkpoint-not-a-note": lambda b: replace(_good(b), checkpoint=b"not a note"),
    "checkpoint-exists": lambda b: StoreBatch(
        first_index=300, state=TreeState(300, b.compact.hashes), checkpoint=b.checkpoint(300)
    ),
    "compact-range-short": lambda b: replace(
        _good(b),
        state=TreeState(302, _good(b).state.hashes[:-1]),  # type: ignore[union-attr]
    ),
    "tile-of-the-wrong-width": lambda b: replace(
        _good(b), tiles={**_good(b).tiles, (0, 1): bytes(32 * 3)}
    ),
    "tile-rewritten": lambda b: replace(_good(b), tiles={**_good(b).tiles, (0, 1): bytes(32 * 46)}),
    "full-tile-rewritten": lambda b: replace(
        _good(b), tiles={**_good(b).tiles, (0, 0): bytes(32 * 256)}
    ),
    "tile-without-state": lambda b: StoreBatch(first_index=300, tiles={(0, 1): bytes(32 * 45)}),
    "batch-data-without-state": lambda b: StoreBatch(first_index=300, batch_data={"r": b"x"}),
    "origin-changed": lambda b: StoreBatch(first_index=300, meta={"origin": "other.example"}),
    "negative-first-index": lambda b: _pending(b"x", first_index=-1),
    # Batches of the wrong shape: refused like the others, never a TypeError, a ValueError or
    # an AttributeError out of the store's write (nor a memoryview stored as an id).
    "tile-key-not-integers": lambda b: replace(
        _good(b), tiles={**_good(b).tiles, _odd(("0", 1)): bytes(32 * 46)}
    ),
    "tile-key-of-three": lambda b: replace(_good(b), tiles={_odd((0, 1, 2)): bytes(32)}),
    "tile-level-a-real": lambda b: replace(_good(b), tiles={_odd((0.0, 1)): bytes(32 * 46)}),
    "tile-level-beyond-any": lambda b: replace(
        _good(b), tiles={**_good(b).tiles, (1 << 20, 0): bytes(32)}
    ),
    "tile-index-beyond-any": lambda b: replace(
        _good(b), tiles={**_good(b).tiles, (0, 1 << 70): bytes(32)}
    ),
    "tiles-not-a-mapping": lambda b: replace(_good(b), tiles=_odd([((0, 1), bytes(32 * 46))])),
    "state-size-a-real": lambda b: replace(
        _good(b),
        state=TreeState(_odd(302.0), _good(b).state.hashes),  # type: ignore[union-attr]
    ),
    "state-not-a-tree-state": lambda b: replace(_good(b), state=_odd((302, ()))),
    "pending-row-not-a-pair": lambda b: StoreBatch(first_index=300, pending=_odd([b"x"])),
    "integrated-row-not-a-pair": lambda b: replace(
        _good(b), integrated=_odd([(_id(b"n0"), b"n0", 0), (_id(b"n1"), b"n1")])
    ),
    "id-not-bytes": lambda b: StoreBatch(
        first_index=300, pending=[(_odd(memoryview(_id(b"x"))), b"x")]
    ),
    "cleared-id-unhashable": lambda b: replace(_good(b), cleared=_odd([bytearray(32)])),
    "batch-data-not-a-mapping": lambda b: replace(_good(b), batch_data=_odd([("r", b"x")])),
    "meta-not-a-mapping": lambda b: StoreBatch(first_index=300, meta=_odd([("origin", ORIGIN)])),
}


def _odd(value: object) -> Any:
    """A value of the wrong type, as a caller outside the type checker may pass one."""
    return value


_STALE: dict[str, Callable[[Builder], StoreBatch]] = {
    "integration-from-an-older-size": lambda b: b.copy(299).integrate([b"n0"]),
    "pending-from-an-older-size": lambda b: _pending(b"x", first_index=299),
    "pending-from-a-newer-size": lambda b: _pending(b"x", first_index=301),
    "empty-tree-again": lambda b: b.copy(0).empty(),
}


_IDS = [_id(e) for e in (b"e 3", b"f 99", b"p0", b"p1", b"n0", b"x")]


@pytest.mark.parametrize("case", sorted(_REFUSED))
def test_a_batch_against_the_rules_is_refused_and_writes_nothing(
    any_store: Opened, case: str
) -> None:
    store = any_store.store
    builder = _filled(store)
    before = _snapshot(store, _IDS)
    with pytest.raises(StorageError) as info:
        store.write(_REFUSED[case](builder))
    assert type(info.value) is StorageError
    assert info.value.code == "batch-refused"
    assert _snapshot(store, _IDS) == before
    store.write(_good(builder))  # and the store goes on
    assert store.state().size == 302


@pytest.mark.parametrize("case", sorted(_STALE))
def test_a_stale_batch_is_refused_by_the_fence(any_store: Opened, case: str) -> None:
    store = any_store.store
    builder = _filled(store)
    before = _snapshot(store, _IDS)
    with pytest.raises(StaleBatch) as info:
        store.write(_STALE[case](builder))
    assert info.value.code == "stale-batch"
    assert _snapshot(store, _IDS) == before


def test_the_fence_holds_between_two_store_objects(any_store: Opened) -> None:
    first = any_store.store
    builder = _filled(first)
    second = any_store.again()
    stale = builder.copy().integrate([b"second"])
    first.write(builder.copy().integrate([b"first"]))
    with pytest.raises(StaleBatch):
        second.write(stale)
    assert second.lookup([_id(b"first"), _id(b"second")]) == {_id(b"first"): 300}


def test_of_two_racing_writers_exactly_one_commits(any_store: Opened) -> None:
    builder = _filled(any_store.store)
    stores = [any_store.store, any_store.again()]
    batches = [builder.copy().integrate([b"racer %d" % i]) for i in range(2)]
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def race(i: int) -> None:
        start.wait()
        try:
            stores[i].write(batches[i])
            outcomes.append("committed")
        except StaleBatch:
            outcomes.append("stale")

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["committed", "stale"]
    assert any_store.store.state().size == 301
