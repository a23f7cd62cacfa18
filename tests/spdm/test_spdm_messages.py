"""SPDM messages: byte layouts field by field (DSP0274 tables), round trips, strict decoding."""

from __future__ import annotations

import pytest

from ironroot.errors import MalformedSpdm
from ironroot.spdm import (
    Algorithms,
    AlgStructure,
    BaseAsymAlgo,
    BaseHashAlgo,
    Capabilities,
    CapabilityFlag,
    Certificate,
    DeviceMode,
    Digests,
    ErrorCode,
    ErrorResponse,
    ExtendedAlgorithm,
    GetCapabilities,
    GetCertificate,
    GetDigests,
    GetMeasurements,
    GetVersion,
    MeasurementBlock,
    MeasurementHashAlgo,
    Measurements,
    MeasurementValueType,
    NegotiateAlgorithms,
    OpaqueElement,
    SpdmVersion,
    Version,
    VersionNumber,
    decode_measurement_record,
    decode_opaque_data,
    encode_opaque_data,
)

V12, V13 = SpdmVersion.V1_2, SpdmVersion.V1_3
NONCE = bytes(range(32))
CONTEXT = bytes.fromhex("a1a2a3a4a5a6a7a8")
DIGEST48 = bytes(range(100, 148))


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


# --- byte-exact layouts, assembled from the DSP0274 field tables -------------------------


def test_get_version_bytes() -> None:
    assert GetVersion().encode() == h("10 84 00 00")
    assert GetVersion.decode(h("10 84 00 00")) == GetVersion()


def test_version_bytes() -> None:
    msg = Version((VersionNumber(1, 2), VersionNumber(1, 3, 1)))
    # header, Reserved, VersionNumberEntryCount, entries 0x1200 and 0x1310 little-endian
    assert msg.encode() == h("10 04 00 00 00 02 0012 1013")
    assert Version.decode(msg.encode()) == msg
    assert [e.spdm_version for e in msg.entries] == [0x12, 0x13]


def test_capabilities_bytes() -> None:
    flags = CapabilityFlag.CERT_CAP | CapabilityFlag.MEAS_CAP_SIG
    msg = Capabilities(
        V12, ct_exponent=12, flags=flags, data_transfer_size=4096, max_spdm_msg_size=8192
    )
    # Reserved, CTExponent, Reserved(2), Flags, DataTransferSize, MaxSPDMmsgSize
    assert msg.encode() == h("12 61 00 00 00 0c 0000 12000000 00100000 00200000")
    assert Capabilities.decode(msg.encode()) == msg
    request = GetCapabilities(V13, data_transfer_size=42, max_spdm_msg_size=42)
    assert request.encode() == h("13 e1 00 00 00 00 0000 00000000 2a000000 2a000000")
    assert GetCapabilities.decode(request.encode()) == request


def test_negotiate_algorithms_bytes() -> None:
    msg = NegotiateAlgorithms(V12, 0x01, 0x02, BaseAsymAlgo.ECDSA_P384, BaseHashAlgo.SHA_384)
    expected = h(
        "12 e3 00 00"  # header, Param1 = 0 AlgStructure tables
        "2000"  # Length 32
        "01 02"  # MeasurementSpecification DMTF, OtherParamsSupport OpaqueDataFmt1
        "80000000 02000000"  # BaseAsymAlgo P-384 (bit 7), BaseHashAlgo SHA-384 (bit 1)
        + "00" * 12  # Reserved
        + "00 00 00 00"  # ExtAsymCount, ExtHashCount, Reserved, MELspecification
    )
    assert msg.encode() == expected
    assert NegotiateAlgorithms.decode(expected) == msg


