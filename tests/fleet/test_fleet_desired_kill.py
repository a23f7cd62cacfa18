"""A real ``kill -9`` of ``ironroot fleet desired publish``: at the dangerous point (just after
``current.json`` names the new version, before its ``desired-state`` event is written) and at
every state-changing file operation of the publish in turn.

After every kill, what anyone reads is the old state with no event for the new one, or the new
state with exactly one event for it; and the operator's retry of the same publish ends at the
new state, with its event once.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.desired_world import ALICE, BOB, Ops, make_ops
from tests.fleet.fleet_world import make_fleet
from tests.platform.node_world import NOW, World, make_world

from ironroot.errors import StorageError
from ironroot.fleet import DesiredState, DesiredStore, Fleet
from kill_points import KillServer
from scratch import in_memory

AT = NOW.isoformat().replace("+00:00", "Z")
# What ``fleet desired publish`` imports, once for a sweep's runs (kill_points.KillServer).
PRELOAD = ("ironroot.cli", "ironroot.cli.fleet", "ironroot.fleet._desired", "ironroot.fleet._fleet")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("desired-kill-world")) as w:
        yield w


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("desired-kill-ops")) as o:
        yield o


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("desired-kill-") as directory:
        yield directory


def _state(world: World, fleet: Fleet, version: int, **versions: str) -> DesiredState:
    bundles = {c: world.release(c, v).bundle for c, v in versions.items()}
    return DesiredState.build(
        fleet.node_class("node-7"), version, bundles=bundles, fleet=fleet.identity()
    )


def _setup(world: World, ops: Ops, root: Path) -> tuple[Path, DesiredState, list[str]]:
    """A fleet with v1 in force (its template), v2's approvals on the log as files, and the
    publish command line (without --fleet)."""
    fleet, _ = make_fleet(world, root / "template", 1)
    store = DesiredStore(fleet)
    store.init(ops.governance())
    store.publish("node-7", ops.approve(_state(world, fleet, 1), ALICE, BOB), now=NOW)
    v2 = _state(world, fleet, 2, host="2.0")
    argv = ["fleet", "desired", "publish", "--at", AT, "--json"]
    for i, statement in enumerate(ops.approve(v2, ALICE, BOB)):
        (root / f"v2.{i}.ts").write_bytes(statement)
        argv += ["--statement", str(root / f"v2.{i}.ts")]
    return fleet.directory, v2, argv


def _run(killer: KillServer, argv: list[str], directory: Path, **env: str) -> int:
    return killer.run([*argv, "--fleet", str(directory)], **env).returncode


def _events(fleet: Fleet, version: int) -> int:
    return sum(
        1
        for e in fleet.events(kind="desired-state")
        if e.detail["class"] == "node-7" and e.detail["version"] == version
    )


def _check_after_kill(fleet: Fleet, v2: DesiredState) -> None:
    """Old without the event, or new with it once; then the retry finishes it."""
    store = DesiredStore(fleet)
    if store.version("node-7") == 1:
        if 2 in store.history("node-7"):  # v2.cbor written, not yet pointed at: the retry
            with pytest.raises(StorageError) as info:  # finishes it
                store.current("node-7")
            assert info.value.code == "desired-state-rolled-back"
        else:
            assert store.current("node-7").state.version == 1
        assert _events(fleet, 2) == 0
    else:
        assert store.current("node-7").state == v2
        assert _events(fleet, 2) == 1
    assert _events(fleet, 1) == 1


def test_a_kill_just_after_current_json_keeps_the_event(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    template, v2, argv = _setup(world, ops, tmp_path)
    directory = tmp_path / "fleet"
    shutil.copytree(template, directory)
    with KillServer(tmp_path, PRELOAD) as killer:
        code = _run(killer, argv, directory, IRONROOT_TEST_KILL_AFTER_REPLACING="current.json")
        assert code == -9
        fleet = Fleet.open(directory)
        # The dangerous point was reached: v2 is named in force, and its event was never written.
        assert DesiredStore(fleet).version("node-7") == 2
        assert _events(fleet, 2) == 0
        # The next reader sees v2 with its event (once, however often it reads).
        _check_after_kill(fleet, v2)
        _check_after_kill(Fleet.open(directory), v2)
        recovered = [e for e in fleet.events(kind="desired-state") if e.detail["version"] == 2]
        assert recovered[0].detail["recovered"] is True
        assert recovered[0].detail["previous"] == 1
        # The operator's retry is the no-op of publishing the version in force.
        assert _run(killer, argv, directory) == 0
        assert _events(fleet, 2) == 1


def test_a_kill_at_every_file_operation_of_a_publish(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    template, v2, argv = _setup(world, ops, tmp_path)
    counted = tmp_path / "counted"
    shutil.copytree(template, counted)
    tally = tmp_path / "tally"
    with KillServer(tmp_path, PRELOAD) as killer:
        assert _run(killer, argv, counted, IRONROOT_TEST_KILL_TALLY=str(tally)) == 0
        operations = int(tally.read_text())
        assert operations >= 4  # v2.cbor and current.json: each a temporary file and a rename
        for kill_at in range(1, operations):  # the last operation counted is the tally's own file
            directory = tmp_path / f"kill-{kill_at}"
            shutil.copytree(template, directory)
            assert _run(killer, argv, directory, IRONROOT_TEST_KILL_AT=str(kill_at)) == -9
            fleet = Fleet.open(directory)
            _check_after_kill(fleet, v2)
            assert _run(killer, argv, directory) == 0, kill_at
            assert DesiredStore(fleet).current("node-7").state == v2
            assert _events(fleet, 2) == 1, kill_at
            shutil.rmtree(directory)
