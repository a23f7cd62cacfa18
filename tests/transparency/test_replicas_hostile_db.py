"""Replicas against a database that works against them: settings on the role or the database
that end sessions, the server ending the sequencer's sessions, rows edited by hand.

Each condition must leave the promises of ``test_replicas.py`` standing (no acknowledged
entry lost, no fork, 503 with ``Retry-After`` while the database cannot serve) and must not
cost a live sequencer its lease when nothing is wrong with it.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from replica_cluster import Cluster, Load, audit, audit_receipts

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StorageError
from ironroot.log import Log, NoteSigner, PostgresLogStore, SequencerLease
from ironroot.log._postgres_lease import sequencer_lock_key
from ironroot.log.layout import load_checkpoint_signer
from ironroot.transparency._config import load_config
from ironroot_pg import admin, drop_schema, fresh_schema, test_dsn
from serving import free_port

pytestmark = pytest.mark.integration
STORE_INDEPENDENT = True  # PostgreSQL only: each test makes its own schema

ORIGIN = "example.com/hostile-db"
_SIGNER = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.EDDSA))


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        PostgresLogStore(test_dsn(), schema=name).close()  # the log's tables
        yield name


def _dsn(**settings: str) -> str:
    """The test DSN with server settings applied at connection (as a role's or a database's
    ``ALTER ... SET`` would apply them)."""
    options = " ".join(f"-c {k}={v}" for k, v in settings.items())
    return make_conninfo(test_dsn(), options=options)


def test_an_idle_session_timeout_does_not_cost_the_sequencer_its_lease(schema: str) -> None:
    """``idle_session_timeout`` (a common setting on a role or a database) ended the lease's
    own session between two renewals, and its advisory lock with it: the live sequencer lost
    its lease at every renewal. Ironroot's sessions now turn it off for themselves."""
    dsn = _dsn(idle_session_timeout="200")
    lease = SequencerLease(
        dsn, holder=f"ironroot-seq-idle-{schema}", schema=schema, lease=1.5, timeout=2.0
    )
    epoch = lease.try_acquire()
    assert epoch is not None
    store = PostgresLogStore(dsn, schema=schema, application_name=lease.holder, pool_size=1)
    store.fence_with_lease(epoch)
    log = Log(store, origin=ORIGIN, note_signers=[_SIGNER])
    log.start()
    try:
        assert log.submit(b"before the idle time").integrated.result(timeout=30).index == 0
        time.sleep(0.6)  # idle past the setting (a wait, not a timing assertion)
        assert lease.renew()
        assert lease.epoch == epoch
        assert log.submit(b"after the idle time").integrated.result(timeout=30).index == 1
        time.sleep(0.6)
        assert lease.renew()
    finally:
        log.close()
        lease.release()


@pytest.mark.parametrize(
    ("edit", "stored"),
    [
        ("INSERT INTO {} (version, description) VALUES (2, 'a newer Ironroot')", 2),
        ("DELETE FROM {}", 0),
    ],
    ids=["migrated-by-a-newer-ironroot", "version-rows-deleted"],
)
def test_a_running_sequencer_refuses_to_write_once_the_schema_version_changed(
    schema: str, edit: str, stored: int
) -> None:
    """The version was checked only when the store opened: a sequencer that runs for months
    went on writing the old layout into a schema a newer Ironroot had migrated (or whose
    version rows were damaged). Every write now checks it in its own transaction."""
    store = PostgresLogStore(test_dsn(), schema=schema, pool_size=1)
    log = Log(store, origin=ORIGIN, note_signers=[_SIGNER])
    log.start()
    try:
        assert log.submit(b"before the migration").integrated.result(timeout=30).index == 0
        with admin() as conn:
            conn.execute(sql.SQL(edit).format(sql.Identifier(schema, "schema_version")))
        with pytest.raises(StorageError) as refused:
            log.submit(b"after the migration").durable.result(timeout=30)
        assert refused.value.code == "store-schema"
        assert f"is now at version {stored}, not 1" in refused.value.detail
        assert store.state().size == 1
        assert store.pending(10) == []
    finally:
        log.close()


