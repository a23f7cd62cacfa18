"""Second attack pass: the message decoders fed bytes behind every header, recorded evidence
changed anywhere, and a responder that lies, replays or reorders on several answers of a run.

What may escape is an ironroot error, nothing else; a decoder that accepts bytes accounts for
every one of them (it re-encodes them exactly); evidence or a run that is accepted is one whose
signed bytes are the honest ones. Derandomized and small, so quick and deterministic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from _spdm_helpers import BLOCKS, NOW, Device, Recorder, make_requester, make_responder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import Algorithm
from ironroot.errors import IronrootError, SpdmProtocolError
from ironroot.spdm import (
    Algorithms,
    Capabilities,
    Certificate,
    Challenge,
    ChallengeAuth,
    Digests,
    ErrorResponse,
    GetCapabilities,
    GetCertificate,
    GetDigests,
    GetMeasurements,
    GetVersion,
    MeasurementHashAlgo,
    Measurements,
    MeasurementSummaryHashType,
    NegotiateAlgorithms,
    SpdmEvidence,
    SpdmVersion,
    Version,
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


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


def _ones(size: int) -> bytes:
    return b"\x01" * size


def _zeros(size: int) -> bytes:
    return bytes(size)


# A responder's own randomness: its nonces never reflect the requester's (which is refused).
def _twos(size: int) -> bytes:
    return b"\x02" * size


def _threes(size: int) -> bytes:
    return b"\x03" * size


# --- every message decoder, behind its own header at every version ------------------------

_Decoder = Callable[[bytes], object]
_MESSAGES: list[tuple[str, int, _Decoder]] = [
    ("GetVersion", 0x84, GetVersion.decode),
    ("Version", 0x04, Version.decode),
    ("GetCapabilities", 0xE1, GetCapabilities.decode),
    ("Capabilities", 0x61, Capabilities.decode),
    ("NegotiateAlgorithms", 0xE3, NegotiateAlgorithms.decode),
    ("Algorithms", 0x63, Algorithms.decode),
    ("GetDigests", 0x81, GetDigests.decode),
    ("Digests", 0x01, lambda d: Digests.decode(d, hash_size=48)),
    ("GetCertificate", 0x82, GetCertificate.decode),
    ("Certificate", 0x02, Certificate.decode),
    ("Challenge", 0x83, Challenge.decode),
    (
        "ChallengeAuth",
        0x03,
        lambda d: ChallengeAuth.decode(d, hash_size=32, signature_size=8, summary_requested=True),
    ),
    (
        "GetMeasurements",
        0xE0,
        lambda d: GetMeasurements.decode(d, versions=frozenset(SpdmVersion)),
    ),
    (
        "Measurements",
        0x60,
        lambda d: Measurements.decode(
            d,
            signature_size=8,
            measurement_hash_algo=MeasurementHashAlgo.SHA_256,
            versions=frozenset(SpdmVersion),
        ),
    ),
    ("ErrorResponse", 0x7F, ErrorResponse.decode),
]


@pytest.mark.parametrize(("name", "code", "decode"), _MESSAGES, ids=[m[0] for m in _MESSAGES])
@_FUZZ
@given(
    version=st.sampled_from([0x10, 0x11, 0x12, 0x13, 0x14, 0x00]),
    params=st.binary(min_size=2, max_size=2),
    body=st.binary(max_size=200),
)
def test_message_decoders_raise_typed_and_account_for_every_byte(
    name: str, code: int, decode: _Decoder, version: int, params: bytes, body: bytes
) -> None:
    data = bytes([version, code]) + params + body
    try:
        value = decode(data)
    except IronrootError:
        return
    assert value.encode() == data  # type: ignore[attr-defined]


# --- recorded evidence, changed anywhere ----------------------------------------------------


@pytest.fixture(scope="module")
def evidence(device: Device) -> tuple[bytes, SpdmEvidence]:
    requester = make_requester(make_responder(device, (V13,)), device, (V13,))
    data = requester.evidence(bytes(32))
    return data, SpdmEvidence.decode(data)


@_FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 1 << 16), st.integers(0, 255), st.sampled_from("xcd")),
        min_size=1,
        max_size=3,
    )
)
def test_changed_evidence_is_refused_typed(
    device: Device, evidence: tuple[bytes, SpdmEvidence], edits: list[tuple[int, int, str]]
) -> None:
    """A byte XORed, cut or doubled anywhere in the record: a typed refusal, or a record
    that still holds exactly the signed messages (CBOR has one encoding of them here)."""
    honest, record = evidence
    data = bytearray(honest)
    for at, value, kind in edits:
        pos = at % len(data)
        if kind == "x":
            data[pos] ^= value or 1
        elif kind == "c":
            del data[pos]
        else:
            data.insert(pos, data[pos])
        if not data:
            return
    try:
        verify_spdm_evidence(bytes(data), nonce=bytes(32), root_certificate=device.root, now=NOW)
    except IronrootError:
        return
    assert SpdmEvidence.decode(bytes(data)) == record


# --- a responder that lies, replays or reorders on several answers --------------------------

_MAX_EXCHANGES = 4096
# Mostly honest, so the lies land at every stage of the run, not only in the VCA.
_KINDS = ("honest",) * 12 + ("replay", "earlier", "splice", "noise")


@pytest.fixture(scope="module")
def old_run(device: Device) -> list[tuple[bytes, bytes]]:
    """Every exchange of an earlier honest run (other nonces): what a replayer holds."""
    recorder = Recorder(make_responder(device, (V13,), random=_twos))
    make_requester(recorder, device, (V13,), random=_ones).attest()
    return recorder.log


def _lie(
    draw: st.DataObject, honest: bytes, old: list[tuple[bytes, bytes]], previous: list[bytes]
) -> bytes:
    kind = draw.draw(st.sampled_from(_KINDS))
    if kind == "replay":  # an answer of the earlier run, to any request
        return draw.draw(st.sampled_from([response for _, response in old]))
    if kind == "earlier" and previous:  # an answer already given in this run: repeated
        return draw.draw(st.sampled_from(previous))
    if kind == "splice":
        at = draw.draw(st.integers(0, len(honest)))
        cut = draw.draw(st.integers(0, 4))
        return honest[:at] + draw.draw(st.binary(max_size=4)) + honest[at + cut :]
    if kind == "noise":
        return honest[:2] + draw.draw(st.binary(max_size=40))
    return honest


@settings(_FUZZ, max_examples=examples(400))
@given(draw=st.data())
def test_a_responder_lying_on_several_answers_is_refused_typed(
    device: Device, old_run: list[tuple[bytes, bytes]], draw: st.DataObject
) -> None:
    """Each answer of a whole run may be honest, an answer of an earlier run, one already
    given in this run, spliced or noise: the run ends in an ironroot error with the
    connection closed, within a bounded number of exchanges, or every answer was honest."""
    responder = make_responder(device, (V13,), random=_threes)
    given_answers: list[bytes] = []
    lied: list[bool] = []

    def transport(request: bytes) -> bytes:
        assert len(given_answers) < _MAX_EXCHANGES, "the requester keeps asking"
        honest = responder(request)
        answer = _lie(draw, honest, old_run, given_answers)
        lied.append(answer != honest)
        given_answers.append(answer)
        return answer

    requester = make_requester(transport, device, (V13,), random=_zeros)
    try:
        requester.attest()
    except IronrootError:
        assert requester.connection is None
        with pytest.raises(IronrootError):  # nothing of a refused run is evidence
            requester.last_evidence()
        return
    assert not any(lied)


# --- any order of requests keeps both ends' transcripts in step -----------------------------

_STEPS = ("vca", "digests", "certificate", "challenge", "signed", "unsigned", "count", "index")


@settings(_FUZZ, max_examples=examples(150))
@given(
    version=st.sampled_from([V12, V13]),
    steps=st.lists(st.sampled_from(_STEPS), min_size=1, max_size=12),
    summary=st.sampled_from(list(MeasurementSummaryHashType)),
)
def test_any_order_of_requests_keeps_the_transcripts_in_step(
    device: Device, version: SpdmVersion, steps: list[str], summary: MeasurementSummaryHashType
) -> None:
    """VCA, DIGESTS, CERTIFICATE, CHALLENGE and GET_MEASUREMENTS (signed, unsigned, a count,
    one index) in any order an honest requester may send them: every signature over M1/M2 and
    L1/L2 verifies (the two ends reset A, B and L1/L2 alike, as DSP0274 and libspdm do), and
    every record last_evidence gives verifies offline."""
    responder = make_responder(device, (version,))
    requester = make_requester(responder, device, (version,))
    requester.init_connection()
    have_digests = have_chain = False
    for step in steps:
        if step == "vca":
            requester.init_connection()
            have_digests = have_chain = False
        elif step == "digests":
            requester.get_digests()
            have_digests, have_chain = True, False
        elif step == "certificate" and have_digests:
            requester.get_certificate_chain()
            have_chain = True
        elif step == "challenge" and have_chain:
            requester.challenge(summary=summary)
        elif step == "signed" and have_chain:
            requester.get_measurements()
        elif step == "unsigned":
            requester.get_measurements(signed=False)
        elif step == "count":
            requester.get_measurements(0, signed=have_chain)
        elif step == "index":
            requester.get_measurements(BLOCKS[1].index, signed=have_chain)
        with contextlib.suppress(SpdmProtocolError):  # none recordable: not right after VCA
            record = requester.last_evidence()
            verify_spdm_evidence(
                record, nonce=_nonce(record), root_certificate=device.root, now=NOW
            )


def _nonce(record: bytes) -> bytes:
    nonce = GetMeasurements.decode(SpdmEvidence.decode(record).request).nonce
    assert nonce is not None
    return nonce
