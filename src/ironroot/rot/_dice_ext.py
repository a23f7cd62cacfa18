"""DER decode and encode of the TCG DICE extension values (pyasn1 with a strict DER check, see
:mod:`ironroot.rot._asn1`), and the ``x509`` extensions built from them."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from typing import Final, Literal

from cryptography import x509
from pyasn1.error import PyAsn1Error
from pyasn1.type import base, univ

from ironroot.errors import (
    IronrootError,
    LimitExceeded,
    MalformedCertificate,
)
from ironroot.rot import _asn1
from ironroot.rot._dice_values import (
    KEY_PURPOSE_OIDS,
    MULTI_TCB_INFO_OID,
    TCB_INFO_OID,
    UEID_OID,
    Fwid,
    IntegrityRegister,
    OpenDiceInput,
    OperationalFlags,
    RiotCompositeDeviceId,
    SvnEncoding,
    TcbInfo,
    short_error,
)

__all__ = [
    "build_key_purpose_extension",
    "build_multi_tcb_info_extension",
    "build_tcb_info_extension",
    "build_ueid_extension",
    "encode_multi_tcb_info",
    "encode_tcb_info",
    "encode_ueid",
    "parse_multi_tcb_info",
    "parse_open_dice_input",
    "parse_riot_extension",
    "parse_tcb_info",
    "parse_ueid",
]


# --- DICE extension values: decode ----------------------------------------------------------


@contextmanager
def _decoding(what: str) -> Iterator[None]:
    """Decoded pyasn1 values are read lazily too: whatever reading them raises (an
    ``IndexError`` or ``OverflowError`` from a hostile length, a ``ValueError`` from a negative
    one) becomes ``MalformedCertificate``; Ironroot's own errors pass unchanged."""
    try:
        yield
    except IronrootError:
        raise
    except _asn1.DECODE_ERRORS as exc:
        raise MalformedCertificate(f"{what} does not decode: {short_error(exc)}") from exc


def _bytes(der: object) -> bytes:
    if not isinstance(der, bytes | bytearray | memoryview):
        raise MalformedCertificate("a DICE extension value must be bytes")
    return bytes(der)


def _opt_int(value: univ.Integer) -> int | None:
    return int(value) if value.isValue else None


def _opt_bytes(value: univ.OctetString) -> bytes | None:
    return bytes(value) if value.isValue else None


def _opt_str(value: univ.OctetString) -> str | None:
    if not value.isValue:
        return None
    try:
        return str(value)
    except (UnicodeDecodeError, PyAsn1Error) as exc:
        raise MalformedCertificate("DICE string field is not valid text") from exc


def _count(items: Sized, what: str) -> None:
    if len(items) > _asn1.MAX_LIST_ITEMS:
        raise LimitExceeded(f"{what} has {len(items)} entries, over {_asn1.MAX_LIST_ITEMS}")
    if len(items) == 0:
        raise MalformedCertificate(f"{what} is empty (SIZE (1..MAX))")


def _fwids(value: _asn1.FwidList) -> tuple[Fwid, ...]:
    _count(value, "FWIDLIST")
    return tuple(Fwid(str(f["hashAlg"]), bytes(f["digest"])) for f in value)


def _flags(value: univ.BitString) -> OperationalFlags | None:
    if not value.isValue:
        return None
    bits = tuple(value)
    return OperationalFlags(frozenset(i for i, b in enumerate(bits) if b), len(bits))


def _svn_encoding(raw: int | None, svn_encoding: SvnEncoding) -> Literal["caliptra", "plain"]:
    in_range = raw is not None and 0x100 <= raw <= 0x1FF
    if svn_encoding == "caliptra":
        if raw is not None and not in_range:
            raise MalformedCertificate(f"SVN {raw:#x} is not a Caliptra 0x100|svn value")
        return "caliptra"
    if svn_encoding == "auto" and in_range:
        return "caliptra"
    return "plain"


def _tcb_info(value: _asn1.DiceTcbInfo, svn_encoding: SvnEncoding) -> TcbInfo:
    svn_raw = _opt_int(value["svn"])
    registers: tuple[IntegrityRegister, ...] = ()
    if value["integrityRegisters"].isValue:
        irs = value["integrityRegisters"]
        _count(irs, "IrList")
        registers = tuple(
            IntegrityRegister(
                _opt_str(ir["registerName"]),
                _opt_int(ir["registerNum"]),
                _fwids(ir["registerDigests"]),
            )
            for ir in irs
        )
    return TcbInfo(
        vendor=_opt_str(value["vendor"]),
        model=_opt_str(value["model"]),
        version=_opt_str(value["version"]),
        svn_raw=svn_raw,
        layer=_opt_int(value["layer"]),
        index=_opt_int(value["index"]),
        fwids=_fwids(value["fwids"]) if value["fwids"].isValue else (),
        flags=_flags(value["flags"]),
        vendor_info=_opt_bytes(value["vendorInfo"]),
        type=_opt_bytes(value["type"]),
        flags_mask=_flags(value["flagsMask"]),
        integrity_registers=registers,
        svn_encoding=_svn_encoding(svn_raw, svn_encoding),
    )


