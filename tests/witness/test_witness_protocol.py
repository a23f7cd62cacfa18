"""add-checkpoint over real HTTP: every answer the spec names, with its exact status and code,
and the client's typed error for it."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from witness_testkit import (
    ORIGIN,
    WITNESS,
    entries,
    grown,
    make_witness,
    memory_log,
    proof_for,
    sqlite_witness,
)

import http_calls
from ironroot.cose import Problem
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    ForkDetected,
    InconsistentCheckpoint,
    OldSizeMismatch,
    StorageError,
    UnknownLog,
    UntrustedCheckpoint,
)
from ironroot.log import Checkpoint, Log, Note, NoteSignature, NoteSigner, sign_checkpoint
from ironroot.merkle import EMPTY_ROOT
from ironroot.witness import (
    AddCheckpoint,
    ForkProof,
    Witness,
    WitnessClient,
    WitnessPolicy,
    WitnessThread,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture
def witness(log_key: PrivateKey) -> Witness:
    return make_witness(log_key)


@pytest.fixture
def served(witness: Witness) -> Iterator[str]:
    with WitnessThread(witness) as server:
        yield server.url


@pytest.fixture
def log(log_key: PrivateKey) -> Iterator[Log]:
    log = grown(log_key, entries(5), entries(6, 5))
    yield log
    log.close()


def _post(url: str, body: bytes) -> httpx.Response:
    return http_calls.post(f"{url}/add-checkpoint", content=body, timeout=10)


def _code(response: httpx.Response) -> str:
    problem = Problem.from_cbor(response.content)
    return str(problem.extra["code"])


def _cosign(url: str, witness: Witness, log: Log, size: int | None = None) -> None:
    note = log.checkpoint() if size is None else log.checkpoint_at(size)
    with WitnessClient(url, verifiers=witness.verifiers) as client:
        client.cosign(note, proof_for(log, size))


def test_cosigns_from_zero_then_with_a_proof_and_serves_the_cosigned_checkpoint(
    served: str, witness: Witness, log: Log
) -> None:
    with WitnessClient(served, verifiers=witness.verifiers) as client:
        assert client.latest(ORIGIN) is None
        first = client.add_checkpoint(log.checkpoint_at(5), 0)
        assert [line.name for line in first] == [WITNESS]
        second = client.add_checkpoint(log.checkpoint(), 5, log.consistency_proof(5, 11))
        assert second[0].signature[:8] != b"\0" * 8  # the timestamp is never omitted
        served_note = client.latest(ORIGIN)
    assert served_note is not None
    policy = WitnessPolicy(witness.verifiers, 1)
    cosigned = policy.check(served_note, log.note_verifiers, origin=ORIGIN)
    assert cosigned.checkpoint.size == 11
    assert cosigned.cosignatures[0].name == WITNESS
    # the served note keeps the log's signature and the witness's, nothing else
    assert [s.name for s in Note.parse(served_note).signatures] == [ORIGIN, WITNESS]


def test_the_answer_is_signature_lines_as_text(served: str, log: Log) -> None:
    response = _post(served, AddCheckpoint(0, (), log.checkpoint()).encode())
    assert response.status_code == 200
    text = response.content.decode()
    assert text.startswith(f"\u2014 {WITNESS} ")
    assert text.endswith("\n")


def test_unknown_origin_is_404(served: str) -> None:
    other_key = PrivateKey.generate(Algorithm.ED25519)
    other = memory_log(other_key, "other.example/log")
    body = AddCheckpoint(0, (), other.checkpoint()).encode()
    response = _post(served, body)
    assert response.status_code == 404
    assert _code(response) == "unknown-log"
    with WitnessClient(served) as client, pytest.raises(UnknownLog):
        client.add_checkpoint(other.checkpoint(), 0)


def test_a_signature_that_fails_is_403(served: str, log: Log) -> None:
    note = Note.parse(log.checkpoint())
    (sig,) = note.signatures
    bad = bytearray(sig.signature)
    bad[0] ^= 1
    tampered = Note(note.body, (type(sig)(sig.name, sig.key_id, bytes(bad)),)).encode()
    response = _post(served, AddCheckpoint(0, (), tampered).encode())
    assert response.status_code == 403
    assert _code(response) == "untrusted-checkpoint"
    with WitnessClient(served) as client, pytest.raises(UntrustedCheckpoint):
        client.add_checkpoint(tampered, 0)


def test_a_signature_line_that_does_not_parse_is_403_for_a_known_origin(
    served: str, log: Log
) -> None:
    """A non-canonical base64 signature (padding bits set) under a known origin's checkpoint:
    the signature failed (403), as litewitness answers too; under an unknown origin, 404."""
    text = log.checkpoint().decode()
    head, _, blob = text.rstrip("\n").rpartition(" ")
    assert blob.endswith("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = blob[-2]
    bent = blob[:-2] + alphabet[alphabet.index(last) ^ 1] + "="  # set a padding bit
    note = f"{head} {bent}\n".encode()
    response = _post(served, AddCheckpoint(0, (), note).encode())
    assert response.status_code == 403
    assert _code(response) == "untrusted-checkpoint"
    stranger = note.replace(ORIGIN.encode(), b"stranger.example/log", 1)
    assert _post(served, AddCheckpoint(0, (), stranger).encode()).status_code == 404


@pytest.mark.parametrize("repeated", ["an unknown key", "the log's key"])
def test_a_signature_line_repeated_is_cosigned_and_served_once(
    served: str, witness: Witness, log: Log, repeated: str
) -> None:
    """c2sp.org/signed-note: lines of unknown keys are ignored, repeated or not (the witness
    answered 403: the note parser refused any repeated name and key id); a line of the log's
    key repeated verifies each time and is served once."""
    note = Note.parse(log.checkpoint_at(5))
    (line,) = note.signatures
    other = NoteSigner("other.example/log", PrivateKey.generate(Algorithm.ED25519))
    stranger = NoteSignature(other.name, other.key_id, other.sign(note.body))
    lines = (stranger, line, stranger) if repeated == "an unknown key" else (line, line)
    response = _post(served, AddCheckpoint(0, (), Note(note.body, lines).encode()).encode())
    assert response.status_code == 200
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert [s.name for s in Note.parse(latest.note).signatures] == [ORIGIN, WITNESS]


def test_no_signature_from_the_logs_key_is_403(served: str, log: Log) -> None:
    impostor = PrivateKey.generate(Algorithm.ED25519)
    body = Note.parse(log.checkpoint()).body
    forged = sign_checkpoint(Checkpoint.parse(body), [NoteSigner(ORIGIN, impostor)])
    response = _post(served, AddCheckpoint(0, (), forged).encode())
    assert response.status_code == 403
    assert _code(response) == "untrusted-checkpoint"


def test_old_larger_than_the_checkpoint_is_400(served: str, log: Log) -> None:
    response = _post(served, AddCheckpoint(12, (), log.checkpoint()).encode())
    assert response.status_code == 400
    # to the client, the witness's refusal (exit 1), not its caller's input (MalformedInput)
    with WitnessClient(served) as client, pytest.raises(StorageError) as refused:
        client.add_checkpoint(log.checkpoint(), 12)
    assert type(refused.value) is StorageError
    assert refused.value.code == "remote-problem"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 1\n",
        b"new 1\n\nx\n",
        b"old 01\n\nx\n",
        b"old 1\nnot-base64!\n\nx\n",
        b"old 1\nAAAA\n\nx\n",  # not a 32-byte hash
        b"old 0\n\nnot a note\n",
        b"old 0\n" + b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n" * 64 + b"\nx\n",
    ],
)
def test_malformed_requests_are_400(served: str, body: bytes) -> None:
    response = _post(served, body)
    assert response.status_code == 400, response.content
    assert _code(response) in ("malformed", "limit-exceeded")


def test_an_oversized_request_is_413(served: str) -> None:
    response = _post(served, b"old 0\n\n" + b"x" * 300_000)
    assert response.status_code == 413


def test_a_stale_old_size_is_409_with_the_witness_s_size(
    served: str, witness: Witness, log: Log
) -> None:
    _cosign(served, witness, log, 5)
    response = _post(served, AddCheckpoint(0, (), log.checkpoint()).encode())
    assert response.status_code == 409
    assert response.headers["content-type"] == "text/x.tlog.size"
    assert response.content == b"5\n"
    with WitnessClient(served) as client, pytest.raises(OldSizeMismatch) as info:
        client.add_checkpoint(log.checkpoint(), 3, log.consistency_proof(3, 11))
    assert info.value.size == 5
    assert info.value.code == "old-size-mismatch"


def test_a_rollback_to_a_smaller_checkpoint_is_409(served: str, witness: Witness, log: Log) -> None:
    _cosign(served, witness, log)
    response = _post(served, AddCheckpoint(5, (), log.checkpoint_at(5)).encode())
    assert response.status_code == 409
    assert response.content == b"11\n"


def test_size_zero_with_another_root_is_422(served: str, log_key: PrivateKey) -> None:
    fake = sign_checkpoint(Checkpoint(ORIGIN, 0, b"\x01" * 32), [NoteSigner(ORIGIN, log_key)])
    response = _post(served, AddCheckpoint(0, (), fake).encode())
    assert response.status_code == 422
    assert _code(response) == "inconsistent-checkpoint"
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), [NoteSigner(ORIGIN, log_key)])
    assert _post(served, AddCheckpoint(0, (), empty).encode()).status_code == 200


def test_proof_lines_with_old_zero_are_422(served: str, log: Log) -> None:
    body = AddCheckpoint(0, (b"\0" * 32,), log.checkpoint()).encode()
    response = _post(served, body)
    assert response.status_code == 422
    assert _code(response) == "inconsistent-checkpoint"


def test_a_proof_that_does_not_verify_is_422_and_kept(
    served: str, witness: Witness, log: Log
) -> None:
    _cosign(served, witness, log, 5)
    proof = log.consistency_proof(5, 11)
    proof[-1] = bytes(32)
    with WitnessClient(served) as client, pytest.raises(InconsistentCheckpoint) as info:
        client.add_checkpoint(log.checkpoint(), 5, proof)
    assert type(info.value) is InconsistentCheckpoint
    (evidence,) = witness.evidence()
    assert evidence.kind == "inconsistent"
    assert AddCheckpoint.parse(evidence.data).proof == tuple(proof)
    # nothing was cosigned: the witness still has size 5
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.size == 5


def test_equal_size_with_a_proof_is_422(served: str, witness: Witness, log: Log) -> None:
    _cosign(served, witness, log)
    response = _post(served, AddCheckpoint(11, (b"\0" * 32,), log.checkpoint()).encode())
    assert response.status_code == 422


def test_the_same_checkpoint_again_is_cosigned_again(
    served: str, witness: Witness, log: Log
) -> None:
    _cosign(served, witness, log)
    response = _post(served, AddCheckpoint(11, (), log.checkpoint()).encode())
    assert response.status_code == 200


def test_a_json_client_gets_json_problems(served: str) -> None:
    response = http_calls.post(
        f"{served}/add-checkpoint",
        content=b"nonsense",
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert Problem.from_json(response.content).status == 400


def test_only_post(served: str) -> None:
    assert http_calls.get(f"{served}/add-checkpoint", timeout=10).status_code == 405


def test_the_monitoring_read_is_404_for_an_unknown_origin_hash(served: str) -> None:
    assert http_calls.get(f"{served}/{'0' * 64}/checkpoint", timeout=10).status_code == 404


def test_operational_endpoints(served: str) -> None:
    assert http_calls.get(f"{served}/health", timeout=10).status_code == 200
    assert http_calls.get(f"{served}/ready", timeout=10).status_code == 200
    metrics = http_calls.get(f"{served}/metrics", timeout=10).text
    assert "ironroot_witness_add_checkpoint" in metrics
    about = http_calls.get(f"{served}/witness", timeout=10).json()
    assert about["name"] == WITNESS
    assert about["logs"][0]["origin"] == ORIGIN


# --- forks --------------------------------------------------------------------------------


def test_a_forked_log_is_refused_and_the_two_checkpoints_kept_as_proof(
    served: str, witness: Witness, log_key: PrivateKey
) -> None:
    """Two logs with one origin and one key that diverge after 3 entries: the witness
    cosigned one at size 5; the other's checkpoint at 9 comes with an honest proof from 5 of
    its own tree. The witness refuses it (422 fork-detected) and keeps a proof of the fork
    that an auditor checks offline with only the log's public key."""
    honest = grown(log_key, entries(3), entries(2, 3))
    forked = grown(log_key, entries(3), entries(6, 3, tag=b"evil"))
    try:
        _cosign(served, witness, honest)
        with WitnessClient(served) as client, pytest.raises(ForkDetected) as info:
            client.cosign(forked.checkpoint(), proof_for(forked))
        assert info.value.http_status == 422
        (evidence,) = witness.evidence()
        assert evidence.kind == "fork"
        proof = ForkProof.parse(evidence.data)
        first, second = proof.verify(honest.note_verifiers)
        assert (first.size, second.size) == (5, 9)
        assert proof.detected_by == WITNESS
        latest = witness.latest(ORIGIN)
        assert latest is not None
        assert latest.size == 5
    finally:
        honest.close()
        forked.close()


