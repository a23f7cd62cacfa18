"""SPDM requester against the simulated responder: full runs and every way to break them."""

from __future__ import annotations

import hashlib

import pytest
from _spdm_helpers import (
    BLOCKS,
    BOTH,
    NOW,
    Device,
    Recorder,
    make_pair,
    make_requester,
    make_responder,
)
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ironroot.crypto import Algorithm
from ironroot.errors import (
    BadSignature,
    MalformedSpdm,
    SpdmErrorResponse,
    SpdmProtocolError,
    VerificationFailed,
)
from ironroot.spdm import (
    BaseAsymAlgo,
    BaseHashAlgo,
    Challenge,
    ErrorCode,
    ErrorResponse,
    GetCapabilities,
    GetDigests,
    GetMeasurements,
    GetVersion,
    MeasurementBlock,
    MeasurementHashAlgo,
    Measurements,
    MeasurementSummaryHashType,
    MeasurementValueType,
    NegotiateAlgorithms,
    OpaqueElement,
    Requester,
    Responder,
    SpdmVersion,
    Transport,
    decode_opaque_data,
)

V12, V13 = SpdmVersion.V1_2, SpdmVersion.V1_3


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


# --- full runs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "asym", "hash_algo"),
    [
        (Algorithm.ES256, BaseAsymAlgo.ECDSA_P256, BaseHashAlgo.SHA_256),
        (Algorithm.ES384, BaseAsymAlgo.ECDSA_P384, BaseHashAlgo.SHA_384),
        (Algorithm.ES512, BaseAsymAlgo.ECDSA_P521, BaseHashAlgo.SHA_512),
    ],
)
@pytest.mark.parametrize("version", [V12, V13])
def test_full_run(
    algorithm: Algorithm, asym: BaseAsymAlgo, hash_algo: BaseHashAlgo, version: SpdmVersion
) -> None:
    dev = Device(algorithm)
    _, requester = make_pair(dev, versions=(version,))
    result = requester.attest()
    assert result.connection.version == version
    assert result.connection.base_asym_algo == asym
    assert result.connection.base_hash_algo == hash_algo
    assert result.connection.measurement_hash_algo == MeasurementHashAlgo.SHA_384
    assert result.certificate_chain.certificates == tuple(dev.chain)
    assert [b.index for b in result.blocks] == [1, 2, 3, 4, 5, 0xFE]
    # Raw ROM and firmware are reported as SHA-384 digests, the rest as given.
    assert result.blocks[0].value == hashlib.sha384(b"rom image bytes").digest()
    assert not result.blocks[0].raw
    assert result.blocks[2].value == bytes(range(48))
    assert result.blocks[3].value == b"1.2.3"
    assert result.blocks[4].secure_version_number() == 7
    assert result.blocks[5].device_mode().operational_mode_state == 4
    assert decode_opaque_data(result.measurements.opaque_data) == (
        OpaqueElement(0, b"", b"ironroot"),
    )
    if version == V13:
        assert result.measurements.requester_context is not None


def test_highest_common_version_is_chosen(device: Device) -> None:
    _, requester = make_pair(device, versions=BOTH, requester_versions=BOTH)
    assert requester.init_connection().version == V13
    _, requester = make_pair(device, versions=BOTH, requester_versions=(V12,))
    assert requester.init_connection().version == V12


