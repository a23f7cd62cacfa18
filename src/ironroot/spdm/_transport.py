"""Talking to DMTF's ``spdm-emu`` emulators: their socket framing, MCTP, PCI DOE and TCP.

DMTF's ``spdm_requester_emu`` and ``spdm_responder_emu`` (github.com/DMTF/spdm-emu, built on
libspdm) exchange messages over TCP, each one framed as (integers big-endian)::

    Command(4) TransportType(4) PayloadSize(4) Payload[PayloadSize]

Command is NORMAL (0x0001, a transport message), TEST (0xDEAD, a hello), CONTINUE (0xFFFD: end
this connection, keep the device), SHUTDOWN (0xFFFE: stop), UNKNOWN (0xFFFF, the answer to a
command not understood) or one of the out-of-band encapsulated-request triggers (0x8001,
0x8002); TransportType is NONE 0, MCTP 1, PCI_DOE 2 or TCP 3 and must be the one both ends
were started with. Each request frame gets one answer frame with the same command.

A NORMAL payload is the SPDM message inside its transport binding:

- MCTP (DSP0275): one message-type byte, 0x05 for SPDM (0x06, secured SPDM, is not spoken
  here), then the message;
- PCI DOE (PCIe 6.x Data Object Exchange): an 8-byte header ``VendorID(2)=0x0001
  DataObjectType(1) Reserved(1) Length(4)`` (little-endian; Length counts 4-byte words,
  header included, in bits 17..0), then the message padded with zero bytes to a multiple of
  4. Type 1 is SPDM; type 0 is DOE Discovery, whose request is ``Index(1) Version(1)
  Reserved(2)`` and answer ``VendorID(2) DataObjectType(1) NextIndex(1)``;
- TCP (DSP0287, SPDM over TCP): a 4-byte header ``PayloadLength(2) BindingVersion(1)=1
  MessageType(1)``, PayloadLength (little-endian, as libspdm writes it) counting the bytes after
  it, then the message. Type 0x05 is SPDM outside a session; 0x06 (in a session), 0xBF
  (RoleInquiry) and 0xC0..0xFF (the binding's errors, which libspdm sends header only, with
  PayloadLength 0) are not spoken here. The emulators, started
  with ``--trans TCP`` (and no ``--tcp_sub RI``), keep their socket framing around it.

Every encoder and decoder here is pure and strict (size limits, reserved fields zero, typed
:class:`MalformedSpdm` on a bad frame). The socket parts are thin: :class:`SpdmEmuClient` is a
requester transport (``send(bytes) -> bytes`` for :class:`~ironroot.spdm.Requester`), and
:func:`serve_spdm_emu` answers one connection at a time for a
:class:`~ironroot.spdm.Responder`, as ``spdm_responder_emu`` does. No library speaks this
framing (it is the emulators' own), so it is written out here.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ironroot.errors import MalformedSpdm, SpdmTransportError

__all__ = [
    "DoeObject",
    "SocketCommand",
    "SocketFrame",
    "SocketTransportType",
    "SpdmEmuClient",
    "decode_transport_message",
    "encode_transport_message",
    "serve_spdm_emu",
]

_log = logging.getLogger(__name__)

MAX_FRAME_PAYLOAD: Final = 0x11000  # 64 KiB of SPDM message and any transport header
_FRAME_HEADER: Final = 12
MCTP_MESSAGE_TYPE_SPDM: Final = 0x05
_MCTP_SECURED: Final = 0x06
_MCTP_INTEGRITY_CHECK: Final = 0x80
DOE_VENDOR_PCISIG: Final = 0x0001
DOE_DATA_OBJECT_DISCOVERY: Final = 0x00
DOE_DATA_OBJECT_SPDM: Final = 0x01
_DOE_HEADER: Final = 8
_DOE_LENGTH_MASK: Final = 0x3FFFF
TCP_BINDING_VERSION: Final = 0x01
TCP_MESSAGE_TYPE_SPDM: Final = 0x05
_TCP_HEADER: Final = 4
_TCP_SECURED: Final = 0x06
_TCP_ROLE_INQUIRY: Final = 0xBF
_TCP_FIRST_ERROR: Final = 0xC0
_TCP_ERRORS: Final = {
    0xC0: "ErrorTooLarge",
    0xC1: "ErrorNotSupported",
    0xC2: "ErrorCannotOperateAsRequester",
    0xC3: "ErrorCannotOperateAsResponder",
}
_TCP_MAX_PAYLOAD_LENGTH: Final = 0xFFFF
# What DOE Discovery lists, in index order: Discovery itself, then SPDM (not secured SPDM).
_DOE_PROTOCOLS: Final = (
    (DOE_VENDOR_PCISIG, DOE_DATA_OBJECT_DISCOVERY),
    (DOE_VENDOR_PCISIG, DOE_DATA_OBJECT_SPDM),
)
_TCP_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)
CLIENT_HELLO: Final = b"Client Hello!\x00"
SERVER_HELLO: Final = b"Server Hello!\x00"


class SocketCommand(enum.IntEnum):
    """The Command word of an spdm-emu frame (``spdm_emu_common/command.h``)."""

    NORMAL = 0x0001
    OOB_ENCAP_KEY_UPDATE = 0x8001
    OOB_ENCAP_ENDPOINT_INFO = 0x8002
    CONTINUE = 0xFFFD
    SHUTDOWN = 0xFFFE
    UNKNOWN = 0xFFFF
    TEST = 0xDEAD


class SocketTransportType(enum.IntEnum):
    """The TransportType word of an spdm-emu frame."""

    NONE = 0x00
    MCTP = 0x01
    PCI_DOE = 0x02
    TCP = 0x03

    @property
    def alignment(self) -> int:
        """The padding unit of the binding: 4 for PCI DOE (lengths in 4-byte words), else 1."""
        return 4 if self is SocketTransportType.PCI_DOE else 1


# Bindings this module frames SPDM messages in.
_BINDINGS: Final = frozenset(
    {SocketTransportType.MCTP, SocketTransportType.PCI_DOE, SocketTransportType.TCP}
)


def _u32(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF_FFFF:
        raise MalformedSpdm(f"spdm-emu frame {name} must be a 32-bit unsigned integer")
    return value


@dataclass(frozen=True, slots=True)
class SocketFrame:
    """One spdm-emu frame: a command, the transport type and the payload."""

    command: int
    transport_type: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        _u32(self.command, "Command")
        _u32(self.transport_type, "TransportType")
        if not isinstance(self.payload, bytes) or len(self.payload) > MAX_FRAME_PAYLOAD:
            raise MalformedSpdm(f"spdm-emu payload must be bytes of at most {MAX_FRAME_PAYLOAD}")

    def encode(self) -> bytes:
        return (
            self.command.to_bytes(4, "big")
            + self.transport_type.to_bytes(4, "big")
            + len(self.payload).to_bytes(4, "big")
            + self.payload
        )

    @staticmethod
    def decode_header(
        header: bytes, *, max_payload: int = MAX_FRAME_PAYLOAD
    ) -> tuple[int, int, int]:
        """Command, TransportType and PayloadSize of a 12-byte frame header."""
        if len(header) != _FRAME_HEADER:
            raise MalformedSpdm(f"an spdm-emu frame header is {_FRAME_HEADER} bytes")
        command = int.from_bytes(header[0:4], "big")
        transport_type = int.from_bytes(header[4:8], "big")
        size = int.from_bytes(header[8:12], "big")
        if size > max_payload:
            raise MalformedSpdm(f"spdm-emu payload of {size} bytes is over {max_payload}")
        return command, transport_type, size

    @classmethod
    def decode(cls, data: bytes, *, max_payload: int = MAX_FRAME_PAYLOAD) -> SocketFrame:
        """Parse exactly one whole frame."""
        command, transport_type, size = cls.decode_header(
            data[:_FRAME_HEADER], max_payload=max_payload
        )
        if len(data) != _FRAME_HEADER + size:
            raise MalformedSpdm(
                f"spdm-emu frame says {size} payload bytes, has {len(data) - _FRAME_HEADER}"
            )
        return cls(command, transport_type, bytes(data[_FRAME_HEADER:]))


# --- PCI DOE data objects -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DoeObject:
    """A PCI DOE data object of the PCI-SIG vendor: its type and its (padded) payload."""

    data_object_type: int
    payload: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.data_object_type, int) or not 0 <= self.data_object_type <= 0xFF:
            raise MalformedSpdm("DOE DataObjectType is one byte")
        if not isinstance(self.payload, bytes):
            raise MalformedSpdm("DOE payload must be bytes")
        if _DOE_HEADER + len(self.payload) + 3 > MAX_FRAME_PAYLOAD:
            raise MalformedSpdm(f"DOE object over {MAX_FRAME_PAYLOAD} bytes")

    def encode(self) -> bytes:
        body = self.payload + bytes(-len(self.payload) % 4)
        length = (_DOE_HEADER + len(body)) // 4
        return (
            DOE_VENDOR_PCISIG.to_bytes(2, "little")
            + bytes([self.data_object_type, 0])
            + length.to_bytes(4, "little")
            + body
        )

    @classmethod
    def decode(cls, data: bytes) -> DoeObject:
        """Parse one data object; its payload keeps the padding (its own length is the
        message's business)."""
        if len(data) <= _DOE_HEADER or len(data) % 4:
            raise MalformedSpdm("a DOE object is a header and a payload of whole 4-byte words")
        if len(data) > MAX_FRAME_PAYLOAD:
            raise MalformedSpdm(f"DOE object over {MAX_FRAME_PAYLOAD} bytes")
        vendor = int.from_bytes(data[0:2], "little")
        if vendor != DOE_VENDOR_PCISIG:
            raise MalformedSpdm(f"DOE VendorID {vendor:#06x} is not PCI-SIG")
        if data[3]:
            raise MalformedSpdm("DOE reserved header byte is not zero")
        length = int.from_bytes(data[4:8], "little")
        if length & ~_DOE_LENGTH_MASK:
            raise MalformedSpdm("DOE reserved Length bits are set")
        if length * 4 != len(data):
            raise MalformedSpdm(f"DOE Length says {length} words, the object has {len(data) // 4}")
        return cls(data[2], bytes(data[_DOE_HEADER:]))


def doe_discovery_request(index: int, version: int = 0) -> bytes:
    """A DOE Discovery request object for protocol ``index``."""
    if not 0 <= index <= 0xFF or not 0 <= version <= 0xFF:
        raise MalformedSpdm("DOE Discovery index and version are one byte each")
    return DoeObject(DOE_DATA_OBJECT_DISCOVERY, bytes([index, version, 0, 0])).encode()


def _discovery_answer(request: DoeObject) -> bytes:
    """The DOE Discovery answer a responder gives: discovery itself, then SPDM."""
    if len(request.payload) != 4:
        raise MalformedSpdm("a DOE Discovery request is one word")
    index = request.payload[0]
    if index >= len(_DOE_PROTOCOLS):
        raise MalformedSpdm(f"DOE Discovery index {index} is past the last protocol")
    vendor, kind = _DOE_PROTOCOLS[index]
    following = index + 1 if index + 1 < len(_DOE_PROTOCOLS) else 0
    payload = vendor.to_bytes(2, "little") + bytes([kind, following])
    return DoeObject(DOE_DATA_OBJECT_DISCOVERY, payload).encode()


# --- SPDM inside a binding ------------------------------------------------------------------


def _binding(transport_type: int) -> SocketTransportType:
    try:
        kind = SocketTransportType(transport_type)
    except ValueError:
        raise MalformedSpdm(f"unknown spdm-emu transport type {transport_type}") from None
    if kind not in _BINDINGS:
        raise MalformedSpdm(f"transport {kind.name} is not spoken here (MCTP, PCI_DOE or TCP)")
    return kind


def _encode_tcp(message: bytes) -> bytes:
    length = 2 + len(message)  # BindingVersion, MessageType and the message
    if length > _TCP_MAX_PAYLOAD_LENGTH:
        raise MalformedSpdm(f"a TCP binding PayloadLength of {length} is over 0xFFFF")
    return (
        length.to_bytes(2, "little") + bytes([TCP_BINDING_VERSION, TCP_MESSAGE_TYPE_SPDM]) + message
    )


def _decode_tcp(payload: bytes) -> bytes:
    if len(payload) < _TCP_HEADER:
        raise MalformedSpdm("a TCP binding message is a 4-byte header and a body")
    version, kind = payload[2], payload[3]
    if version != TCP_BINDING_VERSION:
        raise MalformedSpdm(f"TCP binding version {version} is not {TCP_BINDING_VERSION}")
    if kind == _TCP_SECURED:
        raise MalformedSpdm("secured SPDM (TCP type 0x06) is not spoken here")
    if kind == _TCP_ROLE_INQUIRY:
        raise MalformedSpdm("TCP RoleInquiry (type 0xBF) is not spoken here")
    if kind >= _TCP_FIRST_ERROR:
        name = _TCP_ERRORS.get(kind, "reserved")
        raise MalformedSpdm(f"the peer sent TCP binding error {kind:#04x} ({name}), not SPDM")
    if kind != TCP_MESSAGE_TYPE_SPDM:
        raise MalformedSpdm(f"TCP message type {kind:#04x} is not SPDM")
    if len(payload) == _TCP_HEADER:
        raise MalformedSpdm("a TCP binding message is a 4-byte header and a body")
    length = int.from_bytes(payload[0:2], "little")
    if length != len(payload) - 2:
        raise MalformedSpdm(
            f"TCP binding PayloadLength says {length} bytes, the message has {len(payload) - 2}"
        )
    return bytes(payload[_TCP_HEADER:])


def encode_transport_message(transport_type: int, message: bytes) -> bytes:
    """The NORMAL payload carrying the SPDM ``message`` in the ``transport_type`` binding."""
    binding = _binding(transport_type)
    if binding is SocketTransportType.MCTP:
        if len(message) + 1 > MAX_FRAME_PAYLOAD:
            raise MalformedSpdm(f"MCTP message over {MAX_FRAME_PAYLOAD} bytes")
        return bytes([MCTP_MESSAGE_TYPE_SPDM]) + message
    if binding is SocketTransportType.TCP:
        return _encode_tcp(message)
    return DoeObject(DOE_DATA_OBJECT_SPDM, message).encode()


def decode_transport_message(transport_type: int, payload: bytes) -> bytes:
    """The SPDM message in a NORMAL payload (PCI DOE: with its zero padding, up to 3 bytes)."""
    binding = _binding(transport_type)
    if binding is SocketTransportType.TCP:
        return _decode_tcp(payload)
    if binding is SocketTransportType.MCTP:
        if len(payload) < 2:
            raise MalformedSpdm("an MCTP message is a type byte and a body")
        kind = payload[0]
        if kind & _MCTP_INTEGRITY_CHECK:
            raise MalformedSpdm("MCTP messages with an integrity check are not spoken here")
        if kind == _MCTP_SECURED:
            raise MalformedSpdm("secured SPDM (MCTP type 0x06) is not spoken here")
        if kind != MCTP_MESSAGE_TYPE_SPDM:
            raise MalformedSpdm(f"MCTP message type {kind:#04x} is not SPDM")
        return bytes(payload[1:])
    obj = DoeObject.decode(payload)
    if obj.data_object_type != DOE_DATA_OBJECT_SPDM:
        raise MalformedSpdm(f"DOE data object type {obj.data_object_type} is not SPDM")
    return obj.payload


# --- sockets: requester side ----------------------------------------------------------------


def _recv_exact(sock: socket.socket, n: int, deadline: float | None) -> bytes:
    """``n`` bytes, all by ``deadline`` (monotonic; ``None``: the socket's own timeout)."""
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        try:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
            chunk = sock.recv(min(remaining, 65536))
        except TimeoutError as exc:
            raise SpdmTransportError("the SPDM peer did not answer in time") from exc
        except OSError as exc:
            raise SpdmTransportError(f"the SPDM connection failed: {exc.strerror or exc}") from exc
        if not chunk:
            raise SpdmTransportError("the SPDM peer closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _send_all(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except TimeoutError as exc:
        raise SpdmTransportError("the SPDM peer did not take the message in time") from exc
    except OSError as exc:
        raise SpdmTransportError(f"the SPDM connection failed: {exc.strerror or exc}") from exc


def _quick_ack(sock: socket.socket) -> None:
    """Acknowledge at once (Linux): the emulators write a frame in four small sends, and
    Nagle's algorithm on their side would otherwise wait out our delayed ACK each time."""
    if _TCP_QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


def _read_frame(sock: socket.socket, max_payload: int) -> SocketFrame:
    """One frame, read whole within the socket's timeout: a peer that trickles bytes (each
    in time) cannot hold the connection, or the one-at-a-time server, past it."""
    timeout = sock.gettimeout()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        _quick_ack(sock)
        header = _recv_exact(sock, _FRAME_HEADER, deadline)
        _quick_ack(sock)
        command, transport_type, size = SocketFrame.decode_header(header, max_payload=max_payload)
        payload = _recv_exact(sock, size, deadline) if size else b""
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)
    return SocketFrame(command, transport_type, payload)


class SpdmEmuClient:
    """A requester's transport to an ``spdm_responder_emu``-style peer over one TCP socket.

    Calling it sends one SPDM message (a NORMAL frame) and returns the SPDM message that
    answers it, still padded for PCI DOE: give the :class:`~ironroot.spdm.Requester`
    ``alignment=client.alignment``. Each answer must arrive whole within ``timeout``
    seconds. Use it as a context manager, or call :meth:`close`;
    :meth:`shutdown` also asks the peer to stop.
    """

    def __init__(
        self,
        sock: socket.socket,
        transport_type: SocketTransportType,
        *,
        timeout: float = 30.0,
        max_payload: int = MAX_FRAME_PAYLOAD,
    ) -> None:
        self._binding = _binding(transport_type)
        if not 0 < timeout <= 3600:
            raise MalformedSpdm("the socket timeout is between 0 and 3600 seconds")
        self._sock = sock
        self._sock.settimeout(timeout)
        self._max = max_payload
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        transport_type: SocketTransportType,
        *,
        timeout: float = 30.0,
        wait: float = 0.0,
    ) -> SpdmEmuClient:
        """Connect to ``host:port``; retry for up to ``wait`` seconds while it refuses."""
        deadline = time.monotonic() + wait
        while True:
            try:
                sock = socket.create_connection((host, port), timeout=timeout)
            except OSError as exc:
                if time.monotonic() < deadline and isinstance(
                    exc, (ConnectionRefusedError, ConnectionResetError)
                ):
                    time.sleep(0.05)
                    continue
                raise SpdmTransportError(
                    f"cannot reach the SPDM peer at {host}:{port}: {exc.strerror or exc}"
                ) from exc
            return cls(sock, transport_type, timeout=timeout)

    @property
    def transport_type(self) -> SocketTransportType:
        return self._binding

    @property
    def alignment(self) -> int:
        return self._binding.alignment

    def exchange(self, command: SocketCommand, payload: bytes = b"") -> bytes:
        """Send one frame, read the answer (same command and transport), return its payload."""
        frame = SocketFrame(command, self._binding, payload)
        with self._lock:
            _send_all(self._sock, frame.encode())
            answer = _read_frame(self._sock, self._max)
        if answer.transport_type != self._binding:
            raise MalformedSpdm(
                f"the peer answered in transport {answer.transport_type}, not {self._binding.name}"
            )
        if answer.command != command:
            raise MalformedSpdm(
                f"the peer answered command {command:#06x} with {answer.command:#06x}"
            )
        return answer.payload

    def __call__(self, message: bytes) -> bytes:
        payload = self.exchange(
            SocketCommand.NORMAL, encode_transport_message(self._binding, message)
        )
        return decode_transport_message(self._binding, payload)

    def hello(self) -> bytes:
        """The TEST exchange the emulators open with; the peer's greeting."""
        return self.exchange(SocketCommand.TEST, CLIENT_HELLO)

    def discover(self) -> list[tuple[int, int]]:
        """PCI DOE Discovery: the (VendorID, DataObjectType) protocols the peer supports."""
        if self._binding is not SocketTransportType.PCI_DOE:
            raise MalformedSpdm("DOE Discovery exists only over PCI DOE")
        protocols: list[tuple[int, int]] = []
        index = 0
        while True:
            answer = DoeObject.decode(
                self.exchange(SocketCommand.NORMAL, doe_discovery_request(index))
            )
            if answer.data_object_type != DOE_DATA_OBJECT_DISCOVERY or len(answer.payload) != 4:
                raise MalformedSpdm("the answer to DOE Discovery is not a Discovery object")
            protocols.append((int.from_bytes(answer.payload[0:2], "little"), answer.payload[2]))
            following = answer.payload[3]
            if following == 0:
                return protocols
            if following != index + 1 or len(protocols) >= 0xFF:
                raise MalformedSpdm("DOE Discovery NextIndex is out of order")
            index = following

    def shutdown(self) -> None:
        """Ask the peer to stop (SHUTDOWN), then close."""
        try:
            self.exchange(SocketCommand.SHUTDOWN)
        finally:
            self.close()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> SpdmEmuClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- sockets: responder side ----------------------------------------------------------------


