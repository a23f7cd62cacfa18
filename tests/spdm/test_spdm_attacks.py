"""Attacks on the live state machines: a malicious requester against the Responder and a
scripted malicious responder against the Requester. Each ends in an SPDM ERROR (responder)
or a typed SpdmProtocolError (requester), within a bounded number of exchanges."""

from __future__ import annotations

import pytest
from _spdm_helpers import Device, make_requester, make_responder

from ironroot.crypto import Algorithm
from ironroot.errors import SpdmProtocolError
from ironroot.spdm import (
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
)
from ironroot.spdm._constants import MAX_TRANSCRIPT_SIZE, ErrorCode

V12 = SpdmVersion.V1_2
ERROR = 0x7F


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
