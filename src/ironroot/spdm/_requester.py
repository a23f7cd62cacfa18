"""The SPDM requester: negotiate, fetch and verify the certificate chain, authenticate the
responder (CHALLENGE), fetch signed measurements, and verify every signature over the
requester's own transcripts.

The transport is any callable ``send(request_bytes) -> response_bytes`` (MCTP, PCIe DOE, a
socket, or a :class:`~ironroot.spdm.Responder` wired in directly). Every response is checked
before it is believed:

- its size against the requester's DataTransferSize, its code against the request (an ERROR
  becomes :class:`SpdmErrorResponse`, anything else unexpected :class:`SpdmProtocolError`) and
  its SPDMVersion against the negotiated one; then it is decoded strictly (:class:`MalformedSpdm`);
- the negotiated algorithms must be ones offered, and a signing suite ironroot implements;
- the certificate chain must hash to the slot's DIGESTS entry, carry the trusted root's
  RootHash, verify up to that root at ``now``, and end in a key of the negotiated algorithm;
- CHALLENGE_AUTH must name that chain (CertChainHash), answer the slot, echo the
  RequesterContext (1.3), carry a nonce of its own (not the request's reflected), and its
  signature must verify over M1/M2 (VCA ‖ certificate messages ‖ CHALLENGE ‖ CHALLENGE_AUTH)
  with the requester's fresh nonce inside;
- DIGESTS must provision at least one slot (CERT_CAP is set);
- MEASUREMENTS must answer the operation asked, echo the RequesterContext (1.3) and slot, carry
  a nonce of its own when signed, and its signature must verify over L1/L2 as *this requester*
  saw it, with the requester's fresh nonce inside: a response made for another request, or by
  a responder whose transcript diverged, fails with :class:`BadSignature`.

Order is enforced: measurements before the VCA, or signed measurements before the slot's
certificate chain is verified, raise :class:`SpdmProtocolError` without sending anything.

A refused response leaves the two ends' transcripts out of step (the responder recorded a
message the requester would not accept), so after any failure once a request has been sent the
connection is closed: every later call raises :class:`SpdmProtocolError` naming the failure
until :meth:`Requester.init_connection` starts again with a new VCA. A later signed response
can therefore never fail as a misleading :class:`BadSignature`.

``alignment`` is the transport's padding unit (4 for PCI DOE, whose lengths count 4-byte
words): a response padded with zero bytes is read at its own length.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from ironroot.crypto import PublicKey
from ironroot.errors import (
    ConfigError,
    IronrootError,
    MalformedSpdm,
    SpdmErrorResponse,
    SpdmProtocolError,
    UnsupportedAlgorithm,
)
from ironroot.spdm._certchain import CertificateChain, verify_certificate_chain
from ironroot.spdm._codec import decode_padded
from ironroot.spdm._constants import (
    MAX_CERT_CHAIN_SIZE,
    MEAS_CAP_MASK,
    MEASUREMENT_SPECIFICATION_DMTF,
    NEGOTIABLE,
    NONCE_SIZE,
    OPAQUE_FORMAT_MASK,
    REQUESTER_CONTEXT_SIZE,
    SIGNING_SUITES,
    BaseAsymAlgo,
    BaseHashAlgo,
    CapabilityFlag,
    MeasurementHashAlgo,
    MeasurementSummaryHashType,
    OpaqueDataFormat,
    RequestResponseCode,
    SpdmVersion,
    base_hash,
    base_hash_size,
    measurement_hash_size,
    single_bit,
)
from ironroot.spdm._evidence import SpdmEvidence
from ironroot.spdm._measurements import AnyMeasurementBlock, decode_opaque_data
from ironroot.spdm._messages import (
    OPERATION_ALL,
    OPERATION_TOTAL_NUMBER,
    Algorithms,
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
    encoded,
)
from ironroot.spdm._signing import (
    Transcript,
    challenge_auth_signing_message,
    check_transcript_signature,
    measurement_signing_message,
    measurement_summary_hash,
)

__all__ = ["AttestationResult", "Connection", "Requester", "Transport"]

T = TypeVar("T")

Transport = Callable[[bytes], bytes]
"""``send(request) -> response``: one SPDM message out, one back."""

_CODE = RequestResponseCode
_HEADER: Final = 4
_CERTIFICATE_HEADER: Final = 8
_NO_INDEX: Final = 0xFF  # measurement indices are 1..0xFE: 0xFF can count nothing
_DEFAULT_ASYM: Final = BaseAsymAlgo.ECDSA_P384 | BaseAsymAlgo.ECDSA_P256
_DEFAULT_HASH: Final = BaseHashAlgo.SHA_384 | BaseHashAlgo.SHA_256


@dataclass(frozen=True, slots=True)
class Connection:
    """What VCA settled: the version, the responder's capabilities and the algorithms."""

    version: SpdmVersion
    capabilities: Capabilities
    algorithms: Algorithms
    base_asym_algo: BaseAsymAlgo
    base_hash_algo: BaseHashAlgo
    measurement_hash_algo: MeasurementHashAlgo

    @property
    def signature_size(self) -> int:
        return SIGNING_SUITES[self.base_asym_algo][2]

    @property
    def hash_size(self) -> int:
        return base_hash_size(self.base_hash_algo)


