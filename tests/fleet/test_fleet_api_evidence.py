"""Every must-reject about a node's evidence, sent by a real TLS client to the admission
service of a fleet whose class requires SAFE reviews: each answered 403 ``admission-denied``
(an RFC 9290 problem naming the failed check) or its exact verification refusal, with the
EAR's trust-vector claim, and the node quarantined — or, for evidence that is not the node's
answer, left as it was."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest
from tests.fleet.admission_world import (
    AdmissionWorld,
    admission_world,
    debug_unlocked_quote,
    device_evidence,
)
from tests.fleet.fleet_site import Clock, Site, problem
from tests.platform.node_world import NOW, World, make_world

from ironroot.attestation import AR4SI, TrustTier, verify_ear
from ironroot.cose import Problem
from ironroot.fleet import FleetServers, report_data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("api-evidence-world")) as w:
        yield w


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    aw = admission_world(world)
    base = tmp_path_factory.mktemp("api-evidence")
    fleet, authority = aw.fleet(base / "fleet", 2, klass=aw.node_class(safe="medium"))
    files = base / "nodes"
    files.mkdir()
    clock = Clock()
    with FleetServers(authority, clock=clock) as servers:
        made = Site(fleet, authority, servers, clock, files, aw)
        yield made


def _denied(
    site: Site, response: httpx.Response, node: str, submod: str, category: str, code: int
) -> str:
    """403 admission-denied, the node quarantined, the EAR's claim; the problem's detail."""
    assert problem(response) == (403, "admission-denied", "Admission Denied")
    assert site.fleet.record_of(node).status == "quarantined"
    ear = verify_ear(site.authority.ear(node), [site.authority.verifier_key], now=NOW)
    assert ear.submods[submod].status is not TrustTier.AFFIRMING
    assert ear.submods[submod].trust_vector[category] == code
    return Problem.from_cbor(response.content).detail


def _recover(site: Site, node: str) -> None:
    site.fleet.node(node).boot(now=NOW)
    assert site.admit(node).status_code == 200


def test_a_reviewed_node_is_admitted(site: Site) -> None:
    for node in site.fleet.node_ids():
        assert site.admit(node).status_code == 200


def test_never_logged_firmware(site: Site) -> None:
    site.fleet.rot("node-0001").boot(site.world.world.bundle("bmc", svn=3, tag="hidden"), now=NOW)
    response = site.send(site.prepare("node-0001"))
    detail = _denied(site, response, "node-0001", "rot", "executables", AR4SI.UNRECOGNIZED_RUNTIME)
    assert "reference-values: no logged reference value for runtime" in detail
    _recover(site, "node-0001")


def test_debug_unlocked(site: Site) -> None:
    answer = site.prepare("node-0001")
    quote = debug_unlocked_quote(site.fleet, "node-0001", report_data(answer.nonce, answer.spkis))
    response = site.send(answer, dataclasses.replace(answer.evidence, quote=quote))
    # refused at verification: the FMC alias certificate says debug is locked
    assert problem(response) == (400, "verification-failed", "Verification Failed")
    assert "DEVICE_INFO flags" in Problem.from_cbor(response.content).detail
    assert site.admit("node-0001").status_code == 200


def test_bad_spdm_measurements(site: Site) -> None:
    answer = site.prepare("node-0002")
    firmware = site.world.world.bundle("gpu", svn=3, tag="side-loaded")
    gpu = device_evidence(site.fleet, "node-0002", "gpu", firmware, answer.nonce)
    devices = {**answer.evidence.devices, "gpu": gpu}
    response = site.send(answer, dataclasses.replace(answer.evidence, devices=devices))
    detail = _denied(site, response, "node-0002", "gpu", "executables", AR4SI.UNRECOGNIZED_RUNTIME)
    assert "gpu: reference-values: no logged reference value for runtime" in detail
    assert site.admit("node-0002").status_code == 200


def test_replayed_nonce_and_unbound_key_change_nothing(site: Site) -> None:
    answer = site.prepare("node-0002")
    assert site.send(answer).status_code == 200
    assert problem(site.send(answer))[:2] == (400, "nonce-reused")
    other = site.prepare("node-0002")
    mixed = dataclasses.replace(other, keys=answer.keys)  # CSRs for keys the quote does not bind
    assert problem(site.send(mixed))[:2] == (403, "key-binding-mismatch")
    assert site.fleet.record_of("node-0002").status == "admitted"


def test_unreviewed_firmware_then_a_rolled_back_svn(site: Site) -> None:
    aw: AdmissionWorld = site.world
    # BMC 2.0 is logged with its reference values (the BMC's minimum SVN is 4 from now on),
    # and node-0002's RoT boots it; nobody reviewed 2.0
    site.authority.add_endorsement(aw.bmc_rim("2.0"), now=NOW)
    site.fleet.rot("node-0002").boot(aw.world.release("bmc", "2.0").bundle, now=NOW)
    response = site.send(site.prepare("node-0002"))
    detail = _denied(site, response, "node-0002", "rot", "executables", AR4SI.UNRECOGNIZED_RUNTIME)
    assert "safe-review: no logged OCP SAFE review" in detail
    site.authority.add_endorsement(aw.review("2.0"), now=NOW)
    assert site.admit("node-0002").status_code == 200
    # node-0001 still runs 1.0, SVN 3: rolled back below the logged minimum
    response = site.send(site.prepare("node-0001"))
    detail = _denied(
        site, response, "node-0001", "rot", "executables", AR4SI.CONTRAINDICATED_RUNTIME
    )
    assert "svn: SVN 3 is below the logged minimum 4" in detail
