"""Static tile export (``ironroot log export-tiles``), as ratios to reading the log in one run.

Run: ``.venv/bin/python bench/export_tiles.py [--entries N]``.

What it measures, on this machine, in this run, for a SQLite log of N entries of 700 bytes:

1. ``baseline``: read every entry from the store and compute its leaf hash: the work no export
   can avoid.
2. ``export``: ``export_tiles`` from the store into an empty directory: every tile and bundle
   read as served, authenticated (root, parent hashes, leaf hashes) and written durably (each
   file fsynced, each folder once), the checkpoint last. Target: export ≤ 10 × baseline
   (one fsync per file is most of it).
3. ``step``: one more entry, then the export step a ``--follow`` mirror runs (the edge tiles,
   one partial bundle, the checkpoint), reported in milliseconds beside one durable
   single-file write on the same disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ironroot._fileio import write_atomic
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import (
    Log,
    LogIdentity,
    NoteSigner,
    SqliteLogStore,
    StoreLogFetcher,
    export_tiles,
    layout,
)
from ironroot.merkle import leaf_hash

TARGET = 10.0
ORIGIN = "bench.example/export"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    n = args.entries
    work = Path(tempfile.mkdtemp(prefix="ironroot-export-bench-"))
    try:
        signer = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ED25519))
        identity = LogIdentity(ORIGIN, (signer.verifier(),))
        log = Log.open(work / "data", origin=ORIGIN, note_signers=[signer])
        log.start()
        try:
            for start in range(0, n, 4096):
                batch = [os.urandom(700) for _ in range(min(4096, n - start))]
                for ticket in log.submit_many(batch):
                    ticket.integrated.result(120)
            store = SqliteLogStore(layout.log_db_path(work / "data"), read_only=True)
            try:
                began = time.perf_counter()
                for index in range(0, n, 4096):
                    for entry in store.entries(index, min(index + 4096, n)):
                        leaf_hash(entry)
                baseline = time.perf_counter() - began
                began = time.perf_counter()
                report = export_tiles(StoreLogFetcher(store), work / "out", identity=identity)
                export = time.perf_counter() - began
            finally:
                store.close()
            for ticket in log.submit_many([os.urandom(700)]):
                ticket.integrated.result(60)
            store = SqliteLogStore(layout.log_db_path(work / "data"), read_only=True)
            try:
                began = time.perf_counter()
                export_tiles(StoreLogFetcher(store), work / "out", identity=identity)
                step = time.perf_counter() - began
            finally:
                store.close()
        finally:
            log.close()
        began = time.perf_counter()
        write_atomic(work / "one-file", b"\0" * 8192)
        one_write = time.perf_counter() - began
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = export / baseline
    files = report.tiles + report.entry_bundles
    print(f"entries: {n} of 700 bytes; {files} files written")
    print(f"baseline (read + leaf hash): {baseline:.2f} s ({n / baseline:,.0f} entries/s)")
    print(f"export:                      {export:.2f} s ({n / export:,.0f} entries/s)")
    print(f"export / baseline:           {ratio:.1f} (target <= {TARGET})")
    print(
        f"follow step (+1 entry):      {step * 1000:.1f} ms; one durable file write "
        f"{one_write * 1000:.1f} ms"
    )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
