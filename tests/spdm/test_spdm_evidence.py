"""SPDM evidence: a measured session recorded by the requester and verified offline."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

import pytest
from _spdm_helpers import BLOCKS, NOW, Device, make_cert, make_pair, make_requester, make_responder
from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    ChainNotTrusted,
    MalformedSpdm,
    SpdmProtocolError,
    StaleNonce,
)
from ironroot.spdm import (
    BaseHashAlgo,
    Measurements,
    Responder,
    SpdmEvidence,
    SpdmVersion,
    verify_spdm_evidence,
)
from ironroot.spdm._signing import measurement_signing_message


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


def _evidence(device: Device, nonce: bytes, versions: tuple[SpdmVersion, ...]) -> bytes:
    _, requester = make_pair(device, versions=versions, requester_versions=versions)
    return requester.evidence(nonce)


@pytest.mark.parametrize("version", [SpdmVersion.V1_2, SpdmVersion.V1_3])
def test_round_trip(device: Device, version: SpdmVersion) -> None:
    nonce = os.urandom(32)
    data = _evidence(device, nonce, (version,))
    verified = verify_spdm_evidence(data, nonce=nonce, root_certificate=device.root, now=NOW)
    assert verified.connection.version == version
    assert [b.index for b in verified.blocks] == [b.index for b in BLOCKS]
    assert not verified.blocks[0].raw  # no raw bit stream asked: the device sends digests
    assert len(verified.blocks[0].value) == 48  # SHA-384 (the negotiated measurement hash)
    assert SpdmEvidence.decode(data).encode() == data


def test_another_nonce_is_stale(device: Device) -> None:
    data = _evidence(device, bytes(32), (SpdmVersion.V1_2,))
    with pytest.raises(StaleNonce):
        verify_spdm_evidence(data, nonce=b"\x01" * 32, root_certificate=device.root, now=NOW)


def test_another_root_is_not_trusted(device: Device) -> None:
    data = _evidence(device, bytes(32), (SpdmVersion.V1_2,))
    with pytest.raises(ChainNotTrusted):
        verify_spdm_evidence(data, nonce=bytes(32), root_certificate=Device().root, now=NOW)


@pytest.mark.parametrize("part", ["vca", "request", "response", "signature"])
def test_flipped_bit_in_any_signed_part(device: Device, part: str) -> None:
    nonce = bytes(32)
    record = SpdmEvidence.decode(_evidence(device, nonce, (SpdmVersion.V1_2,)))
    if part == "vca":
        algorithms = bytearray(record.vca[3])
        algorithms[-1] ^= 0x01  # a CAPABILITIES byte the responder signed through L1/L2
        record = dataclasses.replace(
            record, vca=(*record.vca[:3], bytes(algorithms), *record.vca[4:])
        )
    elif part == "request":
        request = bytearray(record.request)
        request[-1] ^= 0x01
        record = dataclasses.replace(record, request=bytes(request))
    else:
        response = bytearray(record.response)
        response[-1 if part == "signature" else 20] ^= 0x01
        record = dataclasses.replace(record, response=bytes(response))
    with pytest.raises((BadSignature, StaleNonce, SpdmProtocolError, MalformedSpdm)) as info:
        verify_spdm_evidence(record, nonce=nonce, root_certificate=device.root, now=NOW)
    if part in ("signature", "response"):
        assert info.type in (BadSignature, MalformedSpdm)


def test_a_session_with_the_same_vca_is_checked_in_full_each_time(device: Device) -> None:
    """The connection the VCA messages settle is remembered by their exact bytes: evidence
    with the same VCA verifies again, a changed VCA byte after it is refused, and the
    remembered VCA still serves when a later part of a record is wrong."""
    nonce = bytes(32)
    record = SpdmEvidence.decode(_evidence(device, nonce, (SpdmVersion.V1_2,)))
    for _ in range(2):
        verify_spdm_evidence(record, nonce=nonce, root_certificate=device.root, now=NOW)
    version = bytearray(record.vca[1])
    version[0] = 0x11  # VERSION answered as SPDM 1.1
    changed = dataclasses.replace(record, vca=(record.vca[0], bytes(version), *record.vca[2:]))
    with pytest.raises(MalformedSpdm):
        verify_spdm_evidence(changed, nonce=nonce, root_certificate=device.root, now=NOW)
    with pytest.raises(StaleNonce):
        verify_spdm_evidence(record, nonce=b"\x01" * 32, root_certificate=device.root, now=NOW)


def test_tampered_certificate_chain(device: Device) -> None:
    record = SpdmEvidence.decode(_evidence(device, bytes(32), (SpdmVersion.V1_2,)))
    chain = bytearray(record.certificate_chain)
    chain[-40] ^= 0x01
    record = dataclasses.replace(record, certificate_chain=bytes(chain))
    with pytest.raises((ChainNotTrusted, MalformedSpdm)):
        verify_spdm_evidence(record, nonce=bytes(32), root_certificate=device.root, now=NOW)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xa0", b"\x82\x01\x02", bytes.fromhex("a1666669726d6174") + b"\x60"],
    ids=["empty", "empty-map", "array", "wrong-members"],
)
def test_malformed_records(device: Device, data: bytes) -> None:
    with pytest.raises(MalformedSpdm):
        verify_spdm_evidence(data, nonce=bytes(32), root_certificate=device.root, now=NOW)


def test_last_evidence_only_of_measurements_right_after_the_vca(device: Device) -> None:
    """L1/L2 of a signed GET_MEASUREMENTS after an unsigned one holds both exchanges: the
    record (VCA and the last exchange only) would not verify, so none is given."""
    _, requester = make_pair(device, versions=(SpdmVersion.V1_2,))
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    requester.get_measurements(signed=False)
    nonce = os.urandom(32)
    requester.get_measurements(signed=True, nonce=nonce)
    with pytest.raises(SpdmProtocolError, match="not right after the VCA"):
        requester.last_evidence()
    requester.get_certificate_chain()  # resets L1/L2: the next signed exchange is recordable
    requester.get_measurements(signed=True, nonce=nonce)
    verified = verify_spdm_evidence(
        requester.last_evidence(), nonce=nonce, root_certificate=device.root, now=NOW
    )
    assert verified.nonce == nonce
    requester.init_connection()  # a new VCA: the old exchange is not of this session
    with pytest.raises(SpdmProtocolError, match="no signed measurements"):
        requester.last_evidence()


def test_nonce_must_be_32_bytes(device: Device) -> None:
    _, requester = make_pair(device)
    with pytest.raises(MalformedSpdm):
        requester.evidence(b"short")


def test_attestation_claims_and_cli(device: Device, tmp_path: Path) -> None:
    """The verifier's view: SPDM evidence as EvidenceClaims, and `ironroot evidence verify`."""
    from ironroot.attestation import SPDM_FORMAT, detect_format, verify_spdm
    from ironroot.cli import main

    nonce = bytes(range(32))
    data = _evidence(device, nonce, (SpdmVersion.V1_3,))
    assert detect_format(data) == SPDM_FORMAT
    claims = verify_spdm(data, nonce=nonce, roots=[Device().root, device.root], now=NOW)
    assert claims.format == "spdm"
    assert claims.report_data == nonce
    assert set(claims.measurements) == {f"spdm.{b.index}" for b in BLOCKS}
    assert claims.debug is False  # DeviceMode reported raw although no raw bit stream was asked
    (tmp_path / "ev.cbor").write_bytes(data)
    (tmp_path / "root.der").write_bytes(device.root)
    args = ["evidence", "verify", str(tmp_path / "ev.cbor"), "--cert", str(tmp_path / "root.der")]
    assert main([*args, "--nonce", nonce.hex(), "--at", NOW.isoformat()]) == 0
    assert main([*args, "--nonce", "00" * 32, "--at", NOW.isoformat()]) == 1


