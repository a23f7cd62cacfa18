"""Registration throughput of `ironroot serve`, as a ratio to one-core ES256 verifies.

Run: ``make bench`` (or ``.venv/bin/python bench/registration.py [--count N] [--connections C]
[--store sqlite|postgresql|both]``). The log is SQLite in the data directory by default;
``--store postgresql`` puts it in a fresh schema of ``$IRONROOT_PG_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards; ``both`` runs one after the
other and prints PostgreSQL's rate as a ratio to SQLite's too.

What it does, in one run on this machine:
1. baseline: ES256 verifications/s on one core (the dominant per-statement cost of the server),
   per wall-clock second and per CPU second; the ratios divide by the larger (the per CPU
   second one, unless the clock disagrees): a baseline measured while other jobs take part of
   the core would be lower and inflate every ratio, as it did (0.47 for a run whose quiet
   figure is 0.22, at load 2.7-4.2), whereas the CPU second is the core's own speed;
2. starts ``ironroot serve`` on a fresh data directory with one ES256 vendor configured;
3. registers N distinct ~700-byte ES256 statements over HTTP/1.1 keep-alive with C concurrent
   connections, then fetches every receipt (GET /entries/{id}), verifies a sample offline, and
   checks that the checkpoint covers every acknowledged entry (zero lost);
4. prints registrations/s and its ratio to the baseline (target >= 0.12 in one process; with
   ``--workers 2``: >= 0.30 on SQLite, >= 0.25 on PostgreSQL), the bytes stored per entry,
   and the cost of one append at 10^3 and 10^6 entries;
   the CPU each process spent per registration (POST) and per receipt fetch (GET), apart:
   the sequencer's event loop and its other threads (the log's writer), the workers, this
   load generator, and the server's system time among them (Linux /proc; a PostgreSQL
   server's own processes are not counted). CPU per request moves far less than the
   wall-clock rate when other jobs share the cores, so the bench also prints the ratio the
   machine's idle cores would give at that CPU cost ("CPU-bound RATIO", against the
   baseline per CPU second): for registrations alone, and with each one's receipt fetch;
5. latency from POST /entries to the receipt: p50/p99 at full load, then under an open-loop
   load at half the rate just measured (target p99 <= 100 ms on SQLite with workers).

Run ``bench/registration.py --workers 2 --connections 64`` for ``ironroot serve --workers 2``;
``IRONROOT_BENCH_LINGER`` and ``IRONROOT_BENCH_FILL`` set the service's ``batch_linger`` and
``batch_fill`` (else its defaults).
The machine's load average is printed: on a shared machine, figures measured under load are
lower bounds.

The load generator is a small asyncio HTTP/1.1 client written here rather than httpx, one
``asyncio.Protocol`` per connection on uvloop: on a 2-core machine the client shares the CPU
with the server, and httpx costs several times more CPU per request than this loop, so it
would measure the client instead of the service. Its CPU per request is printed apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

from ironroot.cose import (
    Receipt,
    SignedStatement,
    create_statement,
    decode_key_set,
    verify_receipt,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.http import ServerLimits

ISS = "https://vendor.example"


def es256_verifies_per_second(seconds: float = 2.0) -> tuple[float, float]:
    """ES256 verifications per second on one core: per wall-clock second (what the ratio
    divides by, as before) and per CPU second of this process (which other jobs on the
    machine do not move)."""
    key = PrivateKey.generate(Algorithm.ES256)
    data = os.urandom(700)
    sig = key.sign(data)
    pub = key.public_key
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            pub.verify(sig, data)
        n += 200
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_statements(key: PrivateKey, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        body = {
            "artifact": f"pkg:firmware/vendor/bmc@{i // 100}.{i % 100}.0",
            "sha384": os.urandom(48).hex(),
            "build": {"id": i, "runner": "ci-builder-07", "nonce": os.urandom(96).hex()},
            "notes": "x" * 180,
        }
        payload = json.dumps(body).encode()
        out.append(
            create_statement(
                key, payload, iss=ISS, sub=body["artifact"], content_type="application/json"
            )
        )
    return out


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection: send a request, then parse the status, headers and
    body as they arrive (an :class:`asyncio.Protocol`: a response costs one wake-up, not a
    ``readline`` per header line)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiting: asyncio.Future[tuple[int, dict[str, str], bytes]] | None = None
        self._head: tuple[int, dict[str, str], int] | None = None  # status, headers, length

    @classmethod
    async def open(cls, port: int) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(cls, "127.0.0.1", port)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_exception(ConnectionError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            del buffer[: end + 4]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self._head = (int(lines[0].split()[1]), headers, int(headers.get("content-length", 0)))
        status, headers, length = self._head
        if len(buffer) < length:
            return
        body = bytes(buffer[:length])
        del buffer[:length]
        self._head = None
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result((status, headers, body))

    async def request(
        self, method: str, path: str, body: bytes = b"", ctype: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        assert self._transport is not None
        self._waiting = asyncio.get_running_loop().create_future()
        self._transport.write(head.encode() + b"\r\n" + body)
        return await self._waiting

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def _run_load(
    port: int,
    statements: list[bytes],
    connections: int,
    mark: Callable[[], dict[str, float] | None],
) -> dict[str, object]:
    """Register every statement, then fetch every receipt; ``mark()`` snapshots the CPU at
    the start, between the two phases and at the end."""
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for item in enumerate(statements):
        queue.put_nowait(item)
    ids: list[str | None] = [None] * len(statements)
    statuses: dict[int, int] = {}
    latencies: list[float] = []

    async def worker() -> None:
        conn = await _Conn.open(port)
        while not queue.empty():
            i, body = queue.get_nowait()
            sent = time.perf_counter()
            status, headers, _ = await conn.request("POST", "/entries", body, "application/cose")
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1
            if status in (201, 303):
                ids[i] = headers["location"].rsplit("/", 1)[1]
        conn.close()

    cpu = [mark()]
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    cpu.append(mark())

    receipts: dict[str, bytes] = {}
    fetch_queue: asyncio.Queue[str] = asyncio.Queue()
    for entry_id in ids:
        if entry_id:
            fetch_queue.put_nowait(entry_id)
    fetch_status: dict[int, int] = {}

    async def fetcher() -> None:
        conn = await _Conn.open(port)
        while not fetch_queue.empty():
            entry_id = fetch_queue.get_nowait()
            for _ in range(200):
                status, _, body = await conn.request("GET", f"/entries/{entry_id}")
                if status != 302:
                    break
                await asyncio.sleep(0.05)
            fetch_status[status] = fetch_status.get(status, 0) + 1
            if status == 200:
                receipts[entry_id] = body
        conn.close()

    fstart = time.perf_counter()
    await asyncio.gather(*(fetcher() for _ in range(connections)))
    fetch_elapsed = time.perf_counter() - fstart
    cpu.append(mark())

    conn = await _Conn.open(port)
    _, _, keyset = await conn.request("GET", "/.well-known/scitt-keys")
    _, _, checkpoint = await conn.request("GET", "/checkpoint")
    conn.close()
    return {
        "elapsed": elapsed,
        "latencies": latencies,
        "statuses": statuses,
        "ids": ids,
        "receipts": receipts,
        "fetch_status": fetch_status,
        "fetch_elapsed": fetch_elapsed,
        "keyset": keyset,
        "checkpoint": checkpoint.decode(),
        "cpu": cpu,
    }


async def _paced_load(
    port: int, statements: list[bytes], rate: float, connections: int
) -> tuple[list[float], dict[int, int]]:
    """Open-loop load: one registration every 1/rate s, each timed from when it was due (so a
    stalled server's queueing counts), on up to ``connections`` keep-alive connections."""
    idle: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await _Conn.open(port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def one(body: bytes, due: float) -> None:
        conn = await idle.get()
        status, _, _ = await conn.request("POST", "/entries", body, "application/cose")
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        idle.put_nowait(conn)

    tasks = []
    start = time.perf_counter()
    for n, body in enumerate(statements):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body, due)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return latencies, statuses


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(pid: int, tid: int | None = None, *, system: bool = False) -> float | None:
    """User + system CPU seconds of a process, or of one of its threads (Linux /proc); only
    the system (kernel) part with ``system``; None where /proc is missing."""
    where = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(where).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[12]) if system else int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _cpu_snapshot(server: int) -> dict[str, float] | None:
    """CPU seconds so far of each process of the service and of this load generator:
    ``sequencer loop`` (the server's main thread: its event loop), ``sequencer threads``
    (the log's writer and any other thread), each worker (``worker <pid>``), ``load
    generator``. None where /proc is missing."""
    total = _cpu_seconds(server)
    loop = _cpu_seconds(server, server)
    bench = _cpu_seconds(os.getpid())
    if total is None or loop is None or bench is None:
        return None
    out = {"sequencer loop": loop, "sequencer threads": total - loop, "load generator": bench}
    try:
        children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
    except OSError:
        children = []
    kernel = _cpu_seconds(server, system=True) or 0.0
    for child in children:
        cpu = _cpu_seconds(int(child))
        if cpu is not None and cpu > 0.05:  # the workers (not multiprocessing's helper)
            out[f"worker {child}"] = cpu
            kernel += _cpu_seconds(int(child), system=True) or 0.0
    out["server kernel"] = kernel  # part of the figures above: system time of them all
    return out


