"""The PostgreSQL log store: psycopg 3 over a psycopg-pool connection pool.

Same contract as the SQLite store (``tests/log/test_log_store_contract.py``): every
:class:`StoreBatch` is one transaction, checked by :func:`~ironroot.log.check_batch` inside
it; the fence reads the state row ``FOR UPDATE``, so a second writer waits for the first to
commit and then finds the size moved (:class:`~ironroot.errors.StaleBatch`). Every session
runs with ``synchronous_commit = on``: a commit that returned is durable on the server (and on
its synchronous standbys, if the server has any), so an acknowledged entry survives a crash
of the server as well as of the service.

Schema (version 1), in the configured schema (default: the connection's current one)::

    schema_version(version PRIMARY KEY, applied_at, description)  -- one row per migration
    meta(key text PRIMARY KEY, value text)                        -- origin
    state(id = 1, size bigint, hashes bytea)                      -- compact range
    pending(seq bigint identity PRIMARY KEY, entry_id bytea UNIQUE, entry bytea)
    entries(idx bigint PRIMARY KEY, entry bytea)                  -- integrated, by index
        + hash index on sha256(entry)                             -- the id → index map
    tiles(level smallint, idx bigint, data bytea, PRIMARY KEY (level, idx))
    checkpoints(size bigint PRIMARY KEY, note bytea)
    batch_data(size bigint, name text, value bytea, PRIMARY KEY (size, name))

Growth: the entry id (SHA-256 of the entry) is not stored. It is found through a hash index
on the expression ``sha256(entry)``, which keeps a 4-byte hash code and a row pointer per
entry: about 20 bytes an entry instead of the 32-byte id column plus a B-tree over random
32-byte keys (about 100 bytes an entry, measured, see ``docs/transparency.md``). Every other
index takes keys in append order. The hash index still takes its insert at a random bucket;
what makes that cheap is its size (a fifth of the B-tree's), which keeps it in memory far
longer.

Migrations: the schema version is the highest row of ``schema_version``. Opening a store on
an empty schema creates it (it holds nothing to protect). A schema older than this code is
refused unless the caller asks to migrate (``ironroot log migrate``); a newer one is always
refused (:class:`StorageError` with code ``store-schema``). A store that is open keeps checking:
every write reads the version in its own transaction and is refused the same way once it
changed (another Ironroot migrated the schema under a long-running writer, or its rows were
edited). Migrations run in one
transaction under a transaction-scoped advisory lock (class id :data:`MIGRATE_LOCK_CLASS`,
object id the schema name's hash), so two processes migrating at once apply each step once.

Unavailability: a connection that cannot be made or is lost, a pool with no free connection
in time, a statement or lock timeout, all become :class:`~ironroot.errors.StoreUnavailable`
(503 with ``Retry-After`` over HTTP). Every wait is bounded by ``timeout``: the connect
timeout, the pool wait, ``statement_timeout`` and ``lock_timeout``; TCP keepalives and
``tcp_user_timeout`` bound a silent network. No session of a writable store stays idle inside a
transaction for longer (``idle_in_transaction_session_timeout``): a process paused mid-transaction
(``SIGSTOP``, a paused VM) keeps its session, and the server ends it rather than let its row locks
stall every writer. After a failure to connect, calls fail at once for
a second rather than each wait for the timeout. A read that meets a connection the server
dropped (a restart, ``pg_terminate_backend``) is retried once on a fresh connection; so is a
write that failed before its ``COMMIT`` was sent. A write whose ``COMMIT`` got no answer may or
may not have committed: it raises, and the log reads the stored state back before its next
write. A connection the server refuses for good (an unknown role or database, a wrong
password, ``pg_hba.conf``) is no outage: opening the store raises :class:`ConfigError` (code
``store-refused``, :func:`refused_connection`).

The DSN may hold a password: it is never logged and never put in an error message
(:func:`describe_dsn` gives the host, port, database and user only).

Replicas (``ironroot serve --replica``, ADR 0009): any process may make entries durable with
:meth:`PostgresLogStore.add_pending`, which takes the state row ``FOR SHARE`` so that it never
adds a pending row beside an entry the sequencer is integrating at that moment. One sequencer
is elected by ``SequencerLease`` (``log/_postgres_lease.py``): a session-scoped advisory
lock (a 64-bit key from SHA-256 of the schema name, ``sequencer_lock_key``) plus a lease row in
``sequencer_lease`` (id, epoch, holder, expires_at) that the holder renews. The lease table is
coordination, not log data: it is created on first use (``CREATE TABLE IF NOT EXISTS``, under
the migration lock) and is outside the schema versions. A candidate that finds the lease
expired ends every session of the stale holder (``pg_terminate_backend``: the holder's
connections carry its name as ``application_name``), takes the lock and bumps the epoch. A
store fenced with :meth:`PostgresLogStore.fence_with_lease` checks, inside every write
transaction, that the stored epoch is still its own (the row read ``FOR KEY SHARE``; a takeover
bumps the epoch under ``FOR UPDATE``, so it waits for a write in progress, and every later write
sees the new epoch; the holder's renewals do not wait for its writes); a write of a
superseded sequencer is refused with :class:`~ironroot.errors.StaleBatch`, as is one whose tree
size is no longer the stored one. Taking over needs a role allowed to signal the old holder's
backends (the same role, or membership in ``pg_signal_backend``).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from ironroot.errors import ConfigError, StaleBatch, StorageError, StoreUnavailable
from ironroot.log._open import check_schema_name
from ironroot.log._store import (
    StoreBatch,
    TreeState,
    check_batch,
    check_batch_types,
    refusal_key,
)
from ironroot.log._tiles import MAX_ENTRY_SIZE

__all__ = [
    "MIGRATE_LOCK_CLASS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "PostgresLogStore",
    "describe_dsn",
    "refused_connection",
]

_T = TypeVar("_T")
_HASH: Final = 32
_PAGE: Final = 2048  # entries per page of a scan
_DOWN_FOR: Final = 1.0  # seconds calls fail at once after a failure to connect
MIGRATE_LOCK_CLASS: Final = 0x4952  # "IR": pg_advisory_xact_lock(class, hashtext(schema name))


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: applied in order, once, in the migration's transaction."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: Final = (
    Migration(
        1,
        "the log's tables",
        (
            """CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)""",
            """CREATE TABLE state (
                id integer PRIMARY KEY CHECK (id = 1),
                size bigint NOT NULL CHECK (size >= 0),
                hashes bytea NOT NULL
            )""",
            """INSERT INTO state VALUES (1, 0, '')""",
            """CREATE TABLE pending (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                entry_id bytea NOT NULL UNIQUE,
                entry bytea NOT NULL
            )""",
            """CREATE TABLE entries (idx bigint PRIMARY KEY, entry bytea NOT NULL)""",
            """CREATE INDEX entries_by_id ON entries USING hash (sha256(entry))""",
            """CREATE TABLE tiles (
                level smallint NOT NULL,
                idx bigint NOT NULL,
                data bytea NOT NULL,
                PRIMARY KEY (level, idx)
            )""",
            # Hashes do not compress: store tiles without trying.
            """ALTER TABLE tiles ALTER COLUMN data SET STORAGE EXTERNAL""",
            """CREATE TABLE checkpoints (size bigint PRIMARY KEY, note bytea NOT NULL)""",
            """CREATE TABLE batch_data (
                size bigint NOT NULL,
                name text NOT NULL,
                value bytea NOT NULL,
                PRIMARY KEY (size, name)
            )""",
        ),
    ),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1].version
"""The schema version this code writes and reads."""

_VERSION_TABLE: Final = """CREATE TABLE IF NOT EXISTS schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    description text NOT NULL
)"""


def describe_dsn(dsn: str) -> str:
    """``host:port/dbname as user``: what a DSN points at, without its password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an unparsable PostgreSQL DSN"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or "5432")
    where = f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"
    return f"{where} as {params['user']}" if params.get("user") else where


