"""The fleet's directory and registry: manufacture, status changes with events, lazy nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.fleet_world import make_fleet, node_class
from tests.platform.node_world import NOW, World, make_world

from ironroot.errors import ConfigError, Conflict, NotFound
from ironroot.fleet import Fleet


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("fleet-world")) as w:
        yield w


def test_manufactured_nodes_are_pending_booted_platforms(world: World, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    assert fleet.node_ids() == ["node-0001", "node-0002", "node-0003"]
    assert fleet.status_counts() == {"pending": 3, "admitted": 0, "quarantined": 0}
    again = Fleet.open(tmp_path / "fleet")
    platform = again.node("node-0002")
    assert platform.state().boots == 1
    assert [e.kind for e in again.events(node="node-0002")] == ["manufactured"]


def test_a_status_change_is_recorded_with_its_reason(world: World, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    record = fleet.set_status(
        "node-0001",
        "quarantined",
        "debug unlocked",
        now=NOW,
        evidence={"claim": "debug"},
        ear_id="ear-1",
    )
    assert record.status == "quarantined"
    assert record.ear_id == "ear-1"
    event = fleet.events(node="node-0001")[-1]
    assert event.kind == "quarantined"
    assert event.detail == {"reason": "debug unlocked", "claim": "debug"}


def test_registry_refusals(world: World, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    with pytest.raises(NotFound):
        fleet.node("node-0009")
    with pytest.raises(ConfigError):
        fleet.set_status("node-0001", "trusted", "no such status", now=NOW)
    with pytest.raises(Conflict):
        Fleet.create(tmp_path / "fleet", node_class=node_class(world))
    with pytest.raises(NotFound):
        Fleet.open(tmp_path / "nowhere")
