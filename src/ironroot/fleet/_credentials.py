"""Fleet credentials: the fleet CA, short-lived X.509 credentials carrying the EAR they were
issued on, the plane they are for, and their status (revocation) checked on every request.

The fleet CA. :class:`FleetCA` is an ECDSA P-384 key and a self-signed certificate
(``CN=Ironroot fleet CA``, ``serialNumber`` = the key's RFC 9679 thumbprint, CA, keyCertSign
and cRLSign, 10 years), kept in the fleet's ``admission/`` directory: ``ca.key.pem`` (PKCS#8,
mode 0600) and ``ca.cert.pem``. It issues the credentials, the control- and data-plane
servers' TLS certificates, and CRLs.

The credential profile (X.509 v3, signed ecdsa-with-SHA384 by the fleet CA):

======================  ===================================================================
field                   value
======================  ===================================================================
serialNumber            random, up to 159 bits (RFC 5280 §4.1.2.2); the registry keeps it
                        as lower-case hex
subject                 ``CN=<node id>, OU=<plane>-plane, O=<node class>``
subjectPublicKeyInfo    the key of the node's CSR (ECDSA P-384 only), which the node's RoT
                        quote binds (``docs/fleet.md``, "Admission"); each plane its own
validity                ``notBefore`` = the admission's time, ``notAfter`` = that + the
                        credential lifetime (default 3,600 s; 60 s to 7 days)
basicConstraints        critical, CA false
keyUsage                critical, digitalSignature
extendedKeyUsage        id-kp-clientAuth
subject/authority KI    SHA-1 of the key (RFC 5280 method 1) / the fleet CA's
fleet credential        OID ``2.25.82416172744894855359577933019049330644`` (a UUID OID,
                        X.667: UUID 3e00c70a-2ea6-454d-b3d9-e46c940387d4), **not critical**
                        (so any TLS stack accepts the certificate; the fleet's servers
                        require it), value the DER of::

                            FleetCredential ::= SEQUENCE {
                                version    INTEGER (1),
                                node       UTF8String (SIZE (1..64)),
                                nodeClass  UTF8String (SIZE (1..64)),
                                plane      ENUMERATED { control (0), data (1) },
                                earId      IA5String (SIZE (1..128))
                            }

                        ``earId`` names the EAR the credential was issued on:
                        ``urn:ironroot:ear:sha256:<hex>``, the SHA-256 of the signed EAR
                        (its JWT bytes), so whoever holds the EAR can check the link
======================  ===================================================================

Operators. An operator's credential (:meth:`FleetCA.issue_operator`,
``ironroot fleet operator issue``) is the same profile but for the subject,
``CN=<operator>, OU=operator``, and, in place of the fleet credential extension, the fleet
operator extension (:data:`FLEET_OPERATOR_OID`, not critical)::

    FleetOperator ::= SEQUENCE {
        version   INTEGER (1),
        operator  UTF8String (SIZE (1..64))
    }

It is for the control plane only, carries no EAR and names no node; the store records it
under ``operator:<name>`` (:data:`OPERATOR_PREFIX`). :func:`check_caller` (the control
plane's check) takes either credential; :func:`check_credential`, :func:`parse_credential`
and :func:`verify_credential` a node's only.

:func:`parse_credential` reads a certificate under this profile (``MalformedCertificate`` for
anything else: no extension, a second one, a value that is not the one DER encoding, a subject
that does not name the extension's node). The decoder reads strict DER and nothing else
(``cryptography.hazmat.asn1``: shortest lengths and integers, no constructed strings, no byte
after the value).

Status. :class:`CredentialStore` (``admission/credentials.db``, SQLite WAL) records every
credential issued and its revocation (time, reason), the key it certifies and, for a node's,
the SHA-256 of the PEM file the node stores (:func:`current_credential_fault` parses no file
of those bytes again). :func:`check_credential` is what the control and data planes run on
every request, in this order, each refusal a typed error:

1. the client presented a certificate (``CredentialRejected`` ``credential-missing``) that
   parses under the profile, with no critical extension but the profile's
   (``credential-malformed``), and that the fleet CA signed, the CA
   being inside its own validity (``credential-unknown-issuer``; the handshake leaves all
   validity windows to this check);
2. it is for this plane (``RoleNotPermitted`` ``wrong-plane``, 403);
3. it is inside its validity window at the server's clock (``credential-not-yet-valid``,
   ``credential-expired``);
4. the store knows it, for the key it certifies (``credential-unknown``), and it is not
   revoked (``credential-revoked``);
5. the registry says its node is admitted now (``AdmissionDenied`` ``node-not-admitted``,
   403): a node quarantined by any path — even one that did not revoke — is refused at once.

``CredentialRejected`` is 401. :meth:`FleetCA.crl` signs an X.509 CRL of the revoked
credentials that have not expired, for relying parties that do not ask the fleet.

The node's side. A node keeps its credentials in ``nodes/<id>/credentials/``
(:func:`store_node_credentials`): ``<plane>.cert.pem``, ``ca.cert.pem`` and its private keys
**sealed to its root of trust**, never in the clear, as ``<plane>.key.sealed`` (mode 0600) in
the sealed-store format of the HSM's key store (:func:`ironroot.hsm.seal`: AES-256-GCM under
an HKDF-SHA-384 key with a fresh random salt and nonce per write, the header authenticated)
with the PKCS#8 PEM of the key inside, under::

    secret = HKDF-SHA-384(IKM = RoT.sealing_secret("ironroot-fleet-credentials"), salt = none,
                          info = "ironroot-fleet-credential-key/1" ‖ 0x00 ‖ node ‖ 0x00 ‖ plane)

The RoT's sealing secret is a KDF of its RT alias CDI (``ironroot.rot.Device.sealing_secret``):
it depends on the device's UDS, which the RoT holds only obfuscated under its obfuscation key
(the silicon secret, not among the state files), and on the firmware it booted. So a copy of
the node's files without its silicon does not open the keys; another node's or plane's file
put in place does not open (``SealedStoreError``); neither does a key sealed before the node's
firmware changed (the node attests again and gets new credentials); any altered byte fails
the GCM tag. :func:`node_credential_key` unseals a key and checks it is the key of the
certificate beside it (an older sealed key put back: ``credential-key-mismatch``);
:func:`node_tls_context` is a client context presenting it.

An admission (:func:`ironroot.fleet.attest_node`) writes the files without syncing them to
the disk (``durable=False``): each is renamed into place whole, so a reader never sees a
part, but a power cut may leave one old, empty or damaged — refused when read (a sealed key
that does not open, a certificate that does not parse, a key that is not the certificate's)
— and the node attests again, as it does anyway before its short-lived credential expires.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import re
import secrets
import ssl
import stat
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as _CryptoUnsupported
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ironroot._fileio import make_dirs, read_limited, remove_write_temporaries, write_atomic
from ironroot._memo import Memo
from ironroot.crypto import (
    Algorithm,
    ExtensionProfile,
    PrivateKey,
    PublicKey,
    check_crl,
    crl_covers,
    load_certificate,
    load_crl,
    load_csr,
    load_signer,
    save_signer,
)
from ironroot.errors import (
    AdmissionDenied,
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    ConfigError,
    Conflict,
    CredentialRejected,
    IronrootError,
    LimitExceeded,
    MalformedCertificate,
    NotFound,
    RoleNotPermitted,
    SealedStoreError,
    StorageError,
    UnsupportedAlgorithm,
)
from ironroot.fleet._files import folder_lock, write_files
from ironroot.fleet._sqlite import SqliteFile
from ironroot.hsm import seal, unseal

if TYPE_CHECKING:
    from ironroot.fleet._fleet import Fleet
    from ironroot.rot import Device

__all__ = [
    "DEFAULT_LIFETIME",
    "FLEET_CREDENTIAL_OID",
    "FLEET_OPERATOR_OID",
    "OPERATOR_PREFIX",
    "PLANES",
    "Credential",
    "CredentialStatus",
    "CredentialStore",
    "FleetCA",
    "OperatorCredential",
    "check_caller",
    "check_credential",
    "crl_revocations",
    "csr_public_key",
    "ear_id_of",
    "make_csr",
    "node_credential_key",
    "node_tls_context",
    "parse_credential",
    "store_node_credentials",
    "stored_credential_fault",
    "verify_credential",
]

FLEET_CREDENTIAL_OID: Final = "2.25.82416172744894855359577933019049330644"
PLANES: Final = ("control", "data")
DEFAULT_LIFETIME: Final = 3600
MIN_LIFETIME: Final = 60
MAX_LIFETIME: Final = 7 * 86400
_OID: Final = x509.ObjectIdentifier(FLEET_CREDENTIAL_OID)
# What a relying party on a credential processes (RFC 5280 §4.2): the standard extensions and
# the fleet credential extension; a credential carrying any other critical one is refused.
_CREDENTIAL_EXTENSIONS: Final = ExtensionProfile.of("fleet credential", _OID)
FLEET_OPERATOR_OID: Final = "2.25.6544525941375609869603044232047540733"
_OPERATOR_OID: Final = x509.ObjectIdentifier(FLEET_OPERATOR_OID)
_OPERATOR_EXTENSIONS: Final = ExtensionProfile.of("fleet operator credential", _OPERATOR_OID)
OPERATOR_PREFIX: Final = "operator:"
"""How the credential store names an operator's credentials (``operator:<name>``; a node id
cannot hold a colon, so an operator never shares a node's rows)."""
_EAR_ID: Final = re.compile(r"urn:ironroot:ear:sha256:[0-9a-f]{64}")
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_CA_YEARS: Final = 10
_MAX_EXTENSION: Final = 1024
NODE_CREDENTIALS: Final = "credentials"
SEALING_LABEL: Final = "ironroot-fleet-credentials"
SEALED_KEY_SUFFIX: Final = ".key.sealed"
_KEY_INFO: Final = b"ironroot-fleet-credential-key/1\x00"
_MAX_SEALED: Final = 64 * 1024
# How a file sealed by ironroot.hsm.seal starts (docs/fleet.md "The node's keys, sealed to its
# root of trust"): what stored_credential_fault checks without asking the RoT.
_SEALED_MAGIC: Final = b"IRHSMKS1"
_MAX_CREDENTIAL: Final = 64 * 1024
_MAX_CRL: Final = 16 * 1024 * 1024


