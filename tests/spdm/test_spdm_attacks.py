"""Attacks on the live state machines: a malicious requester against the Responder and a
scripted malicious responder against the Requester. Each ends in an SPDM ERROR (responder)
or a typed SpdmProtocolError (requester), within a bounded number of exchanges."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _spdm_helpers import Device, make_requester, make_responder

from ironroot.crypto import Algorithm
from ironroot.errors import MalformedSpdm, SpdmErrorResponse, SpdmProtocolError
from ironroot.spdm import (
    Certificate,
    Challenge,
    ErrorResponse,
    GetCapabilities,
    GetCertificate,
    GetDigests,
    GetMeasurements,
    GetVersion,
    MeasurementSummaryHashType,
    Responder,
    SpdmVersion,
    Version,
    VersionNumber,
)
from ironroot.spdm._constants import MAX_TRANSCRIPT_SIZE, ErrorCode

V12 = SpdmVersion.V1_2
ERROR = 0x7F
GET_VERSION, GET_DIGESTS, GET_CERTIFICATE, CHALLENGE = 0x84, 0x81, 0x82, 0x83
NEGOTIATE_ALGORITHMS, GET_MEASUREMENTS = 0xE3, 0xE0


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


def _negotiated(device: Device) -> Responder:
    """A responder after a VCA run by Ironroot's own requester, at SPDM 1.2."""
    responder = make_responder(device, (V12,))
    make_requester(responder, device, (V12,)).init_connection()
    return responder


def _error_code(response: bytes) -> int:
    assert response[1] == ERROR, response.hex()
    return ErrorResponse.decode(response).error_code


# --- a malicious requester against the Responder -----------------------------------------------


