"""Rollout: waves of nodes updated through the platform's receipt-gated update toward the
desired firmware; nodes already there skipped; the first refused or rolled-back update stops
it, and the report says what was done."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.desired_world import ALICE, BOB, Ops, make_ops
from tests.fleet.fleet_world import add_class, make_fleet, node_class
from tests.platform.node_world import NOW, Release, World, make_world

from ironroot.errors import ConfigError, NotFound
from ironroot.fleet import DesiredState, DesiredStore, Fleet, ReleaseSet, reconcile, rollout
from ironroot.platform import COMPONENTS, PowerLost


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("rollout-world")) as w:
        yield w


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("rollout-ops")) as o:
        yield o


def releases(world: World, fleet: Fleet) -> ReleaseSet:
    """The class's releases and every 2.0 release."""
    out = ReleaseSet.of_class(fleet.node_class("node-7"))
    for c in COMPONENTS:
        out.add_bundle(world.release(c, "2.0").bundle, world.release(c, "2.0").statements)
    return out


def publish(
    world: World, ops: Ops, fleet: Fleet, versions: dict[str, str], pfm: bytes | None = None
) -> DesiredState:
    store = DesiredStore(fleet)
    store.init(ops.governance())
    bundles = {c: world.release(c, v).bundle for c, v in versions.items()}
    state = DesiredState.build(
        fleet.node_class("node-7"), 1, bundles=bundles, pfm=pfm, fleet=fleet.identity()
    )
    store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
    return state


def update(world: World, fleet: Fleet, node: str, component: str, version: str) -> None:
    release = world.release(component, version)
    result = fleet.node(node).update(component, release.bundle, release.statements, now=NOW)
    assert result.outcome == "committed"


def active(fleet: Fleet, node: str, component: str) -> str:
    image = fleet.node(node).state().component(component).image
    assert image is not None
    return image.version


