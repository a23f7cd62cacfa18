"""A real ``kill -9`` of ``ironroot fleet rollout`` at its state-changing file operations in
turn — thirty of its ~190, the first and the last always and the others drawn afresh
each run (``kill_points.some_points``: runs cover them all in turn; the whole sweep took about
a minute of the suite's ten) — after each kill, a node whose firmware changed (an image
committed or left pending) has a record of it — its ``rollout-update`` events, or the
``rollout-interrupted`` event the next rollout writes before it plans. No node is left
part-updated without a report.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.desired_world import Ops, make_ops
from tests.fleet.fleet_world import make_fleet
from tests.fleet.test_fleet_rollout import publish, releases
from tests.platform.node_world import NOW, World, make_world

from ironroot.errors import IronrootError
from ironroot.fleet import Fleet, rollout
from kill_points import KillServer, some_points
from scratch import in_memory

AT = NOW.isoformat().replace("+00:00", "Z")
_POINTS = 30
NODE = "node-0001"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("rollout-kill-world")) as w:
        yield w


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("rollout-kill-ops")) as o:
        yield o


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("rollout-kill-") as directory:
        yield directory


# What ``fleet rollout`` imports, once for the sweep's hundred-odd runs (kill_points.KillServer).
_PRELOAD = (
    *("ironroot.cli", "ironroot.cli.fleet", "ironroot.cli._platform_node", "ironroot.fleet._fleet"),
    *("ironroot.fleet._rollout", "ironroot.platform._update", "ironroot.platform._boot"),
    *("ironroot.spdm._requester", "ironroot.spdm._responder", "ironroot.rim", "sqlite3"),
)


def _firmware(fleet: Fleet) -> tuple[object, ...]:
    state = fleet.node(NODE).state()
    images = tuple(state.component(c).image for c in ("host",))
    return (*(i.sha384 if i is not None else None for i in images), state.pending)


def test_a_kill_at_any_file_operation_of_a_rollout_leaves_a_record(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "template", 1)
    publish(world, ops, fleet, {"host": "2.0"})
    before = _firmware(fleet)
    found = tmp_path / "releases"
    found.mkdir()
    for c in ("host",):
        release = world.release(c, "2.0")
        (found / f"{c}-2.0.bin").write_bytes(release.bundle)
        (found / f"{c}-2.0.ts").write_bytes(release.statements[0])

    def argv(directory: Path) -> list[str]:
        return [
            *("fleet", "rollout", "--fleet", str(directory), "--releases", str(found)),
            *("--at", AT, "--json"),
        ]

    counted = tmp_path / "counted"
    shutil.copytree(fleet.directory, counted)
    tally = tmp_path / "tally"
    with KillServer(tmp_path, _PRELOAD) as killer:
        assert killer.run(argv(counted), IRONROOT_TEST_KILL_TALLY=str(tally)).returncode == 0
        operations = int(tally.read_text())
        assert operations >= 4
        changed_once = False
        for kill_at in some_points(1, operations - 1, _POINTS):
            directory = tmp_path / f"kill-{kill_at}"
            shutil.copytree(fleet.directory, directory)
            done = killer.run(argv(directory), IRONROOT_TEST_KILL_AT=str(kill_at))
            assert done.returncode == -9
            killed = Fleet.open(directory)
            try:
                changed = _firmware(killed) != before
            except IronrootError:
                changed = True  # a state the node's next boot must decide
            with contextlib.suppress(IronrootError):  # e.g. an update undecided until it boots
                rollout(killed, releases(world, killed), now=NOW)
            kinds = {e.kind for e in killed.events(node=NODE)}
            if changed:
                changed_once = True
                assert kinds & {"rollout-update", "rollout-interrupted"}, kill_at
            shutil.rmtree(directory)
        assert changed_once
