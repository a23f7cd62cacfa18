"""The witness attacked over real HTTP: hostile add-checkpoint bodies, hostile paths, replays,
racing requests and clients that go away. Every refusal has the status the spec names and
the Ironroot code; the state never goes back, and a replay never grows what is kept."""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from witness_testkit import ORIGIN, WITNESS, entries, grown, make_witness, sqlite_witness

import http_calls
from ironroot.cose import Problem
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, InconsistentCheckpoint
from ironroot.log import Log, NoteSignature, NoteSigner
from ironroot.witness import (
    AddCheckpoint,
    Cosigner,
    MemoryWitnessStore,
    SqliteWitnessStore,
    Witness,
    WitnessedLog,
    WitnessStore,
    WitnessThread,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture(scope="module")
def log(log_key: PrivateKey) -> Iterator[Log]:
    log = grown(log_key, entries(5), entries(6, 5))
    yield log
    log.close()


@pytest.fixture
def witness(tmp_path: Path, log_key: PrivateKey) -> Iterator[Witness]:
    with sqlite_witness(
        tmp_path / "witness.sqlite3", log_key, PrivateKey.generate(Algorithm.ED25519)
    ) as witness:
        yield witness


@pytest.fixture
def served(witness: Witness, log: Log) -> Iterator[str]:
    """The witness over HTTP, having cosigned the log at size 5."""
    with WitnessThread(witness) as server:
        assert _post(server.url, AddCheckpoint(0, (), log.checkpoint_at(5)).encode()).is_success
        yield server.url


def _post(url: str, body: bytes) -> httpx.Response:
    return http_calls.post(f"{url}/add-checkpoint", content=body, timeout=10)


def _problem(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/concise-problem-details+cbor"
    return response.status_code, str(Problem.from_cbor(response.content).extra["code"])


def _size(witness: Witness) -> int:
    latest = witness.latest(ORIGIN)
    assert latest is not None
    return latest.size


def _refusals(log: Log) -> dict[str, tuple[bytes, int, str]]:
    """Hostile bodies against a witness at size 5: (body, status, code)."""
    proof = tuple(log.consistency_proof(5, 11))
    note = log.checkpoint()
    origin_line = ORIGIN.encode() + b"\n"
    return {
        "proof one hash short": (
            AddCheckpoint(5, proof[:-1], note).encode(),
            422,
            "inconsistent-checkpoint",
        ),
        "proof one hash long": (
            AddCheckpoint(5, (*proof, bytes(32)), note).encode(),
            422,
            "inconsistent-checkpoint",
        ),
        "a 31-byte hash": (
            b"old 5\n" + base64.b64encode(bytes(31)) + b"\n\n" + note,
            400,
            "malformed",
        ),
        "old with a sign": (b"old +5\n\n" + note, 400, "malformed"),
        "old in CRLF": (b"old 5\r\n\r\n" + note, 400, "malformed"),
        "old 2^64": (b"old 18446744073709551616\n\n" + note, 400, "limit-exceeded"),
        "old past the checkpoint": (AddCheckpoint(12, (), note).encode(), 400, "malformed"),
        "a NUL in the note": (b"old 5\n\n" + note.replace(b"\n", b"\0\n", 1), 400, "malformed"),
        "a note not UTF-8": (b"old 5\n\n\xff" + note, 400, "malformed"),
        "a checkpoint size of 2^64": (
            b"old 0\n\n" + origin_line + b"18446744073709551616\n" + b"A" * 44 + b"\n\n",
            400,
            "malformed",
        ),
        "64 proof lines": (
            b"old 5\n" + (base64.b64encode(bytes(32)) + b"\n") * 64 + b"\n" + note,
            400,
            "limit-exceeded",
        ),
        "an unknown origin": (
            b"old 0\n\nother.example/log\n1\n" + base64.b64encode(bytes(32)) + b"\n\n"
            b"\xe2\x80\x94 other.example/log AAAAAAAAAAAA\n",
            404,
            "unknown-log",
        ),
        "an oversized note": (b"old 5\n\n" + note + b"x" * (256 * 1024), 413, "payload-too-large"),
    }


def test_hostile_add_checkpoint_bodies_are_refused_and_change_nothing(
    served: str, witness: Witness, log: Log
) -> None:
    for name, (body, status, code) in _refusals(log).items():
        assert _problem(_post(served, body)) == (status, code), name
    assert _size(witness) == 5


def test_a_wrong_old_size_is_409_with_the_witness_s_size(
    served: str, witness: Witness, log: Log
) -> None:
    for old in (0, 3, 11):
        body = AddCheckpoint(
            old, tuple(log.consistency_proof(old, 11)) if old else (), log.checkpoint()
        )
        response = _post(served, body.encode())
        assert response.status_code == 409
        assert response.headers["content-type"] == "text/x.tlog.size"
        assert response.content == b"5\n"
    assert _size(witness) == 5


def test_a_replayed_refusal_is_kept_once(
    served: str, witness: Witness, log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone holding a checkpoint the log published can send it with a garbled proof: what
    the witness keeps must not grow with every copy or variant of that request, nor what it
    logs at WARNING (the first refusal is a warning, its replays are INFO)."""
    proof = log.consistency_proof(5, 11)
    with caplog.at_level(logging.INFO, logger="ironroot.witness"):
        for n in range(4):
            garbled = [*proof[:-1], bytes([n]) * 32]
            response = _post(served, AddCheckpoint(5, tuple(garbled), log.checkpoint()).encode())
            assert _problem(response) == (422, "inconsistent-checkpoint")
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1
    assert "is not shown consistent" in warned[0].getMessage()
    replays = [r for r in caplog.records if "replayed: evidence" in r.getMessage()]
    assert len(replays) == 3
    assert all(r.levelno == logging.INFO for r in replays)
    (kept,) = witness.evidence()
    assert kept.kind == "inconsistent"
    assert AddCheckpoint.parse(kept.data).proof[-1] == bytes(32)  # the first is kept
    assert _size(witness) == 5


def test_a_refusal_varied_by_other_keys_signature_lines_is_kept_once(
    served: str, witness: Witness, log: Log
) -> None:
    """Signature lines of unknown keys are ignored, so anyone can add one to a checkpoint the
    log published: each variant is the same refusal, kept once, with the log's lines only."""
    garbled = (bytes(32),) * len(log.consistency_proof(5, 11))
    for n in range(4):
        junk = NoteSignature("junk.example", bytes([n]) * 4, bytes(64))
        response = _post(
            served, AddCheckpoint(5, garbled, log.checkpoint() + junk.encode().encode()).encode()
        )
        assert _problem(response) == (422, "inconsistent-checkpoint")
    (kept,) = witness.evidence()
    assert kept.second == log.checkpoint()
    assert AddCheckpoint.parse(kept.data).checkpoint == log.checkpoint()
    assert _size(witness) == 5


def test_a_refusal_between_cosignings_of_one_checkpoint_is_kept_once(
    served: str, witness: Witness, log: Log
) -> None:
    """Anyone can have the witness cosign its latest checkpoint again, and each cosignature is
    dated anew (an ML-DSA-44 one differs even within a second): the note the witness serves
    changes, the checkpoint it cosigned does not. A refusal sent after each of them is the
    same refusal, kept once; keyed by the served note, a client alternating the two grew the
    evidence without limit."""
    again = AddCheckpoint(5, (), log.checkpoint_at(5)).encode()
    garbled = AddCheckpoint(5, (bytes(32),) * 4, log.checkpoint()).encode()
    served_notes = set()
    for _ in range(3):
        assert _post(served, again).status_code == 200
        latest = witness.latest(ORIGIN)
        assert latest is not None
        served_notes.add(latest.note)
        assert _problem(_post(served, garbled)) == (422, "inconsistent-checkpoint")
    assert len(served_notes) == 3  # the served note did change each time
    (kept,) = witness.evidence()
    assert kept.first == log.checkpoint_at(5)  # the log's signed note, as the log signed it
    assert _size(witness) == 5


def test_an_unknown_origin_is_not_echoed_whole(served: str, witness: Witness) -> None:
    """The origin of an unknown log is the client's text, up to the size of a note: the
    refusal (and its log line) names the start of it."""
    origin = b"o" * 60_000
    body = (
        b"old 0\n\n"
        + origin
        + b"\n1\n"
        + base64.b64encode(bytes(32))
        + b"\n\n\xe2\x80\x94 x AAAA\n"
    )
    response = _post(served, body)
    assert _problem(response) == (404, "unknown-log")
    assert len(Problem.from_cbor(response.content).detail) < 300
    assert _size(witness) == 5


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_each_store_keeps_evidence_once_per_kind_and_pair_of_notes(
    tmp_path: Path, kind: str
) -> None:
    store: WitnessStore = (
        MemoryWitnessStore() if kind == "memory" else SqliteWitnessStore(tmp_path / "w.sqlite3")
    )
    try:
        first, added = store.add_evidence(ORIGIN, "inconsistent", "one", b"a", b"b", b"p1", 1)
        assert added
        again = store.add_evidence(ORIGIN, "inconsistent", "two", b"a", b"b", b"p2", 2)
        assert again == (first, False)
        fork, _ = store.add_evidence(ORIGIN, "fork", "one", b"a", b"b", b"f", 3)
        other, _ = store.add_evidence(ORIGIN, "inconsistent", "one", b"a", b"c", b"p3", 4)
        assert len({first, fork, other}) == 3
        assert [e.data for e in store.evidence()] == [b"p1", b"f", b"p3"]
    finally:
        store.close()


def test_racing_add_checkpoints_cosign_once_and_never_go_back(
    served: str, witness: Witness, log: Log
) -> None:
    forward = AddCheckpoint(5, tuple(log.consistency_proof(5, 11)), log.checkpoint()).encode()
    again = AddCheckpoint(5, (), log.checkpoint_at(5)).encode()
    barrier = threading.Barrier(8)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def submit(body: bytes) -> None:
        barrier.wait()
        answer = _post(served, body)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=submit, args=(b,)) for b in [forward] * 6 + [again] * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} <= {200, 409}
    assert sum(a.status_code == 200 for a in answers) >= 1
    assert all(a.content in (b"5\n", b"11\n") for a in answers if a.status_code == 409)
    assert _size(witness) == 11


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/add-checkpoint", 405),
        ("PUT", "/add-checkpoint", 405),
        ("POST", "/witness", 405),
        ("GET", "/..%2f..%2fetc/checkpoint", 404),
        ("GET", "/%00/checkpoint", 404),
        ("GET", "/" + "a" * 64 + "/checkpoint", 404),
        ("GET", "/" + hashlib.sha256(ORIGIN.encode()).hexdigest().upper() + "/checkpoint", 404),
        ("GET", "/" + "0" * 5000 + "/checkpoint", 404),
    ],
)
def test_hostile_methods_and_paths(served: str, method: str, path: str, status: int) -> None:
    response = httpx.request(method, served + path, content=b"old 0\n\n", timeout=10)
    assert _problem(response)[0] == status


