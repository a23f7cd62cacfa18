"""Shared builders for the cose tests: certificate chains made on the fly with `cryptography`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
CODE_SIGNING = x509.oid.ExtendedKeyUsageOID.CODE_SIGNING


def name(**attrs: str) -> x509.Name:
    oids = {
        "CN": NameOID.COMMON_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "C": NameOID.COUNTRY_NAME,
        "L": NameOID.LOCALITY_NAME,
        "ST": NameOID.STATE_OR_PROVINCE_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    }
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


def certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: object,
    signing_key: object,
    *,
    ca: bool,
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    san: Sequence[x509.GeneralName] | None = None,
    extra: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    for ext in extra:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(signing_key, hashes.SHA384())  # type: ignore[arg-type]


@dataclass
class Chain:
    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: object

    @property
    def certs(self) -> list[x509.Certificate]:
        return [self.leaf, self.intermediate, self.root]

    def der(self, *, with_root: bool = False) -> list[bytes]:
        from cryptography.hazmat.primitives.serialization import Encoding

        certs = self.certs if with_root else self.certs[:2]
        return [c.public_bytes(Encoding.DER) for c in certs]


def make_chain(
    *,
    leaf_key: object | None = None,
    leaf_subject: x509.Name | None = None,
    eku: Sequence[x509.ObjectIdentifier] | None = (CODE_SIGNING,),
    san: Sequence[x509.GeneralName] | None = None,
    leaf_not_after: dt.datetime = NOW + dt.timedelta(days=90),
    extra: Sequence[x509.ExtensionType] = (),
) -> Chain:
    root_key = ec.generate_private_key(ec.SECP384R1())
    inter_key = ec.generate_private_key(ec.SECP384R1())
    key = leaf_key if leaf_key is not None else ec.generate_private_key(ec.SECP384R1())
    root_name = name(CN="Ironroot Test Root", O="Ironroot")
    inter_name = name(CN="Ironroot Test Issuing CA", O="Ironroot")
    root = certificate(root_name, root_name, root_key.public_key(), root_key, ca=True)
    inter = certificate(inter_name, root_name, inter_key.public_key(), root_key, ca=True)
    leaf = certificate(
        leaf_subject or name(CN="Firmware Signer", O="Contoso", C="US"),
        inter_name,
        key.public_key(),  # type: ignore[attr-defined]
        inter_key,
        ca=False,
        eku=eku,
        san=san,
        not_after=leaf_not_after,
        extra=extra,
    )
    return Chain(root=root, intermediate=inter, leaf=leaf, leaf_key=key)
