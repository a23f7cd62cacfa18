"""The monitor's durable state: per origin, the last checkpoint it verified; forks it found.

Schema (version 1), one SQLite file (WAL, ``synchronous=FULL``)::

    meta(key TEXT PRIMARY KEY, value TEXT)
    logs(origin TEXT PRIMARY KEY, size INTEGER, root BLOB, note BLOB,
         compact BLOB, updated INTEGER)       -- compact: the tree's compact range, 32 B each
    pins(url TEXT PRIMARY KEY, origin TEXT, keys TEXT)   -- keys first seen at a URL (TOFU)
    forks(id INTEGER PRIMARY KEY, origin TEXT, proof BLOB, at INTEGER)
    behind(origin TEXT, size INTEGER, root BLOB, note BLOB, url TEXT, seen INTEGER,
           PRIMARY KEY (origin, size, root))   -- smaller checkpoints not yet checked
    key_uses(kind TEXT, key_hash BLOB, leaf INTEGER, signature BLOB, origin TEXT, idx INTEGER,
             PRIMARY KEY (kind, key_hash, leaf, signature, origin))   -- one-time key uses

A fork is kept once per pair of signed notes (the state is not advanced past it, so every
round finds it again). A checkpoint smaller than the verified one (``behind``) is kept (at most
64 per origin: a new one past that is refused, none kept is dropped unsettled),
signed note and all, until a later round reads the verified tree's tiles and proves it
consistent (a mirror behind) or not (a fork, with its proof). The table was added to schema
version 1 (``CREATE … IF NOT EXISTS`` on every open): an older file gains it as it is opened.
So was ``watched(origin, what, value)``: what the entries of the row's tree were read for
(``("sub", subject)``, ``("iss", issuer)``, and ``("", "")`` once known: a row without it was
written before the table, and was read for nothing known); a watch that grows reads the tree
again for what is new.
So was ``key_uses``: each one-time key use a per-entry check
(:class:`~ironroot.monitor.EntryCheck`) read in a new entry, once per check kind, key, leaf,
signature hash and origin, with the index of the first entry of that origin that showed it;
written in the transaction that advances its log's state (so it moves with that state: a
rolled-back file has older rows and an older state, which the high-water file refuses), and
read in that transaction too, to find a leaf used for another signature
(:meth:`MonitorStore.advance`). A row that could not have been written here (malformed: not
a kind and a :class:`~ironroot.monitor.OneTimeKeyUse`, a negative leaf say; an entry index
beyond its log's verified size) is ``StorageError``, as every row of its origin is read. A
row deleted on its own from an otherwise current file is refused as a lost fork proof is: the
high-water file tallies each origin's uses (their count and running digest, by entry index)
as it does its fork proofs, under the key ``"\0one-time key uses\0" + origin``, raised after
the advance commits (a monitor killed in between leaves it behind, and the next open raises
it).

Advancing a log's state is one compare-and-set transaction (``BEGIN IMMEDIATE``) after the
new checkpoint, its consistency with the old one and its entries were verified: it writes only
if the stored (size, root) is still the one the check started from, so two monitors sharing
the file (``monitor follow`` and a ``monitor once``, or two threads) can never move it back
to an older checkpoint; the one that lost gets :class:`Conflict` and its next round checks
against what the other stored. A crash leaves the old state, and the next run verifies the
same range again. Every ``sqlite3.Error`` becomes
:class:`StorageError`; a file that is not a monitor database is refused, and so is a row that
could not have been written here (a negative size, a root that is not 32 bytes, a compact
range that is not the one of a tree of its size, a note whose checkpoint is not the row's
origin, size and root, a compact range that does not give the root, a pin whose keys are not
a list of text, text that is not UTF-8): ``StorageError`` as it is read. Such a row is never
taken for what the monitor verified: a root edited or restored apart from its note would
otherwise be reported as the log's fork, with a proof that proves nothing.

A file rolled back as a whole (a backup or a snapshot restored, another monitor's file copied
in its place) holds only rows that could have been written here, so nothing in it can tell.
What can is the **high-water file** beside it, ``<state>.verified`` (JSON, replaced atomically,
never by SQLite): the random ``instance`` the database was created with (its
``meta('instance')``) and, per origin, the largest checkpoint verified (size, root, signed
note) and the tally of the fork proofs kept (``kept``: their count and a running SHA-256 of the
rows, in the order kept), and the smaller checkpoints kept and not yet settled (``held``: per
origin, ``<size>:<root, hex>`` of each ``behind`` row; added after its row commits, taken off
before its row is deleted, both under the file's lock, so a crash between is no alarm). It
is written after each advance or fork proof commits (so it is
never ahead of the database but for a rollback; a monitor killed in between leaves it behind,
and the next open raises it), and every read of a log's state checks it first: a state smaller
than the high-water mark of its origin, another root at its size, an origin it holds that the
database lacks, fewer fork proofs of a log than were kept or others in their place, a smaller
checkpoint held that the database lacks (looked for again under the lock first: another
monitor sharing the file may have just settled it), another
instance's file, or a database that verified a checkpoint and has an instance but no
high-water file beside it is :class:`StorageError` (the monitor stops, and keeps no fork proof
over a lost one; ``monitor status`` fails too): a rolled-back state would otherwise accept a
checkpoint that extends an older one but not the one verified last (a fork), read again what
it read before, or have lost the only proof that the log forked, or the only signed trace
of a split view a URL showed once, all without a word.
(``forks()`` still lists what a refused file holds, for the forensics.) A high-water file
written before fork proofs were tallied, or smaller checkpoints held, gains them as it is
opened. Its
limits: a state file is bound to the path it is
opened by (another path, a hard or symbolic link, has no high-water file beside it), and
restoring both files together is not seen (only a record kept off the host, a witness or a
second monitor, sees that).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ironroot._statedb import HighWater, Kept, LatestStore, Mark, immediate, row_digest
from ironroot.errors import Conflict, IronrootError, MalformedInput, StorageError
from ironroot.log import Checkpoint, Note
from ironroot.merkle import CompactRange
from ironroot.monitor._checks import KeyReuse, OneTimeKeyUse

__all__ = ["Behind", "LogState", "MonitorStore"]

_SCHEMA_VERSION: Final = "1"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note BLOB NOT NULL,
    compact BLOB NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pins (
    url TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    keys TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS forks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    proof BLOB NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS behind (
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note BLOB NOT NULL,
    url TEXT NOT NULL,
    seen INTEGER NOT NULL,
    PRIMARY KEY (origin, size, root)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watched (
    origin TEXT NOT NULL,
    what TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (origin, what, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS key_uses (
    kind TEXT NOT NULL,
    key_hash BLOB NOT NULL,
    leaf INTEGER NOT NULL,
    signature BLOB NOT NULL,
    origin TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (kind, key_hash, leaf, signature, origin)
) WITHOUT ROWID;
"""
MAX_BEHIND: Final = 64
_MAX_BEHIND: Final = MAX_BEHIND
"""Smaller checkpoints kept per origin until checked (each is signed by the log's key, so
only the log's key holder can make more; the ones last seen longest ago go first beyond
this: one served again is seen again)."""
_HASH: Final = 32
_HIGH_WATER: Final = ".verified"
_USES: Final = "\x00one-time key uses\x00"
"""The high-water file's tally of an origin's one-time key uses is kept under this prefix and
the origin (no origin has a C0 control), beside the tally of its fork proofs."""
_USE_COLUMNS: Final = "kind, key_hash, leaf, signature, origin, idx"


