"""Intel collateral for TDX quotes: TCB Info and QE Identity, their signatures, the TCB status.

Intel's Provisioning Certification Service (PCS, API v4) serves the collateral as JSON:
``GET /tdx/certification/v4/tcb?fmspc=<FMSPC>`` answers ``{"tcbInfo": {...}, "signature":
"<hex>"}`` and ``GET /tdx/certification/v4/qe/identity`` answers ``{"enclaveIdentity": {...},
"signature": "<hex>"}``. The signature is ECDSA P-256 with SHA-256, given as the 64-byte r‖s
in hex, over the exact bytes of the inner JSON object as it appears in the response body (the
bytes from its ``{`` to its matching ``}``; nothing is re-serialised). The signer is the Intel
SGX TCB Signing certificate, issued by the Intel SGX Root CA; PCS sends that chain URL-encoded
in the ``TCB-Info-Issuer-Chain`` / ``SGX-Enclave-Identity-Issuer-Chain`` response headers.

TCB Info version 3 (``id`` ``"TDX"``, or ``"SGX"``) and version 2 (SGX, ``sgxtcbcompNNsvn``
fields) parse; only a TDX TCB Info appraises a TDX quote. QE Identity version 2 parses (``id``
``"TD_QE"``, or the SGX ``"QE"``/``"QVE"``); only ``TD_QE`` appraises a TDX quote's QE.

The TCB status follows Intel's algorithm (PCS API "TDX TCB Info" and the DCAP Quote
Verification Library, sections 4.1.2.4.9 to 4.1.2.4.17):

1. The TCB Info is the one whose FMSPC and PCE-ID are the PCK certificate's
   (``EndorsementMismatch`` otherwise).
2. TDX module identity: when TEE_TCB_SVN[1] (the TDX module major version) is 0 the TCB Info's
   ``tdxModule`` applies, otherwise the ``tdxModuleIdentities`` entry whose ``id`` is
   ``TDX_<TEE_TCB_SVN[1] as two hex digits>``; MRSIGNERSEAM must equal its ``mrsigner`` and
   SEAMATTRIBUTES under ``attributesMask`` its ``attributes``.
3. TCB levels, in the order served (PCS sorts them, highest first): the SGX level is the first
   whose 16 ``sgxtcbcomponents`` SVNs and ``pcesvn`` are each at most the PCK certificate's;
   the TDX level is the first such level whose ``tdxtcbcomponents`` SVNs are each at most the
   TD report's TEE_TCB_SVN (indices 0–15, or 2–15 when TEE_TCB_SVN[1] > 0). No such level:
   the TCB is not supported (``EndorsementMismatch``).
4. When TEE_TCB_SVN[1] > 0 the module's own level is the first of its identity's
   ``tcbLevels`` whose ``isvsvn`` is at most TEE_TCB_SVN[0]; a module ``OutOfDate`` turns the
   TDX level's UpToDate/SWHardeningNeeded into OutOfDate and ConfigurationNeeded/
   ConfigurationAndSWHardeningNeeded into OutOfDateConfigurationNeeded; a module ``Revoked``
   makes it Revoked.
5. TDX 1.5 reports (v5 quote, body type 3): a TD whose TDX status is OutOfDate[Configuration-
   Needed] only because of an out-of-date module, and whose TEE_TCB_SVN2 already reaches the
   latest level, gets TDRelaunchAdvised[ConfigurationNeeded] (relaunching it would be up to
   date), unless the SGX or QE status is worse.
6. The QE Identity, when given, checks the QE report: MISCSELECT and ATTRIBUTES under their
   masks, MRSIGNER and ISVPRODID equal (``EndorsementMismatch``), and the QE TCB level is the
   first whose ``isvsvn`` is at most the report's ISVSVN. A QE ``OutOfDate`` turns UpToDate/
   SWHardeningNeeded into OutOfDate and the Configuration statuses into
   OutOfDateConfigurationNeeded; a QE ``Revoked`` makes the TCB Revoked.

A final ``Revoked`` is refused by the verifier (``CertificateRevoked``); the other statuses
(UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate,
OutOfDateConfigurationNeeded, TDRelaunchAdvised, TDRelaunchAdvisedConfigurationNeeded) are
claims for an appraisal policy, with the advisory ids of the levels that matched.

No Python library reads Intel's collateral, hence this module. It is pure (bytes and values
in, values out); JSON is read with the standard library, certificates with ``cryptography``
(through :func:`load_certificates`) and signatures are checked by :mod:`ironroot.crypto`.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

from cryptography import x509

from ironroot._text import strict_hex
from ironroot.attestation.evidence._certs import (
    check_validity,
    earliest,
    fingerprint,
    load_certificates,
    verify_issued_by,
)
from ironroot.attestation.evidence._revocation import (
    StaleCollateral,
    chain_has_crl,
    check_chain_revocation,
    common_name,
    freshness,
    refuse_stale,
)
from ironroot.attestation.evidence._tdx import SgxReportBody, TdxQuote, TdxReportBody
from ironroot.crypto import Algorithm, ExtensionProfile, PublicKey
from ironroot.errors import (
    BadSignature,
    ChainNotTrusted,
    EndorsementMismatch,
    MalformedCollateral,
    UnsupportedAlgorithm,
)

if TYPE_CHECKING:
    from ironroot.attestation.evidence._tdx_verify import TdxChainCache

__all__ = [
    "TCB_STATUSES",
    "IdentityTcbLevel",
    "QeIdentity",
    "QeTcb",
    "TcbInfo",
    "TcbLevel",
    "TdxCollateral",
    "TdxModuleIdentity",
    "TdxTcbStatus",
    "check_intel_td_qe",
    "check_intel_tdx_module",
    "check_qe_identity",
    "collateral_signing_chain",
    "evaluate_tdx_tcb",
    "parse_qe_identity",
    "parse_tcb_info",
    "verify_collateral",
]

UP_TO_DATE: Final = "UpToDate"
SW_HARDENING: Final = "SWHardeningNeeded"
CONFIGURATION: Final = "ConfigurationNeeded"
CONFIGURATION_AND_SW: Final = "ConfigurationAndSWHardeningNeeded"
OUT_OF_DATE: Final = "OutOfDate"
OUT_OF_DATE_CONFIGURATION: Final = "OutOfDateConfigurationNeeded"
REVOKED: Final = "Revoked"
RELAUNCH: Final = "TDRelaunchAdvised"
RELAUNCH_CONFIGURATION: Final = "TDRelaunchAdvisedConfigurationNeeded"

TCB_STATUSES: Final = (
    UP_TO_DATE,
    SW_HARDENING,
    CONFIGURATION,
    CONFIGURATION_AND_SW,
    OUT_OF_DATE,
    OUT_OF_DATE_CONFIGURATION,
    REVOKED,
    RELAUNCH,
    RELAUNCH_CONFIGURATION,
)
"""Every TCB status a TDX quote can get (the last two only for TDX 1.5 reports)."""

_LEVEL_STATUSES: Final = frozenset(TCB_STATUSES[:7])
_IDENTITY_STATUSES: Final = frozenset((UP_TO_DATE, OUT_OF_DATE, REVOKED))
_CONFIG_NEEDED: Final = frozenset(
    (CONFIGURATION, OUT_OF_DATE_CONFIGURATION, CONFIGURATION_AND_SW, RELAUNCH_CONFIGURATION)
)
_TCB_SIGNING_CN: Final = "Intel SGX TCB Signing"
# The TCB signing certificate's extensions this verifier processes (RFC 5280 §4.2): only the
# standard ones; any other critical extension is refused.
_TCB_SIGNING_EXTENSIONS: Final = ExtensionProfile.of("Intel TCB signing")
_MAX_DOCUMENT: Final = 1024 * 1024
_MAX_LEVELS: Final = 256
_MAX_IDENTITIES: Final = 32
_MAX_ADVISORIES: Final = 256
_MAX_TEXT: Final = 64
_MAX_TCB_INFOS: Final = 256
_MAX_CRLS: Final = 16
_COMPONENTS: Final = 16
_SIGNATURE: Final = 64


# --- JSON reading ---------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedCollateral(f"JSON member {key[:_MAX_TEXT]!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise MalformedCollateral(f"JSON constant {name} is not allowed")


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
_WS: Final = " \t\n\r"


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _signed_document(data: bytes, member: str, what: str) -> tuple[dict[str, Any], bytes, bytes]:
    """The inner object ``member``, its exact bytes in ``data``, and the signature bytes.

    The body is read member by member with the standard library's JSON decoder, which reports
    where each value ends, so the signed bytes are the inner object exactly as received.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedCollateral(f"{what} must be bytes")
    data = bytes(data)
    if not data or len(data) > _MAX_DOCUMENT:
        raise MalformedCollateral(f"{what} must be 1 byte to {_MAX_DOCUMENT} bytes of JSON")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedCollateral(f"{what} is not UTF-8 text") from exc
    members: dict[str, tuple[Any, int, int]] = {}
    try:
        pos = _skip(text, 0)
        if text[pos : pos + 1] != "{":
            raise MalformedCollateral(f"{what} is not a JSON object")
        pos = _skip(text, pos + 1)
        while text[pos : pos + 1] != "}":
            if text[pos : pos + 1] != '"':
                raise MalformedCollateral(f"{what}: a member name was expected at {pos}")
            key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
            pos = _skip(text, pos)
            if text[pos : pos + 1] != ":":
                raise MalformedCollateral(f"{what}: ':' expected at {pos}")
            start = _skip(text, pos + 1)
            value, pos = _DECODER.raw_decode(text, start)
            if key in members:
                raise MalformedCollateral(f"{what}: member {key[:_MAX_TEXT]!r} appears twice")
            members[key] = (value, start, pos)
            pos = _skip(text, pos)
            if text[pos : pos + 1] == ",":
                pos = _skip(text, pos + 1)
                if text[pos : pos + 1] == "}":
                    raise MalformedCollateral(f"{what}: trailing comma at {pos}")
            elif text[pos : pos + 1] != "}":
                raise MalformedCollateral(f"{what}: ',' or '}}' expected at {pos}")
        if _skip(text, pos + 1) != len(text):
            raise MalformedCollateral(f"{what} has bytes after its JSON object")
    except (ValueError, RecursionError) as exc:
        raise MalformedCollateral(f"{what} is not valid JSON: {exc}") from exc
    if member not in members or "signature" not in members:
        raise MalformedCollateral(f"{what} needs the members {member!r} and 'signature'")
    body, start, end = members[member]
    if not isinstance(body, dict):
        raise MalformedCollateral(f"{what}: {member!r} is not an object")
    signature = members["signature"][0]
    if not isinstance(signature, str) or len(signature) != 2 * _SIGNATURE:
        raise MalformedCollateral(f"{what}: the signature is not {_SIGNATURE} bytes of hex")
    sig = strict_hex(signature)
    if sig is None or len(sig) != _SIGNATURE:
        raise MalformedCollateral(f"{what}: the signature is not {_SIGNATURE} bytes of hex")
    return body, text[start:end].encode("utf-8"), sig


