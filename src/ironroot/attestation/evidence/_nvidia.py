"""NVIDIA GPU evidence (``nvidia-gpu``): a Hopper GPU's signed SPDM 1.1 measurement report,
its certificate chain to NVIDIA's Device Identity CA, and NVIDIA's opaque data as claims.

**Input.** The attestation report as the GPU driver hands it over (binary, or the hex text
NVIDIA's tools print): an SPDM 1.1 GET_MEASUREMENTS request (37 bytes: ``11 e0 01 ff``, the
verifier's 32-byte nonce, the slot) followed by the MEASUREMENTS response (measurement
blocks, the GPU's own nonce, NVIDIA opaque data, a 96-byte ECDSA P-384 signature r ‖ s).
The certificate chain is given beside it (PEM or DER, leaf first, as the driver returns it:
GSP FMC LF → GSP BROM → GH100 Provisioner ICA → GH100 Identity [→ Device Identity CA]).

**Checks**, in order, each named in the :class:`CheckLog`:

1. ``chain``: every certificate is issued by the next (name and signature); every issuer is a
   CA (basicConstraints, keyCertSign, path length); the top is issued by the built-in, pinned
   NVIDIA Device Identity CA, or is that CA (any other self-signed certificate:
   ``ChainNotTrusted``); all valid at ``now`` (``CertificateExpired``); the leaf key is
   ECDSA P-384 and may sign.
2. ``report``: the signature by the leaf key over the report without its last 96 bytes —
   the SPDM 1.0/1.1 L1/L2 of one exchange, GET_MEASUREMENTS ‖ MEASUREMENTS without its
   signature, no signing context — checked before any field is read, so one flipped bit
   anywhere is ``BadSignature``; then the SPDM messages strictly (``MalformedSpdm``,
   ``SpdmProtocolError``: every digest block is SHA-384) and the opaque data
   (``MalformedEvidence``).
3. ``fwid``: the opaque data's FWID (type 20) equals the FWID the leaf certificate carries
   (extension 2.23.133.5.4.1, a RIoT CompositeDeviceID: version, device key, SHA-384 FWID)
   → ``EndorsementMismatch``; a report or a leaf certificate without one is refused the same
   way: the certificate's FWID is what names the firmware holding the attestation key, and
   a Hopper GPU's report and certificate both carry it (NVIDIA's verifier requires the match).
4. ``nonce`` (by the format table): the request's nonce is the verifier's, exactly.

5. ``revocation``, with CRLs given (``VerifyOptions.crls``, ``--crl``, ``crls`` in
   ``attestation.toml``): each certificate of the path against its issuer's CRL, as for SNP
   and TDX (:mod:`._revocation`): a listed certificate is ``CertificateRevoked``, a CRL whose
   signature does not verify ``ChainNotTrusted``, a stale one ``CollateralExpired`` unless
   stale collateral is allowed (then listed in ``raw["stale_collateral"]``). NVIDIA publishes
   CRLs for its CA levels (``http://crl.ndis.nvidia.com/crl/l1-root.crl`` for the GH100
   Identity, ``…/l2-gh100.crl`` for the Provisioner ICA: each certificate's CRL distribution
   point names them); the device's own certificates (GSP BROM, FMC LF) have none, and the
   check's detail names them as not covered. Without CRLs, or with none of this chain's CAs,
   the check is listed as not run, with why (NVIDIA's OCSP service is online only). It runs
   at every verification, the chain cache's hits included.

**Opaque data** is a sequence of TLVs, type and length u16 little-endian, filling the field
exactly (a duplicate type, a truncated value or trailing bytes: ``MalformedEvidence``). The
type numbers are NVIDIA's (:data:`NVIDIA_OPAQUE_TYPES`, from the public nvtrust verifier):
text fields are NUL-padded ASCII; the VBIOS version is 8 bytes shown as NVIDIA shows it
(bytes 3, 2, 1, 0 then 4, upper-case hex, dot-separated: ``96.00.9F.00.01``); the
measurement counts are u32 little-endian, one per measurement index (in a report of all
its blocks, one per block carried: another number is ``MalformedEvidence``); every other type
(and any type not in the table) is kept as its bytes.

**Claims.** Measurements are named ``spdm.<index>`` (the block's digest, as the SPDM row
names them); ``report_data`` is the request's nonce; ``identity`` carries the text fields
(``driver_version``, ``vbios_version``, ``chip_sku``, ``chip_sku_mod``, ``project``,
``project_sku``, ``project_sku_mod``), ``measurement_count``, the leaf ``subject`` and the
``root`` fingerprint; ``raw`` the block indices by DMTF value type, every opaque field, the
GPU's nonce, the opaque data and the signature as hex. :class:`GpuEvidence` is the typed
view (``from_claims`` rebuilds it from verified claims) that reference-value appraisal reads.

Certificates are read and linked with ``cryptography``; only the CompositeDeviceID is decoded
with pyasn1's DER decoder (no schema needed: three universal types).
"""