def test_unsigned_measurements_cannot_grow_l1l2_without_bound(device: Device) -> None:
    responder = _negotiated(device)
    request = GetMeasurements(V12, 0xFE, False).encode()
    size = len(request) + len(responder(request))
    answers = [responder(request) for _ in range(MAX_TRANSCRIPT_SIZE // size + 2)]
    errors = [i for i, answer in enumerate(answers) if answer[1] == ERROR]
    assert len(errors) == 1, "L1/L2 grew past MAX_TRANSCRIPT_SIZE"
    assert _error_code(answers[errors[0]]) == ErrorCode.UNSPECIFIED
    # the refusal reset L1/L2: the same request is answered again after it
    assert errors[0] < len(answers) - 1


def test_certificate_requests_cannot_grow_b_without_bound(device: Device) -> None:
    responder = _negotiated(device)
    responder(GetDigests(V12).encode())
    request = GetCertificate(V12, 0, 0, 1024).encode()
    size = len(request) + len(responder(request))
    answers = [responder(request) for _ in range(MAX_TRANSCRIPT_SIZE // size + 2)]
    assert _error_code(answers[-1]) == ErrorCode.UNSPECIFIED
    # B stays refused (never truncated) until GET_DIGESTS starts it again
    assert _error_code(responder(request)) == ErrorCode.UNSPECIFIED
    assert responder(GetDigests(V12).encode())[1] == 0x01
    assert responder(request)[1] == 0x02


def test_requester_l1l2_is_bounded_too(device: Device) -> None:
    """The requester's own L1/L2 stops at the bound with a typed error, whoever refuses first."""
    requester = make_requester(make_responder(device, (V12,)), device, (V12,))
    requester.init_connection()
    for _ in range(MAX_TRANSCRIPT_SIZE // 64):  # far fewer exchanges fill it
        try:
            requester.get_measurements(0xFE, signed=False)
        except SpdmProtocolError:
            break
    else:
        pytest.fail("the requester's L1/L2 grew past MAX_TRANSCRIPT_SIZE")
    assert requester.connection is None


def test_requests_out_of_order_are_refused(device: Device) -> None:
    responder = make_responder(device, (V12,))
    challenge = Challenge(V12, 0, MeasurementSummaryHashType.NONE, bytes(32)).encode()
    assert _error_code(responder(challenge)) == ErrorCode.UNEXPECTED_REQUEST
    assert responder(GetVersion().encode())[1] == 0x04
    capabilities = GetCapabilities(V12, data_transfer_size=4096, max_spdm_msg_size=4096).encode()
    responder(capabilities)
    assert _error_code(responder(challenge)) == ErrorCode.UNEXPECTED_REQUEST  # before ALGORITHMS
    assert _error_code(responder(GetDigests(V12).encode())) == ErrorCode.UNEXPECTED_REQUEST


def test_get_version_mid_session_resets_the_state(device: Device) -> None:
    responder = _negotiated(device)
    assert responder(GetDigests(V12).encode())[1] == 0x01
    assert responder(GetVersion().encode())[1] == 0x04
    assert _error_code(responder(GetDigests(V12).encode())) == ErrorCode.UNEXPECTED_REQUEST
    # a full run after the reset verifies: both ends started their transcripts again
    make_requester(responder, device, (V12,)).attest()


def test_certificate_offset_beyond_the_chain_is_refused(device: Device) -> None:
    responder = _negotiated(device)
    total = len(responder.certificate_chain.encode())
    for offset in (total, total + 1, 0xFFFF):
        answer = responder(GetCertificate(V12, 0, offset, 16).encode())
        assert _error_code(answer) == ErrorCode.INVALID_REQUEST
    empty = GetCertificate(V12, 0, 0, 0).encode()
    assert _error_code(responder(empty)) == ErrorCode.INVALID_REQUEST


# --- a malicious responder against the Requester -----------------------------------------------


class Scripted:
    """A real Responder whose answers to one request code are replaced by ``script``, which
    sees the request and the honest response; every exchange is counted."""

    def __init__(self, device: Device, code: int, script: Callable[[bytes, bytes], bytes]) -> None:
        self.responder = make_responder(device, (V12,))
        self.code = code
        self.script = script
        self.calls = 0

    def __call__(self, request: bytes) -> bytes:
        self.calls += 1
        response = self.responder(request)
        return self.script(request, response) if request[1] == self.code else response


def _attest(device: Device, transport: Scripted) -> None:
    make_requester(transport, device, (V12,)).attest()


@pytest.mark.parametrize("code", [ErrorCode.BUSY, ErrorCode.RESPONSE_NOT_READY])
@pytest.mark.parametrize("at", [GET_VERSION, GET_DIGESTS, GET_CERTIFICATE, GET_MEASUREMENTS])
def test_busy_or_not_ready_forever_is_not_retried(device: Device, code: int, at: int) -> None:
    error = ErrorResponse(V12, code, 0x01, b"\x00\x04\x00\x00" if code == 0x42 else b"").encode()
    transport = Scripted(device, at, lambda _request, _response: error)
    with pytest.raises(SpdmErrorResponse, match=code.name):
        _attest(device, transport)
    assert transport.calls <= 7  # each request of a run at most once: never retried


def _certificate(portion: bytes, remainder: int) -> bytes:
    return Certificate(V12, 0, portion, remainder).encode()


def test_certificate_remainder_that_moves_is_refused(device: Device) -> None:
    count = iter(range(1 << 16))
    transport = Scripted(
        device, GET_CERTIFICATE, lambda *_: _certificate(b"\x00" * 16, 1000 + next(count))
    )
    with pytest.raises(SpdmProtocolError, match="disagree on the chain length"):
        _attest(device, transport)
    assert transport.calls == 6


def test_certificate_empty_portion_with_bytes_remaining_is_refused(device: Device) -> None:
    transport = Scripted(device, GET_CERTIFICATE, lambda *_: _certificate(b"", 100))
    with pytest.raises(SpdmProtocolError, match="empty but bytes remain"):
        _attest(device, transport)


def test_certificate_chain_past_the_size_limit_is_refused(device: Device) -> None:
    transport = Scripted(device, GET_CERTIFICATE, lambda *_: _certificate(b"\x00" * 16, 0xFFF0))
    with pytest.raises(MalformedSpdm, match="certificate chain longer than"):
        _attest(device, transport)


def test_certificate_longer_than_asked_is_refused(device: Device) -> None:
    transport = Scripted(device, GET_CERTIFICATE, lambda *_: _certificate(bytes(4089), 0))
    with pytest.raises(MalformedSpdm, match="exceed DataTransferSize"):
        _attest(device, transport)


def test_certificate_one_byte_at_a_time_ends_within_the_chain_size(device: Device) -> None:
    """Tiny portions cost one exchange per byte at worst: bounded by the chain size."""

    def one_byte(request: bytes, response: bytes) -> bytes:
        ask = GetCertificate.decode(request)
        chain = transport.responder.certificate_chain.encode()
        return _certificate(chain[ask.offset : ask.offset + 1], len(chain) - ask.offset - 1)

    transport = Scripted(device, GET_CERTIFICATE, one_byte)
    # honest bytes, just slow: the chain verifies (no CHALLENGE: the responder's B differs)
    make_requester(transport, device, (V12,)).attest(challenge=False)
    assert transport.calls <= len(transport.responder.certificate_chain.encode()) + 10


@pytest.mark.parametrize(
    ("at", "answer_with"),
    [
        (GET_DIGESTS, GET_CERTIFICATE),
        (GET_CERTIFICATE, GET_DIGESTS),
        (GET_MEASUREMENTS, CHALLENGE),
        (CHALLENGE, GET_MEASUREMENTS),
    ],
)
def test_response_of_another_request_is_refused(device: Device, at: int, answer_with: int) -> None:
    honest: dict[int, bytes] = {}

    def record(request: bytes) -> bytes:
        return honest.setdefault(request[1], transport.responder(request))

    transport = Scripted(device, at, lambda *_: honest[answer_with])
    make_requester(record, device, (V12,)).attest()  # the other request's honest response
    transport.responder = make_responder(device, (V12,))
    with pytest.raises(SpdmProtocolError, match="answered with code"):
        _attest(device, transport)


def test_version_not_offered_is_refused(device: Device) -> None:
    older = Version((VersionNumber.of(SpdmVersion.V1_1), VersionNumber.of(SpdmVersion.V1_0)))
    transport = Scripted(device, GET_VERSION, lambda *_: older.encode())
    with pytest.raises(SpdmProtocolError, match="no SPDM version in common"):
        _attest(device, transport)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (12, 0x80 | 0x10, "BaseAsymSel"),
        (16, 0x01 | 0x02, "BaseHashSel"),
        (8, 0x02 | 0x04, "MeasurementHashAlgo"),
    ],
)
def test_algorithms_selecting_several_bits_is_refused(
    device: Device, field: int, value: int, message: str
) -> None:
    def several(_request: bytes, response: bytes) -> bytes:
        return response[:field] + value.to_bytes(4, "little") + response[field + 4 :]

    transport = Scripted(device, NEGOTIATE_ALGORITHMS, several)
    with pytest.raises(MalformedSpdm, match=f"{message} selects more than one"):
        _attest(device, transport)


def test_certificate_for_a_slot_not_in_digests_is_not_asked(device: Device) -> None:
    transport = Scripted(device, GET_CERTIFICATE, lambda _q, r: r)
    requester = make_requester(transport, device, (V12,))
    requester.init_connection()
    requester.get_digests()
    sent = transport.calls
    with pytest.raises(SpdmProtocolError, match="slot 3 is not provisioned"):
        requester.get_certificate_chain(3)
    assert transport.calls == sent


def test_digests_naming_more_slots_than_digests_is_refused(device: Device) -> None:
    def more_slots(_request: bytes, response: bytes) -> bytes:
        return response[:2] + b"\x00\x03" + response[4:]  # slots 0 and 1, one digest

    transport = Scripted(device, GET_DIGESTS, more_slots)
    with pytest.raises(MalformedSpdm):
        _attest(device, transport)


def test_measurements_with_more_blocks_than_asked_are_refused(device: Device) -> None:
    def all_blocks(request: bytes, _response: bytes) -> bytes:
        return transport.responder(request[:2] + request[2:3] + b"\xff" + request[4:])

    transport = Scripted(device, GET_MEASUREMENTS, all_blocks)
    requester = make_requester(transport, device, (V12,))
    requester.init_connection()
    with pytest.raises(SpdmProtocolError, match="does not answer index 1"):
        requester.get_measurements(1, signed=False)


def test_measurements_record_length_that_disagrees_is_refused(device: Device) -> None:
    def longer_record(_request: bytes, response: bytes) -> bytes:
        length = int.from_bytes(response[5:8], "little")
        return response[:5] + (length + 1).to_bytes(3, "little") + response[8:]

    transport = Scripted(device, GET_MEASUREMENTS, longer_record)
    requester = make_requester(transport, device, (V12,))
    requester.init_connection()
    with pytest.raises(MalformedSpdm):
        requester.get_measurements(signed=False)
