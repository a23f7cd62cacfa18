"""A fleet of a few nodes built on the platform tests' world (vendor, logs, releases).

Manufacturing a node (a RoT provisioned, a platform created, booted once) is most of what a
fleet test costs, and most tests want the same few nodes of the same class: :func:`manufacture`
makes the nodes of a given class, count, vendor CA and time once per process, keeps a copy
beside the world, and gives later fleets a copy of it (a copied fleet opens as itself:
it holds no absolute path).

The fleet's SQLite files are never opened as plain files here: closing any file descriptor of
a database file drops every POSIX lock this process holds on it, so another process (the CLI,
a server under test) would take the live database for unused and checkpoint or remove its
write-ahead log under this one. They are copied with SQLite's backup API and left out of the
inputs' digest (they hold nothing manufacturing reads).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

from tests.platform.node_world import NOW, VENDOR, World

from ironroot.fleet import Fleet, NodeClass
from ironroot.platform import COMPONENTS, DEVICES, DeviceInfo
from ironroot.rot import VendorCA


def node_class(world: World, version: str = "1.0", name: str = "node-7") -> NodeClass:
    return NodeClass(
        name,
        world.trust(),
        world.pfm,
        world.pfm_ts,
        {c: world.release(c, version).bundle for c in COMPONENTS},
        {c: world.release(c, version).statements for c in COMPONENTS},
        {d: DeviceInfo(VENDOR, world.model(d)) for d in DEVICES},
        {c: 64 * 1024 for c in COMPONENTS},
    )


def make_fleet(world: World, directory: Path, nodes: int) -> tuple[Fleet, VendorCA]:
    fleet = Fleet.create(directory, node_class=node_class(world))
    return manufacture(fleet, nodes, now=NOW, templates=world.root)


_MADE: dict[str, tuple[Path, VendorCA]] = {}
_SQLITE: tuple[str, ...] = (".db", ".sqlite3", ".db-wal", ".db-shm", ".db-journal")


def _is_sqlite(path: Path) -> bool:
    return path.name.endswith(_SQLITE) or path.name.endswith(("-wal", "-shm", "-journal"))


def _copy(source: str, target: str) -> None:
    """``shutil.copytree``'s copy: a database by the backup API (consistent, and no plain
    descriptor of it opened and closed), its journal files not at all."""
    if not _is_sqlite(Path(source)):
        shutil.copy2(source, target)
    elif source.endswith((".db", ".sqlite3")):
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()


def _copy_fleet(source: Path, target: Path) -> None:
    shutil.copytree(source, target, copy_function=_copy)


def _inputs(fleet: Fleet, count: int, now: dt.datetime, vendor_ca: VendorCA | None) -> str:
    """A digest of everything manufacturing reads: the fleet's files (its class: images,
    statements, PFM, trust), the count, the time and the vendor CA's roots."""
    digest = hashlib.sha256(b"%d %s\0" % (count, now.isoformat().encode()))
    for root in vendor_ca.trust_anchors if vendor_ca is not None else ():
        digest.update(hashlib.sha256(root).digest())
    for path in sorted(p for p in fleet.directory.rglob("*") if p.is_file()):
        if _is_sqlite(path):
            continue
        digest.update(str(path.relative_to(fleet.directory)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def manufacture(
    fleet: Fleet,
    count: int,
    *,
    now: dt.datetime,
    templates: Path,
    vendor_ca: VendorCA | None = None,
) -> tuple[Fleet, VendorCA]:
    """``fleet.add_nodes(count, vendor_ca=..., now=now)`` on a fleet that has no nodes yet,
    and the fleet to use afterwards. The first fleet with these inputs in this process is
    manufactured for real and copied to ``templates``; a later one is replaced by a copy of
    that (the same nodes, keys and registry). Without ``vendor_ca`` a new vendor CA
    provisions the nodes (the copy's is the first fleet's); it is returned with the fleet."""
    key = _inputs(fleet, count, now, vendor_ca)
    made = _MADE.get(key)
    if made is None:
        ca = vendor_ca or VendorCA.generate(now=NOW - dt.timedelta(days=2))
        fleet.add_nodes(count, vendor_ca=ca, now=now)
        template = templates / "fleet-templates" / key[:16]
        _copy_fleet(fleet.directory, template)
        _MADE[key] = (template, ca)
        return fleet, ca
    template, ca = made
    directory = fleet.directory
    shutil.rmtree(directory)
    _copy_fleet(template, directory)
    return Fleet.open(directory), ca


def add_class(fleet: Fleet, klass: NodeClass, nodes: int, *, vendor_ca: VendorCA) -> list[str]:
    """Another class in ``fleet``, stored as :meth:`Fleet.create` stores its first (the class's
    folder and its name in ``fleet.json``: no verb adds one yet), and ``nodes`` new nodes of it."""
    klass.save(fleet.directory / "class" / klass.name)
    index = fleet.directory / "fleet.json"
    doc = json.loads(index.read_text(encoding="utf-8"))
    doc["classes"].append(klass.name)
    index.write_text(json.dumps(doc), encoding="utf-8")
    return fleet.add_nodes(nodes, vendor_ca=vendor_ca, now=NOW, node_class=klass.name)
