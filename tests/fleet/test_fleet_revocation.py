"""Revoked DICE and SPDM certificates: a node whose RoT's DeviceID (IDevID) or one of whose
devices' certificates a CRL revokes is refused and quarantined; the CRL may be in the fleet's
trust configuration (``admission/crls/``) or a statement on the log; a new one triggers the
scan. CRLs are built with ``cryptography`` and signed by the real issuing CA's key. Revocation
fails closed: who carried a CRL, how it names its issuer, its dates and a CRL that cannot be
read never let a listed certificate through.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.fleet.witnessed_world import witness
from tests.platform.node_world import NOW, OTHER, VENDOR, World, make_world

from ironroot.attestation import AR4SI, TrustTier, verify_ear
from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey, load_certificate
from ironroot.errors import AdmissionDenied, MalformedCertificate, StorageError, UnknownIssuer
from ironroot.fleet import (
    CRL_CONTENT_TYPE,
    AdmissionAuthority,
    Fleet,
    LogTriggers,
    RevocationWatch,
    Scanner,
    add_crl,
    attest_node,
    scan_attest,
)
from ironroot.platform import PlatformDevice
from ironroot.rot import parse_certificate
from ironroot.spdm import DeviceIdentity

LATER = NOW + dt.timedelta(minutes=5)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("revocation-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


@pytest.fixture
def fleet(aw: AdmissionWorld, tmp_path: Path) -> tuple[Fleet, AdmissionAuthority]:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    for node in fleet.node_ids():
        assert attest_node(fleet, node, now=NOW, authority=authority).status == "admitted"
    return fleet, authority


def _crl(
    issuer: bytes,
    key: PrivateKey,
    *serials: int,
    days: int = 7,
    extension: x509.ExtensionType | None = None,
    name: x509.Name | None = None,
    this_update: dt.datetime = NOW - dt.timedelta(hours=1),
) -> bytes:
    """A CRL (DER) of ``issuer`` (its DER certificate; or named ``name``) signed with ``key``,
    with a critical ``extension`` when one is given."""
    name = name or load_certificate(issuer, der_only=True).subject
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(this_update)
        .next_update(NOW + dt.timedelta(days=days))
    )
    if extension is not None:
        builder = builder.add_extension(extension, critical=True)
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - dt.timedelta(minutes=30))
            .build()
        )
    return builder.sign(key.raw, hashes.SHA384()).public_bytes(Encoding.DER)  # type: ignore[arg-type]


def _crl_statement(key: PrivateKey, crl: bytes, *, iss: str, sub: str) -> bytes:
    """A revocation statement (content type ``application/pkix-crl``) of ``crl``."""
    return create_statement(key, crl, iss=iss, sub=sub, content_type=CRL_CONTENT_TYPE)


def _idevid_serial(fleet: Fleet, node: str) -> int:
    der = fleet.rot(node).idevid_certificate(Algorithm.ES384)
    return load_certificate(der, der_only=True).serial_number


def _refused(
    fleet: Fleet, authority: AdmissionAuthority, node: str, submod: str, at: dt.datetime = LATER
) -> tuple[str, ...]:
    with pytest.raises(AdmissionDenied) as caught:
        attest_node(fleet, node, now=at, authority=authority)
    assert caught.value.code == "admission-denied"
    assert fleet.record_of(node).status == "quarantined"
    result = verify_ear(authority.ear(node), [authority.verifier_key], now=at)
    appraisal = result.submods[submod]
    assert appraisal.status is TrustTier.CONTRAINDICATED
    assert appraisal.trust_vector["instance-identity"] == AR4SI.UNTRUSTWORTHY_INSTANCE
    return appraisal.reasons


def test_a_revoked_device_id_in_the_fleets_crls_is_refused(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    fleet_, authority = fleet
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    name = add_crl(fleet_, _crl(ca.ecc_certificate, ca.ecc_key, serial), now=NOW)
    assert (fleet_.directory / "admission" / "crls" / name).is_file()
    reasons = _refused(fleet_, authority, "node-0001", "rot")
    assert any(r.startswith("revoked: certificate ") and f"{serial:#x}" in r for r in reasons)
    assert "rot: revoked: certificate" in fleet_.record_of("node-0001").reason
    # the CRL revokes that DeviceID only
    assert attest_node(fleet_, "node-0002", now=LATER, authority=authority).status == "admitted"
    assert [e.kind for e in fleet_.events(node=None) if e.kind == "crl-added"] == ["crl-added"]


def test_crls_that_are_not_the_issuers_or_revoke_nothing_change_nothing(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    fleet_, authority = fleet
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    forger = PrivateKey.generate(Algorithm.ES384)  # the vendor CA's name, another key
    add_crl(fleet_, _crl(ca.ecc_certificate, forger, serial), now=NOW)
    add_crl(fleet_, _crl(ca.ecc_certificate, ca.ecc_key, serial + 1), now=NOW)
    assert attest_node(fleet_, "node-0001", now=LATER, authority=authority).status == "admitted"
    with pytest.raises(MalformedCertificate):
        add_crl(fleet_, b"not a CRL", now=NOW)


def _point(*, users: bool = False, cas: bool = False) -> x509.IssuingDistributionPoint:
    return x509.IssuingDistributionPoint(None, None, users, cas, None, False, False)


@pytest.mark.parametrize(
    ("extension", "why"),
    [
        (x509.DeltaCRLIndicator(1), "a delta CRL (base CRL number 1), not a complete CRL"),
        (
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"),
            "unknown critical extension 1.2.3.4",
        ),
    ],
    ids=["delta", "unknown-critical"],
)
def test_a_crl_of_the_issuer_that_cannot_decide_revocation_refuses(
    aw: AdmissionWorld,
    fleet: tuple[Fleet, AdmissionAuthority],
    extension: x509.ExtensionType,
    why: str,
) -> None:
    fleet_, authority = fleet
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    # the vendor CA's, listing another serial: not read as "the DeviceID is not revoked"
    hostile = _crl(ca.ecc_certificate, ca.ecc_key, serial + 1, extension=extension)
    name = add_crl(fleet_, hostile, now=NOW)
    reasons = _refused(fleet_, authority, "node-0001", "rot")
    undecided = [r for r in reasons if r.startswith("revocation undecided: certificate ")]
    assert len(undecided) == 1
    assert f"(serial {serial:#x})" in undecided[0]
    issuer = load_certificate(ca.ecc_certificate, der_only=True).subject.rfc4514_string()
    assert undecided[0].endswith(
        f"CRL admission/crls/{name} of {issuer!r} cannot decide revocation: {why}"
    )


def test_a_crl_whose_scope_leaves_the_device_id_out_does_not_revoke_it(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    fleet_, authority = fleet
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    der = fleet_.rot("node-0001").idevid_certificate(Algorithm.ES384)
    assert (
        load_certificate(der, der_only=True)
        .extensions.get_extension_for_class(x509.BasicConstraints)
        .value.ca
    )  # the DeviceID is a CA: it issues the LDevID
    # a CRL only of end-entity certificates lists its serial: not a revocation of it
    users = _crl(ca.ecc_certificate, ca.ecc_key, serial, extension=_point(users=True))
    add_crl(fleet_, users, now=NOW)
    assert attest_node(fleet_, "node-0001", now=LATER, authority=authority).status == "admitted"
    # one only of CA certificates covers it
    cas = _crl(ca.ecc_certificate, ca.ecc_key, serial, extension=_point(cas=True))
    add_crl(fleet_, cas, now=NOW)
    reasons = _refused(fleet_, authority, "node-0001", "rot", LATER + dt.timedelta(minutes=1))
    assert any(r.startswith("revoked: certificate ") and f"{serial:#x}" in r for r in reasons)


def test_a_revocation_statement_on_the_log_is_refused_and_triggers_the_class(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    fleet_, authority = fleet
    triggers = LogTriggers(fleet_, [aw.world.urls["trusted"]], clock=lambda: NOW)
    triggers.poll()  # what was logged before
    ca = aw.vendor_ca
    crl = _crl(ca.ecc_certificate, ca.ecc_key, _idevid_serial(fleet_, "node-0002"))
    statement = _crl_statement(aw.world.statement_key, crl, iss=VENDOR, sub="pkg:ca/acme/vendor-ca")
    logged = aw.world.trusted.register(statement).transparent_statement
    new = triggers.poll()
    assert [(e.iss, e.sub) for e in new] == [(VENDOR, "pkg:ca/acme/vendor-ca")]
    authority.add_endorsement(logged, now=NOW)
    report = Scanner(fleet_, scan_attest(fleet_, authority), period=86400).scan(LATER, new)
    assert report.reasons == {"node-0001": "triggered", "node-0002": "triggered"}
    assert report.quarantined == ["node-0002"]
    record = fleet_.record_of("node-0002")
    assert record.status == "quarantined"
    assert "rot: revoked: certificate" in record.reason


def test_a_revocation_statement_not_from_the_log_counts_for_nothing(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """A CRL statement whose receipts the class's transparency services did not sign is
    passed over (it cannot be an endorsement of the fleet at all)."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    crl = _crl(ca.ecc_certificate, ca.ecc_key, _idevid_serial(fleet_, "node-0001"))
    statement = _crl_statement(aw.world.statement_key, crl, iss=VENDOR, sub="pkg:ca/acme")
    rogue = aw.world.untrusted.register(statement).transparent_statement
    with pytest.raises(UnknownIssuer) as caught:
        authority.add_endorsement(rogue, now=NOW)
    assert caught.value.code == "untrusted-service"
    assert attest_node(fleet_, "node-0001", now=LATER, authority=authority).status == "admitted"


