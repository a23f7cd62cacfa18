"""A pending row the sequencer cannot integrate (altered in the database, too long, or left
beside its own integrated entry by an older version) used to stall the log: every batch that
held it was refused by the store's rules, the writer retried it forever, and every later
registration waited. The writer now refuses that one row (its record under the ``meta`` key
``refused:<id>``, the registration waiting on it failed with ``entry-refused``) and integrates
the rest; a pending page it cannot read at all is named by :attr:`Log.stalled`."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Mapping
from typing import Any

import psycopg
import pytest
from log_testkit import ORIGIN, LogPlace, ed25519_key, entries, signer
from psycopg import sql

from ironroot.errors import StorageError
from ironroot.log import Integrated, Log, MemoryLogStore, StoreBatch, layout, verify_log
from ironroot.log._tiles import MAX_ENTRY_SIZE

SIGNERS = [signer(ed25519_key())]


class _Switch:
    """A batch signer that refuses until ``on`` is set (entries stay pending meanwhile)."""

    def __init__(self) -> None:
        self.on = threading.Event()
        self._refused = 0
        self._cond = threading.Condition()

    def sign_batch(self, tree_size: int, root: bytes) -> Mapping[str, bytes]:
        if not self.on.is_set():
            with self._cond:
                self._refused += 1
                self._cond.notify_all()
            raise RuntimeError("signer down")
        return {"receipt": root}

    def turn_on_after_the_next_refusal(self) -> None:
        """Turn on once the writer was refused again: a cycle that read the pending rows
        before the caller changed them ends refused, so the first cycle the signer takes
        reads them as changed (else, read before and signed after, it integrates them as
        they were — under load, a race the test would lose)."""
        with self._cond:
            seen = self._refused
            assert self._cond.wait_for(lambda: self._refused > seen, timeout=60)
        self.on.set()


def _sql(place: LogPlace, statement: str, *args: Any) -> None:
    """Run ``statement`` (``?`` placeholders) on the place's database, outside Ironroot."""
    if place.kind == "sqlite":
        conn = sqlite3.connect(layout.log_db_path(place.data_dir), isolation_level=None)
        try:
            conn.execute(statement, args)
        finally:
            conn.close()
        return
    assert place.store.schema is not None
    with psycopg.connect(place.store.dsn, autocommit=True) as pg:
        pg.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(place.store.schema)))
        pg.execute(statement.replace("?", "%s"), args)  # type: ignore[arg-type]


def _leave_pending(place: LogPlace, items: list[bytes], integrated: list[bytes]) -> None:
    """A closed log whose ``integrated`` entries are in the tree and ``items`` pending."""
    switch = _Switch()
    switch.on.set()
    log = place.open_log(origin=ORIGIN, note_signers=SIGNERS, batch_signer=switch)
    with log:
        for ticket in log.submit_many(integrated):
            ticket.integrated.result(10)
        switch.on.clear()
        for ticket in log.submit_many(items):
            ticket.durable.result(10)


def _wait_size(log: Log, size: int) -> None:
    for _ in range(800):
        if log.tree_size >= size:
            return
        threading.Event().wait(0.025)


_ALTERED = "its entry does not hash to its id (SHA-256): the row was altered"


@pytest.mark.parametrize("damage", ["altered", "too-long", "integrated-already"])
def test_a_bad_pending_row_is_refused_and_the_rest_integrated(place: LogPlace, damage: str) -> None:
    before, waiting = entries(2, tag=b"before"), entries(4, tag=b"waiting")
    _leave_pending(place, waiting, before)
    bad_id = hashlib.sha256(waiting[1]).digest()
    if damage == "altered":
        _sql(place, "UPDATE pending SET entry = ? WHERE entry_id = ?", b"altered", bad_id)
        reason = _ALTERED
        good = [e for i, e in enumerate(waiting) if i != 1]
    elif damage == "too-long":
        long = b"x" * (MAX_ENTRY_SIZE + 1)
        bad_id = hashlib.sha256(long).digest()
        _sql(place, "INSERT INTO pending (entry_id, entry) VALUES (?, ?)", bad_id, long)
        reason = (
            f"its entry is {MAX_ENTRY_SIZE + 1} bytes, more than a log entry's {MAX_ENTRY_SIZE}"
        )
        good = waiting
    else:
        bad_id = hashlib.sha256(before[0]).digest()
        _sql(place, "INSERT INTO pending (entry_id, entry) VALUES (?, ?)", bad_id, before[0])
        reason = "its entry is integrated already, at index 0"
        good = waiting
    log = place.open_log(origin=ORIGIN, note_signers=SIGNERS)
    with log:
        later = log.submit_many(entries(3, tag=b"later"))
        for ticket in later:
            assert isinstance(ticket.integrated.result(20), Integrated)
        _wait_size(log, len(before) + len(good) + 3)
        assert log.tree_size == len(before) + len(good) + 3
        assert log.stalled is None
        store = log.store
        assert store.pending(10) == []
        assert store.meta("refused:" + bad_id.hex()) == reason
        if damage == "integrated-already":
            assert log.status(bad_id) == Integrated(0, 2)  # still in the log, where it was
        else:
            with pytest.raises(StorageError) as caught:
                log.status(bad_id)
            assert caught.value.code == "entry-refused"
            assert caught.value.detail == (
                "the sequencer refused this entry's stored row, so it is not in the log "
                f"({reason}): register the statement again"
            )
        verify_log(store, origin=ORIGIN, verifiers=[SIGNERS[0].verifier()])
    # Registered again, the genuine entry is integrated like any other.
    if damage == "altered":
        again = place.open_log(origin=ORIGIN, note_signers=SIGNERS)
        with again:
            (ticket,) = again.submit_many([waiting[1]])
            assert ticket.integrated.result(20).index == len(before) + len(good) + 3


