"""An audit bundle proves which fleet node it is about: the ``identity`` step.

The seal shows only the RoT's Ueid. A bundle of one node renamed as another — index, registry
row, events and the evidence's node renamed — and resealed by the node's own RoT passed every
step before: nothing the auditor trusted tied a node id to a RoT. Now the node's fleet
credential, signed by the fleet CA the auditor trusts, must name the bundle's node and class
and have been issued on the EAR the attestation step bound to the sealing RoT's evidence.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world
from tests.platform.node_world import NOW

from ironroot.audit import AuditExport, AuditTrust, check_bundle, collect_export, verify_bundle
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    ConfigError,
    IronrootError,
    VerificationFailed,
)
from ironroot.fleet import (
    ADMISSION_DIR,
    FleetCA,
    NodeEvidence,
    attest_node,
    parse_credential,
    quarantine,
    scan_attest,
    stored_attestation,
)
from ironroot.log import HttpLogFetcher

JSON = "application/json"
CBOR = "application/cbor"
PEM = "application/pem-certificate-chain"
CRL = "application/pkix-crl"
CONTROL = "fleet/credential-control.pem"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-identity"))


@pytest.fixture(scope="module")
def collected(aw: AuditWorld) -> AuditExport:
    return aw.collect()


@pytest.fixture(scope="module")
def other(aw: AuditWorld) -> str:
    """A second node of the fleet, admitted (its own RoT, EAR and credentials)."""
    (node,) = aw.fleet.add_nodes(1, vendor_ca=aw.ca, now=NOW)
    attest_node(aw.fleet, node, now=NOW, authority=aw.authority)
    return node


def _credential(aw: AuditWorld, node: str, plane: str = "control") -> bytes:
    return (aw.fleet.directory / "nodes" / node / "credentials" / f"{plane}.cert.pem").read_bytes()


def _seal(aw: AuditWorld, export: AuditExport, **changes: object) -> bytes:
    return export.replace(**changes).seal(aw.fleet.rot(NODE))  # type: ignore[arg-type]


def _renamed(collected: AuditExport, node: str) -> AuditExport:
    """``collected`` told as ``node``'s: index, registry row, events and evidences renamed."""
    members = dict(collected.members)
    record = json.loads(members["node/record.json"][0])
    record["id"] = node
    events = json.loads(members["node/events.json"][0])
    for event in events:
        event["node"] = node
    for name in [n for n in members if n.startswith("attestation/") and n.endswith(".cbor")]:
        evidence = NodeEvidence.decode(members[name][0])  # the EARs' evidence, each
        members[name] = (NodeEvidence(node, evidence.quote, evidence.devices).encode(), CBOR)
    members["node/record.json"] = (json.dumps(record).encode(), JSON)
    members["node/events.json"] = (json.dumps(events).encode(), JSON)
    return dataclasses.replace(collected.replace(members=members), node=node)


def _identity_error(aw: AuditWorld, data: bytes, **trust: object) -> IronrootError:
    report = check_bundle(data, aw.trust(**trust))
    step = report.step("identity")
    assert step.status == "failed", step
    assert step.error is not None
    return step.error


def test_a_real_node_proves_its_identity(aw: AuditWorld, collected: AuditExport) -> None:
    report = verify_bundle(_seal(aw, collected), aw.trust())
    lines = report.step("identity").lines
    assert report.step("identity").status == "ok"
    assert sum(f"names {NODE} (node-7)" in line for line in lines) == 2  # both planes
    assert any("lists none of them" in line for line in lines)


def test_a_bundle_renamed_and_resealed_by_its_own_rot_is_refused(
    aw: AuditWorld, collected: AuditExport, other: str
) -> None:
    data = _seal(aw, _renamed(collected, other))
    with pytest.raises(ChainNotTrusted) as info:
        verify_bundle(data, aw.trust())
    assert (type(info.value), info.value.code, info.value.check) == (
        ChainNotTrusted,
        "node-identity",
        "identity",
    )
    assert f"names {NODE} of class node-7, the bundle is about {other}" in info.value.detail
    # every other step holds: only the credential tells the nodes apart
    report = check_bundle(data, aw.trust())
    assert [s.name for s in report.steps if s.status == "failed"] == ["identity"]
    # without a trusted fleet CA the step says the node id is unproven (and the verdict holds)
    loose = verify_bundle(data, aw.trust(fleet_ca=None)).step("identity")
    assert loose.status == "skipped"
    assert "nothing trusted ties the node id" in loose.lines[0]


