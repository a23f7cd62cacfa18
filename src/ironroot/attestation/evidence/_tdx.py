"""Intel TDX quotes (DCAP quote format version 4, and version 5), parsed field by field.

Layout (Intel TDX DCAP Quote Generation Library and Quote Verification Library API, "Quote
Format"; all integers little-endian):

Header, 48 bytes: version (2: 4 or 5), attestation key type (2: 2 = ECDSA-256-with-P-256),
TEE type (4: 0x81 = TDX), two reserved 2-byte fields, QE vendor id (16: Intel's QE,
939a7233-f79c-4ca9-940a-0db3957f0607, is the only one Intel's QVL accepts, and so here), user
data (20).

Version 5 then has a body descriptor: body type (2: 2 = TDX 1.0 report, 3 = TDX 1.5 report)
and body size (4). Version 4 has no descriptor and always the TDX 1.0 body.

TD report body, 584 bytes (TDX 1.0): TEE_TCB_SVN (16), MRSEAM (48), MRSIGNERSEAM (48),
SEAMATTRIBUTES (8), TDATTRIBUTES (8), XFAM (8), MRTD (48), MRCONFIGID (48), MROWNER (48),
MROWNERCONFIG (48), RTMR0–RTMR3 (4 × 48), REPORTDATA (64). TDX 1.5 appends TEE_TCB_SVN2 (16)
and MRSERVICETD (48): 648 bytes.

Quote signature data: its length (4), then the ECDSA P-256 signature r‖s (64) over
header [‖ descriptor] ‖ body, the attestation public key x‖y (64), and certification data:
type (2), size (4), data. Type 6 is QE report certification data: the QE's SGX report body
(384), its ECDSA P-256 signature by the PCK key (64), QE authentication data (2-byte size, data)
and nested certification data (type 5 = PCK certificate chain as concatenated PEM).

SGX report body, 384 bytes: CPUSVN (16), MISCSELECT (4), reserved (28), ATTRIBUTES (16),
MRENCLAVE (32), reserved (32), MRSIGNER (32), reserved (96), ISVPRODID (2), ISVSVN (2),
reserved (60), REPORTDATA (64).

TDATTRIBUTES bits: 7:0 the TUD ("TD under debug") group: 0 DEBUG, 4–6 HGS+/perf/PMT
profiling; 28 SEPT_VE_DISABLE, 29 MIGRATABLE, 30 PKS, 31 KL, 63 PERFMON. A TD with any TUD
bit set is untrusted (the TDX module ABI), so ``under_debug`` (any of bits 7:0), not the DEBUG
bit alone, is what the evidence's ``debug`` claim says.

The quote is self-delimiting: guests hand it over in a fixed-size buffer (a CCEL table, the
configfs-tsm outblob) followed by padding or other bytes, so what follows the quote's own
lengths is counted (``trailing_bytes``) and kept out of everything parsed. No Python
library parses this format, hence this module; it is pure and raises ``MalformedEvidence``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

from ironroot.errors import MalformedEvidence

__all__ = [
    "INTEL_QE_VENDOR_ID",
    "TDX_MAX_QUOTE_SIZE",
    "SgxReportBody",
    "TdAttributes",
    "TdxQuote",
    "TdxQuoteHeader",
    "TdxReportBody",
    "parse_tdx_quote",
    "split_tdx_quote",
]

TDX_MAX_QUOTE_SIZE: Final = 64 * 1024
TDX_MAX_BUFFER_SIZE: Final = 1024 * 1024  # the quote and whatever follows it
_HEADER: Final = struct.Struct("<HHIHH16s20s")
_BODY_10: Final = 584
_BODY_15: Final = 648
_SGX_REPORT: Final = 384
_SIG: Final = 64
_KEY: Final = 64
_CERT_HEAD: Final = struct.Struct("<HI")
_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_ATT_KEY_ECDSA_P256: Final = 2
_TEE_TDX: Final = 0x81
INTEL_QE_VENDOR_ID: Final = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_CERT_QE_REPORT: Final = 6
_CERT_PCK_CHAIN: Final = 5
_BODY_TYPES: Final = {2: _BODY_10, 3: _BODY_15}
_MR: Final = 48
_TUD: Final = 0xFF  # TDATTRIBUTES bits 7:0, "TD under debug"


def _bit(value: int, bit: int) -> bool:
    return bool((value >> bit) & 1)


@dataclass(frozen=True, slots=True)
class TdxQuoteHeader:
    """The 48-byte quote header."""

    version: int
    attestation_key_type: int
    tee_type: int
    reserved1: int
    reserved2: int
    qe_vendor_id: bytes
    user_data: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "attestation_key_type": self.attestation_key_type,
            "tee_type": self.tee_type,
            "reserved1": self.reserved1,
            "reserved2": self.reserved2,
            "qe_vendor_id": self.qe_vendor_id.hex(),
            "user_data": self.user_data.hex(),
        }


@dataclass(frozen=True, slots=True)
class TdAttributes:
    """Decoded TDATTRIBUTES (``debug``: bit 0; ``under_debug``: any of the TUD bits 7:0;
    ``migratable``: bit 29, a TD a migration TD may export)."""

    raw: int
    debug: bool
    under_debug: bool
    sept_ve_disable: bool
    pks: bool
    kl: bool
    perfmon: bool
    migratable: bool = False

    @classmethod
    def decode(cls, raw: int) -> TdAttributes:
        return cls(
            raw=raw,
            debug=_bit(raw, 0),
            under_debug=bool(raw & _TUD),
            sept_ve_disable=_bit(raw, 28),
            pks=_bit(raw, 30),
            migratable=_bit(raw, 29),
            kl=_bit(raw, 31),
            perfmon=_bit(raw, 63),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "raw": f"{self.raw:016x}",
            "debug": self.debug,
            "under_debug": self.under_debug,
            "sept_ve_disable": self.sept_ve_disable,
            "migratable": self.migratable,
            "pks": self.pks,
            "kl": self.kl,
            "perfmon": self.perfmon,
        }


@dataclass(frozen=True, slots=True)
class TdxReportBody:
    """The TD quote body (TDX 1.0; ``tee_tcb_svn2``/``mrservicetd`` set for TDX 1.5)."""

    tee_tcb_svn: bytes
    mrseam: bytes
    mrsignerseam: bytes
    seam_attributes: bytes
    td_attributes: TdAttributes
    xfam: bytes
    mrtd: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None
    mrservicetd: bytes | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tee_tcb_svn": self.tee_tcb_svn.hex(),
            "mrseam": self.mrseam.hex(),
            "mrsignerseam": self.mrsignerseam.hex(),
            "seam_attributes": self.seam_attributes.hex(),
            "td_attributes": self.td_attributes.to_dict(),
            "xfam": self.xfam.hex(),
            "mrtd": self.mrtd.hex(),
            "mrconfigid": self.mrconfigid.hex(),
            "mrowner": self.mrowner.hex(),
            "mrownerconfig": self.mrownerconfig.hex(),
            "rtmr0": self.rtmrs[0].hex(),
            "rtmr1": self.rtmrs[1].hex(),
            "rtmr2": self.rtmrs[2].hex(),
            "rtmr3": self.rtmrs[3].hex(),
            "report_data": self.report_data.hex(),
        }
        if self.tee_tcb_svn2 is not None and self.mrservicetd is not None:
            out["tee_tcb_svn2"] = self.tee_tcb_svn2.hex()
            out["mrservicetd"] = self.mrservicetd.hex()
        return out


@dataclass(frozen=True, slots=True)
class SgxReportBody:
    """The QE's SGX report body (``raw`` keeps the 384 signed bytes)."""

    raw: bytes
    cpu_svn: bytes
    misc_select: int
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_svn": self.cpu_svn.hex(),
            "misc_select": self.misc_select,
            "attributes": self.attributes.hex(),
            "mr_enclave": self.mr_enclave.hex(),
            "mr_signer": self.mr_signer.hex(),
            "isv_prod_id": self.isv_prod_id,
            "isv_svn": self.isv_svn,
            "report_data": self.report_data.hex(),
        }


