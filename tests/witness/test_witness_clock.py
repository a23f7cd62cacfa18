"""The witness's clock going backwards (NTP stepping it back, a VM restored, a wrong clock
corrected): a cosignature dated ``t`` says that as of ``t`` its tree is the largest the witness
has seen for that log (c2sp.org/tlog-cosignature), so no cosignature of an origin is dated
before the one the witness gave last for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from witness_testkit import ORIGIN, WITNESS, entries, grown

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import Log, Note, NoteSignature, NoteSigner
from ironroot.witness import (
    AddCheckpoint,
    Cosigner,
    MemoryWitnessStore,
    SqliteWitnessStore,
    Witness,
    WitnessedLog,
    WitnessStore,
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


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_a_clock_gone_back_never_dates_a_larger_tree_before_a_smaller_one(
    tmp_path: Path, log_key: PrivateKey, log: Log, where: str
) -> None:
    """Size 5 cosigned at NOW; the clock steps back an hour; size 11 was cosigned dated an
    hour before the cosignature that called 5 the largest tree seen."""
    store: WitnessStore = (
        MemoryWitnessStore() if where == "memory" else SqliteWitnessStore(tmp_path / "w.sqlite3")
    )
    clock = Clock(NOW)
    witness = _witness(log_key, PrivateKey.generate(Algorithm.ED25519), store, clock)
    try:
        first = witness.add_checkpoint(AddCheckpoint(0, (), log.checkpoint_at(5)).encode())
        assert _timestamp(witness, log, 5, first) == NOW
        clock.now = NOW - 3600
        proof = tuple(log.consistency_proof(5, 11))
        second = witness.add_checkpoint(AddCheckpoint(5, proof, log.checkpoint()).encode())
        assert _timestamp(witness, log, 11, second) >= NOW
        latest = witness.latest(ORIGIN)
        assert latest is not None
        assert latest.updated >= NOW
        # the same checkpoint again, the clock still behind: not dated back either
        again = witness.add_checkpoint(AddCheckpoint(11, (), log.checkpoint()).encode())
        assert _timestamp(witness, log, 11, again) >= NOW
        # once the clock is past the last cosignature, it is the clock again
        clock.now = NOW + 10
        later = witness.add_checkpoint(AddCheckpoint(11, (), log.checkpoint()).encode())
        assert _timestamp(witness, log, 11, later) == NOW + 10
    finally:
        witness.close()