def test_rollout_in_waves_skips_nodes_already_there(world: World, ops: Ops, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    publish(world, ops, fleet, {"host": "2.0", "nic": "2.0"})
    update(world, fleet, "node-0002", "host", "2.0")
    update(world, fleet, "node-0002", "nic", "2.0")  # node-0002 is already at the desired state
    plan = rollout(fleet, releases(world, fleet), now=NOW, wave_size=1, dry_run=True)
    assert plan.with_outcome("planned") == ("node-0001", "node-0003")
    assert active(fleet, "node-0001", "host") == "1.0"  # a dry run changes nothing

    report = rollout(fleet, releases(world, fleet), now=NOW, wave_size=1)
    assert report.ok
    assert report.stopped_at is None
    assert report.waves == 2
    assert report.with_outcome("updated") == ("node-0001", "node-0003")
    assert report.with_outcome("skipped") == ("node-0002",)
    first, third = report.node("node-0001"), report.node("node-0003")
    assert (first.wave, third.wave) == (1, 2)
    assert [(u.component, u.from_version, u.to_version, u.outcome) for u in first.updates] == [
        ("host", "1.0", "2.0", "committed"),
        ("nic", "1.0", "2.0", "committed"),
    ]
    assert reconcile(fleet, now=NOW, measure=True).ok
    kinds = [e.kind for e in fleet.events()]
    assert kinds.count("rollout-update") == 4
    assert kinds[-1] == "rollout"
    # Everything is there now: a second rollout has nothing to do.
    again = rollout(fleet, releases(world, fleet), now=NOW, wave_size=2)
    assert again.with_outcome("skipped") == ("node-0001", "node-0002", "node-0003")
    assert again.waves == 0


def test_a_wave_holds_several_nodes(world: World, ops: Ops, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    publish(world, ops, fleet, {"gpu": "2.0"})
    report = rollout(fleet, releases(world, fleet), now=NOW, wave_size=2)
    assert report.waves == 2
    assert [report.node(n).wave for n in fleet.node_ids()] == [1, 1, 2]
    assert report.with_outcome("updated") == ("node-0001", "node-0002", "node-0003")


def test_rollout_stops_at_a_refused_update(world: World, ops: Ops, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    # node-0002 ran GPU 2.0 long enough for it to become its recovery image and SVN floor.
    update(world, fleet, "node-0002", "gpu", "2.0")
    for _ in range(2):
        fleet.node("node-0002").boot(now=NOW)
    assert fleet.node("node-0002").state().component("gpu").min_svn == 4
    publish(world, ops, fleet, {"host": "2.0"})  # and GPU 1.0, the class's image

    report = rollout(fleet, releases(world, fleet), now=NOW, wave_size=1)
    assert not report.ok
    assert report.stopped_at == "node-0002"
    assert report.with_outcome("updated") == ("node-0001",)
    assert report.with_outcome("failed") == ("node-0002",)
    assert report.with_outcome("not-reached") == ("node-0003",)
    failed = report.node("node-0002")
    host, gpu = failed.updates
    assert (host.component, host.outcome) == ("host", "committed")
    assert (gpu.component, gpu.outcome, gpu.code, gpu.check) == (
        "gpu",
        "refused",
        "svn-rollback",
        "svn",
    )
    assert failed.detail == "gpu refused: svn-rollback"
    # What the report says is what the nodes are.
    assert active(fleet, "node-0001", "host") == "2.0"
    assert active(fleet, "node-0002", "host") == "2.0"
    assert active(fleet, "node-0002", "gpu") == "2.0"
    assert active(fleet, "node-0003", "host") == "1.0"  # never touched
    last = fleet.events()[-1]
    assert last.kind == "rollout"
    assert last.detail["stopped_at"] == "node-0002"
    assert last.detail["not_reached"] == ["node-0003"]


def test_rollout_stops_at_a_rolled_back_update(world: World, ops: Ops, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet, {"nvme": "2.0"})
    report = rollout(
        fleet, releases(world, fleet), now=NOW, wave_size=2, inject={"node-0001": "fail-health"}
    )
    assert report.stopped_at == "node-0001"
    (nvme,) = report.node("node-0001").updates
    assert (nvme.outcome, nvme.code) == ("rolled-back", "rolled-back")
    assert report.node("node-0002").outcome == "not-reached"
    assert report.node("node-0002").wave == 1  # same wave, not reached after the stop
    assert active(fleet, "node-0001", "nvme") == "1.0"
    assert active(fleet, "node-0002", "nvme") == "1.0"


def test_a_rollout_resumed_after_a_power_loss_stops_at_the_undecided_update(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    # The power went after node-0001's new nvme image was activated, before the boot that
    # health-checks and commits it. The resumed rollout reported node-0001 "skipped" (already
    # at the desired firmware) and went on to the next waves.
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet, {"nvme": "2.0"})
    with pytest.raises(PowerLost):
        rollout(fleet, releases(world, fleet), now=NOW, inject={"node-0001": "reboot"})
    assert active(fleet, "node-0001", "nvme") == "2.0"  # active, not decided
    report = rollout(fleet, releases(world, fleet), now=NOW)
    assert report.stopped_at == "node-0001"
    (nvme,) = report.node("node-0001").updates
    assert (nvme.component, nvme.outcome, nvme.code) == ("nvme", "refused", "update-in-progress")
    assert report.node("node-0002").outcome == "not-reached"
    assert active(fleet, "node-0002", "nvme") == "1.0"


def test_a_new_pfm_rides_on_the_first_update(world: World, ops: Ops, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    both = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    newer = world.make_pfm(2, both)
    publish(world, ops, fleet, {}, pfm=newer)
    available = releases(world, fleet)
    available.add_pfm(newer, world.log_pfm(newer))
    report = rollout(fleet, available, now=NOW)
    (bmc,) = report.node("node-0001").updates
    assert (bmc.component, bmc.to_version, bmc.with_pfm, bmc.outcome) == (
        "bmc",
        "1.0",
        True,
        "committed",
    )
    assert reconcile(fleet, now=NOW).ok


def test_missing_releases_stop_the_rollout_before_it_starts(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet, {"host": "2.0"})
    with pytest.raises(NotFound) as info:
        rollout(fleet, ReleaseSet.of_class(fleet.node_class("node-7")), now=NOW)
    assert info.value.code == "release-missing"
    assert active(fleet, "node-0001", "host") == "1.0"
    with pytest.raises(ConfigError):
        rollout(fleet, releases(world, fleet), now=NOW, wave_size=0)
    with pytest.raises(ConfigError):
        rollout(fleet, releases(world, fleet), now=NOW, inject={"node-0001": "gremlins"})


@pytest.mark.parametrize(
    "nodes",
    [["node-0001", "node-0001"], ["node-0002", "node-0001", "node-0002", "node-0001"]],
    ids=["twice", "two nodes twice"],
)
def test_a_node_given_twice_is_refused_before_anything_changes(
    world: World, ops: Ops, tmp_path: Path, nodes: list[str]
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    publish(world, ops, fleet, {"host": "2.0"})
    before = len(fleet.events())
    with pytest.raises(ConfigError) as info:
        rollout(fleet, releases(world, fleet), now=NOW, nodes=nodes)
    assert info.value.code == "config"
    assert info.value.detail == (
        f"a node is given once: {', '.join(sorted(set(nodes), key=nodes.index))} "
        "given more than once"
    )
    assert [active(fleet, n, "host") for n in fleet.node_ids()] == ["1.0"] * 3
    assert len(fleet.events()) == before


def test_a_node_of_another_class_is_refused_before_anything_changes(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, vendor_ca = make_fleet(world, tmp_path / "fleet", 2)
    (other,) = add_class(fleet, node_class(world, name="node-8"), 1, vendor_ca=vendor_ca)
    publish(world, ops, fleet, {"host": "2.0"})  # class node-7's desired state
    before = len(fleet.events())
    cases = {
        # a repeat hid the foreign node from a count of the class's nodes: it was dropped
        # and node-0001 planned twice
        "foreign and a repeat": ["node-0001", "node-0001", other],
        "foreign": ["node-0001", other],
    }
    for case, nodes in cases.items():
        with pytest.raises(ConfigError) as info:
            rollout(fleet, releases(world, fleet), now=NOW, node_class="node-7", nodes=nodes)
        assert info.value.code == "config", case
        if case == "foreign":
            assert info.value.detail == f"every node given must be of class node-7: {other} is not"
    assert [active(fleet, n, "host") for n in fleet.node_ids()] == ["1.0"] * 3
    assert len(fleet.events()) == before
    # the class's own nodes, each once, roll out
    report = rollout(fleet, releases(world, fleet), now=NOW, nodes=["node-0002", "node-0001"])
    assert report.with_outcome("updated") == ("node-0002", "node-0001")
    assert active(fleet, other, "host") == "1.0"


def test_an_empty_class_name_is_no_class_and_a_fault_outside_the_rollout_is_refused(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, vendor_ca = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet, {"host": "2.0"})
    before = len(fleet.events())
    with pytest.raises(NotFound) as missing:
        rollout(fleet, releases(world, fleet), now=NOW, node_class="")
    assert missing.value.detail == "no node class ''"
    with pytest.raises(NotFound) as missing:
        fleet.add_nodes(1, vendor_ca=vendor_ca, now=NOW, node_class="")
    assert missing.value.detail == "no node class ''"
    # a fault for a node the rollout does not cover was dropped: the drill "passed" untried
    with pytest.raises(ConfigError) as outside:
        rollout(
            fleet,
            releases(world, fleet),
            now=NOW,
            nodes=["node-0001"],
            inject={"node-0002": "fail-health"},
        )
    assert outside.value.detail == (
        "a fault is injected only in a node the rollout covers: node-0002 is not"
    )
    assert [active(fleet, n, "host") for n in fleet.node_ids()] == ["1.0"] * 2
    assert len(fleet.events()) == before
    assert fleet.node_ids() == ["node-0001", "node-0002"]


def test_releases_load_from_a_directory(world: World, tmp_path: Path) -> None:
    base = tmp_path / "releases"
    base.mkdir()
    host = world.release("host", "2.0")
    (base / "host-2.0.bin").write_bytes(host.bundle)
    for i, statement in enumerate(host.statements):
        (base / f"host-2.0.{i}.ts").write_bytes(statement)
    other = world.release("host", "1.0")
    (base / "host-2.0.1.bin").write_bytes(other.bundle)  # a longer name that extends the first
    (base / "host-2.0.1.manifest.ts").write_bytes(other.statements[0])
    (base / "node.pfm").write_bytes(world.pfm)
    (base / "node.pfm.ts").write_bytes(world.pfm_ts)
    found = ReleaseSet().load(base)
    assert found.bundle("host", host.sha384) == (host.bundle, host.statements)
    assert found.bundle("host", other.sha384) == (other.bundle, other.statements[:1])
    assert found.pfm(hashlib.sha384(world.pfm).digest()) == (
        world.pfm,
        world.pfm_ts,
    )


def test_a_desired_state_put_in_force_meanwhile_stops_the_rollout_before_its_next_wave(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    """A new desired state (a fix, a revert) published while a rollout runs supersedes the one
    it installs: the rollout does not start another wave of the old one."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    publish(world, ops, fleet, {"gpu": "2.0"})
    store = DesiredStore(fleet)
    newer = DesiredState.build(
        fleet.node_class("node-7"),
        2,
        bundles={"gpu": world.release("gpu", "1.0").bundle},
        fleet=fleet.identity(),
    )

    def meanwhile(event: str, node: str, component: str | None) -> None:
        if event == "done" and node == "node-0001":
            store.publish("node-7", ops.sign(newer, ALICE, BOB), now=NOW, registrar=ops.log)

    report = rollout(fleet, releases(world, fleet), now=NOW, wave_size=1, progress=meanwhile)
    assert not report.ok
    assert (report.desired_version, report.superseded_by, report.stopped_at) == (1, 2, None)
    assert report.with_outcome("updated") == ("node-0001",)
    assert report.with_outcome("not-reached") == ("node-0002", "node-0003")
    assert active(fleet, "node-0002", "gpu") == "1.0"
    assert report.to_json()["superseded_by"] == 2
    assert fleet.events()[-1].detail["superseded_by"] == 2


def test_desired_firmware_that_is_not_on_the_log_is_never_installed(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    # Two people approved a desired state naming a host image the PFM allows but no vendor
    # statement of which is on a trusted log. It may be put in force (the document holds
    # digests, not releases), but no node ever runs it: the rollout's first update of it is
    # refused with the platform's receipt check, and it stops there.
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    stray = world.bundle("host", svn=5, tag="unlogged")
    listed = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    listed["host"].append(Release("host", "2.5", 5, stray, ()))
    pfm = world.make_pfm(2, listed)
    store = DesiredStore(fleet)
    store.init(ops.governance())
    state = DesiredState.build(
        fleet.node_class("node-7"), 1, bundles={"host": stray}, pfm=pfm, fleet=fleet.identity()
    )
    store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
    available = releases(world, fleet)
    available.add_pfm(pfm, world.log_pfm(pfm))
    available.add_bundle(stray, ())  # no statement: nothing on the log
    report = rollout(fleet, available, now=NOW)
    assert not report.ok
    assert report.stopped_at == "node-0001"
    (host,) = report.node("node-0001").updates
    assert (host.component, host.outcome, host.code) == ("host", "refused", "no-receipt")
    assert report.with_outcome("not-reached") == ("node-0002",)
    assert active(fleet, "node-0001", "host") == "1.0"
    assert active(fleet, "node-0002", "host") == "1.0"
    # A statement of it on a log the class does not trust does not count either.
    untrusted = world.publish("host", stray, client=world.untrusted)
    available.add_bundle(stray, untrusted)
    report = rollout(fleet, available, now=NOW)
    (host,) = report.node("node-0001").updates
    assert (host.outcome, host.code) == ("refused", "untrusted-service")
    assert active(fleet, "node-0001", "host") == "1.0"
