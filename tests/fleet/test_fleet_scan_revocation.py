"""The scanner and the desired state's vendor key revocation masks: a node whose RoT's
revocation fuses do not revoke every vendor key the class's desired state in force revokes
would still boot firmware signed with one — security drift, quarantined by the scan as the
other drift of a node's own RoT is (no hold: fuses blown as desired readmit it at the next
scan), with reconcile's item, code and sentence in the reason."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.fleet.desired_world import ALICE, BOB, Ops, make_ops
from tests.platform.node_world import NOW, World, make_world

from ironroot.fleet import (
    DesiredState,
    DesiredStore,
    Fleet,
    FuseTarget,
    Scanner,
    attest_node,
    scan_attest,
)

REASON = (
    "attestation failed: the root of trust's fuses are not the desired state's "
    "(vendor-key-not-revoked): fuse:ecc-revoked: vendor ECC key(s) 2 are revoked by the desired "
    "state but not by the node's fuses: it still boots firmware signed with them"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("scan-revocation-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("scan-revocation-ops")) as o:
        yield o


def _publish(world: World, ops: Ops, fleet: Fleet, fuses: FuseTarget) -> None:
    store = DesiredStore(fleet)
    store.init(ops.governance())
    state = DesiredState.build(fleet.node_class("node-7"), 1, fleet=fleet.identity(), fuses=fuses)
    store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)


def test_the_scanner_quarantines_a_node_that_still_accepts_a_revoked_vendor_key(
    aw: AdmissionWorld, ops: Ops, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    for node in ("node-0001", "node-0002"):
        attest_node(fleet, node, now=NOW, authority=authority)
    fleet.rot("node-0001").program(lambda f: f.revoke_ecc_key(2))
    _publish(aw.world, ops, fleet, FuseTarget(aw.world.descriptor_hash, ecc_revoked=0b0100))
    scanner = Scanner(fleet, scan_attest(fleet, authority), period=300, jitter=0)
    later = NOW + dt.timedelta(seconds=400)
    assert scanner.scan(later).statuses == {
        "node-0001": "admitted",
        "node-0002": "quarantined",
    }
    record = fleet.record_of("node-0002")
    assert (record.status, record.reason) == ("quarantined", REASON)
    quarantined = fleet.events(node="node-0002", kind="quarantined", latest=True, limit=1)
    assert [e.detail for e in quarantined] == [
        {
            "reason": REASON,
            "code": "vendor-key-not-revoked",
            "item": "fuse:ecc-revoked",
            "detail": REASON.split("fuse:ecc-revoked: ")[1],
        }
    ]
    (effects,) = fleet.events(node="node-0002", kind="quarantine-effects")
    assert effects.detail["held"] is False
    assert effects.detail["revoked"]  # its credentials of both planes
    assert all(c.revoked for c in authority.credentials.of_node("node-0002"))
    assert authority.state.held("node-0002") is None
    assert scanner.due(later + dt.timedelta(seconds=10)) == []  # once a period, not each round
    # The fuse blown as desired: the next scan attests it, and it is readmitted.
    fleet.rot("node-0002").program(lambda f: f.revoke_ecc_key(2))
    again = scanner.scan(later + dt.timedelta(seconds=400))
    assert again.statuses["node-0002"] == "admitted"


def test_a_desired_state_revoking_no_key_quarantines_nothing_for_revocation(
    aw: AdmissionWorld, ops: Ops, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    _publish(aw.world, ops, fleet, FuseTarget(aw.world.descriptor_hash))
    attest = scan_attest(fleet, authority)
    assert attest("node-0001", NOW) == "admitted"
