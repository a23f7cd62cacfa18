"""The two routes that carry a worker's traffic, and what crosses the sequencer's link for them.

``POST /entries`` and ``GET /entries/{id}`` are answered without Starlette's middleware stack
(``problem_app``'s hot routes): the answers, problems, limits, content negotiation and metrics
must be those of the full stack. Receipts cross the link for every receipt algorithm, and a
notice puts another worker's receipts in this worker's cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config
from starlette.routing import Route

from ironroot.cose import Problem, SignedStatement, create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import NotFound, StorageError, StoreUnavailable
from ironroot.http import configure_logging, problem_app
from ironroot.http._logging import ACCESS_LOG_ENV
from ironroot.transparency import ServiceThread, TransparencyService, _workers
from ironroot.transparency._workers import (
    _ANSWER,
    _KNOWN,
    SequencerLink,
    _decode_receipts,
    _encode_receipts,
    _frame,
)

STORE_INDEPENDENT = True  # the HTTP paths and the link codec; the store is not the subject

COSE = "application/cose"
PROBLEM_CBOR = "application/concise-problem-details+cbor"
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


@pytest.fixture
def service(tmp_path: Path, vendor: PrivateKey) -> Iterator[TransparencyService]:
    write_config(
        tmp_path / "data",
        issuers=[(VENDOR_ISS, vendor)],
        receipt_algorithms=("ES384", "ES256"),
        max_statement_bytes=4096,
    )
    with TransparencyService.open(tmp_path / "data") as service:
        yield service


@pytest.fixture
def client(service: TransparencyService) -> Iterator[httpx.Client]:
    with ServiceThread(service) as server, httpx.Client(base_url=server.url) as c:
        yield c


def _stmt(key: PrivateKey, n: int = 0) -> bytes:
    return create_statement(key, f'{{"n": {n}}}'.encode(), iss=VENDOR_ISS, sub=f"pkg:fw/{n}")


def _post(client: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return client.post("/entries", content=body, headers={"Content-Type": COSE, **headers})


def test_hot_routes_answer_and_are_counted_by_their_template(
    client: httpx.Client, vendor: PrivateKey
) -> None:
    r = _post(client, _stmt(vendor))
    assert r.status_code == 201, r.content
    assert r.headers["content-type"] == COSE
    location = r.headers["location"]
    got = client.get(location)
    assert got.status_code == 200
    assert got.content == r.content
    assert got.headers["location"] == location
    assert "immutable" in got.headers["cache-control"]
    head = client.head(location)
    assert head.status_code == 200
    assert head.content == b""
    metrics = client.get("/metrics").text
    for route, method, status in (
        ("/entries", "POST", "201"),
        ("/entries/{entry_id}", "GET", "200"),
        ("/entries/{entry_id}", "HEAD", "200"),
    ):
        wanted = f'method="{method}",route="{route}",status="{status}"'
        assert any(wanted in line and line.endswith(" 1.0") for line in metrics.splitlines()), (
            wanted
        )


def test_hot_routes_answer_problems_in_cbor_or_json_as_the_client_accepts(
    client: httpx.Client, vendor: PrivateKey
) -> None:
    wrong_type = client.post("/entries", content=_stmt(vendor), headers={"Content-Type": "x/y"})
    assert wrong_type.status_code == 415
    assert wrong_type.headers["content-type"] == PROBLEM_CBOR
    assert Problem.from_cbor(wrong_type.content).status == 415
    bad_id = client.get("/entries/NOT-HEX", headers={"Accept": "application/json"})
    assert bad_id.status_code == 400
    assert bad_id.headers["content-type"] == PROBLEM_JSON
    assert bad_id.json()["code"] == "invalid-locator"
    unknown = client.get("/entries/" + "ab" * 32)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM_CBOR
    assert Problem.from_cbor(unknown.content).title == "Not Found"
    bad_statement = _post(client, b"\xa0not a statement")
    assert bad_statement.status_code == 400
    assert bad_statement.headers["content-type"] == PROBLEM_CBOR


def test_hot_routes_keep_the_body_limit(client: httpx.Client) -> None:
    too_big = _post(client, b"\x00" * 5000)
    assert too_big.status_code == 413
    assert Problem.from_cbor(too_big.content).status == 413


def test_other_methods_on_hot_paths_take_the_full_stack(client: httpx.Client) -> None:
    put = client.put("/entries", content=b"")
    assert put.status_code == 405
    assert put.headers["allow"] == "POST"
    assert put.headers["content-type"] == PROBLEM_CBOR
    delete = client.delete("/entries/" + "ab" * 32)
    assert delete.status_code == 405
    assert delete.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(("method", "path"), [("TRACE", "/entries"), ("PATCH", "/checkpoint")])
def test_a_405_is_sorted_and_carries_the_security_headers(
    client: httpx.Client, method: str, path: str
) -> None:
    """A method the parser knows but the route does not take: Starlette's 405, answered as
    the protocol's own refusals are (never sniffed, framed or cached), its Allow sorted."""
    answer = client.request(method, path, headers={"Accept": PROBLEM_JSON})
    assert answer.status_code == 405
    assert answer.headers["allow"] == ("POST" if path == "/entries" else "GET, HEAD")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["status"] == 405


