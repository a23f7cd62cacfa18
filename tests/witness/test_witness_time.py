"""What the service publishes as witnessed: a cosignature dated in the future does not count
towards a quorum; a kept witnessed checkpoint is served again only if it is the log's tree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from witness_testkit import ORIGIN, WITNESS, entries, grown

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import InsufficientCosignatures
from ironroot.log import Log, Note
from ironroot.transparency import CheckpointWitnessing, WitnessEndpoint
from ironroot.witness import (
    Cosigner,
    MemoryWitnessStore,
    Witness,
    WitnessedLog,
    WitnessPolicy,
    WitnessThread,
)

pytestmark = pytest.mark.integration

NOW = 1_780_000_000
FUTURE = NOW + 365 * 24 * 3600  # a year ahead: far past any clock skew


@pytest.fixture
def log() -> Iterator[Log]:
    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(3))
    yield log
    log.close()


def _witness(log: Log, name: str, clock: int) -> Witness:
    return Witness(
        name,
        [Cosigner(name, PrivateKey.generate(Algorithm.ED25519))],
        [WitnessedLog(ORIGIN, log.note_verifiers)],
        MemoryWitnessStore(),
        clock=lambda: clock,
    )


def test_the_service_does_not_count_a_cosignature_dated_in_the_future(
    log: Log, tmp_path: Path
) -> None:
    honest = _witness(log, WITNESS, NOW)
    ahead = _witness(log, "witness.example/ahead", FUTURE)
    with WitnessThread(honest) as one, WitnessThread(ahead) as two:
        endpoints = [
            WitnessEndpoint(one.url, honest.verifiers[0]),
            WitnessEndpoint(two.url, ahead.verifiers[0]),
        ]
        witnessing = CheckpointWitnessing(log, endpoints, 2, clock=lambda: NOW)
        try:
            assert not witnessing.witness_once()  # both cosigned; one of them in a year
            assert witnessing.published() is None
            assert ahead.latest(ORIGIN) is not None
        finally:
            witnessing.close()
        # the service's clock reaches the witness's: now it counts
        later = CheckpointWitnessing(log, endpoints, 2, data_dir=tmp_path, clock=lambda: FUTURE)
        try:
            assert later.witness_once()
            assert later.published() is not None
        finally:
            later.close()
    # the kept witnessed checkpoint, loaded by a service whose clock is behind: not served
    restarted = CheckpointWitnessing(log, endpoints, 2, data_dir=tmp_path, clock=lambda: NOW)
    try:
        assert restarted.published() is None
    finally:
        restarted.close()


def test_the_refusal_names_the_witnesses_dated_in_the_future(log: Log) -> None:
    ahead = Cosigner("witness.example/ahead", PrivateKey.generate(Algorithm.ED25519))
    note = Note.parse(log.checkpoint())
    cosigned = Note(note.body, (*note.signatures, ahead.cosign(note.body, FUTURE))).encode()
    policy = WitnessPolicy((ahead.verifier(),), 1)
    with pytest.raises(InsufficientCosignatures, match=r"not counted: witness\.example/ahead"):
        policy.check(cosigned, log.note_verifiers, now=NOW)
    assert policy.check(cosigned, log.note_verifiers, now=FUTURE).cosignatures


def test_a_kept_witnessed_checkpoint_of_another_tree_is_not_served(tmp_path: Path) -> None:
    """The data directory's log restored or rebuilt beside the witnessed-checkpoint file of
    its earlier tree (same origin, same key, other entries at the same size)."""
    key = PrivateKey.generate(Algorithm.ED25519)
    earlier, rebuilt = grown(key, entries(3)), grown(key, entries(3, tag=b"rebuilt"))
    honest = _witness(earlier, WITNESS, NOW)
    try:
        with WitnessThread(honest) as thread:
            endpoints = [WitnessEndpoint(thread.url, honest.verifiers[0])]
            first = CheckpointWitnessing(
                earlier, endpoints, 1, data_dir=tmp_path, clock=lambda: NOW
            )
            try:
                assert first.witness_once()
            finally:
                first.close()
        kept = (tmp_path / "witnessed-checkpoint").read_bytes()
        for log, served in ((rebuilt, None), (earlier, kept)):
            loaded = CheckpointWitnessing(log, endpoints, 1, data_dir=tmp_path, clock=lambda: NOW)
            try:
                assert loaded.published() == served
            finally:
                loaded.close()
    finally:
        earlier.close()
        rebuilt.close()