@dataclass(frozen=True, slots=True)
class TdxQuote:
    """One parsed quote. ``signed_bytes`` is what the attestation key signed."""

    data: bytes
    header: TdxQuoteHeader
    body_type: int | None
    body: TdxReportBody
    signed_bytes: bytes
    signature: bytes
    attestation_key: bytes
    qe_report: SgxReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes
    trailing_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "trailing_bytes": self.trailing_bytes,
            "header": self.header.to_dict(),
            "body_type": self.body_type,
            "body": self.body.to_dict(),
            "signature": self.signature.hex(),
            "attestation_key": self.attestation_key.hex(),
            "qe_report": self.qe_report.to_dict(),
            "qe_report_signature": self.qe_report_signature.hex(),
            "qe_auth_data": self.qe_auth_data.hex(),
        }


class _Reader:
    """Bounds-checked sequential reads; running past the end is ``MalformedEvidence``."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, size: int, what: str) -> bytes:
        end = self.pos + size
        if size < 0 or end > len(self.data):
            raise MalformedEvidence(f"TDX quote truncated in {what}")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def u16(self, what: str) -> int:
        return int(_U16.unpack(self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(_U32.unpack(self.take(4, what))[0])


def _parse_body(raw: bytes) -> TdxReportBody:
    r = _Reader(raw)
    tee_tcb_svn = r.take(16, "TEE_TCB_SVN")
    mrseam = r.take(_MR, "MRSEAM")
    mrsignerseam = r.take(_MR, "MRSIGNERSEAM")
    seam_attributes = r.take(8, "SEAMATTRIBUTES")
    td_attributes = TdAttributes.decode(int.from_bytes(r.take(8, "TDATTRIBUTES"), "little"))
    xfam = r.take(8, "XFAM")
    mrtd = r.take(_MR, "MRTD")
    mrconfigid = r.take(_MR, "MRCONFIGID")
    mrowner = r.take(_MR, "MROWNER")
    mrownerconfig = r.take(_MR, "MROWNERCONFIG")
    rtmrs = (r.take(_MR, "RTMR0"), r.take(_MR, "RTMR1"), r.take(_MR, "RTMR2"), r.take(_MR, "RTMR3"))
    report_data = r.take(64, "REPORTDATA")
    tee_tcb_svn2 = mrservicetd = None
    if len(raw) == _BODY_15:
        tee_tcb_svn2 = r.take(16, "TEE_TCB_SVN2")
        mrservicetd = r.take(_MR, "MRSERVICETD")
    return TdxReportBody(
        tee_tcb_svn=tee_tcb_svn,
        mrseam=mrseam,
        mrsignerseam=mrsignerseam,
        seam_attributes=seam_attributes,
        td_attributes=td_attributes,
        xfam=xfam,
        mrtd=mrtd,
        mrconfigid=mrconfigid,
        mrowner=mrowner,
        mrownerconfig=mrownerconfig,
        rtmrs=rtmrs,
        report_data=report_data,
        tee_tcb_svn2=tee_tcb_svn2,
        mrservicetd=mrservicetd,
    )


def _parse_sgx_report(raw: bytes) -> SgxReportBody:
    return SgxReportBody(
        raw=raw,
        cpu_svn=raw[0:16],
        misc_select=int.from_bytes(raw[16:20], "little"),
        attributes=raw[48:64],
        mr_enclave=raw[64:96],
        mr_signer=raw[128:160],
        isv_prod_id=int.from_bytes(raw[256:258], "little"),
        isv_svn=int.from_bytes(raw[258:260], "little"),
        report_data=raw[320:384],
    )


def _parse(data: bytes) -> TdxQuote:
    """Parse the structure (sizes, types, lengths); header values are checked by the caller.

    The quote is self-delimited (its own lengths say where it ends): whatever follows it (the
    padding of a fixed-size buffer such as a CCEL table, or other bytes) is counted in
    ``trailing_bytes`` and never read.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedEvidence("a TDX quote must be bytes")
    data = bytes(data)
    if len(data) > TDX_MAX_BUFFER_SIZE:
        raise MalformedEvidence(f"a TDX quote buffer is at most {TDX_MAX_BUFFER_SIZE} bytes")
    r = _Reader(data)
    header = TdxQuoteHeader(*_HEADER.unpack(r.take(_HEADER.size, "header")))
    body_type: int | None = None
    if header.version == 4:
        body_size = _BODY_10
    elif header.version == 5:
        body_type = r.u16("body type")
        body_size = r.u32("body size")
        if _BODY_TYPES.get(body_type) != body_size:
            raise MalformedEvidence(
                f"TDX v5 body type {body_type} of {body_size} bytes is not a TD report "
                "(2: TDX 1.0, 584 bytes; 3: TDX 1.5, 648 bytes)"
            )
    else:
        raise MalformedEvidence(f"unsupported TDX quote version {header.version}")
    body_raw = r.take(body_size, "TD report body")
    signed_bytes = data[: r.pos]
    sig_len = r.u32("signature data length")
    sig_end = r.pos + sig_len
    if sig_end > len(data):
        raise MalformedEvidence("TDX quote signature data runs past the end")
    if sig_end > TDX_MAX_QUOTE_SIZE:
        raise MalformedEvidence(f"TDX quote over {TDX_MAX_QUOTE_SIZE} bytes")
    signature = r.take(_SIG, "quote signature")
    attestation_key = r.take(_KEY, "attestation key")
    cert_type, cert_size = _CERT_HEAD.unpack(r.take(_CERT_HEAD.size, "certification data"))
    if cert_type != _CERT_QE_REPORT:
        raise MalformedEvidence(
            f"TDX certification data type {cert_type} is not QE report certification data (6)"
        )
    if r.pos + cert_size != sig_end:
        raise MalformedEvidence("TDX certification data size disagrees with the signature data")
    qe_report_raw = r.take(_SGX_REPORT, "QE report")
    qe_report_signature = r.take(_SIG, "QE report signature")
    auth_size = r.u16("QE auth data size")
    qe_auth_data = r.take(auth_size, "QE auth data")
    inner_type, inner_size = _CERT_HEAD.unpack(r.take(_CERT_HEAD.size, "PCK certification data"))
    if inner_type != _CERT_PCK_CHAIN:
        raise MalformedEvidence(
            f"TDX QE certification data type {inner_type} is not a PCK certificate chain (5)"
        )
    if r.pos + inner_size != sig_end:
        raise MalformedEvidence("TDX PCK certification data size disagrees with its container")
    pck_chain_pem = r.take(inner_size, "PCK certificate chain")
    return TdxQuote(
        data=data[:sig_end],
        header=header,
        body_type=body_type,
        body=_parse_body(body_raw),
        signed_bytes=signed_bytes,
        signature=signature,
        attestation_key=attestation_key,
        qe_report=_parse_sgx_report(qe_report_raw),
        qe_report_signature=qe_report_signature,
        qe_auth_data=qe_auth_data,
        pck_chain_pem=pck_chain_pem,
        trailing_bytes=len(data) - sig_end,
    )