def test_signature_checks_out_independently(device: Device) -> None:
    """Rebuild L1/L2 from the wire and verify with pyca directly, not with ironroot code."""
    responder = make_responder(device, (V12,))
    recorder = Recorder(responder)
    make_requester(recorder, device, (V12,)).attest()
    vca = b"".join(req + resp for req, resp in recorder.log[:3])
    request, response = recorder.log[-1]
    assert request[1] == 0xE0
    l1l2 = vca + request + response[:-96]
    prefix = b"dmtf-spdm-v1.2.*" * 4 + bytes(6) + b"responder-measurements signing"
    assert len(prefix) == 100
    signature = response[-96:]
    leaf_public = device.leaf_key.public_key.raw
    assert isinstance(leaf_public, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(
        int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    )
    message = prefix + hashlib.sha384(l1l2).digest()
    leaf_public.verify(der, message, ec.ECDSA(hashes.SHA384()))
    with pytest.raises(InvalidSignature):
        leaf_public.verify(der, message.replace(b"v1.2", b"v1.3"), ec.ECDSA(hashes.SHA384()))


def test_measurement_transcript_spans_unsigned_requests(device: Device) -> None:
    _, requester = make_pair(device)
    requester.attest(operation=1)
    count = requester.get_measurements(0, signed=False)
    assert count.total_measurements == len(BLOCKS)
    assert count.blocks == ()
    first = requester.get_measurements(1, signed=False)
    second = requester.get_measurements(2, signed=False)
    signed = requester.get_measurements(3, signed=True)  # covers all four exchanges
    assert [first.blocks[0].index, second.blocks[0].index, signed.blocks[0].index] == [1, 2, 3]
    requester.get_measurements(4, signed=False)
    requester.get_digests()  # resets L1/L2 on both sides
    requester.get_certificate_chain()
    assert requester.get_measurements(5).blocks[0].index == 5


def test_raw_bit_stream_request(device: Device) -> None:
    _, requester = make_pair(device)
    result = requester.attest(raw_bit_stream=True)
    assert result.blocks[0].raw
    assert result.blocks[0].value == b"rom image bytes"


def test_certificate_in_many_portions(device: Device) -> None:
    responder = make_responder(device)
    recorder = Recorder(responder)
    requester = make_requester(recorder, device, data_transfer_size=512, max_spdm_msg_size=512)
    result = requester.attest()
    portions = [resp for req, resp in recorder.log if req[1] == 0x82]
    assert len(portions) > 2
    assert all(len(p) <= 512 for p in portions)
    assert result.certificate_chain.certificates == tuple(device.chain)


def test_measurements_too_large_for_requester_buffer(device: Device) -> None:
    responder = make_responder(device)
    requester = make_requester(responder, device, data_transfer_size=200, max_spdm_msg_size=200)
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    with pytest.raises(SpdmErrorResponse, match="RESPONSE_TOO_LARGE"):
        requester.get_measurements()


def test_digests_too_large_for_requester_buffer_is_refused_by_the_responder() -> None:
    """A P-521 device's DIGESTS (4 + 64 bytes) does not fit a requester's DataTransferSize of
    60. Old behaviour: the responder sent it anyway (DSP0274: it shall not send a response
    larger than the requester's DataTransferSize) and the requester saw a malformed answer;
    now the responder answers ERROR ResponseTooLarge, as it does for CHALLENGE_AUTH and
    MEASUREMENTS, and keeps its state (a requester with room then gets the chain)."""
    dev = Device(Algorithm.ES512)
    responder = make_responder(dev)
    requester = make_requester(responder, dev, data_transfer_size=60, max_spdm_msg_size=60)
    requester.init_connection()
    with pytest.raises(SpdmErrorResponse, match="RESPONSE_TOO_LARGE"):
        requester.get_digests()
    assert make_requester(responder, dev).attest().certificate_chain.certificates == tuple(
        dev.chain
    )


def test_algorithms_too_large_for_requester_buffer_is_refused_by_the_responder(
    device: Device,
) -> None:
    """ALGORITHMS echoes one AlgStructure per table offered: four tables make it 52 bytes,
    past a requester's DataTransferSize of 42 (the minimum). Old behaviour: sent anyway; now
    ERROR ResponseTooLarge, the VCA not advanced (the same request with room succeeds)."""
    from ironroot.spdm import AlgStructure

    responder = make_responder(device)
    responder(GetVersion().encode())
    capabilities = GetCapabilities(V12, data_transfer_size=42, max_spdm_msg_size=42).encode()
    assert responder(capabilities)[1] == 0x61
    structs = tuple(AlgStructure(alg_type, 1) for alg_type in (2, 3, 4, 5))
    offer = NegotiateAlgorithms(V12, 1, 2, 0x80, 0x02, alg_structs=structs).encode()
    answer = ErrorResponse.decode(responder(offer))
    assert answer.error_code == ErrorCode.RESPONSE_TOO_LARGE
    assert answer.extended_data == (52).to_bytes(4, "little")  # DSP0274: the response's size
    assert responder(offer)[1] == 0x7F  # still waiting for NEGOTIATE_ALGORITHMS, still too large
    responder(GetVersion().encode())
    responder(GetCapabilities(V12).encode())
    assert len(responder(offer)) == 52  # fits a 4096-byte buffer: ALGORITHMS


def test_1_3_only_types_are_hidden_under_1_2() -> None:
    dev = Device()
    blocks = (
        MeasurementBlock(1, MeasurementValueType.IMMUTABLE_ROM, b"rom", raw=True),
        MeasurementBlock(2, MeasurementValueType.INFORMATIONAL, b"note", raw=True),
    )
    for version, count in ((V12, 1), (V13, 2)):
        responder = Responder(dev.leaf_key, dev.chain, blocks, versions=(version,))
        requester = Requester(responder, root_certificate=dev.root, now=NOW)
        assert len(requester.attest().blocks) == count


# --- order and unexpected answers ---------------------------------------------------------


def test_requester_refuses_measurements_before_negotiation(device: Device) -> None:
    sent: list[bytes] = []

    def transport(request: bytes) -> bytes:
        sent.append(request)
        raise AssertionError("nothing must be sent")

    requester = make_requester(transport, device)
    with pytest.raises(SpdmProtocolError, match="init_connection"):
        requester.get_measurements()
    with pytest.raises(SpdmProtocolError, match="init_connection"):
        requester.get_digests()
    assert sent == []


def test_requester_refuses_signed_measurements_without_chain(device: Device) -> None:
    _, requester = make_pair(device)
    requester.init_connection()
    with pytest.raises(SpdmProtocolError, match="no verified certificate chain"):
        requester.get_measurements()
    with pytest.raises(SpdmProtocolError, match="get_digests"):
        requester.get_certificate_chain()
    requester.get_digests()
    with pytest.raises(SpdmProtocolError, match="slot 1 is not provisioned"):
        requester.get_certificate_chain(1)


def test_responder_answers_measurements_before_algorithms_with_error(device: Device) -> None:
    responder = make_responder(device)
    request = GetMeasurements(V12, 0xFF, False).encode()
    assert ErrorResponse.decode(responder(request)).error_code == ErrorCode.UNEXPECTED_REQUEST
    responder(GetVersion().encode())
    responder(GetCapabilities(V12).encode())
    answer = ErrorResponse.decode(responder(request))  # CAPABILITIES done, ALGORITHMS not
    assert answer.error_code == ErrorCode.UNEXPECTED_REQUEST
    assert answer.version == V12
    # VCA can go on after the refusal.
    negotiate = NegotiateAlgorithms(V12, 1, 2, BaseAsymAlgo.ECDSA_P384, BaseHashAlgo.SHA_384)
    assert responder(negotiate.encode())[1] == 0x63
    assert Measurements.decode(responder(request), signature_size=0).blocks


def test_requester_sees_error_when_responder_lost_state(device: Device) -> None:
    responder, requester = make_pair(device)
    requester.attest()
    responder(GetVersion().encode())  # someone else restarted the device's connection
    with pytest.raises(SpdmErrorResponse, match="UNEXPECTED_REQUEST") as info:
        requester.get_measurements()
    assert isinstance(info.value, SpdmProtocolError)
    assert isinstance(info.value, VerificationFailed)


@pytest.mark.parametrize(
    ("size", "error", "data"),
    [
        (4097, ErrorCode.UNSUPPORTED_REQUEST, 0xFE),  # 4097 bytes, padded to 4100: it fits
        (4098, ErrorCode.REQUEST_TOO_LARGE, 0),  # its last byte is not zero: 4098 at least
    ],
)
def test_request_size_over_pci_doe_is_the_message_not_its_padding(
    device: Device, size: int, error: ErrorCode, data: int
) -> None:
    """A DataTransferSize that is not a multiple of 4, over PCI DOE: the padding a request
    arrives with is not the requester's, so only a request that cannot fit however many of
    its trailing zero bytes are padding is RequestTooLarge."""
    responder = make_responder(device, data_transfer_size=4097, max_spdm_msg_size=4097)
    responder_doe = make_responder(
        device, data_transfer_size=4097, max_spdm_msg_size=4097, alignment=4
    )
    vendor = b"\x12\xfe\x00\x00" + bytes(size - 5) + b"\x01"  # VENDOR_DEFINED_REQUEST
    padded = vendor + bytes(-len(vendor) % 4)
    answers = []
    for peer, request in ((responder, vendor), (responder_doe, padded)):
        for step in (GetVersion(), GetCapabilities(V12)):
            peer(step.encode())
        peer(NegotiateAlgorithms(V12, 1, 0, BaseAsymAlgo.ECDSA_P384, BaseHashAlgo.SHA_384).encode())
        answers.append(ErrorResponse.decode(peer(request)))
    for answer in answers:  # the same over MCTP and PCI DOE
        assert (answer.error_code, answer.error_data) == (error, data)


def test_request_size_over_pci_doe_counts_a_decoded_message_whole(device: Device) -> None:
    """A request read at its own length is that long, whatever bytes it ends in: a 1.3
    CHALLENGE (44 bytes, its RequesterContext zero) is over a 42-byte DataTransferSize over
    PCI DOE as over MCTP."""
    challenge = Challenge(V13, 0, MeasurementSummaryHashType.NONE, bytes(range(1, 33)), bytes(8))
    request = challenge.encode()
    assert len(request) == 44
    assert request.endswith(bytes(8))
    for alignment in (1, 4):
        responder = make_responder(
            device, data_transfer_size=42, max_spdm_msg_size=42, alignment=alignment
        )
        responder(GetVersion().encode())
        responder(GetCapabilities(V13).encode())
        offer = NegotiateAlgorithms(V13, 1, 0, BaseAsymAlgo.ECDSA_P384, BaseHashAlgo.SHA_384)
        assert responder(offer.encode())[1] == 0x63
        answer = ErrorResponse.decode(responder(request))
        assert (answer.version, answer.error_code) == (V13, ErrorCode.REQUEST_TOO_LARGE)


def test_responder_error_codes(device: Device) -> None:
    responder = make_responder(device)

    def code(request: bytes) -> int:
        return ErrorResponse.decode(responder(request)).error_code

    assert code(b"\x12") == ErrorCode.INVALID_REQUEST
    assert code(GetCapabilities(V12).encode()) == ErrorCode.UNEXPECTED_REQUEST
    assert code(b"\x12\x84\x00\x00") == ErrorCode.VERSION_MISMATCH  # GET_VERSION is 1.0
    assert code(b"\x10\x84\x00\x01") == ErrorCode.INVALID_REQUEST  # reserved Param2
    unsupported = ErrorResponse.decode(responder(b"\x12\xe4\x00\x00" + bytes(32)))  # KEY_EXCHANGE
    assert unsupported.error_code == ErrorCode.UNSUPPORTED_REQUEST
    assert unsupported.error_data == 0xE4
    assert code(bytes(5000)) == ErrorCode.REQUEST_TOO_LARGE
    responder(GetVersion().encode())
    assert code(GetCapabilities(V13).encode()[:-1]) == ErrorCode.INVALID_REQUEST
    assert code(b"\x11" + GetCapabilities(V12).encode()[1:]) == ErrorCode.VERSION_MISMATCH
    responder(GetCapabilities(V13).encode())
    assert code(GetDigests(V13).encode()) == ErrorCode.UNEXPECTED_REQUEST
    wrong = NegotiateAlgorithms(V12, 1, 0, BaseAsymAlgo.ECDSA_P384, BaseHashAlgo.SHA_384)
    assert code(wrong.encode()) == ErrorCode.VERSION_MISMATCH
    no_common = NegotiateAlgorithms(V13, 1, 0, BaseAsymAlgo.ECDSA_P256, BaseHashAlgo.SHA_256)
    assert code(no_common.encode()) == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (bytes.fromhex("12010000"), SpdmProtocolError),  # DIGESTS to GET_VERSION
        (bytes.fromhex("10040000000100"), MalformedSpdm),  # VERSION announcing 1 entry, none
        (bytes.fromhex("1004"), MalformedSpdm),  # truncated header
        (bytes.fromhex("10040000000100") + bytes(4096), MalformedSpdm),  # over the buffer
        (bytes.fromhex("107f0400"), SpdmErrorResponse),
        (bytes.fromhex("117f0400"), MalformedSpdm),  # ERROR in a version nobody speaks
        ("not bytes", MalformedSpdm),
    ],
)
def test_unexpected_replies_to_get_version(
    device: Device, reply: object, error: type[Exception]
) -> None:
    requester = make_requester(lambda _request: reply, device)  # type: ignore[arg-type,return-value]
    with pytest.raises(error):
        requester.init_connection()