def test_a_different_root_at_the_cosigned_size_is_a_fork(
    served: str, witness: Witness, log_key: PrivateKey
) -> None:
    honest = grown(log_key, entries(4))
    forked = grown(log_key, entries(4, tag=b"evil"))
    try:
        _cosign(served, witness, honest)
        cosigned = witness.latest(ORIGIN)
        assert cosigned is not None
        response = _post(served, AddCheckpoint(4, (), forked.checkpoint()).encode())
        # c2sp.org/tlog-witness: same size, another root is 409 Conflict; a problem, not a
        # text/x.tlog.size body (whose size, the client's own, would send it round again)
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/concise-problem-details+cbor"
        problem = Problem.from_cbor(response.content)
        assert problem.extra["code"] == "fork-detected"
        assert problem.extra["checkpoint"] == cosigned.note.decode()
        proof = ForkProof.parse(witness.evidence()[0].data)
        assert proof.proof == ()
        proof.verify(honest.note_verifiers)
        with WitnessClient(served) as client, pytest.raises(ForkDetected) as info:
            client.add_checkpoint(forked.checkpoint(), 4)
        assert "another root" in info.value.detail or "different root" in info.value.detail
        latest = witness.latest(ORIGIN)
        assert latest is not None
        assert (latest.size, latest.root) == (cosigned.size, cosigned.root)
    finally:
        honest.close()
        forked.close()


