"""Log.submit_watched: the same queue and answers as Log.submit, without a Future per step
(memory, SQLite, PostgreSQL): callbacks, sharing an entry in flight with a Ticket, failures,
closing, and wait_idle."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from log_testkit import ORIGIN, LogPlace, ed25519_key, entries, signer

from ironroot.errors import MalformedInput, PayloadTooLarge, StorageError, StoreUnavailable
from ironroot.log import Integrated, Log, MemoryLogStore, Outcome, StoreBatch, Ticket
from ironroot_pg import test_store

SIGNERS = [signer(ed25519_key())]
_T = TypeVar("_T")


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


def settled(outcome: Outcome[_T] | concurrent.futures.Future[_T]) -> Outcome[_T]:
    """Wait (up to 30 s) until ``outcome`` is done, through its callback; return it."""
    done = threading.Event()
    outcome.add_done_callback(lambda _: done.set())  # type: ignore[arg-type]
    assert done.wait(30)
    assert outcome.done()
    return outcome  # type: ignore[return-value]


def test_a_watched_submission_is_durable_then_integrated(new_log: Log) -> None:
    seen: list[tuple[str, str]] = []
    gate = threading.Event()
    new_log.add_commit_listener(lambda *_: gate.wait(30))  # hold the batch's answers
    submission = new_log.submit_watched(b"watched")
    submission.durable.add_done_callback(lambda _: seen.append(("durable", _thread())))
    gate.set()
    where = settled(submission.integrated).result()
    assert where == Integrated(0, 1)
    assert submission.durable.done()
    assert submission.durable.exception() is None
    assert seen == [("durable", "ironroot-log-writer")]
    assert new_log.status(submission.entry_id) == where
    # A callback added once it resolved runs at once, on the caller's thread.
    late: list[Integrated] = []
    submission.integrated.add_done_callback(lambda o: late.append(o.result()))
    assert late == [where]


def _thread() -> str:
    return threading.current_thread().name


def test_an_outcome_that_is_not_there_yet_cannot_be_read() -> None:
    outcome: Outcome[int] = Outcome()
    with pytest.raises(concurrent.futures.InvalidStateError):
        outcome.result()
    with pytest.raises(concurrent.futures.InvalidStateError):
        outcome.exception()
    outcome.set_result(3)
    with pytest.raises(concurrent.futures.InvalidStateError):
        outcome.set_exception(StorageError("twice"))
    assert outcome.result() == 3


def test_watched_and_ticketed_submissions_of_one_entry_share_its_answer(new_log: Log) -> None:
    gate = threading.Event()
    new_log.add_commit_listener(lambda *_: gate.wait(30))  # hold the first batch's answers
    watched = new_log.submit_watched(b"shared")
    ticket = new_log.submit(b"shared")  # in flight as a Submission: a Ticket that follows it
    assert isinstance(ticket, Ticket)
    assert new_log.submit_watched(b"shared") is watched
    first = new_log.submit(b"ticket first")
    assert new_log.submit_watched(b"ticket first") is first
    gate.set()
    assert ticket.integrated.result(30) == settled(watched.integrated).result()
    assert ticket.durable.result(30) is None
    assert first.integrated.result(30).index in (0, 1)
    assert [t.integrated.result(30) for t in new_log.submit_many([b"shared"])] == [
        ticket.integrated.result(30)
    ]
    assert new_log.wait_idle(30)


def test_wait_idle_waits_for_watched_submissions(new_log: Log) -> None:
    submissions = [new_log.submit_watched(entry) for entry in entries(30)]
    assert new_log.wait_idle(30)
    assert all(s.integrated.done() for s in submissions)
    assert sorted(s.integrated.result().index for s in submissions) == list(range(30))


def test_submit_watched_refuses_what_submit_refuses() -> None:
    log = Log.open_memory(origin=ORIGIN, note_signers=SIGNERS)
    with pytest.raises(PayloadTooLarge):
        log.submit_watched(b"x" * 65536)
    with pytest.raises(MalformedInput):
        log.submit_watched("text")  # type: ignore[arg-type]
    log.close()
    with pytest.raises(StorageError, match="closed"):
        log.submit_watched(b"late")


class _Outage(MemoryLogStore):
    """A memory store whose next ``failures`` writes raise."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def write(self, batch: StoreBatch) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("the database is away")
        super().write(batch)


def test_a_watched_submission_that_cannot_be_stored_fails_both_steps() -> None:
    store = _Outage(0)
    with Log(store, origin=ORIGIN, note_signers=SIGNERS) as log:
        store.failures = 2  # the integration and the pending write
        submission = log.submit_watched(b"lost in the outage")
        assert isinstance(settled(submission.durable).exception(), StoreUnavailable)
        with pytest.raises(StoreUnavailable):
            settled(submission.integrated).result()
        assert log.in_flight == 0
        again = log.submit_watched(b"lost in the outage")
        assert settled(again.integrated).result() == Integrated(0, 1)


def test_a_failing_callback_is_logged_and_the_writer_goes_on(
    new_log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    def bug(_: object) -> None:
        raise RuntimeError("a callback's bug")

    submission = new_log.submit_watched(b"first")
    submission.durable.add_done_callback(bug)
    assert settled(submission.integrated).result().index == 0
    assert settled(new_log.submit_watched(b"second").integrated).result().index == 1
    assert "a submission's callback failed" in caplog.text


class _Refusing:
    def sign_batch(self, tree_size: int, root: bytes) -> dict[str, bytes]:
        raise StorageError("the signer is away")


def test_closing_fails_a_watched_submission_still_waiting_for_integration() -> None:
    log = Log.open_memory(origin=ORIGIN, note_signers=SIGNERS, batch_signer=_Refusing())
    log.start()
    submission = log.submit_watched(b"durable, never integrated")
    assert settled(submission.durable).exception() is None
    log.close()
    error = settled(submission.integrated).exception()
    assert isinstance(error, StorageError)
    assert "integrated when it reopens" in error.detail


def test_a_cycle_listener_runs_on_the_writer_after_the_cycles_callbacks(new_log: Log) -> None:
    events: list[tuple[str, bool]] = []
    changed = threading.Condition()

    def note(event: str) -> None:
        with changed:
            events.append((event, new_log.on_writer_thread()))
            changed.notify_all()

    new_log.add_cycle_listener(lambda: note("cycle"))
    submissions = [new_log.submit_watched(entry) for entry in (b"one", b"two")]
    for submission in submissions:
        submission.integrated.add_done_callback(lambda _: note("settled"))

    def answered() -> bool:  # both settled, and a cycle ended after the last of them
        settled_at = [i for i, (event, _) in enumerate(events) if event == "settled"]
        return len(settled_at) == 2 and ("cycle", True) in events[settled_at[-1] :]

    with changed:
        assert changed.wait_for(answered, 30), events
    assert all(on_writer for event, on_writer in events if event == "cycle")
    assert not new_log.on_writer_thread()  # the test's own thread is not the writer


def test_a_failing_cycle_listener_is_logged_and_the_writer_goes_on(
    new_log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    def bug() -> None:
        raise RuntimeError("a listener's bug")

    new_log.add_cycle_listener(bug)
    assert settled(new_log.submit_watched(b"first").integrated).result().index == 0
    assert settled(new_log.submit_watched(b"second").integrated).result().index == 1
    assert "a cycle listener failed" in caplog.text