@dataclass(frozen=True, slots=True)
class AttestationResult:
    """A verified run: the connection, the verified chain, the verified CHALLENGE_AUTH (``None``
    when the responder cannot be challenged, CHAL_CAP clear) and the signed measurements."""

    connection: Connection
    certificate_chain: CertificateChain
    measurements: Measurements
    challenge_auth: ChallengeAuth | None = None

    @property
    def blocks(self) -> tuple[AnyMeasurementBlock, ...]:
        return self.measurements.blocks


def check_measurement_operation(answer: Measurements, operation: int) -> None:
    """That MEASUREMENTS answers GET_MEASUREMENTS ``operation``: the count alone for 0 (1 to
    254, the indices there can be), the one block asked for an index, at least one block for
    all (0xFF): a responder without measurements clears MEAS_CAP, as libspdm's requester
    expects."""
    if operation == OPERATION_TOTAL_NUMBER:
        if answer.blocks:
            raise SpdmProtocolError("MEASUREMENTS for operation 0 carries blocks")
        if answer.total_measurements == 0:
            raise SpdmProtocolError("MEASUREMENTS counts no measurement")
        if answer.total_measurements == _NO_INDEX:
            raise SpdmProtocolError("MEASUREMENTS counts 255 measurements: indices are 1 to 254")
        return
    if answer.total_measurements:
        raise SpdmProtocolError("MEASUREMENTS: Param1 is reserved for this operation")
    if operation == OPERATION_ALL and not answer.blocks:
        raise SpdmProtocolError("MEASUREMENTS answers all measurements with no block")
    if operation != OPERATION_ALL and (
        len(answer.blocks) != 1 or answer.blocks[0].index != operation
    ):
        raise SpdmProtocolError(f"MEASUREMENTS does not answer index {operation}")


def check_fresh_nonce(answer_nonce: bytes, request_nonce: bytes, what: str) -> None:
    """That the responder chose its own Nonce for ``what`` (DSP0274: a random value) rather
    than reflecting the requester's: an honest device repeats it with chance 2**-256, so a
    reflected nonce means a responder that adds no freshness of its own."""
    if hmac.compare_digest(answer_nonce, request_nonce):
        raise SpdmProtocolError(f"{what} reflects the requester's nonce as its own")


def check_capabilities(capabilities: Capabilities) -> None:
    """That the responder can be measured here: certificates (CERT_CAP) and signed
    measurements (MEAS_CAP 2), flags that are consistent with each other, and (no CHUNK_CAP)
    one buffer size."""
    if not capabilities.flags & CapabilityFlag.CERT_CAP:
        raise SpdmProtocolError("the responder has no certificates (CERT_CAP clear)")
    if capabilities.flags & MEAS_CAP_MASK != CapabilityFlag.MEAS_CAP_SIG:
        raise SpdmProtocolError("the responder cannot sign measurements (MEAS_CAP)")
    reason = _flag_inconsistency(capabilities.version, capabilities.flags)
    if reason is not None:
        raise SpdmProtocolError(f"CAPABILITIES flags are inconsistent: {reason}")
    dts, max_msg = capabilities.data_transfer_size, capabilities.max_spdm_msg_size
    if not capabilities.flags & CapabilityFlag.CHUNK_CAP and max_msg != dts:
        # DSP0274 1.2.2 / 1.3: without the Large SPDM message transfer mechanism the two
        # are equal (libspdm's requester checks it from 1.2 on).
        raise SpdmProtocolError(
            f"CAPABILITIES: MaxSPDMmsgSize {max_msg} is not DataTransferSize {dts},"
            " and CHUNK_CAP is clear"
        )


_F = CapabilityFlag
# Flag bits a version does not define: 1.2 ends at CERT_INSTALL_RESET_CAP (bit 21), 1.3 at
# SET_KEY_PAIR_INFO_CAP (bit 29).
_RESERVED_FLAGS: Final = {SpdmVersion.V1_2: 0xFFC0_0000, SpdmVersion.V1_3: 0xC000_0000}


class _Bit:
    """The CapabilityFlag bits :func:`_flag_inconsistency` tests, as plain ints: an
    ``IntFlag`` ``&`` builds a flag object in Python for every test (an ``int`` on the left
    too: the flag's reflected operator goes first), ``int`` arithmetic does not."""

    PUB_KEY_ID: Final = int(_F.PUB_KEY_ID_CAP)
    PSK: Final = int(_F.PSK_CAP_RESPONDER | _F.PSK_CAP_RESPONDER_WITH_CONTEXT)
    KEY_EX: Final = int(_F.KEY_EX_CAP)
    MAC_OR_ENCRYPT: Final = int(_F.MAC_CAP | _F.ENCRYPT_CAP)
    HANDSHAKE_IN_THE_CLEAR: Final = int(_F.HANDSHAKE_IN_THE_CLEAR_CAP)
    MUT_AUTH: Final = int(_F.MUT_AUTH_CAP)
    KEY_EX_OR_CHAL: Final = int(_F.KEY_EX_CAP | _F.CHAL_CAP)
    CSR: Final = int(_F.CSR_CAP)
    SET_CERT: Final = int(_F.SET_CERT_CAP)
    CERT_INSTALL_RESET: Final = int(_F.CERT_INSTALL_RESET_CAP)
    CSR_OR_SET_CERT: Final = int(_F.CSR_CAP | _F.SET_CERT_CAP)
    EP_INFO: Final = int(_F.EP_INFO_CAP_NO_SIG | _F.EP_INFO_CAP_SIG)
    MULTI_KEY: Final = int(_F.MULTI_KEY_CAP_ONLY | _F.MULTI_KEY_CAP_NEG)
    MULTI_KEY_ONLY: Final = int(_F.MULTI_KEY_CAP_ONLY)
    GET_KEY_PAIR_INFO: Final = int(_F.GET_KEY_PAIR_INFO_CAP)
    # Flags that need a session (KEY_EX_CAP or PSK_CAP), by name, in the order reported.
    SESSION_ONLY: Final = tuple(
        (int(flag), flag.name or "")
        for flag in (_F.MAC_CAP, _F.ENCRYPT_CAP, _F.HBEAT_CAP, _F.KEY_UPD_CAP)
    )
    EVENT: Final = (int(_F.EVENT_CAP), _F.EVENT_CAP.name or "")