def test_a_new_crl_file_triggers_the_scan(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    fleet_, authority = fleet
    watch = RevocationWatch(fleet_, authority.endorsements)
    assert watch.poll() == []
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    add_crl(fleet_, _crl(ca.ecc_certificate, ca.ecc_key, serial), now=NOW)
    events = watch.poll()
    assert [e.sub for e in events] == [fleet_.node_class("node-7").trust.platform]
    assert watch.poll() == []
    report = Scanner(fleet_, scan_attest(fleet_, authority), period=86400).scan(LATER, events)
    assert set(report.reasons.values()) == {"triggered"}
    assert report.quarantined == ["node-0001"]
    assert fleet_.record_of("node-0002").status == "admitted"
    # beside a log's triggers (fleet serve --scan --watch-log): those come first
    chained = RevocationWatch(fleet_, authority.endorsements, then=lambda: ["log event"])
    assert chained.poll() == ["log event"]


@pytest.mark.parametrize("revoked", ["leaf", "device-ca"])
def test_a_revoked_spdm_device_certificate_is_refused(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, revoked: str
) -> None:
    """The devices' CA keys are kept (DeviceIdentity.generate drops them): the NIC's device
    CA revokes the NIC's certificate (its DeviceID, the SPDM leaf); or the root revokes the
    device CA (the intermediate), which takes every certificate under it."""
    from ironroot.spdm import _identity

    cas: dict[str, tuple[bytes, PrivateKey, bytes, PrivateKey]] = {}

    def generate(
        cls: type[DeviceIdentity],
        algorithm: Algorithm = Algorithm.ES384,
        *,
        now: dt.datetime,
        common_name: str = "Ironroot SPDM Device",
        days: int = 3650,
    ) -> DeviceIdentity:
        root_key, ca_key, key = (PrivateKey.generate(algorithm) for _ in range(3))
        start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)
        common = {"not_before": start, "not_after": end}
        root = _identity._certificate(
            subject=f"{common_name} Root CA",
            key=root_key,
            issuer=f"{common_name} Root CA",
            issuer_key=root_key,
            ca=True,
            path_length=None,
            **common,
        )
        ca = _identity._certificate(
            subject=f"{common_name} CA",
            key=ca_key,
            issuer=f"{common_name} Root CA",
            issuer_key=root_key,
            ca=True,
            path_length=0,
            **common,
        )
        leaf = _identity._certificate(
            subject=common_name,
            key=key,
            issuer=f"{common_name} CA",
            issuer_key=ca_key,
            ca=False,
            path_length=None,
            **common,
        )
        cas[common_name] = (root, root_key, ca, ca_key)
        return cls(key, (root, ca, leaf))

    monkeypatch.setattr(DeviceIdentity, "generate", classmethod(generate))
    fleet, authority = aw.fleet(tmp_path / "fleet", 1, fresh=True)  # keys kept: made here
    monkeypatch.undo()
    assert attest_node(fleet, "node-0001", now=NOW, authority=authority).status == "admitted"
    root, root_key, ca, ca_key = cas["Platform device nic"]
    device = PlatformDevice.open(fleet.directory / "nodes" / "node-0001" / "devices", "nic")
    if revoked == "leaf":
        leaf = load_certificate(device.chain[-1], der_only=True)
        add_crl(fleet, _crl(ca, ca_key, leaf.serial_number), now=NOW)
    else:
        intermediate = load_certificate(ca, der_only=True)
        add_crl(fleet, _crl(root, root_key, intermediate.serial_number), now=NOW)
    reasons = _refused(fleet, authority, "node-0001", "nic")
    assert any("revoked: certificate" in r and "Platform device nic" in r for r in reasons)


