"""The log over a store that fails: the writer survives, reads the stored state back after a
failed write, and neither loses nor duplicates an entry.

A write whose commit got no answer may have committed (a database connection lost at
``COMMIT``); a second writer may move the log under the first (the fence refuses the stale
batch). In both cases the next batch starts from what is stored.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from log_testkit import ORIGIN, LogPlace, ed25519_key, entries, fill, signer

from ironroot.errors import StoreUnavailable
from ironroot.log import AuditableStore, Log, MemoryLogStore, StoreBatch, verify_log
from ironroot.merkle import MemoryTree
from ironroot_pg import test_store

SIGNERS = [signer(ed25519_key())]


class Flaky:
    """A store that fails on demand: ``fail[name]`` calls of ``name`` raise first (after the
    ``skip[name]`` next ones pass); a write listed in ``commit_then_fail`` commits and then
    raises (the answer to COMMIT was lost)."""

    def __init__(self, inner: AuditableStore) -> None:
        self.inner = inner
        self.fail: dict[str, int] = {}
        self.skip: dict[str, int] = {}
        self.commit_then_fail = 0
        self.lock = threading.Lock()

    def _due(self, name: str) -> bool:
        with self.lock:
            if self.skip.get(name, 0):
                self.skip[name] -= 1
                return False
            left = self.fail.get(name, 0)
            if left:
                self.fail[name] = left - 1
            return bool(left)

    def write(self, batch: StoreBatch) -> None:
        if self._due("write"):
            raise StoreUnavailable("the database is away")
        self.inner.write(batch)
        with self.lock:
            lost, self.commit_then_fail = (
                self.commit_then_fail > 0,
                max(0, self.commit_then_fail - 1),
            )
        if lost and batch.integrated:
            raise StoreUnavailable("lost the connection at COMMIT")

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._due(name):
                raise StoreUnavailable("the database is away")
            return attribute(*args, **kwargs)

        return call


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


def test_a_commit_without_an_answer_is_read_back_not_lost_nor_repeated(
    store: AuditableStore,
) -> None:
    flaky = Flaky(store)
    with Log(flaky, origin=ORIGIN, note_signers=SIGNERS) as log:  # type: ignore[arg-type]
        fill(log, entries(10))
        flaky.commit_then_fail = 1
        tickets = log.submit_many(entries(5, 10))
        placed = [t.integrated.result(30) for t in tickets]
        assert [p.index for p in placed] == list(range(10, 15))
        fill(log, entries(5, 15))
        assert log.tree_size == 20
        assert log.root() == MemoryTree(entries(20)).root()
        _verify(store)


def test_a_failed_integration_keeps_entries_durable_and_retries(store: AuditableStore) -> None:
    flaky = Flaky(store)
    with Log(flaky, origin=ORIGIN, note_signers=SIGNERS) as log:  # type: ignore[arg-type]
        flaky.fail["write"] = 1  # the integration fails; the pending write that follows works
        tickets = log.submit_many(entries(8))
        for ticket in tickets:
            ticket.durable.result(30)
        assert [t.integrated.result(30).index for t in tickets] == list(range(8))
        _verify(store)


def test_a_store_that_fails_every_write_fails_the_tickets_and_the_writer_lives_on(
    store: AuditableStore,
) -> None:
    flaky = Flaky(store)
    with Log(flaky, origin=ORIGIN, note_signers=SIGNERS) as log:  # type: ignore[arg-type]
        flaky.fail["write"] = 2  # the integration and the pending write
        ticket = log.submit(b"lost in the outage")
        with pytest.raises(StoreUnavailable):
            ticket.durable.result(30)
        assert log.submit(b"after the outage").integrated.result(30).index == 0
        assert log.submit(b"lost in the outage").integrated.result(30).index == 1


def test_a_read_that_fails_after_the_look_up_fails_one_ticket_not_the_writer(
    store: AuditableStore,
) -> None:
    flaky = Flaky(store)
    with Log(flaky, origin=ORIGIN, note_signers=SIGNERS) as log:  # type: ignore[arg-type]
        fill(log, entries(3))
        flaky.fail["batch_size_of"] = 1  # the already-integrated entry's batch look-up fails
        again = log.submit(entries(3)[1])
        with pytest.raises(StoreUnavailable):
            again.integrated.result(30)
        assert log.submit(b"next").integrated.result(30).index == 3
        assert log.submit(entries(3)[1]).integrated.result(30).index == 1


def test_a_lost_commit_of_a_retried_integration_resolves_its_tickets(
    store: AuditableStore,
) -> None:
    """The entries wait as pending rows after a failed integration; the retry commits them
    but the answer to its COMMIT is lost. The state read back shows them integrated: their
    tickets resolve (a registration waiting on them is answered, and the writer holds no
    ticket for ever)."""
    flaky = Flaky(store)
    with Log(flaky, origin=ORIGIN, note_signers=SIGNERS) as log:  # type: ignore[arg-type]
        fill(log, entries(3))
        flaky.fail["write"] = 1  # the integration fails; the pending write works
        flaky.commit_then_fail = 2  # counted by the pending write; the retry's answer is lost
        tickets = log.submit_many(entries(2, 3))
        assert [t.integrated.result(10).index for t in tickets] == [3, 4]
        assert (log.tree_size, log.in_flight) == (5, 0)
        assert log.submit(entries(5)[4]).integrated.result(10).index == 4
        _verify(store)


def _waits_idle(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked in a condition's ``wait`` right now."""
    frame = sys._current_frames().get(thread.ident or 0)
    return frame is not None and frame.f_code.co_name == "wait"