def test_the_registration_waiting_on_a_refused_row_fails(place: LogPlace) -> None:
    switch = _Switch()
    log = place.open_log(origin=ORIGIN, note_signers=SIGNERS, batch_signer=switch)
    with log:
        first, second = log.submit_many(entries(2, tag=b"waits"))
        first.durable.result(10)
        second.durable.result(10)
        _sql(place, "UPDATE pending SET entry = ? WHERE entry_id = ?", b"altered", first.entry_id)
        switch.turn_on_after_the_next_refusal()
        (third,) = log.submit_many([b"after the damage"])
        # At the writer's next retry (its backoff grew while the signer was down)
        assert third.integrated.result(30) == Integrated(1, 2)
        assert second.integrated.result(20) == Integrated(0, 2)
        with pytest.raises(StorageError) as caught:
            first.integrated.result(20)
        assert caught.value.code == "entry-refused"
        assert _ALTERED in caught.value.detail
        assert log.in_flight == 0


def test_a_row_refused_twice_keeps_its_first_record(place: LogPlace) -> None:
    """The same id damaged again after it was refused (its record is set once): refused
    again, never a stall on the record's set-once rule."""
    items = entries(2, tag=b"twice")
    bad_id = hashlib.sha256(items[0]).digest()
    _leave_pending(place, items, [])
    _sql(place, "UPDATE pending SET entry = ? WHERE entry_id = ?", b"altered", bad_id)
    with place.open_log(origin=ORIGIN, note_signers=SIGNERS) as log:
        _wait_size(log, 1)
        assert log.tree_size == 1
    long = b"y" * (MAX_ENTRY_SIZE + 1)
    _sql(place, "INSERT INTO pending (entry_id, entry) VALUES (?, ?)", bad_id, long)
    with place.open_log(origin=ORIGIN, note_signers=SIGNERS) as log:
        (ticket,) = log.submit_many([b"one more"])
        assert ticket.integrated.result(20) == Integrated(1, 2)
        assert log.store.pending(10) == []
        assert log.store.meta("refused:" + bad_id.hex()) == _ALTERED


def test_an_unreadable_pending_page_is_named_not_silent(tmp_path: Any) -> None:
    """SQLite stores what it is given: a pending row whose entry is text cannot be read at
    all, so no row can be refused by id. The writer cannot integrate; :attr:`Log.stalled`
    says why (the transparency service's /ready shows it), and clears once it integrates."""
    from ironroot.log import SqliteLogStore

    path = tmp_path / "log.sqlite3"
    switch = _Switch()
    with Log(SqliteLogStore(path), origin=ORIGIN, note_signers=SIGNERS, batch_signer=switch) as log:
        (ticket,) = log.submit_many([b"waits"])
        ticket.durable.result(10)
        assert log.stalled is not None  # the signer is down: said too
        assert "signer down" in log.stalled.detail
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("UPDATE pending SET entry = 'text'")
        for _ in range(800):  # the writer read the page as changed (it cannot read it)
            if log.stalled is not None and "where bytes belong" in log.stalled.detail:
                break
            threading.Event().wait(0.025)
        switch.on.set()  # only now: a cycle that read the page before the change is over
        log.submit_many([b"later"])
        assert log.stalled is not None
        assert log.stalled.detail == (
            "the log database's pending row 1 holds a str where bytes belong: it is damaged"
        )
        conn.execute("DELETE FROM pending WHERE entry = 'text'")
        conn.close()
        (again,) = log.submit_many([b"again"])  # a store that took a write: retried at once
        assert again.integrated.result(20) == Integrated(1, 2)
        assert log.stalled is None


def test_the_store_rules_refuse_a_dropped_row_without_its_record() -> None:
    store = MemoryLogStore()
    log = Log(store, origin=ORIGIN, note_signers=SIGNERS)
    log.close()
    entry = b"pending"
    entry_id = hashlib.sha256(entry).digest()
    store.write(StoreBatch(first_index=0, pending=[(entry_id, entry)]))
    with pytest.raises(StorageError, match="a refused pending row has no record") as caught:
        store.write(StoreBatch(first_index=0, refused=[entry_id]))
    assert caught.value.code == "batch-refused"
    other = hashlib.sha256(b"other").digest()
    with pytest.raises(StorageError, match="an entry to refuse is not pending"):
        store.write(
            StoreBatch(first_index=0, refused=[other], meta={"refused:" + other.hex(): "why"})
        )
    store.write(
        StoreBatch(first_index=0, refused=[entry_id], meta={"refused:" + entry_id.hex(): "why"})
    )
    assert store.pending() == []
    assert store.meta("refused:" + entry_id.hex()) == "why"