def test_negotiate_algorithms_with_tables_and_extensions() -> None:
    msg = NegotiateAlgorithms(
        V13,
        0x01,
        0x12,
        int(BaseAsymAlgo.ECDSA_P256 | BaseAsymAlgo.ECDSA_P384),
        int(BaseHashAlgo.SHA_256),
        mel_specification=1,
        ext_asym=(ExtendedAlgorithm(4, 0x1234),),
        alg_structs=(AlgStructure(2, 0x0018), AlgStructure(3, 0x0002, (0xDEADBEEF,))),
    )
    data = msg.encode()
    assert data[2] == 2  # Param1: two tables
    assert int.from_bytes(data[4:6], "little") == len(data) == 32 + 4 + 4 + 8
    assert data[32:36] == h("04 00 3412")  # RegistryID IANA, Reserved, AlgorithmID
    assert data[36:40] == h("02 20 1800")  # AlgType DHE, AlgCount 0x20, AlgSupported
    assert data[40:48] == h("03 21 0200 efbeadde")
    assert NegotiateAlgorithms.decode(data) == msg


def test_algorithms_bytes() -> None:
    msg = Algorithms(
        V12, 0x01, 0x02, MeasurementHashAlgo.SHA_384, BaseAsymAlgo.ECDSA_P384, BaseHashAlgo.SHA_384
    )
    expected = h(
        "12 63 00 00 2400 01 02"  # Length 36, MeasurementSpecificationSel, OtherParamsSelection
        "04000000 80000000 02000000"  # MeasurementHashAlgo SHA-384, BaseAsymSel, BaseHashSel
        + "00" * 11  # Reserved
        + "00 00 00 0000"  # MELspecificationSel, ExtAsymSelCount, ExtHashSelCount, Reserved
    )
    assert msg.encode() == expected
    assert Algorithms.decode(expected) == msg


def test_digests_bytes() -> None:
    d0, d2 = b"\x11" * 48, b"\x22" * 48
    msg = Digests(V13, 0b101, (d0, d2), supported_slot_mask=0b111)
    assert msg.encode() == h("13 01 07 05") + d0 + d2
    assert Digests.decode(msg.encode(), hash_size=48) == msg
    assert msg.digest_for(0) == d0
    assert msg.digest_for(2) == d2
    assert msg.digest_for(1) is None
    assert msg.digest_for(9) is None


def test_certificate_bytes() -> None:
    request = GetCertificate(V12, 0, 0x0100, 0x0400)
    assert request.encode() == h("12 82 00 00 0001 0004")
    assert GetCertificate.decode(request.encode()) == request
    size_only = GetCertificate(V13, 3, 0, 0, slot_size_requested=True)
    assert size_only.encode() == h("13 82 03 01 0000 0000")
    assert GetCertificate.decode(size_only.encode()) == size_only
    response = Certificate(V12, 0, b"\xaa\xbb\xcc", 0x0102)
    assert response.encode() == h("12 02 00 00 0300 0201 aabbcc")
    assert Certificate.decode(response.encode()) == response


def test_get_measurements_bytes() -> None:
    unsigned = GetMeasurements(V12, 0, False)
    assert unsigned.encode() == h("12 e0 00 00")
    signed13 = GetMeasurements(V13, 0xFF, True, NONCE, 0, requester_context=CONTEXT)
    assert signed13.encode() == h("13 e0 01 ff") + NONCE + h("00") + CONTEXT
    raw13 = GetMeasurements(
        V13,
        5,
        False,
        raw_bit_stream_requested=True,
        new_measurement_requested=True,
        requester_context=CONTEXT,
    )
    assert raw13.encode() == h("13 e0 06 05") + CONTEXT
    for msg in (unsigned, signed13, raw13):
        assert GetMeasurements.decode(msg.encode()) == msg


def test_measurement_block_bytes() -> None:
    digest = MeasurementBlock(1, MeasurementValueType.IMMUTABLE_ROM, DIGEST48)
    # Index, MeasurementSpecification DMTF, MeasurementSize 51, ValueType 0, ValueSize 48
    assert digest.encode() == h("01 01 3300 00 3000") + DIGEST48
    svn = MeasurementBlock(
        7, MeasurementValueType.SECURE_VERSION_NUMBER, (0x0102).to_bytes(8, "little"), raw=True
    )
    assert svn.encode() == h("07 01 0b00 87 0800 0201000000000000")
    assert svn.secure_version_number() == 0x0102
    mode = DeviceMode(0x4, 0x4, 0x3, 0x1)
    block = MeasurementBlock(0xFE, MeasurementValueType.DEVICE_MODE, mode.encode(), raw=True)
    assert block.encode()[:7] == h("fe 01 1300 85 1000")
    assert block.device_mode() == mode


