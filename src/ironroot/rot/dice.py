"""DICE X.509 identities: the TCG DICE extensions, parsed and built, and the certificates and
CSRs that carry them.

What this module reads and writes (TCG DICE Attestation Architecture v1.1, Appendix A, and
TCG DICE Certificate Profiles):

* ``tcg-dice-TcbInfo`` (2.23.133.5.4.1): one ``DiceTcbInfo``; ``tcg-dice-MultiTcbInfo``
  (2.23.133.5.4.5): a ``DiceTcbInfoSeq`` of them; ``tcg-dice-Ueid`` (2.23.133.5.4.4);
  the key purposes under ``tcg-dice-kp`` (2.23.133.5.4.100) in the extended key usage.
* The Open Profile for DICE extension (1.3.6.1.4.1.11129.2.1.24), read only, and the older
  Microsoft RIoT composite device id (:func:`parse_riot_extension`).

X.509 itself is parsed by ``cryptography.x509`` (names, validity, keys including ML-DSA-87,
the standard extensions); only the DICE extension values, which it leaves unrecognized, are
decoded, in :mod:`ironroot.rot._dice_ext`, with the same library's declarative ASN.1 module
(``cryptography.hazmat.asn1``, strict DER; the definitions, and why, in
:mod:`ironroot.rot._asn1`); the values themselves are in :mod:`ironroot.rot._dice_values`.
Splitting a chain file into certificates and the Cerberus repair below read a SEQUENCE's
fields as raw TLVs, which that module cannot say: pyasn1 does it.

Two pieces are written by hand, because no library does them for us:

* PEM splitting (RFC 7468), since a file may hold certificates and CSRs that ``cryptography``
  refuses (below) and we need their DER first.
* A narrow repair for Project Cerberus' RIoT Core certificates and CSRs, whose ECDSA
  AlgorithmIdentifier carries an explicit NULL parameter (RFC 5758 §3.2 says it MUST be absent;
  ``cryptography`` rejects it). Only that exact encoding is rewritten, only so that
  ``cryptography`` can read the fields; the *original* signed bytes are kept and signatures are
  checked over them. The certificate records the quirk ``"ecdsa-null-params"``.

SVN and Caliptra. Caliptra writes the TcbInfo ``svn`` as ``0x100 | svn`` so that the INTEGER
always has the same two content octets (its certificates are fixed-width templates). The rule
here, applied per TcbInfo by ``svn_encoding``:

* ``"plain"``: ``svn`` is the INTEGER as encoded.
* ``"caliptra"``: the INTEGER must lie in ``0x100..0x1FF``; ``svn = raw - 0x100``. Anything else
  raises ``MalformedCertificate``.
* ``"auto"`` (default): the Caliptra rule applies exactly when ``0x100 <= raw <= 0x1FF`` (the
  only values Caliptra produces, whose DER is two octets starting ``01``); otherwise plain. A
  non-Caliptra producer that really uses an SVN in 256..511 must be read with ``"plain"``.

``TcbInfo.svn_raw`` always holds the encoded INTEGER; ``TcbInfo.svn`` the SVN itself.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import hashlib
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm as UnsupportedKeyType
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pyasn1.error import PyAsn1Error

from ironroot._memo import Memo
from ironroot.crypto import (
    DICE_EXTENSIONS,
    Algorithm,
    ExtensionProfile,
    PublicKey,
    load_certificate,
    load_csr,
)
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    IronrootError,
    LimitExceeded,
    MalformedCertificate,
    MalformedInput,
)
from ironroot.rot import _asn1
from ironroot.rot._asn1 import DECODE_ERRORS as ASN1_DECODE_ERRORS
from ironroot.rot._dice_ext import (
    build_key_purpose_extension,
    build_multi_tcb_info_extension,
    build_tcb_info_extension,
    build_ueid_extension,
    encode_multi_tcb_info,
    encode_tcb_info,
    encode_ueid,
    parse_multi_tcb_info,
    parse_open_dice_input,
    parse_riot_extension,
    parse_tcb_info,
    parse_ueid,
)
from ironroot.rot._dice_values import (
    KEY_PURPOSE_OIDS,
    ML_DSA_87_OID,
    MULTI_TCB_INFO_OID,
    OPEN_DICE_OID,
    TCB_INFO_OID,
    UEID_OID,
    Fwid,
    IntegrityRegister,
    OpenDiceInput,
    OperationalFlag,
    OperationalFlags,
    RiotCompositeDeviceId,
    SvnEncoding,
    TcbInfo,
    short_error,
)

__all__ = [
    "ASN1_DECODE_ERRORS",
    "KEY_PURPOSE_OIDS",
    "ML_DSA_87_OID",
    "MULTI_TCB_INFO_OID",
    "OPEN_DICE_OID",
    "TCB_INFO_OID",
    "UEID_OID",
    "DiceCertificate",
    "DiceExtensions",
    "Fwid",
    "IntegrityRegister",
    "InvalidExtension",
    "OpenDiceInput",
    "OperationalFlag",
    "OperationalFlags",
    "RiotCompositeDeviceId",
    "SvnEncoding",
    "TcbInfo",
    "build_key_purpose_extension",
    "build_multi_tcb_info_extension",
    "build_tcb_info_extension",
    "build_ueid_extension",
    "encode_multi_tcb_info",
    "encode_tcb_info",
    "encode_ueid",
    "load_dice_objects",
    "parse_certificate",
    "parse_certificates",
    "parse_csr",
    "parse_multi_tcb_info",
    "parse_open_dice_input",
    "parse_riot_extension",
    "parse_tcb_info",
    "parse_ueid",
    "verify_chain",
    "verify_signature",
]


_KEY_PURPOSE_NAMES: Final = {oid.dotted_string: name for name, oid in KEY_PURPOSE_OIDS.items()}

# Input limits: one certificate (an ML-DSA-87 one is about 8 KB), and certificates per input.
MAX_CERTIFICATE_BYTES: Final = 64 * 1024
MAX_CERTIFICATES: Final = 16
# PEM blocks per input: the certificates and the odd other block (a key, parameters) beside
# them. Each BEGIN line is searched to the end of the input for its END line, so their number
# is bounded before any is searched (1 MiB of BEGIN lines took minutes).
MAX_PEM_BLOCKS: Final = 2 * MAX_CERTIFICATES


_SIG_ALGORITHMS: Final[dict[str, tuple[str, tuple[Algorithm, ...]]]] = {
    # signature OID: (name, ironroot algorithms whose keys can check it)
    "1.2.840.10045.4.3.2": ("ecdsa-with-SHA256", (Algorithm.ES256,)),
    "1.2.840.10045.4.3.3": ("ecdsa-with-SHA384", (Algorithm.ES384,)),
    "1.2.840.10045.4.3.4": ("ecdsa-with-SHA512", (Algorithm.ES512,)),
    "1.3.101.112": ("Ed25519", (Algorithm.EDDSA, Algorithm.ED25519)),
    "2.16.840.1.101.3.4.3.17": ("ML-DSA-44", (Algorithm.ML_DSA_44,)),
    "2.16.840.1.101.3.4.3.18": ("ML-DSA-65", (Algorithm.ML_DSA_65,)),
    "2.16.840.1.101.3.4.3.19": ("ML-DSA-87", (Algorithm.ML_DSA_87,)),
}
_ECDSA_ALGORITHMS: Final = (Algorithm.ES256, Algorithm.ES384, Algorithm.ES512)


@dataclass(frozen=True, slots=True)
class InvalidExtension:
    """A DICE extension whose value did not decode (kept only when parsing non-strictly)."""

    oid: str
    critical: bool
    reason: str


@dataclass(frozen=True, slots=True)
class DiceExtensions:
    """The DICE content of one certificate or CSR."""

    tcb_infos: tuple[TcbInfo, ...] = ()
    multi: bool = False
    ueid: bytes | None = None
    key_purposes: tuple[str, ...] = ()
    open_dice: OpenDiceInput | None = None
    critical: frozenset[str] = frozenset()
    invalid: tuple[InvalidExtension, ...] = ()


@dataclass(frozen=True, slots=True)
class DiceCertificate:
    """An X.509 certificate or PKCS#10 CSR, with its DICE extensions decoded.

    ``tbs`` and ``signature`` are the signed bytes and the signature exactly as received (for a
    CSR, the CertificationRequestInfo); ``issuer``, ``serial`` and validity are ``None`` for a CSR.
    ``unprocessed_critical`` lists the OIDs of critical extensions that :func:`verify_chain`
    does not process (anything but basic constraints, key usage, extended key usage, key
    identifiers and the DICE extensions), and of critical DICE extensions that did not decode.
    """

    kind: Literal["certificate", "csr"]
    der: bytes = field(repr=False)
    tbs: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    signature_algorithm_oid: str
    signature_algorithm: str
    subject: str
    issuer: str | None
    serial: int | None
    not_before: datetime.datetime | None
    not_after: datetime.datetime | None
    public_key_algorithm: str
    public_key: PublicKey | None
    subject_key_id: bytes | None
    authority_key_id: bytes | None
    is_ca: bool | None
    path_length: int | None
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    dice: DiceExtensions
    quirks: tuple[str, ...] = ()
    subject_der: bytes = field(default=b"", repr=False)
    issuer_der: bytes = field(default=b"", repr=False)
    unprocessed_critical: tuple[str, ...] = ()

    def check_validity(self, now: datetime.datetime) -> None:
        """Raise ``CertificateExpired`` unless ``not_before <= now <= not_after``."""
        if self.not_before is None or self.not_after is None:
            return
        if now.tzinfo is None:
            raise MalformedInput("now must be timezone-aware")
        if not self.not_before <= now <= self.not_after:
            raise CertificateExpired(
                f"{self.subject} is valid {self.not_before.isoformat()} to "
                f"{self.not_after.isoformat()}, not at {now.isoformat()}"
            )

    def to_json(self) -> dict[str, object]:
        """Every field as JSON values: numbers as numbers, bytes as lowercase hex."""
        return _certificate_json(self)


# --- certificates and CSRs ------------------------------------------------------------------

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_PEM_LABELS: Final = {
    b"CERTIFICATE": "certificate",
    b"CERTIFICATE REQUEST": "csr",
    b"NEW CERTIFICATE REQUEST": "csr",
}

# ECDSA AlgorithmIdentifiers with an explicit NULL parameter, and their RFC 5758 form.
_ECDSA_NULL_FIX: Final = {
    bytes.fromhex("300c06082a8648ce3d04030" + d + "0500"): bytes.fromhex(
        "300a06082a8648ce3d04030" + d
    )
    for d in ("2", "3", "4")
}


def _split_pem(data: bytes) -> list[tuple[str, bytes]]:
    if data.count(b"-----BEGIN") > MAX_PEM_BLOCKS:
        raise LimitExceeded(f"more than {MAX_PEM_BLOCKS} PEM blocks in one input")
    blocks = _PEM_BLOCK.findall(data)
    if not blocks:
        raise MalformedCertificate("no PEM block found")
    out = []
    for label, body in blocks:
        kind = _PEM_LABELS.get(label)
        if kind is None:
            continue
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedCertificate("PEM body is not valid base64") from exc
        out.append((kind, der))
    if not out:
        raise MalformedCertificate("no CERTIFICATE or CERTIFICATE REQUEST PEM block")
    return out


def _single_tlv(data: bytes) -> bool:
    """Whether ``data`` is exactly one SEQUENCE with a minimal DER length (the usual input: one
    certificate), which needs no splitting; anything else is split by :func:`_split_der`."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    first = data[1]
    if first < 0x80:
        return 2 + first == len(data)
    count = first - 0x80
    if not 1 <= count <= 4 or len(data) < 2 + count or data[2] == 0:
        return False
    length = int.from_bytes(data[2 : 2 + count], "big")
    return length >= 0x80 and 2 + count + length == len(data)


