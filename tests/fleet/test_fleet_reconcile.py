"""Reconcile: each node's measured state (journal, fuses, the RoT's measured boot, fresh SPDM
measurements) against the desired state in force, per node and per item."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.desired_world import ALICE, BOB, Ops, make_ops, unlock_debug
from tests.fleet.fleet_world import add_class, make_fleet, node_class
from tests.platform.node_world import NOW, World, make_world

from ironroot.cli import main
from ironroot.errors import ConfigError, NotFound
from ironroot.fleet import DesiredState, DesiredStore, Fleet, FuseTarget, reconcile
from ironroot.platform import COMPONENTS, Faults, PowerLost


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("reconcile-world")) as w:
        yield w


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("reconcile-ops")) as o:
        yield o


def publish(world: World, ops: Ops, fleet: Fleet, version: int = 1, **kw: object) -> DesiredState:
    """Publish the class's desired state (approved by Alice and Bob) with overrides."""
    store = DesiredStore(fleet)
    try:
        store.governance("node-7")
    except NotFound:
        store.init(ops.governance())
    versions = kw.pop("versions", {})
    assert isinstance(versions, dict)
    bundles = {c: world.release(c, v).bundle for c, v in versions.items()}
    state = DesiredState.build(
        fleet.node_class("node-7"), version, bundles=bundles, fleet=fleet.identity(), **kw
    )  # type: ignore[arg-type]
    store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
    return state


def test_a_fleet_at_its_desired_state_reconciles_clean(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet, fuses=FuseTarget(world.descriptor_hash, min_svn=3))
    report = reconcile(fleet, now=NOW, measure=True)
    assert report.ok
    assert report.drifted == ()
    node = report.node("node-0002")
    assert node.desired_version == 1
    names = [i.item for i in node.items]
    assert names[:5] == [f"firmware:{c}" for c in COMPONENTS]
    assert {"pfm", "fuse:debug", "fuse:svn", "measured:bmc", "measured:gpu"} <= set(names)
    assert node.item("fuse:svn").measured == "3"
    assert node.item("measured:nic").source == "spdm"
    doc = report.to_json()
    assert doc["ok"] is True
    assert doc["nodes_total"] == 2