@dataclass(frozen=True, slots=True)
class LogState:
    """The last verified checkpoint of ``origin``: size, root, the signed note, and the
    compact range of that tree (what the next entries are appended to)."""

    origin: str
    size: int
    root: bytes
    note: bytes
    compact: tuple[bytes, ...]
    updated: int


def _check_note(note: bytes, origin: str, size: int, root: bytes, what: str) -> None:
    """``StorageError`` unless ``note`` is a signed note of the checkpoint (origin, size, root)
    (a row's root edited or restored apart from its note)."""
    try:
        checkpoint = Checkpoint.parse(Note.parse(note).body)
    except IronrootError as exc:
        raise StorageError(f"the monitor database holds {what} whose note is malformed") from exc
    if (checkpoint.origin, checkpoint.size, checkpoint.root) != (origin, size, root):
        raise StorageError(f"the monitor database holds {what} that is not its note's checkpoint")


def _check_mark_note(origin: str, mark: Mark) -> None:
    """A high-water mark's note is a signed note of its checkpoint (``StorageError``)."""
    _check_note(mark.note or b"", origin, mark.size, mark.root, f"a high-water mark for {origin}")


def _fork_notes(proof: bytes) -> tuple[object, object] | None:
    """The two notes of a fork proof's JSON (``None`` if it is not one): what makes two
    proofs one fork, whoever found it and when."""
    try:
        value = json.loads(proof)
    except (ValueError, RecursionError):
        return None
    return (value.get("first"), value.get("second")) if isinstance(value, dict) else None


