"""The writer's commit pipeline: batch k+1 is prepared while batch k commits.

Each test queues batch k+1's entries while the writer signs batch k (so k goes into the
pipeline), holds k's write in the store until the writer has prepared k+1 on top of it (the
batch signer saw k+1's tree size), then lets k's write succeed, fail, commit
without an answer, or meet another writer's batch. Whatever happens, a ticket resolves only
after the transaction holding its entry committed, in order, from a batch the commit
listener saw; a batch prepared on top of a failed one is never written; nothing is lost and
the log never forks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from log_testkit import ORIGIN, LogPlace, ed25519_key, entries, fill, signer

from ironroot.errors import StaleBatch, StoreUnavailable
from ironroot.log import (
    AuditableStore,
    Log,
    MemoryLogStore,
    StoreBatch,
    Ticket,
    open_checkpoint,
    verify_log,
)
from ironroot.merkle import MemoryTree
from ironroot_pg import test_store

SIGNERS = [signer(ed25519_key())]
_WAIT = 30.0


def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + _WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


class Gated:
    """A store whose next integration write can be held until released, then made to fail
    (``outcome``: ``None`` writes it; an exception is raised instead of writing;
    ``"committed-unanswered"`` writes it and raises). Records every write attempted, the
    error each raised, and the tree sizes committed (a size appears once its write returned).
    ``close`` leaves the inner store open (the fixture closes it)."""

    def __init__(self, inner: AuditableStore) -> None:
        self.inner = inner
        self.hold = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self.outcome: BaseException | str | None = None
        self.attempted: list[StoreBatch] = []
        self.errors: list[BaseException] = []
        self.committed: list[int] = []
        self.lock = threading.Lock()

    def write(self, batch: StoreBatch) -> None:
        with self.lock:
            self.attempted.append(batch)
            held = self.hold and batch.state is not None
            if held:
                self.hold = False
        outcome = None
        if held:
            self.holding.set()
            assert self.release.wait(_WAIT), "the test never released the held write"
            outcome = self.outcome
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            self.inner.write(batch)
            if batch.state is not None:
                with self.lock:
                    self.committed.append(batch.state.size)
            if outcome == "committed-unanswered":
                raise StoreUnavailable("lost the connection at COMMIT")
        except BaseException as exc:
            with self.lock:
                self.errors.append(exc)
            raise

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Recorder:
    """A batch signer that records the tree sizes it signed, and can fail at chosen ones."""

    def __init__(self) -> None:
        self.signed: list[int] = []
        self.calls: dict[int, bytes] = {}  # tree size -> the first batch data signed for it
        self.fail_at: set[int] = set()
        self.on_sign: dict[int, Callable[[], object]] = {}  # run when signing that size
        self.lock = threading.Lock()

    def sign_batch(self, tree_size: int, root: bytes) -> Mapping[str, bytes]:
        hook = self.on_sign.pop(tree_size, None)
        if hook is not None:
            hook()
        with self.lock:
            if tree_size in self.fail_at:
                self.fail_at.discard(tree_size)
                raise RuntimeError("the signer glitched")
            self.signed.append(tree_size)
            call = b"%d" % len(self.signed)
            self.calls.setdefault(tree_size, call)
        return {"root": root, "call": call}


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditableStore]:
    if request.param == "memory":
        yield MemoryLogStore()
        return
    with test_store(request.param) as where:
        opened = LogPlace(where, tmp_path).open_store()
        try:
            yield opened
        finally:
            opened.close()


def _verify(store: AuditableStore) -> None:
    verify_log(store, origin=ORIGIN, verifiers=[SIGNERS[0].verifier()])


def _submit_while_signing(log: Log, signed: Recorder) -> tuple[list[Ticket], list[Ticket]]:
    """Submit batch k (entries 3-6, tree 3 -> 7) and, while the writer signs it, k+1's
    entries (7-11): with entries queued, k goes into the pipeline (a batch with nothing
    queued behind it is written on the writer thread)."""
    second: list[Ticket] = []
    signed.on_sign[7] = lambda: second.extend(log.submit_many(entries(5, 7)))
    first = log.submit_many(entries(4, 3))
    _until(lambda: len(second) == 5, "batch k+1's entries are queued")
    return first, second


def _stack(log: Log, gate: Gated, signed: Recorder) -> tuple[list[Ticket], list[Ticket]]:
    """Hold batch k (tree 3 -> 7) in the store's write and have the writer prepare batch
    k+1 (tree 7 -> 12) on top of it; nothing resolved yet."""
    fill(log, entries(3))
    gate.hold = True
    first, second = _submit_while_signing(log, signed)
    assert gate.holding.wait(_WAIT)
    _until(lambda: 12 in signed.signed, "batch k+1 is prepared")
    for ticket in first + second:
        assert not ticket.durable.done()
        assert not ticket.integrated.done()
    return first, second


def _never_written(gate: Gated, signed: Recorder) -> bool:
    """Batch k+1 as first prepared (on top of k) never reached the store."""
    first = signed.calls[12]
    return not any(b.batch_data and b.batch_data.get("call") == first for b in gate.attempted)


def _placed_as_stored(log: Log, tickets: list[Ticket], store: AuditableStore) -> list[int]:
    indices = []
    for ticket in tickets:
        where = ticket.integrated.result(_WAIT)
        assert store.checkpoint(where.tree_size) is not None
        assert log.entry_id_at(where.index) == ticket.entry_id
        indices.append(where.index)
    return indices


@pytest.mark.parametrize("failure", ["refused", "committed-unanswered"])
def test_a_failed_commit_discards_the_batch_prepared_on_top_and_loses_nothing(
    store: AuditableStore, failure: str
) -> None:
    gate, signed = Gated(store), Recorder()
    with Log(gate, origin=ORIGIN, note_signers=SIGNERS, batch_signer=signed) as log:  # type: ignore[arg-type]
        first, second = _stack(log, gate, signed)
        gate.outcome = StoreUnavailable("the database is away") if failure == "refused" else failure
        gate.release.set()
        indices = _placed_as_stored(log, first + second, store)
        assert sorted(indices) == list(range(3, 12))
        assert type(gate.errors[0]) is StoreUnavailable
        # The batch prepared on top of the failed one was never written: the writes that
        # followed start from what the store holds.
        assert _never_written(gate, signed)
        if failure == "committed-unanswered":
            assert indices[:4] == [3, 4, 5, 6]  # read back, as committed
        fill(log, entries(3, 12))
        assert log.tree_size == 15
        _verify(store)


def test_a_stale_sequencers_pipelined_batch_is_refused_by_the_fence(
    store: AuditableStore,
) -> None:
    """Another writer moves the store while batch k waits to commit: the fence refuses k
    (StaleBatch), batch k+1 prepared on top of it is never written, and both batches'
    entries are integrated after the other writer's; every checkpoint is a prefix."""
    gate, signed = Gated(store), Recorder()
    first = Log(gate, origin=ORIGIN, note_signers=SIGNERS, batch_signer=signed)  # type: ignore[arg-type]
    other = Log(Gated(store), origin=ORIGIN, note_signers=SIGNERS)  # type: ignore[arg-type]
    notes: list[bytes] = []
    with first, other:
        mine, more = _stack(first, gate, signed)
        notes.append(first.checkpoint())
        theirs = fill(other, entries(6, 100, tag=b"other"))
        assert [p.index for p in theirs] == list(range(3, 9))
        notes.append(other.checkpoint())
        gate.release.set()
        indices = _placed_as_stored(first, mine + more, store)
        assert sorted(indices) == list(range(9, 18))
        assert [type(exc) for exc in gate.errors] == [StaleBatch]
        assert _never_written(gate, signed)
        notes.append(first.checkpoint())
        _verify(store)
        for note in notes:
            checkpoint = open_checkpoint(note, [SIGNERS[0].verifier()], origin=ORIGIN)
            assert first.root(checkpoint.size) == checkpoint.root