def _connect_kwargs(dsn: str, timeout: float) -> dict[str, Any]:
    """Connection parameters bounding every wait, unless the DSN sets its own."""
    try:
        given = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # Not chained: libpq's message quotes the DSN, which may hold a password.
        raise ConfigError("the PostgreSQL DSN does not parse") from None
    _check_values(given)
    wanted: dict[str, Any] = {
        "connect_timeout": max(2, round(timeout)),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": int(timeout * 1000),
        "application_name": "ironroot-log",
    }
    out = {k: v for k, v in wanted.items() if k not in given}
    out["autocommit"] = True
    return out


# Values libpq checks only when it connects (so a pool would retry a typo until its timeout
# and report the database as down): checked here, as a configuration error.
_CHOICES: Final = {
    "sslmode": frozenset(("disable", "allow", "prefer", "require", "verify-ca", "verify-full")),
    "gssencmode": frozenset(("disable", "prefer", "require")),
    "channel_binding": frozenset(("disable", "prefer", "require")),
    "target_session_attrs": frozenset(
        ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
    ),
    "load_balance_hosts": frozenset(("disable", "random")),
}
_INTEGERS: Final = frozenset(
    (
        "connect_timeout",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
    )
)


def _check_values(given: Mapping[str, Any]) -> None:
    """``ConfigError`` for a DSN value libpq would refuse at connect time: a port that is no
    number from 1 to 65535 (one per host, comma-separated; empty is the default), an integer
    option that is no integer, a choice that is none of its values. The value itself is not
    quoted (the error may be shown where the DSN is not)."""
    for port in str(given.get("port") or "").split(","):
        if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise ConfigError("the PostgreSQL DSN's port is not a port number (1 to 65535)")
    for name in _INTEGERS & given.keys():
        if re.fullmatch(r"\s*-?[0-9]+\s*", str(given[name])) is None:
            raise ConfigError(f"the PostgreSQL DSN's {name} is not an integer")
    for name, choices in _CHOICES.items():
        if name in given and given[name] not in choices:
            raise ConfigError(
                f"the PostgreSQL DSN's {name} is not one of {', '.join(sorted(choices))}"
            )


def _session_settings(
    timeout: float, schema: str | None, *, snapshot: bool, server_version: int = 0
) -> sql.Composed:
    """One statement setting every session parameter the store relies on
    (``server_version``: the server's, as ``conn.info.server_version`` gives it)."""
    millis = int(timeout * 1000)
    settings: list[tuple[str, str]] = [
        ("synchronous_commit", "on"),
        ("statement_timeout", str(millis)),
        ("lock_timeout", str(millis)),
        # A client that stops inside a transaction (a paused process keeps its session) must
        # not hold its row locks longer than a waiter waits for them (lock_timeout): above
        # all the state row add_pending holds FOR SHARE, which every write takes FOR UPDATE.
        # The snapshot holds no row lock and lives as long as its reader.
        ("idle_in_transaction_session_timeout", "0" if snapshot else str(millis)),
    ]
    if server_version >= 140000:
        # An idle_session_timeout set on the role or the database would end the sessions the
        # store and the election keep open between uses: above all the lease's, whose advisory
        # lock is the sequencer's, so the sequencer would lose its lease at every renewal.
        settings.append(("idle_session_timeout", "0"))
    if schema is not None:
        settings.append(("search_path", sql.Identifier(schema).as_string()))
    return sql.SQL("SELECT {}").format(
        sql.SQL(", ").join(
            sql.SQL("set_config({}, {}, false)").format(sql.Literal(k), sql.Literal(v))
            for k, v in settings
        )
    )


