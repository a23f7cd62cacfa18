"""The PostgreSQL store's write: one transaction per batch, ended by the store itself.

A refused or failed write ends its transaction (``ROLLBACK``) before its connection goes
back to the pool: the pool never finds a connection inside a transaction (it would warn,
and roll back on its own), and the state row's lock is released at once."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import log_testkit as kit
import pytest
from psycopg._pipeline_base import BasePipeline

from ironroot.errors import StaleBatch
from ironroot.log import Log, PostgresLogStore, StoreBatch, TreeState
from ironroot_pg import fresh_schema, test_dsn


@pytest.fixture
def store() -> Iterator[PostgresLogStore]:
    with fresh_schema() as schema:
        opened = PostgresLogStore(test_dsn(), schema=schema, pool_size=1)
        try:
            yield opened
        finally:
            opened.close()


def test_a_refused_write_ends_its_transaction_before_the_pool_takes_it_back(
    store: PostgresLogStore, caplog: pytest.LogCaptureFixture
) -> None:
    stale = StoreBatch(first_index=5, pending=[(hashlib.sha256(b"x").digest(), b"x")])
    with caplog.at_level(logging.DEBUG, logger="psycopg"):
        for _ in range(3):
            with pytest.raises(StaleBatch):
                store.write(stale)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert store.state() == TreeState(0, ())


def test_a_batch_is_written_in_two_round_trips(
    store: PostgresLogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN, the locks and the reads in one; the writes and COMMIT in the other. A round
    trip is a wait for the server's answers to what the pipeline sent (psycopg's ``_fetch_gen``
    with results outstanding). ``conn.transaction()`` inside a pipeline added three more, one
    of them for BEGIN alone."""
    trips: list[int] = []
    real_fetch = BasePipeline._fetch_gen

    def counted(self: BasePipeline, *, flush: bool) -> Any:
        if self.result_queue:
            trips[-1] += 1
        return (yield from real_fetch(self, flush=flush))

    monkeypatch.setattr(BasePipeline, "_fetch_gen", counted)
    real_write = store.write

    def write(batch: StoreBatch) -> None:
        trips.append(0)
        real_write(batch)

    monkeypatch.setattr(store, "write", write)
    log = Log(store, origin=kit.ORIGIN, note_signers=[kit.signer(kit.ed25519_key())])
    log.start()
    try:
        kit.fill(log, kit.entries(40))
    finally:
        log.close()
    assert trips
    assert all(n == 2 for n in trips), trips