def test_a_renamed_bundle_with_the_other_nodes_credentials_is_refused(
    aw: AuditWorld, collected: AuditExport, other: str
) -> None:
    """The other node's certificates are no secret, but they were issued on its EAR, which
    the bundle does not hold (and whose evidence another RoT signed)."""
    renamed = _renamed(collected, other)
    members = {f"fleet/credential-{p}.pem": (_credential(aw, other, p), PEM) for p in PLANES}
    error = _identity_error(aw, _seal(aw, renamed, members=members))
    assert (type(error), error.code) == (ChainNotTrusted, "node-identity")
    assert "was issued on EAR" in error.detail


def test_a_credential_of_another_node_is_refused(
    aw: AuditWorld, collected: AuditExport, other: str
) -> None:
    data = _seal(aw, collected, members={CONTROL: (_credential(aw, other), PEM)})
    error = _identity_error(aw, data)
    assert (type(error), error.code) == (ChainNotTrusted, "node-identity")
    assert f"names {other}" in error.detail


def test_a_credential_from_another_ca_is_refused(
    aw: AuditWorld, collected: AuditExport, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Another CA's credential naming the node and its very EAR, and the trust naming that
    other CA: each refused, whichever way round."""
    genuine = parse_credential(collected.members[CONTROL][0])
    rogue = FleetCA.create(tmp_path_factory.mktemp("rogue-ca"), now=NOW - dt.timedelta(days=1))
    key = PrivateKey.generate(Algorithm.ES384).public_key.to_der()
    forged = rogue.issue(
        key, node=NODE, node_class="node-7", plane="control", ear_id=genuine.ear_id, now=NOW
    )
    error = _identity_error(aw, _seal(aw, collected, members={CONTROL: (forged.pem, PEM)}))
    assert (type(error), error.code, error.check) == (
        ChainNotTrusted,
        "credential-untrusted",
        "identity:control",
    )
    error = _identity_error(aw, _seal(aw, collected), fleet_ca=rogue.der)
    assert (type(error), error.code) == (ChainNotTrusted, "credential-untrusted")
    # nor does another CA's CRL count (it could hide or invent a revocation)
    crl = rogue.crl([], now=EXPORTED)
    error = _identity_error(aw, _seal(aw, collected, members={"fleet/crl.der": (crl, CRL)}))
    assert (type(error), error.code) == (BadSignature, "bad-signature")


def test_a_bundle_without_the_fleet_ca_s_crl_cannot_prove_its_credentials_good(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Whoever seals a bundle can leave the CRL out (or put in one the fleet CA signed before
    the credentials existed): a quarantined node would show revoked credentials as good."""
    error = _identity_error(aw, _seal(aw, collected, members={"fleet/crl.der": None}))
    assert (type(error), error.code) == (VerificationFailed, "crl-absent")
    assert error.detail.startswith("no CRL of the fleet CA (it is not in the bundle)")
    early = aw.authority.ca.crl([], now=NOW - dt.timedelta(minutes=30), hours=3)
    error = _identity_error(aw, _seal(aw, collected, members={"fleet/crl.der": (early, CRL)}))
    assert (type(error), error.code) == (VerificationFailed, "crl-older-than-credential")
    # the CA's CRL signed after the credentials, as every export signs one, proves them
    later = aw.authority.ca.crl([], now=EXPORTED, hours=1)
    data = _seal(aw, collected, members={"fleet/crl.der": (later, CRL)})
    assert check_bundle(data, aw.trust()).step("identity").status == "ok"


def test_a_credential_expired_at_the_export_time_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """The credentials were issued at NOW for an hour; sealed as exported two hours on (the
    node did not attest again), they no longer say whose RoT it is."""
    later = dataclasses.replace(collected, exported_at=NOW + dt.timedelta(hours=2))
    data = _seal(aw, later, members={"fleet/crl.der": None})  # the CRL ran out too
    error = _identity_error(aw, data)
    assert (type(error), error.code) == (CertificateExpired, "credential-expired")
    assert error.check in ("identity:control", "identity:data")
    # and judged at the real export time, the same members hold
    report = check_bundle(_seal(aw, collected), aw.trust(), at=EXPORTED)
    assert report.step("identity").status == "ok"


def test_a_bundle_without_a_credential_is_refused_under_a_fleet_ca(
    aw: AuditWorld, collected: AuditExport
) -> None:
    reason = "the node holds no fleet credential: it was never admitted"
    members: dict[str, tuple[bytes, str] | None] = {
        f"fleet/credential-{p}.pem": None for p in PLANES
    }
    data = _seal(aw, collected, members=members, absent={"fleet/credential": reason})
    with pytest.raises(VerificationFailed) as info:
        verify_bundle(data, aw.trust())
    assert (type(info.value), info.value.code) == (VerificationFailed, "credential-absent")
    assert reason in info.value.detail
    # a bundle exported before credentials were included: refused, saying so
    old = {name: None for name in collected.members if name.startswith("fleet/")}
    error = _identity_error(aw, _seal(aw, collected, members=old))
    assert (type(error), error.code) == (VerificationFailed, "credential-absent")
    assert "predates fleet credentials" in error.detail
    # with no fleet CA trusted, the step is skipped
    assert verify_bundle(data, aw.trust(fleet_ca=None)).step("identity").status == "skipped"


def test_a_quarantined_node_shows_its_revoked_credentials(aw: AuditWorld, other: str) -> None:
    """An operator's quarantine revokes the node's credentials: the bundle's CRL (signed by
    the fleet CA at the export) shows them revoked, and they are judged as of the revocation
    — exported two hours on, after they expired (a held node does not attest again), the
    binding they stated still holds."""
    quarantine(aw.fleet, other, "operator: suspected tampering", now=NOW + dt.timedelta(minutes=5))
    report = verify_bundle(aw.export(other, now=NOW + dt.timedelta(hours=2)), aw.trust())
    lines = report.step("identity").lines
    assert report.step("identity").status == "ok"
    assert sum("REVOKED at 2026-06-01T12:05:00Z" in line for line in lines) == 2
    assert "quarantined" in report.step("node").lines[1]


def test_the_trust_file_names_one_fleet_ca(aw: AuditWorld, tmp_path: Path) -> None:
    path = aw.write_trust(tmp_path)
    assert AuditTrust.load_toml(path).fleet_ca == aw.authority.ca.der
    text = path.read_text()
    path.write_text(text.replace('ca = "fleet-ca.pem"', 'ca = "fleet-ca.pem"\nroots = []'))
    with pytest.raises(ConfigError, match="unknown setting 'roots'"):
        AuditTrust.load_toml(path)
    path.write_text(text)
    (tmp_path / "fleet-ca.pem").write_bytes(aw.authority.ca.pem * 2)
    with pytest.raises(ConfigError, match="exactly one certificate"):
        AuditTrust.load_toml(path)


PLANES = ("control", "data")


# --- a node quarantined by a scan: its credentials name the EAR it was admitted on ----------


@pytest.fixture(scope="module")
def drifted(aw: AuditWorld) -> tuple[str, AuditExport]:
    """A third node, admitted at NOW, its BMC then booted with other firmware and quarantined
    by a scan (a non-affirming EAR) twice, exported: its revoked credentials name the EAR it
    was admitted on, no longer its latest (nor the registry's)."""
    (node,) = aw.fleet.add_nodes(1, vendor_ca=aw.ca, now=NOW)
    admitted = attest_node(aw.fleet, node, now=NOW, authority=aw.authority)
    rot = aw.fleet.rot(node)
    rot.boot(aw.world.bundle("bmc", svn=3, tag="drift"), now=NOW)
    # as the platform's boot does: the PFM in force measured first (it is not what drifted)
    rot.measure_pfm(hashlib.sha384(aw.fleet.node(node).active_image("pfm")).digest())
    scan = scan_attest(aw.fleet, aw.authority)  # what the scanner runs, for this node only
    for minutes in (2, 4):  # a second scan stores a newer EAR still
        assert scan(node, NOW + dt.timedelta(minutes=minutes)) == "quarantined"
    record = aw.fleet.record_of(node)
    assert record.status == "quarantined"
    assert record.ear_id != admitted.ear_id
    with HttpLogFetcher(aw.world.urls["trusted"]) as fetcher:
        return node, collect_export(aw.fleet, node, logs=[fetcher], now=EXPORTED)


def _kept_ears(aw: AuditWorld, node: str) -> set[str]:
    with sqlite3.connect(aw.fleet.database) as db:
        return {str(r[0]) for r in db.execute("SELECT ear_id FROM ears WHERE node = ?", (node,))}


def test_the_admission_keeps_the_ear_a_credential_names_and_no_more(
    aw: AuditWorld, drifted: tuple[str, AuditExport]
) -> None:
    """Each scan stores a newer EAR; the one the node's credentials name stays (it was
    dropped at the second scan before), with its evidence; the node keeps its latest, its
    registry row's and that one: older quarantining EARs go."""
    node, export = drifted
    admitted_on = parse_credential(export.members[CONTROL][0]).ear_id
    before = _kept_ears(aw, node)
    assert admitted_on in before
    assert len(before) == 3
    assert scan_attest(aw.fleet, aw.authority)(node, NOW + dt.timedelta(minutes=6)) == (
        "quarantined"
    )
    after = _kept_ears(aw, node)
    assert len(after) == 3
    assert admitted_on in after
    assert aw.fleet.record_of(node).ear_id in after
    stored = stored_attestation(aw.fleet.directory / ADMISSION_DIR, node, admitted_on)
    assert stored is not None
    assert stored.ear_id == admitted_on
    assert NodeEvidence.decode(stored.evidence or b"").node == node


def _drifted_seal(aw: AuditWorld, node: str, export: AuditExport, **changes: object) -> bytes:
    return export.replace(**changes).seal(aw.fleet.rot(node))  # type: ignore[arg-type]


ISSUED_EAR = "attestation/credential-control-ear.jwt"
ISSUED_EVIDENCE = "attestation/credential-control-evidence.cbor"


def test_a_node_quarantined_by_a_scan_proves_its_identity(
    aw: AuditWorld, drifted: tuple[str, AuditExport]
) -> None:
    """Before, the bundle held only the latest EAR, the credentials named the one the node
    was admitted on, and ``identity`` failed ``node-identity`` for exactly the node an
    auditor most wants to examine. Now the admission keeps that EAR and its evidence, the
    export carries them (once: both planes name it), ``attestation`` verifies them as it does
    the latest, and the verdict is the quarantine's: the drifted boot, the latest EAR."""
    node, export = drifted
    assert ISSUED_EAR in export.members
    assert ISSUED_EVIDENCE in export.members
    assert not any(n.startswith("attestation/credential-data-") for n in export.members)
    admitted_on = parse_credential(export.members[CONTROL][0]).ear_id
    report = check_bundle(_drifted_seal(aw, node, export), aw.trust())
    assert [s.name for s in report.steps if s.status == "failed"] == ["measured-boot"]
    assert "registry: quarantined since 2026-06-01T12:04:00Z" in report.step("node").lines[1]
    attestation = report.step("attestation").lines
    assert "status warning" in attestation[0]  # the latest EAR: the node's state
    assert any(
        f"credential's EAR {admitted_on} (what the node was admitted on)" in line
        and "status affirming" in line
        for line in attestation
    )
    identity = report.step("identity")
    assert identity.status == "ok"
    assert (
        sum(f"issued on EAR {admitted_on} (affirming, verified" in x for x in identity.lines) == 2
    )
    assert sum("REVOKED at 2026-06-01T12:02:00Z" in line for line in identity.lines) == 2


def test_a_quarantined_bundle_renamed_with_the_other_nodes_admitted_ear_is_refused(
    aw: AuditWorld, collected: AuditExport, drifted: tuple[str, AuditExport]
) -> None:
    """The renamed-bundle attack on a quarantined node: told as ``node-0001``'s with its
    credentials, and its EAR and evidence carried as what they were issued on, resealed by
    the drifted node's RoT. The attestation step refuses that EAR (another RoT signed its
    evidence) and the credentials name no EAR the sealing RoT backs."""
    node, export = drifted
    renamed = _renamed(export, NODE)
    members = {f"fleet/credential-{p}.pem": (_credential(aw, NODE, p), PEM) for p in PLANES}
    members[ISSUED_EAR] = collected.members["attestation/ear.jwt"]
    members[ISSUED_EVIDENCE] = collected.members["attestation/evidence.cbor"]
    report = check_bundle(_drifted_seal(aw, node, renamed, members=members), aw.trust())
    error = report.step("attestation").error
    assert error is not None
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "ear-evidence-mismatch",
        "attestation:credential-control",
    )
    assert "the bundle is sealed by" in error.detail
    error = report.step("identity").error
    assert error is not None
    assert (type(error), error.code, error.check) == (ChainNotTrusted, "node-identity", "identity")
    # renamed alone, with its own credentials: they name the drifted node
    report = check_bundle(_drifted_seal(aw, node, renamed), aw.trust())
    assert report.step("attestation").status == "ok"
    error = report.step("identity").error
    assert error is not None
    assert (type(error), error.code) == (ChainNotTrusted, "node-identity")
    assert f"names {node} of class node-7, the bundle is about {NODE}" in error.detail


