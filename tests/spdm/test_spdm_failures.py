"""After a refused response the requester never goes on with a transcript out of step, and
transports that pad messages (PCI DOE) are read at each message's own length."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _spdm_helpers import BLOCKS, Device, make_requester, make_responder

from ironroot.crypto import Algorithm
from ironroot.errors import (
    BadSignature,
    ChainNotTrusted,
    MalformedSpdm,
    SpdmErrorResponse,
    SpdmProtocolError,
)
from ironroot.spdm import (
    GetVersion,
    MeasurementSummaryHashType,
    Requester,
    Responder,
    SpdmVersion,
    Transport,
    Version,
)
from ironroot.spdm._codec import decode_padded

V12, V13 = SpdmVersion.V1_2, SpdmVersion.V1_3
MEASUREMENTS = 0x60


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


class OnceBroken:
    """A transport to a real responder that spoils the first response of one code."""

    def __init__(self, inner: Transport, code: int, spoil: Callable[[bytes], bytes]) -> None:
        self.inner, self.code, self.spoil, self.done = inner, code, spoil, False

    def __call__(self, request: bytes) -> bytes:
        response = self.inner(request)
        if response[1] == self.code and not self.done:
            self.done = True
            return self.spoil(response)
        return response


def _reserved_param2(response: bytes) -> bytes:
    return response[:3] + bytes([response[3] | 0x40]) + response[4:]


def _ready(transport: Transport, device: Device, version: SpdmVersion = V13) -> Requester:
    requester = make_requester(transport, device, (version,))
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    return requester


@pytest.mark.parametrize("version", [V12, V13])
def test_malformed_measurements_then_clear_protocol_error(
    device: Device, version: SpdmVersion
) -> None:
    """The responder recorded an unsigned MEASUREMENTS the requester refused: their L1/L2
    differ, so the next signed response could only fail its signature. Instead every call
    says why the connection is closed, until a new VCA."""
    responder = make_responder(device, (version,))
    transport = OnceBroken(responder, MEASUREMENTS, _reserved_param2)
    requester = _ready(transport, device, version)
    with pytest.raises(MalformedSpdm, match="reserved Param2"):
        requester.get_measurements(1, signed=False)
    assert requester.connection is None
    for call in (
        requester.get_measurements,
        requester.get_digests,
        requester.challenge,
        lambda: requester.get_certificate_chain(0),
    ):
        with pytest.raises(SpdmProtocolError, match="unusable") as info:
            call()
        assert not isinstance(info.value, BadSignature)
        assert "malformed-spdm" in info.value.detail
        assert "init_connection" in info.value.detail
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    assert [b.index for b in requester.get_measurements().blocks] == [b.index for b in BLOCKS]


def test_the_responder_really_kept_the_refused_response(device: Device) -> None:
    """Why closing is needed: the responder's L1/L2 holds the unsigned response the requester
    refused, so a requester that just went on would see the next signature fail."""
    responder = make_responder(device, (V13,))
    requester = _ready(responder, device)
    requester.get_measurements(1, signed=False)  # both ends now hold this exchange in L1/L2
    requester._transcript.reset_measurements()  # a requester that dropped it, as before
    with pytest.raises(BadSignature):
        requester.get_measurements()


def test_bad_signature_closes_the_connection(device: Device) -> None:
    def flip_last(response: bytes) -> bytes:
        return response[:-1] + bytes([response[-1] ^ 1])

    requester = _ready(OnceBroken(make_responder(device), MEASUREMENTS, flip_last), device)
    with pytest.raises(BadSignature):
        requester.get_measurements()
    with pytest.raises(SpdmProtocolError, match="bad-signature"):
        requester.get_measurements()


def test_error_response_closes_the_connection(device: Device) -> None:
    requester = _ready(make_responder(device), device)
    with pytest.raises(SpdmErrorResponse, match="INVALID_REQUEST"):
        requester.get_measurements(0x42)  # no such index
    with pytest.raises(SpdmProtocolError, match=r"unusable.*spdm-error-response"):
        requester.get_measurements()


def test_untrusted_chain_closes_the_connection(device: Device) -> None:
    responder = make_responder(device)
    requester = make_requester(responder, Device())  # trusts another root
    requester.init_connection()
    requester.get_digests()
    with pytest.raises(ChainNotTrusted):
        requester.get_certificate_chain()
    with pytest.raises(SpdmProtocolError, match="chain-not-trusted"):
        requester.get_digests()


def test_transport_failure_closes_the_connection(device: Device) -> None:
    responder = make_responder(device)
    fail = [False]

    def transport(request: bytes) -> bytes:
        if fail[0]:
            raise MalformedSpdm("framing broken")
        return responder(request)

    requester = _ready(transport, device)
    fail[0] = True
    with pytest.raises(MalformedSpdm, match="framing"):
        requester.get_measurements()
    fail[0] = False
    with pytest.raises(SpdmProtocolError, match="framing broken"):
        requester.get_measurements()


def test_refusals_before_sending_keep_the_connection(device: Device) -> None:
    requester = _ready(make_responder(device), device)
    with pytest.raises(MalformedSpdm):
        requester.get_measurements(nonce=b"short")
    with pytest.raises(SpdmProtocolError, match="no verified certificate chain"):
        requester.get_measurements(slot_id=3)
    assert requester.connection is not None
    requester.get_measurements()


def test_failed_vca_closes_until_a_new_one(device: Device) -> None:
    responder = make_responder(device)
    transport = OnceBroken(responder, 0x04, lambda r: r + b"\x00")  # VERSION with a stray byte
    requester = make_requester(transport, device)
    with pytest.raises(MalformedSpdm):
        requester.init_connection()
    with pytest.raises(SpdmProtocolError, match="unusable"):
        requester.get_digests()
    requester.init_connection()


# --- padding transports ---------------------------------------------------------------------


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def test_decode_padded() -> None:
    version = Version.decode(bytes.fromhex("10040000 0002 0012 0013"))
    exact = version.encode()
    assert len(exact) == 10
    assert decode_padded(exact, 1, Version.decode) == (version, exact)
    assert decode_padded(_pad(exact), 4, Version.decode) == (version, exact)
    get = GetVersion().encode()
    assert decode_padded(get, 4, GetVersion.decode) == (GetVersion(), get)
    with pytest.raises(MalformedSpdm):
        decode_padded(_pad(exact), 1, Version.decode)  # no padding expected
    with pytest.raises(MalformedSpdm):
        decode_padded(exact + b"\x00\x01", 4, Version.decode)  # padding is zeros only
    with pytest.raises(MalformedSpdm, match="multiple of 4"):
        decode_padded(exact + b"\x00", 4, Version.decode)
    with pytest.raises(MalformedSpdm):
        decode_padded(exact + bytes(6), 4, Version.decode)  # at most three padding bytes
    with pytest.raises(MalformedSpdm):
        decode_padded(b"", 4, Version.decode)
    with pytest.raises(MalformedSpdm, match="alignment"):
        decode_padded(exact, 0, Version.decode)


@pytest.mark.parametrize("version", [V12, V13])
def test_padded_transport_both_ways(device: Device, version: SpdmVersion) -> None:
    responder = Responder(device.leaf_key, device.chain, BLOCKS, versions=(version,), alignment=4)
    padded: list[bytes] = []

    def transport(request: bytes) -> bytes:
        response = _pad(responder(_pad(request)))
        padded.append(response)
        return response

    requester = make_requester(transport, device, (version,), alignment=4)
    result = requester.attest()
    assert result.challenge_auth is not None
    assert any(len(r) % 4 == 0 and r[-1] == 0 for r in padded)
    requester.challenge(summary=MeasurementSummaryHashType.TCB)
    assert len(requester.get_measurements(5).blocks) == 1


def test_unexpected_padding_is_refused(device: Device) -> None:
    responder = make_responder(device)
    requester = make_requester(lambda r: _pad(responder(r)), device)  # alignment 1
    with pytest.raises(MalformedSpdm, match="trailing"):
        requester.init_connection()


def test_alignment_is_checked(device: Device) -> None:
    from ironroot.errors import ConfigError

    with pytest.raises(ConfigError):
        make_requester(make_responder(device), device, alignment=3)
    with pytest.raises(ConfigError):
        Responder(device.leaf_key, device.chain, BLOCKS, alignment=0)
