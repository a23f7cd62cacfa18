"""The trusted roots of ``Endorsements``: each held as its DER and SHA-256 fingerprint, PEM
or DER given; a RIoT root the X.509 loader refuses (ECDSA NULL parameters) read by the DICE
parser; what is not one certificate refused with ``MalformedCertificate``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.attestation import Endorsements, ReferenceValue, ReferenceValues
from ironroot.crypto import load_certificate
from ironroot.errors import MalformedCertificate
from ironroot.rim import LoggedRims
from ironroot.rot import parse_certificate

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _root() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trusted root test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(5)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )


def test_a_root_is_held_as_its_der_and_fingerprint_pem_or_der() -> None:
    root = _root()
    der = root.public_bytes(Encoding.DER)
    load_certificate(der, der_only=True)  # read before, as a pinned SPDM root is
    for given in (der, root.public_bytes(Encoding.PEM)):
        endorsements = Endorsements(vendor_roots=(given,))
        assert endorsements.vendor_roots == (der,)
        assert endorsements.trusted_roots == frozenset({hashlib.sha256(der).hexdigest()})


def test_a_riot_root_with_ecdsa_null_parameters_is_read_by_the_dice_parser(
    vectors: Path,
) -> None:
    pem = (vectors / "cerberus" / "riot_core-devid-384.crt").read_bytes()
    with pytest.raises(MalformedCertificate):
        load_certificate(pem, allow_unsupported=True)
    der = parse_certificate(pem).der
    for given in (pem, der):
        endorsements = Endorsements(vendor_roots=(given,))
        assert endorsements.vendor_roots == (der,)
        assert endorsements.trusted_roots == frozenset({hashlib.sha256(der).hexdigest()})


@pytest.mark.parametrize("given", [b"not a certificate", b"\x30\x03\x02\x01\x01"])
def test_what_is_not_a_certificate_is_refused(given: bytes) -> None:
    with pytest.raises(MalformedCertificate):
        Endorsements(vendor_roots=(given,))


def test_endorsements_given_other_roots_are_those_built_with_them(vectors: Path) -> None:
    # A fleet's devices each pin their own root beside their class's values: the copy
    # trusting another root is what building them with it makes, every field alike.

    value = ReferenceValue(
        mkey="fmc",
        digests=((7, b"\x01" * 48),),
        vendor="vendor",
        model="model",
        issuer="vendor",
        tag_id=b"a",
        not_before=int(NOW.timestamp()),
        svn=3,
    )
    values = ReferenceValues([value])
    rims = LoggedRims()  # compared as the very object, as the values are
    riot = (vectors / "cerberus" / "riot_core-devid-384.crt").read_bytes()
    first = _root().public_bytes(Encoding.DER)
    for given in ((first,), (_root().public_bytes(Encoding.PEM),), (riot,), (first, riot), ()):
        built = Endorsements(reference_values=values, vendor_roots=given, rims=rims)
        copied = Endorsements(reference_values=values, vendor_roots=(first,), rims=rims)
        copied = copied._with_vendor_roots(given)
        assert type(copied) is Endorsements
        for field in dataclasses.fields(Endorsements):
            assert getattr(copied, field.name) == getattr(built, field.name), field.name
        assert copied == built
        assert copied.validity_epoch(NOW) == built.validity_epoch(NOW)
    with pytest.raises(MalformedCertificate):
        Endorsements(reference_values=values)._with_vendor_roots((b"not a certificate",))
