"""The credential profile and its parser, CSRs, the per-request check's early refusals, and the
parsers of node evidence and admission requests — each refusal its exact error and code."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.cose import encode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    ConfigError,
    Conflict,
    CredentialRejected,
    MalformedCertificate,
    MalformedEvidence,
    MalformedInput,
    UnsupportedAlgorithm,
)
from ironroot.fleet import (
    FLEET_CREDENTIAL_OID,
    AdmissionRequest,
    Credential,
    CredentialStore,
    Fleet,
    FleetCA,
    NodeEvidence,
    check_credential,
    crl_revocations,
    csr_public_key,
    make_csr,
    parse_credential,
    report_data,
    verify_credential,
)
from ironroot.fleet._credentials import check_lifetime, key_digest, pem_digest
from tee_fakes import crl_without_next_update
from x509_extensions import UNKNOWN_OID, refusal, with_extension

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
EAR_ID = "urn:ironroot:ear:sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> FleetCA:
    return FleetCA.create(tmp_path_factory.mktemp("ca"), now=NOW)


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES384)


def _issue(ca: FleetCA, key: PrivateKey, **changes: object) -> bytes:
    args: dict[str, object] = {
        "node": "node-0001",
        "node_class": "node-7",
        "plane": "control",
        "ear_id": EAR_ID,
        "now": NOW,
    }
    args.update(changes)
    return ca.issue(key.public_key.to_der(), **args).der  # type: ignore[arg-type]


def _certificate(extension: bytes | None, cn: str = "node-0001") -> bytes:
    """A certificate under a throwaway key carrying ``extension`` as the fleet extension."""
    signer = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key())
        .serial_number(7)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(hours=1))
    )
    if extension is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(FLEET_CREDENTIAL_OID), extension),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA384()).public_bytes(Encoding.DER)


def _extension(der: bytes) -> bytes:
    cert = x509.load_der_x509_certificate(der)
    value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(FLEET_CREDENTIAL_OID)).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value


@settings(max_examples=examples(25), deadline=None)
@given(
    node=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True),
    node_class=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True),
    plane=st.sampled_from(["control", "data"]),
    digest=st.binary(min_size=32, max_size=32),
    lifetime=st.integers(60, 7 * 86400),
)
def test_a_credential_reads_back_as_issued(
    ca: FleetCA,
    key: PrivateKey,
    node: str,
    node_class: str,
    plane: str,
    digest: bytes,
    lifetime: int,
) -> None:
    ear_id = "urn:ironroot:ear:sha256:" + digest.hex()
    issued = ca.issue(
        key.public_key.to_der(),
        node=node,
        node_class=node_class,
        plane=plane,
        ear_id=ear_id,
        now=NOW,
        lifetime=lifetime,
    )
    read = parse_credential(issued.pem)
    assert read == issued
    assert (read.node, read.node_class, read.plane, read.ear_id) == (
        node,
        node_class,
        plane,
        ear_id,
    )
    assert read.not_after - read.not_before == dt.timedelta(seconds=lifetime)


def test_certificates_outside_the_profile_are_refused(ca: FleetCA, key: PrivateKey) -> None:
    good = _extension(_issue(ca, key))
    server = ca.issue_server(key.public_key, hosts=["127.0.0.1"], now=NOW)
    non_canonical = good[:1] + b"\x81" + good[1:2] + good[2:]  # long-form length
    bad_plane = good.replace(b"\x0a\x01\x00", b"\x0a\x01\x05")  # ENUMERATED 5
    for der in (
        server,  # no fleet extension
        _certificate(non_canonical),
        _certificate(bad_plane),
        _certificate(good + b"\x00"),
        _certificate(good, cn="node-0002"),  # the subject names another node
        _certificate(b"\x30\x00"),
    ):
        with pytest.raises(MalformedCertificate):
            parse_credential(der)
    with pytest.raises(MalformedCertificate):
        parse_credential(b"not a certificate")


def _value(*fields: bytes, tag: int = 0x30) -> bytes:
    body = b"".join(fields)
    return bytes([tag, len(body)]) + body


_NODE = b"\x0c\x09node-0001"
_CLASS = b"\x0c\x03gpu"
_EAR = b"\x16\x58urn:ironroot:ear:sha256:" + b"0" * 64
_NOT_PARSED = "the fleet credential extension does not parse: "
# Each refused by the strict DER decoder itself (cryptography.hazmat.asn1), or after it by the
# profile's version and plane; the message names the decoder's reason.
_HOSTILE: dict[str, tuple[bytes, str]] = {
    "long-form length": (
        b"\x30\x81" + _value(b"\x02\x01\x01", _NODE, _CLASS, b"\x0a\x01\x00", _EAR)[1:],
        _NOT_PARSED,
    ),
    "trailing byte": (
        _value(b"\x02\x01\x01", _NODE, _CLASS, b"\x0a\x01\x00", _EAR) + b"\x00",
        _NOT_PARSED,
    ),
    "non-minimal version": (
        _value(b"\x02\x02\x00\x01", _NODE, _CLASS, b"\x0a\x01\x00", _EAR),
        "the fleet credential extension ",
    ),
    "non-minimal plane": (
        _value(b"\x02\x01\x01", _NODE, _CLASS, b"\x0a\x02\x00\x01", _EAR),
        "the fleet credential extension ",
    ),
    "indefinite length": (
        b"\x30\x80" + _value(b"\x02\x01\x01", _NODE, _CLASS, b"\x0a\x01\x00", _EAR)[2:] + b"\0\0",
        "the fleet credential extension ",
    ),
    "over-long length": (
        b"\x30\x88\xff\xff\xff\xff\xff\xff\xff\xff\x02\x01\x01",
        "the fleet credential extension ",
    ),
    "version 2": (_value(b"\x02\x01\x02", _NODE, _CLASS, b"\x0a\x01\x00", _EAR), _NOT_PARSED),
    "plane an INTEGER": (
        _value(b"\x02\x01\x01", _NODE, _CLASS, b"\x02\x01\x00", _EAR),
        _NOT_PARSED,
    ),
    "plane 2": (_value(b"\x02\x01\x01", _NODE, _CLASS, b"\x0a\x01\x02", _EAR), _NOT_PARSED),
    "an empty node": (
        _value(b"\x02\x01\x01", b"\x0c\x00", _CLASS, b"\x0a\x01\x00", _EAR),
        _NOT_PARSED,
    ),
    "a 65-character class": (
        _value(b"\x02\x01\x01", _NODE, b"\x0c\x41" + b"c" * 65, b"\x0a\x01\x00", _EAR),
        _NOT_PARSED,
    ),
    "a node not UTF-8": (
        _value(b"\x02\x01\x01", b"\x0c\x01\xff", _CLASS, b"\x0a\x01\x00", _EAR),
        _NOT_PARSED,
    ),
    "an EAR id not IA5": (
        _value(b"\x02\x01\x01", _NODE, _CLASS, b"\x0a\x01\x00", b"\x16\x01\xff"),
        _NOT_PARSED,
    ),
    "a SET": (
        _value(b"\x02\x01\x01", _NODE, _CLASS, b"\x0a\x01\x00", _EAR, tag=0x31),
        _NOT_PARSED,
    ),
    "no EAR id": (_value(b"\x02\x01\x01", _NODE, _CLASS, b"\x0a\x01\x00"), _NOT_PARSED),
    "an extra field": (
        _value(b"\x02\x01\x01", _NODE, _CLASS, b"\x0a\x01\x00", _EAR, b"\x05\x00"),
        _NOT_PARSED,
    ),
}


@pytest.mark.parametrize("case", list(_HOSTILE))
def test_non_der_fleet_credential_extensions_are_malformed(case: str) -> None:
    value, says = _HOSTILE[case]
    with pytest.raises(MalformedCertificate) as info:
        parse_credential(_certificate(value))
    assert type(info.value) is MalformedCertificate
    assert info.value.detail.startswith(says)


def test_the_hostile_fleet_values_are_built_around_a_valid_one() -> None:
    good = _value(b"\x02\x01\x01", _NODE, _CLASS, b"\x0a\x01\x01", _EAR)
    read = parse_credential(_certificate(good))
    assert (read.node, read.node_class, read.plane) == ("node-0001", "gpu", "data")


def test_csrs_and_issuing_refusals(ca: FleetCA, key: PrivateKey, tmp_path: Path) -> None:
    csr = make_csr(key, node="node-0001", plane="data")
    assert csr_public_key(csr) == key.public_key.to_der()
    tampered = bytearray(csr)
    tampered[-5] ^= 1  # inside the signature
    with pytest.raises((BadSignature, MalformedCertificate)):
        csr_public_key(bytes(tampered))
    p256 = ec.generate_private_key(ec.SECP256R1())
    other = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node-0001")]))
        .sign(p256, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )
    with pytest.raises(UnsupportedAlgorithm):
        csr_public_key(other)
    with pytest.raises(UnsupportedAlgorithm):
        make_csr(PrivateKey.generate(Algorithm.ES256), node="node-0001", plane="data")
    for changes in ({"plane": "admin"}, {"ear_id": "ear-1"}, {"node": "../x"}):
        with pytest.raises(ConfigError):
            _issue(ca, key, **changes)
    for lifetime in (59, 7 * 86400 + 1, True):
        with pytest.raises(ConfigError):
            check_lifetime(lifetime)  # type: ignore[arg-type]
    FleetCA.create(tmp_path, now=NOW)
    with pytest.raises(Conflict):
        FleetCA.create(tmp_path, now=NOW)


def test_the_per_request_check_refuses_before_the_registry(
    ca: FleetCA, key: PrivateKey, tmp_path: Path
) -> None:
    store = CredentialStore(tmp_path / "credentials.db")
    fleet = Fleet(tmp_path / "no-fleet")  # never reached: every case fails earlier

    def refused(presented: bytes | None, at: dt.datetime = NOW) -> str:
        with pytest.raises(CredentialRejected) as caught:
            check_credential(presented, plane="control", ca=ca, store=store, fleet=fleet, now=at)
        return caught.value.code

    assert refused(None) == "credential-missing"
    assert refused(_certificate(None)) == "credential-malformed"
    stranger = FleetCA.create(tmp_path / "other", now=NOW)
    assert refused(_issue(stranger, key)) == "credential-unknown-issuer"
    assert refused(_issue(ca, key)) == "credential-unknown"  # issued, never recorded
    before_ca = NOW - dt.timedelta(days=1)  # the fleet CA itself is not valid yet
    assert refused(_issue(ca, key, now=before_ca), at=before_ca) == "credential-unknown-issuer"


def test_a_revocation_dated_ahead_still_revokes_what_is_valid_now(
    key: PrivateKey, tmp_path: Path
) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca = FleetCA.create(tmp_path / "ca", now=now - dt.timedelta(days=1))
    store = CredentialStore(tmp_path / "credentials.db")
    issued = ca.issue(
        key.public_key.to_der(),
        node="node-0001",
        node_class="node-7",
        plane="control",
        ear_id=EAR_ID,
        now=now,
        lifetime=3600,
    )
    store.add(issued)
    # an operator's quarantine --at two days ahead: the credential has expired by then, but
    # it is valid now, and must not stay so
    assert store.revoke_node("node-0001", "drift", now=now + dt.timedelta(days=2)) == [
        issued.serial
    ]
    status = store.status(issued.serial)
    assert status is not None
    assert status.revoked


def test_node_evidence_and_requests_parse_strictly() -> None:
    evidence = NodeEvidence("node-0001", b"quote", {"nic": b"spdm"})
    assert NodeEvidence.decode(evidence.encode()) == evidence
    for doc in (
        {"format": "other", "node": "n", "quote": b"q", "devices": {}},
        {"format": "ironroot-node-evidence/1", "node": "n", "quote": b"q"},
        {"format": "ironroot-node-evidence/1", "node": "n", "quote": b"", "devices": {}},
        {"format": "ironroot-node-evidence/1", "node": "n", "quote": b"q", "devices": []},
        [1, 2],
    ):
        with pytest.raises(MalformedEvidence):
            NodeEvidence.decode(encode_cbor(doc))
    with pytest.raises(MalformedEvidence):
        NodeEvidence.decode(b"\xff")
    with pytest.raises(MalformedEvidence):
        report_data(b"short", {"control": b"k"})
    with pytest.raises(MalformedEvidence):
        report_data(bytes(32), {"admin": b"k"})
    request = AdmissionRequest("node-0001", bytes(32), b"e", {"control": b"c", "data": b"d"})
    assert AdmissionRequest.decode(request.encode()) == request
    for bad in (
        encode_cbor({"node": "n", "nonce": b"x", "evidence": b"e", "csrs": {"control": b"c"}}),
        encode_cbor({"node": "n", "nonce": b"x", "evidence": b"e", "csrs": {"data": b"d"}}),
        encode_cbor({"node": "n", "nonce": b"x", "evidence": b"e"}),
        encode_cbor({"node": "n", "nonce": b"x", "evidence": b"e", "csrs": {}}),
        encode_cbor({"node": "n", "nonce": b"x", "evidence": b"e", "csrs": {"admin": b"c"}}),
    ):
        with pytest.raises(MalformedInput):
            AdmissionRequest.decode(bad)


@pytest.mark.parametrize("critical", [True, False])
def test_a_credential_with_an_unknown_critical_extension_is_refused(
    key: PrivateKey, tmp_path: Path, critical: bool
) -> None:
    # RFC 5280 §4.2: a relying party processes the standard extensions and the fleet's own; a
    # credential carrying another one critical is refused by the offline check and the planes.
    ca = FleetCA.create(tmp_path / "ca", now=NOW)
    ca_key = load_pem_private_key((tmp_path / "ca" / "ca.key.pem").read_bytes(), None)
    issued = x509.load_der_x509_certificate(_issue(ca, key))
    cert = with_extension(issued, ca_key, critical=critical)
    der = cert.public_bytes(Encoding.DER)
    ca_der = ca.certificate.public_bytes(Encoding.DER)
    store = CredentialStore(tmp_path / "credentials.db")
    fleet = Fleet(tmp_path / "no-fleet")  # never reached
    with pytest.raises(CredentialRejected) as caught:
        check_credential(der, plane="control", ca=ca, store=store, fleet=fleet, now=NOW)
    if not critical:
        assert verify_credential(der, ca_der, at=NOW).serial == format(cert.serial_number, "x")
        assert caught.value.code == "credential-unknown"  # past the profile: never recorded
        return
    assert caught.value.code == "credential-malformed"
    subject = cert.subject.rfc4514_string()
    assert caught.value.detail == (
        "the client certificate is not a fleet credential: certificate "
        f"{subject!r}: unknown critical extension {UNKNOWN_OID}"
    )
    with pytest.raises(ChainNotTrusted, match=refusal(cert)) as refused:
        verify_credential(der, ca_der, at=NOW)
    assert refused.value.code == "credential-untrusted"


def _ca_crl(
    tmp_path: Path,
    ca: FleetCA,
    *,
    extension: x509.ExtensionType | None = None,
    entry: x509.ExtensionType | None = None,
    digest: hashes.HashAlgorithm | None = None,
) -> bytes:
    """A CRL of ``ca`` (signed with its key, SHA-384 unless ``digest``) listing serial 7, with
    a critical ``extension`` and a critical ``entry`` extension when given."""
    ca_key = load_pem_private_key((tmp_path / "ca" / "ca.key.pem").read_bytes(), None)
    revoked = x509.RevokedCertificateBuilder().serial_number(7).revocation_date(NOW)
    if entry is not None:
        revoked = revoked.add_extension(entry, critical=True)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(NOW - dt.timedelta(minutes=5))
        .next_update(NOW + dt.timedelta(hours=1))
        .add_revoked_certificate(revoked.build())
    )
    if extension is not None:
        builder = builder.add_extension(extension, critical=True)
    crl = builder.sign(ca_key, digest or hashes.SHA384())  # type: ignore[arg-type]
    return crl.public_bytes(Encoding.DER)


def _point(*, cas: bool = False, reasons: bool = False) -> x509.IssuingDistributionPoint:
    some = frozenset({x509.ReasonFlags.key_compromise}) if reasons else None
    return x509.IssuingDistributionPoint(None, None, False, cas, some, False, False)


@pytest.mark.parametrize(
    ("extension", "entry", "why"),
    [
        (x509.DeltaCRLIndicator(1), None, "a delta CRL (base CRL number 1), not a complete CRL"),
        (_point(reasons=True), None, "it covers only some revocation reasons (keyCompromise)"),
        (
            None,
            x509.CertificateIssuer([x509.DirectoryName(x509.Name([]))]),
            "the entry of serial 0x7 carries the critical extension 2.5.29.29",
        ),
    ],
    ids=["delta", "only-some-reasons", "entry-certificate-issuer"],
)
def test_a_fleet_ca_crl_that_cannot_decide_revocation_is_refused(
    tmp_path: Path,
    extension: x509.ExtensionType | None,
    entry: x509.ExtensionType | None,
    why: str,
) -> None:
    ca = FleetCA.create(tmp_path / "ca", now=NOW)
    ca_der = ca.certificate.public_bytes(Encoding.DER)
    assert crl_revocations(_ca_crl(tmp_path, ca), ca_der, at=NOW) == {"7": NOW}
    crl = _ca_crl(tmp_path, ca, extension=extension, entry=entry)
    with pytest.raises(ChainNotTrusted) as caught:
        crl_revocations(crl, ca_der, at=NOW)
    assert (type(caught.value), caught.value.code) == (ChainNotTrusted, "crl-unusable")
    subject = ca.certificate.subject.rfc4514_string()
    assert caught.value.detail == (
        f"the fleet CA's CRL of {subject!r} cannot decide revocation: {why}"
    )


def test_a_fleet_ca_crl_out_of_scope_or_without_next_update_is_refused(tmp_path: Path) -> None:
    ca = FleetCA.create(tmp_path / "ca", now=NOW)
    ca_der = ca.certificate.public_bytes(Encoding.DER)
    with pytest.raises(ChainNotTrusted) as caught:  # only CA certificates: not a credential's
        crl_revocations(_ca_crl(tmp_path, ca, extension=_point(cas=True)), ca_der, at=NOW)
    assert caught.value.code == "crl-unusable"
    assert caught.value.detail == (
        "the fleet CA's CRL does not cover its credentials (issuing distribution point)"
    )
    ca_key = load_pem_private_key((tmp_path / "ca" / "ca.key.pem").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    signed = _ca_crl(tmp_path, ca, digest=hashes.SHA256())  # as the helper re-signs it
    bare = crl_without_next_update(x509.load_der_x509_crl(signed), ca_key)
    assert bare.next_update_utc is None
    with pytest.raises(CertificateExpired) as expired:
        crl_revocations(bare.public_bytes(Encoding.DER), ca_der, at=NOW)
    assert type(expired.value) is CertificateExpired
    assert expired.value.detail == ("the CRL has no nextUpdate: it states no time it is current to")


def test_the_crl_reads_the_revoked_credentials_only(tmp_path: Path) -> None:
    """``GET /fleet/crl`` is anonymous, and the store keeps every credential ever issued (two
    per admission, the scanner's included): the CRL's query must find the revoked ones
    through an index, not scan the whole table at every request."""
    import sqlite3

    from ironroot.fleet._credentials import _REVOKED_UNEXPIRED

    store = CredentialStore(tmp_path / "credentials.db")
    assert store.revoked(now=NOW) == []  # the tables are made
    db = sqlite3.connect(tmp_path / "credentials.db")
    try:
        plan = " ".join(
            str(row[3]) for row in db.execute("EXPLAIN QUERY PLAN " + _REVOKED_UNEXPIRED, ("x",))
        )
    finally:
        db.close()
    assert "SEARCH credentials USING INDEX credentials_revoked" in plan, plan


def test_expired_credentials_never_revoked_are_forgotten_after_the_retention(
    ca: FleetCA, tmp_path: Path
) -> None:
    """Every attestation issues two credentials (the scanner's every five minutes too), and
    the store kept each for ever: a 1,000-node fleet grew by ~576,000 rows a day. Expired,
    never-revoked credentials past the retention are forgotten, with the keys they certified;
    revoked ones and each node's newest of a plane stay."""
    store = CredentialStore(tmp_path / "credentials.db")
    day = dt.timedelta(days=1)
    keys: dict[str, bytes] = {}

    def issued(node: str, plane: str, when: dt.datetime) -> Credential:
        spki = PrivateKey.generate(Algorithm.ES384).public_key.to_der()
        credential = ca.issue(
            spki,
            node=node,
            node_class="node-7",
            plane=plane,
            ear_id=EAR_ID,
            now=when,
            lifetime=3600,
        )
        store.add(credential)
        keys[credential.serial] = spki
        return credential

    start = NOW - 10 * day
    old = [issued("node-0001", "control", start + i * dt.timedelta(hours=2)) for i in range(3)]
    revoked = issued("node-0002", "control", start)
    assert store.revoke_node("node-0002", "drift", now=start) == [revoked.serial]
    newest_of_0002 = issued("node-0002", "data", start)  # its newest data credential
    recent = issued("node-0001", "control", NOW - day / 2)
    assert store.prune(now=NOW) == 3  # node-0001's three old ones: not its newest, never revoked
    assert [store.status(c.serial) for c in old] == [None, None, None]
    for kept in (revoked, newest_of_0002, recent):
        assert store.status(kept.serial) is not None
    # a key whose credential was revoked is still never certified again
    assert store.revoked_with_key([keys[revoked.serial]]) == revoked.serial
    assert store.certified_for_another_plane({"data": keys[old[0].serial]}) is None
    assert store.prune(now=NOW) == 0
    assert store.prune(now=NOW, retention=dt.timedelta(0)) == 0  # `recent` is node-0001's newest
    with pytest.raises(ConfigError):
        store.prune(now=NOW, retention=-day)
    import sqlite3

    from ironroot.fleet._credentials import _PRUNABLE

    db = sqlite3.connect(tmp_path / "credentials.db")
    try:
        plan = " ".join(str(r[3]) for r in db.execute("EXPLAIN QUERY PLAN " + _PRUNABLE, ("x", 1)))
    finally:
        db.close()
    assert "USING INDEX credentials_expiry" in plan, plan  # never a scan of every credential
    assert "credentials_node_plane" in plan, plan
    # the digests of the files issued go with their credentials
    db = sqlite3.connect(tmp_path / "credentials.db")
    try:
        files = dict(db.execute("SELECT serial, pem_sha256 FROM credential_files"))
    finally:
        db.close()
    assert files == {c.serial: pem_digest(c.pem) for c in (revoked, newest_of_0002, recent)}


def test_several_keys_are_asked_about_in_order(ca: FleetCA, tmp_path: Path) -> None:
    """The store answers for several keys at once as it did key by key: the first key (by
    its SHA-256) that a revoked credential certified, or that a credential certified for
    another plane, named by that key's lowest such serial; a key certified for the plane it
    is asked for again is no conflict."""
    store = CredentialStore(tmp_path / "credentials.db")
    spkis = [PrivateKey.generate(Algorithm.ES384).public_key.to_der() for _ in range(3)]
    first, second, fresh = sorted(spkis, key=key_digest)

    def issued(spki: bytes, node: str, plane: str) -> str:
        credential = ca.issue(
            spki, node=node, node_class="node-7", plane=plane, ear_id=EAR_ID, now=NOW
        )
        store.add(credential)
        return credential.serial

    of_second = [issued(second, "node-0002", "control") for _ in range(2)]
    of_first = [issued(first, "node-0001", "data") for _ in range(2)]
    assert store.revoked_with_key([second, first, fresh]) is None
    assert store.certified_for_another_plane({"control": first}) == min(of_first)
    assert store.certified_for_another_plane({"data": first, "control": second}) is None
    assert store.certified_for_another_plane({"control": fresh, "data": second}) == min(of_second)
    store.revoke_node("node-0002", "drift", now=NOW)
    assert store.revoked_with_key([fresh, second]) == min(of_second)
    store.revoke_node("node-0001", "drift", now=NOW)
    assert store.revoked_with_key([second, fresh, first]) == min(of_first)
    assert store.revoked_with_key([fresh]) is None
    assert store.revoked_with_key([]) is None


def test_both_key_refusals_read_at_once_are_those_read_one_by_one(
    ca: FleetCA, tmp_path: Path
) -> None:
    """What admission reads in one statement (a revoked credential of any key asked, a
    credential of one for another plane) names the serials the two questions name apart, as
    the store's credentials are issued and revoked."""
    store = CredentialStore(tmp_path / "credentials.db")
    spkis = [PrivateKey.generate(Algorithm.ES384).public_key.to_der() for _ in range(3)]
    first, second, fresh = sorted(spkis, key=key_digest)
    asks = [
        {},
        {"control": first},
        {"data": first},
        {"control": first, "data": second},
        {"control": second, "data": first},
        {"control": fresh, "data": second},
        {"data": fresh},
    ]

    def same_answers() -> None:
        for keys in asks:
            apart = (store.revoked_with_key(keys.values()), store.certified_for_another_plane(keys))
            assert store._key_refusals(keys) == apart, keys

    same_answers()
    for spki, node, plane in [
        (second, "node-0002", "control"),
        (second, "node-0002", "control"),
        (first, "node-0001", "data"),
        (first, "node-0001", "data"),
    ]:
        store.add(
            ca.issue(spki, node=node, node_class="node-7", plane=plane, ear_id=EAR_ID, now=NOW)
        )
        same_answers()
    store.revoke_node("node-0002", "drift", now=NOW)
    same_answers()
    assert store._key_refusals({"control": fresh, "data": second})[0] is not None
    store.revoke_node("node-0001", "drift", now=NOW)
    same_answers()
    assert all(answer is not None for answer in store._key_refusals({"control": first}))
