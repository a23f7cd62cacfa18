"""A fleet of a few nodes built on the platform tests' world (vendor, logs, releases)."""

from __future__ import annotations

import datetime as dt
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
    ca = VendorCA.generate(now=NOW - dt.timedelta(days=2))
    fleet.add_nodes(nodes, vendor_ca=ca, now=NOW)
    return fleet, ca