class _Fields:
    """Typed reads of one JSON object's members; any mismatch is ``MalformedCollateral``."""

    __slots__ = ("obj", "where")

    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            raise MalformedCollateral(f"{where} is not a JSON object")
        self.obj: dict[str, Any] = obj
        self.where = where

    def has(self, name: str) -> bool:
        return name in self.obj

    def _get(self, name: str) -> Any:
        if name not in self.obj:
            raise MalformedCollateral(f"{self.where} lacks {name!r}")
        return self.obj[name]

    def integer(self, name: str, maximum: int) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
            raise MalformedCollateral(f"{self.where}.{name} is not an integer 0..{maximum}")
        return value

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str) or len(value) > _MAX_TEXT:
            raise MalformedCollateral(f"{self.where}.{name} is not text of at most 64 characters")
        return value

    def hex(self, name: str, size: int) -> bytes:
        value = self._get(name)
        raw = strict_hex(value) if isinstance(value, str) and len(value) == 2 * size else None
        if raw is None or len(raw) != size:
            raise MalformedCollateral(f"{self.where}.{name} is not {size} bytes of hex")
        return raw

    def time(self, name: str) -> datetime:
        value = self.text(name)
        try:
            when = datetime.fromisoformat(value)
        except ValueError as exc:
            raise MalformedCollateral(f"{self.where}.{name} is not an ISO 8601 time") from exc
        if when.tzinfo is None:
            raise MalformedCollateral(f"{self.where}.{name} has no time zone")
        return when

    def items(self, name: str, limit: int) -> list[Any]:
        value = self._get(name)
        if not isinstance(value, list) or len(value) > limit:
            raise MalformedCollateral(f"{self.where}.{name} is not a list of at most {limit}")
        return value

    def child(self, name: str) -> _Fields:
        return _Fields(self._get(name), f"{self.where}.{name}")

    def advisories(self) -> tuple[str, ...]:
        if not self.has("advisoryIDs"):
            return ()
        values = self.items("advisoryIDs", _MAX_ADVISORIES)
        if not all(isinstance(v, str) and 0 < len(v) <= _MAX_TEXT for v in values):
            raise MalformedCollateral(f"{self.where}.advisoryIDs holds a value that is not text")
        return tuple(values)

    def status(self, allowed: frozenset[str]) -> str:
        value = self.text("tcbStatus")
        if value not in allowed:
            raise MalformedCollateral(f"{self.where}.tcbStatus {value!r} is not a known status")
        return value


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


