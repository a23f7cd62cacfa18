"""The RoT's journal and event log, in the RoT chip's ``journal`` and ``log`` regions.

**Journal.** The platform's whole firmware state (which slot of each component is active, what
each slot, the staging area and the recovery region hold, the update in progress and its step,
the active PFM, the anti-rollback floors, healthy-boot counts) is one small CBOR map. Every
change appends a *record* holding the complete new state, so the last valid record *is* the
state and a power loss can only leave the previous one in force. The ``journal`` region is two
halves; each starts with a 64-byte header — magic b"IRJOURN1" (8), generation (8), HMAC (32),
zero padding — and records follow it::

    length (4) | payload (CBOR: {"ctr": uint, "step": tstr, "at": tstr, "state": map}) | HMAC (32)

The HMACs (SHA-256, under a key that never leaves the RoT's storage) cover the generation and
the record, so a record cannot be forged or moved between halves. A half's scan stops at the
first record that is absent or does not verify: a torn tail is a power loss, and everything
before it stands. When a half is full, the state is written as the first record of the other
half and then that half's header with the next generation — the header last, so a power loss
during compaction leaves the old half in force.

Rollback. Each record carries ``ctr``, the value the RoT's monotonic counter ``platform`` takes
once the record is durable (the record is written first, then the counter incremented). At
open, the last record's ``ctr`` must equal the counter (or exceed it by one: the power was lost
between the two, and the counter is rolled forward). A lower ``ctr`` means an older copy of
the RoT's flash was put back: ``StoreRolledBack``.

**Event log.** The ``log`` region is a ring of 512-byte entries: entry *n* sits at slot
``n mod count``; each is ``length (2) | JSON | HMAC (32)`` over the sequence number and the
JSON. Reading returns the valid entries in sequence order; the oldest are overwritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any, Final

from ironroot.cose import Limits, decode_cbor, encode_cbor
from ironroot.errors import IronrootError, LimitExceeded, StorageError, StoreRolledBack
from ironroot.platform._flash import Flash, RotFlashWriter
from ironroot.rot import MonotonicCounter

__all__ = ["Event", "EventLog", "Journal", "JournalRecord"]

_HALF_MAGIC: Final = b"IRJOURN1"
_HALF_HEADER: Final = 64
_LEN: Final = struct.Struct(">I")
_MAC: Final = 32
_MAX_RECORD: Final = 64 * 1024
_FIRST_READ: Final = 16 * 1024  # the first read of a half; more only when its records need it
_LIMITS: Final = Limits(max_bytes=_MAX_RECORD, max_depth=10, max_items=4096)
_ENTRY: Final = 512
_ENTRY_BODY: Final = _ENTRY - 2 - _MAC - 8
_SEVERITIES: Final = frozenset({"OK", "Warning", "Critical"})
COALESCE_AFTER: Final = 8
"""How many events of one id in a row before more of them are folded into the last."""


@dataclass(frozen=True, slots=True)
class JournalRecord:
    ctr: int
    step: str
    at: str
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the RoT's event log."""

    seq: int
    at: str
    severity: str
    message_id: str
    message: str
    args: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "severity": self.severity,
            "message_id": self.message_id,
            "message": self.message,
            "args": list(self.args),
        }