def _flag_inconsistency(version: SpdmVersion, flags: int) -> str | None:
    """Why a responder's CAPABILITIES ``flags`` contradict DSP0274's rules for them (the
    rules libspdm's requester applies), or ``None``; CERT_CAP set and MEAS_CAP 2 assumed."""
    flags = int(flags)
    reserved = flags & _RESERVED_FLAGS[version]
    if reserved:
        return f"reserved flag bits {reserved:#x} are set"
    if flags & _Bit.PUB_KEY_ID:
        return "CERT_CAP and PUB_KEY_ID_CAP are both set"
    if flags & _Bit.PSK == _Bit.PSK:
        return "PSK_CAP 3 is reserved"
    sessions = flags & (_Bit.KEY_EX | _Bit.PSK)
    if sessions and not flags & _Bit.MAC_OR_ENCRYPT:
        return "KEY_EX_CAP or PSK_CAP without MAC_CAP or ENCRYPT_CAP"
    if not sessions:
        session_only = _Bit.SESSION_ONLY
        if version >= SpdmVersion.V1_3:
            session_only += (_Bit.EVENT,)
        for bit, name in session_only:
            if flags & bit:
                return f"{name} without KEY_EX_CAP or PSK_CAP"
    if flags & _Bit.HANDSHAKE_IN_THE_CLEAR and not flags & _Bit.KEY_EX:
        return "HANDSHAKE_IN_THE_CLEAR_CAP without KEY_EX_CAP"
    if flags & _Bit.MUT_AUTH and not flags & _Bit.KEY_EX_OR_CHAL:
        return "MUT_AUTH_CAP without KEY_EX_CAP or CHAL_CAP"
    if flags & _Bit.CSR and not flags & _Bit.SET_CERT:
        return "CSR_CAP without SET_CERT_CAP"
    if flags & _Bit.CERT_INSTALL_RESET and not flags & _Bit.CSR_OR_SET_CERT:
        return "CERT_INSTALL_RESET_CAP without CSR_CAP or SET_CERT_CAP"
    if version >= SpdmVersion.V1_3:
        if flags & _Bit.EP_INFO == _Bit.EP_INFO:
            return "EP_INFO_CAP 3 is reserved"
        multi_key = flags & _Bit.MULTI_KEY
        if multi_key == _Bit.MULTI_KEY:
            return "MULTI_KEY_CAP 3 is reserved"
        if multi_key and not flags & _Bit.GET_KEY_PAIR_INFO:
            return "MULTI_KEY_CAP without GET_KEY_PAIR_INFO_CAP"
        if multi_key == _Bit.MULTI_KEY_ONLY:
            # Its DIGESTS and CERTIFICATE would carry the multi-key fields, never offered here.
            return "MULTI_KEY_CAP 1 (multi-key connections only) is not spoken here"
    return None


def check_opaque_data(connection: Connection, opaque: bytes, what: str) -> None:
    """The opaque data of response ``what`` under the negotiated OpaqueDataFmt: general opaque
    data, decoded strictly, under format 1; none when no format was negotiated."""
    selected = connection.algorithms.other_params_selection & OPAQUE_FORMAT_MASK
    if not opaque:
        return
    if selected == OpaqueDataFormat.FORMAT_1:
        decode_opaque_data(opaque)
    elif not selected:
        raise SpdmProtocolError(f"{what} carries opaque data but no format was negotiated")


