"""Crash-test helper (run as a script): append to a log until killed.

``python log_crash_writer.py DATA_DIR RUN MAX_BATCH [WINDOW]`` opens the log of DATA_DIR (key,
origin and store from the data directory: SQLite in it, or its PostgreSQL schema; with WINDOW,
the SQLite store with an id window of that many entries, so that its merger thread merges the
window into the key index again and again), submits entries in a loop, and writes to stdout
one line per event, flushed at once:

* ``D <entry id hex>`` — right after the entry's ``durable`` future resolved;
* ``C <base64 of the signed checkpoint>`` — each time a new checkpoint is published.

The test kills it with SIGKILL and checks that the log kept every printed id and that every
printed checkpoint is consistent with the log's final one.
"""

from __future__ import annotations

import base64
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from ironroot.log import Log, SqliteLogStore, StoreConfig, layout


def main() -> None:
    data_dir, run, max_batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    origin = layout.read_log_origin(data_dir)
    signer = layout.load_checkpoint_signer(data_dir, origin)
    if len(sys.argv) > 4:
        store = SqliteLogStore(layout.log_db_path(data_dir), index_window=int(sys.argv[4]))
    else:
        store = StoreConfig.of_data_dir(data_dir).open(data_dir)
    log = Log(store, origin=origin, note_signers=[signer], max_batch=max_batch)
    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def on_durable(entry_id: bytes) -> object:
        def callback(future: Future[None]) -> None:
            if future.exception() is None:
                emit("D " + entry_id.hex())

        return callback

    log.start()
    emit("S " + run)
    published = b""
    n = 0
    while True:
        batch = [f"run {run} entry {n + i} ".encode() * (1 + (n + i) % 5) for i in range(25)]
        n += len(batch)
        for ticket in log.submit_many(batch):
            ticket.durable.add_done_callback(on_durable(ticket.entry_id))  # type: ignore[arg-type]
        checkpoint = log.checkpoint()
        if checkpoint != published:
            published = checkpoint
            emit("C " + base64.b64encode(checkpoint).decode())
        time.sleep(0.001)


if __name__ == "__main__":
    main()
