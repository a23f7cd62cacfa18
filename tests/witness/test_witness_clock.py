"""The witness's clock going backwards (NTP stepping it back, a VM restored, a wrong clock
corrected): a cosignature dated ``t`` says that as of ``t`` its tree is the largest the witness
has seen for that log (c2sp.org/tlog-cosignature), so no cosignature of an origin is dated
before the one the witness gave last for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from witness_testkit import ORIGIN, WITNESS, entries, grown

import http_calls
from ironroot.cose import Problem
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ClockSkew, OldSizeMismatch
from ironroot.log import Log, Note, NoteSignature, NoteSigner
from ironroot.witness import (
    AddCheckpoint,
    Cosigner,
    MemoryWitnessStore,
    SqliteWitnessStore,
    StoredCheckpoint,
    Witness,
    WitnessedLog,
    WitnessStore,
    WitnessThread,
)

NOW = 1_780_000_000


@pytest.fixture(scope="module")
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture(scope="module")
def log(log_key: PrivateKey) -> Iterator[Log]:
    log = grown(log_key, entries(5), entries(6, 5))
    yield log
    log.close()


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _witness(log_key: PrivateKey, key: PrivateKey, store: WitnessStore, clock: Clock) -> Witness:
    log = WitnessedLog(ORIGIN, (NoteSigner(ORIGIN, log_key).verifier(),))
    return Witness(WITNESS, [Cosigner(WITNESS, key)], [log], store, clock=clock)


def _timestamp(witness: Witness, log: Log, size: int, lines: tuple[NoteSignature, ...]) -> int:
    body = Note.parse(log.checkpoint_at(size)).body
    (line,) = lines
    return witness.verifiers[0].verify(body, line.signature)


def _store(tmp_path: Path, where: str) -> WitnessStore:
    if where == "memory":
        return MemoryWitnessStore()
    return SqliteWitnessStore(tmp_path / "w.sqlite3")


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_a_clock_gone_back_never_dates_a_larger_tree_before_a_smaller_one(
    tmp_path: Path, log_key: PrivateKey, log: Log, where: str
) -> None:
    """Size 5 cosigned at NOW; the clock steps back a minute; size 11 was cosigned dated a
    minute before the cosignature that called 5 the largest tree seen."""
    clock = Clock(NOW)
    witness = _witness(
        log_key, PrivateKey.generate(Algorithm.ED25519), _store(tmp_path, where), clock
    )
    try:
        first = witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint_at(5)).encode())
        assert _timestamp(witness, log, 5, first) == NOW
        clock.now = NOW - 60
        proof = tuple(log.consistency_proof(5, 11))
        second = witness.add_checkpoint(AddCheckpoint(5, proof, log.checkpoint()).encode())
        assert _timestamp(witness, log, 11, second) == NOW
        latest = witness.latest(ORIGIN)
        assert latest is not None
        assert latest.updated == NOW
        # the same checkpoint again, the clock still behind: not dated back either
        again = witness.add_checkpoint(AddCheckpoint(11, (), log.checkpoint()).encode())
        assert _timestamp(witness, log, 11, again) == NOW
        # once the clock is past the last cosignature, it is the clock again
        clock.now = NOW + 10
        later = witness.add_checkpoint(AddCheckpoint(11, (), log.checkpoint()).encode())
        assert _timestamp(witness, log, 11, later) == NOW + 10
    finally:
        witness.close()


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_a_clock_far_behind_the_last_cosignature_cosigns_nothing(
    tmp_path: Path, log_key: PrivateKey, log: Log, where: str
) -> None:
    """An hour back: dating at the last cosignature would date it an hour ahead of the clock
    (past what verifiers take as skew); dating it now would date it back. 503, nothing kept."""
    clock = Clock(NOW)
    witness = _witness(
        log_key, PrivateKey.generate(Algorithm.ED25519), _store(tmp_path, where), clock
    )
    try:
        witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint_at(5)).encode())
        clock.now = NOW - 3600
        proof = tuple(log.consistency_proof(5, 11))
        with pytest.raises(ClockSkew, match="3600 s behind its last cosignature") as info:
            witness.add_checkpoint(AddCheckpoint(5, proof, log.checkpoint()).encode())
        assert info.value.http_status == 503
        latest = witness.latest(ORIGIN)
        assert latest is not None
        assert (latest.size, latest.updated) == (5, NOW)
        # a stale old size is still told the witness's size first
        with pytest.raises(OldSizeMismatch):
            witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint()).encode())
        clock.now = NOW + 1
        witness.add_checkpoint(AddCheckpoint(5, proof, log.checkpoint()).encode())
    finally:
        witness.close()


def test_the_witness_answers_503_with_retry_after(log_key: PrivateKey, log: Log) -> None:
    clock = Clock(NOW)
    store = MemoryWitnessStore()
    witness = _witness(log_key, PrivateKey.generate(Algorithm.ED25519), store, clock)
    with WitnessThread(witness) as server:
        body = AddCheckpoint(0, (), log.checkpoint_at(5)).encode()
        assert http_calls.post(f"{server.url}/add-checkpoint", content=body).status_code == 200
        clock.now = NOW - 3600
        body = AddCheckpoint(5, tuple(log.consistency_proof(5, 11)), log.checkpoint()).encode()
        response = http_calls.post(f"{server.url}/add-checkpoint", content=body)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert Problem.from_cbor(response.content).extra["code"] == "clock-skew"


class _Interleaved(MemoryWitnessStore):
    """Runs ``before`` once, just before the first advance: another request that got there
    between this one's check and its store."""

    def __init__(self) -> None:
        super().__init__()
        self.before: Callable[[], object] | None = None

    def advance(self, expected: StoredCheckpoint | None, new: StoredCheckpoint) -> None:
        before, self.before = self.before, None
        if before is not None:
            before()
        super().advance(expected, new)


def test_a_growth_racing_a_later_cosigning_of_the_same_checkpoint_is_not_dated_before_it(
    log_key: PrivateKey, log: Log
) -> None:
    """Request A (5 -> 11) is checked and dated at NOW + 1; request B cosigns 5 again, dated
    NOW + 2, and is stored first. A then stored 11 dated before the cosignature that called
    5 the largest tree: the compare-and-set looked at size and root, not at the date."""
    clock = Clock(NOW)
    store = _Interleaved()
    witness = _witness(log_key, PrivateKey.generate(Algorithm.ED25519), store, clock)
    witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint_at(5)).encode())
    clock.now = NOW + 1

    def other() -> None:
        clock.now = NOW + 2
        witness.add_checkpoint(AddCheckpoint(5, (), log.checkpoint_at(5)).encode())

    store.before = other
    proof = tuple(log.consistency_proof(5, 11))
    with pytest.raises(OldSizeMismatch) as info:
        witness.add_checkpoint(AddCheckpoint(5, proof, log.checkpoint()).encode())
    assert info.value.size == 5
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert (latest.size, latest.updated) == (5, NOW + 2)
    # the client's retry from the size the 409 names is dated after it
    lines = witness.add_checkpoint(AddCheckpoint(5, proof, log.checkpoint()).encode())
    assert _timestamp(witness, log, 11, lines) == NOW + 2
