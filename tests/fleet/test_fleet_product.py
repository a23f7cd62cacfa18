"""A node's parts are appraised against the reference values of their own product only, and a
device's SVN against the exact SVN of its release.

* The RoT quote is compared with the values of the products the class's BMC statements name,
  each SPDM device with those of its ``DeviceInfo`` vendor and model
  (:func:`ironroot.fleet.class_endorsements`): firmware the vendor logged for the NIC, running
  on the BMC or on the GPU, is ``executables`` 33 although its digests are on the log.
* A device, or a RoT quote, reporting an SVN other than the one its logged release states (the
  platform's ``svn-mismatch``: component digests do not cover the header that states it) is
  refused: the fleet's appraisal compares the SVN with the release's exactly, like the
  platform.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world, device_evidence, prepare
from tests.platform.node_world import NOW, VENDOR, World, make_world

from ironroot.attestation import AR4SI, TrustTier, verify_ear
from ironroot.corim import CORIM_CONTENT_TYPE, Comid, Svn
from ironroot.cose import create_statement
from ironroot.errors import AdmissionDenied
from ironroot.firmware import Component, reference_corim
from ironroot.fleet import AdmissionAuthority, Fleet


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("fleet-product")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _firmware(world: World, name: bytes, *, svn: int = 3) -> bytes:
    """Two-component firmware (FMC, runtime) signed by the vendor."""
    return world.signed(
        [Component(1, name + b" fmc" * 64, version=1), Component(2, name + b" rt" * 64, version=2)],
        svn=svn,
    )


def _with_device(
    fleet: Fleet, authority: AdmissionAuthority, node: str, name: str, firmware: bytes
) -> object:
    prepared = prepare(fleet, authority, node)
    evidence = device_evidence(fleet, node, name, firmware, prepared.nonce)
    devices = {**prepared.evidence.devices, name: evidence}
    return prepared.request(
        evidence=dataclasses.replace(prepared.evidence, devices=devices).encode()
    )


def _submod(authority: AdmissionAuthority, node: str, name: str) -> tuple[TrustTier, int, str]:
    submod = verify_ear(authority.ear(node), [authority.verifier_key], now=NOW).submods[name]
    (reason,) = [r for r in submod.reasons if r.startswith("reference-values: ")]
    return submod.status, submod.trust_vector["executables"], reason


def test_a_bmc_running_firmware_logged_for_a_device_is_refused(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    nic_release = _firmware(aw.world, b"bmc-shaped nic release")
    authority.add_endorsement(aw.world.log_reference("nic", nic_release), now=NOW)
    fleet.rot("node-0001").boot(nic_release, now=NOW)
    with pytest.raises(AdmissionDenied) as caught:
        authority.admit(prepare(fleet, authority, "node-0001").request(), now=NOW)
    assert caught.value.code == "admission-denied"
    assert fleet.record_of("node-0001").status == "quarantined"
    status, executables, reason = _submod(authority, "node-0001", "rot")
    assert (status, executables) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
    assert reason.startswith("reference-values: no logged reference value for fmc ")


def test_a_device_running_firmware_logged_for_another_device_is_refused(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    gpu_release = _firmware(aw.world, b"gpu release")
    authority.add_endorsement(aw.world.log_reference("gpu", gpu_release), now=NOW)
    nic_release = _firmware(aw.world, b"nic release")
    authority.add_endorsement(aw.world.log_reference("nic", nic_release), now=NOW)
    # the NIC on its own release is admitted; on the GPU's, refused
    result = authority.admit(
        _with_device(fleet, authority, "node-0001", "nic", nic_release), now=NOW
    )  # type: ignore[arg-type]
    assert result.status == "admitted"
    with pytest.raises(AdmissionDenied) as caught:
        authority.admit(_with_device(fleet, authority, "node-0002", "nic", gpu_release), now=NOW)  # type: ignore[arg-type]
    assert caught.value.code == "admission-denied"
    status, executables, reason = _submod(authority, "node-0002", "nic")
    assert (status, executables) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
    assert reason.startswith("reference-values: no logged reference value for fmc ")


@pytest.mark.parametrize("svn", [2, 4, 9])
def test_a_device_reporting_another_svn_than_its_release_is_refused(
    aw: AdmissionWorld, tmp_path: Path, svn: int
) -> None:
    """The release is logged at SVN 3; the device's firmware has the same components under a
    header stating another SVN (below: also under the floor; above: never released)."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    release = _firmware(aw.world, b"nic svn release")
    authority.add_endorsement(aw.world.log_reference("nic", release), now=NOW)
    other = _firmware(aw.world, b"nic svn release", svn=svn)
    with pytest.raises(AdmissionDenied) as caught:
        authority.admit(_with_device(fleet, authority, "node-0001", "nic", other), now=NOW)  # type: ignore[arg-type]
    assert caught.value.code == "admission-denied"
    assert fleet.record_of("node-0001").status == "quarantined"
    status, executables, reason = _submod(authority, "node-0001", "nic")
    expected = (
        (TrustTier.CONTRAINDICATED, AR4SI.CONTRAINDICATED_RUNTIME)  # rolled back, too
        if svn < 3
        else (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
    )
    assert (status, executables) == expected
    assert reason.startswith("reference-values: no logged reference value for fmc ")
    assert f"(its logged values are for SVN 3 exactly, the evidence claims {svn})" in reason


def test_a_bmc_reporting_another_svn_than_its_release_is_refused(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """The BMC release is logged at SVN 3; the RoT boots its components under a vendor-signed
    header stating SVN 7, never logged."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    release = _firmware(aw.world, b"bmc svn release")
    authority.add_endorsement(aw.world.log_reference("bmc", release), now=NOW)
    fleet.rot("node-0001").boot(_firmware(aw.world, b"bmc svn release", svn=7), now=NOW)
    with pytest.raises(AdmissionDenied) as caught:
        authority.admit(prepare(fleet, authority, "node-0001").request(), now=NOW)
    assert caught.value.code == "admission-denied"
    assert fleet.record_of("node-0001").status == "quarantined"
    status, executables, reason = _submod(authority, "node-0001", "rot")
    assert (status, executables) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
    assert "(its logged values are for SVN 3 exactly, the evidence claims 7)" in reason


def _logged_with_svn(world: World, component: str, bundle: bytes, svn: Svn | None) -> bytes:
    """``bundle``'s reference CoRIM for ``component`` with ``svn`` in each measurement (a
    vendor's CoRIM may leave it out, or state a minimum), signed by the vendor and logged."""
    model = world.model(component)
    corim = reference_corim(bundle, vendor=VENDOR, model=model)
    (comid,) = corim.tags
    assert isinstance(comid, Comid)
    triples = tuple(
        dataclasses.replace(
            t,
            measurements=tuple(
                dataclasses.replace(m, mval=dataclasses.replace(m.mval, svn=svn))
                for m in t.measurements
            ),
        )
        for t in comid.triples.reference
    )
    comid = dataclasses.replace(
        comid, triples=dataclasses.replace(comid.triples, reference=triples)
    )
    statement = create_statement(
        world.statement_key,
        dataclasses.replace(corim, tags=(comid,)).encode(),
        iss=VENDOR,
        sub=model,
        content_type=CORIM_CONTENT_TYPE,
    )
    return world.trusted.register(statement).transparent_statement


def test_a_device_whose_logged_release_states_no_svn_is_refused(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """The platform refuses a device whose logged release states no SVN (``svn-mismatch``:
    nothing binds the header stating the SVN to the release); the fleet took such a value for
    any SVN and admitted the node. It now refuses it the same way."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    release = _firmware(aw.world, b"nic release without svn")
    authority.add_endorsement(_logged_with_svn(aw.world, "nic", release, None), now=NOW)
    with pytest.raises(AdmissionDenied) as caught:
        authority.admit(_with_device(fleet, authority, "node-0001", "nic", release), now=NOW)  # type: ignore[arg-type]
    assert caught.value.code == "admission-denied"
    assert fleet.record_of("node-0001").status == "quarantined"
    status, executables, reason = _submod(authority, "node-0001", "nic")
    assert (status, executables) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
    assert reason.startswith("reference-values: no logged reference value for fmc ")
    assert "(its logged values are for no stated SVN, the evidence claims 3)" in reason


def test_a_bmc_whose_logged_release_states_no_svn_is_refused(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """The same for the RoT quote: a BMC release logged with no SVN matches no quoted SVN."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    release = _firmware(aw.world, b"bmc release without svn")
    authority.add_endorsement(_logged_with_svn(aw.world, "bmc", release, None), now=NOW)
    fleet.rot("node-0001").boot(release, now=NOW)
    with pytest.raises(AdmissionDenied) as caught:
        authority.admit(prepare(fleet, authority, "node-0001").request(), now=NOW)
    assert caught.value.code == "admission-denied"
    assert fleet.record_of("node-0001").status == "quarantined"
    status, executables, reason = _submod(authority, "node-0001", "rot")
    assert (status, executables) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
    assert "(its logged values are for no stated SVN, the evidence claims 3)" in reason


@pytest.mark.parametrize("component", ["nic", "bmc"])
def test_a_release_logged_with_a_minimum_svn_is_still_read_exactly(
    aw: AdmissionWorld, tmp_path: Path, component: str
) -> None:
    """Ironroot's own release CoRIMs state the exact SVN (552); those it logged before did
    state a minimum (553), and so may another vendor's. The fleet reads the SVN of a device's
    or a BMC's release as exact whatever tag states it: the same components under a header
    stating SVN 7 are not the release logged at SVN 3."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    name = f"{component} release with a minimum svn".encode()
    release = _firmware(aw.world, name)
    logged = _logged_with_svn(aw.world, component, release, Svn(3, minimum=True))
    authority.add_endorsement(logged, now=NOW)
    higher = _firmware(aw.world, name, svn=7)
    request: object
    if component == "bmc":
        fleet.rot("node-0001").boot(higher, now=NOW)
        request = prepare(fleet, authority, "node-0001").request()
    else:
        request = _with_device(fleet, authority, "node-0001", "nic", higher)
    with pytest.raises(AdmissionDenied) as caught:
        authority.admit(request, now=NOW)  # type: ignore[arg-type]
    assert caught.value.code == "admission-denied"
    assert fleet.record_of("node-0001").status == "quarantined"
    status, executables, reason = _submod(
        authority, "node-0001", "rot" if component == "bmc" else "nic"
    )
    assert (status, executables) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
    assert "(its logged values are for SVN 3 exactly, the evidence claims 7)" in reason
