"""A database restored from an older copy (or its state row edited) under a running log: the
writer never continues from a stored tree that is behind (or beside) the one it already
wrote and signed. Continuing would reuse the indexes of acknowledged entries and sign a
second, different checkpoint of a size it signed before: a fork. It refuses every write
instead (``StoreUnavailable``, 503 with ``Retry-After``), and the stored log is left as the
restore left it."""

from __future__ import annotations

import pytest
from log_testkit import ORIGIN, ed25519_key, entries, fill, signer
from psycopg import sql

from ironroot.errors import StoreUnavailable
from ironroot.log import Log, PostgresLogStore
from ironroot_pg import admin, fresh_schema, test_dsn

STORE_INDEPENDENT = True  # PostgreSQL only: the test copies the log's tables itself
pytestmark = pytest.mark.integration
_TABLES = ("state", "entries", "tiles", "checkpoints", "batch_data", "meta", "pending")


def test_a_log_restored_to_an_older_copy_under_a_running_writer_is_not_forked() -> None:
    with fresh_schema() as schema:
        log = Log(
            PostgresLogStore(test_dsn(), schema=schema, timeout=2.0),
            origin=ORIGIN,
            note_signers=[signer(ed25519_key())],
        )
        log.start()
        try:
            fill(log, entries(3))
            with admin() as conn:  # the "backup", at tree size 3
                for table in _TABLES:
                    conn.execute(
                        sql.SQL("CREATE TABLE {} AS TABLE {}").format(
                            sql.Identifier(schema, "old_" + table), sql.Identifier(schema, table)
                        )
                    )
            acknowledged = fill(log, entries(2, start=3))
            assert [a.tree_size for a in acknowledged] == [5, 5]
            with admin() as conn:  # restored under the running log
                for table in _TABLES:
                    conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(schema, table)))
                    conn.execute(
                        sql.SQL("INSERT INTO {} OVERRIDING SYSTEM VALUE TABLE {}").format(
                            sql.Identifier(schema, table), sql.Identifier(schema, "old_" + table)
                        )
                    )
            for attempt in range(2):  # refused, and again: it does not pick up from there
                ticket = log.submit(b"after the restore %d" % attempt)
                with pytest.raises(StoreUnavailable, match="restored from an older copy") as err:
                    ticket.integrated.result(30)
                assert err.value.code == "store-rolled-back"
                assert err.value.retry_after >= 1
            with admin() as conn:
                sizes = conn.execute(
                    sql.SQL("SELECT size FROM {} ORDER BY size").format(
                        sql.Identifier(schema, "checkpoints")
                    )
                ).fetchall()
            assert sizes == [(0,), (3,)]  # no second checkpoint of size 5 was signed
        finally:
            log.close()