# The decoders below are cached by the exact value bytes (results are immutable; a failure
# is not cached): the certificates of one device all carry its Ueid, and the alias
# certificates of every device running one firmware carry the same TcbInfo values.
_CACHED: Final = 1024


@functools.lru_cache(maxsize=_CACHED)
def _parse_tcb_info(der: bytes, svn_encoding: SvnEncoding) -> TcbInfo:
    with _decoding("DiceTcbInfo"):
        return _tcb_info(_asn1.decode_der(der, _asn1.DiceTcbInfo(), "DiceTcbInfo"), svn_encoding)


@functools.lru_cache(maxsize=_CACHED)
def _parse_multi_tcb_info(der: bytes, svn_encoding: SvnEncoding) -> tuple[TcbInfo, ...]:
    with _decoding("DiceTcbInfoSeq"):
        seq = _asn1.decode_der(der, _asn1.DiceTcbInfoSeq(), "DiceTcbInfoSeq")
        _count(seq, "DiceTcbInfoSeq")
        return tuple(_tcb_info(item, svn_encoding) for item in seq)


@functools.lru_cache(maxsize=_CACHED)
def _parse_ueid(der: bytes) -> bytes:
    with _decoding("TcgUeid"):
        return bytes(_asn1.decode_der(der, _asn1.TcgUeid(), "TcgUeid")["ueid"])


def parse_tcb_info(der: bytes, *, svn_encoding: SvnEncoding = "auto") -> TcbInfo:
    """Decode a tcg-dice-TcbInfo extension value (strict DER); raise ``MalformedCertificate``
    (``LimitExceeded`` over the size and count limits)."""
    return _parse_tcb_info(_bytes(der), svn_encoding)


def parse_multi_tcb_info(der: bytes, *, svn_encoding: SvnEncoding = "auto") -> tuple[TcbInfo, ...]:
    """Decode a tcg-dice-MultiTcbInfo extension value (strict DER); raise
    ``MalformedCertificate`` (``LimitExceeded`` over the size and count limits)."""
    return _parse_multi_tcb_info(_bytes(der), svn_encoding)


def parse_ueid(der: bytes) -> bytes:
    """Decode a tcg-dice-Ueid extension value; raise ``MalformedCertificate``."""
    return _parse_ueid(_bytes(der))


def parse_open_dice_input(der: bytes) -> OpenDiceInput:
    """Decode the Open Profile for DICE extension value (1.3.6.1.4.1.11129.2.1.24); raise
    ``MalformedCertificate``."""
    with _decoding("OpenDiceInput"):
        return _open_dice(_asn1.decode_der(_bytes(der), _asn1.OpenDiceInput(), "OpenDiceInput"))


def _open_dice(value: _asn1.OpenDiceInput) -> OpenDiceInput:
    mode = value["mode"]
    return OpenDiceInput(
        code_hash=_opt_bytes(value["codeHash"]),
        code_descriptor=_opt_bytes(value["codeDescriptor"]),
        configuration_hash=_opt_bytes(value["configurationHash"]),
        configuration_descriptor=_opt_bytes(value["configurationDescriptor"]),
        authority_hash=_opt_bytes(value["authorityHash"]),
        authority_descriptor=_opt_bytes(value["authorityDescriptor"]),
        mode=int(mode.getComponent()) if mode.isValue else None,
        profile_name=_opt_str(value["profileName"]),
    )


def parse_riot_extension(der: bytes) -> RiotCompositeDeviceId:
    """Decode the pre-TCG RIoT extension value (``[0] { 2.23.133.5.4.1, CompositeDeviceID }``);
    raise ``MalformedCertificate``."""
    with _decoding("RIoT extension"):
        return _riot(_asn1.decode_der(_bytes(der), _asn1.RiotExtension(), "RIoT extension"))


def _riot(value: _asn1.RiotExtension) -> RiotCompositeDeviceId:
    data = value["diceData"]
    if str(data["oid"]) != TCB_INFO_OID.dotted_string:
        raise MalformedCertificate("RIoT extension does not carry the DICE OID")
    cdi = data["compositeDeviceId"]
    spki = _asn1.encode_der(cdi["deviceId"])
    fwid = cdi["fwid"]
    return RiotCompositeDeviceId(
        int(cdi["version"]), spki, Fwid(str(fwid["hashAlg"]), bytes(fwid["digest"]))
    )