# --- the documents ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcbLevel:
    """One platform TCB level of a TCB Info (``tdx_components`` only in TDX TCB Info)."""

    sgx_components: tuple[int, ...]
    pcesvn: int
    tdx_components: tuple[int, ...] | None
    tcb_date: datetime
    status: str
    advisory_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sgx_components": list(self.sgx_components),
            "pcesvn": self.pcesvn,
            "tdx_components": None if self.tdx_components is None else list(self.tdx_components),
            "tcb_date": _iso(self.tcb_date),
            "status": self.status,
            "advisory_ids": list(self.advisory_ids),
        }


@dataclass(frozen=True, slots=True)
class IdentityTcbLevel:
    """One TCB level of a QE Identity or of a TDX module identity: an ISVSVN and its status."""

    isvsvn: int
    tcb_date: datetime
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TdxModuleIdentity:
    """A TCB Info's ``tdxModule`` (``id`` empty, no levels) or ``tdxModuleIdentities`` entry."""

    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    tcb_levels: tuple[IdentityTcbLevel, ...] = ()


@dataclass(frozen=True, slots=True)
class TcbInfo:
    """A parsed TCB Info; ``signed_body`` is the exact bytes ``signature`` covers."""

    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    tdx_module: TdxModuleIdentity | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    tcb_levels: tuple[TcbLevel, ...]
    signed_body: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class QeIdentity:
    """A parsed QE Identity (enclave identity v2); ``signed_body`` is what ``signature`` covers."""

    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    miscselect: bytes
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    tcb_levels: tuple[IdentityTcbLevel, ...]
    signed_body: bytes
    signature: bytes


def _components(items: list[Any], where: str) -> tuple[int, ...]:
    if len(items) != _COMPONENTS:
        raise MalformedCollateral(f"{where} has {len(items)} components, not 16")
    return tuple(_Fields(c, f"{where}[{i}]").integer("svn", 255) for i, c in enumerate(items))


def _platform_level(value: object, where: str, version: int, tdx: bool) -> TcbLevel:
    level = _Fields(value, where)
    tcb = level.child("tcb")
    tdx_components: tuple[int, ...] | None = None
    if version >= 3:
        sgx = _components(tcb.items("sgxtcbcomponents", _COMPONENTS), f"{tcb.where}.sgx")
        if tdx:
            tdx_components = _components(
                tcb.items("tdxtcbcomponents", _COMPONENTS), f"{tcb.where}.tdx"
            )
    else:
        sgx = tuple(tcb.integer(f"sgxtcbcomp{i:02d}svn", 255) for i in range(1, 17))
    return TcbLevel(
        sgx_components=sgx,
        pcesvn=tcb.integer("pcesvn", 0xFFFF),
        tdx_components=tdx_components,
        tcb_date=level.time("tcbDate"),
        status=level.status(_LEVEL_STATUSES),
        advisory_ids=level.advisories(),
    )


