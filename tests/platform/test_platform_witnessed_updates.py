"""A platform whose trust names witnesses takes only witnessed statements for its updates.

Real pieces throughout: the update checks' world (``update_world`` (vendor keys, bundles, a
transparency service in this process), real ``ironroot.witness.Witness`` instances answering
C2SP add-checkpoint for the service's own checkpoints (Ed25519 and ML-DSA-44 cosignatures), and
the witnessed statements ``ironroot statement witness`` writes (its format built by
``WitnessedStatement.encode``). Each refusal asserts the exact error, code and failing check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.platform.update_world import (
    NOW,
    PLATFORM,
    VENDOR_ISS,
    World,
    _active_pfm,
    _args,
    _refused,
    _register,
    update_world,
)

from ironroot.cose import Receipt, TransparentStatement, encode_cbor, make_transparent
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    ConfigError,
    InconsistentCheckpoint,
    InsufficientCosignatures,
    MalformedInput,
    PolicyRejected,
    UnknownIssuer,
)
from ironroot.firmware import manifest_statement, reference_statement
from ironroot.log import Note, NoteSignature, NoteVerifier
from ironroot.platform import (
    PlatformTrust,
    PlatformWitnesses,
    check_update,
    verify_update,
)
from ironroot.platform._node import evidence_blob
from ironroot.transparency import (
    WITNESSED_STATEMENT_FORMAT,
    decode_witnessed_statement,
    receipt_tree,
    verify_witnessed_statement,
)
from ironroot.witness import (
    AddCheckpoint,
    CosignatureVerifier,
    Cosigner,
    MemoryWitnessStore,
    Witness,
    WitnessedLog,
    WitnessPolicy,
)


@dataclasses.dataclass(frozen=True)
class Wit:
    name: str
    cosigners: tuple[Cosigner, ...]

    @property
    def verifiers(self) -> tuple[CosignatureVerifier, ...]:
        return tuple(c.verifier() for c in self.cosigners)


def _wit(name: str, *algorithms: Algorithm) -> Wit:
    return Wit(name, tuple(Cosigner(name, PrivateKey.generate(a)) for a in algorithms))


W1 = _wit("witness.example/w1", Algorithm.ED25519, Algorithm.ML_DSA_44)
W2 = _wit("witness.example/w2", Algorithm.ED25519)
W3 = _wit("witness.example/w3", Algorithm.ED25519)
OUTSIDER = _wit("witness.example/outsider", Algorithm.ED25519)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from update_world(tmp_path_factory)


def _log_keys(world: World) -> tuple[NoteVerifier, ...]:
    return tuple(world.service.writer.note_verifiers)


def _witnesses(world: World, quorum: int = 2) -> PlatformWitnesses:
    policy = WitnessPolicy(tuple(v for w in (W1, W2, W3) for v in w.verifiers), quorum)
    return PlatformWitnesses(_log_keys(world), policy)


def _trust(world: World, quorum: int = 2, **changes: Any) -> PlatformTrust:
    return world.trust(witnesses=_witnesses(world, quorum), **changes)


def _cosigned(world: World, note: bytes, *witnesses: Wit) -> bytes:
    """``note`` with the cosignature lines each witness answers its add-checkpoint with."""
    keys = _log_keys(world)
    origin = world.service.writer.origin
    lines: list[NoteSignature] = []
    for wit in witnesses:
        witness = Witness(
            wit.name,
            wit.cosigners,
            [WitnessedLog(origin, keys)],
            MemoryWitnessStore(),
            clock=lambda: int(NOW.timestamp()),
        )
        lines.extend(witness.add_checkpoint(AddCheckpoint(0, (), note).encode()))
    parsed = Note.parse(note)
    return Note(parsed.body, (*parsed.signatures, *lines)).encode()


def _wrap(statement: bytes, checkpoint: bytes, proof: Sequence[bytes]) -> bytes:
    return encode_cbor(
        {
            "format": WITNESSED_STATEMENT_FORMAT,
            "statement": statement,
            "checkpoint": checkpoint,
            "proof": list(proof),
        }
    )


def _witnessed(world: World, statement: bytes, *witnesses: Wit) -> bytes:
    """``statement`` witnessed in the service's current checkpoint, cosigned by ``witnesses``."""
    log = world.service.writer
    note = _cosigned(world, log.checkpoint(), *witnesses)
    size, _root = receipt_tree(statement)
    current = log.tree_size
    proof = log.consistency_proof(size, current) if current > size else []
    return _wrap(statement, note, proof)