def test_measurements_bytes() -> None:
    block = MeasurementBlock(1, MeasurementValueType.MUTABLE_FIRMWARE, DIGEST48)
    msg = Measurements(
        V13,
        (block,),
        NONCE,
        b"\x01\x02\x03\x04",
        CONTEXT,
        b"\x5a" * 96,
        slot_id=0,
        content_changed=1,
    )
    expected = (
        h("13 60 00 10 01 370000")  # Param2 = slot 0 | ContentChanged 01b; 1 block, 55 bytes
        + block.encode()
        + NONCE
        + h("0400 01020304")
        + CONTEXT
        + b"\x5a" * 96
    )
    assert msg.encode() == expected
    assert msg.encode_unsigned() == expected[:-96]
    assert Measurements.decode(expected, signature_size=96) == msg
    count = Measurements(V12, (), NONCE, total_measurements=6)
    assert count.encode() == h("12 60 06 00 00 000000") + NONCE + h("0000")


def test_error_bytes() -> None:
    msg = ErrorResponse(V12, ErrorCode.UNSUPPORTED_REQUEST, 0xE0)
    assert msg.encode() == h("12 7f 07 e0")
    assert ErrorResponse.decode(msg.encode()) == msg
    assert msg.name == "UNSUPPORTED_REQUEST"
    ready = ErrorResponse(V13, ErrorCode.RESPONSE_NOT_READY, 0, h("0a e0 01 03"))
    assert ErrorResponse.decode(ready.encode()) == ready


def test_opaque_data_format_1_bytes() -> None:
    elements = (OpaqueElement(0, b"", b"abc"), OpaqueElement(3, b"\x86\x80", b"\x01"))
    data = encode_opaque_data(elements)
    # TotalElements, Reserved(3); ID, VendorLen, [VendorID], DataLen(2), data, pad to 4
    assert data == h("02 00000000 00 0300 616263 0003 02 8680 0100 01 00")
    assert decode_opaque_data(data) == elements


# --- strict decoding ---------------------------------------------------------------------

_SAMPLES = {
    "GetVersion": (GetVersion.decode, GetVersion().encode()),
    "Version": (Version.decode, Version((VersionNumber(1, 2),)).encode()),
    "GetCapabilities": (GetCapabilities.decode, GetCapabilities(V12).encode()),
    "Capabilities": (Capabilities.decode, Capabilities(V13, flags=0x12).encode()),
    "NegotiateAlgorithms": (
        NegotiateAlgorithms.decode,
        NegotiateAlgorithms(V12, 1, 2, 0x80, 0x2, alg_structs=(AlgStructure(2, 8),)).encode(),
    ),
    "Algorithms": (Algorithms.decode, Algorithms(V13, 1, 2, 4, 0x80, 2).encode()),
    "GetDigests": (GetDigests.decode, GetDigests(V12).encode()),
    "Digests": (lambda d: Digests.decode(d, hash_size=48), Digests(V12, 1, (DIGEST48,)).encode()),
    "GetCertificate": (GetCertificate.decode, GetCertificate(V12, 0, 0, 100).encode()),
    "Certificate": (Certificate.decode, Certificate(V12, 0, b"abc", 7).encode()),
    "GetMeasurements": (
        GetMeasurements.decode,
        GetMeasurements(V13, 0xFF, True, NONCE, 0, requester_context=CONTEXT).encode(),
    ),
    "Measurements": (
        lambda d: Measurements.decode(d, signature_size=96),
        Measurements(
            V13,
            (MeasurementBlock(1, MeasurementValueType.IMMUTABLE_ROM, DIGEST48),),
            NONCE,
            b"op",
            CONTEXT,
            b"s" * 96,
        ).encode(),
    ),
    "ErrorResponse": (ErrorResponse.decode, ErrorResponse(V12, 4).encode()),
}


