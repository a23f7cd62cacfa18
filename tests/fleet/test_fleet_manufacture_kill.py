"""A real ``kill -9`` of ``ironroot fleet add`` at points spread over its file operations: the
registry never names a node whose folder is not whole, and the next ``add_nodes`` makes the
node the killed one did not register (it removes the half-made folder), bootable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.fleet_world import node_class
from tests.platform.node_world import NOW, World, make_world

from ironroot.cli import main
from ironroot.cli.rot import load_vendor_ca
from ironroot.fleet import Fleet
from kill_points import KILLER, run_killer
from scratch import in_memory

AT = NOW.isoformat().replace("+00:00", "Z")
CA_AT = "2026-05-30T12:00:00+00:00"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("manufacture-kill-world")) as w:
        yield w


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("manufacture-kill-") as directory:
        yield directory


def test_a_kill_anywhere_in_fleet_add_leaves_the_registry_whole_and_is_undone(
    world: World, tmp_path: Path
) -> None:
    assert main(["rot", "ca-init", "--out", str(tmp_path / "ca"), "--at", CA_AT]) == 0
    (tmp_path / "killer.py").write_text(KILLER)

    def argv(fleet: Path) -> list[str]:
        return [
            *("fleet", "add", "--fleet", str(fleet), "--vendor-ca", str(tmp_path / "ca")),
            *("--nodes", "1", "--at", AT, "--json"),
        ]

    counted = Fleet.create(tmp_path / "counted", node_class=node_class(world))
    tally = tmp_path / "tally"
    done = run_killer(
        tmp_path / "killer.py", argv(counted.directory), IRONROOT_TEST_KILL_TALLY=str(tally)
    )
    assert done.returncode == 0, done
    operations = int(tally.read_text())
    assert operations > 20
    ca = load_vendor_ca(tmp_path / "ca")
    for kill_at in (operations // 3, operations - 3):
        fleet = Fleet.create(tmp_path / f"kill-{kill_at}", node_class=node_class(world))
        killed = run_killer(
            tmp_path / "killer.py", argv(fleet.directory), IRONROOT_TEST_KILL_AT=str(kill_at)
        )
        assert killed.returncode == -9, kill_at
        fleet = Fleet.open(fleet.directory)
        if fleet.node_ids() == ["node-0001"]:  # registered: whole
            assert fleet.node("node-0001").boot(now=NOW).ok, kill_at
            continue
        assert fleet.node_ids() == [], kill_at
        assert fleet.add_nodes(1, vendor_ca=ca, now=NOW) == ["node-0001"], kill_at
        assert fleet.node("node-0001").boot(now=NOW).ok, kill_at