def _split_der(data: bytes) -> list[bytes]:
    """Split concatenated DER SEQUENCEs (a chain file) into single encodings."""
    if _single_tlv(data):
        return [data]
    out: list[bytes] = []
    rest = data
    while rest:
        if len(out) >= MAX_CERTIFICATES:
            raise LimitExceeded(f"more than {MAX_CERTIFICATES} certificates in one input")
        try:
            _, after = _asn1.decode_outer(rest)
        except PyAsn1Error as exc:
            raise MalformedCertificate("not a DER certificate or CSR") from exc
        out.append(rest[: len(rest) - len(after)])
        rest = after
    if not out:
        raise MalformedCertificate("empty input")
    return out


def _repair_ecdsa_null(der: bytes, kind: str) -> tuple[bytes, bytes] | None:
    """The RFC 5758 form of ``der`` if its only flaw is ECDSA-with-NULL; else ``None``.

    Returns ``(repaired_der, original_tbs)``.
    """
    try:
        outer, rest = _asn1.decode_outer(der)
        parts = [bytes(p) for p in outer]
        if rest or len(parts) != 3 or parts[1] not in _ECDSA_NULL_FIX:
            return None
        tbs = parts[0]
        new_tbs = tbs
        if kind == "certificate":
            inner, inner_rest = _asn1.decode_outer(tbs)
            fields = [bytes(p) for p in inner]
            pos = 2 if fields and fields[0][:1] == b"\xa0" else 1
            if inner_rest or len(fields) <= pos or fields[pos] != parts[1]:
                return None
            fields[pos] = _ECDSA_NULL_FIX[fields[pos]]
            new_tbs = _asn1.encode_outer(fields)
        repaired = _asn1.encode_outer([new_tbs, _ECDSA_NULL_FIX[parts[1]], parts[2]])
    except PyAsn1Error:
        return None
    return repaired, tbs


