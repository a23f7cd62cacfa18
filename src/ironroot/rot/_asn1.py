"""ASN.1 type definitions (pyasn1) for the TCG DICE and Open DICE X.509 extensions, and a
strict DER decoder.

The modules (TCG DICE Attestation Architecture v1.1/v1.2, Appendix A; Open Profile for DICE,
"custom extension format"; the Microsoft RIoT composite device id) are written down here once as
pyasn1 specs; :mod:`ironroot.rot.dice` turns decoded values into frozen dataclasses.

pyasn1's DER decoder is BER-lenient in places (it accepts, for example, a non-minimal INTEGER
``02 02 00 01``). :func:`decode_der` therefore re-encodes every decoded value with the DER
encoder and requires the bytes to be identical: any encoding that is not the one canonical DER
form (over-long lengths, non-minimal integers, non-zero padding bits, indefinite lengths) is
rejected, as are trailing bytes.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pyasn1.codec.der import decoder as _der_decoder
from pyasn1.codec.der import encoder as _der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import base, char, constraint, namedtype, namedval, tag, univ

from ironroot.errors import LimitExceeded, MalformedCertificate

__all__ = [
    "DECODE_ERRORS",
    "MAX_EXTENSION_BYTES",
    "MAX_LIST_ITEMS",
    "CompositeDeviceId",
    "DiceTcbInfo",
    "DiceTcbInfoSeq",
    "Fwid",
    "FwidList",
    "IntegrityRegister",
    "IrList",
    "OpenDiceInput",
    "OperationalFlags",
    "RiotExtension",
    "TcgUeid",
    "decode_der",
    "decode_outer",
    "encode_der",
    "encode_outer",
]

# Hard limits on what one extension may hold. A real DICE certificate carries a handful of
# TcbInfo entries with one or two FWIDs each; these limits leave room for generous chains.
MAX_EXTENSION_BYTES = 64 * 1024
MAX_LIST_ITEMS = 64

_T = TypeVar("_T", bound=base.Asn1Item)

DECODE_ERRORS: tuple[type[Exception], ...] = (
    PyAsn1Error,
    IndexError,
    KeyError,
    OverflowError,
    ValueError,
    TypeError,
    UnicodeError,
    RecursionError,
)
"""What pyasn1 raises on hostile input: its own ``PyAsn1Error`` and, from deep inside its
decoder and value objects, plain Python errors (an over-long length is an ``OverflowError``,
a negative one a ``ValueError``, a truncated header an ``IndexError``)."""


def _implicit(number: int, *, constructed: bool = False) -> tag.Tag:
    fmt = tag.tagFormatConstructed if constructed else tag.tagFormatSimple
    return tag.Tag(tag.tagClassContext, fmt, number)


def _explicit(number: int) -> tag.Tag:
    return tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, number)


def _tag(spec: Any, *, implicit: tag.Tag | None = None, explicit: tag.Tag | None = None) -> Any:
    """``spec`` re-tagged [n] IMPLICIT or [n] EXPLICIT (pyasn1's ``subtype``)."""
    if implicit is not None:
        return spec.subtype(implicitTag=implicit)
    return spec.subtype(explicitTag=explicit)


_SIZE = constraint.ConstraintsIntersection(constraint.ValueSizeConstraint(1, MAX_LIST_ITEMS))


class Fwid(univ.Sequence):
    """``FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }``."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("hashAlg", univ.ObjectIdentifier()),
        namedtype.NamedType("digest", univ.OctetString()),
    )


class FwidList(univ.SequenceOf):
    """``FWIDLIST ::= SEQUENCE SIZE (1..MAX) OF FWID``."""

    componentType = Fwid()
    subtypeSpec = _SIZE


class OperationalFlags(univ.BitString):
    """``OperationalFlags ::= BIT STRING { notConfigured (0), ..., fixedWidth (31) }``."""

    namedValues = namedval.NamedValues(
        ("notConfigured", 0),
        ("notSecure", 1),
        ("recovery", 2),
        ("debug", 3),
        ("notReplayProtected", 4),
        ("notIntegrityProtected", 5),
        ("notRuntimeMeasured", 6),
        ("notImmutable", 7),
        ("notTcb", 8),
        ("fixedWidth", 31),
    )


class IntegrityRegister(univ.Sequence):
    """``IntegrityRegister ::= SEQUENCE { registerName IA5String OPTIONAL,
    registerNum INTEGER OPTIONAL, registerDigests FWIDLIST }``."""

    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("registerName", char.IA5String()),
        namedtype.OptionalNamedType("registerNum", univ.Integer()),
        namedtype.NamedType("registerDigests", FwidList()),
    )


class IrList(univ.SequenceOf):
    """``IrList ::= SEQUENCE SIZE (1..MAX) OF IntegrityRegister``."""

    componentType = IntegrityRegister()
    subtypeSpec = _SIZE


class DiceTcbInfo(univ.Sequence):
    """``DiceTcbInfo`` (tcg-dice-TcbInfo, 2.23.133.5.4.1): every field IMPLICIT and OPTIONAL."""

    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("vendor", _tag(char.UTF8String(), implicit=_implicit(0))),
        namedtype.OptionalNamedType("model", _tag(char.UTF8String(), implicit=_implicit(1))),
        namedtype.OptionalNamedType("version", _tag(char.UTF8String(), implicit=_implicit(2))),
        namedtype.OptionalNamedType("svn", _tag(univ.Integer(), implicit=_implicit(3))),
        namedtype.OptionalNamedType("layer", _tag(univ.Integer(), implicit=_implicit(4))),
        namedtype.OptionalNamedType("index", _tag(univ.Integer(), implicit=_implicit(5))),
        namedtype.OptionalNamedType(
            "fwids", _tag(FwidList(), implicit=_implicit(6, constructed=True))
        ),
        namedtype.OptionalNamedType("flags", _tag(OperationalFlags(), implicit=_implicit(7))),
        namedtype.OptionalNamedType("vendorInfo", _tag(univ.OctetString(), implicit=_implicit(8))),
        namedtype.OptionalNamedType("type", _tag(univ.OctetString(), implicit=_implicit(9))),
        namedtype.OptionalNamedType("flagsMask", _tag(OperationalFlags(), implicit=_implicit(10))),
        namedtype.OptionalNamedType(
            "integrityRegisters", _tag(IrList(), implicit=_implicit(11, constructed=True))
        ),
    )


class DiceTcbInfoSeq(univ.SequenceOf):
    """``DiceTcbInfoSeq ::= SEQUENCE SIZE (1..MAX) OF DiceTcbInfo`` (tcg-dice-MultiTcbInfo)."""

    componentType = DiceTcbInfo()
    subtypeSpec = _SIZE


class TcgUeid(univ.Sequence):
    """``TcgUeid ::= SEQUENCE { ueid OCTET STRING }`` (tcg-dice-Ueid, 2.23.133.5.4.4)."""

    componentType = namedtype.NamedTypes(namedtype.NamedType("ueid", univ.OctetString()))


class _Mode(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("enumerated", univ.Enumerated()),
        namedtype.NamedType("integer", univ.Integer()),
    )


class OpenDiceInput(univ.Sequence):
    """Open Profile for DICE X.509 extension (1.3.6.1.4.1.11129.2.1.24): EXPLICIT tags.

    ``mode`` is ``Mode ::= INTEGER (0..3)`` in the text of the profile, but the reference
    implementation and every certificate we have seen encode it as ENUMERATED; both are read.
    """

    componentType = namedtype.NamedTypes(
        namedtype.OptionalNamedType("codeHash", _tag(univ.OctetString(), explicit=_explicit(0))),
        namedtype.OptionalNamedType(
            "codeDescriptor", _tag(univ.OctetString(), explicit=_explicit(1))
        ),
        namedtype.OptionalNamedType(
            "configurationHash", _tag(univ.OctetString(), explicit=_explicit(2))
        ),
        namedtype.OptionalNamedType(
            "configurationDescriptor", _tag(univ.OctetString(), explicit=_explicit(3))
        ),
        namedtype.OptionalNamedType(
            "authorityHash", _tag(univ.OctetString(), explicit=_explicit(4))
        ),
        namedtype.OptionalNamedType(
            "authorityDescriptor", _tag(univ.OctetString(), explicit=_explicit(5))
        ),
        namedtype.OptionalNamedType("mode", _tag(_Mode(), explicit=_explicit(6))),
        namedtype.OptionalNamedType("profileName", _tag(char.UTF8String(), explicit=_explicit(7))),
    )


class _AlgorithmIdentifier(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("algorithm", univ.ObjectIdentifier()),
        namedtype.OptionalNamedType("parameters", univ.Any()),
    )


class _SubjectPublicKeyInfo(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("algorithm", _AlgorithmIdentifier()),
        namedtype.NamedType("subjectPublicKey", univ.BitString()),
    )


class CompositeDeviceId(univ.Sequence):
    """Microsoft RIoT ``CompositeDeviceID ::= SEQUENCE { version INTEGER,
    deviceId SubjectPublicKeyInfo, fwid FWID }``."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("version", univ.Integer()),
        namedtype.NamedType("deviceId", _SubjectPublicKeyInfo()),
        namedtype.NamedType("fwid", Fwid()),
    )


