"""ironroot.crypto's X.509 loaders: every field read at the boundary, one typed error.

``cryptography`` decodes most fields on first access; a certificate the loaders return must
never raise later, and anything they refuse is ``MalformedCertificate`` (never
``InvalidVersion``, ``ValueError``, ``UnsupportedAlgorithm``…).
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from ironroot.crypto import load_certificate, load_certificates, load_crl, load_crls, load_csr
from ironroot.errors import MalformedCertificate

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_KEY = ec.generate_private_key(ec.SECP256R1())
_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loader test")])
_EC_OID = bytes.fromhex("06072a8648ce3d0201")  # id-ecPublicKey


def _cert(serial: int = 7) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_NAME)
        .issuer_name(_NAME)
        .public_key(_KEY.public_key())
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example")]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(_KEY.public_key()), critical=False)
        .sign(_KEY, hashes.SHA256())
    )


CERT = _cert()
DER = CERT.public_bytes(Encoding.DER)
PEM = CERT.public_bytes(Encoding.PEM)


def _crl() -> bytes:
    revoked = x509.RevokedCertificateBuilder().serial_number(9).revocation_date(NOW).build()
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_NAME)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .add_revoked_certificate(revoked)
        .sign(_KEY, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


def _csr() -> bytes:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_NAME)
        .sign(_KEY, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


def _read_everything(cert: x509.Certificate) -> None:
    """What the project reads of a certificate; must not raise after a successful load."""
    with warnings.catch_warnings():  # a zero serial warns on every read (AMD's VCEKs have one)
        warnings.filterwarnings("ignore", ".*serial number", CryptographyDeprecationWarning)
        _ = cert.serial_number
    _ = cert.version, cert.not_valid_before_utc, cert.not_valid_after_utc
    cert.subject.rfc4514_string()
    cert.issuer.rfc4514_string()
    cert.public_key()
    _ = cert.signature_hash_algorithm, cert.signature_algorithm_oid, cert.signature
    _ = [e.value for e in cert.extensions]


def test_der_pem_and_bundles() -> None:
    assert load_certificate(DER).serial_number == 7
    assert load_certificate(PEM).public_bytes(Encoding.DER) == DER
    other = _cert(8).public_bytes(Encoding.DER)
    assert [c.serial_number for c in load_certificates(DER + other)] == [7, 8]
    bundle = b"a comment\n" + PEM + b"\n" + _cert(8).public_bytes(Encoding.PEM)
    assert [c.serial_number for c in load_certificates(bundle)] == [7, 8]


def test_a_der_certificate_holding_the_pem_marker_is_still_der() -> None:
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "-----BEGIN x")]))
        .issuer_name(_NAME)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(_KEY, hashes.SHA256())
    )
    assert load_certificate(cert.public_bytes(Encoding.DER)).serial_number == 1


def test_version_5_is_malformed() -> None:
    at = DER.index(bytes.fromhex("a003020102"))
    bad = DER[: at + 4] + b"\x05" + DER[at + 5 :]
    with pytest.raises(MalformedCertificate, match="version") as info:
        load_certificate(bad)
    assert type(info.value) is MalformedCertificate


def test_unsupported_key_algorithm_is_refused_unless_allowed() -> None:
    bad = DER.replace(_EC_OID, _EC_OID[:-1] + b"\x09", 1)
    with pytest.raises(MalformedCertificate, match="unsupported public key"):
        load_certificate(bad)
    cert = load_certificate(bad, allow_unsupported=True)  # an inspection tool shows it
    assert cert.serial_number == 7


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b"\x30",
        b"\x30\x82\xff\xff" + b"\x00" * 8,  # length past the end
        b"\x30\x89" + b"\x00" * 12,  # 9-byte length
        DER[:-1],
        DER + b"\x00",
        DER + b"\x31\x00",
        PEM.replace(b"CERTIFICATE", b"PRIVATE KEY"),
        PEM + PEM.replace(b"CERTIFICATE", b"X509 CRL"),
        PEM[:40] + b"*" + PEM[41:],
        b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    ],
)
def test_malformed_input(data: bytes) -> None:
    with pytest.raises(MalformedCertificate) as info:
        load_certificates(data)
    assert type(info.value) is MalformedCertificate


def test_not_bytes_and_limits() -> None:
    with pytest.raises(MalformedCertificate):
        load_certificate("text")  # type: ignore[arg-type]
    with pytest.raises(MalformedCertificate, match="more than 2"):
        load_certificates(DER * 3, max_count=2)
    with pytest.raises(MalformedCertificate, match="expected one"):
        load_certificate(DER + DER)
    with pytest.raises(MalformedCertificate, match="not DER"):
        load_certificate(PEM, der_only=True)


def test_every_single_byte_change_loads_fully_or_is_malformed() -> None:
    outcomes = set()
    for pos in range(len(DER)):
        for flip in (0x01, 0x80):
            data = DER[:pos] + bytes([DER[pos] ^ flip]) + DER[pos + 1 :]
            try:
                cert = load_certificate(data)
            except MalformedCertificate:
                outcomes.add("malformed")
                continue
            outcomes.add("loaded")
            _read_everything(cert)  # nothing is left to fail later
    assert outcomes == {"loaded", "malformed"}


def test_crls() -> None:
    crl = load_crl(_crl())
    assert crl.get_revoked_certificate_by_serial_number(9) is not None
    pem = x509.load_der_x509_crl(_crl()).public_bytes(Encoding.PEM)
    assert len(load_crls(pem + pem)) == 2
    data = _crl()
    for pos in range(len(data)):
        mutated = data[:pos] + bytes([data[pos] ^ 0x41]) + data[pos + 1 :]
        try:
            crl = load_crl(mutated)
        except MalformedCertificate:
            continue
        _ = [(r.serial_number, r.revocation_date_utc) for r in crl], crl.next_update_utc
    with pytest.raises(MalformedCertificate):
        load_crl(DER)
    with pytest.raises(MalformedCertificate):
        load_crls(pem.replace(b"X509 CRL", b"CERTIFICATE"))


def test_csrs() -> None:
    data = _csr()
    assert load_csr(data).subject == _NAME
    for pos in range(len(data)):
        mutated = data[:pos] + bytes([data[pos] ^ 0x41]) + data[pos + 1 :]
        try:
            csr = load_csr(mutated)
        except MalformedCertificate:
            continue
        _ = csr.subject.rfc4514_string(), csr.public_key(), list(csr.extensions)
    with pytest.raises(MalformedCertificate):
        load_csr(DER)
    with pytest.raises(MalformedCertificate):
        load_csr(PEM)


def test_a_name_attribute_outside_its_length_bounds_is_refused_in_a_csr() -> None:
    """cryptography only warns when it decodes such an attribute; the loader refuses it when
    it reads the subject, without formatting it as text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        long_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x" * 65, _validate=False)])
        builder = x509.CertificateSigningRequestBuilder().subject_name(long_name)
        csr = builder.sign(_KEY, hashes.SHA256())
    for data in (csr.public_bytes(Encoding.DER), csr.public_bytes(Encoding.PEM)):
        with pytest.raises(MalformedCertificate, match="Attribute's length") as info:
            load_csr(data)
        assert type(info.value) is MalformedCertificate
        assert info.value.code == "malformed-certificate"


