"""CAPABILITIES flags that contradict each other (DSP0274's rules for a responder's flags, as
libspdm's requester checks them) are refused by the requester and by the offline evidence
verifier, which share ``check_capabilities``.

Every case starts from the flags Ironroot's responder sends (CERT_CAP, CHAL_CAP, MEAS_CAP 2)
and toggles what makes them inconsistent; rules that need CERT_CAP clear or MEAS_CAP other than 2
are out of reach, since those are refused first.
"""

from __future__ import annotations

import pytest
from _spdm_helpers import NOW, Device, make_requester, make_responder

from ironroot.crypto import Algorithm
from ironroot.errors import ConfigError, SpdmProtocolError
from ironroot.spdm import (
    BaseHashAlgo,
    CapabilityFlag,
    SpdmEvidence,
    SpdmVersion,
    measurement_signing_message,
    verify_spdm_evidence,
)

V12, V13 = SpdmVersion.V1_2, SpdmVersion.V1_3
F = CapabilityFlag
HONEST = F.CERT_CAP | F.CHAL_CAP | F.MEAS_CAP_SIG
SESSION = F.KEY_EX_CAP | F.MAC_CAP
_FLAGS = slice(8, 12)  # CAPABILITIES: header(4) Reserved CTExponent Reserved(2) Flags(4)

# (versions, flags toggled in HONEST, the reason in the error)
CASES = [
    ((V12, V13), F.PUB_KEY_ID_CAP, "CERT_CAP and PUB_KEY_ID_CAP are both set"),
    ((V12, V13), F.PSK_CAP_RESPONDER | F.PSK_CAP_RESPONDER_WITH_CONTEXT, "PSK_CAP 3 is reserved"),
    ((V12, V13), F.KEY_EX_CAP, "KEY_EX_CAP or PSK_CAP without MAC_CAP or ENCRYPT_CAP"),
    ((V12, V13), F.PSK_CAP_RESPONDER, "KEY_EX_CAP or PSK_CAP without MAC_CAP or ENCRYPT_CAP"),
    ((V12, V13), F.MAC_CAP, "MAC_CAP without KEY_EX_CAP or PSK_CAP"),
    ((V12, V13), F.ENCRYPT_CAP, "ENCRYPT_CAP without KEY_EX_CAP or PSK_CAP"),
    ((V12, V13), F.HBEAT_CAP, "HBEAT_CAP without KEY_EX_CAP or PSK_CAP"),
    ((V12, V13), F.KEY_UPD_CAP, "KEY_UPD_CAP without KEY_EX_CAP or PSK_CAP"),
    (
        (V12, V13),
        F.PSK_CAP_RESPONDER | F.MAC_CAP | F.HANDSHAKE_IN_THE_CLEAR_CAP,
        "HANDSHAKE_IN_THE_CLEAR_CAP without KEY_EX_CAP",
    ),
    ((V13,), F.EVENT_CAP, "EVENT_CAP without KEY_EX_CAP or PSK_CAP"),
    ((V12, V13), F.CHAL_CAP | F.MUT_AUTH_CAP, "MUT_AUTH_CAP without KEY_EX_CAP or CHAL_CAP"),
    ((V12, V13), F.CSR_CAP | SESSION, "CSR_CAP without SET_CERT_CAP"),
    (
        (V12, V13),
        F.CERT_INSTALL_RESET_CAP,
        "CERT_INSTALL_RESET_CAP without CSR_CAP or SET_CERT_CAP",
    ),
    ((V12,), F.EP_INFO_CAP_SIG, "reserved flag bits 0x800000 are set"),
    ((V12,), 1 << 31, "reserved flag bits 0x80000000 are set"),
    ((V13,), 1 << 30, "reserved flag bits 0x40000000 are set"),
    ((V13,), F.EP_INFO_CAP_NO_SIG | F.EP_INFO_CAP_SIG, "EP_INFO_CAP 3 is reserved"),
    (
        (V13,),
        F.MULTI_KEY_CAP_ONLY | F.MULTI_KEY_CAP_NEG | F.GET_KEY_PAIR_INFO_CAP,
        "MULTI_KEY_CAP 3 is reserved",
    ),
    ((V13,), F.MULTI_KEY_CAP_NEG, "MULTI_KEY_CAP without GET_KEY_PAIR_INFO_CAP"),
    (
        (V13,),
        F.MULTI_KEY_CAP_ONLY | F.GET_KEY_PAIR_INFO_CAP,
        "MULTI_KEY_CAP 1 (multi-key connections only) is not spoken here",
    ),
]
_IDS = [f"{'+'.join(v.label for v in versions)}-{reason}" for versions, _, reason in CASES]


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


def _with_flags(response: bytes, flags: int) -> bytes:
    return response[: _FLAGS.start] + flags.to_bytes(4, "little") + response[_FLAGS.stop :]


def _expected(reason: str) -> str:
    return f"CAPABILITIES flags are inconsistent: {reason}"


@pytest.mark.parametrize(("versions", "extra", "reason"), CASES, ids=_IDS)
def test_requester_refuses_inconsistent_flags(
    device: Device, versions: tuple[SpdmVersion, ...], extra: int, reason: str
) -> None:
    for version in versions:
        responder = make_responder(device, (version,))

        def transport(request: bytes, responder: object = responder) -> bytes:
            response = responder(request)  # type: ignore[operator]
            if response[1] == 0x61:
                response = _with_flags(response, int(HONEST) ^ int(extra))
            return response  # type: ignore[no-any-return]

        requester = make_requester(transport, device, (version,))
        with pytest.raises(SpdmProtocolError) as caught:
            requester.init_connection()
        assert caught.value.detail == _expected(reason)
        assert requester.connection is None


