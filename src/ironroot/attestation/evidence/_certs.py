"""Certificate handling shared by the hardware evidence verifiers.

Loading (PEM or DER, one or several concatenated), validity at a given time, one issuer link;
CRLs in :mod:`._revocation`. Signature checks of certificates and CRLs are ``cryptography`` calls
(``verify_directly_issued_by`` handles both the RSASSA-PSS SHA-384 signatures of AMD's KDS and
the ECDSA P-256 signatures of Intel's PCS); only the glue that maps their failures onto
Ironroot's typed errors is written here.

Certificates are read by :func:`ironroot.crypto.load_certificates`, which reads every field
once and raises only ``MalformedCertificate`` (it also accepts AMD's VCEK and VLEK certificates
with serial number 0, which RFC 5280 forbids).

Each issuer link names the :class:`~ironroot.crypto.ExtensionProfile` of its verifier (the
extensions it processes: AMD's VCEK extensions, Intel's SGX extension, the GPU's RIoT device id);
a certificate below the trust anchor carrying any other critical extension is refused
(RFC 5280 §4.2, ``ChainNotTrusted``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from ironroot.crypto import ExtensionProfile
from ironroot.crypto import load_certificates as crypto_load_certificates
from ironroot.errors import (
    CertificateExpired,
    ChainNotTrusted,
    MalformedCertificate,
)

__all__ = [
    "CertificateInput",
    "aware",
    "check_validity",
    "earliest",
    "fingerprint",
    "load_certificates",
    "optional_extension",
    "subject_text",
    "verify_issued_by",
]

CertificateInput = bytes | x509.Certificate

_MAX_CERTIFICATES: Final = 16


def aware(now: datetime) -> datetime:
    """``now`` as an aware UTC datetime (a naive value is taken as UTC)."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def load_certificates(
    data: CertificateInput, *, what: str = "certificate"
) -> list[x509.Certificate]:
    """Every certificate in ``data``: DER (one, or several back to back) or PEM with one or
    more blocks, every field read once (:func:`ironroot.crypto.load_certificates`).

    Raises ``MalformedCertificate`` when anything does not parse, a block is damaged, or there
    are more than 16 certificates.
    """
    if isinstance(data, x509.Certificate):
        return [data]
    if not isinstance(data, bytes) or not data:
        raise MalformedCertificate(f"{what} must be non-empty DER or PEM bytes")
    return crypto_load_certificates(data, what=what, max_count=_MAX_CERTIFICATES)


def fingerprint(cert: x509.Certificate) -> bytes:
    """SHA-256 over the certificate's DER encoding."""
    return cert.fingerprint(hashes.SHA256())


def subject_text(cert: x509.Certificate) -> str:
    """The subject as an RFC 4514 string."""
    return cert.subject.rfc4514_string()


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def check_validity(certs: Iterable[x509.Certificate], now: datetime) -> None:
    """Raise ``CertificateExpired`` if any certificate is outside its validity period at ``now``."""
    at = aware(now)
    for cert in certs:
        if at < cert.not_valid_before_utc:
            raise CertificateExpired(
                f"certificate {_common_name(cert)!r} is not valid before "
                f"{cert.not_valid_before_utc.isoformat()}"
            )
        if at > cert.not_valid_after_utc:
            raise CertificateExpired(
                f"certificate {_common_name(cert)!r} expired at "
                f"{cert.not_valid_after_utc.isoformat()}"
            )


def earliest(certs: Iterable[x509.Certificate], *times: datetime | None) -> datetime | None:
    """The first of the certificates' ``notAfter`` and the ``times`` given (``None`` ones
    left out): when what a verification relied on stops holding (``None``: nothing given)."""
    found = [cert.not_valid_after_utc for cert in certs]
    found += [aware(t) for t in times if t is not None]
    return min(found, default=None)


def verify_issued_by(
    cert: x509.Certificate, issuer: x509.Certificate, *, profile: ExtensionProfile | None
) -> None:
    """Check that ``issuer`` signed ``cert`` (names match and the signature verifies), that
    ``issuer`` is a CA allowed to sign certificates (basic constraints CA:TRUE and, when it has
    a key usage, keyCertSign: RFC 5280 §6.1.4 (k), (n)) unless it is ``cert`` itself (a
    self-signed anchor's own check), and that ``cert`` carries no critical extension
    ``profile`` does not process (``None`` only for a trust anchor's own check, whose
    extensions are not path input: RFC 5280 §6.1.1 (d)).

    Raises ``ChainNotTrusted`` otherwise.
    """
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ChainNotTrusted(
            f"certificate {_common_name(cert)!r} is not signed by {_common_name(issuer)!r}"
        ) from exc
    if issuer is not cert and issuer != cert:
        _check_ca(issuer, cert)
    if profile is not None:
        profile.check(cert)


_E = TypeVar("_E", bound=x509.ExtensionType)


def optional_extension(extensions: x509.Extensions, kind: type[_E]) -> _E | None:
    """The value of the extension of type ``kind`` among ``extensions``, ``None`` without one."""
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_ca(issuer: x509.Certificate, cert: x509.Certificate) -> None:
    """``ChainNotTrusted`` unless ``issuer`` may sign certificates (:func:`verify_issued_by`)."""
    try:
        extensions = issuer.extensions
        basic = optional_extension(extensions, x509.BasicConstraints)
        usage = optional_extension(extensions, x509.KeyUsage)
    except ValueError as exc:  # a malformed or duplicated extension
        raise ChainNotTrusted(
            f"certificate {_common_name(issuer)!r} has extensions that do not parse: {exc}"
        ) from exc
    if basic is None or not basic.ca:
        raise ChainNotTrusted(
            f"certificate {_common_name(issuer)!r} is not a CA (basic constraints), so it "
            f"cannot issue {_common_name(cert)!r}"
        )
    if usage is not None and not usage.key_cert_sign:
        raise ChainNotTrusted(
            f"certificate {_common_name(issuer)!r} may not sign certificates (key usage "
            f"without keyCertSign), so it cannot issue {_common_name(cert)!r}"
        )
