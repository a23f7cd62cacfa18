"""The sequencer election and its fence, in one process against a real PostgreSQL; and what
``ironroot serve --replica`` refuses.

A sequencer that stops renewing its lease (a paused process) is replaced: the successor ends
its sessions and bumps the epoch, and every later write of the stale sequencer is refused by
the fence with :class:`StaleBatch`, whether the tree has moved since or not. A live holder is
never replaced, and a pending row is never added beside an integrated entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from replica_cluster import Cluster, make_statements

import http_calls
from ironroot.cli import main
from ironroot.cose import Problem, Receipt, SignedStatement, decode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ClockSkew, ConfigError, StaleBatch, StorageError, StoreUnavailable
from ironroot.http import ServerThread
from ironroot.log import Log, NoteSigner, PostgresLogStore, SequencerLease, StoreBatch
from ironroot.log._postgres_lease import SEQUENCER_LOCK_CLASS, sequencer_lock_key
from ironroot.transparency import TransparencyService
from ironroot.transparency._config import load_config, load_receipt_signers
from ironroot.transparency._replica import Replica, _replica_app, _Waits
from ironroot_pg import admin, fresh_schema, test_dsn
from serving import free_port

pytestmark = pytest.mark.integration
STORE_INDEPENDENT = True  # PostgreSQL only: each test makes its own schema

ORIGIN = "example.com/replicas"
_SIGNER = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.EDDSA))


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        PostgresLogStore(test_dsn(), schema=name).close()  # the log's tables
        yield name


def _lease(schema: str, holder: str, lease: float = 0.5) -> SequencerLease:
    """A lease named ``holder`` in this test's ``schema`` only: a takeover ends every server
    session of the stale holder's name, so a name two tests share (under xdist) would end the
    other test's sessions."""
    return SequencerLease(
        test_dsn(), holder=f"{holder}-{schema}", schema=schema, lease=lease, timeout=2.0
    )


def _sequencer(schema: str, lease: SequencerLease) -> Log:
    """What an elected replica opens: a store fenced with its epoch, named after it."""
    epoch = lease.try_acquire()
    assert epoch is not None
    store = PostgresLogStore(test_dsn(), schema=schema, application_name=lease.holder)
    store.fence_with_lease(epoch)
    log = Log(store, origin=ORIGIN, note_signers=[_SIGNER])
    log.start()
    return log


def _expire(lease: SequencerLease) -> None:
    """Let ``lease`` run out without renewing it: what a paused process does."""
    time.sleep(lease.lease + 0.3)  # a wait for the lease, not a timing assertion


def test_a_live_sequencer_is_not_replaced(schema: str) -> None:
    first, second = _lease(schema, "ironroot-seq-a", 5.0), _lease(schema, "ironroot-seq-b", 5.0)
    try:
        assert first.try_acquire() == 1
        assert second.try_acquire() is None
        assert first.renew()
        assert second.try_acquire() is None
    finally:
        first.release()
        second.release()


def test_a_released_lease_is_taken_at_once_with_the_next_epoch(schema: str) -> None:
    first, second = _lease(schema, "ironroot-seq-a", 5.0), _lease(schema, "ironroot-seq-b", 5.0)
    try:
        assert first.try_acquire() == 1
        first.release()
        assert second.try_acquire() == 2
        assert not first.renew()
    finally:
        second.release()


def test_a_paused_sequencer_s_write_is_refused_by_the_epoch_fence(schema: str) -> None:
    """The successor took over but has not written yet: the tree size alone would let the
    stale batch through; the lease epoch does not."""
    stale_lease = _lease(schema, "ironroot-seq-stale")
    stale = _sequencer(schema, stale_lease)
    successor = _lease(schema, "ironroot-seq-next")
    try:
        stale.submit(b"before the pause").integrated.result(timeout=30)
        _expire(stale_lease)
        assert successor.try_acquire() == 2  # ends the stale holder's sessions
        assert not stale_lease.renew()
        ticket = stale.submit(b"written after the takeover")
        with pytest.raises(StaleBatch) as refused:
            ticket.durable.result(timeout=30)
        assert "epoch 1" in refused.value.detail
        reader = PostgresLogStore(test_dsn(), schema=schema)
        try:
            assert reader.state().size == 1
            assert reader.lookup([ticket.entry_id]) == {}
        finally:
            reader.close()
    finally:
        stale.close()
        stale_lease.release()
        successor.release()