def test_a_hot_route_must_be_one_of_the_routes() -> None:
    async def endpoint(request: object) -> None:  # never called
        raise AssertionError

    with pytest.raises(ValueError, match="hot routes must be among the routes"):
        problem_app([Route("/a", endpoint)], hot=[Route("/b", endpoint)])


def test_receipts_cross_the_link_for_every_algorithm_and_a_cut_one_is_refused() -> None:
    receipts = (b"\xd2primary" * 40, b"\xd2second")
    packed = _encode_receipts(receipts)
    assert _decode_receipts(packed) == receipts
    assert _decode_receipts(memoryview(packed)) == receipts
    assert _decode_receipts(b"") == ()
    for cut in (packed[:2], packed[:-1]):
        with pytest.raises(StorageError):
            _decode_receipts(cut)


def test_a_notice_puts_another_workers_receipts_in_the_cache(
    service: TransparencyService, vendor: PrivateKey
) -> None:
    entry = SignedStatement.parse(_stmt(vendor, 7)).log_entry()
    entry_id = hashlib.sha256(entry).digest()
    other = hashlib.sha256(b"other").digest()
    with pytest.raises(NotFound):
        service.receipts(entry_id)
    ours, theirs = socket.socketpair()
    try:
        link = SequencerLink(service, ours)
        receipts = (b"receipt-es384", b"receipt-es256")
        notice = _frame(_ANSWER.pack(0, _KNOWN), entry_id, _encode_receipts(receipts))
        malformed = _frame(_ANSWER.pack(0, _KNOWN), other, b"\x00\x00\x00\x09cut")
        # both frames in one read, the second split across two reads
        link.data_received(notice + malformed[:5])
        link.data_received(malformed[5:])
        assert service.receipts(entry_id) == receipts
        with pytest.raises(NotFound):  # the malformed notice was dropped, the link kept
            service.receipts(other)
    finally:
        ours.close()
        theirs.close()


