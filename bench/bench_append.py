"""Cost of one append to the log at 10^3 and 10^6 (or 10^7) entries: it should stay flat.

One log is built per size, then appends are timed in rounds that alternate between the logs
(so that a change of machine load hits every size alike): batches of 16 appends of ~700-byte
entries, submit → durable → integrated (the store's commit, tiles, checkpoint signature);
the median of the rounds is printed per size, with the ratio of the largest to the smallest.

Building: ``--fill bulk`` (the default on SQLite) writes 65,536 entries of 64 bytes per
:class:`~ironroot.log.StoreBatch` straight to the store, with the real tiles, compact range
and a signed checkpoint for each; ``--fill log`` submits them through :class:`Log` (slower).
On SQLite the bulk load ends with the keys of every entry stored (an empty id window). After
the timed rounds the largest log's window is filled to 16 short of its size
(:func:`ironroot.log._sqlite.index_window`), a fresh reader's first look-up is timed (it
hashes the window's entries), and then the batch that fills the window: the store merges the
window on a thread of its own, so that batch's latency is printed, then the latencies of the
batches appended while the merge runs, and the merge's own time (less the time it waited for
those batches), amortized over the window and added to the append cost: an upper bound, as
if the merge had no core of its own.

Then the bytes stored per entry beyond the entries themselves (64-byte bulk entries and the
700-byte timed ones), on the largest log.

Run alone with ``.venv/bin/python bench/bench_append.py [--sizes 1000,1000000]
[--rounds 5] [--store sqlite|postgresql] [--fill bulk|log]``; PostgreSQL is
``$IRONROOT_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``), in a fresh
schema dropped afterwards. The load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import (
    AuditableStore,
    Checkpoint,
    Log,
    NoteSigner,
    SqliteLogStore,
    StoreBatch,
    TreeState,
    open_store,
    sign_checkpoint,
)
from ironroot.log._sqlite import index_window
from ironroot.merkle import EMPTY_ROOT, CompactRange, leaf_hash

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
ORIGIN = "bench.example"

_BATCH = 16
_BATCHES = 25
_BULK_BATCH = 1 << 16
_BULK_MERGE = 1 << 21  # keys merged during a bulk load every so many entries
_BULK_ENTRY = 64
_TIMED_ENTRY = 700


def _entry(i: int, size: int) -> bytes:
    return i.to_bytes(8, "big") + os.urandom(size - 8)


class _BulkWriter:
    """Writes a log straight to a store in large batches, as :class:`Log` would write them."""

    def __init__(self, store: AuditableStore, signer: NoteSigner) -> None:
        self.store = store
        self.signers = [signer]
        self.compact = CompactRange()
        self.edge: dict[int, tuple[int, bytearray]] = {}
        store.write(
            StoreBatch(
                first_index=0,
                state=TreeState(0, ()),
                checkpoint=self._sign(0, EMPTY_ROOT),
                meta={"origin": ORIGIN},
            )
        )

    def _sign(self, size: int, root: bytes) -> bytes:
        return sign_checkpoint(Checkpoint(ORIGIN, size, root), self.signers)

    def add(self, entries: Sequence[bytes]) -> None:
        first = self.compact.size
        touched: dict[tuple[int, int], bytearray] = {}

        def visit(level: int, index: int, digest: bytes) -> None:
            if level % 8:
                return
            tile_level = level // 8
            tile_index = index // 256
            current = self.edge.get(tile_level)
            if current is None or current[0] != tile_index:
                current = (tile_index, bytearray())
                self.edge[tile_level] = current
            current[1].extend(digest)
            touched[(tile_level, tile_index)] = current[1]
            if len(current[1]) == 256 * 32:
                del self.edge[tile_level]

        for entry in entries:
            self.compact.append(leaf_hash(entry), visit)
        size = self.compact.size
        self.store.write(
            StoreBatch(
                first_index=first,
                integrated=[(hashlib.sha256(e).digest(), e) for e in entries],
                tiles={key: bytes(data) for key, data in touched.items()},
                state=TreeState(size, self.compact.hashes),
                checkpoint=self._sign(size, self.compact.root()),
            )
        )


def bulk_load(where: Path, signer: NoteSigner, target: int) -> None:
    """A SQLite log of ``target`` entries at ``where``, the keys of all of them stored."""
    store = SqliteLogStore(where / "log.sqlite3", index_window=1 << 62)
    try:
        writer = _BulkWriter(store, signer)
        done = 0
        while done < target:
            stop = min(target, done + _BULK_BATCH)
            writer.add([_entry(i, _BULK_ENTRY) for i in range(done, stop)])
            done = stop
            if done % _BULK_MERGE == 0:
                store.merge_index()
        store.merge_index()
    finally:
        store.close()


def _log_fill(log: Log, start: int, target: int) -> None:
    chunk = 20000
    i = start
    while i < target:
        n = min(chunk, target - i)
        tickets = log.submit_many([_entry(j, _BULK_ENTRY) for j in range(i, i + n)])
        tickets[-1].integrated.result(timeout=600)
        i += n


def _append(log: Log, base: int, batches: int) -> float:
    """Seconds per entry for ``batches`` batches of 16 (each waited for)."""
    return _append_timed(log, base, batches)[0]


def _append_timed(log: Log, base: int, batches: int) -> tuple[float, float]:
    """(wall, CPU) seconds per entry for ``batches`` batches of 16 (each waited for); the CPU
    time is this process's, all threads: the other logs are idle meanwhile."""
    items = [
        [_entry(base + b * _BATCH + k, _TIMED_ENTRY) for k in range(_BATCH)] for b in range(batches)
    ]
    start, cpu = time.perf_counter(), time.process_time()
    for batch in items:
        for t in log.submit_many(batch):
            t.integrated.result(timeout=600)
    count = batches * _BATCH
    return (time.perf_counter() - start) / count, (time.process_time() - cpu) / count