def _load_x509(
    der: bytes, kind: str | None
) -> tuple[x509.Certificate | x509.CertificateSigningRequest, bytes, int | None, list[str]]:
    """Load one DER certificate or CSR through :mod:`ironroot.crypto` (every field read once;
    an algorithm ``cryptography`` does not implement is kept, reported as unsupported).

    Returns (object, original signed bytes, serial number, quirks). The serial is read here,
    once, because ``cryptography`` warns on each read of a non-positive one.
    """
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise LimitExceeded(f"certificate is {len(der)} bytes, over {MAX_CERTIFICATE_BYTES}")
    quirks: list[str] = []
    kinds = [kind] if kind else ["certificate", "csr"]
    first_error: Exception | None = None
    for attempt in kinds:
        for candidate, original_tbs in _candidates(der, attempt):
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    obj: x509.Certificate | x509.CertificateSigningRequest
                    serial: int | None = None
                    if attempt == "certificate":
                        obj = load_certificate(
                            candidate, what="certificate", der_only=True, allow_unsupported=True
                        )
                        serial = obj.serial_number
                    else:
                        obj = load_csr(candidate, allow_unsupported=True)
            except MalformedCertificate as exc:
                first_error = first_error or exc
                continue
            if any("serial number" in str(w.message) for w in caught):
                quirks.append("non-positive-serial")
            if candidate is not der:
                quirks.append("ecdsa-null-params")
            if original_tbs is None:
                original_tbs = (
                    (_first_element(der) or obj.tbs_certificate_bytes)
                    if isinstance(obj, x509.Certificate)
                    else obj.tbs_certrequest_bytes
                )
            return obj, original_tbs, serial, quirks
    reason = first_error.detail if isinstance(first_error, IronrootError) else "unknown format"
    raise MalformedCertificate(f"not an X.509 certificate or CSR: {reason}") from first_error


