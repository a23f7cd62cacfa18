"""Admission's PFM policy: when the class's desired state in force names a PFM, a node is
admitted only if its RoT quote shows that PFM measured at boot (PCR 2's ``pfm-digest``);
another booted PFM, or none measured, refuses it and quarantines it with the reason
(``pfm-not-booted`` / ``pfm-not-measured``, :func:`ironroot.rot.check_booted_pfm`), in the
EAR, the quarantine and the continuous scanner alike."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.fleet.desired_world import ALICE, BOB, Ops, make_ops
from tests.platform.node_world import NOW, World, make_world

from ironroot.attestation import AR4SI, TrustTier, verify_ear
from ironroot.errors import AdmissionDenied, StorageError
from ironroot.fleet import (
    AdmissionAuthority,
    DesiredState,
    DesiredStore,
    Fleet,
    attest_node,
    scan_attest,
)
from ironroot.platform import COMPONENTS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("admission-pfm-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("admission-pfm-ops")) as o:
        yield o


def _publish(world: World, ops: Ops, fleet: Fleet, pfm: bytes | None = None) -> DesiredState:
    """The class's desired state (approved by Alice and Bob), naming ``pfm`` (default: the
    class's own PFM, the one every node booted)."""
    store = DesiredStore(fleet)
    store.init(ops.governance())
    state = DesiredState.build(fleet.node_class("node-7"), 1, fleet=fleet.identity(), pfm=pfm)
    store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
    return state


def _newer_pfm(world: World) -> bytes:
    """Another PFM the vendor signed and logged for the platform (SVN 2, both releases)."""
    both = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    newer = world.make_pfm(2, both)
    world.log_pfm(newer)
    return newer


def _boot_without_pfm(fleet: Fleet, node: str) -> None:
    """The node's RoT booted as an Ironroot before PFM measurement left it: the BMC and the
    DPE children measured, no ``pfm-digest`` in PCR 2."""
    platform = fleet.node(node)
    rot = fleet.rot(node)
    rot.boot(platform.active_image("bmc"), now=NOW, advance_svn=False)
    for component in COMPONENTS[1:]:
        rot.derive_child(hashlib.sha384(platform.active_image(component)).digest(), label=component)


def _refused(authority: AdmissionAuthority, node: str, reason: str, code: int) -> str:
    """Admission of ``node`` is denied, the node quarantined, and its EAR's ``rot``
    submodule carries ``configuration`` ``code`` and the reason line starting ``reason``;
    returns that line."""
    with pytest.raises(AdmissionDenied) as caught:
        attest_node(authority.fleet, node, now=NOW, authority=authority)
    assert caught.value.code == "admission-denied"
    record = authority.fleet.record_of(node)
    assert record.status == "quarantined"
    ear = verify_ear(authority.ear(node), [authority.verifier_key], now=NOW)
    rot = ear.submods["rot"]
    assert rot.status is not TrustTier.AFFIRMING
    assert rot.trust_vector["configuration"] == code
    lines = [r for r in rot.reasons if r.startswith(f"{reason}: ")]
    assert len(lines) == 1, rot.reasons
    assert f"rot: {lines[0]}" in record.reason
    assert f"rot: {lines[0]}" in caught.value.detail
    return lines[0]


def test_a_node_booted_with_the_desired_pfm_is_admitted(
    aw: AdmissionWorld, ops: Ops, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    _publish(aw.world, ops, fleet)
    result = attest_node(fleet, "node-0001", now=NOW, authority=authority)
    assert result.status == "admitted"
    ear = verify_ear(result.appraisal.token, [authority.verifier_key], now=NOW)
    assert ear.submods["rot"].status is TrustTier.AFFIRMING
    assert fleet.record_of("node-0001").status == "admitted"


def test_a_node_booted_with_another_logged_pfm_is_refused_and_quarantined(
    aw: AdmissionWorld, ops: Ops, tmp_path: Path
) -> None:
    """The vendor signed and logged both PFMs; the class's desired state names the newer
    one, the node's RoT measured the older one at boot: not the PFM the operators approved."""
    world = aw.world
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)  # admitted before
    newer = _newer_pfm(world)
    _publish(world, ops, fleet, pfm=newer)
    line = _refused(authority, "node-0001", "pfm-not-booted", AR4SI.UNSUPPORTABLE_CONFIG)
    assert line == (
        f"pfm-not-booted: the desired PFM ({hashlib.sha384(newer).hexdigest()[:16]}…) is not "
        f"the PFM the RoT measured at boot ({hashlib.sha384(world.pfm).hexdigest()[:16]}…)"
    )
    # the node's credentials were revoked by the quarantine: it holds none in force
    assert all(c.revoked_at for c in authority.credentials.of_node("node-0001"))


def test_a_node_whose_quote_measured_no_pfm_is_refused_and_quarantined(
    aw: AdmissionWorld, ops: Ops, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    _publish(aw.world, ops, fleet)
    _boot_without_pfm(fleet, "node-0001")
    line = _refused(authority, "node-0001", "pfm-not-measured", AR4SI.UNSAFE_CONFIG)
    assert line.startswith("pfm-not-measured: the RoT's last boot measured no PFM")
    # booted again, its RoT measures the PFM it enforces: admitted
    fleet.node("node-0001").boot(now=NOW)
    assert attest_node(fleet, "node-0001", now=NOW, authority=authority).status == "admitted"


def test_the_scanner_quarantines_a_node_that_booted_another_pfm(
    aw: AdmissionWorld, ops: Ops, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    for node in ("node-0001", "node-0002"):
        attest_node(fleet, node, now=NOW, authority=authority)
    _publish(aw.world, ops, fleet, pfm=_newer_pfm(aw.world))
    attest = scan_attest(fleet, authority)
    assert attest("node-0002", NOW) == "quarantined"
    record = fleet.record_of("node-0002")
    assert "rot: pfm-not-booted: the desired PFM" in record.reason
    assert fleet.record_of("node-0001").status == "admitted"  # not attested this round


def test_without_a_desired_state_no_pfm_is_required(aw: AdmissionWorld, tmp_path: Path) -> None:
    """A class that never had a desired state names no PFM: admission as before."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    _boot_without_pfm(fleet, "node-0001")
    assert attest_node(fleet, "node-0001", now=NOW, authority=authority).status == "admitted"


def test_a_desired_state_that_cannot_be_read_refuses_admission_without_quarantine(
    aw: AdmissionWorld, ops: Ops, tmp_path: Path
) -> None:
    """Its files removed after it was put in force (the fleet's log remembers it): the PFM it
    names is unknown, so no credential is issued (fail closed); the node, which did nothing,
    keeps its status."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    _publish(aw.world, ops, fleet)
    shutil.rmtree(fleet.directory / "desired" / "node-7")
    issued = len(authority.credentials.of_node("node-0001"))
    with pytest.raises(StorageError) as caught:
        attest_node(fleet, "node-0001", now=NOW, authority=authority)
    assert caught.value.code == "pfm-policy-unavailable"
    assert fleet.record_of("node-0001").status == "admitted"
    assert len(authority.credentials.of_node("node-0001")) == issued