# --- the update that passes -----------------------------------------------------------------


def test_a_witnessed_manifest_statement_passes_where_witnesses_are_required(
    world: World,
) -> None:
    bundle = world.bundles["bmc-2"]
    witnessed = _witnessed(world, world.logged["bmc-2"], W1, W2)
    verified = verify_update("bmc", bundle, [witnessed], **_args(world, trust=_trust(world)))
    assert verified.statement.payload == verified.manifest_digest
    report = check_update("bmc", bundle, [witnessed], **_args(world, trust=_trust(world)))
    assert report.ok
    receipt = next(c for c in report.checks if c.name == "receipt")
    assert receipt.passed


def test_the_product_encoder_writes_what_the_platform_takes(world: World) -> None:
    statement = world.logged["bmc-2"]
    log = world.service.writer
    note = _cosigned(world, log.checkpoint(), W2, W3)
    size, _ = receipt_tree(statement)
    proof = log.consistency_proof(size, log.tree_size) if log.tree_size > size else []
    checked = verify_witnessed_statement(
        statement,
        note,
        proof,
        service_keys=world.trust().service_keys,
        log_verifiers=_log_keys(world),
        policy=_witnesses(world).policy,
        now=int(NOW.timestamp()),
    )
    encoded = checked.encode()
    assert encoded == _wrap(statement, note, proof)
    assert decode_witnessed_statement(encoded) == (statement, note, tuple(proof))
    bundle = world.bundles["bmc-2"]
    verify_update("bmc", bundle, [encoded], **_args(world, trust=_trust(world)))


def test_a_platform_without_witnesses_takes_a_witnessed_statement_as_its_receipts(
    world: World,
) -> None:
    witnessed = _witnessed(world, world.logged["bmc-2"], W1, W2)
    verified = verify_update("bmc", world.bundles["bmc-2"], [witnessed], **_args(world))
    assert verified.svn == 2


def test_the_evidence_kept_is_the_transparent_statement(world: World) -> None:
    statement = world.logged["bmc-2"]
    witnessed = _witnessed(world, statement, W1, W2)
    pfm = world.logged_pfm(_active_pfm(world, svn=2))[1]
    assert evidence_blob([witnessed], _witnessed(world, pfm, W1, W2)) == evidence_blob(
        [statement], pfm
    )


# --- must reject ----------------------------------------------------------------------------


def test_a_statement_with_receipts_alone_is_refused(world: World) -> None:
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        PolicyRejected,
        "not-witnessed",
        "receipt",
        trust=_trust(world),
    )


def test_a_checkpoint_cosigned_below_the_quorum_is_refused(world: World) -> None:
    # W1 cosigns with both its keys: one witness, not two.
    witnessed = _witnessed(world, world.logged["bmc-2"], W1)
    _refused(
        world,
        world.bundles["bmc-2"],
        [witnessed],
        InsufficientCosignatures,
        "insufficient-cosignatures",
        "receipt",
        trust=_trust(world),
    )
    outsiders = _witnessed(world, world.logged["bmc-2"], W2, OUTSIDER)
    _refused(
        world,
        world.bundles["bmc-2"],
        [outsiders],
        InsufficientCosignatures,
        "insufficient-cosignatures",
        "receipt",
        trust=_trust(world),
    )


def test_a_checkpoint_of_another_log_is_refused(world: World) -> None:
    # The untrusted service's checkpoint, cosigned: not signed by the trusted log's key.
    other = world.untrusted.writer
    note = world.untrusted.writer.checkpoint()
    statement = world.logged["bmc-2"]
    size, _ = receipt_tree(statement)
    proof = other.consistency_proof(size, other.tree_size) if other.tree_size > size else []
    _refused(
        world,
        world.bundles["bmc-2"],
        [_wrap(statement, note, proof)],
        UnknownIssuer,
        "untrusted-log",
        "receipt",
        trust=_trust(world),
    )