def _element_end(data: bytes, pos: int) -> int | None:
    """Where the DER element at ``pos`` ends, by its definite length header (``None`` for a
    header that runs past ``data`` or is not a definite length of at most four octets)."""
    if pos + 2 > len(data):
        return None
    first, start = data[pos + 1], pos + 2
    if first < 0x80:
        return start + first
    count = first & 0x7F
    if not 1 <= count <= 4 or start + count > len(data):
        return None
    return start + count + int.from_bytes(data[start : start + count], "big")


def _first_element(der: bytes) -> bytes | None:
    """The first element of the SEQUENCE ``der`` (a certificate's TBSCertificate), exactly as
    encoded: what the signature covers, read from the DER headers of a certificate that
    parsed (``cryptography`` encodes it afresh at every read of ``tbs_certificate_bytes``)."""
    if _element_end(der, 0) != len(der):
        return None
    outer = 2 + (der[1] & 0x7F if der[1] >= 0x80 else 0)
    end = _element_end(der, outer)
    return der[outer:end] if end is not None and end <= len(der) else None


def _candidates(der: bytes, kind: str) -> Iterable[tuple[bytes, bytes | None]]:
    yield der, None
    repaired = _repair_ecdsa_null(der, kind)
    if repaired is not None:
        yield repaired


def _name_der(name: x509.Name) -> bytes:
    return name.public_bytes()


def _public_key(
    obj: x509.Certificate | x509.CertificateSigningRequest,
) -> tuple[str, PublicKey | None]:
    try:
        key = obj.public_key()
    except UnsupportedKeyType:
        return "unsupported", None
    except (ValueError, TypeError) as exc:
        raise MalformedCertificate(f"public key does not parse: {short_error(exc)}") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = f"EC {key.curve.name}"
    elif isinstance(key, ed25519.Ed25519PublicKey):
        name = "Ed25519"
    elif isinstance(key, mldsa.MLDSA44PublicKey):
        name = "ML-DSA-44"
    elif isinstance(key, mldsa.MLDSA65PublicKey):
        name = "ML-DSA-65"
    elif isinstance(key, mldsa.MLDSA87PublicKey):
        name = "ML-DSA-87"
    else:
        return type(key).__name__, None
    try:
        return name, PublicKey(key)
    except IronrootError:
        return name, None


