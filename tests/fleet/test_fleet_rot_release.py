"""A node's RoT quote must show the BMC firmware of one logged release: its FMC and runtime
both listed by one CoMID (tag-id) of one issuer, in force. Each used to be matched on its own,
so a BMC booting release A's FMC with release B's runtime (both logged, one SVN) was admitted
although nobody released that combination. The generic appraisal now refuses it
(``executables`` 33, ``mixed-releases``), and so does admission."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world, prepare
from tests.platform.node_world import NOW, World, make_world

from ironroot.attestation import AR4SI, TrustTier, verify_ear
from ironroot.errors import AdmissionDenied
from ironroot.firmware import Component
from ironroot.fleet import AdmissionAuthority, Fleet

_FMC_A = b"bmc fmc" * 64  # every BMC release of the world has this FMC (tests.platform)
_FMC_B = b"bmc fmc of release b" * 64
_RUNTIME_B = b"bmc runtime of release b" * 64


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("rot-release")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _bmc(world: World, fmc: bytes, runtime: bytes) -> bytes:
    """BMC firmware signed by the vendor, at the SVN of release 1.0 (3)."""
    return world.signed([Component(1, fmc, version=1), Component(2, runtime, version=2)], svn=3)


def _admit(fleet: Fleet, authority: AdmissionAuthority, node: str, bundle: bytes) -> object:
    fleet.rot(node).boot(bundle, now=NOW)
    return authority.admit(prepare(fleet, authority, node).request(), now=NOW)


def _rot(authority: AdmissionAuthority, node: str) -> tuple[TrustTier, int, tuple[str, ...]]:
    submod = verify_ear(authority.ear(node), [authority.verifier_key], now=NOW).submods["rot"]
    return submod.status, submod.trust_vector["executables"], submod.reasons


def test_a_node_whose_rot_quote_mixes_two_logged_releases_is_refused(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 3)  # its class logs BMC release 1.0 (A)
    release_a = aw.world.release("bmc", "1.0").bundle
    release_b = _bmc(aw.world, _FMC_B, _RUNTIME_B)
    authority.add_endorsement(aw.world.log_reference("bmc", release_b), now=NOW)
    for node, bundle in (("node-0001", release_a), ("node-0002", release_b)):
        assert _admit(fleet, authority, node, bundle).status == "admitted"  # type: ignore[attr-defined]
        assert _rot(authority, node)[:2] == (TrustTier.AFFIRMING, AR4SI.APPROVED_RUNTIME)
    mixed = _bmc(aw.world, _FMC_A, _RUNTIME_B)
    for node in ("node-0003", "node-0001"):  # never admitted; admitted on A, re-attesting
        with pytest.raises(AdmissionDenied) as caught:
            _admit(fleet, authority, node, mixed)
        assert caught.value.code == "admission-denied"
        record = fleet.record_of(node)
        assert record.status == "quarantined"
        assert "rot: reference-values: no logged reference value for fmc and runtime as one" in (
            record.reason
        )
        status, executables, reasons = _rot(authority, node)
        assert (status, executables) == (TrustTier.WARNING, AR4SI.UNRECOGNIZED_RUNTIME)
        (reason,) = reasons
        assert " (mixed-releases: each measurement of the evidence matches " in reason