def _now_text(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class Journal:
    """The journal in the RoT chip's ``journal`` region (see the module docstring)."""

    def __init__(
        self, flash: Flash, writer: RotFlashWriter, key: bytes, counter: MonotonicCounter
    ) -> None:
        self._flash = flash
        self._writer = writer
        self._key = key
        self._counter = counter
        region = flash.chip("rot").region("journal")
        self._half_size = region.size // 2
        self._bases = (region.offset, region.offset + self._half_size)
        self._active = 0
        self._generation = 0
        self._end = 0
        self.last: JournalRecord | None = None
        self.history: list[JournalRecord] = []

    def _mac(self, generation: int, body: bytes) -> bytes:
        return hmac.new(self._key, struct.pack(">Q", generation) + body, hashlib.sha256).digest()

    def _half_header(self, generation: int) -> bytes:
        tag = self._mac(generation, _HALF_MAGIC)
        return (_HALF_MAGIC + struct.pack(">Q", generation) + tag).ljust(_HALF_HEADER, b"\0")

    def _read_half(self, index: int) -> tuple[int, list[JournalRecord], int] | None:
        chip = self._flash.chip("rot")
        base, half = self._bases[index], self._half_size

        def covering(data: bytes, end: int) -> bytes:
            # The half is read as a prefix that grows to cover what the records need: a
            # journal holds a few records at the start of a half of hundreds of KiB.
            if end <= len(data) or len(data) >= half:
                return data
            return chip.read(base, min(half, max(end, 2 * len(data))))

        data = chip.read(base, min(half, _FIRST_READ))
        if data[:8] != _HALF_MAGIC:
            return None
        (generation,) = struct.unpack_from(">Q", data, 8)
        if not hmac.compare_digest(data[16:48], self._mac(generation, _HALF_MAGIC)):
            return None
        records: list[JournalRecord] = []
        pos = _HALF_HEADER
        while pos + _LEN.size <= len(data := covering(data, pos + _LEN.size)):
            (length,) = _LEN.unpack_from(data, pos)
            if not 0 < length <= _MAX_RECORD:
                break
            data = covering(data, pos + 4 + length + _MAC)
            if pos + 4 + length + _MAC > len(data):
                break
            body = data[pos + 4 : pos + 4 + length]
            if not hmac.compare_digest(
                data[pos + 4 + length : pos + 4 + length + _MAC], self._mac(generation, body)
            ):
                break
            try:
                records.append(_decode_record(body))
            except IronrootError:
                break
            pos += 4 + length + _MAC
        return generation, records, pos

    def open(self) -> JournalRecord | None:
        """Read the journal; return the last record (``None`` for an empty journal)."""
        halves = [(i, h) for i in (0, 1) if (h := self._read_half(i)) is not None]
        if not halves:
            self._active, self._generation, self._end = 0, 0, 0
            self.last, self.history = None, []
        else:
            index, (generation, records, end) = max(halves, key=lambda item: item[1][0])
            self._active, self._generation, self._end = index, generation, end
            self.history = records
            self.last = records[-1] if records else None
        counter = self._counter.value()
        ctr = self.last.ctr if self.last is not None else 0
        if ctr == counter + 1:
            self._counter.increment()
        elif ctr != counter:
            raise StoreRolledBack(
                f"the platform journal is at {ctr}, the RoT's counter at {counter}: "
                "an older copy of the RoT's flash was put back",
                code="journal-rolled-back",
            )
        return self.last

    def append(
        self, step: str, state: dict[str, Any], now: dt.datetime, *, what: str = "journal"
    ) -> JournalRecord:
        """Make ``state`` durable as the next record; the counter follows the record."""
        ctr = (self.last.ctr if self.last is not None else 0) + 1
        record = JournalRecord(ctr, step, _now_text(now), state)
        body = encode_cbor({"ctr": ctr, "step": step, "at": record.at, "state": state})
        if len(body) > _MAX_RECORD:
            raise LimitExceeded("a journal record is at most 64 KiB")
        size = 4 + len(body) + _MAC
        if self.last is None or self._end == 0 or self._end + size > self._half_size:
            self._start_half(body, size, record, what)
        else:
            base = self._bases[self._active]
            self._writer.write(
                "rot",
                base + self._end,
                _LEN.pack(len(body)) + body + self._mac(self._generation, body),
                what=what,
            )
            self._end += size
            self.history.append(record)
        self.last = record
        self._counter.increment()
        return record

    def _start_half(self, body: bytes, size: int, record: JournalRecord, what: str) -> None:
        index = 1 - self._active if self.last is not None else 0
        generation = self._generation + 1
        base = self._bases[index]
        # Erase the header first, then write the record, then the header: the half counts only
        # once it is complete.
        self._writer.write("rot", base, bytes(_HALF_HEADER), what="journal")
        self._writer.write(
            "rot",
            base + _HALF_HEADER,
            _LEN.pack(len(body)) + body + self._mac(generation, body) + bytes(_LEN.size),
            what=what,
        )
        self._writer.write("rot", base, self._half_header(generation), what="journal")
        self._active, self._generation, self._end = index, generation, _HALF_HEADER + size
        self.history = [record]


def _decode_record(body: bytes) -> JournalRecord:
    doc = decode_cbor(body, _LIMITS)
    if not isinstance(doc, dict) or set(doc) != {"ctr", "step", "at", "state"}:
        raise StorageError("a journal record is not a record")
    ctr, step, at, state = doc["ctr"], doc["step"], doc["at"], doc["state"]
    if not isinstance(ctr, int) or not isinstance(step, str) or not isinstance(at, str):
        raise StorageError("a journal record is not a record")
    if not isinstance(state, dict):
        raise StorageError("a journal record is not a record")
    return JournalRecord(ctr, step, at, state)


class EventLog:
    """The RoT's event log in the RoT chip's ``log`` region (see the module docstring)."""

    def __init__(self, flash: Flash, writer: RotFlashWriter, key: bytes) -> None:
        self._flash = flash
        self._writer = writer
        self._key = key
        region = flash.chip("rot").region("log")
        self._base = region.offset
        self._count = region.size // _ENTRY
        self._next: int | None = None

    def _mac(self, seq: int, body: bytes) -> bytes:
        return hmac.new(self._key, struct.pack(">Q", seq) + body, hashlib.sha256).digest()

    def _scan(self) -> list[Event]:
        data = self._flash.chip("rot").read(self._base, self._count * _ENTRY)
        events: list[Event] = []
        for slot in range(self._count):
            entry = data[slot * _ENTRY : (slot + 1) * _ENTRY]
            (length,) = struct.unpack_from(">H", entry)
            if not 0 < length <= _ENTRY_BODY:
                continue
            seq_bytes = entry[2:10]
            body = entry[10 : 10 + length]
            tag = entry[10 + length : 10 + length + _MAC]
            (seq,) = struct.unpack(">Q", seq_bytes)
            if seq % self._count != slot or not hmac.compare_digest(tag, self._mac(seq, body)):
                continue
            try:
                doc = json.loads(body)
                events.append(
                    Event(
                        seq,
                        str(doc["at"]),
                        str(doc["severity"]),
                        str(doc["id"]),
                        str(doc["message"]),
                        tuple(str(a) for a in doc["args"]),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue
        events.sort(key=lambda e: e.seq)
        return events

    def events(self) -> list[Event]:
        return self._scan()

    def add(
        self,
        severity: str,
        message_id: str,
        message: str,
        *args: str,
        now: dt.datetime,
        coalesce: bool = False,
    ) -> Event:
        """Append an event. With ``coalesce``, once the last :data:`COALESCE_AFTER` events are
        all ``message_id``, the newest of them is rewritten in place with a repeat count
        instead of a new entry: a flood of one event (a compromised BMC hammering protected
        flash) cannot push older events out of the ring."""
        if severity not in _SEVERITIES:
            raise ValueError(severity)
        if self._next is None or coalesce:
            existing = self._scan()
            self._next = existing[-1].seq + 1 if existing else 1
            tail = existing[-COALESCE_AFTER:]
            if (
                coalesce
                and len(tail) == COALESCE_AFTER
                and all(e.message_id == message_id for e in tail)
                and tail[-1].seq == self._next - 1
            ):
                last = tail[-1]
                before = last.args[-1] if last.args else ""
                repeats = int(before[8:]) + 1 if before.startswith("repeats=") else 1
                self._next = last.seq
                message = f"{message} (and {repeats} more like it before)"
                args = (*args, f"repeats={repeats}")
        seq = self._next
        doc: dict[str, Any] = {
            "at": _now_text(now),
            "severity": severity,
            "id": message_id,
            "message": message,
            "args": list(args),
        }
        body = json.dumps(doc, separators=(",", ":")).encode()
        while len(body) > _ENTRY_BODY:
            # The message is cut first, then the longest argument is halved: an argument that
            # JSON escapes (six bytes a character) may not fit even at 64 characters.
            text, cut = doc["message"], doc["args"]
            if len(text) > 3:
                doc["message"] = text[: max(0, len(text) - (len(body) - _ENTRY_BODY) - 3)] + "..."
                doc["args"] = [a[:64] for a in cut]
            elif any(cut):
                longest = max(range(len(cut)), key=lambda n: len(cut[n]))
                cut[longest] = cut[longest][: len(cut[longest]) // 2]
            else:
                raise LimitExceeded(f"the event {message_id} does not fit a log entry")
            body = json.dumps(doc, separators=(",", ":")).encode()
        entry = struct.pack(">H", len(body)) + struct.pack(">Q", seq) + body + self._mac(seq, body)
        slot = seq % self._count
        self._writer.write(
            "rot", self._base + slot * _ENTRY, entry.ljust(_ENTRY, b"\0"), what="log"
        )
        self._next = seq + 1
        return Event(seq, doc["at"], severity, message_id, doc["message"], tuple(doc["args"]))