# --- the extension ------------------------------------------------------------------------------


# The two values as DER, read with ``cryptography.hazmat.asn1`` (strict DER, in Rust). Its
# declarative module has no ENUMERATED, so ``plane`` is a TLV: read, it must be a primitive
# ENUMERATED (tag 0x0a) of one content octet, 0 or 1; written, it is one of ``_PLANE_TLVS``
# (read once from their DER). Everything else is the module's: the DER rules (shortest lengths
# and integers, no constructed strings, valid UTF-8 and IA5, no data left over), the tags, the
# fields' order and the SIZE constraints (in characters, as pyasn1 counted them before). The
# version is an INTEGER of any size, then compared with 1. Any failure is MalformedCertificate.


@asn1.sequence
class _FleetCredential:
    version: int
    node: Annotated[str, asn1.Size(1, 64)]
    node_class: Annotated[str, asn1.Size(1, 64)]
    plane: asn1.TLV
    ear_id: Annotated[asn1.IA5String, asn1.Size(1, 128)]


@asn1.sequence
class _FleetOperator:
    version: int
    operator: Annotated[str, asn1.Size(1, 64)]


@asn1.sequence
class _PlaneOnly:
    plane: asn1.TLV


_ENUMERATED: Final = b"\x0a"
_PLANE_NUMBERS: Final = tuple(bytes((number,)) for number in range(len(PLANES)))
_PLANE_TLVS: Final = tuple(
    asn1.decode_der(_PlaneOnly, b"\x30\x03" + _ENUMERATED + b"\x01" + number).plane
    for number in _PLANE_NUMBERS
)
_VERSION: Final = 1


def _encode_extension(node: str, node_class: str, plane: str, ear_id: str) -> bytes:
    value = _FleetCredential(
        version=_VERSION,
        node=node,
        node_class=node_class,
        plane=_PLANE_TLVS[PLANES.index(plane)],
        ear_id=asn1.IA5String(ear_id),
    )
    return asn1.encode_der(value)


def _decode_extension(data: bytes) -> tuple[str, str, str, str]:
    if len(data) > _MAX_EXTENSION:
        raise MalformedCertificate("the fleet credential extension is too large")
    try:
        value = asn1.decode_der(_FleetCredential, data)
    except ValueError as exc:
        raise MalformedCertificate(f"the fleet credential extension does not parse: {exc}") from exc
    plane = bytes(value.plane.data)
    if value.plane.tag_bytes != _ENUMERATED or plane not in _PLANE_NUMBERS:
        raise MalformedCertificate(
            "the fleet credential extension does not parse: its plane is no ENUMERATED 0 or 1"
        )
    if value.version != _VERSION:
        raise MalformedCertificate("the fleet credential extension does not parse: not version 1")
    return value.node, value.node_class, PLANES[plane[0]], value.ear_id.as_str()


def _encode_operator(operator: str) -> bytes:
    return asn1.encode_der(_FleetOperator(version=_VERSION, operator=operator))


def _decode_operator(data: bytes) -> str:
    if len(data) > _MAX_EXTENSION:
        raise MalformedCertificate("the fleet operator extension is too large")
    try:
        value = asn1.decode_der(_FleetOperator, data)
    except ValueError as exc:
        raise MalformedCertificate(f"the fleet operator extension does not parse: {exc}") from exc
    if value.version != _VERSION:
        raise MalformedCertificate("the fleet operator extension does not parse: not version 1")
    return value.operator


def ear_id_of(ear: bytes) -> str:
    """The identifier of a signed EAR: ``urn:ironroot:ear:sha256:`` + SHA-256 of its bytes."""
    return "urn:ironroot:ear:sha256:" + hashlib.sha256(ear).hexdigest()


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(f"{what} {value!r}: 1-64 of A-Z a-z 0-9 - _, starting alphanumeric")
    return value


def operator_holder(operator: str) -> str:
    """How the credential store names ``operator``'s credentials (``operator:<name>``);
    ``ConfigError`` for a name no operator credential can carry."""
    return OPERATOR_PREFIX + _check_name(operator, "operator")


def _check_plane(plane: str) -> str:
    if plane not in PLANES:
        raise ConfigError(f"a plane is one of {', '.join(PLANES)}, not {plane!r}")
    return plane


def check_lifetime(seconds: int) -> int:
    """A credential lifetime in seconds (``ConfigError`` outside 60 s to 7 days)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise ConfigError("a credential lifetime is a whole number of seconds")
    if not MIN_LIFETIME <= seconds <= MAX_LIFETIME:
        raise ConfigError(f"a credential lifetime is {MIN_LIFETIME} to {MAX_LIFETIME} seconds")
    return seconds


def _utc(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None:
        raise ConfigError("now must be timezone-aware")
    return when.astimezone(dt.UTC).replace(microsecond=0)


# --- a credential ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credential:
    """A fleet credential read under the profile (module docs); ``serial`` as lower-case hex."""

    serial: str
    node: str
    node_class: str
    plane: str
    ear_id: str
    not_before: dt.datetime
    not_after: dt.datetime
    der: bytes = field(repr=False)

    @classmethod
    def of(
        cls, cert: x509.Certificate, node: str, node_class: str, plane: str, ear_id: str
    ) -> Credential:
        """The credential ``cert`` is, with the extension's values already known (read under
        the profile, or just put in by the issuer)."""
        return cls(
            serial=format(cert.serial_number, "x"),
            node=node,
            node_class=node_class,
            plane=plane,
            ear_id=ear_id,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            der=cert.public_bytes(Encoding.DER),
        )

    @property
    def pem(self) -> bytes:
        return load_certificate(self.der, der_only=True).public_bytes(Encoding.PEM)

    @property
    def holder(self) -> str:
        """Whose credential it is, as the credential store names it: the node."""
        return self.node

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "role": "node",
            "node": self.node,
            "class": self.node_class,
            "plane": self.plane,
            "ear_id": self.ear_id,
            "not_before": self.not_before.isoformat().replace("+00:00", "Z"),
            "not_after": self.not_after.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True, slots=True)
class OperatorCredential:
    """An operator's control-plane credential (module docs, "Operators"): no node, no EAR;
    ``serial`` as lower-case hex."""

    serial: str
    operator: str
    not_before: dt.datetime
    not_after: dt.datetime
    der: bytes = field(repr=False)

    plane: ClassVar[str] = "control"
    ear_id: ClassVar[str] = ""

    @classmethod
    def of(cls, cert: x509.Certificate, operator: str) -> OperatorCredential:
        """The operator credential ``cert`` is, its operator already known."""
        return cls(
            format(cert.serial_number, "x"),
            operator,
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
            cert.public_bytes(Encoding.DER),
        )

    @property
    def holder(self) -> str:
        """Whose credential it is, as the credential store names it: ``operator:<name>``."""
        return OPERATOR_PREFIX + self.operator

    @property
    def pem(self) -> bytes:
        return load_certificate(self.der, der_only=True).public_bytes(Encoding.PEM)

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "role": "operator",
            "operator": self.operator,
            "plane": self.plane,
            "not_before": self.not_before.isoformat().replace("+00:00", "Z"),
            "not_after": self.not_after.isoformat().replace("+00:00", "Z"),
        }


def _opaque(cert: x509.Certificate, oid: x509.ObjectIdentifier, what: str) -> bytes | None:
    """The value of ``cert``'s one extension ``oid`` (None when it has none)."""
    found = [e for e in cert.extensions if e.oid == oid]
    if not found:
        return None
    if len(found) != 1:
        raise MalformedCertificate(f"the certificate carries the {what} extension twice")
    value = found[0].value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise MalformedCertificate(f"the {what} extension is not an opaque value")
    return value.value