_MALFORMED_USE: Final = "the monitor database holds a malformed one-time key use"


def _check_use_row(row: Sequence[object]) -> None:
    """``StorageError`` unless the ``key_uses`` row (``_USE_COLUMNS``) is one a check could
    have made: a kind, a :class:`OneTimeKeyUse` (a leaf 0 to 2⁶³−1, hashes of 1 to 64 bytes),
    an origin and an entry index ≥ 0. A leaf it could not have named (a negative one) is
    compared with no use, so a reuse of the leaf it replaced would go unseen."""
    kind, key_hash, leaf, signature, origin, idx = row
    if not (
        isinstance(kind, str)
        and kind
        and isinstance(origin, str)
        and isinstance(idx, int)
        and idx >= 0
    ):
        raise StorageError(_MALFORMED_USE)
    try:
        OneTimeKeyUse(key_hash, leaf, signature)  # type: ignore[arg-type]  # checked there
    except MalformedInput as exc:
        raise StorageError(_MALFORMED_USE) from exc


def _high_water(path: str) -> HighWater:
    """The high-water file of the monitor database at ``path`` (module docs)."""
    water = path + _HIGH_WATER
    return HighWater(
        Path(water),
        what="monitor",
        verb="verified",
        database=path,
        shown=water,
        consequence="a rolled-back state would accept a fork of what was verified",
        evidence="fork proofs",
        lost="the proof that the log forked would be gone without a word",
        notes=True,
        check=_check_mark_note,
        held="smaller checkpoints",
        held_lost="a smaller checkpoint kept may be the only signed trace of a fork, gone "
        "without a word",
        tallies={
            _USES: (
                "one-time key uses",
                "a one-time key used twice would go unreported without a word",
            )
        },
    )


def _behind_key(size: int, root: bytes) -> str:
    """How the high-water file names a smaller checkpoint kept: ``<size>:<root, hex>``."""
    return f"{size}:{root.hex()}"


def _verified_size(db: sqlite3.Connection, origin: str) -> int:
    row = db.execute("SELECT size FROM logs WHERE origin = ?", (origin,)).fetchone()
    return row[0] if row is not None and isinstance(row[0], int) else 0