from __future__ import annotations

import hmac
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.type import univ

from ironroot.attestation.evidence._certs import (
    aware,
    check_validity,
    fingerprint,
    load_certificates,
    optional_extension,
    subject_text,
    verify_issued_by,
)
from ironroot.attestation.evidence._claims import CheckLog, EvidenceClaims, JsonReady
from ironroot.attestation.evidence._revocation import (
    StaleCollateral,
    chain_has_crl,
    check_chain_revocation,
)
from ironroot.attestation.evidence._roots import builtin_nvidia_root
from ironroot.crypto import Algorithm, ExtensionProfile, PublicKey
from ironroot.errors import (
    CertificateExpired,
    ChainNotTrusted,
    EndorsementMismatch,
    MalformedEvidence,
    MalformedInput,
    UnsupportedAlgorithm,
)
from ironroot.rot import ASN1_DECODE_ERRORS
from ironroot.spdm import MeasurementHashAlgo, MeasurementReport, check_report_signature

__all__ = [
    "NVIDIA_GPU_FORMAT",
    "NVIDIA_OPAQUE_TYPES",
    "GpuChainCache",
    "GpuEvidence",
    "GpuOpaqueField",
    "VerifiedGpuChain",
    "device_id_extension",
    "gpu_claims",
    "parse_nvidia_gpu",
    "parse_nvidia_opaque_data",
    "verify_gpu_chain",
    "verify_nvidia_gpu",
]

NVIDIA_GPU_FORMAT: Final = "nvidia-gpu"
NVIDIA_OPAQUE_TYPES: Final[Mapping[int, str]] = MappingProxyType(
    {
        1: "cert_issuer_name",
        2: "cert_authority_key_identifier",
        3: "driver_version",
        4: "gpu_info",
        5: "sku",
        6: "vbios_version",
        7: "manufacturer_id",
        8: "tamper_detection",
        9: "smc",
        10: "vpr",
        11: "nvdec0_status",
        12: "measurement_counts",
        13: "cprinfo",
        14: "board_id",
        15: "chip_sku",
        16: "chip_sku_mod",
        17: "project",
        18: "project_sku",
        19: "project_sku_mod",
        20: "fwid",
        21: "protected_pcie_status",
        22: "switch_pdi",
        23: "floorswept_ports",
        24: "position_id",
        25: "lock_switch_status",
        32: "gpu_link_conn",
        33: "sys_enable_status",
        34: "opaque_data_version",
        35: "chip_info",
        36: "feature_flag",
        255: "invalid",
    }
)
"""NVIDIA's opaque data type numbers and the claim names Ironroot gives them."""

_TEXT_TYPES: Final = frozenset({3, 15, 16, 17, 18, 19})
_VBIOS: Final = 6
_COUNTS: Final = 12
_FWID: Final = 20
_ALL_BLOCKS: Final = 0xFF  # GET_MEASUREMENTS operation: every measurement block
_VBIOS_SIZE: Final = 8
_SIGNATURE_SIZE: Final = 96  # ECDSA P-384 r ‖ s
_MAX_CHAIN: Final = 8
_SHA384_OID: Final = "2.16.840.1.101.3.4.2.2"
_SHA384_SIZE: Final = 48
_DEVICE_ID_OID: Final = x509.ObjectIdentifier("2.23.133.5.4.1")
# What the chain check processes (RFC 5280 §4.2): the standard extensions and the leaf's RIoT
# device id (check 3); any other critical extension below the pinned root is refused.
_GPU_EXTENSIONS: Final = ExtensionProfile.of("NVIDIA GPU", _DEVICE_ID_OID)
_DEVICE_ID_FIELDS: Final = 3  # version, device key, FWID
_IDENTITY_TYPES: Final = (3, 6, 15, 16, 17, 18, 19)  # driver, VBIOS, chip, project, SKUs

