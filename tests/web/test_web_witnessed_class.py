"""The dashboard's release alerts for a fleet whose class requires witnesses: the class's
statements are witnessed statements, and what the fleet runs and trusts is read from the
Transparent Statements in them (docs/platform.md, "Witnesses")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.fleet_world import node_class
from tests.fleet.witnessed_world import witnessed_class
from tests.platform.node_world import NOW, OTHER, PLATFORM, World, make_world

from ironroot.fleet import Fleet
from ironroot.web import Dashboard, DashboardConfig
from ironroot.web._fleet import entry_id_of


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("web-witnessed-world")) as w:
        yield w


def test_release_alerts_read_a_witnessed_classes_statements(world: World, tmp_path: Path) -> None:
    # Old behaviour: the class's witnessed statements did not parse as Transparent Statements,
    # so the fleet seemed to run no firmware product at all and its own PFM statement showed
    # as a "new release" it does not run; a release of its BMC firmware by an issuer the class
    # does not trust raised no alert.
    klass = witnessed_class(world, node_class(world))
    fleet = Fleet.create(tmp_path / "fleet", node_class=klass)
    assert fleet.node_class(klass.name).trust.witnesses is not None
    assert entry_id_of(klass.pfm_statement) == entry_id_of(world.pfm_ts)
    bundle = world.release("bmc", "2.0").bundle
    world.publish("bmc", bundle, iss=OTHER)  # someone else's release of the fleet's BMC
    config = DashboardConfig(
        tmp_path / "dashboard", logs=(world.root / "trusted-log",), fleet=fleet.directory
    )
    dashboard = Dashboard(config, clock=lambda: NOW)
    try:
        alerts = dashboard._unannounced()
    finally:
        dashboard.close()
    bmc = world.model("bmc")
    critical = [a for a in alerts if a.severity == "critical"]
    assert [(a.kind, f"{OTHER} logged 1 statement(s) about {bmc}" in a.what) for a in critical] == [
        ("unannounced release", True)
    ]
    assert not [a for a in alerts if f"about {PLATFORM}" in a.what]
