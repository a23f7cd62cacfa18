"""ASN.1 definitions of the TCG DICE and Open DICE X.509 extension values, decoded and encoded
as strict DER with ``cryptography.hazmat.asn1``.

The modules (TCG DICE Attestation Architecture v1.1/v1.2, Appendix A; Open Profile for DICE,
"custom extension format"; the Microsoft RIoT composite device id) are written down here once
as declarative classes; :mod:`ironroot.rot._dice_ext` turns decoded values into the frozen
dataclasses of :mod:`ironroot.rot._dice_values`.

Why this library: ``cryptography`` already parses the certificates that carry these values, and
its declarative ASN.1 module runs on the Rust ``asn1`` crate, which reads DER and nothing else.
Long-form, indefinite or over-long lengths, non-minimal INTEGERs, constructed strings, non-zero
padding bits, invalid UTF-8 or IA5 text, wrong or repeated tags and data left inside a value are
errors of the parser itself, so no second pass is needed. pyasn1's decoder, used before, is
BER-lenient, so every value was re-encoded and compared with its input (and its encoder wrote
-128 as ``ff 80``, which that check then refused in its DER form ``80``). A Caliptra-like
TcbInfo took 235 us to read that way and takes 11 us now; a Ueid 35 us and 0.8 us.

What the module cannot say, and how it is read here instead:

* ENUMERATED (Open DICE's ``mode``, which producers encode as ENUMERATED or as INTEGER): the
  field is a CHOICE of INTEGER and any TLV, and a TLV must be a primitive ENUMERATED with
  minimal two's-complement content (:func:`enumerated`).
* A SEQUENCE OF as the outermost type (``DiceTcbInfoSeq``): the value is read as the one field
  of a SEQUENCE wrapped around it (:func:`decode_der`), so its own tag and length are checked
  by the decoder like any field's.
* ``AlgorithmIdentifier``'s ``ANY DEFINED BY`` parameters, OPTIONAL (the RIoT DeviceID key):
  the key is kept as its TLV, then read as a SubjectPublicKeyInfo whose algorithm is a
  SEQUENCE of an OID with or without one parameter (:func:`check_spki`).
* Counts: SIZE (1..MAX) is checked, with :data:`MAX_LIST_ITEMS`, by the caller on decode (an
  OPTIONAL SEQUENCE OF takes no SIZE here).
* A certificate's or a TBSCertificate's fields as raw TLVs, any number of them
  (:func:`decode_outer`, :func:`encode_outer`, for splitting chain files and the Cerberus
  repair in :mod:`ironroot.rot.dice`): pyasn1, as before.

Every failure is ``MalformedCertificate`` naming the structure; input over
:data:`MAX_EXTENSION_BYTES` is ``LimitExceeded``.
"""

from __future__ import annotations

import re
from typing import Annotated, TypeVar

from cryptography import x509
from cryptography.hazmat import asn1
from pyasn1.codec.der import decoder as _der_decoder
from pyasn1.codec.der import encoder as _der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ

from ironroot.errors import LimitExceeded, MalformedCertificate

__all__ = [
    "DECODE_ERRORS",
    "MAX_EXTENSION_BYTES",
    "MAX_LIST_ITEMS",
    "CompositeDeviceId",
    "DiceTcbInfo",
    "DiceTcbInfoSeq",
    "Fwid",
    "IntegrityRegister",
    "OpenDiceInput",
    "RiotExtension",
    "TcgUeid",
    "check_spki",
    "decode_der",
    "decode_outer",
    "encode_der",
    "encode_outer",
    "enumerated",
]

# Hard limits on what one extension may hold. A real DICE certificate carries a handful of
# TcbInfo entries with one or two FWIDs each; these limits leave room for generous chains.
MAX_EXTENSION_BYTES = 64 * 1024
MAX_LIST_ITEMS = 64

_T = TypeVar("_T")

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
"""What pyasn1 (still used by :func:`decode_outer` and the NVIDIA evidence reader) raises
on hostile input: its own ``PyAsn1Error`` and, from deep inside its decoder and value objects,
plain Python errors (an over-long length is an ``OverflowError``, a negative one a
``ValueError``, a truncated header an ``IndexError``)."""


# --- the extension values ----------------------------------------------------------------------


@asn1.sequence
class Fwid:
    """``FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }``."""

    hash_alg: x509.ObjectIdentifier
    digest: bytes


@asn1.sequence
class IntegrityRegister:
    """``IntegrityRegister ::= SEQUENCE { registerName IA5String OPTIONAL,
    registerNum INTEGER OPTIONAL, registerDigests FWIDLIST }``."""

    register_name: asn1.IA5String | None
    register_num: int | None
    register_digests: list[Fwid]


