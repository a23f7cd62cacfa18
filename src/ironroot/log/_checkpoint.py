"""C2SP tlog-checkpoint note bodies: origin, tree size, root hash, optional extension lines.

The body (c2sp.org/tlog-checkpoint) is at least three non-empty newline-terminated lines::

    <origin>
    <tree size, ASCII decimal, no leading zeros>
    <base64 root hash>
    [<extension line>...]

Parsing is strict: canonical base64 (RFC 4648 §3.5, padded), a 32-byte SHA-256 root, no
leading zeros, no empty lines, no ASCII control characters (below U+0020). Every failure is
``MalformedInput``.
Hand-written because the format is three text lines; no library models it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from ironroot.errors import LimitExceeded, MalformedInput

__all__ = ["Checkpoint"]

_HASH_SIZE = 32
_MAX_BODY = 64 * 1024
_MAX_SIZE = (1 << 63) - 1


def b64decode_canonical(text: str, what: str) -> bytes:
    """Decode standard padded base64, rejecting any non-canonical encoding."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedInput(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedInput(f"{what} is not canonical base64")
    return raw


def parse_decimal(text: str, what: str, maximum: int = _MAX_SIZE) -> int:
    """An ASCII decimal with no leading zeros (``0`` itself allowed), at most ``maximum``."""
    if not text or not text.isascii() or not text.isdigit():
        raise MalformedInput(f"{what} is not an ASCII decimal")
    if len(text) > 1 and text[0] == "0":
        raise MalformedInput(f"{what} has leading zeros")
    if len(text) > len(str(maximum)):
        raise LimitExceeded(f"{what} is too large")
    value = int(text)
    if value > maximum:
        raise LimitExceeded(f"{what} is too large")
    return value


# An ASCII control character (below U+0020, as c2sp.org/signed-note says): never in a
# checkpoint line. DEL (U+007F) is not one.
_CONTROL = re.compile(r"[\x00-\x1f]")


def _check_line(line: str, what: str) -> None:
    if not line:
        raise MalformedInput(f"{what} is empty")
    if _CONTROL.search(line):
        raise MalformedInput(f"{what} contains a control character")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedInput(f"{what} is not valid Unicode text") from exc


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's signed tree head body: ``origin``, tree ``size``, ``root`` and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str):
            raise MalformedInput("the checkpoint origin must be a string")
        _check_line(self.origin, "the checkpoint origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise MalformedInput("the checkpoint size must be an integer")
        if not 0 <= self.size <= _MAX_SIZE:
            raise MalformedInput("the checkpoint size is out of range")
        if not isinstance(self.root, bytes) or len(self.root) != _HASH_SIZE:
            raise MalformedInput(f"the checkpoint root must be {_HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise MalformedInput("checkpoint extensions must be a tuple of lines")
        for ext in self.extensions:
            if not isinstance(ext, str):
                raise MalformedInput("a checkpoint extension line must be a string")
            _check_line(ext, "a checkpoint extension line")

    def encode(self) -> bytes:
        """The note body: UTF-8 text ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        lines.extend(self.extensions)
        return ("\n".join(lines) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """Parse a checkpoint note body (the note text, without signatures)."""
        if not isinstance(body, bytes):
            raise MalformedInput("a checkpoint body must be bytes")
        if len(body) > _MAX_BODY:
            raise LimitExceeded("the checkpoint body is too large")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedInput("the checkpoint body is not UTF-8") from exc
        if not text.endswith("\n"):
            raise MalformedInput("the checkpoint body does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedInput("a checkpoint has at least three lines")
        for i, line in enumerate(lines):
            _check_line(line, f"checkpoint line {i + 1}")
        size = parse_decimal(lines[1], "the checkpoint size")
        root = b64decode_canonical(lines[2], "the checkpoint root")
        if len(root) != _HASH_SIZE:
            raise MalformedInput(f"the checkpoint root must be {_HASH_SIZE} bytes")
        return cls(origin=lines[0], size=size, root=root, extensions=tuple(lines[3:]))