def _keep_uses(
    db: sqlite3.Connection,
    origin: str,
    verified: int,
    uses: Sequence[tuple[str, int, OneTimeKeyUse]],
) -> list[KeyReuse]:
    """Keep each of ``uses`` (of ``origin``, verified up to size ``verified`` before them,
    in the transaction under way), once per check kind, key, leaf, signature hash and origin,
    and return those whose key and leaf the uses kept had only with other signature hashes
    (one kept with the same signature, on any log, is the same use seen again). A kept row
    that could not have been written here (malformed, or an entry beyond its log's verified
    size) is ``StorageError``."""
    out: list[KeyReuse] = []
    sizes: dict[str, int] = {origin: verified}
    added: set[tuple[str, bytes, int, bytes]] = set()
    for kind, index, use in uses:
        first: tuple[str, int, bytes] | None = None
        seen = False
        for found, at, signature in db.execute(
            "SELECT origin, idx, signature FROM key_uses WHERE kind = ? AND key_hash = ? "
            "AND leaf = ? ORDER BY origin <> ?, origin, idx",
            (kind, use.key_hash, use.leaf, origin),
        ):
            if not (
                isinstance(found, str)
                and isinstance(at, int)
                and at >= 0
                and isinstance(signature, bytes)
                and signature
            ):
                raise StorageError(_MALFORMED_USE)
            size = sizes.setdefault(found, _verified_size(db, found))
            ours = found == origin and (kind, use.key_hash, use.leaf, signature) in added
            if at >= size and not ours:
                raise StorageError(
                    f"the monitor database holds a one-time key use of {found} at entry "
                    f"#{at}, beyond the {size} entries verified"
                )
            seen = seen or signature == use.signature_hash
            if first is None:
                first = (found, at, signature)
        if first is not None and not seen:
            out.append(
                KeyReuse(kind, use.key_hash, use.leaf, *first, origin, index, use.signature_hash)
            )
        inserted = db.execute(
            "INSERT OR IGNORE INTO key_uses VALUES (?, ?, ?, ?, ?, ?)",
            (kind, use.key_hash, use.leaf, use.signature_hash, origin, index),
        ).rowcount
        if inserted:
            added.add((kind, use.key_hash, use.leaf, use.signature_hash))
    return out


@dataclass(frozen=True, slots=True)
class Behind:
    """A signed checkpoint of ``origin`` smaller than the one verified, served at ``url``: to
    be proven consistent with the verified tree, or a fork."""

    origin: str
    size: int
    root: bytes
    note: bytes
    url: str
    seen: int


