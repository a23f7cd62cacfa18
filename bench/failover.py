"""Failover soak of ``ironroot serve --replica``: many sequencer kills under load, and a report.

Run: ``.venv/bin/python bench/failover.py [--kills 20] [--pauses 2] [--replicas 3] [--lease 1.5]``
(part of ``make bench``). PostgreSQL is ``$IRONROOT_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``); the run uses a fresh schema, dropped afterwards.

What it does: starts the replicas (one data directory each, the same keys), puts a load of
registering clients on them (retrying on 503 after ``Retry-After`` and on a refused
connection), then, ``--kills`` times, ``kill -9``\\ s the elected sequencer, waits for another
to be elected and for the log to grow, and starts the killed replica again; then ``--pauses``
times it ``SIGSTOP``\\ s the sequencer past its lease, waits for a successor, and resumes it.
At the end it checks what the suite checks (``tests/transparency/test_replicas.py``, same
harness): every acknowledged entry is in the log, the stored log verifies end to end, every
checkpoint a client saw is the stored one (no fork). It prints, per event, the time from the
signal to the next election and to the first receipt (``201``) for a statement registered on
the successor after the signal, their median and maximum,
the client retries, and the load average (figures measured on a shared machine are upper
bounds of the failover time). Exit status 0 when nothing was lost and nothing forked.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

_TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path[:0] = [str(_TESTS), str(_TESTS / "transparency")]

from replica_cluster import Cluster, Load, Replica, audit, make_statements, paused  # noqa: E402

from ironroot_pg import drop_schema, test_dsn  # noqa: E402


def _receipt(replica: Replica, statement: bytes) -> None:
    """Register ``statement`` on ``replica`` until it answers with a receipt (``201``)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = httpx.post(
            replica.url + "/entries",
            content=statement,
            headers={"content-type": "application/cose"},
            timeout=10,
        )
        if answer.status_code == 201:
            return
        time.sleep(0.02)
    raise AssertionError(f"no receipt from replica {replica.number}")


def _event(cluster: Cluster, kind: str) -> tuple[float, float]:
    """One failover (``kill`` or ``pause``) of the current sequencer: seconds from the signal
    to the successor's election, and to the first receipt for a statement registered then
    (on the successor, so that no client stuck on a paused replica counts)."""
    cluster.wait_growth(cluster.tree_size())
    leader, epoch = cluster.leader()
    assert leader.proc is not None
    probe = make_statements(cluster.vendor, 1, f"probe-{epoch}")[0]
    start = time.monotonic()
    if kind == "kill":
        leader.proc.kill()
        leader.proc.wait()
        successor, _ = cluster.leader(epoch)
        elected = time.monotonic() - start
        _receipt(successor, probe)
        grown = time.monotonic() - start
        cluster.start(leader)
        cluster.wait_ready(leader)
    else:
        with paused(leader):
            successor, _ = cluster.leader(epoch)
            elected = time.monotonic() - start
            _receipt(successor, probe)
            grown = time.monotonic() - start
        deadline = time.monotonic() + 30
        while f"no longer sequences (epoch {epoch})" not in leader.log_text():
            if time.monotonic() > deadline:
                raise AssertionError("the resumed sequencer did not step down")
            time.sleep(0.05)
    print(
        f"  {kind:5} replica {leader.number} (epoch {epoch}) -> replica {successor.number}: "
        f"elected after {elected:.2f} s, first receipt after {grown:.2f} s",
        flush=True,
    )
    return elected, grown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--pauses", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--lease", type=float, default=1.5)
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()
    schema = "bench_" + secrets.token_hex(6)
    root = Path(tempfile.mkdtemp(prefix="ironroot-failover-"))
    print(
        f"{args.replicas} replicas, lease {args.lease} s, {args.clients} client threads; "
        f"{args.kills} kills, {args.pauses} pauses; load average {os.getloadavg()}",
        flush=True,
    )
    cluster = Cluster(root, test_dsn(), schema, count=args.replicas, lease=args.lease)
    events: dict[str, list[tuple[float, float]]] = {"kill": [], "pause": []}
    started = time.monotonic()
    try:
        cluster.start_all()
        with Load(cluster, threads=args.clients) as load:
            for kind, count in (("kill", args.kills), ("pause", args.pauses)):
                for _ in range(count):
                    events[kind].append(_event(cluster, kind))
            cluster.wait_growth(cluster.tree_size())
        result = audit(cluster, load)
    finally:
        cluster.stop_all()
        drop_schema(schema)
    elapsed = time.monotonic() - started
    print(f"load average at the end {os.getloadavg()}; {elapsed:.0f} s in all")
    for kind, times in events.items():
        if times:
            elected = [e for e, _ in times]
            grown = [g for _, g in times]
            print(
                f"{kind}: {len(times)} failovers; election median "
                f"{statistics.median(elected):.2f} s, max {max(elected):.2f} s; first receipt "
                f"median {statistics.median(grown):.2f} s, max {max(grown):.2f} s"
            )
    print(
        f"acknowledged {result.acknowledged}, lost {result.lost}, forks {result.forks}; tree "
        f"size {result.tree_size}, {result.verified_checkpoints} stored checkpoints verified, "
        f"{result.checkpoints_seen} served checkpoints checked; client retries {load.retries} "
        f"({load.retry_after_seen} 503 with Retry-After); answers {sorted(load.statuses.items())}"
    )
    latency = sorted(load.receipt_seconds)
    if latency:
        p50, p99 = (
            latency[len(latency) // 2],
            latency[min(len(latency) - 1, len(latency) * 99 // 100)],
        )
        print(
            f"POST /entries to 201 with the receipt, failovers included: p50 {p50 * 1000:.0f} "
            f"ms, p99 {p99 * 1000:.0f} ms"
        )
    ok = result.lost == 0 and result.forks == 0 and result.acknowledged > 0
    print("OK" if ok else "FAILED: entries lost or a fork")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
