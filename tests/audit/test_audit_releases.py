"""The HSM's release statements in the audit bundle (ADR 0015): the key service kept each
one it handed out, export carries them, and verify checks every statement offline — its
signature to the HSM vendor's root, and the one audit record of the verified chain that binds
its digest, with the same key, wrapping key and EAR. Each way to pass off a release the chain
does not record is refused with its exact error and the statement it names."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world
from tests.hsm_devices import self_signed_device
from tests.platform.node_world import NOW

from ironroot.audit import AuditExport, AuditTrust, check_bundle, verify_bundle
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey, PublicKey, load_certificate
from ironroot.ear import Appraisal, AttestationResult, TrustTier, VerifierId, sign_ear_jwt
from ironroot.errors import (
    AuditChainBroken,
    BadSignature,
    ChainNotTrusted,
    IronrootError,
    NotFound,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.hsm import (
    DeviceIdentity,
    DirectoryStorage,
    Hsm,
    HsmConfig,
    KeyAttributes,
    KeyType,
    MemoryStorage,
    Role,
    format_audit_log,
    parse_audit_log,
)
from ironroot.hsm._audit import ZERO_HASH
from ironroot.keyrelease import (
    HsmVault,
    KeyReleaseService,
    ReleasableKey,
    ReleaseRequest,
    ReleaseStatements,
)
from ironroot.keyrelease.tee import TeeKeyPair

JSONL = "application/jsonl"
CBOR = "application/cbor"


@dataclasses.dataclass
class NodeHsm:
    """The node's HSM as an auditor knows it, and what the tests need to forge with."""

    attestation: PublicKey
    device: DeviceIdentity
    statements: tuple[bytes, ...]
    before_second: bytes  # the audit log as it was before the second release


def _ear(verifier: PrivateKey, report_data: bytes) -> bytes:
    appraisal = Appraisal(
        TrustTier.AFFIRMING,
        {"instance-identity": 2, "configuration": 2},
        policy_id="test",
        evidence={"report_data": report_data.hex()},
    )
    iat = int(NOW.timestamp()) - 60
    result = AttestationResult(
        iat=iat,
        exp=iat + 600,
        verifier_id=VerifierId("Ironroot", "test"),
        submods={"tee": appraisal},
        nonce=report_data,
    )
    return sign_ear_jwt(result, verifier)


def _open(storage: MemoryStorage | DirectoryStorage, secret: bytes, device: DeviceIdentity) -> Hsm:
    return Hsm.initialize(
        storage,
        secret,
        officer="officer",
        credential=b"officer-credential",
        device=device,
        config=HsmConfig(scrypt_n=2**10),
        clock=lambda: NOW.timestamp(),
    )


def _grant(hsm: Hsm, kept: ReleaseStatements | None) -> bytes:
    """One key granted to a TEE through a key service keeping its statements in ``kept``."""
    officer = hsm.login("officer", b"officer-credential")
    verifier = PrivateKey.generate(Algorithm.ES384)
    hsm.add_release_verifier(officer, "verifier", verifier.public_key.to_pem())
    key = hsm.generate(
        officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt"], exportable=True, release_policy="true"),
    )
    hsm.add_identity(officer, "service", Role.USER, b"service-credential")
    service = KeyReleaseService(
        keys=[ReleasableKey("db-key", key)],
        vault=HsmVault(hsm, hsm.login("service", b"service-credential")),
        statements=kept,
    )
    tee = TeeKeyPair.generate()
    nonce = service.challenge()[0]
    request = ReleaseRequest(_ear(verifier, tee.report_data(nonce)), tee.public, nonce)
    return service.release("db-key", request).statement


def install(aw: AuditWorld) -> NodeHsm:
    """The node's HSM and its key service (data directory: the node's): a release granted,
    one refused, a signed checkpoint, then a second release granted."""
    node = aw.fleet.directory / "nodes" / NODE
    device = self_signed_device(NOW, cn="node HSM device")
    storage = DirectoryStorage.on_device(node / "hsm", node / "rot")
    kept = ReleaseStatements(node / "releases.db")
    hsm = _open(storage, aw.fleet.rot(NODE).sealing_secret("hsm"), device)
    try:
        _grant(hsm, kept)
        user = hsm.login("service", b"service-credential")
        key = hsm.release_verifiers(user)  # an ordinary record between the releases
        assert key
        with pytest.raises(NotFound):
            hsm.release(user, "no-such", ear=b"e", nonce=bytes(32), recipient=b"r")
        officer = hsm.login("officer", b"officer-credential")
        hsm.add_identity(officer, "auditor", Role.AUDITOR, b"auditor-credential")
        checkpoint = hsm.audit_checkpoint(hsm.login("auditor", b"auditor-credential"))
        before_second = (node / "hsm" / "audit.jsonl").read_bytes()
        second = _second_grant(hsm, kept)
        assert second
        attestation = hsm.attestation_public_key
    finally:
        hsm.close()
        storage.close()
        statements = kept.statements()
        kept.close()
    (node / "hsm" / "checkpoints").mkdir()
    (node / "hsm" / "checkpoints" / "0.cose").write_bytes(checkpoint)
    return NodeHsm(attestation, device, statements, before_second)


