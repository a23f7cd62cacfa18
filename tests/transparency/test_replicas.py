"""Several hosts: ``ironroot serve --replica`` processes over one PostgreSQL log, under load.

Three replicas take registrations from client threads that retry on 503 (after
``Retry-After``) and on a refused connection. The sequencer is killed with ``kill -9`` five
times (a new one is elected each time and the killed replica comes back), then paused with
``SIGSTOP`` past its lease and resumed: another replica takes over, and the resumed one steps
down. Afterwards no acknowledged entry is missing, the stored log verifies end to end, and
every checkpoint a client saw is the stored one at its size (no fork). Apart, one replica
whose database goes away answers 503 with ``Retry-After`` and recovers when it returns.

The soak of the same scenario (twenty kills and more, with a report) is ``bench/failover.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from replica_cluster import Cluster, Load, audit, audit_receipts, make_statements, paused

import http_calls
from ironroot_pg import TcpProxy, fresh_schema, pg_host_port, test_dsn

pytestmark = pytest.mark.integration
STORE_INDEPENDENT = True  # PostgreSQL only: each cluster makes its own schema

LEASE = 1.5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with fresh_schema() as schema:
        nodes = Cluster(tmp_path_factory.mktemp("replicas"), test_dsn(), schema, lease=LEASE)
        try:
            nodes.start_all()
            yield nodes
        finally:
            nodes.stop_all()


def _check(cluster: Cluster, load: Load) -> None:
    result = audit(cluster, load)
    assert result.acknowledged > 0
    assert result.lost == 0
    assert result.forks == 0
    assert result.tree_size >= result.acknowledged
    assert load.statuses.get(500, 0) == 0
    assert audit_receipts(cluster, load) > 0  # each at its index, in the one tree


def test_five_sequencer_kills_lose_no_acknowledged_entry_and_never_fork(cluster: Cluster) -> None:
    with Load(cluster) as load:
        for _ in range(5):
            size = cluster.wait_growth(cluster.tree_size())
            leader, epoch = cluster.leader()
            assert leader.proc is not None
            leader.proc.kill()  # SIGKILL: no clean-up, its session dies with it
            leader.proc.wait()
            successor, epoch = cluster.leader(epoch)
            assert successor is not leader
            cluster.wait_growth(max(size, cluster.tree_size()))
            cluster.start(leader)  # the killed replica comes back as a candidate
        for replica in cluster.replicas:
            cluster.wait_ready(replica)
        cluster.wait_growth(cluster.tree_size())
    _check(cluster, load)


def test_a_paused_sequencer_is_replaced_and_steps_down_when_resumed(cluster: Cluster) -> None:
    with Load(cluster) as load:
        cluster.wait_growth(cluster.tree_size())
        leader, epoch = cluster.leader()
        with paused(leader):  # it keeps its session and its advisory lock
            successor, new_epoch = cluster.leader(epoch)
            assert successor is not leader
            cluster.wait_growth(cluster.tree_size())
        # Resumed: its renewal fails (its sessions were ended), so it stops sequencing.
        deadline = time.monotonic() + 30
        while f"no longer sequences (epoch {epoch})" not in leader.log_text():
            assert time.monotonic() < deadline, leader.events()[-3000:]
            time.sleep(0.05)
        assert leader.alive()
        cluster.wait_ready(leader)  # and serves on as a replica
        assert cluster.leader()[1] >= new_epoch
        cluster.wait_growth(cluster.tree_size())
    _check(cluster, load)


def test_a_database_outage_answers_503_with_retry_after_and_recovers(tmp_path: Path) -> None:
    with fresh_schema() as schema:
        proxy = TcpProxy(*pg_host_port())
        nodes = Cluster(
            tmp_path, test_dsn(), schema, count=1, lease=LEASE, replica_dsn=proxy.dsn(test_dsn())
        )
        replica = nodes.replicas[0]
        statements = make_statements(nodes.vendor, 3, "outage")
        headers = {"content-type": "application/cose"}
        try:
            nodes.start_all()
            first = http_calls.post(
                replica.url + "/entries", content=statements[0], headers=headers
            )
            assert first.status_code == 201
            proxy.down()
            during = http_calls.post(
                replica.url + "/entries", content=statements[1], headers=headers, timeout=30
            )
            assert during.status_code == 503
            assert int(during.headers["retry-after"]) >= 1
            assert "problem" in during.headers["content-type"]  # RFC 9290, not a bare 500
            read = http_calls.get(replica.url + "/checkpoint", timeout=30)
            assert read.status_code == 503
            assert int(read.headers["retry-after"]) >= 1
            proxy.up()
            deadline = time.monotonic() + 30
            while True:
                after = http_calls.post(
                    replica.url + "/entries", content=statements[2], headers=headers, timeout=30
                )
                if after.status_code == 201:
                    break
                assert after.status_code == 503, after.text
                assert time.monotonic() < deadline, replica.events()[-3000:]
                time.sleep(float(after.headers["retry-after"]))
            assert nodes.lease_epoch() >= 2  # the outage cost it the lease; it won it back
        finally:
            nodes.stop_all()
            proxy.close()
