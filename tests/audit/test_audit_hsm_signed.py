"""An auditor may require every HSM audit record in a bundle to be covered by a signed audit
checkpoint (``[hsm] require_signed_records``, ``--require-signed-hsm-records``): records
nothing signed vouches for — rewritten, added or cut after the last checkpoint, which verify
offline — or a bundle without the HSM's chain then fail the ``hsm`` step, and the JSON report
says either way how far the signed checkpoints reach."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import NODE, AuditWorld, audit_world, install_node_hsm
from tests.platform.node_world import NOW

from ironroot.audit import AuditExport, AuditTrust, check_bundle
from ironroot.cli import main
from ironroot.crypto import PublicKey
from ironroot.errors import ConfigError, VerificationFailed
from ironroot.hsm import AuditRecord, format_audit_log, parse_audit_log


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-hsm-signed"))


@pytest.fixture(scope="module")
def hsm_key(aw: AuditWorld) -> PublicKey:
    return install_node_hsm(aw, NOW)


@pytest.fixture(scope="module")
def collected(aw: AuditWorld, hsm_key: PublicKey) -> AuditExport:
    return aw.collect()


def _with_record_added(aw: AuditWorld, export: AuditExport) -> tuple[bytes, int]:
    """The bundle with one release record chained after the last signed checkpoint (what
    anyone holding the records can do: the chain's hashes are public); its seq."""
    records = parse_audit_log(export.members["hsm/audit.jsonl"][0])
    last = records[-1]
    added = AuditRecord(
        last.seq + 1, last.time, "service", "release", "forged", "nonce-unknown", last.digest()
    )
    log = format_audit_log([*records, added])
    sealed = export.replace(members={"hsm/audit.jsonl": (log, "application/jsonl")})
    return sealed.seal(aw.fleet.rot(NODE)), added.seq


def test_records_no_checkpoint_signs_fail_when_the_trust_requires_it(
    aw: AuditWorld, hsm_key: PublicKey, collected: AuditExport
) -> None:
    data, seq = _with_record_added(aw, collected)
    trust = aw.trust(hsm_attestation_keys=(hsm_key,))
    lenient = check_bundle(data, trust)
    assert lenient.ok
    assert lenient.hsm_records == {
        "in_bundle": True,
        "require_signed": False,
        "records": seq + 1,
        "first": 0,
        "signed": seq,
        "unsigned": 1,
        "all_signed": False,
    }
    strict = check_bundle(data, dataclasses.replace(trust, require_signed_hsm_records=True))
    failure = strict.failure
    assert failure is not None
    assert failure.name == "hsm"
    error = failure.error
    assert isinstance(error, VerificationFailed)
    assert (error.code, error.check) == ("hsm-records-unsigned", "hsm:signed-records")
    assert error.detail == (
        f"records {seq} to {seq} of the HSM's audit chain follow the last signed audit "
        "checkpoint: nothing signed vouches for them, and the trust requires every record "
        "signed"
    )
    assert strict.hsm_records == {**lenient.hsm_records, "require_signed": True}  # type: ignore[dict-item]
    assert strict.step("releases").status != "not-run"  # the chain verified: it still runs


def test_a_bundle_whose_records_are_all_signed_holds_under_the_requirement(
    aw: AuditWorld, hsm_key: PublicKey, collected: AuditExport
) -> None:
    data = collected.seal(aw.fleet.rot(NODE))
    trust = aw.trust(hsm_attestation_keys=(hsm_key,), require_signed_hsm_records=True)
    report = check_bundle(data, trust)
    assert report.ok
    assert report.hsm_records is not None
    assert report.hsm_records["all_signed"] is True
    assert report.hsm_records["unsigned"] == 0
    assert report.to_json()["hsm_records"] == report.hsm_records


def test_no_checkpoint_at_all_fails_under_the_requirement(
    aw: AuditWorld, hsm_key: PublicKey, collected: AuditExport
) -> None:
    unsigned = collected.replace(members={"hsm/checkpoint-0.cose": None})
    data = unsigned.seal(aw.fleet.rot(NODE))
    trust = aw.trust(hsm_attestation_keys=(hsm_key,), require_signed_hsm_records=True)
    error = check_bundle(data, trust).failure.error  # type: ignore[union-attr]
    assert isinstance(error, VerificationFailed)
    assert (error.code, error.check) == ("hsm-records-unsigned", "hsm:signed-records")
    assert error.detail.startswith("no signed audit checkpoint covers the records 0 to ")


def test_a_bundle_without_the_hsm_chain_fails_under_the_requirement(
    aw: AuditWorld, hsm_key: PublicKey, collected: AuditExport
) -> None:
    """Whoever seals could leave the chain out and state that the node has no HSM."""
    dropped = {n: None for n in collected.members if n.startswith("hsm/")}
    data = collected.replace(
        members=dropped, absent={"hsm": "the node has no HSM (so it says)"}
    ).seal(aw.fleet.rot(NODE))
    lenient = check_bundle(data, aw.trust(hsm_attestation_keys=(hsm_key,)))
    assert lenient.step("hsm").status == "skipped"
    assert lenient.hsm_records == {"in_bundle": False, "require_signed": False}
    trust = aw.trust(hsm_attestation_keys=(hsm_key,), require_signed_hsm_records=True)
    strict = check_bundle(data, trust)
    error = strict.failure.error  # type: ignore[union-attr]
    assert isinstance(error, VerificationFailed)
    assert (error.code, error.check) == ("hsm-records-unsigned", "hsm:signed-records")
    assert error.detail == (
        "the bundle holds no HSM audit chain (the node has no HSM (so it says)): the trust "
        "requires every HSM audit record signed"
    )
    assert strict.hsm_records == {"in_bundle": False, "require_signed": True}


def test_the_requirement_in_the_trust_file_and_on_the_command_line(
    aw: AuditWorld,
    hsm_key: PublicKey,
    collected: AuditExport,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trust_file = aw.write_trust(tmp_path / "auditor")
    (trust_file.parent / "hsm.pub.pem").write_bytes(hsm_key.to_pem())
    text = trust_file.read_text() + '\n[hsm]\nattestation_keys = ["hsm.pub.pem"]\n'
    trust_file.write_text(text)
    assert AuditTrust.load_toml(trust_file).require_signed_hsm_records is False
    strict_file = tmp_path / "auditor" / "strict.toml"
    strict_file.write_text(text + "require_signed_records = true\n")
    assert AuditTrust.load_toml(strict_file).require_signed_hsm_records is True
    strict_file.write_text(text + 'require_signed_records = "yes"\n')
    with pytest.raises(ConfigError, match=r"\[hsm\] require_signed_records is true or false"):
        AuditTrust.load_toml(strict_file)

    data, _seq = _with_record_added(aw, collected)
    bundle = tmp_path / "node.audit"
    bundle.write_bytes(data)
    argv = ["audit", "verify", str(bundle), "--trust", str(trust_file), "--json"]
    capsys.readouterr()
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["hsm_records"]["all_signed"] is False
    assert main([*argv, "--require-signed-hsm-records"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["error"]["code"] == "hsm-records-unsigned"
    assert doc["error"]["check"] == "hsm:signed-records"
    assert doc["hsm_records"]["require_signed"] is True
    assert captured.err.startswith("ironroot: hsm-records-unsigned: hsm: records ")