class _EndConnection(Exception):  # internal control flow of the server loop
    def __init__(self, stop: bool) -> None:
        super().__init__("end of connection")
        self.stop = stop


def _answer(
    frame: SocketFrame, binding: SocketTransportType, handle: Callable[[bytes], bytes]
) -> SocketFrame:
    """The frame that answers ``frame``; :class:`_EndConnection` when the connection ends."""
    if frame.transport_type != binding:
        _log.warning("spdm-emu frame in transport %s, not %s", frame.transport_type, binding.name)
        raise _EndConnection(stop=False)
    if frame.command == SocketCommand.TEST:
        return SocketFrame(SocketCommand.TEST, binding, SERVER_HELLO)
    if frame.command in (SocketCommand.SHUTDOWN, SocketCommand.CONTINUE):
        return SocketFrame(frame.command, binding)
    if frame.command != SocketCommand.NORMAL:
        return SocketFrame(SocketCommand.UNKNOWN, binding)
    if binding is SocketTransportType.PCI_DOE:
        obj = DoeObject.decode(frame.payload)
        if obj.data_object_type == DOE_DATA_OBJECT_DISCOVERY:
            return SocketFrame(SocketCommand.NORMAL, binding, _discovery_answer(obj))
    message = decode_transport_message(binding, frame.payload)
    response = handle(message)
    return SocketFrame(SocketCommand.NORMAL, binding, encode_transport_message(binding, response))