def _cpu_per_request(
    before: dict[str, float] | None, after: dict[str, float] | None, requests: int
) -> dict[str, float]:
    """Microseconds of CPU per request spent by each process between two snapshots."""
    if before is None or after is None or requests <= 0:
        return {}
    return {
        name: (after[name] - before.get(name, 0.0)) / requests * 1e6
        for name in after
        if name in before or name.startswith("worker")
    }


def _print_cpu(what: str, per: dict[str, float], workers: int) -> float:
    """Print one phase's CPU per request by process; returns the total (server + client)."""
    if not per:
        return 0.0
    worker_us = sum(v for k, v in per.items() if k.startswith("worker"))
    seq = per["sequencer loop"] + per["sequencer threads"]
    total = seq + worker_us + per["load generator"]
    if workers:
        parts = (
            f"sequencer {seq:.0f} (loop {per['sequencer loop']:.0f}, threads "
            f"{per['sequencer threads']:.0f}), workers {worker_us:.0f}"
        )
    else:
        parts = (
            f"server {seq:.0f} (loop {per['sequencer loop']:.0f}, threads "
            f"{per['sequencer threads']:.0f})"
        )
    print(
        f"CPU per {what}: {total:.0f} us = {parts}, load generator {per['load generator']:.0f}"
        f" (the server's system time: {per['server kernel']:.0f})"
    )
    return total


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start in time")