def _identity_levels(fields: _Fields) -> tuple[IdentityTcbLevel, ...]:
    out = []
    for index, value in enumerate(fields.items("tcbLevels", _MAX_LEVELS)):
        level = _Fields(value, f"{fields.where}.tcbLevels[{index}]")
        out.append(
            IdentityTcbLevel(
                isvsvn=level.child("tcb").integer("isvsvn", 0xFFFF),
                tcb_date=level.time("tcbDate"),
                status=level.status(_IDENTITY_STATUSES),
                advisory_ids=level.advisories(),
            )
        )
    if not out:
        raise MalformedCollateral(f"{fields.where} has no TCB level")
    return tuple(out)


def _module(fields: _Fields, *, with_levels: bool) -> TdxModuleIdentity:
    return TdxModuleIdentity(
        id=fields.text("id") if with_levels else "",
        mrsigner=fields.hex("mrsigner", 48),
        attributes=fields.hex("attributes", 8),
        attributes_mask=fields.hex("attributesMask", 8),
        tcb_levels=_identity_levels(fields) if with_levels else (),
    )


def parse_tcb_info(data: bytes) -> TcbInfo:
    """Parse a PCS TCB Info response body (``{"tcbInfo": ..., "signature": ...}``).

    Checks structure only (no signature: see :func:`verify_collateral`). Raises
    ``MalformedCollateral``.
    """
    body, signed, signature = _signed_document(data, "tcbInfo", "TCB Info")
    info = _Fields(body, "tcbInfo")
    version = info.integer("version", 255)
    if version not in (2, 3):
        raise MalformedCollateral(f"TCB Info version {version} is not supported (2 or 3)")
    ident = info.text("id") if version >= 3 else "SGX"
    if ident not in ("SGX", "TDX"):
        raise MalformedCollateral(f"TCB Info id {ident!r} is neither SGX nor TDX")
    tdx = ident == "TDX"
    tcb_type = info.integer("tcbType", 255)
    if tcb_type != 0:
        raise MalformedCollateral(f"TCB Info tcbType {tcb_type} is not supported (0)")
    levels = tuple(
        _platform_level(v, f"tcbInfo.tcbLevels[{i}]", version, tdx)
        for i, v in enumerate(info.items("tcbLevels", _MAX_LEVELS))
    )
    if not levels:
        raise MalformedCollateral("TCB Info has no TCB level")
    module: TdxModuleIdentity | None = None
    identities: tuple[TdxModuleIdentity, ...] = ()
    if tdx:
        module = _module(info.child("tdxModule"), with_levels=False)
        if info.has("tdxModuleIdentities"):
            identities = tuple(
                _module(_Fields(v, f"tcbInfo.tdxModuleIdentities[{i}]"), with_levels=True)
                for i, v in enumerate(info.items("tdxModuleIdentities", _MAX_IDENTITIES))
            )
    elif info.has("tdxModule") or info.has("tdxModuleIdentities"):
        raise MalformedCollateral("an SGX TCB Info has no TDX module")
    return TcbInfo(
        id=ident,
        version=version,
        issue_date=info.time("issueDate"),
        next_update=info.time("nextUpdate"),
        fmspc=info.hex("fmspc", 6),
        pce_id=info.hex("pceId", 2),
        tcb_type=tcb_type,
        tcb_evaluation_data_number=info.integer("tcbEvaluationDataNumber", 0xFFFFFFFF),
        tdx_module=module,
        tdx_module_identities=identities,
        tcb_levels=levels,
        signed_body=signed,
        signature=signature,
    )


def parse_qe_identity(data: bytes) -> QeIdentity:
    """Parse a PCS QE Identity response body (``{"enclaveIdentity": ..., "signature": ...}``).

    Checks structure only (no signature: see :func:`verify_collateral`). Raises
    ``MalformedCollateral``.
    """
    body, signed, signature = _signed_document(data, "enclaveIdentity", "QE Identity")
    ident = _Fields(body, "enclaveIdentity")
    version = ident.integer("version", 255)
    if version != 2:
        raise MalformedCollateral(f"QE Identity version {version} is not supported (2)")
    name = ident.text("id")
    if name not in ("QE", "QVE", "TD_QE"):
        raise MalformedCollateral(f"QE Identity id {name!r} is not QE, QVE or TD_QE")
    return QeIdentity(
        id=name,
        version=version,
        issue_date=ident.time("issueDate"),
        next_update=ident.time("nextUpdate"),
        tcb_evaluation_data_number=ident.integer("tcbEvaluationDataNumber", 0xFFFFFFFF),
        miscselect=ident.hex("miscselect", 4),
        miscselect_mask=ident.hex("miscselectMask", 4),
        attributes=ident.hex("attributes", 16),
        attributes_mask=ident.hex("attributesMask", 16),
        mrsigner=ident.hex("mrsigner", 32),
        isvprodid=ident.integer("isvprodid", 0xFFFF),
        tcb_levels=_identity_levels(ident),
        signed_body=signed,
        signature=signature,
    )


def collateral_signing_chain(data: bytes) -> tuple[x509.Certificate, ...]:
    """The TCB signing chain: PEM, or the URL-encoded PEM of PCS's issuer-chain header."""
    if b"%20CERTIFICATE" in data or b"%0A" in data:
        data = urllib.parse.unquote_to_bytes(data.strip())
    return tuple(load_certificates(data))