def test_a_client_gone_mid_request_changes_nothing_and_the_witness_serves_on(
    served: str, witness: Witness, log: Log
) -> None:
    host, port = served.removeprefix("http://").split(":")
    body = AddCheckpoint(5, tuple(log.consistency_proof(5, 11)), log.checkpoint()).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body[:-10]
        )
    assert _size(witness) == 5
    response = _post(served, body)
    assert response.status_code == 200
    assert _size(witness) == 11


@pytest.mark.parametrize(
    "path",
    ["/" + hashlib.sha256(ORIGIN.encode()).hexdigest() + "/checkpoint", "/ready", "/metrics"],
    ids=["checkpoint", "ready", "metrics"],
)
def test_a_read_waiting_for_the_store_holds_up_no_other_client(
    served: str, witness: Witness, log: Log, tmp_path: Path, path: str
) -> None:
    """Another process holds the witness database's write lock (a CLI command, a second
    server): an add-checkpoint waits for it in a worker thread, holding the store, and a
    monitor's read of the store waits in turn. The server answers everyone else meanwhile."""
    held = sqlite3.connect(tmp_path / "witness.sqlite3", isolation_level=None)
    held.execute("BEGIN IMMEDIATE")
    forward = AddCheckpoint(5, tuple(log.consistency_proof(5, 11)), log.checkpoint()).encode()
    added: list[httpx.Response] = []
    adding = threading.Thread(target=lambda: added.append(_post(served, forward)))
    host, port = served.removeprefix("http://").split(":")
    try:
        adding.start()
        while True:  # until the add-checkpoint holds the store (a read of it then waits)
            reader = threading.Thread(target=witness.latest, args=(ORIGIN,))
            reader.start()
            reader.join(0.2)
            if reader.is_alive():
                break
        with socket.create_connection((host, int(port)), timeout=10) as waiting:
            waiting.sendall(f"GET {path} HTTP/1.1\r\nHost: w\r\n\r\n".encode())
            time.sleep(0.1)  # the read reaches the server before the other client
            health = httpx.get(f"{served}/health", timeout=10)
            assert health.status_code == 200
            held.rollback()
            assert waiting.recv(12) == b"HTTP/1.1 200"
        adding.join()
        assert added[0].status_code == 200
    finally:
        if held.in_transaction:
            held.rollback()
        held.close()
        adding.join()
    assert _size(witness) == 11