OpaqueValue = str | tuple[int, ...] | bytes


# --- opaque data -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuOpaqueField:
    """One TLV of NVIDIA's opaque data: its type number, claim name (``type_<n>`` for a type
    not in :data:`NVIDIA_OPAQUE_TYPES`), the bytes as sent, and the typed value (text, the
    measurement counts, or the bytes again)."""

    type: int
    name: str
    data: bytes
    value: OpaqueValue

    @property
    def known(self) -> bool:
        return self.type in NVIDIA_OPAQUE_TYPES

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        return {
            "type": self.type,
            "name": self.name,
            "data": self.data.hex(),
            "value": value.hex() if isinstance(value, bytes) else _json_value(value),
        }


def _json_value(value: str | tuple[int, ...]) -> str | list[int]:
    return value if isinstance(value, str) else list(value)


def _text(data: bytes, name: str) -> str:
    text = data.rstrip(b"\x00")
    if not text.isascii() or not (value := text.decode("ascii")).isprintable():
        raise MalformedEvidence(f"NVIDIA opaque field {name} is not NUL-padded ASCII text")
    return value


def _vbios(data: bytes) -> str:
    if len(data) != _VBIOS_SIZE:
        raise MalformedEvidence(f"NVIDIA opaque field vbios_version is {len(data)} bytes, not 8")
    return ".".join(f"{data[i]:02X}" for i in (3, 2, 1, 0, 4))


def _counts(data: bytes) -> tuple[int, ...]:
    if len(data) % 4:
        raise MalformedEvidence("NVIDIA opaque field measurement_counts is not u32 values")
    return tuple(int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4))


def _field(kind: int, data: bytes) -> GpuOpaqueField:
    name = NVIDIA_OPAQUE_TYPES.get(kind, f"type_{kind}")
    value: OpaqueValue
    if kind in _TEXT_TYPES:
        value = _text(data, name)
    elif kind == _VBIOS:
        value = _vbios(data)
    elif kind == _COUNTS:
        value = _counts(data)
    else:
        value = data
    return GpuOpaqueField(kind, name, data, value)


def _check_counts(opaque: Mapping[int, GpuOpaqueField], report: MeasurementReport) -> None:
    """A report of all its blocks (operation 255) lists one measurement count per index
    (type 12) for each block it carries: another number is a report contradicting itself."""
    found = opaque.get(_COUNTS)
    if found is None or report.request.operation != _ALL_BLOCKS:
        return
    counts, blocks = len(found.value), len(report.blocks)
    if counts != blocks:
        raise MalformedEvidence(
            f"NVIDIA opaque field measurement_counts lists {counts} measurement indices, "
            f"the report carries {blocks} blocks"
        )


def parse_nvidia_opaque_data(data: bytes) -> Mapping[int, GpuOpaqueField]:
    """NVIDIA's opaque data as fields by type number, in the order sent; raise
    ``MalformedEvidence`` on a truncated TLV, a duplicate type or a malformed typed value."""
    fields: dict[int, GpuOpaqueField] = {}
    pos, total = 0, len(data)
    while pos < total:
        if pos + 4 > total:
            raise MalformedEvidence(f"NVIDIA opaque data: truncated TLV header at byte {pos}")
        kind = int.from_bytes(data[pos : pos + 2], "little")
        size = int.from_bytes(data[pos + 2 : pos + 4], "little")
        pos += 4
        if pos + size > total:
            raise MalformedEvidence(
                f"NVIDIA opaque data: type {kind} needs {size} bytes, {total - pos} left"
            )
        if kind in fields:
            raise MalformedEvidence(f"NVIDIA opaque data: type {kind} appears twice")
        fields[kind] = _field(kind, data[pos : pos + size])
        pos += size
    return MappingProxyType(fields)


