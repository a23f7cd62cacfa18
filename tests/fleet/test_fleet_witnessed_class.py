"""A class whose platform requires witnesses ships witnessed statements (docs/platform.md,
"Witnesses"): the fleet's verifier takes their Transparent Statements as the class's
endorsements, as a node keeps them as its evidence."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from tests.fleet.admission_world import PROVIDER, AdmissionWorld, admission_world
from tests.fleet.fleet_world import node_class
from tests.fleet.witnessed_world import witness, witnessed_class, witnessed_trust
from tests.platform.node_world import NOW, OTHER, VENDOR, World, make_world, sfr_report

from ironroot.attestation import AR4SI, verify_ear
from ironroot.cose import create_statement, encode_cbor
from ironroot.crypto import Algorithm, load_certificate
from ironroot.errors import AdmissionDenied, MalformedStatement, PolicyRejected
from ironroot.firmware import FirmwareBundle
from ironroot.fleet import (
    CRL_CONTENT_TYPE,
    AdmissionAuthority,
    Fleet,
    NodeClass,
    attest_node,
)
from ironroot.fleet._scan import _subjects
from ironroot.fleet._verifier import class_endorsements
from ironroot.platform import SafeRequirement
from ironroot.rot import VendorCA
from ironroot.safe import sfr_statement, sign_report
from ironroot.transparency import WITNESSED_STATEMENT_FORMAT


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("fleet-witnessed-world")) as w:
        yield w


def _witnessed(statement: bytes) -> bytes:
    # The checkpoint and proof are the node's to check when it takes an update; what the
    # verifier appraises against is the statement in them.
    return encode_cbor(
        {
            "format": WITNESSED_STATEMENT_FORMAT,
            "statement": statement,
            "checkpoint": b"a cosigned checkpoint",
            "proof": [],
        }
    )


def _witnessed_class(world: World) -> NodeClass:
    klass = node_class(world)
    return dataclasses.replace(
        klass,
        statements={c: tuple(map(_witnessed, s)) for c, s in klass.statements.items()},
    )


def test_a_scan_follows_the_subjects_of_a_classes_witnessed_statements(world: World) -> None:
    # The products a class runs are the subjects of its statements: the log scan follows
    # them (new findings, revocations), witnessed or not.
    plain = _subjects(node_class(world))
    assert _subjects(_witnessed_class(world)) == plain
    assert len(plain) > 2


def test_a_classes_witnessed_statements_are_its_endorsements(world: World) -> None:
    klass = node_class(world)
    witnessed = _witnessed_class(world)
    plain = class_endorsements(klass, vendor_roots=(), now=NOW)
    assert plain.devices
    seen = class_endorsements(witnessed, vendor_roots=(), now=NOW)
    assert not [line for line in seen.rejected if "not a transparent statement" in line]
    assert seen.rejected == plain.rejected
    assert {n: list(v) for n, v in seen.devices.items()} == {
        n: list(v) for n, v in plain.devices.items()
    }
    assert all(len(v) for v in seen.devices.values())


# --- a class's SAFE reviews and revocations, witnessed ----------------------------------------
#
# Nodes made from a class whose trust requires witnesses (each statement really witnessed:
# tests/fleet/witnessed_world.py); the fleet's verifier reads the class's statements.


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _review(aw: AdmissionWorld, component: str, cvss: tuple[float, ...] = ()) -> bytes:
    """A logged OCP SAFE review of ``component``'s release 1.0."""
    digest = FirmwareBundle.parse(aw.world.release(component, "1.0").bundle).manifest_digest()
    sfr = sign_report(sfr_report(digest, cvss), aw.provider, PROVIDER)
    statement = sfr_statement(sfr, aw.world.other_key, iss=OTHER)
    return aw.world.trusted.register(statement).transparent_statement


def _nic_reviewed_class(aw: AdmissionWorld) -> NodeClass:
    """Reviews required of the BMC and the NIC, each reviewed (clean), witnessed."""
    base = aw.node_class(safe="medium")
    safe = {c: SafeRequirement(aw.providers, "medium") for c in ("bmc", "nic")}
    statements = {**base.statements, "nic": (*base.statements["nic"], _review(aw, "nic"))}
    klass = dataclasses.replace(base, trust=aw.world.trust(safe=safe), statements=statements)
    return witnessed_class(aw.world, klass)


def _changed(fleet: Fleet, klass: NodeClass) -> tuple[Fleet, AdmissionAuthority]:
    """The operator changed the class after its nodes were made."""
    klass.save(fleet.directory / "class" / klass.name)
    reopened = Fleet.open(fleet.directory)
    return reopened, AdmissionAuthority.open(reopened)


def _denied(fleet: Fleet, authority: AdmissionAuthority, node: str, at: dt.datetime) -> Any:
    with pytest.raises(AdmissionDenied) as caught:
        attest_node(fleet, node, now=at, authority=authority)
    assert caught.value.code == "admission-denied"
    assert fleet.record_of(node).status == "quarantined"
    return verify_ear(authority.ear(node), [authority.verifier_key], now=at)


