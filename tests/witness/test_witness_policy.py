"""WitnessPolicy: k of n counts witnesses, not keys; what a policy refuses to be built from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from witness_testkit import entries, grown

from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import BadSignature, ConfigError, InsufficientCosignatures
from ironroot.log import Checkpoint, Log, Note, NoteSignature, NoteSigner, sign_checkpoint
from ironroot.transparency import init_data_dir, load_config
from ironroot.witness import CosignatureVerifier, Cosigner, WitnessPolicy, verify_cosignatures

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


def test_a_witness_s_line_repeated_counts_once(log: Log) -> None:
    note = Note.parse(_cosigned(log, W2))
    doubled = Note(note.body, (*note.signatures, note.signatures[-1])).encode()
    policy = WitnessPolicy((W1_ED.verifier(), W2.verifier()), 2)
    with pytest.raises(InsufficientCosignatures, match="1 of the trusted witnesses"):
        policy.check(doubled, log.note_verifiers, now=NOW)
    found = verify_cosignatures(Note.parse(doubled), (W2.verifier(),))
    assert [c.name for c in found] == ["w2.example"]
    bad = NoteSignature(W2.name, W2.verifier().key_id, bytes(72))
    with pytest.raises(BadSignature):  # every line of a known witness key must verify
        verify_cosignatures(Note(note.body, (*note.signatures, bad)), (W2.verifier(),))


class _Counting(CosignatureVerifier):
    """A cosignature verifier that counts the lines it checks (each is checked for real)."""

    def __init__(self, name: str, public_key: PublicKey) -> None:
        super().__init__(name, public_key)
        self.checked = 0

    def verify(self, body: bytes, signature: bytes) -> int:
        self.checked += 1
        return super().verify(body, signature)


@pytest.mark.parametrize("witness", [W2, W1_PQ], ids=["ed25519", "ml-dsa-44"])
def test_a_hundred_copies_of_one_witness_s_line_are_one_witness_checked_once(
    log: Log, witness: Cosigner
) -> None:
    """A note may carry 100 signature lines: one witness's cosignature copied to fill them
    (beside the log's lines) counts as one witness towards any quorum, and is verified once."""
    note = Note.parse(_cosigned(log, witness))
    filler = (note.signatures[-1],) * (100 - len(note.signatures))
    copies = Note(note.body, (*note.signatures, *filler)).encode()
    assert len(Note.parse(copies).signatures) == 100
    other = W2 if witness is W1_PQ else W1_ED
    policy = WitnessPolicy((witness.verifier(), other.verifier()), 2)
    with pytest.raises(InsufficientCosignatures) as caught:
        policy.check(copies, log.note_verifiers, now=NOW)
    assert caught.value.code == "insufficient-cosignatures"
    assert "cosigned by 1 of the trusted witnesses" in caught.value.detail
    trusted = witness.verifier()
    counting = _Counting(trusted.name, trusted.public_key)
    found = verify_cosignatures(Note.parse(copies), (counting,), now=NOW)
    assert [c.name for c in found] == [witness.name]
    assert counting.checked == 1
    assert WitnessPolicy((counting,), 1).check(copies, log.note_verifiers, now=NOW)
    assert counting.checked == 2


def test_a_quorum_larger_than_the_witnesses_named_is_refused() -> None:
    with pytest.raises(ConfigError, match="between 1 and 2"):
        WitnessPolicy((W1_ED.verifier(), W1_PQ.verifier(), W2.verifier()), 3)
    # the default quorum is every witness, not every key
    vkeys = [W1_ED.verifier().vkey, W1_PQ.verifier().vkey, W2.verifier().vkey]
    assert WitnessPolicy.from_vkeys(vkeys).quorum == 2


def test_a_service_configured_with_both_keys_of_one_witness_counts_it_once(
    tmp_path: Path,
) -> None:
    init_data_dir(tmp_path)
    base = (tmp_path / "ironroot.toml").read_text()
    listed = "".join(
        f"[[log.witnesses]]\nurl = 'https://w1.example'\nkey = '{c.verifier().vkey}'\n"
        for c in (W1_ED, W1_PQ)
    )
    (tmp_path / "ironroot.toml").write_text(base + listed)
    config = load_config(tmp_path)  # the default quorum: every witness named, here one
    assert config.witness_quorum == 1
    policy = config.witness_policy
    assert policy is not None
    assert policy.quorum == 1
    text = base.replace("[log]\n", "[log]\nwitness_quorum = 2\n", 1) + listed
    (tmp_path / "ironroot.toml").write_text(text)
    with pytest.raises(ConfigError, match=r"between 1 and 1 \(the witnesses named\)"):
        load_config(tmp_path)


def test_a_logs_own_ml_dsa_44_line_is_no_witness_cosignature() -> None:
    # The log's ML-DSA-44 checkpoint signature is a subtree/v1 line with timestamp 0: its vkey
    # parses as a cosigner's too. A witness never omits its timestamp (tlog-witness), so a
    # line without one is not counted, whoever's key it names.
    key = PrivateKey.generate(Algorithm.ML_DSA_44)
    signer = NoteSigner("log.example/log", key)
    note = sign_checkpoint(Checkpoint("log.example/log", 3, bytes(32)), [signer])
    as_witness = CosignatureVerifier.from_vkey(signer.verifier().vkey)
    assert verify_cosignatures(Note.parse(note), (as_witness,)) == ()
    with pytest.raises(InsufficientCosignatures, match="0 of the trusted witnesses"):
        WitnessPolicy((as_witness,), 1).check(note, [signer.verifier()], now=NOW)