def fsync_latency(directory: Path, samples: int = 40) -> float:
    """The median seconds an ``fdatasync`` of a 4 KiB append takes in ``directory``: what every
    batch's commit waits for at least once, printed so that figures from machines with slow
    disks (a closed loop of clients is then bound by the disk) are read as such."""
    probe = directory / ".fsync-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    took = []
    try:
        for _ in range(samples):
            os.write(fd, b"\0" * 4096)
            start = time.perf_counter()
            os.fdatasync(fd)
            took.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        probe.unlink()
    return statistics.median(took)


def registration_bench(
    count: int,
    connections: int,
    baseline: float,
    store: str = "sqlite",
    workers: int = 0,
    baseline_cpu: float | None = None,
) -> tuple[bool, float]:
    from bench_append import drop_schema, pg_dsn

    workdir = Path(tempfile.mkdtemp(prefix="ironroot-bench-"))
    data = workdir / "data"
    vendor = PrivateKey.generate(Algorithm.ES256)
    data.mkdir()
    (data / "vendor.pub.pem").write_bytes(vendor.public_key.to_pem())
    schema = "bench_" + os.urandom(6).hex()
    store_lines = (
        f'[log]\nstore = "postgresql"\ndsn = "{pg_dsn()}"\nschema = "{schema}"\n'
        if store == "postgresql"
        else ""
    )
    # every connection comes from 127.0.0.1: past the per-address default (128), allow them
    per_client = ServerLimits().max_connections_per_client
    server_lines = (
        f"[server]\nmax_connections_per_client = {connections + 8}\n"
        if connections + 8 > per_client
        else ""
    )
    linger = os.environ.get("IRONROOT_BENCH_LINGER")  # else the service's default
    fill = os.environ.get("IRONROOT_BENCH_FILL")  # else the service's default
    (data / "ironroot.toml").write_text(
        "[transparency]\n"
        'service_issuer = "https://transparency.example"\n'
        'receipt_algorithms = ["ES384"]\n'
        + (f"batch_linger = {linger}\n" if linger else "")
        + (f"batch_fill = {fill}\n" if fill else "")
        + "[[transparency.issuers]]\n"
        f'iss = "{ISS}"\n'
        'key = "vendor.pub.pem"\n' + store_lines + server_lines
    )
    print(
        f"store: {store}; batch_linger: {linger or 'the default'}; "
        f"batch_fill: {fill or 'the default'}",
        flush=True,
    )
    print(
        f"disk: fdatasync of a 4 KiB append in the data directory, median "
        f"{fsync_latency(workdir) * 1000:.2f} ms (every batch's commit waits for one: when it "
        "nears a batch's CPU time, the disk bounds the rate, not the cores)",
        flush=True,
    )
    print(f"signing {count} statements ...", flush=True)
    statements = make_statements(vendor, count)
    avg = sum(map(len, statements)) / len(statements)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ironroot",
            "serve",
            "--data",
            str(data),
            "--port",
            str(port),
            "--log-level",
            os.environ.get("IRONROOT_BENCH_LOG_LEVEL", "warning"),
            *(["--workers", str(workers)] if workers else []),
        ],
    )
    try:
        _wait_ready(port, proc)
        time.sleep(1.0 if workers else 0.0)  # the workers bind after the sequencer
        load_before = os.getloadavg()[0]
        result = uvloop.run(
            _run_load(port, statements, connections, lambda: _cpu_snapshot(proc.pid))
        )
        load_after = os.getloadavg()[0]
        max_rate = count / float(result["elapsed"])  # type: ignore[arg-type]
        paced, paced_status = uvloop.run(
            _paced_load(port, make_statements(vendor, count // 2), max_rate / 2, connections)
        )
        stored = _stored_bytes(data)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if store == "postgresql":
            drop_schema(schema)
    elapsed = float(result["elapsed"])  # type: ignore[arg-type]
    statuses = result["statuses"]
    ids = result["ids"]
    receipts: dict[str, bytes] = result["receipts"]  # type: ignore[assignment]
    acked = [i for i in ids if i]  # type: ignore[union-attr]
    errors = count - len(acked)
    rate = count / elapsed
    size_line = str(result["checkpoint"]).split("\n")[1]
    lost = len(acked) - len(receipts)
    keys = decode_key_set(result["keyset"])  # type: ignore[arg-type]
    sample = random.sample(range(count), min(200, count))
    verified = 0
    for i in sample:
        entry_id = ids[i]  # type: ignore[index]
        if entry_id and entry_id in receipts:
            entry = SignedStatement.parse(statements[i]).log_entry()
            verify_receipt(receipts[entry_id], entry, keys)
            verified += 1
    ratio = rate / max(baseline, baseline_cpu or baseline)
    print(f"statements: {count} x ~{avg:.0f} bytes, {connections} connections")
    print(f"responses: {statuses}; receipts fetched: {result['fetch_status']}")
    print(f"registrations/s: {rate:.0f}  (wall {elapsed:.2f} s)")
    cpu: list[dict[str, float] | None] = result["cpu"]  # type: ignore[assignment]
    post_us = _print_cpu("registration (POST)", _cpu_per_request(cpu[0], cpu[1], count), workers)
    get_us = _print_cpu(
        "receipt fetch (GET)", _cpu_per_request(cpu[1], cpu[2], len(receipts)), workers
    )
    if post_us:
        # What the rate would be if this run had the machine's cores to itself: the CPU one
        # registration costs (server and load generator) is what bounds it, whatever the load.
        cores = os.cpu_count() or 1
        per_cpu = max(baseline, baseline_cpu or baseline)
        bound = cores / (post_us * 1e-6) / per_cpu
        print(
            f"CPU-bound RATIO on {cores} idle cores (baseline per CPU second): registrations "
            f"{bound:.3f}; registrations with their receipt fetch "
            f"{cores / ((post_us + get_us) * 1e-6) / per_cpu:.3f}"
        )
    print(
        f"receipt fetches/s: {len(receipts) / float(result['fetch_elapsed']):.0f}"  # type: ignore[arg-type]
    )
    print(f"checkpoint tree size: {size_line}; receipts verified offline: {verified}/{len(sample)}")
    batches = {Receipt.parse(r).inclusion_proofs[0].tree_size for r in receipts.values()}
    print(
        f"batches (one receipt signature each): {len(batches)}, "
        f"{len(receipts) / max(1, len(batches)):.1f} entries on average"
    )
    full: list[float] = result["latencies"]  # type: ignore[assignment]
    print(
        f"latency POST -> receipt at full load: p50 {_percentile(full, 0.5) * 1e3:.1f} ms, "
        f"p99 {_percentile(full, 0.99) * 1e3:.1f} ms"
    )
    p99 = _percentile(paced, 0.99) * 1e3
    print(
        f"latency POST -> receipt at half the maximum ({max_rate / 2:.0f}/s, {len(paced)} "
        f"registrations, {paced_status}): p50 {_percentile(paced, 0.5) * 1e3:.1f} ms, "
        f"p99 {p99:.1f} ms  (target p99 <= 100 ms on SQLite)"
    )
    errors += sum(n for status, n in paced_status.items() if status != 201)
    print(f"errors: {errors}; lost acknowledged entries: {lost}")
    print(f"bytes stored per entry: {stored / max(1, count):.0f} (statement ~{avg:.0f})")
    target = (0.30 if store == "sqlite" else 0.25) if workers >= 2 else 0.12
    print(
        f"RATIO registrations/s / ES256 verifies/s (1 core, per CPU second): {ratio:.3f}  "
        f"(target >= {target})"
    )
    print(
        f"load average (other processes share these cores): {load_before:.2f} before the "
        f"run, {load_after:.2f} after it, {os.getloadavg()[0]:.2f} now"
    )
    shutil.rmtree(workdir, ignore_errors=True)
    latency_ok = store != "sqlite" or workers < 2 or p99 <= 100.0
    ok = errors == 0 and lost == 0 and int(size_line) == count and ratio >= target
    return ok and latency_ok, rate


def _stored_bytes(data: Path) -> int:
    """Bytes the log occupies: its SQLite files, or its PostgreSQL relations."""
    from ironroot.log import open_store

    store = open_store(data, read_only=True)
    try:
        return int(store.storage_bytes())
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--skip-append", action="store_true", help="skip the 10^6 append costs")
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--workers", type=int, default=0, help="ironroot serve --workers N")
    args = parser.parse_args()
    baseline, baseline_cpu = es256_verifies_per_second()
    print(
        f"baseline: ES256 verifications/s on one core: {baseline:.0f} "
        f"(per CPU second: {baseline_cpu:.0f})"
    )
    kinds = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    ok = True
    rates = {}
    for kind in kinds:
        passed, rates[kind] = registration_bench(
            args.count, args.connections, baseline, kind, args.workers, baseline_cpu
        )
        ok = ok and passed
    if len(rates) == 2:
        relative = rates["postgresql"] / rates["sqlite"]
        print(f"RATIO PostgreSQL / SQLite registrations/s: {relative:.2f}")
    if not args.skip_append:
        from bench_append import append_costs

        for kind in kinds:
            append_costs(store_kind=kind)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