@dataclass(frozen=True, slots=True)
class TdxCollateral:
    """Intel collateral for TDX quotes, parsed (nothing verified yet).

    ``tcb_infos``: TCB Info documents, one per FMSPC (the verifier picks the PCK's);
    ``qe_identity``: the TD QE Identity; ``signing_chain``: the Intel SGX TCB Signing
    certificate(s) and optionally the root; ``crls``: the PCK CRL and root CA CRL.
    """

    tcb_infos: tuple[TcbInfo, ...] = ()
    qe_identity: QeIdentity | None = None
    signing_chain: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    max_crls: ClassVar[int] = _MAX_CRLS
    """The most CRLs one collateral holds (more is ``MalformedCollateral``)."""

    def __post_init__(self) -> None:
        if (self.tcb_infos or self.qe_identity is not None) and not self.signing_chain:
            raise MalformedCollateral(
                "TCB Info and QE Identity need the TCB signing chain that signed them "
                "(PCS header TCB-Info-Issuer-Chain)"
            )
        if len(self.tcb_infos) > _MAX_TCB_INFOS or len(self.crls) > _MAX_CRLS:
            raise MalformedCollateral("too many collateral documents")
        seen = set()
        for info in self.tcb_infos:
            key = (info.id, info.fmspc, info.pce_id)
            if key in seen:
                raise MalformedCollateral(
                    f"two {info.id} TCB Info documents for FMSPC {info.fmspc.hex()}"
                )
            seen.add(key)

    @property
    def empty(self) -> bool:
        return not self.tcb_infos and self.qe_identity is None and not self.crls

    def tcb_info_for(self, fmspc: bytes, pce_id: bytes) -> TcbInfo | None:
        """The TDX TCB Info for this FMSPC and PCE-ID (an SGX one if no TDX one), if any."""
        matching = [i for i in self.tcb_infos if i.fmspc == fmspc and i.pce_id == pce_id]
        matching.sort(key=lambda i: i.id != "TDX")
        return matching[0] if matching else None

    def stale(self, now: datetime) -> list[StaleCollateral]:
        """The TCB Info and QE Identity documents outside their validity at ``now``."""
        out = []
        for info in self.tcb_infos:
            item = freshness(f"TCB Info {info.fmspc.hex()}", info.issue_date, info.next_update, now)
            if item is not None:
                out.append(item)
        if self.qe_identity is not None:
            qe = self.qe_identity
            item = freshness("QE Identity", qe.issue_date, qe.next_update, now)
            if item is not None:
                out.append(item)
        return out


# --- signatures and freshness -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollateralCheck:
    """What :func:`verify_collateral` established: the signer, the stale items it allowed,
    and until when what it relied on holds (the signing certificates' ``notAfter``, the fresh
    documents' and CRLs' ``nextUpdate``)."""

    detail: str
    stale: tuple[StaleCollateral, ...]
    valid_until: datetime | None = None


def _signers(
    chain: Sequence[x509.Certificate], root: x509.Certificate, now: datetime
) -> list[x509.Certificate]:
    root_print = fingerprint(root)
    for cert in chain:
        if cert.subject == cert.issuer and fingerprint(cert) != root_print:
            raise ChainNotTrusted(
                f"root {common_name(cert.subject)!r} in the TCB signing chain is not the "
                "Intel SGX Root CA"
            )
    signers = [
        c for c in chain if c.subject != c.issuer and common_name(c.subject) == _TCB_SIGNING_CN
    ]
    if not signers:
        raise ChainNotTrusted(f"the TCB signing chain holds no {_TCB_SIGNING_CN!r} certificate")
    for cert in signers:
        verify_issued_by(cert, root, profile=_TCB_SIGNING_EXTENSIONS)
    check_validity((*signers, root), now)
    return signers


def _verify_document(
    name: str,
    body: bytes,
    signature: bytes,
    signers: Sequence[x509.Certificate],
    root_print: bytes,
    cache: TdxChainCache | None,
) -> x509.Certificate:
    digest = hashlib.sha256(body + signature).digest()
    for cert in signers:
        key = (digest, fingerprint(cert), root_print)
        if cache is not None and key in cache:
            return cert
        try:
            public = PublicKey(cert.public_key(), Algorithm.ES256)  # type: ignore[arg-type]
        except UnsupportedAlgorithm as exc:
            raise ChainNotTrusted("the TCB signing key is not ECDSA P-256") from exc
        try:
            public.verify(signature, body)
        except BadSignature:
            continue
        if cache is not None:
            cache.add(key)
        return cert
    raise BadSignature(f"the {name} signature does not verify with the TCB signing key")