@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_every_truncation_is_rejected(name: str) -> None:
    decode, data = _SAMPLES[name]
    decode(data)
    for cut in range(len(data)):
        if name == "ErrorResponse" and cut >= 4:
            continue  # ExtendedErrorData is optional: a 4-byte ERROR is complete
        with pytest.raises(MalformedSpdm):
            decode(data[:cut])


@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_trailing_bytes_are_rejected(name: str) -> None:
    decode, data = _SAMPLES[name]
    extra = bytes(33) if name == "ErrorResponse" else b"\x00"
    with pytest.raises(MalformedSpdm):
        decode(data + extra)


@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_wrong_code_is_rejected(name: str) -> None:
    decode, data = _SAMPLES[name]
    with pytest.raises(MalformedSpdm, match="RequestResponseCode"):
        decode(data[:1] + bytes([data[1] ^ 0x02]) + data[2:])


@pytest.mark.parametrize("name", sorted(_SAMPLES))
@pytest.mark.parametrize("version", [0x00, 0x11, 0x14, 0x20, 0xFF])
def test_wrong_version_is_rejected(name: str, version: int) -> None:
    decode, data = _SAMPLES[name]
    with pytest.raises(MalformedSpdm, match="SPDMVersion"):
        decode(bytes([version]) + data[1:])


@pytest.mark.parametrize(
    "name", sorted(n for n in _SAMPLES if n not in {"GetVersion", "Version", "ErrorResponse"})
)
def test_negotiated_messages_reject_version_1_0(name: str) -> None:
    decode, data = _SAMPLES[name]
    with pytest.raises(MalformedSpdm, match="not allowed"):
        decode(b"\x10" + data[1:])


def _poke(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + bytes([value]) + data[offset + 1 :]


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("GetVersion", 2),
        ("GetVersion", 3),
        ("Version", 4),  # Reserved
        ("GetCapabilities", 2),  # Param1 (1.3 supported-algorithms request is not used)
        ("GetCapabilities", 4),
        ("GetCapabilities", 6),
        ("Capabilities", 7),
        ("NegotiateAlgorithms", 3),  # Param2
        ("NegotiateAlgorithms", 16),  # Reserved(12)
        ("NegotiateAlgorithms", 30),  # Reserved
        ("NegotiateAlgorithms", 31),  # MELspecification is reserved in 1.2
        ("NegotiateAlgorithms", 7),  # OtherParamsSupport bit 4 is reserved in 1.2
        ("Algorithms", 3),
        ("Algorithms", 25),
        ("Algorithms", 35),
        ("GetDigests", 2),
        ("GetCertificate", 2),  # Param1 high nibble
        ("GetCertificate", 3),  # Param2 is reserved in 1.2
        ("Certificate", 3),
        ("GetMeasurements", 2),  # attribute bit 3
        ("GetMeasurements", 36),  # SlotIDParam high nibble
        ("Measurements", 3),  # Param2 bits 7..6
    ],
)
def test_reserved_fields_are_rejected(name: str, offset: int) -> None:
    decode, data = _SAMPLES[name]
    poisoned = {2: 0x10, 3: 0x80, 7: 0x10, 36: 0x10}.get(offset, 0x01)
    if name in {"GetCertificate", "GetMeasurements"} and offset == 2:
        poisoned = 0x80 if name == "GetCertificate" else 0x08
    if name == "Measurements":
        poisoned = 0x40
    with pytest.raises(MalformedSpdm):
        decode(_poke(data, offset, data[offset] | poisoned))


def test_length_fields_must_match() -> None:
    decode, data = _SAMPLES["NegotiateAlgorithms"]
    with pytest.raises(MalformedSpdm, match="Length"):
        decode(_poke(data, 4, data[4] + 1))
    decode, data = _SAMPLES["Algorithms"]
    with pytest.raises(MalformedSpdm, match="Length"):
        decode(_poke(data, 4, data[4] - 1))