@pytest.mark.parametrize(("versions", "extra", "reason"), CASES, ids=_IDS)
def test_evidence_with_inconsistent_flags_is_refused(
    device: Device, versions: tuple[SpdmVersion, ...], extra: int, reason: str
) -> None:
    for version in versions:
        requester = make_requester(make_responder(device, (version,)), device, (version,))
        record = SpdmEvidence.decode(requester.evidence(bytes(32)))
        vca = list(record.vca)
        vca[3] = _with_flags(vca[3], int(HONEST) ^ int(extra))
        # signed by the device's own key: a device that lies about itself, not a carrier
        unsigned = record.response[:-96]
        transcript = b"".join(vca) + record.request + unsigned
        message = measurement_signing_message(version, BaseHashAlgo.SHA_384, transcript)
        response = unsigned + device.leaf_key.sign(message)
        edited = SpdmEvidence(tuple(vca), record.certificate_chain, record.request, response)
        with pytest.raises(SpdmProtocolError) as caught:
            verify_spdm_evidence(
                edited.encode(), nonce=bytes(32), root_certificate=device.root, now=NOW
            )
        assert caught.value.detail == _expected(reason)


@pytest.mark.parametrize(
    ("version", "extra"),
    [
        (V12, SESSION | F.PSK_CAP_RESPONDER | F.ENCRYPT_CAP | F.HBEAT_CAP | F.KEY_UPD_CAP),
        (V12, SESSION | F.MUT_AUTH_CAP | F.ENCAP_CAP | F.HANDSHAKE_IN_THE_CLEAR_CAP),
        (V12, F.SET_CERT_CAP | F.CSR_CAP | F.CERT_INSTALL_RESET_CAP | F.ALIAS_CERT_CAP),
        (V12, F.CHUNK_CAP | F.CACHE_CAP | F.MEAS_FRESH_CAP),
        (V13, SESSION | F.EVENT_CAP | F.MEL_CAP | F.EP_INFO_CAP_SIG),
        (V13, F.MULTI_KEY_CAP_NEG | F.GET_KEY_PAIR_INFO_CAP | F.SET_KEY_PAIR_INFO_CAP),
    ],
)
def test_consistent_flags_are_accepted(device: Device, version: SpdmVersion, extra: int) -> None:
    """Flags a responder may combine: the connection is made (the flags are unused here)."""
    responder = make_responder(device, (version,))

    def transport(request: bytes) -> bytes:
        response = responder(request)
        return _with_flags(response, int(HONEST) ^ int(extra)) if response[1] == 0x61 else response

    connection = make_requester(transport, device, (version,)).init_connection()
    assert connection.capabilities.flags == int(HONEST) ^ int(extra)


# --- MaxSPDMmsgSize without chunking ---------------------------------------------------------

_SIZES = slice(12, 20)  # DataTransferSize(4) MaxSPDMmsgSize(4)
_UNEQUAL = "CAPABILITIES: MaxSPDMmsgSize 8192 is not DataTransferSize 4096, and CHUNK_CAP is clear"


def _with_sizes(response: bytes, dts: int, max_msg: int, flags: int = HONEST) -> bytes:
    sizes = dts.to_bytes(4, "little") + max_msg.to_bytes(4, "little")
    response = response[: _SIZES.start] + sizes + response[_SIZES.stop :]
    return _with_flags(response, flags)


@pytest.mark.parametrize("version", [V12, V13], ids=["1.2", "1.3"])
def test_requester_refuses_max_message_size_apart_from_dts_without_chunking(
    device: Device, version: SpdmVersion
) -> None:
    """DSP0274 1.2.2 / 1.3: without the Large SPDM message transfer mechanism (CHUNK_CAP),
    MaxSPDMmsgSize shall equal DataTransferSize (libspdm's requester checks it)."""
    responder = make_responder(device, (version,))

    def transport(request: bytes) -> bytes:
        response = responder(request)
        return _with_sizes(response, 4096, 8192) if response[1] == 0x61 else response

    requester = make_requester(transport, device, (version,))
    with pytest.raises(SpdmProtocolError) as caught:
        requester.init_connection()
    assert caught.value.detail == _UNEQUAL


def test_max_message_size_apart_from_dts_with_chunking_is_accepted(device: Device) -> None:
    responder = make_responder(device, (V13,))

    def transport(request: bytes) -> bytes:
        response = responder(request)
        if response[1] != 0x61:
            return response
        return _with_sizes(response, 4096, 8192, HONEST | F.CHUNK_CAP)

    connection = make_requester(transport, device, (V13,)).init_connection()
    assert connection.capabilities.max_spdm_msg_size == 8192


def test_evidence_with_max_message_size_apart_from_dts_is_refused(device: Device) -> None:
    requester = make_requester(make_responder(device, (V12,)), device, (V12,))
    record = SpdmEvidence.decode(requester.evidence(bytes(32)))
    vca = list(record.vca)
    vca[3] = _with_sizes(vca[3], 4096, 8192)
    unsigned = record.response[:-96]
    message = measurement_signing_message(
        V12, BaseHashAlgo.SHA_384, b"".join(vca) + record.request + unsigned
    )
    response = unsigned + device.leaf_key.sign(message)
    edited = SpdmEvidence(tuple(vca), record.certificate_chain, record.request, response)
    with pytest.raises(SpdmProtocolError) as caught:
        verify_spdm_evidence(
            edited.encode(), nonce=bytes(32), root_certificate=device.root, now=NOW
        )
    assert caught.value.detail == _UNEQUAL


def test_a_responder_without_chunking_has_one_buffer_size(device: Device) -> None:
    with pytest.raises(ConfigError, match="MaxSPDMmsgSize must equal DataTransferSize"):
        make_responder(device, data_transfer_size=42, max_spdm_msg_size=4096)