# --- the typed evidence ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuEvidence:
    """What an NVIDIA GPU report says, typed: the nonces, the measurement blocks by index
    (their values: SHA-384 digests), the opaque fields by type number and the ones reference
    values are selected by (``project``, ``sku``, ``chip``, ``vbios_version``,
    ``driver_version``). ``value_types`` groups the block indices by DMTF value type
    (``MUTABLE_FIRMWARE``; `` raw`` appended for raw bit streams). ``signer`` is the leaf
    certificate's subject once verified (empty for evidence only parsed)."""

    spdm_version: str
    nonce: bytes
    responder_nonce: bytes
    measurements: Mapping[int, bytes]
    opaque: Mapping[int, GpuOpaqueField]
    value_types: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    slot_id: int = 0
    signature: bytes = b""
    signer: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "measurements", MappingProxyType(dict(self.measurements)))
        object.__setattr__(self, "opaque", MappingProxyType(dict(self.opaque)))
        object.__setattr__(self, "value_types", MappingProxyType(dict(self.value_types)))

    def text(self, kind: int) -> str | None:
        """The text value of opaque type ``kind`` (``None`` when absent or not text)."""
        found = self.opaque.get(kind)
        return found.value if found is not None and isinstance(found.value, str) else None

    @property
    def driver_version(self) -> str | None:
        return self.text(3)

    @property
    def vbios_version(self) -> str | None:
        """Dotted, upper-case (``96.00.9F.00.01``), as NVIDIA's RIM names spell it."""
        return self.text(_VBIOS)

    @property
    def chip_sku(self) -> str | None:
        return self.text(15)

    @property
    def chip(self) -> str | None:
        """The chip SKU (``882`` for the GH100 in the vectors)."""
        return self.chip_sku

    @property
    def chip_sku_mod(self) -> str | None:
        return self.text(16)

    @property
    def project(self) -> str | None:
        return self.text(17)

    @property
    def project_sku(self) -> str | None:
        return self.text(18)

    @property
    def sku(self) -> str | None:
        """The project SKU (``0200``)."""
        return self.project_sku

    @property
    def project_sku_mod(self) -> str | None:
        return self.text(19)

    @property
    def measurement_counts(self) -> tuple[int, ...]:
        """Opaque type 12: one u32 per measurement index (empty when absent)."""
        found = self.opaque.get(_COUNTS)
        return found.value if found is not None and isinstance(found.value, tuple) else ()

    @property
    def fwid(self) -> bytes | None:
        """Opaque type 20: the firmware's SHA-384 FWID (``None`` when absent)."""
        found = self.opaque.get(_FWID)
        return found.data if found is not None else None

    @property
    def measurement_count(self) -> int:
        return len(self.measurements)

    @property
    def opaque_data(self) -> bytes:
        """The opaque data field as sent (the TLVs again, in their order)."""
        return b"".join(
            f.type.to_bytes(2, "little") + len(f.data).to_bytes(2, "little") + f.data
            for f in self.opaque.values()
        )

    def text_claims(self) -> dict[str, str]:
        """The identity claims: the text fields present, and the measurement count."""
        out = {
            NVIDIA_OPAQUE_TYPES[kind]: value
            for kind in _IDENTITY_TYPES
            if (value := self.text(kind)) is not None
        }
        out["measurement_count"] = str(self.measurement_count)
        return out

    @classmethod
    def from_report(cls, report: MeasurementReport, *, signer: str = "") -> GpuEvidence:
        """The typed view of a decoded report (``MalformedEvidence`` for bad opaque data)."""
        version = report.version
        value_types: dict[str, list[int]] = {}
        for block in report.blocks:
            name = block.type_name if block.known else f"UNKNOWN_{block.type_number}"
            value_types.setdefault(f"{name} raw" if block.raw else name, []).append(block.index)
        opaque = parse_nvidia_opaque_data(report.opaque_data)
        _check_counts(opaque, report)
        return cls(
            spdm_version=f"{version >> 4}.{version & 0xF}",
            nonce=report.nonce,
            responder_nonce=report.responder_nonce,
            measurements={block.index: block.value for block in report.blocks},
            opaque=opaque,
            value_types={name: tuple(indices) for name, indices in value_types.items()},
            slot_id=report.request.slot_id,
            signature=report.signature,
            signer=signer,
        )

    @classmethod
    def from_claims(cls, claims: EvidenceClaims) -> GpuEvidence:
        """The typed view of VERIFIED ``nvidia-gpu`` claims (as ``verify_evidence`` returns
        them); ``MalformedEvidence`` for claims of another format."""
        if claims.format != NVIDIA_GPU_FORMAT:
            raise MalformedEvidence(f"{claims.format} claims are not NVIDIA GPU evidence")
        raw = claims.raw
        try:
            return cls(
                spdm_version=str(raw["spdm_version"]),
                nonce=claims.report_data,
                responder_nonce=bytes.fromhex(raw["responder_nonce"]),
                measurements={
                    int(name.removeprefix("spdm.")): value
                    for name, value in claims.measurements.items()
                },
                opaque=parse_nvidia_opaque_data(bytes.fromhex(raw["opaque_data"])),
                value_types={
                    str(name): tuple(int(i) for i in indices)
                    for name, indices in raw["value_types"].items()
                },
                slot_id=int(raw["slot_id"]),
                signature=bytes.fromhex(raw["signature"]),
                signer=claims.signer,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedEvidence("the claims do not hold a whole NVIDIA GPU report") from exc


# --- the certificate chain ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedGpuChain:
    """A GPU certificate chain that verified to its root: the leaf key, its subject, the FWID
    its CompositeDeviceID carries (``None`` without one), the root's SHA-256 and name, and
    every certificate's name and validity (checked again at each use)."""

    leaf_key: PublicKey
    subject: str
    fwid: bytes | None
    root_sha256: str
    root_name: str
    validity: tuple[tuple[str, datetime, datetime], ...]
    path: tuple[x509.Certificate, ...] = field(default=(), compare=False, repr=False)
    """The certificates, leaf first, the root last (what revocation is checked on)."""

    def check_validity(self, now: datetime) -> None:
        at = aware(now)
        for name, not_before, not_after in self.validity:
            if at < not_before:
                raise CertificateExpired(
                    f"certificate {name!r} is not valid before {not_before.isoformat()}"
                )
            if at > not_after:
                raise CertificateExpired(f"certificate {name!r} expired at {not_after.isoformat()}")


class GpuChainCache:
    """What a verifier seeing the same GPUs again need not redo.

    * Chains that verified, by the certificate bytes given (and the root, when not the
      built-in one): the leaf key, its subject and FWID (validity periods are still checked
      on every use).
    * With ``remember_reports`` (the default): the decoded body of reports that verified —
      everything but the two nonces and the signature, by those bytes exactly. A GPU repeats
      its measurement record and opaque data until its firmware changes, so a later report
      is checked by its signature (always, over all its bytes, first) and its nonce.

    Bounded: each map starts over when full.
    """

    __slots__ = ("_bodies", "_entries", "_max", "remember_reports")

    def __init__(self, max_entries: int = 1024, *, remember_reports: bool = True) -> None:
        self._entries: dict[tuple[bytes, ...], VerifiedGpuChain] = {}
        self._bodies: dict[bytes, _Body] = {}
        self._max = max_entries
        self.remember_reports = remember_reports

    def get(self, key: tuple[bytes, ...]) -> VerifiedGpuChain | None:
        return self._entries.get(key)

    def put(self, key: tuple[bytes, ...], chain: VerifiedGpuChain) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = chain

    def body(self, key: bytes) -> _Body | None:
        return self._bodies.get(key) if self.remember_reports else None

    def put_body(self, key: bytes, body: _Body) -> None:
        if not self.remember_reports:
            return
        if len(self._bodies) >= self._max:
            self._bodies.clear()
        self._bodies[key] = body

    def __len__(self) -> int:
        return len(self._entries)


def _name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = names[0].value if names else cert.subject.rfc4514_string()
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _check_path_length(issuer: x509.Certificate, below: int) -> None:
    """``issuer`` (a CA: :func:`verify_issued_by` checked it) allows ``below`` CA
    certificates under it."""
    constraints = optional_extension(issuer.extensions, x509.BasicConstraints)
    limit = constraints.path_length if constraints is not None else None
    if limit is not None and below > limit:
        raise ChainNotTrusted(f"{_name(issuer)!r} path length {limit} exceeded")


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)  # DER: the shortest length form
    width = (size.bit_length() + 7) // 8
    length = bytes([size]) if size < 0x80 else bytes([0x80 | width]) + size.to_bytes(width, "big")
    return bytes([tag]) + length + content