def test_count_mismatches_are_rejected() -> None:
    _, version = _SAMPLES["Version"]
    with pytest.raises(MalformedSpdm):
        Version.decode(_poke(version, 5, 2))  # two entries announced, one present
    with pytest.raises(MalformedSpdm, match="no version entries"):
        Version.decode(h("10 04 00 00 00 00"))
    _, digests = _SAMPLES["Digests"]
    with pytest.raises(MalformedSpdm):
        Digests.decode(_poke(digests, 3, 0x03), hash_size=48)  # two slots, one digest
    _, negotiate = _SAMPLES["NegotiateAlgorithms"]
    with pytest.raises(MalformedSpdm):
        NegotiateAlgorithms.decode(_poke(negotiate, 2, 2))  # two tables announced
    _, certificate = _SAMPLES["Certificate"]
    with pytest.raises(MalformedSpdm, match="CertChain"):
        Certificate.decode(_poke(certificate, 4, 4))  # PortionLength 4, 3 bytes sent


def test_measurements_count_and_record_mismatches() -> None:
    _, data = _SAMPLES["Measurements"]
    decode = _SAMPLES["Measurements"][0]
    with pytest.raises(MalformedSpdm):
        decode(_poke(data, 4, 2))  # NumberOfBlocks 2, one block
    with pytest.raises(MalformedSpdm):
        decode(_poke(data, 4, 0))  # NumberOfBlocks 0, record not empty
    with pytest.raises(MalformedSpdm):
        decode(_poke(data, 5, data[5] - 1))  # MeasurementRecordLength short by one
    with pytest.raises(MalformedSpdm):
        decode(_poke(data, 10, data[10] + 1))  # MeasurementSize bigger than the measurement
    with pytest.raises(MalformedSpdm):
        decode(_poke(data, 13, data[13] - 1))  # DMTFSpecMeasurementValueSize short


def test_measurement_record_rules() -> None:
    def record(*blocks: bytes) -> bytes:
        return b"".join(blocks)

    digest = MeasurementBlock(1, MeasurementValueType.IMMUTABLE_ROM, DIGEST48).encode()
    sha384 = MeasurementHashAlgo.SHA_384
    assert decode_measurement_record(digest, 1, version=V12, measurement_hash_algo=sha384)
    with pytest.raises(MalformedSpdm, match="digest is 48 bytes, not 32"):
        decode_measurement_record(
            digest, 1, version=V12, measurement_hash_algo=MeasurementHashAlgo.SHA_256
        )
    with pytest.raises(MalformedSpdm, match="raw-only"):
        decode_measurement_record(
            digest, 1, version=V12, measurement_hash_algo=MeasurementHashAlgo.RAW_BIT_STREAM_ONLY
        )
    with pytest.raises(MalformedSpdm, match="twice"):
        decode_measurement_record(record(digest, digest), 2, version=V12)
    with pytest.raises(MalformedSpdm, match="index 0"):
        decode_measurement_record(_poke(digest, 0, 0), 1, version=V12)
    with pytest.raises(MalformedSpdm, match="index 255"):
        decode_measurement_record(_poke(digest, 0, 0xFF), 1, version=V12)
    with pytest.raises(MalformedSpdm, match="not DMTF"):
        decode_measurement_record(_poke(digest, 1, 0x02), 1, version=V12)
    informational = MeasurementBlock(9, MeasurementValueType.INFORMATIONAL, b"i", raw=True)
    assert decode_measurement_record(informational.encode(), 1, version=V13) == (informational,)
    mode = MeasurementBlock(0xFE, MeasurementValueType.DEVICE_MODE, bytes(16), raw=True).encode()
    with pytest.raises(MalformedSpdm, match="16 bytes"):
        decode_measurement_record(mode[:2] + h("1200 85 0f00") + bytes(15), 1, version=V12)


def test_algorithms_must_select_at_most_one() -> None:
    good = Algorithms(V12, 1, 2, 4, 0x80, 2).encode()
    with pytest.raises(MalformedSpdm, match="BaseAsymSel selects more than one"):
        Algorithms.decode(good[:12] + h("90000000") + good[16:])
    with pytest.raises(MalformedSpdm, match="MeasurementHashAlgo selects more than one"):
        Algorithms.decode(good[:8] + h("06000000") + good[12:])
    with pytest.raises(MalformedSpdm):
        Algorithms(V12, 1, 0x03, 4, 0x80, 2)  # two opaque data formats


