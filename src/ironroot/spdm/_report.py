"""Recorded SPDM 1.0 / 1.1 measurement reports: one signed GET_MEASUREMENTS and its answer.

A device that speaks SPDM 1.0 or 1.1 (NVIDIA Hopper GPUs in confidential-computing mode, for
one) is attested by the bytes of one exchange, recorded by whoever asked::

    report = GET_MEASUREMENTS ‖ MEASUREMENTS          (the MEASUREMENTS ends with its signature)

Before SPDM 1.2 there is no signing context and the VCA messages are not part of the signed
transcript: L1/L2 is the GET_MEASUREMENTS requests and MEASUREMENTS responses since the last
reset, the last response without its signature (DSP0274 1.1, MEASUREMENTS "Signature"; DMTF
libspdm's *standard all-measurements report* for 1.0/1.1 is exactly ``{GET_MEASUREMENTS,
MEASUREMENTS}``). For one exchange that is the report without its last ``signature_size``
bytes, signed directly by the responder's key (ECDSA hashes it with the suite's hash:
SHA-384 for P-384).

So :func:`verify_measurement_report` checks the signature over those bytes **before**
interpreting any field: one flipped bit anywhere in the report is a :class:`BadSignature`,
whatever field it lands in. Only then is the report decoded strictly (``MalformedSpdm``) and
the answer matched with the request (``SpdmProtocolError``). A report of SPDM 1.2 or later is
refused: its signature also covers the VCA messages, which :class:`SpdmEvidence` records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ironroot.crypto import PublicKey
from ironroot.errors import MalformedSpdm, SpdmProtocolError, UnsupportedAlgorithm
from ironroot.spdm._constants import (
    ASYM_FOR_ALGORITHM,
    NONCE_SIZE,
    SIGNING_SUITES,
    MeasurementHashAlgo,
    SpdmVersion,
    version_from_byte,
)
from ironroot.spdm._measurements import AnyMeasurementBlock
from ironroot.spdm._messages import GetMeasurements, Measurements
from ironroot.spdm._requester import check_fresh_nonce, check_measurement_operation
from ironroot.spdm._signing import measurement_signing_message

__all__ = [
    "REPORT_VERSIONS",
    "MeasurementReport",
    "check_report_signature",
    "verify_measurement_report",
]

REPORT_VERSIONS: Final = frozenset({SpdmVersion.V1_0, SpdmVersion.V1_1})
_HEADER: Final = 4
_MAX_REPORT: Final = 1 << 20


def _signature_size(key: PublicKey) -> int:
    asym = ASYM_FOR_ALGORITHM.get(key.algorithm)
    if asym is None:
        raise UnsupportedAlgorithm(f"SPDM measurements are not signed with {key.algorithm.label}")
    return SIGNING_SUITES[asym][2]


@dataclass(frozen=True, slots=True)
class MeasurementReport:
    """One recorded SPDM 1.0/1.1 GET_MEASUREMENTS exchange (see the module documentation).

    ``request_bytes`` and ``response_bytes`` are the messages as sent (the response with its
    signature); ``request`` and ``response`` are them decoded.
    """

    request: GetMeasurements
    response: Measurements
    request_bytes: bytes
    response_bytes: bytes

    @property
    def version(self) -> SpdmVersion:
        return self.request.version

    @property
    def nonce(self) -> bytes:
        """The requester's nonce: what the report answers."""
        assert self.request.nonce is not None  # decode accepts only signed requests
        return self.request.nonce

    @property
    def responder_nonce(self) -> bytes:
        return self.response.nonce

    @property
    def blocks(self) -> tuple[AnyMeasurementBlock, ...]:
        return self.response.blocks

    @property
    def opaque_data(self) -> bytes:
        return self.response.opaque_data

    @property
    def signature(self) -> bytes:
        return self.response.signature

    @property
    def transcript(self) -> bytes:
        """L1/L2: the request and the response without its signature."""
        size = len(self.response.signature)
        return self.request_bytes + self.response_bytes[: len(self.response_bytes) - size]

    def encode(self) -> bytes:
        return self.request_bytes + self.response_bytes

    def verify(self, key: PublicKey) -> None:
        """Check the signature over L1/L2 with the responder's ``key``; raise ``BadSignature``."""
        _signature_size(key)  # an algorithm SPDM signs with
        asym = ASYM_FOR_ALGORITHM[key.algorithm]
        message = measurement_signing_message(
            self.version, SIGNING_SUITES[asym][1], self.transcript
        )
        key.verify(self.signature, message)

    @classmethod
    def decode(
        cls,
        data: bytes,
        *,
        signature_size: int,
        measurement_hash_algo: MeasurementHashAlgo | None = None,
    ) -> MeasurementReport:
        """Split and decode ``data`` (request ‖ response), NOT verifying the signature.

        The request must ask for a signature and the response answer it (same version, slot,
        and what the operation asked for, by the requester's rules: a count of 1 to 254, the
        one block asked, at least one block for all; Param1 zero but for a count).
        ``measurement_hash_algo``, when given, fixes the size of every digest block.
        """
        if not isinstance(data, bytes) or len(data) > _MAX_REPORT:
            raise MalformedSpdm(f"a measurement report is bytes of at most {_MAX_REPORT}")
        if len(data) < _HEADER:
            raise MalformedSpdm("a measurement report starts with a GET_MEASUREMENTS request")
        version = version_from_byte(data[0], frozenset(SpdmVersion), "GET_MEASUREMENTS")
        if version not in REPORT_VERSIONS:
            raise MalformedSpdm(
                f"an SPDM {version.label} measurement signature also covers the VCA messages: "
                "record the session as SPDM evidence"
            )
        request_size = _HEADER
        if data[2] & 0x01:  # SignatureRequested: Nonce, and SlotIDParam from 1.1
            request_size += NONCE_SIZE + (1 if version >= SpdmVersion.V1_1 else 0)
        request_bytes, response_bytes = data[:request_size], data[request_size:]
        request = GetMeasurements.decode(request_bytes, versions=REPORT_VERSIONS)
        if not request.signature_requested:
            raise SpdmProtocolError("the recorded GET_MEASUREMENTS does not ask for a signature")
        response = Measurements.decode(
            response_bytes,
            signature_size=signature_size,
            measurement_hash_algo=measurement_hash_algo,
            versions=REPORT_VERSIONS,
        )
        if response.version != version:
            raise SpdmProtocolError(
                f"the MEASUREMENTS is SPDM {response.version.label}, the request {version.label}"
            )
        if response.slot_id != request.slot_id:
            raise SpdmProtocolError("the MEASUREMENTS answers another certificate slot")
        check_measurement_operation(response, request.operation)  # the requester's rules
        assert request.nonce is not None  # a signed request: checked above
        check_fresh_nonce(response.nonce, request.nonce, "MEASUREMENTS")
        return cls(request, response, request_bytes, response_bytes)


