"""SAFE reviews are required of every firmware component the class trust names, not only of
the BMC: the host (measured into PCR 2 by the RoT, carried by the ``rot`` submodule) and each
SPDM device (its own submodule). A node running an unreviewed component — or one with an open
finding above the class's severity — is refused and quarantined, with the EAR saying why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import PROVIDER, AdmissionWorld, admission_world
from tests.platform.node_world import NOW, OTHER, World, make_world, sfr_report

from ironroot.attestation import AR4SI, TrustTier, verify_ear
from ironroot.errors import AdmissionDenied
from ironroot.firmware import FirmwareBundle
from ironroot.fleet import AdmissionAuthority, Fleet, NodeClass, attest_node
from ironroot.fleet._reviews import ComponentReviews, measured_components
from ironroot.platform import SafeRequirement
from ironroot.safe import sfr_statement, sign_report


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("component-reviews")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _review(
    aw: AdmissionWorld, component: str, version: str, cvss: tuple[float, ...] = ()
) -> bytes:
    """A logged OCP SAFE review of ``component``'s release ``version``."""
    bundle = aw.world.release(component, version).bundle
    digest = FirmwareBundle.parse(bundle).manifest_digest()
    sfr = sign_report(sfr_report(digest, cvss), aw.provider, PROVIDER)
    statement = sfr_statement(sfr, aw.world.other_key, iss=OTHER)
    return aw.world.trusted.register(statement).transparent_statement


def _require(
    fleet: Fleet, klass: NodeClass, aw: AdmissionWorld, *components: str
) -> tuple[Fleet, AdmissionAuthority]:
    """The class's trust now requires reviews of ``components`` too (and the BMC's): the
    operator changed the class after its nodes were made."""
    safe = {c: SafeRequirement(aw.providers, "medium") for c in ("bmc", *components)}
    changed = dataclasses.replace(klass, trust=aw.world.trust(safe=safe))
    changed.save(fleet.directory / "class" / klass.name)
    reopened = Fleet.open(fleet.directory)
    return reopened, AdmissionAuthority.open(reopened)


def _refused(
    fleet: Fleet, authority: AdmissionAuthority, node: str, at: dt.datetime
) -> dict[str, tuple[TrustTier, int, tuple[str, ...]]]:
    """Admission is denied and the node quarantined; submodule → (status, executables,
    reasons) of the EAR."""
    with pytest.raises(AdmissionDenied) as caught:
        attest_node(fleet, node, now=at, authority=authority)
    assert caught.value.code == "admission-denied"
    assert fleet.record_of(node).status == "quarantined"
    result = verify_ear(authority.ear(node), [authority.verifier_key], now=at)
    return {
        name: (a.status, a.trust_vector.get("executables", 0), a.reasons)
        for name, a in result.submods.items()
    }


@pytest.fixture
def fleet(aw: AdmissionWorld, tmp_path: Path) -> tuple[Fleet, NodeClass]:
    klass = aw.node_class(safe="medium")  # the BMC's 1.0 is reviewed
    fleet, authority = aw.fleet(tmp_path / "fleet", 2, klass=klass)
    assert attest_node(fleet, "node-0001", now=NOW, authority=authority).status == "admitted"
    return fleet, klass


def test_an_unreviewed_device_firmware_is_refused_when_the_class_requires_it(
    aw: AdmissionWorld, fleet: tuple[Fleet, NodeClass]
) -> None:
    fleet_, klass = fleet
    fleet_, authority = _require(fleet_, klass, aw, "nic")
    ear = _refused(fleet_, authority, "node-0001", NOW + dt.timedelta(minutes=1))
    status, executables, reasons = ear["nic"]
    assert (status, executables) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
    assert any(
        r.startswith("safe-review: no logged OCP SAFE review of the nic firmware sha384:")
        for r in reasons
    )
    assert ear["rot"][0] is TrustTier.AFFIRMING  # the BMC's review is there
    assert ear["gpu"][0] is TrustTier.AFFIRMING  # no requirement for the GPU
    assert "nic: safe-review" in fleet_.record_of("node-0001").reason
    # a clean logged review of the NIC's release admits it (readmitted)
    authority.add_endorsement(_review(aw, "nic", "1.0"), now=NOW)
    at = NOW + dt.timedelta(minutes=2)
    assert attest_node(fleet_, "node-0001", now=at, authority=authority).status == "admitted"
    assert fleet_.record_of("node-0001").reason == "readmitted"
    # a later review with an open finding above "medium" refuses it again
    authority.add_endorsement(_review(aw, "nic", "1.0", (8.1,)), now=NOW)
    ear = _refused(fleet_, authority, "node-0001", NOW + dt.timedelta(minutes=3))
    status, executables, reasons = ear["nic"]
    assert (status, executables) == (TrustTier.WARNING, AR4SI.UNSAFE_RUNTIME)
    assert any("lists an open issue with CVSS 8.1" in r for r in reasons)


