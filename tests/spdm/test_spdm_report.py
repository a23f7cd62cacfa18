"""Recorded SPDM 1.0 / 1.1 measurement reports: GET_MEASUREMENTS ‖ signed MEASUREMENTS.

Self-made reports (signed here with P-256/P-384/P-521) pin the 1.0/1.1 layouts and the
transcript rule; the real H100 report in the interop vectors proves it against a device
nobody on this team built.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import BadSignature, MalformedSpdm, SpdmProtocolError
from ironroot.spdm import (
    REPORT_VERSIONS,
    BaseHashAlgo,
    GetMeasurements,
    MeasurementBlock,
    MeasurementHashAlgo,
    MeasurementReport,
    Measurements,
    MeasurementValueType,
    SpdmVersion,
    UnknownMeasurementBlock,
    check_report_signature,
    measurement_signing_message,
    verify_measurement_report,
)

NONCE = bytes(range(32))
RESPONDER_NONCE = bytes(range(32, 64))
SIZES = {Algorithm.ES256: 64, Algorithm.ES384: 96, Algorithm.ES512: 132}


def _blocks(count: int = 3, size: int = 48) -> tuple[MeasurementBlock, ...]:
    return tuple(
        MeasurementBlock(
            i, MeasurementValueType.MUTABLE_FIRMWARE, hashlib.sha384(bytes([i])).digest()[:size]
        )
        for i in range(1, count + 1)
    )


def _report(
    key: PrivateKey,
    version: SpdmVersion = SpdmVersion.V1_1,
    *,
    blocks: tuple[MeasurementBlock | UnknownMeasurementBlock, ...] | None = None,
    operation: int = 0xFF,
    slot_id: int = 0,
    response_slot: int | None = None,
    response_version: SpdmVersion | None = None,
    opaque: bytes = b"\x03\x00\x02\x00hi",
    responder_nonce: bytes = RESPONDER_NONCE,
) -> bytes:
    request = GetMeasurements(version, operation, True, NONCE, slot_id).encode()
    response = Measurements(
        response_version or version,
        _blocks() if blocks is None else blocks,
        responder_nonce,
        opaque,
        slot_id=slot_id if response_slot is None else response_slot,
    ).encode_unsigned()
    return request + response + key.sign(request + response)


@pytest.mark.parametrize("version", [SpdmVersion.V1_0, SpdmVersion.V1_1])
def test_a_report_whose_responder_nonce_reflects_the_request_is_refused(
    version: SpdmVersion,
) -> None:
    """Signed by the right key, but the responder's Nonce is the requester's, reflected: the
    same refusal as the SPDM 1.2+ requester and evidence verifier make."""
    key = PrivateKey.generate(Algorithm.ES384)
    data = _report(key, version, responder_nonce=NONCE)
    with pytest.raises(SpdmProtocolError, match="MEASUREMENTS reflects the requester's nonce"):
        verify_measurement_report(data, key.public_key)


@pytest.mark.parametrize("alg", [Algorithm.ES256, Algorithm.ES384, Algorithm.ES512])
@pytest.mark.parametrize("version", [SpdmVersion.V1_0, SpdmVersion.V1_1])
def test_self_made_report_verifies(alg: Algorithm, version: SpdmVersion) -> None:
    key = PrivateKey.generate(alg)
    data = _report(key, version)
    report = verify_measurement_report(data, key.public_key)
    assert report.version is version
    assert report.nonce == NONCE
    assert report.responder_nonce == RESPONDER_NONCE
    assert report.blocks == _blocks()
    assert report.opaque_data == b"\x03\x00\x02\x00hi"
    assert len(report.signature) == SIZES[alg]
    assert report.encode() == data
    assert report.transcript == data[: -SIZES[alg]]
    report.verify(key.public_key)
    # 1.0 has no SlotIDParam: 36-byte request; 1.1 adds it: 37 bytes.
    assert len(report.request_bytes) == (36 if version is SpdmVersion.V1_0 else 37)
    assert check_report_signature(data, key.public_key) == SIZES[alg]


def test_measurement_signing_message_before_1_2_is_the_transcript() -> None:
    # No signing context and no hash-then-sign prefix: L1/L2 itself is signed.
    for version in REPORT_VERSIONS:
        assert measurement_signing_message(version, BaseHashAlgo.SHA_384, b"L1L2") == b"L1L2"
    signed = measurement_signing_message(SpdmVersion.V1_2, BaseHashAlgo.SHA_384, b"L1L2")
    assert signed.startswith(b"dmtf-spdm-v1.2.*")
    assert signed.endswith(hashlib.sha384(b"L1L2").digest())


def test_every_flipped_bit_is_a_bad_signature() -> None:
    # Small report: every bit of every byte, signature included.
    key = PrivateKey.generate(Algorithm.ES256)
    data = _report(key, blocks=_blocks(1, 32), opaque=b"")
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(BadSignature):
                verify_measurement_report(bytes(bad), key.public_key)


def test_another_key_is_a_bad_signature() -> None:
    data = _report(PrivateKey.generate(Algorithm.ES384))
    with pytest.raises(BadSignature):
        verify_measurement_report(data, PrivateKey.generate(Algorithm.ES384).public_key)
    with pytest.raises(BadSignature):  # a P-256 key reads a 64-byte signature
        verify_measurement_report(data, PrivateKey.generate(Algorithm.ES256).public_key)


def test_a_signed_1_2_exchange_is_refused_it_needs_the_vca() -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    request = GetMeasurements(SpdmVersion.V1_2, 0xFF, True, NONCE, 0).encode()
    response = Measurements(SpdmVersion.V1_2, _blocks(), RESPONDER_NONCE).encode_unsigned()
    data = request + response + key.sign(request + response)
    with pytest.raises(MalformedSpdm, match="VCA"):
        verify_measurement_report(data, key.public_key)
    with pytest.raises(MalformedSpdm, match="VCA"):
        MeasurementReport.decode(data, signature_size=96)


def test_live_decoders_still_refuse_1_0_and_1_1() -> None:
    request = GetMeasurements(SpdmVersion.V1_1, 0xFF, True, NONCE, 0).encode()
    with pytest.raises(MalformedSpdm, match="not allowed"):
        GetMeasurements.decode(request)
    assert GetMeasurements.decode(request, versions=REPORT_VERSIONS).slot_id == 0
    response = Measurements(SpdmVersion.V1_1, _blocks(), RESPONDER_NONCE).encode()
    with pytest.raises(MalformedSpdm, match="not allowed"):
        Measurements.decode(response, signature_size=0)


def test_1_0_and_1_1_field_rules() -> None:
    with pytest.raises(MalformedSpdm, match="SlotIDParam"):
        GetMeasurements(SpdmVersion.V1_0, 0xFF, True, NONCE, 3)
    with pytest.raises(MalformedSpdm, match="RawBitStreamRequested"):
        GetMeasurements(SpdmVersion.V1_1, 0xFF, True, NONCE, raw_bit_stream_requested=True)
    with pytest.raises(MalformedSpdm, match="ContentChanged"):
        Measurements(SpdmVersion.V1_1, (), RESPONDER_NONCE, content_changed=1)
    with pytest.raises(MalformedSpdm, match="SlotID"):
        Measurements(SpdmVersion.V1_0, (), RESPONDER_NONCE, slot_id=1)
    # RawBitStreamRequested (attribute bit 1) is reserved before 1.2.
    raw_bit = bytes([0x11, 0xE0, 0x03, 0xFF]) + NONCE + b"\x00"
    with pytest.raises(MalformedSpdm, match="reserved attribute"):
        GetMeasurements.decode(raw_bit, versions=REPORT_VERSIONS)
    # MEASUREMENTS Param2: 1.1 reserves bits 7..4 (ContentChanged is 1.2), 1.0 all of them.
    good = Measurements(SpdmVersion.V1_1, (), RESPONDER_NONCE).encode()
    for version, param2 in ((0x11, 0x10), (0x10, 0x01)):
        data = bytes([version]) + good[1:3] + bytes([param2]) + good[4:]
        with pytest.raises(MalformedSpdm, match="Param2"):
            Measurements.decode(data, signature_size=0, versions=REPORT_VERSIONS)


def test_value_types_after_1_1_are_unknown_there() -> None:
    # DeviceMode (5), Version (6) and SVN (7) are SPDM 1.2 types: kept as unknown under 1.1.
    key = PrivateKey.generate(Algorithm.ES384)
    blocks = (
        UnknownMeasurementBlock(1, 5, bytes(16), raw=True),
        UnknownMeasurementBlock(2, 7, bytes(8), raw=True),
        MeasurementBlock(3, MeasurementValueType.IMMUTABLE_ROM, bytes(48)),
    )
    report = verify_measurement_report(_report(key, blocks=blocks), key.public_key)
    assert report.blocks == blocks
    assert [b.known for b in report.blocks] == [False, False, True]


def test_digest_size_is_checked_when_the_hash_is_known() -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    data = _report(key, blocks=_blocks(2, 32))
    verify_measurement_report(data, key.public_key)  # no hash named: any size
    with pytest.raises(MalformedSpdm, match="digest is 32 bytes, not 48"):
        verify_measurement_report(
            data, key.public_key, measurement_hash_algo=MeasurementHashAlgo.SHA_384
        )


def test_answer_must_match_the_request() -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    with pytest.raises(SpdmProtocolError, match="slot"):
        verify_measurement_report(_report(key, slot_id=1, response_slot=2), key.public_key)
    mixed = _report(key, SpdmVersion.V1_1, response_version=SpdmVersion.V1_0, response_slot=0)
    with pytest.raises(SpdmProtocolError, match=r"SPDM 1\.0"):
        verify_measurement_report(mixed, key.public_key)
    with pytest.raises(SpdmProtocolError, match="does not answer index 2"):
        verify_measurement_report(_report(key, operation=2), key.public_key)
    one = _report(key, operation=2, blocks=_blocks(2)[1:])
    assert [b.index for b in verify_measurement_report(one, key.public_key).blocks] == [2]
    with pytest.raises(SpdmProtocolError, match="for operation 0 carries blocks"):
        verify_measurement_report(_report(key, operation=0), key.public_key)


@pytest.mark.parametrize("version", [SpdmVersion.V1_0, SpdmVersion.V1_1])
@pytest.mark.parametrize(
    ("operation", "blocks", "total", "match"),
    [
        (0xFF, (), 0, "MEASUREMENTS answers all measurements with no block"),
        (0, (), 0, "MEASUREMENTS counts no measurement"),
        (0, (), 0xFF, "MEASUREMENTS counts 255 measurements: indices are 1 to 254"),
        (0xFF, _blocks(), 3, "MEASUREMENTS: Param1 is reserved for this operation"),
        (2, _blocks(2)[1:], 1, "MEASUREMENTS: Param1 is reserved for this operation"),
    ],
    ids=["all-no-block", "count-0", "count-255", "all-with-count", "index-with-count"],
)
def test_a_signed_answer_that_cannot_be_is_refused_as_live(
    version: SpdmVersion,
    operation: int,
    blocks: tuple[MeasurementBlock, ...],
    total: int,
    match: str,
) -> None:
    """The rules the requester and the SPDM 1.2+ evidence verifier apply (libspdm's, at every
    version): all measurements answered with no block, a count of none or of 255, a count
    in the reserved Param1 of another operation. Signed by the device, still refused."""
    key = PrivateKey.generate(Algorithm.ES384)
    request = GetMeasurements(version, operation, True, NONCE, 0).encode()
    response = Measurements(
        version, blocks, RESPONDER_NONCE, total_measurements=total
    ).encode_unsigned()
    data = request + response + key.sign(request + response)
    with pytest.raises(SpdmProtocolError, match=f"^{re.escape(match)}$"):
        verify_measurement_report(data, key.public_key)


def test_unsigned_request_and_short_inputs() -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    request = GetMeasurements(SpdmVersion.V1_1, 0xFF, False).encode()
    response = Measurements(SpdmVersion.V1_1, _blocks(), RESPONDER_NONCE).encode_unsigned()
    data = request + response + key.sign(request + response)
    with pytest.raises(SpdmProtocolError, match="signature"):
        verify_measurement_report(data, key.public_key)
    for short in (b"", b"\x11\xe0", bytes(96)):
        with pytest.raises(MalformedSpdm):
            verify_measurement_report(short, key.public_key)
    with pytest.raises(MalformedSpdm):
        MeasurementReport.decode(b"\x11", signature_size=96)
    with pytest.raises(MalformedSpdm):  # truncated after a valid request
        MeasurementReport.decode(_report(key)[:40], signature_size=96)


# --- the real H100 report ------------------------------------------------------------------


def _vector(vectors: Path) -> tuple[bytes, PublicKey]:
    folder = vectors / "gpu" / "nvidia"
    data = bytes.fromhex((folder / "hopperAttestationReport.txt").read_text())
    leaf = x509.load_pem_x509_certificates((folder / "hopperCertChain.txt").read_bytes())[0]
    public = leaf.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return data, PublicKey(public, Algorithm.ES384)


@pytest.mark.vectors
def test_h100_report_verifies_as_spdm_1_1(vectors: Path) -> None:
    data, key = _vector(vectors)
    report = verify_measurement_report(data, key, measurement_hash_algo=MeasurementHashAlgo.SHA_384)
    assert report.version is SpdmVersion.V1_1
    assert report.request_bytes[:4] == bytes.fromhex("11e001ff")
    assert report.nonce.hex() == (
        "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"
    )
    assert len(report.blocks) == 64
    assert {b.value_type for b in report.blocks} == {MeasurementValueType.MUTABLE_FIRMWARE}
    assert len(report.opaque_data) == 422
    assert report.encode() == data


@pytest.mark.slow  # exhaustive: every byte or bit of real evidence (make test)
@pytest.mark.vectors
def test_h100_report_sampled_bit_flips(vectors: Path) -> None:
    # Every 7th byte (a rotating bit); the every-bit run is in the nvidia-gpu evidence tests.
    data, key = _vector(vectors)
    for i in range(0, len(data), 7):
        bad = bytearray(data)
        bad[i] ^= 1 << (i % 8)
        with pytest.raises(BadSignature):
            verify_measurement_report(bytes(bad), key)