def verify_collateral(
    collateral: TdxCollateral,
    *,
    tcb_info: TcbInfo | None,
    root: x509.Certificate,
    now: datetime,
    allow_stale: bool,
    cache: TdxChainCache | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> CollateralCheck:
    """Check the signatures of ``tcb_info`` (or of every TCB Info when it is ``None``) and of
    the QE Identity, their signing chain to ``root`` (and its revocation when the root CA CRL
    is given, in ``collateral.crls`` or in ``crls``), and their freshness at ``now``.

    Raises ``ChainNotTrusted`` / ``CertificateExpired`` / ``CertificateRevoked`` for the
    signing chain, ``BadSignature`` for a document whose signature does not verify, and
    ``CollateralExpired`` for a stale document or root CA CRL unless ``allow_stale``.
    """
    signers = _signers(collateral.signing_chain, root, now)
    root_print = fingerprint(root)
    documents: list[tuple[str, TcbInfo | QeIdentity]] = [
        (f"TCB Info {info.fmspc.hex()}", info)
        for info in (collateral.tcb_infos if tcb_info is None else (tcb_info,))
    ]
    if collateral.qe_identity is not None:
        documents.append(("QE Identity", collateral.qe_identity))
    used: dict[bytes, x509.Certificate] = {}
    stale: list[StaleCollateral] = []
    until: list[datetime | None] = []
    for name, doc in documents:
        signer = _verify_document(name, doc.signed_body, doc.signature, signers, root_print, cache)
        used[fingerprint(signer)] = signer
        item = freshness(name, doc.issue_date, doc.next_update, now)
        if item is not None:
            stale.append(item)
        else:
            until.append(doc.next_update)
    parts = [f"{', '.join(n for n, _ in documents)} signed by {_TCB_SIGNING_CN} → root"]
    if not stale and documents:
        parts.append(f"fresh until {_iso(min(d.next_update for _, d in documents))}")
    given = (*collateral.crls, *crls)
    all_crls = list({id(crl): crl for crl in given}.values())  # the same CRL given twice
    for signer in used.values():
        if chain_has_crl((signer, root), all_crls):
            result = check_chain_revocation((signer, root), all_crls, now=now, allow_stale=True)
            if result is not None:
                stale.extend(result.stale)
                until.append(result.valid_until)
                parts.append("signer not revoked")
    allowed = refuse_stale(stale, allow=allow_stale)
    if allowed:
        parts.append(allowed)
    valid_until = earliest((*used.values(), root), *until)
    return CollateralCheck("; ".join(parts), tuple(stale), valid_until)


# --- QE identity and TCB status -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QeTcb:
    """The QE report's standing against the QE Identity."""

    status: str
    isvsvn: int
    level_isvsvn: int
    tcb_date: datetime
    advisory_ids: tuple[str, ...]
    tcb_evaluation_data_number: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "isvsvn": self.isvsvn,
            "level_isvsvn": self.level_isvsvn,
            "tcb_date": _iso(self.tcb_date),
            "advisory_ids": list(self.advisory_ids),
            "tcb_evaluation_data_number": self.tcb_evaluation_data_number,
        }


def _masked(value: bytes, mask: bytes) -> bytes:
    return bytes(a & b for a, b in zip(value, mask, strict=True))


def check_qe_identity(identity: QeIdentity, report: SgxReportBody) -> QeTcb:
    """Check a TDX quote's QE report against a TD_QE identity; return the QE TCB standing.

    Raises ``EndorsementMismatch`` when the identity is not a TD QE's, when MISCSELECT,
    ATTRIBUTES (under their masks), MRSIGNER or ISVPRODID differ, or when no TCB level covers
    the report's ISVSVN. A ``Revoked`` level is returned, not raised: the caller refuses it.
    """
    if identity.id != "TD_QE":
        raise EndorsementMismatch(f"QE Identity {identity.id!r} is not the TD QE's (TD_QE)")
    miscselect = report.misc_select.to_bytes(4, "little")
    if _masked(miscselect, identity.miscselect_mask) != identity.miscselect:
        raise EndorsementMismatch(
            f"QE MISCSELECT {miscselect.hex()} under mask {identity.miscselect_mask.hex()} "
            f"is not {identity.miscselect.hex()}"
        )
    if _masked(report.attributes, identity.attributes_mask) != identity.attributes:
        raise EndorsementMismatch(
            f"QE ATTRIBUTES {report.attributes.hex()} under mask "
            f"{identity.attributes_mask.hex()} are not {identity.attributes.hex()}"
        )
    if report.mr_signer != identity.mrsigner:
        raise EndorsementMismatch(
            f"QE MRSIGNER {report.mr_signer.hex()} is not {identity.mrsigner.hex()}"
        )
    if report.isv_prod_id != identity.isvprodid:
        raise EndorsementMismatch(f"QE ISVPRODID {report.isv_prod_id} is not {identity.isvprodid}")
    level = next((lv for lv in identity.tcb_levels if lv.isvsvn <= report.isv_svn), None)
    if level is None:
        raise EndorsementMismatch(
            f"QE ISVSVN {report.isv_svn} is below every TCB level of the QE Identity"
        )
    return QeTcb(
        status=level.status,
        isvsvn=report.isv_svn,
        level_isvsvn=level.isvsvn,
        tcb_date=level.tcb_date,
        advisory_ids=level.advisory_ids,
        tcb_evaluation_data_number=identity.tcb_evaluation_data_number,
    )


# Intel's TD QE as Intel's PCS QE Identity (``TD_QE``) names it: the enclave signer, product
# id and the MISCSELECT/ATTRIBUTES values and masks (the DEBUG attribute must be clear).
INTEL_TD_QE_MRSIGNER: Final = bytes.fromhex(
    "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5"
)
_INTEL_TD_QE_ISVPRODID: Final = 2
_INTEL_TD_QE_MISCSELECT: Final = (bytes(4), bytes.fromhex("ffffffff"))
_INTEL_TD_QE_ATTRIBUTES: Final = (
    bytes.fromhex("11000000000000000000000000000000"),
    bytes.fromhex("fbffffffffffffff0000000000000000"),
)
_NO_IDENTITY: Final = "(no QE Identity given)"


