"""A fleet: N nodes of the platform layer in one directory tree, and the registry that says
which of them the control plane admits.

::

    fleet/
      fleet.json           the node classes (each a :class:`NodeClass`, stored in class/<name>/)
      fleet-id             the fleet's identity (:meth:`Fleet.identity`: ``urn:uuid:<uuid4>``),
                           which every desired state of the fleet names
      fleet.db             the registry (SQLite): one row per node — class, status
                           (``pending``, ``admitted``, ``quarantined``), since when and why, the
                           current credential's serial and expiry, the EAR it was issued on —
                           and the fleet's event log
      class/<name>/        each class's trust, PFM, images and statements
      nodes/<id>/          each node: a :class:`ironroot.platform.Platform` (its RoT device in
                           ``rot/``), and ``credentials/`` (0700, made empty at manufacture):
                           its fleet credentials once admitted
                           (:func:`ironroot.fleet.store_node_credentials`)

State is lazy: the fleet object holds no per-node object; :meth:`Fleet.node` opens a node's
platform when asked, and every per-node fact lives on disk (the platform's journal, the
registry row). Nodes are manufactured by :meth:`Fleet.add_nodes`: a RoT device provisioned by
the given vendor CA (fused vendor key hash = the class trust's), a platform created with the
class's images and statements (verified as an update would be), booted once. A node's folder
holds ``.manufacturing`` from its first moment until the registry names it, and one
manufacture runs at a time (``.manufacture.lock`` in the fleet's folder): a node's folder
that holds ``.manufacturing`` (or nothing) and that the registry does not name is what a
crash during manufacturing left, which the next :meth:`Fleet.add_nodes` removes and makes
again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import shutil
import sqlite3
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import DirectoryLock, fsync_dir, make_dirs, read_limited, write_atomic
from ironroot.crypto import Algorithm
from ironroot.errors import (
    ConfigError,
    Conflict,
    InputUnavailable,
    IronrootError,
    LimitExceeded,
    NotFound,
    StorageError,
)
from ironroot.fleet._credentials import NODE_CREDENTIALS
from ironroot.fleet._sqlite import SqliteFile
from ironroot.platform import COMPONENTS, DEVICES, DeviceInfo, Platform, PlatformTrust
from ironroot.rot import Device, VendorCA, parse_certificate

__all__ = ["STATUSES", "Fleet", "FleetEvent", "NodeClass", "NodeRecord"]

STATUSES: Final = ("pending", "admitted", "quarantined")
_FORMAT: Final = 1
_MAX_FILE: Final = 512 * 1024 * 1024
_ID_WIDTH: Final = 4
_log = logging.getLogger("ironroot.fleet")

_MAKERS: Final = 4
_MAKING: Final = ".manufacturing"
"""In a node's folder from its first moment until the registry names the node."""
_NODE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a name, never a path


def is_node_id(text: str) -> bool:
    """Whether ``text`` has the syntax of a node id (a name, never a path): what a registry
    can hold, judged without asking it."""
    return _NODE_ID.fullmatch(text) is not None


def _no_node(node_id: str) -> NotFound:
    """The refusal of ``node_id``, named in at most 64 characters (a node id's most): the
    name may come from a request, and an error quoting it whole echoes it back in full."""
    shown = f"{node_id[:64]!r}…" if len(node_id) > 64 else repr(node_id)
    return NotFound(f"no node {shown} in the fleet")


