"""SPDM measurement blocks, the measurement record, DeviceMode, and general opaque data.

Measurement block (DSP0274 "Measurement block format"), little-endian::

    Index(1) MeasurementSpecification(1) MeasurementSize(2) Measurement[MeasurementSize]

With MeasurementSpecification = DMTF (bit 0), Measurement is a DMTF measurement::

    DMTFSpecMeasurementValueType(1) DMTFSpecMeasurementValueSize(2) DMTFSpecMeasurementValue

where bit 7 of the value type says the value is the raw bit stream (else a digest made with
the negotiated MeasurementHashAlgo) and bits 6..0 say what was measured. A DeviceMode raw value
is four 32-bit fields; a SecureVersionNumber raw value is a 64-bit integer.

A value type the negotiated version reserves (8..10 under SPDM 1.2, 11 and above under 1.3)
still arrives signed: it decodes as an :class:`UnknownMeasurementBlock` that keeps its type
number, raw flag and value bytes untouched for policy to judge. Nothing about it is
interpreted (not even the digest size), and the response that carries it is not rejected.

General opaque data (OpaqueDataFmt1, SPDM 1.2)::

    TotalElements(1) Reserved(3) { ID(1) VendorLen(1) VendorID[VendorLen]
                                   OpaqueElementDataLen(2) OpaqueElementData  pad-to-4 }*
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from ironroot.errors import MalformedSpdm
from ironroot.spdm._codec import Reader, u16, u32
from ironroot.spdm._constants import (
    MEASUREMENT_SPECIFICATION_DMTF,
    RAW_BIT_STREAM,
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
        _check_index(self.index)
        if not isinstance(self.value_type, MeasurementValueType):
            raise MalformedSpdm("measurement value type must be a MeasurementValueType")
        if not isinstance(self.value, bytes) or len(self.value) > _MAX_VALUE:
            raise MalformedSpdm(f"measurement value must be bytes of at most {_MAX_VALUE}")
        device_mode = self.value_type == MeasurementValueType.DEVICE_MODE
        if self.raw and device_mode and len(self.value) != _DEVICE_MODE_SIZE:
            raise MalformedSpdm("a raw DeviceMode measurement is 16 bytes")
        svn = self.value_type == MeasurementValueType.SECURE_VERSION_NUMBER
        if self.raw and svn and len(self.value) != _SVN_SIZE:
            raise MalformedSpdm("a raw SecureVersionNumber measurement is 8 bytes")

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
    r = Reader(record, "MeasurementRecord")
    blocks: list[AnyMeasurementBlock] = []
    seen: set[int] = set()
    for i in range(count):
        index = r.u8(f"block {i} Index")
        spec = r.u8(f"block {i} MeasurementSpecification")
        size = r.u16(f"block {i} MeasurementSize")
        body = Reader(r.take(size, f"block {i} Measurement"), f"measurement block {index}")
        if spec != MEASUREMENT_SPECIFICATION_DMTF:
            raise MalformedSpdm(f"measurement block {index}: specification {spec:#x} is not DMTF")
        type_byte = body.u8("DMTFSpecMeasurementValueType")
        value = body.take(body.u16("DMTFSpecMeasurementValueSize"), "DMTFSpecMeasurementValue")
        body.end()
        if index in seen:
            raise MalformedSpdm(f"measurement index {index} appears twice")
        seen.add(index)
        raw = bool(type_byte & RAW_BIT_STREAM)
        value_type = known_value_type(type_byte & VALUE_TYPE_MASK, version)
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
    r.end()
    return tuple(blocks)


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
