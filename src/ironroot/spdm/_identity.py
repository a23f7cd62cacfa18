"""A device's SPDM identity: its signing key and the certificate chain its responder serves.

:meth:`DeviceIdentity.generate` makes a fresh test device: a self-signed root CA, a device CA
and the device (leaf) certificate, ECDSA with the hash its SPDM signing suite pairs with the
curve (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512). The CA keys exist only while the chain is
made; the device keeps its own key.

The leaf is shaped for SPDM peers, DMTF's libspdm among them (its certificate checks refuse a
leaf without these on some crypto back ends): BasicConstraints CA:FALSE and KeyUsage
digitalSignature, both critical; subject and authority key identifiers. The CAs carry
BasicConstraints CA:TRUE (the device CA with path length 0) and KeyUsage keyCertSign and
cRLSign. :func:`check_device_leaf` reports what a leaf certificate lacks.

``cryptography`` builds the certificates; nothing here is hand-encoded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey, PublicKey, load_certificate
from ironroot.errors import ConfigError, MalformedCertificate, UnsupportedAlgorithm
from ironroot.spdm._certchain import CertificateChain
from ironroot.spdm._constants import ASYM_FOR_ALGORITHM, SIGNING_SUITES

__all__ = ["DeviceIdentity", "check_device_leaf"]

_HASHES: Final[dict[Algorithm, hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    Algorithm.ES256: hashes.SHA256(),
    Algorithm.ES384: hashes.SHA384(),
    Algorithm.ES512: hashes.SHA512(),
}
_BACKDATE: Final = dt.timedelta(minutes=5)  # tolerate clock skew between peers
_MAX_DAYS: Final = 36500


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    *,
    subject: str,
    key: PrivateKey,
    issuer: str,
    issuer_key: PrivateKey,
    ca: bool,
    path_length: int | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> bytes:
    public = key.public_key.raw
    signing_key = issuer_key.raw
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        signing_key, ec.EllipticCurvePrivateKey
    ):
        raise ConfigError("SPDM device certificates are ECDSA")
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_key_usage(signing=not ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    try:
        certificate = builder.sign(signing_key, _HASHES[issuer_key.algorithm])
    except (ValueError, TypeError) as exc:
        raise MalformedCertificate(f"certificate cannot be built: {exc}") from exc
    return certificate.public_bytes(Encoding.DER)


def check_device_leaf(certificate: bytes) -> list[str]:
    """What the DER ``certificate`` lacks as an SPDM device (leaf) certificate: an empty list
    when it has BasicConstraints CA:FALSE and KeyUsage digitalSignature, both critical."""
    extensions = load_certificate(certificate, what="device certificate", der_only=True).extensions
    problems: list[str] = []
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        problems.append("no BasicConstraints")
    else:
        if constraints.value.ca:
            problems.append("BasicConstraints says CA:TRUE")
        if not constraints.critical:
            problems.append("BasicConstraints is not critical")
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        problems.append("no KeyUsage")
    else:
        if not usage.value.digital_signature:
            problems.append("KeyUsage lacks digitalSignature")
        if not usage.critical:
            problems.append("KeyUsage is not critical")
    return problems


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """An SPDM responder's signing ``key`` and its certificate ``chain`` (DER, root first,
    the leaf certifying ``key`` last)."""

    key: PrivateKey = field(repr=False)
    chain: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.key, PrivateKey):
            raise ConfigError("a device identity needs an ironroot.crypto PrivateKey")
        if self.key.algorithm not in ASYM_FOR_ALGORITHM:
            raise ConfigError(f"SPDM signing with {self.key.algorithm.label} is not supported")
        if not self.chain or not all(isinstance(c, bytes) for c in self.chain):
            raise ConfigError("a device identity needs its DER certificate chain")
        _, hash_algo, _ = SIGNING_SUITES[ASYM_FOR_ALGORITHM[self.key.algorithm]]
        leaf = CertificateChain.build(self.chain, hash_algo).x509()[-1]
        try:
            leaf_key = PublicKey(leaf.public_key())  # type: ignore[arg-type]
        except (UnsupportedAlgorithm, MalformedCertificate) as exc:
            raise ConfigError("the leaf certificate's key is not usable for SPDM") from exc
        if leaf_key != self.key.public_key:
            raise ConfigError("the leaf certificate does not certify the device key")

    @property
    def root(self) -> bytes:
        """The root certificate (DER): the trust anchor a requester needs."""
        return self.chain[0]

    @property
    def leaf(self) -> bytes:
        return self.chain[-1]

    @classmethod
    def generate(
        cls,
        algorithm: Algorithm = Algorithm.ES384,
        *,
        now: dt.datetime,
        common_name: str = "Ironroot SPDM Device",
        days: int = 3650,
    ) -> DeviceIdentity:
        """A new device key certified by a new device CA under a new root, valid from ``now``
        (less five minutes) for ``days`` days."""
        if algorithm not in _HASHES:
            raise ConfigError("an SPDM device key is ECDSA P-256, P-384 or P-521")
        if now.tzinfo is None:
            raise ConfigError("now must be a timezone-aware datetime")
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= _MAX_DAYS:
            raise ConfigError(f"validity is 1 to {_MAX_DAYS} days")
        if not isinstance(common_name, str) or not 1 <= len(common_name) <= 48:
            raise ConfigError("the common name is 1 to 48 characters")
        try:
            not_before = now - _BACKDATE
            not_after = now + dt.timedelta(days=days)
        except OverflowError as exc:
            raise ConfigError(
                f"a validity of {days} days from {now.isoformat()} is no date"
            ) from exc
        root_key, ca_key, device_key = (PrivateKey.generate(algorithm) for _ in range(3))
        root_name, ca_name = f"{common_name} Root CA", f"{common_name} CA"
        chain: Sequence[bytes] = (
            _certificate(
                subject=root_name,
                key=root_key,
                issuer=root_name,
                issuer_key=root_key,
                ca=True,
                path_length=None,
                not_before=not_before,
                not_after=not_after,
            ),
            _certificate(
                subject=ca_name,
                key=ca_key,
                issuer=root_name,
                issuer_key=root_key,
                ca=True,
                path_length=0,
                not_before=not_before,
                not_after=not_after,
            ),
            _certificate(
                subject=common_name,
                key=device_key,
                issuer=ca_name,
                issuer_key=ca_key,
                ca=False,
                path_length=None,
                not_before=not_before,
                not_after=not_after,
            ),
        )
        return cls(device_key, tuple(chain))
