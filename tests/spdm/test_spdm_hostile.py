"""A hostile peer on either side, and every decoder fed arbitrary bytes.

The decoders either return a value or raise an ironroot error (never IndexError, struct.error,
ValueError, RecursionError, MemoryError); the requester refuses each lie of a scripted
responder with the exact error; the socket server answers a hostile requester with SPDM ERRORs
and drops the connections that misbehave at the frame level, then serves the next one.
The property tests are derandomized and small, so the module is deterministic and quick.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from _spdm_helpers import BLOCKS, Device, Recorder, make_cert, make_requester, make_responder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import Algorithm
from ironroot.errors import (
    BadSignature,
    ChainNotTrusted,
    IronrootError,
    MalformedSpdm,
    SpdmErrorResponse,
    SpdmProtocolError,
)
from ironroot.spdm import (
    Certificate,
    CertificateChain,
    Challenge,
    ChallengeAuth,
    DeviceMode,
    ErrorResponse,
    GetCapabilities,
    GetCertificate,
    GetDigests,
    GetMeasurements,
    GetVersion,
    MeasurementReport,
    Measurements,
    NegotiateAlgorithms,
    Responder,
    SocketTransportType,
    SpdmEmuClient,
    SpdmEvidence,
    SpdmVersion,
    decode_measurement_record,
    decode_opaque_data,
    load_certificates,
    measurement_signing_message,
    serve_spdm_emu,
)
from ironroot.spdm._constants import BaseHashAlgo, ErrorCode

V12, V13 = SpdmVersion.V1_2, SpdmVersion.V1_3
MCTP = SocketTransportType.MCTP
GET_DIGESTS, GET_CERTIFICATE, GET_MEASUREMENTS, NEGOTIATE_ALGORITHMS = 0x81, 0x82, 0xE0, 0xE3
_FUZZ = settings(
    max_examples=examples(40),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


# --- decoders on arbitrary bytes ------------------------------------------------------------

_DECODERS: list[tuple[str, Callable[[bytes], object]]] = [
    ("Challenge", Challenge.decode),
    (
        "ChallengeAuth",
        lambda d: ChallengeAuth.decode(d, hash_size=48, signature_size=96, summary_requested=True),
    ),
    ("CertificateChain", lambda d: CertificateChain.decode(d, hash_size=48)),
    ("MeasurementReport", lambda d: MeasurementReport.decode(d, signature_size=64)),
    ("SpdmEvidence", SpdmEvidence.decode),
    (
        "MeasurementRecord",
        lambda d: decode_measurement_record(d[1:], d[0] if d else 0, version=V13),
    ),
    ("DeviceMode", DeviceMode.decode),
    ("OpaqueData", decode_opaque_data),
    ("load_certificates", load_certificates),
]
_HEADERS = [b"", b"\x12\x83", b"\x13\x03", b"\x12\x60", b"\x11\x60", b"\x30\x82\xff\xff"]


@pytest.mark.parametrize(("name", "decode"), _DECODERS, ids=[d[0] for d in _DECODERS])
@_FUZZ
@given(st.sampled_from(_HEADERS), st.binary(max_size=300))
def test_decoders_return_or_raise_typed(
    name: str, decode: Callable[[bytes], object], header: bytes, body: bytes
) -> None:
    with contextlib.suppress(IronrootError):  # any other exception fails the test
        decode(header + body)


def test_lengths_past_the_data_are_refused_without_allocating() -> None:
    # a DER length of 16 MiB, a MeasurementRecordLength of 16 MiB, a block count of 255
    chain = bytes(48) + b"\x30\x83\xff\xff\xff"
    with pytest.raises(MalformedSpdm, match="truncated certificate"):
        CertificateChain.decode(
            (len(chain) + 4).to_bytes(2, "little") + b"\0\0" + chain, hash_size=48
        )
    header = b"\x12\x60\x00\x00\xff\xff\xff\xff"
    with pytest.raises(MalformedSpdm, match="truncated at MeasurementRecord"):
        Measurements.decode(header + bytes(40), signature_size=96)
    with pytest.raises(MalformedSpdm, match="truncated"):
        decode_measurement_record(b"", 255, version=V13)


# --- a hostile responder against the Requester ----------------------------------------------


class Scripted:
    """A real Responder whose answers to one request code are replaced by ``script`` (which
    sees the request and the honest response); every exchange is kept."""

    def __init__(
        self, responder: Responder, code: int, script: Callable[[bytes, bytes], bytes]
    ) -> None:
        self.responder = responder
        self.code = code
        self.script = script
        self.log: list[bytes] = []

    def __call__(self, request: bytes) -> bytes:
        response = self.responder(request)
        if request[1] == self.code:
            response = self.script(request, response)
        self.log += [request, response]
        return response


def _blocks_patched(response: bytes, patch: Callable[[bytearray], None]) -> bytes:
    patched = bytearray(response)
    patch(patched)
    return bytes(patched)


def test_measurements_with_a_duplicate_index_are_refused(device: Device) -> None:
    def duplicate(_request: bytes, response: bytes) -> bytes:
        # the second block (index 2) is renumbered 1: the record, count and lengths still fit
        first_size = int.from_bytes(response[10:12], "little")
        return _blocks_patched(response, lambda b: b.__setitem__(8 + 4 + first_size, 1))

    transport = Scripted(make_responder(device, (V12,)), GET_MEASUREMENTS, duplicate)
    requester = make_requester(transport, device, (V12,))
    requester.init_connection()
    with pytest.raises(MalformedSpdm, match="measurement index 1 appears twice"):
        requester.get_measurements(signed=False)


@pytest.mark.parametrize(("delta", "message"), [(1, "truncated"), (-1, "trailing bytes")])
def test_measurements_whose_count_disagrees_with_the_record_are_refused(
    device: Device, delta: int, message: str
) -> None:
    def miscount(_request: bytes, response: bytes) -> bytes:
        return _blocks_patched(response, lambda b: b.__setitem__(4, b[4] + delta))

    transport = Scripted(make_responder(device, (V12,)), GET_MEASUREMENTS, miscount)
    requester = make_requester(transport, device, (V12,))
    requester.init_connection()
    with pytest.raises(MalformedSpdm, match=message):
        requester.get_measurements(signed=False)


def test_signature_over_a_transcript_that_skips_a_message_is_refused(device: Device) -> None:
    """The genuine key signs L1/L2 without GET_CAPABILITIES/CAPABILITIES: still refused."""

    def skip(request: bytes, response: bytes) -> bytes:
        unsigned = response[:-96]
        vca = transport.log[:6]
        transcript = b"".join(vca[:2] + vca[4:]) + request + unsigned
        message = measurement_signing_message(V12, BaseHashAlgo.SHA_384, transcript)
        return unsigned + device.leaf_key.sign(message)

    transport = Scripted(make_responder(device, (V12,)), GET_MEASUREMENTS, skip)
    with pytest.raises(BadSignature, match="the MEASUREMENTS signature does not verify over L1/L2"):
        make_requester(transport, device, (V12,)).attest(challenge=False)


_REFUSALS = (MalformedSpdm, SpdmProtocolError, BadSignature, SpdmErrorResponse, ChainNotTrusted)


@_FUZZ
@given(
    version=st.sampled_from([V12, V13]),
    which=st.integers(0, 11),
    at=st.integers(0, 4096),
    change=st.integers(1, 255) | st.just(-1) | st.just(0),
)
def test_any_change_to_one_response_of_a_run_is_refused(
    device: Device, version: SpdmVersion, which: int, at: int, change: int
) -> None:
    """A whole run (VCA, DIGESTS, CERTIFICATE, CHALLENGE, signed MEASUREMENTS) where one
    response has one byte changed (``change`` XORed in), one byte cut (0) or one byte added
    (-1): refused with a typed error, and the connection closed; no change passes."""
    honest = Recorder(make_responder(device, (version,)))
    make_requester(honest, device, (version,)).attest()
    which %= len(honest.log)  # one of the run's responses
    seen = [0]

    def edit(response: bytes) -> bytes:
        index, seen[0] = seen[0], seen[0] + 1
        if index != which:
            return response
        pos = at % len(response)
        if change == 0:
            return response[:pos] + response[pos + 1 :]
        if change == -1:
            return response[:pos] + b"\x00" + response[pos:]
        return response[:pos] + bytes([response[pos] ^ change]) + response[pos + 1 :]

    responder = make_responder(device, (version,))
    requester = make_requester(lambda request: edit(responder(request)), device, (version,))
    with pytest.raises(_REFUSALS) as caught:
        requester.attest()
    assert seen[0] > which  # the changed response was read
    assert type(caught.value) in _REFUSALS
    assert requester.connection is None  # closed until a new VCA


# The requests of a whole run, and every response code a hostile answer may pretend to be.
_REQUEST_CODES = (0x84, 0xE1, 0xE3, 0x81, 0x82, 0x83, 0xE0)
_RESPONSE_CODES = (0x04, 0x61, 0x63, 0x01, 0x02, 0x03, 0x60, 0x7F, 0x00, 0xFF)
_MAX_EXCHANGES = 4096  # an honest run takes a dozen; far more means the requester loops


def _zeros(size: int) -> bytes:
    return bytes(size)


def _ones(size: int) -> bytes:  # the responder's own: a nonce reflecting the request is refused
    return b"\x01" * size


def _hostile(honest: bytes, version: SpdmVersion) -> st.SearchStrategy[bytes]:
    """What a hostile responder may answer instead of ``honest``: noise; a header of its
    choosing (any version, a response code of any request, ERROR with any code and data)
    over any body; the honest answer with a stretch replaced (lengths, counts, masks)."""
    header = st.tuples(
        st.sampled_from([version, 0x10, 0x11, 0x12, 0x13, 0x14]),
        st.sampled_from([honest[1], *_RESPONSE_CODES]),
        st.integers(0, 255),
        st.integers(0, 255),
        st.binary(max_size=160),
    ).map(lambda t: bytes(t[:4]) + t[4])
    spliced = st.tuples(
        st.integers(0, len(honest)), st.integers(0, 8), st.binary(min_size=1, max_size=8)
    ).map(lambda t: honest[: t[0]] + t[2] + honest[t[0] + t[1] :])
    return st.one_of(st.binary(max_size=48), header, spliced)


@settings(_FUZZ, max_examples=examples(200))
@given(
    data=st.data(),
    version=st.sampled_from([V12, V13]),
    code=st.sampled_from(_REQUEST_CODES),
)
def test_a_hostile_answer_to_any_request_is_refused_typed(
    device: Device, data: st.DataObject, version: SpdmVersion, code: int
) -> None:
    """One answer of a whole run (to the first request of kind ``code``) replaced by what a
    hostile responder may send: the run ends in an ironroot error (any other exception fails
    the test), the connection closed, within a bounded number of exchanges; it passes only
    when the answer happens to be the honest one."""
    responder = make_responder(device, (version,), random=_ones)
    exchanges: list[tuple[bytes, bytes]] = []
    replaced: list[tuple[bytes, bytes]] = []

    def transport(request: bytes) -> bytes:
        if len(exchanges) >= _MAX_EXCHANGES:
            raise AssertionError("the requester keeps asking")
        response = responder(request)
        if request[1] == code and not replaced:
            answer = data.draw(_hostile(response, version), label="answer")
            replaced.append((response, answer))
            response = answer
        exchanges.append((request, response))
        return response

    requester = make_requester(transport, device, (version,), random=_zeros)
    try:
        requester.attest()
    except IronrootError:
        assert requester.connection is None
    else:
        assert replaced
        assert replaced[0][0] == replaced[0][1]


def test_empty_first_certificate_portion_is_refused(device: Device) -> None:
    empty = Certificate(V12, 0, b"", 0).encode()
    transport = Scripted(make_responder(device, (V12,)), GET_CERTIFICATE, lambda *_: empty)
    with pytest.raises(SpdmProtocolError, match="does not match its DIGESTS entry"):
        make_requester(transport, device, (V12,)).attest()


def test_an_intermediate_that_is_not_a_ca_is_refused() -> None:
    """The leaf is fine, but the certificate that issued it says CA:FALSE."""
    device = Device(Algorithm.ES384)
    ca_name = "Ironroot Test Device CA"
    device.intermediate = make_cert(
        ca_name, device.ca_key, "Ironroot Test Root", device.root_key, ca=False
    )
    device.chain = [device.root, device.intermediate, device.leaf]
    with pytest.raises(ChainNotTrusted, match="does not verify"):
        make_requester(make_responder(device, (V12,)), device, (V12,)).attest()


def test_hash_not_offered_is_refused(device: Device) -> None:
    """A downgrade: the responder selects SHA-256 when only SHA-384 was offered."""
    p256 = Device(Algorithm.ES256)
    responder = make_responder(p256, (V12,))

    def widen(request: bytes, _response: bytes) -> bytes:  # as if SHA-256 had been offered
        return responder(request[:12] + (0x3).to_bytes(4, "little") + request[16:])

    transport = Scripted(responder, NEGOTIATE_ALGORITHMS, widen)
    requester = make_requester(transport, p256, (V12,), base_hash_algo=BaseHashAlgo.SHA_384)
    with pytest.raises(SpdmProtocolError, match="BaseHashAlgo 0x1, not offered"):
        requester.init_connection()


# --- a hostile requester against the socket server ------------------------------------------


@pytest.fixture
def server(device: Device) -> Iterator[int]:
    responder = Responder(device.leaf_key, device.chain, BLOCKS)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_spdm_emu,
        args=(listener, responder, MCTP),
        kwargs={"stop": stop, "idle_timeout": 0.3},
        daemon=True,
    )
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=10)
    listener.close()


def _error(answer: bytes) -> ErrorCode:
    assert answer[1] == 0x7F, answer.hex()
    return ErrorCode(ErrorResponse.decode(answer).error_code)


@pytest.mark.integration
def test_server_refuses_requests_before_get_version(server: int) -> None:
    with SpdmEmuClient.connect("127.0.0.1", server, MCTP, timeout=10) as client:
        for request in (
            GetCapabilities(V12).encode(),
            NegotiateAlgorithms(V12, 1, 2, 0x80, 0x2).encode(),
            GetDigests(V12).encode(),
            GetCertificate(V12, 0, 0, 100).encode(),
            GetMeasurements(V12, 0xFF, False).encode(),
        ):
            assert _error(client(request)) == ErrorCode.UNEXPECTED_REQUEST


@pytest.mark.integration
@pytest.mark.parametrize(("offset", "length"), [(0xFFFF, 10), (5000, 1), (0, 0)])
def test_server_refuses_certificate_offsets_beyond_the_chain(
    server: int, offset: int, length: int
) -> None:
    with SpdmEmuClient.connect("127.0.0.1", server, MCTP, timeout=10) as client:
        client(GetVersion().encode())
        client(GetCapabilities(V12).encode())
        client(NegotiateAlgorithms(V12, 1, 2, 0x80, 0x2).encode())
        answer = client(GetCertificate(V12, 0, offset, length).encode())
        assert _error(answer) == ErrorCode.INVALID_REQUEST
        assert _error(client(b"\x12\xe0" + bytes(5000))) == ErrorCode.REQUEST_TOO_LARGE


def _dropped(sock: socket.socket) -> bool:
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.integration
def test_server_drops_oversized_and_silent_connections_then_serves(server: int) -> None:
    huge = (1).to_bytes(4, "big") + MCTP.to_bytes(4, "big") + (0xFFFFFFFF).to_bytes(4, "big")
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(huge)  # a 4 GiB payload announced: dropped before any is read
        assert _dropped(sock)
    silent = [socket.create_connection(("127.0.0.1", server), timeout=10) for _ in range(3)]
    try:
        with SpdmEmuClient.connect("127.0.0.1", server, MCTP, timeout=10) as client:
            assert client.hello() == b"Server Hello!\x00"  # served once the silent ones time out
        assert all(_dropped(sock) for sock in silent)
    finally:
        for sock in silent:
            sock.close()


class TwoSlots:
    """A responder that claims slot 1 too (the same chain), answering slot 1 as slot 0 and
    signing each slot-1 MEASUREMENTS over what the requester sent and received."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.responder = make_responder(device, (V12,))
        self.log: list[bytes] = []

    def __call__(self, request: bytes) -> bytes:
        code = request[1]
        if code == GET_DIGESTS:
            response = self.responder(request)
            response = response[:3] + b"\x03" + response[4:] + response[4:]
        elif code == GET_CERTIFICATE and request[2] == 1:
            response = self.responder(request[:2] + b"\x00" + request[3:])
            response = response[:2] + b"\x01" + response[3:]
        elif code == GET_MEASUREMENTS and request[2] & 1 and request[36] == 1:  # SlotIDParam
            honest = self.responder(request[:36] + b"\x00" + request[37:])
            unsigned = honest[:3] + bytes([honest[3] | 1]) + honest[4:-96]
            transcript = b"".join(self.log[:6]) + request + unsigned
            message = measurement_signing_message(V12, BaseHashAlgo.SHA_384, transcript)
            response = unsigned + self.device.leaf_key.sign(message)
        else:
            response = self.responder(request)
        self.log += [request, response]
        return response