def _extension_values(cert: x509.Certificate) -> tuple[bytes | None, bytes | None]:
    """The values of ``cert``'s fleet credential and fleet operator extensions (``None`` for
    the one it lacks); a certificate carrying both is malformed."""
    node = _opaque(cert, _OID, "fleet credential")
    operator = _opaque(cert, _OPERATOR_OID, "fleet operator")
    if node is not None and operator is not None:
        raise MalformedCertificate("a credential is a node's or an operator's, not both")
    return node, operator


def _credential_of(cert: x509.Certificate) -> Credential:
    return _node_credential(cert, _extension_values(cert)[0])


def _node_credential(cert: x509.Certificate, data: bytes | None) -> Credential:
    """The node credential ``cert`` is, ``data`` its fleet credential extension's value."""
    if data is None:
        raise MalformedCertificate("the certificate carries no single fleet credential extension")
    node, node_class, plane, ear_id = _decode_extension(data)
    if (
        not _NAME.fullmatch(node)
        or not _NAME.fullmatch(node_class)
        or not _EAR_ID.fullmatch(ear_id)
    ):
        raise MalformedCertificate("the fleet credential extension names malformed values")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != node:
        raise MalformedCertificate("the credential's subject does not name its node")
    return Credential.of(cert, node, node_class, plane, ear_id)


def _operator_credential(cert: x509.Certificate, data: bytes) -> OperatorCredential:
    """The operator credential ``cert`` is, ``data`` its fleet operator extension's value."""
    operator = _decode_operator(data)
    if not _NAME.fullmatch(operator):
        raise MalformedCertificate("the fleet operator extension names a malformed operator")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(names) != 1 or names[0].value != operator:
        raise MalformedCertificate("the credential's subject does not name its operator")
    if len(units) != 1 or units[0].value != "operator":
        raise MalformedCertificate("an operator credential's subject has OU=operator")
    return OperatorCredential.of(cert, operator)


def parse_credential(data: bytes) -> Credential:
    """A fleet credential (PEM or DER) read under the profile (``MalformedCertificate``)."""
    cert = load_certificate(data, what="fleet credential")
    return _credential_of(cert)


def verify_credential(data: bytes, ca: bytes, *, at: dt.datetime) -> Credential:
    """A fleet credential (PEM or DER) read under the profile (``MalformedCertificate``),
    signed by the fleet CA certificate ``ca`` (DER or PEM; ``ChainNotTrusted``
    ``credential-untrusted``), it and the CA inside their validity at ``at``
    (``CertificateExpired`` ``credential-expired``). What an offline relying party (an
    auditor) checks; the planes' :func:`check_credential` adds the fleet's own status."""
    if len(data) > _MAX_CREDENTIAL:
        raise LimitExceeded(f"a fleet credential is at most {_MAX_CREDENTIAL} bytes")
    cert = load_certificate(data, what="fleet credential")
    credential = _credential_of(cert)
    authority = load_certificate(ca, what="fleet CA certificate")
    try:
        cert.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature, _CryptoUnsupported) as exc:
        raise ChainNotTrusted(
            f"credential {credential.serial} was not issued by the trusted fleet CA",
            code="credential-untrusted",
        ) from exc
    _CREDENTIAL_EXTENSIONS.check(cert, code="credential-untrusted")
    when = _utc(at)
    for what, start, end in (
        ("the fleet CA", authority.not_valid_before_utc, authority.not_valid_after_utc),
        (f"credential {credential.serial}", credential.not_before, credential.not_after),
    ):
        if not start <= when < end:
            raise CertificateExpired(
                f"{what} is valid from {start.isoformat()} to {end.isoformat()}, not at "
                f"{when.isoformat()}",
                code="credential-expired",
            )
    return credential


def crl_revocations(crl: bytes, ca: bytes, *, at: dt.datetime) -> dict[str, dt.datetime]:
    """The credentials (serial hex → revocation time) a CRL (DER) of the fleet CA ``ca``
    lists: it must be signed by that CA (``BadSignature``), a complete CRL of the CA's
    credentials (``ChainNotTrusted`` ``crl-unusable``: :func:`ironroot.crypto.check_crl`, and
    an issuing distribution point that leaves end-entity certificates out) and current at
    ``at``, with a ``nextUpdate`` (``CertificateExpired``); ``MalformedCertificate`` when it
    does not parse."""
    if len(crl) > _MAX_CRL:
        raise LimitExceeded(f"a CRL of the fleet CA is at most {_MAX_CRL} bytes")
    revocations = load_crl(crl, what="the fleet CA's CRL")
    authority = load_certificate(ca, what="fleet CA certificate")
    public = authority.public_key()
    if revocations.issuer != authority.subject or not isinstance(public, ec.EllipticCurvePublicKey):
        raise BadSignature("the CRL is not the fleet CA's")
    try:
        valid = revocations.is_signature_valid(public)
    except (ValueError, TypeError, _CryptoUnsupported) as exc:
        raise BadSignature("the CRL's signature is not the fleet CA's") from exc
    if not valid:
        raise BadSignature("the CRL's signature is not the fleet CA's")
    check_crl(revocations, what="the fleet CA's CRL")
    if not crl_covers(revocations, is_ca=False, distribution_points=None):
        raise ChainNotTrusted(
            "the fleet CA's CRL does not cover its credentials (issuing distribution point)",
            code="crl-unusable",
        )
    when = _utc(at)
    after = revocations.next_update_utc
    if after is None:
        raise CertificateExpired("the CRL has no nextUpdate: it states no time it is current to")
    if when < revocations.last_update_utc or when >= after:
        raise CertificateExpired(f"the CRL is not current at {when.isoformat()}")
    return {format(r.serial_number, "x"): r.revocation_date_utc for r in revocations}


# --- CSRs ---------------------------------------------------------------------------------------


def make_csr(key: PrivateKey, *, node: str, plane: str) -> bytes:
    """A PKCS#10 request (DER) for ``key``, ``CN=<node>, OU=<plane>-plane`` (the CA names the
    node from the registry, not from the request)."""
    _check_name(node, "node")
    _check_plane(plane)
    if key.algorithm is not Algorithm.ES384:
        raise UnsupportedAlgorithm("a fleet credential key is ECDSA P-384")
    raw = key.raw
    assert isinstance(raw, ec.EllipticCurvePrivateKey)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, node),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{plane}-plane"),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(raw, hashes.SHA384())
    return csr.public_bytes(Encoding.DER)