def device_id_extension(
    public_key: ec.EllipticCurvePublicKey, fwid: bytes
) -> x509.UnrecognizedExtension:
    """The RIoT CompositeDeviceID extension (2.23.133.5.4.1) a GPU leaf certificate carries:
    version 1, the leaf's key, the SHA-384 ``fwid`` of the firmware holding it (for test and
    demo GPUs; check 3 of the module documentation reads it)."""
    if len(fwid) != _SHA384_SIZE:
        raise MalformedInput("an FWID is a SHA-384 digest")
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sha384 = _der(0x06, bytes.fromhex("608648016503040202"))  # 2.16.840.1.101.3.4.2.2
    value = _der(0x30, _der(0x02, b"\x01") + spki + _der(0x30, sha384 + _der(0x04, fwid)))
    return x509.UnrecognizedExtension(_DEVICE_ID_OID, value)


def _leaf_fwid(leaf: x509.Certificate) -> bytes | None:
    try:
        ext = leaf.extensions.get_extension_for_oid(_DEVICE_ID_OID).value
    except x509.ExtensionNotFound:
        return None
    if not isinstance(ext, x509.UnrecognizedExtension):
        raise EndorsementMismatch("the GPU certificate's 2.23.133.5.4.1 extension is not DER")
    try:
        value, rest = der_decoder.decode(ext.value)
        version, _device_key, fwid = (value[i] for i in range(3))
        alg, digest = fwid[0], fwid[1]
        ok = (
            not rest
            and isinstance(value, univ.Sequence)
            and len(value) == _DEVICE_ID_FIELDS
            and isinstance(version, univ.Integer)
            and isinstance(alg, univ.ObjectIdentifier)
            and isinstance(digest, univ.OctetString)
        )
    except ASN1_DECODE_ERRORS as exc:  # an over-long DER length is an OverflowError
        raise EndorsementMismatch("the GPU certificate's CompositeDeviceID does not parse") from exc
    if not ok:
        raise EndorsementMismatch("the GPU certificate's CompositeDeviceID does not parse")
    if str(alg) != _SHA384_OID or len(bytes(digest)) != _SHA384_SIZE:
        raise EndorsementMismatch("the GPU certificate's FWID is not a SHA-384 digest")
    return bytes(digest)


