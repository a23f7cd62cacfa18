"""The witness's durable state: the latest cosigned checkpoint per origin, and evidence.

Schema (version 1), one SQLite file (WAL, ``synchronous=FULL``)::

    meta(key TEXT PRIMARY KEY, value TEXT)
    checkpoints(origin TEXT PRIMARY KEY, size INTEGER, root BLOB, note BLOB, updated INTEGER)
    evidence(id INTEGER PRIMARY KEY, origin TEXT, kind TEXT, detail TEXT,
             first BLOB, second BLOB, proof BLOB, at INTEGER)

``checkpoints`` holds, per origin, what add-checkpoint last cosigned: the note as the witness
serves it to monitors (the log's verified signatures and the witness's cosignatures). The one
write that changes it, :meth:`WitnessStore.advance`, is a compare-and-set in one ``BEGIN
IMMEDIATE`` transaction: it succeeds only if the stored (size, root, date) is still the one
the request was checked against, so two concurrent requests (threads or processes) can never
roll the state back (the race c2sp.org/tlog-witness describes). ``evidence`` keeps what a
refused request showed: a proven fork (``kind = "fork"``, a :class:`ForkProof`), or a
checkpoint whose proof did not verify (``kind = "inconsistent"``), with both notes. Evidence is
kept once per kind and pair of notes: anyone may send a checkpoint the log published with a
garbled proof, again and again, and the first copy says all the others would. And at most
:data:`MAX_INCONSISTENT_EVIDENCE` ``inconsistent`` rows are kept per log, the first ones: each
checkpoint the log publishes, sent with a garbled proof, is another pair of notes.

:class:`MemoryWitnessStore` is the in-memory twin for tests of higher layers. Every
``sqlite3.Error`` becomes :class:`StorageError`, and so does a row the store could not have
written (a file damaged or edited behind the witness's back): a checkpoint row whose size and
root are not those of its own note, or whose note is not a checkpoint note; an evidence row
with a value of the wrong type. Such a row is never taken for the witness's state: a damaged
root would otherwise be taken for a fork the log never made.

A file rolled back as a whole (a backup or a VM snapshot restored, the file deleted and created
afresh, another witness's file copied in) holds only rows the witness could have written:
nothing in it can tell. Such a witness would cosign a checkpoint that extends an older one but
not the one it cosigned last, so two inconsistent checkpoints of one log. What can tell is the
**high-water file** beside it, ``<state>.cosigned`` (JSON, replaced atomically, never by
SQLite): the random ``instance`` the database was created with (its ``meta('instance')``) and,
per origin, the largest checkpoint cosigned (size, root) and the tally of the evidence kept
(``kept``: the count of ``evidence`` rows and a running SHA-256 of them, in the order kept).
It is raised after each advance or evidence row commits and before the witness answers (a
witness killed in between never answered, and the next open raises it), and every read of the
state checks it first: a state smaller than its origin's mark or another root at its size,
fewer evidence rows of a log than were kept or others in their place (the evidence that the
log forked, lost), another instance's database, a database that cosigned something with an
instance but no high-water file beside it, or a high-water file beside a database without an
instance, is :class:`StorageError` (the witness answers nothing, keeps no evidence over the
lost, ``witness serve`` does not start, ``witness show`` fails; :meth:`~SqliteWitnessStore.evidence`
still lists what the file holds). A database older than high-water files (no instance, no
file) gets both as it is opened, and a high-water file older than tallies gains them. Its
limits: restoring both files together is not seen, and the file is bound to the path the
database is opened by.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from ironroot._statedb import HighWater, LatestStore, immediate
from ironroot.errors import MalformedInput, OldSizeMismatch, StorageError
from ironroot.log import Checkpoint, Note

__all__ = [
    "Evidence",
    "MemoryWitnessStore",
    "SqliteWitnessStore",
    "StoredCheckpoint",
    "WitnessStore",
]

_SCHEMA_VERSION: Final = "1"
_HASH: Final = 32
MAX_INCONSISTENT_EVIDENCE: Final = 256
"""The most ``inconsistent`` evidence rows kept per log (the first ones). Such a row proves
nothing about the log (anyone can send any checkpoint it published with a garbled proof, whose
lines are unsigned), and there is one per checkpoint it publishes; a fork is always kept."""
_HIGH_WATER: Final = ".cosigned"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note BLOB NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    first BLOB NOT NULL,
    second BLOB NOT NULL,
    proof BLOB NOT NULL,
    at INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """The latest checkpoint a witness cosigned for ``origin``."""

    origin: str
    size: int
    root: bytes
    note: bytes
    updated: int


@dataclass(frozen=True, slots=True)
class Evidence:
    """A refused checkpoint worth keeping: ``kind`` is ``fork`` (``data`` is a fork proof's
    JSON) or ``inconsistent`` (``data`` is the request, ``first`` the witness's note)."""

    id: int
    origin: str
    kind: str
    detail: str
    first: bytes
    second: bytes
    data: bytes
    at: int


class WitnessStore(Protocol):
    """Where a witness keeps its state (safe from any thread)."""

    def latest(self, origin: str) -> StoredCheckpoint | None: ...
    def all_latest(self) -> list[StoredCheckpoint]: ...
    def advance(self, expected: StoredCheckpoint | None, new: StoredCheckpoint) -> None: ...
    def add_evidence(
        self, origin: str, kind: str, detail: str, first: bytes, second: bytes, data: bytes, at: int
    ) -> tuple[int, bool]:
        """Keep evidence; ``(id, added)``: the earlier one's id and ``False`` when that
        ``kind`` for the same ``origin``, ``first`` and ``second`` is kept already (nothing is
        added); ``(0, False)`` when it is ``inconsistent`` evidence of a log that has
        :data:`MAX_INCONSISTENT_EVIDENCE` kept already (nothing is added)."""
        ...

    def evidence(self) -> list[Evidence]: ...
    def close(self) -> None: ...


def _high_water(path: str) -> HighWater:
    """The high-water file of the witness database at ``path`` (module docs)."""
    water = Path(f"{path}{_HIGH_WATER}")
    # an error of a read is the answer to an add-checkpoint or a monitoring read, which
    # anyone may ask: messages name no directory
    return HighWater(
        water,
        what="witness",
        verb="cosigned",
        database=Path(path).name,
        shown=water.name,
        consequence="a rolled-back witness would cosign a fork of what it cosigned",
        evidence="evidence rows",
        lost="the evidence that the log forked would be gone without a word",
    )


def _mismatch(current: StoredCheckpoint | None) -> OldSizeMismatch:
    size = 0 if current is None else current.size
    return OldSizeMismatch(
        f"the witness cosigned size {size} meanwhile; resubmit from it", size=size
    )


def _same(a: StoredCheckpoint | None, b: StoredCheckpoint | None) -> bool:
    """Whether the stored checkpoint is still the one a request was checked against: its
    tree, and the date of its cosignatures (a later cosigning of the same checkpoint,
    stored meanwhile, dates what this request would store, which must not be dated before)."""
    if a is None or b is None:
        return a is None and b is None
    return a.size == b.size and a.root == b.root and a.updated == b.updated


class MemoryWitnessStore:
    """A :class:`WitnessStore` in dictionaries, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, StoredCheckpoint] = {}
        self._evidence: list[Evidence] = []

    def latest(self, origin: str) -> StoredCheckpoint | None:
        with self._lock:
            return self._latest.get(origin)

    def all_latest(self) -> list[StoredCheckpoint]:
        with self._lock:
            return sorted(self._latest.values(), key=lambda c: c.origin)

    def advance(self, expected: StoredCheckpoint | None, new: StoredCheckpoint) -> None:
        with self._lock:
            current = self._latest.get(new.origin)
            if not _same(current, expected):
                raise _mismatch(current)
            self._latest[new.origin] = new

    def add_evidence(
        self, origin: str, kind: str, detail: str, first: bytes, second: bytes, data: bytes, at: int
    ) -> tuple[int, bool]:
        with self._lock:
            key = (origin, kind, first, second)
            for kept in self._evidence:
                if (kept.origin, kept.kind, kept.first, kept.second) == key:
                    return kept.id, False
            if kind == "inconsistent":
                count = sum(1 for e in self._evidence if (e.origin, e.kind) == (origin, kind))
                if count >= MAX_INCONSISTENT_EVIDENCE:
                    return 0, False
            item = Evidence(len(self._evidence) + 1, origin, kind, detail, first, second, data, at)
            self._evidence.append(item)
            return item.id, True

    def evidence(self) -> list[Evidence]:
        with self._lock:
            return list(self._evidence)

    def close(self) -> None:
        return None


class SqliteWitnessStore(LatestStore[StoredCheckpoint]):
    """A :class:`WitnessStore` in one SQLite file."""

    _TABLE = "checkpoints"
    _COLUMNS = "origin, size, root, note, updated"
    _KEPT = "evidence"
    _KEPT_COLUMNS = "id, origin, kind, detail, first, second, proof, at"

    def __init__(self, path: Path) -> None:
        super().__init__(
            path, what="witness", schema=_SCHEMA, version=_SCHEMA_VERSION, water=_high_water
        )

    def _read_failed(self, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"cannot read the witness database: {exc}")

    def _write_failed(self, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"cannot write the witness database: {exc}")

    def _create_instance(self, instance: str) -> str:
        """:meth:`LatestStore._create_instance` in a ``BEGIN IMMEDIATE`` transaction of its
        own, a failure worded as a write's."""
        try:
            with self._lock, immediate(self._db):
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (instance,))
        except sqlite3.Error as exc:
            raise self._write_failed(exc) from exc
        return self._stored_instance()  # another process's, if it got there first

    @staticmethod
    def _row(row: tuple[object, ...]) -> StoredCheckpoint:
        origin, size, root, note, updated = row
        if not (
            isinstance(origin, str)
            and isinstance(size, int)
            and size >= 0
            and isinstance(root, bytes)
            and len(root) == _HASH
            and isinstance(note, bytes)
            and isinstance(updated, int)
        ):
            raise StorageError("the witness database holds a malformed checkpoint row")
        try:
            checkpoint = Checkpoint.parse(Note.parse(note).body)
        except MalformedInput as exc:
            raise StorageError(
                "the witness database holds a checkpoint row whose note is not a checkpoint"
            ) from exc
        if (checkpoint.origin, checkpoint.size, checkpoint.root) != (origin, size, root):
            raise StorageError(
                "the witness database holds a checkpoint row that is not its note's checkpoint"
            )
        return StoredCheckpoint(origin, size, root, note, updated)

    @staticmethod
    def _evidence(row: tuple[object, ...]) -> Evidence:
        number, origin, kind, detail, first, second, data, at = row
        if not (
            isinstance(number, int)
            and isinstance(origin, str)
            and isinstance(kind, str)
            and isinstance(detail, str)
            and isinstance(first, bytes)
            and isinstance(second, bytes)
            and isinstance(data, bytes)
            and isinstance(at, int)
        ):
            raise StorageError("the witness database holds a malformed evidence row")
        return Evidence(number, origin, kind, detail, first, second, data, at)

    def latest(self, origin: str) -> StoredCheckpoint | None:
        return self._latest(origin)

    def all_latest(self) -> list[StoredCheckpoint]:
        return self._all_latest()

    def advance(self, expected: StoredCheckpoint | None, new: StoredCheckpoint) -> None:
        """Replace ``expected`` by ``new`` atomically; :class:`OldSizeMismatch` (with the
        current size) if the stored checkpoint is no longer ``expected``."""

        def expect(current: StoredCheckpoint | None) -> None:
            if not _same(current, expected):
                raise _mismatch(current)

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?)",
                (new.origin, new.size, new.root, new.note, new.updated),
            )

        self._advance(new, expect=expect, write=write)

    def add_evidence(
        self, origin: str, kind: str, detail: str, first: bytes, second: bytes, data: bytes, at: int
    ) -> tuple[int, bool]:

        def write(db: sqlite3.Connection) -> tuple[tuple[int, bool], bool]:
            row = db.execute(
                "SELECT id FROM evidence "
                "WHERE origin = ? AND kind = ? AND first = ? AND second = ? LIMIT 1",
                (origin, kind, first, second),
            ).fetchone()
            if row is not None:
                return (int(row[0]), False), False
            if kind == "inconsistent":
                (count,) = db.execute(
                    "SELECT count(*) FROM evidence WHERE origin = ? AND kind = ?",
                    (origin, kind),
                ).fetchone()
                if count >= MAX_INCONSISTENT_EVIDENCE:
                    return (0, False), False
            cursor = db.execute(
                "INSERT INTO evidence (origin, kind, detail, first, second, proof, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (origin, kind, detail, first, second, data, at),
            )
            return (int(cursor.lastrowid or 0), True), True

        return self._keep(origin, write)

    def evidence(self) -> list[Evidence]:
        rows = self._query(
            "SELECT id, origin, kind, detail, first, second, proof, at FROM evidence ORDER BY id"
        )
        return [self._evidence(row) for row in rows]
