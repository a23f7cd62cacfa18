"""CHALLENGE / CHALLENGE_AUTH: byte layouts, the M1/M2 transcript, and every way to break it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from _spdm_helpers import BLOCKS, Device, Recorder, make_pair, make_requester, make_responder
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ironroot.crypto import Algorithm
from ironroot.errors import BadSignature, MalformedSpdm, SpdmErrorResponse, SpdmProtocolError
from ironroot.spdm import (
    CHALLENGE_AUTH_SIGNING_CONTEXT,
    AnyMeasurementBlock,
    BaseHashAlgo,
    Challenge,
    ChallengeAuth,
    ErrorCode,
    ErrorResponse,
    GetCapabilities,
    GetVersion,
    MeasurementSummaryHashType,
    MeasurementValueType,
    NegotiateAlgorithms,
    Requester,
    Responder,
    SpdmVersion,
    combined_spdm_prefix,
    measurement_summary_hash,
)

V12, V13 = SpdmVersion.V1_2, SpdmVersion.V1_3
SHA384 = BaseHashAlgo.SHA_384
NONCE = bytes(range(32))
CONTEXT = bytes.fromhex("0102030405060708")
ALL, TCB, NONE = (
    MeasurementSummaryHashType.ALL,
    MeasurementSummaryHashType.TCB,
    MeasurementSummaryHashType.NONE,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


# --- byte layouts ---------------------------------------------------------------------------


def test_challenge_bytes() -> None:
    assert Challenge(V12, 0, ALL, NONCE).encode() == h("12 83 00 ff") + NONCE
    assert Challenge(V13, 3, TCB, NONCE, CONTEXT).encode() == h("13 83 03 01") + NONCE + CONTEXT
    for message in (Challenge(V12, 0xFF, NONE, NONCE), Challenge(V13, 7, ALL, NONCE, CONTEXT)):
        assert Challenge.decode(message.encode()) == message


@pytest.mark.parametrize(
    "data",
    [
        h("12 83 00 02") + NONCE,  # reserved measurement summary hash type
        h("12 83 08 00") + NONCE,  # slot 8
        h("12 83 00 00") + NONCE[:-1],  # truncated nonce
        h("12 83 00 00") + NONCE + b"\x00",  # trailing byte
        h("13 83 00 00") + NONCE,  # 1.3 without RequesterContext
        h("11 83 00 00") + NONCE,  # SPDM 1.1
        h("12 84 00 00") + NONCE,  # not CHALLENGE
    ],
)
def test_challenge_decode_refuses(data: bytes) -> None:
    with pytest.raises(MalformedSpdm):
        Challenge.decode(data)


def test_challenge_auth_bytes() -> None:
    chain_hash, summary, signature = bytes([0xA1]) * 48, bytes([0xB2]) * 48, bytes([0xC3]) * 96
    auth = ChallengeAuth(V13, 0, 0x01, chain_hash, NONCE, summary, b"op", CONTEXT, signature)
    expected = (
        h("13 03 00 01") + chain_hash + NONCE + summary + h("0200") + b"op" + CONTEXT + signature
    )
    assert auth.encode() == expected
    assert auth.encode_unsigned() == expected[:-96]
    decoded = ChallengeAuth.decode(
        expected, hash_size=48, signature_size=96, summary_requested=True
    )
    assert decoded == auth
    no_summary = ChallengeAuth(V12, 2, 0x05, chain_hash, NONCE, signature=signature[:64])
    data = no_summary.encode()
    assert data == h("12 03 02 05") + chain_hash + NONCE + h("0000") + signature[:64]
    assert (
        ChallengeAuth.decode(data, hash_size=48, signature_size=64, summary_requested=False)
        == no_summary
    )
    mutual = ChallengeAuth(V12, 0, 1, chain_hash, NONCE, basic_mut_auth_requested=True)
    assert mutual.encode()[2] == 0x80


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d[:-1],  # truncated signature
        lambda d: d + b"\x00",  # trailing byte
        lambda d: d[:2] + b"\x10" + d[3:],  # reserved Param1 bit
        lambda d: d[:132] + b"\x01\x04" + d[134:],  # OpaqueDataLength over 1024
        lambda d: d[:1] + b"\x04" + d[2:],  # not CHALLENGE_AUTH
    ],
)
def test_challenge_auth_decode_refuses(edit: Callable[[bytes], bytes]) -> None:
    good = ChallengeAuth(V12, 0, 1, bytes(48), NONCE, bytes(48), signature=bytes(96)).encode()
    assert len(good) == 4 + 48 + 32 + 48 + 2 + 96
    with pytest.raises(MalformedSpdm):
        ChallengeAuth.decode(edit(good), hash_size=48, signature_size=96, summary_requested=True)


def test_challenge_auth_fields_are_checked() -> None:
    with pytest.raises(MalformedSpdm):
        ChallengeAuth(V12, 8, 1, bytes(48), NONCE)  # slot 8
    with pytest.raises(MalformedSpdm):
        ChallengeAuth(V12, 0, 1, bytes(48), NONCE[:31])
    with pytest.raises(MalformedSpdm):
        ChallengeAuth(V12, 0, 1, bytes(48), NONCE, bytes(32))  # summary of another size
    with pytest.raises(MalformedSpdm):
        ChallengeAuth(V13, 0, 1, bytes(48), NONCE)  # 1.3 without RequesterContext


# --- the protocol ---------------------------------------------------------------------------


def _authenticated(
    device: Device, version: SpdmVersion, **kwargs: object
) -> tuple[Requester, Recorder]:
    recorder = Recorder(make_responder(device, (version,), **kwargs))
    requester = make_requester(recorder, device, (version,))
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    return requester, recorder


def _verify_m1m2_independently(device: Device, log: list[tuple[bytes, bytes]]) -> None:
    """Rebuild M1/M2 from the recorded wire bytes and check the signature with pyca alone."""
    vca = b"".join(req + resp for req, resp in log[:3])
    b = b"".join(req + resp for req, resp in log[3:-1])
    challenge, auth = log[-1]
    version = SpdmVersion(challenge[0])
    unsigned, signature = auth[:-96], auth[-96:]
    m1m2 = vca + b + challenge + unsigned
    prefix = f"dmtf-spdm-v{version >> 4}.{version & 0xF}.*".encode() * 4
    message = prefix + bytes(4) + b"responder-challenge_auth signing"
    message += hashlib.sha384(m1m2).digest()
    public = device.leaf_key.public_key.raw
    assert isinstance(public, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(
        int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    )
    public.verify(der, message, ec.ECDSA(hashes.SHA384()))


@pytest.mark.parametrize("version", [V12, V13])
@pytest.mark.parametrize("kind", [NONE, TCB, ALL])
def test_challenge_verifies(
    device: Device, version: SpdmVersion, kind: MeasurementSummaryHashType
) -> None:
    requester, recorder = _authenticated(device, version)
    auth = requester.challenge(summary=kind, nonce=NONCE)
    assert recorder.log[-1][0][:4] == bytes([version, 0x83, 0, kind])
    assert recorder.log[-1][0][4:36] == NONCE
    _verify_m1m2_independently(device, recorder.log)
    measured = requester.get_measurements(signed=False).blocks
    if kind is NONE:
        assert auth.measurement_summary_hash == b""
    elif kind is ALL:
        assert auth.measurement_summary_hash == measurement_summary_hash(measured, SHA384)
    else:
        code = {MeasurementValueType.IMMUTABLE_ROM, MeasurementValueType.MUTABLE_FIRMWARE}
        tcb = [b for b in measured if b.value_type in code]
        assert len(tcb) == 2
        assert (
            auth.measurement_summary_hash
            == hashlib.sha384(b"".join(b.encode() for b in tcb)).digest()
        )
    assert auth.cert_chain_hash == hashlib.sha384(requester._chains[0]).digest()


def test_signing_context_is_the_challenge_one() -> None:
    assert CHALLENGE_AUTH_SIGNING_CONTEXT == b"responder-challenge_auth signing"
    prefix = combined_spdm_prefix(V12, CHALLENGE_AUTH_SIGNING_CONTEXT)
    assert prefix == b"dmtf-spdm-v1.2.*" * 4 + bytes(4) + CHALLENGE_AUTH_SIGNING_CONTEXT


def test_attest_challenges_and_checks_the_summary(device: Device) -> None:
    recorder = Recorder(make_responder(device))
    result = make_requester(recorder, device).attest()
    assert result.challenge_auth is not None
    codes = [req[1] for req, _ in recorder.log]
    assert codes == [0x84, 0xE1, 0xE3, 0x81, 0x82, 0x83, 0xE0]
    summary = measurement_summary_hash(result.blocks, BaseHashAlgo.SHA_384)
    assert result.challenge_auth.measurement_summary_hash == summary
    plain = make_requester(make_responder(device), device).attest(challenge=False)
    assert plain.challenge_auth is None


def test_attest_refuses_a_summary_that_does_not_match(device: Device) -> None:
    """The measurements signed after CHALLENGE must be the ones its summary hash covers."""
    blocks = (*BLOCKS[:-1],)  # a device whose CHALLENGE_AUTH summarises fewer blocks
    changing = Responder(device.leaf_key, device.chain, blocks)
    full = make_responder(device)

    def transport(request: bytes) -> bytes:
        # CHALLENGE goes to the device with fewer blocks, everything else to the full one:
        # both hold the same transcript, so only the summary differs.
        if request[1] == 0x83:
            full(request)
            return changing(request)
        changing(request)
        return full(request)

    with pytest.raises(SpdmProtocolError, match="summary"):
        make_requester(transport, device).attest()


def test_measurements_before_challenge_empty_b_on_both_ends(device: Device) -> None:
    requester, _ = _authenticated(device, V13)
    requester.get_measurements(signed=False)  # not yet authenticated: B ends here
    requester.challenge()
    requester.challenge()  # B is empty again after a CHALLENGE, on both ends
    requester.get_digests()
    requester.get_certificate_chain()
    requester.challenge()  # B = DIGESTS and CERTIFICATE again


def test_challenge_needs_a_verified_chain(device: Device) -> None:
    sent: list[bytes] = []
    responder = make_responder(device)

    def transport(request: bytes) -> bytes:
        sent.append(request)
        return responder(request)

    requester = make_requester(transport, device)
    requester.init_connection()
    count = len(sent)
    with pytest.raises(SpdmProtocolError, match="no verified certificate chain"):
        requester.challenge()
    with pytest.raises(MalformedSpdm):
        requester.challenge(nonce=b"short")
    assert len(sent) == count


def test_challenge_needs_chal_cap(device: Device) -> None:
    responder = make_responder(device)

    def no_chal_cap(request: bytes) -> bytes:
        response = responder(request)
        if response[1] == 0x61:  # CAPABILITIES: clear CHAL_CAP
            response = response[:8] + bytes([response[8] & ~0x04]) + response[9:]
        return response

    requester = make_requester(no_chal_cap, device)
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    with pytest.raises(SpdmProtocolError, match="CHAL_CAP"):
        requester.challenge()


# --- negative: what a requester must refuse -------------------------------------------------


def _tampering(device: Device, version: SpdmVersion, edit: Callable[[bytes], bytes]) -> Requester:
    responder = make_responder(device, (version,))

    def transport(request: bytes) -> bytes:
        response = responder(request)
        return edit(response) if response[1] == 0x03 else response

    requester = make_requester(transport, device, (version,))
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    return requester


def _flip(offset: int) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        at = offset % len(data)
        return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]

    return edit


@pytest.mark.parametrize("version", [V12, V13])
@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (_flip(4), SpdmProtocolError, "another certificate chain"),  # CertChainHash
        (_flip(4 + 48), BadSignature, "M1/M2"),  # responder nonce
        (_flip(4 + 48 + 32), BadSignature, "M1/M2"),  # measurement summary hash
        (_flip(-1), BadSignature, "M1/M2"),  # signature
        (lambda d: d[:-1], MalformedSpdm, "truncated"),
        (lambda d: d + b"\x00", MalformedSpdm, "trailing"),
        (lambda d: d[:2] + b"\x01" + d[3:], SpdmProtocolError, "slot"),  # another slot
        (lambda d: d[:3] + b"\x02" + d[4:], SpdmProtocolError, "slot"),  # slot 0 not in mask
        (lambda d: d[:2] + b"\x80" + d[3:], SpdmProtocolError, "mutual"),
        (lambda d: b"\x11" + d[1:], SpdmProtocolError, "SPDMVersion"),
    ],
)
def test_tampered_challenge_auth(
    device: Device,
    version: SpdmVersion,
    edit: Callable[[bytes], bytes],
    error: type[Exception],
    match: str,
) -> None:
    requester = _tampering(device, version, edit)
    with pytest.raises(error, match=match):
        requester.challenge(summary=ALL)


def test_requester_context_must_be_echoed(device: Device) -> None:
    def edit(data: bytes) -> bytes:  # the context sits just before the 96-byte signature
        return data[: -96 - 8] + bytes(8) + data[-96:]

    requester = _tampering(device, V13, edit)
    with pytest.raises(SpdmProtocolError, match="RequesterContext"):
        requester.challenge()


def test_a_replayed_challenge_auth_answers_the_wrong_nonce(device: Device) -> None:
    """A CHALLENGE_AUTH recorded for one requester nonce fails for another (the nonce is in C)."""
    responder = make_responder(device, (V12,))
    replay: list[bytes] = []

    def transport(request: bytes) -> bytes:
        response = responder(request)
        if response[1] == 0x03:
            replay.append(response)
            return replay[0]
        return response

    requester = make_requester(transport, device, (V12,))
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    requester.challenge(nonce=NONCE)
    requester.init_connection()  # same VCA bytes, so only the nonce differs
    requester.get_digests()
    requester.get_certificate_chain()
    with pytest.raises(BadSignature):
        requester.challenge(nonce=bytes(32))


# --- negative: what a responder must refuse -------------------------------------------------


def test_responder_refuses_bad_challenges(device: Device) -> None:
    responder = make_responder(device, (V12,))

    def code(request: bytes) -> int:
        return ErrorResponse.decode(responder(request)).error_code

    assert code(Challenge(V12, 0, NONE, NONCE).encode()) == ErrorCode.UNEXPECTED_REQUEST
    responder(GetVersion().encode())
    responder(GetCapabilities(V12).encode())
    responder(NegotiateAlgorithms(V12, 1, 2, 0x80, 0x02).encode())
    assert code(Challenge(V12, 1, NONE, NONCE).encode()) == ErrorCode.INVALID_REQUEST  # slot 1
    assert code(Challenge(V12, 0xFF, NONE, NONCE).encode()) == ErrorCode.INVALID_REQUEST
    assert code(h("12 83 00 02") + NONCE) == ErrorCode.INVALID_REQUEST  # reserved type
    assert code(h("12 83 00 00") + NONCE[:-1]) == ErrorCode.INVALID_REQUEST  # truncated
    assert code(h("13 83 00 00") + NONCE) == ErrorCode.VERSION_MISMATCH
    assert responder(Challenge(V12, 0, ALL, NONCE).encode())[1] == 0x03


def test_error_answer_to_challenge(device: Device) -> None:
    """An ERROR answer is reported as such, and then the connection must start again."""
    responder, requester = make_pair(device)

    def refuse(request: bytes) -> bytes:
        if request[1] == 0x83:
            return ErrorResponse(SpdmVersion(request[0]), ErrorCode.BUSY).encode()
        return responder(request)

    requester = make_requester(refuse, device)
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    with pytest.raises(SpdmErrorResponse, match="BUSY"):
        requester.challenge()
    with pytest.raises(SpdmProtocolError, match=r"spdm-error-response.*init_connection"):
        requester.get_measurements()
    result = requester.attest(challenge=False)
    assert {b.index for b in result.blocks} == {b.index for b in BLOCKS}


class _HidesABlock(Responder):
    """A device whose CHALLENGE_AUTH summary covers all its measurements, but whose signed
    MEASUREMENTS leave the last one out (what it would do to hide a component)."""

    hiding = False

    def _visible(self, version: SpdmVersion) -> tuple[AnyMeasurementBlock, ...]:
        blocks = super()._visible(version)
        return blocks[:-1] if self.hiding else blocks

    def _get_measurements(self, request: bytes) -> bytes:
        self.hiding = True
        try:
            return super()._get_measurements(request)
        finally:
            self.hiding = False


@pytest.mark.parametrize("version", [V12, V13])
def test_measurements_that_disagree_with_the_challenge_summary_are_refused(
    device: Device, version: SpdmVersion
) -> None:
    """Everything signed and every signature good, but the blocks measured are not the ones
    the CHALLENGE_AUTH summary covers: refused, and the connection closed."""
    responder = _HidesABlock(device.leaf_key, device.chain, BLOCKS, versions=(version,))
    requester = make_requester(responder, device, (version,))
    with pytest.raises(
        SpdmProtocolError,
        match=r"^the CHALLENGE_AUTH measurement summary does not match the signed measurements$",
    ) as caught:
        requester.attest()
    assert caught.value.code == "spdm-protocol"
    assert requester.connection is None
    with pytest.raises(SpdmProtocolError, match="unusable after a failed exchange"):
        requester.last_evidence()