_CLASS_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_IDENTITY: Final = re.compile(
    r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    class TEXT NOT NULL,
    status TEXT NOT NULL,
    since TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    credential_serial TEXT,
    credential_not_after TEXT,
    ear_id TEXT,
    last_attested TEXT
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    node TEXT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_node ON events (node, seq);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, seq);
"""


def _text(now: dt.datetime) -> str:
    if now.tzinfo is None:
        raise ConfigError("now must be timezone-aware")
    return now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: object) -> dt.datetime | None:
    """A time as :func:`_text` writes it (``None`` for anything else)."""
    if not isinstance(text, str):
        return None
    try:
        found = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo is not None else None


def _is_class_name(name: str) -> bool:
    """1-64 ASCII letters, digits, ``-`` and ``_``, starting with a letter or digit: a node
    class's name, its directory's, and what every credential of its nodes names
    (``O=<node class>`` and the fleet credential extension, :mod:`ironroot.fleet._credentials`),
    so a class the fleet holds is one whose nodes can be admitted."""
    return isinstance(name, str) and _CLASS_NAME.fullmatch(name) is not None


def _read(path: Path, limit: int, what: str) -> bytes:
    """A file a node class names, within ``limit``; ``ConfigError`` naming it otherwise."""
    try:
        return read_limited(path, limit)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc
    except (InputUnavailable, LimitExceeded) as exc:
        raise ConfigError(f"{what}: {exc.detail}") from exc


@dataclass(frozen=True, slots=True)
class NodeClass:
    """What every node of one class is built from: the platform trust, the PFM and its
    statement, one image per component with its transparent statements, the SPDM devices'
    vendor and model, and slot sizes."""

    name: str
    trust: PlatformTrust
    pfm: bytes
    pfm_statement: bytes
    images: Mapping[str, bytes]
    statements: Mapping[str, tuple[bytes, ...]]
    devices: Mapping[str, DeviceInfo]
    slot_sizes: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if not _is_class_name(self.name):
            raise ConfigError(
                f"node class {self.name!r}: 1-64 of A-Z a-z 0-9 - _, starting alphanumeric"
            )
        if set(self.images) != set(COMPONENTS) or set(self.devices) != set(DEVICES):
            raise ConfigError(
                f"a node class has an image per component ({', '.join(COMPONENTS)})"
                f" and vendor/model per device ({', '.join(DEVICES)})"
            )

    @classmethod
    def load_toml(cls, path: Path | str) -> NodeClass:
        """A class from an operator's ``class.toml`` (paths relative to it)::

        name = "node-7"
        trust = "platform.toml"
        pfm = "node.pfm"
        pfm_statement = "node.pfm.ts"
        [images]       # component -> bundle
        bmc = "bmc-1.0.bin"
        [statements]   # component -> transparent statements
        bmc = ["bmc-1.0.manifest.ts", "bmc-1.0.rim.ts"]
        [devices.nic]
        vendor = "https://vendor.example"
        model = "pkg:firmware/acme/nic"
        [slot_sizes]   # optional
        bmc = 33554432
        """
        file = Path(path)
        try:
            doc = tomllib.loads(_read(file, 1024 * 1024, "the node class").decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # TOML, UTF-8, int() of 4,301+ digits
            raise ConfigError(f"{file}: {exc}") from exc
        base = file.parent
        allowed = {
            "name",
            "trust",
            "pfm",
            "pfm_statement",
            "images",
            "statements",
            "devices",
            "slot_sizes",
        }
        if unknown := set(doc) - allowed:
            raise ConfigError(f"{file}: unknown settings {', '.join(sorted(unknown))}")
        # The whole shape first, as written: nothing coerced (a slot size of 1.9 is not 1), no
        # component misspelt (its statements would be left out), before any file is read.

        def file_name(value: object, what: str) -> Path:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{file}: {what} is a file name")
            return base / value

        tables: dict[str, dict[str, Any]] = {}
        for key, names, required in (
            ("images", COMPONENTS, True),
            ("statements", COMPONENTS, False),
            ("devices", DEVICES, True),
            ("slot_sizes", COMPONENTS, False),
        ):
            table = doc.get(key, None if required else {})
            if not isinstance(table, dict):
                raise ConfigError(f"{file}: [{key}] is a table")
            if stray := set(table) - set(names):
                raise ConfigError(f"{file}: {key}.{sorted(stray)[0]} is none of {', '.join(names)}")
            tables[key] = table
        name = doc.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"{file}: name is text")
        statements: dict[str, list[Path]] = {}
        for component, files in tables["statements"].items():
            if not isinstance(files, list):
                raise ConfigError(f"{file}: statements.{component} is a list of file names")
            statements[component] = [file_name(f, f"statements.{component}") for f in files]
        devices = {}
        for device, table in tables["devices"].items():
            if (
                not isinstance(table, dict)
                or set(table) != {"vendor", "model"}
                or not all(isinstance(v, str) and v for v in table.values())
            ):
                raise ConfigError(f"{file}: [devices.{device}] takes vendor and model (text)")
            devices[device] = DeviceInfo(table["vendor"], table["model"])
        for component, size in tables["slot_sizes"].items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ConfigError(f"{file}: slot_sizes.{component} is a number of bytes")
        trust = file_name(doc.get("trust"), "trust")
        pfm = file_name(doc.get("pfm"), "pfm")
        pfm_statement = file_name(doc.get("pfm_statement"), "pfm_statement")
        images = {c: file_name(v, f"images.{c}") for c, v in tables["images"].items()}
        return cls(
            name=name,
            trust=PlatformTrust.load_toml(trust),
            pfm=_read(pfm, _MAX_FILE, "pfm"),
            pfm_statement=_read(pfm_statement, _MAX_FILE, "pfm_statement"),
            images={c: _read(p, _MAX_FILE, f"images.{c}") for c, p in images.items()},
            statements={
                n: tuple(_read(p, _MAX_FILE, f"statements.{n}") for p in statements.get(n, []))
                for n in COMPONENTS
            },
            devices=devices,
            slot_sizes=dict(tables["slot_sizes"]) or None,
        )

    def save(self, directory: Path) -> None:
        """Store the class in ``directory`` (class.json + its files), for :meth:`load`."""
        make_dirs(directory)
        files: dict[str, Any] = {"images": {}, "statements": {}}
        write_atomic(directory / "pfm", self.pfm, mode=0o644)
        write_atomic(directory / "pfm.ts", self.pfm_statement, mode=0o644)
        for name in COMPONENTS:
            write_atomic(directory / f"{name}.bin", self.images[name], mode=0o644)
            files["images"][name] = f"{name}.bin"
            files["statements"][name] = []
            for i, statement in enumerate(self.statements.get(name, ())):
                write_atomic(directory / f"{name}.{i}.ts", statement, mode=0o644)
                files["statements"][name].append(f"{name}.{i}.ts")
        doc = {
            "format": _FORMAT,
            "name": self.name,
            "trust": self.trust.to_json(),
            "devices": {k: {"vendor": v.vendor, "model": v.model} for k, v in self.devices.items()},
            "slot_sizes": dict(self.slot_sizes) if self.slot_sizes else None,
            **files,
        }
        write_atomic(directory / "class.json", json.dumps(doc, indent=2).encode(), mode=0o644)

    @classmethod
    def load(cls, directory: Path) -> NodeClass:
        try:
            doc = json.loads(read_limited(directory / "class.json", 16 * 1024 * 1024))
            return cls(
                name=str(doc["name"]),
                trust=PlatformTrust.from_json(doc["trust"]),
                pfm=read_limited(directory / "pfm", _MAX_FILE),
                pfm_statement=read_limited(directory / "pfm.ts", _MAX_FILE),
                images={
                    k: read_limited(directory / v, _MAX_FILE) for k, v in doc["images"].items()
                },
                statements={
                    k: tuple(read_limited(directory / f, _MAX_FILE) for f in v)
                    for k, v in doc["statements"].items()
                },
                devices={k: DeviceInfo(v["vendor"], v["model"]) for k, v in doc["devices"].items()},
                slot_sizes=doc.get("slot_sizes"),
            )
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            raise StorageError(f"{directory}/class.json is malformed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A node's row in the registry."""

    id: str
    node_class: str
    status: str
    since: str
    reason: str = ""
    credential_serial: str | None = None
    credential_not_after: str | None = None
    ear_id: str | None = None
    last_attested: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "class": self.node_class,
            "status": self.status,
            "since": self.since,
            "reason": self.reason,
            "credential_serial": self.credential_serial,
            "credential_not_after": self.credential_not_after,
            "ear_id": self.ear_id,
            "last_attested": self.last_attested,
        }