class MonitorStore(LatestStore[LogState]):
    """The monitor's SQLite file (``:memory:`` for a throwaway one)."""

    _TABLE = "logs"
    _COLUMNS = "origin, size, root, note, compact, updated"
    _KEPT = "forks"
    _KEPT_COLUMNS = "id, origin, proof, at"

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        """``create=False`` opens only an existing monitor database (for reading state)."""
        self._path = str(path)
        super().__init__(
            path,
            what="monitor",
            schema=_SCHEMA,
            version=_SCHEMA_VERSION,
            water=_high_water,
            create=create,
        )

    def _read_failed(self, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"the monitor database {self._path} failed: {exc}")

    _write_failed = _read_failed

    @staticmethod
    def _row(row: tuple[object, ...]) -> LogState:
        origin, size, root, note, compact, updated = row
        if not (
            isinstance(origin, str)
            and isinstance(size, int)
            and size >= 0
            and isinstance(root, bytes)
            and len(root) == _HASH
            and isinstance(note, bytes)
            and isinstance(compact, bytes)
            and isinstance(updated, int)
            and len(compact) == _HASH * size.bit_count()  # a compact range: one per 1 bit
        ):
            raise StorageError("the monitor database holds a malformed log row")
        hashes = tuple(compact[i : i + _HASH] for i in range(0, len(compact), _HASH))
        _check_note(note, origin, size, root, f"a row for {origin}")
        try:
            compact_root = CompactRange(size, hashes).root()
        except IronrootError as exc:
            raise StorageError(
                f"the monitor database holds a row for {origin} whose compact range is malformed"
            ) from exc
        if compact_root != root:
            raise StorageError(
                f"the monitor database holds a row for {origin} whose compact range does not "
                "give its root"
            )
        return LogState(origin, size, root, note, hashes, updated)

    def state(self, origin: str) -> LogState | None:
        """The stored state of ``origin``, once checked against its high-water marks: its
        tree, its fork proofs, its smaller checkpoints held and its one-time key uses."""
        stored = self._latest(origin)
        _, kept, _ = self._marks()  # read before the database: it is written after it
        if _USES + origin in kept:
            self._check_kept(_USES + origin, self._kept_rows(self._query, origin), kept)
        return stored

    def _kept_rows(
        self,
        query: Callable[[str, tuple[object, ...]], list[tuple[object, ...]]],
        origin: str | None = None,
    ) -> dict[str, list[bytes]]:
        """The fork proofs kept, per origin, and the one-time key uses, per origin under
        ``_USES``: each one's row digest, by entry index (a log's new uses come after its
        old ones: its entries only grow)."""
        out = super()._kept_rows(query, origin)
        where, args = ("", ()) if origin is None else (" WHERE origin = ?", (origin,))
        for row in query(
            f"SELECT {_USE_COLUMNS} FROM key_uses{where} "  # noqa: S608
            "ORDER BY origin, idx, kind, key_hash, leaf, signature",
            args,
        ):
            _check_use_row(row)  # as the state is read: a damaged row is never tallied
            out.setdefault(_USES + str(row[4]), []).append(row_digest(row))
        return out

    def states(self) -> list[LogState]:
        return self._all_latest()

    def _held_rows(
        self,
        query: Callable[[str, tuple[object, ...]], list[tuple[object, ...]]],
        origin: str | None = None,
    ) -> dict[str, frozenset[str]]:
        """The smaller checkpoints kept (of ``origin``, or all), per origin, by key."""
        where, args = ("", ()) if origin is None else (" WHERE origin = ?", (origin,))
        out: dict[str, set[str]] = {}
        for found, size, root in query(f"SELECT origin, size, root FROM behind{where}", args):  # noqa: S608
            if isinstance(found, str) and isinstance(size, int) and isinstance(root, bytes):
                out.setdefault(found, set()).add(_behind_key(size, root))
        return {o: frozenset(keys) for o, keys in out.items()}

    def watched(self, origin: str) -> frozenset[tuple[str, str]]:
        """What the entries of the stored tree of ``origin`` were read for (module docs;
        empty for a row written before it was kept)."""
        out = set()
        for what, value in self._query(
            "SELECT what, value FROM watched WHERE origin = ?", (origin,)
        ):
            if not (isinstance(what, str) and isinstance(value, str)):
                raise StorageError("the monitor database holds a malformed watched row")
            out.add((what, value))
        return frozenset(out) if ("", "") in out else frozenset()

    def _set_watched(self, origin: str, watched: frozenset[tuple[str, str]]) -> None:
        self._db.execute("DELETE FROM watched WHERE origin = ?", (origin,))
        self._db.executemany(
            "INSERT INTO watched VALUES (?, ?, ?)",
            [(origin, what, value) for what, value in sorted(watched | {("", "")})],
        )

    def add_watched(self, state: LogState, watched: frozenset[tuple[str, str]]) -> None:
        """Record that the entries of ``state`` (the stored one: :class:`Conflict` if another
        monitor advanced it meanwhile) were read for ``watched`` too."""
        try:
            with self._lock, immediate(self._db):
                rows = self._db.execute(
                    "SELECT size, root FROM logs WHERE origin = ?", (state.origin,)
                ).fetchall()
                if not rows or (rows[0][0], rows[0][1]) != (state.size, state.root):
                    raise Conflict(
                        f"another monitor stored {state.origin} meanwhile; the next round "
                        "checks against it"
                    )
                known = {
                    (str(w), str(v))
                    for w, v in self._db.execute(
                        "SELECT what, value FROM watched WHERE origin = ?", (state.origin,)
                    )
                }
                had = known if ("", "") in known else set()
                self._set_watched(state.origin, frozenset(had) | watched)
        except sqlite3.Error as exc:
            raise self._write_failed(exc) from exc

    def advance(
        self,
        state: LogState,
        *,
        expected: LogState | None,
        watched: frozenset[tuple[str, str]] = frozenset(),
        uses: Sequence[tuple[str, int, OneTimeKeyUse]] = (),
    ) -> list[KeyReuse]:
        """Store ``state`` if the stored one is still ``expected`` (its size and root; ``None``
        or size 0: no row yet); :class:`Conflict` if another monitor advanced it meanwhile,
        :class:`StorageError` if the stored one is behind its high-water mark. The mark is
        raised once the new state is committed. ``watched``: what every entry of the new
        tree was read for (the previous ones included).

        ``uses``: the one-time key uses the new entries name, as ``(check kind, entry index,
        use)`` in entry order, kept in the same transaction (module docs); each one whose key
        and leaf a use kept before (of any origin, or earlier in ``uses``) had with another
        signature hash is returned as a :class:`KeyReuse`, read in that transaction too (two
        monitors advancing two logs at once cannot both miss it)."""

        def expect(current: LogState | None) -> None:
            was = None if expected is None or not expected.note else expected
            if (current is None) != (was is None) or (
                current is not None
                and was is not None
                and (current.size, current.root) != (was.size, was.root)
            ):
                size = 0 if current is None else current.size
                raise Conflict(
                    f"another monitor stored {state.origin} at size {size} meanwhile; "
                    "the next round checks against it"
                )

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO logs VALUES (?, ?, ?, ?, ?, ?)",
                (
                    state.origin,
                    state.size,
                    state.root,
                    state.note,
                    b"".join(state.compact),
                    state.updated,
                ),
            )
            self._set_watched(state.origin, watched)
            if not uses:
                return
            rows = self._kept_rows(self._in_transaction, state.origin)
            self._check_kept(key, rows, kept)  # none deleted: a reuse of one would go unseen
            before = 0 if expected is None or not expected.note else expected.size
            reused.extend(_keep_uses(db, state.origin, before, uses))
            rows = self._kept_rows(self._in_transaction, state.origin)
            tally.append(Kept.of(rows.get(key, [])))

        key = _USES + state.origin
        _, kept, _ = self._marks()  # read before the database: it is written after it
        reused: list[KeyReuse] = []
        tally: list[Kept] = []
        self._advance(state, expect=expect, write=write)
        if tally and self._water is not None:  # as a fork proof's: raised after the commit
            self._water.raise_kept(self._instance, key, tally[0])
        return reused

    def pin(self, url: str) -> tuple[str, tuple[str, ...]] | None:
        """(origin, vkeys) first seen at ``url``, if any."""
        rows = self._query("SELECT origin, keys FROM pins WHERE url = ?", (url,))
        if not rows:
            return None
        origin, keys = rows[0]
        try:
            values = json.loads(str(keys))
        except (ValueError, RecursionError) as exc:
            raise StorageError("the monitor database holds a malformed pin") from exc
        if not isinstance(values, list) or not all(isinstance(k, str) for k in values):
            raise StorageError("the monitor database holds a pin whose keys are not a list")
        return str(origin), tuple(values)

    def set_pin(self, url: str, origin: str, keys: tuple[str, ...]) -> None:
        self._query("INSERT OR REPLACE INTO pins VALUES (?, ?, ?)", (url, origin, json.dumps(keys)))

    def add_fork(self, origin: str, proof: bytes, at: int) -> int:
        """Keep a fork proof (its JSON); the id of the one kept already for the same two
        notes, if any: a fork found again at every round is kept once."""
        notes = _fork_notes(proof)

        def write(db: sqlite3.Connection) -> tuple[int, bool]:
            for ident, kept in db.execute(
                "SELECT id, proof FROM forks WHERE origin = ? ORDER BY id", (origin,)
            ):
                if notes is not None and isinstance(kept, bytes) and _fork_notes(kept) == notes:
                    return int(ident), False
            cursor = db.execute(
                "INSERT INTO forks (origin, proof, at) VALUES (?, ?, ?)", (origin, proof, at)
            )
            return int(cursor.lastrowid or 0), True

        return self._keep(origin, write)

    def forks(self) -> list[tuple[int, str, bytes, int]]:
        out = []
        for ident, origin, proof, at in self._query(
            "SELECT id, origin, proof, at FROM forks ORDER BY id"
        ):
            if not (
                isinstance(ident, int)
                and isinstance(origin, str)
                and isinstance(proof, bytes)
                and isinstance(at, int)
            ):
                raise StorageError("the monitor database holds a malformed fork row")
            out.append((ident, origin, proof, at))
        return out

    def add_behind(self, behind: Behind) -> bool:
        """Keep ``behind`` (once per origin, size and root) until :meth:`drop_behind`; one
        kept already is seen again at ``behind.seen``. At most 64 are kept per origin, and
        none is dropped before it is settled: a new one past that is not kept (``False``).
        Dropping the oldest would let a log's key holder launder a fork shown once by
        serving 64 genuine older checkpoints before any round settles them."""

        def write(db: sqlite3.Connection) -> tuple[bool, str | None]:
            # seen again: now (a URL that still serves it keeps it among the newest)
            updated = db.execute(
                "UPDATE behind SET seen = max(seen, ?) WHERE origin = ? AND size = ? AND root = ?",
                (behind.seen, behind.origin, behind.size, behind.root),
            ).rowcount
            if updated:
                return True, _behind_key(behind.size, behind.root)
            (count,) = db.execute(
                "SELECT count(*) FROM behind WHERE origin = ?", (behind.origin,)
            ).fetchone()
            if count >= _MAX_BEHIND:
                return False, None
            db.execute(
                "INSERT INTO behind VALUES (?, ?, ?, ?, ?, ?)",
                (
                    behind.origin,
                    behind.size,
                    behind.root,
                    behind.note,
                    behind.url,
                    behind.seen,
                ),
            )
            return True, _behind_key(behind.size, behind.root)

        return self._held_write(behind.origin, write)

    def behind(self, origin: str) -> list[Behind]:
        """The smaller checkpoints of ``origin`` kept to be checked, by size
        (:class:`StorageError` if one its high-water file holds is not among them)."""
        _, _, held = self._marks()  # read before the database: it is written after it
        out = []
        for row in self._query(
            "SELECT origin, size, root, note, url, seen FROM behind WHERE origin = ? "
            "ORDER BY size, root",
            (origin,),
        ):
            found, size, root, note, url, seen = row
            if not (
                isinstance(found, str)
                and isinstance(size, int)
                and size > 0
                and isinstance(root, bytes)
                and len(root) == _HASH
                and isinstance(note, bytes)
                and isinstance(url, str)
                and isinstance(seen, int)
            ):
                raise StorageError("the monitor database holds a malformed smaller checkpoint")
            _check_note(note, found, size, root, f"a smaller checkpoint of {found}")
            out.append(Behind(found, size, root, note, url, seen))
        self._check_held(origin, held, frozenset(_behind_key(b.size, b.root) for b in out))
        return out

    def drop_behind(self, behind: Behind) -> None:
        """Settle ``behind``: its high-water file lets it go, then its row is deleted."""
        self._held_delete(
            behind.origin,
            _behind_key(behind.size, behind.root),
            lambda db: db.execute(
                "DELETE FROM behind WHERE origin = ? AND size = ? AND root = ?",
                (behind.origin, behind.size, behind.root),
            ),
        )
