"""A device's measurement blocks beyond its FMC and runtime (index 3 and up: each further
component of its firmware, in TOC order) are appraised like the first two: each must be a
digest the device's logged reference values list for a ``component-<id>`` (as the platform's
own check, :func:`ironroot.platform.measure_device`, matches them). A device whose third
component was changed, or which reports a block nobody logged, is refused at admission; a
device whose every component is logged is admitted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world, device_evidence, prepare
from tests.platform.node_world import NOW, World, make_world

from ironroot.attestation import AR4SI, TrustTier, verify_ear
from ironroot.errors import AdmissionDenied
from ironroot.firmware import Component
from ironroot.fleet import AdmissionAuthority, Fleet


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("device-components")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _nic(
    world: World,
    third: bytes,
    *,
    ids: tuple[int, int, int] = (1, 2, 3),
    fmc: bytes = b"nic fmc three" * 64,
    runtime: bytes = b"nic runtime three" * 64,
) -> bytes:
    """NIC firmware of three components (FMC, runtime, a third), at the release's SVN."""
    return world.signed(
        [
            Component(ids[0], fmc, version=1),
            Component(ids[1], runtime, version=2),
            Component(ids[2], third, version=3),
        ],
        svn=3,
    )


def _request(fleet: Fleet, authority: AdmissionAuthority, node: str, firmware: bytes) -> object:
    prepared = prepare(fleet, authority, node)
    nic = device_evidence(fleet, node, "nic", firmware, prepared.nonce)
    devices = {**prepared.evidence.devices, "nic": nic}
    return prepared.request(
        evidence=dataclasses.replace(prepared.evidence, devices=devices).encode()
    )


def _nic_submod(authority: AdmissionAuthority, node: str) -> tuple[TrustTier, int]:
    result = verify_ear(authority.ear(node), [authority.verifier_key], now=NOW)
    submod = result.submods["nic"]
    return submod.status, submod.trust_vector["executables"]


def test_a_device_whose_every_component_is_logged_is_admitted(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    good = _nic(aw.world, b"nic option rom" * 64)
    authority.add_endorsement(aw.world.log_reference("nic", good), now=NOW)
    result = authority.admit(_request(fleet, authority, "node-0001", good), now=NOW)  # type: ignore[arg-type]
    assert result.status == "admitted"
    assert _nic_submod(authority, "node-0001") == (TrustTier.AFFIRMING, AR4SI.APPROVED_RUNTIME)


def test_a_device_whose_third_component_changed_is_refused(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    authority.add_endorsement(
        aw.world.log_reference("nic", _nic(aw.world, b"nic option rom" * 64)), now=NOW
    )
    # FMC and runtime are the logged ones; the third component is not
    changed = _nic(aw.world, b"nic option rom, patched" * 64)
    with pytest.raises(AdmissionDenied) as caught:
        authority.admit(_request(fleet, authority, "node-0001", changed), now=NOW)  # type: ignore[arg-type]
    assert caught.value.code == "admission-denied"
    assert fleet.record_of("node-0001").status == "quarantined"
    status, executables = _nic_submod(authority, "node-0001")
    assert status is not TrustTier.AFFIRMING
    assert executables == AR4SI.UNRECOGNIZED_RUNTIME
    assert "component-3" in fleet.record_of("node-0001").reason


def test_a_component_logged_under_another_id_is_matched_by_its_digest(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """A block's index is the component's place in the TOC, not its id: the platform matches
    a block from index 3 against any ``component-<id>`` the device's values list, and so does
    the fleet's appraisal."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    good = _nic(aw.world, b"nic microcode" * 64, ids=(1, 2, 7))
    authority.add_endorsement(aw.world.log_reference("nic", good), now=NOW)
    result = authority.admit(_request(fleet, authority, "node-0001", good), now=NOW)  # type: ignore[arg-type]
    assert result.status == "admitted"


def test_a_device_mixing_two_logged_releases_is_refused_and_quarantined_at_re_attestation(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """Releases A and B of the NIC are both logged, at one SVN. A device running A's FMC and
    third component with B's runtime has every block on the log and the SVN of both, but
    no one released that combination: admission refuses it (the generic appraisal's
    ``reference-values`` rule, ``mixed-releases``, ``executables`` 33), and a node admitted
    on A that re-attests so is quarantined. A device wholly on A, or wholly on B, is
    admitted."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 3)
    rom = b"nic option rom" * 64
    release_a = _nic(aw.world, rom)
    release_b = _nic(aw.world, rom, fmc=b"nic fmc b" * 64, runtime=b"nic runtime b" * 64)
    mixed = _nic(aw.world, rom, runtime=b"nic runtime b" * 64)
    for release in (release_a, release_b):
        authority.add_endorsement(aw.world.log_reference("nic", release), now=NOW)
    for node, firmware in (("node-0001", release_a), ("node-0002", release_b)):
        result = authority.admit(_request(fleet, authority, node, firmware), now=NOW)  # type: ignore[arg-type]
        assert result.status == "admitted"
        assert _nic_submod(authority, node) == (TrustTier.AFFIRMING, AR4SI.APPROVED_RUNTIME)
    for node in ("node-0003", "node-0001"):  # never admitted; admitted on A, re-attesting
        with pytest.raises(AdmissionDenied) as caught:
            authority.admit(_request(fleet, authority, node, mixed), now=NOW)  # type: ignore[arg-type]
        assert caught.value.code == "admission-denied"
        record = fleet.record_of(node)
        assert record.status == "quarantined"
        assert (
            "nic: reference-values: no logged reference value for fmc, runtime and component-3"
            " as one release (mixed-releases: each measurement of the evidence matches "
        ) in record.reason
        assert _nic_submod(authority, node) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
