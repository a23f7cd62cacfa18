"""The spdm-emu socket framing, MCTP, PCI DOE and TCP bindings: bytes, strictness, a socket pair."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from _spdm_error_table import TRANSPORT_ROWS, TransportRow, transport_outcome
from _spdm_helpers import BLOCKS, Device, make_requester
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import Algorithm
from ironroot.errors import MalformedSpdm, SpdmTransportError
from ironroot.spdm import (
    DoeObject,
    Responder,
    SocketCommand,
    SocketFrame,
    SocketTransportType,
    SpdmEmuClient,
    SpdmVersion,
    decode_transport_message,
    encode_transport_message,
    serve_spdm_emu,
)
from ironroot.spdm._transport import _discovery_answer, doe_discovery_request

MCTP, DOE, TCP = SocketTransportType.MCTP, SocketTransportType.PCI_DOE, SocketTransportType.TCP
GET_VERSION = bytes.fromhex("10840000")


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- pure framing ---------------------------------------------------------------------------


def test_command_and_transport_numbers() -> None:
    """The values of spdm-emu's command.h, checked against its source."""
    assert SocketCommand.NORMAL == 0x0001
    assert SocketCommand.OOB_ENCAP_KEY_UPDATE == 0x8001
    assert SocketCommand.OOB_ENCAP_ENDPOINT_INFO == 0x8002
    assert SocketCommand.CONTINUE == 0xFFFD
    assert SocketCommand.SHUTDOWN == 0xFFFE
    assert SocketCommand.UNKNOWN == 0xFFFF
    assert SocketCommand.TEST == 0xDEAD
    assert [int(t) for t in SocketTransportType] == [0, 1, 2, 3]
    assert (MCTP.alignment, DOE.alignment, TCP.alignment) == (1, 4, 1)


def test_socket_frame_bytes() -> None:
    frame = SocketFrame(SocketCommand.NORMAL, MCTP, b"\x05" + GET_VERSION)
    data = frame.encode()
    assert data == h("00000001 00000001 00000005 05 10840000")
    assert SocketFrame.decode(data) == frame
    shutdown = SocketFrame(SocketCommand.SHUTDOWN, DOE)
    assert shutdown.encode() == h("0000fffe 00000002 00000000")
    assert SocketFrame.decode_header(data[:12]) == (1, 1, 5)


@pytest.mark.parametrize(
    "data",
    [
        h("00000001 00000001"),  # short header
        h("00000001 00000001 00000005 05 1084"),  # payload shorter than its size
        h("00000001 00000001 00000001 05 10"),  # longer
        h("00000001 00000001 00011001"),  # over the payload limit
        h("00000001 00000001 ffffffff"),
    ],
)
def test_socket_frame_refuses(data: bytes) -> None:
    with pytest.raises(MalformedSpdm):
        SocketFrame.decode(data)


def test_socket_frame_fields_are_checked() -> None:
    with pytest.raises(MalformedSpdm):
        SocketFrame(-1, 1)
    with pytest.raises(MalformedSpdm):
        SocketFrame(1, 2**32)
    with pytest.raises(MalformedSpdm):
        SocketFrame(1, 1, bytes(0x11001))
    with pytest.raises(MalformedSpdm):
        SocketFrame.decode_header(h("00000001 00000001 00000100"), max_payload=0xFF)


def test_mctp_binding() -> None:
    assert encode_transport_message(MCTP, GET_VERSION) == h("05 10840000")
    assert decode_transport_message(MCTP, h("05 10840000")) == GET_VERSION
    for bad, why in (
        (h("06 00000000 10"), "secured"),
        (h("85 10840000"), "integrity"),
        (h("01 10840000"), "not SPDM"),
        (h("05"), "type byte and a body"),
        (b"", "type byte and a body"),
    ):
        with pytest.raises(MalformedSpdm, match=why):
            decode_transport_message(MCTP, bad)


