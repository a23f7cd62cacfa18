"""A power cut keeps what the fleet's registry and markers point at: every folder the fleet
makes (its class, each node's folder, a desired-state folder, the rollout's in-flight markers)
has its name synced into its parent before the call that made it returns or goes on
(tests/durability.py). A node registered whose folder vanished, or a node updated whose
in-flight marker vanished (no ``rollout-interrupted`` record), is what they prevent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.desired_world import Ops, make_ops
from tests.fleet.fleet_world import node_class
from tests.fleet.test_fleet_rollout import publish, releases
from tests.platform.node_world import NOW, World, make_world

from durability import SyncLog, unsynced_names
from ironroot.fleet import Fleet, rollout
from ironroot.rot import VendorCA


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("fleet-durability-world")) as w:
        yield w


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("fleet-durability-ops")) as o:
        yield o


def _lost(root: Path, log: SyncLog) -> list[str]:
    """What a power cut now could lose beneath ``root`` (the registry's SQLite files are
    SQLite's to sync)."""
    return [
        str(p.relative_to(root.parent))
        for p in unsynced_names(root, log)
        if not p.name.startswith("fleet.db")
    ]


def test_every_folder_the_fleet_makes_is_kept_through_a_power_cut(
    world: World, ops: Ops, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SyncLog(monkeypatch)
    root = tmp_path / "fleet"
    fleet = Fleet.create(root, node_class=node_class(world))
    assert _lost(root, log) == []
    fleet.add_nodes(1, vendor_ca=VendorCA.generate(now=NOW - dt.timedelta(days=2)), now=NOW)
    assert _lost(root, log) == []
    publish(world, ops, fleet, {"host": "2.0"})
    assert _lost(root, log) == []

    marker = root / "desired" / "node-7" / "rollout-inflight" / "node-0001.json"
    seen: list[tuple[bool, bool]] = []

    def progress(event: str, node: str, component: str | None) -> None:
        if event == "update":  # the node's firmware is about to change: its marker is kept
            seen.append((log.kept(marker), log.kept(marker.parent)))

    assert rollout(fleet, releases(world, fleet), now=NOW, progress=progress).ok
    assert seen == [(True, True)]
    assert _lost(root, log) == []
