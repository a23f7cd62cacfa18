"""Signatures :func:`ironroot.rot.dice.verify_chain` found valid are remembered by the key
that verified them and the certificate's exact DER: a certificate verified under one issuer
is verified afresh under another of the same name (and refused when that one did not sign
it), and under its own issuer's key given alone (:func:`verify_signature`)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import PublicKey
from ironroot.errors import BadSignature
from ironroot.rot.dice import parse_certificate, verify_chain, verify_signature

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ROOT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chain cache root")])
LEAF = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chain cache leaf")])


def _cert(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePublicKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> bytes:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA384())
        .public_bytes(Encoding.DER)
    )


def test_a_signature_verified_under_one_issuer_is_checked_again_under_another() -> None:
    keys = [ec.generate_private_key(ec.SECP384R1()) for _ in range(3)]
    signer, other, leaf_key = keys
    root = parse_certificate(_cert(ROOT, ROOT, signer.public_key(), signer, ca=True))
    impostor = parse_certificate(_cert(ROOT, ROOT, other.public_key(), other, ca=True))
    leaf = parse_certificate(_cert(LEAF, ROOT, leaf_key.public_key(), signer, ca=False))
    for _ in range(2):
        verify_chain([root, leaf])
        with pytest.raises(BadSignature):
            verify_chain([impostor, leaf])
        with pytest.raises(BadSignature):
            verify_signature(leaf, PublicKey(other.public_key()))
    verify_signature(leaf, PublicKey(signer.public_key()))