@pytest.mark.vectors
def test_real_certificates_load(vectors: Path) -> None:
    chain = load_certificates((vectors / "caliptra" / "test_owner_certchain.der").read_bytes())
    assert len(chain) == 3
    vcek = load_certificate(
        (vectors / "tee" / "snp" / "tests_certs_data_vcek_milan.der").read_bytes()
    )
    assert (
        vcek.subject.rfc4514_string()
        == "CN=SEV-VCEK,O=Advanced Micro Devices,ST=CA,L=Santa Clara,C=US,OU=Engineering"
    )
    mldsa = load_certificate((vectors / "caliptra" / "ldevid_cert_mldsa.der").read_bytes())
    assert mldsa.signature_algorithm_oid.dotted_string == "2.16.840.1.101.3.4.3.19"
    assert load_csr((vectors / "caliptra" / "idevid_csr_mldsa.der").read_bytes())
    assert load_crls((vectors / "tee" / "tdx" / "testing_testdata_pckcrl").read_bytes())
    root_crl = load_crl((vectors / "tee" / "tdx" / "testing_testdata_rootcrl.der").read_bytes())
    assert "Intel SGX Root CA" in root_crl.issuer.rfc4514_string()


def test_a_parsed_certificate_is_remembered_with_its_options() -> None:
    """Parses are cached by the exact input and options: a PEM certificate loaded before
    is still refused where DER is required, and more certificates than allowed still are."""
    assert load_certificate(PEM).public_bytes(Encoding.DER) == DER
    with pytest.raises(MalformedCertificate, match="not DER"):
        load_certificate(PEM, der_only=True)
    assert len(load_certificates(DER * 3)) == 3
    with pytest.raises(MalformedCertificate, match="more than 2"):
        load_certificates(DER * 3, max_count=2)
    first = load_certificates(DER)
    first.clear()  # the caller's list: the cache keeps its own
    assert len(load_certificates(DER)) == 1