def test_the_link_fails_a_registration_the_sequencer_never_answers(
    service: TransparencyService, vendor: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sequencer that never answers: the registration fails with ``StoreUnavailable``
    (503 with Retry-After) once its bound passed, found by the link's sweep."""
    stops: list[int] = []
    monkeypatch.setattr(_workers.os, "kill", lambda pid, sig: stops.append(sig))
    ours, theirs = socket.socketpair()

    async def register() -> None:
        link = SequencerLink(service, ours)
        try:
            # a wait that makes the bound (DURABLE_TIMEOUT + wait + 5 s) already past
            await link.register(_stmt(vendor, 9), -_workers.DURABLE_TIMEOUT - 5.0)
        finally:
            if link._transport is not None:
                link._transport.close()
            await asyncio.sleep(0.05)  # connection_lost: the worker would stop

    try:
        with pytest.raises(StoreUnavailable):
            asyncio.run(asyncio.wait_for(register(), 10.0))
    finally:
        ours.close()
        theirs.close()
    assert stops == [signal.SIGTERM]


@pytest.mark.parametrize(
    ("level", "env", "explicit", "written"),
    [
        ("info", None, None, False),  # the default: a line per request costs more than some
        ("info", "1", None, True),
        ("warning", "on", None, True),
        ("debug", None, None, True),
        ("debug", None, False, False),
        ("info", "0", True, True),
    ],
)
def test_the_access_log_is_written_only_when_asked_for(
    monkeypatch: pytest.MonkeyPatch,
    level: str,
    env: str | None,
    explicit: bool | None,
    written: bool,
) -> None:
    if env is None:
        monkeypatch.delenv(ACCESS_LOG_ENV, raising=False)
    else:
        monkeypatch.setenv(ACCESS_LOG_ENV, env)
    access = logging.getLogger("ironroot.access")
    try:
        configure_logging(level, "text", access_log=explicit)
        assert access.isEnabledFor(logging.INFO) is written
    finally:
        logging.getLogger("ironroot").handlers.clear()
        logging.getLogger("ironroot").setLevel(logging.NOTSET)
        access.setLevel(logging.NOTSET)


def test_link_frames_are_taken_whole_across_reads_and_a_malformed_size_stops_the_reading() -> None:
    def frame(body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + body

    buffer = bytearray()
    stream = frame(b"first-body") + frame(b"second-body")
    assert _workers._take_frames(buffer, stream[:7], 4) == ([], False)
    assert _workers._take_frames(buffer, stream[7:20], 4) == ([b"first-body"], False)
    assert _workers._take_frames(buffer, stream[20:], 4) == ([b"second-body"], False)
    assert buffer == bytearray()
    too_small = (3).to_bytes(4, "big") + b"abc"
    assert _workers._take_frames(buffer, frame(b"kept") + too_small, 4) == ([b"kept"], True)
    too_large = (_workers._MAX_FRAME + 1).to_bytes(4, "big")
    assert _workers._take_frames(bytearray(), too_large, 4) == ([], True)


def test_notices_to_a_worker_that_does_not_read_stop_at_a_bound_and_resume_when_it_drains(
    service: TransparencyService, vendor: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A registers; worker B (paused: it reads nothing) would be sent a receipt notice
    per entry. The sequencer holds at most about ``_NOTICE_BACKLOG`` unsent for B, answers A
    in full all along, and sends B notices again once B has read what was queued."""
    backlog = 16 * 1024
    monkeypatch.setattr(_workers, "_NOTICE_BACKLOG", backlog)
    entries = [SignedStatement.parse(_stmt(vendor, n)).log_entry() for n in range(600)]
    a_seq, a_worker = socket.socketpair()
    b_seq, b_worker = socket.socketpair()
    for sock in (b_seq, b_worker):  # the kernel takes little of what B does not read
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    async def run() -> tuple[int, int, bool, bool]:
        loop = asyncio.get_running_loop()
        peers: list[_workers._SequencerLink] = []
        tasks = [
            loop.create_task(_workers._serve_link(service, a_seq, peers)),
            loop.create_task(_workers._serve_link(service, b_seq, peers)),
        ]
        while len(peers) < 2:
            await asyncio.sleep(0.01)
        b_link = peers[1]
        reader, writer = await asyncio.open_connection(sock=a_worker)
        answered = 0
        most_unsent = 0
        for start in range(0, len(entries), 50):
            for n, entry in enumerate(entries[start : start + 50], start=start + 1):
                writer.write(_frame(_workers._REQUEST.pack(n, 10.0), entry))
            await writer.drain()
            for _ in range(50):
                size = int.from_bytes(await reader.readexactly(4), "big")
                frame = await reader.readexactly(size)
                assert _ANSWER.unpack_from(frame)[1] == _workers._INTEGRATED
                answered += 1
            assert b_link._transport is not None
            most_unsent = max(most_unsent, b_link._transport.get_write_buffer_size())
        skipping = not b_link._takes_notices
        # B wakes up and reads everything queued for it; the next flush sees it drained
        b_worker.setblocking(False)
        for _ in range(200):
            with contextlib.suppress(BlockingIOError):
                while b_worker.recv(65536):
                    pass
            await asyncio.sleep(0.01)
            b_link._flush_own()
            if b_link._takes_notices:
                break
        resumed = b_link._takes_notices
        writer.close()
        await writer.wait_closed()
        assert b_link._transport is not None
        b_link._transport.abort()  # B never reads again: drop what is still queued for it
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return answered, most_unsent, skipping, resumed

    try:
        answered, most_unsent, skipping, resumed = asyncio.run(asyncio.wait_for(run(), 60.0))
    finally:
        for sock in (a_seq, a_worker, b_seq, b_worker):
            sock.close()
    assert answered == len(entries)
    assert skipping
    assert resumed
    # 600 notices of this size would be ~10 times the bound; held: the bound plus what one
    # answer-ready flush adds before the next check (a batch of notices at most)
    assert most_unsent < backlog + 50 * 2048