def test_a_paused_sequencer_s_batch_is_refused_after_the_successor_wrote(schema: str) -> None:
    stale_lease = _lease(schema, "ironroot-seq-stale")
    stale = _sequencer(schema, stale_lease)
    successor_lease = _lease(schema, "ironroot-seq-next")
    try:
        stale.submit(b"one").integrated.result(timeout=30)
        head = stale.tree_size
        _expire(stale_lease)
        successor = _sequencer(schema, successor_lease)
        try:
            successor.submit(b"two").integrated.result(timeout=30)
            assert successor.tree_size == head + 1
            # The stale sequencer's next batch, prepared from the tree it last knew.
            entry = b"three"
            batch = StoreBatch(first_index=head, pending=[(hashlib.sha256(entry).digest(), entry)])
            with pytest.raises(StaleBatch):
                stale.store.write(batch)
            # Without the lease fence, the stored tree size refuses it all the same.
            unfenced = PostgresLogStore(test_dsn(), schema=schema)
            try:
                with pytest.raises(StaleBatch) as refused:
                    unfenced.write(batch)
                assert "tree size" in refused.value.detail
            finally:
                unfenced.close()
        finally:
            successor.close()
    finally:
        stale.close()
        stale_lease.release()
        successor_lease.release()


def test_a_pending_row_is_never_added_beside_an_integrated_entry(schema: str) -> None:
    lease = _lease(schema, "ironroot-seq-a", 5.0)
    log = _sequencer(schema, lease)
    other = PostgresLogStore(test_dsn(), schema=schema)
    try:
        entry = b"integrated first"
        entry_id = log.submit(entry).entry_id
        log.wait_idle(30)
        other.add_pending([(entry_id, entry)])  # another replica registers it again
        other.add_pending([(entry_id, entry)])
        assert other.pending() == []
        assert other.lookup([entry_id]) == {entry_id: 0}
        fresh = b"pending on another replica"
        fresh_id = hashlib.sha256(fresh).digest()
        other.add_pending([(fresh_id, fresh)])
        other.add_pending([(fresh_id, fresh)])  # idempotent
        assert other.pending(10) == [(fresh_id, fresh)]
    finally:
        other.close()
        log.close()
        lease.release()


def test_a_write_waiting_for_a_lock_does_not_cost_the_sequencer_its_lease(schema: str) -> None:
    """The fence holds the lease row while a write runs; the holder's own renewal must not
    wait for it (it would time out and the live sequencer would step down)."""
    lease = _lease(schema, "ironroot-seq-a", 1.5)  # its session waits at most 0.5 s
    log = _sequencer(schema, lease)
    try:
        log.submit(b"first").integrated.result(timeout=30)
        with admin() as blocker:
            with blocker.transaction():
                blocker.execute(
                    sql.SQL("SELECT size FROM {} WHERE id = 1 FOR SHARE").format(
                        sql.Identifier(schema, "state")
                    )
                )
                ticket = log.submit(b"waits for the state row")
                _wait_for_lock_wait(schema)
                assert lease.renew()
            assert ticket.integrated.result(timeout=30).index == 1
        assert lease.renew()
    finally:
        log.close()
        lease.release()


def test_a_takeover_waits_for_a_write_that_holds_the_lease_row(schema: str) -> None:
    """What the fence's lock on the lease row (FOR KEY SHARE, as a write takes it) lets
    through: the holder's renewal, but not a successor's epoch bump."""
    holder = _lease(schema, "ironroot-seq-a", 0.6)
    successor = _lease(schema, "ironroot-seq-b", 0.6)
    try:
        assert holder.try_acquire() == 1
        with admin() as writer, writer.transaction():
            writer.execute(
                sql.SQL("SELECT epoch FROM {} WHERE id = 1 FOR KEY SHARE").format(
                    sql.Identifier(schema, "sequencer_lease")
                )
            )
            assert holder.renew()
            holder.release()  # its lease is over, its session gone: a takeover is due
            with pytest.raises(StoreUnavailable):
                successor.try_acquire()  # its epoch bump waits for the write, then times out
        assert successor.try_acquire() == 2
    finally:
        holder.release()
        successor.release()