def test_a_pem_certificate_is_remembered_by_its_der_bytes_only() -> None:
    """A certificate read from PEM is remembered by its own DER bytes too (the same object
    for the same bytes); a DER input with a changed byte is parsed afresh."""
    cert = _cert(serial=11)
    der = cert.public_bytes(Encoding.DER)
    loaded = load_certificate(cert.public_bytes(Encoding.PEM))
    assert load_certificate(der, der_only=True) is loaded
    assert load_certificate(der) is loaded
    damaged = bytearray(der)
    damaged[1] ^= 0x01  # the outer length
    with pytest.raises(MalformedCertificate):
        load_certificate(bytes(damaged), der_only=True)


def test_a_bundle_reuses_certificates_read_before_and_remembers_its_own() -> None:
    """A bundle (PEM, or DER back to back) whose certificates were read before gets the
    objects read then (a class's shared CA certificates in every node's chain file are checked
    once); a bundle's new certificates are remembered by their own DER bytes; one read only
    with ``allow_unsupported`` is never handed to a strict read of a bundle."""
    shared, own, other = _cert(serial=21), _cert(serial=22), _cert(serial=23)
    shared_der, own_der, other_der = (c.public_bytes(Encoding.DER) for c in (shared, own, other))
    first = load_certificate(shared_der, der_only=True)
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in (own, shared))
    bundle = load_certificates(pem)
    assert bundle[1] is first
    assert load_certificate(own_der, der_only=True) is bundle[0]
    der_bundle = load_certificates(other_der + shared_der, der_only=True)
    assert der_bundle[1] is first
    assert load_certificate(other_der, der_only=True) is der_bundle[0]
    bad = DER.replace(_EC_OID, _EC_OID[:-1] + b"\x0b", 1)
    assert load_certificate(bad, allow_unsupported=True).serial_number == 7
    for data in (bad + shared_der, shared_der + bad):
        with pytest.raises(MalformedCertificate, match="unsupported public key"):
            load_certificates(data, der_only=True)