def test_a_different_root_at_the_cosigned_size_with_proof_lines_is_still_a_fork(
    served: str, witness: Witness, log_key: PrivateKey
) -> None:
    """Proof lines (which equal sizes never need) do not turn a fork into a bad proof: the
    two signed checkpoints are kept as the fork's proof, and the answer is the spec's 409."""
    honest = grown(log_key, entries(4))
    forked = grown(log_key, entries(4, tag=b"evil"))
    try:
        _cosign(served, witness, honest)
        response = _post(served, AddCheckpoint(4, (bytes(32),), forked.checkpoint()).encode())
        assert response.status_code == 409
        assert _code(response) == "fork-detected"
        (evidence,) = witness.evidence()
        assert evidence.kind == "fork"
        ForkProof.parse(evidence.data).verify(honest.note_verifiers)
    finally:
        honest.close()
        forked.close()


def test_a_fork_from_a_power_of_two_size_is_refused_but_not_proven(
    served: str, witness: Witness, log_key: PrivateKey
) -> None:
    """From a power-of-two size the RFC proof leaves out the old tree's hash, so the request
    cannot show which tree is the fork: refused (422), kept as unproven evidence."""
    honest = grown(log_key, entries(4))
    forked = grown(log_key, entries(2), entries(5, 2, tag=b"evil"))
    try:
        _cosign(served, witness, honest)
        with WitnessClient(served) as client, pytest.raises(InconsistentCheckpoint) as info:
            client.cosign(forked.checkpoint(), proof_for(forked))
        assert type(info.value) is InconsistentCheckpoint
        assert [e.kind for e in witness.evidence()] == ["inconsistent"]
    finally:
        honest.close()
        forked.close()