def test_pci_doe_binding() -> None:
    assert encode_transport_message(DOE, GET_VERSION) == h("0100 01 00 03000000 10840000")
    signed_get_measurements = bytes(37)
    data = encode_transport_message(DOE, signed_get_measurements)
    assert len(data) == 8 + 40
    assert data[4:8] == (12).to_bytes(4, "little")  # 12 words, header included
    assert data[8 + 37 :] == bytes(3)  # zero padding
    assert decode_transport_message(DOE, data) == signed_get_measurements + bytes(3)
    assert DoeObject.decode(data) == DoeObject(1, signed_get_measurements + bytes(3))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (h("0100 01 00 03000000 108400"), "whole 4-byte words"),
        (h("0100 01 00 02000000"), "whole 4-byte words"),  # header only
        (h("0200 01 00 03000000 10840000"), "VendorID"),
        (h("0100 01 01 03000000 10840000"), "reserved header byte"),
        (h("0100 01 00 03000400 10840000"), "reserved Length bits"),
        (h("0100 01 00 04000000 10840000"), "Length says 4 words"),
        (h("0100 02 00 04000000 00000000 10840000"), "not SPDM"),  # secured SPDM
        (h("0100 00 00 03000000 00000000"), "not SPDM"),  # discovery is not an SPDM message
    ],
)
def test_pci_doe_refuses(data: bytes, why: str) -> None:
    with pytest.raises(MalformedSpdm, match=why):
        decode_transport_message(DOE, data)


def test_doe_discovery_bytes() -> None:
    assert doe_discovery_request(0) == h("0100 00 00 03000000 00 00 0000")
    first = _discovery_answer(DoeObject.decode(doe_discovery_request(0)))
    assert first == h("0100 00 00 03000000 0100 00 01")  # Discovery, next index 1
    second = _discovery_answer(DoeObject.decode(doe_discovery_request(1)))
    assert second == h("0100 00 00 03000000 0100 01 00")  # SPDM, the last one
    with pytest.raises(MalformedSpdm, match="past the last"):
        _discovery_answer(DoeObject.decode(doe_discovery_request(2)))


def test_tcp_binding() -> None:
    """DSP0287: PayloadLength(2, little-endian: what follows it) BindingVersion(1)=1
    MessageType(1)=0x05 (out-of-session SPDM), then the message, as libspdm frames it."""
    assert encode_transport_message(TCP, GET_VERSION) == h("0600 01 05 10840000")
    assert decode_transport_message(TCP, h("0600 01 05 10840000")) == GET_VERSION
    largest = bytes(0xFFFD)  # PayloadLength 0xFFFF
    assert encode_transport_message(TCP, largest)[:4] == h("ffff 01 05")
    assert decode_transport_message(TCP, encode_transport_message(TCP, largest)) == largest
    with pytest.raises(MalformedSpdm, match="PayloadLength"):
        encode_transport_message(TCP, bytes(0xFFFE))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (
            h("0600 01 05 108400"),
            "PayloadLength says 6 bytes, the message has 5",
        ),  # unaligned: short
        (h("0600 01 05 1084000000"), "PayloadLength says 6 bytes, the message has 7"),  # long
        (h("0000 01 05 10840000"), "PayloadLength says 0 bytes"),
        (h("0600 02 05 10840000"), "binding version 2"),
        (h("0600 00 05 10840000"), "binding version 0"),
        (h("0600 01 06 10840000"), "secured SPDM"),  # in-session
        (h("0000 01 bf"), "RoleInquiry"),
        (h("0000 01 c0"), r"binding error 0xc0 \(ErrorTooLarge\)"),
        (h("0000 01 c1"), r"binding error 0xc1 \(ErrorNotSupported\)"),
        (h("0000 01 c4"), r"binding error 0xc4 \(reserved\)"),
        (h("0600 01 01 10840000"), "type 0x01 is not SPDM"),
        (h("0200 01 05"), "a 4-byte header and a body"),  # no SPDM message
        (h("0600 01"), "a 4-byte header and a body"),
        (b"", "a 4-byte header and a body"),
    ],
)
def test_tcp_refuses(data: bytes, why: str) -> None:
    with pytest.raises(MalformedSpdm, match=why):
        decode_transport_message(TCP, data)


def test_other_transports_are_refused() -> None:
    for kind in (SocketTransportType.NONE, 7):
        with pytest.raises(MalformedSpdm):
            encode_transport_message(kind, GET_VERSION)


