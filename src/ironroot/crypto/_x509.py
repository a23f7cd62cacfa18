"""The one way Ironroot reads X.509 certificates, CSRs and CRLs from outside bytes.

``cryptography`` parses an X.509 object in two steps: ``load_*`` checks the outer structure,
and most fields (names, validity, the public key, the signature algorithm, extensions, the
entries of a CRL) are decoded later, on first access, each with its own exceptions
(``ValueError``, ``InvalidVersion``, ``DuplicateExtension``, ``UnsupportedGeneralNameType``,
``UnsupportedAlgorithm``, ``TypeError``). A caller that catches only ``ValueError`` around
``load_*`` lets the others escape from wherever a field is first read.

The loaders here read every field the project uses once, at the boundary, and turn any failure
into :class:`~ironroot.errors.MalformedCertificate` (chained ``from`` the original), so an object
they return can be used without further guards. ``what`` names the object in messages ("PCK
certificate chain", "trust anchor …").

Written by hand, because no library does it: splitting concatenated DER certificates (a chain
file is several DER SEQUENCEs back to back; ``cryptography`` reads exactly one) reads each
element's definite DER length header, nothing else.

AMD issues VCEK and VLEK certificates with serial number 0, which RFC 5280 forbids and which
``cryptography`` accepts with a deprecation warning; the warning is silenced while loading,
for exactly that case, because those certificates are the vendor's real, and only, endorsements.

Critical extensions (RFC 5280 §4.2: a relying party MUST reject a certificate carrying a
critical extension it does not recognize or process). Every verifier that checks issuer links
itself (``verify_directly_issued_by``) says which extensions it processes with one
:class:`ExtensionProfile` (:data:`STANDARD_EXTENSIONS` plus the ones it reads, e.g. the DICE
TcbInfo, AMD's VCEK TCB extensions, Intel's SGX extension) and checks every certificate of the
path below its trust anchor with :meth:`ExtensionProfile.check` (``ChainNotTrusted``: "certificate
'CN=…': unknown critical extension 1.2.3.4"). A non-critical extension it does not know is
ignored, as the RFC says. ``cryptography``'s own path validation
(``x509.verification``, used for COSE ``x5chain`` and SPDM chains) refuses every critical
extension its policy does not account for, and accounts only for the extensions it has a type
for: :meth:`ExtensionProfile.extension_policy` declares a profile's own extensions in such a
policy (by OID; may be present, critical or not), so that a DICE chain (:data:`DICE_EXTENSIONS`:
TcbInfo, MultiTcbInfo and UEID, which the TCG DICE specifications make critical, and Open
DICE's extension, critical in Open DICE chains) verifies there too; every other critical
extension it does not know is still refused, by ``cryptography``.
"""

from __future__ import annotations

import operator
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm as _CryptoUnsupported
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification

from ironroot._memo import Memo
from ironroot.crypto._messages import library_error_text
from ironroot.errors import ChainNotTrusted, MalformedCertificate

__all__ = [
    "CRL_ENTRY_EXTENSIONS",
    "CRL_EXTENSIONS",
    "MAX_CERTIFICATES",
    "MAX_CERTIFICATE_BYTES",
    "MAX_CRL_BYTES",
    "STANDARD_EXTENSIONS",
    "X509_PARSE_ERRORS",
    "ExtensionProfile",
    "check_crl",
    "crl_covers",
    "load_certificate",
    "load_certificates",
    "load_crl",
    "load_crls",
    "load_csr",
]

MAX_CERTIFICATE_BYTES: Final = 64 * 1024
"""One certificate or CSR (an ML-DSA-87 certificate is about 8 KB)."""
MAX_CERTIFICATES: Final = 16
"""Certificates in one input (a chain file, a PEM bundle)."""
MAX_CRL_BYTES: Final = 4 * 1024 * 1024
"""One CRL, or one PEM file of CRLs."""

X509_PARSE_ERRORS: Final[tuple[type[Exception], ...]] = (
    ValueError,
    TypeError,
    OverflowError,
    IndexError,
    KeyError,
    UnicodeError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    _CryptoUnsupported,
)
"""Every exception ``cryptography`` raises for bytes that are not a usable X.509 object."""