# --- state ----------------------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path, log_key: PrivateKey, log: Log) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    with sqlite_witness(tmp_path / "w.sqlite3", log_key, key) as witness:
        witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint_at(5)).encode())
    with sqlite_witness(tmp_path / "w.sqlite3", log_key, key) as witness:
        with pytest.raises(OldSizeMismatch) as info:
            witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint()).encode())
        assert info.value.size == 5
        proof = tuple(log.consistency_proof(5, 11))
        witness.add_checkpoint(AddCheckpoint(5, proof, log.checkpoint()).encode())
        latest = witness.latest(ORIGIN)
        assert latest is not None
        assert latest.size == 11


def test_concurrent_requests_from_one_old_size_cosign_once(log_key: PrivateKey, log: Log) -> None:
    """Many threads submit the same old size for different new sizes: exactly one advances
    the state; the others are refused 409, never rolling it back."""
    witness = make_witness(log_key)
    witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint_at(5)).encode())
    requests = [AddCheckpoint(5, tuple(log.consistency_proof(5, 11)), log.checkpoint()).encode()]
    requests *= 8
    results: list[str] = []
    lock = threading.Lock()

    def submit(body: bytes) -> None:
        try:
            witness.add_checkpoint(body)
            outcome = "ok"
        except OldSizeMismatch:
            outcome = "409"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=submit, args=(body,)) for body in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 1
    assert results.count("409") == 7