def _second_grant(hsm: Hsm, kept: ReleaseStatements) -> bytes:
    officer = hsm.login("officer", b"officer-credential")
    verifier = PrivateKey.generate(Algorithm.ES384)
    hsm.add_release_verifier(officer, "verifier-2", verifier.public_key.to_pem())
    key = hsm.generate(
        officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt"], exportable=True, release_policy="true"),
    )
    service = KeyReleaseService(
        keys=[ReleasableKey("app-key", key)],
        vault=HsmVault(hsm, hsm.login("service", b"service-credential")),
        statements=kept,
    )
    tee = TeeKeyPair.generate()
    nonce = service.challenge()[0]
    request = ReleaseRequest(_ear(verifier, tee.report_data(nonce)), tee.public, nonce)
    return service.release("app-key", request).statement


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-releases"))


@pytest.fixture(scope="module")
def node_hsm(aw: AuditWorld) -> NodeHsm:
    return install(aw)


def _root(device: DeviceIdentity) -> bytes:
    return device.chain[-1]


def _trust(aw: AuditWorld, node_hsm: NodeHsm, **changes: object) -> AuditTrust:
    args: dict[str, object] = {
        "hsm_attestation_keys": (node_hsm.attestation,),
        "hsm_roots": (_root(node_hsm.device),),
    }
    args.update(changes)
    return aw.trust(**args)


@pytest.fixture(scope="module")
def export(aw: AuditWorld, node_hsm: NodeHsm) -> AuditExport:
    return aw.collect()


def _refused(
    aw: AuditWorld, node_hsm: NodeHsm, export: AuditExport, members: dict[str, bytes | None]
) -> IronrootError:
    """``export`` with ``members`` replaced (``None``: removed), resealed by the node's own
    RoT, and the error verify raises."""
    changed: dict[str, tuple[bytes, str] | None] = {
        name: None if data is None else (data, JSONL if name.endswith("jsonl") else CBOR)
        for name, data in members.items()
    }
    data = export.replace(members=changed).seal(aw.fleet.rot(NODE))
    with pytest.raises(IronrootError) as info:
        verify_bundle(data, _trust(aw, node_hsm))
    return info.value


def _statements(export: AuditExport) -> list[bytes]:
    value = cbor2.loads(export.members["hsm/releases.cbor"][0])
    assert isinstance(value, list)
    return value


def test_each_kept_statement_is_exported_and_matches_its_audit_record(
    aw: AuditWorld, node_hsm: NodeHsm, export: AuditExport
) -> None:
    assert _statements(export) == list(node_hsm.statements)
    assert len(node_hsm.statements) == 2
    data = export.seal(aw.fleet.rot(NODE))
    report = verify_bundle(data, _trust(aw, node_hsm))
    hsm = report.step("hsm")
    assert hsm.status == "ok"
    assert "2 of 2 granted release(s) bind their statement, wrapping key and EAR" in hsm.lines[-1]
    step = report.step("releases")
    assert step.status == "ok", step
    assert step.lines[0].startswith("2 release statement(s) verify to a trusted HSM vendor root")
    assert " db-key " not in step.lines[1]  # the HSM's handle, not the service's name
    assert "(AES-256) to wrapping key " in step.lines[1]
    records = parse_audit_log(export.members["hsm/audit.jsonl"][0])
    granted = [r.seq for r in records if r.operation == "release" and r.result == "ok"]
    assert step.lines[1].endswith(f": audit record {granted[0]}")
    assert step.lines[2].endswith(f": audit record {granted[1]}")
    assert len(step.lines) == 3  # every bound record has its statement here
    # The service kept only the newest: the record of the first stays, without a statement.
    newest = cbor2.dumps(list(node_hsm.statements[1:]))
    data = export.replace(members={"hsm/releases.cbor": (newest, CBOR)}).seal(aw.fleet.rot(NODE))
    step = verify_bundle(data, _trust(aw, node_hsm)).step("releases")
    assert step.lines[-1].startswith("1 bound release record(s) of the chain have no statement")