def test_a_proof_that_does_not_connect_the_receipt_to_the_checkpoint_is_refused(
    world: World,
) -> None:
    statement = world.logged["bmc-1"]  # the first entry: a proof of several hashes
    witnessed = decode_witnessed_statement(_witnessed(world, statement, W1, W2))
    proof = list(witnessed[2])
    assert proof
    proof[0] = bytes(32)
    _refused(
        world,
        world.bundles["bmc-1"],
        [_wrap(statement, witnessed[1], proof)],
        InconsistentCheckpoint,
        "inconsistent-checkpoint",
        "receipt",
        trust=_trust(world),
        active_pfm=_active_pfm(world),
        min_svn=1,
    )


def test_a_checkpoint_older_than_the_receipts_tree_is_refused(world: World) -> None:
    log = world.service.writer
    early = _cosigned(world, log.checkpoint_at(1), W1, W2)
    _refused(
        world,
        world.bundles["bmc-2"],
        [_wrap(world.logged["bmc-2"], early, [])],
        InconsistentCheckpoint,
        "inconsistent-checkpoint",
        "receipt",
        trust=_trust(world),
    )


def test_a_cosignature_moved_from_another_checkpoint_is_refused(world: World) -> None:
    log = world.service.writer
    earlier = Note.parse(_cosigned(world, log.checkpoint_at(2), W1, W2))
    current = Note.parse(log.checkpoint())
    moved = Note(current.body, (*current.signatures, *earlier.signatures[1:])).encode()
    statement = world.logged["bmc-2"]
    size, _ = receipt_tree(statement)
    proof = log.consistency_proof(size, log.tree_size) if log.tree_size > size else []
    _refused(
        world,
        world.bundles["bmc-2"],
        [_wrap(statement, moved, proof)],
        BadSignature,
        "bad-signature",
        "receipt",
        trust=_trust(world),
    )


def test_a_damaged_witnessed_statement_is_not_a_statement(world: World) -> None:
    witnessed = _witnessed(world, world.logged["bmc-2"], W1, W2)
    damaged = witnessed[:-1]
    _refused(
        world,
        world.bundles["bmc-2"],
        [damaged],
        PolicyRejected,
        "no-receipt",
        "receipt",
        trust=_trust(world),
    )


def test_an_unwitnessed_pfm_statement_is_refused(world: World) -> None:
    signed, logged = world.logged_pfm(_active_pfm(world, svn=2))
    witnessed = _witnessed(world, world.logged["bmc-2"], W1, W2)
    _refused(
        world,
        world.bundles["bmc-2"],
        [witnessed],
        PolicyRejected,
        "not-witnessed",
        "pfm",
        trust=_trust(world),
        pfm=signed,
        pfm_statement=logged,
    )
    verified = verify_update(
        "bmc",
        world.bundles["bmc-2"],
        [witnessed],
        **_args(world, trust=_trust(world), pfm_statement=_witnessed(world, logged, W2, W3)),
    )
    assert verified.new_pfm == signed


def test_reference_values_shipped_with_an_update_must_be_witnessed(world: World) -> None:
    # Boot compares a device's measurements with the CoRIMs an update ships: logged
    # statements the update relies on, as its manifest statement is.
    bundle = world.bundles["bmc-2"]
    corim = _register(
        world.service,
        reference_statement(bundle, world.vendor, iss=VENDOR_ISS, sub="pkg:fw/bmc"),
    )
    manifest = _witnessed(world, world.logged["bmc-2"], W1, W2)
    with pytest.raises(PolicyRejected) as info:
        verify_update("bmc", bundle, [manifest, corim], **_args(world, trust=_trust(world)))
    assert (info.value.code, info.value.check) == ("not-witnessed", "receipt")
    assert "CoRIM, statement 1" in info.value.detail
    witnessed = _witnessed(world, corim, W2, W3)
    verify_update("bmc", bundle, [manifest, witnessed], **_args(world, trust=_trust(world)))
    # without witnesses required, the CoRIM's receipts are boot's business, as before
    verify_update("bmc", bundle, [manifest, corim], **_args(world))


def _safe_trust(world: World) -> PlatformTrust:
    return dataclasses.replace(world.safe_trust(), witnesses=_witnesses(world))


