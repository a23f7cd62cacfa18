"""A hostile responder the other suites did not cover: one whose CHALLENGE_AUTH or
MEASUREMENTS Nonce reflects the requester's (DSP0274 has the responder choose a random one; an
honest device repeats the request's with chance 2**-256), refused online by the Requester and
offline by the SPDM evidence verifier though the genuine key signed it; a DIGESTS provisioning
no slot; a chain whose leaf key is not of the negotiated BaseAsymAlgo."""

from __future__ import annotations

import pytest
from _spdm_helpers import NOW, Device, Recorder, make_cert, make_requester, make_responder

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import SpdmProtocolError
from ironroot.spdm import (
    OPERATION_ALL,
    BaseAsymAlgo,
    BaseHashAlgo,
    Certificate,
    CertificateChain,
    Digests,
    GetCertificate,
    GetMeasurements,
    SpdmEvidence,
    SpdmVersion,
    verify_spdm_evidence,
)

V12, V13 = SpdmVersion.V1_2, SpdmVersion.V1_3
NONCE = bytes(range(32))


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


def _same_random(size: int) -> bytes:
    """Both ends draw the same bytes: the responder's nonce is the requester's."""
    return bytes(range(size))


@pytest.mark.parametrize("version", [V12, V13])
def test_challenge_auth_reflecting_the_request_nonce_is_refused(
    device: Device, version: SpdmVersion
) -> None:
    responder = make_responder(device, (version,), random=_same_random)
    requester = make_requester(responder, device, (version,), random=_same_random)
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain(0)
    with pytest.raises(SpdmProtocolError, match="CHALLENGE_AUTH reflects the requester's nonce"):
        requester.challenge(0)
    assert requester.connection is None  # the exchange failed: the connection is closed


@pytest.mark.parametrize("version", [V12, V13])
def test_measurements_reflecting_the_request_nonce_are_refused(
    device: Device, version: SpdmVersion
) -> None:
    responder = make_responder(device, (version,), random=_same_random)
    requester = make_requester(responder, device, (version,))
    with pytest.raises(SpdmProtocolError, match="MEASUREMENTS reflects the requester's nonce"):
        requester.evidence(NONCE)
    assert requester.connection is None


def test_honest_random_nonces_still_pass(device: Device) -> None:
    responder = make_responder(device, (V13,))
    requester = make_requester(responder, device, (V13,), random=_same_random)
    result = requester.attest(nonce=NONCE)
    assert result.challenge_auth is not None
    assert result.measurements.nonce != NONCE


def test_evidence_whose_measurements_reflect_the_nonce_is_refused(device: Device) -> None:
    """The session as a requester without the check would have recorded it still fails."""
    responder = make_responder(device, (V12,), random=_same_random)
    transport = Recorder(responder)
    requester = make_requester(transport, device, (V12,))
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain(0)
    request = GetMeasurements(V12, OPERATION_ALL, True, nonce=_same_random(32)).encode()
    response = responder(request)  # signed over the VCA and this exchange: genuine
    evidence = SpdmEvidence(
        vca=tuple(m for pair in transport.log[:3] for m in pair),
        certificate_chain=responder.certificate_chain.encode(),
        request=request,
        response=response,
    ).encode()
    with pytest.raises(SpdmProtocolError, match="MEASUREMENTS reflects the requester's nonce"):
        verify_spdm_evidence(
            evidence, nonce=_same_random(32), root_certificate=device.root, now=NOW
        )


# --- DIGESTS that provisions no slot ------------------------------------------------------------


@pytest.mark.parametrize("version", [V12, V13])
def test_digests_provisioning_no_slot_is_refused_and_closes(
    device: Device, version: SpdmVersion
) -> None:
    """A responder with CERT_CAP whose DIGESTS names no slot (SlotMask 0, no digest) is refused
    at DIGESTS, as libspdm's requester refuses it (digest_count 0: INVALID_MSG_FIELD), and the
    connection is closed; it was accepted and attest() failed later with the connection open."""
    responder = make_responder(device, (version,))

    def transport(request: bytes) -> bytes:
        response = responder(request)
        if request[1] == 0x81:  # GET_DIGESTS
            return bytes([version, 0x01, 0x00, 0x00])
        return response

    requester = make_requester(transport, device, (version,))
    with pytest.raises(SpdmProtocolError, match="DIGESTS provisions no certificate slot"):
        requester.attest()
    assert requester.connection is None


# --- a certificate key of another algorithm than ALGORITHMS selected ----------------------------


def test_a_leaf_key_of_another_curve_than_negotiated_is_refused() -> None:
    """ALGORITHMS selects ECDSA P-256 (the responder's honest VCA), but the chain it serves,
    well formed and validly issued under the trusted root, ends in a P-384 key: refused at
    the certificate, before any signature is believed, and the connection is closed."""
    p256 = Device(Algorithm.ES256)
    leaf_key = PrivateKey.generate(Algorithm.ES384)
    leaf = make_cert("P-384 leaf", leaf_key, "Ironroot Test Device CA", p256.ca_key, ca=False)
    chain = CertificateChain.build([p256.root, p256.intermediate, leaf], BaseHashAlgo.SHA_256)
    served = chain.encode()
    responder = make_responder(p256, (V12,))

    def transport(request: bytes) -> bytes:
        if request[1] == 0x81:  # GET_DIGESTS: the served chain's digest
            return Digests(V12, 0x01, (chain.digest(BaseHashAlgo.SHA_256),)).encode()
        if request[1] == 0x82:  # GET_CERTIFICATE: the served chain, in the portions asked
            ask = GetCertificate.decode(request)
            portion = served[ask.offset : ask.offset + ask.length]
            return Certificate(V12, 0, portion, len(served) - ask.offset - len(portion)).encode()
        return responder(request)

    requester = make_requester(transport, p256, (V12,))
    assert requester.init_connection().base_asym_algo is BaseAsymAlgo.ECDSA_P256
    requester.get_digests()
    with pytest.raises(SpdmProtocolError, match="the leaf key does not fit ECDSA_P256"):
        requester.get_certificate_chain(0)
    assert requester.connection is None


# --- a whole run that fails on a refusal made before sending -------------------------------------


@pytest.mark.parametrize("run", ["attest", "evidence"])
def test_a_run_against_digests_without_the_slot_asked_closes_the_connection(
    device: Device, run: str
) -> None:
    """DIGESTS provisions slot 1 only; attest()/evidence() for slot 0 fail at the slot check,
    which sends nothing, but the run had sent requests: the connection is closed, as after
    any failure of a run (the hostile-answer fuzz asserts it of every refused run)."""
    responder = make_responder(device, (V12,))

    def transport(request: bytes) -> bytes:
        response = responder(request)
        if request[1] == 0x81:  # GET_DIGESTS: the honest digest, named for slot 1
            return response[:3] + b"\x02" + response[4:]
        return response

    requester = make_requester(transport, device, (V12,))
    whole_run = requester.attest if run == "attest" else lambda: requester.evidence(NONCE)
    with pytest.raises(SpdmProtocolError, match="certificate slot 0 is not provisioned"):
        whole_run()
    assert requester.connection is None
    with pytest.raises(SpdmProtocolError, match="unusable after a failed exchange"):
        requester.get_digests()
