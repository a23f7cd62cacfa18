"""What a GPU submodule of a composite EAR may affirm: its ``executables`` claim is the worse
of the policy's executables rules and the RIM appraisal (a RIM that matches never erases a
rule that failed), and its ``debug`` claim is false only when the RIM appraisal proved the
GPU runs NVIDIA's golden measurements (a GPU report says nothing about its debug state)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from _ar_helpers import World
from _gpu_helpers import NOW, GpuWorld

from ironroot.attestation import (
    AR4SI,
    DEFAULT_POLICY,
    AppraisalPolicy,
    AttestationResult,
    Endorsements,
    PolicyRule,
    TrustTier,
    appraise,
    appraise_composite,
    composite_nonce,
    gpu_nonce,
)
from ironroot.attestation.evidence import CheckLog, verify_nvidia_gpu
from ironroot.rot import Device


@pytest.fixture(scope="module")
def gpus() -> GpuWorld:
    return GpuWorld.generate()


@pytest.fixture(scope="module")
def endorsements(world: World, gpus: GpuWorld) -> Endorsements:
    return dataclasses.replace(world.endorsements(), rims=gpus.logged_rims(world))


def _policy(*extra: PolicyRule) -> AppraisalPolicy:
    return dataclasses.replace(DEFAULT_POLICY, rules=(*DEFAULT_POLICY.rules, *extra))


def _composite(
    cvm: Device,
    gpus: GpuWorld,
    endorsements: Endorsements,
    policy: AppraisalPolicy = DEFAULT_POLICY,
) -> AttestationResult:
    nonce = os.urandom(32)
    return appraise_composite(
        cvm.quote(composite_nonce(nonce, 1)),
        [gpus.gpu().report(gpu_nonce(nonce, 0))],
        endorsements,
        policy,
        nonce=nonce,
        now=NOW,
        format="ironroot",
        gpu_root=gpus.root,
    )


def test_a_matching_rim_does_not_erase_a_failed_executables_rule(
    world: World, gpus: GpuWorld, endorsements: Endorsements, tmp_path: Path
) -> None:
    """An operator's rule refuses this driver for GPUs (executables 96): every block matching
    the logged RIMs must not turn the GPU's executables claim back into approved (2)."""
    refuse = PolicyRule(
        "no-550-driver",
        'format != "nvidia-gpu" || !identity.driver_version.startsWith("550.")',
        "executables",
        AR4SI.CONTRAINDICATED_RUNTIME,
        "driver {format} is refused here",
    )
    cvm = world.device(tmp_path / "cvm", "good")
    result = _composite(cvm, gpus, endorsements, _policy(refuse))
    gpu0 = result.submods["gpu0"]
    assert gpu0.trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME, gpu0.reasons
    assert gpu0.status is TrustTier.CONTRAINDICATED
    assert any(r.startswith("no-550-driver:") for r in gpu0.reasons)
    assert result.status is TrustTier.CONTRAINDICATED
    # the same rule passing: the RIM's verdict stands, and the default policy's SAFE rule,
    # which has no firmware hash to look GPUs up by, neither fails nor is listed
    plain = _composite(cvm, gpus, endorsements).submods["gpu0"]
    assert plain.status is TrustTier.AFFIRMING, plain.reasons
    assert plain.trust_vector["executables"] == AR4SI.APPROVED_RUNTIME
    assert plain.reasons == ()


def test_a_gpu_whose_gate_failed_is_not_affirmed_by_its_rims(
    world: World, gpus: GpuWorld, endorsements: Endorsements, tmp_path: Path
) -> None:
    """A gate rule that fails must keep every category from being affirmed: a matching RIM
    must not add an approved executables claim to such a GPU."""
    gate = PolicyRule(
        "no-gpus",
        'format != "nvidia-gpu"',
        "instance-identity",
        AR4SI.UNRECOGNIZED_INSTANCE,
        "GPUs are not trusted here",
        gate=True,
    )
    cvm = world.device(tmp_path / "cvm", "good")
    gpu0 = _composite(cvm, gpus, endorsements, _policy(gate)).submods["gpu0"]
    assert dict(gpu0.trust_vector) == {"instance-identity": AR4SI.UNRECOGNIZED_INSTANCE}
    assert gpu0.status is TrustTier.CONTRAINDICATED


def test_a_gpu_report_alone_does_not_prove_debug_off(gpus: GpuWorld) -> None:
    """A GPU report carries no debug or CC-mode state: its claims say debug (not proven off),
    name the check that could not run, and the default policy does not approve its
    configuration when it is appraised alone (no RIM compared)."""
    nonce = os.urandom(32)
    report = gpus.gpu().report(nonce)
    log = CheckLog()
    claims = verify_nvidia_gpu(
        report.report, report.certificates, now=NOW, root=gpus.root, checks=log
    )
    assert claims.debug is True
    assert "debug-mode" in [c.name for c in log.not_checked]
    result = appraise(claims, Endorsements(), nonce=nonce, now=NOW)
    appraisal = result.submods["nvidia-gpu"]
    assert appraisal.trust_vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG
    assert appraisal.status is not TrustTier.AFFIRMING


def test_a_gpu_is_proven_out_of_debug_only_by_its_rims(
    world: World, gpus: GpuWorld, endorsements: Endorsements, tmp_path: Path
) -> None:
    """In a composite, the GPU's debug state is taken as off when every active block equals
    NVIDIA's golden measurements (as NVIDIA's own verifier states ``dbgstat`` disabled only
    beside a successful comparison); with a block no RIM allows, or no RIM, it is not."""
    cvm = world.device(tmp_path / "cvm", "good")
    good = _composite(cvm, gpus, endorsements).submods["gpu0"]
    assert good.trust_vector["configuration"] == AR4SI.APPROVED_CONFIG
    assert good.evidence is not None
    assert good.evidence["debug"] is False
    nonce = os.urandom(32)
    tampered = gpus.gpu().report(gpu_nonce(nonce, 0), tampered_block=6)
    bad = appraise_composite(
        cvm.quote(composite_nonce(nonce, 1)),
        [tampered],
        endorsements,
        nonce=nonce,
        now=NOW,
        format="ironroot",
        gpu_root=gpus.root,
    ).submods["gpu0"]
    assert bad.trust_vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG
    assert bad.trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME
    assert bad.evidence is not None
    assert bad.evidence["debug"] is True
    unlogged = dataclasses.replace(endorsements, rims=type(endorsements.rims)())
    none = _composite(cvm, gpus, unlogged).submods["gpu0"]
    assert none.trust_vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG
    assert none.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