_KEY_USAGE_NAMES: Final = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "nonRepudiation"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)


def _key_usage(ku: x509.KeyUsage) -> tuple[str, ...]:
    """The usages asserted; an extension asserting none is malformed (RFC 5280 4.2.1.3: at
    least one bit), and would otherwise read as an absent one, which restricts nothing."""
    names = [name for attr, name in _KEY_USAGE_NAMES if getattr(ku, attr)]
    if ku.key_agreement:
        if ku.encipher_only:
            names.append("encipherOnly")
        if ku.decipher_only:
            names.append("decipherOnly")
    if not names:
        raise MalformedCertificate("the KeyUsage extension asserts no usage (RFC 5280 4.2.1.3)")
    return tuple(names)


def _dice_extensions(
    extensions: x509.Extensions, *, strict: bool, svn_encoding: SvnEncoding
) -> tuple[DiceExtensions, dict[str, object]]:
    tcbs: list[TcbInfo] = []
    multi = False
    ueid: bytes | None = None
    open_dice: OpenDiceInput | None = None
    critical: set[str] = set()
    invalid: list[InvalidExtension] = []
    std: dict[str, object] = {}
    for ext in extensions:
        value = ext.value
        oid = ext.oid
        if isinstance(value, x509.UnrecognizedExtension):
            if oid not in (TCB_INFO_OID, MULTI_TCB_INFO_OID, UEID_OID, OPEN_DICE_OID):
                continue
            if ext.critical:
                critical.add(oid.dotted_string)
            try:
                if oid == TCB_INFO_OID:
                    tcbs.append(parse_tcb_info(value.value, svn_encoding=svn_encoding))
                elif oid == MULTI_TCB_INFO_OID:
                    tcbs.extend(parse_multi_tcb_info(value.value, svn_encoding=svn_encoding))
                    multi = True
                elif oid == UEID_OID:
                    ueid = parse_ueid(value.value)
                else:
                    open_dice = parse_open_dice_input(value.value)
            except MalformedCertificate as exc:
                if strict:
                    raise MalformedCertificate(
                        f"extension {oid.dotted_string}: {exc.detail}"
                    ) from exc
                invalid.append(InvalidExtension(oid.dotted_string, ext.critical, exc.detail))
        elif isinstance(value, x509.ExtendedKeyUsage):
            std["eku"] = tuple(o.dotted_string for o in value)
        elif isinstance(value, x509.KeyUsage):
            std["ku"] = _key_usage(value)
        elif isinstance(value, x509.BasicConstraints):
            std["bc"] = (value.ca, value.path_length)
        elif isinstance(value, x509.SubjectKeyIdentifier):
            std["ski"] = value.digest
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            std["aki"] = value.key_identifier
    eku = std.get("eku", ())
    assert isinstance(eku, tuple)
    purposes = tuple(_KEY_PURPOSE_NAMES[o] for o in eku if o in _KEY_PURPOSE_NAMES)
    dice = DiceExtensions(
        tcb_infos=tuple(tcbs),
        multi=multi,
        ueid=ueid,
        key_purposes=purposes,
        open_dice=open_dice,
        critical=frozenset(critical),
        invalid=tuple(invalid),
    )
    return dice, std


