"""A service's small SQLite state file (the monitor's, the witness's): opened once, WAL with
``synchronous=FULL`` (a commit is durable when it returns), its schema created if missing,
and its schema version checked against ``meta('schema')``; :func:`immediate` is a write
transaction on such a connection (or any autocommit one). Every ``sqlite3.Error`` while
opening becomes :class:`~ironroot.errors.StorageError` naming the file's role; a file that is
not such a database, or holds another schema version, is refused and closed. So is one whose
schema holds bytes that are not UTF-8: SQLite's error message quotes them, and Python's
``sqlite3`` raises ``UnicodeDecodeError`` decoding it.

:class:`HighWater` is the file beside such a database that makes a rollback of it visible
(the monitor's ``<state>.verified``, the witness's ``<state>.cosigned``): JSON, replaced
atomically, never by anything but its service, under a lock file of its own, holding the
database's random instance id and, per log origin, the largest tree size and root the service
acted on (and, for the monitor, the signed note) and the tally of the evidence it kept of the
log (``kept``: the monitor's fork proofs, the witness's evidence rows; :class:`Kept`, a count
and a running SHA-256 over the rows in the order they were kept), and the keys of the rows the
service keeps only until it settles them (``held``: the monitor's smaller checkpoints; held
after the row commits, let go before it is deleted, both under the file's lock). It is raised
after each commit and before the service answers, and every read of the database's state checks
it first: a database behind its marks, one that holds fewer evidence rows of a log than were
tallied or others in their place, one that lacks a row held, another database's file, or either
one without the other is a :class:`~ironroot.errors.StorageError`. A database ahead of its file
(a service killed between its commit and the file) raises the file as it is opened: its trees,
and its evidence where the rows begin with the ones tallied, and its rows held where the
database holds every one held. A file written before tallies or held rows were kept (no
``kept``, no ``held``) is read as before and gains them as it is opened.

:class:`LatestStore` is what such a service's store (the monitor's, the witness's) is built
on: one table holding, per log origin, the latest tree it acted on, read only after its
high-water marks and checked against them, and advanced by one compare-and-set transaction
(``BEGIN IMMEDIATE``) that the marks are raised after; and one table of evidence, only ever
added to, by one transaction that checks the log's evidence against its tally first and
raises the tally after. Each store says how a row is read and checked, what it compares the
stored row against and how its errors are worded.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import sqlite3
import stat
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final, Generic, Protocol, TypeVar

from ironroot._fileio import write_atomic
from ironroot.errors import StorageError

__all__ = ["HighWater", "Kept", "LatestStore", "Mark", "immediate", "open_state_db"]

_MAX_HIGH_WATER_BYTES: Final = 16 * 1024 * 1024
_HASH: Final = 32
_ROLLED_BACK: Final = "rolled back or swapped, and cannot be trusted"
_KEPT_LABEL: Final = b"ironroot kept evidence\x00"


def open_state_db(
    path: Path | str, what: str, schema: str, version: str, *, create: bool = True
) -> sqlite3.Connection:
    """The connection to the ``what`` database at ``path`` (``:memory:`` for a throwaway
    one), in autocommit mode and shareable across threads (the caller serialises access).

    ``schema`` creates the tables when missing and must include ``meta(key, value)``;
    ``create=False`` opens only an existing database of this kind (for reading state)."""
    where = str(path)
    if not create and not Path(where).is_file():
        raise StorageError(f"no {what} state at {where}")
    try:
        db = sqlite3.connect(where, isolation_level=None, check_same_thread=False, timeout=30.0)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the {what} database {where}: {exc}") from exc
    try:
        if not create:
            db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(schema)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (version,))
        elif row[0] != version:
            raise StorageError(f"{where} has {what} schema {row[0]!r}, not {version}")
    except sqlite3.Error as exc:
        db.close()
        raise StorageError(f"{where} is not a {what} database: {exc}") from exc
    except UnicodeDecodeError as exc:  # the error message of a schema that is not UTF-8
        db.close()
        raise StorageError(f"{where} is not a {what} database: its schema is not UTF-8") from exc
    except StorageError:
        db.close()
        raise
    return db


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE … COMMIT`` transaction on an autocommit connection: the write
    lock is taken first, so what the body reads stays what it writes against (a
    compare-and-set); rolled back when the body raises. SQLite may have rolled it back
    itself already (``SQLITE_FULL``, ``SQLITE_IOERR``, ``SQLITE_NOMEM``): a ``ROLLBACK``
    then fails, and its error would hide the one that says what happened (a full disk)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@dataclass(frozen=True, slots=True)
class Mark:
    """A log's high-water mark: the largest tree acted on (``note``: its signed checkpoint,
    where the service keeps it)."""

    size: int
    root: bytes
    note: bytes | None = None


@dataclass(frozen=True, slots=True)
class Kept:
    """The evidence a service kept of a log (the monitor's fork proofs, the witness's evidence
    rows): how many rows, and the running digest of them in the order they were kept
    (:meth:`of`)."""

    count: int
    digest: bytes

    @classmethod
    def of(cls, rows: Iterable[bytes]) -> Kept:
        """The tally of the rows whose :func:`row_digest` are ``rows``, first kept first: the
        digest starts as 32 zero bytes and each row folds in as
        ``SHA-256("ironroot kept evidence\\0" || digest || row digest)``."""
        count, digest = 0, bytes(_HASH)
        for row in rows:
            count += 1
            digest = hashlib.sha256(_KEPT_LABEL + digest + row).digest()
        return cls(count, digest)


def row_digest(row: Iterable[object]) -> bytes:
    """The SHA-256 of a stored row's values (each tagged with its type and length): what a
    :class:`Kept` tally folds in."""
    out = hashlib.sha256()
    for value in row:
        if isinstance(value, bytes):
            tag, data = b"b", value
        elif isinstance(value, str):
            tag, data = b"s", value.encode("utf-8", "surrogatepass")
        elif isinstance(value, int):
            tag, data = b"i", str(value).encode()
        elif value is None:
            tag, data = b"n", b""
        else:
            tag, data = b"f", repr(value).encode()
        out.update(tag + len(data).to_bytes(8, "big") + data)
    return out.digest()


@dataclass(frozen=True, slots=True)
class _File:
    """A high-water file as read: whether a first binding wrote it before it stored its
    instance in the database (``binding``), and whether it has the ``kept`` and ``held``
    members (a file written before them has none, and gains them)."""

    instance: str
    marks: dict[str, Mark]
    kept: dict[str, Kept]
    binding: bool
    has_kept: bool
    held: dict[str, frozenset[str]]
    has_held: bool


class HighWater:
    """The high-water file of a state database (module docs).

    ``what`` names the service ("monitor", "witness") and ``verb`` what it did with a tree
    ("verified", "cosigned"); ``database`` and ``shown`` are how messages name the database
    and this file (a witness names no directory: anyone may send what it answers);
    ``consequence`` ends the refusal of a state behind its mark; ``notes`` says whether marks
    carry their note, which ``check`` (if given) verifies as each mark is read. ``evidence``
    names the rows of evidence the service keeps ("fork proofs"), whose tally per log is
    kept here too, and ``lost`` ends the refusal of a database that lost some. ``held``
    names the rows a service keeps until it settles them (the monitor's "smaller
    checkpoints"), whose keys per log are kept here while they are (:meth:`hold`,
    :meth:`release`), and ``held_lost`` ends the refusal of a database that lost one.
    ``tallies`` names other rows tallied like the evidence, under keys that begin with a
    prefix no origin has: prefix -> (what they are, what their loss would mean), as
    ``evidence`` and ``lost`` are for the evidence (the monitor's one-time key uses)."""

    def __init__(
        self,
        path: Path,
        *,
        what: str,
        verb: str,
        database: str,
        shown: str,
        consequence: str,
        evidence: str,
        lost: str,
        notes: bool = False,
        check: Callable[[str, Mark], None] | None = None,
        held: str = "",
        held_lost: str = "",
        tallies: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.path = path
        self._what = what
        self._verb = verb
        self._database = database
        self._shown = shown
        self._consequence = consequence
        self._evidence = evidence
        self._lost = lost
        self._notes = notes
        self._check = check
        self._held = held
        self._held_lost = held_lost
        self._tallies = dict(tallies or {})

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer of the file at a time (every process on this database)."""
        try:
            # never through a link: a planted one would have this create a file elsewhere
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            fd = os.open(f"{self.path}.lock", flags, 0o600)
        except OSError as exc:
            raise StorageError(
                f"cannot lock the high-water file {self._shown}: {_reason(exc)}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> tuple[str, dict[str, Mark]] | None:
        """(instance, {origin: mark}); ``None`` if there is no file; :class:`StorageError` if
        it is not one the service wrote."""
        found = self._read()
        return None if found is None else (found.instance, found.marks)

    def _read(self) -> _File | None:
        """The file as read (``None``: there is none)."""
        where = self._shown
        try:
            # without blocking: a named pipe in its place would wait for a writer for ever
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(fd, "rb") as file:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise StorageError(f"the high-water file {where} is not a regular file")
                data = file.read(_MAX_HIGH_WATER_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read the high-water file {where}: {_reason(exc)}") from exc
        if len(data) > _MAX_HIGH_WATER_BYTES:
            raise StorageError(f"the high-water file {where} is too large")
        try:
            value = json.loads(data)
            instance = value["instance"]
            logs = value["logs"]
            binding = value.get("binding", False)
            has_kept = "kept" in value
            tallies = value.get("kept", {})
            has_held = "held" in value
            holding = value.get("held", {})
            if not (
                isinstance(instance, str)
                and instance
                and isinstance(logs, dict)
                and isinstance(binding, bool)
                and isinstance(tallies, dict)
                and isinstance(holding, dict)
            ):
                raise TypeError("not a high-water file")
            marks: dict[str, Mark] = {}
            for origin, mark in logs.items():
                size = mark["size"]
                if not _count(size):
                    raise TypeError("not a size")
                root = base64.b64decode(mark["root"], validate=True)
                if len(root) != _HASH:
                    raise TypeError("not a root")
                note = base64.b64decode(mark["note"], validate=True) if self._notes else None
                marks[origin] = Mark(size, root, note)
            kept: dict[str, Kept] = {}
            for origin, tally in tallies.items():
                count = tally["count"]
                digest = base64.b64decode(tally["digest"], validate=True)
                if not (_count(count) and len(digest) == _HASH):
                    raise TypeError("not a tally")
                kept[origin] = Kept(count, digest)
            held: dict[str, frozenset[str]] = {}
            for origin, keys in holding.items():
                if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
                    raise TypeError("not a list of held rows")
                if keys:
                    held[origin] = frozenset(keys)
        except (ValueError, KeyError, TypeError, RecursionError, binascii.Error) as exc:
            raise StorageError(f"the high-water file {where} is malformed") from exc
        if self._check is not None:
            for origin, found in marks.items():
                self._check(origin, found)
        return _File(instance, marks, kept, binding, has_kept, held, has_held)

    def write(
        self,
        instance: str,
        marks: dict[str, Mark],
        kept: dict[str, Kept] | None = None,
        held: dict[str, frozenset[str]] | None = None,
        *,
        binding: bool = False,
    ) -> None:
        logs: dict[str, dict[str, object]] = {}
        for origin, mark in sorted(marks.items()):
            entry: dict[str, object] = {
                "size": mark.size,
                "root": base64.b64encode(mark.root).decode("ascii"),
            }
            if self._notes:
                entry["note"] = base64.b64encode(mark.note or b"").decode("ascii")
            logs[origin] = entry
        tallies = {
            origin: {"count": tally.count, "digest": base64.b64encode(tally.digest).decode("ascii")}
            for origin, tally in sorted((kept or {}).items())
        }
        holding = {origin: sorted(keys) for origin, keys in sorted((held or {}).items()) if keys}
        doc: dict[str, object] = {
            "instance": instance,
            "logs": logs,
            "kept": tallies,
            "held": holding,
        }
        if binding:
            doc["binding"] = True
        data = json.dumps(doc, indent=1).encode()
        try:
            write_atomic(self.path, data)
        except OSError as exc:
            raise StorageError(
                f"cannot write the high-water file {self._shown}: {_reason(exc)}"
            ) from exc

    def bind(
        self,
        *,
        stored: Callable[[], str],
        create: Callable[[str], str],
        empty: Callable[[], bool],
        caught_up: Callable[[dict[str, Mark]], dict[str, Mark]],
        kept_up: Callable[[dict[str, Kept]], dict[str, Kept]],
        held_up: Callable[[dict[str, frozenset[str]]], dict[str, frozenset[str]]] = dict,
    ) -> str:
        """The database's instance, once it and this file are known to belong together.

        ``stored`` reads the database's instance ("" without one); ``create`` stores the
        instance given unless it has one, and returns the one stored; ``empty`` says whether
        the database has acted on nothing yet; ``caught_up`` raises marks to the database's
        rows ahead of them (a service killed between its commit and its mark),
        ``kept_up`` the evidence tallies to the rows kept after them, and ``held_up`` the
        rows held to those the database holds where it holds every one held (a service
        killed between a row's commit and its hold). A database
        with neither instance nor file (new, or older than them) gets both: the file first,
        marked ``binding``, then the instance, then the file without the mark; one with
        nothing acted on gets its file (a first open cut short before it). A database without
        an instance beside a ``binding`` file is one whose first open was cut short between
        the file and the commit: it takes the file's instance when it is exactly at the
        file's marks and tallies. Any other file beside a database without an instance is
        refused (another database's file, or the database rolled back). A file written
        before evidence tallies, or held rows, gains them."""
        with self.lock():
            instance = stored()
            found = self._read()
            if not instance:
                if found is None:
                    instance = secrets.token_hex(16)
                    self.write(instance, caught_up({}), kept_up({}), held_up({}), binding=True)
                elif (
                    found.binding
                    and found.marks == caught_up({})
                    and (not found.has_kept or found.kept == kept_up({}))
                    and (not found.has_held or found.held == held_up({}))
                ):
                    instance = found.instance  # its binding was cut short before the commit
                else:
                    raise StorageError(
                        f"the {self._what} database {self._database} has no instance but a "
                        f"high-water file {self._shown} is beside it: it is not the file the "
                        f"{self._what} wrote (deleted, or another restored); its state was "
                        f"{_ROLLED_BACK}"
                    )
                if create(instance) != instance:  # every binding holds the lock: never
                    raise StorageError(
                        f"the {self._what} database {self._database} took another instance "
                        "while it was bound"
                    )
                self.write(instance, caught_up({}), kept_up({}), held_up({}))
                return instance
            if found is None:
                if empty():
                    self.write(instance, {}, {})
                    return instance
                raise StorageError(
                    f"the high-water file {self._shown} of the {self._what} database "
                    f"{self._database} is missing: its state may have been {_ROLLED_BACK}"
                )
            if found.instance != instance:
                raise StorageError(
                    f"the {self._what} database {self._database} is not the one its high-water "
                    f"file {self._shown} was written for (another {self._what}'s file, or "
                    f"swapped): its state was {_ROLLED_BACK}"
                )
            marks = caught_up(found.marks)
            kept = kept_up(found.kept)
            held = held_up(found.held)
            # behind, a binding cut short after its commit, or a file older than tallies
            if (
                marks != found.marks
                or kept != found.kept
                or held != found.held
                or found.binding
                or not found.has_kept
                or not found.has_held
            ):
                self.write(instance, marks, kept, held)
            return instance

    def _mine(self, instance: str) -> _File:
        """The file, read before the database (it is written after it): it must be there and
        be this database's."""
        found = self._read()
        if found is None or found.instance != instance:
            raise StorageError(
                f"the high-water file {self._shown} of the {self._what} database "
                f"{self._database} went missing or was replaced: its state may have been "
                f"{_ROLLED_BACK}"
            )
        return found

    def marks(self, instance: str) -> dict[str, Mark]:
        """The marks, read before the database (they are written after it): the file must be
        there and be this database's."""
        return self._mine(instance).marks

    def watermarks(
        self, instance: str
    ) -> tuple[dict[str, Mark], dict[str, Kept], dict[str, frozenset[str]]]:
        """:meth:`marks`, the evidence tallies and the rows held, read at once."""
        found = self._mine(instance)
        return found.marks, found.kept, found.held

    def hold(self, instance: str, origin: str, key: str) -> None:
        """Record the row ``key`` of ``origin`` (just committed) as held; under
        :meth:`lock`, taken by the caller around the commit too (so a release of it by
        another process cannot come between)."""
        found = self._mine(instance)
        keys = found.held.get(origin, frozenset())
        if key not in keys:
            held = {**found.held, origin: keys | {key}}
            self.write(instance, found.marks, found.kept, held)

    def release(self, instance: str, origin: str, key: str) -> None:
        """Stop holding the row ``key`` of ``origin``, before it is deleted (a crash between
        the two leaves a row not held: no alarm); under :meth:`lock`, taken by the caller
        around the delete too."""
        found = self._mine(instance)
        keys = found.held.get(origin, frozenset())
        if key in keys:
            held = {**found.held, origin: keys - {key}}
            self.write(instance, found.marks, found.kept, held)

    def check_held(self, origin: str, rows: Iterable[str], held: dict[str, frozenset[str]]) -> None:
        """:class:`StorageError` if the database lacks a row of ``origin`` held (``rows``:
        the keys of those it holds)."""
        keys = held.get(origin)
        if not keys:
            return
        lost = keys - set(rows)
        if lost:
            raise StorageError(
                f"the {self._what} database {self._database} lost {len(lost)} of the "
                f"{len(keys)} {self._held} of {origin} it kept to settle (its high-water file "
                f"{self._shown}): the state was {_ROLLED_BACK}; {self._held_lost}"
            )

    @staticmethod
    def held_up(
        held: dict[str, frozenset[str]], rows: dict[str, frozenset[str]]
    ) -> dict[str, frozenset[str]]:
        """``held`` raised to the rows the database holds, per origin, where it holds every
        one held (a service killed between a row's commit and its hold); a database that lost
        one is left to be refused as it is read."""
        out = {origin: keys for origin, keys in held.items() if keys}
        for origin, found in rows.items():
            keys = out.get(origin, frozenset())
            if keys <= found and found:
                out[origin] = found
        return out

    def raise_to(self, instance: str, origin: str, mark: Mark) -> None:
        """Record ``mark`` (just committed) as ``origin``'s if it is larger."""
        with self.lock():
            found = self._mine(instance)
            kept = found.marks.get(origin)
            if kept is None or kept.size < mark.size:
                self.write(instance, {**found.marks, origin: mark}, found.kept, found.held)

    def raise_kept(self, instance: str, origin: str, tally: Kept) -> None:
        """Record ``tally`` (of the evidence of ``origin`` just committed) if it counts more
        rows than the one recorded."""
        with self.lock():
            found = self._mine(instance)
            kept = found.kept.get(origin)
            if kept is None or kept.count < tally.count:
                self.write(instance, found.marks, {**found.kept, origin: tally}, found.held)

    def mark(self, size: int, root: bytes, note: bytes) -> Mark:
        """The mark of a tree acted on (with its note where this file keeps notes)."""
        return Mark(size, root, note if self._notes else None)

    def check(self, origin: str, size: int, root: bytes | None, marks: dict[str, Mark]) -> None:
        """:class:`StorageError` if the database's tree of ``origin`` (``size`` 0 and ``root``
        ``None`` when it has none) is behind its mark."""
        mark = marks.get(origin)
        if mark is None:
            return
        if size < mark.size or (size == mark.size and root is not None and root != mark.root):
            raise StorageError(
                f"the {self._what} database {self._database} holds {origin} at size {size}, "
                f"but size {mark.size} was {self._verb} (its high-water file {self._shown}): "
                f"the state was {_ROLLED_BACK}; {self._consequence}"
            )

    def check_kept(self, origin: str, rows: list[bytes], kept: dict[str, Kept]) -> None:
        """:class:`StorageError` if the evidence of ``origin`` the database holds (``rows``:
        each one's :func:`row_digest`, first kept first) is not the one tallied, or more:
        fewer rows, or others in their place."""
        tally = kept.get(origin)
        if tally is None:
            return
        evidence, then, named = self._evidence, self._lost, origin
        for prefix, (what, lost_then) in self._tallies.items():
            if origin.startswith(prefix):
                evidence, then, named = what, lost_then, origin.removeprefix(prefix)
        if len(rows) < tally.count:
            lost = f"holds {len(rows)} {evidence} of {named}, but {tally.count} were kept"
        elif Kept.of(rows[: tally.count]) != tally:
            lost = f"holds other {evidence} of {named} than the {tally.count} kept"
        else:
            return
        raise StorageError(
            f"the {self._what} database {self._database} {lost} (its high-water file "
            f"{self._shown}): the state was {_ROLLED_BACK}; {then}"
        )

    @staticmethod
    def kept_up(kept: dict[str, Kept], rows: dict[str, list[bytes]]) -> dict[str, Kept]:
        """``kept`` raised to the evidence the database holds (``rows``: per origin, each
        one's :func:`row_digest`, first kept first) where it holds more rows that begin with
        the ones tallied (a service killed between its commit and its tally); a database
        that lost some, or holds others, is left to be refused as it is read."""
        out = dict(kept)
        for origin, found in rows.items():
            tally = out.get(origin)
            if tally is None or (
                len(found) > tally.count and Kept.of(found[: tally.count]) == tally
            ):
                out[origin] = Kept.of(found)
        return out


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _Latest(Protocol):
    """A row of a :class:`LatestStore`: a log's latest tree, with its signed note."""

    @property
    def origin(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def root(self) -> bytes: ...
    @property
    def note(self) -> bytes: ...


_R = TypeVar("_R", bound=_Latest)
_T = TypeVar("_T")


class LatestStore(ABC, Generic[_R]):
    """A state database whose table ``_TABLE`` holds, per log origin, the latest tree the
    service acted on (module docs), guarded by a :class:`HighWater` file (none for a
    ``:memory:`` database).

    A store names that table and the ``_COLUMNS`` a row is read with (``origin`` first),
    reads and checks a row (:meth:`_row`: :class:`StorageError` for one the service could not
    have written) and words a failure of SQLite (:meth:`_read_failed`, :meth:`_write_failed`).
    ``water`` makes the high-water file of the database at the path given. It names too the
    table ``_KEPT`` of the evidence it keeps (rows only ever added, by :meth:`_keep`) and the
    ``_KEPT_COLUMNS`` a row's digest covers (``id, origin`` first): their tally per origin is
    in the high-water file, checked wherever a mark is."""

    _TABLE: ClassVar[str]
    _COLUMNS: ClassVar[str]
    _KEPT: ClassVar[str]
    _KEPT_COLUMNS: ClassVar[str]

    def __init__(
        self,
        path: Path | str,
        *,
        what: str,
        schema: str,
        version: str,
        water: Callable[[str], HighWater],
        create: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self._db = open_state_db(path, what, schema, version, create=create)
        self._water: HighWater | None = None
        self._instance = ""
        if str(path) not in ("", ":memory:"):
            self._water = water(str(path))
            try:
                self._instance = self._water.bind(
                    stored=self._stored_instance,
                    create=self._create_instance,
                    empty=self._empty,
                    caught_up=self._caught_up,
                    kept_up=lambda kept: HighWater.kept_up(kept, self._kept_rows(self._query)),
                    held_up=lambda held: HighWater.held_up(held, self._held_rows(self._query)),
                )
            except BaseException:
                self._db.close()
                raise

    @staticmethod
    @abstractmethod
    def _row(row: tuple[object, ...]) -> _R:
        """The stored tree of ``row`` (read with ``_COLUMNS``), checked."""

    @abstractmethod
    def _read_failed(self, exc: sqlite3.Error) -> StorageError:
        """The error a failed read of the store is reported as."""

    @abstractmethod
    def _write_failed(self, exc: sqlite3.Error) -> StorageError:
        """The error a failed write of the store is reported as."""

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                return list(self._db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise self._read_failed(exc) from exc

    def _empty(self) -> bool:
        """Whether the database has acted on nothing (no tree, no evidence)."""
        return not any(
            self._query(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608
            for table in (self._TABLE, self._KEPT)
        )

    def _kept_rows(
        self,
        query: Callable[[str, tuple[object, ...]], list[tuple[object, ...]]],
        origin: str | None = None,
    ) -> dict[str, list[bytes]]:
        """The evidence kept (of ``origin``, or all), per origin: each row's
        :func:`row_digest`, first kept first (a row whose origin is not text is left to be
        refused as it is read)."""
        where, args = ("", ()) if origin is None else (" WHERE origin = ?", (origin,))
        out: dict[str, list[bytes]] = {}
        for row in query(
            f"SELECT {self._KEPT_COLUMNS} FROM {self._KEPT}{where} ORDER BY id",  # noqa: S608
            args,
        ):
            if isinstance(row[1], str):
                out.setdefault(row[1], []).append(row_digest(row))
        return out

    def _held_rows(
        self,
        query: Callable[[str, tuple[object, ...]], list[tuple[object, ...]]],
        origin: str | None = None,
    ) -> dict[str, frozenset[str]]:
        """The keys of the rows held until settled (of ``origin``, or all), per origin: none
        but in a store that holds rows (the monitor's smaller checkpoints)."""
        return {}

    def _in_transaction(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        """A query of the transaction under way (its lock held)."""
        return list(self._db.execute(sql, args).fetchall())

    def _stored_instance(self) -> str:
        rows = self._query("SELECT value FROM meta WHERE key = 'instance'")
        return str(rows[0][0]) if rows else ""

    def _create_instance(self, instance: str) -> str:
        """Store ``instance`` unless the database has one; the one it has then."""
        self._query("INSERT OR IGNORE INTO meta VALUES ('instance', ?)", (instance,))
        return self._stored_instance()  # another process's, if it got there first

    def _caught_up(self, marks: dict[str, Mark]) -> dict[str, Mark]:
        """``marks`` raised to each stored tree ahead of its mark (a row the service could not
        have written is left to be refused as it is read)."""
        assert self._water is not None
        out = dict(marks)
        for row in self._query(f"SELECT {self._COLUMNS} FROM {self._TABLE}"):  # noqa: S608
            try:
                stored = self._row(row)
            except StorageError:
                continue
            kept = out.get(stored.origin)
            if kept is None or kept.size < stored.size:
                out[stored.origin] = self._water.mark(stored.size, stored.root, stored.note)
        return out

    def _marks(self) -> tuple[dict[str, Mark], dict[str, Kept], dict[str, frozenset[str]]]:
        """The high-water marks, evidence tallies and rows held, read before the database
        (they are written after it)."""
        return ({}, {}, {}) if self._water is None else self._water.watermarks(self._instance)

    def _check_held(
        self,
        origin: str,
        held: dict[str, frozenset[str]],
        rows: frozenset[str] | None = None,
        *,
        locked: bool = False,
    ) -> None:
        """:class:`StorageError` if the database lost a row of ``origin`` it held (``rows``:
        the keys of those it holds, read after ``held``; queried if not given). A row held
        when ``held`` was read may have been settled since by another process (released,
        then deleted, under the high-water file's lock): one that seems lost is looked for
        again under that lock, unless it is held already (``locked``)."""
        water = self._water
        if water is None or not held.get(origin):
            return
        if rows is None:
            rows = self._held_rows(self._query, origin).get(origin, frozenset())
        if held[origin] <= rows or locked:
            water.check_held(origin, rows, held)
            return
        with water.lock():
            _, _, again = self._marks()
            rows = self._held_rows(self._query, origin).get(origin, frozenset())
            water.check_held(origin, rows, again)

    def _held_write(
        self,
        origin: str,
        write: Callable[[sqlite3.Connection], tuple[_T, str | None]],
    ) -> _T:
        """Keep a row held until settled: under the high-water file's lock (a release by
        another process cannot come between the commit and the hold), in one ``BEGIN
        IMMEDIATE`` transaction, check that the rows held of ``origin`` are all there, let
        ``write`` add one (what it returns, and the key of the row it added, ``None`` if
        none); then hold that key."""
        water = self._water
        with contextlib.ExitStack() as stack:
            if water is not None:
                stack.enter_context(water.lock())
            _, _, held = self._marks()
            try:
                with self._lock, immediate(self._db):
                    rows = self._held_rows(self._in_transaction, origin).get(origin, frozenset())
                    self._check_held(origin, held, rows, locked=water is not None)
                    out, key = write(self._db)
            except sqlite3.Error as exc:
                raise self._write_failed(exc) from exc
            if water is not None and key is not None:
                water.hold(self._instance, origin, key)
            return out

    def _held_delete(
        self, origin: str, key: str, delete: Callable[[sqlite3.Connection], object]
    ) -> None:
        """Settle a row held: under the high-water file's lock, stop holding ``key``, then
        ``delete`` the row (a crash between them leaves a row not held: no alarm)."""
        water = self._water
        with contextlib.ExitStack() as stack:
            if water is not None:
                stack.enter_context(water.lock())
                water.release(self._instance, origin, key)
            try:
                with self._lock, immediate(self._db):
                    delete(self._db)
            except sqlite3.Error as exc:
                raise self._write_failed(exc) from exc

    def _check_kept(self, origin: str, rows: dict[str, list[bytes]], kept: dict[str, Kept]) -> None:
        """:class:`StorageError` if the evidence of ``origin`` in ``rows`` lost some of its
        tally."""
        if self._water is not None:
            self._water.check_kept(origin, rows.get(origin, []), kept)

    def _check_mark(self, origin: str, stored: _R | None, marks: dict[str, Mark]) -> None:
        """:class:`StorageError` if ``stored`` (``None``: no row) is behind its mark."""
        if self._water is not None:
            self._water.check(
                origin,
                0 if stored is None else stored.size,
                None if stored is None else stored.root,
                marks,
            )

    def _latest(self, origin: str) -> _R | None:
        """The stored tree of ``origin`` (``None``: none), once checked against its mark."""
        marks, kept, held = self._marks()
        rows = self._query(
            f"SELECT {self._COLUMNS} FROM {self._TABLE} WHERE origin = ?",  # noqa: S608
            (origin,),
        )
        stored = self._row(rows[0]) if rows else None
        self._check_mark(origin, stored, marks)
        if origin in kept:
            self._check_kept(origin, self._kept_rows(self._query, origin), kept)
        self._check_held(origin, held)
        return stored

    def _all_latest(self) -> list[_R]:
        """Every stored tree, by origin, once each mark and evidence tally is checked (an
        origin marked but missing too)."""
        marks, kept, held = self._marks()
        rows = self._query(f"SELECT {self._COLUMNS} FROM {self._TABLE} ORDER BY origin")  # noqa: S608
        stored = [self._row(r) for r in rows]
        found = {s.origin: s for s in stored}
        for origin in marks:
            self._check_mark(origin, found.get(origin), marks)
        if kept:
            evidence = self._kept_rows(self._query)
            for origin in kept:
                self._check_kept(origin, evidence, kept)
        for origin in held:
            self._check_held(origin, held)
        return stored

    def _advance(
        self,
        new: _R,
        *,
        expect: Callable[[_R | None], None],
        write: Callable[[sqlite3.Connection], None],
    ) -> None:
        """In one ``BEGIN IMMEDIATE`` transaction: read the stored tree of ``new.origin``,
        check it and the evidence of its log against their marks, let ``expect`` raise if it
        is not the one the caller started from, and ``write`` the new one; then raise the mark
        to ``new``."""
        marks, kept, _ = self._marks()
        try:
            with self._lock, immediate(self._db):
                row = self._db.execute(
                    f"SELECT {self._COLUMNS} FROM {self._TABLE} WHERE origin = ?",  # noqa: S608
                    (new.origin,),
                ).fetchone()
                current = None if row is None else self._row(row)
                self._check_mark(new.origin, current, marks)
                if new.origin in kept:
                    rows = self._kept_rows(self._in_transaction, new.origin)
                    self._check_kept(new.origin, rows, kept)
                expect(current)
                write(self._db)
        except sqlite3.Error as exc:
            raise self._write_failed(exc) from exc
        if self._water is not None:
            self._water.raise_to(
                self._instance, new.origin, self._water.mark(new.size, new.root, new.note)
            )

    def _keep(self, origin: str, write: Callable[[sqlite3.Connection], tuple[_T, bool]]) -> _T:
        """In one ``BEGIN IMMEDIATE`` transaction: check the evidence of ``origin`` against
        its tally, and let ``write`` keep a row of it in ``_KEPT`` (what it returns, and
        whether it added one); then, if it did, raise the tally to the rows kept."""
        _, kept, _ = self._marks()
        try:
            with self._lock, immediate(self._db):
                rows = self._kept_rows(self._in_transaction, origin)
                self._check_kept(origin, rows, kept)
                out, added = write(self._db)
                if added:
                    tally = Kept.of(self._kept_rows(self._in_transaction, origin).get(origin, []))
        except sqlite3.Error as exc:
            raise self._write_failed(exc) from exc
        if added and self._water is not None:
            self._water.raise_kept(self._instance, origin, tally)
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
