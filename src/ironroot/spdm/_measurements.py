"""SPDM measurement blocks, the measurement record, DeviceMode, and general opaque data.

Measurement block (DSP0274 "Measurement block format"), little-endian::

    Index(1) MeasurementSpecification(1) MeasurementSize(2) Measurement[MeasurementSize]

With MeasurementSpecification = DMTF (bit 0), Measurement is a DMTF measurement::

    DMTFSpecMeasurementValueType(1) DMTFSpecMeasurementValueSize(2) DMTFSpecMeasurementValue

where bit 7 of the value type says the value is the raw bit stream (else a digest made with
the negotiated MeasurementHashAlgo) and bits 6..0 say what was measured. A DeviceMode raw value
is four 32-bit fields; a SecureVersionNumber raw value is a 64-bit integer.

General opaque data (OpaqueDataFmt1, SPDM 1.2)::

    TotalElements(1) Reserved(3) { ID(1) VendorLen(1) VendorID[VendorLen]
                                   OpaqueElementDataLen(2) OpaqueElementData  pad-to-4 }*
"""

from __future__ import annotations

from dataclasses import dataclass

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
    "DeviceMode",
    "MeasurementBlock",
    "OpaqueElement",
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
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise MalformedSpdm("measurement index must be an integer")
        if not 1 <= self.index <= 0xFE:
            raise MalformedSpdm(f"measurement index {self.index} outside 1..254")
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

    @property
    def dmtf_value_type(self) -> int:
        """The DMTFSpecMeasurementValueType byte."""
        return int(self.value_type) | (RAW_BIT_STREAM if self.raw else 0)

    def encode(self) -> bytes:
        measurement = bytes([self.dmtf_value_type]) + u16(len(self.value)) + self.value
        return (
            bytes([self.index, MEASUREMENT_SPECIFICATION_DMTF])
            + u16(len(measurement))
            + measurement
        )

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


def encode_measurement_record(blocks: tuple[MeasurementBlock, ...]) -> bytes:
    return b"".join(block.encode() for block in blocks)


def decode_measurement_record(
    record: bytes,
    count: int,
    *,
    version: SpdmVersion,
    measurement_hash_algo: MeasurementHashAlgo | None = None,
) -> tuple[MeasurementBlock, ...]:
    """Parse exactly ``count`` blocks filling ``record``.

    With ``measurement_hash_algo`` given, every digest (non-raw) value must have its size;
    under raw-bit-stream-only no digest is allowed.
    """
    digest_size: int | None = -1
    if measurement_hash_algo is not None:
        digest_size = measurement_hash_size(measurement_hash_algo)
    r = Reader(record, "MeasurementRecord")
    blocks: list[MeasurementBlock] = []
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
        try:
            value_type = MeasurementValueType(type_byte & VALUE_TYPE_MASK)
        except ValueError:
            raise MalformedSpdm(
                f"measurement block {index}: reserved value type {type_byte & VALUE_TYPE_MASK}"
            ) from None
        if value_type in TYPES_SINCE_1_3 and version < SpdmVersion.V1_3:
            raise MalformedSpdm(f"measurement block {index}: {value_type.name} needs SPDM 1.3")
        raw = bool(type_byte & RAW_BIT_STREAM)
        if not raw and digest_size != -1:
            if digest_size is None:
                raise MalformedSpdm(f"measurement block {index}: digest under raw-only hashing")
            if len(value) != digest_size:
                raise MalformedSpdm(
                    f"measurement block {index}: digest is {len(value)} bytes, not {digest_size}"
                )
        if index in seen:
            raise MalformedSpdm(f"measurement index {index} appears twice")
        seen.add(index)
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