def _check_header(header: TdxQuoteHeader) -> None:
    if header.attestation_key_type != _ATT_KEY_ECDSA_P256:
        raise MalformedEvidence(
            f"TDX attestation key type {header.attestation_key_type} is not ECDSA-256-with-P-256"
        )
    if header.tee_type != _TEE_TDX:
        raise MalformedEvidence(f"TEE type {header.tee_type:#x} is not TDX (0x81)")
    if header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise MalformedEvidence(
            f"QE vendor {header.qe_vendor_id.hex()} is not Intel's "
            f"({INTEL_QE_VENDOR_ID.hex()}): the quote was not made by Intel's QE"
        )


def parse_tdx_quote(data: bytes) -> TdxQuote:
    """Parse a TDX quote (version 4 or 5; no signature check: see the verifier).

    Raises ``MalformedEvidence`` for a truncated or inconsistent structure, an unsupported
    version, key type, TEE type or certification data type, or a QE vendor other than Intel's.
    Bytes after the quote are counted (``trailing_bytes``), not refused.
    """
    quote = _parse(data)
    _check_header(quote.header)
    return quote


def split_tdx_quote(data: bytes) -> tuple[bytes, bytes]:
    """Split a buffer into the self-delimited quote at its start and whatever follows it."""
    quote = _parse(data)
    return quote.data, bytes(data[len(quote.data) :])
