"""DER decode and encode of the TCG DICE extension values (``cryptography.hazmat.asn1``, strict
DER, see :mod:`ironroot.rot._asn1`), and the ``x509`` extensions built from them."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence, Sized
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat import asn1

from ironroot.errors import (
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


def _bytes(der: object) -> bytes:
    if not isinstance(der, bytes | bytearray | memoryview):
        raise MalformedCertificate("a DICE extension value must be bytes")
    return bytes(der)


def _count(items: Sized, what: str, over: type[MalformedCertificate | LimitExceeded]) -> None:
    """SIZE (1..MAX) with :data:`~ironroot.rot._asn1.MAX_LIST_ITEMS`: ``over`` is raised past
    it (``MalformedCertificate`` when reading, so that a lenient read records the extension
    as invalid; ``LimitExceeded`` when building)."""
    if len(items) > _asn1.MAX_LIST_ITEMS:
        raise over(f"{what} has {len(items)} entries, over {_asn1.MAX_LIST_ITEMS}")
    if len(items) == 0:
        raise MalformedCertificate(f"{what} is empty (SIZE (1..MAX))")


def _fwids(value: list[_asn1.Fwid], what: str) -> tuple[Fwid, ...]:
    _count(value, what, MalformedCertificate)
    return tuple(Fwid(f.hash_alg.dotted_string, f.digest) for f in value)


def _flags(value: asn1.BitString | None) -> OperationalFlags | None:
    if value is None:
        return None
    data = value.as_bytes()
    width = len(data) * 8 - value.padding_bits()
    bits = frozenset(i for i in range(width) if data[i >> 3] & (0x80 >> (i & 7)))
    return OperationalFlags(bits, width)


def _svn_encoding(raw: int | None, svn_encoding: SvnEncoding) -> Literal["caliptra", "plain"]:
    in_range = raw is not None and 0x100 <= raw <= 0x1FF
    if svn_encoding == "caliptra":
        if raw is not None and not in_range:
            raise MalformedCertificate(f"SVN {raw:#x} is not a Caliptra 0x100|svn value")
        return "caliptra"
    if svn_encoding == "auto" and in_range:
        return "caliptra"
    return "plain"


_MAX_INTEGER: Final = 1 << 64
"""DiceTcbInfo's INTEGERs (svn, layer, index, a register's number) are at most 64 bits:
no DICE layer uses more, and a value of thousands of digits could not even be printed
(Python's int-to-text limit)."""


def _bounded(value: int | None, what: str) -> int | None:
    if value is not None and not -_MAX_INTEGER < value < _MAX_INTEGER:
        raise MalformedCertificate(f"DiceTcbInfo {what} is over 64 bits")
    return value


def _tcb_info(value: _asn1.DiceTcbInfo, svn_encoding: SvnEncoding) -> TcbInfo:
    registers: tuple[IntegrityRegister, ...] = ()
    for number, what in ((value.svn, "svn"), (value.layer, "layer"), (value.index, "index")):
        _bounded(number, what)
    if value.integrity_registers is not None:
        _count(value.integrity_registers, "DiceTcbInfo IrList", MalformedCertificate)
        registers = tuple(
            IntegrityRegister(
                None if ir.register_name is None else ir.register_name.as_str(),
                _bounded(ir.register_num, "registerNum"),
                _fwids(ir.register_digests, "DiceTcbInfo registerDigests"),
            )
            for ir in value.integrity_registers
        )
    return TcbInfo(
        vendor=value.vendor,
        model=value.model,
        version=value.version,
        svn_raw=value.svn,
        layer=value.layer,
        index=value.index,
        fwids=_fwids(value.fwids, "DiceTcbInfo FWIDLIST") if value.fwids is not None else (),
        flags=_flags(value.flags),
        vendor_info=value.vendor_info,
        type=value.type,
        flags_mask=_flags(value.flags_mask),
        integrity_registers=registers,
        svn_encoding=_svn_encoding(value.svn, svn_encoding),
    )


# The decoders below are cached by the exact value bytes (results are immutable; a failure
# is not cached): the certificates of one device all carry its Ueid, and the alias
# certificates of every device running one firmware carry the same TcbInfo values.
_CACHED: Final = 1024


@functools.lru_cache(maxsize=_CACHED)
def _parse_tcb_info(der: bytes, svn_encoding: SvnEncoding) -> TcbInfo:
    return _tcb_info(_asn1.decode_der(der, _asn1.DiceTcbInfo, "DiceTcbInfo"), svn_encoding)


@functools.lru_cache(maxsize=_CACHED)
def _parse_multi_tcb_info(der: bytes, svn_encoding: SvnEncoding) -> tuple[TcbInfo, ...]:
    items = _asn1.decode_der(der, _asn1.DiceTcbInfoSeq, "DiceTcbInfoSeq").items
    _count(items, "DiceTcbInfoSeq", MalformedCertificate)
    return tuple(_tcb_info(item, svn_encoding) for item in items)


@functools.lru_cache(maxsize=_CACHED)
def _parse_ueid(der: bytes) -> bytes:
    return _asn1.decode_der(der, _asn1.TcgUeid, "TcgUeid").ueid


def parse_tcb_info(der: bytes, *, svn_encoding: SvnEncoding = "auto") -> TcbInfo:
    """Decode a tcg-dice-TcbInfo extension value (strict DER); raise ``MalformedCertificate``
    (``LimitExceeded`` over the size limit)."""
    return _parse_tcb_info(_bytes(der), svn_encoding)


def parse_multi_tcb_info(der: bytes, *, svn_encoding: SvnEncoding = "auto") -> tuple[TcbInfo, ...]:
    """Decode a tcg-dice-MultiTcbInfo extension value (strict DER); raise
    ``MalformedCertificate`` (``LimitExceeded`` over the size limit)."""
    return _parse_multi_tcb_info(_bytes(der), svn_encoding)


def parse_ueid(der: bytes) -> bytes:
    """Decode a tcg-dice-Ueid extension value; raise ``MalformedCertificate``."""
    return _parse_ueid(_bytes(der))


def parse_open_dice_input(der: bytes) -> OpenDiceInput:
    """Decode the Open Profile for DICE extension value (1.3.6.1.4.1.11129.2.1.24); raise
    ``MalformedCertificate``."""
    value = _asn1.decode_der(_bytes(der), _asn1.OpenDiceInput, "OpenDiceInput")
    mode = value.mode
    return OpenDiceInput(
        code_hash=value.code_hash,
        code_descriptor=value.code_descriptor,
        configuration_hash=value.configuration_hash,
        configuration_descriptor=value.configuration_descriptor,
        authority_hash=value.authority_hash,
        authority_descriptor=value.authority_descriptor,
        mode=mode
        if mode is None or isinstance(mode, int)
        else _asn1.enumerated(mode, "OpenDiceInput"),
        profile_name=value.profile_name,
    )


def parse_riot_extension(der: bytes) -> RiotCompositeDeviceId:
    """Decode the pre-TCG RIoT extension value (``[0] { 2.23.133.5.4.1, CompositeDeviceID }``);
    raise ``MalformedCertificate``."""
    what = "RIoT extension"
    data = _asn1.decode_der(_bytes(der), _asn1.RiotExtension, what).dice_data
    if data.oid != TCB_INFO_OID:
        raise MalformedCertificate("RIoT extension does not carry the DICE OID")
    cdi = data.composite_device_id
    return RiotCompositeDeviceId(
        cdi.version,
        _asn1.check_spki(cdi.device_id, what),
        Fwid(cdi.fwid.hash_alg.dotted_string, cdi.fwid.digest),
    )


# --- DICE extension values: encode and build ------------------------------------------------


def _fwid_list(fwids: Sequence[Fwid]) -> list[_asn1.Fwid]:
    return [_asn1.Fwid(hash_alg=_oid(f.hash_alg_oid), digest=f.digest) for f in fwids]


def _oid(dotted: str) -> x509.ObjectIdentifier:
    try:
        return x509.ObjectIdentifier(dotted)
    except ValueError as exc:
        raise MalformedCertificate(f"TcbInfo cannot be encoded: {exc}") from exc


def _bit_string(flags: OperationalFlags | None) -> asn1.BitString | None:
    if flags is None:
        return None
    data = bytearray((flags.width + 7) // 8)
    for bit in flags.bits:
        data[bit >> 3] |= 0x80 >> (bit & 7)
    return asn1.BitString(bytes(data), len(data) * 8 - flags.width)


def _ia5(text: str | None) -> asn1.IA5String | None:
    if text is None:
        return None
    try:
        return asn1.IA5String(text)
    except ValueError as exc:
        raise MalformedCertificate(f"TcbInfo cannot be encoded: {exc}") from exc


def _tcb_info_asn1(tcb: TcbInfo) -> _asn1.DiceTcbInfo:
    if len(tcb.fwids) > _asn1.MAX_LIST_ITEMS:
        _count(tcb.fwids, "TcbInfo FWIDLIST", MalformedCertificate)
    if tcb.integrity_registers:
        _count(tcb.integrity_registers, "TcbInfo IrList", MalformedCertificate)
    for reg in tcb.integrity_registers:
        _count(reg.digests, "TcbInfo registerDigests", MalformedCertificate)
    registers = [
        _asn1.IntegrityRegister(
            register_name=_ia5(reg.name),
            register_num=reg.number,
            register_digests=_fwid_list(reg.digests),
        )
        for reg in tcb.integrity_registers
    ]
    return _asn1.DiceTcbInfo(
        vendor=tcb.vendor,
        model=tcb.model,
        version=tcb.version,
        svn=tcb.svn_raw,
        layer=tcb.layer,
        index=tcb.index,
        fwids=_fwid_list(tcb.fwids) or None,
        flags=_bit_string(tcb.flags),
        vendor_info=tcb.vendor_info,
        type=tcb.type,
        flags_mask=_bit_string(tcb.flags_mask),
        integrity_registers=registers or None,
    )


def encode_tcb_info(tcb: TcbInfo) -> bytes:
    """DER of one ``DiceTcbInfo``."""
    return _asn1.encode_der(_tcb_info_asn1(tcb), "TcbInfo")


def encode_multi_tcb_info(tcbs: Sequence[TcbInfo]) -> bytes:
    """DER of a ``DiceTcbInfoSeq``."""
    _count(tcbs, "DiceTcbInfoSeq", LimitExceeded)
    value = _asn1.DiceTcbInfoSeq(items=[_tcb_info_asn1(tcb) for tcb in tcbs])
    return _asn1.encode_der(value, "DiceTcbInfoSeq")


def encode_ueid(ueid: bytes) -> bytes:
    """DER of a ``TcgUeid``."""
    return _asn1.encode_der(_asn1.TcgUeid(ueid=ueid), "TcgUeid")


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