def test_version_byte_must_match_negotiated(device: Device) -> None:
    responder = make_responder(device)

    def downgrade(request: bytes) -> bytes:
        response = responder(request)
        if response[1] == 0x61:
            return b"\x12" + response[1:]
        return response

    requester = make_requester(downgrade, device, (V13,))
    with pytest.raises(SpdmProtocolError, match="SPDMVersion"):
        requester.init_connection()


def test_no_common_version(device: Device) -> None:
    _, requester = make_pair(device, versions=(V12,), requester_versions=(V13,))
    with pytest.raises(SpdmProtocolError, match="no SPDM version in common"):
        requester.init_connection()


def test_no_common_algorithm(device: Device) -> None:
    responder = make_responder(device)
    requester = make_requester(
        responder,
        device,
        base_asym_algo=BaseAsymAlgo.ECDSA_P256,
        base_hash_algo=BaseHashAlgo.SHA_256,
    )
    with pytest.raises(SpdmErrorResponse, match="INVALID_REQUEST"):
        requester.init_connection()


def _rewrite(inner: Transport, code: int, change: object) -> Transport:
    def transport(request: bytes) -> bytes:
        response = inner(request)
        return change(response) if response[1] == code else response  # type: ignore[operator,no-any-return]

    return transport


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [
        (12, "10000000", "BaseAsymAlgo"),  # select P-256, not offered
        (16, "01000000", "do not pair"),  # P-384 with SHA-256
        (8, "00000000", "no measurement hash"),
        (8, "80000000", "unsupported MeasurementHashAlgo"),  # SM3
        (6, "00", "DMTF measurement"),
        (7, "01", "opaque data format"),
        (7, "12", "opaque data format"),  # MULTI_KEY_CONN was not offered
        (12, "00100000", "BaseAsymAlgo"),  # bit 12: not a defined algorithm
        (16, "00010000", "BaseHashAlgo"),  # bit 8: not a defined hash
    ],
)
def test_algorithm_selection_is_checked(
    device: Device, offset: int, value: str, match: str
) -> None:
    new = bytes.fromhex(value)
    responder = make_responder(device)
    transport = _rewrite(responder, 0x63, lambda r: r[:offset] + new + r[offset + len(new) :])
    requester = make_requester(
        transport,
        device,
        base_asym_algo=BaseAsymAlgo.ECDSA_P384,
        base_hash_algo=BaseHashAlgo.SHA_384 | BaseHashAlgo.SHA_256,
    )
    with pytest.raises(SpdmProtocolError, match=match):
        requester.init_connection()