def test_raw_device_mode_reports_debug(device: Device) -> None:
    """A raw DeviceMode block whose state says debug is active makes the claims say debug."""
    from ironroot.attestation import verify_spdm

    _, requester = make_pair(device)
    nonce = bytes(32)
    data = requester.evidence(nonce, raw_bit_stream=True)
    claims = verify_spdm(data, nonce=nonce, roots=[device.root], now=NOW)
    mode = next(b for b in BLOCKS if b.index == 0xFE).device_mode()
    assert claims.debug is bool(mode.device_mode_state & 0x0F)
    assert claims.svns == {"spdm.5": 7}


def test_appraisal_trusts_the_configured_device_root(device: Device) -> None:
    from ironroot.attestation import Endorsements, appraise, verify_spdm

    nonce = bytes(32)
    _, requester = make_pair(device)
    claims = verify_spdm(requester.evidence(nonce), nonce=nonce, roots=[device.root], now=NOW)
    trusted = Endorsements.build(service_keys={}, vendor_roots=[device.root], now=NOW)
    (appraisal,) = appraise(claims, trusted, nonce=nonce, now=NOW).submods.values()
    assert appraisal.trust_vector["instance-identity"] == 2
    stranger = Endorsements.build(service_keys={}, vendor_roots=[Device().root], now=NOW)
    (appraisal,) = appraise(claims, stranger, nonce=nonce, now=NOW).submods.values()
    assert appraisal.trust_vector["instance-identity"] == 97