# --- DICE extension values: encode and build ------------------------------------------------


def _set_fwids(target: univ.SequenceOf, fwids: Sequence[Fwid]) -> None:
    for i, fwid in enumerate(fwids):
        target[i]["hashAlg"] = univ.ObjectIdentifier(fwid.hash_alg_oid)
        target[i]["digest"] = fwid.digest


def _set_flags(target: univ.BitString, flags: OperationalFlags) -> univ.BitString:
    bits = tuple(1 if i in flags.bits else 0 for i in range(flags.width))
    clone: univ.BitString = target.clone(bits)  # type: ignore[no-untyped-call]
    return clone


def _tcb_info_asn1(tcb: TcbInfo) -> _asn1.DiceTcbInfo:
    value = _asn1.DiceTcbInfo()
    comp = value.componentType
    try:
        if tcb.vendor is not None:
            value["vendor"] = tcb.vendor
        if tcb.model is not None:
            value["model"] = tcb.model
        if tcb.version is not None:
            value["version"] = tcb.version
        if tcb.svn_raw is not None:
            value["svn"] = tcb.svn_raw
        if tcb.layer is not None:
            value["layer"] = tcb.layer
        if tcb.index is not None:
            value["index"] = tcb.index
        if tcb.fwids:
            _set_fwids(value["fwids"], tcb.fwids)
        if tcb.flags is not None:
            value["flags"] = _set_flags(comp["flags"].asn1Object, tcb.flags)
        if tcb.vendor_info is not None:
            value["vendorInfo"] = tcb.vendor_info
        if tcb.type is not None:
            value["type"] = tcb.type
        if tcb.flags_mask is not None:
            value["flagsMask"] = _set_flags(comp["flagsMask"].asn1Object, tcb.flags_mask)
        for i, reg in enumerate(tcb.integrity_registers):
            target = value["integrityRegisters"][i]
            if reg.name is not None:
                target["registerName"] = reg.name
            if reg.number is not None:
                target["registerNum"] = reg.number
            _set_fwids(target["registerDigests"], reg.digests)
    except (PyAsn1Error, ValueError) as exc:
        raise MalformedCertificate(f"TcbInfo cannot be encoded: {short_error(exc)}") from exc
    return value


def encode_tcb_info(tcb: TcbInfo) -> bytes:
    """DER of one ``DiceTcbInfo``."""
    return _encode(_tcb_info_asn1(tcb))


def encode_multi_tcb_info(tcbs: Sequence[TcbInfo]) -> bytes:
    """DER of a ``DiceTcbInfoSeq``."""
    _count(tcbs, "DiceTcbInfoSeq")
    seq = _asn1.DiceTcbInfoSeq()
    for tcb in tcbs:
        seq.append(_tcb_info_asn1(tcb))
    return _encode(seq)


def encode_ueid(ueid: bytes) -> bytes:
    """DER of a ``TcgUeid``."""
    value = _asn1.TcgUeid()
    value["ueid"] = ueid
    return _encode(value)


def _encode(value: base.Asn1Item) -> bytes:
    try:
        return _asn1.encode_der(value)
    except PyAsn1Error as exc:
        raise MalformedCertificate(f"DICE value cannot be encoded: {short_error(exc)}") from exc


def build_tcb_info_extension(tcb: TcbInfo) -> x509.UnrecognizedExtension:
    """A tcg-dice-TcbInfo extension for ``x509.CertificateBuilder.add_extension``."""
    return x509.UnrecognizedExtension(TCB_INFO_OID, encode_tcb_info(tcb))


def build_multi_tcb_info_extension(tcbs: Sequence[TcbInfo]) -> x509.UnrecognizedExtension:
    """A tcg-dice-MultiTcbInfo extension for ``x509.CertificateBuilder.add_extension``."""
    return x509.UnrecognizedExtension(MULTI_TCB_INFO_OID, encode_multi_tcb_info(tcbs))


def build_ueid_extension(ueid: bytes) -> x509.UnrecognizedExtension:
    """A tcg-dice-Ueid extension for ``x509.CertificateBuilder.add_extension``."""
    return x509.UnrecognizedExtension(UEID_OID, encode_ueid(ueid))


def build_key_purpose_extension(
    *purposes: str, others: Iterable[x509.ObjectIdentifier] = ()
) -> x509.ExtendedKeyUsage:
    """An extended key usage with tcg-dice-kp purposes by name (``"eca"``, ``"attestLoc"``...)."""
    try:
        oids = [KEY_PURPOSE_OIDS[p] for p in purposes]
    except KeyError as exc:
        raise MalformedCertificate(f"unknown tcg-dice key purpose {exc.args[0]!r}") from exc
    return x509.ExtendedKeyUsage([*oids, *others])
