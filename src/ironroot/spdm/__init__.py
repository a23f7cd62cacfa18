"""SPDM 1.2 / 1.3 (DMTF DSP0274): messages, certificate chains, measurements, signatures;
and recorded SPDM 1.0 / 1.1 measurement reports.

The subset a verifier needs to attest a device: VCA (GET_VERSION, GET_CAPABILITIES,
NEGOTIATE_ALGORITHMS), GET_DIGESTS, GET_CERTIFICATE, CHALLENGE, GET_MEASUREMENTS and ERROR, each
a frozen dataclass with byte-exact ``encode`` and strict ``decode``; the SPDM certificate chain
format and its verification to a root; DMTF measurement blocks (unknown value types kept as
:class:`UnknownMeasurementBlock`); the 1.2+ signing contexts over the M1/M2 and L1/L2
transcripts; a :class:`Responder` (a simulated device) and a :class:`Requester` that drives a
connection over any ``send(bytes) -> bytes`` transport and verifies what it gets.

:class:`MeasurementReport` / :func:`verify_measurement_report` decode and verify a recorded
SPDM 1.0/1.1 GET_MEASUREMENTS exchange (request ‖ signed response, no VCA, no signing
context), as NVIDIA Hopper GPUs produce.

:class:`SpdmEmuClient` and :func:`serve_spdm_emu` carry the messages over the socket framing of
DMTF's ``spdm-emu`` emulators (MCTP, PCI DOE or TCP bindings), so both ends interoperate with
libspdm.

Signing suites are ECDSA P-256/SHA-256, P-384/SHA-384 and P-521/SHA-512 through
:mod:`ironroot.crypto`. Malformed bytes raise :class:`ironroot.errors.MalformedSpdm`; protocol
violations :class:`~ironroot.errors.SpdmProtocolError` (an ERROR answer:
:class:`~ironroot.errors.SpdmErrorResponse`); bad signatures
:class:`~ironroot.errors.BadSignature`; chains :class:`~ironroot.errors.ChainNotTrusted` or
:class:`~ironroot.errors.CertificateExpired`.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.spdm._certchain import (
        CertificateChain,
        SpdmChainCache,
        load_certificates,
        verify_certificate_chain,
    )
    from ironroot.spdm._constants import (
        MEASUREMENT_SPECIFICATION_DMTF,
        NONCE_SIZE,
        REQUESTER_CONTEXT_SIZE,
        BaseAsymAlgo,
        BaseHashAlgo,
        CapabilityFlag,
        ErrorCode,
        MeasurementHashAlgo,
        MeasurementSummaryHashType,
        MeasurementValueType,
        OpaqueDataFormat,
        RequestResponseCode,
        SpdmVersion,
    )
    from ironroot.spdm._evidence import SPDM_EVIDENCE_FORMAT, SpdmEvidence
    from ironroot.spdm._identity import DeviceIdentity, check_device_leaf
    from ironroot.spdm._measurements import (
        AnyMeasurementBlock,
        DeviceMode,
        MeasurementBlock,
        OpaqueElement,
        UnknownMeasurementBlock,
        decode_measurement_record,
        decode_opaque_data,
        encode_measurement_record,
        encode_opaque_data,
    )
    from ironroot.spdm._messages import (
        OPERATION_ALL,
        OPERATION_TOTAL_NUMBER,
        Algorithms,
        AlgStructure,
        Capabilities,
        Certificate,
        Challenge,
        ChallengeAuth,
        Digests,
        ErrorResponse,
        ExtendedAlgorithm,
        GetCapabilities,
        GetCertificate,
        GetDigests,
        GetMeasurements,
        GetVersion,
        Measurements,
        NegotiateAlgorithms,
        Version,
        VersionNumber,
    )
    from ironroot.spdm._report import (
        REPORT_VERSIONS,
        MeasurementReport,
        check_report_signature,
        verify_measurement_report,
    )
    from ironroot.spdm._requester import AttestationResult, Connection, Requester, Transport
    from ironroot.spdm._responder import Responder
    from ironroot.spdm._signing import (
        CHALLENGE_AUTH_SIGNING_CONTEXT,
        MEASUREMENTS_SIGNING_CONTEXT,
        challenge_auth_signing_message,
        combined_spdm_prefix,
        measurement_signing_message,
        measurement_summary_hash,
    )
    from ironroot.spdm._transport import (
        DoeObject,
        SocketCommand,
        SocketFrame,
        SocketTransportType,
        SpdmEmuClient,
        decode_transport_message,
        encode_transport_message,
        serve_spdm_emu,
    )
    from ironroot.spdm._verify_evidence import VerifiedSpdm, verify_spdm_evidence

__all__ = [
    "CHALLENGE_AUTH_SIGNING_CONTEXT",
    "MEASUREMENTS_SIGNING_CONTEXT",
    "MEASUREMENT_SPECIFICATION_DMTF",
    "NONCE_SIZE",
    "OPERATION_ALL",
    "OPERATION_TOTAL_NUMBER",
    "REPORT_VERSIONS",
    "REQUESTER_CONTEXT_SIZE",
    "SPDM_EVIDENCE_FORMAT",
    "AlgStructure",
    "Algorithms",
    "AnyMeasurementBlock",
    "AttestationResult",
    "BaseAsymAlgo",
    "BaseHashAlgo",
    "Capabilities",
    "CapabilityFlag",
    "Certificate",
    "CertificateChain",
    "Challenge",
    "ChallengeAuth",
    "Connection",
    "DeviceIdentity",
    "DeviceMode",
    "Digests",
    "DoeObject",
    "ErrorCode",
    "ErrorResponse",
    "ExtendedAlgorithm",
    "GetCapabilities",
    "GetCertificate",
    "GetDigests",
    "GetMeasurements",
    "GetVersion",
    "MeasurementBlock",
    "MeasurementHashAlgo",
    "MeasurementReport",
    "MeasurementSummaryHashType",
    "MeasurementValueType",
    "Measurements",
    "NegotiateAlgorithms",
    "OpaqueDataFormat",
    "OpaqueElement",
    "RequestResponseCode",
    "Requester",
    "Responder",
    "SocketCommand",
    "SocketFrame",
    "SocketTransportType",
    "SpdmChainCache",
    "SpdmEmuClient",
    "SpdmEvidence",
    "SpdmVersion",
    "Transport",
    "UnknownMeasurementBlock",
    "VerifiedSpdm",
    "Version",
    "VersionNumber",
    "challenge_auth_signing_message",
    "check_device_leaf",
    "check_report_signature",
    "combined_spdm_prefix",
    "decode_measurement_record",
    "decode_opaque_data",
    "decode_transport_message",
    "encode_measurement_record",
    "encode_opaque_data",
    "encode_transport_message",
    "load_certificates",
    "measurement_signing_message",
    "measurement_summary_hash",
    "serve_spdm_emu",
    "verify_certificate_chain",
    "verify_measurement_report",
    "verify_spdm_evidence",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