def test_last_evidence_is_only_for_the_slot_measured(device: Device) -> None:
    """Measured with slot 1's key, the exchange is not recorded beside slot 0's chain."""
    requester = make_requester(TwoSlots(device), device, (V12,))
    requester.init_connection()
    requester.get_digests()
    requester.get_certificate_chain(0)
    requester.get_certificate_chain(1)
    requester.get_measurements(slot_id=1)
    assert requester.last_evidence(1)
    with pytest.raises(SpdmProtocolError, match="not signed with slot 0"):
        requester.last_evidence(0)


class _AbortsOnce:
    """A listener whose first accept() fails as Linux reports a connection reset in the
    queue; every other call goes to the real socket."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.aborted = False

    def settimeout(self, value: float) -> None:
        self.listener.settimeout(value)

    def accept(self) -> tuple[socket.socket, object]:
        if not self.aborted:
            self.aborted = True
            raise ConnectionAbortedError(103, "Software caused connection abort")
        return self.listener.accept()


@pytest.mark.integration
def test_a_connection_lost_in_the_accept_queue_does_not_stop_the_server(device: Device) -> None:
    responder = Responder(device.leaf_key, device.chain, BLOCKS)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        flaky = _AbortsOnce(listener)
        stop = threading.Event()
        thread = threading.Thread(
            target=serve_spdm_emu,
            args=(flaky, responder, MCTP),
            kwargs={"stop": stop},
            daemon=True,
        )
        thread.start()
        try:
            port = listener.getsockname()[1]
            with SpdmEmuClient.connect("127.0.0.1", port, MCTP, timeout=10) as client:
                assert client.hello() == b"Server Hello!\x00"
            assert flaky.aborted
        finally:
            stop.set()
            thread.join(timeout=10)


# --- measurement counts that cannot be -----------------------------------------------------


def test_all_measurements_answered_with_no_block_is_refused(device: Device) -> None:
    """A device with MEAS_CAP that signs an empty answer to "all measurements" (libspdm's
    requester refuses it: a responder without measurements clears MEAS_CAP)."""
    empty = Responder(device.leaf_key, device.chain, ())
    requester = make_requester(empty, device, (V12,))
    with pytest.raises(SpdmProtocolError) as caught:
        requester.attest(challenge=False)
    assert caught.value.detail == "MEASUREMENTS answers all measurements with no block"
    assert requester.connection is None


@pytest.mark.parametrize(
    ("total", "detail"),
    [
        (0, "MEASUREMENTS counts no measurement"),
        (255, "MEASUREMENTS counts 255 measurements: indices are 1 to 254"),
    ],
)
def test_a_measurement_count_that_cannot_be_is_refused(
    device: Device, total: int, detail: str
) -> None:
    def recount(_request: bytes, response: bytes) -> bytes:
        return response[:2] + bytes([total]) + response[3:]

    transport = Scripted(make_responder(device, (V12,)), GET_MEASUREMENTS, recount)
    requester = make_requester(transport, device, (V12,))
    requester.init_connection()
    with pytest.raises(SpdmProtocolError) as caught:
        requester.get_measurements(0, signed=False)
    assert caught.value.detail == detail
