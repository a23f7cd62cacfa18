"""The admission state kept in the fleet's ``fleet.db`` beside the registry — operator holds,
VM placements, the EARs (:class:`_State`) and the credential store — opened by :func:`_stores`,
and :func:`unusable_credentials`, which reads them.

Apart from :mod:`ironroot.fleet._admission` so that a reader of the registry (``fleet
status``) pays for the tables it reads, not for the verifier and its policy engine (CEL) that
an admission needs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from ironroot._fileio import fsync_dir
from ironroot.errors import ConfigError, Conflict, IronrootError, StorageError
from ironroot.fleet._credentials import CredentialStore, current_credential_fault
from ironroot.fleet._sqlite import SqliteFile

if TYPE_CHECKING:
    from ironroot.fleet._fleet import Fleet

__all__ = ["ADMISSION_DIR", "Placement", "unusable_credentials"]

ADMISSION_DIR: Final = "admission"


def _text(now: dt.datetime) -> str:
    if now.tzinfo is None:
        raise ConfigError("now must be timezone-aware")
    return now.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _directory(fleet: Fleet) -> Path:
    return fleet.directory / ADMISSION_DIR


@dataclass(frozen=True, slots=True)
class Placement:
    """A confidential VM placed on a node: ``running`` until its node is quarantined."""

    vm: str
    node: str
    state: str
    at: str
    reason: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "vm": self.vm,
            "node": self.node,
            "state": self.state,
            "at": self.at,
            "reason": self.reason,
        }


# --- holds and placements -----------------------------------------------------------------

_STATE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS holds (
    node TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS placements (
    vm TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS placements_node ON placements (node, state);
CREATE TABLE IF NOT EXISTS ears (
    ear_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    at TEXT NOT NULL,
    token BLOB NOT NULL,
    evidence BLOB
);
CREATE INDEX IF NOT EXISTS ears_node ON ears (node);
"""

# Stores kept in files of their own before they moved into fleet.db: their rows are imported
# once, then the old file is renamed <name>.migrated.
_COLUMNS: Final = {
    "credentials": "serial, node, plane, ear_id, not_before, not_after, revoked_at, reason",
    "holds": "node, reason, at",
    "placements": "vm, node, state, at, reason",
}
_LEGACY: Final = (
    ("credentials.db", ("credentials",)),
    ("admission.db", ("holds", "placements")),
)