def verify_measurement_report(
    data: bytes,
    key: PublicKey,
    *,
    measurement_hash_algo: MeasurementHashAlgo | None = None,
) -> MeasurementReport:
    """Verify a recorded SPDM 1.0/1.1 report with the responder's ``key``, then decode it.

    The signature (the last bytes, their size fixed by ``key``'s algorithm) is checked over
    everything before it first (``BadSignature``); then the report is decoded
    (``MalformedSpdm``) and the answer matched with the request (``SpdmProtocolError``, also
    for a responder Nonce that reflects the request's). The nonce is returned in the report
    for the caller to compare.
    """
    size = check_report_signature(data, key)
    return MeasurementReport.decode(
        data, signature_size=size, measurement_hash_algo=measurement_hash_algo
    )


def check_report_signature(data: bytes, key: PublicKey) -> int:
    """The signature check of :func:`verify_measurement_report` alone, before any field is
    read: the last bytes (their size fixed by ``key``'s algorithm, returned) over everything
    before them, the L1/L2 of one SPDM 1.0/1.1 exchange. Raises ``BadSignature``."""
    if not isinstance(data, bytes) or len(data) > _MAX_REPORT:
        raise MalformedSpdm(f"a measurement report is bytes of at most {_MAX_REPORT}")
    size = _signature_size(key)
    if len(data) <= size + _HEADER:
        raise MalformedSpdm("a measurement report is longer than its signature")
    key.verify(data[-size:], data[:-size])  # L1/L2 of one 1.0/1.1 exchange, signed as is
    return size
