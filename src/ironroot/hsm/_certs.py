"""The HSM attestation key's X.509 certificate, issued by the device identity.

The issuer is any :class:`~ironroot.crypto.Signer` (the RoT's DPE child key, a PKCS#11 key,
an in-memory key), so the certificate cannot be signed by ``cryptography``'s builder, which
wants a library private key. It is built in two steps: ``cryptography`` builds and signs the
certificate with a throwaway key of the issuer's algorithm, which gives the exact
``TBSCertificate`` DER (issuer, subject, extensions, and the signature AlgorithmIdentifier, which
depends only on the algorithm); then the issuer's ``Signer`` signs those TBS bytes and the
certificate is reassembled as ``SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }``
(RFC 5280 §4.1), with ECDSA's COSE ``r ‖ s`` turned into the DER ``Ecdsa-Sig-Value``. The
result is parsed back and verified against the issuer's certificate before it is used. The
small DER reader/writer below only splits and joins that outer SEQUENCE; everything inside is
the library's.

The issuer's certificate need not be a CA certificate (a DPE leaf is not), so the link from
the attestation certificate to the device certificate is checked directly
(``verify_directly_issued_by`` and validity at ``now``), and the device chain is then validated
to a trust anchor with :func:`ironroot.cose.verify_x5chain`. The attestation certificate may
carry no critical extension but the standard ones (RFC 5280 §4.2; ``ChainNotTrusted``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import secrets
from collections.abc import Sequence
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, ExtensionProfile, PrivateKey, PublicKey, Signer
from ironroot.crypto import load_certificate as crypto_load_certificate
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    ConfigError,
    MalformedCertificate,
    UnsupportedAlgorithm,
)

__all__ = ["check_issued_by", "issue_attestation_certificate", "load_certificate"]

NOT_AFTER: Final = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)  # RFC 5280 §4.1.2.5
_HASHES: Final[dict[Algorithm, hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    Algorithm.ES256: hashes.SHA256(),
    Algorithm.ES384: hashes.SHA384(),
    Algorithm.ES512: hashes.SHA512(),
}
_EC_SIZES: Final = {Algorithm.ES256: 32, Algorithm.ES384: 48, Algorithm.ES512: 66}
# What a verifier of the attestation certificate processes (RFC 5280 §4.2): the standard ones.
_ATTESTATION_EXTENSIONS: Final = ExtensionProfile.of("HSM attestation")


def load_certificate(der: bytes) -> x509.Certificate:
    """One DER certificate, every field read (:func:`ironroot.crypto.load_certificate`)."""
    return crypto_load_certificate(der, what="certificate", der_only=True)


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes((size,))
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _header_size(data: bytes, offset: int) -> int:
    """Tag and length octets of the DER TLV at ``offset`` (DER lengths are definite)."""
    first = data[offset + 1]
    return 2 + (first & 0x7F if first & 0x80 else 0)


def _tlv_end(data: bytes, offset: int) -> int:
    head = _header_size(data, offset)
    first = data[offset + 1]
    size = int.from_bytes(data[offset + 2 : offset + head], "big") if first & 0x80 else first
    return offset + head + size


def _algorithm_identifier(cert_der: bytes) -> bytes:
    """The raw ``signatureAlgorithm`` TLV: the element after the TBSCertificate."""
    tbs_end = _tlv_end(cert_der, _header_size(cert_der, 0))
    return cert_der[tbs_end : _tlv_end(cert_der, tbs_end)]


def _der_signature(algorithm: Algorithm, signature: bytes) -> bytes:
    size = _EC_SIZES.get(algorithm)
    if size is None:
        return signature
    if len(signature) != 2 * size:
        raise BadSignature("the device signer returned an ECDSA signature of the wrong size")
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    return encode_dss_signature(r, s)


def issue_attestation_certificate(
    *,
    subject_key: PublicKey,
    hsm_id: bytes,
    issuer: Signer,
    issuer_chain: Sequence[bytes],
    now: dt.datetime,
) -> bytes:
    """A DER certificate for the HSM attestation key, signed by ``issuer``.

    Subject ``CN=Ironroot HSM attestation, serialNumber=<hsm id hex>``; end entity
    (basicConstraints CA false, critical); keyUsage digitalSignature (critical); SKI; AKI from
    the issuer certificate's SKI when it has one; valid from ``now`` to 9999-12-31 (no
    well-defined expiration, RFC 5280 §4.1.2.5).
    """
    issuer_cert = load_certificate(issuer_chain[0])
    issuer_public = PublicKey.from_der(
        issuer_cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    if issuer_public.kid != issuer.kid:
        raise ConfigError("the device signer's key is not the key of its certificate")
    # The chain goes into every statement's x5chain, which verifiers take only as the ordered
    # path (RFC 9360): a chain in another order would make attestations nobody accepts.
    for child, parent in itertools.pairwise(issuer_chain):
        try:
            load_certificate(child).verify_directly_issued_by(load_certificate(parent))
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ConfigError(
                "the device chain is not in order: each certificate must be followed by its "
                "issuer's"
            ) from exc
    alg = issuer.algorithm
    try:
        throwaway = PrivateKey.generate(alg)
    except UnsupportedAlgorithm as exc:
        raise ConfigError(f"a device identity cannot sign certificates with {alg.label}") from exc
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Ironroot HSM attestation"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, hsm_id.hex()),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject)
        .public_key(subject_key.raw)
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1 or 1)
        .not_valid_before(now.replace(microsecond=0))
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier(hashlib.sha256(subject_key.raw_bytes()).digest()[:20]),
            critical=False,
        )
    )
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value),
            critical=False,
        )
    except x509.ExtensionNotFound:
        pass
    try:
        draft = builder.sign(throwaway.raw, _HASHES.get(alg))
    except (ValueError, TypeError) as exc:
        raise MalformedCertificate("the attestation certificate cannot be built") from exc
    draft_der = draft.public_bytes(Encoding.DER)
    tbs = draft.tbs_certificate_bytes
    signature = _der_signature(alg, issuer.sign(tbs))
    body = tbs + _algorithm_identifier(draft_der)
    body += b"\x03" + _length(len(signature) + 1) + b"\x00" + signature
    der = b"\x30" + _length(len(body)) + body
    check_issued_by(load_certificate(der), issuer_cert, now)
    return der


def check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> None:
    """``cert`` is signed by ``issuer``'s key, names it as issuer, carries no critical
    extension but the standard ones, and both are valid at ``now``; else ``ChainNotTrusted`` /
    ``CertificateExpired``."""
    at = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
    for one in (cert, issuer):
        if not one.not_valid_before_utc <= at <= one.not_valid_after_utc:
            raise CertificateExpired("a certificate of the attestation chain is not valid now")
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ChainNotTrusted("the attestation certificate is not issued by the device") from exc
    _ATTESTATION_EXTENSIONS.check(cert)