def test_capabilities_are_checked(device: Device) -> None:
    responder = make_responder(device)
    for flags, match in ((b"\x10", "CERT_CAP"), (b"\x0a", "MEAS_CAP")):
        transport = _rewrite(responder, 0x61, lambda r, f=flags: r[:8] + f + r[9:])
        with pytest.raises(SpdmProtocolError, match=match):
            make_requester(transport, device).init_connection()


# --- signatures and transcripts -----------------------------------------------------------


def test_diverged_transcript_fails_signature(device: Device) -> None:
    """The responder sees an extra GET_MEASUREMENTS the requester never sent: L1/L2 differ."""
    responder = make_responder(device, (V12,))

    def inject(request: bytes) -> bytes:
        if request[1] == 0xE0 and request[2] & 1:
            responder(GetMeasurements(V12, 1, False).encode())
        return responder(request)

    requester = make_requester(inject, device, (V12,))
    with pytest.raises(BadSignature):
        requester.attest()


def test_requester_with_different_vca_fails_signature(device: Device) -> None:
    responder = make_responder(device, (V12,))
    requester = make_requester(responder, device, (V12,))
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    # Another requester renegotiates with the same algorithms but other capabilities.
    other = make_requester(responder, device, (V12,), data_transfer_size=4000)
    other.init_connection()
    with pytest.raises(BadSignature):
        requester.get_measurements()


