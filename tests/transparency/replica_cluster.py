"""Replicas of one service over one PostgreSQL log, as real processes, with a load on them.

Used by ``tests/transparency/test_replicas.py`` (a few failovers) and by ``bench/failover.py``
(the soak: twenty and more). A :class:`Cluster` makes one data directory with fresh service
keys, copies it for each replica (the same configuration and keys, ADR 0009), and runs
``python -m ironroot serve --replica`` for each on its own port; :class:`Load` registers
statements from client threads, retrying on 503 (after ``Retry-After``) and on a refused or
cut connection (on the next replica), and records every entry a replica acknowledged
(``201`` or ``303``) and every checkpoint any replica served. :func:`audit` then checks the
promises: every acknowledged entry is in the log, the stored log verifies end to end, and
every checkpoint a client saw is the stored one at its size (no fork).

Nothing here compares durations: a wait that is not met in its bound raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

import http_calls
from ironroot._trust import system_trust
from ironroot.cose import Receipt, create_statement, verify_receipt
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import Checkpoint, LogView, Note, PostgresLogStore, verify_log_dir
from ironroot.merkle import (
    leaf_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from ironroot.transparency import init_data_dir, load_config, load_receipt_keys
from serving import free_port

VENDOR_ISS = "https://vendor.example"
_SEQUENCES = re.compile(r"this replica sequences \(lease epoch (\d+)")


def make_statements(key: PrivateKey, count: int, tag: str) -> list[bytes]:
    return [
        create_statement(
            key,
            json.dumps({"artifact": f"pkg:fw/{tag}@{i}", "nonce": os.urandom(16).hex()}).encode(),
            iss=VENDOR_ISS,
            sub=f"pkg:fw/{tag}@{i}",
            content_type="application/json",
        )
        for i in range(count)
    ]


@dataclass
class Replica:
    number: int
    data: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log_files: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_files if p.exists())

    def events(self) -> str:
        """The log lines other than access lines (what a failure message shows)."""
        return "".join(
            line
            for line in self.log_text().splitlines(keepends=True)
            if "ironroot.access" not in line
        )

    def epochs(self) -> list[int]:
        """The lease epochs this replica was elected with (from its log lines)."""
        return [int(m) for m in _SEQUENCES.findall(self.log_text())]


class Cluster:
    """``count`` replicas of one service in ``root`` over the PostgreSQL ``schema``."""

    def __init__(
        self,
        root: Path,
        dsn: str,
        schema: str,
        *,
        count: int = 3,
        lease: float = 1.5,
        replica_dsn: str | None = None,
        launcher: Path | None = None,
    ) -> None:
        """``replica_dsn`` is what the replicas connect to (default ``dsn``, which the
        harness itself uses); ``launcher``, a script run instead of ``-m ironroot`` with the
        CLI's arguments (``sequencer_commit_point.py``)."""
        self.dsn, self.schema, self.lease = dsn, schema, lease
        self.launcher = launcher
        self.vendor = PrivateKey.generate(Algorithm.ES256)
        first = root / "r0"
        first.mkdir(parents=True)
        (first / "vendor.pub.pem").write_bytes(self.vendor.public_key.to_pem())
        (first / "ironroot.toml").write_text(
            "[transparency]\n"
            'service_issuer = "https://transparency.example"\n'
            'receipt_algorithms = ["ES384"]\n'
            "registration_wait = 2.0\n"
            "[[transparency.issuers]]\n"
            f'iss = "{VENDOR_ISS}"\n'
            'key = "vendor.pub.pem"\n'
            f'[log]\nstore = "postgresql"\ndsn = "{replica_dsn or dsn}"\nschema = "{schema}"\n'
            "store_timeout = 2.0\n"
        )
        init_data_dir(first)  # the service keys, once: every replica holds the same
        # each replica keeps its port across restarts (the tests restart them on it on purpose)
        self.replicas = [Replica(0, first, free_port())]
        for n in range(1, count):
            data = root / f"r{n}"
            shutil.copytree(first, data)
            self.replicas.append(Replica(n, data, free_port()))

    # --- processes ------------------------------------------------------------------------

    def start(self, replica: Replica, **env: str) -> None:
        """Run ``replica`` (``env`` added to its environment)."""
        out = replica.data / f"serve-{len(replica.log_files)}.log"
        replica.log_files.append(out)
        program = ["-m", "ironroot"] if self.launcher is None else [str(self.launcher)]
        with out.open("wb") as sink:
            replica.proc = subprocess.Popen(
                [
                    sys.executable,
                    *program,
                    "serve",
                    "--data",
                    str(replica.data),
                    "--port",
                    str(replica.port),
                    "--replica",
                    "--lease",
                    str(self.lease),
                    "--log-level",
                    "info",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
            )

    def wait_ready(self, replica: Replica, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not replica.alive():
                raise AssertionError(f"replica {replica.number} exited:\n{replica.events()}")
            with contextlib.suppress(httpx.HTTPError):
                if (
                    http_calls.get(
                        replica.url + "/checkpoint", timeout=2.0, verify=system_trust()
                    ).status_code
                    == 200
                ):
                    return
            time.sleep(0.1)
        raise AssertionError(f"replica {replica.number} not ready:\n{replica.events()}")

    def start_all(self) -> None:
        for replica in self.replicas:
            self.start(replica)
        for replica in self.replicas:
            self.wait_ready(replica)

    def stop_all(self) -> None:
        for replica in self.replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replica.proc.pid, signal.SIGCONT)
                replica.proc.terminate()
        for replica in self.replicas:
            if replica.proc is not None:
                try:
                    replica.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    replica.proc.kill()
                    replica.proc.wait()

    # --- the sequencer --------------------------------------------------------------------

    def lease_epoch(self) -> int:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            query = sql.SQL("SELECT epoch FROM {} WHERE id = 1").format(
                sql.Identifier(self.schema, "sequencer_lease")
            )
            row = conn.execute(query).fetchone()
        return 0 if row is None else int(row[0])

    def leader(self, after_epoch: int = 0, timeout: float = 30.0) -> tuple[Replica, int]:
        """The live replica elected with the current epoch, once it is above ``after_epoch``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            epoch = self.lease_epoch()
            if epoch > after_epoch:
                for replica in self.replicas:
                    if replica.alive() and epoch in replica.epochs():
                        return replica, epoch
            time.sleep(0.05)
        logs = "\n".join(f"replica {r.number}:\n{r.events()[-3000:]}" for r in self.replicas)
        raise AssertionError(f"no sequencer elected after epoch {after_epoch}:\n{logs}")

    def tree_size(self) -> int:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            query = sql.SQL("SELECT size FROM {} WHERE id = 1").format(
                sql.Identifier(self.schema, "state")
            )
            row = conn.execute(query).fetchone()
        return 0 if row is None else int(row[0])

    def wait_growth(self, beyond: int, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            size = self.tree_size()
            if size > beyond:
                return size
            time.sleep(0.05)
        logs = "\n".join(f"replica {r.number}:\n{r.events()[-3000:]}" for r in self.replicas)
        raise AssertionError(f"the log did not grow beyond {beyond} in {timeout} s\n{logs}")


class Load:
    """Client threads registering statements on the replicas, round robin, until stopped."""

    def __init__(self, cluster: Cluster, threads: int = 3) -> None:
        self.cluster = cluster
        self.acked: set[str] = set()
        self.checkpoints: set[bytes] = set()
        self.statuses: dict[int, int] = {}
        self.retries = 0
        self.retry_after_seen = 0
        self.receipt_seconds: list[float] = []
        """POST /entries to its 201, for each registration answered with a receipt."""
        self.receipts: dict[str, bytes] = {}
        """The receipt of each registration answered ``201``, by entry id (hex)."""
        self.bare_503s = 0
        """503 answers that were not a problem (RFC 9290 CBOR or RFC 9457 JSON)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _count(self, status: int) -> None:
        with self._lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def _run(self, number: int) -> None:
        replicas = self.cluster.replicas
        turn = number
        tag = f"t{number}-{os.urandom(4).hex()}"
        batch: list[bytes] = []
        with httpx.Client(timeout=5.0, verify=system_trust()) as client:
            while not self._stop.is_set():
                if not batch:
                    batch = make_statements(self.cluster.vendor, 20, tag + f"-{turn}")
                statement = batch.pop()
                while not self._stop.is_set():
                    turn += 1
                    replica = replicas[turn % len(replicas)]
                    try:
                        if turn % 7 == 0:
                            cp = client.get(replica.url + "/checkpoint")
                            if cp.status_code == 200:
                                with self._lock:
                                    self.checkpoints.add(cp.content)
                        sent = time.monotonic()
                        response = client.post(
                            replica.url + "/entries",
                            content=statement,
                            headers={"content-type": "application/cose"},
                        )
                        if response.status_code == 201:
                            with self._lock:
                                self.receipt_seconds.append(time.monotonic() - sent)
                                entry_id = response.headers["location"].rsplit("/", 1)[1]
                                self.receipts[entry_id] = response.content
                    except httpx.HTTPError:
                        with self._lock:
                            self.retries += 1
                        time.sleep(0.05)
                        continue  # refused or cut: the next replica
                    self._count(response.status_code)
                    if response.status_code in (201, 303):
                        location = response.headers["location"]
                        with self._lock:
                            self.acked.add(location.rsplit("/", 1)[1])
                        break
                    if response.status_code == 503:
                        with self._lock:
                            self.retries += 1
                            if "problem" not in response.headers.get("content-type", ""):
                                self.bare_503s += 1
                            if "retry-after" in response.headers:
                                self.retry_after_seen += 1
                        time.sleep(min(float(response.headers.get("retry-after", "1")), 2.0))
                        continue
                    raise AssertionError(
                        f"replica {replica.number} answered {response.status_code}: "
                        f"{response.text[:300]}"
                    )


@dataclass
class Audit:
    acknowledged: int
    lost: int
    tree_size: int
    checkpoints_seen: int
    forks: int
    verified_checkpoints: int


def audit(cluster: Cluster, load: Load, timeout: float = 60.0) -> Audit:
    """Wait (bounded) for every acknowledged entry to be integrated; verify the stored log
    end to end; check every checkpoint a client saw against the stored one at its size."""
    store = PostgresLogStore(cluster.dsn, schema=cluster.schema, create=False, pool_size=1)
    try:
        ids = [bytes.fromhex(i) for i in load.acked]
        deadline = time.monotonic() + timeout
        while True:
            found = store.lookup(ids)
            missing = [i for i in ids if found.get(i) is None]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        forks = 0
        for note in load.checkpoints:
            size = Checkpoint.parse(Note.parse(note).body).size
            if store.checkpoint(size) != note:
                forks += 1
    finally:
        store.close()
    report = verify_log_dir(cluster.replicas[0].data)
    return Audit(
        acknowledged=len(ids),
        lost=len(missing),
        tree_size=report.size,
        checkpoints_seen=len(load.checkpoints),
        forks=forks,
        verified_checkpoints=report.checkpoints,
    )


def audit_receipts(cluster: Cluster, load: Load) -> int:
    """Check every receipt a client was given (``201``) against the stored log, and every
    checkpoint a client saw against its latest tree; the number of receipts checked.

    Each receipt verifies with the service's keys; the entry stored at the index its proof
    names is the registered one; the root its proof leads to is the stored tree's at its size
    and the stored checkpoint's of that size (its batch's); that entry is proved included in
    the latest stored checkpoint's tree (the stored log's signatures are :func:`audit`'s to
    check). No entry is stored at two indexes, and every checkpoint seen is consistent with
    the latest one (the tree of every sequencer extends its predecessors'). An
    ``AssertionError`` names what failed."""
    data = cluster.replicas[0].data
    keys = load_receipt_keys([data / "keys" / "receipt-keys.cbor"])
    store = PostgresLogStore(cluster.dsn, schema=cluster.schema, create=False, pool_size=1)
    view = LogView(store, origin=load_config(data).origin)
    try:
        size = view.refresh()
        head = view.root(size)
        latest = store.checkpoint(size)
        assert latest is not None
        assert Checkpoint.parse(Note.parse(latest).body).root == head, "the latest checkpoint"
        where: dict[bytes, int] = {}
        for index, entry in store.iter_entries():
            entry_id = hashlib.sha256(entry).digest()
            assert entry_id not in where, f"entry {entry_id.hex()} at {where[entry_id]} and {index}"
            where[entry_id] = index
        assert sorted(where.values()) == list(range(size)), "the stored indexes have gaps"
        with load._lock:
            receipts = dict(load.receipts)
            seen = set(load.checkpoints)
        for entry_id_hex, data_ in receipts.items():
            proof = Receipt.parse(data_).inclusion_proofs[0]
            index = where.get(bytes.fromhex(entry_id_hex))
            assert index == proof.leaf_index, (
                f"the receipt of {entry_id_hex} says index {proof.leaf_index} of tree size "
                f"{proof.tree_size}; the log holds it at {index}"
            )
            entry = view.entry(index)
            verify_receipt(data_, entry, keys)
            root = root_from_inclusion_proof(index, proof.tree_size, leaf_hash(entry), proof.path)
            signed = store.checkpoint(proof.tree_size)
            assert signed is not None, f"no checkpoint of the receipt's tree {proof.tree_size}"
            assert (
                root == view.root(proof.tree_size) == Checkpoint.parse(Note.parse(signed).body).root
            ), (
                f"the receipt of {entry_id_hex} is of a tree of size {proof.tree_size} that the "
                "log does not hold (a fork)"
            )
            verify_inclusion(index, size, leaf_hash(entry), view.inclusion_proof(index, size), head)
        for note in seen:
            checkpoint = Checkpoint.parse(Note.parse(note).body)
            if checkpoint.size:
                proof_ = view.consistency_proof(checkpoint.size, size)
                verify_consistency(checkpoint.size, size, proof_, checkpoint.root, head)
    finally:
        view.close()
    return len(receipts)


def stopped(replica: Replica) -> bool:
    """Whether ``replica``'s process is stopped (``SIGSTOP``, by itself or another)."""
    assert replica.proc is not None
    try:
        stat = Path(f"/proc/{replica.proc.pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


@contextlib.contextmanager
def paused(replica: Replica) -> Iterator[None]:
    """``SIGSTOP`` the replica's process for the block, ``SIGCONT`` after."""
    assert replica.proc is not None
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