def _serve_connection(
    conn: socket.socket,
    binding: SocketTransportType,
    handle: Callable[[bytes], bytes],
    idle_timeout: float,
) -> bool:
    """Answer frames on ``conn`` until it ends; ``True`` when the peer asked to stop."""
    conn.settimeout(idle_timeout)
    while True:
        try:
            frame = _read_frame(conn, MAX_FRAME_PAYLOAD)
            answer = _answer(frame, binding, handle)
        except _EndConnection as end:
            return end.stop
        except (SpdmTransportError, MalformedSpdm) as exc:
            _log.info("spdm-emu connection ended: %s", exc)
            return False
        try:
            _send_all(conn, answer.encode())
        except SpdmTransportError as exc:
            _log.info("spdm-emu connection ended: %s", exc)
            return False
        if answer.command == SocketCommand.SHUTDOWN:
            return True
        if answer.command == SocketCommand.CONTINUE:
            return False


def serve_spdm_emu(
    listener: socket.socket,
    handle: Callable[[bytes], bytes],
    transport_type: SocketTransportType,
    *,
    stop: threading.Event | None = None,
    idle_timeout: float = 60.0,
) -> None:
    """Serve SPDM on ``listener`` (a bound, listening TCP socket) as ``spdm_responder_emu``
    does: one connection at a time, ``handle`` (a :class:`~ironroot.spdm.Responder`, whose
    state lasts across connections) answering each SPDM message.

    Returns after a SHUTDOWN frame, or once ``stop`` is set. A connection ends on CONTINUE,
    when the peer closes it, sends a frame that does not parse or of another transport, or
    does not send a whole frame within ``idle_timeout`` seconds (silent, or trickling it a
    byte at a time); the next one is then accepted. Over PCI DOE,
    DOE Discovery is answered (Discovery, then SPDM).
    """
    binding = _binding(transport_type)
    listener.settimeout(0.2)
    while stop is None or not stop.is_set():
        try:
            conn, peer = listener.accept()
        except TimeoutError:
            continue
        except ConnectionError as exc:
            # Linux hands a connection's pending network error (a peer that reset or
            # aborted it while queued) to accept(): that connection is gone, the listener
            # is not, so take the next one (accept(2), "Error handling").
            _log.info("spdm-emu connection lost before it was accepted: %s", exc)
            continue
        except OSError as exc:
            if stop is not None and stop.is_set():
                return  # the listener was closed to stop the server
            raise SpdmTransportError(f"the SPDM listener failed: {exc.strerror or exc}") from exc
        with conn:
            _log.info("spdm-emu connection from %s", peer)
            if _serve_connection(conn, binding, handle, idle_timeout):
                return
