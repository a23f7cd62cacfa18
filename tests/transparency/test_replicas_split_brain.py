"""Replicas whose sequencer dies, pauses or loses its sessions at its commits, under load.

Each replica runs through ``sequencer_commit_point.py``, which stops (``SIGSTOP``) or kills
(``SIGKILL``) the process at the *k*-th ``COMMIT`` of its sequencer's writes: right before the
``COMMIT`` is sent (the write's transaction open on the server, holding the lease row and the
state row), or right after it was sent and executed, before the answer is read. The moments a
signal from outside hits only by chance are thus hit on purpose:

* ``kill -9`` of each sequencer in turn at one of its commits, before or after;
* a sequencer paused inside its write until another replica took over, then resumed: its
  write must not land beside the successor's (split brain), and it must stop sequencing;
* the server ending a paused sequencer's sessions mid-batch (``pg_terminate_backend``), then
  the sequencer resumed: its ``COMMIT`` gets no answer, whether it committed or not.

After each, the load's promises are audited (``replica_cluster.audit``: no acknowledged entry
lost, the stored log verifies, no checkpoint a client saw forks) and so is every receipt a
client was given (``replica_cluster.audit_receipts``: it verifies, the log holds its entry at
the index it names, in the tree it names, included in the latest tree; no entry at two
indexes; every checkpoint seen is consistent with the latest). No client ever sees a 500.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from replica_cluster import Cluster, Load, Replica, audit, audit_receipts, stopped

from ironroot_pg import admin, fresh_schema, test_dsn

pytestmark = pytest.mark.integration
STORE_INDEPENDENT = True  # PostgreSQL only: each cluster makes its own schema

LEASE = 1.5
LAUNCHER = Path(__file__).with_name("sequencer_commit_point.py")


def _point(commit: int, at: str, do: str) -> dict[str, str]:
    return {
        "IRONROOT_TEST_SEQ_COMMIT": str(commit),
        "IRONROOT_TEST_SEQ_AT": at,
        "IRONROOT_TEST_SEQ_DO": do,
    }


def _until(condition: Callable[[], bool], what: str, cluster: Cluster, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(f"replica {r.number}:\n{r.events()[-3000:]}" for r in cluster.replicas)
            raise AssertionError(f"{what} not within {timeout} s\n{logs}")
        time.sleep(0.02)


def _check(cluster: Cluster, load: Load) -> int:
    """The audits; the number of receipts checked."""
    result = audit(cluster, load)
    assert result.acknowledged > 0
    assert result.lost == 0
    assert result.forks == 0
    assert result.tree_size >= result.acknowledged
    # Never a 500 nor any answer but these; every 503 a problem saying when to retry.
    assert set(load.statuses) <= {201, 303, 503}, load.statuses
    assert load.retry_after_seen == load.statuses.get(503, 0)
    assert load.bare_503s == 0
    checked = audit_receipts(cluster, load)
    assert checked > 0
    return checked


def _start_sequencer_first(
    cluster: Cluster, first: Replica, others: dict[str, str] | None = None, **env: str
) -> int:
    """Start ``first`` alone (so it is elected; ``env`` added to its environment), then the
    others (``others`` added to theirs); its epoch."""
    cluster.start(first, **env)
    cluster.wait_ready(first)
    leader, epoch = cluster.leader()
    assert leader is first
    for replica in cluster.replicas:
        if replica is not first:
            cluster.start(replica, **(others or {}))
    for replica in cluster.replicas:
        cluster.wait_ready(replica)
    return epoch


def test_sequencers_killed_before_and_after_their_commits_lose_no_receipt_and_never_fork(
    tmp_path: Path,
) -> None:
    """Every replica dies (``SIGKILL``) at one of its sequencer's commits, before or after it
    is sent, and comes back with another point, until four have died: whichever sequences
    dies in turn. The last to die comes back without one and sequences once the replicas
    still armed have died at their points (or never sequence)."""
    first = [_point(2, "before", "kill"), _point(2, "after", "kill"), _point(3, "before", "kill")]
    again = [_point(1, "after", "kill"), _point(1, "before", "kill"), _point(3, "after", "kill")]
    deaths = 4
    with fresh_schema() as schema:
        cluster = Cluster(tmp_path, test_dsn(), schema, count=3, lease=LEASE, launcher=LAUNCHER)
        try:
            for replica, point in zip(cluster.replicas, first, strict=True):
                cluster.start(replica, **point)
            for replica in cluster.replicas:
                cluster.wait_ready(replica)
            last = cluster.replicas[0]
            with Load(cluster) as load:
                died = 0
                deadline = time.monotonic() + 60
                while died < deaths:
                    assert time.monotonic() < deadline, (died, load.statuses)
                    for replica in cluster.replicas:
                        assert replica.proc is not None
                        if replica.proc.poll() is None:
                            continue
                        assert replica.proc.returncode == -signal.SIGKILL, replica.events()
                        died += 1
                        if died < deaths:
                            cluster.start(replica, **again[died % len(again)])
                        else:
                            cluster.start(replica)
                            last = replica
                    time.sleep(0.02)
                cluster.wait_ready(last)
                size = cluster.wait_growth(cluster.tree_size())
                _, epoch = cluster.leader()
                assert epoch > died  # a new election after every death
                cluster.wait_growth(size)
                for replica in cluster.replicas:  # an armed replica dies at its point only
                    assert replica.proc is not None
                    assert replica.proc.poll() in (None, -signal.SIGKILL), replica.events()
            _check(cluster, load)
        finally:
            cluster.stop_all()


@pytest.mark.parametrize("at", ["before", "after"])
def test_a_sequencer_paused_at_its_commit_is_replaced_and_writes_nothing_when_resumed(
    tmp_path: Path, at: str
) -> None:
    """The split brain: the sequencer stops (``SIGSTOP``) at its third commit, with its
    transaction open on the server (``before``) or its ``COMMIT`` executed but unanswered
    (``after``), keeping its election session. The other replica takes over once the lease
    expired; resumed, the paused one writes nothing more (its write, or the next, is fenced),
    stops sequencing and serves on; the log has one tree."""
    with fresh_schema() as schema:
        cluster = Cluster(tmp_path, test_dsn(), schema, count=2, lease=LEASE, launcher=LAUNCHER)
        first, second = cluster.replicas
        try:
            epoch = _start_sequencer_first(cluster, first, **_point(3, at, "stop"))
            with Load(cluster) as load:
                _until(lambda: stopped(first), "the sequencer stopping at its commit", cluster)
                successor, new_epoch = cluster.leader(epoch)
                assert successor is second
                size = cluster.wait_growth(cluster.tree_size())  # the successor writes
                assert first.proc is not None
                os.kill(first.proc.pid, signal.SIGCONT)
                _until(
                    lambda: f"no longer sequences (epoch {epoch})" in first.log_text(),
                    "the resumed sequencer stepping down",
                    cluster,
                )
                assert first.alive()
                cluster.wait_ready(first)
                cluster.wait_growth(size)
                assert cluster.lease_epoch() == new_epoch  # the resumed one took nothing back
            _check(cluster, load)
        finally:
            cluster.stop_all()


def _end_write_sessions(cluster: Cluster) -> int:
    """End the lease holder's sessions on the server but its election session (the one
    holding the advisory lock); the number ended."""
    with admin() as conn:
        holder = conn.execute(
            sql.SQL("SELECT holder FROM {} WHERE id = 1").format(
                sql.Identifier(cluster.schema, "sequencer_lease")
            )
        ).fetchone()
        assert holder is not None
        rows = conn.execute(
            "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a "
            "WHERE a.application_name = %s AND NOT EXISTS (SELECT 1 FROM pg_locks l "
            "WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)",
            (holder[0],),
        ).fetchall()
    return len(rows)


@pytest.mark.parametrize("at", ["before", "after"])
def test_a_sequencer_whose_sessions_the_server_ends_at_its_commit_loses_nothing(
    tmp_path: Path, at: str
) -> None:
    """The server ends the sequencer's write sessions (``pg_terminate_backend``) while it is
    stopped at its third commit, before its ``COMMIT`` is sent or after it was executed and
    before its answer was read; then it resumes. Its ``COMMIT`` gets no answer either way:
    the log reads the stored state back and goes on (the batch written once or written
    again), whichever replica sequences next."""
    with fresh_schema() as schema:
        cluster = Cluster(tmp_path, test_dsn(), schema, count=2, lease=LEASE, launcher=LAUNCHER)
        first, _ = cluster.replicas
        try:
            _start_sequencer_first(cluster, first, **_point(3, at, "stop"))
            with Load(cluster) as load:
                _until(lambda: stopped(first), "the sequencer stopping at its commit", cluster)
                assert _end_write_sessions(cluster) >= 1
                assert first.proc is not None
                os.kill(first.proc.pid, signal.SIGCONT)
                size = cluster.wait_growth(cluster.tree_size())
                cluster.leader()
                cluster.wait_growth(size)
                assert first.alive()
            _check(cluster, load)
        finally:
            cluster.stop_all()


def test_a_replica_paused_inside_its_takeover_does_not_hold_the_election_nor_sequence(
    tmp_path: Path,
) -> None:
    """The sequencer is killed; the other replica, elected, stops (``SIGSTOP``) inside its
    takeover: its bump of the lease's epoch executed, not committed (the lease row held ``FOR
    UPDATE``, the election's lock held). The server ends that transaction and its session
    (``idle_in_transaction_session_timeout``), so the killed replica, restarted, is elected
    with the epoch the paused one never committed; resumed, the paused one does not sequence
    with it, stands again and serves on."""
    with fresh_schema() as schema:
        cluster = Cluster(tmp_path, test_dsn(), schema, count=2, lease=LEASE, launcher=LAUNCHER)
        first, second = cluster.replicas
        try:
            take = {"IRONROOT_TEST_SEQ_TAKEOVER": "1", "IRONROOT_TEST_SEQ_DO": "stop"}
            epoch = _start_sequencer_first(cluster, first, take)
            with Load(cluster) as load:
                cluster.wait_growth(cluster.tree_size())
                assert first.proc is not None
                assert second.proc is not None
                first.proc.kill()
                first.proc.wait()
                _until(lambda: stopped(second), "the candidate stopping in its takeover", cluster)
                cluster.start(first)
                successor, new_epoch = cluster.leader(epoch)
                assert successor is first
                assert new_epoch == epoch + 1  # the paused candidate's bump was rolled back
                size = cluster.wait_growth(cluster.tree_size())
                os.kill(second.proc.pid, signal.SIGCONT)
                _until(
                    lambda: (
                        "sequencer election: cannot run the sequencer election" in second.log_text()
                    ),
                    "the resumed candidate's takeover failing",
                    cluster,
                )
                cluster.wait_ready(second)
                cluster.wait_growth(size)
                assert second.epochs() == []  # it never sequenced
                assert cluster.leader()[0] is first
            _check(cluster, load)
        finally:
            cluster.stop_all()


def test_the_stored_log_holds_each_entry_once(tmp_path: Path) -> None:
    """What ``audit_receipts`` checks can fail: an entry stored at a second index is named."""
    with fresh_schema() as schema:
        cluster = Cluster(tmp_path, test_dsn(), schema, count=1, lease=LEASE)
        try:
            cluster.start_all()
            with Load(cluster, threads=1) as load:
                cluster.wait_growth(1)
            cluster.stop_all()
            with psycopg.connect(test_dsn(), autocommit=True) as conn:
                entries = sql.Identifier(schema, "entries")
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET entry = (SELECT entry FROM {} WHERE idx = 0) WHERE idx = 1"
                    ).format(entries, entries)
                )
            with pytest.raises(AssertionError, match=r"at 0 and 1"):
                audit_receipts(cluster, load)
        finally:
            cluster.stop_all()