def pg_dsn() -> str:
    return os.environ.get("IRONROOT_PG_DSN") or DEFAULT_DSN


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # a name made here


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def append_costs(
    sizes: tuple[int, ...] = (1000, 1_000_000),
    store_kind: str = "sqlite",
    *,
    rounds: int = 15,
    fill: str | None = None,
    keep: Path | None = None,
) -> None:
    fill = fill or ("bulk" if store_kind == "sqlite" else "log")
    if fill == "bulk" and store_kind != "sqlite":
        raise SystemExit("--fill bulk is for the SQLite store")
    if keep is not None and store_kind != "sqlite":
        raise SystemExit("--keep is for the SQLite store")
    work = keep or Path(tempfile.mkdtemp(prefix="ironroot-append-"))
    work.mkdir(parents=True, exist_ok=True)
    key_file = work / "bench-key.pem"
    if keep is not None and key_file.exists():
        key = PrivateKey.from_pem(key_file.read_bytes())
    else:
        key = PrivateKey.generate(Algorithm.EDDSA)
        key_file.write_bytes(key.to_pem())
    signer = NoteSigner(ORIGIN, key)
    print(f"store: {store_kind}; fill: {fill}; {_load()}")
    logs: dict[int, tuple[Log, AuditableStore]] = {}
    breakdown = ""
    schemas: list[str] = []
    timed = dict.fromkeys(sizes, 0)
    try:
        for target in sorted(sizes):
            where = work / str(target)
            reused = (where / "log.sqlite3").exists()
            where.mkdir(exist_ok=True)
            t0 = time.perf_counter()
            if fill == "bulk" and not reused:
                bulk_load(where, signer, target)
            if store_kind == "postgresql":
                schemas.append("bench_" + os.urandom(6).hex())
                store = open_store(pg_dsn(), schema=schemas[-1])
            else:
                store = open_store(where)
            log = Log(store, origin=ORIGIN, note_signers=[signer], max_batch=20000)
            log.start()
            if fill == "log" and not reused:
                _log_fill(log, 0, target)
            built = time.perf_counter() - t0
            t0 = time.perf_counter()
            store.lookup([bytes(32)])  # a reader's first look-up loads the id window
            window = time.perf_counter() - t0
            t0 = time.perf_counter()
            _append(log, 10**12 + target * 10, 1)  # the first batch (may merge the window)
            first = time.perf_counter() - t0
            timed[target] += _BATCH
            logs[target] = (log, store)
            print(
                f"{'reused' if reused else 'built'} {log.tree_size:>10,} entries in "
                f"{built:7.1f} s; window loaded by a reader in "
                f"{window * 1e3:6.1f} ms; first batch {first * 1e3:7.1f} ms; {_load()}",
                flush=True,
            )
        per: dict[int, list[float]] = {target: [] for target in sizes}
        cpu: dict[int, list[float]] = {target: [] for target in sizes}
        salt = int.from_bytes(os.urandom(4), "big") * 10**9
        for r in range(rounds):
            for target in sorted(sizes):
                log, _ = logs[target]
                base = 10**12 + salt + target * 10 + (r + 1) * 10**6
                wall, spent = _append_timed(log, base, _BATCHES)
                per[target].append(wall)
                cpu[target].append(spent)
                timed[target] += _BATCHES * _BATCH
            print(
                f"round {r + 1}: "
                + ", ".join(
                    f"{t:,}: {per[t][-1] * 1e6:.0f} us (CPU {cpu[t][-1] * 1e6:.0f})"
                    for t in sorted(sizes)
                )
                + f"; {_load()}",
                flush=True,
            )
        biggest = max(sizes)
        log, store = logs[biggest]
        # Bytes now, in the steady state of small batches (the WAL file is bounded).
        stored = store.storage_bytes()
        count = log.tree_size
        if store_kind == "sqlite":
            breakdown = _where_the_bytes_are(work / str(biggest) / "log.sqlite3", count)
        merge = (
            _merge_cost(store, log, work / str(biggest) / "log.sqlite3")
            if store_kind == "sqlite"
            else None
        )
    finally:
        for log, _ in logs.values():
            log.close()
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
        for schema in schemas:
            drop_schema(schema)
    medians = {t: statistics.median(v) for t, v in per.items()}
    cpus = {t: statistics.median(v) for t, v in cpu.items()}
    for target in sorted(sizes):
        print(
            f"append at {target:>10,} entries: {medians[target] * 1e6:7.1f} us/entry, "
            f"fastest round {min(per[target]) * 1e6:7.1f}, CPU {cpus[target] * 1e6:6.1f} "
            f"(medians of {rounds} rounds of {_BATCHES} batches of {_BATCH})"
        )
    small, biggest = min(sizes), max(sizes)
    if len(sizes) >= 2:
        print(
            f"ratios {biggest:,} / {small:,} entries: median "
            f"{medians[biggest] / medians[small]:.2f}"
            f", fastest round {min(per[biggest]) / min(per[small]):.2f}, CPU "
            f"{cpus[biggest] / cpus[small]:.2f}"
        )
    if merge is not None:
        seconds, keys, load, during = merge
        amortized = medians[biggest] + seconds / keys
        print(f"a reader's first look-up with a full window ({keys:,} entries): {load:.2f} s")
        print(during)
        print(
            f"merge of a full window ({keys:,} keys) into the keys of {biggest:,} entries: "
            f"{seconds:.2f} s, {seconds / keys * 1e6:.1f} us per appended entry; "
            f"append at {biggest:,} with it: {amortized * 1e6:.1f} us/entry"
        )
        fastest = min(per[biggest]) + seconds / keys
        print(
            f"append cost ratio {biggest:,} / {small:,} entries, the merge amortized: "
            f"median {amortized / medians[small]:.2f}, fastest round "
            f"{fastest / min(per[small]):.2f} (flat = ~1)"
        )
    bulk_entries = count - timed[biggest]
    payload = bulk_entries * _BULK_ENTRY + timed[biggest] * _TIMED_ENTRY
    print(
        f"log bytes per entry at {count:,} entries: {stored / count:.0f}; beyond the entries "
        f"({bulk_entries:,} of {_BULK_ENTRY} B, {timed[biggest]:,} of {_TIMED_ENTRY} B): "
        f"{(stored - payload) / count:.0f}; {_load()}"
    )
    if breakdown:
        print(breakdown)


