"""A simulated SPDM responder: a device that answers request bytes with response bytes.

It holds a :class:`~ironroot.crypto.Signer`, one certificate chain (slot 0, DER list, root
first, leaf key = the signer's key) and its measurement blocks; it negotiates SPDM 1.2 or 1.3,
keeps the VCA, M1/M2 and L1/L2 transcripts exactly as DSP0274 defines them, and signs
CHALLENGE_AUTH and MEASUREMENTS with the 1.2+ signing contexts. It is the counterpart the
:class:`~ironroot.spdm.Requester` is tested against, and a model of what a device's SPDM stack
must do.

Behaviour worth knowing:

- A request out of order (before the VCA is complete, or a VCA step repeated) gets ERROR
  UnexpectedRequest; a request whose SPDMVersion is not the negotiated one, VersionMismatch (in
  SPDM 1.0 for a GET_VERSION that is not 1.0, as libspdm answers); a malformed one,
  InvalidRequest (a malformed GET_CAPABILITIES in the version it names, when offered); an
  unknown code, UnsupportedRequest with the code as ErrorData. docs/spdm.md ("Hostile request
  sequences") tables each answer next to libspdm's. Errors change no state but reset L1/L2,
  as does every request other than GET_MEASUREMENTS. A request whose exchange would take the
  transcript past ``MAX_TRANSCRIPT_SIZE`` (repeated GET_CERTIFICATE or unsigned
  GET_MEASUREMENTS) gets ERROR Unspecified and is not recorded; GET_DIGESTS or a new VCA
  starts B again.
- Raw measurements of code or configuration (ROM, firmware, hardware/firmware configuration,
  manifests) are reported as digests with the negotiated MeasurementHashAlgo unless the
  requester asks for raw bit streams; DeviceMode, version, SVN and informational values are
  reported raw. Under SPDM 1.2, blocks of 1.3-only value types are not reported; blocks of a
  type this package does not know (:class:`UnknownMeasurementBlock`) are reported as given.
- A response larger than the requester's DataTransferSize (ALGORITHMS with many AlgStructure
  tables, DIGESTS of a long hash, CHALLENGE_AUTH, MEASUREMENTS) gets ERROR ResponseTooLarge
  instead, its ExtendedErrorData the response's size (uint32), and changes no state: this
  responder does not chunk.
- CHALLENGE (slot 0) is answered with CHALLENGE_AUTH signed over M1/M2. Its measurement summary
  hash is the base hash of the measurement blocks as an unsigned, non-raw "all measurements"
  GET_MEASUREMENTS would report them; the TCB summary covers the ROM and mutable firmware
  blocks (the code of the device's trusted computing base).
- ``alignment`` is the transport's padding unit (4 for PCI DOE): a request padded with zero
  bytes is read at its own length, so the transcripts hold the exact messages.
- A request larger than this responder's DataTransferSize gets ERROR RequestTooLarge whatever
  its code (a padded request that does not decode here is held to its length less the trailing
  zero bytes that may be padding); libspdm answers such requests instead (docs/spdm.md).
- Only ECDSA P-256/SHA-256, P-384/SHA-384 and P-521/SHA-512 signing suites (see
  ``SIGNING_SUITES``); ML-DSA exists in SPDM only from 1.4 (PqcAsymAlgo), which this package
  does not speak.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Final

from cryptography import x509

from ironroot.crypto import PrivateKey, PublicKey, Signer
from ironroot.errors import (
    ConfigError,
    MalformedCertificate,
    MalformedSpdm,
    SpdmProtocolError,
    UnsupportedAlgorithm,
)
from ironroot.spdm._certchain import CertificateChain
from ironroot.spdm._codec import decode_padded
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
    MeasurementSummaryHashType,
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
    Challenge,
    ChallengeAuth,
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
    encoded,
)
from ironroot.spdm._signing import (
    Transcript,
    challenge_auth_signing_message,
    measurement_signing_message,
    measurement_summary_hash,
)

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
_TCB: Final = frozenset({MeasurementValueType.IMMUTABLE_ROM, MeasurementValueType.MUTABLE_FIRMWARE})
_RESPONDER_FLAGS: Final = (
    CapabilityFlag.CERT_CAP | CapabilityFlag.CHAL_CAP | CapabilityFlag.MEAS_CAP_SIG
)
# How each request is decoded: used to find a padded request's own length.
_REQUEST_DECODERS: Final[dict[int, Callable[[bytes], object]]] = {
    _CODE.GET_VERSION: GetVersion.decode,
    _CODE.GET_CAPABILITIES: GetCapabilities.decode,
    _CODE.NEGOTIATE_ALGORITHMS: NegotiateAlgorithms.decode,
    _CODE.GET_DIGESTS: GetDigests.decode,
    _CODE.GET_CERTIFICATE: GetCertificate.decode,
    _CODE.CHALLENGE: Challenge.decode,
    _CODE.GET_MEASUREMENTS: GetMeasurements.decode,
}


class _Refusal(Exception):  # internal control flow: never escapes handle()
    """Answer the current request with ERROR ``code`` (``data`` in Param2, ``extended`` as
    ExtendedErrorData), in ``version`` when given (else the negotiated one)."""

    def __init__(
        self,
        code: ErrorCode,
        data: int = 0,
        version: SpdmVersion | None = None,
        extended: bytes = b"",
    ) -> None:
        super().__init__(code.name)
        self.code = code
        self.data = data
        self.version = version
        self.extended = extended


def _too_large(size: int) -> _Refusal:
    """ERROR ResponseTooLarge for a response of ``size`` bytes: DSP0274 (1.2+) gives the
    response's size as ExtendedErrorData (uint32), as libspdm sends it."""
    return _Refusal(ErrorCode.RESPONSE_TOO_LARGE, extended=size.to_bytes(4, "little"))


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
        alignment: int = 1,
    ) -> None:
        if alignment not in (1, 2, 4, 8):
            raise ConfigError("the transport alignment is 1, 2, 4 or 8 bytes")
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
        if not _certifies(leaf, signer):
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
        if max_spdm_msg_size != data_transfer_size:  # DSP0274: so without CHUNK_CAP
            raise ConfigError(
                "MaxSPDMmsgSize must equal DataTransferSize: this responder does not chunk"
            )
        self._dts = data_transfer_size
        self._random = random
        self._alignment = alignment
        self._authenticated = False  # a CHALLENGE completed since the VCA
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
            _CODE.CHALLENGE: self._challenge,
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
        request, least = self._unpad(request)
        if least > self._dts:
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
            return self._error(refusal.code, refusal.data, refusal.version, refusal.extended)
        except SpdmProtocolError:  # the transcript is full: the message was not recorded
            self._transcript.reset_measurements()
            return self._error(ErrorCode.UNSPECIFIED)

    # --- helpers ----------------------------------------------------------------------------

    def _unpad(self, request: bytes) -> tuple[bytes, int]:
        """The request at its own length when the transport padded it (else as received),
        and the least length the requester's message can have, to hold against
        DataTransferSize: its own, or for a request that does not decode here (of an unknown
        code, or malformed) its length less any trailing zero bytes (up to ``alignment - 1``)
        that may be the transport's padding rather than the requester's."""
        if self._alignment == 1 or len(request) % self._alignment:
            return request, len(request)
        decoder = _REQUEST_DECODERS.get(request[1])
        if decoder is not None:
            try:
                exact = decode_padded(request, self._alignment, decoder)[1]
            except MalformedSpdm:
                pass  # the handler refuses it as it stands
            else:
                return exact, len(exact)
        tail = request[len(request) - (self._alignment - 1) :]
        return request, len(request) - (len(tail) - len(tail.rstrip(b"\0")))

    def _error(
        self,
        code: ErrorCode,
        data: int = 0,
        version: SpdmVersion | None = None,
        extended: bytes = b"",
    ) -> bytes:
        chosen = version or self._version or SpdmVersion.V1_0
        return ErrorResponse(chosen, code, data, extended).encode()

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
            # In 1.0 whatever was negotiated, as libspdm answers: the requester that sent it
            # may not know the negotiated version.
            raise _Refusal(ErrorCode.VERSION_MISMATCH, version=SpdmVersion.V1_0)
        GetVersion.decode(request)
        self._state = _IDLE
        self._version = None
        self._authenticated = False
        response = encoded(Version, tuple(VersionNumber.of(v) for v in self._versions))
        self._transcript.start_vca(request, response)
        self._state = _VERSION_DONE
        return response

    def _get_capabilities(self, request: bytes) -> bytes:
        if self._state != _VERSION_DONE:
            raise _Refusal(ErrorCode.UNEXPECTED_REQUEST)
        if request[0] not in self._versions:
            raise _Refusal(ErrorCode.VERSION_MISMATCH)
        try:
            peer = GetCapabilities.decode(request)
        except MalformedSpdm:
            # The request selected a version this responder offered: its ERROR speaks it, as
            # libspdm answers (docs/spdm.md, "Hostile request sequences").
            raise _Refusal(ErrorCode.INVALID_REQUEST, version=SpdmVersion(request[0])) from None
        self._version = peer.version
        self._peer_dts = peer.data_transfer_size
        response = encoded(Capabilities, peer.version, **self._capabilities)
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
        opaque_format = (
            OpaqueDataFormat.FORMAT_1
            if offer.other_params_support & OpaqueDataFormat.FORMAT_1
            else 0
        )
        response = encoded(
            Algorithms,
            version,
            measurement_specification_sel=MEASUREMENT_SPECIFICATION_DMTF,
            other_params_selection=opaque_format,
            measurement_hash_algo=self._measurement_hash,
            base_asym_sel=self._asym,
            base_hash_sel=self._hash,
            alg_structs=tuple(AlgStructure(s.alg_type, 0) for s in offer.alg_structs),
        )
        if len(response) > self._peer_dts:  # four AlgStructure tables to a 42-byte buffer
            raise _too_large(len(response))
        self._opaque_format = opaque_format
        self._transcript.add_vca(request)
        self._transcript.add_vca(response)
        self._state = _NEGOTIATED
        return response

    # --- certificates -----------------------------------------------------------------------

    def _get_digests(self, request: bytes) -> bytes:
        version = self._expect(_NEGOTIATED, request)
        GetDigests.decode(request)
        supported = 0x01 if version >= SpdmVersion.V1_3 else 0
        response = Digests(version, 0x01, (self._chain_digest,), supported).encode()
        if len(response) > self._peer_dts:  # a P-521 device's digest, a 42-byte buffer
            raise _too_large(len(response))
        self._transcript.reset_b()
        self._transcript.add_b(request + response)
        return response

    def _get_certificate(self, request: bytes) -> bytes:
        version = self._expect(_NEGOTIATED, request)
        ask = GetCertificate.decode(request)
        if ask.slot_id != 0:
            raise _Refusal(ErrorCode.INVALID_REQUEST)
        total = len(self._chain_bytes)
        if ask.slot_size_requested:
            response = Certificate(version, 0, b"", total).encode()
        else:
            if ask.offset >= total or ask.length == 0:
                raise _Refusal(ErrorCode.INVALID_REQUEST)
            limit = min(self._dts, self._peer_dts) - _CERTIFICATE_HEADER
            portion = self._chain_bytes[ask.offset : ask.offset + min(ask.length, limit)]
            remainder = total - ask.offset - len(portion)
            response = Certificate(version, 0, portion, remainder).encode()
        self._transcript.add_b(request + response)
        return response

    # --- challenge --------------------------------------------------------------------------

    def _opaque_data(self) -> bytes:
        if self._opaque and self._opaque_format == OpaqueDataFormat.FORMAT_1:
            return encode_opaque_data(self._opaque)
        return b""

    def _summary(self, version: SpdmVersion, kind: MeasurementSummaryHashType) -> bytes:
        if kind == MeasurementSummaryHashType.NONE:
            return b""
        blocks = [self._render(b, raw_requested=False) for b in self._visible(version)]
        if kind == MeasurementSummaryHashType.TCB:
            blocks = [b for b in blocks if b.value_type in _TCB]
        return measurement_summary_hash(blocks, self._hash)

    def _challenge(self, request: bytes) -> bytes:
        version = self._expect(_NEGOTIATED, request)
        ask = Challenge.decode(request)
        if ask.slot_id != 0:
            raise _Refusal(ErrorCode.INVALID_REQUEST)
        response = ChallengeAuth(
            version,
            slot_id=0,
            slot_mask=0x01,
            cert_chain_hash=self._chain_digest,
            nonce=self._random(NONCE_SIZE),
            measurement_summary_hash=self._summary(version, ask.measurement_summary_hash_type),
            opaque_data=self._opaque_data(),
            requester_context=ask.requester_context,
        )
        unsigned = response.encode_unsigned()
        size = len(unsigned) + SIGNING_SUITES[self._asym][2]
        if size > self._peer_dts:
            raise _too_large(size)
        transcript = self._transcript.m1m2(request, unsigned)
        self._transcript.reset_b()
        self._authenticated = True
        message = challenge_auth_signing_message(version, self._hash, transcript)
        return unsigned + self._signer.sign(message)

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
        if not self._authenticated:
            self._transcript.reset_b()  # measurements before any CHALLENGE end M1/M2's B
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
        opaque = self._opaque_data()
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
            raise _too_large(len(unsigned) + signature_size)
        self._transcript.add_measurement(request)
        self._transcript.add_measurement(unsigned)
        if not ask.signature_requested:
            return unsigned
        message = measurement_signing_message(version, self._hash, self._transcript.l1l2())
        self._transcript.reset_measurements()
        return unsigned + self._signer.sign(message)


def _certifies(certificate: x509.Certificate, signer: Signer) -> bool:
    """Whether ``certificate`` certifies ``signer``'s key: compared as keys when the signer
    is an in-memory key (no encoding of either point), else by thumbprint."""
    try:
        key = PublicKey(certificate.public_key())  # type: ignore[arg-type]
    except (UnsupportedAlgorithm, MalformedCertificate) as exc:
        raise ConfigError(f"the leaf certificate key is not usable: {exc.detail}") from exc
    if isinstance(signer, PrivateKey):
        return key == signer.public_key
    return key.kid == signer.kid