def test_negotiate_algorithms_limits() -> None:
    many = tuple(ExtendedAlgorithm(1, i) for i in range(21))
    with pytest.raises(MalformedSpdm, match="extended algorithms"):
        NegotiateAlgorithms(V12, 1, 0, 0x80, 2, ext_asym=many)
    with pytest.raises(MalformedSpdm, match="ascending"):
        NegotiateAlgorithms(
            V12, 1, 0, 0x80, 2, alg_structs=(AlgStructure(3, 1), AlgStructure(2, 1))
        )
    with pytest.raises(MalformedSpdm, match="AlgType"):
        AlgStructure(1, 1)
    data = NegotiateAlgorithms(V12, 1, 0, 0x80, 2, alg_structs=(AlgStructure(2, 1),)).encode()
    with pytest.raises(MalformedSpdm, match="fixed algorithm byte count"):
        NegotiateAlgorithms.decode(_poke(data, 33, 0x30))


def test_capabilities_rules() -> None:
    with pytest.raises(MalformedSpdm, match="DataTransferSize 41"):
        GetCapabilities(V12, data_transfer_size=41, max_spdm_msg_size=4096)
    with pytest.raises(MalformedSpdm, match="MaxSPDMmsgSize"):
        Capabilities(V12, data_transfer_size=4096, max_spdm_msg_size=1024)
    good = Capabilities(V12).encode()
    with pytest.raises(MalformedSpdm, match="MEAS_CAP"):
        Capabilities.decode(good[:8] + h("18000000") + good[12:])


def test_digests_rules() -> None:
    with pytest.raises(MalformedSpdm, match=r"reserved before SPDM 1\.3"):
        Digests.decode(h("12 01 01 01") + DIGEST48, hash_size=48)
    with pytest.raises(MalformedSpdm, match="not a supported slot"):
        Digests.decode(h("13 01 01 03") + DIGEST48 * 2, hash_size=48)


def test_get_measurements_rules() -> None:
    with pytest.raises(MalformedSpdm, match="32-byte nonce"):
        GetMeasurements(V12, 1, True, b"short")
    with pytest.raises(MalformedSpdm, match="only in signed"):
        GetMeasurements(V12, 1, False, NONCE)
    with pytest.raises(MalformedSpdm, match="8-byte RequesterContext"):
        GetMeasurements(V13, 1, False)
    with pytest.raises(MalformedSpdm, match=r"only from SPDM 1\.3"):
        GetMeasurements(V12, 1, False, requester_context=CONTEXT)
    with pytest.raises(MalformedSpdm, match="SlotID 9"):
        GetMeasurements(V12, 1, True, NONCE, 9)
    assert GetMeasurements(V12, 1, True, NONCE, 0xF).encode()[-1] == 0x0F
    with pytest.raises(MalformedSpdm):  # NewMeasurementRequested is reserved in 1.2
        GetMeasurements.decode(h("12 e0 04 01"))


def test_measurements_rules() -> None:
    with pytest.raises(MalformedSpdm, match="1024"):
        Measurements(V12, (), NONCE, bytes(1025))
    data = Measurements(V12, (), NONCE).encode()
    with pytest.raises(MalformedSpdm, match="OpaqueDataLength 1025"):
        Measurements.decode(data[:-2] + h("0104") + bytes(1025), signature_size=0)
    with pytest.raises(MalformedSpdm, match="ContentChanged"):
        Measurements.decode(_poke(data, 3, 0x30), signature_size=0)
    with pytest.raises(MalformedSpdm, match="Signature"):
        Measurements.decode(data, signature_size=96)


def test_error_rules() -> None:
    with pytest.raises(MalformedSpdm, match="reserved"):
        ErrorResponse.decode(h("12 7f 00 00"))
    with pytest.raises(MalformedSpdm, match="reserved"):
        ErrorResponse.decode(h("12 7f 30 00"))
    with pytest.raises(MalformedSpdm, match="trailing"):
        ErrorResponse.decode(h("12 7f 01 00") + bytes(33))