def test_the_writer_waits_idle_after_a_retried_integration_committed_unanswered(
    store: AuditableStore,
) -> None:
    """After the retry whose commit got no answer, nothing is pending any more: the writer
    must wait for work, not loop on a retry time that has passed."""
    flaky = Flaky(store)
    with Log(flaky, origin=ORIGIN, note_signers=SIGNERS) as log:  # type: ignore[arg-type]
        fill(log, entries(3))
        flaky.fail["write"] = 1
        flaky.commit_then_fail = 2
        for ticket in log.submit_many(entries(2, 3)):
            ticket.durable.result(10)
        writer = next(t for t in threading.enumerate() if t.name == "ironroot-log-writer")
        deadline = time.monotonic() + 30
        while log.tree_size < 5 or not _waits_idle(writer):
            assert time.monotonic() < deadline, "the writer never went back to waiting"
            time.sleep(0.01)
        for _ in range(50):
            assert _waits_idle(writer), "the writer loops while there is nothing to do"
            time.sleep(0.002)


@pytest.mark.parametrize("look_up_fails", [False, True], ids=["look-up", "no-look-up"])
def test_a_lost_commit_whose_state_cannot_be_read_back_answers_only_from_the_stored_tree(
    store: AuditableStore, look_up_fails: bool
) -> None:
    """The answer to COMMIT is lost and the stored state cannot be read back at once (the
    database flaps). The writer's head may be behind the store: no ticket may resolve with a
    tree it cannot prove (a receipt for it would be 404 *no tree of that size*), nor fail
    with the fence's refusal of a batch prepared from the stale head; the registrations fail
    as a store that is away does (StoreUnavailable: retry), and the retries find them."""
    flaky = Flaky(store)
    with Log(flaky, origin=ORIGIN, note_signers=SIGNERS) as log:  # type: ignore[arg-type]
        fill(log, entries(10))
        flaky.commit_then_fail = 1
        flaky.fail["state"] = 1  # the read-back fails once
        if look_up_fails:  # the look-up of the batch's entries after the failure, too
            flaky.skip["lookup"], flaky.fail["lookup"] = 1, 1
        tickets = log.submit_many(entries(5, 10))
        for ticket in tickets:
            with pytest.raises(StoreUnavailable):
                ticket.integrated.result(10)
        again = [t.integrated.result(10) for t in log.submit_many(entries(5, 10))]
        assert [(p.index, p.tree_size) for p in again] == [(i, 15) for i in range(10, 15)]
        assert log.tree_size == 15
        tree = MemoryTree(entries(15))
        for p in again:  # what their receipts are made of
            assert log.inclusion_proof(p.index, 15) == tree.inclusion_proof(p.index, 15)
        fill(log, entries(5, 15))
        assert log.root() == MemoryTree(entries(20)).root()
        _verify(store)


def test_two_writers_on_one_log_fence_each_other_and_never_fork(tmp_path: Path) -> None:
    """Two Log objects on one store (two processes, in the test one): each batch the other
    made stale is refused, read back, and its entries integrated after the other's."""
    shared = MemoryLogStore()
    first = Log(shared, origin=ORIGIN, note_signers=SIGNERS)
    second = Log(shared, origin=ORIGIN, note_signers=SIGNERS)
    notes: list[bytes] = []
    with first, second:
        for round_ in range(5):
            for n, log in enumerate((first, second)):
                placed = fill(log, entries(7, 100 * round_ + 10 * n, tag=b"w%d" % n))
                assert len(placed) == 7
                notes.append(log.checkpoint())
        assert first.status(second.entry_id_at(0)) is not None
    _verify(shared)
    sizes = shared.checkpoint_sizes()
    assert sizes[-1] == 70
    final = Log(shared, origin=ORIGIN, note_signers=SIGNERS)
    from ironroot.log import open_checkpoint

    for note in notes:  # every checkpoint either writer published is a prefix of the log
        checkpoint = open_checkpoint(note, [SIGNERS[0].verifier()], origin=ORIGIN)
        assert final.root(checkpoint.size) == checkpoint.root
    final.close()
