"""WitnessPolicy: k of n counts witnesses, not keys; what a policy refuses to be built from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from witness_testkit import entries, grown

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, InsufficientCosignatures
from ironroot.log import Log, Note
from ironroot.witness import Cosigner, WitnessPolicy

NOW = 1_780_000_000

# One witness with two keys (witness.toml: algorithms = ["Ed25519", "ML-DSA-44"]): both carry
# its name. Another witness with one key.
W1_ED = Cosigner("w1.example", PrivateKey.generate(Algorithm.ED25519))
W1_PQ = Cosigner("w1.example", PrivateKey.generate(Algorithm.ML_DSA_44))
W2 = Cosigner("w2.example", PrivateKey.generate(Algorithm.ED25519))


@pytest.fixture(scope="module")
def log() -> Iterator[Log]:
    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(3))
    yield log
    log.close()


def _cosigned(log: Log, *cosigners: Cosigner) -> bytes:
    note = Note.parse(log.checkpoint())
    lines = tuple(c.cosign(note.body, NOW) for c in cosigners)
    return Note(note.body, note.signatures + lines).encode()


def test_two_keys_of_one_witness_are_one_witness_of_the_quorum(log: Log) -> None:
    policy = WitnessPolicy((W1_ED.verifier(), W1_PQ.verifier(), W2.verifier()), 2)
    with pytest.raises(InsufficientCosignatures, match="1 of the trusted witnesses"):
        policy.check(_cosigned(log, W1_ED, W1_PQ), log.note_verifiers, now=NOW)
    cosigned = policy.check(_cosigned(log, W1_PQ, W2), log.note_verifiers, now=NOW)
    assert sorted(c.name for c in cosigned.cosignatures) == ["w1.example", "w2.example"]
    # either key of w1 counts for it; both together still count once
    both = policy.check(_cosigned(log, W1_ED, W1_PQ, W2), log.note_verifiers, now=NOW)
    assert len(both.cosignatures) == 3


def test_a_quorum_larger_than_the_witnesses_named_is_refused() -> None:
    with pytest.raises(ConfigError, match="between 1 and 2"):
        WitnessPolicy((W1_ED.verifier(), W1_PQ.verifier(), W2.verifier()), 3)
    # the default quorum is every witness, not every key
    vkeys = [W1_ED.verifier().vkey, W1_PQ.verifier().vkey, W2.verifier().vkey]
    assert WitnessPolicy.from_vkeys(vkeys).quorum == 2
