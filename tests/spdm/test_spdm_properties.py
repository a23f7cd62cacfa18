"""Property tests: round trips, canonical decoding, and no untyped exception on any input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _spdm_helpers import Device, make_responder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import Algorithm
from ironroot.errors import MalformedSpdm
from ironroot.spdm import (
    Algorithms,
    Capabilities,
    Certificate,
    Digests,
    ErrorResponse,
    GetCapabilities,
    GetCertificate,
    GetDigests,
    GetMeasurements,
    GetVersion,
    MeasurementBlock,
    Measurements,
    MeasurementValueType,
    NegotiateAlgorithms,
    OpaqueElement,
    SpdmVersion,
    Version,
    decode_opaque_data,
    encode_opaque_data,
)

V12, V13 = SpdmVersion.V1_2, SpdmVersion.V1_3
_SETTINGS = settings(max_examples=examples(60), deadline=None)


def _value(value_type: MeasurementValueType, raw: bool) -> st.SearchStrategy[bytes]:
    if raw and value_type == MeasurementValueType.DEVICE_MODE:
        return st.binary(min_size=16, max_size=16)
    if raw and value_type == MeasurementValueType.SECURE_VERSION_NUMBER:
        return st.binary(min_size=8, max_size=8)
    return st.binary(max_size=64)


@st.composite
def blocks(draw: st.DrawFn, version: SpdmVersion) -> tuple[MeasurementBlock, ...]:
    types = [t for t in MeasurementValueType if version >= V13 or t <= 7]
    indices = draw(st.lists(st.integers(1, 0xFE), unique=True, max_size=6))
    out = []
    for index in indices:
        value_type = draw(st.sampled_from(types))
        raw = draw(st.booleans())
        out.append(MeasurementBlock(index, value_type, draw(_value(value_type, raw)), raw))
    return tuple(out)


@st.composite
def measurements(draw: st.DrawFn) -> tuple[Measurements, int]:
    version = draw(st.sampled_from([V12, V13]))
    signature = draw(st.binary(max_size=132))
    msg = Measurements(
        version,
        draw(blocks(version)),
        draw(st.binary(min_size=32, max_size=32)),
        draw(st.binary(max_size=40)),
        draw(st.binary(min_size=8, max_size=8)) if version == V13 else None,
        signature,
        draw(st.integers(0, 255)),
        draw(st.integers(0, 15)),
        draw(st.integers(0, 2)),
    )
    return msg, len(signature)


@_SETTINGS
@given(measurements())
def test_measurements_round_trip(case: tuple[Measurements, int]) -> None:
    msg, signature_size = case
    assert Measurements.decode(msg.encode(), signature_size=signature_size) == msg


@_SETTINGS
@given(
    st.sampled_from([V12, V13]),
    st.integers(0, 255),
    st.booleans(),
    st.booleans(),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 7),
    st.binary(min_size=8, max_size=8),
)
def test_get_measurements_round_trip(
    version: SpdmVersion, op: int, signed: bool, raw: bool, nonce: bytes, slot: int, ctx: bytes
) -> None:
    msg = GetMeasurements(
        version,
        op,
        signed,
        nonce if signed else None,
        slot if signed else 0,
        raw,
        requester_context=ctx if version == V13 else None,
    )
    assert GetMeasurements.decode(msg.encode()) == msg


@_SETTINGS
@given(
    st.lists(
        st.builds(
            OpaqueElement,
            st.integers(0, 0x0B),
            st.binary(max_size=9),
            st.binary(max_size=40),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_opaque_data_round_trip(elements: list[OpaqueElement]) -> None:
    data = encode_opaque_data(tuple(elements))
    assert len(data) % 4 == 0
    assert decode_opaque_data(data) == tuple(elements)


_D48 = bytes(48)
_VALID: list[tuple[str, Callable[[bytes], object], bytes]] = [
    ("GetVersion", GetVersion.decode, GetVersion().encode()),
    ("Version", Version.decode, bytes.fromhex("100400000002") + b"\x00\x12\x00\x13"),
    ("GetCapabilities", GetCapabilities.decode, GetCapabilities(V13, 3, 0x12).encode()),
    ("Capabilities", Capabilities.decode, Capabilities(V12, 12, 0x12).encode()),
    (
        "NegotiateAlgorithms",
        NegotiateAlgorithms.decode,
        NegotiateAlgorithms(V13, 1, 2, 0x90, 0x3).encode(),
    ),
    ("Algorithms", Algorithms.decode, Algorithms(V12, 1, 2, 4, 0x80, 2).encode()),
    ("GetDigests", GetDigests.decode, GetDigests(V13).encode()),
    ("Digests", lambda d: Digests.decode(d, hash_size=48), Digests(V12, 1, (_D48,)).encode()),
    ("GetCertificate", GetCertificate.decode, GetCertificate(V12, 0, 10, 20).encode()),
    ("Certificate", Certificate.decode, Certificate(V13, 1, b"xyz", 3).encode()),
    (
        "GetMeasurements",
        GetMeasurements.decode,
        GetMeasurements(V12, 3, True, bytes(32), 1).encode(),
    ),
    (
        "Measurements",
        lambda d: Measurements.decode(d, signature_size=4),
        Measurements(
            V12,
            (MeasurementBlock(1, MeasurementValueType.FIRMWARE_CONFIG, b"abc", True),),
            bytes(32),
            b"op",
            None,
            b"sig!",
        ).encode(),
    ),
    ("ErrorResponse", ErrorResponse.decode, ErrorResponse(V12, 0x42, 0, b"\x01\x02").encode()),
]


@pytest.mark.parametrize(("name", "decode", "data"), _VALID, ids=[v[0] for v in _VALID])
@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutations_decode_canonically_or_raise_typed(
    name: str, decode: Callable[[bytes], object], data: bytes, draw: st.DataObject
) -> None:
    """Flip, cut or extend a valid message: the decoder either rejects it with MalformedSpdm
    or returns a value that re-encodes to exactly the input (no byte goes unaccounted)."""
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 3))):
        at = draw.draw(st.integers(0, len(mutated) - 1))
        mutated[at] ^= draw.draw(st.integers(1, 255))
    mutated = mutated[: draw.draw(st.integers(0, len(mutated)))] + draw.draw(st.binary(max_size=3))
    try:
        value = decode(bytes(mutated))
    except MalformedSpdm:
        return
    assert value.encode() == bytes(mutated)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES256)


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_responder_answers_anything(device: Device, requests: list[bytes]) -> None:
    """Any byte string gets a well-formed answer; the device never raises."""
    responder = make_responder(device)
    prefixes = [GetVersion().encode(), GetCapabilities(V12).encode()]
    for request in prefixes + requests:
        response = responder(request)
        assert response[1] in {0x04, 0x61, 0x63, 0x01, 0x02, 0x60, 0x7F}
        if response[1] == 0x7F:
            ErrorResponse.decode(response)


_NEGOTIATE = NegotiateAlgorithms(V12, 1, 2, 0x10, 0x1).encode()
_REQUESTS = [
    GetMeasurements(V12, 0xFF, True, bytes(32), 0).encode(),
    GetMeasurements(V12, 1, False).encode(),
    GetCertificate(V12, 0, 0, 0x400).encode(),
    GetDigests(V12).encode(),
]


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_negotiated_responder_answers_mutated_requests(device: Device, draw: st.DataObject) -> None:
    """Near-valid requests after VCA: each answer is an ERROR or a response that decodes."""
    responder = make_responder(device)
    for request in (GetVersion().encode(), GetCapabilities(V12).encode(), _NEGOTIATE):
        responder(request)
    request = bytearray(draw.draw(st.sampled_from(_REQUESTS)))
    at = draw.draw(st.integers(0, len(request) - 1))
    request[at] ^= draw.draw(st.integers(0, 255))
    response = responder(bytes(request))
    decoders: dict[int, Callable[[bytes], object]] = {
        0x7F: ErrorResponse.decode,
        0x60: lambda d: Measurements.decode(d, signature_size=64 if request[2] & 1 else 0),
        0x02: Certificate.decode,
        0x01: lambda d: Digests.decode(d, hash_size=32),
    }
    decoders[response[1]](response)
