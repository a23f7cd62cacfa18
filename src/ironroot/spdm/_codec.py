"""A strict little-endian byte reader for SPDM messages.

SPDM is a fixed binary layout (little-endian integers, one 24-bit field), so ``struct``-like
reads are all it takes; a small reader that raises :class:`MalformedSpdm` on every short read
and on trailing bytes keeps each decoder a straight transcription of its DSP0274 table.

Some transports (PCI DOE) carry lengths in 4-byte units and pad a message with up to three
zero bytes; :func:`decode_padded` finds the one length at which a strict decoder accepts the
message, so the exact bytes (what both ends put in their transcripts) are recovered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ironroot.errors import MalformedSpdm

__all__ = ["Reader", "decode_padded", "u16", "u24", "u32"]

T = TypeVar("T")
MAX_ALIGNMENT = 8


def decode_padded(data: bytes, alignment: int, decode: Callable[[bytes], T]) -> tuple[T, bytes]:
    """Decode ``data`` that a transport may have padded to a multiple of ``alignment`` with
    zero bytes: the decoded message and its exact bytes.

    With ``alignment`` 1 this is ``decode(data)``. Otherwise the unpadded length is the
    longest one (``data`` itself first, then one zero byte less, ...) that ``decode``
    accepts; only zero bytes, fewer than ``alignment`` of them, are ever dropped. Every
    SPDM message this package decodes fixes its own length, so at most one length fits.
    """
    if not 1 <= alignment <= MAX_ALIGNMENT:
        raise MalformedSpdm(f"transport alignment {alignment} outside 1..{MAX_ALIGNMENT}")
    if alignment == 1:
        return decode(data), data
    if len(data) % alignment:
        raise MalformedSpdm(f"a padded message is a multiple of {alignment} bytes")
    first: MalformedSpdm | None = None
    for pad in range(alignment):
        if pad and (pad > len(data) or data[len(data) - pad] != 0):
            break  # padding is zero bytes only
        exact = data[: len(data) - pad]
        try:
            return decode(exact), exact
        except MalformedSpdm as exc:
            first = first or exc
    assert first is not None
    raise first


def u16(value: int) -> bytes:
    return value.to_bytes(2, "little")


def u24(value: int) -> bytes:
    return value.to_bytes(3, "little")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


class Reader:
    """Reads fields in order from ``data``; every failure is a :class:`MalformedSpdm`."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str, start: int = 0) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise MalformedSpdm(f"{what}: expected bytes, got {type(data).__name__}")
        self._data = data if type(data) is bytes else bytes(data)
        self._pos = start
        self._what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def _short(self, n: int, field: str) -> MalformedSpdm:
        return MalformedSpdm(
            f"{self._what}: truncated at {field} (needs {n} bytes, {self.remaining} left)"
        )

    def take(self, n: int, field: str) -> bytes:
        pos = self._pos
        end = pos + n
        if n < 0 or end > len(self._data):
            raise self._short(n, field)
        self._pos = end
        return self._data[pos:end]

    def u8(self, field: str) -> int:
        pos = self._pos
        if pos >= len(self._data):
            raise self._short(1, field)
        self._pos = pos + 1
        return self._data[pos]

    def _int(self, n: int, field: str) -> int:
        pos = self._pos
        end = pos + n
        if end > len(self._data):
            raise self._short(n, field)
        self._pos = end
        return int.from_bytes(self._data[pos:end], "little")

    def u16(self, field: str) -> int:
        return self._int(2, field)

    def u24(self, field: str) -> int:
        return self._int(3, field)

    def u32(self, field: str) -> int:
        return self._int(4, field)

    def zeros(self, n: int, field: str) -> None:
        """Read ``n`` reserved bytes, which must be zero."""
        if any(self.take(n, field)):
            raise MalformedSpdm(f"{self._what}: reserved field {field} is not zero")

    def end(self) -> None:
        if self.remaining:
            raise MalformedSpdm(f"{self._what}: {self.remaining} unexpected trailing bytes")
