"""The public surface of ironroot.spdm is exactly what is meant to be public."""

from __future__ import annotations

import hashlib

import pytest

import ironroot.spdm as spdm
from ironroot import errors


def test_public_names() -> None:
    assert set(spdm.__all__) == {
        "MEASUREMENTS_SIGNING_CONTEXT", "MEASUREMENT_SPECIFICATION_DMTF", "NONCE_SIZE",
        "OPERATION_ALL", "OPERATION_TOTAL_NUMBER", "REQUESTER_CONTEXT_SIZE", "AlgStructure",
        "Algorithms", "AttestationResult", "BaseAsymAlgo", "BaseHashAlgo", "Capabilities",
        "CapabilityFlag", "Certificate", "CertificateChain", "Connection", "DeviceMode",
        "Digests", "ErrorCode", "ErrorResponse", "ExtendedAlgorithm", "GetCapabilities",
        "GetCertificate", "GetDigests", "GetMeasurements", "GetVersion", "MeasurementBlock",
        "MeasurementHashAlgo", "MeasurementValueType", "Measurements", "NegotiateAlgorithms",
        "OpaqueDataFormat", "OpaqueElement", "RequestResponseCode", "Requester", "Responder",
        "SpdmVersion", "Transport", "Version", "VersionNumber", "combined_spdm_prefix",
        "decode_measurement_record", "decode_opaque_data", "encode_measurement_record",
        "encode_opaque_data", "measurement_signing_message", "verify_certificate_chain",
        "SPDM_EVIDENCE_FORMAT", "SpdmEvidence", "VerifiedSpdm", "verify_spdm_evidence",
        "AnyMeasurementBlock", "UnknownMeasurementBlock", "CHALLENGE_AUTH_SIGNING_CONTEXT",
        "Challenge", "ChallengeAuth", "MeasurementSummaryHashType",
        "challenge_auth_signing_message", "measurement_summary_hash", "DeviceIdentity",
        "check_device_leaf", "DoeObject", "SocketCommand", "SocketFrame",
        "SocketTransportType", "SpdmChainCache", "SpdmEmuClient", "decode_transport_message",
        "encode_transport_message", "serve_spdm_emu", "load_certificates",
        "REPORT_VERSIONS", "MeasurementReport", "verify_measurement_report",
        "check_report_signature",
    }  # fmt: skip
    for name in spdm.__all__:
        assert getattr(spdm, name) is not None


def test_error_classes() -> None:
    assert issubclass(errors.MalformedSpdm, errors.MalformedInput)
    assert issubclass(errors.SpdmProtocolError, errors.VerificationFailed)
    assert issubclass(errors.SpdmErrorResponse, errors.SpdmProtocolError)
    assert {"MalformedSpdm", "SpdmProtocolError", "SpdmErrorResponse"} <= set(errors.__all__)


def test_signing_prefix_layout() -> None:
    prefix = spdm.combined_spdm_prefix(spdm.SpdmVersion.V1_3, spdm.MEASUREMENTS_SIGNING_CONTEXT)
    assert prefix == b"dmtf-spdm-v1.3.*" * 4 + bytes(6) + b"responder-measurements signing"
    message = spdm.measurement_signing_message(
        spdm.SpdmVersion.V1_2, spdm.BaseHashAlgo.SHA_256, b"transcript"
    )
    assert message[:64] == b"dmtf-spdm-v1.2.*" * 4
    assert message[100:] == hashlib.sha256(b"transcript").digest()
    with pytest.raises(errors.MalformedSpdm):
        spdm.combined_spdm_prefix(spdm.SpdmVersion.V1_1, spdm.MEASUREMENTS_SIGNING_CONTEXT)
    with pytest.raises(errors.MalformedSpdm):
        spdm.combined_spdm_prefix(spdm.SpdmVersion.V1_2, bytes(37))