def test_a_log_key_with_the_name_and_key_id_of_a_witness_key_is_refused(
    tmp_path: Path,
) -> None:
    """An ML-DSA-44 log signature and an ML-DSA-44 cosignature share the key id formula: a
    log configured with the witness's own (name, key) signs lines the witness's cosignature
    would repeat. The witness kept a note with the line twice, which it could not read back
    (StorageError on every later request for that log); the configuration is refused."""
    key = PrivateKey.generate(Algorithm.ML_DSA_44)
    log = WitnessedLog(ORIGIN, (NoteSigner(WITNESS, key).verifier(),))
    store = SqliteWitnessStore(tmp_path / "witness.sqlite3")
    try:
        with pytest.raises(ConfigError, match="name and key id of one of this witness's"):
            Witness(WITNESS, [Cosigner(WITNESS, key)], [log], store)
        ed = PrivateKey.generate(Algorithm.ED25519)
        with pytest.raises(ConfigError, match="cosigning keys must be distinct"):
            Witness(WITNESS, [Cosigner(WITNESS, ed), Cosigner(WITNESS, ed)], [], store)
    finally:
        store.close()


@pytest.mark.parametrize("long", ["origin", "name"])
def test_an_ml_dsa_44_witness_refuses_a_name_or_origin_subtree_v1_cannot_carry(
    log_key: PrivateKey, long: str
) -> None:
    """subtree/v1 spells the cosigner's name and the origin in at most 255 bytes: such a
    witness could never cosign, and would answer every request of that log 400 as if the
    request were malformed. Refused when the witness is set up."""
    origin = "log.example/" + "o" * 250 if long == "origin" else ORIGIN
    name = "witness.example/" + "n" * 250 if long == "name" else WITNESS
    cosigner = Cosigner(name, PrivateKey.generate(Algorithm.ML_DSA_44))
    log = WitnessedLog(origin, (NoteSigner(origin, log_key).verifier(),))
    with pytest.raises(ConfigError, match="255 bytes"):
        Witness(name, [cosigner], [log], MemoryWitnessStore())


