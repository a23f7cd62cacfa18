"""A small vendor CA: self-signed ECC P-384 and ML-DSA-87 roots that issue IDevID certificates
from the device's CSRs at manufacturing.

Real vendors run this in an HSM-backed PKI; this one exists to provision test devices and to
give the quote verifier something to trust. It only issues certificates that follow the IDevID
profile: the CSR must verify under its own key (proof of possession), carry the DICE IDevID
subject for that key, basicConstraints CA, tcg-dice-kp-identityInit and a Ueid. The IDevID
certificate keeps the CSR's subject, key and Ueid and adds SKI and AKI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey, PublicKey, load_certificate
from ironroot.errors import ConfigError, MalformedCertificate, MalformedInput
from ironroot.rot._layers import (
    CERT_NOT_AFTER,
    IDEVID,
    cert_serial,
    device_ueid,
    issue_certificate,
    key_id,
    layer_name,
    signature_hash,
)
from ironroot.rot.dice import DiceCertificate, parse_certificate, parse_csr, verify_signature

__all__ = ["VendorCA"]

_ALGORITHMS: Final = (Algorithm.ES384, Algorithm.ML_DSA_87)
_ALG_NAMES: Final = {Algorithm.ES384: "Ecc384", Algorithm.ML_DSA_87: "MlDsa87"}


def _root(key: PrivateKey, common_name: str, now: dt.datetime) -> bytes:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} {_ALG_NAMES[key.algorithm]}"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, key_id(key.public_key).hex().upper()),
        ]
    )
    kid = key_id(key.public_key)[:20]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key.raw)
        .serial_number(cert_serial(key.public_key))
        .not_valid_before(now.replace(microsecond=0))
        .not_valid_after(CERT_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier(kid), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier(kid, None, None), critical=False)
    )
    return builder.sign(key.raw, signature_hash(key)).public_bytes(Encoding.DER)


@dataclass(frozen=True, slots=True)
class VendorCA:
    """A vendor CA with one root per algorithm (ES384 and ML-DSA-87)."""

    ecc_key: PrivateKey = field(repr=False)
    mldsa_key: PrivateKey = field(repr=False)
    ecc_certificate: bytes = field(repr=False)
    mldsa_certificate: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for key, cert_der, alg in (
            (self.ecc_key, self.ecc_certificate, Algorithm.ES384),
            (self.mldsa_key, self.mldsa_certificate, Algorithm.ML_DSA_87),
        ):
            if key.algorithm is not alg:
                raise ConfigError(f"the vendor CA needs an {alg.label} key")
            cert = parse_certificate(cert_der)
            if cert.public_key != key.public_key:
                raise ConfigError(f"the {alg.label} vendor CA certificate is not for its key")

    @classmethod
    def generate(
        cls, *, now: dt.datetime, common_name: str = "Ironroot Test Vendor CA"
    ) -> VendorCA:
        ecc = PrivateKey.generate(Algorithm.ES384)
        mldsa = PrivateKey.generate(Algorithm.ML_DSA_87)
        return cls(ecc, mldsa, _root(ecc, common_name, now), _root(mldsa, common_name, now))

    @classmethod
    def from_pem(cls, keys: Sequence[bytes], certificates: Sequence[bytes]) -> VendorCA:
        """From PEM private keys and certificates, one of each per algorithm, in any order."""
        by_alg_key: dict[Algorithm, PrivateKey] = {}
        by_alg_cert: dict[Algorithm, bytes] = {}
        for data in keys:
            key = PrivateKey.from_pem(data)
            by_alg_key[key.algorithm] = key
        for data in certificates:
            cert = parse_certificate(data)
            if cert.public_key is None:
                raise MalformedCertificate("vendor CA certificate key is not supported")
            by_alg_cert[cert.public_key.algorithm] = cert.der
        missing = [a.label for a in _ALGORITHMS if a not in by_alg_key or a not in by_alg_cert]
        if missing:
            raise ConfigError(f"the vendor CA needs a key and a certificate for {missing}")
        return cls(
            by_alg_key[Algorithm.ES384],
            by_alg_key[Algorithm.ML_DSA_87],
            by_alg_cert[Algorithm.ES384],
            by_alg_cert[Algorithm.ML_DSA_87],
        )

    def key(self, algorithm: Algorithm) -> PrivateKey:
        if algorithm is Algorithm.ES384:
            return self.ecc_key
        if algorithm is Algorithm.ML_DSA_87:
            return self.mldsa_key
        raise ConfigError(f"the vendor CA has no {algorithm.label} key")

    def certificate(self, algorithm: Algorithm) -> bytes:
        if algorithm is Algorithm.ES384:
            return self.ecc_certificate
        if algorithm is Algorithm.ML_DSA_87:
            return self.mldsa_certificate
        raise ConfigError(f"the vendor CA has no {algorithm.label} certificate")

    @property
    def trust_anchors(self) -> tuple[bytes, bytes]:
        """The two root certificates (DER), for quote verifiers."""
        return self.ecc_certificate, self.mldsa_certificate

    def issue_idevid(self, csr_der: bytes, *, now: dt.datetime) -> bytes:
        """Check an IDevID CSR and issue its certificate (DER), valid from ``now`` on."""
        csr = parse_csr(csr_der)
        key = _check_idevid_csr(csr)
        ca_key = self.key(key.algorithm)
        ca_cert = parse_certificate(self.certificate(key.algorithm))
        assert csr.dice.ueid is not None  # checked above
        return issue_certificate(
            profile=IDEVID,
            subject=key,
            issuer_key=ca_key,
            issuer_name=load_certificate(ca_cert.der, der_only=True).subject,
            ueid=csr.dice.ueid,
            not_before=now.replace(microsecond=0),
        )


def _check_idevid_csr(csr: DiceCertificate) -> PublicKey:
    key = csr.public_key
    if key is None or key.algorithm not in _ALGORITHMS:
        raise MalformedCertificate("an IDevID CSR has an ES384 or ML-DSA-87 key")
    verify_signature(csr, key)
    if csr.subject_der != layer_name(IDEVID.layer, key).public_bytes():
        raise MalformedCertificate("the CSR subject is not the IDevID name for its key")
    if csr.is_ca is not True or "identityInit" not in csr.dice.key_purposes:
        raise MalformedCertificate("the CSR does not ask for an IDevID (CA, identityInit)")
    if csr.dice.ueid is None:
        raise MalformedInput("the IDevID CSR has no Ueid")
    # The Ueid is named by the ECC IDevID key (docs/rot.md): a CSR may not ask for another
    # device's. (An ML-DSA-87 CSR alone does not name it; a quote's chains must agree.)
    if key.algorithm is Algorithm.ES384 and csr.dice.ueid != device_ueid(key):
        raise MalformedCertificate(
            f"the IDevID CSR asks for Ueid {csr.dice.ueid.hex()}; its ECC key names "
            f"{device_ueid(key).hex()}"
        )
    return key
