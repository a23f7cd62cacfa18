"""A simulated SPDM responder: a device that answers request bytes with response bytes.

It holds a :class:`~ironroot.crypto.Signer`, one certificate chain (slot 0, DER list, root
first, leaf key = the signer's key) and its measurement blocks; it negotiates SPDM 1.2 or 1.3,
keeps the VCA and L1/L2 transcript exactly as DSP0274 defines it, and signs MEASUREMENTS with
the 1.2+ signing context. It is the counterpart the :class:`~ironroot.spdm.Requester` is tested
against, and a model of what a device's SPDM stack must do.

Behaviour worth knowing:

- A request out of order (before the VCA is complete, or a VCA step repeated) gets ERROR
  UnexpectedRequest; a request whose SPDMVersion is not the negotiated one, VersionMismatch; a
  malformed one, InvalidRequest; an unknown code, UnsupportedRequest. Errors change no state
  but reset L1/L2, as does every request other than GET_MEASUREMENTS.
- Raw measurements of code or configuration (ROM, firmware, hardware/firmware configuration,
  manifests) are reported as digests with the negotiated MeasurementHashAlgo unless the
  requester asks for raw bit streams; DeviceMode, version, SVN and informational values are
  reported raw. Under SPDM 1.2, blocks of 1.3-only value types are not reported.
- Only ECDSA P-256/SHA-256, P-384/SHA-384 and P-521/SHA-512 signing suites (see
  ``SIGNING_SUITES``); ML-DSA exists in SPDM only from 1.4 (PqcAsymAlgo), which this package
  does not speak.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Final

from cryptography import x509

from ironroot.crypto import PublicKey, Signer
from ironroot.errors import ConfigError, MalformedCertificate, MalformedSpdm, UnsupportedAlgorithm
from ironroot.spdm._certchain import CertificateChain
from ironroot.spdm._constants import (
    ASYM_FOR_ALGORITHM,
    MEASUREMENT_SPECIFICATION_DMTF,
    NEGOTIABLE,
    NONCE_SIZE,
    SIGNING_SUITES,
    TYPES_SINCE_1_3,
    CapabilityFlag,
    ErrorCode,
    MeasurementHashAlgo,
    MeasurementValueType,
    OpaqueDataFormat,
    RequestResponseCode,
    SpdmVersion,
    measurement_hash,
    measurement_hash_size,
)
from ironroot.spdm._measurements import (
    AnyMeasurementBlock,
    MeasurementBlock,
    OpaqueElement,
    UnknownMeasurementBlock,
    encode_opaque_data,
)
from ironroot.spdm._messages import (
    OPERATION_ALL,
    OPERATION_TOTAL_NUMBER,
    Algorithms,
    AlgStructure,
    Capabilities,
    Certificate,
    Digests,
    ErrorResponse,
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
from ironroot.spdm._signing import Transcript, measurement_signing_message

__all__ = ["Responder"]

_CODE = RequestResponseCode
_IDLE, _VERSION_DONE, _CAPABILITIES_DONE, _NEGOTIATED = range(4)
_CERTIFICATE_HEADER: Final = 8
_DIGESTIBLE: Final = frozenset(
    {
        MeasurementValueType.IMMUTABLE_ROM,
        MeasurementValueType.MUTABLE_FIRMWARE,
        MeasurementValueType.HARDWARE_CONFIG,
        MeasurementValueType.FIRMWARE_CONFIG,
        MeasurementValueType.MEASUREMENT_MANIFEST,
        MeasurementValueType.STRUCTURED_MEASUREMENT_MANIFEST,
    }
)
_RESPONDER_FLAGS: Final = CapabilityFlag.CERT_CAP | CapabilityFlag.MEAS_CAP_SIG


class _Refusal(Exception):  # internal control flow: never escapes handle()
    """Answer the current request with ERROR ``code`` (``data`` in Param2)."""

    def __init__(self, code: ErrorCode, data: int = 0) -> None:
        super().__init__(code.name)
        self.code = code
        self.data = data


class Responder:
    """An SPDM responder over one signer, one certificate chain and its measurements.

    ``handle`` (also the instance itself, as a callable) is the transport endpoint: it takes a
    request message and returns the response message, never raising for bad input.
    """

    def __init__(
        self,
        signer: Signer,
        certificate_chain: Sequence[bytes],
        measurements: Sequence[AnyMeasurementBlock],
        *,
        versions: Sequence[SpdmVersion] = (SpdmVersion.V1_2, SpdmVersion.V1_3),
        measurement_hash_algo: MeasurementHashAlgo = MeasurementHashAlgo.SHA_384,
        opaque_elements: Sequence[OpaqueElement] = (),
        ct_exponent: int = 12,
        data_transfer_size: int = 4096,
        max_spdm_msg_size: int = 4096,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        asym = ASYM_FOR_ALGORITHM.get(signer.algorithm)
        if asym is None:
            raise UnsupportedAlgorithm(
                f"SPDM signing with {signer.algorithm.label} is not supported"
            )
        self._signer = signer
        self._asym = asym
        _, self._hash, _ = SIGNING_SUITES[asym]
        if not versions or not set(versions) <= NEGOTIABLE:
            raise ConfigError("a responder speaks SPDM 1.2 and/or 1.3")
        self._versions = tuple(sorted(set(versions)))
        self._chain = CertificateChain.build(certificate_chain, self._hash)
        self._chain_bytes = self._chain.encode()
        self._chain_digest = self._chain.digest(self._hash)
        leaf = self._chain.x509()[-1]
        if _kid_of(leaf) != signer.kid:
            raise ConfigError("the leaf certificate's key is not the responder's signing key")
        digest_size = measurement_hash_size(measurement_hash_algo)
        indices = [b.index for b in measurements]
        if len(set(indices)) != len(indices):
            raise ConfigError("measurement indices must be distinct")
        for block in measurements:
            if not isinstance(block, (MeasurementBlock, UnknownMeasurementBlock)):
                raise ConfigError("measurements must be measurement blocks")
            if not block.known or block.raw:
                continue
            if digest_size is None or len(block.value) != digest_size:
                raise ConfigError(f"measurement {block.index}: digest does not fit the hash")
        self._measurements = tuple(sorted(measurements, key=lambda b: b.index))
        self._measurement_hash = measurement_hash_algo
        self._opaque = tuple(opaque_elements)
        self._capabilities = dict(
            ct_exponent=ct_exponent,
            flags=int(_RESPONDER_FLAGS),
            data_transfer_size=data_transfer_size,
            max_spdm_msg_size=max_spdm_msg_size,
        )
        Capabilities(SpdmVersion.V1_2, **self._capabilities)  # validate the sizes once
        self._dts = data_transfer_size
        self._random = random
        self._transcript = Transcript()
        self._state = _IDLE
        self._version: SpdmVersion | None = None
        self._peer_dts = 0
        self._opaque_format = 0
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            _CODE.GET_VERSION: self._get_version,
            _CODE.GET_CAPABILITIES: self._get_capabilities,
            _CODE.NEGOTIATE_ALGORITHMS: self._negotiate_algorithms,
            _CODE.GET_DIGESTS: self._get_digests,
            _CODE.GET_CERTIFICATE: self._get_certificate,
            _CODE.GET_MEASUREMENTS: self._get_measurements,
        }

    @property
    def certificate_chain(self) -> CertificateChain:
        return self._chain

    def __call__(self, request: bytes) -> bytes:
        return self.handle(request)

    def handle(self, request: bytes) -> bytes:
        """Answer one request message; malformed or unexpected requests get an ERROR."""
        if not isinstance(request, bytes) or len(request) < 4:
            self._transcript.reset_measurements()
            return self._error(ErrorCode.INVALID_REQUEST)
        if len(request) > self._dts:
            self._transcript.reset_measurements()
            return self._error(ErrorCode.REQUEST_TOO_LARGE)
        code = request[1]
        if code != _CODE.GET_MEASUREMENTS:
            self._transcript.reset_measurements()
        handler = self._handlers.get(code)
        try:
            if handler is None:
                raise _Refusal(ErrorCode.UNSUPPORTED_REQUEST, code)
            return handler(request)
        except MalformedSpdm:
            self._transcript.reset_measurements()
            return self._error(ErrorCode.INVALID_REQUEST)
        except _Refusal as refusal:
            self._transcript.reset_measurements()
            return self._error(refusal.code, refusal.data)

    # --- helpers ----------------------------------------------------------------------------

    def _error(self, code: ErrorCode, data: int = 0) -> bytes:
        return ErrorResponse(self._version or SpdmVersion.V1_0, code, data).encode()

    def _expect(self, state: int, request: bytes) -> SpdmVersion:
        """The negotiated version, if the request comes in ``state`` and speaks it."""
        if self._state != state:
            raise _Refusal(ErrorCode.UNEXPECTED_REQUEST)
        assert self._version is not None
        if request[0] != self._version:
            raise _Refusal(ErrorCode.VERSION_MISMATCH)
        return self._version

    # --- VCA --------------------------------------------------------------------------------

    def _get_version(self, request: bytes) -> bytes:
        if request[0] != SpdmVersion.V1_0:
            raise _Refusal(ErrorCode.VERSION_MISMATCH)
        GetVersion.decode(request)
        self._state = _IDLE
        self._version = None
        response = Version(tuple(VersionNumber.of(v) for v in self._versions)).encode()
        self._transcript.start_vca(request, response)
        self._state = _VERSION_DONE
        return response

    def _get_capabilities(self, request: bytes) -> bytes:
        if self._state != _VERSION_DONE:
            raise _Refusal(ErrorCode.UNEXPECTED_REQUEST)
        if request[0] not in self._versions:
            raise _Refusal(ErrorCode.VERSION_MISMATCH)
        peer = GetCapabilities.decode(request)
        self._version = peer.version
        self._peer_dts = peer.data_transfer_size
        response = Capabilities(peer.version, **self._capabilities).encode()
        self._transcript.add_vca(request)
        self._transcript.add_vca(response)
        self._state = _CAPABILITIES_DONE
        return response

    def _negotiate_algorithms(self, request: bytes) -> bytes:
        version = self._expect(_CAPABILITIES_DONE, request)
        offer = NegotiateAlgorithms.decode(request)
        if not offer.measurement_specification & MEASUREMENT_SPECIFICATION_DMTF:
            raise _Refusal(ErrorCode.INVALID_REQUEST)
        if not offer.base_asym_algo & self._asym or not offer.base_hash_algo & self._hash:
            raise _Refusal(ErrorCode.INVALID_REQUEST)
        self._opaque_format = (
            OpaqueDataFormat.FORMAT_1
            if offer.other_params_support & OpaqueDataFormat.FORMAT_1
            else 0
        )
        response = Algorithms(
            version,
            measurement_specification_sel=MEASUREMENT_SPECIFICATION_DMTF,
            other_params_selection=self._opaque_format,
            measurement_hash_algo=self._measurement_hash,
            base_asym_sel=self._asym,
            base_hash_sel=self._hash,
            alg_structs=tuple(AlgStructure(s.alg_type, 0) for s in offer.alg_structs),
        ).encode()
        self._transcript.add_vca(request)
        self._transcript.add_vca(response)
        self._state = _NEGOTIATED
        return response

    # --- certificates -----------------------------------------------------------------------

    def _get_digests(self, request: bytes) -> bytes:
        version = self._expect(_NEGOTIATED, request)
        GetDigests.decode(request)
        supported = 0x01 if version >= SpdmVersion.V1_3 else 0
        return Digests(version, 0x01, (self._chain_digest,), supported).encode()

    def _get_certificate(self, request: bytes) -> bytes:
        version = self._expect(_NEGOTIATED, request)
        ask = GetCertificate.decode(request)
        if ask.slot_id != 0:
            raise _Refusal(ErrorCode.INVALID_REQUEST)
        total = len(self._chain_bytes)
        if ask.slot_size_requested:
            return Certificate(version, 0, b"", total).encode()
        if ask.offset >= total or ask.length == 0:
            raise _Refusal(ErrorCode.INVALID_REQUEST)
        limit = min(self._dts, self._peer_dts) - _CERTIFICATE_HEADER
        portion = self._chain_bytes[ask.offset : ask.offset + min(ask.length, limit)]
        return Certificate(version, 0, portion, total - ask.offset - len(portion)).encode()

    # --- measurements -----------------------------------------------------------------------

    def _visible(self, version: SpdmVersion) -> tuple[AnyMeasurementBlock, ...]:
        if version >= SpdmVersion.V1_3:
            return self._measurements
        return tuple(b for b in self._measurements if b.value_type not in TYPES_SINCE_1_3)

    def _render(self, block: AnyMeasurementBlock, raw_requested: bool) -> AnyMeasurementBlock:
        if (
            isinstance(block, MeasurementBlock)
            and block.raw
            and block.value_type in _DIGESTIBLE
            and not raw_requested
            and self._measurement_hash != MeasurementHashAlgo.RAW_BIT_STREAM_ONLY
        ):
            digest = measurement_hash(self._measurement_hash, block.value)
            return MeasurementBlock(block.index, block.value_type, digest, raw=False)
        return block

    def _get_measurements(self, request: bytes) -> bytes:
        version = self._expect(_NEGOTIATED, request)
        ask = GetMeasurements.decode(request)
        if ask.signature_requested and ask.slot_id != 0:
            raise _Refusal(ErrorCode.INVALID_REQUEST)
        visible = self._visible(version)
        total = 0
        if ask.operation == OPERATION_TOTAL_NUMBER:
            chosen: tuple[AnyMeasurementBlock, ...] = ()
            total = len(visible)
        elif ask.operation == OPERATION_ALL:
            chosen = visible
        else:
            chosen = tuple(b for b in visible if b.index == ask.operation)
            if not chosen:
                raise _Refusal(ErrorCode.INVALID_REQUEST)
        opaque = b""
        if self._opaque and self._opaque_format == OpaqueDataFormat.FORMAT_1:
            opaque = encode_opaque_data(self._opaque)
        response = Measurements(
            version,
            tuple(self._render(b, ask.raw_bit_stream_requested) for b in chosen),
            self._random(NONCE_SIZE),
            opaque,
            ask.requester_context,
            total_measurements=total,
            slot_id=ask.slot_id,
        )
        unsigned = response.encode_unsigned()
        signature_size = SIGNING_SUITES[self._asym][2] if ask.signature_requested else 0
        if len(unsigned) + signature_size > self._peer_dts:
            raise _Refusal(ErrorCode.RESPONSE_TOO_LARGE)
        self._transcript.add_measurement(request)
        self._transcript.add_measurement(unsigned)
        if not ask.signature_requested:
            return unsigned
        message = measurement_signing_message(version, self._hash, self._transcript.l1l2())
        self._transcript.reset_measurements()
        return unsigned + self._signer.sign(message)


def _kid_of(certificate: x509.Certificate) -> bytes:
    try:
        return PublicKey(certificate.public_key()).kid  # type: ignore[arg-type]
    except (UnsupportedAlgorithm, MalformedCertificate) as exc:
        raise ConfigError(f"the leaf certificate key is not usable: {exc.detail}") from exc