@pytest.mark.parametrize("version", [V12, V13])
def test_replayed_response_for_other_nonce(device: Device, version: SpdmVersion) -> None:
    """A signed answer recorded for one request is refused for the next (fresh nonce)."""
    responder = make_responder(device, (version,))
    recorded: dict[str, bytes] = {}

    def replay(request: bytes) -> bytes:
        response = responder(request)
        if request[1] == 0xE0:
            if "old" in recorded:
                return recorded["old"]
            recorded["old"] = response
        return response

    requester = make_requester(replay, device, (version,))
    requester.attest()
    expected = SpdmProtocolError if version == V13 else BadSignature
    with pytest.raises(expected):  # 1.3: RequesterContext not echoed; 1.2: nonce in L1/L2
        requester.get_measurements()


def test_wrong_requester_context_echo(device: Device) -> None:
    responder = make_responder(device, (V13,))

    def tamper(response: bytes) -> bytes:
        at = len(response) - 96 - 8
        return response[:at] + bytes(8) + response[at + 8 :]

    requester = make_requester(_rewrite(responder, 0x60, tamper), device, (V13,))
    with pytest.raises(SpdmProtocolError, match="RequesterContext"):
        requester.attest()


def _flip(position: int) -> object:
    def change(response: bytes) -> bytes:
        at = position % len(response)
        return response[:at] + bytes([response[at] ^ 0x01]) + response[at + 1 :]

    return change


