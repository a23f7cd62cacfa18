"""A PostgreSQL log whose columns were retyped underneath (``ALTER TABLE ... ALTER COLUMN
... TYPE``): every read is a ``StorageError`` (503 over HTTP), never a ``TypeError`` (500)
nor a value made up from what the column now holds (``str(b"x")`` is ``"b'x'"``, ``int`` of a
``numeric`` rounds nothing away but is not what the schema stores)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from log_testkit import ORIGIN, ed25519_key, entries, fill, signer
from psycopg import sql

from ironroot.errors import StorageError
from ironroot.log import Log, PostgresLogStore
from ironroot_pg import admin, fresh_schema, test_dsn

STORE_INDEPENDENT = True  # PostgreSQL only: each test sets up its own schema
pytestmark = pytest.mark.integration

_NO_ID_INDEX = "DROP INDEX {s}.entries_by_id; "  # the index on sha256(entry) needs bytea
_ENTRY_TEXT = _NO_ID_INDEX + (
    "ALTER TABLE {s}.entries ALTER COLUMN entry TYPE text USING encode(entry, 'hex')"
)
_PENDING_TEXT = (
    "ALTER TABLE {s}.pending ALTER COLUMN entry TYPE text USING encode(entry, 'hex'); "
    "INSERT INTO {s}.pending (entry_id, entry) VALUES ('\\x00', 'ab')"
)


@pytest.fixture(scope="module")
def filled() -> Iterator[Callable[[str], PostgresLogStore]]:
    """A factory: a fresh log of 5 entries, its schema damaged by the statement given, opened
    read-only. Every schema is dropped at the end."""
    with contextlib.ExitStack() as stack:

        def make(statement: str) -> PostgresLogStore:
            schema = stack.enter_context(fresh_schema())
            log = Log(
                PostgresLogStore(test_dsn(), schema=schema),
                origin=ORIGIN,
                note_signers=[signer(ed25519_key())],
            )
            log.start()
            try:
                fill(log, entries(5))
            finally:
                log.close()
            with admin() as conn:
                conn.execute(sql.SQL(statement).format(s=sql.Identifier(schema)))
            store = PostgresLogStore(test_dsn(), schema=schema, read_only=True)
            stack.callback(store.close)
            return store

        yield make


@pytest.mark.parametrize(
    ("statement", "read", "wanted"),
    [
        pytest.param(_ENTRY_TEXT, lambda s: s.entries(0, 5), "bytes", id="entries-text"),
        pytest.param(_ENTRY_TEXT, lambda s: list(s.iter_entries()), "bytes", id="iter-text"),
        pytest.param(
            "ALTER TABLE {s}.checkpoints ALTER COLUMN note TYPE text USING encode(note, 'escape')",
            lambda s: s.checkpoint(),
            "bytes",
            id="checkpoint-text",
        ),
        pytest.param(
            "ALTER TABLE {s}.tiles ALTER COLUMN data TYPE text USING encode(data, 'hex')",
            lambda s: s.tile(0, 0),
            "bytes",
            id="tile-text",
        ),
        pytest.param(
            "ALTER TABLE {s}.state ALTER COLUMN hashes TYPE text USING encode(hashes, 'hex')",
            lambda s: s.state(),
            "bytes",
            id="state-hashes-text",
        ),
        pytest.param(_PENDING_TEXT, lambda s: s.pending(), "bytes", id="pending-text"),
        pytest.param(
            "ALTER TABLE {s}.entries ALTER COLUMN idx TYPE numeric",
            lambda s: list(s.iter_entries()),
            "an integer",
            id="entry-index-numeric",
        ),
        pytest.param(
            "ALTER TABLE {s}.checkpoints ALTER COLUMN size TYPE numeric",
            lambda s: s.checkpoint_sizes(),
            "an integer",
            id="checkpoint-size-numeric",
        ),
        pytest.param(
            "ALTER TABLE {s}.meta ALTER COLUMN value TYPE bytea USING convert_to(value, 'UTF8')",
            lambda s: s.meta("origin"),
            "text",
            id="meta-bytea",
        ),
    ],
)
def test_a_retyped_column_is_a_storage_error(
    filled: Callable[[str], PostgresLogStore],
    statement: str,
    read: Callable[[PostgresLogStore], object],
    wanted: str,
) -> None:
    store = filled(statement)
    with pytest.raises(StorageError, match=f"where {wanted} belongs?"):
        read(store)