def verify_gpu_chain(
    certificates: Sequence[x509.Certificate],
    *,
    now: datetime,
    root: x509.Certificate | None = None,
) -> VerifiedGpuChain:
    """Verify a GPU chain, leaf first, to ``root`` (default: the built-in NVIDIA Device
    Identity CA); raise ``ChainNotTrusted`` or ``CertificateExpired``."""
    anchor = builtin_nvidia_root() if root is None else root
    certs = list(certificates)
    if not certs:
        raise ChainNotTrusted("NVIDIA GPU evidence needs the GPU's certificate chain (--cert)")
    if len(certs) > _MAX_CHAIN:
        raise ChainNotTrusted(f"a GPU certificate chain has at most {_MAX_CHAIN} certificates")
    anchor_print = fingerprint(anchor)
    if certs[-1].subject == certs[-1].issuer:
        top = certs.pop()
        if fingerprint(top) != anchor_print:
            raise ChainNotTrusted(f"the GPU chain ends at {_name(top)!r}, not {_name(anchor)!r}")
        if not certs:
            raise ChainNotTrusted("the GPU chain holds only the root")
    path = [*certs, anchor]
    for depth, (cert, issuer) in enumerate(itertools.pairwise(path)):
        verify_issued_by(cert, issuer, profile=_GPU_EXTENSIONS)
        _check_path_length(issuer, below=depth)
    check_validity(path, now)
    leaf = certs[0]
    usage = optional_extension(leaf.extensions, x509.KeyUsage)
    if usage is not None and not usage.digital_signature:
        raise ChainNotTrusted(f"{_name(leaf)!r} key may not sign")
    leaf_key = leaf.public_key()
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
        raise ChainNotTrusted(f"{_name(leaf)!r} key is not ECDSA P-384")
    try:
        key = PublicKey(leaf_key, Algorithm.ES384)
    except UnsupportedAlgorithm as exc:
        raise ChainNotTrusted(f"{_name(leaf)!r} key is not ECDSA P-384") from exc
    return VerifiedGpuChain(
        leaf_key=key,
        subject=subject_text(leaf),
        fwid=_leaf_fwid(leaf),
        root_sha256=anchor_print.hex(),
        root_name=_name(anchor) + (" (pinned)" if root is None else " (given)"),
        validity=tuple((_name(c), c.not_valid_before_utc, c.not_valid_after_utc) for c in path),
        path=tuple(path),
    )