@pytest.mark.parametrize(
    ("where", "position"),
    [
        ("signature", -1),
        ("signature", -96),
        ("measurement digest", 12 + 10),
        ("responder nonce", -96 - 8 - 16 - 2 - 1),  # opaque data is 16 bytes
        ("opaque data", -96 - 8 - 1),
    ],
)
def test_flipped_bit_fails_signature(device: Device, where: str, position: int) -> None:
    responder = make_responder(device, (V13,))
    requester = make_requester(_rewrite(responder, 0x60, _flip(position)), device, (V13,))
    with pytest.raises(BadSignature):
        requester.attest()


def test_flipped_bit_in_vca_fails_signature(device: Device) -> None:
    """A bit flipped in CAPABILITIES' CTExponent: both parse, but the transcripts differ."""
    responder = make_responder(device, (V12,))
    requester = make_requester(_rewrite(responder, 0x61, _flip(5)), device, (V12,))
    with pytest.raises(BadSignature):
        requester.attest()


def test_wrong_index_or_slot_answered(device: Device) -> None:
    responder = make_responder(device, (V12,))
    requester = make_requester(
        _rewrite(responder, 0x60, lambda r: r[:8] + b"\x02" + r[9:]), device, (V12,)
    )
    with pytest.raises(SpdmProtocolError, match="index 1"):
        requester.attest(operation=1)


def test_unsigned_answer_with_signature_size_wrong(device: Device) -> None:
    responder = make_responder(device, (V12,))
    requester = make_requester(_rewrite(responder, 0x60, lambda r: r[:-1]), device, (V12,))
    with pytest.raises(MalformedSpdm):
        requester.attest()


def test_request_larger_than_responder_buffer(device: Device) -> None:
    responder = make_responder(device, (V13,), data_transfer_size=42, max_spdm_msg_size=42)
    requester = make_requester(responder, device, (V13,))
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()  # many 34-byte portions
    with pytest.raises(SpdmProtocolError, match="DataTransferSize"):
        requester.get_measurements()  # 45 bytes: header, nonce, slot, RequesterContext


def test_get_version_of_another_version_is_refused_in_1_0(device: Device) -> None:
    """Once 1.3 is negotiated, a GET_VERSION that is not 1.0 is VersionMismatch in 1.0
    (DSP0274; libspdm does the same), not in the negotiated version."""
    responder = make_responder(device)
    requester = make_requester(responder, device)
    requester.init_connection()
    error = responder(b"\x13\x84\x00\x00")
    assert error[:4] == bytes([0x10, 0x7F, ErrorCode.VERSION_MISMATCH, 0])
    requester.get_digests()  # and the connection is as it was
