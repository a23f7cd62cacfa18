"""A replica's sequencer and a pending row altered in the shared database: the sequencer read
the pending rows and submitted their entries to its log as new ones, so an altered row's bytes
(which no policy had checked) went into the log under their own id, while the row itself
stayed pending. It now submits only the rows a batch can hold and has its log refuse the
others, as a service on its own does."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from replica_cluster import Cluster

from ironroot.log import PostgresLogStore, StoreBatch
from ironroot.transparency._config import load_config, load_receipt_signers
from ironroot.transparency._replica import Replica
from ironroot_pg import admin, fresh_schema, test_dsn

pytestmark = pytest.mark.integration
STORE_INDEPENDENT = True  # PostgreSQL only: each test makes its own schema


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        PostgresLogStore(test_dsn(), schema=name).close()  # the log's tables
        yield name


def _insert_altered(schema: str, entry_id: bytes) -> None:
    """A pending row whose entry is not the one its id names (one statement)."""
    with admin() as conn:
        conn.execute(
            f'INSERT INTO "{schema}".pending (entry_id, entry) VALUES (%s, %s)',  # noqa: S608
            (entry_id, b"bytes no policy checked"),
        )


@pytest.mark.parametrize("rows", ["altered-and-good", "altered-only", "altered-while-sequencing"])
def test_a_replica_never_integrates_an_altered_pending_row_s_bytes(
    tmp_path: Path, schema: str, rows: str
) -> None:
    cluster = Cluster(tmp_path, test_dsn(), schema, count=1)
    data = cluster.replicas[0].data
    good, altered = b"a good pending entry", b"an entry altered below"
    altered_id = hashlib.sha256(altered).digest()
    store = PostgresLogStore(test_dsn(), schema=schema, pool_size=1)
    try:
        if rows != "altered-while-sequencing":
            _insert_altered(schema, altered_id)
        if rows == "altered-and-good":
            store.write(StoreBatch(first_index=0, pending=[(hashlib.sha256(good).digest(), good)]))
        config = load_config(data)
        replica = Replica(
            data,
            config,
            receipt_signers=load_receipt_signers(config),
            checkpoint_signers=None,
            lease=1.5,
        )
        replica.start()
        try:
            if rows == "altered-while-sequencing":
                # Written once this replica sequences: its log learns of it only by reading
                deadline = time.monotonic() + 30
                while (replica.epoch is None or store.checkpoint() is None) and (
                    time.monotonic() < deadline
                ):
                    time.sleep(0.05)
                assert replica.epoch is not None
                time.sleep(0.2)  # its writer idle: nothing queued, nothing pending
                _insert_altered(schema, altered_id)
            deadline = time.monotonic() + 30
            while store.pending(10) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert store.pending(10) == []
            size = store.state().size
            assert store.entries(0, size) == ([good] if rows == "altered-and-good" else [])
            reason = store.meta("refused:" + altered_id.hex())
            assert reason == "its entry does not hash to its id (SHA-256): the row was altered"
        finally:
            replica.close()
    finally:
        store.close()