def _chain(
    certificates: Sequence[bytes],
    now: datetime,
    cache: GpuChainCache | None,
    root: x509.Certificate | None,
) -> VerifiedGpuChain:
    key = (b"" if root is None else fingerprint(root), *certificates)
    found = cache.get(key) if cache is not None else None
    if found is None:
        certs = [
            cert
            for data in certificates
            for cert in load_certificates(data, what="GPU certificate chain")
        ]
        found = verify_gpu_chain(certs, now=now, root=root)
        if cache is not None:
            cache.put(key, found)
    else:
        found.check_validity(now)
    return found


# --- verification and claims ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Body:
    """What a report says apart from its two nonces and its signature, in claim form; only
    immutable values, since a cache shares it between claims (their mutable containers are
    made afresh for each)."""

    measurements: Mapping[str, bytes]
    identity: Mapping[str, str]
    scalars: Mapping[str, str | int]
    value_types: tuple[tuple[str, tuple[int, ...]], ...]
    opaque: tuple[GpuOpaqueField, ...]
    fwid: bytes | None
    detail: str


def _body(evidence: GpuEvidence) -> _Body:
    return _Body(
        measurements=MappingProxyType(
            {f"spdm.{index}": value for index, value in evidence.measurements.items()}
        ),
        identity=MappingProxyType(evidence.text_claims()),
        scalars=MappingProxyType(
            {
                "spdm_version": evidence.spdm_version,
                "slot_id": evidence.slot_id,
                "measurement_count": evidence.measurement_count,
                "opaque_data": evidence.opaque_data.hex(),
            }
        ),
        value_types=tuple(evidence.value_types.items()),
        opaque=tuple(evidence.opaque.values()),
        fwid=evidence.fwid,
        detail=(
            f"SPDM {evidence.spdm_version} signature over GET_MEASUREMENTS ‖ MEASUREMENTS, "
            f"{evidence.measurement_count} blocks, {len(evidence.opaque)} opaque fields"
        ),
    )


def _claims(
    body: _Body,
    nonce: bytes,
    responder_nonce: bytes,
    signature: bytes,
    signer: str,
    root: str,
    stale: Sequence[StaleCollateral] = (),
    valid_until: datetime | None = None,
) -> EvidenceClaims:
    raw = JsonReady(body.scalars)
    raw["value_types"] = {name: list(indices) for name, indices in body.value_types}
    raw["opaque"] = [f.to_dict() for f in body.opaque]
    raw["responder_nonce"] = responder_nonce.hex()
    raw["signature"] = signature.hex()
    if stale:
        raw["stale_collateral"] = [item.to_dict() for item in stale]
    return EvidenceClaims(
        format=NVIDIA_GPU_FORMAT,
        measurements=body.measurements,
        report_data=nonce,
        debug=True,  # not proven off: a GPU report carries no debug or CC-mode state
        svns={},
        identity={**body.identity, "subject": signer, "root": root},
        signer=signer,
        raw=raw,
        valid_until=valid_until,
    )


def gpu_claims(evidence: GpuEvidence, *, root: str) -> EvidenceClaims:
    """The claims of verified GPU evidence (``root``: SHA-256 of the trusted root, hex)."""
    body = _body(evidence)
    return _claims(
        body,
        evidence.nonce,
        evidence.responder_nonce,
        evidence.signature,
        evidence.signer,
        root,
    )


def _body_key(data: bytes, signature_size: int) -> tuple[bytes, int] | None:
    """The report without its request nonce, responder nonce and signature, and where the
    responder nonce is: located from the bytes outside those windows alone, so one key
    always means one body. ``None`` when the layout cannot be located (then no caching)."""
    if len(data) < 8 or data[0] not in (0x10, 0x11) or not data[2] & 0x01:
        return None
    request = 36 if data[0] == 0x10 else 37
    end = len(data) - signature_size
    if request + 8 > end:
        return None
    responder_nonce = request + 8 + int.from_bytes(data[request + 5 : request + 8], "little")
    if responder_nonce + 32 > end:
        return None
    key = b"".join((data[:4], data[36:responder_nonce], data[responder_nonce + 32 : end]))
    return key, responder_nonce