class _Unavailable(Exception):
    """Internal: a connection-level failure (the caller decides whether to retry)."""


class PostgresLogStore:
    """A :class:`~ironroot.log.LogStore` (and :class:`~ironroot.log.AuditReader`) in a
    PostgreSQL schema.

    ``read_only`` opens one connection holding one ``REPEATABLE READ READ ONLY`` transaction
    until :meth:`close`: every read sees the same snapshot, so a whole-log check of a log that
    a service keeps writing is consistent. ``create`` (default) creates the schema when it is
    empty; ``migrate`` brings an older one up to :data:`SCHEMA_VERSION`. ``check_schema=False``
    opens the store without looking at its schema at all: for :meth:`migrate` and
    :attr:`schema_version` only (``ironroot log migrate``). ``application_name`` names the
    store's sessions on the server (default ``ironroot-log``): an elected sequencer's store
    carries its lease holder's name, so a successor can end those sessions.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        read_only: bool = False,
        pool_size: int = 4,
        timeout: float = 5.0,
        create: bool = True,
        migrate: bool = False,
        migrations: Sequence[Migration] = MIGRATIONS,
        check_schema: bool = True,
        application_name: str | None = None,
    ) -> None:
        if not 1 <= pool_size <= 100:
            raise ConfigError("the PostgreSQL pool size must be between 1 and 100")
        if not 0.1 <= timeout <= 600:
            raise ConfigError("the PostgreSQL timeout must be between 0.1 and 600 seconds")
        self._schema = check_schema_name(schema)
        self._where = describe_dsn(dsn) + (f" schema {schema}" if schema else "")
        self._read_only = read_only
        self._timeout = timeout
        self._migrations = tuple(migrations)
        # Every write checks, in its transaction, that the schema is still at this version: a
        # long-running writer (a replica's sequencer) must not write into a schema that a
        # newer Ironroot migrated meanwhile, nor into one whose version rows are damaged.
        self._writes_version = self._migrations[-1].version if check_schema else None
        self._closed = False
        self._down_until = 0.0
        self._lease_epoch: int | None = None
        self._snapshot: psycopg.Connection[Any] | None = None
        self._snapshot_lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        kwargs = _connect_kwargs(dsn, timeout)
        if application_name is not None:
            kwargs["application_name"] = application_name
        schema_name = self._schema
        try:
            if read_only:
                self._snapshot = self._open_snapshot(dsn, kwargs, timeout, schema_name)
                if check_schema:
                    self._check_version(self._snapshot, create=False, migrate=False)
            else:
                # One connection of our own first: the pool would retry a refused one until
                # its timeout and then report only the timeout, as if the server were down.
                psycopg.Connection.connect(dsn, **kwargs).close()
                self._pool = psycopg_pool.ConnectionPool(
                    dsn,
                    kwargs=kwargs,
                    min_size=1,
                    max_size=pool_size,
                    open=False,
                    configure=lambda conn: _configure(conn, timeout, schema_name),
                    timeout=timeout,
                    reconnect_timeout=max(timeout, 2.0),
                    name="ironroot-log",
                )
                self._pool.open(wait=True, timeout=timeout)
                if check_schema:
                    with self._pool.connection(timeout) as conn:
                        self._check_version(conn, create=create, migrate=migrate)
        except psycopg_pool.PoolTimeout as exc:
            self.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self._where}") from exc
        except psycopg.OperationalError as exc:
            self.close()
            refused = refused_connection(exc, self._where)
            if refused is not None:
                raise refused from exc
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {self._where}: {_reason(exc)}"
            ) from exc
        except psycopg.Error as exc:
            self.close()
            raise StorageError(
                f"cannot open the log in PostgreSQL at {self._where}: {_reason(exc)}"
            ) from exc
        except BaseException:
            self.close()
            raise

    # --- connections ------------------------------------------------------------------------

    def _open_snapshot(
        self, dsn: str, kwargs: dict[str, Any], timeout: float, schema: str | None
    ) -> psycopg.Connection[Any]:
        conn = psycopg.Connection.connect(dsn, **kwargs)
        try:
            _configure(conn, timeout, schema, snapshot=True)
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise StorageError("the log store is closed")
        if self._snapshot is not None:
            with self._snapshot_lock:
                yield self._snapshot
            return
        assert self._pool is not None
        if time.monotonic() < self._down_until:
            raise StoreUnavailable(f"PostgreSQL at {self._where} is unreachable; retry shortly")
        try:
            conn = self._pool.getconn()
        except psycopg_pool.PoolTimeout as exc:
            self._down_until = time.monotonic() + _DOWN_FOR
            raise StoreUnavailable(
                f"no connection to PostgreSQL at {self._where} within {self._timeout:g} s"
            ) from exc
        except psycopg_pool.PoolClosed as exc:
            raise StorageError("the log store is closed") from exc
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    def _run(
        self,
        work: Callable[[psycopg.Connection[Any]], _T],
        *,
        retry: bool | Callable[[], bool] = True,
    ) -> _T:
        """``work(conn)`` with psycopg's errors mapped; once more on a fresh connection when
        the server dropped the first one and ``retry`` (or what it returns) is true."""
        for attempt in (1, 2):
            try:
                with self._connection() as conn:
                    try:
                        return work(conn)
                    except psycopg.OperationalError as exc:
                        if not conn.broken and not conn.closed:
                            raise StoreUnavailable(
                                f"PostgreSQL at {self._where}: {_reason(exc)}"
                            ) from exc
                        raise _Unavailable(_reason(exc)) from exc
            except _Unavailable as exc:
                again = retry() if callable(retry) else retry
                if again and attempt == 1 and self._pool is not None:
                    self._pool.check()  # drop the other connections the server closed
                    continue
                raise StoreUnavailable(
                    f"lost the connection to PostgreSQL at {self._where}: {exc}"
                ) from exc.__cause__
            except StorageError:
                raise
            except psycopg.Error as exc:
                raise StorageError(f"PostgreSQL at {self._where}: {_reason(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _one(self, query: str, args: Sequence[Any] = ()) -> Any:
        def work(conn: psycopg.Connection[Any]) -> Any:
            with conn.cursor(binary=True) as cur:
                return cur.execute(query, args).fetchone()

        return self._run(work)

    def _all(self, query: str, args: Sequence[Any] = ()) -> list[Any]:
        def work(conn: psycopg.Connection[Any]) -> list[Any]:
            with conn.cursor(binary=True) as cur:
                return cur.execute(query, args).fetchall()

        return self._run(work)

    # --- schema -----------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The stored schema version."""
        return int(self._run(_stored_version))

    def _check_version(self, conn: psycopg.Connection[Any], *, create: bool, migrate: bool) -> None:
        latest = self._migrations[-1].version
        version = _stored_version(conn)
        if version > latest:
            raise StorageError(
                f"the log schema at {self._where} has version {version}; this Ironroot knows "
                f"up to {latest}: upgrade Ironroot to open it",
                code="store-schema",
            )
        if version == latest:
            return
        if self._read_only:
            raise StorageError(
                f"no log at {self._where}"
                if version == 0
                else f"the log schema at {self._where} has version {version}, this Ironroot "
                f"reads {latest}: run `ironroot log migrate`",
                code="store-schema",
            )
        if version == 0 and not create:
            raise StorageError(f"no log at {self._where}", code="store-schema")
        if version > 0 and not migrate:
            raise StorageError(
                f"the log schema at {self._where} has version {version}, older than this "
                f"Ironroot's {latest}: run `ironroot log migrate` (see docs/transparency.md)",
                code="store-schema",
            )
        _apply_migrations(conn, self._schema, self._migrations)

    def migrate(self) -> tuple[int, int]:
        """Bring the schema up to date; returns (version before, version after)."""
        if self._read_only:
            raise StorageError("the log store is read-only")

        def work(conn: psycopg.Connection[Any]) -> tuple[int, int]:
            before = _stored_version(conn)
            _apply_migrations(conn, self._schema, self._migrations)
            return before, _stored_version(conn)

        return self._run(work, retry=False)

    # --- the log's reads --------------------------------------------------------------------

    def state(self) -> TreeState:
        row = self._one("SELECT size, hashes FROM state WHERE id = 1")
        if row is None:
            raise StorageError("the log schema has no state row")
        return _tree_state(row)

    def lookup(self, entry_ids: Sequence[bytes]) -> dict[bytes, int | None]:
        if not entry_ids:
            return {}
        ids = list(entry_ids)
        rows = self._all(
            "SELECT sha256(entry), idx FROM entries WHERE sha256(entry) = ANY(%b) "
            "UNION ALL SELECT entry_id, NULL FROM pending WHERE entry_id = ANY(%b)",
            (ids, ids),
        )
        found: dict[bytes, int | None] = {}
        for entry_id, idx in rows:
            key = _blob(entry_id)
            if idx is not None or key not in found:
                found[key] = None if idx is None else _integer(idx)
        return found

    def pending(self, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        if limit is None:
            rows = self._all("SELECT entry_id, entry FROM pending ORDER BY seq")
        else:
            rows = self._all(
                "SELECT entry_id, entry FROM pending ORDER BY seq LIMIT %b", (max(limit, 0),)
            )
        return [(_blob(i), _blob(e)) for i, e in rows]

    def count_pending(self) -> int:
        row = self._one("SELECT COUNT(*) FROM pending")
        return 0 if row is None else int(row[0])

    def entries(self, start: int, stop: int) -> list[bytes]:
        rows = self._all(
            "SELECT entry FROM entries WHERE idx >= %b AND idx < %b ORDER BY idx",
            (max(start, 0), max(stop, 0)),
        )
        return [_blob(r[0]) for r in rows]

    def tile(self, level: int, index: int) -> bytes | None:
        row = self._one("SELECT data FROM tiles WHERE level = %b AND idx = %b", (level, index))
        return None if row is None else _blob(row[0])

    def checkpoint(self, size: int | None = None) -> bytes | None:
        if size is None:
            row = self._one("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
        else:
            row = self._one("SELECT note FROM checkpoints WHERE size = %b", (size,))
        return None if row is None else _blob(row[0])

    def batch_size_of(self, index: int) -> int | None:
        row = self._one("SELECT min(size) FROM checkpoints WHERE size > %b", (index,))
        return None if row is None or row[0] is None else _integer(row[0])

    def batch_data(self, size: int) -> dict[str, bytes] | None:
        rows = self._all(
            "SELECT b.name, b.value FROM checkpoints c "
            "LEFT JOIN batch_data b ON b.size = c.size WHERE c.size = %b",
            (size,),
        )
        if not rows:
            return None
        return {_text(name): _blob(value) for name, value in rows if name is not None}

    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return None if row is None else _text(row[0])

    # --- audit reads ------------------------------------------------------------------------

    def iter_entries(self) -> Iterator[tuple[int, bytes]]:
        start = 0
        while True:
            rows = self._all(
                "SELECT idx, entry FROM entries WHERE idx >= %b ORDER BY idx LIMIT %b",
                (start, _PAGE),
            )
            for idx, entry in rows:
                yield _integer(idx), _blob(entry)
            if len(rows) < _PAGE:
                return
            start = _integer(rows[-1][0]) + 1

    def checkpoint_sizes(self) -> list[int]:
        return [_integer(r[0]) for r in self._all("SELECT size FROM checkpoints ORDER BY size")]

    def batch_data_sizes(self) -> list[int]:
        rows = self._all("SELECT DISTINCT size FROM batch_data ORDER BY size")
        return [_integer(r[0]) for r in rows]

    def count_tiles(self) -> int:
        return int(self._one("SELECT count(*) FROM tiles")[0])

    def count_entry_ids(self) -> int:
        # The id map is an index over the entries themselves: it holds no other ids.
        return int(self._one("SELECT count(*) FROM entries")[0])

    def storage_bytes(self) -> int:
        row = self._one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
            "WHERE c.relnamespace = to_regnamespace(current_schema()) AND c.relkind = 'r'"
        )
        return int(row[0])

    # --- replicas ---------------------------------------------------------------------------

    def fence_with_lease(self, epoch: int) -> None:
        """From now on, every write also requires the stored sequencer lease to be at
        ``epoch`` (read in the write's transaction): a sequencer that lost its lease can no
        longer write through this store (:class:`StaleBatch`)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ConfigError("a lease epoch is a positive integer")
        self._lease_epoch = epoch

    def add_pending(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        """Make ``(entry id, entry)`` pairs durable as pending rows, from any process: one
        transaction, committed before return. An entry already pending or integrated is left
        as it is (idempotent). The state row is held ``FOR SHARE`` meanwhile, so this waits
        for an integration in progress and then sees its entries: a pending row is never
        added beside the integrated entry."""
        if self._read_only:
            raise StorageError("the log store is read-only")
        rows = list(entries)
        for entry_id, entry in rows:
            if not isinstance(entry, bytes) or len(entry) > MAX_ENTRY_SIZE:
                raise StorageError(f"a log entry is bytes of at most {MAX_ENTRY_SIZE}")
            if hashlib.sha256(entry).digest() != entry_id:
                raise StorageError("an entry id is not the SHA-256 of its entry")
        if not rows:
            return

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor(binary=True) as cur:
                cur.execute("SELECT size FROM state WHERE id = 1 FOR SHARE")
                cur.execute(
                    "INSERT INTO pending (entry_id, entry) "
                    "SELECT n.i, n.e FROM unnest(%b::bytea[], %b::bytea[]) AS n(i, e) "
                    "WHERE NOT EXISTS (SELECT 1 FROM entries WHERE sha256(entry) = n.i) "
                    "ON CONFLICT (entry_id) DO NOTHING",
                    ([i for i, _ in rows], [e for _, e in rows]),
                )

        self._run(work)  # idempotent: safe to run again on a fresh connection

    # --- the write --------------------------------------------------------------------------

    def write(self, batch: StoreBatch) -> None:
        if self._read_only:
            raise StorageError("the log store is read-only")
        check_batch_types(batch)  # before _View.read reads what the batch names
        committing = False
        epoch = self._lease_epoch
        expected = self._writes_version

        def work(conn: psycopg.Connection[Any]) -> None:
            nonlocal committing
            committing = False
            # Two round trips: BEGIN, the lease's and the state row's locks and the reads
            # check_batch needs in one; the writes and the COMMIT in the other. Not
            # conn.transaction(): in a pipeline it syncs after BEGIN, after the block and after
            # COMMIT (three more round trips, each a wake-up of this thread).
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    lease = _queue_lease(conn) if epoch is not None else None
                    view = _View.read(conn, batch, before=lambda: _check_lease(lease, epoch))
                    if expected is not None and view.schema_version != expected:
                        raise StorageError(
                            f"the log schema at {self._where} is now at version "
                            f"{view.schema_version}, not {expected} as when this store opened "
                            "it (migrated by another Ironroot, or edited): refusing to write",
                            code="store-schema",
                        )
                    check_batch(batch, view)
                    with conn.cursor(binary=True) as cur:
                        _apply(cur, batch)
                    committing = True  # what fails from here on may follow the COMMIT
                    conn.execute("COMMIT")
            except BaseException:
                # The transaction is open (a refusal) or failed (an error): end it here, so the
                # connection goes back to the pool idle. Nothing to do on a lost connection.
                if not conn.closed and conn.info.transaction_status in _IN_TRANSACTION:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                raise

        # Once more on a fresh connection only when the transaction surely did not commit.
        self._run(work, retry=lambda: not committing)

    def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            with contextlib.suppress(Exception):
                self._pool.close(timeout=self._timeout)
        if self._snapshot is not None:
            with contextlib.suppress(Exception):
                self._snapshot.close()


_IN_TRANSACTION: Final = (
    TransactionStatus.INTRANS,
    TransactionStatus.INERROR,
)


def _queue_lease(conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    """Inside a write transaction, queue the read of the sequencer lease: the row held
    ``FOR KEY SHARE`` until commit, so no takeover, which takes it ``FOR UPDATE``, lands in
    between; the holder's renewals, which change no key column, need not wait for the write.
    It goes before the state row's lock (:func:`_check_lease` reads its answer)."""
    return conn.execute("SELECT epoch, holder FROM sequencer_lease WHERE id = 1 FOR KEY SHARE")


def _check_lease(cur: psycopg.Cursor[Any] | None, epoch: int | None) -> None:
    """:class:`StaleBatch` unless the lease read by :func:`_queue_lease` is still at ``epoch``
    (nothing to check without a lease)."""
    if cur is None or epoch is None:
        return
    row = cur.fetchone()
    stored = None if row is None else _integer(row[0])
    if stored != epoch:
        raise StaleBatch(
            f"this sequencer's lease (epoch {epoch}) was taken over (the stored epoch is "
            f"{stored}): another sequencer writes the log"
        )


def _configure(
    conn: psycopg.Connection[Any], timeout: float, schema: str | None, *, snapshot: bool = False
) -> None:
    """Set the session parameters the store relies on, on a new connection."""
    version = conn.info.server_version
    conn.execute(_session_settings(timeout, schema, snapshot=snapshot, server_version=version))


_MISCONFIGURED: Final = ("42501", "3F000")
"""SQLSTATEs that retrying cannot cure: insufficient_privilege, invalid_schema_name (and any of
class 28, invalid_authorization_specification, see :func:`_misconfigured`)."""


def _misconfigured(exc: psycopg.Error) -> bool:
    """Whether the server refused for a reason that only a change of configuration cures (a
    privilege the role lacks, a schema that is not there, an authorization refused), as
    opposed to a failure that passes (a connection refused or lost, a session ended, a
    timeout). psycopg gives no SQLSTATE for a refused connection attempt, so an authentication
    failure at connection is told apart only once the server reports it with one."""
    state = exc.sqlstate or ""
    return state in _MISCONFIGURED or state.startswith("28")


_REFUSED: Final = re.compile(
    r"authentication failed for user"  # password, SCRAM/MD5, peer, cert (not _ASKS_ANOTHER)
    r"|no pg_hba\.conf entry for"
    r"|pg_hba\.conf rejects connection"
    r"|role \"[^\"]*\" does not exist"
    r"|database \"[^\"]*\" does not exist"
    r"|role \"[^\"]*\" is not permitted to log in"
    r"|permission denied for database"
    r"|no password supplied"
)
_ASKS_ANOTHER: Final = re.compile(
    r"\b(?:LDAP|RADIUS|PAM|BSD|GSSAPI|SSPI|Ident) authentication failed for user"
)
"""Methods whose verdict comes from another server (LDAP, RADIUS, a KDC, identd, a PAM or BSD
auth backend): the PostgreSQL server gives its client this one message whether that server
said no or could not be reached, so it may be an outage and is never taken for a refusal."""


def refused_connection(exc: psycopg.Error, where: str) -> ConfigError | None:
    """The :class:`ConfigError` (code ``store-refused``) for a connection attempt the server
    refused for what only a change of configuration cures, else ``None`` (an outage).

    Why from the message text: psycopg 3 gives no SQLSTATE for a failed connection attempt
    (``exc.sqlstate`` is ``None``: libpq returns no result, only its error text), yet a
    server that refuses the role, the password, the database or the client's address
    (``pg_hba.conf``) says so in that text, and retrying it can only fail the same way. A
    server that is down, unreachable, starting up or out of connections says otherwise and
    stays an outage (:class:`~ironroot.errors.StoreUnavailable`, retried). The patterns are
    the server's English messages: a server whose ``lc_messages`` translates them is taken
    for an outage, as before. So is a failed login of a method that asks another server
    (LDAP, RADIUS, PAM, BSD, GSSAPI, SSPI, ident): the server's message is the same whether
    that server said no or was down, and one blip of it must not stop every replica.
    ``where`` names the server (:func:`describe_dsn`); the server's reason is quoted (libpq
    never puts the password in it)."""
    if not isinstance(exc, psycopg.OperationalError) or exc.sqlstate is not None:
        return None
    for line in str(exc).splitlines():
        if _REFUSED.search(line) and not _ASKS_ANOTHER.search(line):
            cause = line.split("FATAL:", 1)[-1].strip()
            return ConfigError(
                f"PostgreSQL at {where} refused the connection: {cause}: check the DSN's "
                "user, password and database and the server's pg_hba.conf (retrying cannot "
                "cure this)",
                code="store-refused",
            )
    return None


def _reason(exc: psycopg.Error) -> str:
    """The server's or libpq's message, first line only (never the DSN)."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]


def _blob(value: Any) -> bytes:
    """A ``bytea`` column's value; a :class:`StorageError` for anything else (a column retyped
    underneath: ``bytes()`` of a ``str`` is a ``TypeError``, of an ``int`` that many zeros)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    raise StorageError(
        f"the log schema holds a {type(value).__name__} where bytes belong: it is damaged"
    )