def test_a_strict_parse_serves_a_permissive_one_never_the_reverse() -> None:
    """A certificate read without ``allow_unsupported`` is the same object read with it (as
    the DICE parser does after the SPDM and X.509 paths); one read only with it (an
    unsupported algorithm) is still refused without it."""
    cert = _cert(serial=12)
    der = cert.public_bytes(Encoding.DER)
    strict = load_certificate(der, der_only=True)
    assert load_certificate(der, der_only=True, allow_unsupported=True) is strict
    assert load_certificate(der, allow_unsupported=True) is strict
    bad = DER.replace(_EC_OID, _EC_OID[:-1] + b"\x0a", 1)
    assert load_certificate(bad, allow_unsupported=True).serial_number == 7
    for _ in range(2):
        with pytest.raises(MalformedCertificate, match="unsupported public key"):
            load_certificate(bad)


def _padded_signature(bits: int) -> bytes:
    """A certificate's DER with its signature BIT STRING claiming ``bits`` unused bits; made
    from certificates whose signature's last byte has those bits zero, so that the BIT STRING
    is still valid DER for the parser and the signature the same bytes."""
    for serial in range(1, 10_000):
        der = _cert(serial).public_bytes(Encoding.DER)
        if der[-1] & ((1 << bits) - 1) == 0:
            break
    # the signature BIT STRING is the last element: its unused-bits byte precedes the ECDSA
    # signature's DER SEQUENCE (0x30 <len>), which is the certificate's tail
    sig = x509.load_der_x509_certificate(der).signature
    at = len(der) - len(sig) - 1
    assert der[at] == 0
    return der[:at] + bytes([bits]) + der[at + 1 :]


@pytest.mark.parametrize("bits", [1, 3])
def test_a_signature_claiming_unused_bits_is_malformed(bits: int) -> None:
    """The unused-bits count is outside the signature: a certificate that claims some is the
    same signed certificate in other bytes (another fingerprint, another file digest); the
    parser accepts it when the named bits are zero. Every signature is whole octets."""
    padded = _padded_signature(bits)
    assert x509.load_der_x509_certificate(padded).signature  # the parser takes it
    with pytest.raises(MalformedCertificate) as caught:
        load_certificate(padded, what="test certificate")
    assert caught.value.detail == (
        "test certificate: a certificate's signature claims unused bits (DER signatures are "
        "whole octets)"
    )
    pem = x509.load_der_x509_certificate(padded).public_bytes(Encoding.PEM)
    with pytest.raises(MalformedCertificate):
        load_certificates(pem, what="test certificate")


def test_a_certificate_whose_signed_part_is_over_the_limit_is_malformed() -> None:
    """The TBSCertificate's size is read from the DER headers (its bytes are not encoded
    afresh): one over 64 KiB, in an input the bundle limit admits, is still refused."""
    big = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\0" * 70_000)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_NAME)
        .issuer_name(_NAME)
        .public_key(_KEY.public_key())
        .serial_number(9)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(big, critical=False)
        .sign(_KEY, hashes.SHA256())
    )
    der = cert.public_bytes(Encoding.DER)
    with pytest.raises(MalformedCertificate) as caught:
        load_certificate(der, what="test certificate", der_only=True)
    assert caught.value.detail == "test certificate holds a certificate over the size limit"


def test_the_parse_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    """The certificates parsed already are at most ``_LOADED_MAX`` inputs; one read again
    now and then stays while a flood of other inputs passes through, and the oldest of
    those go first."""
    from ironroot.crypto import _x509

    cert = _cert(serial=31)
    der, pem = cert.public_bytes(Encoding.DER), cert.public_bytes(Encoding.PEM)
    kept = load_certificate(der, der_only=True)
    inputs = [b"#%d\n" % i + pem for i in range(_x509._LOADED_MAX + 10)]
    for i, data in enumerate(inputs):
        assert load_certificates(data)[0] is kept  # read before by its DER bytes
        if i % 100 == 0:
            assert load_certificate(der, der_only=True) is kept
    assert len(_x509._LOADED) == _x509._LOADED_MAX
    assert (der, False, "der") in _x509._LOADED
    assert (inputs[0], False, "pem") not in _x509._LOADED
    assert (inputs[-1], False, "pem") in _x509._LOADED