def _check_fwid(reported: bytes | None, chain: VerifiedGpuChain, log: CheckLog) -> None:
    with log.step("fwid", "the report's FWID is the one the GPU certificate carries"):
        if reported is None:
            raise EndorsementMismatch(
                "the report's opaque data carries no FWID: the firmware that signed it is not named"
            )
        if chain.fwid is None:
            raise EndorsementMismatch(
                "the GPU certificate carries no FWID: the firmware holding its key is not named"
            )
        if not hmac.compare_digest(reported, chain.fwid):
            raise EndorsementMismatch(
                "the report's FWID is not the one in the GPU certificate "
                f"({reported.hex()[:16]}… ≠ {chain.fwid.hex()[:16]}…)"
            )


_DEBUG_NOT_PROVEN: Final = (
    "a GPU report carries no debug or CC-mode state: debug is not proven off (a composite "
    "takes it as off only when every active block equals NVIDIA's golden measurements)"
)


def verify_nvidia_gpu(
    data: bytes,
    certificates: Sequence[bytes],
    *,
    now: datetime,
    cache: GpuChainCache | None = None,
    checks: CheckLog | None = None,
    root: x509.Certificate | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
    allow_stale_collateral: bool = False,
) -> EvidenceClaims:
    """Verify an NVIDIA GPU report (binary) with its chain (PEM or DER, leaf first; several
    inputs are taken in order) as the module documentation says, WITHOUT the nonce check
    (the format table does it). ``root`` replaces the built-in NVIDIA Device Identity CA
    (tests, NVIDIA's test devices); ``crls`` are checked against the chain (``revocation``).
    Raises ``ChainNotTrusted``, ``CertificateExpired``, ``BadSignature``, ``MalformedSpdm``,
    ``SpdmProtocolError``, ``MalformedEvidence``, ``EndorsementMismatch``,
    ``CertificateRevoked`` or ``CollateralExpired``."""
    log = CheckLog() if checks is None else checks
    with log.step("chain") as step:
        chain = _chain(certificates, now, cache, root)
        step.detail = f"{chain.subject} → {chain.root_name}"
    with log.step("report") as step:
        size = check_report_signature(data, chain.leaf_key)  # before any field is read
        located = _body_key(data, size) if cache is not None else None
        body = cache.body(located[0]) if cache is not None and located is not None else None
        if body is None:
            report = MeasurementReport.decode(
                data, signature_size=size, measurement_hash_algo=MeasurementHashAlgo.SHA_384
            )
            evidence = GpuEvidence.from_report(report, signer=chain.subject)
            body = _body(evidence)
            nonce, responder_nonce = evidence.nonce, evidence.responder_nonce
            if (
                cache is not None
                and located is not None
                and data[4:36] == nonce
                and data[located[1] : located[1] + 32] == responder_nonce
            ):
                cache.put_body(located[0], body)
        else:
            assert located is not None
            nonce, responder_nonce = data[4:36], data[located[1] : located[1] + 32]
        step.detail = body.detail
    _check_fwid(body.fwid, chain, log)
    stale: tuple[StaleCollateral, ...] = ()
    until = [not_after for _, _, not_after in chain.validity]
    if not crls:
        log.skip("revocation", "no CRL given (NVIDIA's OCSP service is not consulted offline)")
    elif not chain_has_crl(chain.path, crls):
        log.skip("revocation", f"none of the {len(crls)} CRL(s) given is of this chain's CAs")
    else:
        with log.step("revocation") as step:
            result = check_chain_revocation(
                chain.path, crls, now=now, allow_stale=allow_stale_collateral
            )
            assert result is not None  # a CRL of the chain's CAs was given
            step.detail = result.detail
            stale = result.stale
            if result.valid_until is not None:
                until.append(result.valid_until)
    log.skip("debug-mode", _DEBUG_NOT_PROVEN)
    return _claims(
        body, nonce, responder_nonce, data[-size:], chain.subject, chain.root_sha256, stale,
        valid_until=min(until, default=None),
    )  # fmt: skip


def parse_nvidia_gpu(data: bytes) -> dict[str, Any]:
    """The structure of an NVIDIA GPU report, JSON-ready, NOT verified."""
    report = MeasurementReport.decode(
        data, signature_size=_SIGNATURE_SIZE, measurement_hash_algo=MeasurementHashAlgo.SHA_384
    )
    evidence = GpuEvidence.from_report(report)
    body = _body(evidence)
    claims = _claims(body, evidence.nonce, evidence.responder_nonce, evidence.signature, "", "")
    return {
        "nonce": evidence.nonce.hex(),
        "identity": dict(body.identity),
        "measurements": {name: value.hex() for name, value in body.measurements.items()},
        **claims.raw,
    }