def _integer(value: Any) -> int:
    """A ``bigint`` column's value; a :class:`StorageError` for anything else (a ``numeric``,
    ``text`` or ``double precision`` column retyped underneath)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise StorageError(
        f"the log schema holds a {type(value).__name__} where an integer belongs: it is damaged"
    )


def _text(value: Any) -> str:
    """A ``text`` column's value; a :class:`StorageError` for anything else (``str()`` of a
    ``bytea`` is its Python repr, never the text that was stored)."""
    if isinstance(value, str):
        return value
    raise StorageError(
        f"the log schema holds a {type(value).__name__} where text belongs: it is damaged"
    )


def _tree_state(row: Any) -> TreeState:
    size, blob = row
    blob = _blob(blob)
    if not isinstance(size, int) or isinstance(size, bool) or len(blob) % _HASH:
        raise StorageError("the log state row is malformed")
    return TreeState(size, tuple(blob[i : i + _HASH] for i in range(0, len(blob), _HASH)))


def _stored_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version (0: no log tables at all in the schema)."""
    row = conn.execute(
        "SELECT to_regclass('schema_version') IS NOT NULL, to_regclass('entries') IS NOT NULL"
    ).fetchone()
    assert row is not None
    has_versions, has_entries = row
    if not has_versions:
        if has_entries:
            raise StorageError(
                "the PostgreSQL schema holds log tables but no schema_version table",
                code="store-schema",
            )
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    value = None if row is None else row[0]
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        # another tool's table of that name (Flyway's of old: ``version varchar``)
        raise StorageError(
            "the PostgreSQL schema holds a schema_version table that is not Ironroot's: its "
            f"version {str(value)[:40]} is no positive integer; give the log a schema of its own",
            code="store-schema",
        )
    return value