def test_spdm_nonce_through_the_format_table(device: Device) -> None:
    from ironroot.attestation.evidence import CheckLog, VerifyOptions, verify_evidence

    nonce = os.urandom(32)
    data = _evidence(device, nonce, (SpdmVersion.V1_2,))
    options = VerifyOptions(now=NOW, nonce=nonce, roots=(device.root,))
    claims = verify_evidence(data, options)
    assert [(c.name, c.ok) for c in claims.checks] == [
        ("session", True),
        ("device-mode", True),  # BLOCKS' raw DeviceMode shows debug off
        ("nonce", True),
    ]
    log = CheckLog()
    with pytest.raises(StaleNonce) as exc:
        verify_evidence(data, dataclasses.replace(options, nonce=os.urandom(32)), checks=log)
    assert exc.value.check == "nonce"
    assert [(c.name, c.ok) for c in log.checks] == [
        ("session", True),
        ("device-mode", True),
        ("nonce", False),
    ]
    with pytest.raises(StaleNonce) as exc:
        verify_evidence(data, dataclasses.replace(options, nonce=None))
    assert exc.value.check == "nonce"


@pytest.mark.parametrize(("operation", "what"), [(3, "index 3"), (0, "operation 0")])
def test_measurements_must_answer_the_recorded_operation(
    device: Device, operation: int, what: str
) -> None:
    """A device that signs all its blocks in answer to a request for one index (or for the
    count alone) is refused offline as the requester refuses it live."""
    nonce = os.urandom(32)
    record = SpdmEvidence.decode(_evidence(device, nonce, (SpdmVersion.V1_2,)))
    request = record.request[:3] + bytes([operation]) + record.request[4:]
    unsigned = record.response[:-96]
    transcript = b"".join(record.vca) + request + unsigned
    message = measurement_signing_message(SpdmVersion.V1_2, BaseHashAlgo.SHA_384, transcript)
    forged = SpdmEvidence(
        record.vca, record.certificate_chain, request, unsigned + device.leaf_key.sign(message)
    )
    with pytest.raises(SpdmProtocolError, match=what):
        verify_spdm_evidence(forged, nonce=nonce, root_certificate=device.root, now=NOW)


def test_a_get_capabilities_of_another_version_is_refused(device: Device) -> None:
    """GET_CAPABILITIES chooses the version: a record whose GET_CAPABILITIES is SPDM 1.3 and
    whose CAPABILITIES, ALGORITHMS and measurements are 1.2 (signed so by the device) is
    refused offline, as the requester refuses such a CAPABILITIES live."""
    nonce = os.urandom(32)
    record = SpdmEvidence.decode(_evidence(device, nonce, (SpdmVersion.V1_2,)))
    vca = list(record.vca)
    vca[2] = bytes([SpdmVersion.V1_3]) + vca[2][1:]
    unsigned = record.response[:-96]
    transcript = b"".join(vca) + record.request + unsigned
    message = measurement_signing_message(SpdmVersion.V1_2, BaseHashAlgo.SHA_384, transcript)
    forged = SpdmEvidence(
        tuple(vca),
        record.certificate_chain,
        record.request,
        unsigned + device.leaf_key.sign(message),
    )
    with pytest.raises(SpdmProtocolError) as caught:
        verify_spdm_evidence(forged, nonce=nonce, root_certificate=device.root, now=NOW)
    assert caught.value.detail == "the recorded VCA messages disagree on the SPDM version"