def csr_public_key(data: bytes) -> bytes:
    """The SubjectPublicKeyInfo (DER) of a PKCS#10 request whose self-signature verifies
    (``MalformedCertificate``, ``BadSignature``; ``UnsupportedAlgorithm`` for a key that is
    not ECDSA P-384)."""
    return _csr_key(data).to_der()


def _csr_key(data: bytes) -> PublicKey:
    """:func:`csr_public_key`'s key as a :class:`PublicKey` (its DER encoding kept): what
    admission issues a credential for, through :meth:`FleetCA._issue_key`, without parsing
    the encoding again."""
    csr = load_csr(data, what="credential request")
    if not csr.is_signature_valid:
        raise BadSignature("the credential request's signature does not verify")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise UnsupportedAlgorithm("a fleet credential key is ECDSA P-384")
    return PublicKey(key)


# --- the CA -------------------------------------------------------------------------------------


_KEY_FILE: Final = "ca.key.pem"
_CERT_FILE: Final = "ca.cert.pem"


SERVER_BACKDATE: Final = dt.timedelta(minutes=5)
"""How far before its issue a fleet server's TLS certificate is dated
(:meth:`FleetCA.issue_server`): the nodes' clocks are not the server's, and one running behind
refused a certificate dated from the instant the servers started (or renewed it) as not yet
valid."""


def _ca_certificate(key: PrivateKey, start: dt.datetime) -> x509.Certificate:
    """The fleet CA's self-signed certificate for ``key`` (module docs), valid from ``start``."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Ironroot fleet CA"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, key.kid.hex()),
        ]
    )
    public = key.public_key.raw
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * _CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key.raw, hashes.SHA384())
    )


class FleetCA:
    """The fleet CA (module docs)."""

    def __init__(self, key: PrivateKey, certificate: bytes) -> None:
        cert = load_certificate(certificate, what="fleet CA certificate")
        if PublicKey(cert.public_key()) != key.public_key:  # type: ignore[arg-type]
            raise ConfigError("the fleet CA certificate is not for the fleet CA key")
        self._key = key
        self._cert = cert
        # What every certificate it issues names it by (encoding its key costs ~46 us).
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key.raw)
        self.der = cert.public_bytes(Encoding.DER)
        self.pem = cert.public_bytes(Encoding.PEM)

    def __repr__(self) -> str:
        return f"FleetCA({self._cert.subject.rfc4514_string()!r})"

    @property
    def certificate(self) -> x509.Certificate:
        return self._cert

    @classmethod
    def create(cls, directory: Path, *, now: dt.datetime, resume: bool = False) -> FleetCA:
        """A new CA in ``directory`` (``Conflict`` when one is there).

        With ``resume`` (an admission set-up cut short, whose CA nothing has used: admission
        opens only once its set-up is complete) a CA key there already is kept, and its
        certificate too when it is the key's; a certificate missing (the crash came between
        the two files) or not the key's is made again."""
        start = _utc(now)
        make_dirs(directory)
        key_path, cert_path = directory / _KEY_FILE, directory / _CERT_FILE
        if key_path.exists():
            if not resume:
                raise Conflict(f"{directory} holds a fleet CA already")
            kept = load_signer(key_path)
            if not isinstance(kept, PrivateKey):
                raise ConfigError(f"{key_path} is not an ECDSA key")
            with contextlib.suppress(OSError, IronrootError):
                return cls(kept, read_limited(cert_path, 64 * 1024))
            cert = _ca_certificate(kept, start)
            write_atomic(cert_path, cert.public_bytes(Encoding.PEM), mode=0o644)
            return cls(kept, cert.public_bytes(Encoding.DER))
        key = PrivateKey.generate(Algorithm.ES384)
        cert = _ca_certificate(key, start)
        save_signer(key, key_path)
        write_atomic(cert_path, cert.public_bytes(Encoding.PEM), mode=0o644, exclusive=True)
        return cls(key, cert.public_bytes(Encoding.DER))

    @classmethod
    def open(cls, directory: Path) -> FleetCA:
        if not (directory / _KEY_FILE).is_file():
            raise NotFound(f"no fleet CA in {directory}")
        key = load_signer(directory / _KEY_FILE)
        if not isinstance(key, PrivateKey):
            raise ConfigError(f"{directory / _KEY_FILE} is not an ECDSA key")
        return cls(key, read_limited(directory / _CERT_FILE, 64 * 1024))

    def _builder(
        self, subject: x509.Name, public: Any, start: dt.datetime, end: dt.datetime
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(self._aki, critical=False)
        )

    def _client(
        self,
        key: PublicKey,
        subject: list[x509.NameAttribute[str]],
        extension: x509.UnrecognizedExtension,
        now: dt.datetime,
        lifetime: int,
    ) -> x509.Certificate:
        """A client credential (node's or operator's) for ``key`` (ECDSA P-384 only), valid
        from ``now`` for ``lifetime`` seconds, carrying the profile's ``extension``, not
        critical."""
        start = _utc(now)
        if key.algorithm is not Algorithm.ES384:
            raise UnsupportedAlgorithm("a fleet credential key is ECDSA P-384")
        end = start + dt.timedelta(seconds=check_lifetime(lifetime))
        return (
            self._builder(x509.Name(subject), key.raw, start, end)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(extension, critical=False)
            .sign(self._key.raw, hashes.SHA384())
        )

    def issue(
        self,
        spki: bytes,
        *,
        node: str,
        node_class: str,
        plane: str,
        ear_id: str,
        now: dt.datetime,
        lifetime: int = DEFAULT_LIFETIME,
    ) -> Credential:
        """A credential for the key ``spki`` (DER SubjectPublicKeyInfo, ECDSA P-384)."""
        return self._issue_key(
            PublicKey.from_der(spki),
            node=node,
            node_class=node_class,
            plane=plane,
            ear_id=ear_id,
            now=now,
            lifetime=lifetime,
        )

    def _issue_key(
        self,
        key: PublicKey,
        *,
        node: str,
        node_class: str,
        plane: str,
        ear_id: str,
        now: dt.datetime,
        lifetime: int,
    ) -> Credential:
        """:meth:`issue` for a key already parsed (:func:`_csr_key`)."""
        _check_name(node, "node")
        _check_name(node_class, "node class")
        _check_plane(plane)
        if not _EAR_ID.fullmatch(ear_id):
            raise ConfigError("an EAR id is urn:ironroot:ear:sha256:<64 hex>")
        cert = self._client(
            key,
            [
                x509.NameAttribute(NameOID.COMMON_NAME, node),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{plane}-plane"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, node_class),
            ],
            x509.UnrecognizedExtension(_OID, _encode_extension(node, node_class, plane, ear_id)),
            now,
            lifetime,
        )
        # The values just put in: not read back through the profile's parser.
        return Credential.of(cert, node, node_class, plane, ear_id)

    def issue_operator(
        self, spki: bytes, *, operator: str, now: dt.datetime, lifetime: int = DEFAULT_LIFETIME
    ) -> OperatorCredential:
        """An operator's control-plane credential for the key ``spki`` (DER
        SubjectPublicKeyInfo, ECDSA P-384): ``CN=<operator>, OU=operator``, the fleet operator
        extension (module docs, "Operators")."""
        _check_name(operator, "operator")
        cert = self._client(
            PublicKey.from_der(spki),
            [
                x509.NameAttribute(NameOID.COMMON_NAME, operator),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "operator"),
            ],
            x509.UnrecognizedExtension(_OPERATOR_OID, _encode_operator(operator)),
            now,
            lifetime,
        )
        return OperatorCredential.of(cert, operator)

    def issue_server(
        self, public_key: PublicKey, *, hosts: Sequence[str], now: dt.datetime, days: int = 7
    ) -> bytes:
        """A TLS server certificate (DER) for ``hosts`` (DNS names or IP addresses), valid
        from :data:`SERVER_BACKDATE` before ``now`` (a client whose clock runs that much
        behind the server's accepts it at once) to ``days`` after it."""
        start = _utc(now)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        if not names:
            raise ConfigError("a server certificate names at least one host")
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
        cert = (
            self._builder(
                subject, public_key.raw, start - SERVER_BACKDATE, start + dt.timedelta(days=days)
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(self._key.raw, hashes.SHA384())
        )
        return cert.public_bytes(Encoding.DER)

    def issued(self, cert: x509.Certificate) -> bool:
        """Whether this CA signed ``cert``."""
        try:
            cert.verify_directly_issued_by(self._cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def crl(
        self, revoked: Sequence[tuple[str, dt.datetime]], *, now: dt.datetime, hours: int = 1
    ) -> bytes:
        """A CRL (DER) listing ``revoked`` (serial hex, when), valid ``hours`` from ``now``,
        with the two extensions RFC 5280 §5.2 requires of a conforming CRL issuer: the
        authority key identifier (this CA's key) and a CRL number that grows with each CRL,
        here ``now`` in milliseconds since the epoch (a CRL signed later has a larger one)."""
        start = _utc(now)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._cert.subject)
            .last_update(start)
            .next_update(start + dt.timedelta(hours=hours))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key.raw),
                critical=False,
            )
            .add_extension(x509.CRLNumber(int(start.timestamp() * 1000)), critical=False)
        )
        for serial, when in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial, 16))
                .revocation_date(_utc(when))
                .build()
            )
        return builder.sign(self._key.raw, hashes.SHA384()).public_bytes(Encoding.DER)