def test_a_safe_review_that_lets_an_update_through_must_be_witnessed(world: World) -> None:
    manifest = _witnessed(world, world.logged["bmc-2"], W1, W2)
    review = world.review("bmc-2", (4.2,))
    _refused(
        world,
        world.bundles["bmc-2"],
        [manifest, review],
        PolicyRejected,
        "not-witnessed",
        "safe-review",
        trust=_safe_trust(world),
    )
    verified = verify_update(
        "bmc",
        world.bundles["bmc-2"],
        [manifest, _witnessed(world, review, W1, W3)],
        **_args(world, trust=_safe_trust(world)),
    )
    assert len(verified.reviews) == 1


def test_an_unwitnessed_review_with_an_open_finding_still_refuses(world: World) -> None:
    # A finding on the log is a finding: witnessing is asked of what lets an update through.
    manifest = _witnessed(world, world.logged["bmc-2"], W1, W2)
    clean = _witnessed(world, world.review("bmc-2", (2.0,)), W1, W2)
    finding = world.review("bmc-2", (9.8,))
    _refused(
        world,
        world.bundles["bmc-2"],
        [manifest, clean, finding],
        PolicyRejected,
        "safe-finding-open",
        "safe-review",
        trust=_safe_trust(world),
    )


# --- the witnessed statement's format --------------------------------------------------------


def _parts(world: World) -> tuple[bytes, bytes, list[bytes]]:
    statement, note, proof = decode_witnessed_statement(
        _witnessed(world, world.logged["bmc-1"], W1, W2)
    )
    return statement, note, list(proof)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: {**d, "format": "ironroot-witnessed-statement/2"}, "not a witnessed"),
        (lambda d: {k: v for k, v in d.items() if k != "proof"}, "exactly the members"),
        (lambda d: {**d, "extra": 1}, "exactly the members"),
        (lambda d: {**d, "statement": "text"}, "is a Transparent Statement"),
        (lambda d: {**d, "checkpoint": b""}, "signed note"),
        (lambda d: {**d, "proof": [b"\x00" * 31]}, "32 bytes each"),
        (lambda d: {**d, "proof": [b"\x00" * 32] * 65}, "at most 64"),
    ],
)
def test_a_malformed_witnessed_statement_is_refused(
    world: World, change: Any, message: str
) -> None:
    statement, note, proof = _parts(world)
    doc = {
        "format": WITNESSED_STATEMENT_FORMAT,
        "statement": statement,
        "checkpoint": note,
        "proof": proof,
    }
    with pytest.raises(MalformedInput, match=message):
        decode_witnessed_statement(encode_cbor(change(doc)))


def test_a_witnessed_statement_not_in_deterministic_cbor_is_refused(world: World) -> None:
    import cbor2

    statement, note, proof = _parts(world)
    loose = cbor2.dumps(
        {"statement": statement, "format": WITNESSED_STATEMENT_FORMAT, "checkpoint": note,
         "proof": proof}
    )  # fmt: skip
    with pytest.raises(MalformedInput, match="deterministic CBOR"):
        decode_witnessed_statement(loose)


# --- the trust ----------------------------------------------------------------------------------


def test_the_witnesses_survive_the_persisted_trust(world: World) -> None:
    trust = _trust(world, quorum=3)
    again = PlatformTrust.from_json(trust.to_json())
    assert again.witnesses == trust.witnesses
    assert again.witnesses is not None
    assert again.witnesses.policy.quorum == 3
    assert again.witnesses.origin == world.service.writer.origin
    assert "witnesses" not in world.trust().to_json()


def _toml(tmp_path: Path, world: World, witnesses: str) -> Path:
    trust = world.trust()
    (tmp_path / "ecc.pem").write_bytes(trust.ecc_keys[0].to_pem())
    (tmp_path / "ecc1.pem").write_bytes(trust.ecc_keys[1].to_pem())
    (tmp_path / "pqc.pem").write_bytes(trust.pqc_keys[0].to_pem())
    (tmp_path / "pqc1.pem").write_bytes(trust.pqc_keys[1].to_pem())
    service = next(iter(trust.service_keys.values()))
    (tmp_path / "service.pem").write_bytes(service.to_pem())  # type: ignore[attr-defined]
    path = tmp_path / "platform.toml"
    path.write_text(
        f'platform = "{PLATFORM}"\n'
        '[vendor]\necc = ["ecc.pem", "ecc1.pem"]\npqc = ["pqc.pem", "pqc1.pem"]\n'
        '[transparency]\nservice_keys = ["service.pem"]\n'
        '[issuers]\nbmc = ["https://vendor.example"]\n' + witnesses
    )
    path.chmod(0o600)
    return path