@pytest.mark.parametrize(
    ("opaque", "message"),
    [
        (b"\x01\x02\x03", "general opaque data length is not a multiple of 4"),
        (b"\x00\x00\x00\x00", "general opaque data has no elements"),
    ],
)
def test_opaque_data_is_checked_as_the_requester_does(
    device: Device, opaque: bytes, message: str
) -> None:
    """OpaqueDataFmt1 was negotiated: MEASUREMENTS opaque data that is not general opaque
    data (signed so by the device) is refused offline, as the requester refuses it live."""
    nonce = os.urandom(32)
    record = SpdmEvidence.decode(_evidence(device, nonce, (SpdmVersion.V1_2,)))
    unsigned = record.response[:-96]
    sent = Measurements.decode(record.response, signature_size=96).opaque_data
    assert unsigned.endswith(len(sent).to_bytes(2, "little") + sent)  # 1.2: no context after
    opaque_at = len(unsigned) - len(sent) - 2
    unsigned = unsigned[:opaque_at] + len(opaque).to_bytes(2, "little") + opaque
    transcript = b"".join(record.vca) + record.request + unsigned
    message_signed = measurement_signing_message(SpdmVersion.V1_2, BaseHashAlgo.SHA_384, transcript)
    forged = SpdmEvidence(
        record.vca,
        record.certificate_chain,
        record.request,
        unsigned + device.leaf_key.sign(message_signed),
    )
    with pytest.raises(MalformedSpdm) as caught:
        verify_spdm_evidence(forged, nonce=nonce, root_certificate=device.root, now=NOW)
    assert caught.value.detail == message


@pytest.mark.parametrize(
    ("clear", "message"),
    [
        (0x02, "the responder has no certificates (CERT_CAP clear)"),
        (0x10, "the responder cannot sign measurements (MEAS_CAP)"),
    ],
)
def test_capabilities_are_checked_as_the_requester_does(
    device: Device, clear: int, message: str
) -> None:
    """A recorded CAPABILITIES without CERT_CAP, or without MEAS_CAP signed, beside signed
    measurements (signed so by the device) is refused offline, as the requester refuses it."""
    nonce = os.urandom(32)
    record = SpdmEvidence.decode(_evidence(device, nonce, (SpdmVersion.V1_2,)))
    vca = list(record.vca)
    flags = int.from_bytes(vca[3][8:12], "little")
    assert flags & clear  # the device announced it
    vca[3] = vca[3][:8] + (flags & ~clear).to_bytes(4, "little") + vca[3][12:]
    unsigned = record.response[:-96]
    transcript = b"".join(vca) + record.request + unsigned
    signed = measurement_signing_message(SpdmVersion.V1_2, BaseHashAlgo.SHA_384, transcript)
    forged = SpdmEvidence(
        tuple(vca),
        record.certificate_chain,
        record.request,
        unsigned + device.leaf_key.sign(signed),
    )
    with pytest.raises(SpdmProtocolError) as caught:
        verify_spdm_evidence(forged, nonce=nonce, root_certificate=device.root, now=NOW)
    assert caught.value.detail == message


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (7, "ALGORITHMS selected an opaque data format not offered"),
        (6, "ALGORITHMS selected MeasurementSpecification 0x1, not offered"),
    ],
)
def test_selections_must_be_among_the_recorded_offers(
    device: Device, offset: int, message: str
) -> None:
    """The recorded NEGOTIATE_ALGORITHMS offers no opaque data format (OtherParamsSupport 0)
    or no measurement specification, and the ALGORITHMS selects one anyway (signed so by the
    device): refused offline, as a selection outside the offer is refused live."""
    nonce = os.urandom(32)
    record = SpdmEvidence.decode(_evidence(device, nonce, (SpdmVersion.V1_2,)))
    vca = list(record.vca)
    assert vca[4][offset]  # offered
    assert vca[5][offset]  # and selected
    vca[4] = vca[4][:offset] + b"\x00" + vca[4][offset + 1 :]
    unsigned = record.response[:-96]
    transcript = b"".join(vca) + record.request + unsigned
    signed = measurement_signing_message(SpdmVersion.V1_2, BaseHashAlgo.SHA_384, transcript)
    forged = SpdmEvidence(
        tuple(vca),
        record.certificate_chain,
        record.request,
        unsigned + device.leaf_key.sign(signed),
    )
    with pytest.raises(SpdmProtocolError) as caught:
        verify_spdm_evidence(forged, nonce=nonce, root_certificate=device.root, now=NOW)
    assert caught.value.detail == message