def test_a_statement_whose_digest_matches_no_audit_record_is_refused(
    aw: AuditWorld, node_hsm: NodeHsm, export: AuditExport
) -> None:
    """The chain as it was before the second release (it still reaches the checkpoint): the
    second statement is the HSM's, but no record of that chain binds it."""
    error = _refused(aw, node_hsm, export, {"hsm/audit.jsonl": node_hsm.before_second})
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "release-not-audited",
        "releases:statement-1",
    )


def _with_recipient(log: bytes, recipient: bytes, *, rechain: bool) -> bytes:
    """The first granted release record made to name another wrapping key; ``rechain``
    rehashes the chain after it (as someone outside the HSM could, without its MAC key)."""
    records = list(parse_audit_log(log))
    first = next(i for i, r in enumerate(records) if r.release and r.release.statement)
    binding = dataclasses.replace(records[first].release, recipient=recipient)  # type: ignore[arg-type]
    records[first] = dataclasses.replace(records[first], release=binding)
    if rechain:
        prev = ZERO_HASH
        for index, record in enumerate(records):
            records[index] = dataclasses.replace(record, prev=prev)
            prev = records[index].digest()
    return format_audit_log(records)


def test_an_audit_record_altered_to_name_another_recipient_is_refused(
    aw: AuditWorld, node_hsm: NodeHsm, export: AuditExport
) -> None:
    log = export.members["hsm/audit.jsonl"][0]
    other = bytes(range(32))
    error = _refused(
        aw, node_hsm, export, {"hsm/audit.jsonl": _with_recipient(log, other, rechain=False)}
    )
    assert (type(error), error.check) == (AuditChainBroken, "hsm")
    # Rehashed, and without the checkpoint that would catch the rewrite: the chain holds,
    # the statement does not match what its record binds.
    error = _refused(
        aw,
        node_hsm,
        export,
        {
            "hsm/audit.jsonl": _with_recipient(log, other, rechain=True),
            "hsm/checkpoint-0.cose": None,
        },
    )
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "release-record-mismatch",
        "releases:statement-0",
    )


def test_a_statement_with_one_byte_changed_is_refused(
    aw: AuditWorld, node_hsm: NodeHsm, export: AuditExport
) -> None:
    first, second = _statements(export)
    changed = first[:-1] + bytes([first[-1] ^ 1])  # the last byte of its signature
    error = _refused(aw, node_hsm, export, {"hsm/releases.cbor": cbor2.dumps([changed, second])})
    assert (type(error), error.check) == (BadSignature, "releases:statement-0")


def test_a_statement_signed_by_another_hsm_is_refused(
    aw: AuditWorld, node_hsm: NodeHsm, export: AuditExport
) -> None:
    statements = _statements(export)
    # Another HSM of the same vendor (its chain reaches the trusted root): not this node's.
    sibling = _open(MemoryStorage(), bytes(range(48)), node_hsm.device)
    forged = cbor2.dumps([*statements, _grant(sibling, None)])
    error = _refused(aw, node_hsm, export, {"hsm/releases.cbor": forged})
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "release-other-hsm",
        "releases:statement-2",
    )
    # An HSM under a root the auditor does not trust.
    stranger = _open(MemoryStorage(), bytes(range(48)), self_signed_device(NOW, cn="stranger"))
    error = _refused(
        aw, node_hsm, export, {"hsm/releases.cbor": cbor2.dumps([_grant(stranger, None)])}
    )
    assert (type(error), error.check) == (ChainNotTrusted, "releases:statement-0")


def test_without_a_trusted_hsm_root_no_statement_verifies(
    aw: AuditWorld, node_hsm: NodeHsm, export: AuditExport
) -> None:
    data = export.seal(aw.fleet.rot(NODE))
    with pytest.raises(IronrootError) as info:
        verify_bundle(data, _trust(aw, node_hsm, hsm_roots=()))
    assert (type(info.value), info.value.check) == (UnknownIssuer, "releases")


def test_a_node_whose_key_service_kept_nothing_is_skipped_with_the_reason(
    aw: AuditWorld, node_hsm: NodeHsm, export: AuditExport, tmp_path: Path
) -> None:
    missing = tmp_path / "releases.db"
    assert main_export(aw, tmp_path / "none.audit", missing) == 0
    data = (tmp_path / "none.audit").read_bytes()
    report = check_bundle(data, _trust(aw, node_hsm))
    step = report.step("releases")
    assert step.status == "skipped"
    assert "releases.db is absent" in step.lines[0]


