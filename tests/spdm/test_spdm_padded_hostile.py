"""A hostile peer over a padding transport (PCI DOE pads to 4 bytes; 2 and 8 are allowed too).

The other attack passes run with alignment 1. Here the requester reads padded answers and the
responder padded requests, where the padding rules (zero bytes only, fewer than the alignment,
the exact message in the transcripts) could be abused: an answer whose padding is cut, grown,
not zero, or that hides a real zero byte of the message as padding is refused with an ironroot
error and the connection closed, or it was the honest answer; the responder answers mutated
padded requests in any state with bytes, never an exception, and serves an honest requester
afterwards. Derandomized and small, so quick and deterministic.
"""

from __future__ import annotations

import pytest
from _spdm_helpers import NOW, Device, Recorder, make_requester, make_responder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import Algorithm
from ironroot.errors import IronrootError
from ironroot.spdm import (
    ErrorResponse,
    GetMeasurements,
    SpdmEvidence,
    SpdmVersion,
    Transport,
    verify_spdm_evidence,
)

V12, V13 = SpdmVersion.V1_2, SpdmVersion.V1_3
_FUZZ = settings(
    max_examples=examples(60),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_MAX_EXCHANGES = 64


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES256)


def _pad(message: bytes, alignment: int) -> bytes:
    return message + bytes(-len(message) % alignment)


def _padded(inner: Transport, alignment: int) -> Transport:
    return lambda request: _pad(inner(_pad(request, alignment)), alignment)


def _mutate(draw: st.DataObject, padded: bytes, alignment: int) -> bytes:
    kind = draw.draw(st.sampled_from(["cut", "grow", "nonzero", "strip", "flip", "word"]))
    data = bytearray(padded)
    if kind == "cut":  # less than a whole unit: a multiple no longer, or a message short
        del data[len(data) - draw.draw(st.integers(1, alignment)) :]
    elif kind == "grow":  # whole units of zeros: more padding than a transport may add
        data += bytes(alignment * draw.draw(st.integers(1, 2)))
    elif kind == "nonzero":  # the last byte (padding or the message's own) not zero
        data[-1] = draw.draw(st.integers(1, 255))
    elif kind == "strip":  # the message's own trailing zero bytes taken for padding
        data = bytearray(_pad(bytes(data).rstrip(b"\x00"), alignment))
    elif kind == "flip":
        data[draw.draw(st.integers(0, len(data) - 1))] ^= 1 << draw.draw(st.integers(0, 7))
    else:  # a length or count field of two bytes set to an extreme
        at = draw.draw(st.integers(4, max(4, len(data) - 2)))
        data[at : at + 2] = draw.draw(st.sampled_from([b"\xff\xff", b"\x00\x00", b"\x01\x00"]))
    return bytes(data)


@_FUZZ
@given(
    version=st.sampled_from([V12, V13]),
    alignment=st.sampled_from([2, 4, 8]),
    at=st.integers(0, 10),
    challenge=st.booleans(),
    draw=st.data(),
)
def test_a_padded_answer_that_lies_is_refused_typed(
    device: Device,
    version: SpdmVersion,
    alignment: int,
    at: int,
    challenge: bool,
    draw: st.DataObject,
) -> None:
    responder = make_responder(device, (version,), alignment=alignment)
    honest = _padded(responder, alignment)
    answers: list[tuple[bytes, bytes]] = []

    def transport(request: bytes) -> bytes:
        assert len(answers) < _MAX_EXCHANGES, "the requester keeps asking"
        padded = honest(request)
        answer = _mutate(draw, padded, alignment) if len(answers) == at else padded
        answers.append((padded, answer))
        return answer

    requester = make_requester(transport, device, (version,), alignment=alignment)
    try:
        requester.attest(challenge=challenge)
    except IronrootError:
        assert requester.connection is None
        with pytest.raises(IronrootError):
            requester.last_evidence()
        return
    assert all(padded == answer for padded, answer in answers)
    record = requester.last_evidence()
    nonce = GetMeasurements.decode(SpdmEvidence.decode(record).request).nonce
    assert nonce is not None
    verify_spdm_evidence(record, nonce=nonce, root_certificate=device.root, now=NOW)


@pytest.fixture(scope="module")
def honest_requests(device: Device) -> dict[SpdmVersion, list[bytes]]:
    """Every request of an honest run at each version (attest, an unsigned index, a count)."""
    out = {}
    for version in (V12, V13):
        recorder = Recorder(make_responder(device, (version,)))
        requester = make_requester(recorder, device, (version,))
        requester.attest()
        requester.get_measurements(3, signed=False)
        requester.get_measurements(0)
        out[version] = [request for request, _ in recorder.log]
    return out


@_FUZZ
@given(version=st.sampled_from([V12, V13]), alignment=st.sampled_from([2, 4, 8]), draw=st.data())
def test_a_padded_responder_answers_mutated_requests_in_any_state(
    device: Device,
    honest_requests: dict[SpdmVersion, list[bytes]],
    version: SpdmVersion,
    alignment: int,
    draw: st.DataObject,
) -> None:
    responder = make_responder(device, alignment=alignment)
    requests = honest_requests[version]
    steps = draw.draw(st.lists(st.integers(0, len(requests) - 1), min_size=1, max_size=10))
    for step in steps:
        request = _pad(requests[step], alignment)
        if draw.draw(st.booleans()):
            request = _mutate(draw, request, alignment)
        response = responder.handle(request)
        assert isinstance(response, bytes)
        if response[1] == 0x7F:
            ErrorResponse.decode(response)
    requester = make_requester(
        _padded(responder, alignment), device, (version,), alignment=alignment
    )
    assert requester.attest().certificate_chain.certificates == tuple(device.chain)
