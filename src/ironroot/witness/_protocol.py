"""The c2sp.org/tlog-witness wire formats: add-checkpoint requests, answers and paths.

``POST <submission prefix>/add-checkpoint`` takes::

    old <size of the previous checkpoint, ASCII decimal, no leading zeros>
    <base64 consistency proof hash>        (0 to 63 lines)
                                           (an empty line)
    <the signed checkpoint note>

and answers ``200`` with one or more cosignature lines (``— <name> <base64>``), or ``409
Conflict`` with ``Content-Type: text/x.tlog.size`` and the witness's latest cosigned size in
decimal followed by a newline. ``GET <monitoring prefix>/<hex SHA-256 of the origin>/
checkpoint`` serves the latest cosigned checkpoint with the log's and the witness's
signatures.

Parsing is strict (one spelling per value) and every failure is :class:`MalformedInput`
(the witness's 400 Bad Request). Whether an ``old 0`` request may carry proof lines is the
witness's check, not the parser's: the spec answers it with 422.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ironroot.errors import LimitExceeded, MalformedInput
from ironroot.log import Note, NoteSignature

__all__ = [
    "ADD_CHECKPOINT_PATH",
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "TLOG_SIZE_MEDIA_TYPE",
    "AddCheckpoint",
    "encode_cosignatures",
    "encode_size",
    "monitoring_path",
    "parse_cosignatures",
    "parse_size",
]

ADD_CHECKPOINT_PATH: Final = "add-checkpoint"
TLOG_SIZE_MEDIA_TYPE: Final = "text/x.tlog.size"
MAX_PROOF_LINES: Final = 63
MAX_REQUEST_BYTES: Final = 256 * 1024
"""The largest add-checkpoint body accepted: 63 proof lines and a note with many
post-quantum signatures (each ML-DSA-44 line is about 3.3 KB)."""

_HASH_SIZE: Final = 32
_MAX_SIZE: Final = (1 << 63) - 1
_SIG_PREFIX: Final = "\u2014 "


def _decimal(text: str, what: str) -> int:
    if not text or not text.isascii() or not text.isdigit():
        raise MalformedInput(f"{what} is not an ASCII decimal")
    if len(text) > 1 and text[0] == "0":
        raise MalformedInput(f"{what} has leading zeros")
    if len(text) > 19 or int(text) > _MAX_SIZE:
        raise LimitExceeded(f"{what} is too large")
    return int(text)


def _hash_line(line: str, number: int) -> bytes:
    try:
        raw = base64.b64decode(line.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedInput(f"consistency proof line {number} is not base64") from exc
    if base64.b64encode(raw).decode("ascii") != line:
        raise MalformedInput(f"consistency proof line {number} is not canonical base64")
    if len(raw) != _HASH_SIZE:
        raise MalformedInput(f"consistency proof line {number} is not a {_HASH_SIZE}-byte hash")
    return raw


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """One add-checkpoint request: ``old_size``, the ``proof`` hashes and the signed note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes

    def __post_init__(self) -> None:
        if isinstance(self.old_size, bool) or not isinstance(self.old_size, int):
            raise MalformedInput("the old size must be an integer")
        if not 0 <= self.old_size <= _MAX_SIZE:
            raise MalformedInput("the old size is out of range")
        if not isinstance(self.proof, tuple) or not all(
            isinstance(h, bytes) and len(h) == _HASH_SIZE for h in self.proof
        ):
            raise MalformedInput(f"a consistency proof is a tuple of {_HASH_SIZE}-byte hashes")
        if len(self.proof) > MAX_PROOF_LINES:
            raise LimitExceeded(f"a consistency proof has at most {MAX_PROOF_LINES} hashes")
        if not isinstance(self.checkpoint, bytes):
            raise MalformedInput("the checkpoint must be bytes")

    def encode(self) -> bytes:
        lines = [f"old {self.old_size}"]
        lines += [base64.b64encode(h).decode("ascii") for h in self.proof]
        return ("\n".join(lines) + "\n\n").encode("ascii") + self.checkpoint

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpoint:
        """Parse a request body; the checkpoint note is split off, not yet parsed."""
        if not isinstance(body, bytes):
            raise MalformedInput("an add-checkpoint request must be bytes")
        if len(body) > MAX_REQUEST_BYTES:
            raise LimitExceeded("the add-checkpoint request is too large")
        head, sep, note = body.partition(b"\n\n")
        if not sep:
            raise MalformedInput("the request has no empty line before the checkpoint")
        try:
            text = head.decode("ascii")
        except UnicodeDecodeError as exc:
            raise MalformedInput("the request's size and proof lines are not ASCII") from exc
        lines = text.split("\n")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise LimitExceeded(f"a consistency proof has at most {MAX_PROOF_LINES} lines")
        first = lines[0]
        if not first.startswith("old "):
            raise MalformedInput("the request does not start with an 'old <size>' line")
        old = _decimal(first[4:], "the old size")
        proof = tuple(_hash_line(line, i) for i, line in enumerate(lines[1:], 1))
        if not note:
            raise MalformedInput("the request carries no checkpoint")
        return cls(old_size=old, proof=proof, checkpoint=note)


def encode_size(size: int) -> bytes:
    """The body of a 409 answer: the size in decimal and a newline."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= _MAX_SIZE:
        raise MalformedInput("a tree size is a non-negative integer")
    return b"%d\n" % size


def parse_size(body: bytes) -> int:
    """Parse a ``text/x.tlog.size`` body."""
    if not isinstance(body, bytes) or len(body) > 32 or not body.endswith(b"\n"):
        raise MalformedInput("a text/x.tlog.size body is a decimal and a newline")
    try:
        text = body[:-1].decode("ascii")
    except UnicodeDecodeError as exc:
        raise MalformedInput("a text/x.tlog.size body is ASCII") from exc
    return _decimal(text, "the witness's tree size")


def encode_cosignatures(lines: Sequence[NoteSignature]) -> bytes:
    """A 200 answer's body: the cosignature lines."""
    if not lines:
        raise MalformedInput("a witness answers at least one cosignature")
    return "".join(line.encode() for line in lines).encode("utf-8")


def parse_cosignatures(body: bytes) -> tuple[NoteSignature, ...]:
    """Parse a 200 answer: one or more note signature lines, each ending in a newline."""
    if not isinstance(body, bytes) or not body.endswith(b"\n"):
        raise MalformedInput("a witness's answer is signature lines ending in a newline")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput("a witness's answer is not UTF-8") from exc
    if not all(line.startswith(_SIG_PREFIX) for line in text[:-1].split("\n")):
        raise MalformedInput("every line of a witness's answer is a note signature line")
    # The lines parse as the signature block of a note with a one-line dummy text.
    return Note.parse(b"x\n\n" + body).signatures


def monitoring_path(origin: str) -> str:
    """``<hex SHA-256 of the origin>/checkpoint`` (relative to the monitoring prefix)."""
    if not isinstance(origin, str) or not origin:
        raise MalformedInput("an origin is a non-empty string")
    return hashlib.sha256(origin.encode("utf-8")).hexdigest() + "/checkpoint"