def _create_schema(conn: psycopg.Connection[Any], schema: str | None) -> None:
    """Create ``schema`` unless it exists. Not ``CREATE SCHEMA IF NOT EXISTS`` alone: that
    needs ``CREATE`` on the database even when the schema exists, and a role given only a
    schema created for it beforehand (and owning it) would be refused."""
    if schema is None:
        return
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    if row is None:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def _apply_migrations(
    conn: psycopg.Connection[Any], schema: str | None, migrations: Sequence[Migration]
) -> None:
    with conn.transaction():
        # A step may rebuild an index over every entry: no statement timeout here.
        conn.execute("SET LOCAL statement_timeout = 0")
        # The lock first: CREATE SCHEMA IF NOT EXISTS itself races with another migrator.
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(coalesce(%s, current_schema(), '')))",
            (MIGRATE_LOCK_CLASS, schema),
        )
        _create_schema(conn, schema)
        if conn.execute("SELECT current_schema()").fetchone() in (None, (None,)):
            raise StorageError(
                "PostgreSQL has no schema to create the log in (search_path)", code="store-schema"
            )
        conn.execute(_VERSION_TABLE)
        version = _stored_version(conn)
        latest = migrations[-1].version
        if version > latest:
            raise StorageError(
                f"the log schema has version {version}; this Ironroot knows up to {latest}: "
                "upgrade Ironroot",
                code="store-schema",
            )
        for step in migrations:
            if step.version <= version:
                continue
            for statement in step.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                (step.version, step.description),
            )