def check_intel_td_qe(report: SgxReportBody) -> str:
    """Check, when no QE Identity is given, that the QE report is Intel's TD QE's: MRSIGNER,
    ISVPRODID 2, MISCSELECT and ATTRIBUTES under the masks of Intel's TD_QE identity.

    The PCK signs the report of any enclave the platform lets hold the PROVISION_KEY
    attribute, so a PCK-signed QE report alone does not say the QE is Intel's. Raises
    ``EndorsementMismatch``; returns a detail line.
    """
    miscselect = report.misc_select.to_bytes(4, "little")
    value, mask = _INTEL_TD_QE_MISCSELECT
    if _masked(miscselect, mask) != value:
        raise EndorsementMismatch(
            f"QE MISCSELECT {miscselect.hex()} under mask {mask.hex()} is not {value.hex()} "
            f"{_NO_IDENTITY}"
        )
    value, mask = _INTEL_TD_QE_ATTRIBUTES
    if _masked(report.attributes, mask) != value:
        raise EndorsementMismatch(
            f"QE ATTRIBUTES {report.attributes.hex()} under mask {mask.hex()} are not "
            f"{value.hex()} {_NO_IDENTITY}"
        )
    if report.mr_signer != INTEL_TD_QE_MRSIGNER:
        raise EndorsementMismatch(
            f"QE MRSIGNER {report.mr_signer.hex()} is not Intel's TD QE signer "
            f"{INTEL_TD_QE_MRSIGNER.hex()} {_NO_IDENTITY}"
        )
    if report.isv_prod_id != _INTEL_TD_QE_ISVPRODID:
        raise EndorsementMismatch(
            f"QE ISVPRODID {report.isv_prod_id} is not Intel's TD QE "
            f"({_INTEL_TD_QE_ISVPRODID}) {_NO_IDENTITY}"
        )
    return (
        f"QE is Intel's TD QE (MRSIGNER {INTEL_TD_QE_MRSIGNER.hex()[:8]}…, ISVPRODID "
        f"{_INTEL_TD_QE_ISVPRODID}, MISCSELECT and ATTRIBUTES under Intel's masks; no QE "
        "Identity given)"
    )


_NO_TCB_INFO: Final = "(no TCB Info given)"


def check_intel_tdx_module(body: TdxReportBody) -> str:
    """Check, when no TCB Info is given, that the TD report comes from an Intel TDX module in
    production mode: MRSIGNERSEAM zero (Intel's signer) and SEAMATTRIBUTES zero, as every
    ``tdxModule`` and ``tdxModuleIdentities`` entry of Intel's TCB Info requires. Raises
    ``EndorsementMismatch``; returns a detail line."""
    if any(body.mrsignerseam):
        raise EndorsementMismatch(
            f"MRSIGNERSEAM {body.mrsignerseam.hex()[:16]}… is not Intel's TDX module signer "
            f"(zero) {_NO_TCB_INFO}"
        )
    if any(body.seam_attributes):
        raise EndorsementMismatch(
            f"SEAMATTRIBUTES {body.seam_attributes.hex()} are not "
            f"{bytes(len(body.seam_attributes)).hex()} {_NO_TCB_INFO}"
        )
    return "TDX module is Intel's (MRSIGNERSEAM zero, SEAMATTRIBUTES zero; no TCB Info given)"


@dataclass(frozen=True, slots=True)
class TdxTcbStatus:
    """A TDX quote's TCB status and how it was reached (see the module documentation)."""

    status: str
    sgx_status: str
    platform_status: str
    module_status: str | None
    module_identity: str | None
    qe_status: str | None
    tcb_date: datetime
    advisory_ids: tuple[str, ...]
    tcb_evaluation_data_number: int
    fmspc: bytes
    tcb_info_issue_date: datetime
    tcb_info_next_update: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "sgx_status": self.sgx_status,
            "platform_status": self.platform_status,
            "module_status": self.module_status,
            "module_identity": self.module_identity,
            "qe_status": self.qe_status,
            "tcb_date": _iso(self.tcb_date),
            "advisory_ids": list(self.advisory_ids),
            "tcb_evaluation_data_number": self.tcb_evaluation_data_number,
            "fmspc": self.fmspc.hex(),
            "tcb_info_issue_date": _iso(self.tcb_info_issue_date),
            "tcb_info_next_update": _iso(self.tcb_info_next_update),
        }


def _find_module(info: TcbInfo, version: int) -> TdxModuleIdentity:
    wanted = f"TDX_{version:02X}"
    for identity in info.tdx_module_identities:
        if identity.id.upper() == wanted:
            return identity
    raise EndorsementMismatch(f"the TCB Info has no TDX module identity {wanted}")


def _at_least(values: Sequence[int], floors: Sequence[int], start: int = 0) -> bool:
    return all(values[i] >= floors[i] for i in range(start, len(floors)))


def _converge(status: str, other: str | None) -> str:
    """Intel's convergence of a TCB status with a module or QE status."""
    if other == OUT_OF_DATE:
        if status in (UP_TO_DATE, SW_HARDENING):
            return OUT_OF_DATE
        if status in (CONFIGURATION, CONFIGURATION_AND_SW):
            return OUT_OF_DATE_CONFIGURATION
    if other == REVOKED:
        return REVOKED
    return status