def _vkeys(*witnesses: Wit) -> str:
    return ", ".join(f'"{v.vkey}"' for w in witnesses for v in w.verifiers)


def test_the_operators_file_names_the_witnesses(tmp_path: Path, world: World) -> None:
    log = ", ".join(f'"{k.vkey}"' for k in _log_keys(world))
    path = _toml(
        tmp_path, world, f"[witnesses]\nlog_keys = [{log}]\nkeys = [{_vkeys(W1, W2, W3)}]\n"
    )
    trust = PlatformTrust.load_toml(path)
    assert trust.witnesses is not None
    assert trust.witnesses.policy.quorum == 3  # every witness named, by default
    assert trust.witnesses.log_keys == _log_keys(world)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[witnesses]\n", "lacks 'keys'"),
        ("[witnesses]\nlog_keys = []\nkeys = [{w}]\n", "log_keys is a non-empty list"),
        ("[witnesses]\nlog_keys = [{log}]\nkeys = []\n", "keys is a non-empty list"),
        ("[witnesses]\nlog_keys = [{log}]\nkeys = [{w}]\nquorum = 4\n", "between 1 and 3"),
        ("[witnesses]\nlog_keys = [{log}]\nkeys = [{w}]\nquorum = 1.5\n", "quorum is an integer"),
        ("[witnesses]\nlog_keys = [{log}]\nkeys = [{w}]\nother = 1\n", "unknown member 'other'"),
        ('[witnesses]\nlog_keys = ["nope"]\nkeys = [{w}]\n', "a log key"),
        ("[witnesses]\nlog_keys = [{log}, {other}]\nkeys = [{w}]\n", "name one log"),
    ],
)
def test_a_bad_witnesses_table_is_refused(
    tmp_path: Path, world: World, table: str, message: str
) -> None:
    log = f'"{_log_keys(world)[0].vkey}"'
    stranger = NoteVerifier("other.example/log", PrivateKey.generate(Algorithm.ED25519).public_key)
    other = f'"{stranger.vkey}"'
    text = table.format(log=log, w=_vkeys(W1, W2, W3), other=other)
    with pytest.raises(ConfigError, match=message) as info:
        PlatformTrust.load_toml(_toml(tmp_path, world, text))
    assert "platform.toml" in info.value.detail


def test_the_witnessed_tree_is_the_receipts(world: World) -> None:
    # The statement's receipt proves its leaf in the tree the witnessed checkpoint extends.
    statement = world.logged["bmc-2"]
    size, root = receipt_tree(statement)
    assert world.service.writer.root(size) == root


@pytest.mark.parametrize("algorithm", [Algorithm.ED25519, Algorithm.ML_DSA_44])
def test_the_logs_own_key_is_no_witness(algorithm: Algorithm) -> None:
    # A log's ML-DSA-44 vkey is a valid cosigner vkey too (type 0x06 for both), and any key of
    # the log's under another name is the log's to cosign with: the log would witness itself.
    key = PrivateKey.generate(algorithm).public_key
    log = NoteVerifier("log.example/log", key)
    for name in ("log.example/log", "witness.example/log-in-disguise"):
        itself = CosignatureVerifier(name, key)
        policy = WitnessPolicy((*W2.verifiers, itself), 1)
        with pytest.raises(ConfigError, match="a witness key is the log's own checkpoint key"):
            PlatformWitnesses((log,), policy)
    if algorithm is not Algorithm.ML_DSA_44:
        return  # an Ed25519 note vkey (type 0x01) is no cosigner vkey at all
    with pytest.raises(ConfigError, match=r"platform.toml: \[witnesses\] a witness key is the"):
        PlatformWitnesses.from_vkeys(
            [log.vkey], [W2.verifiers[0].vkey, log.vkey], 1, "platform.toml: [witnesses]"
        )


def _on_both_services(world: World, name: str) -> tuple[bytes, bytes, bytes]:
    """A manifest statement of bundle ``name``, its receipt by the trusted service and its
    receipt by the untrusted one."""
    signed = manifest_statement(world.bundles[name], world.vendor, iss=VENDOR_ISS, sub="pkg:fw/bmc")
    trusted = TransparentStatement.parse(_register(world.service, signed)).receipts[0]
    elsewhere = TransparentStatement.parse(_register(world.untrusted, signed)).receipts[0]
    return signed, trusted, elsewhere