class _RiotData(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("oid", univ.ObjectIdentifier()),
        namedtype.NamedType("compositeDeviceId", CompositeDeviceId()),
    )


class RiotExtension(univ.Sequence):
    """The pre-TCG RIoT extension value: ``SEQUENCE { [0] IMPLICIT SEQUENCE { OID,
    CompositeDeviceID } }`` (the OID is 2.23.133.5.4.1, later reused by TcbInfo)."""

    componentType = namedtype.NamedTypes(
        namedtype.NamedType("diceData", _tag(_RiotData(), implicit=_implicit(0, constructed=True))),
    )


def decode_der(data: bytes, spec: _T, what: str) -> _T:
    """Decode ``data`` as exactly one DER value of ``spec``; raise ``MalformedCertificate``.

    Rejects trailing bytes, BER-only encodings (by re-encoding and comparing), unknown or
    misplaced tags, and lists over :data:`MAX_LIST_ITEMS`; input over
    :data:`MAX_EXTENSION_BYTES` raises ``LimitExceeded``.
    """
    if len(data) > MAX_EXTENSION_BYTES:
        raise LimitExceeded(f"{what} is {len(data)} bytes, over {MAX_EXTENSION_BYTES}")
    try:
        value, rest = _der_decoder.decode(data, asn1Spec=spec)
    except DECODE_ERRORS as exc:
        raise MalformedCertificate(f"{what} is not valid DER: {_short(exc)}") from exc
    if rest:
        raise MalformedCertificate(f"{what} has {len(rest)} trailing bytes")
    try:
        canonical = _der_encoder.encode(value)
    except DECODE_ERRORS as exc:
        raise MalformedCertificate(f"{what} does not re-encode: {_short(exc)}") from exc
    if canonical != data:
        raise MalformedCertificate(f"{what} is not in canonical DER form")
    return value  # type: ignore[no-any-return]