@asn1.sequence
class DiceTcbInfo:
    """``DiceTcbInfo`` (tcg-dice-TcbInfo, 2.23.133.5.4.1): every field IMPLICIT and OPTIONAL.
    ``flags`` and ``flagsMask`` are ``OperationalFlags ::= BIT STRING { notConfigured (0), ...,
    fixedWidth (31) }``; ``fwids`` a FWIDLIST, ``integrityRegisters`` an ``IrList``."""

    vendor: Annotated[str | None, asn1.Implicit(0)]
    model: Annotated[str | None, asn1.Implicit(1)]
    version: Annotated[str | None, asn1.Implicit(2)]
    svn: Annotated[int | None, asn1.Implicit(3)]
    layer: Annotated[int | None, asn1.Implicit(4)]
    index: Annotated[int | None, asn1.Implicit(5)]
    fwids: Annotated[list[Fwid] | None, asn1.Implicit(6)]
    flags: Annotated[asn1.BitString | None, asn1.Implicit(7)]
    vendor_info: Annotated[bytes | None, asn1.Implicit(8)]
    type: Annotated[bytes | None, asn1.Implicit(9)]
    flags_mask: Annotated[asn1.BitString | None, asn1.Implicit(10)]
    integrity_registers: Annotated[list[IntegrityRegister] | None, asn1.Implicit(11)]


@asn1.sequence
class DiceTcbInfoSeq:
    """``DiceTcbInfoSeq ::= SEQUENCE SIZE (1..MAX) OF DiceTcbInfo`` (tcg-dice-MultiTcbInfo),
    as the one field of a SEQUENCE: :func:`decode_der` wraps the value in it."""

    items: list[DiceTcbInfo]


@asn1.sequence
class TcgUeid:
    """``TcgUeid ::= SEQUENCE { ueid OCTET STRING }`` (tcg-dice-Ueid, 2.23.133.5.4.4)."""

    ueid: bytes


@asn1.sequence
class OpenDiceInput:
    """Open Profile for DICE X.509 extension (1.3.6.1.4.1.11129.2.1.24): EXPLICIT tags.

    ``mode`` is ``Mode ::= INTEGER (0..3)`` in the text of the profile, but the reference
    implementation and every certificate we have seen encode it as ENUMERATED; both are read
    (a TLV here is read by :func:`enumerated`).
    """

    code_hash: Annotated[bytes | None, asn1.Explicit(0)]
    code_descriptor: Annotated[bytes | None, asn1.Explicit(1)]
    configuration_hash: Annotated[bytes | None, asn1.Explicit(2)]
    configuration_descriptor: Annotated[bytes | None, asn1.Explicit(3)]
    authority_hash: Annotated[bytes | None, asn1.Explicit(4)]
    authority_descriptor: Annotated[bytes | None, asn1.Explicit(5)]
    mode: Annotated[int | asn1.TLV | None, asn1.Explicit(6)]
    profile_name: Annotated[str | None, asn1.Explicit(7)]


@asn1.sequence
class CompositeDeviceId:
    """Microsoft RIoT ``CompositeDeviceID ::= SEQUENCE { version INTEGER,
    deviceId SubjectPublicKeyInfo, fwid FWID }`` (``deviceId`` read by :func:`check_spki`)."""

    version: int
    device_id: asn1.TLV
    fwid: Fwid


@asn1.sequence
class _RiotData:
    oid: x509.ObjectIdentifier
    composite_device_id: CompositeDeviceId


@asn1.sequence
class RiotExtension:
    """The pre-TCG RIoT extension value: ``SEQUENCE { [0] IMPLICIT SEQUENCE { OID,
    CompositeDeviceID } }`` (the OID is 2.23.133.5.4.1, later reused by TcbInfo)."""

    dice_data: Annotated[_RiotData, asn1.Implicit(0)]


@asn1.sequence
class _SubjectPublicKeyInfo:
    algorithm: asn1.TLV
    subject_public_key: asn1.BitString


@asn1.sequence
class _Algorithm:
    algorithm: x509.ObjectIdentifier


@asn1.sequence
class _AlgorithmWithParameters:
    algorithm: x509.ObjectIdentifier
    parameters: asn1.TLV


# --- decode and encode -------------------------------------------------------------------------