class _State:
    """Operator holds, VM placements and the EARs (``fleet.db``, beside the registry)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = SqliteFile(path, "the admission state", _STATE_SCHEMA)
        self.tx = self._file.tx
        self.read = self._file.read

    def hold(self, node: str, reason: str, now: dt.datetime) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO holds (node, reason, at) VALUES (?, ?, ?)",
                (node, reason, _text(now)),
            )

    def release(self, node: str) -> bool:
        with self.tx() as db:
            return bool(db.execute("DELETE FROM holds WHERE node = ?", (node,)).rowcount)

    def held(self, node: str) -> str | None:
        with self.read() as db:
            row = db.execute("SELECT reason FROM holds WHERE node = ?", (node,)).fetchone()
        return None if row is None else str(row[0])

    def _last_event_and_hold(self, node: str, kind: str) -> tuple[int, str | None]:
        """The ``seq`` of ``node``'s latest registry event of ``kind`` (0: none, as
        :meth:`ironroot.fleet.Fleet.last_event` reads it) and its hold (:meth:`held`), in one
        statement (admission's commit reads both)."""
        with self.read() as db:
            latest, reason = db.execute(
                "SELECT (SELECT MAX(seq) FROM events WHERE node = ? AND kind = ?), "
                "(SELECT reason FROM holds WHERE node = ?)",
                (node, kind, node),
            ).fetchone()
        return int(latest or 0), None if reason is None else str(reason)

    def store_ear(
        self, node: str, ear_id: str, token: bytes, now: dt.datetime, evidence: bytes | None = None
    ) -> None:
        """Keep ``token`` as ``node``'s latest EAR, with the ``evidence`` it appraised. A node
        keeps its latest, the one its registry row names (what it was admitted or quarantined
        on) and the ones its newest credential of each plane names (what it holds, revoked or
        not: an audit of a quarantined node proves its identity with that EAR) — four at most
        with two planes; any other of its EARs is dropped."""
        with self.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO ears (ear_id, node, at, token, evidence) "
                "VALUES (?, ?, ?, ?, ?)",
                (ear_id, node, _text(now), token, evidence),
            )
            db.execute(
                "DELETE FROM ears WHERE node = ? AND ear_id != ? AND ear_id IS NOT "
                "(SELECT ear_id FROM nodes WHERE id = ?) AND ear_id NOT IN "
                "(SELECT ear_id FROM credentials WHERE rowid IN "
                "(SELECT MAX(rowid) FROM credentials WHERE node = ? GROUP BY plane))",
                (node, ear_id, node, node),
            )

    def upgrade(self) -> None:
        """Give an ``ears`` table made before evidence was kept beside each EAR its
        ``evidence`` column (the EARs stored before have none: ``NULL``)."""
        with self.read() as db:
            if "evidence" in {str(row[1]) for row in db.execute("PRAGMA table_info(ears)")}:
                return
        with self.tx() as db:
            columns = {str(row[1]) for row in db.execute("PRAGMA table_info(ears)")}
            if "evidence" not in columns:  # not added meanwhile by another process
                db.execute("ALTER TABLE ears ADD COLUMN evidence BLOB")

    def latest_ear(self, node: str) -> bytes | None:
        with self.read() as db:
            row = db.execute(
                "SELECT token FROM ears WHERE node = ? ORDER BY rowid DESC LIMIT 1", (node,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def ear(self, ear_id: str) -> bytes | None:
        with self.read() as db:
            row = db.execute("SELECT token FROM ears WHERE ear_id = ?", (ear_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def running(self) -> dict[str, int]:
        with self.read() as db:
            rows = db.execute(
                "SELECT node, COUNT(*) FROM placements WHERE state = 'running' GROUP BY node"
            ).fetchall()
        return {str(n): int(c) for n, c in rows}

    def place(self, vm: str, node: str, now: dt.datetime) -> Placement:
        with self.tx() as db:
            row = db.execute("SELECT node, state FROM placements WHERE vm = ?", (vm,)).fetchone()
            if row is not None and row[1] == "running":
                raise Conflict(f"{vm} runs on {row[0]} already", code="vm-placed")
            db.execute(
                "INSERT OR REPLACE INTO placements (vm, node, state, at, reason) "
                "VALUES (?, ?, 'running', ?, '')",
                (vm, node, _text(now)),
            )
        return Placement(vm, node, "running", _text(now))

    def stop_node(self, node: str, reason: str, now: dt.datetime) -> list[str]:
        with self.tx() as db:
            vms = [
                str(r[0])
                for r in db.execute(
                    "SELECT vm FROM placements WHERE node = ? AND state = 'running' ORDER BY vm",
                    (node,),
                )
            ]
            db.executemany(
                "UPDATE placements SET state = 'stopped', at = ?, reason = ? WHERE vm = ?",
                [(_text(now), reason, vm) for vm in vms],
            )
        return vms

    def placements(self, node: str | None = None) -> list[Placement]:
        sql = "SELECT vm, node, state, at, reason FROM placements"
        args: tuple[str, ...] = ()
        if node is not None:
            sql += " WHERE node = ?"
            args = (node,)
        with self.read() as db:
            rows = db.execute(sql + " ORDER BY vm", args).fetchall()
        return [Placement(*r) for r in rows]


def _migrate(state: _State, directory: Path) -> None:
    """Import the rows of the stores that had files of their own (``_LEGACY``) into
    ``fleet.db``, once: the old file is renamed ``<name>.migrated`` after the import commits,
    and the rename synced (an import cut short is repeated whole; rows there already are
    kept)."""
    for name, tables in _LEGACY:
        old = directory / name
        if not old.is_file():
            continue
        try:
            source = sqlite3.connect(old, timeout=30)
            try:
                rows = {
                    t: source.execute(f"SELECT {_COLUMNS[t]} FROM {t}").fetchall()  # noqa: S608
                    for t in tables
                }
            finally:
                source.close()  # the last connection: its WAL is checkpointed into the file
        except sqlite3.Error as exc:
            raise StorageError(f"{old} cannot be imported into fleet.db: {exc}") from exc
        with state.tx() as db:
            for table, found in rows.items():
                columns = _COLUMNS[table]
                marks = ", ".join("?" * (columns.count(",") + 1))
                db.executemany(
                    f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608
                    found,
                )
        os.replace(old, old.with_name(name + ".migrated"))
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                old.with_name(name + suffix).unlink()
        # The rename made durable: one a power cut undid would import the old rows again,
        # over what changed since (a hold released would hold the node again).
        fsync_dir(directory)


_STATES: dict[Path, tuple[_State, CredentialStore]] = {}
_STATES_LOCK = threading.Lock()


def _stores(fleet: Fleet) -> tuple[_State, CredentialStore] | None:
    """The fleet's admission state and credential store (both in ``fleet.db``), ``None``
    before admission was set up."""
    directory = _directory(fleet)
    if not (directory / "config.json").is_file():
        return None
    with _STATES_LOCK:
        found = _STATES.get(directory)
        if found is None:
            found = (_State(fleet.database), CredentialStore(fleet.database))
            found[0].upgrade()
            if any((directory / name).is_file() for name, _ in _LEGACY):
                found[1].of_node("")  # its tables set up before rows are imported into them
                _migrate(found[0], directory)
            _STATES[directory] = found
        return found


def unusable_credentials(
    fleet: Fleet, nodes: Iterable[str] | None = None
) -> dict[str, IronrootError]:
    """The admitted nodes (of ``nodes``; ``None``: every node) that do not hold the credentials
    the registry issued them, each with why (:func:`ironroot.fleet.stored_credential_fault`):
    an admission commits before the node stores its credential files, so an ``attest`` killed
    between the two leaves a node admitted, its attestation recent, with no credential, one
    plane's only, or an older one that a quarantine revoked. ``fleet status`` lists them;
    ``fleet attest`` and the scanner attest them again with the pending and the due. Empty
    before admission is set up."""
    stores = _stores(fleet)
    if stores is None:
        return {}
    _, credentials = stores
    wanted = None if nodes is None else set(nodes)
    current, files = credentials._current_by_node()
    out: dict[str, IronrootError] = {}
    for record in fleet.records():
        if record.status != "admitted" or (wanted is not None and record.id not in wanted):
            continue
        fault = current_credential_fault(
            fleet, record.id, current.get(record.id, {}), files.get(record.id)
        )
        if fault is not None:
            out[record.id] = fault
    return out
