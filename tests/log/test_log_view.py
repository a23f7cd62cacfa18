"""LogView: the log's read side, opened without a writer or a signing key (a read replica)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from log_testkit import ORIGIN, LogPlace, ed25519_key, entries, fill, signer

from ironroot.errors import ConfigError, MalformedInput, NotFound, StorageError
from ironroot.log import (
    Log,
    LogView,
    MemoryLogStore,
    StoreBatch,
    TreeState,
    open_checkpoint,
    open_view,
)
from ironroot.merkle import MemoryTree, leaf_hash, verify_consistency, verify_inclusion
from ironroot_pg import add_store_to_config

SIGNERS = [signer(ed25519_key())]


def test_a_view_takes_up_what_the_writer_commits_and_serves_the_same_reads(
    place: LogPlace,
) -> None:
    place.data_dir.mkdir(parents=True)
    add_store_to_config(place.data_dir, place.store)
    items = entries(300)
    with place.open_log(origin=ORIGIN, note_signers=SIGNERS, max_batch=64) as log:
        fill(log, items[:100])
        with open_view(place.data_dir, origin=ORIGIN) as view:
            assert view.tree_size == 100
            fill(log, items[100:])
            assert view.tree_size == 100  # until a read asks for more
            assert view.checkpoint() == log.checkpoint()
            assert view.tree_size == 300
            tree = MemoryTree(items)
            assert view.root() == log.root() == tree.root()
            assert view.root(77) == tree.root_at(77)
            proof = view.inclusion_proof(250, 300)
            assert proof == log.inclusion_proof(250, 300)
            verify_inclusion(250, 300, leaf_hash(items[250]), proof, view.root())
            consistency = view.consistency_proof(100, 300)
            verify_consistency(100, 300, consistency, tree.root_at(100), view.root())
            assert view.read_tile(0, 0, None) == log.read_tile(0, 0, None)
            assert view.read_entry_bundle(1, 44) == log.read_entry_bundle(1, 44)
            assert view.batch_data(300) == log.batch_data(300)
            assert view.checkpoint_at(100) == log.checkpoint_at(100)
            assert view.entry(299) == items[299]
            entry_id = view.entry_id_at(5)
            assert view.status(entry_id) == log.status(entry_id)
            assert view.wait_for_growth(0, timeout=0) == 300
            open_checkpoint(view.checkpoint(), [s.verifier() for s in SIGNERS], origin=ORIGIN)


def test_a_view_of_a_sqlite_log_opens_it_read_only(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        open_view(tmp_path / "none", origin=ORIGIN)  # nothing to read, and nothing created
    assert not (tmp_path / "none").exists()
    with Log.open(tmp_path / "data", origin=ORIGIN, note_signers=SIGNERS) as log:
        fill(log, entries(3))
    with open_view(tmp_path / "data", origin=ORIGIN) as view:
        assert view.tree_size == 3
        with pytest.raises(StorageError):  # SQLite opened read-only
            view.store.write(StoreBatch(first_index=3, meta={"note": "x"}))


def test_a_view_refuses_another_origin_and_a_store_no_log_initialized() -> None:
    store = MemoryLogStore()
    with pytest.raises(StorageError):
        LogView(store, origin=ORIGIN)  # no signed empty tree yet: nothing to serve
    Log(store, origin=ORIGIN, note_signers=SIGNERS).close()
    store = MemoryLogStore()
    Log(store, origin=ORIGIN, note_signers=SIGNERS)
    with pytest.raises(ConfigError):
        LogView(store, origin="other.example/log")
    with pytest.raises(MalformedInput):
        LogView(store, origin="not an origin\n")


def test_a_view_answers_beyond_its_tree_and_bad_arguments_with_typed_errors() -> None:
    store = MemoryLogStore()
    log = Log(store, origin=ORIGIN, note_signers=SIGNERS)
    with log:
        fill(log, entries(4))
        view = LogView(store, origin=ORIGIN)
        with pytest.raises(NotFound):
            view.entry(4)
        with pytest.raises(NotFound):
            view.inclusion_proof(0, 5)
        with pytest.raises(NotFound):
            view.read_entry_bundle(0, None)
        with pytest.raises(NotFound):
            view.status(hashlib.sha256(b"never submitted").digest())
        with pytest.raises(MalformedInput):
            view.status(b"short")
        with pytest.raises(MalformedInput):
            view.entry(-1)
        with pytest.raises(MalformedInput):
            view.root(True)  # type: ignore[arg-type]
        with pytest.raises(NotFound):
            view.checkpoint_at(3)
        assert view.note_verifiers == ()
    view.close()
    view.close()  # idempotent
    assert view.wait_for_growth(10) == 4  # a closed view does not wait


def test_proofs_of_many_sizes_share_right_edges_and_stay_the_trees() -> None:
    """Each tree size's ephemeral nodes are computed once and kept for a few sizes: proofs at
    more sizes than are kept, asked again after their edges were dropped, and proofs of every
    leaf of one size are still the tree's."""
    items = entries(140)
    tree = MemoryTree(items)
    log = Log.open_memory(origin=ORIGIN, note_signers=SIGNERS, max_batch=7)
    with log:
        fill(log, items)
        sizes = list(range(1, 141))
        for _ in range(2):  # the second pass finds none of the early sizes' edges kept
            for size in sizes[::9]:
                for index in (0, size // 2, size - 1):
                    assert log.inclusion_proof(index, size) == tree.inclusion_proof(index, size)
        for index in range(140):
            proof = log.inclusion_proof(index, 140)
            assert proof == tree.inclusion_proof(index, 140)
            verify_inclusion(index, 140, leaf_hash(items[index]), proof, tree.root())


class _CommitsAfterState(MemoryLogStore):
    """A store where the writer commits a batch right after a reader took the tree state (as
    another process's sequencer may, between a view's two reads at open)."""

    def __init__(self) -> None:
        super().__init__()
        self.after_state: list[bytes] = []
        self.log: Log | None = None

    def state(self) -> TreeState:
        taken = super().state()
        if self.after_state and self.log is not None:
            fill(self.log, [self.after_state.pop()])
        return taken


def test_a_view_opened_while_the_writer_commits_takes_the_checkpoint_of_the_size_it_read() -> None:
    store = _CommitsAfterState()
    with Log(store, origin=ORIGIN, note_signers=SIGNERS) as log:
        fill(log, entries(4))
        store.log = log
        store.after_state.append(b"committed between the view's two reads")
        view = LogView(store, origin=ORIGIN)  # the store's latest checkpoint is already size 5
        assert view.tree_size == 4
        assert view.root() == MemoryTree(entries(4)).root()
        assert view.refresh() == 5
        assert view.checkpoint() == store.checkpoint()


def test_wake_ends_a_wait_for_growth_that_began_before_it() -> None:
    with Log(MemoryLogStore(), origin=ORIGIN, note_signers=SIGNERS) as log:
        fill(log, entries(2))
        view = LogView(log.store, origin=ORIGIN)
        waiting, sizes = threading.Event(), []

        def wait() -> None:
            waiting.set()
            sizes.append(view.wait_for_growth(2, timeout=60))

        waiter = threading.Thread(target=wait)
        waiter.start()
        assert waiting.wait(10)
        for _ in range(200):  # until the wait has begun, a wake comes before it
            view.wake()
            waiter.join(0.05)
            if not waiter.is_alive():
                break
        assert not waiter.is_alive()  # woken, long before its timeout
        assert sizes == [2]  # not grown