_READ: Final = (
    "SELECT (SELECT coalesce(max(version), 0) FROM schema_version), "
    "ARRAY(SELECT sha256(entry) FROM entries WHERE sha256(entry) = ANY(%(ids)b)), "
    "ARRAY(SELECT entry_id FROM pending WHERE entry_id = ANY(%(ids)b)), "
    # one value per key asked for, in its order (NULL: no such tile)
    "ARRAY(SELECT t.data FROM unnest(%(levels)b::smallint[], %(idxs)b::bigint[]) "
    "WITH ORDINALITY AS k(level, idx, n) "
    "LEFT JOIN tiles t ON t.level = k.level AND t.idx = k.idx ORDER BY k.n), "
    "EXISTS(SELECT 1 FROM checkpoints WHERE size = %(size)b), "
    "ARRAY(SELECT m.value FROM unnest(%(keys)s::text[]) WITH ORDINALITY AS k(key, n) "
    "LEFT JOIN meta m ON m.key = k.key ORDER BY k.n)"
)
"""Everything :func:`check_batch` may ask about a batch, in one statement (after the lock)."""


def _array(value: Any) -> list[Any]:
    """An array column's value; a :class:`StorageError` for anything else."""
    if isinstance(value, list):
        return value
    raise StorageError(
        f"the log schema answered a {type(value).__name__} where an array belongs: it is damaged"
    )


