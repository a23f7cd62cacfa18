"""A DICE certificate's ``tbs`` is its TBSCertificate exactly as encoded in its DER (what its
issuer signed), read from the DER headers."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import PublicKey
from ironroot.rot.dice import parse_certificate, verify_signature

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_tbs_is_the_signed_part_of_the_der() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tbs test")])
    der = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(3)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA384())
        .public_bytes(Encoding.DER)
    )
    cert = parse_certificate(der)
    assert cert.tbs == x509.load_der_x509_certificate(der).tbs_certificate_bytes
    assert cert.tbs in der
    verify_signature(cert, PublicKey(key.public_key()))