def test_tickets_resolve_in_order_after_their_commit_and_the_listener(
    store: AuditableStore,
) -> None:
    gate, signed = Gated(store), Recorder()
    seen: list[int] = []
    order: list[tuple[bytes, int, bool, bool]] = []
    lock = threading.Lock()

    def resolved(ticket: Ticket) -> None:
        where = ticket.integrated.result()
        with lock:  # committed and seen by the listener when it resolved
            order.append(
                (
                    ticket.entry_id,
                    where.tree_size,
                    where.tree_size in gate.committed,
                    where.tree_size in seen,
                )
            )

    log = Log(gate, origin=ORIGIN, note_signers=SIGNERS, batch_signer=signed)  # type: ignore[arg-type]
    log.add_commit_listener(lambda size, root, data: seen.append(size))
    with log:
        first, second = _stack(log, gate, signed)
        for ticket in first + second:
            ticket.integrated.add_done_callback(lambda _, t=ticket: resolved(t))
        gate.release.set()
        _placed_as_stored(log, first + second, store)
        _until(lambda: len(order) == 9, "every callback ran")
        assert [entry_id for entry_id, *_ in order[:4]] == [t.entry_id for t in first]
        assert sorted(entry_id for entry_id, *_ in order[4:]) == sorted(t.entry_id for t in second)
        assert [size for _, size, *_ in order] == [7] * 4 + [12] * 5
        assert all(committed and listened for *_, committed, listened in order)
        assert [batch.first_index for batch in gate.attempted if batch.integrated] == [0, 3, 7]
        assert log.root() == MemoryTree(entries(12)).root()
        _verify(store)


