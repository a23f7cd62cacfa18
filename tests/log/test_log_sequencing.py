"""The sequenced Log on every store (memory, SQLite, PostgreSQL): tiles and proofs against
merkle.MemoryTree, reopening, idempotent submission, batch signing and its failures."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from log_testkit import ORIGIN, LogPlace, ed25519_key, entries, fill, mldsa_key, signer

from hypothesis_budget import examples
from ironroot.errors import (
    ConfigError,
    MalformedInput,
    NotFound,
    PayloadTooLarge,
    StorageError,
)
from ironroot.log import (
    TILE_WIDTH,
    Checkpoint,
    Integrated,
    Log,
    MemoryLogStore,
    NoteSigner,
    StoreBatch,
    open_checkpoint,
    parse_entry_bundle,
    tiles_for_size,
    verify_log,
)
from ironroot.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from ironroot_pg import test_store

KEY = ed25519_key()
SIGNERS = [NoteSigner(ORIGIN, KEY)]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def new_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    if request.param == "memory":
        with Log.open_memory(origin=ORIGIN, note_signers=SIGNERS, max_batch=100) as log:
            yield log
        return
    with test_store(request.param) as store:
        place = LogPlace(store, tmp_path)
        with place.open_log(origin=ORIGIN, note_signers=SIGNERS, max_batch=100) as log:
            yield log


def _check_tiles_against(log: Log, tree: MemoryTree, size: int) -> None:
    for address in tiles_for_size(size):
        tile = log.read_tile(address.level, address.index, address.width)
        first = address.index * TILE_WIDTH
        expected = b"".join(tree.node(8 * address.level, first + i) for i in range(address.count))
        assert tile == expected, address.path


def test_empty_log_has_a_signed_size_zero_checkpoint(new_log: Log) -> None:
    checkpoint = open_checkpoint(new_log.checkpoint(), [SIGNERS[0].verifier()], origin=ORIGIN)
    assert checkpoint == Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    assert new_log.tree_size == 0
    assert new_log.root() == EMPTY_ROOT
    with pytest.raises(NotFound):
        new_log.entry(0)
    with pytest.raises(NotFound):
        new_log.read_tile(0, 0, 1)


@pytest.mark.parametrize("sizes", [[255, 1, 1], [256, 1], [200, 57, 254, 2]])
def test_tiles_and_roots_match_memory_tree_across_tile_boundaries(
    new_log: Log, sizes: list[int]
) -> None:
    tree = MemoryTree()
    done = 0
    checkpoints = []
    for count in sizes:
        batch = entries(count, done)
        placed = fill(new_log, batch)
        for item in batch:
            tree.append(item)
        done += count
        assert [p.index for p in placed] == list(range(done - count, done))
        assert new_log.tree_size == done
        assert new_log.root() == tree.root()
        _check_tiles_against(new_log, tree, done)
        checkpoints.append(done)
    # Partial tiles of earlier checkpoints are still served, as prefixes.
    for size in checkpoints:
        _check_tiles_against(new_log, tree, size)
        assert new_log.root(size) == tree.root_at(size)
        note = new_log.checkpoint_at(size)
        assert open_checkpoint(note, [SIGNERS[0].verifier()]).root == tree.root_at(size)


def test_a_full_level_one_tile_at_65536_entries() -> None:
    log = Log.open_memory(origin=ORIGIN, note_signers=SIGNERS, max_batch=4096)
    tree = MemoryTree()
    items = entries(65536 + 300)
    with log:
        fill(log, items[:65535])
        fill(log, items[65535:65537])
        fill(log, items[65537:])
    for item in items:
        tree.append(item)
    assert log.root() == tree.root()
    _check_tiles_against(log, tree, len(items))
    assert len(log.read_tile(1, 0, None)) == 8192
    assert log.read_tile(2, 0, 1) == tree.node(16, 0)
    assert log.root(65536) == tree.root_at(65536)
    assert log.root(65535) == tree.root_at(65535)
    report = verify_log(log.store, origin=ORIGIN, verifiers=[SIGNERS[0].verifier()])
    assert report.size == len(items)


def test_entries_bundles_and_ids(new_log: Log) -> None:
    items = entries(300)
    placed = fill(new_log, items)
    assert new_log.entry(299) == items[299]
    assert new_log.entry_id_at(7) == hashlib.sha256(items[7]).digest()
    assert parse_entry_bundle(new_log.read_entry_bundle(0, None), 256) == tuple(items[:256])
    assert parse_entry_bundle(new_log.read_entry_bundle(1, 44), 44) == tuple(items[256:])
    assert parse_entry_bundle(new_log.read_entry_bundle(1, 10), 10) == tuple(items[256:266])
    with pytest.raises(NotFound):
        new_log.read_entry_bundle(1, None)
    with pytest.raises(NotFound):
        new_log.read_entry_bundle(1, 45)
    with pytest.raises(NotFound):
        new_log.read_tile(0, 1, None)
    with pytest.raises(NotFound):
        new_log.entry(300)
    with pytest.raises(MalformedInput):
        new_log.entry(-1)
    assert all(p.tree_size >= p.index + 1 for p in placed)
    assert new_log.batch_data(placed[0].tree_size) == {}
    with pytest.raises(NotFound):
        new_log.batch_data(placed[0].tree_size + 1)


def test_resubmitting_is_idempotent(new_log: Log) -> None:
    first = new_log.submit(b"same")
    second = new_log.submit(b"same")
    where = first.integrated.result(10)
    assert second.integrated.result(10) == where
    assert first.entry_id == second.entry_id
    again = new_log.submit(b"same")
    assert again.integrated.result(10) == where
    assert again.durable.done()
    assert new_log.tree_size == 1
    assert new_log.status(first.entry_id) == where


def test_status_of_unknown_and_malformed_ids(new_log: Log) -> None:
    with pytest.raises(NotFound):
        new_log.status(bytes(32))
    with pytest.raises(MalformedInput):
        new_log.status(b"short")


def test_submit_refuses_oversized_and_non_bytes(new_log: Log) -> None:
    with pytest.raises(PayloadTooLarge):
        new_log.submit(b"x" * 65536)
    with pytest.raises(MalformedInput):
        new_log.submit("text")  # type: ignore[arg-type]
    assert new_log.submit(b"x" * 65535).integrated.result(10).index == 0


def test_concurrent_submitters(new_log: Log) -> None:
    results: dict[int, list[Integrated]] = {}

    def worker(n: int) -> None:
        results[n] = fill(new_log, entries(150, tag=b"thread %d" % n))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    indices = sorted(p.index for placed in results.values() for p in placed)
    assert indices == list(range(600))
    verify_log(new_log.store, origin=ORIGIN, verifiers=[SIGNERS[0].verifier()])


# --- proofs ---------------------------------------------------------------------------------

_PROOF_ITEMS = entries(700)
_PROOF_TREE = MemoryTree(_PROOF_ITEMS)
_PROOF_LOG = Log.open_memory(origin=ORIGIN, note_signers=SIGNERS, max_batch=64)
_PROOF_LOG.start()
fill(_PROOF_LOG, _PROOF_ITEMS)
_PROOF_LOG.close()


@settings(max_examples=examples(80), deadline=None)
@given(st.data())
def test_inclusion_proofs_verify_and_match_memory_tree(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=700))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = _PROOF_LOG.inclusion_proof(index, size)
    assert proof == _PROOF_TREE.inclusion_proof(index, size)
    verify_inclusion(index, size, leaf_hash(_PROOF_ITEMS[index]), proof, _PROOF_LOG.root(size))


@settings(max_examples=examples(80), deadline=None)
@given(st.data())
def test_consistency_proofs_verify_and_match_memory_tree(data: st.DataObject) -> None:
    size2 = data.draw(st.integers(min_value=1, max_value=700))
    size1 = data.draw(st.integers(min_value=1, max_value=size2))
    proof = _PROOF_LOG.consistency_proof(size1, size2)
    assert proof == _PROOF_TREE.consistency_proof(size1, size2)
    verify_consistency(size1, size2, proof, _PROOF_LOG.root(size1), _PROOF_LOG.root(size2))


def test_proofs_beyond_the_tree_are_not_found() -> None:
    with pytest.raises(NotFound):
        _PROOF_LOG.inclusion_proof(0, 701)
    with pytest.raises(NotFound):
        _PROOF_LOG.consistency_proof(1, 701)
    with pytest.raises(MalformedInput):
        _PROOF_LOG.inclusion_proof(700, 700)
    with pytest.raises(NotFound):
        _PROOF_LOG.root(701)


# --- reopening ------------------------------------------------------------------------------


def test_reopen_keeps_everything(place: LogPlace) -> None:
    items = entries(600)
    with place.open_log(origin=ORIGIN, note_signers=SIGNERS, max_batch=128) as log:
        placed = fill(log, items[:400])
        first_root, first_checkpoint = log.root(), log.checkpoint()
        tiles = {a: log.read_tile(a.level, a.index, a.width) for a in tiles_for_size(400)}
    with place.open_log(origin=ORIGIN, note_signers=SIGNERS, max_batch=128) as log:
        assert log.tree_size == 400
        assert log.root() == first_root
        assert log.checkpoint() == first_checkpoint
        assert {a: log.read_tile(a.level, a.index, a.width) for a in tiles} == tiles
        assert log.status(log.entry_id_at(123)) == placed[123]
        fill(log, items[400:])
        assert log.root() == MemoryTree(items).root()
        verify_log(log.store, origin=ORIGIN, verifiers=[SIGNERS[0].verifier()])


def test_reopen_with_another_origin_is_refused(place: LogPlace) -> None:
    place.open_log(origin=ORIGIN, note_signers=SIGNERS).close()
    with pytest.raises(ConfigError):
        place.open_log(origin="other.example", note_signers=[NoteSigner("other.example", KEY)])


def test_another_log_of_the_same_origin_is_refused(place: LogPlace) -> None:
    with place.open_log(origin=ORIGIN, note_signers=SIGNERS) as log:
        fill(log, entries(3))
        checkpoint = log.checkpoint()
    # a service whose store settings point at this log's store, under its own key
    stranger = [NoteSigner(ORIGIN, ed25519_key())]
    with pytest.raises(ConfigError, match="not signed by this log's checkpoint key"):
        place.open_log(origin=ORIGIN, note_signers=stranger)
    # nothing was written; the log's own key (with a key added beside it) still opens it
    added = [*SIGNERS, NoteSigner(ORIGIN, mldsa_key())]
    with place.open_log(origin=ORIGIN, note_signers=added) as log:
        assert (log.tree_size, log.checkpoint()) == (3, checkpoint)


def test_a_log_needs_a_signer() -> None:
    with pytest.raises(ConfigError):
        Log.open_memory(origin=ORIGIN, note_signers=[])
    with pytest.raises(ConfigError):
        Log.open_memory(origin=ORIGIN, note_signers=SIGNERS, max_batch=0)


def test_closed_log_refuses_submissions() -> None:
    log = Log.open_memory(origin=ORIGIN, note_signers=SIGNERS)
    log.close()
    with pytest.raises(StorageError):
        log.submit(b"late")
    with pytest.raises(StorageError):
        log.start()


def test_mldsa_and_ed25519_signed_checkpoints(place: LogPlace) -> None:
    ml = mldsa_key()
    both = [signer(KEY), signer(ml)]
    with place.open_log(origin=ORIGIN, note_signers=both) as log:
        fill(log, entries(10))
        note = log.checkpoint()
    assert open_checkpoint(note, [signer(ml).verifier()]).size == 10
    assert open_checkpoint(note, [signer(KEY).verifier()]).size == 10


def test_single_submissions_within_the_linger_share_one_batch(place: LogPlace) -> None:
    # The writer is woken for the first entry and for a full batch, not for each entry.
    log = place.open_log(origin=ORIGIN, note_signers=SIGNERS, max_batch=4, linger=1.0)
    with log:
        tickets = [log.submit(entry) for entry in entries(9)]
        placed = [t.integrated.result(30) for t in tickets]
    assert [p.tree_size for p in placed[:8]] == [4] * 4 + [8] * 4
    assert placed[8] == Integrated(8, 9)


def test_fill_ends_the_linger_without_capping_the_batch() -> None:
    # Five queued together are one batch although two end the linger; after it, two (at most
    # ``fill``) end the next linger: the second single submission joins the first's batch.
    # A memory store, so that a commit never takes a noticeable part of the linger's second.
    log = Log(MemoryLogStore(), origin=ORIGIN, note_signers=SIGNERS, linger=1.0, fill=2)
    with log:
        first = log.submit_many(entries(5))
        assert [t.integrated.result(30).tree_size for t in first] == [5] * 5
        a = log.submit(b"a lone entry")
        threading.Event().wait(0.2)
        assert not a.integrated.done()  # one queued of the two that end the linger: it waits
        b = log.submit(b"its companion")  # the second: the batch goes now, not at 1 s
        assert b.integrated.result(0.6) == Integrated(6, 7)
        assert a.integrated.result(30) == Integrated(5, 7)


def test_a_lone_client_after_a_lone_batch_does_not_wait_the_linger() -> None:
    # The last batch took one entry: one queued entry ends the next linger. The linger is a
    # second; each of these answers well within half of it (a memory store commits at once).
    log = Log(MemoryLogStore(), origin=ORIGIN, note_signers=SIGNERS, linger=1.0, fill=32)
    with log:
        assert log.submit(b"first").integrated.result(30) == Integrated(0, 1)
        for n in range(1, 4):
            assert log.submit(b"next %d" % n).integrated.result(0.5) == Integrated(n, n + 1)


@pytest.mark.parametrize("fill", [0, -1, True, 2.5])
def test_fill_must_be_a_positive_integer(fill: object) -> None:
    with pytest.raises(ConfigError, match="fill must be a positive integer"):
        Log(MemoryLogStore(), origin=ORIGIN, note_signers=SIGNERS, fill=fill)  # type: ignore[arg-type]


def test_a_thread_waiting_for_growth_does_not_take_the_writer_s_wake_up(place: LogPlace) -> None:
    log = place.open_log(origin=ORIGIN, note_signers=SIGNERS)
    grown: list[int] = []
    waiter = threading.Thread(target=lambda: grown.append(log.wait_for_growth(0, timeout=30)))
    waiter.start()  # waits on the log's condition before the writer does
    threading.Event().wait(0.2)
    with log:
        ticket = log.submit(b"one entry")
        assert ticket.integrated.result(10) == Integrated(0, 1)
        waiter.join(10)
    assert grown == [1]


# --- batch signing --------------------------------------------------------------------------


class _Receipts:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[int, bytes]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def sign_batch(self, tree_size: int, root: bytes) -> Mapping[str, bytes]:
        with self.lock:
            self.calls.append((tree_size, root))
            if len(self.calls) <= self.fail_first:
                raise RuntimeError("signing service unavailable")
        return {"receipt": b"R" + tree_size.to_bytes(8, "big") + root}


def test_batch_signer_data_is_stored_per_batch(place: LogPlace) -> None:
    receipts = _Receipts()
    with place.open_log(origin=ORIGIN, note_signers=SIGNERS, batch_signer=receipts) as log:
        placed = fill(log, entries(50))
        size = placed[-1].tree_size
        assert log.batch_data(size) == {"receipt": b"R" + size.to_bytes(8, "big") + log.root(size)}
    assert all(call[1] == MemoryTree(entries(call[0])).root() for call in receipts.calls)


def test_failing_batch_signer_keeps_entries_durable_and_retries(place: LogPlace) -> None:
    receipts = _Receipts(fail_first=3)
    with place.open_log(origin=ORIGIN, note_signers=SIGNERS, batch_signer=receipts) as log:
        tickets = log.submit_many(entries(20))
        for ticket in tickets:
            ticket.durable.result(10)
        placed = [t.integrated.result(30) for t in tickets]
        assert [p.index for p in placed] == list(range(20))
        assert len(receipts.calls) >= 4
        verify_log(log.store, origin=ORIGIN, verifiers=[SIGNERS[0].verifier()])


def test_commit_listeners_see_each_committed_batch_before_its_tickets_resolve(
    place: LogPlace,
) -> None:
    receipts = _Receipts(fail_first=2)  # two failed integrations: no commit, no call
    seen: list[tuple[int, bytes, dict[str, bytes], bool]] = []
    log = place.open_log(origin=ORIGIN, note_signers=SIGNERS, batch_signer=receipts)

    def listener(size: int, root: bytes, data: Mapping[str, bytes]) -> None:
        pending = [t for t in tickets if not t.integrated.done()]
        seen.append((size, root, dict(data), log.tree_size == size and bool(pending)))

    log.add_commit_listener(listener)
    tickets = log.submit_many(entries(20))
    with log:
        placed = [t.integrated.result(30) for t in tickets]
        assert [s for s, _, _, _ in seen] == sorted({p.tree_size for p in placed})
        for size, root, data, early in seen:
            assert root == log.root(size) == MemoryTree(entries(size)).root()
            assert data == log.batch_data(size)
            assert early  # the head moved, and the batch's tickets still waited
    assert len(receipts.calls) == len(seen) + 2


def test_a_failing_commit_listener_is_logged_and_the_log_goes_on(
    place: LogPlace, caplog: pytest.LogCaptureFixture
) -> None:
    def listener(size: int, root: bytes, data: Mapping[str, bytes]) -> None:
        raise RuntimeError("listener bug")

    log = place.open_log(origin=ORIGIN, note_signers=SIGNERS)
    log.add_commit_listener(listener)
    with log:
        placed = fill(log, entries(5))
    assert placed[-1].tree_size == 5
    assert "a commit listener failed" in caplog.text


def test_proofs_of_a_new_batch_need_no_tile_read(place: LogPlace) -> None:
    with place.open_log(origin=ORIGIN, note_signers=SIGNERS) as log:
        fill(log, entries(300))
        tree = MemoryTree(entries(300))
        reads: list[tuple[int, int]] = []
        tile = log.store.tile

        def counting(level: int, index: int) -> bytes | None:
            reads.append((level, index))
            return tile(level, index)

        log.store.tile = counting  # type: ignore[method-assign]
        for index in range(300):
            path = log.inclusion_proof(index, 300)
            verify_inclusion(index, 300, leaf_hash(entries(300)[index]), path, tree.root())
        assert reads == []


class _Broken:
    def sign_batch(self, tree_size: int, root: bytes) -> Mapping[str, bytes]:
        raise RuntimeError("down")


def test_pending_entries_are_integrated_on_reopen(place: LogPlace) -> None:
    log = place.open_log(origin=ORIGIN, note_signers=SIGNERS, batch_signer=_Broken())
    log.start()
    tickets = log.submit_many(entries(30))
    for ticket in tickets:
        ticket.durable.result(10)
    assert log.status(tickets[0].entry_id) is None
    assert log.tree_size == 0
    log.close()
    with pytest.raises(StorageError):
        tickets[0].integrated.result(0)

    reopened = place.open_log(origin=ORIGIN, note_signers=SIGNERS, batch_signer=_Receipts())
    assert reopened.status(tickets[0].entry_id) is None  # pending until the writer runs
    with reopened:
        assert reopened.wait_idle(10)
        deadline = 0
        while reopened.tree_size < 30 and deadline < 200:
            threading.Event().wait(0.05)
            deadline += 1
        assert reopened.tree_size == 30
        assert reopened.status(tickets[29].entry_id) == Integrated(29, 30)
        assert reopened.root() == MemoryTree(entries(30)).root()
        verify_log(reopened.store, origin=ORIGIN, verifiers=[SIGNERS[0].verifier()])


def test_a_backlog_of_pending_rows_is_integrated_page_by_page(place: LogPlace) -> None:
    # Pending rows left by an outage (a signer down, or replicas storing them while no
    # sequencer ran) may be more than one batch: the writer reads them a page of max_batch at
    # a time, never all at once, and goes on to the next page without waiting for a
    # submission.
    log = place.open_log(origin=ORIGIN, note_signers=SIGNERS, batch_signer=_Broken())
    log.start()
    for ticket in log.submit_many(entries(25)):
        ticket.durable.result(10)
    log.close()
    store = place.open_store()
    assert store.count_pending() == 25
    reads: list[int | None] = []
    read = store.pending

    def counting(limit: int | None = None) -> list[tuple[bytes, bytes]]:
        reads.append(limit)
        return read(limit)

    store.pending = counting  # type: ignore[method-assign]
    reopened = Log(
        store, origin=ORIGIN, note_signers=SIGNERS, batch_signer=_Receipts(), max_batch=10
    )
    with reopened:  # closes the store
        for _ in range(200):
            if reopened.tree_size == 25:
                break
            threading.Event().wait(0.05)
        assert reopened.tree_size == 25
        assert reopened.root() == MemoryTree(entries(25)).root()
        assert None not in reads  # never the whole backlog in memory
        assert store.checkpoint_sizes() == [0, 10, 20, 25]
        assert store.count_pending() == 0


@pytest.mark.parametrize(
    ("submitted", "sizes"),
    [(6, [0, 4, 6]), (8, [0, 4, 8]), (9, [0, 9]), (3, [0, 3])],
    ids=["split", "twice-fill", "backlog", "under-fill"],
)
def test_a_batch_takes_fill_entries_unless_a_backlog_is_queued(
    submitted: int, sizes: list[int]
) -> None:
    # Entries queued together: up to twice `fill` are split into batches of `fill` (the
    # rest right after), more are a backlog taken whole; fewer than `fill` wait the linger.
    log = Log(
        MemoryLogStore(),
        origin=ORIGIN,
        note_signers=SIGNERS,
        max_batch=100,
        linger=0.05,
        fill=4,
    )
    with log:
        tickets = log.submit_many(entries(submitted))
        for ticket in tickets:
            ticket.integrated.result(10)
        assert log.store.checkpoint_sizes() == sizes
        assert log.root() == MemoryTree(entries(submitted)).root()


def test_an_entry_committed_before_the_writer_took_its_tree_up_is_still_pending() -> None:
    # Between the store's commit and the writer's new head, the store said "integrated at
    # size 1" while this log had no tree of size 1: a reader then got NotFound building its
    # receipt (the CTS operation of a registration answered 404 under load).
    committed, release = threading.Event(), threading.Event()

    class Slow(MemoryLogStore):
        def write(self, batch: StoreBatch) -> None:
            super().write(batch)
            if batch.state is not None and batch.state.size == 1:
                committed.set()
                release.wait(10)

    log = Log(Slow(), origin=ORIGIN, note_signers=SIGNERS)
    with log:
        (ticket,) = log.submit_many(entries(1))
        assert committed.wait(10)
        assert log.store.lookup([ticket.entry_id]) == {ticket.entry_id: 0}
        assert log.status(ticket.entry_id) is None  # not yet this log's tree
        release.set()
        assert ticket.integrated.result(10) == Integrated(0, 1)
        assert log.status(ticket.entry_id) == Integrated(0, 1)
        log.inclusion_proof(0, 1)


def test_memory_store_can_be_reopened() -> None:
    store = MemoryLogStore()
    with Log.open_memory(origin=ORIGIN, note_signers=SIGNERS, store=store) as log:
        fill(log, entries(5))
        root = log.root()
    with Log.open_memory(origin=ORIGIN, note_signers=SIGNERS, store=store) as log:
        assert log.root() == root
        assert log.tree_size == 5


def test_submit_many_deduplicates_within_and_across_calls(new_log: Log) -> None:
    first = new_log.submit_many([b"a", b"b", b"a"])
    assert first[0] is first[2]
    placed = [t.integrated.result(10) for t in first]
    assert [p.index for p in placed] == [0, 1, 0]
    again = new_log.submit_many([b"b", b"c"])
    assert again[0].integrated.result(10) == placed[1]
    assert again[1].integrated.result(10).index == 2
    assert new_log.tree_size == 3
    with pytest.raises(PayloadTooLarge):
        new_log.submit_many([b"ok", b"x" * 65536])
    with pytest.raises(MalformedInput):
        new_log.submit_many([b"ok", 5])  # type: ignore[list-item]
