"""Cost of one append to the log at 10^3 and 10^6 entries (it should stay flat).

Bulk-loads the log to each size, then times batches of 16 appends of ~700-byte entries
(submit → durable → integrated: the store's commit, tiles, checkpoint signature, batch hook)
and prints microseconds per entry, plus bytes stored per entry. Run alone with
``.venv/bin/python bench/bench_append.py [--sizes 1000,1000000] [--store sqlite|postgresql]``;
PostgreSQL is ``$IRONROOT_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``), in
a fresh schema dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import Log, NoteSigner, open_store

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

_BATCH = 16
_BATCHES = 100


def _entry(i: int, size: int) -> bytes:
    return i.to_bytes(8, "big") + os.urandom(size - 8)


def _fill(log: Log, start: int, target: int) -> None:
    chunk = 20000
    i = start
    while i < target:
        n = min(chunk, target - i)
        tickets = log.submit_many([_entry(j, 64) for j in range(i, i + n)])
        tickets[-1].integrated.result(timeout=600)
        i += n


def _time_appends(log: Log, base: int) -> float:
    start = time.perf_counter()
    for b in range(_BATCHES):
        tickets = log.submit_many([_entry(base + b * _BATCH + k, 700) for k in range(_BATCH)])
        for t in tickets:
            t.integrated.result(timeout=60)
    return (time.perf_counter() - start) / (_BATCHES * _BATCH)


def pg_dsn() -> str:
    return os.environ.get("IRONROOT_PG_DSN") or DEFAULT_DSN


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # a name made here


def append_costs(sizes: tuple[int, ...] = (1000, 1_000_000), store_kind: str = "sqlite") -> None:
    work = Path(tempfile.mkdtemp(prefix="ironroot-append-"))
    schema = "bench_" + os.urandom(6).hex()
    signer = NoteSigner("bench.example", PrivateKey.generate(Algorithm.EDDSA))
    where = pg_dsn() if store_kind == "postgresql" else work
    store = open_store(where, schema=schema if store_kind == "postgresql" else None)
    log = Log(store, origin="bench.example", note_signers=[signer], max_batch=20000)
    print(f"store: {store_kind}")
    log.start()
    try:
        size = 0
        results = []
        for target in sorted(sizes):
            t0 = time.perf_counter()
            _fill(log, size, target)
            fill = time.perf_counter() - t0
            size = log.tree_size
            per_entry = _time_appends(log, 10**9 + size)
            size = log.tree_size
            results.append((target, per_entry, fill))
        stored = store.storage_bytes()  # type: ignore[attr-defined]  # every store has it
    finally:
        log.close()
        shutil.rmtree(work, ignore_errors=True)
        if store_kind == "postgresql":
            drop_schema(schema)
    for target, per_entry, fill in results:
        print(
            f"append at {target:>9,} entries: {per_entry * 1e6:7.1f} us/entry "
            f"(batches of {_BATCH}; bulk load took {fill:.1f} s)"
        )
    if len(results) >= 2:
        big, small = results[-1], results[0]
        print(
            f"append cost ratio {big[0]:,} / {small[0]:,} entries: "
            f"{big[1] / small[1]:.2f} (flat = ~1)"
        )
    print(
        f"log bytes per entry at {size:,} entries (mostly 64-byte bulk entries): "
        f"{stored / size:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    append_costs(tuple(int(s) for s in args.sizes.split(",")), args.store)


if __name__ == "__main__":
    main()