def negotiated_connection(
    version: SpdmVersion,
    capabilities: Capabilities,
    algorithms: Algorithms,
    *,
    asym_offer: int,
    hash_offer: int,
    measurement_spec_offer: int = MEASUREMENT_SPECIFICATION_DMTF,
    opaque_format_offer: int = OpaqueDataFormat.FORMAT_1,
) -> Connection:
    """Check ALGORITHMS against what NEGOTIATE_ALGORITHMS offered; the settled connection.

    ``measurement_spec_offer`` and ``opaque_format_offer`` are its MeasurementSpecification
    and OtherParamsSupport (what this requester always offers, unless a recording says)."""
    spec = algorithms.measurement_specification_sel
    if spec != MEASUREMENT_SPECIFICATION_DMTF:
        raise SpdmProtocolError("ALGORITHMS did not select the DMTF measurement spec")
    if not spec & int(measurement_spec_offer):
        raise SpdmProtocolError(
            f"ALGORITHMS selected MeasurementSpecification {spec:#x}, not offered"
        )
    asym, hash_algo = algorithms.base_asym_sel, algorithms.base_hash_sel
    if not single_bit(asym) or asym & ~asym_offer:
        raise SpdmProtocolError(f"ALGORITHMS selected BaseAsymAlgo {asym:#x}, not offered")
    if not single_bit(hash_algo) or hash_algo & ~hash_offer:
        raise SpdmProtocolError(f"ALGORITHMS selected BaseHashAlgo {hash_algo:#x}, not offered")
    base_asym = BaseAsymAlgo(asym)
    if base_asym not in SIGNING_SUITES:  # offered by a recorded session's requester, not ours
        raise SpdmProtocolError(f"ALGORITHMS selected BaseAsymAlgo {asym:#x}: not ECDSA")
    if SIGNING_SUITES[base_asym][1] != hash_algo:
        raise SpdmProtocolError("the selected BaseAsymAlgo and BaseHashAlgo do not pair")
    offered_formats = int(opaque_format_offer) & int(OpaqueDataFormat.FORMAT_1)  # plain ints
    if algorithms.other_params_selection & ~offered_formats:
        raise SpdmProtocolError("ALGORITHMS selected an opaque data format not offered")
    if algorithms.ext_asym_sel or algorithms.ext_hash_sel or algorithms.alg_structs:
        raise SpdmProtocolError("ALGORITHMS selected algorithms that were not offered")
    if algorithms.mel_specification_sel:
        raise SpdmProtocolError("ALGORITHMS selected a MEL specification not offered")
    measurement_hash = algorithms.measurement_hash_algo
    if not single_bit(measurement_hash):
        raise SpdmProtocolError("ALGORITHMS selected no measurement hash")
    try:
        measurement_hash_size(MeasurementHashAlgo(measurement_hash))
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise SpdmProtocolError(f"unsupported MeasurementHashAlgo {measurement_hash:#x}") from exc
    return Connection(
        version,
        capabilities,
        algorithms,
        base_asym,
        BaseHashAlgo(hash_algo),
        MeasurementHashAlgo(measurement_hash),
    )


