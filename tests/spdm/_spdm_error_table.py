"""Hostile request sequences and what a responder answers to the last request of each.

Each row is one sequence of SPDM request messages sent to a fresh responder, with the answer
to its last request from Ironroot's :class:`~ironroot.spdm.Responder` (``ours``) and from
libspdm's ``spdm_responder_emu`` (``libspdm``), the latter as run by the interop test:
``--trans MCTP --ver 1.2 --asym ECDSA_P384 --hash SHA_384 --cap CERT,CHAL,MEAS_SIG
--slot_count 1`` (``--ver 1.3`` for rows with ``emu_version="1.3"``), the capabilities that
match Ironroot's responder. ``libspdm`` is ``None`` where the two devices are not comparable
(the emulator provisions slot 1 whatever ``--slot_count`` says) and :data:`CLOSED` where
the emulator answers nothing and drops the connection.

Both columns are checked over MCTP, PCI DOE and TCP (DSP0287). PCI DOE pads each message with
zero bytes to whole 4-byte words and says nothing of its length in bytes, so a request cut short
inside its last word can arrive as another, well-formed one: ``over_doe`` gives the two answers
where they are not the same over PCI DOE. Over TCP the emulator hands unknown request codes to an
application handler that answers nothing of its own (:data:`ZERO_BUFFER`): ``over_tcp``.

``rule`` says why the two agree or differ: ``spec`` (DSP0274 names the answer; both give
it, or Ironroot does and libspdm does not), ``same`` (DSP0274 leaves it open; the two agree)
or ``ours`` (DSP0274 leaves it open; Ironroot keeps its own answer: docs/spdm.md, "Hostile
request sequences", gives the reason for each). The table in docs/spdm.md is this one.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Final

from ironroot.errors import SpdmTransportError
from ironroot.spdm import (
    BaseAsymAlgo,
    BaseHashAlgo,
    GetCapabilities,
    NegotiateAlgorithms,
    SocketCommand,
    SocketFrame,
    SocketTransportType,
    decode_transport_message,
    encode_transport_message,
)
from ironroot.spdm import SpdmVersion as V
from ironroot.spdm._constants import ErrorCode as E
from ironroot.spdm._transport import CLIENT_HELLO, MAX_FRAME_PAYLOAD, _read_frame

NONCE: Final = bytes(range(32))


@dataclass(frozen=True)
class Answer:
    """A response's SPDMVersion and code; for ERROR, also ErrorCode, ErrorData and
    ExtendedErrorData (compared in full); for any other response, the code only."""

    version: int
    code: int
    error: int = 0
    data: int = 0
    extended: bytes = b""

    @classmethod
    def of(cls, message: bytes) -> Answer:
        if len(message) >= 4 and message[1] == 0x7F:
            return cls(message[0], 0x7F, message[2], message[3], message[4:])
        return cls(message[0], message[1])

    def __str__(self) -> str:
        if self.code != 0x7F:
            return f"{self.version >> 4}.{self.version & 0xF} response {self.code:#04x}"
        extended = f" +{self.extended.hex()}" if self.extended else ""
        error = f"{E(self.error).name}({self.data:#04x}){extended}"
        return f"{self.version >> 4}.{self.version & 0xF} {error}"


def err(version: int, code: E, data: int = 0, extended: bytes = b"") -> Answer:
    return Answer(version, 0x7F, code, data, extended)


def ok(version: int, code: int) -> Answer:
    return Answer(version, code)


CLOSED: Final = "no answer: the connection is dropped"
# What spdm_responder_emu sends over TCP to a request code it hands its application (unknown
# codes, VENDOR_DEFINED_REQUEST) before the VCA: its whole response buffer, 4608 zero bytes.
ZERO_BUFFER: Final = "4608 zero bytes, not an SPDM message"


@dataclass(frozen=True)
class Row:
    name: str
    requests: tuple[bytes, ...]
    ours: Answer
    libspdm: Answer | str | None
    rule: str
    emu_version: str = "1.2"
    # The answers over PCI DOE and over TCP, where they are not the ones above: (Ironroot's,
    # the emulator's).
    over_doe: tuple[Answer, Answer | str | None] | None = None
    over_tcp: tuple[Answer, Answer | str | None] | None = None

    def answers(self, transport: str) -> tuple[Answer, Answer | str | None]:
        """Ironroot's and libspdm's answers over ``transport`` (``MCTP``, ``PCI_DOE``, ``TCP``)."""
        other = {"PCI_DOE": self.over_doe, "TCP": self.over_tcp}.get(transport)
        return other or (self.ours, self.libspdm)


# --- requests ---------------------------------------------------------------------------------

_VERSIONS = {0x12: V.V1_2, 0x13: V.V1_3}


def get_version(version: int = 0x10, param1: int = 0, param2: int = 0) -> bytes:
    return bytes([version, 0x84, param1, param2])


def capabilities(version: int = 0x12, size: int = 4096) -> bytes:
    return GetCapabilities(_VERSIONS[version], 0, 0, size, size).encode()


def algorithms(version: int = 0x12) -> bytes:
    offer = NegotiateAlgorithms(
        _VERSIONS[version], 1, 0, BaseAsymAlgo.ECDSA_P384, BaseHashAlgo.SHA_384
    )
    return offer.encode()


def vca(version: int = 0x12, size: int = 4096) -> tuple[bytes, ...]:
    return (get_version(), capabilities(version, size), algorithms(version))


def digests(version: int = 0x12, param1: int = 0, param2: int = 0) -> bytes:
    return bytes([version, 0x81, param1, param2])


def certificate(
    version: int = 0x12, param1: int = 0, param2: int = 0, offset: int = 0, length: int = 0x400
) -> bytes:
    return (
        bytes([version, 0x82, param1, param2])
        + offset.to_bytes(2, "little")
        + (length.to_bytes(2, "little"))
    )


def challenge(version: int = 0x12, slot: int = 0, summary: int = 0) -> bytes:
    context = bytes(8) if version >= 0x13 else b""
    return bytes([version, 0x83, slot, summary]) + NONCE + context


def measurements(
    version: int = 0x12, operation: int = 1, attributes: int = 0, slot: int | None = None
) -> bytes:
    """GET_MEASUREMENTS; signed (with a nonce and SlotIDParam) when ``slot`` is given."""
    signed = slot is not None
    request = bytes([version, 0xE0, attributes | int(signed), operation])
    if slot is not None:
        request += NONCE + bytes([slot])
    return request + (bytes(8) if version >= 0x13 else b"")


def code(value: int, body: bytes = b"", version: int = 0x12, param1: int = 0) -> bytes:
    return bytes([version, value, param1, 0]) + body


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


# --- the table --------------------------------------------------------------------------------

INVALID, UNEXPECTED, UNSUPPORTED = E.INVALID_REQUEST, E.UNEXPECTED_REQUEST, E.UNSUPPORTED_REQUEST
MISMATCH, TOO_LARGE = E.VERSION_MISMATCH, E.RESPONSE_TOO_LARGE
REQUEST_TOO_LARGE = E.REQUEST_TOO_LARGE
# The responders' DataTransferSize (= MaxSPDMmsgSize: neither chunks): Ironroot's default, and
# what spdm_responder_emu's CAPABILITIES says. The emulator's socket layer takes a transport
# message (the SPDM message and its binding's header) of at most 0x1280 bytes.
OURS_DTS, LIBSPDM_DTS, LIBSPDM_TRANSPORT_BUFFER = 4096, 4608, 0x1280


def padded(request: bytes, size: int) -> bytes:
    """``request`` followed by zero bytes up to ``size`` bytes."""
    return request + bytes(size - len(request))


VCA: Final = vca()
# Over TCP the emulator's application handler leaves its whole response buffer as the answer;
# after the VCA, libspdm finds that 4608-byte response over the requester's 4096-byte buffer.
_TCP_APPLICATION: Final = err(0x12, TOO_LARGE, 0, _u32(LIBSPDM_DTS))

ROWS: Final[tuple[Row, ...]] = (
    # out of order
    Row(
        "digests before GET_VERSION",
        (digests(),),
        err(0x10, UNEXPECTED),
        err(0x10, MISMATCH),
        "ours",
    ),
    Row(
        "digests before GET_CAPABILITIES",
        (get_version(), digests()),
        err(0x10, UNEXPECTED),
        err(0x10, MISMATCH),
        "ours",
    ),
    Row(
        "GET_CAPABILITIES before GET_VERSION",
        (capabilities(),),
        err(0x10, UNEXPECTED),
        err(0x10, UNEXPECTED),
        "spec",
    ),
    Row(
        "NEGOTIATE_ALGORITHMS before GET_CAPABILITIES",
        (get_version(), algorithms()),
        err(0x10, UNEXPECTED),
        err(0x10, UNEXPECTED),
        "spec",
    ),
    Row(
        "GET_DIGESTS before NEGOTIATE_ALGORITHMS",
        (*VCA[:2], digests()),
        err(0x12, UNEXPECTED),
        err(0x12, UNEXPECTED),
        "spec",
    ),
    Row(
        "GET_CERTIFICATE before NEGOTIATE_ALGORITHMS",
        (*VCA[:2], certificate()),
        err(0x12, UNEXPECTED),
        err(0x12, UNEXPECTED),
        "spec",
    ),
    Row(
        "CHALLENGE before NEGOTIATE_ALGORITHMS",
        (*VCA[:2], challenge()),
        err(0x12, UNEXPECTED),
        err(0x12, UNEXPECTED),
        "spec",
    ),
    Row(
        "GET_MEASUREMENTS before NEGOTIATE_ALGORITHMS",
        (*VCA[:2], measurements()),
        err(0x12, UNEXPECTED),
        err(0x12, UNEXPECTED),
        "spec",
    ),
    Row(
        "GET_CAPABILITIES repeated",
        (*VCA[:2], capabilities()),
        err(0x12, UNEXPECTED),
        err(0x12, UNEXPECTED),
        "spec",
    ),
    Row(
        "NEGOTIATE_ALGORITHMS repeated",
        (*VCA, algorithms()),
        err(0x12, UNEXPECTED),
        err(0x12, UNEXPECTED),
        "spec",
    ),
    Row(
        "CHALLENGE before GET_DIGESTS/GET_CERTIFICATE",
        (*VCA, challenge()),
        ok(0x12, 0x03),
        ok(0x12, 0x03),
        "spec",
    ),
    # capabilities not offered, sessions never established
    Row(
        "KEY_EXCHANGE before GET_VERSION",
        (code(0xE4, bytes(100)),),
        err(0x10, UNSUPPORTED, 0xE4),
        err(0x10, UNSUPPORTED, 0xE4),
        "spec",
    ),
    Row(
        "KEY_EXCHANGE without KEY_EX_CAP",
        (*VCA, code(0xE4, bytes(100))),
        err(0x12, UNSUPPORTED, 0xE4),
        err(0x12, UNSUPPORTED, 0xE4),
        "spec",
    ),
    Row(
        "FINISH outside a session",
        (*VCA, code(0xE5, bytes(48))),
        err(0x12, UNSUPPORTED, 0xE5),
        err(0x12, UNSUPPORTED, 0xE5),
        "spec",
    ),
    Row(
        "HEARTBEAT outside a session",
        (*VCA, code(0xE8)),
        err(0x12, UNSUPPORTED, 0xE8),
        err(0x12, UNSUPPORTED, 0xE8),
        "spec",
    ),
    Row(
        "KEY_UPDATE outside a session",
        (*VCA, code(0xE9, param1=1)),
        err(0x12, UNSUPPORTED, 0xE9),
        err(0x12, UNSUPPORTED, 0xE9),
        "spec",
    ),
    Row(
        "END_SESSION outside a session",
        (*VCA, code(0xEC)),
        err(0x12, UNSUPPORTED, 0xEC),
        err(0x12, E.SESSION_REQUIRED),
        "spec",
    ),
    # SPDMVersion
    Row(
        "GET_DIGESTS 1.3 after 1.2 was negotiated",
        (*VCA, digests(0x13)),
        err(0x12, MISMATCH),
        err(0x12, MISMATCH),
        "spec",
    ),
    Row(
        "GET_DIGESTS 1.1 after 1.2 was negotiated",
        (*VCA, digests(0x11)),
        err(0x12, MISMATCH),
        err(0x12, MISMATCH),
        "spec",
    ),
    Row(
        "GET_DIGESTS 1.0 after 1.2 was negotiated",
        (*VCA, digests(0x10)),
        err(0x12, MISMATCH),
        err(0x12, MISMATCH),
        "spec",
    ),
    Row(
        "GET_CERTIFICATE 1.3 after 1.2 was negotiated",
        (*VCA, certificate(0x13)),
        err(0x12, MISMATCH),
        err(0x12, MISMATCH),
        "spec",
    ),
    Row(
        "GET_DIGESTS 1.2 after 1.3 was negotiated",
        (*vca(0x13), digests(0x12)),
        err(0x13, MISMATCH),
        err(0x13, MISMATCH),
        "spec",
        "1.3",
    ),
    Row(
        "NEGOTIATE_ALGORITHMS 1.3 after GET_CAPABILITIES 1.2",
        (*VCA[:2], algorithms(0x13)),
        err(0x12, MISMATCH),
        err(0x12, MISMATCH),
        "spec",
    ),
    Row(
        "GET_VERSION 1.2 after the VCA",
        (*VCA, get_version(0x12)),
        err(0x10, MISMATCH),
        err(0x10, MISMATCH),
        "spec",
    ),
    Row(
        "GET_VERSION 1.1 first",
        (get_version(0x11),),
        err(0x10, MISMATCH),
        err(0x10, MISMATCH),
        "spec",
    ),
    Row(
        "GET_CAPABILITIES 1.1 (not offered)",
        (get_version(), b"\x11" + capabilities()[1:]),
        err(0x10, MISMATCH),
        err(0x10, MISMATCH),
        "spec",
    ),
    Row(
        "GET_CAPABILITIES 1.4 (not offered)",
        (get_version(), b"\x14" + capabilities()[1:]),
        err(0x10, MISMATCH),
        err(0x10, MISMATCH),
        "spec",
    ),
    # truncated
    Row(
        "3-byte message before GET_VERSION",
        (get_version()[:3],),
        err(0x10, INVALID),
        CLOSED,
        "ours",
        over_doe=(ok(0x10, 0x04), ok(0x10, 0x04)),  # padded, it is GET_VERSION
    ),
    Row(
        "2-byte message after the VCA",
        (*VCA, b"\x12\x81"),
        err(0x12, INVALID),
        CLOSED,
        "ours",
        over_doe=(ok(0x12, 0x01), ok(0x12, 0x01)),  # padded, it is GET_DIGESTS
    ),
    Row(
        "GET_CAPABILITIES 1.2 one byte short",
        (get_version(), capabilities()[:-1]),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
        over_doe=(ok(0x12, 0x61), ok(0x12, 0x61)),  # the byte cut was zero: padding restores it
    ),
    Row(
        "GET_CAPABILITIES 1.2 header only",
        (get_version(), capabilities()[:4]),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    Row(
        "NEGOTIATE_ALGORITHMS one byte short",
        (*VCA[:2], algorithms()[:-1]),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
        over_doe=(ok(0x12, 0x63), ok(0x12, 0x63)),  # likewise
    ),
    Row(
        "GET_CERTIFICATE one byte short",
        (*VCA, certificate()[:-1]),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
        over_doe=(err(0x12, INVALID), ok(0x12, 0x02)),  # padded, Length 0: see that row
    ),
    Row(
        "GET_CERTIFICATE header only",
        (*VCA, certificate()[:4]),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    Row(
        "CHALLENGE one byte short",
        (*VCA, challenge()[:-1]),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
        over_doe=(ok(0x12, 0x03), ok(0x12, 0x03)),  # padded, a CHALLENGE with another nonce
    ),
    Row(
        "signed GET_MEASUREMENTS one byte short",
        (*VCA, measurements(slot=0)[:-1]),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    # reserved fields set
    Row(
        "GET_VERSION Param1 set",
        (get_version(param1=1),),
        err(0x10, INVALID),
        ok(0x10, 0x04),
        "ours",
    ),
    Row(
        "GET_VERSION Param2 set",
        (get_version(param2=1),),
        err(0x10, INVALID),
        ok(0x10, 0x04),
        "ours",
    ),
    Row(
        "GET_DIGESTS Param1 set (1.2)",
        (*VCA, digests(param1=1)),
        err(0x12, INVALID),
        ok(0x12, 0x01),
        "ours",
    ),
    Row(
        "GET_DIGESTS Param2 set",
        (*VCA, digests(param2=0xFF)),
        err(0x12, INVALID),
        ok(0x12, 0x01),
        "ours",
    ),
    Row(
        "GET_CERTIFICATE Param1 bits 7..4 set",
        (*VCA, certificate(param1=0x10)),
        err(0x12, INVALID),
        ok(0x12, 0x02),
        "ours",
    ),
    Row(
        "GET_CERTIFICATE Param2 set (1.2)",
        (*VCA, certificate(param2=0x80)),
        err(0x12, INVALID),
        ok(0x12, 0x02),
        "ours",
    ),
    Row(
        "GET_MEASUREMENTS attribute bit 7 set",
        (*VCA, measurements(attributes=0x80)),
        err(0x12, INVALID),
        ok(0x12, 0x60),
        "ours",
    ),
    Row(
        "CHALLENGE MeasurementSummaryHashType 2",
        (*VCA, challenge(summary=2)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    # request codes nobody answers
    Row(
        "unknown code 0x90 before GET_VERSION",
        (code(0x90),),
        err(0x10, UNSUPPORTED, 0x90),
        err(0x10, INVALID),
        "spec",
        over_tcp=(err(0x10, UNSUPPORTED, 0x90), ZERO_BUFFER),
    ),
    Row(
        "unknown code 0x90 after the VCA",
        (*VCA, code(0x90)),
        err(0x12, UNSUPPORTED, 0x90),
        err(0x12, INVALID),
        "spec",
        over_tcp=(err(0x12, UNSUPPORTED, 0x90), _TCP_APPLICATION),
    ),
    Row(
        "a response code (DIGESTS) as a request",
        (*VCA, code(0x01)),
        err(0x12, UNSUPPORTED, 0x01),
        err(0x12, INVALID),
        "spec",
        over_tcp=(err(0x12, UNSUPPORTED, 0x01), _TCP_APPLICATION),
    ),
    Row(
        "VENDOR_DEFINED_REQUEST",
        (*VCA, code(0xFE, bytes(6))),
        err(0x12, UNSUPPORTED, 0xFE),
        err(0x12, INVALID),
        "spec",
        over_tcp=(err(0x12, UNSUPPORTED, 0xFE), _TCP_APPLICATION),
    ),
    Row(
        "RESPOND_IF_READY with nothing pending",
        (*VCA, code(0xFF, param1=0x81)),
        err(0x12, UNSUPPORTED, 0xFF),
        err(0x12, INVALID),
        "ours",
    ),
    # slots
    Row(
        "GET_CERTIFICATE slot 1 (not provisioned here)",
        (*VCA, certificate(param1=1)),
        err(0x12, INVALID),
        None,
        "spec",
    ),
    Row(
        "GET_CERTIFICATE slot 7 (not provisioned)",
        (*VCA, certificate(param1=7)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    Row(
        "GET_CERTIFICATE slot 8 (out of range)",
        (*VCA, certificate(param1=8)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    Row(
        "CHALLENGE slot 8 (out of range)",
        (*VCA, challenge(slot=8)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    Row(
        "CHALLENGE slot 0xFF (no provisioned key)",
        (*VCA, challenge(slot=0xFF)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    Row(
        "signed GET_MEASUREMENTS slot 8",
        (*VCA, measurements(slot=8)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    # certificate portions, measurement indices
    Row(
        "GET_CERTIFICATE Offset 0x7000 (beyond the chain)",
        (*VCA, certificate(offset=0x7000)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    Row(
        "GET_CERTIFICATE Offset 0xFFFF",
        (*VCA, certificate(offset=0xFFFF)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "spec",
    ),
    Row(
        "GET_CERTIFICATE Length 0",
        (*VCA, certificate(length=0)),
        err(0x12, INVALID),
        ok(0x12, 0x02),
        "ours",
    ),
    Row(
        "GET_MEASUREMENTS index 0x50 (absent)",
        (*VCA, measurements(0x12, 0x50)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "same",
    ),
    Row(
        "signed GET_MEASUREMENTS index 0x50 (absent)",
        (*VCA, measurements(0x12, 0x50, slot=0)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "same",
    ),
    Row(
        "GET_MEASUREMENTS index 0xEF (absent)",
        (*VCA, measurements(0x12, 0xEF)),
        err(0x12, INVALID),
        err(0x12, INVALID),
        "same",
    ),
    # GET_VERSION resets
    Row(
        "GET_VERSION twice, then GET_CAPABILITIES",
        (get_version(), get_version(), capabilities()),
        ok(0x12, 0x61),
        ok(0x12, 0x61),
        "spec",
    ),
    Row(
        "GET_VERSION after the VCA, then GET_DIGESTS",
        (*VCA, get_version(), digests()),
        err(0x10, UNEXPECTED),
        err(0x10, MISMATCH),
        "ours",
    ),
    Row(
        "GET_VERSION after the VCA, then NEGOTIATE_ALGORITHMS",
        (*VCA, get_version(), algorithms()),
        err(0x10, UNEXPECTED),
        err(0x10, UNEXPECTED),
        "spec",
    ),
    # responses larger than the requester's 42-byte DataTransferSize (ExtendedErrorData: their
    # size). DIGESTS: libspdm's emulator reports two digests, Ironroot's device one (4 + 48);
    # CHALLENGE_AUTH: 4 + 48 + 32 + 2 + 96 both; MEASUREMENTS of index 1: the emulator's block
    # is a SHA-512 digest (209), Ironroot's a SHA-384 one (4 + 1 + 3 + 55 + 32 + 2 + 96 = 193).
    Row(
        "DIGESTS for a 42-byte buffer",
        (*vca(size=42), digests()),
        err(0x12, TOO_LARGE, 0, _u32(52)),
        err(0x12, TOO_LARGE, 0, _u32(100)),
        "spec",
    ),
    Row(
        "CHALLENGE_AUTH for a 42-byte buffer",
        (*vca(size=42), challenge()),
        err(0x12, TOO_LARGE, 0, _u32(182)),
        err(0x12, TOO_LARGE, 0, _u32(182)),
        "spec",
    ),
    Row(
        "signed MEASUREMENTS for a 42-byte buffer",
        (*vca(size=42), measurements(slot=0)),
        err(0x12, TOO_LARGE, 0, _u32(0xC1)),
        err(0x12, TOO_LARGE, 0, _u32(0xD1)),
        "spec",
    ),
    Row(
        "GET_CERTIFICATE 0x400 bytes for a 42-byte buffer",
        (*vca(size=42), certificate()),
        ok(0x12, 0x02),
        err(0x12, TOO_LARGE, 0, _u32(0x408)),
        "ours",
    ),
    # requests larger than the responder's DataTransferSize / MaxSPDMmsgSize (equal here:
    # neither responder chunks). Ironroot's is 4096, libspdm's 4608 (0x1200).
    Row(
        "VENDOR_DEFINED_REQUEST of 4096 bytes (Ironroot's DataTransferSize)",
        (*VCA, padded(code(0xFE, bytes(6)), OURS_DTS)),
        err(0x12, UNSUPPORTED, 0xFE),
        err(0x12, INVALID),
        "spec",
        over_tcp=(err(0x12, UNSUPPORTED, 0xFE), _TCP_APPLICATION),
    ),
    Row(
        "VENDOR_DEFINED_REQUEST of 4097 bytes",
        (*VCA, padded(code(0xFE, bytes(6)), OURS_DTS + 1)),
        err(0x12, REQUEST_TOO_LARGE),
        err(0x12, INVALID),
        "spec",
        over_tcp=(err(0x12, REQUEST_TOO_LARGE), _TCP_APPLICATION),
    ),
    Row(
        "GET_VERSION of 4097 bytes",
        (padded(get_version(), OURS_DTS + 1),),
        err(0x10, REQUEST_TOO_LARGE),
        ok(0x10, 0x04),
        "spec",
    ),
    Row(
        "GET_CAPABILITIES 1.2 of 4609 bytes (past both DataTransferSizes)",
        (get_version(), padded(capabilities(), LIBSPDM_DTS + 1)),
        err(0x10, REQUEST_TOO_LARGE),
        ok(0x12, 0x61),
        "spec",
    ),
    Row(
        "GET_DIGESTS of 4609 bytes (past both DataTransferSizes)",
        (*VCA, padded(digests(), LIBSPDM_DTS + 1)),
        err(0x12, REQUEST_TOO_LARGE),
        ok(0x12, 0x01),
        "spec",
    ),
    Row(
        "signed GET_MEASUREMENTS of 4609 bytes",
        (*VCA, padded(measurements(slot=0), LIBSPDM_DTS + 1)),
        err(0x12, REQUEST_TOO_LARGE),
        ok(0x12, 0x60),
        "spec",
    ),
    Row(
        "GET_DIGESTS of 0x2000 bytes (past the emulator's transport buffer)",
        (*VCA, padded(digests(), 0x2000)),
        err(0x12, REQUEST_TOO_LARGE),
        CLOSED,
        "spec",
    ),
)


# --- transport messages that are not well-formed ----------------------------------------------

SILENT: Final = "no answer: the message is ignored, the connection kept"


@dataclass(frozen=True)
class TransportRow:
    """A NORMAL frame whose payload is a malformed transport message (PCI DOE or TCP), sent
    right after the hello, and what each responder does with it."""

    name: str
    transport: str
    payload: bytes
    ours: Answer | str
    libspdm: Answer | str


def _h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


TRANSPORT_ROWS: Final[tuple[TransportRow, ...]] = (
    # PCI DOE: VendorID(2) DataObjectType(1) Reserved(1) Length(4, in words) GET_VERSION
    TransportRow("DOE VendorID 2", "PCI_DOE", _h("0200 01 00 03000000 10840000"), CLOSED, SILENT),
    TransportRow(
        "DOE type 2 (secured SPDM)", "PCI_DOE", _h("0100 02 00 03000000 10840000"), CLOSED, SILENT
    ),
    TransportRow(
        "DOE Length too long", "PCI_DOE", _h("0100 01 00 04000000 10840000"), CLOSED, SILENT
    ),
    TransportRow(
        "DOE Length too short", "PCI_DOE", _h("0100 01 00 02000000 10840000"), CLOSED, SILENT
    ),
    TransportRow(
        "DOE object unaligned", "PCI_DOE", _h("0100 01 00 03000000 108400"), CLOSED, SILENT
    ),
    TransportRow(
        "DOE reserved byte set", "PCI_DOE", _h("0100 01 01 03000000 10840000"), CLOSED, SILENT
    ),
    TransportRow(
        "DOE reserved Length bits set",
        "PCI_DOE",
        _h("0100 01 00 03000400 10840000"),
        CLOSED,
        SILENT,
    ),
    TransportRow(
        "DOE GET_VERSION and two more zero words",
        "PCI_DOE",
        _h("0100 01 00 05000000 10840000 00000000 00000000"),
        err(0x10, INVALID),
        ok(0x10, 0x04),
    ),
    # TCP: PayloadLength(2) BindingVersion(1) MessageType(1) GET_VERSION
    TransportRow("TCP PayloadLength 99", "TCP", _h("6300 01 05 10840000"), CLOSED, ok(0x10, 0x04)),
    TransportRow(
        "TCP PayloadLength one byte short",
        "TCP",
        _h("0600 01 05 1084000000"),
        CLOSED,
        ok(0x10, 0x04),
    ),
    TransportRow("TCP BindingVersion 2", "TCP", _h("0600 02 05 10840000"), CLOSED, ok(0x10, 0x04)),
    TransportRow("TCP type 0x06 (secured SPDM)", "TCP", _h("0600 01 06 10840000"), CLOSED, SILENT),
    TransportRow("TCP RoleInquiry", "TCP", _h("0000 01 bf"), CLOSED, SILENT),
    TransportRow("TCP ErrorTooLarge", "TCP", _h("0000 01 c0"), CLOSED, SILENT),
    TransportRow("TCP type 0x01", "TCP", _h("0600 01 01 10840000"), CLOSED, CLOSED),
)


def transport_outcome(port: int, kind: SocketTransportType, payload: bytes) -> Answer | str:
    """What the spdm-emu-style responder on ``port`` does with a NORMAL frame carrying
    ``payload``: the frames hello, ``payload``, GET_VERSION and SHUTDOWN go out together and
    the answers are read up to SHUTDOWN's. Two SPDM answers: the first is ``payload``'s; one
    (GET_VERSION's): :data:`SILENT`; the connection ending first: :data:`CLOSED`. No timing
    decides it."""
    get_version = encode_transport_message(kind, bytes([0x10, 0x84, 0, 0]))
    frames = (
        SocketFrame(SocketCommand.TEST, kind, CLIENT_HELLO),
        SocketFrame(SocketCommand.NORMAL, kind, payload),
        SocketFrame(SocketCommand.NORMAL, kind, get_version),
        SocketFrame(SocketCommand.SHUTDOWN, kind),
    )
    answers: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(b"".join(frame.encode() for frame in frames))
            while (
                answer := _read_frame(sock, MAX_FRAME_PAYLOAD)
            ).command != SocketCommand.SHUTDOWN:
                if answer.command == SocketCommand.NORMAL:
                    answers.append(decode_transport_message(kind, answer.payload))
        except (SpdmTransportError, OSError):
            return CLOSED
    assert Answer.of(answers[-1]) == ok(0x10, 0x04), answers  # GET_VERSION was answered
    if len(answers) == 1:
        return SILENT
    assert len(answers) == 2, answers
    return Answer.of(answers[0])