@settings(max_examples=examples(60), deadline=None)
@given(message=st.binary(min_size=1, max_size=300), kind=st.sampled_from([MCTP, DOE, TCP]))
def test_binding_round_trip(message: bytes, kind: SocketTransportType) -> None:
    payload = encode_transport_message(kind, message)
    decoded = decode_transport_message(kind, payload)
    assert decoded[: len(message)] == message
    assert decoded[len(message) :] == bytes(len(decoded) - len(message))
    assert len(decoded) - len(message) < kind.alignment
    assert SocketFrame.decode(SocketFrame(1, kind, payload).encode()).payload == payload


@settings(max_examples=examples(150), deadline=None)
@given(data=st.binary(max_size=64), kind=st.sampled_from([MCTP, DOE, TCP]))
def test_decoders_raise_only_typed_errors(data: bytes, kind: SocketTransportType) -> None:
    for decode in (
        lambda: decode_transport_message(kind, data),
        lambda: SocketFrame.decode(data),
        lambda: DoeObject.decode(data),
    ):
        with contextlib.suppress(MalformedSpdm):
            decode()


# --- over a socket --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES256)


class Server:
    """serve_spdm_emu on an ephemeral localhost port, in a thread."""

    def __init__(self, device: Device, kind: SocketTransportType) -> None:
        self.kind = kind
        self.responder = Responder(device.leaf_key, device.chain, BLOCKS, alignment=kind.alignment)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=serve_spdm_emu,
            args=(self.listener, self.responder, kind),
            kwargs={"stop": self.stop},
            daemon=True,
        )
        self.thread.start()

    def connect(self, kind: SocketTransportType | None = None) -> SpdmEmuClient:
        return SpdmEmuClient.connect("127.0.0.1", self.port, kind or self.kind, timeout=10)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.listener.close()


@pytest.fixture(params=[MCTP, DOE, TCP], ids=["mctp", "pci-doe", "tcp"])
def server(request: pytest.FixtureRequest, device: Device) -> Iterator[Server]:
    served = Server(device, request.param)
    yield served
    served.close()


@pytest.mark.integration
@pytest.mark.parametrize("version", [SpdmVersion.V1_2, SpdmVersion.V1_3])
def test_requester_and_responder_over_the_socket(
    server: Server, device: Device, version: SpdmVersion
) -> None:
    with server.connect() as client:
        assert client.hello() == b"Server Hello!\x00"
        if server.kind is DOE:
            assert client.discover() == [(0x0001, 0x00), (0x0001, 0x01)]
        requester = make_requester(client, device, (version,), alignment=client.alignment)
        result = requester.attest()
        assert result.connection.version == version
        assert result.challenge_auth is not None
        assert [b.index for b in result.blocks] == [b.index for b in BLOCKS]


@pytest.mark.integration
def test_continue_keeps_the_device_and_shutdown_stops(device: Device) -> None:
    server = Server(device, MCTP)
    clients = [server.connect()]
    requester = make_requester(lambda message: clients[-1](message), device)
    requester.init_connection()
    assert clients[-1].exchange(SocketCommand.CONTINUE) == b""
    clients[-1].close()
    clients.append(server.connect())
    requester.get_digests()  # the device kept its negotiated state across connections
    requester.get_certificate_chain()
    requester.get_measurements()
    clients[-1].shutdown()
    server.thread.join(timeout=10)
    assert not server.thread.is_alive()
    server.listener.close()