def _merge_cost(
    store: AuditableStore, log: Log, path: Path
) -> tuple[float, int, float, str] | None:
    """Time one merge of a full window into the stored keys (SQLite): the window is filled
    to 16 short of full, then one more batch of 16 fills it and the store merges it on its
    own thread; batches of 16 are appended and timed until the merge is done.

    Returns the merge's seconds (less those it waited for the appends), the entries it
    indexed, a fresh reader's first look-up then, and a line on the appends meanwhile.
    ``None`` if no key is stored."""
    if not isinstance(store, SqliteLogStore) or store.indexed() == 0:
        return None
    need = index_window(store.indexed()) - _BATCH * (_BATCHES + 1)
    need -= log.tree_size - store.indexed()
    base = 10**13
    while need > 0:
        n = min(need, 20000)
        tickets = log.submit_many([_entry(base + k, _BULK_ENTRY) for k in range(n)])
        tickets[-1].integrated.result(timeout=600)
        base += n
        need -= n
    plain = _append(log, 10**14, _BATCHES)  # the window is 16 short of full after these
    reader = SqliteLogStore(path, read_only=True)
    try:
        t0 = time.perf_counter()
        reader.lookup([bytes(32)])
        load = time.perf_counter() - t0
    finally:
        reader.close()
    before = store.last_merge
    t0 = time.perf_counter()
    _append(log, 10**14 + 100, 1)  # fills the window: the merge starts after it commits
    filling = time.perf_counter() - t0
    latencies = []
    n = 0
    while store.last_merge is before:  # set once the merge committed its last slice
        t0 = time.perf_counter()
        _append(log, 10**14 + 1000 + n * _BATCH, 1)
        latencies.append(time.perf_counter() - t0)
        n += 1
    stats = store.last_merge
    assert stats is not None
    slowest_at = max(range(len(latencies)), key=latencies.__getitem__, default=0)
    latencies = sorted(latencies) or [0.0]
    during = (
        f"append with a full window: {plain * 1e6:.1f} us/entry ({_BATCHES} batches); "
        f"batch that filled the window: {filling * 1e3:.1f} ms (a plain batch "
        f"{plain * _BATCH * 1e3:.1f} ms); {n} batches appended during the merge: "
        f"median {statistics.median(latencies) * 1e3:.1f} ms, slowest "
        f"{latencies[-1] * 1e3:.1f} ms (the {slowest_at + 1}th); the merge: {stats.slices} "
        "transactions, "
        f"{stats.seconds:.2f} s wall ({stats.waited:.2f} s of it waiting for appends), "
        f"CPU {stats.cpu_seconds:.2f} s; {_load()}"
    )
    return stats.seconds - stats.waited, stats.entries, load, during


def _where_the_bytes_are(path: Path, count: int) -> str:
    """Bytes per entry of each table and index of a SQLite log (its ``dbstat`` table), the
    free pages and the WAL file."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0] * page_size
    except sqlite3.Error as exc:  # dbstat is not compiled into every SQLite
        return f"(no per-table breakdown: {exc})"
    finally:
        conn.close()
    wal = Path(f"{path}-wal")
    parts = [f"{name} {size / count:.1f}" for name, size in rows if size / count >= 0.05]
    parts.append(f"free pages {free / count:.1f}")
    parts.append(f"WAL file {(wal.stat().st_size if wal.exists() else 0) / count:.1f}")
    return "bytes per entry by table: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--fill", choices=("bulk", "log"), default=None)
    parser.add_argument(
        "--keep", type=Path, help="build the logs in DIR and keep them (SQLite); reuse those there"
    )
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    append_costs(sizes, args.store, rounds=args.rounds, fill=args.fill, keep=args.keep)


if __name__ == "__main__":
    main()
