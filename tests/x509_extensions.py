"""Certificates re-signed with one more extension, for the RFC 5280 §4.2 tests: a relying party
must refuse a certificate carrying a critical extension it does not process, and ignore the
same extension when it is not critical."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

UNKNOWN_OID = "1.3.6.1.4.1.99999.7"
UNKNOWN = x509.UnrecognizedExtension(x509.ObjectIdentifier(UNKNOWN_OID), b"\x05\x00")


def refusal(cert: x509.Certificate, oid: str = UNKNOWN_OID) -> str:
    """The exact message (as a ``match`` pattern) of the refusal of ``cert``."""
    subject = cert.subject.rfc4514_string()
    return "^" + re.escape(f"certificate {subject!r}: unknown critical extension {oid}") + "$"


def with_extension(
    cert: x509.Certificate,
    issuer_key: Any,
    *,
    critical: bool,
    extension: x509.ExtensionType | None = UNKNOWN,
    public_key: Any = None,
) -> x509.Certificate:
    """``cert`` with ``extension`` added (none when ``None``; and ``public_key`` in place of its
    own, when given), signed again by ``issuer_key`` (a ``cryptography`` private key) the way
    it was signed."""
    added = [] if extension is None else [(extension, critical)]
    return resigned(cert, issuer_key, add=added, public_key=public_key)


def resigned(
    cert: x509.Certificate,
    issuer_key: Any,
    *,
    drop: tuple[type[x509.ExtensionType], ...] = (),
    add: Sequence[tuple[x509.ExtensionType, bool]] = (),
    public_key: Any = None,
) -> x509.Certificate:
    """``cert`` without its extensions of the types ``drop``, with the ``add`` ones
    (extension, critical), and ``public_key`` in place of its own when given, signed again by
    ``issuer_key`` the way it was signed."""
    kept = [e for e in cert.extensions if not isinstance(e.value, drop)]
    builder = x509.CertificateBuilder(
        issuer_name=cert.issuer,
        subject_name=cert.subject,
        public_key=cert.public_key() if public_key is None else public_key,
        serial_number=cert.serial_number,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
        extensions=[*kept, *(x509.Extension(e.oid, c, e) for e, c in add)],
    )
    if isinstance(issuer_key, rsa.RSAPrivateKey):
        return builder.sign(
            issuer_key,
            cert.signature_hash_algorithm,  # type: ignore[arg-type]
            rsa_padding=cert.signature_algorithm_parameters,  # type: ignore[arg-type]
        )
    return builder.sign(issuer_key, cert.signature_hash_algorithm)  # type: ignore[arg-type]