def test_a_signer_failure_while_a_batch_commits_keeps_both_batches_entries(
    store: AuditableStore,
) -> None:
    """The batch signer fails for batch k+1 while k commits: k still commits and resolves,
    k+1's entries become durable pending rows and are integrated by the retry."""
    gate, signed = Gated(store), Recorder()
    with Log(gate, origin=ORIGIN, note_signers=SIGNERS, batch_signer=signed) as log:  # type: ignore[arg-type]
        fill(log, entries(3))
        gate.hold = True
        signed.fail_at.add(12)
        first, second = _submit_while_signing(log, signed)
        assert gate.holding.wait(_WAIT)
        _until(lambda: not signed.fail_at, "the signer failed for batch k+1")
        assert not any(t.durable.done() for t in first + second)
        gate.release.set()
        assert [t.integrated.result(_WAIT).index for t in first] == [3, 4, 5, 6]
        assert [t.integrated.result(_WAIT).index for t in second] == list(range(7, 12))
        # k+1's entries went through the store as pending rows first.
        assert any(batch.pending for batch in gate.attempted)
        assert log.root() == MemoryTree(entries(12)).root()
        _verify(store)


def test_closing_lands_the_batches_in_flight(store: AuditableStore) -> None:
    before = set(threading.enumerate())
    gate, signed = Gated(store), Recorder()
    log = Log(gate, origin=ORIGIN, note_signers=SIGNERS, batch_signer=signed)  # type: ignore[arg-type]
    log.start()
    first, second = _stack(log, gate, signed)
    closer = threading.Thread(target=log.close)
    closer.start()
    gate.release.set()
    closer.join(_WAIT)
    assert not closer.is_alive()
    assert [t.integrated.result(0).index for t in first + second] == list(range(3, 12))
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("ironroot-log")]
    _verify(store)


def test_a_batch_with_nothing_queued_behind_it_is_written_on_the_writer_thread(
    store: AuditableStore,
) -> None:
    threads: list[str] = []

    class Spy(Gated):
        def write(self, batch: StoreBatch) -> None:
            if batch.integrated:
                threads.append(threading.current_thread().name)
            super().write(batch)

    signed = Recorder()
    with Log(Spy(store), origin=ORIGIN, note_signers=SIGNERS, batch_signer=signed) as log:  # type: ignore[arg-type]
        fill(log, entries(3))
        first, second = _submit_while_signing(log, signed)
        assert [t.integrated.result(_WAIT).index for t in first + second] == list(range(3, 12))
        fill(log, entries(1, 12))
    # k had k+1 queued behind it, k+1 followed k in flight, a lone batch is written on the
    # writer thread.
    writer, commit = "ironroot-log-writer", "ironroot-log-commit"
    assert threads == [writer, commit, commit, writer]