# --- status -------------------------------------------------------------------------------------

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS credentials (
    serial TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    plane TEXT NOT NULL,
    ear_id TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    revoked_at TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS credentials_node ON credentials (node);
CREATE INDEX IF NOT EXISTS credentials_revoked ON credentials (not_after)
    WHERE revoked_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS credentials_expiry ON credentials (not_after)
    WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS credentials_node_plane ON credentials (node, plane);
CREATE TABLE IF NOT EXISTS credential_keys (
    serial TEXT PRIMARY KEY REFERENCES credentials (serial),
    key_sha256 TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS credential_keys_key ON credential_keys (key_sha256);
CREATE TABLE IF NOT EXISTS credential_files (
    serial TEXT PRIMARY KEY REFERENCES credentials (serial),
    pem_sha256 TEXT NOT NULL
);
"""


def key_digest(spki: bytes) -> str:
    """How the store names a credential's key: SHA-256 of its SubjectPublicKeyInfo (DER), hex."""
    return hashlib.sha256(spki).hexdigest()


def pem_digest(pem: bytes) -> str:
    """How the store names the certificate file a node keeps: SHA-256 of its bytes, hex."""
    return hashlib.sha256(pem).hexdigest()


def _issued_file(credential: Credential) -> str:
    """:func:`pem_digest` of the file the node keeps of ``credential``: its
    :attr:`Credential.pem`, the PEM of its DER as the strict parser the status check runs
    (:func:`current_credential_fault`) read it, so a file of these bytes is one it accepts."""
    return pem_digest(credential.pem)


def _certified_key(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    return key_digest(
        cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )


def _text(when: dt.datetime) -> str:
    return _utc(when).isoformat().replace("+00:00", "Z")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class CredentialStatus:
    """What the store knows of one credential."""

    serial: str
    node: str
    plane: str
    ear_id: str
    not_after: dt.datetime
    revoked_at: dt.datetime | None = None
    reason: str | None = None
    key_sha256: str | None = None  # the key it certified (:func:`key_digest`), when recorded

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


# The revoked credentials that have not expired (the first parameter: now), for a CRL.
_REVOKED_UNEXPIRED: Final = (
    "SELECT serial, revoked_at FROM credentials WHERE revoked_at IS NOT NULL "
    "AND not_after > ? ORDER BY revoked_at, serial"
)
# Every credential that certified any of the keys asked (their SHA-256: ``{keys}``, filled in
# by _with_keys with one ``?`` each), its plane and whether it was revoked: every key asked in
# one statement.
_CREDENTIALS_WITH_KEY: Final = (
    "SELECT k.key_sha256, c.serial, c.plane, c.revoked_at IS NOT NULL FROM credential_keys k "
    "JOIN credentials c ON c.serial = k.serial WHERE k.key_sha256 IN ({keys})"
)


CREDENTIAL_RETENTION: Final = dt.timedelta(days=1)
"""How long an expired credential that was never revoked is kept (:meth:`CredentialStore.prune`)."""
_PRUNE_BATCH: Final = 10_000
# The expired, never revoked credentials past the retention (the first parameter: its
# start), but never a node's newest of a plane (what it holds; its EAR is kept for an audit).
_PRUNABLE: Final = (
    "SELECT c.serial FROM credentials c WHERE c.revoked_at IS NULL AND c.not_after < ? "
    "AND EXISTS (SELECT 1 FROM credentials n WHERE n.node = c.node AND n.plane = c.plane "
    "AND n.rowid > c.rowid) LIMIT ?"
)


def _lowest_for_first(
    asked: Sequence[tuple[str, str | None]], rows: Sequence[Sequence[object]]
) -> str | None:
    """The lowest serial among ``rows`` (key SHA-256, serial[, plane…]) for the first of
    ``asked`` (a key's SHA-256, and the plane a credential of it must not be of, or ``None``)
    that has one."""
    for digest, plane in asked:
        serials = [
            str(row[1]) for row in rows if row[0] == digest and (plane is None or row[2] != plane)
        ]
        if serials:
            return min(serials)
    return None


def _revoked(rows: Sequence[Sequence[object]]) -> list[Sequence[object]]:
    """The rows of :data:`_CREDENTIALS_WITH_KEY` of revoked credentials."""
    return [row for row in rows if row[3]]


class CredentialStore:
    """Every credential issued and its revocation (SQLite, WAL, one connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = SqliteFile(path, "the credential store", _SCHEMA)
        self._tx = self._file.tx
        self._read = self._file.read  # no write lock: a plane request never waits for a writer

    def add(self, *credentials: Credential | OperatorCredential) -> None:
        """Record issued credentials and the key each certifies (one transaction); an
        operator's under ``operator:<name>``, with no EAR."""
        self._add_issued([(c, _certified_key(c.der)) for c in credentials])

    def _add_issued(self, issued: Sequence[tuple[Credential | OperatorCredential, str]]) -> None:
        """:meth:`add` for credentials whose key the caller issued them for, each with that
        key's :func:`key_digest` (admission: the key it parsed from the request and gave
        the CA, whose certificate encodes that very key), not read again from the
        certificate. A node's credential is recorded with the :func:`pem_digest` of its PEM,
        the file :func:`store_node_credentials` writes (:func:`current_credential_fault`)."""
        credentials = [c for c, _ in issued]
        files = [(c.serial, _issued_file(c)) for c in credentials if isinstance(c, Credential)]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO credentials (serial, node, plane, ear_id, not_before, not_after) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        c.serial,
                        c.holder,
                        c.plane,
                        c.ear_id,
                        _text(c.not_before),
                        _text(c.not_after),
                    )
                    for c in credentials
                ],
            )
            db.executemany(
                "INSERT INTO credential_keys (serial, key_sha256) VALUES (?, ?)",
                [(c.serial, digest) for c, digest in issued],
            )
            db.executemany("INSERT INTO credential_files (serial, pem_sha256) VALUES (?, ?)", files)

    def prune(self, *, now: dt.datetime, retention: dt.timedelta = CREDENTIAL_RETENTION) -> int:
        """Forget the credentials that expired more than ``retention`` before ``now`` and were
        never revoked, with the keys they certified; return how many. Every attestation issues
        two (the scanner's too: a 1,000-node fleet scanned every 5 minutes issues ~576,000 a
        day), and none is of use once expired: a request with one is refused as expired before
        the store is asked. Kept: every revoked credential (the CRL, and the rule that a key
        whose credential was revoked is never certified again), and each node's newest of each
        plane. A key of a forgotten credential is no longer held to its plane; a node makes
        new keys at each attestation. At most 10,000 a call (the scanner calls it after each
        round); each is found through an index (its expiry, then a newer one of its node and
        plane), so a call that finds none costs an index probe."""
        if retention < dt.timedelta(0):
            raise ConfigError("a credential retention is not negative")
        before = _text(_utc(now) - retention)
        with self._tx() as db:
            serials = [(str(r[0]),) for r in db.execute(_PRUNABLE, (before, _PRUNE_BATCH))]
            db.executemany("DELETE FROM credential_keys WHERE serial = ?", serials)
            db.executemany("DELETE FROM credential_files WHERE serial = ?", serials)
            db.executemany("DELETE FROM credentials WHERE serial = ?", serials)
        return len(serials)

    def revoked_with_key(self, spkis: Iterable[bytes]) -> str | None:
        """The serial of a revoked credential that certified one of these keys
        (SubjectPublicKeyInfo, DER), if any: a key whose credential was revoked is never
        certified again (credentials issued before keys were recorded have none)."""
        asked = sorted({key_digest(s) for s in spkis})
        return _lowest_for_first([(d, None) for d in asked], _revoked(self._with_keys(asked)))

    def certified_for_another_plane(self, keys: Mapping[str, bytes]) -> str | None:
        """The serial of a credential that certified one of these keys (plane →
        SubjectPublicKeyInfo, DER) for another plane, if any (revoked or not, expired or
        not): a key is certified for one plane only, across admissions as within one."""
        asked = [(key_digest(spki), plane) for plane, spki in sorted(keys.items())]
        return _lowest_for_first(asked, self._with_keys([d for d, _ in asked]))

    def _key_refusals(self, keys: Mapping[str, bytes]) -> tuple[str | None, str | None]:
        """:meth:`revoked_with_key` of the keys' values and :meth:`certified_for_another_plane`
        of ``keys`` (plane → SubjectPublicKeyInfo, DER), the same serials, read in one
        statement (admission asks both, before its appraisal and again in its commit)."""
        digests = {plane: key_digest(spki) for plane, spki in keys.items()}
        asked = sorted(set(digests.values()))
        rows = self._with_keys(asked)
        revoked = _lowest_for_first([(digest, None) for digest in asked], _revoked(rows))
        crossed = _lowest_for_first([(digests[plane], plane) for plane in sorted(digests)], rows)
        return revoked, crossed

    def _with_keys(self, digests: Sequence[str]) -> list[Sequence[object]]:
        """The rows of :data:`_CREDENTIALS_WITH_KEY` for the keys of these SHA-256s (none
        asked: none)."""
        if not digests:
            return []
        with self._read() as db:
            return db.execute(
                _CREDENTIALS_WITH_KEY.format(keys=", ".join("?" * len(digests))), list(digests)
            ).fetchall()

    def revoke_node(self, node: str, reason: str, *, now: dt.datetime) -> list[str]:
        """Revoke every unexpired, unrevoked credential of ``node``; their serials.

        Unexpired at ``now`` or at this machine's clock, whichever is earlier: a revocation
        dated ahead (an operator's ``--at`` in the future, a scanner whose clock runs fast)
        still revokes the credentials valid now, where they would have expired by ``now``."""
        at = _text(now)
        earliest = _text(min(_utc(now), dt.datetime.now(dt.UTC)))
        with self._tx() as db:
            serials = [
                str(row[0])
                for row in db.execute(
                    "SELECT serial FROM credentials WHERE node = ? AND revoked_at IS NULL "
                    "AND not_after > ? ORDER BY serial",
                    (node, earliest),
                )
            ]
            db.executemany(
                "UPDATE credentials SET revoked_at = ?, reason = ? WHERE serial = ?",
                [(at, reason, s) for s in serials],
            )
        return serials

    def revoke(self, serial: str, reason: str, *, now: dt.datetime) -> bool:
        """Revoke the one credential ``serial``; whether it was revoked here (not: it is
        unknown or was revoked already, its first revocation kept). Where
        :meth:`revoke_node` revokes all a holder has, this takes back one issue that went
        wrong, leaving the holder's others be."""
        with self._tx() as db:
            done = db.execute(
                "UPDATE credentials SET revoked_at = ?, reason = ? "
                "WHERE serial = ? AND revoked_at IS NULL",
                (_text(now), reason, serial),
            ).rowcount
        return done == 1

    def status(self, serial: str) -> CredentialStatus | None:
        """What the store knows of credential ``serial``, the key it certified included."""
        with self._read() as db:
            row = db.execute(
                "SELECT c.serial, c.node, c.plane, c.ear_id, c.not_after, c.revoked_at, "
                "c.reason, k.key_sha256 FROM credentials c "
                "LEFT JOIN credential_keys k ON k.serial = c.serial WHERE c.serial = ?",
                (serial,),
            ).fetchone()
        if row is None:
            return None
        return CredentialStatus(
            row[0],
            row[1],
            row[2],
            row[3],
            _time(row[4]),
            _time(row[5]) if row[5] else None,
            row[6],
            row[7],
        )

    def revoked(self, *, now: dt.datetime) -> list[tuple[str, dt.datetime]]:
        """The revoked credentials that have not expired (serial, when), for a CRL."""
        with self._read() as db:
            rows = db.execute(_REVOKED_UNEXPIRED, (_text(now),)).fetchall()
        return [(str(s), _time(at)) for s, at in rows]

    def _current_by_node(
        self,
    ) -> tuple[dict[str, dict[str, frozenset[str]]], dict[str, dict[str, frozenset[str]]]]:
        """Every node's credentials not revoked, per plane, in one query: their serials, and
        the :func:`pem_digest` of each one's file where it was recorded (credentials issued
        before it was have none): what :func:`ironroot.fleet.unusable_credentials` checks the
        nodes' files against."""
        with self._read() as db:
            rows = db.execute(
                "SELECT c.node, c.plane, c.serial, f.pem_sha256 FROM credentials c "
                "LEFT JOIN credential_files f ON f.serial = c.serial "
                "WHERE c.revoked_at IS NULL"
            ).fetchall()
        serials: dict[str, dict[str, set[str]]] = {}
        files: dict[str, dict[str, set[str]]] = {}
        for node, plane, serial, digest in rows:
            serials.setdefault(str(node), {}).setdefault(str(plane), set()).add(str(serial))
            if digest is not None:
                files.setdefault(str(node), {}).setdefault(str(plane), set()).add(str(digest))
        return (
            {n: {p: frozenset(s) for p, s in planes.items()} for n, planes in serials.items()},
            {n: {p: frozenset(s) for p, s in planes.items()} for n, planes in files.items()},
        )

    def of_node(self, node: str) -> list[CredentialStatus]:
        with self._read() as db:
            rows = db.execute(
                "SELECT serial, node, plane, ear_id, not_after, revoked_at, reason "
                "FROM credentials WHERE node = ? ORDER BY not_after, serial",
                (node,),
            ).fetchall()
        return [
            CredentialStatus(
                r[0], r[1], r[2], r[3], _time(r[4]), _time(r[5]) if r[5] else None, r[6]
            )
            for r in rows
        ]