def test_an_admitted_on_ear_swapped_for_another_nodes_is_refused(
    aw: AuditWorld, collected: AuditExport, drifted: tuple[str, AuditExport]
) -> None:
    """The EAR the credentials were issued on, swapped for another node's (with its evidence,
    or alone): refused by the attestation step, and the credentials' EAR goes unverified."""
    node, export = drifted
    theirs = collected.members["attestation/ear.jwt"]
    for members, expected in (
        (
            {ISSUED_EAR: theirs, ISSUED_EVIDENCE: collected.members["attestation/evidence.cbor"]},
            (VerificationFailed, "not-the-node"),
        ),
        ({ISSUED_EAR: theirs}, (VerificationFailed, "ear-evidence-mismatch")),
    ):
        report = check_bundle(_drifted_seal(aw, node, export, members=members), aw.trust())
        error = report.step("attestation").error
        assert error is not None
        assert (type(error), error.code, error.check) == (
            *expected,
            "attestation:credential-control",
        )
        error = report.step("identity").error
        assert error is not None
        assert (type(error), error.code) == (ChainNotTrusted, "node-identity")
        assert "not on an EAR the bundle holds and the attestation step verified" in error.detail


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"id": "node-0-other"}, "the registry row is not the sealed node's"),
        ({"class": "node-8"}, "the registry row names another node class"),
    ],
)
def test_a_registry_row_of_another_node_or_class_is_not_the_node(
    aw: AuditWorld, collected: AuditExport, change: dict[str, str], detail: str
) -> None:
    """Only the registry row tells another node or class; the index, the events and the
    evidence are the sealed node's: the node step refuses it (``not-the-node``)."""
    record = json.loads(collected.members["node/record.json"][0])
    record.update(change)
    members = {"node/record.json": (json.dumps(record).encode(), JSON)}
    report = check_bundle(_seal(aw, collected, members=members), aw.trust())
    step = report.step("node")
    assert step.status == "failed", step
    assert step.error is not None
    assert (type(step.error), step.error.code) == (VerificationFailed, "not-the-node")
    assert detail in str(step.error)
