"""SPDM measurement blocks, the measurement record, DeviceMode, and general opaque data.

Measurement block (DSP0274 "Measurement block format"), little-endian::

    Index(1) MeasurementSpecification(1) MeasurementSize(2) Measurement[MeasurementSize]

With MeasurementSpecification = DMTF (bit 0), Measurement is a DMTF measurement::

    DMTFSpecMeasurementValueType(1) DMTFSpecMeasurementValueSize(2) DMTFSpecMeasurementValue

where bit 7 of the value type says the value is the raw bit stream (else a digest made with
the negotiated MeasurementHashAlgo) and bits 6..0 say what was measured. A DeviceMode raw value
is four 32-bit fields; a SecureVersionNumber raw value is a 64-bit integer.

A value type the negotiated version reserves (5 and above under SPDM 1.0/1.1, 8..10 under
1.2, 11 and above under 1.3) still arrives signed: it decodes as an
:class:`UnknownMeasurementBlock` that keeps its type number, raw flag and value bytes
untouched for policy to judge. Nothing about it is
interpreted (not even the digest size), and the response that carries it is not rejected.

General opaque data (OpaqueDataFmt1, SPDM 1.2)::

    TotalElements(1) Reserved(3) { ID(1) VendorLen(1) VendorID[VendorLen]
                                   OpaqueElementDataLen(2) OpaqueElementData  pad-to-4 }*
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final, NoReturn, TypeAlias

from ironroot.errors import MalformedSpdm
from ironroot.spdm._codec import Reader, u16, u32
from ironroot.spdm._constants import (
    MEASUREMENT_SPECIFICATION_DMTF,
    RAW_BIT_STREAM,
    TYPES_SINCE_1_2,
    TYPES_SINCE_1_3,
    VALUE_TYPE_MASK,
    MeasurementHashAlgo,
    MeasurementValueType,
    SpdmVersion,
    measurement_hash_size,
)

__all__ = [
    "AnyMeasurementBlock",
    "DeviceMode",
    "MeasurementBlock",
    "OpaqueElement",
    "UnknownMeasurementBlock",
    "decode_measurement_record",
    "decode_opaque_data",
    "encode_measurement_record",
    "encode_opaque_data",
]

_DMTF_HEADER = 3  # value type (1) + value size (2)
_MAX_VALUE = 0xFFFF - _DMTF_HEADER  # MeasurementSize is two bytes
_DEVICE_MODE_SIZE = 16
_SVN_SIZE = 8
_RAW_SIZES: Final = {
    MeasurementValueType.DEVICE_MODE: _DEVICE_MODE_SIZE,
    MeasurementValueType.SECURE_VERSION_NUMBER: _SVN_SIZE,
}
_RAW_NAMES: Final = {
    MeasurementValueType.DEVICE_MODE: "DeviceMode",
    MeasurementValueType.SECURE_VERSION_NUMBER: "SecureVersionNumber",
}
_MAX_REGISTRY_ID = 0x0B  # DMTF_DSP, the last registry SPDM 1.3 defines


@dataclass(frozen=True, slots=True)
class DeviceMode:
    """The raw value of a DeviceMode measurement: operational and debug mode bits."""

    operational_mode_capabilities: int
    operational_mode_state: int
    device_mode_capabilities: int
    device_mode_state: int

    def __post_init__(self) -> None:
        for name in (
            "operational_mode_capabilities",
            "operational_mode_state",
            "device_mode_capabilities",
            "device_mode_state",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
                raise MalformedSpdm(f"DeviceMode {name} must be a 32-bit unsigned integer")

    def encode(self) -> bytes:
        return (
            u32(self.operational_mode_capabilities)
            + u32(self.operational_mode_state)
            + u32(self.device_mode_capabilities)
            + u32(self.device_mode_state)
        )

    @classmethod
    def decode(cls, data: bytes) -> DeviceMode:
        r = Reader(data, "DeviceMode")
        out = cls(
            r.u32("OperationalModeCapabilties"),
            r.u32("OperationalModeState"),
            r.u32("DeviceModeCapabilties"),
            r.u32("DeviceModeState"),
        )
        r.end()
        return out


@dataclass(frozen=True, slots=True)
class MeasurementBlock:
    """One DMTF measurement block: ``raw`` is bit 7 of DMTFSpecMeasurementValueType."""

    index: int
    value_type: MeasurementValueType
    value: bytes
    raw: bool = False

    def __post_init__(self) -> None:
        # Written for speed (a GPU answer holds 64 blocks): one pass, the common case first.
        index, value = self.index, self.value
        if type(index) is not int or not 1 <= index <= 0xFE:
            _check_index(index)
        if not isinstance(self.value_type, MeasurementValueType):
            raise MalformedSpdm("measurement value type must be a MeasurementValueType")
        if not isinstance(value, bytes) or len(value) > _MAX_VALUE:
            raise MalformedSpdm(f"measurement value must be bytes of at most {_MAX_VALUE}")
        size = _RAW_SIZES.get(self.value_type) if self.raw else None
        if size is not None and len(value) != size:
            raise MalformedSpdm(f"a raw {_RAW_NAMES[self.value_type]} measurement is {size} bytes")

    known: ClassVar[bool] = True

    @property
    def type_number(self) -> int:
        """DMTFSpecMeasurementValueType bits 6..0."""
        return int(self.value_type)

    @property
    def type_name(self) -> str:
        return self.value_type.name

    @property
    def dmtf_value_type(self) -> int:
        """The DMTFSpecMeasurementValueType byte."""
        return self.type_number | (RAW_BIT_STREAM if self.raw else 0)

    def encode(self) -> bytes:
        return _encode_block(self.index, self.dmtf_value_type, self.value)

    def device_mode(self) -> DeviceMode:
        """The DeviceMode of a raw DeviceMode block; :class:`MalformedSpdm` otherwise."""
        if self.value_type != MeasurementValueType.DEVICE_MODE or not self.raw:
            raise MalformedSpdm(f"measurement {self.index} is not a raw DeviceMode")
        return DeviceMode.decode(self.value)

    def secure_version_number(self) -> int:
        """The SVN of a raw SecureVersionNumber block; :class:`MalformedSpdm` otherwise."""
        if self.value_type != MeasurementValueType.SECURE_VERSION_NUMBER or not self.raw:
            raise MalformedSpdm(f"measurement {self.index} is not a raw SecureVersionNumber")
        return int.from_bytes(self.value, "little")


@dataclass(frozen=True, slots=True)
class UnknownMeasurementBlock:
    """A DMTF measurement block whose value type this package does not know at the
    negotiated version: its number (bits 6..0), raw flag (bit 7) and value, kept as sent.

    ``value_type`` is ``None``, so a comparison with a :class:`MeasurementValueType` is never
    true; ``type_number`` says what the device sent.
    """

    index: int
    type_number: int
    value: bytes
    raw: bool = False

    known: ClassVar[bool] = False
    type_name: ClassVar[str] = "UNKNOWN"

    def __post_init__(self) -> None:
        _check_index(self.index)
        number = self.type_number
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 0x7F:
            raise MalformedSpdm("a measurement value type number is 0..127")
        if not isinstance(self.value, bytes) or len(self.value) > _MAX_VALUE:
            raise MalformedSpdm(f"measurement value must be bytes of at most {_MAX_VALUE}")
        if not isinstance(self.raw, bool):
            raise MalformedSpdm("measurement raw flag must be a bool")

    @property
    def value_type(self) -> None:
        return None

    @property
    def dmtf_value_type(self) -> int:
        """The DMTFSpecMeasurementValueType byte."""
        return self.type_number | (RAW_BIT_STREAM if self.raw else 0)

    def encode(self) -> bytes:
        return _encode_block(self.index, self.dmtf_value_type, self.value)


AnyMeasurementBlock: TypeAlias = MeasurementBlock | UnknownMeasurementBlock
"""A decoded measurement block: known (:class:`MeasurementBlock`) or not."""


def _check_index(index: object) -> None:
    if isinstance(index, bool) or not isinstance(index, int):
        raise MalformedSpdm("measurement index must be an integer")
    if not 1 <= index <= 0xFE:
        raise MalformedSpdm(f"measurement index {index} outside 1..254")


def _encode_block(index: int, type_byte: int, value: bytes) -> bytes:
    measurement = bytes([type_byte]) + u16(len(value)) + value
    return bytes([index, MEASUREMENT_SPECIFICATION_DMTF]) + u16(len(measurement)) + measurement


def known_value_type(number: int, version: SpdmVersion) -> MeasurementValueType | None:
    """The :class:`MeasurementValueType` ``number`` names at ``version``, or ``None``."""
    try:
        value_type = MeasurementValueType(number)
    except ValueError:
        return None
    if value_type in TYPES_SINCE_1_3 and version < SpdmVersion.V1_3:
        return None
    if value_type in TYPES_SINCE_1_2 and version < SpdmVersion.V1_2:
        return None
    return value_type


def encode_measurement_record(blocks: tuple[AnyMeasurementBlock, ...]) -> bytes:
    return b"".join(block.encode() for block in blocks)


def decode_measurement_record(
    record: bytes,
    count: int,
    *,
    version: SpdmVersion,
    measurement_hash_algo: MeasurementHashAlgo | None = None,
) -> tuple[AnyMeasurementBlock, ...]:
    """Parse exactly ``count`` blocks filling ``record``.

    With ``measurement_hash_algo`` given, every digest (non-raw) value of a known type must
    have its size; under raw-bit-stream-only no digest is allowed. A value type ``version``
    does not define becomes an :class:`UnknownMeasurementBlock`.
    """
    digest_size: int | None = -1
    if measurement_hash_algo is not None:
        digest_size = measurement_hash_size(measurement_hash_algo)
    if not isinstance(record, bytes | bytearray | memoryview):
        raise MalformedSpdm(f"MeasurementRecord: expected bytes, got {type(record).__name__}")
    record = bytes(record)
    # One struct read per block, not a field-by-field reader: a GPU answers with 64 blocks
    # and this loop is on the verifier's hot path. Same checks, same messages.
    total = len(record)
    pos = 0
    blocks: list[AnyMeasurementBlock] = []
    seen: set[int] = set()
    types = _VALUE_TYPES[version]
    for i in range(count):
        if pos + _BLOCK_HEAD.size > total:
            _truncated_block(record, pos, i)
        index, spec, size = _BLOCK_HEAD.unpack_from(record, pos)
        pos += _BLOCK_HEAD.size
        if pos + size > total:
            raise MalformedSpdm(
                f"MeasurementRecord: truncated at block {i} Measurement "
                f"(needs {size} bytes, {total - pos} left)"
            )
        end = pos + size
        if size < _DMTF_HEADER:
            _short_measurement(index, size)
        type_byte, value_size = _DMTF_HEAD.unpack_from(record, pos)
        if value_size != size - _DMTF_HEADER:
            _value_size_mismatch(index, size, value_size)
        value = record[pos + _DMTF_HEADER : end]
        pos = end
        if spec != MEASUREMENT_SPECIFICATION_DMTF:
            raise MalformedSpdm(f"measurement block {index}: specification {spec:#x} is not DMTF")
        if index in seen:
            raise MalformedSpdm(f"measurement index {index} appears twice")
        seen.add(index)
        raw = bool(type_byte & RAW_BIT_STREAM)
        value_type = types.get(type_byte & VALUE_TYPE_MASK)
        if value_type is None:
            blocks.append(UnknownMeasurementBlock(index, type_byte & VALUE_TYPE_MASK, value, raw))
            continue
        if not raw and digest_size != -1:
            if digest_size is None:
                raise MalformedSpdm(f"measurement block {index}: digest under raw-only hashing")
            if len(value) != digest_size:
                raise MalformedSpdm(
                    f"measurement block {index}: digest is {len(value)} bytes, not {digest_size}"
                )
        blocks.append(MeasurementBlock(index, value_type, value, raw))
    if pos != total:
        raise MalformedSpdm(f"MeasurementRecord: {total - pos} unexpected trailing bytes")
    return tuple(blocks)


_BLOCK_HEAD: Final = struct.Struct("<BBH")  # Index, MeasurementSpecification, MeasurementSize
_DMTF_HEAD: Final = struct.Struct("<BH")  # DMTFSpecMeasurementValueType, ...ValueSize
_VALUE_TYPES: Final[dict[SpdmVersion, dict[int, MeasurementValueType]]] = {
    version: {
        int(t): t for t in MeasurementValueType if known_value_type(int(t), version) is not None
    }
    for version in SpdmVersion
}


def _short_measurement(index: int, size: int) -> NoReturn:
    what = f"measurement block {index}"
    if size == 0:
        raise MalformedSpdm(
            f"{what}: truncated at DMTFSpecMeasurementValueType (needs 1 bytes, 0 left)"
        )
    raise MalformedSpdm(
        f"{what}: truncated at DMTFSpecMeasurementValueSize (needs 2 bytes, {size - 1} left)"
    )


def _value_size_mismatch(index: int, size: int, value_size: int) -> NoReturn:
    what = f"measurement block {index}"
    room = size - _DMTF_HEADER
    if value_size > room:
        raise MalformedSpdm(
            f"{what}: truncated at DMTFSpecMeasurementValue (needs {value_size} bytes, {room} left)"
        )
    raise MalformedSpdm(f"{what}: {room - value_size} unexpected trailing bytes")


def _truncated_block(record: bytes, pos: int, i: int) -> NoReturn:
    fields = (("Index", 1), ("MeasurementSpecification", 1), ("MeasurementSize", 2))
    for name, width in fields:
        if pos + width > len(record):
            raise MalformedSpdm(
                f"MeasurementRecord: truncated at block {i} {name} "
                f"(needs {width} bytes, {len(record) - pos} left)"
            )
        pos += width
    raise AssertionError("unreachable")  # pragma: no cover


# --- general opaque data (OpaqueDataFmt1) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpaqueElement:
    """One element of general opaque data: a standards-body registry id, vendor id, data."""

    registry_id: int
    vendor_id: bytes
    data: bytes

    def __post_init__(self) -> None:
        if isinstance(self.registry_id, bool) or not isinstance(self.registry_id, int):
            raise MalformedSpdm("opaque element registry id must be an integer")
        if not 0 <= self.registry_id <= _MAX_REGISTRY_ID:
            raise MalformedSpdm(f"opaque element registry id {self.registry_id} is reserved")
        if not isinstance(self.vendor_id, bytes) or len(self.vendor_id) > 0xFF:
            raise MalformedSpdm("opaque element vendor id must be at most 255 bytes")
        if not isinstance(self.data, bytes) or len(self.data) > 0xFFFF:
            raise MalformedSpdm("opaque element data must be at most 65535 bytes")

    def encode(self) -> bytes:
        out = (
            bytes([self.registry_id, len(self.vendor_id)])
            + self.vendor_id
            + u16(len(self.data))
            + self.data
        )
        return out + bytes(-len(out) % 4)


def encode_opaque_data(elements: tuple[OpaqueElement, ...]) -> bytes:
    """General opaque data holding ``elements`` (at least one, at most 255)."""
    if not 1 <= len(elements) <= 0xFF:
        raise MalformedSpdm("general opaque data holds 1 to 255 elements")
    return bytes([len(elements), 0, 0, 0]) + b"".join(e.encode() for e in elements)


def decode_opaque_data(data: bytes) -> tuple[OpaqueElement, ...]:
    """Parse general opaque data strictly: element count, lengths, zero padding, no slack."""
    if len(data) % 4:
        raise MalformedSpdm("general opaque data length is not a multiple of 4")
    r = Reader(data, "general opaque data")
    total = r.u8("TotalElements")
    r.zeros(3, "Reserved")
    if total == 0:
        raise MalformedSpdm("general opaque data has no elements")
    elements: list[OpaqueElement] = []
    for i in range(total):
        start = r.position
        registry_id = r.u8(f"element {i} ID")
        vendor_id = r.take(r.u8(f"element {i} VendorLen"), f"element {i} VendorID")
        body = r.take(r.u16(f"element {i} OpaqueElementDataLen"), f"element {i} data")
        r.zeros(-(r.position - start) % 4, f"element {i} AlignPadding")
        elements.append(OpaqueElement(registry_id, vendor_id, body))
    r.end()
    return tuple(elements)