def _wait_for_lock_wait(schema: str) -> None:
    """Until a session of ``schema``'s sequencer waits for a lock (a bounded wait)."""
    deadline = time.monotonic() + 30
    with admin() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                (f"ironroot-seq-a-{schema}",),
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            time.sleep(0.01)
    raise AssertionError("the sequencer's write never waited for the state row")


# Another process registering without end, each entry in its own add_pending transaction
# (which holds the state row FOR SHARE until it commits), with the replicas' store timeout.
_REGISTRAR = """
import os, sys, hashlib
from ironroot.log import PostgresLogStore
store = PostgresLogStore(sys.argv[1], schema=sys.argv[2], timeout=2.0, pool_size=1,
                         application_name="ironroot-test-registrar")
print("ready", flush=True)
while True:
    entry = os.urandom(64)
    store.add_pending([(hashlib.sha256(entry).digest(), entry)])
"""


def _stop_inside_add_pending(proc: subprocess.Popen[bytes], schema: str) -> None:
    """SIGSTOP ``proc`` at a moment its session sits idle inside ``add_pending``'s
    transaction holding the state row ``FOR SHARE``: what a replica paused (a VM, SIGSTOP,
    a swap storm) in the middle of a registration leaves on the server."""
    with admin() as conn:
        for _ in range(2000):
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(0.02)  # let the server finish a statement already sent
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                "WHERE a.application_name = 'ironroot-test-registrar' "
                "AND a.state = 'idle in transaction' AND l.granted "
                "AND l.mode = 'RowShareLock' AND l.relation = to_regclass(%s)",
                (f"{schema}.state",),
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.001)
    raise AssertionError("never caught the registrar inside its transaction")