class _View:
    """What :func:`check_batch` reads, fetched inside the write transaction in one round trip:
    every question the rules can ask about ``batch`` is answered from here."""

    def __init__(
        self,
        size: int,
        integrated: set[bytes],
        pending: set[bytes],
        tiles: dict[tuple[int, int], bytes],
        checkpoint_sizes: set[int],
        meta: dict[str, str],
        schema_version: int,
    ) -> None:
        self.schema_version = schema_version
        self._size = size
        self._integrated = integrated
        self._pending = pending
        self._tiles = tiles
        self._checkpoints = checkpoint_sizes
        self._meta = meta

    @classmethod
    def read(
        cls,
        conn: psycopg.Connection[Any],
        batch: StoreBatch,
        *,
        before: Callable[[], None] = lambda: None,
    ) -> _View:
        """The view, read with the statements queued before it in one round trip;
        ``before()`` runs first once their answers are in (it reads what was queued before)."""
        ids = list(
            {i for i, _ in batch.integrated}
            | {i for i, _ in batch.pending}
            | set(batch.cleared)
            | set(batch.refused)
        )
        meta_keys = list({*batch.meta, *(refusal_key(i) for i in batch.refused)})
        keys = list(batch.tiles)
        size = batch.state.size if batch.state is not None else -1
        with conn.cursor(binary=True) as lock, conn.cursor(binary=True) as cur:
            # FOR UPDATE, alone and first: a second writer waits here until this transaction
            # ends, then reads the size this one committed (and is refused by the fence). The
            # reads after it are one statement with a snapshot taken once the lock is held, so
            # they see every row the writer it waited for (or an add_pending) committed.
            lock.execute("SELECT size FROM state WHERE id = 1 FOR UPDATE")
            cur.execute(
                _READ,
                {
                    "ids": ids,
                    "levels": [level for level, _ in keys],
                    "idxs": [index for _, index in keys],
                    "size": size,
                    "keys": meta_keys,
                },
            )
            before()  # its fetch sends everything queued at once
            state = lock.fetchall()
            row = cur.fetchone()
        if not state:
            raise StorageError("the log schema has no state row")
        assert row is not None
        version, integrated, pending, tiles, has_checkpoint, meta = row
        tile_data = _array(tiles)
        meta_values = _array(meta)
        if len(tile_data) != len(keys) or len(meta_values) != len(meta_keys):
            raise StorageError("the log schema answered a read with the wrong number of rows")
        return cls(
            _integer(state[0][0]),
            {_blob(r) for r in _array(integrated)},
            {_blob(r) for r in _array(pending)},
            {
                key: _blob(data)
                for key, data in zip(keys, tile_data, strict=True)
                if data is not None
            },
            {size} if has_checkpoint is True else set(),
            {k: _text(v) for k, v in zip(meta_keys, meta_values, strict=True) if v is not None},
            _integer(version),
        )

    def stored_size(self) -> int:
        return self._size

    def integrated_among(self, entry_ids: Collection[bytes]) -> set[bytes]:
        return self._integrated.intersection(entry_ids)

    def pending_among(self, entry_ids: Collection[bytes]) -> set[bytes]:
        return self._pending.intersection(entry_ids)

    def tiles(self, keys: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return {k: self._tiles[k] for k in keys if k in self._tiles}

    def has_checkpoint(self, size: int) -> bool:
        return size in self._checkpoints

    def meta_values(self, keys: Collection[str]) -> dict[str, str]:
        return {k: self._meta[k] for k in keys if k in self._meta}


def _apply(cur: psycopg.Cursor[Any], batch: StoreBatch) -> None:
    """Write a checked batch (inside the transaction)."""
    if batch.meta:
        cur.executemany(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
            list(batch.meta.items()),
        )
    if batch.pending:
        cur.executemany(
            "INSERT INTO pending (entry_id, entry) VALUES (%b, %b) "
            "ON CONFLICT (entry_id) DO NOTHING",
            list(batch.pending),
        )
    if batch.cleared or batch.refused:
        cur.execute(
            "DELETE FROM pending WHERE entry_id = ANY(%b)",
            ([*batch.cleared, *batch.refused],),
        )
    # The integration goes in one statement, every table's rows as arrays: each statement
    # costs the client a round of sending and result processing, on the log's writer thread.
    # Its parts are data-modifying CTEs of distinct tables (one snapshot, no row twice).
    parts: list[str] = []
    args: dict[str, Any] = {}
    if batch.integrated:
        first = batch.first_index
        parts.append(
            "INSERT INTO entries (idx, entry) "
            "SELECT * FROM unnest(%(idx)b::bigint[], %(e)b::bytea[])"
        )
        args["idx"] = list(range(first, first + len(batch.integrated)))
        args["e"] = [entry for _, entry in batch.integrated]
    if batch.tiles:
        keys = list(batch.tiles)
        parts.append(
            "INSERT INTO tiles (level, idx, data) "
            "SELECT * FROM unnest(%(tl)b::smallint[], %(ti)b::bigint[], %(td)b::bytea[]) "
            "ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data"
        )
        args["tl"] = [level for level, _ in keys]
        args["ti"] = [index for _, index in keys]
        args["td"] = [batch.tiles[key] for key in keys]
    if batch.state is not None:
        args["size"] = batch.state.size
        args["hashes"] = b"".join(batch.state.hashes)
        args["note"] = batch.checkpoint
        parts.append("UPDATE state SET size = %(size)b, hashes = %(hashes)b WHERE id = 1")
        parts.append("INSERT INTO checkpoints (size, note) VALUES (%(size)b, %(note)b)")
        if batch.batch_data:
            parts.append(
                "INSERT INTO batch_data (size, name, value) "
                "SELECT %(size)b, * FROM unnest(%(bn)s::text[], %(bv)b::bytea[])"
            )
            args["bn"] = list(batch.batch_data)
            args["bv"] = list(batch.batch_data.values())
    if parts:
        *ctes, last = parts
        query = "".join(
            f"WITH w{n} AS ({part}) " if n == 0 else f", w{n} AS ({part}) "
            for n, part in enumerate(ctes)
        )
        cur.execute(query + last, args)