def check_credential(
    presented: bytes | None,
    *,
    plane: str,
    ca: FleetCA,
    store: CredentialStore,
    fleet: Fleet,
    now: dt.datetime,
) -> Credential:
    """The checks of every data-plane request (module docs, in order): a node's credential
    only (an operator's is ``RoleNotPermitted`` ``operator-not-permitted``)."""
    caller = check_caller(presented, plane=plane, ca=ca, store=store, fleet=fleet, now=now)
    if isinstance(caller, OperatorCredential):
        raise RoleNotPermitted(
            f"operator {caller.operator}'s credential is refused here: a node's is required",
            code="operator-not-permitted",
        )
    return caller


def check_caller(
    presented: bytes | None,
    *,
    plane: str,
    ca: FleetCA,
    store: CredentialStore,
    fleet: Fleet,
    now: dt.datetime,
) -> Credential | OperatorCredential:
    """The checks of every control-plane request (module docs, in order): a node's
    credential, or an operator's (which is for the control plane only, and names no node
    whose status could be checked)."""
    if not presented:
        raise CredentialRejected(
            "no client certificate: present a fleet credential", code="credential-missing"
        )
    credential: Credential | OperatorCredential
    try:
        cert = load_certificate(presented, what="client certificate")
        node, operator = _extension_values(cert)
        if operator is not None:
            credential = _operator_credential(cert, operator)
            _OPERATOR_EXTENSIONS.check(cert)
        else:
            credential = _node_credential(cert, node)
            _CREDENTIAL_EXTENSIONS.check(cert)
    except (MalformedCertificate, ChainNotTrusted) as exc:
        raise CredentialRejected(
            f"the client certificate is not a fleet credential: {exc.detail}",
            code="credential-malformed",
        ) from exc
    if not ca.issued(cert):
        raise CredentialRejected(
            "the credential was not issued by this fleet's CA", code="credential-unknown-issuer"
        )
    when = now.astimezone(dt.UTC)
    authority = ca.certificate
    if not authority.not_valid_before_utc <= when < authority.not_valid_after_utc:
        raise CredentialRejected(
            "the fleet CA is outside its validity: no credential it issued is current",
            code="credential-unknown-issuer",
        )
    if credential.plane != plane:
        raise RoleNotPermitted(
            f"a {credential.plane}-plane credential is refused on the {plane} plane",
            code="wrong-plane",
        )
    if when < credential.not_before:
        raise CredentialRejected(
            f"the credential is valid from {credential.not_before.isoformat()}",
            code="credential-not-yet-valid",
        )
    if when >= credential.not_after:
        again = "attest again" if isinstance(credential, Credential) else "get a new one"
        raise CredentialRejected(
            f"the credential expired at {credential.not_after.isoformat()}: {again}",
            code="credential-expired",
        )
    status = store.status(credential.serial)
    presented_key = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    # The record is the fleet's word that it issued this credential: its serial, its holder
    # and the key it certified. A certificate that only shares the serial — made with the
    # CA's key alone, a leaked copy, without the fleet's database — is not that credential.
    if (
        status is None
        or status.node != credential.holder
        or status.key_sha256 != key_digest(presented_key)
    ):
        raise CredentialRejected(
            "the fleet has no record of this credential", code="credential-unknown"
        )
    if status.revoked:
        raise CredentialRejected(
            f"the credential was revoked ({status.reason})", code="credential-revoked"
        )
    if isinstance(credential, OperatorCredential):
        return credential
    try:
        record = fleet.record_of(credential.node)
    except NotFound as exc:
        raise AdmissionDenied(
            f"{credential.node} is not in the fleet", code="node-not-admitted"
        ) from exc
    if record.status != "admitted":
        raise AdmissionDenied(
            f"{credential.node} is {record.status}: {record.reason}", code="node-not-admitted"
        )
    return credential