def test_a_registration_paused_inside_its_transaction_does_not_stall_the_sequencer(
    schema: str,
) -> None:
    """A replica stopped mid-registration keeps its session, and the transaction in it holds
    the state row that every sequencer write takes FOR UPDATE. The server ends that
    transaction after the store timeout (idle_in_transaction_session_timeout), so the
    sequencer integrates again; it does not wait for the paused process."""
    lease = _lease(schema, "ironroot-seq-a", 5.0)
    log = _sequencer(schema, lease)
    registrar = subprocess.Popen(
        [sys.executable, "-c", _REGISTRAR, test_dsn(), schema],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        log.submit(b"before the registrar runs").integrated.result(timeout=30)
        assert registrar.stdout is not None
        assert registrar.stdout.readline().strip() == b"ready"
        _stop_inside_add_pending(registrar, schema)
        ticket = log.submit(b"integrated while a registrar is paused")
        # A bound on the outcome, not a timing assertion. Without a server-side bound the
        # paused transaction holds the row for a minute: the write's lock wait times out
        # and the ticket fails with StoreUnavailable.
        assert ticket.integrated.result(timeout=30).index == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(registrar.pid, signal.SIGCONT)
        registrar.kill()
        registrar.communicate()
        log.close()
        lease.release()


def test_add_pending_refuses_an_id_that_is_not_the_entry_s_hash(schema: str) -> None:
    store = PostgresLogStore(test_dsn(), schema=schema)
    try:
        with pytest.raises(StorageError):
            store.add_pending([(b"\x00" * 32, b"entry")])
    finally:
        store.close()


@pytest.mark.parametrize(
    ("holder", "lease"), [("", 5.0), ("x" * 64, 5.0), ("ok", 0.1), ("ok", 601.0)]
)
def test_a_lease_needs_a_sound_holder_and_length(holder: str, lease: float) -> None:
    with pytest.raises(ConfigError):
        SequencerLease(test_dsn(), holder=holder, lease=lease)


def test_serve_replica_refuses_a_log_in_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d"
    assert main(["serve", "--data", str(data), "--init-only"]) == 0
    capsys.readouterr()
    assert main(["serve", "--data", str(data), "--port", str(free_port()), "--replica"]) == 2
    assert "PostgreSQL" in capsys.readouterr().err


def test_serve_replica_refuses_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d"
    args = ["serve", "--data", str(data), "--port", str(free_port()), "--replica", "--workers", "2"]
    assert main(args) == 2
    assert "--workers" in capsys.readouterr().err


def test_after_a_failover_to_a_replica_whose_clock_is_behind_receipt_times_do_not_go_back(
    tmp_path: Path, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two elected sequencers in turn, as replicas open them (fenced store, then
    :meth:`TransparencyService.open_on_store`); the second's clock is 100 s behind the
    first's. Its receipts carried an ``iat`` 100 s before the receipts already issued; they now
    carry the stored latest one, and it says by how much its clock is behind."""
    cluster = Cluster(tmp_path, test_dsn(), schema, count=1)
    data = cluster.replicas[0].data
    t0 = datetime(2026, 6, 1, tzinfo=UTC)

    def sequence(holder: str, now: datetime, tag: str) -> list[int]:
        lease = _lease(schema, holder, 5.0)
        epoch = lease.try_acquire()
        assert epoch is not None
        store = PostgresLogStore(test_dsn(), schema=schema, application_name=lease.holder)
        store.fence_with_lease(epoch)
        service = TransparencyService.open_on_store(data, store, clock=lambda: now)
        iats = []
        try:
            service.start()
            for statement in make_statements(cluster.vendor, 2, tag):
                ticket = service.submit(statement)
                ticket.integrated.result(30)
                receipts = service.receipts(ticket.entry_id)
                assert receipts is not None
                iats.append(Receipt.parse(receipts[0]).iat)
        finally:
            service.close()
            lease.release()
        return iats

    ahead = int(t0.timestamp()) + 100
    assert sequence("ironroot-seq-a", t0 + timedelta(seconds=100), "a") == [ahead, ahead]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ironroot.transparency"):
        assert sequence("ironroot-seq-b", t0, "b") == [ahead, ahead]
    assert [r.getMessage() for r in caplog.records if r.name == "ironroot.transparency"] == [
        f"this sequencer's clock is 100.0 s behind the latest receipt time stored for the log "
        f"(iat {ahead}): receipts carry iat {ahead} until the clock catches up"
    ]


def test_the_election_lock_key_is_64_bits_of_sha256_over_the_schema_name() -> None:
    """The election's lock was ``(0x4953, hashtext(schema))``: 32 bits, which two schemas of
    one database share easily. It is now a signed 64-bit key from SHA-256."""
    for name in ("", "transparency", "t_2217", "t_2430"):
        digest = hashlib.sha256(b"ironroot sequencer lock\x00" + name.encode()).digest()
        key = sequencer_lock_key(name)
        assert key == int.from_bytes(digest[:8], "big", signed=True)
        assert -(2**63) <= key < 2**63
    assert sequencer_lock_key("transparency") != sequencer_lock_key("transparency2")


@pytest.fixture
def colliding_schemas() -> Iterator[tuple[str, str]]:
    """Two new schema names of equal ``hashtext``, found by a search on the server (among
    300,000 names about ten pairs collide), both dropped afterwards."""
    with fresh_schema() as prefix, admin() as conn:
        row = conn.execute(
            "SELECT %s || '_' || min(n), %s || '_' || max(n) FROM generate_series(1, 300000) n "
            "GROUP BY hashtext(%s || '_' || n) HAVING count(*) = 2 ORDER BY max(n) LIMIT 1",
            (prefix, prefix, prefix),
        ).fetchone()
        assert row is not None, "no hashtext collision among 300,000 names"
        names = (str(row[0]), str(row[1]))
        try:
            for name in names:
                PostgresLogStore(test_dsn(), schema=name, pool_size=1).close()
            yield names
        finally:
            for name in names:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )


def test_two_logs_whose_schema_names_collide_in_hashtext_elect_their_own_sequencers(
    colliding_schemas: tuple[str, str],
) -> None:
    """Two services in one database, on schemas whose 32-bit ``hashtext`` is equal, took one
    and the same advisory lock: while one service sequenced, the other's candidates never won
    it, and its log integrated nothing. Each now holds its own 64-bit lock."""
    first, second = colliding_schemas
    with admin() as conn:
        row = conn.execute("SELECT hashtext(%s) = hashtext(%s)", (first, second)).fetchone()
    assert row == (True,)
    assert sequencer_lock_key(first) != sequencer_lock_key(second)
    one, two = _lease(first, "ironroot-seq-a", 5.0), _lease(second, "ironroot-seq-b", 5.0)
    try:
        assert one.try_acquire() == 1
        assert two.try_acquire() == 1
        assert one.renew()
        assert two.renew()
    finally:
        one.release()
        two.release()


def test_a_rolling_upgrade_defers_to_a_live_sequencer_holding_the_older_32_bit_lock(
    schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An Ironroot from before the 64-bit key holds ``(0x4953, hashtext(schema))``, which the
    new key does not exclude: during a rolling upgrade a new replica would win its own lock,
    end the older sequencer's sessions, and the two would take the lease from each other in
    turn (the fence kept the log whole). A new candidate now leaves a live older holder be, and
    takes over once that holder's lease expired, as from any stale holder."""
    setup_lease = _lease(schema, "ironroot-seq-setup", 5.0)
    assert setup_lease.try_acquire() == 1  # the lease table, and epoch 1
    setup_lease.release()
    old_holder = f"ironroot-seq-older-{schema}"
    with admin() as setup:
        setup.execute(
            sql.SQL(
                "UPDATE {} SET epoch = epoch + 1, holder = %s, "
                "expires_at = now() + interval '60 seconds' WHERE id = 1"
            ).format(sql.Identifier(schema, "sequencer_lease")),
            (old_holder,),
        )
    older = psycopg.connect(test_dsn(), autocommit=True, application_name=old_holder)
    try:
        older.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (SEQUENCER_LOCK_CLASS, schema))
        new = _lease(schema, "ironroot-seq-new", 5.0)
        try:
            with caplog.at_level(logging.WARNING, logger="ironroot.log"):
                assert new.try_acquire() is None
                assert new.try_acquire() is None
            warnings = [r.getMessage() for r in caplog.records if r.name == "ironroot.log"]
            assert len(warnings) == 1
            assert (
                f"is held by {old_holder}, an older Ironroot (32-bit election lock)"
                in (warnings[0])
            )
            with admin() as setup:
                setup.execute(
                    sql.SQL("UPDATE {} SET expires_at = now() - interval '1 second'").format(
                        sql.Identifier(schema, "sequencer_lease")
                    )
                )
            assert new.try_acquire() == 3  # the older one's epoch was 2
            with pytest.raises(psycopg.OperationalError):  # its session was ended
                older.execute("SELECT 1")
        finally:
            new.release()
    finally:
        older.close()


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (a deadline against a hang, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.05)


def test_a_replica_whose_clock_is_far_from_the_database_s_does_not_sequence(
    tmp_path: Path, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica whose clock ran 1000 s ahead was elected like any other and signed receipts
    1000 s in the future; as receipt times never go back, every later sequencer then signed
    that time too. A replica now compares its clock with the database server's (the clock
    every replica shares) before it stands, and while sequencing: beyond ``max_clock_skew``
    it stays out of the election, says so once, and stands again once the clocks agree."""
    cluster = Cluster(tmp_path, test_dsn(), schema, count=1)
    data = cluster.replicas[0].data
    config = load_config(data)
    offset = [timedelta(seconds=1000)]
    replica = Replica(
        data,
        config,
        receipt_signers=load_receipt_signers(config),
        checkpoint_signers=None,
        lease=1.5,
        clock=lambda: datetime.now(UTC) + offset[0],
    )
    name = "ironroot.transparency.replica"
    with caplog.at_level(logging.INFO, logger=name):
        replica.start()
        try:
            _until(
                lambda: any(r.levelno == logging.ERROR for r in caplog.records if r.name == name),
                "the clock's error",
            )
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1
            assert errors[0].startswith("this replica's clock is 10")  # 1000 s, give or take
            assert errors[0].endswith(
                " s ahead of the database server's, more than max_clock_skew (300 s): it does "
                "not sequence until they agree"
            )
            assert replica.epoch is None
            with admin() as conn:
                row = conn.execute(
                    "SELECT to_regclass(%s)", (f"{schema}.sequencer_lease",)
                ).fetchone()
            assert row == (None,)  # it never stood: no lease table, no epoch taken
            offset[0] = timedelta(0)
            _until(lambda: replica.epoch is not None, "elected once the clocks agree")
            messages = [r.getMessage() for r in caplog.records if r.name == name]
            assert "this replica's clock agrees with the database's again: it sequences" in (
                messages
            )
            # While it sequences, a clock that leaps far off makes it step down.
            offset[0] = timedelta(seconds=-1000)
            _until(lambda: replica.epoch is None, "stepped down")
        finally:
            replica.close()
    messages = [r.getMessage() for r in caplog.records if r.name == name]
    assert any(m.startswith("stepping down (epoch 1): this clock is off") for m in messages)
    assert any(
        m.endswith(
            " s behind the database server's, more than max_clock_skew (300 s): it does not "
            "sequence until they agree"
        )
        for m in messages
    )


def test_a_replica_whose_clock_is_off_is_not_ready_and_accepts_no_registration(
    tmp_path: Path, schema: str
) -> None:
    """A replica whose clock was 1000 s off the database's stayed out of the election, yet
    answered ``/ready`` 200 (its clock check ran only in a sequencing process) and accepted
    registrations, checking each statement's certificates at its wrong time. Its ``/ready``
    now fails the ``clock`` check and ``POST /entries`` answers 503 ``clock-skew`` (with
    ``Retry-After``) until the clocks agree; reads are served meanwhile."""
    cluster = Cluster(tmp_path, test_dsn(), schema, count=1)
    data = cluster.replicas[0].data
    with TransparencyService.open(data) as seeded:  # the log's first checkpoint
        keys, vkeys = seeded.receipt_keys, seeded.checkpoint_vkeys
        seeded.submit(make_statements(cluster.vendor, 1, "seed")[0]).integrated.result(30)
    config = load_config(data)
    offset = [timedelta(seconds=1000)]
    replica = Replica(
        data,
        config,
        receipt_signers=load_receipt_signers(config),
        checkpoint_signers=None,
        lease=1.5,
        clock=lambda: datetime.now(UTC) + offset[0],
    )
    service = TransparencyService.open_follower(data, keys, vkeys, {})
    store = service.log.store
    assert isinstance(store, PostgresLogStore)
    waits = _Waits(store, config.max_pending)
    statement = make_statements(cluster.vendor, 1, "off")[0]
    replica.start()
    waits.start()
    try:
        with (
            ServerThread(_replica_app(service, store, waits, replica)) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            _until(lambda: client.get("/ready").status_code == 503, "not ready")
            ready = client.get("/ready")
            assert int(ready.headers["retry-after"]) >= 1
            assert ready.json()["checks"]["clock"] == "clock-skew: Service Unavailable"
            refused = client.post(
                "/entries", content=statement, headers={"content-type": "application/cose"}
            )
            assert refused.status_code == ClockSkew.http_status
            assert int(refused.headers["retry-after"]) >= 1
            problem = Problem.from_cbor(refused.content)
            assert problem.extra["code"] == ClockSkew.code
            assert problem.detail is not None
            assert problem.detail.startswith("this replica's clock is 10")
            assert client.get("/checkpoint").status_code == 200  # reads go on
            offset[0] = timedelta(0)
            _until(lambda: client.get("/ready").status_code == 200, "ready again")
            assert client.get("/ready").json()["checks"]["clock"] == "ok"
            accepted = client.post(
                "/entries", content=statement, headers={"content-type": "application/cose"}
            )
            assert accepted.status_code in (201, 303)
    finally:
        waits.close()
        service.close()
        replica.close()


def test_every_replica_is_not_ready_while_the_stored_receipt_time_is_far_ahead(
    tmp_path: Path, schema: str
) -> None:
    """A predecessor's clock ran 1000 s ahead: the elected replica signs nothing (its clock
    agrees with the database's, the stored receipt time does not), yet every replica answered
    ``/ready`` 200, the sequencer too (its service is not the one that answers HTTP). Each
    replica now compares the latest stored receipt time with the database server's clock:
    ``/ready`` fails its ``clock`` check, registrations are still acknowledged (pending)."""
    cluster = Cluster(tmp_path, test_dsn(), schema, count=2)
    ahead = datetime.now(UTC) + timedelta(seconds=1000)
    statements = make_statements(cluster.vendor, 2, "ahead")
    with TransparencyService.open(cluster.replicas[0].data, clock=lambda: ahead) as seeded:
        seeded.submit(statements[0]).integrated.result(30)
    iat = int(ahead.timestamp())
    try:
        cluster.start_all()
        for replica in cluster.replicas:
            url = replica.url
            _until(lambda u=url: http_calls.get(f"{u}/ready").status_code == 503, "not ready")
            ready = http_calls.get(f"{url}/ready")
            assert int(ready.headers["retry-after"]) >= 1
            assert ready.json()["checks"]["clock"] == "clock-skew: Service Unavailable"
            # why, in detail: in the replica's log (/ready answers anyone)
            assert (
                f"readiness check clock fails: clock-skew: the latest receipt time of the log "
                f"(iat {iat}) is"
            ) in replica.log_text()
            assert (
                " s ahead of the database server's clock, more than max_clock_skew (300 s): no "
                "replica signs a receipt (entries stay pending) until the clocks agree"
            ) in replica.log_text()
        pending = http_calls.post(
            f"{cluster.replicas[1].url}/entries",
            content=statements[1],
            headers={"content-type": "application/cose"},
            timeout=30,
        )
        assert pending.status_code == 303
    finally:
        cluster.stop_all()


def test_a_clock_that_leaps_right_after_the_clock_check_signs_no_time_far_off(
    tmp_path: Path, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica's clock check read the wall clock again after the database's time to work
    out what the database's time was: a clock that leapt 1000 s ahead between the two reads
    passed the check (its offset was measured before the leap) and left the database's
    time 1000 s ahead too, so the elected replica's reference agreed with its leapt clock and
    it signed receipt times 1000 s in the future (which every later sequencer must then refuse
    or carry). The database's time is now taken from the check's own readings: the leapt
    clock signs nothing."""
    cluster = Cluster(tmp_path, test_dsn(), schema, count=1)
    data = cluster.replicas[0].data
    statements = make_statements(cluster.vendor, 2, "leap")
    with TransparencyService.open(data) as seeded:  # the log's first checkpoint
        seeded.submit(statements[0]).integrated.result(30)
    config = load_config(data)
    offset = [timedelta(0)]
    real = SequencerLease.clock_offset

    def leaps(self: SequencerLease, clock: Callable[[], float]) -> float:
        measured = real(self, clock)
        offset[0] = timedelta(seconds=1000)  # right after the database's time was read
        return measured

    monkeypatch.setattr(SequencerLease, "clock_offset", leaps)
    replica = Replica(
        data,
        config,
        receipt_signers=load_receipt_signers(config),
        checkpoint_signers=None,
        lease=300.0,  # no renewal (and its clock check) before the batch
        clock=lambda: datetime.now(UTC) + offset[0],
    )
    entry = SignedStatement.parse(statements[1]).log_entry()
    entry_id = hashlib.sha256(entry).digest()
    store = PostgresLogStore(test_dsn(), schema=schema)
    replica.start()
    try:
        _until(lambda: replica.epoch is not None, "elected")
        store.add_pending([(entry_id, entry)])
        _until(
            lambda: (
                store.lookup([entry_id]).get(entry_id) is not None
                or replica.clock_refusal(lambda: None) is not None
            ),
            "integrated or refused",
        )
        index = store.lookup([entry_id]).get(entry_id)
        if index is not None:
            batch = store.batch_data(index + 1)
            assert batch is not None
            iats = [decode_cbor(decode_cbor(v)[0])[15][6] for v in batch.values()]
            raise AssertionError(f"signed iat {iats} at {datetime.now(UTC).timestamp():.0f}")
        refusal = replica.clock_refusal(lambda: None)
        assert type(refusal) is ClockSkew
        assert refusal.detail.startswith("this sequencer's clock is 10")  # 1000 s, or so
        assert " s ahead of the database server's (as last read, carried" in refusal.detail
        # the batch the log holds back does not keep the replica from closing (it waited a
        # third of the lease, here 100 s)
        closing = threading.Thread(target=replica.close)
        closing.start()
        closing.join(timeout=30)
        assert not closing.is_alive(), "close() waited on a batch the log holds back"
    finally:
        replica.close()
        store.close()


def test_replicas_told_the_stored_receipt_time_is_wrong_are_ready_and_sign_the_clock_s(
    tmp_path: Path, schema: str
) -> None:
    """With ``reset_receipt_time_from`` naming the stored time 1000 s ahead, the replicas do
    not fail ``/ready`` for it (a sequencer would sign), and the elected one signs its own
    clock's time, going back from the named one."""
    cluster = Cluster(tmp_path, test_dsn(), schema, count=1)
    replica = cluster.replicas[0]
    ahead = datetime.now(UTC) + timedelta(seconds=1000)
    statements = make_statements(cluster.vendor, 2, "reset")
    with TransparencyService.open(replica.data, clock=lambda: ahead) as seeded:
        seeded.submit(statements[0]).integrated.result(30)
    jumped = int(ahead.timestamp())
    toml = replica.data / "ironroot.toml"
    toml.write_text(
        toml.read_text().replace(
            "[transparency]\n", f"[transparency]\nreset_receipt_time_from = {jumped}\n"
        )
    )
    try:
        cluster.start_all()
        _until(lambda: bool(replica.epochs()), "elected")  # its clock checked: it stood
        ready = http_calls.get(f"{replica.url}/ready")
        assert ready.status_code == 200, ready.text
        answer = http_calls.post(
            f"{replica.url}/entries",
            content=statements[1],
            headers={"content-type": "application/cose"},
            timeout=30,
        )
        assert answer.status_code == 201
        iat = Receipt.parse(answer.content).iat
        assert iat is not None
        assert iat < jumped - 900
        assert "receipt times go back: the latest receipt time of the log" in replica.events()
    finally:
        cluster.stop_all()


def test_a_replica_whose_clock_is_off_says_when_to_retry_a_cts_registration(
    tmp_path: Path, schema: str
) -> None:
    """``POST /cts/entries`` on a replica whose clock is off answered 503 *without*
    ``Retry-After`` (the CTS answers set it for a store error and for back-pressure only,
    not for ``clock-skew``), unlike ``POST /entries`` beside it."""
    cluster = Cluster(tmp_path, test_dsn(), schema, count=1)
    data = cluster.replicas[0].data
    toml = data / "ironroot.toml"
    text = toml.read_text()
    toml.write_text(text.replace("[transparency]\n", '[transparency]\ncts_prefix = "/cts"\n', 1))
    with TransparencyService.open(data) as seeded:  # the log's first checkpoint
        keys, vkeys = seeded.receipt_keys, seeded.checkpoint_vkeys
    config = load_config(data)
    replica = Replica(
        data,
        config,
        receipt_signers=load_receipt_signers(config),
        checkpoint_signers=None,
        lease=1.5,
        clock=lambda: datetime.now(UTC) + timedelta(seconds=1000),
    )
    service = TransparencyService.open_follower(data, keys, vkeys, {})
    store = service.log.store
    assert isinstance(store, PostgresLogStore)
    waits = _Waits(store, config.max_pending)
    statement = make_statements(cluster.vendor, 1, "off")[0]
    replica.start()
    waits.start()
    try:
        with (
            ServerThread(_replica_app(service, store, waits, replica)) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            _until(lambda: client.get("/ready").status_code == 503, "not ready")
            refused = client.post(
                "/cts/entries", content=statement, headers={"content-type": "application/cose"}
            )
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            problem = Problem.from_cbor(refused.content)
            assert problem.extra["code"] == ClockSkew.code
            assert refused.headers["cache-control"] == "no-store"
    finally:
        waits.close()
        service.close()
        replica.close()


def test_a_replica_refuses_a_registration_past_max_pending(tmp_path: Path, schema: str) -> None:
    """With no sequencer integrating (none elected, or one that signs nothing for its clock),
    a replica took every registration as one more pending row: ``max_pending`` (``POST
    /entries`` answers 503 past it, in one process and with workers) held nowhere, and CTS
    clients (answered at durability) could pile up pending rows without bound. Past it a
    new entry is now ``Overloaded`` (503, ``Retry-After``); an entry already pending is
    still answered, and nothing is stored for the refused one."""
    import asyncio

    from ironroot.errors import Overloaded
    from ironroot.transparency._replica import ReplicaRegistrar

    cluster = Cluster(tmp_path, test_dsn(), schema, count=1)
    data = cluster.replicas[0].data
    toml = data / "ironroot.toml"
    toml.write_text(
        toml.read_text().replace("[transparency]\n", "[transparency]\nmax_pending = 2\n")
    )
    with TransparencyService.open(data) as seeded:  # the log's first checkpoint
        keys, vkeys = seeded.receipt_keys, seeded.checkpoint_vkeys
    service = TransparencyService.open_follower(data, keys, vkeys, {})
    store = service.log.store
    assert isinstance(store, PostgresLogStore)
    waits = _Waits(store, service.config.max_pending)
    registrar = ReplicaRegistrar(service, store, waits)
    first, second, third = make_statements(cluster.vendor, 3, "backlog")
    try:
        for statement in (first, second):
            assert asyncio.run(registrar.register(statement, 0.0)).integrated is None
        with pytest.raises(Overloaded) as refused:
            asyncio.run(registrar.register(third, 0.0))
        assert refused.value.http_status == 503
        assert store.count_pending() == 2
        assert asyncio.run(registrar.register(first, 0.0)).integrated is None  # known: answered
    finally:
        service.close()