def test_opaque_data_rules() -> None:
    good = encode_opaque_data((OpaqueElement(0, b"", b"abc"),))
    with pytest.raises(MalformedSpdm, match="multiple of 4"):
        decode_opaque_data(good + b"\x00")
    with pytest.raises(MalformedSpdm, match="AlignPadding"):
        decode_opaque_data(good[:-1] + b"\x01")
    with pytest.raises(MalformedSpdm, match="no elements"):
        decode_opaque_data(h("00 000000"))
    with pytest.raises(MalformedSpdm, match="reserved"):
        decode_opaque_data(_poke(good, 4, 0x0C))  # registry id 12 is not defined
    with pytest.raises(MalformedSpdm):
        decode_opaque_data(_poke(good, 0, 2))  # two elements announced
    with pytest.raises(MalformedSpdm, match="trailing"):
        decode_opaque_data(good + bytes(4))
    with pytest.raises(MalformedSpdm, match="1 to 255"):
        encode_opaque_data(())


def test_value_constructors_reject_bad_values() -> None:
    with pytest.raises(MalformedSpdm):
        VersionNumber(16, 0)
    with pytest.raises(MalformedSpdm):
        MeasurementBlock(0, MeasurementValueType.IMMUTABLE_ROM, DIGEST48)
    with pytest.raises(MalformedSpdm):
        MeasurementBlock(1, 3, DIGEST48)  # type: ignore[arg-type]
    with pytest.raises(MalformedSpdm, match="8 bytes"):
        MeasurementBlock(1, MeasurementValueType.SECURE_VERSION_NUMBER, b"\x01", raw=True)
    with pytest.raises(MalformedSpdm, match="not a raw DeviceMode"):
        MeasurementBlock(1, MeasurementValueType.IMMUTABLE_ROM, DIGEST48).device_mode()
    with pytest.raises(MalformedSpdm, match="not a raw SecureVersionNumber"):
        MeasurementBlock(1, MeasurementValueType.IMMUTABLE_ROM, DIGEST48).secure_version_number()
    with pytest.raises(MalformedSpdm):
        DeviceMode(2**32, 0, 0, 0)
    with pytest.raises(MalformedSpdm):
        GetCertificate(V12, 0, 0, 1, slot_size_requested=True)
    with pytest.raises(MalformedSpdm):
        GetDigests(SpdmVersion.V1_0)
    with pytest.raises(MalformedSpdm):
        Certificate(V12, 8, b"", 0)


# --- decoded once per exact bytes ---------------------------------------------------------


def test_a_vca_message_decoded_again_from_the_same_bytes_is_the_same_message() -> None:
    """The VCA messages (the same bytes in every session) are decoded once per exact bytes:
    the same frozen object again; other bytes are decoded anew, and a refusal is refused
    every time (it is never remembered)."""
    offer = NegotiateAlgorithms(
        V12,
        measurement_specification=0x01,
        other_params_support=0x02,
        base_asym_algo=BaseAsymAlgo.ECDSA_P384,
        base_hash_algo=BaseHashAlgo.SHA_384,
    ).encode()
    first = NegotiateAlgorithms.decode(offer)
    assert NegotiateAlgorithms.decode(bytes(offer)) is first
    assert NegotiateAlgorithms.decode(bytearray(offer)) == first  # not bytes: decoded anew
    other = bytearray(offer)
    other[8] = 0x01  # BaseAsymAlgo: another offer
    assert NegotiateAlgorithms.decode(bytes(other)).base_asym_algo == 0x01
    reserved = bytearray(offer)
    reserved[20] = 0xFF  # a reserved byte set
    for _ in range(2):
        with pytest.raises(MalformedSpdm):
            NegotiateAlgorithms.decode(bytes(reserved))
    # The same bytes are not another message type's: each type decodes them itself.
    with pytest.raises(MalformedSpdm):
        Algorithms.decode(offer)