def test_all_measurements_signed_with_no_block_is_refused(device: Device) -> None:
    """A device that signs an empty answer to "all measurements" is refused offline, as the
    requester refuses it live."""
    nonce = os.urandom(32)
    record = SpdmEvidence.decode(_evidence(device, nonce, (SpdmVersion.V1_2,)))
    honest = Measurements.decode(record.response, signature_size=96)
    unsigned = dataclasses.replace(honest, blocks=(), signature=b"").encode_unsigned()
    transcript = b"".join(record.vca) + record.request + unsigned
    signed = measurement_signing_message(SpdmVersion.V1_2, BaseHashAlgo.SHA_384, transcript)
    forged = SpdmEvidence(
        record.vca,
        record.certificate_chain,
        record.request,
        unsigned + device.leaf_key.sign(signed),
    )
    with pytest.raises(SpdmProtocolError) as caught:
        verify_spdm_evidence(forged, nonce=nonce, root_certificate=device.root, now=NOW)
    assert caught.value.detail == "MEASUREMENTS answers all measurements with no block"


def test_last_evidence_keeps_the_chain_that_verified_the_measurements(device: Device) -> None:
    """Slot 0 re-provisioned after the signed measurements (or another device's DIGESTS and
    CERTIFICATE swapped in, under the same root): the record keeps the chain whose key
    signed them, not the one fetched later, so it verifies and names the device measured."""
    other_key = PrivateKey.generate(Algorithm.ES384)
    other_leaf = make_cert(
        "Another Device", other_key, "Ironroot Test Device CA", device.ca_key, ca=False
    )
    other = Responder(other_key, [device.root, device.intermediate, other_leaf], BLOCKS)
    first = make_responder(device)
    vca: list[bytes] = []
    switched = [False]

    def transport(request: bytes) -> bytes:
        if not switched[0]:
            if len(vca) < 3:
                vca.append(request)
            return first(request)
        return other(request)

    requester = make_requester(transport, device, (SpdmVersion.V1_2,))
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain()
    nonce = os.urandom(32)
    requester.get_measurements(nonce=nonce)
    for request in vca:  # the other device answers the same VCA with the same bytes
        other(request)
    switched[0] = True
    requester.get_digests()
    assert requester.get_certificate_chain().leaf == other_leaf
    verified = verify_spdm_evidence(
        requester.last_evidence(), nonce=nonce, root_certificate=device.root, now=NOW
    )
    assert verified.leaf.public_bytes(Encoding.DER) == device.leaf


@pytest.mark.parametrize("leaf_days", [10, 365])
def test_claims_hold_until_the_first_device_certificate_ends(leaf_days: int) -> None:
    """SPDM claims set no valid_until: an EAR affirmed a device for the whole result lifetime
    after its certificate had expired."""
    from ironroot.attestation import Endorsements, appraise, verify_spdm
    from ironroot.spdm import SpdmChainCache

    device = Device(leaf_days=leaf_days)
    nonce = bytes(32)
    _, requester = make_pair(device)
    data = requester.evidence(nonce)
    end = NOW + dt.timedelta(days=leaf_days)  # the leaf's; the root's and CA's are a year on
    claims = verify_spdm(data, nonce=nonce, roots=[Device().root, device.root], now=NOW)
    assert claims.valid_until == end
    cache = SpdmChainCache()
    for _ in range(2):  # filling the cache, then from it
        cached = verify_spdm(data, nonce=nonce, roots=[device.root], now=NOW, cache=cache)
        assert cached.valid_until == end
    trusted = Endorsements.build(service_keys={}, vendor_roots=[device.root], now=NOW)
    result = appraise(claims, trusted, nonce=nonce, now=NOW, lifetime=90 * 86400)
    assert result.exp == min(int(end.timestamp()), result.iat + 90 * 86400)