# --- the node's side: its credential keys, sealed to its root of trust ----------------------


def _node_folder(fleet: Fleet, node: str) -> Path:
    # one join (a checked name holds no "/")
    return fleet.directory / f"nodes/{_check_name(node, 'node')}/{NODE_CREDENTIALS}"


def _certifies(certificate: x509.Certificate, key: PrivateKey) -> bool:
    """Whether ``certificate`` holds ``key``'s public key (``PublicKey`` equality: EC keys
    as curve and point, others by thumbprint); a key type Ironroot does not use, never."""
    try:
        held = PublicKey(certificate.public_key())  # type: ignore[arg-type]
    except (UnsupportedAlgorithm, MalformedCertificate):
        return False
    return held == key.public_key


def _key_secret(rot_secret: bytes, node: str, plane: str) -> bytes:
    """The secret ``node``'s ``plane`` key is sealed under (module docs)."""
    info = _KEY_INFO + node.encode() + b"\x00" + plane.encode()
    return HKDF(hashes.SHA384(), 32, None, info).derive(rot_secret)


def store_node_credentials(
    fleet: Fleet,
    node: str,
    keys: Mapping[str, PrivateKey],
    credentials: Mapping[str, Credential],
    ca: bytes,
    *,
    durable: bool = True,
    rot: Device | None = None,
) -> None:
    """Keep ``node``'s credentials in its ``credentials/`` folder (made at manufacture;
    made here, 0700, when missing), each key sealed to the node's root of trust (module
    docs): ``<plane>.key.sealed`` (0600) and
    ``<plane>.cert.pem``, and the fleet CA certificate (``ca``, DER) as ``ca.cert.pem`` when
    it is not there already, written together (:func:`ironroot.fleet._files.write_files`);
    a reader sees each file whole, old or new. With ``durable`` they survive a power cut
    once this returns; without, a power cut may lose or damage them, which
    :func:`node_credential_key` refuses (``NotFound``, ``SealedStoreError``,
    ``MalformedCertificate``) and the node attests again: what an admission does, as its
    credentials are short-lived and re-obtained by attesting. A clear ``<plane>.key.pem``
    left by an earlier version is removed. ``rot`` is the node's RoT device
    (:meth:`Fleet.rot`) when the caller holds it open for the whole attestation. The files
    are written holding the folder's lock (:func:`ironroot.fleet._files.folder_lock`): two
    stores for the node at once write one after the other, never a mix, and the temp files
    (``.<name>.XXXXXXXX.tmp``) of these names, and of the clear keys, that a store killed
    before its renames left are removed. A folder
    or file that cannot be written is ``StorageError`` ``node-credentials-unwritable``."""
    folder = _node_folder(fleet, node)
    try:
        if durable:
            make_dirs(folder, mode=0o700)
        elif not folder.is_dir():  # made at manufacture: made here for an older node only
            folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise _unwritable(node, exc) from exc
    secret = (rot if rot is not None else fleet.rot(node)).sealing_secret(SEALING_LABEL)
    files: list[tuple[Path, bytes, int]] = []
    for plane, credential in sorted(credentials.items()):
        key = keys[_check_plane(plane)]
        if not _certifies(load_certificate(credential.der, der_only=True), key):
            raise ConfigError(f"the {plane} key is not the key of its credential")
        sealed = seal(_key_secret(secret, node, plane), key.to_pem())
        files.append((folder / f"{plane}{SEALED_KEY_SUFFIX}", sealed, 0o600))
        files.append((folder / f"{plane}.cert.pem", credential.pem, 0o644))
    pem = load_certificate(ca, der_only=True).public_bytes(Encoding.PEM)
    path = folder / "ca.cert.pem"
    try:
        same = path.read_bytes() == pem  # the same CA certificate is there already
    except OSError:
        same = False
    if not same:
        files.append((path, pem, 0o644))
    # Each file is written whole, the files at once (ironroot.fleet._files); a crash before
    # the call returns may keep a mix of old and new files: a sealed key that is not its
    # certificate's key is refused when read (credential-key-mismatch), and the node attests
    # again.
    # The folder's lock keeps out every other writer of it: the node's RoT is held shared by
    # an attestation, so two of the same node could otherwise write at once. Under it the
    # temp files a store killed before its renames left are removed (ironroot._fileio),
    # the CA certificate's even when it is not written again, and an earlier version's clear
    # key's.
    try:
        with folder_lock(folder):
            owned = [p.name for p, _, _ in files] + [path.name]
            owned += [f"{plane}.key.pem" for plane in credentials]  # an earlier version's
            remove_write_temporaries(folder, owned)
            write_files(files, durable=durable)
            for plane in credentials:
                (folder / f"{plane}.key.pem").unlink(missing_ok=True)
    except OSError as exc:
        raise _unwritable(node, exc) from exc


def _unwritable(node: str, exc: OSError) -> StorageError:
    return StorageError(
        f"{node}'s credentials cannot be written to its folder: {exc.strerror or exc}",
        code="node-credentials-unwritable",
    )