def test_metrics_answer_when_the_evidence_cannot_be_read(
    tmp_path: Path, served: str, witness: Witness
) -> None:
    """An evidence row the store could not have written (a file damaged behind the witness's
    back): the gauge is unknown (NaN), and /metrics answers, not a 500."""
    with sqlite3.connect(tmp_path / "witness.sqlite3") as db:
        db.execute(
            "INSERT INTO evidence (origin, kind, detail, first, second, proof, at) "
            "VALUES (?, 'fork', 'damaged', 'text, not a note', x'00', x'00', 1)",
            (ORIGIN,),
        )
    db.close()
    response = http_calls.get(f"{served}/metrics", timeout=10)
    assert response.status_code == 200
    assert "ironroot_witness_evidence NaN" in response.text


def test_a_refusal_varied_by_the_order_of_the_log_s_lines_is_kept_once() -> None:
    """A log with two keys: anyone can swap its two signature lines, and each order used to
    be kept as evidence of its own (n! variants of one refusal for a log of n keys)."""
    keys = [PrivateKey.generate(Algorithm.ED25519) for _ in range(2)]
    signers = [NoteSigner(ORIGIN, key) for key in keys]
    log = Log.open_memory(origin=ORIGIN, note_signers=signers)
    log.start()
    store = MemoryWitnessStore()
    witness = Witness(
        WITNESS,
        [Cosigner(WITNESS, PrivateKey.generate(Algorithm.ED25519))],
        [WitnessedLog(ORIGIN, tuple(s.verifier() for s in signers))],
        store,
    )
    try:
        for ticket in log.submit_many(entries(5)):
            ticket.integrated.result(30)
        witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint()).encode())
        for ticket in log.submit_many(entries(6, 5)):
            ticket.integrated.result(30)
        body, _, sigs = log.checkpoint().partition(b"\n\n")
        lines = sigs.splitlines(keepends=True)
        assert len(lines) == 2
        garbled = (bytes(32),) * len(log.consistency_proof(5, 11))
        for order in (lines, lines[::-1]):
            swapped = body + b"\n\n" + b"".join(order)
            with pytest.raises(InconsistentCheckpoint):
                witness.add_checkpoint(AddCheckpoint(5, garbled, swapped).encode())
        (kept,) = store.evidence()
        assert kept.second == log.checkpoint()
    finally:
        log.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_garbled_proofs_for_every_checkpoint_the_log_publishes_keep_a_bounded_evidence(
    tmp_path: Path, log_key: PrivateKey, kind: str
) -> None:
    """Anyone can send each checkpoint the log publishes with a garbled proof, and each is
    another pair of notes: the witness kept one "inconsistent" row per checkpoint, without
    limit (a log that signs one a second gave anyone ~86,000 rows a day to add, each shown as
    a critical alert). A garbled proof proves nothing about the log (its lines are unsigned):
    at most MAX_INCONSISTENT_EVIDENCE are kept per log, the first ones; a fork is always kept."""
    from ironroot.witness._store import MAX_INCONSISTENT_EVIDENCE

    store: WitnessStore = (
        MemoryWitnessStore() if kind == "memory" else SqliteWitnessStore(tmp_path / "w.sqlite3")
    )
    try:
        for n in range(MAX_INCONSISTENT_EVIDENCE + 10):
            _, added = store.add_evidence(
                ORIGIN, "inconsistent", "garbled", b"a", b"b%d" % n, b"p", n
            )
            assert added == (n < MAX_INCONSISTENT_EVIDENCE)
        _, added = store.add_evidence("other.example/log", "inconsistent", "x", b"a", b"b", b"", 0)
        assert added  # per log
        _, added = store.add_evidence(ORIGIN, "fork", "a fork", b"a", b"b", b"{}", 0)
        assert added
        kept = store.evidence()
        assert len(kept) == MAX_INCONSISTENT_EVIDENCE + 2
        assert [e.second for e in kept[:2]] == [b"b0", b"b1"]  # the first ones
    finally:
        store.close()


def test_a_witness_keeps_a_bounded_evidence_of_garbled_proofs(
    log_key: PrivateKey, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: each of the log's checkpoints beyond the cap is refused (422) as ever, not
    kept, and logged at INFO only."""
    cap = 3
    monkeypatch.setattr("ironroot.witness._store.MAX_INCONSISTENT_EVIDENCE", cap)
    log = grown(log_key, *(entries(1, i) for i in range(cap + 4)))
    witness = make_witness(log_key)
    try:
        witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint_at(1)).encode())
        with caplog.at_level(logging.INFO, logger="ironroot.witness"):
            for size in range(2, cap + 5):
                body = AddCheckpoint(1, (bytes(32),), log.checkpoint_at(size)).encode()
                with pytest.raises(InconsistentCheckpoint):
                    witness.add_checkpoint(body)
        assert len(witness.evidence()) == cap
        warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warned) == cap
        assert _size(witness) == 1
    finally:
        log.close()
