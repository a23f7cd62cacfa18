"""An auditor's trust can require witness cosignatures on every checkpoint of a bundle.

Witnesses here are real ``ironroot.witness.Witness`` instances (C2SP tlog-witness
add-checkpoint, Ed25519 and ML-DSA-44 cosignatures) cosigning the trusted log's checkpoint
the export fetched; the cosigned note is sealed into the bundle by the node's own RoT.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world

from ironroot.audit import AuditExport, AuditTrust, check_bundle, verify_bundle
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import BadSignature, ConfigError, InsufficientCosignatures, IronrootError
from ironroot.log import (
    Checkpoint,
    Note,
    NoteSignature,
    NoteVerifier,
    open_checkpoint,
    sign_checkpoint,
)
from ironroot.log.layout import load_checkpoint_signer
from ironroot.platform import PlatformWitnesses
from ironroot.witness import (
    AddCheckpoint,
    CosignatureVerifier,
    Cosigner,
    MemoryWitnessStore,
    Witness,
    WitnessedLog,
    WitnessPolicy,
)

NOTE = "text/plain"
CHECKPOINT = "transparency/0/checkpoint"


@dataclasses.dataclass
class Wit:
    name: str
    cosigners: tuple[Cosigner, ...]

    @property
    def verifiers(self) -> tuple[CosignatureVerifier, ...]:
        return tuple(c.verifier() for c in self.cosigners)


def _witness(name: str, *algorithms: Algorithm) -> Wit:
    return Wit(name, tuple(Cosigner(name, PrivateKey.generate(a)) for a in algorithms))


W1 = _witness("witness.example/w1", Algorithm.ED25519, Algorithm.ML_DSA_44)
W2 = _witness("witness.example/w2", Algorithm.ED25519)
W3 = _witness("witness.example/w3", Algorithm.ED25519)


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-witness"))


@pytest.fixture(scope="module")
def collected(aw: AuditWorld) -> AuditExport:
    return aw.collect()


def _cosign(aw: AuditWorld, note: bytes, *witnesses: Wit, ahead: int = 0) -> bytes:
    """``note`` with the cosignature lines each witness answers its add-checkpoint with, at
    the export (or ``ahead`` seconds after it)."""
    keys = aw.checkpoint_keys()
    origin = open_checkpoint(note, keys).origin
    lines: list[NoteSignature] = []
    for wit in witnesses:
        witness = Witness(
            wit.name,
            wit.cosigners,
            [WitnessedLog(origin, keys)],
            MemoryWitnessStore(),
            clock=lambda: int(EXPORTED.timestamp()) + ahead,
        )
        lines.extend(witness.add_checkpoint(AddCheckpoint(0, (), note).encode()))
    parsed = Note.parse(note)
    return Note(parsed.body, (*parsed.signatures, *lines)).encode()


def _bundle(aw: AuditWorld, collected: AuditExport, *witnesses: Wit) -> bytes:
    note = _cosign(aw, collected.members[CHECKPOINT][0], *witnesses)
    return collected.replace(members={CHECKPOINT: (note, NOTE)}).seal(aw.fleet.rot(NODE))


def _trust(aw: AuditWorld, *witnesses: Wit, quorum: int) -> AuditTrust:
    keys = tuple(v for w in witnesses for v in w.verifiers)
    return aw.trust(witnesses=keys, witness_quorum=quorum)


def _refused(data: bytes, trust: AuditTrust) -> IronrootError:
    report = check_bundle(data, trust)
    failed = {s.name: s.error for s in report.steps if s.status == "failed"}
    assert set(failed) == {"transparency"}, failed
    error = failed["transparency"]
    assert error is not None
    with pytest.raises(type(error)) as info:
        verify_bundle(data, trust)
    assert (info.value.code, info.value.check) == (error.code, error.check)
    return error


def test_a_checkpoint_cosigned_by_a_quorum_of_trusted_witnesses_holds(
    aw: AuditWorld, collected: AuditExport
) -> None:
    data = _bundle(aw, collected, W1, W2)
    report = verify_bundle(data, _trust(aw, W1, W2, W3, quorum=2))
    line = "cosigned by 2 trusted witness(es), 2 required: witness.example/w1, witness.example/w2"
    assert line in report.step("transparency").lines
    # without [witnesses] in the trust nothing is asked of the cosignatures
    assert verify_bundle(data, aw.trust()).ok


def test_too_few_distinct_trusted_witnesses_are_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    # one witness of two
    error = _refused(_bundle(aw, collected, W2), _trust(aw, W1, W2, quorum=2))
    assert (type(error), error.code, error.check) == (
        InsufficientCosignatures,
        "insufficient-cosignatures",
        "transparency",
    )
    # one witness cosigning with both its keys is still one witness
    error = _refused(_bundle(aw, collected, W1), _trust(aw, W1, W2, quorum=2))
    assert (type(error), error.code) == (InsufficientCosignatures, "insufficient-cosignatures")
    assert "1 distinct trusted witness(es) (witness.example/w1)" in error.detail
    # cosignatures of a witness the auditor does not trust do not count
    error = _refused(_bundle(aw, collected, W1, W3), _trust(aw, W1, W2, quorum=2))
    assert (type(error), error.code) == (InsufficientCosignatures, "insufficient-cosignatures")
    # no cosignature at all: the checkpoint as the log alone signed it
    error = _refused(_bundle(aw, collected), _trust(aw, W1, quorum=1))
    assert (type(error), error.code) == (InsufficientCosignatures, "insufficient-cosignatures")


def test_a_trusted_witness_line_that_does_not_verify_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    note = _cosign(aw, collected.members[CHECKPOINT][0], W1, W2)
    parsed = Note.parse(note)
    last = parsed.signatures[-1]
    assert last.name == W2.name
    bad = dataclasses.replace(last, signature=last.signature[:-1] + bytes([last.signature[-1] ^ 1]))
    forged = Note(parsed.body, (*parsed.signatures[:-1], bad)).encode()
    data = collected.replace(members={CHECKPOINT: (forged, NOTE)}).seal(aw.fleet.rot(NODE))
    error = _refused(data, _trust(aw, W1, W2, quorum=1))
    assert (type(error), error.check) == (BadSignature, "transparency")


def test_a_cosignature_dated_after_the_export_does_not_count(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """A witness whose cosignature is dated a year after the bundle was exported vouches
    for a time that had not come: it does not count towards the quorum."""
    note = _cosign(aw, collected.members[CHECKPOINT][0], W2, ahead=365 * 24 * 3600)
    data = collected.replace(members={CHECKPOINT: (note, NOTE)}).seal(aw.fleet.rot(NODE))
    error = _refused(data, _trust(aw, W2, quorum=1))
    assert (type(error), error.code, error.check) == (
        InsufficientCosignatures,
        "insufficient-cosignatures",
        "transparency",
    )


def test_cosignatures_over_another_checkpoint_do_not_count(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """W2's lines moved onto another checkpoint body fail as W2's (a known key's line that
    does not verify rejects the note)."""
    note = collected.members[CHECKPOINT][0]
    cosigned = Note.parse(_cosign(aw, note, W2))
    signer = load_checkpoint_signer(aw.world.root / "trusted-log", "transparency.example")
    real = open_checkpoint(note, [signer.verifier()])
    fork = Checkpoint(real.origin, real.size, hashlib.sha256(b"another view").digest())
    other = Note.parse(sign_checkpoint(fork, [signer]))
    moved = Note(other.body, (*other.signatures, cosigned.signatures[-1])).encode()
    data = collected.replace(members={CHECKPOINT: (moved, NOTE)}).seal(aw.fleet.rot(NODE))
    report = check_bundle(data, _trust(aw, W2, quorum=1))
    error = report.step("transparency").error
    assert error is not None
    assert isinstance(error, BadSignature)


def _trust_file(aw: AuditWorld, directory: Path, witnesses: str) -> Path:
    path = aw.write_trust(directory)
    path.write_text(path.read_text() + "\n[witnesses]\n" + witnesses)
    return path


def test_the_trust_file_names_witnesses_and_the_quorum(
    aw: AuditWorld, collected: AuditExport, tmp_path: Path
) -> None:
    keys = ", ".join(f'"{v.vkey}"' for w in (W1, W2, W3) for v in w.verifiers)
    trust = AuditTrust.load_toml(_trust_file(aw, tmp_path / "a", f"keys = [{keys}]\nquorum = 2\n"))
    assert trust.witness_quorum == 2
    assert {w.name for w in trust.witnesses} == {W1.name, W2.name, W3.name}
    assert verify_bundle(_bundle(aw, collected, W1, W3), trust).ok
    error = _refused(_bundle(aw, collected, W3), trust)
    assert error.code == "insufficient-cosignatures"
    # the quorum defaults to every witness named (distinct names: W1's two keys are one)
    trust = AuditTrust.load_toml(_trust_file(aw, tmp_path / "b", f"keys = [{keys}]\n"))
    assert trust.witness_quorum == 3
    assert _refused(_bundle(aw, collected, W1, W2), trust).code == "insufficient-cosignatures"
    assert verify_bundle(_bundle(aw, collected, W1, W2, W3), trust).ok


def test_a_platform_toml_that_requires_witnesses_is_an_audit_trust(
    aw: AuditWorld, collected: AuditExport, tmp_path: Path
) -> None:
    # The platform's [witnesses] names the log's checkpoint keys (log_keys): an auditor who
    # copies it checks the bundle's checkpoints against them, with the same quorum.
    log = ", ".join(f'"{k.vkey}"' for k in aw.checkpoint_keys())
    keys = ", ".join(f'"{v.vkey}"' for w in (W1, W2, W3) for v in w.verifiers)
    path = _trust_file(aw, tmp_path, f"log_keys = [{log}]\nkeys = [{keys}]\nquorum = 2\n")
    text = path.read_text()
    without = text.replace(f"checkpoint_keys = [{log}]\n", "")
    assert without != text
    path.write_text(without)
    trust = AuditTrust.load_toml(path)
    assert trust.checkpoint_keys == aw.checkpoint_keys()
    assert verify_bundle(_bundle(aw, collected, W1, W3), trust).ok
    assert _refused(_bundle(aw, collected, W3), trust).code == "insufficient-cosignatures"
    path.write_text(without.replace(f"log_keys = [{log}]", 'log_keys = "one"'))
    with pytest.raises(ConfigError, match="log_keys is a list of vkeys"):
        AuditTrust.load_toml(path)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("keys = []\n", "non-empty list of witness vkeys"),
        ('keys = ["not a vkey"]\n', "a witness key"),
        ("KEYS\nquorum = 3\n", "quorum is an integer from 1 to 2"),
        ("KEYS\nquorum = 0\n", "quorum is an integer from 1 to 2"),
        ('KEYS\nquorum = "2"\n', "quorum is an integer"),
        ("KEYS\nextra = 1\n", "unknown setting 'extra'"),
    ],
)
def test_a_bad_witnesses_table_is_a_config_error(
    aw: AuditWorld, tmp_path: Path, table: str, message: str
) -> None:
    keys = ", ".join(f'"{v.vkey}"' for v in W2.verifiers + W3.verifiers)
    path = _trust_file(aw, tmp_path, table.replace("KEYS", f"keys = [{keys}]"))
    with pytest.raises(ConfigError, match=message):
        AuditTrust.load_toml(path)


def test_an_audit_trust_checks_its_quorum(aw: AuditWorld) -> None:
    with pytest.raises(ConfigError, match="between 1 and 2"):
        _trust(aw, W1, W2, quorum=3)  # W1's two keys are one witness
    with pytest.raises(ConfigError, match="needs witnesses"):
        aw.trust(witness_quorum=1)
    with pytest.raises(ConfigError, match="one witness key twice"):
        aw.trust(witnesses=(*W2.verifiers, *W2.verifiers), witness_quorum=1)


def test_a_checkpoint_key_is_no_witness(aw: AuditWorld) -> None:
    # The log's ML-DSA-44 vkey parses as a cosigner's too: the log would witness itself.
    key = PrivateKey.generate(Algorithm.ML_DSA_44).public_key
    log = NoteVerifier("log.example/log", key)
    with pytest.raises(ConfigError, match="a witness key is a checkpoint key"):
        aw.trust(
            checkpoint_keys=(*aw.checkpoint_keys(), log),
            witnesses=(*W2.verifiers, CosignatureVerifier.from_vkey(log.vkey)),
            witness_quorum=1,
        )


def test_an_audit_under_a_platform_trust_that_requires_witnesses_holds(
    aw: AuditWorld, collected: AuditExport
) -> None:
    # A node keeps an update's Transparent Statements as its evidence: the witnessing was
    # checked when the update was decided and is not in them. Re-verifying the firmware from
    # that evidence under the platform's own trust, witnesses and all, is what the auditor
    # does; the bundle's checkpoints are where the auditor asks for cosignatures.
    witnessing = PlatformWitnesses(aw.checkpoint_keys(), WitnessPolicy(W2.verifiers, 1))
    platform = dataclasses.replace(aw.platform_trust(), witnesses=witnessing)
    data = _bundle(aw, collected, W1, W2)
    assert verify_bundle(data, aw.trust(platform=platform)).ok