def test_a_class_without_desired_state_cannot_be_reconciled(world: World, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    with pytest.raises(NotFound):
        reconcile(fleet, now=NOW)


def test_firmware_drift_is_reported_per_node_and_item(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet)
    # node-0001's NIC is updated out of band (through the real update: it is logged firmware).
    nic = world.release("nic", "2.0")
    assert fleet.node("node-0001").update("nic", nic.bundle, nic.statements, now=NOW).outcome == (
        "committed"
    )
    report = reconcile(fleet, now=NOW, measure=True)
    assert report.drifted == ("node-0001",)
    node = report.node("node-0001")
    assert [i.item for i in node.drift] == ["firmware:nic", "measured:nic"]
    firmware = node.item("firmware:nic")
    assert firmware.code == "firmware"
    assert firmware.desired.startswith("1.0 (svn 3)")
    assert firmware.measured.startswith("2.0 (svn 4)")
    measured = node.item("measured:nic")  # the device itself, over SPDM, says so too
    assert measured.code == "measurement"
    assert measured.source == "spdm"
    assert report.node("node-0002").ok
    # Without measure, the journal alone shows it.
    quick = reconcile(fleet, now=NOW, nodes=["node-0001"])
    assert [i.item for i in quick.node("node-0001").drift] == ["firmware:nic"]


def test_desired_firmware_not_yet_rolled_out_is_drift(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    publish(world, ops, fleet, versions={"bmc": "2.0"})
    node = reconcile(fleet, now=NOW).node("node-0001")
    assert [i.item for i in node.drift] == ["firmware:bmc", "measured:bmc"]
    assert node.item("measured:bmc").source == "rot"  # the RoT's measured boot
    assert node.item("measured:bmc").code == "measurement"


def test_pfm_drift_is_reported(world: World, ops: Ops, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    both = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    newer = world.make_pfm(2, both)
    publish(world, ops, fleet, pfm=newer)
    node = reconcile(fleet, now=NOW).node("node-0001")
    assert [i.item for i in node.drift] == ["pfm", "measured:pfm"]
    item = node.item("pfm")
    assert item.code == "pfm"
    assert item.desired == f"(svn 2) {hashlib.sha384(newer).hexdigest()[:16]}"
    assert item.measured.startswith("(svn 1) ")
    booted = node.item("measured:pfm")  # the RoT measured the old PFM at boot too
    assert (booted.source, booted.code) == ("rot", "measurement")
    assert booted.measured == hashlib.sha384(world.pfm).hexdigest()[:16]


def test_a_pfm_the_journal_names_but_the_rot_did_not_boot_is_drift(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    """Power lost after a PFM update's activation record: the journal already names the
    desired PFM (``pfm`` in sync), the RoT still enforces and measured the old one."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    both = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    newer = world.make_pfm(2, both)
    publish(world, ops, fleet, pfm=newer, versions={"host": "2.0"})
    host = world.release("host", "2.0")
    with pytest.raises(PowerLost):
        fleet.node("node-0001").update(
            "host",
            host.bundle,
            host.statements,
            now=NOW,
            pfm=newer,
            pfm_statement=world.log_pfm(newer),
            faults=Faults("reboot"),
        )
    node = reconcile(fleet, now=NOW).node("node-0001")
    assert node.item("pfm").ok
    booted = node.item("measured:pfm")
    assert (booted.ok, booted.code) == (False, "measurement")
    assert booted.desired == hashlib.sha384(newer).hexdigest()[:16]
    assert booted.measured == hashlib.sha384(world.pfm).hexdigest()[:16]
    fleet.node("node-0001").boot(now=NOW)
    assert reconcile(fleet, now=NOW).node("node-0001").item("measured:pfm").ok


def test_a_node_booted_before_pfms_were_measured_is_told_to_boot_again(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    """The RoT's boot as an earlier Ironroot left it: the BMC and the DPE children measured,
    no ``pfm-digest``. Drift with the reason, not in sync."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    publish(world, ops, fleet)
    platform = fleet.node("node-0001")
    rot = fleet.rot("node-0001")
    rot.boot(platform.active_image("bmc"), now=NOW, advance_svn=False)
    for component in COMPONENTS[1:]:
        rot.derive_child(hashlib.sha384(platform.active_image(component)).digest(), label=component)
    node = reconcile(fleet, now=NOW).node("node-0001")
    assert [i.item for i in node.drift] == ["measured:pfm"]
    item = node.item("measured:pfm")
    assert (item.measured, item.code) == ("(not measured)", "pfm-not-measured")
    assert item.detail == (
        "the RoT's last boot measured no PFM (it predates PFM measurement): boot the node "
        "again so that its RoT measures the PFM it enforces"
    )


def test_debug_unlocked_is_drift(world: World, ops: Ops, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    unlock_debug(world, fleet, "node-0002")
    publish(world, ops, fleet)
    report = reconcile(fleet, now=NOW)
    assert report.drifted == ("node-0002",)
    node = report.node("node-0002")
    assert [i.item for i in node.drift] == ["fuse:debug", "fuse:lifecycle"]
    debug = node.item("fuse:debug")
    assert (debug.desired, debug.measured, debug.code) == ("locked", "unlocked", "debug-unlocked")
    assert node.item("fuse:lifecycle").measured == "manufacturing"


def test_a_node_whose_fuses_do_not_revoke_the_desired_vendor_keys_drifts(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    """The desired state revokes ECC key 2 and PQC keys 1 and 3: a node whose fuses do not
    revoke all of them still boots firmware signed with one (drift); one revoking them — or
    more — is in sync."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    fleet.rot("node-0002").program(lambda f: f.revoke_ecc_key(2).revoke_pqc_key(1))
    publish(
        world,
        ops,
        fleet,
        fuses=FuseTarget(world.descriptor_hash, ecc_revoked=0b0100, pqc_revoked=0b1010),
    )
    report = reconcile(fleet, now=NOW)
    assert report.drifted == ("node-0001", "node-0002")
    first = report.node("node-0001")
    assert [i.item for i in first.drift] == ["fuse:ecc-revoked", "fuse:pqc-revoked"]
    ecc = first.item("fuse:ecc-revoked")
    assert (ecc.source, ecc.desired, ecc.measured, ecc.code) == (
        "fuses",
        "revokes 2",
        "revokes none",
        "vendor-key-not-revoked",
    )
    assert ecc.detail == (
        "vendor ECC key(s) 2 are revoked by the desired state but not by the node's fuses: it "
        "still boots firmware signed with them"
    )
    second = report.node("node-0002")
    assert [i.item for i in second.drift] == ["fuse:pqc-revoked"]
    pqc = second.item("fuse:pqc-revoked")
    assert (pqc.desired, pqc.measured) == ("revokes 1, 3", "revokes 1")
    assert pqc.detail.startswith("vendor PQC key(s) 3 are revoked by the desired state")
    fleet.rot("node-0002").program(lambda f: f.revoke_pqc_key(3).revoke_pqc_key(5))
    fleet.rot("node-0001").program(
        lambda f: f.revoke_ecc_key(2).revoke_pqc_key(1).revoke_pqc_key(3)
    )
    again = reconcile(fleet, now=NOW)
    assert again.ok
    assert again.node("node-0002").item("fuse:pqc-revoked").measured == "revokes 1, 3, 5"


def test_a_desired_state_revoking_no_key_is_in_sync_with_any_revocation_fuse(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    fleet.rot("node-0001").program(lambda f: f.revoke_ecc_key(3))
    publish(world, ops, fleet)
    node = reconcile(fleet, now=NOW).node("node-0001")
    assert node.ok
    item = node.item("fuse:ecc-revoked")
    assert (item.desired, item.measured) == ("none required", "revokes 3")


def test_policies_in_force_are_compared(world: World, ops: Ops, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    publish(world, ops, fleet, policies={"appraisal": b"debug == false", "release": b"{}"})
    good = reconcile(fleet, now=NOW, policies={"appraisal": b"debug == false"})
    assert good.ok
    bad = reconcile(fleet, now=NOW, policies={"appraisal": b"true", "extra": b"x"})
    assert not bad.ok
    assert bad.drifted == ()  # the nodes are fine: the fleet's policy is not
    items = {i.item: i for i in bad.classes[0].items}
    assert items["policy:appraisal"].code == "policy"
    assert items["policy:extra"].code == "policy-not-desired"


def test_an_unreadable_node_is_drift_not_a_crash(world: World, ops: Ops, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet)
    (fleet.directory / "nodes" / "node-0001" / "platform.json").write_text("{}")
    report = reconcile(fleet, now=NOW)
    assert report.drifted == ("node-0001",)
    item = report.node("node-0001").item("node")
    assert item.code == "config"
    assert report.node("node-0002").ok


def test_one_class_of_several_is_reconciled_with_node_class(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # docs/fleet.md: every verb takes --class for a fleet of several classes; reconcile did
    # not, so a fleet with one class still without a desired state could not be reconciled.
    fleet, vendor_ca = make_fleet(world, tmp_path / "fleet", 1)
    (other,) = add_class(fleet, node_class(world, name="node-8"), 1, vendor_ca=vendor_ca)
    publish(world, ops, fleet)
    with pytest.raises(NotFound):
        reconcile(fleet, now=NOW)  # node-8 has no desired state
    report = reconcile(fleet, now=NOW, node_class="node-7", policies={"x": b""})
    assert [n.node for n in report.nodes] == ["node-0001"]
    assert [c.node_class for c in report.classes] == ["node-7"]
    with pytest.raises(ConfigError, match=f"every node given must be of class node-7: {other}"):
        reconcile(fleet, now=NOW, node_class="node-7", nodes=["node-0001", other])
    with pytest.raises(NotFound):
        reconcile(fleet, now=NOW, node_class="node-9")
    f = ["--fleet", str(fleet.directory), "--at", "2026-06-01T12:00:00Z"]
    assert main(["fleet", "reconcile", *f, "--class", "node-7"]) == 0
    assert "1 node(s), 0 drifted" in capsys.readouterr().out


def test_a_node_given_twice_is_refused_as_for_a_rollout(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    publish(world, ops, fleet)
    with pytest.raises(ConfigError, match="node-0001 is given more than once"):
        reconcile(fleet, now=NOW, nodes=["node-0001", "node-0002", "node-0001"])
    assert [n.node for n in reconcile(fleet, now=NOW, nodes=["node-0002"]).nodes] == ["node-0002"]


def test_a_device_matching_expired_reference_values_is_in_sync_with_the_finding_reported(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    """Under ``expired_manifest = "report"`` (the default) a device measured against logged
    reference values whose dates ended matches them, as its boot runs it: not drift (it runs
    the desired firmware), the finding beside it (it was ``failed: rim-expired`` before,
    while the node's boot ran the same device)."""
    import datetime as dt

    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    publish(world, ops, fleet)
    later = NOW + dt.timedelta(days=400)  # every 1.0 CoRIM ended at NOW + 365 days
    node = reconcile(fleet, now=later, measure=True).node("node-0001")
    for device in ("nic", "gpu", "nvme"):
        item = node.item(f"measured:{device}")
        assert (item.ok, item.code) == (True, None)
        assert item.detail == (
            f"reported: the reference values of 'pkg:firmware/acme/{device}' expired at "
            "2027-06-01T12:00:00+00:00"
        )
    assert node.item("measured:nic").to_json()["detail"].startswith("reported: ")
    assert (
        reconcile(fleet, now=NOW, measure=True).node("node-0001").item("measured:nic").detail == ""
    )


def test_a_class_without_desired_state_is_never_in_sync_even_without_nodes(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``reconcile(node_class=…)`` of a class that has no desired state is ``NotFound`` as
    documented, whether or not the class has nodes yet: "0 node(s), 0 drifted" (exit 0) said
    a class nobody configured was in sync."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    node_class(world, name="node-8").save(fleet.directory / "class" / "node-8")  # no nodes yet
    index = fleet.directory / "fleet.json"
    doc = json.loads(index.read_text(encoding="utf-8"))
    index.write_text(json.dumps({**doc, "classes": [*doc["classes"], "node-8"]}), "utf-8")
    fleet = Fleet.open(fleet.directory)
    assert fleet.classes() == ["node-7", "node-8"]
    publish(world, ops, fleet)
    with pytest.raises(NotFound) as caught:
        reconcile(fleet, now=NOW, node_class="node-8")
    assert caught.value.detail == (
        "class node-8 has no desired state (run `ironroot fleet desired publish`)"
    )
    f = ["--fleet", str(fleet.directory), "--at", "2026-06-01T12:00:00Z"]
    assert main(["fleet", "reconcile", *f, "--class", "node-8"]) == 1
    assert reconcile(fleet, now=NOW, node_class="node-7").ok


def test_an_empty_list_of_nodes_is_refused_not_in_sync(
    world: World, ops: Ops, tmp_path: Path
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    publish(world, ops, fleet, versions={"host": "2.0"})  # node-0001 drifted
    with pytest.raises(ConfigError) as info:
        reconcile(fleet, now=NOW, nodes=[])
    assert info.value.detail == "give at least one node (no list: every node of the class)"
    assert not reconcile(fleet, now=NOW).ok