def test_an_unreviewed_host_firmware_is_refused_in_the_rot_submodule(
    aw: AdmissionWorld, fleet: tuple[Fleet, NodeClass]
) -> None:
    fleet_, klass = fleet
    fleet_, authority = _require(fleet_, klass, aw, "host", "gpu")
    ear = _refused(fleet_, authority, "node-0002", NOW)
    status, executables, reasons = ear["rot"]  # the quote carries the host's measurement
    assert (status, executables) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
    assert any("review of the host firmware" in r for r in reasons)
    assert ear["gpu"][1] == AR4SI.UNRECOGNIZED_RUNTIME
    assert ear["nic"][0] is TrustTier.AFFIRMING
    authority.add_endorsement(_review(aw, "host", "1.0"), now=NOW)
    authority.add_endorsement(_review(aw, "gpu", "1.0"), now=NOW)
    assert attest_node(fleet_, "node-0002", now=NOW, authority=authority).status == "admitted"


def test_a_release_outside_the_class_is_identified_from_what_the_rot_measured(
    aw: AdmissionWorld, fleet: tuple[Fleet, NodeClass]
) -> None:
    """node-0002's NIC is updated to 2.0 (logged, with its reference values, not in the
    class's images): its review is looked up for the release the RoT measured."""
    fleet_, klass = fleet
    nic = aw.world.release("nic", "2.0")
    node = fleet_.node("node-0002")
    assert node.update("nic", nic.bundle, nic.statements, now=NOW).outcome == "committed"
    node.boot(now=NOW + dt.timedelta(seconds=30))
    fleet_, authority = _require(fleet_, klass, aw, "nic")
    for statement in nic.statements:
        authority.add_endorsement(statement, now=NOW)  # its reference CoRIM
    at = NOW + dt.timedelta(minutes=1)
    authority.add_endorsement(_review(aw, "nic", "1.0"), now=NOW)  # not what it runs
    ear = _refused(fleet_, authority, "node-0002", at)
    assert ear["nic"][1] == AR4SI.UNRECOGNIZED_RUNTIME
    digest = FirmwareBundle.parse(nic.bundle).manifest_digest().hex()
    assert any(f"nic firmware sha384:{digest}" in r for r in ear["nic"][2])
    authority.add_endorsement(_review(aw, "nic", "2.0"), now=NOW)
    assert attest_node(fleet_, "node-0002", now=at, authority=authority).status == "admitted"


def test_firmware_nobody_can_identify_is_unrecognized(
    aw: AdmissionWorld, fleet: tuple[Fleet, NodeClass]
) -> None:
    fleet_, klass = fleet
    fleet_, _authority = _require(fleet_, klass, aw, "nvme")
    reviews = ComponentReviews(fleet_)
    klass = fleet_.node_class(klass.name)
    quote = fleet_.rot("node-0001").quote(bytes(64))
    assert set(measured_components(quote)) == {"host", "nic", "gpu", "nvme"}
    failure = reviews._failure(
        "node-0001", klass, "nvme", klass.trust.safe["nvme"], b"\x11" * 48, (), NOW
    )
    assert failure is not None
    assert failure[0] == AR4SI.UNRECOGNIZED_RUNTIME
    assert "no release the fleet can identify" in failure[1]
    failure = reviews._failure("node-0001", klass, "nvme", klass.trust.safe["nvme"], None, (), NOW)
    assert failure is not None
    assert "measured no nvme firmware" in failure[1]


def test_a_component_review_that_expires_within_the_hour_stops_counting(
    aw: AdmissionWorld, fleet: tuple[Fleet, NodeClass]
) -> None:
    # The class's component reviews are read once an hour, and whether each still counted
    # was asked only then: a clean review whose exp passed went on admitting the firmware
    # until the next hour (the BMC's reviews are asked again at every appraisal).
    fleet_, klass = fleet
    fleet_, authority = _require(fleet_, klass, aw, "nic")
    bundle = aw.world.release("nic", "1.0").bundle
    digest = FirmwareBundle.parse(bundle).manifest_digest()
    report = json.loads(sfr_report(digest))
    report["exp"] = int((NOW + dt.timedelta(minutes=30)).timestamp())
    sfr = sign_report(json.dumps(report).encode(), aw.provider, PROVIDER)
    statement = sfr_statement(sfr, aw.world.other_key, iss=OTHER)
    authority.add_endorsement(aw.world.trusted.register(statement).transparent_statement, now=NOW)
    at = NOW + dt.timedelta(minutes=1)
    assert attest_node(fleet_, "node-0001", now=at, authority=authority).status == "admitted"
    later = NOW + dt.timedelta(minutes=31)
    assert int(later.timestamp()) // 3600 == int(at.timestamp()) // 3600  # the same hour
    ear = _refused(fleet_, authority, "node-0001", later)
    status, executables, reasons = ear["nic"]
    assert (status, executables) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
    assert any(r.startswith("safe-review: no logged OCP SAFE review of the nic") for r in reasons)
