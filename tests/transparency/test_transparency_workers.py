"""``ironroot serve --workers N``: worker processes check and verify, one sequencer writes.

Each test runs on SQLite and on PostgreSQL (conftest.py). The service runs as a real process
tree; the tests kill its members with signals and check that no acknowledged entry is lost.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

import http_calls
from ironroot._trust import system_trust
from ironroot.cose import (
    Problem,
    Receipt,
    SignedStatement,
    create_statement,
    decode_key_set,
    verify_receipt,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    ClockSkew,
    ConfigError,
    MalformedInput,
    NotFound,
    Overloaded,
    StorageError,
    UnknownIssuer,
)
from ironroot.log import (
    Checkpoint,
    Log,
    LogView,
    MemoryLogStore,
    Note,
    NoteSigner,
    StoreBatch,
    open_store,
)
from ironroot.transparency import TransparencyService
from ironroot.transparency._workers import (
    SequencerLink,
    _clock_frame,
    _decode_error,
    _encode_error,
    _serve_link,
    _stall_frame,
)
from ironroot_pg import raw_sql
from processes import process_running
from serving import start_server

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "PYTHONDONTWRITEBYTECODE": "1"}
for _name in [n for n in ENV if n.startswith("IRONROOT_") and n != "IRONROOT_VECTORS"]:
    del ENV[_name]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _workers(pid: int) -> list[int]:
    """The HTTP workers among a sequencer's children (not multiprocessing's tracker)."""
    out = []
    for child in _children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            out.append(child)
    return out


@dataclass
class Running:
    url: str
    data: Path
    process: subprocess.Popen[bytes]
    vendor: PrivateKey


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    with _serve(data, vendor) as served:
        yield served


@contextlib.contextmanager
def _serve(data: Path, vendor: PrivateKey) -> Iterator[Running]:
    """``ironroot serve --workers 2`` over ``data`` (stderr beside it), killed at the end."""
    tmp_path = data.parent

    def command(port: int) -> list[str]:
        argv = [sys.executable, "-m", "ironroot", "serve", "--data", str(data)]
        return [*argv, "--port", str(port), "--workers", "2", "--log-level", "info"]

    def ready(process: subprocess.Popen[bytes], ports: tuple[int, ...]) -> bool:
        return len(_workers(process.pid)) >= 2 and _healthy(f"http://127.0.0.1:{ports[0]}")

    started = start_server(command, ready, env=ENV, log=tmp_path / "stderr")
    process, url = started.process, f"http://127.0.0.1:{started.port}"
    try:
        yield Running(url, data, process, vendor)
    finally:
        workers = _workers(process.pid)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _healthy(url: str) -> bool:
    try:
        return http_calls.get(f"{url}/health", timeout=5, verify=system_trust()).status_code == 200
    except httpx.HTTPError:
        return False


def _statement(vendor: PrivateKey, n: int) -> bytes:
    return create_statement(vendor, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=f"pkg:fw/w@{n}")


def _register(url: str, statement: bytes) -> httpx.Response:
    return http_calls.post(
        f"{url}/entries",
        content=statement,
        headers={"content-type": "application/cose"},
        timeout=60,
        verify=system_trust(),
    )


def _tree_size(data: Path) -> int:
    store = open_store(data, read_only=True)
    try:
        note = store.checkpoint()
        assert note is not None
        return Checkpoint.parse(Note.parse(note).body).size
    finally:
        store.close()


def test_workers_register_verify_and_serve_reads(running: Running) -> None:
    statements = [_statement(running.vendor, n) for n in range(48)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda s: _register(running.url, s), statements))
    assert [a.status_code for a in answers] == [201] * len(statements)
    keys = decode_key_set(
        http_calls.get(f"{running.url}/.well-known/scitt-keys", verify=system_trust()).content
    )
    for statement, answer in zip(statements, answers, strict=True):
        verify_receipt(answer.content, SignedStatement.parse(statement).log_entry(), keys)
        # reads come from the workers, out of the store
        again = http_calls.get(f"{running.url}{answer.headers['location']}", verify=system_trust())
        assert again.status_code == 200
        verify_receipt(again.content, SignedStatement.parse(statement).log_entry(), keys)
    note = http_calls.get(f"{running.url}/checkpoint", verify=system_trust()).content
    assert Checkpoint.parse(Note.parse(note).body).size == len(statements)
    # idempotent: the same statement is the same entry
    repeat = _register(running.url, statements[0])
    assert repeat.status_code == 201
    assert repeat.headers["location"] == answers[0].headers["location"]
    # the workers check the policy: an unknown issuer's statement is refused with its code
    stranger = PrivateKey.generate(Algorithm.ES256)
    refused = _register(
        running.url, create_statement(stranger, b"{}", iss="https://other.example", sub="x")
    )
    assert refused.status_code == UnknownIssuer.http_status
    problem = Problem.from_cbor(refused.content)
    assert problem.title == UnknownIssuer.title
    assert problem.extra["code"] == UnknownIssuer.code
    garbage = _register(running.url, b"\x00not cose")
    assert garbage.status_code == MalformedInput.http_status
    assert Problem.from_cbor(garbage.content).extra["code"] == "malformed-statement"
    # SIGTERM: workers finish, the sequencer drains and closes; everything is stored
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=60) == 0
    assert _tree_size(running.data) == len(statements)
    # the start-up line says where, which log, and how many processes
    started = f"transparency service on {running.url}: data {running.data} (log in "
    err = (running.data.parent / "stderr").read_text()
    assert started in err
    assert "tree size 0), 2 workers and one sequencer" in err


def test_a_killed_worker_is_replaced_and_nothing_acknowledged_is_lost(running: Running) -> None:
    acknowledged: list[str] = []
    victim = _workers(running.process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    n = 0
    # registrations go on (the other worker, then the new one); a refused connection or a
    # reset is retried as a client would
    while time.monotonic() < deadline and (
        victim in _workers(running.process.pid) or len(_workers(running.process.pid)) < 2
    ):
        try:
            answer = _register(running.url, _statement(running.vendor, n))
        except httpx.HTTPError:
            continue
        n += 1
        if answer.status_code == 201:
            acknowledged.append(answer.headers["location"])
    workers = _workers(running.process.pid)
    assert victim not in workers
    assert len(workers) == 2
    for n2 in range(n, n + 8):
        answer = _register(running.url, _statement(running.vendor, n2))
        assert answer.status_code == 201
        acknowledged.append(answer.headers["location"])
    for location in acknowledged:
        assert http_calls.get(f"{running.url}{location}", verify=system_trust()).status_code == 200
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=60) == 0
    assert _tree_size(running.data) == len(set(acknowledged))


def test_a_killed_sequencer_takes_its_workers_down_and_keeps_what_it_acknowledged(
    running: Running,
) -> None:
    workers = _workers(running.process.pid)
    acknowledged = set()
    for n in range(12):
        answer = _register(running.url, _statement(running.vendor, n))
        assert answer.status_code == 201
        acknowledged.add(answer.headers["location"])
    running.process.kill()
    running.process.wait(timeout=30)
    _wait_until_gone(workers)
    assert _tree_size(running.data) >= len(acknowledged)


def _wait_until_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 30
    while any(process_running(pid) for pid in pids):
        assert time.monotonic() < deadline, "workers outlived their sequencer"
        time.sleep(0.1)


def test_a_worker_started_again_after_the_configuration_changed_does_not_apply_it(
    running: Running,
) -> None:
    """A worker started again (the one before was killed) reads ``ironroot.toml`` afresh: had
    the file changed since the service started (a policy being prepared for the next restart),
    it checked statements under another policy than its siblings, and one statement was
    registered or refused by whichever worker the connection landed on. It stays down instead,
    said once by the sequencer, and the workers that run go on with the service's policy."""
    config = running.data / "ironroot.toml"
    text = config.read_text()
    assert 'policy = ""' in text
    stderr = running.data.parent / "stderr"
    # both workers past their own reading of the configuration first: one still starting
    # (the fixture waits for one answer) would read the edited file and stay down too
    deadline = time.monotonic() + 60
    while not all(
        f"worker pid {pid}: its configuration is the service's" in stderr.read_text()
        for pid in _workers(running.process.pid)
    ):
        assert time.monotonic() < deadline, "the workers did not come up"
        time.sleep(0.1)
    config.write_text(text.replace('policy = ""', "policy = 'sub == \"pkg:none\"'"))
    victim = _workers(running.process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    said = "ironroot.toml or a file it names changed since the service started"
    deadline = time.monotonic() + 30
    while said not in stderr.read_text():
        assert time.monotonic() < deadline, "a worker started again with another configuration"
        time.sleep(0.1)
    assert victim not in _workers(running.process.pid)
    statuses = [
        _register(running.url, _statement(running.vendor, n)).status_code for n in range(16)
    ]
    assert statuses == [201] * 16
    assert stderr.read_text().count(said) == 1  # said once, not at every retry
    config.write_text(text)  # the file as the service read it: the worker is started again
    deadline = time.monotonic() + 30
    while len(_workers(running.process.pid)) < 2 or not _healthy(running.url):
        assert time.monotonic() < deadline, "the worker was not started again"
        time.sleep(0.2)


def test_workers_no_client_reached_stop_with_their_sequencer(running: Running) -> None:
    """A worker opens its link to the sequencer when it starts, not at its first
    registration: one that has served nothing still stops when the sequencer dies."""
    workers = _workers(running.process.pid)
    assert len(workers) == 2
    running.process.kill()
    running.process.wait(timeout=30)
    _wait_until_gone(workers)


def test_errors_cross_the_link_with_their_class_code_and_retry_after() -> None:
    busy = _decode_error(_encode_error(Overloaded("busy", retry_after=7)))
    assert type(busy) is Overloaded
    assert busy.detail == "busy"
    assert busy.retry_after == 7
    assert type(_decode_error(_encode_error(UnknownIssuer("who")))) is UnknownIssuer
    # a name that is not an Ironroot error, or bytes that are not JSON: a storage error
    assert type(_decode_error(b'{"error": "SystemExit", "detail": "x"}')) is StorageError
    assert type(_decode_error(b"\xff")) is StorageError


def test_a_follower_log_reads_what_the_writer_commits_and_never_writes() -> None:
    origin = "follower.example/log"
    store = MemoryLogStore()
    writer = Log(
        store,
        origin=origin,
        note_signers=[NoteSigner(origin, PrivateKey.generate(Algorithm.EDDSA))],
    )
    follower = LogView(store, origin=origin)
    with writer:
        assert not hasattr(follower, "submit")  # a view has no writer to hand entries to
        assert not hasattr(follower, "start")
        with pytest.raises(ConfigError):
            LogView(store, origin="another.example/log")
        where = writer.submit(b"entry").integrated.result(timeout=30)
        assert follower.tree_size == 0  # until a read asks for more
        assert follower.inclusion_proof(where.index, where.tree_size) == writer.inclusion_proof(
            where.index, where.tree_size
        )
        assert follower.tree_size == where.tree_size
        assert follower.checkpoint() == writer.checkpoint()
        assert follower.entry(where.index) == b"entry"
        with pytest.raises(NotFound):
            follower.entry(where.tree_size)


def test_a_follower_service_serves_reads_and_refuses_writes(tmp_path: Path) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    with TransparencyService.open(data) as service:
        ticket = service.submit(_statement(vendor, 1))
        where = ticket.integrated.result(timeout=30)
        receipts = service.receipts(ticket.entry_id)
        follower = TransparencyService.open_follower(
            data, service.receipt_keys, service.checkpoint_vkeys, service.known_receipt_keys()
        )
        try:
            assert isinstance(follower.log, LogView)
            assert not isinstance(follower.log, Log)
            assert follower.in_flight == 0
            with pytest.raises(StorageError):
                follower.writer  # noqa: B018 - the property is the check
            with pytest.raises(StorageError):
                follower.submit(_statement(vendor, 2))
            assert follower.status(ticket.entry_id) == where
            assert follower.receipts(ticket.entry_id) == receipts
            assert follower.log.checkpoint() == service.log.checkpoint()
        finally:
            follower.close()


def test_the_workers_ready_says_when_the_sequencer_refuses_for_its_clock(tmp_path: Path) -> None:
    """``/ready``'s ``clock`` check ran only in the process that sequences: under
    ``--workers`` every request is answered by a worker, which said ``ready`` while the
    sequencer signed nothing (its clock more than ``max_clock_skew`` behind the stored
    receipt time), so a load balancer kept routing registrations that only went pending. The
    sequencer now tells its workers, whose ``/ready`` fails with its refusal (503,
    ``Retry-After``)."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    ahead = datetime.now(UTC) + timedelta(seconds=1000)  # a predecessor's clock ran ahead
    with TransparencyService.open(data, clock=lambda: ahead) as seeded:
        seeded.submit(_statement(vendor, 0)).integrated.result(30)
    iat = int(ahead.timestamp())
    with _serve(data, vendor) as running:
        ready = http_calls.get(f"{running.url}/ready", verify=system_trust())
        assert ready.status_code == 200
        pending = _register(running.url, _statement(vendor, 1))
        assert pending.status_code == 303  # acknowledged, durable, not integrated
        deadline = time.monotonic() + 60
        answers: list[httpx.Response] = []
        while len(answers) < 20:  # every worker: 20 fresh connections in a row
            assert time.monotonic() < deadline, [a.json() for a in answers[-1:]]
            ready = http_calls.get(f"{running.url}/ready", verify=system_trust())
            answers = [*answers, ready] if ready.status_code == 503 else []
            time.sleep(0.05)
        for ready in answers:
            assert int(ready.headers["retry-after"]) >= 1
            body = ready.json()
            assert body["status"] == "not ready"
            assert body["checks"]["store"] == "ok"
            assert body["checks"]["clock"] == "clock-skew: Service Unavailable"
        # why, in detail, is in the log (/ready answers anyone)
        logged = (data.parent / "stderr").read_text()
        assert (
            f"readiness check clock fails: clock-skew: the latest receipt time of the log "
            f"(iat {iat}) is "
        ) in logged
        again = http_calls.get(f"{running.url}{pending.headers['location']}", verify=system_trust())
        assert again.status_code == 302  # still pending: reads are served meanwhile


def test_a_worker_takes_the_clock_notices_of_its_sequencer(tmp_path: Path) -> None:
    """A worker keeps the sequencer's last clock notice: a refusal, then signing again."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    with TransparencyService.open(data) as sequencer:
        keys, vkeys = sequencer.receipt_keys, sequencer.checkpoint_vkeys
    follower = TransparencyService.open_follower(data, keys, vkeys, {})
    left, right = socket.socketpair()
    try:
        link = SequencerLink(follower, left)
        follower.sequencer_clock = lambda: link.clock_refusal
        refusal = ClockSkew("the latest receipt time of the log (iat 9) is …", retry_after=7)
        link.data_received(_clock_frame(refusal))
        told = follower.clock_refusal
        assert type(told) is ClockSkew
        assert (told.detail, told.code, told.retry_after) == (refusal.detail, "clock-skew", 7)
        link.data_received(_clock_frame(None))
        assert follower.clock_refusal is None
    finally:
        follower.close()
        left.close()
        right.close()


def test_a_worker_takes_the_integration_notices_of_its_sequencer(tmp_path: Path) -> None:
    """Under ``--workers`` every ``/ready`` is a worker's, which knew nothing of a sequencer
    that integrates nothing (its store refusing the pending page, a signer down): it said
    ``ready`` while every registration only went pending. The sequencer now tells its
    workers, as it does of its clock, and a worker's ``integration`` check fails with it."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    with TransparencyService.open(data) as sequencer:
        keys, vkeys = sequencer.receipt_keys, sequencer.checkpoint_vkeys
    follower = TransparencyService.open_follower(data, keys, vkeys, {})
    left, right = socket.socketpair()
    try:
        link = SequencerLink(follower, left)
        follower.sequencer_integration = lambda: link.integration_stalled
        assert follower.integration_stalled is None
        stalled = StorageError(
            "the log integrates nothing: signer down; registered entries stay pending "
            "(durable) while the sequencer retries",
            code="integration-stalled",
        )
        link.data_received(_stall_frame(stalled))
        told = follower.integration_stalled
        assert type(told) is StorageError
        assert (told.detail, told.code) == (stalled.detail, "integration-stalled")
        link.data_received(_stall_frame(None))
        assert follower.integration_stalled is None
    finally:
        follower.close()
        left.close()
        right.close()


def test_a_worker_linked_while_the_sequencer_integrates_nothing_is_told_at_once(
    tmp_path: Path, store_kind: str
) -> None:
    """The sequencer's end of a new link says why it integrates nothing before anything
    else (as it does of its clock): a worker started meanwhile is not ready from the start."""
    if store_kind != "sqlite":
        pytest.skip("SQLite only: a PostgreSQL bytea column holds bytes whatever is stored")
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    with TransparencyService.open(data) as seeded:
        entry = seeded.check(_statement(vendor, 0))
        keys, vkeys = seeded.receipt_keys, seeded.checkpoint_vkeys
    store = open_store(data)
    try:
        store.write(StoreBatch(first_index=0, pending=[(hashlib.sha256(entry).digest(), entry)]))
    finally:
        store.close()
    raw_sql(data, "UPDATE pending SET entry = 'damaged'")  # a page no read gets through
    follower = TransparencyService.open_follower(data, keys, vkeys, {})
    left, right = socket.socketpair()
    unused = socket.socket()
    try:
        with TransparencyService.open(data) as sequencer:
            deadline = time.monotonic() + 5
            while sequencer.integration_stalled is None:
                assert time.monotonic() < deadline
                time.sleep(0.02)

            async def first_notice() -> bytes:
                task = asyncio.create_task(_serve_link(sequencer, left, []))
                right.setblocking(False)
                received = await asyncio.wait_for(
                    asyncio.get_running_loop().sock_recv(right, 65536), 5
                )
                right.close()
                await asyncio.wait_for(task, 5)
                return received

            received = asyncio.run(first_notice())
        link = SequencerLink(follower, unused)
        follower.sequencer_integration = lambda: link.integration_stalled
        link.data_received(received)
        told = follower.integration_stalled
        assert told is not None
        assert told.code == "integration-stalled"
        assert told.detail == (
            "the log integrates nothing: the log database's pending row 1 holds a str where bytes "
            "belong: it "
            "is damaged; registered entries stay pending (durable) while the sequencer retries"
        )
    finally:
        follower.close()
        left.close()
        right.close()
        unused.close()


def test_after_kill_9_a_sequencer_whose_clock_is_behind_signs_no_earlier_receipt_time(
    tmp_path: Path,
) -> None:
    """``kill -9`` of the serving process tree while registrations are in flight, then a
    sequencer with its clock 100 s behind opens the log: the floor it reads back from the
    store is at least every receipt time a client was handed before the kill (a receipt is
    handed out only once its batch is committed), so its receipts never go back; 1000 s
    behind, it signs nothing."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    handed: list[int] = []
    with _serve(data, vendor) as running, concurrent.futures.ThreadPoolExecutor(8) as pool:
        workers = _workers(running.process.pid)

        def register(n: int) -> None:
            with contextlib.suppress(httpx.HTTPError):
                answer = _register(running.url, _statement(vendor, n))
                if answer.status_code == 201:
                    iat = Receipt.parse(answer.content).iat
                    assert iat is not None
                    handed.append(iat)

        futures = [pool.submit(register, n) for n in range(64)]
        deadline = time.monotonic() + 60
        while len(handed) < 8:
            assert time.monotonic() < deadline, "no receipts"
            time.sleep(0.01)
        os.kill(running.process.pid, signal.SIGKILL)  # mid-flight: more are on their way
        running.process.wait(timeout=30)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        concurrent.futures.wait(futures, timeout=120)
    latest = max(handed)
    behind = datetime.fromtimestamp(latest, UTC) - timedelta(seconds=100)
    with TransparencyService.open(data, clock=lambda: behind) as service:
        ticket = service.submit(_statement(vendor, 1000))
        ticket.integrated.result(60)
        receipts = service.receipts(ticket.entry_id)
        assert receipts is not None
        iat = Receipt.parse(receipts[0]).iat
        assert iat is not None
        assert iat >= latest
    far = datetime.fromtimestamp(latest, UTC) - timedelta(seconds=1000)
    with TransparencyService.open(data, clock=lambda: far) as service:
        ticket = service.submit(_statement(vendor, 1001))
        ticket.durable.result(30)
        deadline = time.monotonic() + 60
        while service.clock_refusal is None:
            assert time.monotonic() < deadline, "signed 1000 s behind"
            time.sleep(0.02)
        assert type(service.clock_refusal) is ClockSkew
        assert service.status(ticket.entry_id) is None
