"""Rollout: waves of nodes updated through the platform's receipt-gated update toward the
desired firmware; nodes already there skipped; the first refused or rolled-back update stops
it, and the report says what was done."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fleet.desired_world import ALICE, BOB, Ops, make_ops
from tests.fleet.fleet_world import add_class, make_fleet, node_class
from tests.platform.node_world import NOW, Release, World, make_world

from ironroot.errors import ConfigError, KeyRevoked, NotFound, PolicyRejected
from ironroot.fleet import (
    DesiredState,
    DesiredStore,
    FirmwareTarget,
    Fleet,
    FuseTarget,
    ReleaseSet,
    reconcile,
    rollout,
)
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
    # The GPU downgrade was refused before anything was installed: node-0002 keeps every old
    # image (it used to end with host 2.0 beside GPU 2.0, a state no desired state named).
    assert (host.component, host.outcome, host.code) == ("host", "withheld", None)
    assert (gpu.component, gpu.outcome, gpu.error, gpu.code, gpu.check) == (
        "gpu",
        "refused",
        "SvnRollback",
        "svn-rollback",
        "svn",
    )
    assert failed.detail == (
        "gpu refused: svn-rollback (checked before installing: nothing installed)"
    )
    assert not failed.mixed
    assert report.mixed == ()
    # What the report says is what the nodes are.
    assert active(fleet, "node-0001", "host") == "2.0"
    assert active(fleet, "node-0002", "host") == "1.0"
    assert active(fleet, "node-0002", "gpu") == "2.0"
    assert fleet.node("node-0002").state().pending is None
    assert active(fleet, "node-0003", "host") == "1.0"  # never touched
    refusal = [e for e in fleet.events() if e.kind == "rollout-update" and e.node == "node-0002"]
    assert [(e.detail["component"], e.detail["outcome"]) for e in refusal] == [("gpu", "refused")]
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


def test_a_rollout_to_a_bundle_signed_with_a_revoked_key_is_refused_before_any_node(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    """A desired state in force that revokes the vendor key its host 2.0 is signed with
    (:meth:`DesiredState.build` refuses to make one; a document made by other tools, or whose
    keys were revoked by hand, is still approvable): the rollout refuses it before any node is
    updated, a dry run too — a node whose fuses lag the state would still boot it."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    store = DesiredStore(fleet)
    store.init(ops.governance())
    built = DesiredState.build(
        fleet.node_class("node-7"),
        1,
        bundles={"host": world.release("host", "2.0").bundle},
        fleet=fleet.identity(),
    )
    state = dataclasses.replace(built, fuses=FuseTarget(world.descriptor_hash, ecc_revoked=0b0001))
    store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
    for dry_run in (True, False):
        with pytest.raises(KeyRevoked) as info:
            rollout(fleet, releases(world, fleet), now=NOW, dry_run=dry_run)
        assert (info.value.code, info.value.detail) == (
            "key-revoked",
            "vendor ECC key 0 is revoked",
        )
    assert [active(fleet, n, "host") for n in fleet.node_ids()] == ["1.0", "1.0"]
    assert fleet.events(kind="rollout-update") == []
    assert fleet.events(kind="rollout") == []


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


# --- a node is refused as a whole before anything is installed on it -------------------------


def publish_state(ops: Ops, fleet: Fleet, state: DesiredState) -> None:
    store = DesiredStore(fleet)
    store.init(ops.governance())
    store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)


def untouched(fleet: Fleet, node: str) -> tuple[object, ...]:
    """What a refusal before install must leave as it was: journal, RoT events, state."""
    platform = fleet.node(node)
    return (platform.journal(), platform.events(), platform.state())