def main_export(aw: AuditWorld, out: Path, releases: Path) -> int:
    at = EXPORTED.isoformat().replace("+00:00", "Z")
    argv = ["audit", "export", NODE, "--fleet", str(aw.fleet.directory), "--at", at]
    argv += ["--log-url", aw.world.urls["trusted"], "--out", str(out)]
    return main([*argv, "--releases", str(releases), "--json"])


def test_export_and_verify_from_the_command_line(
    aw: AuditWorld, node_hsm: NodeHsm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust_file = aw.write_trust(tmp_path / "auditor")
    root_pem = load_certificate(_root(node_hsm.device), der_only=True).public_bytes(Encoding.PEM)
    (tmp_path / "auditor" / "hsm-root.pem").write_bytes(root_pem)
    (tmp_path / "auditor" / "hsm-attestation.pub.pem").write_bytes(node_hsm.attestation.to_pem())
    with trust_file.open("a") as handle:
        handle.write('\n[hsm]\nattestation_keys = ["hsm-attestation.pub.pem"]\n')
        handle.write('roots = ["hsm-root.pem"]\n')
    out = tmp_path / "node.audit"
    node = aw.fleet.directory / "nodes" / NODE
    assert main_export(aw, out, node / "releases.db") == 0
    capsys.readouterr()
    assert main(["audit", "verify", str(out), "--trust", str(trust_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    step = next(s for s in report["steps"] if s["name"] == "releases")
    assert step["status"] == "ok"
    # One byte of a statement changed and resealed: exit 1, naming the statement.
    export = aw.collect()
    first, second = _statements(export)
    changed = first[:-1] + bytes([first[-1] ^ 1])
    bad = export.replace(members={"hsm/releases.cbor": (cbor2.dumps([changed, second]), CBOR)})
    out.write_bytes(bad.seal(aw.fleet.rot(NODE)))
    assert main(["audit", "verify", str(out), "--trust", str(trust_file)]) == 1
    printed = capsys.readouterr().out
    assert "bad-signature: release statement 0:" in printed
    assert "broken at releases" in printed


def test_a_checkpoint_of_another_hsm_that_covers_no_record_here_names_no_hsm(
    aw: AuditWorld, node_hsm: NodeHsm, export: AuditExport
) -> None:
    """A checkpoint whose records are all before the bundle's chain starts is not checked
    against it: the HSM it names must not count as the node's. One of a sibling HSM (its key
    trusted too, as an auditor of several nodes holds them), sealed beside a chain cut after
    its size, let that sibling's release statements pass as the node HSM's
    (``release-not-audited`` rather than ``release-other-hsm``)."""
    sibling = _open(MemoryStorage(), bytes(range(48)), node_hsm.device)
    officer = sibling.login("officer", b"officer-credential")
    sibling.add_identity(officer, "auditor", Role.AUDITOR, b"auditor-credential")
    foreign = sibling.audit_checkpoint(sibling.login("auditor", b"auditor-credential"))
    statement = _grant(sibling, None)
    records = parse_audit_log(export.members["hsm/audit.jsonl"][0])
    cut = 6  # past the sibling's checkpoint, before the node's
    changed: dict[str, tuple[bytes, str] | None] = {
        "hsm/audit.jsonl": (format_audit_log(records[cut:]), JSONL),
        "hsm/checkpoint-1.cose": (foreign, "application/cose"),
        "hsm/releases.cbor": (cbor2.dumps([*_statements(export), statement]), CBOR),
    }
    archived = {"hsm/audit-archived": f"records 0 to {cut - 1} are archived (so it says)"}
    data = export.replace(members=changed, absent=archived).seal(aw.fleet.rot(NODE))
    trust = _trust(
        aw, node_hsm, hsm_attestation_keys=(node_hsm.attestation, sibling.attestation_public_key)
    )
    report = check_bundle(data, trust)
    hsm = report.step("hsm")
    assert hsm.status == "ok", hsm
    assert any(line.startswith("reaches hsm/checkpoint-0.cose") for line in hsm.lines)
    assert (
        f"hsm/checkpoint-1.cose covers 5 record(s), all before record {cut}: archived and not "
        "in the bundle, not checked"
    ) in hsm.lines
    error = report.failure.error  # type: ignore[union-attr]
    assert (type(error), error.code, error.check) == (  # type: ignore[union-attr]
        VerificationFailed,
        "release-other-hsm",
        "releases:statement-2",
    )