def _raw(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_answer(sock: socket.socket) -> SocketFrame:
    data = b""
    while len(data) < 12:
        chunk = sock.recv(12 - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    _, _, size = SocketFrame.decode_header(data)
    while len(data) < 12 + size:
        data += sock.recv(12 + size - len(data))
    return SocketFrame.decode(data)


@pytest.mark.integration
def test_server_answers_unknown_commands_and_drops_bad_frames(device: Device) -> None:
    server = Server(device, MCTP)
    try:
        with _raw(server) as sock:
            sock.sendall(SocketFrame(0x1234, MCTP).encode())
            assert _read_answer(sock).command == SocketCommand.UNKNOWN
            sock.sendall(SocketFrame(SocketCommand.OOB_ENCAP_KEY_UPDATE, MCTP).encode())
            assert _read_answer(sock).command == SocketCommand.UNKNOWN
            sock.sendall(h("00000001 00000001 00100000"))  # a 1 MiB payload: too large
            with pytest.raises((EOFError, ConnectionResetError)):
                _read_answer(sock)
        with _raw(server) as sock:
            sock.sendall(SocketFrame(SocketCommand.TEST, DOE, b"hi").encode())  # other transport
            with pytest.raises((EOFError, ConnectionResetError)):
                _read_answer(sock)
        with _raw(server) as sock:
            sock.sendall(SocketFrame(SocketCommand.NORMAL, MCTP, h("06 00000000")).encode())
            with pytest.raises((EOFError, ConnectionResetError)):
                _read_answer(sock)  # secured SPDM is not spoken: the connection ends
        with server.connect(MCTP) as client:  # and the server still serves
            assert client.hello() == b"Server Hello!\x00"
    finally:
        server.close()


@pytest.mark.integration
@pytest.mark.parametrize("row", TRANSPORT_ROWS, ids=[row.name for row in TRANSPORT_ROWS])
def test_server_handles_a_malformed_transport_message_as_tabled(
    device: Device, row: TransportRow
) -> None:
    """serve_spdm_emu drops the connection on a PCI DOE or TCP message it cannot read (the
    table in _spdm_error_table, next to what libspdm's emulator does)."""
    server = Server(device, SocketTransportType[row.transport])
    try:
        outcome = transport_outcome(server.port, server.kind, row.payload)
    finally:
        server.close()
    assert str(outcome) == str(row.ours)


@pytest.mark.integration
def test_client_errors_are_typed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(SpdmTransportError, match="cannot reach"):
        SpdmEmuClient.connect("127.0.0.1", port, MCTP, timeout=5)

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = SpdmEmuClient.connect("127.0.0.1", port, MCTP, timeout=0.3)
        peer, _ = listener.accept()
        with pytest.raises(SpdmTransportError, match="in time"):
            client(GET_VERSION)  # the peer never answers
        peer.sendall(SocketFrame(SocketCommand.TEST, MCTP, b"x").encode())
        with pytest.raises(MalformedSpdm, match="answered command"):
            client.exchange(SocketCommand.NORMAL, b"\x05" + GET_VERSION)
        peer.close()
        with pytest.raises(SpdmTransportError, match=r"closed|reset"):
            client(GET_VERSION)
        client.close()
    with socket.socket() as unused, pytest.raises(MalformedSpdm):
        SpdmEmuClient(unused, SocketTransportType.NONE)


def _trickle(sock: socket.socket, data: bytes) -> None:
    """Send ``data`` a byte every 0.1 s (each byte well within the peer's timeout)."""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return  # the peer gave up on us
        time.sleep(0.1)


@pytest.mark.integration
def test_server_drops_a_client_that_trickles_a_frame(device: Device) -> None:
    responder = Responder(device.leaf_key, device.chain, BLOCKS)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_spdm_emu,
        args=(listener, responder, MCTP),
        kwargs={"stop": stop, "idle_timeout": 0.5},
        daemon=True,
    )
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            # 26 bytes over 2.6 s: every byte is in time, the frame is not.
            _trickle(sock, SocketFrame(SocketCommand.TEST, MCTP, b"Client Hello!\x00").encode())
            with pytest.raises((EOFError, ConnectionResetError)):
                _read_answer(sock)
        with SpdmEmuClient.connect("127.0.0.1", port, MCTP, timeout=10) as client:
            assert client.hello() == b"Server Hello!\x00"  # the next client is served
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


@pytest.mark.integration
def test_client_gives_up_on_a_peer_that_trickles_its_answer() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = SpdmEmuClient.connect("127.0.0.1", port, MCTP, timeout=0.5)
        peer, _ = listener.accept()
        answer = SocketFrame(SocketCommand.TEST, MCTP, b"Server Hello!\x00").encode()
        feeder = threading.Thread(target=_trickle, args=(peer, answer), daemon=True)
        feeder.start()
        with pytest.raises(SpdmTransportError, match="in time"):
            client.hello()
        client.close()
        peer.close()
        feeder.join(timeout=10)