class Requester:
    """Drives one SPDM connection over ``send`` and verifies everything it is told.

    ``root_certificate`` (DER) is the trust anchor for the responder's chain and ``now`` the
    time its certificates must be valid at. The algorithm offers are bit masks of
    :class:`BaseAsymAlgo` / :class:`BaseHashAlgo`; only the ECDSA suites of
    ``SIGNING_SUITES`` can be offered. ``alignment`` is the transport's padding unit.
    """

    def __init__(
        self,
        send: Transport,
        *,
        root_certificate: bytes,
        now: datetime,
        versions: Sequence[SpdmVersion] = (SpdmVersion.V1_2, SpdmVersion.V1_3),
        base_asym_algo: BaseAsymAlgo = _DEFAULT_ASYM,
        base_hash_algo: BaseHashAlgo = _DEFAULT_HASH,
        data_transfer_size: int = 4096,
        max_spdm_msg_size: int = 4096,
        random: Callable[[int], bytes] = os.urandom,
        alignment: int = 1,
    ) -> None:
        if not versions or not set(versions) <= NEGOTIABLE:
            raise ConfigError("a requester speaks SPDM 1.2 and/or 1.3")
        if base_asym_algo == 0 or int(base_asym_algo) & ~sum(map(int, SIGNING_SUITES)):
            raise ConfigError("only ECDSA P-256, P-384 and P-521 can be offered")
        if now.tzinfo is None:
            raise ConfigError("now must be a timezone-aware datetime")
        if alignment not in (1, 2, 4, 8):
            raise ConfigError("the transport alignment is 1, 2, 4 or 8 bytes")
        GetCapabilities(
            SpdmVersion.V1_2,
            data_transfer_size=data_transfer_size,
            max_spdm_msg_size=max_spdm_msg_size,
        )  # validates the sizes
        self._send = send
        self._root = root_certificate
        self._now = now
        self._versions = frozenset(versions)
        self._asym_offer = int(base_asym_algo)  # plain ints: ~IntFlag keeps only named bits
        self._hash_offer = int(base_hash_algo)
        self._dts = data_transfer_size
        self._max_msg = max_spdm_msg_size
        self._random = random
        self._alignment = alignment
        self._transcript = Transcript()
        self._connection: Connection | None = None
        self._closed: str | None = None  # why the connection is unusable, once it is
        self._authenticated = False  # a CHALLENGE completed since the VCA
        self._digests: Digests | None = None
        self._keys: dict[int, PublicKey] = {}
        self._peer_dts: int | None = None
        # What a verifier needs to check this session later (see evidence()).
        self._vca_messages: list[bytes] = []
        self._chains: dict[int, bytes] = {}
        self._chain_hashes: dict[int, bytes] = {}  # each chain's base hash, as DIGESTS named it
        # The last signed exchange right after the VCA: its slot, the chain whose leaf key
        # verified it (a later GET_CERTIFICATE may replace the slot's chain), request, response.
        self._last_measurement: tuple[int, bytes, bytes, bytes] | None = None

    @property
    def connection(self) -> Connection | None:
        return self._connection if self._closed is None else None

    # --- transport --------------------------------------------------------------------------

    def _exchange(
        self, request: bytes, expected: RequestResponseCode, version: SpdmVersion
    ) -> bytes:
        """Send ``request``; the raw answer once its code and version are the expected ones."""
        if self._peer_dts is not None and len(request) > self._peer_dts:
            raise SpdmProtocolError(
                f"{len(request)}-byte request exceeds the responder's DataTransferSize"
            )
        response = self._send(request)
        if not isinstance(response, (bytes, bytearray)):
            raise MalformedSpdm("the transport returned something other than bytes")
        response = bytes(response)
        if len(response) > self._dts + self._alignment - 1:
            raise MalformedSpdm(
                f"{expected.name}: {len(response)} bytes exceed DataTransferSize {self._dts}"
            )
        if len(response) < _HEADER:
            raise MalformedSpdm(f"{expected.name}: truncated header ({len(response)} bytes)")
        if response[1] == _CODE.ERROR:
            error, _ = decode_padded(response, self._alignment, ErrorResponse.decode)
            raise SpdmErrorResponse(
                f"responder answered {_CODE(request[1]).name} with ERROR {error.name}"
                f" (ErrorData {error.error_data:#04x})"
            )
        if response[1] != expected:
            raise SpdmProtocolError(
                f"{_CODE(request[1]).name} answered with code {response[1]:#04x},"
                f" expected {expected.name}"
            )
        if response[0] != version:
            raise SpdmProtocolError(
                f"{expected.name} has SPDMVersion {response[0]:#04x}, expected {version:#04x}"
            )
        return response

    def _decode(self, response: bytes, decode: Callable[[bytes], T]) -> tuple[T, bytes]:
        """The decoded response and its exact bytes (without any transport padding)."""
        message, exact = decode_padded(response, self._alignment, decode)
        if len(exact) > self._dts:
            raise MalformedSpdm(f"{len(exact)}-byte response exceeds DataTransferSize {self._dts}")
        return message, exact

    def _close(self, exc: BaseException) -> None:
        """Mark the connection unusable after ``exc`` interrupted an exchange."""
        if isinstance(exc, IronrootError):
            reason = f"{exc.code}: {exc.detail}"
        else:
            reason = f"{type(exc).__name__}: {exc}"
        self._closed = reason
        self._connection = None
        self._transcript.reset_measurements()
        self._transcript.reset_b()

    def _require_connection(self) -> Connection:
        if self._closed is not None:
            raise SpdmProtocolError(
                "the SPDM connection is unusable after a failed exchange"
                f" ({self._closed}); start again with init_connection() (a new VCA)"
            )
        if self._connection is None:
            raise SpdmProtocolError("no negotiated connection: run init_connection() first")
        return self._connection

    # --- VCA --------------------------------------------------------------------------------

    def init_connection(self) -> Connection:
        """GET_VERSION, GET_CAPABILITIES, NEGOTIATE_ALGORITHMS; checks every answer."""
        self._connection = None
        self._closed = None
        self._authenticated = False
        self._digests = None
        self._keys = {}
        self._peer_dts = None
        self._last_measurement = None
        try:
            self._connection = self._vca()
        except Exception as exc:
            self._close(exc)
            raise
        return self._connection

    def _vca(self) -> Connection:
        get_version = encoded(GetVersion)
        response = self._exchange(get_version, _CODE.VERSION, SpdmVersion.V1_0)
        version_message, response = self._decode(response, Version.decode)
        offered = {e.spdm_version for e in version_message.entries}
        common = sorted(v for v in self._versions if v in offered)
        if not common:
            raise SpdmProtocolError("the responder supports no SPDM version in common")
        version = common[-1]
        self._transcript.start_vca(get_version, response)
        self._vca_messages = [get_version, response]

        request = encoded(
            GetCapabilities, version, data_transfer_size=self._dts, max_spdm_msg_size=self._max_msg
        )
        response = self._exchange(request, _CODE.CAPABILITIES, version)
        capabilities, response = self._decode(response, Capabilities.decode)
        self._transcript.add_vca(request + response)
        self._vca_messages += [request, response]
        self._peer_dts = capabilities.data_transfer_size
        check_capabilities(capabilities)

        request = encoded(
            NegotiateAlgorithms,
            version,
            measurement_specification=MEASUREMENT_SPECIFICATION_DMTF,
            other_params_support=OpaqueDataFormat.FORMAT_1,
            base_asym_algo=self._asym_offer,
            base_hash_algo=self._hash_offer,
        )
        response = self._exchange(request, _CODE.ALGORITHMS, version)
        algorithms, response = self._decode(response, Algorithms.decode)
        self._transcript.add_vca(request + response)
        self._vca_messages += [request, response]
        return negotiated_connection(
            version,
            capabilities,
            algorithms,
            asym_offer=self._asym_offer,
            hash_offer=self._hash_offer,
        )

    # --- certificates -----------------------------------------------------------------------

    def get_digests(self) -> Digests:
        """GET_DIGESTS: the chain digest of every provisioned slot."""
        connection = self._require_connection()
        try:
            self._transcript.reset_measurements()
            self._transcript.reset_b()
            request = encoded(GetDigests, connection.version)
            response = self._exchange(request, _CODE.DIGESTS, connection.version)
            digests, response = self._decode(
                response, lambda data: Digests.decode(data, hash_size=connection.hash_size)
            )
            self._transcript.add_b(request + response)
            if not digests.provisioned_slot_mask:
                # CERT_CAP is set, so a chain is due (libspdm's requester: INVALID_MSG_FIELD).
                raise SpdmProtocolError("DIGESTS provisions no certificate slot")
        except Exception as exc:
            self._close(exc)
            raise
        self._digests = digests
        self._keys = {}
        return digests

    def get_certificate_chain(self, slot_id: int = 0) -> CertificateChain:
        """GET_CERTIFICATE in portions; check the digest, RootHash, path and leaf key."""
        connection = self._require_connection()
        if self._digests is None:
            raise SpdmProtocolError("no DIGESTS yet: run get_digests() first")
        expected = self._digests.digest_for(slot_id)
        if expected is None:
            raise SpdmProtocolError(f"certificate slot {slot_id} is not provisioned")
        try:
            return self._get_certificate_chain(connection, slot_id, expected)
        except Exception as exc:
            self._close(exc)
            raise

    def _get_certificate_chain(
        self, connection: Connection, slot_id: int, expected: bytes
    ) -> CertificateChain:
        self._transcript.reset_measurements()
        portion_limit = min(self._dts - _CERTIFICATE_HEADER, 0xFFFF)
        data = bytearray()
        total: int | None = None
        while True:
            request = encoded(GetCertificate, connection.version, slot_id, len(data), portion_limit)
            response = self._exchange(request, _CODE.CERTIFICATE, connection.version)
            portion, response = self._decode(response, Certificate.decode)
            self._transcript.add_b(request + response)
            if portion.slot_id != slot_id:
                raise SpdmProtocolError(f"CERTIFICATE for slot {portion.slot_id}, not {slot_id}")
            if len(portion.portion) > portion_limit:
                raise SpdmProtocolError("CERTIFICATE portion is longer than requested")
            this_total = len(data) + len(portion.portion) + portion.remainder_length
            if total is None:
                total = this_total
            elif this_total != total:
                raise SpdmProtocolError("CERTIFICATE portions disagree on the chain length")
            if total > MAX_CERT_CHAIN_SIZE:
                raise MalformedSpdm(f"certificate chain longer than {MAX_CERT_CHAIN_SIZE} bytes")
            data += portion.portion
            if portion.remainder_length == 0:
                break
            if not portion.portion:
                raise SpdmProtocolError("CERTIFICATE portion is empty but bytes remain")
        chain_bytes = bytes(data)
        chain_hash = base_hash(connection.base_hash_algo, chain_bytes)
        if not hmac.compare_digest(chain_hash, expected):
            raise SpdmProtocolError("the certificate chain does not match its DIGESTS entry")
        chain = CertificateChain.decode(chain_bytes, hash_size=connection.hash_size)
        self._chains.pop(slot_id, None)  # key and chain recorded again once this one verifies
        self._chain_hashes.pop(slot_id, None)
        self._keys.pop(slot_id, None)
        leaf = verify_certificate_chain(
            chain, root=self._root, hash_algo=connection.base_hash_algo, now=self._now
        )
        algorithm = SIGNING_SUITES[connection.base_asym_algo][0]
        leaf_key = leaf.public_key()
        if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
            raise SpdmProtocolError("the leaf certificate key is not an ECDSA key")
        try:
            self._keys[slot_id] = PublicKey(leaf_key, algorithm)
        except UnsupportedAlgorithm as exc:
            raise SpdmProtocolError(
                f"the leaf key does not fit {connection.base_asym_algo.name}"
            ) from exc
        self._chains[slot_id] = chain_bytes
        self._chain_hashes[slot_id] = chain_hash
        return chain

    # --- challenge --------------------------------------------------------------------------

    def challenge(
        self,
        slot_id: int = 0,
        *,
        summary: MeasurementSummaryHashType = MeasurementSummaryHashType.NONE,
        nonce: bytes | None = None,
    ) -> ChallengeAuth:
        """CHALLENGE: authenticate the responder's key of ``slot_id`` (its chain verified
        first) with a signature over M1/M2; ``summary`` asks for a measurement summary hash.

        ``nonce`` (32 bytes) is a verifier's challenge to answer; by default a fresh random one.
        """
        if nonce is not None and (not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE):
            raise MalformedSpdm(f"a CHALLENGE nonce is {NONCE_SIZE} bytes")
        if not isinstance(summary, MeasurementSummaryHashType):
            raise ConfigError("summary must be a MeasurementSummaryHashType")
        connection = self._require_connection()
        if not connection.capabilities.flags & CapabilityFlag.CHAL_CAP:
            raise SpdmProtocolError("the responder cannot be challenged (CHAL_CAP clear)")
        key = self._keys.get(slot_id)
        # the base hash of the slot's chain, taken when it was fetched under this connection
        # (the key is dropped at every VCA and DIGESTS, and set again with the chain)
        chain_hash = self._chain_hashes.get(slot_id)
        if key is None or chain_hash is None:
            raise SpdmProtocolError(f"no verified certificate chain for slot {slot_id}")
        version = connection.version
        context = self._random(REQUESTER_CONTEXT_SIZE) if version >= SpdmVersion.V1_3 else None
        challenge_nonce = nonce if nonce is not None else self._random(NONCE_SIZE)
        request = Challenge(version, slot_id, summary, challenge_nonce, context).encode()
        try:
            answer, transcript = self._challenge_exchange(connection, request, summary, context)
            check_fresh_nonce(answer.nonce, challenge_nonce, "CHALLENGE_AUTH")
            if not hmac.compare_digest(answer.cert_chain_hash, chain_hash):
                raise SpdmProtocolError("CHALLENGE_AUTH names another certificate chain")
            if answer.slot_id != slot_id or not answer.slot_mask >> slot_id & 1:
                raise SpdmProtocolError(f"CHALLENGE_AUTH does not answer slot {slot_id}")
            message = challenge_auth_signing_message(version, connection.base_hash_algo, transcript)
            check_transcript_signature(key, answer.signature, message, "CHALLENGE_AUTH", "M1/M2")
        except Exception as exc:
            self._close(exc)
            raise
        self._authenticated = True
        return answer

    def _challenge_exchange(
        self,
        connection: Connection,
        request: bytes,
        summary: MeasurementSummaryHashType,
        context: bytes | None,
    ) -> tuple[ChallengeAuth, bytes]:
        """Send CHALLENGE; the checked CHALLENGE_AUTH and M1/M2 (B is consumed either way)."""
        self._transcript.reset_measurements()
        try:
            response = self._exchange(request, _CODE.CHALLENGE_AUTH, connection.version)
            answer, response = self._decode(
                response,
                lambda data: ChallengeAuth.decode(
                    data,
                    hash_size=connection.hash_size,
                    signature_size=connection.signature_size,
                    summary_requested=summary != MeasurementSummaryHashType.NONE,
                ),
            )
            if context is not None and not hmac.compare_digest(
                answer.requester_context or b"", context
            ):
                raise SpdmProtocolError("CHALLENGE_AUTH does not echo the RequesterContext")
            if answer.basic_mut_auth_requested:
                raise SpdmProtocolError("CHALLENGE_AUTH asks for mutual authentication")
            check_opaque_data(connection, answer.opaque_data, "CHALLENGE_AUTH")
            unsigned = response[: len(response) - connection.signature_size]
            return answer, self._transcript.m1m2(request, unsigned)
        finally:
            self._transcript.reset_b()

    # --- measurements -----------------------------------------------------------------------

    def get_measurements(
        self,
        operation: int = OPERATION_ALL,
        *,
        signed: bool = True,
        raw_bit_stream: bool = False,
        slot_id: int = 0,
        nonce: bytes | None = None,
    ) -> Measurements:
        """GET_MEASUREMENTS; a signed response is verified over this requester's L1/L2.

        ``nonce`` (32 bytes) is a verifier's challenge to answer; by default a fresh random one.
        """
        if nonce is not None and (not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE):
            raise MalformedSpdm(f"a GET_MEASUREMENTS nonce is {NONCE_SIZE} bytes")
        connection = self._require_connection()
        key = self._keys.get(slot_id)
        if signed and key is None:
            raise SpdmProtocolError(f"no verified certificate chain for slot {slot_id}")
        version = connection.version
        context = self._random(REQUESTER_CONTEXT_SIZE) if version >= SpdmVersion.V1_3 else None
        if signed and nonce is None:
            nonce = self._random(NONCE_SIZE)
        request = GetMeasurements(
            version,
            operation,
            signed,
            nonce=nonce if signed else None,
            slot_id=slot_id if signed else 0,
            raw_bit_stream_requested=raw_bit_stream,
            requester_context=context,
        ).encode()
        try:
            if not self._authenticated:
                self._transcript.reset_b()  # no CHALLENGE completed: M1/M2's B ends here
            response = self._exchange(request, _CODE.MEASUREMENTS, version)
            signature_size = connection.signature_size if signed else 0
            answer, response = self._decode(
                response,
                lambda data: Measurements.decode(
                    data,
                    signature_size=signature_size,
                    measurement_hash_algo=connection.measurement_hash_algo,
                ),
            )
            self._check_measurements(connection, answer, operation, signed, slot_id, context)
            if signed and nonce is not None:
                check_fresh_nonce(answer.nonce, nonce, "MEASUREMENTS")
            after_vca = not self._transcript.has_measurements  # L1/L2 = VCA and this exchange
            self._transcript.add_measurement(request)
            self._transcript.add_measurement(response[: len(response) - signature_size])
            self._last_measurement = (
                (slot_id, self._chains[slot_id], request, response)
                if signed and after_vca
                else None
            )
            if signed:
                message = measurement_signing_message(
                    version, connection.base_hash_algo, self._transcript.l1l2()
                )
                self._transcript.reset_measurements()
                assert key is not None
                check_transcript_signature(key, answer.signature, message, "MEASUREMENTS", "L1/L2")
        except Exception as exc:
            self._close(exc)
            raise
        return answer

    def _check_measurements(
        self,
        connection: Connection,
        answer: Measurements,
        operation: int,
        signed: bool,
        slot_id: int,
        context: bytes | None,
    ) -> None:
        if context is not None and not hmac.compare_digest(
            answer.requester_context or b"", context
        ):
            raise SpdmProtocolError("MEASUREMENTS does not echo the RequesterContext")
        check_measurement_operation(answer, operation)
        if signed:
            if answer.slot_id != slot_id:
                raise SpdmProtocolError(
                    f"MEASUREMENTS signed by slot {answer.slot_id}, not {slot_id}"
                )
        elif answer.slot_id or answer.content_changed:
            raise SpdmProtocolError("MEASUREMENTS: Param2 is reserved in an unsigned response")
        check_opaque_data(connection, answer.opaque_data, "MEASUREMENTS")

    # --- whole runs -------------------------------------------------------------------------

    def evidence(
        self,
        nonce: bytes,
        operation: int = OPERATION_ALL,
        *,
        slot_id: int = 0,
        raw_bit_stream: bool = False,
    ) -> bytes:
        """Measure the device answering a verifier's ``nonce``, verify everything here, and
        return the session as SPDM evidence (:class:`SpdmEvidence`) a verifier checks offline.

        One signed GET_MEASUREMENTS right after VCA, DIGESTS and CERTIFICATE, so its L1/L2 is
        the VCA and that one exchange. Any failure once the run has started closes the
        connection (even a refusal of one step made before it sends, such as a slot DIGESTS
        does not provision).
        """
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
            raise MalformedSpdm(f"a GET_MEASUREMENTS nonce is {NONCE_SIZE} bytes")
        self.init_connection()
        try:
            self.get_digests()
            self.get_certificate_chain(slot_id)
            self.get_measurements(
                operation, signed=True, raw_bit_stream=raw_bit_stream, slot_id=slot_id, nonce=nonce
            )
            return self.last_evidence(slot_id)
        except Exception as exc:
            self._close(exc)
            raise

    def last_evidence(self, slot_id: int = 0) -> bytes:
        """The last signed GET_MEASUREMENTS exchange as SPDM evidence, when it came right after
        the VCA (nothing but DIGESTS, CERTIFICATE or CHALLENGE between, each of which resets
        L1/L2), so L1/L2 is the VCA and that one exchange; beside it, the chain whose leaf key
        verified it (even if the slot's chain was fetched again since)."""
        self._require_connection()
        if self._last_measurement is None:
            raise SpdmProtocolError(
                "no signed measurements to record: the last GET_MEASUREMENTS was not signed,"
                " or not right after the VCA"
            )
        measured, chain, request, response = self._last_measurement
        if measured != slot_id:
            raise SpdmProtocolError(
                f"the last signed measurements were signed with slot {measured},"
                f" not signed with slot {slot_id}: they are not evidence beside its chain"
            )
        return SpdmEvidence(
            vca=tuple(self._vca_messages),
            certificate_chain=chain,
            request=request,
            response=response,
        ).encode()

    def attest(
        self,
        operation: int = OPERATION_ALL,
        *,
        slot_id: int = 0,
        raw_bit_stream: bool = False,
        challenge: bool = True,
        nonce: bytes | None = None,
    ) -> AttestationResult:
        """The whole run: VCA, DIGESTS, CERTIFICATE, CHALLENGE (when ``challenge`` and the
        responder has CHAL_CAP), signed MEASUREMENTS (answering ``nonce`` when given), all
        verified. :meth:`last_evidence` then records the measurements for a verifier.

        With a CHALLENGE before "all measurements" as digests, the CHALLENGE_AUTH summary hash
        of all measurements must equal the hash of the measurement blocks signed afterwards.
        """
        if nonce is not None and (not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE):
            raise MalformedSpdm(f"a GET_MEASUREMENTS nonce is {NONCE_SIZE} bytes")
        connection = self.init_connection()
        try:
            return self._attest(connection, operation, slot_id, raw_bit_stream, challenge, nonce)
        except Exception as exc:  # any failure of the run closes it (see evidence())
            self._close(exc)
            raise

    def _attest(
        self,
        connection: Connection,
        operation: int,
        slot_id: int,
        raw_bit_stream: bool,
        challenge: bool,
        nonce: bytes | None,
    ) -> AttestationResult:
        self.get_digests()
        chain = self.get_certificate_chain(slot_id)
        auth: ChallengeAuth | None = None
        compare = operation == OPERATION_ALL and not raw_bit_stream
        if challenge and connection.capabilities.flags & CapabilityFlag.CHAL_CAP:
            kind = MeasurementSummaryHashType.ALL if compare else MeasurementSummaryHashType.NONE
            auth = self.challenge(slot_id, summary=kind)
        measurements = self.get_measurements(
            operation, signed=True, raw_bit_stream=raw_bit_stream, slot_id=slot_id, nonce=nonce
        )
        if auth is not None and compare:
            summary = measurement_summary_hash(measurements.blocks, connection.base_hash_algo)
            if not hmac.compare_digest(summary, auth.measurement_summary_hash):
                raise SpdmProtocolError(
                    "the CHALLENGE_AUTH measurement summary does not match the signed measurements"
                )
        return AttestationResult(connection, chain, measurements, auth)