def test_a_classes_witnessed_component_reviews_count(aw: AdmissionWorld, tmp_path: Path) -> None:
    # Old behaviour: the component reviews were read from the class's statements without
    # unwrapping the witnessed ones: no review of the NIC was found, and every node was
    # quarantined "safe-review: no logged OCP SAFE review of the nic firmware".
    klass = _nic_reviewed_class(aw)
    fleet, authority = aw.fleet(tmp_path / "fleet", 1, klass=klass)
    assert fleet.node("node-0001").config.trust.witnesses is not None
    assert attest_node(fleet, "node-0001", now=NOW, authority=authority).status == "admitted"
    # a witnessed later review with an open finding above "medium" refuses it, for its finding
    finding = witness(aw.world, _review(aw, "nic", (8.1,)))
    statements = {**klass.statements, "nic": (*klass.statements["nic"], finding)}
    fleet, authority = _changed(fleet, dataclasses.replace(klass, statements=statements))
    at = NOW + dt.timedelta(minutes=1)
    nic = _denied(fleet, authority, "node-0001", at).submods["nic"]
    assert nic.trust_vector["executables"] == AR4SI.UNSAFE_RUNTIME
    assert any("lists an open issue with CVSS 8.1" in r for r in nic.reasons), nic.reasons


def _crl_statement(aw: AdmissionWorld, serial: int) -> bytes:
    """A logged revocation statement: the vendor CA's CRL listing ``serial``."""
    ca = aw.vendor_ca
    name = load_certificate(ca.ecc_certificate, der_only=True).subject
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=7))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - dt.timedelta(minutes=30))
            .build()
        )
        .sign(ca.ecc_key.raw, hashes.SHA384())  # type: ignore[arg-type]
        .public_bytes(Encoding.DER)
    )
    statement = create_statement(
        aw.world.statement_key,
        crl,
        iss=VENDOR,
        sub="pkg:ca/acme/vendor-ca",
        content_type=CRL_CONTENT_TYPE,
    )
    return aw.world.trusted.register(statement).transparent_statement


def test_a_classes_witnessed_revocation_statement_revokes(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    # Old behaviour: the CRL statements among a class's statements were read without
    # unwrapping the witnessed ones: a witnessed revocation was passed over and the node
    # whose DeviceID it revokes stayed admitted.
    klass = witnessed_class(aw.world, aw.node_class())
    fleet, authority = aw.fleet(tmp_path / "fleet", 2, klass=klass)
    for node in fleet.node_ids():
        assert attest_node(fleet, node, now=NOW, authority=authority).status == "admitted"
    der = fleet.rot("node-0001").idevid_certificate(Algorithm.ES384)
    serial = load_certificate(der, der_only=True).serial_number
    revocation = witness(aw.world, _crl_statement(aw, serial))
    statements = {**klass.statements, "bmc": (*klass.statements["bmc"], revocation)}
    fleet, authority = _changed(fleet, dataclasses.replace(klass, statements=statements))
    at = NOW + dt.timedelta(minutes=5)
    rot = _denied(fleet, authority, "node-0001", at).submods["rot"]
    assert rot.trust_vector["instance-identity"] == AR4SI.UNTRUSTWORTHY_INSTANCE
    assert any(r.startswith("revoked: certificate ") and f"{serial:#x}" in r for r in rot.reasons)
    assert attest_node(fleet, "node-0002", now=at, authority=authority).status == "admitted"


def test_a_witnessed_endorsement_is_added_as_its_transparent_statement(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    # Old behaviour: `fleet attest --endorse` of a witnessed statement (what the operator of a
    # class that requires witnesses is given) was refused, MalformedStatement: not a
    # transparent statement.
    klass = witnessed_class(aw.world, aw.node_class(safe="medium"))
    fleet, authority = aw.fleet(tmp_path / "fleet", 1, klass=klass)
    safe = {c: SafeRequirement(aw.providers, "medium") for c in ("bmc", "nic")}
    trust = dataclasses.replace(klass.trust, safe=safe)
    fleet, authority = _changed(fleet, dataclasses.replace(klass, trust=trust))
    nic = _denied(fleet, authority, "node-0001", NOW).submods["nic"]
    assert any(r.startswith("safe-review: no logged OCP SAFE review") for r in nic.reasons)
    review = _review(aw, "nic")
    name = authority.add_endorsement(witness(aw.world, review), now=NOW)
    assert authority.endorsements() == [(f"endorsement {name}", review)]
    assert authority.add_endorsement(review, now=NOW) == name  # the same statement
    at = NOW + dt.timedelta(minutes=1)
    assert attest_node(fleet, "node-0001", now=at, authority=authority).status == "admitted"
    # a witnessed statement that is damaged is no transparent statement
    with pytest.raises(MalformedStatement):
        authority.add_endorsement(witness(aw.world, review)[:-1], now=NOW)


def test_nodes_refused_at_manufacture_leave_nothing_behind(world: World, tmp_path: Path) -> None:
    # A class whose trust requires witnesses, its statements given plain: manufacturing
    # refuses it as an update would. Old behaviour: the refused nodes' folders were left
    # unregistered, and every later `fleet add` stopped at them (Conflict: exists but is not
    # in the registry) once the class was fixed.
    plain = node_class(world)
    klass = dataclasses.replace(plain, trust=witnessed_trust(world, plain.trust))
    fleet = Fleet.create(tmp_path / "fleet", node_class=klass)
    ca = VendorCA.generate(now=NOW - dt.timedelta(days=2))
    with pytest.raises(PolicyRejected) as refused:
        fleet.add_nodes(2, vendor_ca=ca, now=NOW)
    assert (refused.value.code, refused.value.check) == ("not-witnessed", "pfm")
    assert fleet.records() == []
    assert list((fleet.directory / "nodes").iterdir()) == []
    witnessed_class(world, plain).save(fleet.directory / "class" / klass.name)
    fleet = Fleet.open(fleet.directory)
    assert fleet.add_nodes(1, vendor_ca=ca, now=NOW) == ["node-0001"]
    assert fleet.node("node-0001").config.trust.witnesses is not None
