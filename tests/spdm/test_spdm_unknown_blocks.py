"""Measurement blocks of a value type the negotiated version does not define: kept, not refused.

libspdm's sample device reports its hash-extended measurement (type 8, defined from SPDM 1.3)
under SPDM 1.2 as well; a MEASUREMENTS response carrying it, or any type past the enum, must
still verify, with the block's bytes kept for policy.
"""

from __future__ import annotations

import hashlib

import pytest
from _spdm_helpers import BLOCKS, NOW, Device, make_requester

from ironroot.crypto import Algorithm
from ironroot.errors import MalformedSpdm
from ironroot.spdm import (
    MeasurementBlock,
    MeasurementHashAlgo,
    MeasurementValueType,
    Responder,
    SpdmVersion,
    UnknownMeasurementBlock,
    decode_measurement_record,
    verify_spdm_evidence,
)

V12, V13 = SpdmVersion.V1_2, SpdmVersion.V1_3
SHA384 = MeasurementHashAlgo.SHA_384
DIGEST = hashlib.sha384(b"hash-extended log").digest()


def _block(index: int, type_byte: int, value: bytes) -> bytes:
    """A DMTF measurement block assembled by hand (DSP0274 measurement block format)."""
    measurement = bytes([type_byte]) + len(value).to_bytes(2, "little") + value
    return bytes([index, 0x01]) + len(measurement).to_bytes(2, "little") + measurement


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


@pytest.mark.parametrize("number", [8, 9, 10])
def test_types_since_1_3_are_unknown_under_1_2(number: int) -> None:
    data = _block(0x11, number, DIGEST)
    (block,) = decode_measurement_record(data, 1, version=V12, measurement_hash_algo=SHA384)
    assert block == UnknownMeasurementBlock(0x11, number, DIGEST, raw=False)
    assert block.value_type is None
    assert not block.known
    assert block.type_name == "UNKNOWN"
    assert block.encode() == data  # kept byte for byte
    (known,) = decode_measurement_record(data, 1, version=V13, measurement_hash_algo=SHA384)
    assert isinstance(known, MeasurementBlock)
    assert known.value_type is MeasurementValueType(number)


@pytest.mark.parametrize("version", [V12, V13])
@pytest.mark.parametrize("number", [11, 0x40, 0x7F])
def test_types_past_the_enum_are_unknown(version: SpdmVersion, number: int) -> None:
    raw = _block(3, number | 0x80, b"future raw value of any size")
    digest = _block(4, number, b"not a 48-byte digest")  # nothing about it is interpreted
    blocks = decode_measurement_record(
        raw + digest, 2, version=version, measurement_hash_algo=SHA384
    )
    assert blocks == (
        UnknownMeasurementBlock(3, number, b"future raw value of any size", raw=True),
        UnknownMeasurementBlock(4, number, b"not a 48-byte digest"),
    )
    assert blocks[0].dmtf_value_type == number | 0x80


def test_unknown_blocks_keep_the_record_rules() -> None:
    block = _block(7, 0x20, b"x")
    with pytest.raises(MalformedSpdm, match="twice"):
        decode_measurement_record(block + block, 2, version=V13)
    with pytest.raises(MalformedSpdm, match="index 0"):
        decode_measurement_record(_block(0, 0x20, b"x"), 1, version=V13)
    with pytest.raises(MalformedSpdm):
        decode_measurement_record(block[:-1], 1, version=V13)  # truncated value
    with pytest.raises(MalformedSpdm, match="not DMTF"):
        decode_measurement_record(block[:1] + b"\x02" + block[2:], 1, version=V13)


@pytest.mark.parametrize("number", [-1, 128, True])
def test_unknown_block_type_number_is_checked(number: int) -> None:
    with pytest.raises(MalformedSpdm):
        UnknownMeasurementBlock(1, number, b"")


def _responder(device: Device, version: SpdmVersion) -> Responder:
    extra = (
        UnknownMeasurementBlock(0x11, 8, DIGEST),  # as libspdm's sample device sends it
        UnknownMeasurementBlock(0x12, 0x33, b"vendor future type", raw=True),
    )
    return Responder(device.leaf_key, device.chain, (*BLOCKS, *extra), versions=(version,))


@pytest.mark.parametrize("version", [V12, V13])
def test_signed_measurements_with_unknown_blocks_verify(
    device: Device, version: SpdmVersion
) -> None:
    requester = make_requester(_responder(device, version), device, (version,))
    result = requester.attest()
    by_index = {b.index: b for b in result.blocks}
    hem = MeasurementBlock(0x11, MeasurementValueType.HASH_EXTEND_MEASUREMENT, DIGEST)
    assert by_index[0x11] == (hem if version == V13 else UnknownMeasurementBlock(0x11, 8, DIGEST))
    assert by_index[0x12] == UnknownMeasurementBlock(0x12, 0x33, b"vendor future type", True)
    assert isinstance(by_index[1], MeasurementBlock)  # the known ones are still understood
    one = requester.get_measurements(0x12)  # by index too
    assert one.blocks == (by_index[0x12],)


def test_attestation_claims_keep_unknown_blocks(device: Device) -> None:
    from ironroot.attestation import verify_spdm

    nonce = bytes(range(32))
    requester = make_requester(_responder(device, V12), device, (V12,))
    data = requester.evidence(nonce)
    verified = verify_spdm_evidence(data, nonce=nonce, root_certificate=device.root, now=NOW)
    assert UnknownMeasurementBlock(0x11, 8, DIGEST) in verified.blocks
    claims = verify_spdm(data, nonce=nonce, roots=[device.root], now=NOW)
    assert claims.measurements["spdm.17"] == DIGEST
    assert claims.measurements["spdm.18"] == b"vendor future type"
    raw_blocks = {b["index"]: b for b in claims.raw["blocks"]}
    assert raw_blocks[17] == {
        "index": 17,
        "type": "UNKNOWN",
        "type_number": 8,
        "raw": False,
        "value": DIGEST.hex(),
    }
    assert raw_blocks[18]["type_number"] == 0x33
    assert raw_blocks[18]["raw"] is True
    assert raw_blocks[1]["type"] == "IMMUTABLE_ROM"
    assert raw_blocks[1]["type_number"] == 0
    assert claims.svns == {"spdm.5": 7}  # only from the raw, known SVN block