_CAUGHT: Final[tuple[type[Exception], ...]] = (*X509_PARSE_ERRORS, UserWarning)
_PEM_ANY = re.compile(rb"-----BEGIN ([^-\r\n]{1,64})-----")
_CSR_LABELS: Final = (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")


def _reason(exc: BaseException) -> str:
    return library_error_text(exc)


@contextmanager
def _warnings_policy() -> Iterator[None]:
    """A zero serial number is tolerated silently; a name attribute outside its RFC 5280
    length bounds (``cryptography`` only warns) is an error."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*serial number.*", category=CryptographyDeprecationWarning
        )
        warnings.filterwarnings("error", message="Attribute's length", category=UserWarning)
        yield


@contextmanager
def _parsing(what: str) -> Iterator[None]:
    """Turn whatever ``cryptography`` raises for bad bytes into ``MalformedCertificate``."""
    try:
        yield
    except MalformedCertificate:
        raise
    except _CAUGHT as exc:
        raise MalformedCertificate(f"{what} does not parse: {_reason(exc)}") from exc


def _check_bytes(data: object, what: str, limit: int) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedCertificate(f"{what} must be bytes")
    data = bytes(data)
    if not data.strip():
        raise MalformedCertificate(f"{what} is empty")
    if len(data) > limit:
        raise MalformedCertificate(f"{what} is {len(data)} bytes, over the limit of {limit}")
    return data


def _algorithms(
    obj: x509.Certificate | x509.CertificateSigningRequest, what: str, allow_unsupported: bool
) -> None:
    """Read the public key and the signature algorithm; an algorithm ``cryptography`` does not
    implement is refused unless ``allow_unsupported`` (for inspection tools)."""
    for part, read in _ALGORITHM_PARTS:
        try:
            read(obj)
        except _CryptoUnsupported as exc:
            if not allow_unsupported:
                raise MalformedCertificate(
                    f"{what} uses an unsupported {part} algorithm: {_reason(exc)}"
                ) from exc


# What _algorithms reads, made once (not a tuple of closures per certificate).
_ALGORITHM_PARTS: Final = (
    ("public key", operator.methodcaller("public_key")),
    ("signature hash", operator.attrgetter("signature_hash_algorithm")),
    ("signature parameters", operator.attrgetter("signature_algorithm_parameters")),
)


def _force_certificate(cert: x509.Certificate, what: str, allow_unsupported: bool) -> None:
    # The to-be-signed bytes' size is checked by the caller from the DER (_check_encoding):
    # cryptography encodes them afresh at every read.
    _ = cert.version, cert.serial_number, cert.signature
    # Reading a name decodes every attribute (and warns for an out-of-bounds length);
    # formatting it as an RFC 4514 string adds nothing that can fail.
    _ = cert.subject, cert.issuer
    _ = cert.not_valid_before_utc, cert.not_valid_after_utc
    _ = cert.signature_algorithm_oid, cert.public_key_algorithm_oid
    for extension in cert.extensions:
        _ = extension.value
    _algorithms(cert, what, allow_unsupported)


def _force_csr(csr: x509.CertificateSigningRequest, what: str, allow_unsupported: bool) -> None:
    _ = csr.signature, csr.tbs_certrequest_bytes, csr.signature_algorithm_oid
    _ = csr.subject  # every attribute decoded, as for a certificate's names
    for extension in csr.extensions:
        _ = extension.value
    _algorithms(csr, what, allow_unsupported)


def _force_crl(crl: x509.CertificateRevocationList) -> None:
    _ = crl.signature, crl.tbs_certlist_bytes, crl.signature_algorithm_oid
    crl.issuer.rfc4514_string()
    _ = crl.last_update_utc, crl.next_update_utc
    _ = crl.signature_hash_algorithm, crl.signature_algorithm_parameters
    for extension in crl.extensions:
        _ = extension.value
    for revoked in crl:
        _ = revoked.serial_number, revoked.revocation_date_utc
        for extension in revoked.extensions:
            _ = extension.value


def _tlv(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """Where the content of the DER element at ``pos`` starts and where the element ends, by
    its definite length header (``MalformedCertificate`` for a length header that is invalid
    or an element that runs past ``data``)."""
    if pos + 2 > len(data):
        raise MalformedCertificate(f"{what} is truncated at byte {pos}")
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise MalformedCertificate(f"{what} has an invalid DER length at byte {pos}")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > len(data):
        raise MalformedCertificate(f"{what} is truncated at byte {pos}")
    return start, start + length


def _der_elements(data: bytes, what: str, max_count: int) -> list[bytes]:
    """Split back-to-back DER SEQUENCEs by their definite length headers."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if len(out) >= max_count:
            raise MalformedCertificate(f"{what} holds more than {max_count} certificates")
        if data[pos] != 0x30 or pos + 2 > len(data):
            raise MalformedCertificate(f"{what} is not DER or PEM (no SEQUENCE at byte {pos})")
        _, end = _tlv(data, pos, what)
        out.append(data[pos:end])
        pos = end
    return out


def _check_encoding(der: bytes, what: str) -> None:
    """A certificate's TBSCertificate is within the size limit, and its signatureValue BIT
    STRING has no unused bits (``MalformedCertificate``), both read from its DER headers
    (``cryptography`` encodes the TBSCertificate afresh at every read of its bytes).

    The signature does not cover the unused-bits count, and the parser accepts 1–7 when the
    bits it names are zero: the same certificate in other bytes, so another fingerprint, file
    digest or sealed member for one signed certificate. Every signature algorithm encodes
    whole octets (RFC 5480 §2.2, RFC 8410 §6, FIPS 204's encodings)."""
    inner, end = _tlv(der, 0, what)
    _, tbs_end = _tlv(der, inner, what)
    if tbs_end - inner > MAX_CERTIFICATE_BYTES:
        raise MalformedCertificate(f"{what} holds a certificate over the size limit")
    _, alg_end = _tlv(der, tbs_end, what)
    if alg_end + 2 > end or der[alg_end] != 0x03:
        raise MalformedCertificate(f"{what}: a certificate's signature is not a BIT STRING")
    content, bits_end = _tlv(der, alg_end, what)
    if content >= bits_end or der[content] != 0:
        raise MalformedCertificate(
            f"{what}: a certificate's signature claims unused bits (DER signatures are whole "
            "octets)"
        )


def _pem_labels(data: bytes) -> list[bytes]:
    return [m.group(1) for m in _PEM_ANY.finditer(data)]


def _is_der(data: bytes) -> bool:
    """DER starts with a SEQUENCE and (for anything the size of a certificate) a long-form
    length byte, which no PEM text does; DER may hold the bytes ``-----BEGIN`` inside."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    return data[1] >= 0x80 or data[1] + 2 == len(data)


def load_certificates(
    data: bytes,
    *,
    what: str = "certificate",
    max_count: int = MAX_CERTIFICATES,
    allow_unsupported: bool = False,
    der_only: bool = False,
) -> list[x509.Certificate]:
    """Every certificate in ``data``: PEM (one or more ``CERTIFICATE`` blocks; text between
    blocks is ignored), one DER certificate, or several DER certificates back to back.

    Every field is read once here; any failure, another PEM block, an empty input or more
    than ``max_count`` certificates raise ``MalformedCertificate``. An algorithm
    ``cryptography`` does not implement is refused unless ``allow_unsupported``; ``der_only``
    refuses PEM (where a format says DER, as COSE ``x5chain`` and SPDM do).
    """
    limit = MAX_CERTIFICATE_BYTES * max_count
    if type(data) is not bytes or not 0 < len(data) <= limit:
        data = _check_bytes(data, what, limit)  # raises, or copies a bytearray or memoryview
    # What decides the result: the bytes, whether they are read as DER (DER-looking input
    # always is; ``der_only`` only matters for the rest), and ``allow_unsupported``. A result
    # read without ``allow_unsupported`` is the same objects read with it (the option only
    # refuses more). ``max_count`` only bounds the count, checked on the result. Only
    # successes are cached, so blank input is never found here.
    path = "der" if der_only or _is_der(data) else "pem"
    key = (data, allow_unsupported, path)
    found = _LOADED.get(key)
    if found is None and allow_unsupported:
        key = (data, False, path)
        found = _LOADED.get(key)
    if found is not None and len(found) <= max_count:
        _LOADED.refresh(key)  # least recently used goes first: a class's shared roots stay
        return list(found)
    data = _check_bytes(data, what, limit)
    key = (data, allow_unsupported, path)
    certs, ders = _load_certificates(data, what, max_count, allow_unsupported, der_only)
    remembered = {key: tuple(certs)}
    if path == "pem" or len(certs) > 1:
        # A bundle: each certificate is also remembered by its own DER bytes (what a protocol
        # carries it as, e.g. SPDM's CERTIFICATE), read with the same checks and options.
        for cert, der in zip(certs, ders, strict=True):
            remembered[(der, allow_unsupported, "der")] = (cert,)
    _LOADED.update(remembered)
    return certs


# Certificates parsed already, by their exact input, ``allow_unsupported`` and how they were
# read (``der`` or ``pem``) (``x509.Certificate`` is immutable; a fleet sees the same roots and
# chains for every node, and the same certificate through the DICE parser, which allows
# unsupported algorithms, and the SPDM and X.509 paths, which do not). Only successes are
# kept; the least recently used entry goes first when it is full.
_LOADED_MAX = 1024
_LOADED: Memo[tuple[bytes, bool, str], tuple[x509.Certificate, ...]] = Memo(_LOADED_MAX)


def _known(der: bytes, allow_unsupported: bool) -> x509.Certificate | None:
    """The certificate read before from exactly ``der``, with checks at least as strict."""
    found = _LOADED.get((der, allow_unsupported, "der"))
    if found is None and allow_unsupported:
        found = _LOADED.get((der, False, "der"))
    return found[0] if found is not None and len(found) == 1 else None


def _load_certificates(
    data: bytes, what: str, max_count: int, allow_unsupported: bool, der_only: bool
) -> tuple[list[x509.Certificate], list[bytes]]:
    """The certificates in ``data``, each with its DER bytes."""
    with _warnings_policy():
        if not _is_der(data) and not der_only:
            labels = _pem_labels(data)
            if len(labels) > max_count:
                raise MalformedCertificate(f"{what} holds more than {max_count} certificates")
            if any(label != b"CERTIFICATE" for label in labels):
                raise MalformedCertificate(f"{what} holds a PEM block that is not a CERTIFICATE")
            with _parsing(what):
                certs = x509.load_pem_x509_certificates(data)
            if len(certs) != len(labels):
                raise MalformedCertificate(f"{what} holds a damaged PEM block")
            # A PEM bundle's certificates read before (a class's shared CA certificates, in
            # every node's chain file) are the objects read then, their checks not run again.
            ders = [c.public_bytes(Encoding.DER) for c in certs]
            known = [_known(der, allow_unsupported) for der in ders]
        else:
            certs, known = [], []
            ders = _der_elements(data, what, max_count)
            for der in ders:
                known.append(_known(der, allow_unsupported))
                with _parsing(what):
                    certs.append(known[-1] or x509.load_der_x509_certificate(der))
        if not certs:
            raise MalformedCertificate(f"{what} holds no certificate")
        for i, cert in enumerate(certs):
            if (checked := known[i]) is not None:
                certs[i] = checked
                continue
            with _parsing(what):
                _check_encoding(ders[i], what)
                _force_certificate(cert, what, allow_unsupported)
    return certs, ders


def load_certificate(
    data: bytes,
    *,
    what: str = "certificate",
    allow_unsupported: bool = False,
    der_only: bool = False,
) -> x509.Certificate:
    """Exactly one certificate, PEM or DER (see :func:`load_certificates`)."""
    certs = load_certificates(
        data, what=what, allow_unsupported=allow_unsupported, der_only=der_only
    )
    if len(certs) != 1:
        raise MalformedCertificate(f"{what}: expected one certificate, found {len(certs)}")
    return certs[0]


def load_csr(
    data: bytes, *, what: str = "certificate request", allow_unsupported: bool = False
) -> x509.CertificateSigningRequest:
    """Exactly one PKCS#10 certificate request, PEM or DER, every field read once."""
    data = _check_bytes(data, what, MAX_CERTIFICATE_BYTES)
    if not _is_der(data):
        labels = _pem_labels(data)
        if len(labels) != 1 or labels[0] not in _CSR_LABELS:
            raise MalformedCertificate(f"{what} is not one CERTIFICATE REQUEST PEM block")
    with _warnings_policy(), _parsing(what):
        csr = x509.load_der_x509_csr(data) if _is_der(data) else x509.load_pem_x509_csr(data)
        _force_csr(csr, what, allow_unsupported)
    return csr


def load_crls(
    data: bytes, *, what: str = "CRL", max_count: int = MAX_CERTIFICATES
) -> list[x509.CertificateRevocationList]:
    """Every CRL in ``data``: one DER CRL, or PEM with one or more ``X509 CRL`` blocks; every
    field and every revoked entry read once. Raises ``MalformedCertificate``."""
    data = _check_bytes(data, what, MAX_CRL_BYTES)
    crls: list[x509.CertificateRevocationList] = []
    if _is_der(data):
        with _parsing(what):
            crls.append(x509.load_der_x509_crl(data))
    else:
        labels = _pem_labels(data)
        if len(labels) > max_count:
            raise MalformedCertificate(f"{what} holds more than {max_count} CRLs")
        if not labels or any(label != b"X509 CRL" for label in labels):
            raise MalformedCertificate(f"{what} holds a PEM block that is not an X509 CRL")
        blocks = [b for b in data.split(b"-----END X509 CRL-----") if b"-----BEGIN" in b]
        for block in blocks:
            with _parsing(what):
                crls.append(x509.load_pem_x509_crl(block + b"-----END X509 CRL-----\n"))
    for crl in crls:
        with _warnings_policy(), _parsing(what):
            _force_crl(crl)
    return crls


def load_crl(data: bytes, *, what: str = "CRL") -> x509.CertificateRevocationList:
    """Exactly one CRL, PEM or DER (see :func:`load_crls`)."""
    crls = load_crls(data, what=what)
    if len(crls) != 1:
        raise MalformedCertificate(f"{what}: expected one CRL, found {len(crls)}")
    return crls[0]


# --- critical extensions (RFC 5280 §4.2) -------------------------------------------------------

STANDARD_EXTENSIONS: Final = frozenset(
    oid.dotted_string
    for oid in (
        x509.oid.ExtensionOID.BASIC_CONSTRAINTS,
        x509.oid.ExtensionOID.KEY_USAGE,
        x509.oid.ExtensionOID.EXTENDED_KEY_USAGE,
        x509.oid.ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    )
)
"""The extensions every Ironroot chain verifier processes: basic constraints, key usage,
extended key usage, subject and authority key identifiers. Anything else critical (a name or
policy constraint, a certificate policy, a private extension) must be in a profile to pass."""


@dataclass(frozen=True, slots=True)
class ExtensionProfile:
    """The X.509 extensions one verifier processes, by dotted OID (module docs).

    Build one with :meth:`of` (the standard extensions plus the profile's own); check a
    certificate of a path with :meth:`check`.
    """

    name: str
    understood: frozenset[str]

    @classmethod
    def of(cls, name: str, *oids: str | x509.ObjectIdentifier) -> ExtensionProfile:
        """:data:`STANDARD_EXTENSIONS` and ``oids``."""
        own = (o.dotted_string if isinstance(o, x509.ObjectIdentifier) else o for o in oids)
        return cls(name, STANDARD_EXTENSIONS | frozenset(own))

    def unknown_critical(
        self, extensions: Iterable[x509.Extension[x509.ExtensionType]]
    ) -> tuple[str, ...]:
        """The dotted OIDs, sorted, of the critical ``extensions`` this profile does not know."""
        return tuple(
            sorted(
                {
                    e.oid.dotted_string
                    for e in extensions
                    if e.critical and e.oid.dotted_string not in self.understood
                }
            )
        )

    def check(self, cert: x509.Certificate, *, code: str | None = None) -> None:
        """Raise ``ChainNotTrusted`` (with ``code`` when given) when ``cert`` carries a
        critical extension this profile does not know; a non-critical one passes."""
        unknown = self.unknown_critical(cert.extensions)
        if unknown:
            raise self.refusal(cert.subject.rfc4514_string(), unknown, code=code)

    def extension_policy(
        self,
        base: verification.ExtensionPolicy,
        *,
        check: Callable[[str, bytes], None] | None = None,
    ) -> verification.ExtensionPolicy:
        """``base``, a ``cryptography`` path validation policy, with each of this profile's own
        extensions (beyond :data:`STANDARD_EXTENSIONS`, which ``cryptography`` knows) declared:
        it may be present, critical or not. ``check(oid, value)``, when given, is called with
        the DER value of each such extension present and *critical*, and raises ``ValueError``
        when the verifier cannot process it (the path then fails to validate)."""
        policy = base
        for oid in sorted(self.understood - STANDARD_EXTENSIONS):
            policy = policy.may_be_present(
                _declared_extension(oid),
                verification.Criticality.AGNOSTIC,
                None if check is None else _critical_check(oid, check),
            )
        return policy

    @staticmethod
    def refusal(subject: str, oids: Iterable[str], *, code: str | None = None) -> ChainNotTrusted:
        """The error for a certificate named ``subject`` carrying the critical ``oids``."""
        found = sorted(oids)
        plural = "s" if len(found) > 1 else ""
        return ChainNotTrusted(
            f"certificate {subject!r}: unknown critical extension{plural} {', '.join(found)}",
            code=code,
        )


_DECLARED: dict[str, type[x509.UnrecognizedExtension]] = {}
_DECLARED_LOCK = threading.Lock()


def _declared_extension(oid: str) -> type[x509.UnrecognizedExtension]:
    """An extension type for ``oid``: ``cryptography``'s policies name extensions by type, and
    read the OID a type stands for from its ``oid`` attribute; an extension it has no class
    for reaches a validator as an ``UnrecognizedExtension``."""
    with _DECLARED_LOCK:
        declared = _DECLARED.get(oid)
        if declared is None:
            declared = type(
                f"Extension_{oid.replace('.', '_')}",
                (x509.UnrecognizedExtension,),
                {"oid": x509.ObjectIdentifier(oid)},
            )
            _DECLARED[oid] = declared
        return declared


def _critical_check(
    oid: str, check: Callable[[str, bytes], None]
) -> Callable[[verification.Policy, x509.Certificate, x509.ExtensionType | None], None]:
    identifier = x509.ObjectIdentifier(oid)

    def validate(
        _policy: verification.Policy, cert: x509.Certificate, value: x509.ExtensionType | None
    ) -> None:
        if value is None or not cert.extensions.get_extension_for_oid(identifier).critical:
            return
        if not isinstance(value, x509.UnrecognizedExtension):
            raise ValueError(f"extension {oid} is not the one declared")
        check(oid, value.value)

    return validate


DICE_EXTENSIONS: Final = ExtensionProfile.of(
    "DICE",
    "2.23.133.5.4.1",  # tcg-dice-TcbInfo
    "2.23.133.5.4.5",  # tcg-dice-MultiTcbInfo
    "2.23.133.5.4.4",  # tcg-dice-Ueid
    "1.3.6.1.4.1.11129.2.1.24",  # Open DICE
)
"""The extensions of DICE certificates (TCG DICE Certificate Profiles; Open DICE): what the
DICE chain verifier (:mod:`ironroot.rot.dice`) processes, and what SPDM and COSE ``x5chain``
path validation accepts beside the standard ones."""


# --- CRLs: what a CRL may carry to decide revocation (RFC 5280 §5.2, §5.3, §6.3.3) -------------

CRL_EXTENSIONS: Final = frozenset(
    oid.dotted_string
    for oid in (
        x509.oid.ExtensionOID.CRL_NUMBER,
        x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        x509.oid.ExtensionOID.ISSUING_DISTRIBUTION_POINT,
    )
)
"""The CRL extensions every Ironroot revocation check processes: the CRL number and authority
key identifier (read, and harmless: the issuer is found by name and signature), and the issuing
distribution point (:func:`crl_covers`; the parts :func:`check_crl` refuses aside)."""

CRL_ENTRY_EXTENSIONS: Final = frozenset(
    oid.dotted_string
    for oid in (
        x509.oid.CRLEntryExtensionOID.CRL_REASON,
        x509.oid.CRLEntryExtensionOID.INVALIDITY_DATE,
    )
)
"""The CRL entry extensions every revocation check processes: any listed certificate is
revoked, whatever its reason (``certificateHold`` included) and invalidity date."""

_CRL_UNUSABLE: Final = "crl-unusable"
_CRL_VERDICTS: dict[bytes, str] = {}
_CRL_VERDICTS_MAX: Final = 1024


def _crl_problem(crl: x509.CertificateRevocationList) -> str:
    """Why ``crl`` cannot decide revocation as a complete CRL of its issuer; ``""`` if it can."""
    unknown = sorted(
        {e.oid.dotted_string for e in crl.extensions if e.critical}
        - CRL_EXTENSIONS
        - {x509.oid.ExtensionOID.DELTA_CRL_INDICATOR.dotted_string}
    )
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        return f"unknown critical extension{plural} {', '.join(unknown)}"
    for extension in crl.extensions:
        value = extension.value
        if isinstance(value, x509.DeltaCRLIndicator):
            return f"a delta CRL (base CRL number {value.crl_number}), not a complete CRL"
        if isinstance(value, x509.IssuingDistributionPoint):
            if value.indirect_crl:
                return "an indirect CRL (issuing distribution point indirectCRL)"
            if value.only_some_reasons:
                reasons = ", ".join(sorted(r.value for r in value.only_some_reasons))
                return f"it covers only some revocation reasons ({reasons})"
            if value.only_contains_attribute_certs:
                return "it covers only attribute certificates"
    for entry in crl:
        for extension in entry.extensions:
            oid = extension.oid.dotted_string
            if extension.critical and oid not in CRL_ENTRY_EXTENSIONS:
                return (
                    f"the entry of serial {entry.serial_number:#x} carries the critical "
                    f"extension {oid}"
                )
            value = extension.value
            if (
                isinstance(value, x509.CRLReason)
                and value.reason is x509.ReasonFlags.remove_from_crl
            ):
                return (
                    f"the entry of serial {entry.serial_number:#x} has the reason removeFromCRL "
                    "(a delta CRL's)"
                )
    return ""


def check_crl(crl: x509.CertificateRevocationList, *, what: str = "CRL") -> None:
    """Raise ``ChainNotTrusted`` (code ``crl-unusable``) when ``crl`` cannot decide whether a
    certificate is revoked as a complete CRL of its issuer (RFC 5280 §5.2, §5.3, §6.3.3): a
    critical extension outside :data:`CRL_EXTENSIONS`; a delta CRL (Delta CRL Indicator); an
    issuing distribution point that makes it indirect, partitioned by reasons or only about
    attribute certificates; an entry with a critical extension outside
    :data:`CRL_ENTRY_EXTENSIONS` (``certificateIssuer``: entries of another issuer) or with the
    reason ``removeFromCRL`` (a delta CRL's). ``MalformedCertificate`` when a field does not
    parse. The caller has checked the issuer and the signature; the verdict is remembered per
    CRL (a verifier checks the same few CRLs for every piece of evidence)."""
    with _warnings_policy(), _parsing(what):
        key = crl.fingerprint(hashes.SHA256())
        problem = _CRL_VERDICTS.get(key)
        if problem is None:
            problem = _crl_problem(crl)
            if len(_CRL_VERDICTS) >= _CRL_VERDICTS_MAX:
                _CRL_VERDICTS.clear()
            _CRL_VERDICTS[key] = problem
    if problem:
        raise ChainNotTrusted(
            f"{what} of {crl.issuer.rfc4514_string()!r} cannot decide revocation: {problem}",
            code=_CRL_UNUSABLE,
        )


def _point_names(
    full: Iterable[x509.GeneralName] | None,
    relative: x509.RelativeDistinguishedName | None,
    issuer: x509.Name,
) -> set[x509.GeneralName]:
    if relative is not None:
        return {x509.DirectoryName(x509.Name([*issuer.rdns, relative]))}
    return set(full or ())


def crl_covers(
    crl: x509.CertificateRevocationList,
    *,
    is_ca: bool,
    distribution_points: Iterable[x509.DistributionPoint] | None,
) -> bool:
    """Whether ``crl`` (of the certificate's issuer, usable by :func:`check_crl`) is in scope
    for a certificate that is a CA (``is_ca``: its basic constraints say cA) and names the CRL
    ``distribution_points`` (its CRL Distribution Points; ``None`` when it has none), by the
    CRL's issuing distribution point (RFC 5280 §6.3.3 (b)(2)): a CRL only of end-entity
    certificates does not cover a CA, one only of CA certificates not an end entity, and one
    of a named distribution point only a certificate that names that point (or, without CRL
    distribution points, one whose point is named after the issuer). A CRL without an issuing
    distribution point covers every certificate of its issuer."""
    try:
        point = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return True
    if point.only_contains_user_certs and is_ca:
        return False
    if point.only_contains_ca_certs and not is_ca:
        return False
    names = _point_names(point.full_name, point.relative_name, crl.issuer)
    if not names:
        return True
    if distribution_points is None:
        return x509.DirectoryName(crl.issuer) in names
    for dp in distribution_points:
        if dp.full_name is None and dp.relative_name is None:
            named = set(dp.crl_issuer or ())
        else:
            named = _point_names(dp.full_name, dp.relative_name, crl.issuer)
        if named & names:
            return True
    return False