def test_an_ml_dsa_44_witness(log_key: PrivateKey, log: Log) -> None:
    witness = make_witness(log_key, algorithm=Algorithm.ML_DSA_44)
    (line,) = witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint()).encode())
    assert len(line.signature) == 8 + 2420
    latest = witness.latest(ORIGIN)
    assert latest is not None
    WitnessPolicy(witness.verifiers, 1).check(latest.note, log.note_verifiers)


def test_the_witness_ignores_unknown_signatures_on_the_checkpoint(served: str, log: Log) -> None:
    extra = PrivateKey.generate(Algorithm.ED25519)
    note = Note.parse(log.checkpoint())
    other = NoteSigner("someone.else/key", extra)
    line = type(note.signatures[0])(other.name, other.key_id, other.sign(note.body))
    both = Note(note.body, (line, *note.signatures)).encode()
    response = _post(served, AddCheckpoint(0, (), both).encode())
    assert response.status_code == 200
    assert base64.b64decode(response.content.split()[-1])[:4] != other.key_id


@pytest.mark.parametrize(
    "origin", ["../add-checkpoint?", "../witness#", "%2E%2E/witness", "..", "x/../../witness"]
)
def test_an_origin_never_reaches_another_path_of_the_witness(
    served: str, witness: Witness, log: Log, origin: str
) -> None:
    """The monitoring read names a log by the SHA-256 of its origin: no origin, however it is
    spelled, reaches ``/witness`` or ``/add-checkpoint``; the witness answers for that hash
    (it cosigned none: ``None``), while the log it does witness is still read."""
    _cosign(served, witness, log)
    transport = http_calls.RecordingTransport()
    with WitnessClient(served, transport=transport) as client:
        assert client.latest(origin) is None
        assert client.latest(ORIGIN) is not None
    digest = hashlib.sha256(origin.encode()).hexdigest()
    own = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert transport.paths == [f"/{digest}/checkpoint".encode(), f"/{own}/checkpoint".encode()]
