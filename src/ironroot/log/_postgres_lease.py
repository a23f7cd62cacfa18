"""The election of the one sequencer among replicas sharing a PostgreSQL log (ADR 0009).

A dedicated session per candidate, a session-scoped advisory lock and a lease row with an
epoch: what :class:`~ironroot.log._postgres.PostgresLogStore` fences its writes with
(``fence_with_lease``; the check inside each write transaction is ``_check_lease`` there).
The store's module docstring describes the whole protocol; this module is the candidate's
side of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import psycopg
from psycopg import sql

from ironroot.errors import ConfigError, StorageError, StoreUnavailable
from ironroot.log._open import check_schema_name
from ironroot.log._postgres import (
    MIGRATE_LOCK_CLASS,
    _configure,
    _connect_kwargs,
    _create_schema,
    _misconfigured,
    _reason,
    describe_dsn,
    refused_connection,
)

__all__ = ["SEQUENCER_LOCK_CLASS", "SequencerLease", "sequencer_lock_key"]

SEQUENCER_LOCK_CLASS: Final = 0x4953
"""The class of the election's lock before Ironroot took 64-bit keys: ``(0x4953, hashtext(schema
name))``, whose 32-bit hash let two schemas share one lock. No longer taken; looked for (held by
a live lease holder of an older Ironroot) so that a rolling upgrade defers to it."""
_KEY_DOMAIN: Final = b"ironroot sequencer lock\x00"

_log = logging.getLogger("ironroot.log")


def sequencer_lock_key(schema: str) -> int:
    """The advisory lock key (a signed 64-bit integer, ``pg_try_advisory_lock(bigint)``) of the
    sequencer of the log in ``schema`` (the schema's name, ``''`` for none): the first 8 bytes
    of SHA-256 over a domain tag and the name. Advisory locks are per database, so the key
    needs only tell the database's schemas apart; with 64 bits two of them share a lock (and
    exclude each other's sequencers) with odds of about n²/2⁶⁵, where ``hashtext``'s 32 bits
    made it likely for a few ten thousand schemas (and easy to make on purpose)."""
    digest = hashlib.sha256(_KEY_DOMAIN + schema.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_LEASE_TABLE: Final = """CREATE TABLE IF NOT EXISTS sequencer_lease (
    id integer PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL
)"""


class SequencerLease:
    """The election of the one sequencer among replicas that share a log in PostgreSQL.

    One dedicated session (named ``holder`` on the server) holds a session-scoped advisory
    lock while its process sequences. The lease row says until when (the server's clock) the
    holder is known alive; the holder renews it (:meth:`renew`), and each acquisition bumps the
    row's ``epoch``, the fencing token of :meth:`PostgresLogStore.fence_with_lease`.

    :meth:`try_acquire` returns the new epoch or ``None``. When the lock is held by another
    session whose lease has expired (a process paused, or cut off with its session still
    open), it ends every session named as that holder first. After acquiring, it also ends
    the previous holder's remaining sessions (its store's pool), so none is left inside a
    write. Database errors from :meth:`try_acquire`: :class:`ConfigError` (code
    ``store-privilege``) for what only a change of configuration cures (SQLSTATE 42501
    insufficient_privilege, 3F000 invalid_schema_name, class 28 authorization), or with code
    ``store-refused`` for a connection the server refused (an unknown role or database, a
    wrong password, ``pg_hba.conf``: :func:`~ironroot.log._postgres.refused_connection`), else
    :class:`StoreUnavailable` (retry); from :meth:`renew`: ``False`` (the caller stops
    sequencing).
    """

    def __init__(
        self,
        dsn: str,
        *,
        holder: str,
        schema: str | None = None,
        lease: float = 5.0,
        timeout: float = 2.0,
    ) -> None:
        if not 0.5 <= lease <= 600:
            raise ConfigError("the sequencer lease must be between 0.5 and 600 seconds")
        if not holder or len(holder) > 63 or not holder.isprintable():
            raise ConfigError("a lease holder's name is 1-63 printable characters")
        self._dsn = dsn
        self._schema = check_schema_name(schema)
        self._where = describe_dsn(dsn) + (f" schema {schema}" if schema else "")
        self.holder = holder
        self.lease = lease
        self._timeout = timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._lock_key = 0  # sequencer_lock_key of the session's schema (set with the session)
        self._table_ready = False
        self._deferred_to: str | None = None
        self.epoch: int | None = None
        """The epoch this session holds, ``None`` when it holds none."""

    def _session(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            kwargs = _connect_kwargs(self._dsn, self._timeout)
            kwargs["application_name"] = self.holder
            conn = psycopg.Connection.connect(self._dsn, **kwargs)
            try:
                _configure(conn, self._timeout, self._schema)
                name = self._schema
                if name is None:
                    row = conn.execute("SELECT coalesce(current_schema(), '')").fetchone()
                    name = "" if row is None else str(row[0])
            except BaseException:
                conn.close()
                raise
            self._lock_key = sequencer_lock_key(name)
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        self.epoch = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _hashtext(self) -> sql.Composable:
        """The schema's 32-bit key, as the migrations' lock (and older sequencers') take it."""
        return sql.SQL("hashtext(coalesce({}, current_schema(), ''))").format(
            sql.Literal(self._schema)
        )

    def _older_sequencer(self, conn: psycopg.Connection[Any]) -> str | None:
        """The holder of the lease when it is live and its session holds the election lock of
        an older Ironroot (``(SEQUENCER_LOCK_CLASS, hashtext(schema))``): a sequencer not yet
        upgraded, which this one's 64-bit lock does not exclude."""
        row = conn.execute(
            sql.SQL(
                "SELECT s.holder FROM sequencer_lease s "
                "JOIN pg_stat_activity a ON a.application_name = s.holder "
                "JOIN pg_locks l ON l.pid = a.pid "
                "WHERE s.id = 1 AND s.expires_at >= now() AND s.holder <> {} "
                "AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid = {}::oid AND l.objid = ({})::oid LIMIT 1"
            ).format(sql.Literal(self.holder), sql.Literal(SEQUENCER_LOCK_CLASS), self._hashtext())
        ).fetchone()
        return None if row is None else str(row[0])

    def try_acquire(self) -> int | None:
        """Become the sequencer if no live holder is: the new epoch, or ``None``."""
        if self.epoch is not None:
            return self.epoch
        try:
            conn = self._session()
            if not self._table_ready:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("SELECT pg_advisory_xact_lock({}, {})").format(
                            sql.Literal(MIGRATE_LOCK_CLASS), self._hashtext()
                        )
                    )
                    _create_schema(conn, self._schema)
                    conn.execute(_LEASE_TABLE)
                    conn.execute(
                        "INSERT INTO sequencer_lease VALUES (1, 0, '', '-infinity') "
                        "ON CONFLICT (id) DO NOTHING"
                    )
                self._table_ready = True
            lock = sql.SQL("SELECT pg_try_advisory_lock({}::bigint)").format(
                sql.Literal(self._lock_key)
            )
            row = conn.execute(lock).fetchone()
            if not (row and row[0]):
                stale = conn.execute(
                    "SELECT holder FROM sequencer_lease WHERE id = 1 AND expires_at < now()"
                ).fetchone()
                if stale is None or not stale[0] or stale[0] == self.holder:
                    return None
                self._end_sessions(conn, str(stale[0]))
                row = conn.execute(lock).fetchone()
                if not (row and row[0]):
                    return None
            older = self._older_sequencer(conn)
            if older is not None:  # a rolling upgrade: wait for the older sequencer to stop
                conn.execute("SELECT pg_advisory_unlock(%s::bigint)", (self._lock_key,))
                if older != self._deferred_to:  # said once per older holder
                    self._deferred_to = older
                    _log.warning(
                        "the sequencer lease at %s is held by %s, an older Ironroot (32-bit "
                        "election lock): not taking over until it stops or its lease expires",
                        self._where,
                        older,
                    )
                return None
            self._deferred_to = None
            previous = conn.execute("SELECT holder FROM sequencer_lease WHERE id = 1").fetchone()
            if previous is not None and previous[0] and previous[0] != self.holder:
                self._end_sessions(conn, str(previous[0]))
            with conn.transaction():
                # FOR UPDATE waits for a write in progress (the fence holds the row FOR KEY
                # SHARE); a renewal, which changes no key, does not.
                conn.execute("SELECT epoch FROM sequencer_lease WHERE id = 1 FOR UPDATE")
                epoch_row = conn.execute(
                    "UPDATE sequencer_lease SET epoch = epoch + 1, holder = %s, "
                    "expires_at = now() + make_interval(secs => %s) WHERE id = 1 RETURNING epoch",
                    (self.holder, self.lease),
                ).fetchone()
        except psycopg.Error as exc:
            self._drop()
            refused = refused_connection(exc, self._where)
            if refused is not None:
                raise refused from exc
            if _misconfigured(exc):
                raise ConfigError(
                    f"cannot run the sequencer election at {self._where}: {_reason(exc)} "
                    f"(SQLSTATE {exc.sqlstate}): the database role lacks a privilege (or the "
                    "schema) the election needs, which retrying cannot cure",
                    code="store-privilege",
                ) from exc
            raise StoreUnavailable(
                f"cannot run the sequencer election at {self._where}: {_reason(exc)}"
            ) from exc
        if epoch_row is None:  # pragma: no cover - the row is created above
            self._drop()
            raise StorageError("the sequencer lease row is missing")
        self.epoch = int(epoch_row[0])
        return self.epoch

    def clock_offset(self, clock: Callable[[], float] = time.time) -> float:
        """This host's clock (``clock``: seconds since the epoch) minus the database server's,
        in seconds, read on the election's session (to within half a round trip): a sequencer
        checks it before standing for election. :class:`StoreUnavailable` when it cannot be
        read, :class:`ConfigError` (``store-refused``) when the server refuses the session."""
        try:
            conn = self._session()
            before = clock()
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            after = clock()
        except psycopg.Error as exc:
            self._drop()
            refused = refused_connection(exc, self._where)
            if refused is not None:
                raise refused from exc
            raise StoreUnavailable(
                f"cannot read the database's clock at {self._where}: {_reason(exc)}"
            ) from exc
        if row is None:  # pragma: no cover - a SELECT of one value
            raise StorageError("the database gave no time")
        return (before + after) / 2 - float(row[0])

    @staticmethod
    def _end_sessions(conn: psycopg.Connection[Any], holder: str) -> None:
        """End every server session named ``holder`` (waiting up to 5 s for each to go)."""
        conn.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (holder,),
        )

    def renew(self) -> bool:
        """Extend the lease by its length from now (the server's clock); ``False`` when this
        session no longer holds it (the lock's session was lost, or another took over)."""
        if self.epoch is None or self._conn is None:
            return False
        try:
            cur = self._conn.execute(
                "UPDATE sequencer_lease SET expires_at = now() + make_interval(secs => %s) "
                "WHERE id = 1 AND epoch = %s AND holder = %s",
                (self.lease, self.epoch, self.holder),
            )
            held = cur.rowcount == 1
        except psycopg.Error:
            held = False
        if not held:
            self._drop()
        return held

    def release(self) -> None:
        """Give the lease up now (successors need not wait for it to expire)."""
        if self.epoch is not None and self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.execute(
                    "UPDATE sequencer_lease SET expires_at = now() WHERE id = 1 AND epoch = %s",
                    (self.epoch,),
                )
        self._drop()

    close = release