def encode_der(value: base.Asn1Item) -> bytes:
    """DER-encode a pyasn1 value built from the specs above."""
    return bytes(_der_encoder.encode(value))


_TAG_IN_MESSAGE = re.compile(r"^<TagSet object, tags (\d+):(\d+):(\d+)> not in asn1Spec")
_TAG_CLASSES = {0: "universal", 64: "application", 128: "context", 192: "private"}


def _short(exc: BaseException) -> str:
    """pyasn1 messages embed whole schemas; say which tag was unexpected, or keep one line."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    found = _TAG_IN_MESSAGE.match(text)
    if found:
        cls, _, number = (int(g) for g in found.groups())
        return f"unexpected tag [{_TAG_CLASSES.get(cls, cls)} {number}]"
    return text[:120]


def decode_outer(data: bytes) -> tuple[univ.SequenceOf, bytes]:
    """Decode the first DER SEQUENCE of ``data`` into its elements' raw TLVs; return the rest.

    Each element is a ``univ.Any`` whose bytes are the element's complete encoding, so signed
    parts (a TBSCertificate) are kept exactly as received. Raises ``PyAsn1Error`` (whatever
    pyasn1 raised, re-raised as one).
    """
    try:
        value, rest = _der_decoder.decode(data, asn1Spec=univ.SequenceOf(componentType=univ.Any()))
    except PyAsn1Error:
        raise
    except DECODE_ERRORS as exc:
        raise PyAsn1Error(f"{type(exc).__name__}: {exc}") from exc
    return value, bytes(rest)


def encode_outer(parts: list[bytes]) -> bytes:
    """DER SEQUENCE around already-encoded elements."""
    seq = univ.SequenceOf(componentType=univ.Any())
    for i, part in enumerate(parts):
        seq[i] = univ.Any(part)
    return bytes(_der_encoder.encode(seq))