def node_credential_key(fleet: Fleet, node: str, plane: str) -> PrivateKey:
    """``node``'s ``plane`` credential key, unsealed by its root of trust (module docs).

    ``NotFound`` when the node holds no credential for the plane; ``SealedStoreError``
    (``sealed-store``) when the sealed file does not open here — its bytes altered, another
    node's or plane's file, or sealed before the node's firmware changed — and
    (``credential-key-mismatch``) when what it holds is not the key of the credential beside
    it (an older sealed key put back)."""
    folder = _node_folder(fleet, node)
    path = folder / f"{_check_plane(plane)}{SEALED_KEY_SUFFIX}"
    try:
        sealed = read_limited(path, _MAX_SEALED)
        certificate = load_certificate(
            read_limited(folder / f"{plane}.cert.pem", _MAX_SEALED), what="credential"
        )
    except FileNotFoundError as exc:
        raise NotFound(f"{node} holds no {plane}-plane credential: attest it") from exc
    secret = fleet.rot(node).sealing_secret(SEALING_LABEL)
    try:
        pem = unseal(_key_secret(secret, node, plane), sealed)
    except SealedStoreError as exc:
        raise SealedStoreError(
            f"{path.name} of {node} does not open under its root of trust: altered, another "
            "node's or plane's key, or sealed before the node's firmware changed (attest again)"
        ) from exc
    try:
        key = PrivateKey.from_pem(pem, Algorithm.ES384)
    except IronrootError as exc:  # opened, so sealed by this RoT: not a key is a bug
        raise SealedStoreError(f"{path.name} of {node} holds no ES384 key") from exc
    if not _certifies(certificate, key):
        raise SealedStoreError(
            f"{path.name} of {node} is not the key of {plane}.cert.pem: an older sealed key",
            code="credential-key-mismatch",
        )
    return key


def stored_credential_fault(
    fleet: Fleet, node: str, issued: Iterable[CredentialStatus]
) -> IronrootError | None:
    """Why ``node`` does not hold, in its ``credentials/`` folder, the credentials the registry
    issued it and holds current (``issued``: :meth:`CredentialStore.of_node`; the revoked ones
    are passed over), or ``None`` when it does: per plane with a current credential, its
    ``<plane>.cert.pem`` must be there, parse and be one of them (its serial), and its
    ``<plane>.key.sealed`` be there and be a sealed file. An admission commits before the node
    stores its files, so a process killed between the two (or a power cut, which may leave a
    file old or empty: they are not synced) leaves a node admitted without its credential:
    ``NotFound`` (a file missing: none stored, or one plane only), ``MalformedCertificate``,
    ``SealedStoreError`` (not a sealed file), ``CredentialRejected``
    ``credential-not-current`` (an older credential that is not current: revoked, as a
    quarantine does before the attestation that readmits the node), ``LimitExceeded`` or
    ``InputUnavailable`` (a file over 64 KiB, a directory: the node's fault, where it used to
    end the whole status, and the scanner's round). What is
    read is the files, not the RoT: a sealed key whose bytes were altered, or an older one put
    back beside the current certificate, is refused when it is unsealed
    (:func:`node_credential_key`). ``fleet status`` reports these nodes and ``fleet attest``
    attests them again."""
    current: dict[str, set[str]] = {}
    for status in issued:
        if not status.revoked:
            current.setdefault(_check_plane(status.plane), set()).add(status.serial)
    return current_credential_fault(fleet, node, {p: frozenset(s) for p, s in current.items()})


# The nodes found holding their current credentials (current_credential_fault), in this
# process: per node's folder, one entry (the last verdict): its current serials per plane and
# each file read's (device, inode, size, mtime_ns, ctime_ns), so a scanner round or an
# authority's status re-parses only the files that changed. A file replaced (a rename: another
# inode), written in place (its ctime moves), truncated or removed stats otherwise and is read
# again; a verdict is kept only for regular files whose times are older than _SETTLED_NS when
# they were checked (a file written again within one tick of the file system's clock could
# keep its times), and only when they did not change while they were read. A fault is never
# kept: each check reads the files again.
_SETTLED_NS = 2_000_000_000
_HELD_MAX: Final = 65_536
_held: Memo[str, tuple[object, ...]] = Memo(_HELD_MAX)
# Each plane's two files in a node's credentials folder: its sealed key, its certificate.
_PLANE_FILES: Final = {
    plane: (f"{plane}{SEALED_KEY_SUFFIX}", f"{plane}.cert.pem") for plane in PLANES
}


def _file_stats(paths: Iterable[str]) -> tuple[object, ...] | None:
    """The files' identity and times, or ``None`` when one is not a settled regular file
    (missing, a device, a pipe, or written within :data:`_SETTLED_NS`)."""
    out: list[object] = []
    settled = time.time_ns() - _SETTLED_NS
    for path in paths:
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            return None
        if not stat.S_ISREG(info.st_mode) or max(info.st_mtime_ns, info.st_ctime_ns) > settled:
            return None
        out.append((info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
    return tuple(out)


def current_credential_fault(
    fleet: Fleet,
    node: str,
    current: Mapping[str, frozenset[str]],
    files: Mapping[str, frozenset[str]] | None = None,
) -> IronrootError | None:
    """:func:`stored_credential_fault` given the serials current per plane (``current``); a
    node whose files are unchanged since it was found holding them is not read again.

    ``files``: per plane, the :func:`pem_digest` of the certificate files of those
    credentials, as issued. A certificate file of exactly those bytes is not parsed again:
    it is the PEM of a certificate that the strict parser read when it was issued (the
    issuer's :attr:`Credential.pem`), of a current serial, so parsing it again would find
    just that. Any other bytes (another encoding, a damaged, truncated or replaced file, a
    credential issued before digests were recorded) are parsed as before; the verdict is
    the same either way, and each file is read whole at every check."""
    for plane in current:
        _check_plane(plane)
    # the paths as strings, joined once (a check of a 1,000-node fleet joins 8,000)
    where = str(_node_folder(fleet, node))
    planes = sorted(current)
    paths = [f"{where}/{name}" for plane in planes for name in _PLANE_FILES[plane]]
    before = _file_stats(paths)
    seen = (tuple((p, current[p]) for p in planes), before)
    if before is not None and _held.get(where) == seen:
        _held.refresh(where)
        return None
    fault = _read_credential_fault(where, node, current, files or {})
    _held.discard(where)
    if fault is None and before is not None and _file_stats(paths) == before:
        _held.put(where, seen)
    return fault


def _read_credential_fault(
    folder: str,
    node: str,
    current: Mapping[str, frozenset[str]],
    files: Mapping[str, frozenset[str]],
) -> IronrootError | None:
    for plane in sorted(current):
        key_file, cert_file = _PLANE_FILES[plane]
        try:
            sealed = read_limited(f"{folder}/{key_file}", _MAX_SEALED)
            pem = read_limited(f"{folder}/{cert_file}", _MAX_SEALED)
        except FileNotFoundError:
            return NotFound(f"{node} holds no {plane}-plane credential: attest it")
        except OSError as exc:
            return StorageError(
                f"{node}'s {plane}-plane credential cannot be read: {exc.strerror or exc}"
            )
        except IronrootError as exc:  # over the size limit, a directory: this node's fault
            return exc
        # the file issued for a current credential: it parses, and its serial is current
        issued = pem_digest(pem) in files.get(plane, ())
        if not issued:
            try:
                certificate = load_certificate(pem, what="credential")
            except IronrootError as exc:
                return exc
        if not sealed.startswith(_SEALED_MAGIC):
            return SealedStoreError(
                f"{plane}{SEALED_KEY_SUFFIX} of {node} is not a sealed key (attest again)"
            )
        if issued:
            continue
        serial = format(certificate.serial_number, "x")
        if serial not in current[plane]:
            return CredentialRejected(
                f"{node}'s {plane}.cert.pem (serial {serial}) is not a current {plane}-plane "
                "credential of its: an admission committed and its files were not stored "
                "(attest again)",
                code="credential-not-current",
            )
    return None


def node_tls_context(fleet: Fleet, node: str, plane: str) -> ssl.SSLContext:
    """A TLS client context presenting ``node``'s ``plane`` credential (its key unsealed
    by :func:`node_credential_key`) and trusting only the fleet CA: for the control or data
    plane. The key reaches OpenSSL through a temporary file holding it encrypted under a
    random password that exists only in memory (``ssl`` loads keys from files only)."""
    key = node_credential_key(fleet, node, plane)
    folder = _node_folder(fleet, node)
    password = secrets.token_bytes(32)
    try:
        context = ssl.create_default_context(cafile=str(folder / "ca.cert.pem"))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory(prefix="ironroot-credential-") as scratch:
            path = Path(scratch) / "key.pem"
            write_atomic(path, key.to_pem(password), mode=0o600)
            context.load_cert_chain(folder / f"{plane}.cert.pem", path, password=password)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{node}'s {plane} credential does not load: {exc}") from exc
    return context