def decode_der(data: bytes, spec: type[_T], what: str) -> _T:
    """Decode ``data`` as exactly one DER value of ``spec``; raise ``MalformedCertificate``
    naming ``what`` (``LimitExceeded`` over :data:`MAX_EXTENSION_BYTES`).

    A :class:`DiceTcbInfoSeq` is read from ``data`` wrapped in one SEQUENCE, so that trailing
    bytes are data left in the wrapper, which the decoder refuses as it does after any value.
    """
    if len(data) > MAX_EXTENSION_BYTES:
        raise LimitExceeded(f"{what} is {len(data)} bytes, over {MAX_EXTENSION_BYTES}")
    wrapped = b"\x30" + _length(len(data)) + data if spec is DiceTcbInfoSeq else data
    try:
        return asn1.decode_der(spec, wrapped)
    except ValueError as exc:
        size = _first_size(data)
        if "ExtraData" in str(exc) and size is not None and size < len(data):
            raise MalformedCertificate(f"{what} has {len(data) - size} trailing bytes") from exc
        raise MalformedCertificate(f"{what} {_reason(exc)}") from exc


def encode_der(value: object, what: str) -> bytes:
    """DER of a value of the classes above (a :class:`DiceTcbInfoSeq` without its wrapping
    SEQUENCE); raise ``MalformedCertificate`` naming ``what``."""
    try:
        der = asn1.encode_der(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise MalformedCertificate(f"{what} cannot be encoded: {exc}") from exc
    return _unwrap(der) if isinstance(value, DiceTcbInfoSeq) else der


def _unwrap(der: bytes) -> bytes:
    """The content of a DER SEQUENCE just encoded (its header skipped)."""
    first = der[1]
    return der[2 + (first & 0x7F if first >= 0x80 else 0) :]


def _first_size(data: bytes) -> int | None:
    """The size of the first TLV of ``data`` (one-octet tag) as its header says, or ``None``
    when the header is cut short or takes over four length octets. Read only to count the
    trailing bytes the decoder found after a value it had read whole."""
    if len(data) < 2 or data[0] & 0x1F == 0x1F:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if not 1 <= count <= 4 or len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def _length(size: int) -> bytes:
    """A DER length (``size`` is at most :data:`MAX_EXTENSION_BYTES`)."""
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


_KIND = re.compile(
    r"ParseError \{ kind: (\w+)(?: \{ actual: Tag \{ value: (\d+), "
    r"constructed: \w+, class: (\w+) \} \})?"
)


def _reason(exc: ValueError) -> str:
    """What the Rust decoder's error says, in a few words after the structure's name. Read
    from its ``ParseError { kind: ... }`` text; a text of another form is quoted (still
    ``MalformedCertificate``: only the words would change with ``cryptography``)."""
    text = str(exc)
    found = _KIND.search(text)
    if found is None:
        return f"is not valid DER: {text[:120]}"
    kind, number, cls = found.groups()
    if kind in ("InvalidLength", "InvalidValue"):
        what = "a length" if kind == "InvalidLength" else "an invalid or non-minimal value"
        return f"is not in canonical DER form ({what})"
    if kind == "UnexpectedTag" and number is not None:
        return f"is not valid DER: unexpected tag [{cls.lower()} {number}]"
    if kind == "ShortData":
        return "is not valid DER: truncated"
    if kind == "ExtraData":
        return "is not valid DER: a field not in the schema, or not in its place"
    return f"is not valid DER: {kind}"


def enumerated(value: asn1.TLV, what: str) -> int:
    """The integer of an ENUMERATED TLV (primitive, minimal two's-complement content); raise
    ``MalformedCertificate`` naming ``what`` for any other TLV."""
    if value.tag_bytes != b"\x0a":
        raise MalformedCertificate(f"{what} is not valid DER: the mode is no INTEGER or ENUMERATED")
    content = bytes(value.data)
    if not content or (
        len(content) > 1
        and ((content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80))
    ):
        raise MalformedCertificate(f"{what} is not in canonical DER form (an ENUMERATED)")
    return int.from_bytes(content, "big", signed=True)


def check_spki(value: asn1.TLV, what: str) -> bytes:
    """The DER of ``value``, checked to be a ``SubjectPublicKeyInfo ::= SEQUENCE {
    algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }`` whose algorithm is
    ``SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }`` (``ANY`` is one TLV;
    the decoder takes tag 0, end-of-contents, as one too: refused here)."""
    try:
        spki = value.parse(_SubjectPublicKeyInfo)
        try:
            spki.algorithm.parse(_Algorithm)
        except ValueError:
            parameters = spki.algorithm.parse(_AlgorithmWithParameters).parameters
            if parameters.tag_bytes == b"\x00":  # end-of-contents, no value's tag
                raise MalformedCertificate(
                    f"{what} is not valid DER: unexpected tag [universal 0]"
                ) from None
        return asn1.encode_der(value)
    except ValueError as exc:
        raise MalformedCertificate(f"{what} {_reason(exc)}") from exc


# --- pyasn1: a SEQUENCE's elements as raw TLVs -------------------------------------------------


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