@pytest.mark.parametrize("other", ["key", "origin"])
def test_a_replica_refuses_a_schema_that_holds_another_service_s_log(
    tmp_path: Path, schema: str, other: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second replica group pointed at the same schema, with other keys (or another
    origin), served the first group's checkpoints and added the statements its own policy
    accepted to that log as pending rows, which the first group's sequencer then integrated
    unchecked by its policy. It now refuses to start (exit 2), adding nothing."""
    data = Cluster(tmp_path, test_dsn(), schema, count=1).replicas[0].data
    origin = load_config(data).origin
    if other == "key":
        signer = NoteSigner(origin, PrivateKey.generate(Algorithm.EDDSA))
    else:
        signer = load_checkpoint_signer(data, origin="other.example/log")
    log = Log(
        PostgresLogStore(test_dsn(), schema=schema), origin=signer.name, note_signers=[signer]
    )
    log.start()
    try:
        log.submit(b"the other service's entry").integrated.result(timeout=30)
    finally:
        log.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    capsys.readouterr()
    args = ["serve", "--data", str(data), "--port", port, "--replica", "--lease", "0.6"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the log in this store is not this service's" in err
    assert "Traceback" not in err
    store = PostgresLogStore(test_dsn(), schema=schema, pool_size=1)
    try:
        assert store.state().size == 1
        assert store.pending(10) == []
    finally:
        store.close()


@pytest.fixture
def own_role() -> Iterator[tuple[str, str]]:
    """A login role of this test's own (at most 20 sessions) and a schema created for it
    beforehand and owned by it, as docs/transparency.md tells a deployment without CREATE on
    the database to do; both dropped afterwards."""
    with fresh_schema() as schema:
        role = "ironroot_t_" + secrets.token_hex(6)
        with admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 20").format(sql.Identifier(role))
            )
            conn.execute(
                sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                    sql.Identifier(schema), sql.Identifier(role)
                )
            )
        try:
            yield role, schema
        finally:
            drop_schema(schema)
            with admin() as conn:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_role_that_owns_a_schema_made_for_it_opens_the_log_and_stands_for_election(
    own_role: tuple[str, str],
) -> None:
    """``CREATE SCHEMA IF NOT EXISTS`` needs CREATE on the database even when the schema
    exists: a role given only its own schema could neither create the log's tables nor stand
    for election ("permission denied for database")."""
    role, schema = own_role
    dsn = make_conninfo(test_dsn(), user=role)
    lease = SequencerLease(
        dsn, holder=f"ironroot-seq-own-{schema}", schema=schema, lease=1.5, timeout=2.0
    )
    epoch = lease.try_acquire()
    assert epoch == 1
    store = PostgresLogStore(dsn, schema=schema, application_name=lease.holder, pool_size=1)
    store.fence_with_lease(epoch)
    log = Log(store, origin=ORIGIN, note_signers=[_SIGNER])
    log.start()
    try:
        assert log.submit(b"under its own role").integrated.result(timeout=30).index == 0
    finally:
        log.close()
        lease.release()


def _terminate(cluster: Cluster, *, lock_session_only: bool) -> int:
    """End the current lease holder's sessions on the server (``pg_terminate_backend``), or
    only the one holding its advisory lock; the number ended."""
    with admin() as conn:
        holder = conn.execute(
            sql.SQL("SELECT holder FROM {} WHERE id = 1").format(
                sql.Identifier(cluster.schema, "sequencer_lease")
            )
        ).fetchone()
        assert holder is not None
        if lock_session_only:
            # The election's lock, a 64-bit key: pg_locks shows it as classid (high 32 bits),
            # objid (low 32 bits), objsubid 1.
            key = sequencer_lock_key(cluster.schema) & (2**64 - 1)
            query = (
                "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a JOIN pg_locks l "
                "ON l.pid = a.pid WHERE l.locktype = 'advisory' AND l.classid = %s "
                "AND l.objid = %s AND l.objsubid = 1 AND a.application_name = %s"
            )
            rows = conn.execute(query, (key >> 32, key & 0xFFFFFFFF, holder[0])).fetchall()
        else:
            query = (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
            )
            rows = conn.execute(query, (holder[0],)).fetchall()
    return len(rows)


def test_the_server_ending_the_sequencer_s_sessions_loses_nothing_and_never_forks(
    tmp_path: Path,
) -> None:
    """``pg_terminate_backend`` on every session of the sequencer (mid-batch or at its
    COMMIT, whichever the moment is), then on its election session alone, again and again:
    a new election each time, no acknowledged entry lost, no fork, never a 500."""
    with fresh_schema() as schema:
        cluster = Cluster(tmp_path, test_dsn(), schema, count=2, lease=1.5)
        try:
            cluster.start_all()
            with Load(cluster) as load:
                for round_ in range(6):
                    size = cluster.wait_growth(cluster.tree_size())
                    _, epoch = cluster.leader()
                    assert _terminate(cluster, lock_session_only=round_ % 2 == 1) >= 1
                    cluster.leader(epoch)  # elected again (either replica)
                    cluster.wait_growth(size)
            result = audit(cluster, load)
            receipts = audit_receipts(cluster, load)
        finally:
            cluster.stop_all()
    assert receipts > 0
    assert result.acknowledged > 0
    assert result.lost == 0
    assert result.forks == 0
    assert result.tree_size >= result.acknowledged
    assert load.statuses.get(500, 0) == 0


@pytest.fixture
def read_only_role() -> Iterator[tuple[str, str]]:
    """A login role of this test's own and a fresh schema (created by the superuser) where
    the role is granted only what a reader needs, once the log is there; both dropped
    afterwards."""
    with fresh_schema() as schema:
        role = "ironroot_t_" + secrets.token_hex(6)
        with admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 20").format(sql.Identifier(role))
            )
        try:
            yield role, schema
        finally:
            drop_schema(schema)
            with admin() as conn:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _as_role(url: str, role: str) -> str:
    """The postgresql:// URL ``url`` with ``role`` as its user (what ``[log] dsn`` takes)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, parts.fragment))


def test_a_role_without_the_election_s_privileges_stops_the_replica_with_exit_2(
    tmp_path: Path, read_only_role: tuple[str, str]
) -> None:
    """A replica whose role may read the log but not take part in the election (no CREATE on
    the schema, no UPDATE on the lease) reported "permission denied" as the database being
    unavailable and stood again for ever, serving reads and never sequencing. The election
    now tells a refusal by privilege (SQLSTATE 42501) from an outage: the replica stops and
    ``ironroot serve`` exits 2, naming the privilege problem."""
    role, schema = read_only_role
    cluster = Cluster(
        tmp_path,
        test_dsn(),
        schema,
        count=1,
        replica_dsn=_as_role(test_dsn(), role),
    )
    replica = cluster.replicas[0]
    origin = load_config(replica.data).origin
    # The log and the lease table, made by the superuser; the role may only read them.
    Log(
        PostgresLogStore(test_dsn(), schema=schema, pool_size=1),
        origin=origin,
        note_signers=[load_checkpoint_signer(replica.data, origin)],
    ).close()
    lease = SequencerLease(
        test_dsn(), holder=f"ironroot-seq-admin-{schema}", schema=schema, lease=1.5
    )
    assert lease.try_acquire() == 1
    lease.release()
    with admin() as conn:
        for grant in (
            "GRANT USAGE ON SCHEMA {} TO {}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}",
        ):
            conn.execute(sql.SQL(grant).format(sql.Identifier(schema), sql.Identifier(role)))
    cluster.start(replica)
    try:
        assert replica.proc is not None
        code = replica.proc.wait(timeout=60)
    finally:
        cluster.stop_all()
    out = replica.log_text()
    assert code == 2, out
    assert f"permission denied for schema {schema} (SQLSTATE 42501)" in out
    assert "the database role lacks a privilege (or the schema) the election needs" in out
    assert "this replica stops" in out
    assert "Traceback" not in out


def _refusing_dsn(role: str) -> str:
    """The test DSN as ``role`` (which the server does not have) with a password."""
    parts = urlsplit(test_dsn())
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(
        (parts.scheme, f"{role}:{_PASSWORD}@{host}", parts.path, parts.query, parts.fragment)
    )


_PASSWORD = "s3cret-" + secrets.token_hex(4)


def test_a_replica_whose_role_the_server_refuses_exits_2_at_once(tmp_path: Path) -> None:
    """A replica pointed at a role the server does not have took the refused connection for an
    outage: it stood for election again every third of a lease, for ever, and waited for a
    first checkpoint no replica could write. psycopg gives no SQLSTATE for a refused
    connection; the server's reason now tells it from an outage: the replica exits 2, naming
    the reason and never the password."""
    role = "ironroot_t_missing_" + secrets.token_hex(4)
    with fresh_schema() as schema:
        cluster = Cluster(tmp_path, test_dsn(), schema, count=1, replica_dsn=_refusing_dsn(role))
        replica = cluster.replicas[0]
        cluster.start(replica)
        try:
            assert replica.proc is not None
            code = replica.proc.wait(timeout=60)
        finally:
            cluster.stop_all()
    out = replica.log_text()
    assert code == 2, out
    assert f'refused the connection: role "{role}" does not exist' in out
    assert "store-refused" in out
    assert _PASSWORD not in out
    assert "Traceback" not in out


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_serve_and_migrate_exit_2_on_a_refused_connection(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ironroot serve`` (one process) and ``ironroot log migrate`` on a DSN whose role or
    database the server refuses: exit 2 (configuration) with the server's reason, not 1
    (``store-unavailable``, as for a server that is down)."""
    role = "ironroot_t_missing_" + secrets.token_hex(4)
    with fresh_schema() as schema:
        cluster = Cluster(tmp_path, test_dsn(), schema, count=1, replica_dsn=_refusing_dsn(role))
        data = cluster.replicas[0].data
        if command == "serve":
            args = ["serve", "--data", str(data), "--port", str(free_port())]
        else:
            args = ["log", "migrate", str(data)]
        assert main(args) == 2
    err = capsys.readouterr().err
    assert f"store-refused: PostgreSQL at {urlsplit(test_dsn()).hostname}" in err
    assert f'refused the connection: role "{role}" does not exist' in err
    assert _PASSWORD not in err