def _relaunch(
    info: TcbInfo,
    quote: TdxQuote,
    *,
    sgx_status: str,
    status: str,
    module_status: str | None,
    qe: QeTcb | None,
) -> str:
    """TDX 1.5: TDRelaunchAdvised[ConfigurationNeeded] when relaunching would be up to date."""
    svn2 = quote.body.tee_tcb_svn2
    if svn2 is None or quote.body_type != 3:
        return status
    if qe is not None and qe.status in (OUT_OF_DATE, REVOKED):
        return status
    if sgx_status not in (UP_TO_DATE, SW_HARDENING, CONFIGURATION, CONFIGURATION_AND_SW):
        return status
    if status not in (OUT_OF_DATE, OUT_OF_DATE_CONFIGURATION) or module_status != OUT_OF_DATE:
        return status
    latest = info.tcb_levels[0]
    assert latest.tdx_components is not None
    if svn2[1] == 0:
        ready = svn2[0] >= latest.tdx_components[0]
    else:
        identity = _find_module(info, svn2[1])
        ready = svn2[0] >= identity.tcb_levels[0].isvsvn
    if not ready or svn2[2] < latest.tdx_components[2]:
        return status
    config = sgx_status in _CONFIG_NEEDED or status in _CONFIG_NEEDED
    return RELAUNCH_CONFIGURATION if config else RELAUNCH


def evaluate_tdx_tcb(
    info: TcbInfo,
    *,
    fmspc: bytes,
    pce_id: bytes,
    pck_components: Sequence[int],
    pcesvn: int,
    quote: TdxQuote,
    qe: QeTcb | None = None,
) -> TdxTcbStatus:
    """The TCB status of a TDX quote whose PCK certificate carries ``fmspc``, ``pce_id``, the
    16 SGX TCB components ``pck_components`` and ``pcesvn`` (see the module documentation).

    Raises ``EndorsementMismatch`` when the TCB Info is not for this platform (FMSPC, PCE-ID,
    TDX), the TDX module is not the one it names, or no TCB level covers the platform.
    """
    if info.id != "TDX" or info.tdx_module is None:
        raise EndorsementMismatch(f"an {info.id} TCB Info cannot appraise a TDX quote")
    if info.fmspc != fmspc or info.pce_id != pce_id:
        raise EndorsementMismatch(
            f"TCB Info is for FMSPC {info.fmspc.hex()} PCE-ID {info.pce_id.hex()}, the PCK "
            f"certificate's are {fmspc.hex()} {pce_id.hex()}"
        )
    body = quote.body
    tee = body.tee_tcb_svn
    version = tee[1]
    module = info.tdx_module if version == 0 else _find_module(info, version)
    if body.mrsignerseam != module.mrsigner:
        raise EndorsementMismatch(
            f"MRSIGNERSEAM {body.mrsignerseam.hex()[:16]}… is not the TDX module signer "
            f"{module.mrsigner.hex()[:16]}… of the TCB Info"
        )
    if _masked(body.seam_attributes, module.attributes_mask) != module.attributes:
        raise EndorsementMismatch(
            f"SEAMATTRIBUTES {body.seam_attributes.hex()} under mask "
            f"{module.attributes_mask.hex()} are not {module.attributes.hex()}"
        )
    sgx_level: TcbLevel | None = None
    tdx_level: TcbLevel | None = None
    start = 2 if version > 0 else 0
    for level in info.tcb_levels:
        if not _at_least(pck_components, level.sgx_components) or pcesvn < level.pcesvn:
            continue
        sgx_level = sgx_level or level
        assert level.tdx_components is not None
        if _at_least(tee, level.tdx_components, start):
            tdx_level = level
            break
    if sgx_level is None:
        raise EndorsementMismatch(
            "TCB not supported: the PCK certificate's SGX TCB components and PCESVN are below "
            "every level of the TCB Info"
        )
    if tdx_level is None:
        raise EndorsementMismatch(
            "TCB not supported: the TD report's TEE_TCB_SVN is below every level of the TCB Info"
        )
    module_status: str | None = None
    module_level: IdentityTcbLevel | None = None
    if version > 0:
        module_level = next((lv for lv in module.tcb_levels if tee[0] >= lv.isvsvn), None)
        if module_level is None:
            raise EndorsementMismatch(
                f"TDX module ISVSVN {tee[0]} is below every level of {module.id}"
            )
        module_status = module_level.status
    status = _converge(tdx_level.status, module_status)
    if status != REVOKED:
        status = _relaunch(
            info, quote, sgx_status=sgx_level.status, status=status,
            module_status=module_status, qe=qe,
        )  # fmt: skip
        status = _converge(status, None if qe is None else qe.status)
    advisories: list[str] = []
    sources: list[tuple[str, ...]] = [tdx_level.advisory_ids]
    if module_level is not None:
        sources.append(module_level.advisory_ids)
    if qe is not None:
        sources.append(qe.advisory_ids)
    for ids in sources:
        advisories.extend(a for a in ids if a not in advisories)
    return TdxTcbStatus(
        status=status,
        sgx_status=sgx_level.status,
        platform_status=tdx_level.status,
        module_status=module_status,
        module_identity=module.id or None,
        qe_status=None if qe is None else qe.status,
        tcb_date=tdx_level.tcb_date,
        advisory_ids=tuple(advisories),
        tcb_evaluation_data_number=info.tcb_evaluation_data_number,
        fmspc=info.fmspc,
        tcb_info_issue_date=info.issue_date,
        tcb_info_next_update=info.next_update,
    )