# --- a revocation statement's own validity (CWT exp / nbf): it fails closed -------------------


def _logged_crl(aw: AdmissionWorld, fleet_: Fleet, node: str, **when: int) -> bytes:
    ca = aw.vendor_ca
    crl = _crl(ca.ecc_certificate, ca.ecc_key, _idevid_serial(fleet_, node))
    statement = create_statement(
        aw.world.statement_key,
        crl,
        iss=VENDOR,
        sub="pkg:ca/acme/vendor-ca",
        content_type=CRL_CONTENT_TYPE,
        **when,
    )
    return aw.world.trusted.register(statement).transparent_statement


def test_a_revocation_statement_before_its_nbf_already_revokes(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Its nbf is after the appraisal (the log, its clock at NOW, takes an nbf up to its
    max_clock_skew ahead): a revocation is never postponed by its statement's claims —
    counting it early fails closed."""
    fleet_, authority = fleet
    nbf = int(NOW.timestamp()) + 300
    at = NOW + dt.timedelta(seconds=60)
    assert nbf > at.timestamp()
    authority.add_endorsement(_logged_crl(aw, fleet_, "node-0002", nbf=nbf), now=NOW)
    reasons = _refused(fleet_, authority, "node-0002", "rot", at=at)
    assert any(r.startswith("revoked: certificate ") for r in reasons)


def test_an_expired_revocation_statement_still_revokes(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Past its statement's exp a revocation stands (as past its CRL's nextUpdate): an
    expiring statement must not un-revoke a certificate, which would fail open."""
    fleet_, authority = fleet
    exp = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    logged = _logged_crl(aw, fleet_, "node-0002", exp=int(exp.timestamp()))
    authority.add_endorsement(logged, now=NOW)
    after = exp + dt.timedelta(days=1)
    reasons = _refused(fleet_, authority, "node-0002", "rot", at=after)
    assert any(r.startswith("revoked: certificate ") for r in reasons)


# --- where a CRL comes from does not decide whether it revokes: its issuer's signature does ----


def _reason(
    cert_der: bytes,
    signer_der: bytes,
    label: str,
    when: dt.datetime = NOW - dt.timedelta(minutes=30),
) -> str:
    """The exact reason of a revocation of ``cert_der`` by a CRL ``signer_der`` signed."""
    cert, signer = parse_certificate(cert_der), parse_certificate(signer_der)
    assert cert.serial is not None
    return (
        f"revoked: certificate {cert.subject} (serial {cert.serial:#x}) is revoked by the CRL "
        f"of {signer.subject} ({label}), since {when.isoformat()}"
    )


def _revoked_exactly(
    fleet_: Fleet, authority: AdmissionAuthority, node: str, reason: str, at: dt.datetime = LATER
) -> None:
    """``node`` refused (``AdmissionDenied`` ``admission-denied``), quarantined for ``reason``
    alone: its ``rot`` instance-identity 96 with exactly that reason."""
    reasons = _refused(fleet_, authority, node, "rot", at)
    assert [r for r in reasons if r.startswith(("revoked", "revocation"))] == [reason]
    assert fleet_.record_of(node).reason == f"attestation contraindicated: rot: {reason}"


def _idevid(fleet_: Fleet, node: str) -> bytes:
    return fleet_.rot(node).idevid_certificate(Algorithm.ES384)


def test_a_crl_statement_by_an_issuer_the_class_does_not_allow_still_revokes(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Old behaviour: a logged CRL statement counted only when its CWT issuer was one the
    class trust allows; the vendor CA's own CRL, logged by someone else (OTHER), was passed
    over and the revoked DeviceID admitted — a revocation dropped for who carried it."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    crl = _crl(ca.ecc_certificate, ca.ecc_key, _idevid_serial(fleet_, "node-0001"))
    statement = _crl_statement(aw.world.other_key, crl, iss=OTHER, sub="pkg:ca/acme/vendor-ca")
    assert OTHER not in {
        i for names in fleet_.node_class("node-7").trust.issuers.values() for i in names
    }
    logged = aw.world.trusted.register(statement).transparent_statement
    name = authority.add_endorsement(logged, now=NOW)
    reason = _reason(_idevid(fleet_, "node-0001"), ca.ecc_certificate, f"endorsement {name}")
    _revoked_exactly(fleet_, authority, "node-0001", reason)
    assert attest_node(fleet_, "node-0002", now=LATER, authority=authority).status == "admitted"


def test_a_crl_statement_whose_receipts_do_not_verify_still_revokes_and_says_so(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Old behaviour: a CRL statement among the fleet's endorsements whose receipts the class's
    transparency services did not sign was passed over. The vendor CA signed the CRL: it
    revokes, and the reason names it as not logged for the class (the audit trail)."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    crl = _crl(ca.ecc_certificate, ca.ecc_key, _idevid_serial(fleet_, "node-0001"))
    statement = _crl_statement(aw.world.statement_key, crl, iss=VENDOR, sub="pkg:ca/acme")
    rogue = aw.world.untrusted.register(statement).transparent_statement
    (authority.directory / "endorsements" / "rogue.ts").write_bytes(rogue)
    label = "endorsement rogue.ts; its receipts do not verify for the class"
    reason = _reason(_idevid(fleet_, "node-0001"), ca.ecc_certificate, label)
    _revoked_exactly(fleet_, authority, "node-0001", reason)


def _renamed(
    issuer: bytes, change: Callable[[x509.NameAttribute], x509.NameAttribute]
) -> x509.Name:
    """The subject of ``issuer`` (DER certificate) with each attribute ``change``d."""
    name = load_certificate(issuer, der_only=True).subject
    return x509.Name([change(a) for a in name])


def _printable(attribute: x509.NameAttribute) -> x509.NameAttribute:
    return x509.NameAttribute(attribute.oid, attribute.value, _type=_ASN1Type.PrintableString)


def _shouted(attribute: x509.NameAttribute) -> x509.NameAttribute:
    value = str(attribute.value)
    return x509.NameAttribute(attribute.oid, f" {value.upper().replace(' ', '  ')} ")


@pytest.mark.parametrize("change", [_printable, _shouted], ids=["printable-string", "case-spaces"])
def test_a_crl_naming_its_issuer_in_another_encoding_still_revokes(
    aw: AdmissionWorld,
    fleet: tuple[Fleet, AdmissionAuthority],
    change: Callable[[x509.NameAttribute], x509.NameAttribute],
) -> None:
    """Old behaviour: a CRL applied only when its issuer name was byte for byte the DeviceID's
    issuer; the vendor CA's own CRL naming it with another string type (PrintableString for
    UTF8String) or in another case and spacing (RFC 5280 7.1: the same name) was passed over."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    name = _renamed(ca.ecc_certificate, change)
    crl = _crl(ca.ecc_certificate, ca.ecc_key, _idevid_serial(fleet_, "node-0001"), name=name)
    assert (
        name.public_bytes()
        != load_certificate(ca.ecc_certificate, der_only=True).subject.public_bytes()
    )
    added = add_crl(fleet_, crl, now=NOW)
    reason = _reason(_idevid(fleet_, "node-0001"), ca.ecc_certificate, f"admission/crls/{added}")
    _revoked_exactly(fleet_, authority, "node-0001", reason)


def test_a_crl_of_another_name_under_the_issuers_key_revokes_nothing(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Serials are an issuer name's: the CA's key signing a CRL of another name lists that
    name's certificates, not the DeviceID (RFC 5280 5.1.2.3)."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    other = _renamed(
        ca.ecc_certificate,
        lambda a: (
            x509.NameAttribute(a.oid, f"{a.value} Other")
            if a.oid == x509.NameOID.COMMON_NAME
            else a
        ),
    )
    serial = _idevid_serial(fleet_, "node-0001")
    add_crl(fleet_, _crl(ca.ecc_certificate, ca.ecc_key, serial, name=other), now=NOW)
    assert attest_node(fleet_, "node-0001", now=LATER, authority=authority).status == "admitted"


def test_a_crl_listing_the_vendor_root_itself_revokes_every_chain_it_issued(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Old behaviour: the vendor CA root was not looked up at all (an SPDM chain's pinned root
    was): its own CRL listing its serial — the CA saying its key is not to be trusted — was
    passed over and every node it issued a DeviceID stayed admitted."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    root = load_certificate(ca.ecc_certificate, der_only=True).serial_number
    added = add_crl(fleet_, _crl(ca.ecc_certificate, ca.ecc_key, root), now=NOW)
    reason = _reason(ca.ecc_certificate, ca.ecc_certificate, f"admission/crls/{added}")
    for node in ("node-0001", "node-0002"):
        _revoked_exactly(fleet_, authority, node, reason)


def test_a_crl_file_replaced_in_place_is_read_again(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Old behaviour: the CRLs were read again when a file name came or went, or hourly: the
    CA's next CRL copied over the last one (``cp vendor-ca.crl admission/crls/``) went
    unseen for up to an hour, and ``RevocationWatch`` reported nothing."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    path = fleet_.directory / "admission" / "crls" / "vendor-ca.crl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_crl(ca.ecc_certificate, ca.ecc_key, serial + 1))
    assert attest_node(fleet_, "node-0001", now=LATER, authority=authority).status == "admitted"
    watch = RevocationWatch(fleet_, authority.endorsements)
    path.write_bytes(_crl(ca.ecc_certificate, ca.ecc_key, serial + 1, serial))
    assert [e.crl for e in watch.poll()] == ["admission/crls/vendor-ca.crl"]
    reason = _reason(
        _idevid(fleet_, "node-0001"), ca.ecc_certificate, "admission/crls/vendor-ca.crl"
    )
    _revoked_exactly(fleet_, authority, "node-0001", reason, LATER + dt.timedelta(minutes=1))


def test_a_crl_replaced_by_one_of_the_same_size_and_mtime_is_read_again(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Old behaviour: a CRL file was known by its size and mtime: the CA's next CRL of the
    same size written over it within the file system's mtime granularity (or its mtime put
    back, ``touch -r``, ``os.utime``) went unseen — the verifier kept the old CRL (for up to
    an hour) and ``RevocationWatch`` reported nothing, so the revoked node stayed admitted.
    A CRL is known by its bytes now."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    path = fleet_.directory / "admission" / "crls" / "vendor-ca.crl"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = _crl(ca.ecc_certificate, ca.ecc_key, serial + 1, serial - 1)
    path.write_bytes(old)
    assert attest_node(fleet_, "node-0001", now=LATER, authority=authority).status == "admitted"
    watch = RevocationWatch(fleet_, authority.endorsements)
    assert watch.poll() == []
    new = _crl(ca.ecc_certificate, ca.ecc_key, serial + 1, serial)
    while len(new) != len(old):  # an ECDSA signature's DER length varies: same size wanted
        new = _crl(ca.ecc_certificate, ca.ecc_key, serial + 1, serial)
    before = path.stat()
    path.write_bytes(new)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    reason = _reason(
        _idevid(fleet_, "node-0001"), ca.ecc_certificate, "admission/crls/vendor-ca.crl"
    )
    _revoked_exactly(fleet_, authority, "node-0001", reason, LATER + dt.timedelta(minutes=1))
    assert [e.crl for e in watch.poll()] == ["admission/crls/vendor-ca.crl"]


def test_a_witnessed_crl_statement_among_the_endorsements_revokes(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Old behaviour: a witnessed CRL statement copied into ``admission/endorsements/`` (not
    through ``add_endorsement``, which unwraps it) was no transparent statement to the
    revocation check and passed over."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    logged = _logged_crl(aw, fleet_, "node-0001")
    (authority.directory / "endorsements" / "witnessed.ts").write_bytes(witness(aw.world, logged))
    reason = _reason(_idevid(fleet_, "node-0001"), ca.ecc_certificate, "endorsement witnessed.ts")
    _revoked_exactly(fleet_, authority, "node-0001", reason)


def test_a_pem_crl_in_a_statement_revokes(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    fleet_, authority = fleet
    ca = aw.vendor_ca
    der = _crl(ca.ecc_certificate, ca.ecc_key, _idevid_serial(fleet_, "node-0001"))
    pem = x509.load_der_x509_crl(der).public_bytes(Encoding.PEM)
    statement = _crl_statement(aw.world.statement_key, pem, iss=VENDOR, sub="pkg:ca/acme")
    name = authority.add_endorsement(
        aw.world.trusted.register(statement).transparent_statement, now=NOW
    )
    reason = _reason(_idevid(fleet_, "node-0001"), ca.ecc_certificate, f"endorsement {name}")
    _revoked_exactly(fleet_, authority, "node-0001", reason)


def test_a_crl_issued_in_the_future_already_revokes(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """A CRL's thisUpdate after the appraisal is not read, as its nextUpdate is not: a
    revocation is never postponed (fails closed)."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    crl = _crl(
        ca.ecc_certificate, ca.ecc_key, serial, days=60, this_update=NOW + dt.timedelta(days=30)
    )
    added = add_crl(fleet_, crl, now=NOW)
    reason = _reason(_idevid(fleet_, "node-0001"), ca.ecc_certificate, f"admission/crls/{added}")
    _revoked_exactly(fleet_, authority, "node-0001", reason)


def test_a_serial_listed_again_as_removed_from_the_crl_stays_revoked(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """The DeviceID listed twice, once with the reason removeFromCRL (a delta CRL's, to
    un-revoke): the CRL cannot decide, and the node is refused for it."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    name = load_certificate(ca.ecc_certificate, der_only=True).subject
    entry = x509.RevokedCertificateBuilder().serial_number(serial)
    entry = entry.revocation_date(NOW - dt.timedelta(minutes=30))
    removed = entry.add_extension(x509.CRLReason(x509.ReasonFlags.remove_from_crl), critical=False)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=7))
        .add_revoked_certificate(entry.build())
        .add_revoked_certificate(removed.build())
        .sign(ca.ecc_key.raw, hashes.SHA384())  # type: ignore[arg-type]
        .public_bytes(Encoding.DER)
    )
    added = add_crl(fleet_, crl, now=NOW)
    cert = parse_certificate(_idevid(fleet_, "node-0001"))
    reason = (
        f"revocation undecided: certificate {cert.subject} (serial {serial:#x}): CRL "
        f"admission/crls/{added} of {name.rfc4514_string()!r} cannot decide revocation: the "
        f"entry of serial {serial:#x} has the reason removeFromCRL (a delta CRL's)"
    )
    _revoked_exactly(fleet_, authority, "node-0001", reason)


def _undecided_unread(fleet_: Fleet, node: str, label: str, why: str) -> str:
    cert = parse_certificate(_idevid(fleet_, node))
    assert cert.serial is not None
    return (
        f"revocation undecided: certificate {cert.subject} (serial {cert.serial:#x}): CRL "
        f"{label} of its issuer cannot be read: {why}"
    )


def test_a_crl_over_the_size_limit_leaves_its_issuers_certificates_undecided(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old behaviour: a CRL file over the limit (4 MiB: a vendor CA's CRL of some 100,000
    DeviceIDs) was left out with a warning, and the DeviceIDs it lists admitted. The limit is
    lowered here to 1 KiB (a real CRL that large takes minutes to build)."""
    fleet_, authority = fleet
    monkeypatch.setattr("ironroot.fleet._revocation._MAX_CRL", 1024)
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    crl = _crl(ca.ecc_certificate, ca.ecc_key, *range(serial, serial + 40))
    assert len(crl) > 1024
    folder = fleet_.directory / "admission" / "crls"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vendor-ca.crl").write_bytes(crl)
    for node in ("node-0001", "node-0002"):
        why = "it is larger than 1024 bytes"
        reason = _undecided_unread(fleet_, node, "admission/crls/vendor-ca.crl", why)
        _revoked_exactly(fleet_, authority, node, reason)


def test_a_crl_cut_short_leaves_its_issuers_certificates_undecided(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Old behaviour: a CRL that does not parse (cut short, as while ``cp`` writes it) was
    left out with a warning. Whose it is can be read from its first bytes: that issuer's
    certificates are undecided. A file that is no CRL at all names no issuer: left out."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    crl = _crl(ca.ecc_certificate, ca.ecc_key, _idevid_serial(fleet_, "node-0001"))
    folder = fleet_.directory / "admission" / "crls"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.pem").write_bytes(b"-----BEGIN X509 CRL-----\nnot base64\n")
    assert attest_node(fleet_, "node-0001", now=LATER, authority=authority).status == "admitted"
    pem = x509.load_der_x509_crl(crl).public_bytes(Encoding.PEM)
    (folder / "vendor-ca.pem").write_bytes(pem[: len(pem) // 2])
    at = LATER + dt.timedelta(minutes=1)
    with pytest.raises(MalformedCertificate):
        add_crl(fleet_, pem[: len(pem) // 2], now=NOW)
    why = "it does not parse: not a well-formed PEM file"
    reason = _undecided_unread(fleet_, "node-0001", "admission/crls/vendor-ca.pem", why)
    _revoked_exactly(fleet_, authority, "node-0001", reason, at)


def test_a_crl_statement_whose_crl_does_not_parse_is_refused_as_an_endorsement(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Old behaviour: it was added, and its CRL left out at every appraisal with a warning in
    the log only. Refused, the operator learns it at once (as ``add_crl`` tells)."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    crl = _crl(ca.ecc_certificate, ca.ecc_key, _idevid_serial(fleet_, "node-0001"))
    statement = _crl_statement(aw.world.statement_key, crl[:-8], iss=VENDOR, sub="pkg:ca/acme")
    logged = aw.world.trusted.register(statement).transparent_statement
    with pytest.raises(MalformedCertificate) as caught:
        authority.add_endorsement(logged, now=NOW)
    assert caught.value.code == "malformed-certificate"
    assert caught.value.detail.startswith("the CRL of the revocation statement does not parse: ")
    assert authority.endorsements() == []
    assert fleet_.events(kind="endorsement-added") == []


def test_an_older_crl_of_the_ca_beside_a_newer_one_takes_nothing_back(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """The CRLs are a union: the CA's CRL from before the revocation, added after the one
    listing the DeviceID, un-revokes nothing."""
    fleet_, authority = fleet
    ca = aw.vendor_ca
    serial = _idevid_serial(fleet_, "node-0001")
    newer = add_crl(fleet_, _crl(ca.ecc_certificate, ca.ecc_key, serial), now=NOW)
    older = _crl(ca.ecc_certificate, ca.ecc_key, this_update=NOW - dt.timedelta(days=3))
    add_crl(fleet_, older, now=NOW)
    reason = _reason(_idevid(fleet_, "node-0001"), ca.ecc_certificate, f"admission/crls/{newer}")
    _revoked_exactly(fleet_, authority, "node-0001", reason)


# --- an SPDM chain sent without its root --------------------------------------------------


def test_an_spdm_chain_recorded_without_its_root_is_still_checked_for_revocation() -> None:
    """DSP0274 lets a slot's chain start below the root (its first certificate signed by the
    root), and the chain in SPDM evidence is not signed: whoever carries the evidence may
    drop the root certificate. Old behaviour: such evidence verified, but the revocation
    check found no chain starting at the pinned root and checked nothing, so a revoked
    device CA or device certificate passed. Now the verified path (root first) is checked."""
    from tests.spdm._spdm_helpers import NOW as SPDM_NOW
    from tests.spdm._spdm_helpers import Device, make_requester, make_responder

    from ironroot.fleet._revocation import CrlSet, _spdm_chain
    from ironroot.spdm import CertificateChain, SpdmEvidence, verify_spdm_evidence

    device = Device(Algorithm.ES384)
    honest = make_requester(make_responder(device), device).evidence(bytes(32))
    record = SpdmEvidence.decode(honest)
    chain = CertificateChain.decode(record.certificate_chain, hash_size=48)
    assert chain.certificates[0] == device.root
    rootless = CertificateChain(chain.root_hash, chain.certificates[1:]).encode()
    stripped = SpdmEvidence(record.vca, rootless, record.request, record.response).encode()
    # the evidence without the root still verifies (DSP0274 allows such a chain) ...
    verify_spdm_evidence(stripped, nonce=bytes(32), root_certificate=device.root, now=SPDM_NOW)
    # ... so its revocation check sees the same path, root first
    assert [c.der for c in _spdm_chain(stripped, device.root)] == device.chain
    leaf = load_certificate(device.leaf, der_only=True)
    crls = CrlSet.build([("ca.crl", _crl(device.intermediate, device.ca_key, leaf.serial_number))])
    for evidence in (honest, stripped):
        reason = crls.revoked(_spdm_chain(evidence, device.root), ())
        assert reason.startswith("revoked: certificate ")
        assert "Ironroot Test Device" in reason


def test_a_crl_added_while_the_scanner_was_down_triggers_after_its_restart(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """Old behaviour: ``RevocationWatch`` took the CRLs there when it started as seen, so a
    CRL added while ``fleet serve --scan`` was down (or between its crash and its restart)
    triggered nothing: the revoked node kept its credential until its period came round."""
    fleet_, authority = fleet
    first = RevocationWatch(fleet_, authority.endorsements)
    assert first.poll() == []  # the service ran, then stopped
    ca = aw.vendor_ca
    add_crl(
        fleet_, _crl(ca.ecc_certificate, ca.ecc_key, _idevid_serial(fleet_, "node-0001")), now=NOW
    )
    restarted = RevocationWatch(fleet_, authority.endorsements)
    events = restarted.poll()
    assert [e.sub for e in events] == [fleet_.node_class("node-7").trust.platform]
    assert restarted.poll() == []
    report = Scanner(fleet_, scan_attest(fleet_, authority), period=86400).scan(LATER, events)
    assert report.quarantined == ["node-0001"]
    assert RevocationWatch(fleet_, authority.endorsements).poll() == []  # seen, once


def test_a_review_added_as_an_endorsement_triggers_the_scan(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """Old behaviour: only a CRL among the added endorsements triggered a round; a SAFE review
    with a new high finding added with ``fleet attest --endorse`` (or a reference value)
    changes appraisal as much, yet the nodes it refuses stayed admitted for a period."""
    from tests.fleet.admission_world import PROVIDER
    from tests.platform.node_world import sfr_report

    from ironroot.firmware import FirmwareBundle
    from ironroot.safe import sfr_statement, sign_report

    fleet_, authority = aw.fleet(tmp_path / "fleet", 2, klass=aw.node_class(safe="medium"))
    for node in fleet_.node_ids():  # the BMC's release is reviewed, clean
        assert attest_node(fleet_, node, now=NOW, authority=authority).status == "admitted"
    watch = RevocationWatch(fleet_, authority.endorsements)
    assert watch.poll() == []
    bmc = fleet_.node_class("node-7").images["bmc"]
    digest = FirmwareBundle.parse(bmc).manifest_digest()
    sfr = sign_report(sfr_report(digest, (9.8,)), aw.provider, PROVIDER)
    statement = sfr_statement(sfr, aw.world.other_key, iss=OTHER)
    authority.add_endorsement(aw.world.trusted.register(statement).transparent_statement, now=NOW)
    events = watch.poll()
    assert [e.sub for e in events] == [fleet_.node_class("node-7").trust.platform]
    report = Scanner(fleet_, scan_attest(fleet_, authority), period=86400).scan(LATER, events)
    assert set(report.reasons.values()) == {"triggered"}
    assert report.quarantined == fleet_.node_ids()


def test_a_watch_state_that_cannot_be_written_is_a_storage_error(
    aw: AdmissionWorld, fleet: tuple[Fleet, AdmissionAuthority]
) -> None:
    """``admission/watched.json`` that cannot be written fails the poll with ``StorageError``
    (the scanner records the round and goes on), never an ``OSError`` ending its thread; what
    was added is reported once it can be written."""
    fleet_, authority = fleet
    watch = RevocationWatch(fleet_, authority.endorsements)
    state = fleet_.directory / "admission" / "watched.json"
    state.unlink()
    state.mkdir()
    ca = aw.vendor_ca
    add_crl(fleet_, _crl(ca.ecc_certificate, ca.ecc_key, 7), now=NOW)
    with pytest.raises(StorageError):
        watch.poll()
    state.rmdir()
    assert [e.crl for e in watch.poll()] != []