def test_a_later_update_that_is_on_no_log_leaves_the_node_on_all_its_old_firmware(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    # BMC 2.0 is logged; the host image the desired state names (the PFM allows it) is not.
    # The BMC used to be installed first, leaving node-0001 on BMC 2.0 beside host 1.0.
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    stray = world.bundle("host", svn=5, tag="unlogged")
    listed = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    listed["host"].append(Release("host", "2.5", 5, stray, ()))
    pfm = world.make_pfm(2, listed)
    bmc = world.release("bmc", "2.0")
    bundles = {"bmc": bmc.bundle, "host": stray}
    state = DesiredState.build(
        fleet.node_class("node-7"), 1, bundles=bundles, pfm=pfm, fleet=fleet.identity()
    )
    publish_state(ops, fleet, state)
    available = releases(world, fleet)
    pfm_ts = world.log_pfm(pfm)
    available.add_pfm(pfm, pfm_ts)
    available.add_bundle(stray, ())
    before = untouched(fleet, "node-0001")

    report = rollout(fleet, available, now=NOW)
    assert report.stopped_at == "node-0001"
    assert report.with_outcome("not-reached") == ("node-0002",)
    first, second = report.node("node-0001").updates
    assert (first.component, first.outcome, first.with_pfm) == ("bmc", "withheld", True)
    assert (second.component, second.outcome, second.error, second.code, second.check) == (
        "host",
        "refused",
        "PolicyRejected",
        "no-receipt",
        "receipt",
    )
    assert (
        second.detail == "the bundle's manifest statement is not on a transparency log: no receipt"
    )
    assert untouched(fleet, "node-0001") == before  # not a byte, record or event
    assert (active(fleet, "node-0001", "bmc"), active(fleet, "node-0001", "host")) == ("1.0", "1.0")
    node_pfm = fleet.node("node-0001").state().pfm.image
    assert node_pfm is not None
    assert node_pfm.sha384 == hashlib.sha384(world.pfm).digest()

    # The platform's check-only entry point: each update checked as it would be installed,
    # after the ones before it (the host against the PFM the BMC's update carries).
    preflight = fleet.node("node-0001").preflight(now=NOW)
    assert preflight.check("bmc", bmc.bundle, bmc.statements, pfm=pfm, pfm_statement=pfm_ts).pfm
    with pytest.raises(PolicyRejected) as info:
        preflight.check("host", stray, ())
    assert (info.value.code, info.value.check) == ("no-receipt", "receipt")
    assert preflight.checked == ("bmc",)
    with pytest.raises(ConfigError):
        preflight.check("bmc", bmc.bundle, bmc.statements)
    assert untouched(fleet, "node-0001") == before


def test_a_later_bundle_of_another_platform_leaves_the_node_on_all_its_old_firmware(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    # A host image the vendor signed and logged for another platform: this platform's PFM does
    # not list it. A desired-state document that names it anyway (written by hand, signed by
    # the quorum: build() would have refused it) does not get BMC 2.0 installed before it.
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    foreign = world.bundle("host", svn=3, tag="other platform")
    foreign_statements = world.publish("host", foreign)
    bmc_only = DesiredState.build(
        fleet.node_class("node-7"),
        1,
        bundles={"bmc": world.release("bmc", "2.0").bundle},
        fleet=fleet.identity(),
    )
    firmware = dict(bmc_only.firmware)
    firmware["host"] = FirmwareTarget.of_bundle(foreign, version="3.0", svn=3)
    publish_state(ops, fleet, dataclasses.replace(bmc_only, firmware=firmware))
    available = releases(world, fleet)
    available.add_bundle(foreign, foreign_statements)
    before = untouched(fleet, "node-0001")

    report = rollout(fleet, available, now=NOW)
    assert report.stopped_at == "node-0001"
    first, second = report.node("node-0001").updates
    assert (first.component, first.outcome) == ("bmc", "withheld")
    assert (second.component, second.outcome, second.error, second.code, second.check) == (
        "host",
        "refused",
        "FirmwareRejected",
        "not-in-pfm",
        "pfm",
    )
    assert untouched(fleet, "node-0001") == before
    assert (active(fleet, "node-0001", "bmc"), active(fleet, "node-0001", "host")) == ("1.0", "1.0")


def test_a_downgrade_the_earlier_updates_boots_will_forbid_is_refused_before_install(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    # node-0001 runs GPU 2.0 (SVN 4), booted healthy once: one more healthy boot makes it the
    # recovery image and SVN 4 the floor. The desired state wants host 2.0 and GPU 1.0: the
    # host update's boot raises the floor, so the GPU update would be refused after the host
    # was installed. The check counts the boots the earlier updates make.
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    update(world, fleet, "node-0001", "gpu", "2.0")
    gpu = fleet.node("node-0001").state().component("gpu")
    assert (gpu.min_svn, gpu.healthy) == (world.release("gpu", "1.0").svn, 1)
    publish(world, ops, fleet, {"host": "2.0"})
    before = untouched(fleet, "node-0001")

    report = rollout(fleet, releases(world, fleet), now=NOW)
    host, refused = report.node("node-0001").updates
    assert (host.component, host.outcome) == ("host", "withheld")
    assert (refused.component, refused.error, refused.code, refused.check) == (
        "gpu",
        "SvnRollback",
        "svn-rollback",
        "svn",
    )
    assert untouched(fleet, "node-0001") == before
    # Alone, with no boot before it, the same GPU update passes the same check.
    alone = fleet.node("node-0001").preflight(now=NOW)
    old_gpu = world.release("gpu", "1.0")
    assert alone.check("gpu", old_gpu.bundle, old_gpu.statements).version.version == "1.0"


def test_an_install_that_fails_after_an_earlier_one_committed_reports_the_node_mixed(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    # Only the install meets a storage failure: the node's evidence store breaks after the
    # BMC update committed, before the host's. The node is not rolled back (each update is
    # its own atomic switch): the report names it mixed, with what it runs, and so does
    # reconcile.
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet, {"bmc": "2.0", "host": "2.0"})
    evidence = fleet.node("node-0001").directory / "evidence"

    def break_evidence(event: str, node: str, component: str | None) -> None:
        if (event, node, component) == ("update", "node-0001", "host"):
            evidence.rename(evidence.with_name("evidence.kept"))
            evidence.write_bytes(b"")

    report = rollout(fleet, releases(world, fleet), now=NOW, progress=break_evidence)
    assert report.stopped_at == "node-0001"
    assert report.mixed == ("node-0001",)
    node = report.node("node-0001")
    bmc, host = node.updates
    assert (bmc.outcome, host.outcome, host.error, host.code) == (
        "committed",
        "refused",
        "StorageError",
        "evidence",
    )
    assert node.mixed
    assert node.installed == (("bmc", "2.0"), ("host", "1.0"))
    assert node.detail.startswith("mixed (bmc installed): host refused: evidence; runs bmc 2.0")
    assert report.to_json()["mixed"] == ["node-0001"]
    assert node.to_json()["installed"] == {"bmc": "2.0", "host": "1.0"}
    assert fleet.events()[-1].detail["mixed"] == ["node-0001"]
    evidence.unlink()
    evidence.with_name("evidence.kept").rename(evidence)
    drift = reconcile(fleet, now=NOW).node("node-0001")
    assert [i.item for i in drift.drift] == ["firmware:host"]


def _pfm_without_host_1(world: World) -> bytes:
    """A PFM that lists every 1.0 and 2.0 release but host 1.0: what a node whose host recovers
    to 1.0 would be left unable to recover to."""
    listed = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    listed["host"] = [world.release("host", "2.0")]
    return world.make_pfm(2, listed)


def _recovery_dropping_rollout(
    world: World, ops: Ops, tmp_path: Path
) -> tuple[Fleet, ReleaseSet, bytes, bytes]:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    pfm = _pfm_without_host_1(world)
    pfm_ts = world.log_pfm(pfm)
    publish(world, ops, fleet, {"host": "2.0"}, pfm=pfm)
    available = releases(world, fleet)
    available.add_pfm(pfm, pfm_ts)
    return fleet, available, pfm, pfm_ts


@pytest.mark.parametrize("allowed", [[], ["gpu"]], ids=["none", "another-component"])
def test_a_rollout_whose_pfm_drops_a_recovery_image_is_refused_unless_the_operator_names_it(
    world: World, ops: Ops, tmp_path: Path, allowed: list[str]
) -> None:
    # The platform's update refused such a PFM unless allow_recovery_removal named the
    # component, but a rollout passed none: its update was always refused, with no way for
    # the operator to accept it. Without the opt-in (or naming another component) it stays
    # refused, before anything is installed.
    fleet, available, _, _ = _recovery_dropping_rollout(world, ops, tmp_path)
    report = rollout(fleet, available, now=NOW, allow_recovery_removal=allowed)
    assert report.stopped_at == "node-0001"
    (host,) = report.node("node-0001").updates
    assert (host.component, host.outcome, host.error, host.code, host.check) == (
        "host",
        "refused",
        "PolicyRejected",
        "pfm-drops-recovery-image",
        "pfm",
    )
    assert host.detail == (
        "the new PFM no longer allows the host recovery image: host could not be recovered "
        "(allow_recovery_removal must name it to accept that)"
    )
    assert active(fleet, "node-0001", "host") == "1.0"


def test_a_rollout_naming_the_component_installs_the_pfm_that_drops_its_recovery_image(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, available, _, _ = _recovery_dropping_rollout(world, ops, tmp_path)
    report = rollout(fleet, available, now=NOW, allow_recovery_removal=["host"])
    assert report.ok, report.to_json()
    (host,) = report.node("node-0001").updates
    assert (host.component, host.outcome, host.with_pfm) == ("host", "committed", True)
    assert active(fleet, "node-0001", "host") == "2.0"
    pfm = fleet.node("node-0001").state().pfm.image
    assert pfm is not None
    assert pfm.svn == 2
    (event,) = [e for e in fleet.events(limit=1000) if e.kind == "rollout"]
    assert event.detail["allow_recovery_removal"] == ["host"]


def test_a_rollout_refuses_an_allow_recovery_removal_that_names_no_component(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, available, _, _ = _recovery_dropping_rollout(world, ops, tmp_path)
    with pytest.raises(ConfigError) as info:
        rollout(fleet, available, now=NOW, allow_recovery_removal=["hosts"])
    assert type(info.value) is ConfigError
    assert "allow_recovery_removal names a component: 'hosts' is not one of" in info.value.detail
    with pytest.raises(ConfigError, match="a list of component names"):
        rollout(fleet, available, now=NOW, allow_recovery_removal="host")
    assert active(fleet, "node-0001", "host") == "1.0"


def test_the_rollout_cli_takes_allow_recovery_removal(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from ironroot.cli import main

    fleet, _, pfm, pfm_ts = _recovery_dropping_rollout(world, ops, tmp_path)
    found = tmp_path / "releases"
    found.mkdir()
    host = world.release("host", "2.0")
    (found / "host-2.0.bin").write_bytes(host.bundle)
    (found / "host-2.0.ts").write_bytes(host.statements[0])
    (found / "node.pfm").write_bytes(pfm)
    (found / "node.pfm.ts").write_bytes(pfm_ts)
    argv = ["fleet", "rollout", "--fleet", str(fleet.directory), "--releases", str(found)]
    argv += ["--at", NOW.isoformat(), "--json"]
    assert main([*argv, "--allow-recovery-removal", "gpu"]) == 1
    out = capsys.readouterr().out
    (node,) = json.loads(out)["nodes"]
    assert node["updates"][0]["code"] == "pfm-drops-recovery-image"
    assert main([*argv, "--allow-recovery-removal", "gpu", "--allow-recovery-removal", "host"]) == 0
    (node,) = json.loads(capsys.readouterr().out)["nodes"]
    assert (node["outcome"], node["updates"][0]["outcome"]) == ("updated", "committed")


def test_a_rollout_cut_short_mid_node_is_reported_by_the_next(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    """A rollout killed (here: a power loss raised out of it) after a node's update began and
    before its outcome was recorded leaves a marker; the next rollout records a
    ``rollout-interrupted`` event for that node and reports it, before it plans."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet, {"nvme": "2.0"})
    with pytest.raises(PowerLost):
        rollout(fleet, releases(world, fleet), now=NOW, inject={"node-0001": "reboot"})
    marker = tmp_path / "fleet" / "desired" / "node-7" / "rollout-inflight" / "node-0001.json"
    assert marker.is_file()
    report = rollout(fleet, releases(world, fleet), now=NOW)
    assert report.interrupted == ("node-0001",)
    assert report.to_json()["interrupted"] == ["node-0001"]
    (event,) = [e for e in fleet.events(node="node-0001") if e.kind == "rollout-interrupted"]
    assert event.detail["started"]["components"] == ["nvme"]
    assert event.detail["remaining"] == ["nvme"]  # active, not decided: not there yet
    assert not marker.exists()
    (done,) = [e for e in fleet.events() if e.kind == "rollout"]
    assert done.detail["interrupted"] == ["node-0001"]
    # Reported once: a rollout after it finds nothing cut short.
    assert rollout(fleet, releases(world, fleet), now=NOW).interrupted == ()


def test_a_rollout_of_other_nodes_leaves_a_cut_short_nodes_marker_for_the_rollout_that_covers_it(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    """A rollout of some nodes reads, records and clears the markers of those nodes only: a
    node's own rollout over the control plane (``nodes=[itself]``) used to read every cut-short
    node's state, record its ``rollout-interrupted`` event, clear its marker and hand the list
    to that node, where the operator's next rollout of the class is what must report it."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet, {"nvme": "2.0"})
    with pytest.raises(PowerLost):
        rollout(fleet, releases(world, fleet), now=NOW, inject={"node-0001": "reboot"})
    marker = tmp_path / "fleet" / "desired" / "node-7" / "rollout-inflight" / "node-0001.json"
    assert marker.is_file()
    other = rollout(fleet, releases(world, fleet), now=NOW, nodes=["node-0002"])
    assert other.interrupted == ()
    assert marker.is_file()
    assert not [e for e in fleet.events() if e.kind == "rollout-interrupted"]
    assert rollout(fleet, releases(world, fleet), now=NOW).interrupted == ("node-0001",)
    assert not marker.exists()


def test_an_empty_list_of_nodes_is_refused_not_a_successful_rollout_of_nothing(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet, {"host": "2.0"})
    before = len(fleet.events())
    with pytest.raises(ConfigError) as info:
        rollout(fleet, releases(world, fleet), now=NOW, nodes=[])
    assert info.value.detail == "give at least one node (no list: every node of the class)"
    assert len(fleet.events()) == before


def test_a_rollout_killed_after_recording_an_interruption_does_not_record_it_twice(
    world: World, ops: Ops, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``rollout-interrupted`` event is committed, then the marker removed: a rollout
    killed between the two (or a power cut that brought the removed marker back) left the
    marker, and the next rollout recorded the same interruption again."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet, {"nvme": "2.0"})
    with pytest.raises(PowerLost):
        rollout(fleet, releases(world, fleet), now=NOW, inject={"node-0001": "reboot"})
    marker = tmp_path / "fleet" / "desired" / "node-7" / "rollout-inflight" / "node-0001.json"

    class Cut(BaseException):
        pass

    real = Fleet.record

    def record_then_die(self: Fleet, node: str | None, kind: str, *args: Any, **kw: Any) -> None:
        real(self, node, kind, *args, **kw)
        if kind == "rollout-interrupted":
            raise Cut

    with monkeypatch.context() as m:
        m.setattr(Fleet, "record", record_then_die)
        with pytest.raises(Cut):
            rollout(fleet, releases(world, fleet), now=NOW)
    assert marker.is_file()
    report = rollout(fleet, releases(world, fleet), now=NOW)
    assert report.interrupted == ("node-0001",)  # reported, as no report of it was made
    assert not marker.exists()
    events = [e for e in fleet.events(node="node-0001") if e.kind == "rollout-interrupted"]
    assert len(events) == 1


def test_the_nodes_a_rollout_updated_are_attested_in_the_scanners_next_round(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    """Old behaviour: a rollout changes a node's firmware and nothing re-attests it: the node
    kept the status and the credential its old firmware earned until its period came round
    (an install appraisal refuses was admitted for up to a period; a quarantined node that
    the rollout fixed waited as long). Each node with a ``rollout-update`` event since the
    scanner last looked (kept in ``scan-pending.json``, so a restart between does not lose
    it) is triggered in the next round."""
    import datetime as dt

    from ironroot.fleet import Scanner

    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    seen: list[str] = []

    def attest(node_id: str, now: dt.datetime) -> str:
        seen.append(node_id)
        stamp = now.isoformat().replace("+00:00", "Z")
        fleet.set_status(node_id, "admitted", "scan", now=now, last_attested=stamp)
        return "admitted"

    Scanner(fleet, attest, period=86400).scan(NOW)  # every node attested: none due for a day
    publish(world, ops, fleet, {"host": "2.0"})
    update(world, fleet, "node-0002", "host", "2.0")  # already there: skipped
    report = rollout(fleet, releases(world, fleet), now=NOW, wave_size=1)
    assert report.with_outcome("updated") == ("node-0001", "node-0003")
    restarted = Scanner(fleet, attest, period=86400)  # a scanner (re)started after it
    later = NOW + dt.timedelta(seconds=10)
    assert restarted.scan(later).reasons == dict.fromkeys(["node-0001", "node-0003"], "triggered")
    assert restarted.scan(later + dt.timedelta(seconds=10)).reasons == {}  # once