@dataclass(frozen=True, slots=True)
class FleetEvent:
    seq: int
    at: str
    node: str | None
    kind: str
    detail: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "node": self.node,
            "kind": self.kind,
            "detail": dict(self.detail),
        }


class Fleet:
    """The fleet in a directory (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file = SqliteFile(directory / "fleet.db", "the fleet registry", _SCHEMA)
        self._classes: dict[str, NodeClass] = {}

    def __repr__(self) -> str:
        return f"Fleet({str(self.directory)!r})"

    # --- creation -------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path | str, *, node_class: NodeClass) -> Fleet:
        """An empty fleet with one node class (``Conflict`` when there is a fleet already, or
        the identity of one: a new fleet never takes over another's, and with it the
        approvals given for that one). One creation at a time (``<directory>/.create.lock``):
        another one under way is ``InUse``, so no file of its class is written over this
        one's (a class whose ``class.json`` names another's images)."""
        base = Path(directory)
        cls._refuse_existing(base)
        make_dirs(base)
        with DirectoryLock(base, ".create.lock", what="creation of the fleet"):
            cls._refuse_existing(base)  # made by a creation that ended meanwhile
            node_class.save(base / "class" / node_class.name)
            fleet = cls(base)
            write_atomic(
                base / "fleet.json",
                json.dumps({"format": _FORMAT, "classes": [node_class.name]}).encode(),
                mode=0o644,
                exclusive=True,
            )
        return fleet

    @staticmethod
    def _refuse_existing(base: Path) -> None:
        if (base / "fleet.json").exists():
            raise Conflict(f"{base} already holds a fleet")
        if (base / "fleet-id").exists():
            raise Conflict(
                f"{base} holds the identity of a fleet (fleet-id) but no fleet.json: a new "
                "fleet would take it over; remove it, or restore that fleet"
            )

    @classmethod
    def open(cls, directory: Path | str) -> Fleet:
        base = Path(directory)
        if not (base / "fleet.json").is_file():
            raise NotFound(f"no fleet in {base} (run `ironroot fleet init`)")
        return cls(base)

    def node_class(self, name: str) -> NodeClass:
        """One of the fleet's classes (``NotFound`` for any other name: never a path that
        leads elsewhere, like ``../class/x``)."""
        if name not in self._classes:
            path = self.directory / "class" / name
            if name not in self.classes() or not (path / "class.json").is_file():
                raise NotFound(f"no node class {name!r}")
            self._classes[name] = NodeClass.load(path)
        return self._classes[name]

    def identity(self) -> str:
        """The fleet's identity, ``urn:uuid:<random uuid4>`` in ``fleet-id``: what binds a
        desired state (and so its approvals) to this fleet, so that approvals by people and a
        log that several fleets trust are never replayed into another. It is made the first
        time it is asked for (a fleet made before identities existed gets one then); two
        processes asking at once agree, as the file is linked into place, never replaced. A
        copy of the fleet's directory is the same fleet (``StorageError`` for a damaged
        file)."""
        path = self.directory / "fleet-id"
        if not path.exists():
            made = f"urn:uuid:{uuid.uuid4()}\n".encode("ascii")
            with contextlib.suppress(Conflict):  # another process made it first: use theirs
                write_atomic(path, made, mode=0o644, exclusive=True)
        try:
            text = read_limited(path, 256).decode("ascii").strip()
        except OSError as exc:
            raise StorageError(f"{path} cannot be read: {exc.strerror}") from exc
        except (UnicodeDecodeError, IronrootError) as exc:  # too long, a directory
            raise StorageError(f"{path} is not the fleet's identity: it is damaged") from exc
        if not _IDENTITY.fullmatch(text):
            raise StorageError(f"{path} is not the fleet's identity: it is damaged")
        return text

    def classes(self) -> list[str]:
        """The fleet's node classes, the first the default (``StorageError`` for a
        ``fleet.json`` that does not name them: not JSON, or no list of class names)."""
        path = self.directory / "fleet.json"
        try:
            doc = json.loads(read_limited(path, 1024 * 1024))
        except OSError as exc:
            raise StorageError(f"{path} cannot be read: {exc.strerror}") from exc
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise StorageError(f"{path} is not JSON: the fleet's file is damaged") from exc
        names = doc.get("classes") if isinstance(doc, dict) else None
        if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
            raise StorageError(f"{path} names no node classes: the fleet's file is damaged")
        for name in names:  # a name, never a path: "../../etc" would lead out of the fleet
            if not _is_class_name(name):
                raise StorageError(
                    f"{path} names a node class {name!r} that is not a class name: "
                    "the fleet's file is damaged"
                )
        return names

    def add_nodes(
        self,
        count: int,
        *,
        vendor_ca: VendorCA,
        now: dt.datetime,
        node_class: str | None = None,
        progress: Any = None,
    ) -> list[str]:
        """Manufacture ``count`` nodes of ``node_class`` (default: the first class): a RoT
        provisioned by ``vendor_ca``, a platform from the class, booted once; registered
        ``pending`` until admitted. A node refused (the class's images and statements are
        verified as an update would be) raises that error and leaves no folder behind; a
        node's folder a crash left half-made is removed and the node made again (module
        docs); any other folder of a node the registry does not name is ``Conflict``. One
        manufacture at a time: another one running is ``InUse``."""
        if not 1 <= count <= 100_000:
            raise ConfigError("add 1 to 100,000 nodes at a time")
        name = self.classes()[0] if node_class is None else node_class
        klass = self.node_class(name)
        folder = self.directory / "nodes"
        make_dirs(folder)
        with DirectoryLock(
            self.directory, ".manufacture.lock", what="manufacture of nodes for the fleet"
        ):
            return self._add_nodes(count, vendor_ca, now, name, klass, progress)

    def _add_nodes(
        self,
        count: int,
        vendor_ca: VendorCA,
        now: dt.datetime,
        name: str,
        klass: NodeClass,
        progress: Any,
    ) -> list[str]:
        with self._db() as db:
            first = int(db.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]) + 1
        ids = [f"node-{number:0{_ID_WIDTH}d}" for number in range(first, first + count)]
        for node_id in ids:
            base = self.directory / "nodes" / node_id
            if not base.exists():
                continue
            if not _cut_short(base):
                raise Conflict(f"{base} exists but is not in the registry")
            _log.warning("%s: a manufacture cut short left it half-made: made again", base)
            shutil.rmtree(base)
            fsync_dir(base.parent)

        # The class's images are verified for the first node; the others with the same fuse
        # values and inputs reuse that answer (Platform.create's ``verified``).
        verified: dict[bytes, Any] = {}

        def make(node_id: str) -> str:
            base = self.directory / "nodes" / node_id
            try:
                make_dirs(base, exist_ok=False)
            except FileExistsError as exc:
                raise Conflict(f"{base} exists but is not in the registry") from exc
            try:
                write_atomic(base / _MAKING, b"", mode=0o644)
                # Its credentials' folder, made once here rather than by an admission: the
                # node attests again and again (a short-lived credential) into a folder it has.
                make_dirs(base / NODE_CREDENTIALS, mode=0o700)
                rot = Device.create(base / "rot")
                rot.provision(vendor_ca, vendor_key_hash=klass.trust.vendor_key_hash, now=now)
                platform = Platform.create(
                    base,
                    rot=base / "rot",
                    trust=klass.trust,
                    pfm=klass.pfm,
                    pfm_statement=klass.pfm_statement,
                    images=klass.images,
                    statements=klass.statements,
                    devices=klass.devices,
                    now=now,
                    slot_sizes=klass.slot_sizes,
                    verified=verified,
                )
                platform.boot(now=now)
                with self._db() as db:
                    db.execute(
                        "INSERT INTO nodes (id, class, status, since, reason) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (node_id, name, "pending", _text(now), "manufactured"),
                    )
                    db.execute(
                        "INSERT INTO events (at, node, kind, detail) VALUES (?, ?, ?, ?)",
                        (_text(now), node_id, "manufactured", json.dumps({"class": name})),
                    )
            except Exception:
                # Refused (the class's images or statements, as an update would refuse them)
                # or failed: the node is not registered, and what this call made of it goes,
                # so the class can be fixed and the node made again. (A kill leaves it, with
                # its .manufacturing: the next call removes it, above.)
                shutil.rmtree(base, ignore_errors=True)
                raise
            # Registered: the folder is the node's (a power cut that brings the file back
            # leaves it harmless, as only folders the registry does not name are looked at).
            (base / _MAKING).unlink()
            return node_id

        # Nodes are independent (each its own directory; the registry serializes its writes):
        # a few are made at once, which overlaps one node's disk syncs with another's work.
        made: list[str] = []
        with ThreadPoolExecutor(max_workers=min(_MAKERS, count)) as pool:
            futures = [pool.submit(make, node_id) for node_id in ids]
            try:
                for future in futures:
                    made.append(future.result())
                    if progress is not None:
                        progress(made[-1])
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return made

    # --- the registry -----------------------------------------------------------------------

    def _db(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._file.tx()

    @property
    def database(self) -> Path:
        """The registry's SQLite file (``fleet.db``), which the fleet's other stores share."""
        return self._file.path

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """One write transaction of ``fleet.db``: every write this thread makes inside it —
        registry, events, and the stores kept in the same file (credentials, admission
        state) — commits together, in one commit, or not at all. ``durable=False`` (for a
        grant whose loss fails closed: an admission) does not wait for the disk
        (:mod:`ironroot.fleet._sqlite`)."""
        with self._file.tx(durable=durable):
            yield

    def registry_generation(self) -> tuple[int, int, int]:
        """A value that changes whenever a write to ``fleet.db`` commits (a quarantine, an
        admission, an event), compared on one thread: equal before and after a read, the read
        is still what the registry holds (:meth:`ironroot.fleet._sqlite.SqliteFile.generation`;
        the key release gate's confirmation)."""
        return self._file.generation()

    def node_ids(self) -> list[str]:
        with self._file.read() as db:
            return [row[0] for row in db.execute("SELECT id FROM nodes ORDER BY id")]

    def record_of(self, node_id: str) -> NodeRecord:
        with self._file.read() as db:
            row = db.execute(
                "SELECT id, class, status, since, reason, credential_serial, "
                "credential_not_after, ear_id, last_attested FROM nodes "
                "WHERE id = ?",
                (node_id,),
            ).fetchone()
        if row is None:
            raise _no_node(node_id)
        return NodeRecord(*row)

    def _record_and_last_event(self, node_id: str, kind: str) -> tuple[NodeRecord | None, int]:
        """``node_id``'s registry row (``None``: no such node) and the ``seq`` of its latest
        event of ``kind`` (0: none), as one statement reads them (:meth:`record_of`,
        :meth:`last_event`)."""
        with self._file.read() as db:
            row = db.execute(
                "SELECT n.id, n.class, n.status, n.since, n.reason, n.credential_serial, "
                "n.credential_not_after, n.ear_id, n.last_attested, "
                "(SELECT MAX(seq) FROM events WHERE node = ? AND kind = ?) "
                "FROM (SELECT 1) LEFT JOIN nodes n ON n.id = ?",
                (node_id, kind, node_id),
            ).fetchone()
        return (None if row[0] is None else NodeRecord(*row[:9])), int(row[9] or 0)

    def records(self) -> list[NodeRecord]:
        with self._file.read() as db:
            rows = db.execute(
                "SELECT id, class, status, since, reason, credential_serial, "
                "credential_not_after, ear_id, last_attested FROM nodes "
                "ORDER BY id"
            ).fetchall()
        return [NodeRecord(*row) for row in rows]

    def set_status(
        self,
        node_id: str,
        status: str,
        reason: str,
        *,
        now: dt.datetime,
        evidence: Mapping[str, Any] | None = None,
        **fields: str | None,
    ) -> NodeRecord:
        """Move a node to ``status`` (and set registry ``fields``), with an event saying why."""
        self._set_status(node_id, status, reason, now=now, evidence=evidence, **fields)
        return self.record_of(node_id)

    def _set_status(
        self,
        node_id: str,
        status: str,
        reason: str,
        *,
        now: dt.datetime,
        evidence: Mapping[str, Any] | None = None,
        **fields: str | None,
    ) -> None:
        """:meth:`set_status` without reading the row back (admission, which does not use
        it)."""
        if status not in STATUSES:
            raise ConfigError(f"a node's status is one of {', '.join(STATUSES)}")
        allowed = {"credential_serial", "credential_not_after", "ear_id", "last_attested"}
        if unknown := set(fields) - allowed:
            raise ConfigError(f"unknown registry fields {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        sql = "UPDATE nodes SET status = ?, since = ?, reason = ?"
        sql += f", {assignments}" if assignments else ""
        with self._db() as db:
            changed = db.execute(
                sql + " WHERE id = ?", (status, _text(now), reason, *fields.values(), node_id)
            ).rowcount
            if not changed:
                raise _no_node(node_id)
            db.execute(
                "INSERT INTO events (at, node, kind, detail) VALUES (?, ?, ?, ?)",
                (_text(now), node_id, status, json.dumps({"reason": reason, **(evidence or {})})),
            )

    def note_attested(self, node_id: str, *, now: dt.datetime) -> None:
        """Set ``node_id``'s last attestation to ``now`` and nothing else (no status change,
        no event): an attestation refused for an operator's hold is one, and the scanner
        schedules the node's next by it."""
        with self._db() as db:
            changed = db.execute(
                "UPDATE nodes SET last_attested = ? WHERE id = ?", (_text(now), node_id)
            ).rowcount
        if not changed:
            raise _no_node(node_id)

    def record(
        self, node_id: str | None, kind: str, detail: Mapping[str, Any], *, now: dt.datetime
    ) -> None:
        """Append an event to the fleet's log."""
        with self._db() as db:
            db.execute(
                "INSERT INTO events (at, node, kind, detail) VALUES (?, ?, ?, ?)",
                (_text(now), node_id, kind, json.dumps(dict(detail))),
            )

    def record_repeated(
        self,
        node_id: str,
        kind: str,
        detail: Mapping[str, Any],
        *,
        same: str,
        now: dt.datetime,
        window: float,
        keep: int,
    ) -> None:
        """Append an event that anyone may cause again and again (an admission refused for
        evidence that is not the node's answer), in bounded space.

        A repeat folds into one event: when ``node_id``'s latest event of ``kind`` with the
        same ``detail[same]`` (the reason code) began less than ``window`` seconds before
        ``now``, it is replaced by one at the end of the log (a new ``seq``, ``at`` the
        latest time) holding the latest ``detail`` with ``count`` one more and its
        ``first_at`` kept; otherwise a new one starts (``count`` 1, ``first_at`` its own
        time). And only the ``keep`` latest events of ``kind`` are kept for the node (the
        oldest are deleted). Inside the caller's transaction, if any."""
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1 or not window > 0:
            raise ConfigError("repeated events fold within a positive window, keeping 1 or more")
        stamp = _text(now)
        count, first = 1, stamp
        with self._db() as db:
            rows = db.execute(
                "SELECT seq, at, detail FROM events WHERE node = ? AND kind = ? "
                "ORDER BY seq DESC LIMIT ?",
                (node_id, kind, keep),
            ).fetchall()
            for seq, at, text in rows:
                try:
                    earlier = json.loads(text) if isinstance(text, str) else None
                except (ValueError, RecursionError):  # nested too deep: damaged
                    earlier = None
                if not isinstance(earlier, dict) or earlier.get(same) != detail.get(same):
                    continue
                began = earlier.get("first_at", at)
                counted = earlier.get("count", 1)
                start = _parse_time(began)
                if (
                    start is not None
                    and isinstance(counted, int)
                    and not isinstance(counted, bool)
                    and counted >= 1
                    and dt.timedelta(0) <= now - start < dt.timedelta(seconds=window)
                ):
                    count, first = counted + 1, str(began)
                    db.execute("DELETE FROM events WHERE seq = ?", (seq,))
                break  # only the latest event of this reason: a run is one event
            db.execute(
                "INSERT INTO events (at, node, kind, detail) VALUES (?, ?, ?, ?)",
                (stamp, node_id, kind, json.dumps({**detail, "count": count, "first_at": first})),
            )
            db.execute(
                "DELETE FROM events WHERE node = ? AND kind = ? AND seq <= (SELECT seq FROM "
                "events WHERE node = ? AND kind = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (node_id, kind, node_id, kind, keep),
            )

    def last_event(self, node_id: str, kind: str) -> int:
        """The ``seq`` of ``node_id``'s latest event of ``kind`` (0: none). Inside a
        transaction of this thread, as that transaction sees it."""
        with self._file.read() as db:
            row = db.execute(
                "SELECT MAX(seq) FROM events WHERE node = ? AND kind = ?", (node_id, kind)
            ).fetchone()
        return int(row[0] or 0)

    def events(
        self,
        *,
        node: str | None = None,
        since: int = 0,
        limit: int = 1000,
        kind: str | None = None,
        latest: bool = False,
    ) -> list[FleetEvent]:
        """The events after ``since``, oldest first: at most ``limit``, of ``node`` and of
        ``kind`` when given — the first ``limit`` of them, or with ``latest`` the last
        ``limit`` (still oldest first)."""
        sql = "SELECT seq, at, node, kind, detail FROM events WHERE seq > ?"
        args: list[object] = [since]
        if node is not None:
            sql += " AND node = ?"
            args.append(node)
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        sql += f" ORDER BY seq {'DESC' if latest else ''} LIMIT ?"
        args.append(limit)
        with self._file.read() as db:
            rows = db.execute(sql, args).fetchall()
        if latest:
            rows.reverse()
        return [self._event(r) for r in rows]

    def _event(self, row: tuple[Any, ...]) -> FleetEvent:
        """One row of ``events`` as an event (``StorageError`` when the row is damaged: a
        detail that is not a JSON object, a time, node or kind that is not text)."""
        seq, at, node, kind, detail = row
        try:
            parsed = json.loads(detail) if isinstance(detail, str) else None
        except (ValueError, RecursionError):  # nested too deep: damaged
            parsed = None
        if (
            not isinstance(parsed, dict)
            or not isinstance(seq, int)
            or not isinstance(at, str)
            or not (node is None or isinstance(node, str))
            or not isinstance(kind, str)
        ):
            raise StorageError(f"{self._file.what}: event #{seq!r} is damaged")
        return FleetEvent(seq, at, node, kind, parsed)

    # --- nodes --------------------------------------------------------------------------------

    def _node_directory(self, node_id: str) -> Path:
        """The directory of a registered node (``NotFound`` for another id; ``StorageError``
        for a registered id that is not a name — ``..``, ``a/b`` in a damaged registry —
        which would lead out of ``nodes/``)."""
        return self._registered_directory(self.record_of(node_id))

    def _registered_directory(self, record: NodeRecord) -> Path:
        """The directory of the node ``record`` (the registry's row, read by the caller)."""
        if not _NODE_ID.fullmatch(record.id):
            raise StorageError(
                f"{self._file.what} registers a node {record.id!r} that is not a node id: "
                "it is damaged"
            )
        return self.directory / f"nodes/{record.id}"  # one join: an id holds no "/"

    def node(self, node_id: str) -> Platform:
        """The node's platform (opened now; nothing is kept)."""
        return Platform.open(self._node_directory(node_id))

    def _platform_of(self, record: NodeRecord) -> Platform:
        """The platform of the node whose registry row the caller has just read (``record``):
        :meth:`node` without reading the row again."""
        return Platform.open(self._registered_directory(record))

    def _rot_directory(self, node_id: str) -> Path:
        """The directory of a registered node's RoT device (``NotFound`` for another id)."""
        return self._node_directory(node_id) / "rot"

    def rot(self, node_id: str) -> Device:
        """The node's RoT device."""
        return Device(self._rot_directory(node_id))

    def idevid_certificate(self, node_id: str, alg: Algorithm) -> bytes:
        """The node's IDevID certificate (DER), read without opening its RoT device (it is
        public: what a verifier compares a quote's identity with)."""
        return Device.read_idevid_certificate(self._rot_directory(node_id), alg)

    def ueid(self, node_id: str) -> bytes:
        """The Ueid the node's RoT names in its IDevID certificate (``b""`` when it names
        none): what a verifier matches a quote's identity with."""
        return self._ueid_of(self.record_of(node_id))

    def _ueid_of(self, record: NodeRecord) -> bytes:
        """:meth:`ueid` of the node whose registry row the caller has just read."""
        directory = self._registered_directory(record) / "rot"
        certificate = Device.read_idevid_certificate(directory, Algorithm.ES384)
        return parse_certificate(certificate).dice.ueid or b""

    def status_counts(self) -> dict[str, int]:
        with self._file.read() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM nodes GROUP BY status").fetchall()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({str(s): int(n) for s, n in rows})
        return counts


def _cut_short(base: Path) -> bool:
    """Whether ``base``, a node's folder the registry does not name, is what a crash during
    its manufacture left: empty (the crash came right after it was made), or holding
    ``.manufacturing`` (module docs), and no link (never followed out of the fleet)."""
    if base.is_symlink() or not base.is_dir():
        return False
    names = os.listdir(base)
    return not names or _MAKING in names