@functools.lru_cache(maxsize=1024)
def _build(
    der: bytes, kind: str | None, *, strict: bool, svn_encoding: SvnEncoding
) -> DiceCertificate:
    """One certificate or CSR parsed (cached by its exact bytes and the parse options: the
    result is immutable, and a fleet's nodes present the same vendor certificates again and
    again; a failure is not cached)."""
    obj, tbs, serial, quirks = _load_x509(der, kind)
    try:
        return _fields(obj, der, tbs, serial, quirks, strict=strict, svn_encoding=svn_encoding)
    except (ValueError, TypeError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        # cryptography parses names, extensions and keys lazily: their errors surface here.
        raise MalformedCertificate(f"certificate fields do not parse: {short_error(exc)}") from exc


def _fields(
    obj: x509.Certificate | x509.CertificateSigningRequest,
    der: bytes,
    tbs: bytes,
    serial: int | None,
    quirks: list[str],
    *,
    strict: bool,
    svn_encoding: SvnEncoding,
) -> DiceCertificate:
    extensions = obj.extensions
    dice, std = _dice_extensions(extensions, strict=strict, svn_encoding=svn_encoding)
    sig_oid = obj.signature_algorithm_oid.dotted_string
    sig_name = _SIG_ALGORITHMS.get(sig_oid, (obj.signature_algorithm_oid._name, ()))[0]
    pk_name, pk = _public_key(obj)
    bc = std.get("bc")
    is_ca, path_len = bc if isinstance(bc, tuple) else (None, None)
    common: dict[str, object] = {
        "der": der,
        "tbs": tbs,
        "signature": obj.signature,
        "signature_algorithm_oid": sig_oid,
        "signature_algorithm": sig_name,
        "subject": obj.subject.rfc4514_string(),
        "subject_der": _name_der(obj.subject),
        "public_key_algorithm": pk_name,
        "public_key": pk,
        "subject_key_id": std.get("ski"),
        "authority_key_id": std.get("aki"),
        "is_ca": is_ca,
        "path_length": path_len,
        "key_usage": std.get("ku", ()),
        "extended_key_usage": std.get("eku", ()),
        "dice": dice,
        "quirks": tuple(quirks),
        "unprocessed_critical": tuple(
            sorted(
                {*DICE_EXTENSIONS.unknown_critical(extensions)}
                | {i.oid for i in dice.invalid if i.critical}
            )
        ),
    }
    if isinstance(obj, x509.Certificate):
        return DiceCertificate(
            kind="certificate",
            issuer=obj.issuer.rfc4514_string(),
            issuer_der=_name_der(obj.issuer),
            serial=serial,
            not_before=obj.not_valid_before_utc,
            not_after=obj.not_valid_after_utc,
            **common,  # type: ignore[arg-type]
        )
    return DiceCertificate(
        kind="csr",
        issuer=None,
        serial=None,
        not_before=None,
        not_after=None,
        **common,  # type: ignore[arg-type]
    )


def _items(data: bytes) -> list[tuple[str | None, bytes]]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedCertificate("certificate input must be bytes")
    data = bytes(data)
    if len(data) > MAX_CERTIFICATE_BYTES * MAX_CERTIFICATES:
        raise LimitExceeded("certificate input is too large")
    if len(data) > MAX_CERTIFICATE_BYTES:  # a chain file, or hostile: not kept
        return list(_split(data))
    return list(_split_items(data))


def _split(data: bytes) -> tuple[tuple[str | None, bytes], ...]:
    """The PEM blocks or DER elements of ``data``."""
    if data.lstrip()[:10] == b"-----BEGIN":
        items: list[tuple[str | None, bytes]] = list(_split_pem(data))
        if len(items) > MAX_CERTIFICATES:
            raise LimitExceeded(f"more than {MAX_CERTIFICATES} certificates in one input")
        return tuple(items)
    return tuple((None, d) for d in _split_der(data))


# The split of an input of at most one certificate's size, cached by its bytes (failures are
# not): a split is kept even when what it holds is then refused, so the inputs it keeps are
# bounded as the parsed certificates are (1,024 of 64 KiB).
_split_items: Final = functools.lru_cache(maxsize=1024)(_split)


def load_dice_objects(
    data: bytes, *, strict: bool = True, svn_encoding: SvnEncoding = "auto"
) -> tuple[DiceCertificate, ...]:
    """Every certificate and CSR in ``data`` (PEM blocks, or DER, possibly concatenated).

    With ``strict=False`` an undecodable DICE extension is recorded in
    ``dice.invalid`` instead of raising (for redacted samples and inspection tools).
    """
    return tuple(
        _build(der, kind, strict=strict, svn_encoding=svn_encoding) for kind, der in _items(data)
    )


def parse_certificates(
    data: bytes, *, strict: bool = True, svn_encoding: SvnEncoding = "auto"
) -> tuple[DiceCertificate, ...]:
    """Every certificate in ``data``; a CSR among them raises ``MalformedCertificate``."""
    out = tuple(
        _build(der, kind or "certificate", strict=strict, svn_encoding=svn_encoding)
        for kind, der in _items(data)
    )
    if any(c.kind != "certificate" for c in out):
        raise MalformedCertificate("expected certificates, found a CSR")
    return out


def parse_certificate(
    data: bytes, *, strict: bool = True, svn_encoding: SvnEncoding = "auto"
) -> DiceCertificate:
    """Exactly one X.509 certificate (PEM or DER) with its DICE extensions."""
    certs = parse_certificates(data, strict=strict, svn_encoding=svn_encoding)
    if len(certs) != 1:
        raise MalformedCertificate(f"expected one certificate, found {len(certs)}")
    return certs[0]


def parse_csr(
    data: bytes, *, strict: bool = True, svn_encoding: SvnEncoding = "auto"
) -> DiceCertificate:
    """Exactly one PKCS#10 CSR (PEM or DER); DICE extensions from its extensionRequest."""
    items = _items(data)
    if len(items) != 1 or items[0][0] not in (None, "csr"):
        raise MalformedCertificate("expected exactly one certificate request")
    return _build(items[0][1], "csr", strict=strict, svn_encoding=svn_encoding)


# --- signatures ------------------------------------------------------------------------------


def verify_signature(cert: DiceCertificate, issuer_key: PublicKey) -> None:
    """Check ``cert``'s signature over its original signed bytes under ``issuer_key``.

    For a CSR pass its own key (``csr.public_key``) to check proof of possession. Returns
    ``None`` or raises ``BadSignature`` (also when the key cannot make this kind of signature).
    """
    entry = _SIG_ALGORITHMS.get(cert.signature_algorithm_oid)
    if entry is None:
        raise BadSignature(f"unsupported signature algorithm {cert.signature_algorithm_oid}")
    name, algorithms = entry
    if issuer_key.algorithm not in algorithms:
        raise BadSignature(f"{name} signature cannot be made by a {issuer_key.algorithm.label} key")
    verified = hashlib.sha256(
        issuer_key.algorithm.label.encode() + b"\0" + issuer_key.raw_bytes() + b"\0" + cert.der
    ).digest()
    if verified in _VERIFIED:
        return
    signature = cert.signature
    if issuer_key.algorithm in _ECDSA_ALGORITHMS:
        try:
            r, s = decode_dss_signature(signature)
        except ValueError as exc:
            raise BadSignature("ECDSA signature is not a valid DER Ecdsa-Sig-Value") from exc
        size = {Algorithm.ES256: 32, Algorithm.ES384: 48, Algorithm.ES512: 66}[issuer_key.algorithm]
        if r.bit_length() > 8 * size or s.bit_length() > 8 * size:
            raise BadSignature("ECDSA signature values are out of range")
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    issuer_key.verify(signature, cert.tbs)
    _VERIFIED.put(verified, None)


# Signatures verified already: SHA-256 of the issuer key's algorithm and bytes and the
# certificate's DER. The same certificate under the same key verifies the same way every time
# (a vendor CA's self-signature, a node's IDevID at each re-attestation); only successes are
# remembered.
_VERIFIED: Memo[bytes, None] = Memo(4096)


def verify_chain(chain: Sequence[DiceCertificate]) -> None:
    """Check a chain ordered root first: self-signed root, then each issued by the one before.

    Checks names (issuer = previous subject, byte for byte), that an authority key
    identifier, when both are present, is the issuer's subject key identifier, signatures,
    that every issuer is a CA whose key usage (when present) asserts ``keyCertSign``, path
    length constraints, and that no certificate has a critical extension this verifier does
    not process (RFC 5280 §4.2, §4.2.1.1, §4.2.1.3, §4.2.1.9); not
    validity periods (call :meth:`DiceCertificate.check_validity` with a pinned ``now``) nor
    trust in the root, which is the caller's decision. Raises ``ChainNotTrusted`` or
    ``BadSignature``.
    """
    if not chain:
        raise ChainNotTrusted("empty certificate chain")
    previous: DiceCertificate | None = None
    for position, cert in enumerate(chain):
        if cert.kind != "certificate":
            raise ChainNotTrusted(f"chain element {position} is a CSR")
        if cert.unprocessed_critical:
            raise ExtensionProfile.refusal(cert.subject, cert.unprocessed_critical)
        issuer = previous or cert
        if cert.issuer_der != issuer.subject_der:
            raise ChainNotTrusted(
                f"chain element {position}: issuer {cert.issuer!r} is not {issuer.subject!r}"
            )
        if issuer.public_key is None:
            raise ChainNotTrusted(f"chain element {position}: issuer key is not supported")
        if previous is not None and previous.is_ca is not True:
            raise ChainNotTrusted(f"chain element {position - 1} is not a CA")
        if previous is not None and previous.key_usage and "keyCertSign" not in previous.key_usage:
            raise ChainNotTrusted(f"chain element {position - 1}: key usage lacks keyCertSign")
        aki, ski = cert.authority_key_id, issuer.subject_key_id
        if aki is not None and ski is not None and aki != ski:
            raise ChainNotTrusted(
                f"chain element {position}: the authority key identifier {aki.hex()} is not "
                f"the issuer's subject key identifier {ski.hex()}"
            )
        verify_signature(cert, issuer.public_key)
        previous = cert
    _check_path_lengths(chain)


def _check_path_lengths(chain: Sequence[DiceCertificate]) -> None:
    """RFC 5280 §4.2.1.9: a CA's pathLenConstraint bounds the non-self-issued intermediates
    that follow it (the leaf, last, is not an intermediate)."""
    for position, cert in enumerate(chain[:-1]):
        if cert.path_length is None:
            continue
        below = sum(1 for c in chain[position + 1 : -1] if c.subject_der != c.issuer_der)
        if below > cert.path_length:
            raise ChainNotTrusted(
                f"chain element {position} allows path length {cert.path_length}; "
                f"{below} intermediates follow it"
            )


# --- JSON ------------------------------------------------------------------------------------


def _hex(value: bytes | None) -> str | None:
    return value.hex() if value is not None else None


def _flags_json(flags: OperationalFlags | None) -> dict[str, object] | None:
    if flags is None:
        return None
    return {"names": list(flags.names), "bits": sorted(flags.bits), "width": flags.width}


def _fwid_json(fwid: Fwid) -> dict[str, object]:
    return {
        "hash_alg": fwid.hash_alg_name,
        "hash_alg_oid": fwid.hash_alg_oid,
        "digest": fwid.digest.hex(),
    }


def _tcb_json(tcb: TcbInfo) -> dict[str, object]:
    out: dict[str, object] = {
        "vendor": tcb.vendor,
        "model": tcb.model,
        "version": tcb.version,
        "svn": tcb.svn,
        "layer": tcb.layer,
        "index": tcb.index,
        "fwids": [_fwid_json(f) for f in tcb.fwids],
        "flags": _flags_json(tcb.flags),
        "flags_mask": _flags_json(tcb.flags_mask),
        "vendor_info": _hex(tcb.vendor_info),
        "type": _type_json(tcb.type),
    }
    if tcb.svn_encoding == "caliptra":
        out["svn_raw"] = tcb.svn_raw
    if tcb.integrity_registers:
        out["integrity_registers"] = [
            {"name": r.name, "number": r.number, "digests": [_fwid_json(f) for f in r.digests]}
            for r in tcb.integrity_registers
        ]
    return out


def _type_json(value: bytes | None) -> str | None:
    """A TcbInfo ``type`` as text when it is printable ASCII (Caliptra's are), else hex."""
    if value is None:
        return None
    if value and all(0x20 <= b < 0x7F for b in value):
        return value.decode("ascii")
    return value.hex()


def _certificate_json(cert: DiceCertificate) -> dict[str, object]:
    dice = cert.dice
    od = dice.open_dice
    return {
        "kind": cert.kind,
        "subject": cert.subject,
        "issuer": cert.issuer,
        "serial": cert.serial,
        "not_before": cert.not_before.isoformat() if cert.not_before else None,
        "not_after": cert.not_after.isoformat() if cert.not_after else None,
        "signature_algorithm": cert.signature_algorithm,
        "signature_algorithm_oid": cert.signature_algorithm_oid,
        "public_key_algorithm": cert.public_key_algorithm,
        "subject_key_id": _hex(cert.subject_key_id),
        "authority_key_id": _hex(cert.authority_key_id),
        "is_ca": cert.is_ca,
        "path_length": cert.path_length,
        "key_usage": list(cert.key_usage),
        "extended_key_usage": list(cert.extended_key_usage),
        "quirks": list(cert.quirks),
        "dice": {
            "tcb_infos": [_tcb_json(t) for t in dice.tcb_infos],
            "multi_tcb_info": dice.multi,
            "ueid": _hex(dice.ueid),
            "key_purposes": list(dice.key_purposes),
            "critical": sorted(dice.critical),
            "open_dice": None
            if od is None
            else {
                "code_hash": _hex(od.code_hash),
                "code_descriptor": _hex(od.code_descriptor),
                "configuration_hash": _hex(od.configuration_hash),
                "configuration_descriptor": _hex(od.configuration_descriptor),
                "authority_hash": _hex(od.authority_hash),
                "authority_descriptor": _hex(od.authority_descriptor),
                "mode": od.mode,
                "mode_name": od.mode_name,
                "profile_name": od.profile_name,
            },
            "invalid": [
                {"oid": i.oid, "critical": i.critical, "reason": i.reason} for i in dice.invalid
            ],
        },
    }
