"""Rollout in a class whose platform trust requires witnesses (docs/platform.md, "Witnesses").

The nodes are made from a class whose statements are really witnessed (their trust names the
trusted log's checkpoint key and two witnesses, both required:
tests/fleet/witnessed_world.py). A release given with plain Transparent Statements — receipts,
no cosigned checkpoint — is refused at each node's preflight, before anything is installed,
with the platform's own error; the same release witnessed is rolled out; reconcile reports
the class's nodes as it does any other's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.desired_world import ALICE, BOB, Ops, make_ops
from tests.fleet.fleet_world import manufacture, node_class
from tests.fleet.witnessed_world import witness, witnessed_class
from tests.platform.node_world import NOW, World, make_world

from ironroot.fleet import (
    DesiredState,
    DesiredStore,
    Fleet,
    ReleaseSet,
    reconcile,
    rollout,
)
from ironroot.platform import COMPONENTS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("witnessed-rollout-world")) as w:
        yield w


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("witnessed-rollout-ops")) as o:
        yield o


@pytest.fixture
def fleet(world: World, tmp_path: Path) -> Fleet:
    klass = witnessed_class(world, node_class(world))
    made, _ = manufacture(
        Fleet.create(tmp_path / "fleet", node_class=klass), 2, now=NOW, templates=world.root
    )
    for node in made.node_ids():
        assert made.node(node).config.trust.witnesses is not None
    return made


def _publish(
    world: World, ops: Ops, fleet: Fleet, versions: dict[str, str], pfm: bytes | None = None
) -> None:
    store = DesiredStore(fleet)
    store.init(ops.governance())
    bundles = {c: world.release(c, v).bundle for c, v in versions.items()}
    state = DesiredState.build(
        fleet.node_class("node-7"), 1, bundles=bundles, pfm=pfm, fleet=fleet.identity()
    )
    store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)


def _releases(fleet: Fleet) -> ReleaseSet:
    """The class's own releases (witnessed)."""
    return ReleaseSet.of_class(fleet.node_class("node-7"))


def _active(fleet: Fleet, node: str, component: str) -> str:
    image = fleet.node(node).state().component(component).image
    assert image is not None
    return image.version


def test_a_release_given_unwitnessed_is_refused_at_every_nodes_preflight(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    _publish(world, ops, fleet, {"host": "2.0", "nic": "2.0"})
    host, nic = world.release("host", "2.0"), world.release("nic", "2.0")
    given = _releases(fleet)
    given.add_bundle(host.bundle, tuple(witness(world, s) for s in host.statements))
    given.add_bundle(nic.bundle, nic.statements)  # receipts only: no cosigned checkpoint
    for node in fleet.node_ids():  # each node's own preflight refuses it
        report = rollout(fleet, given, now=NOW, nodes=[node])
        assert report.stopped_at == node
        result = report.node(node)
        # the host's update would pass: it is withheld, as the NIC's is refused before it
        assert [(u.component, u.outcome, u.error, u.code, u.check) for u in result.updates] == [
            ("host", "withheld", None, None, None),
            ("nic", "refused", "PolicyRejected", "not-witnessed", "receipt"),
        ]
        assert result.detail == (
            "nic refused: not-witnessed (checked before installing: nothing installed)"
        )
        assert not result.mixed
        assert (_active(fleet, node, "host"), _active(fleet, node, "nic")) == ("1.0", "1.0")
        assert fleet.node(node).state().pending is None
    # reconcile reports the class's nodes as not there, each item read
    drift = reconcile(fleet, now=NOW, measure=True)
    assert drift.drifted == tuple(fleet.node_ids())
    for node in drift.nodes:
        assert {i.item for i in node.drift} == {"firmware:host", "firmware:nic", "measured:nic"}
    # the same release witnessed is rolled out, and the nodes are then in sync
    given.add_bundle(nic.bundle, tuple(witness(world, s) for s in nic.statements))
    report = rollout(fleet, given, now=NOW, wave_size=2)
    assert report.ok, report.to_json()
    assert report.with_outcome("updated") == tuple(fleet.node_ids())
    assert reconcile(fleet, now=NOW, measure=True).ok


def test_a_pfm_given_unwitnessed_is_refused_before_its_update_is_installed(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    listed = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    pfm = world.make_pfm(2, listed)
    _publish(world, ops, fleet, {"gpu": "2.0"}, pfm=pfm)
    gpu = world.release("gpu", "2.0")
    given = _releases(fleet)
    given.add_bundle(gpu.bundle, tuple(witness(world, s) for s in gpu.statements))
    logged = world.log_pfm(pfm)
    given.add_pfm(pfm, logged)  # receipts only
    report = rollout(fleet, given, now=NOW, wave_size=2)
    assert report.stopped_at == "node-0001"
    (update,) = report.node("node-0001").updates
    assert (update.component, update.with_pfm, update.outcome) == ("gpu", True, "refused")
    assert (update.error, update.code, update.check) == ("PolicyRejected", "not-witnessed", "pfm")
    assert report.node("node-0002").outcome == "not-reached"
    for node in fleet.node_ids():
        state = fleet.node(node).state()
        assert state.pfm.image is not None
        assert state.pfm.image.sha384 == hashlib.sha384(world.pfm).digest()
        assert _active(fleet, node, "gpu") == "1.0"
    given.add_pfm(pfm, witness(world, logged))
    report = rollout(fleet, given, now=NOW, wave_size=2)
    assert report.ok, report.to_json()
    assert reconcile(fleet, now=NOW).ok


def test_releases_load_the_witnessed_statements_beside_the_plain_ones(
    world: World, ops: Ops, fleet: Fleet, tmp_path: Path
) -> None:
    # `ironroot statement witness X.ts` writes X.ts.witnessed beside X.ts. Old behaviour: a
    # releases directory read only the *.ts files, so a rollout from it gave the nodes the
    # plain statements (refused: not-witnessed) and a PFM whose statement was witnessed only
    # had "no statement" (ConfigError).
    listed = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    pfm = world.make_pfm(2, listed)
    _publish(world, ops, fleet, {"host": "2.0", "nic": "2.0"}, pfm=pfm)
    base = tmp_path / "published"
    base.mkdir()
    host, nic = world.release("host", "2.0"), world.release("nic", "2.0")
    (base / "host-2.0.bin").write_bytes(host.bundle)
    (base / "host-2.0.manifest.ts").write_bytes(host.statements[0])
    (base / "host-2.0.manifest.ts.witnessed").write_bytes(witness(world, host.statements[0]))
    (base / "nic-2.0.bin").write_bytes(nic.bundle)
    for i, statement in enumerate(nic.statements):  # witnessed only
        (base / f"nic-2.0.{i}.ts.witnessed").write_bytes(witness(world, statement))
    (base / "node-2.pfm").write_bytes(pfm)
    (base / "node-2.pfm.ts.witnessed").write_bytes(witness(world, world.log_pfm(pfm)))
    given = _releases(fleet).load(base)
    _bundle, statements = given.bundle("host", host.sha384)
    assert statements == ((base / "host-2.0.manifest.ts.witnessed").read_bytes(),)
    report = rollout(fleet, given, now=NOW, wave_size=2)
    assert report.ok, report.to_json()
    assert reconcile(fleet, now=NOW, measure=True).ok