def test_a_statement_logged_on_two_services_is_witnessed_by_its_trusted_receipt(
    world: World,
) -> None:
    # As the receipt check takes the receipt a trusted service signed among others, so does
    # the witness check: it is that receipt's tree the trusted log's checkpoint extends.
    signed, trusted, elsewhere = _on_both_services(world, "bmc-2")
    log = world.service.writer
    note = _cosigned(world, log.checkpoint(), W1, W2)
    size = Receipt.parse(trusted).inclusion_proofs[0].tree_size
    proof = log.consistency_proof(size, log.tree_size) if log.tree_size > size else []
    for receipts in ([trusted, elsewhere], [elsewhere, trusted]):
        statement = make_transparent(signed, receipts)
        assert TransparentStatement.parse(statement).receipts == tuple(receipts)
        verify_update("bmc", world.bundles["bmc-2"], [statement], **_args(world))
        witnessed = _wrap(statement, note, proof)
        verified = verify_update(
            "bmc", world.bundles["bmc-2"], [witnessed], **_args(world, trust=_trust(world))
        )
        assert verified.svn == 2
        checked = verify_witnessed_statement(
            statement,
            note,
            proof,
            service_keys=world.trust().service_keys,
            log_verifiers=_log_keys(world),
            policy=_witnesses(world).policy,
            now=int(NOW.timestamp()),
        )
        assert checked.tree_size == size
        assert receipt_tree(statement, world.trust().service_keys)[0] == size


def test_reference_values_witnessed_with_an_untrusted_receipt_alone_are_refused(
    world: World,
) -> None:
    # The witness check names a receipt no trusted service signed as the receipt check does.
    bundle = world.bundles["bmc-2"]
    corim = _register(
        world.untrusted,
        reference_statement(bundle, world.vendor, iss=VENDOR_ISS, sub="pkg:fw/bmc"),
    )
    manifest = _witnessed(world, world.logged["bmc-2"], W1, W2)
    note = _cosigned(world, world.service.writer.checkpoint(), W1, W2)
    _refused(
        world,
        bundle,
        [manifest, _wrap(corim, note, [])],
        UnknownIssuer,
        "untrusted-service",
        "receipt",
        trust=_trust(world),
    )


def test_a_checkpoint_at_the_receipts_size_takes_no_proof(world: World) -> None:
    statement = world.logged["bmc-2"]
    size, _root = receipt_tree(statement)
    at_size = _cosigned(world, world.service.writer.checkpoint_at(size), W1, W2)
    verify_update(
        "bmc",
        world.bundles["bmc-2"],
        [_wrap(statement, at_size, [])],
        **_args(world, trust=_trust(world)),
    )
    _refused(
        world,
        world.bundles["bmc-2"],
        [_wrap(statement, at_size, [bytes(32)])],
        InconsistentCheckpoint,
        "inconsistent-checkpoint",
        "receipt",
        trust=_trust(world),
    )


def test_a_wrapped_witnessed_statement_is_not_a_statement(world: World) -> None:
    witnessed = _witnessed(world, world.logged["bmc-2"], W1, W2)
    _statement, note, proof = decode_witnessed_statement(witnessed)
    nested = _wrap(witnessed, note, proof)
    _refused(
        world,
        world.bundles["bmc-2"],
        [nested],
        PolicyRejected,
        "no-receipt",
        "receipt",
        trust=_trust(world),
    )
    with pytest.raises(MalformedInput, match="not a Signed Statement") as info:
        verify_update(
            "bmc",
            world.bundles["bmc-2"],
            [witnessed],
            **_args(world, trust=_trust(world), pfm_statement=nested),
        )
    assert info.value.check == "pfm"


def test_a_safe_review_witnessed_below_the_quorum_is_refused_as_such(world: World) -> None:
    # The review's own witnessing refusal, as the manifest statement's would be: not a bare
    # "not witnessed" that hides why.
    manifest = _witnessed(world, world.logged["bmc-2"], W1, W2)
    review = _witnessed(world, world.review("bmc-2", (4.2,)), W1)
    _refused(
        world,
        world.bundles["bmc-2"],
        [manifest, review],
        InsufficientCosignatures,
        "insufficient-cosignatures",
        "safe-review",
        trust=_safe_trust(world),
    )
