"""Key release to a confidential VM and its GPUs (one composite EAR: ``cvm``, ``gpu0``…).

The HSM checks the composite rule under the challenge ``nonce ‖ SHA-256(wrapping key)``: the
CVM's report data commits to it and to every GPU's nonce, and each GPU answers its own
derived nonce. Each refusal is asserted with its exact error class and code, from the
service and over HTTP. EARs are made to order (one thing wrong each); the demo's GPU act
gets them from the real verifier appraising real GPU and RoT evidence.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from _kr_helpers import NOW, Harness, assert_problem, evidence

from ironroot.attestation import (
    Appraisal,
    AttestationResult,
    TrustTier,
    VerifierId,
    composite_nonce,
    gpu_nonce,
    sign_ear_jwt,
)
from ironroot.errors import KeyBindingMismatch, MalformedInput, ReleaseDenied, StaleNonce
from ironroot.hsm import KeyAttributes, KeyType
from ironroot.keyrelease import ReleasableKey, check_composite_binding
from ironroot.keyrelease.tee import TeeKeyPair

GPU_POLICY = (
    'status == "affirming" && gpu_count >= 1 && gpus_affirming && min_gpu_driver >= 550000000'
)
AFFIRMING = {"instance-identity": 2, "configuration": 2, "executables": 2, "hardware": 2}
RIM_NOT_LOGGED = {**AFFIRMING, "executables": 33}


def gpu_evidence(report_data: bytes, driver: str = "550.90.07") -> dict[str, Any]:
    return {
        "format": "nvidia-gpu",
        "measurements": {"1": "aa" * 48},
        "report_data": report_data.hex(),
        "debug": False,
        "svns": {},
        "identity": {"driver_version": driver, "vbios_version": "96.00.5E.00.01"},
        "signer": "CN=Test FMC LF",
    }


def composite_ear(
    harness: Harness,
    nonce: bytes,
    *,
    gpus: int = 2,
    tee: TeeKeyPair | None = None,
    challenge: bytes | None = None,
    cvm_report_data: bytes | None = None,
    gpu_report_data: dict[int, bytes | None] | None = None,
    gpu_vectors: dict[int, dict[str, int]] | None = None,
    eat_nonce: bytes | str | None = "challenge",
    cvm_format: str = "ironroot",
) -> bytes:
    """A composite EAR as the verifier signs it for a VM with ``gpus`` GPUs, each thing
    right unless a keyword says otherwise."""
    owner = tee or harness.tee
    challenge = owner.report_data(nonce) if challenge is None else challenge
    cvm_data = composite_nonce(challenge, gpus) if cvm_report_data is None else cvm_report_data
    submods = {
        "cvm": Appraisal(
            TrustTier.AFFIRMING,
            AFFIRMING,
            policy_id="t",
            evidence=evidence(cvm_data, format=cvm_format),
        )
    }
    for index in range(gpus):
        data = (gpu_report_data or {}).get(index, gpu_nonce(challenge, index))
        vector = (gpu_vectors or {}).get(index, AFFIRMING)
        appraisal = Appraisal.from_vector(
            vector,
            policy_id="t",
            evidence=gpu_evidence(data) if data is not None else None,
        )
        submods[f"gpu{index}"] = appraisal
    t = int((NOW - dt.timedelta(minutes=1)).timestamp())
    result = AttestationResult(
        iat=t,
        exp=t + 600,
        verifier_id=VerifierId("Ironroot", "test"),
        submods=submods,
        nonce=challenge if eat_nonce == "challenge" else eat_nonce,  # type: ignore[arg-type]
    )
    return sign_ear_jwt(result, harness.verifier_key)


@pytest.fixture(scope="module")
def weights(harness: Harness) -> str:
    """A model-weights key released only to a VM whose GPUs are all affirming."""
    name = "model-weights"
    if name not in harness.service.keys:
        handle = harness.hsm.generate(
            harness.officer,
            KeyType.AES_256,
            KeyAttributes.of(["encrypt", "decrypt"], exportable=True, release_policy=GPU_POLICY),
        )
        harness.handles[name] = handle
        harness.service.add_key(ReleasableKey(name, handle))
    return name


def refused(
    harness: Harness, name: str, ear: bytes, nonce: bytes, cls: type[Exception], code: str
) -> None:
    with pytest.raises(cls) as caught:
        harness.service.release(name, harness.request(ear, nonce))
    assert type(caught.value) is cls
    assert getattr(caught.value, "code", None) == code


def test_a_vm_and_its_affirming_gpus_get_the_key(harness: Harness, weights: str) -> None:
    nonce = harness.nonce()
    released = harness.service.release(
        weights, harness.request(composite_ear(harness, nonce), nonce)
    )
    assert harness.holds(weights, harness.unwrap(released, nonce))


def test_a_cvm_with_zero_padded_report_data_is_accepted(harness: Harness, weights: str) -> None:
    nonce = harness.nonce()
    padded = composite_nonce(harness.tee.report_data(nonce), 2) + bytes(32)
    ear = composite_ear(harness, nonce, cvm_report_data=padded)
    released = harness.service.release(weights, harness.request(ear, nonce))
    assert harness.holds(weights, harness.unwrap(released, nonce))


def test_tee_helpers_compute_the_shared_rule(harness: Harness) -> None:
    nonce = bytes(range(32))
    challenge = harness.tee.report_data(nonce)
    assert harness.tee.gpu_nonce(nonce, 3) == gpu_nonce(challenge, 3)
    assert harness.tee.composite_report_data(nonce, 8) == composite_nonce(challenge, 8)


def test_missing_gpu_evidence_is_refused_by_the_keys_policy(harness: Harness, weights: str) -> None:
    nonce = harness.nonce()
    plain = harness.ear(nonce)  # the CVM alone, its report data binding nonce and key
    refused(harness, weights, plain, nonce, ReleaseDenied, "policy-claims")
    nonce = harness.nonce()
    none = composite_ear(harness, nonce, gpus=0)  # a composite that brings no GPU
    refused(harness, weights, none, nonce, ReleaseDenied, "policy-claims")


def test_stale_gpu_evidence_is_refused(harness: Harness, weights: str) -> None:
    earlier = harness.nonce()
    nonce = harness.nonce()
    old = gpu_nonce(harness.tee.report_data(earlier), 0)
    ear = composite_ear(harness, nonce, gpu_report_data={0: old})
    refused(harness, weights, ear, nonce, StaleNonce, "nonce-mismatch")


def test_gpu_evidence_from_another_vms_session_is_refused(harness: Harness, weights: str) -> None:
    other = TeeKeyPair.generate("ML-KEM-768")
    nonce = harness.nonce()
    theirs = other.gpu_nonce(harness.nonce(), 1)
    ear = composite_ear(harness, nonce, gpu_report_data={1: theirs})
    refused(harness, weights, ear, nonce, StaleNonce, "nonce-mismatch")
    nonce = harness.nonce()
    ear = composite_ear(harness, nonce, gpu_report_data={1: theirs})
    assert_problem(harness.post(weights, ear, nonce), StaleNonce, "nonce-mismatch")


def test_a_gpu_whose_rim_is_not_on_the_log_is_refused(harness: Harness, weights: str) -> None:
    nonce = harness.nonce()
    ear = composite_ear(harness, nonce, gpu_vectors={0: RIM_NOT_LOGGED})
    refused(harness, weights, ear, nonce, ReleaseDenied, "not-affirming")
    nonce = harness.nonce()
    ear = composite_ear(harness, nonce, gpu_vectors={0: RIM_NOT_LOGGED})
    assert_problem(harness.post(weights, ear, nonce), ReleaseDenied, "not-affirming")


def test_a_gpu_that_did_not_verify_is_refused_as_not_affirming(
    harness: Harness, weights: str
) -> None:
    nonce = harness.nonce()
    failed = {"instance-identity": 99}
    ear = composite_ear(harness, nonce, gpu_report_data={0: None}, gpu_vectors={0: failed})
    refused(harness, weights, ear, nonce, ReleaseDenied, "not-affirming")


def test_a_gpu_whose_report_did_not_parse_is_refused_as_not_affirming(harness: Harness) -> None:
    # Malformed evidence gets instance-identity 1 (tier none): one such GPU beside an
    # affirming CVM and GPU leaves the composite unaffirmed, even for a key whose policy
    # asks only for an affirming status.
    name = "status-only"
    if name not in harness.service.keys:
        handle = harness.hsm.generate(
            harness.officer,
            KeyType.AES_256,
            KeyAttributes.of(
                ["encrypt", "decrypt"], exportable=True, release_policy='status == "affirming"'
            ),
        )
        harness.handles[name] = handle
        harness.service.add_key(ReleasableKey(name, handle))
    nonce = harness.nonce()
    unparsed = {"instance-identity": 1}
    ear = composite_ear(harness, nonce, gpu_report_data={1: None}, gpu_vectors={1: unparsed})
    refused(harness, name, ear, nonce, ReleaseDenied, "not-affirming")
    nonce = harness.nonce()  # the same composite with both GPUs appraised is released
    released = harness.service.release(name, harness.request(composite_ear(harness, nonce), nonce))
    assert harness.holds(name, harness.unwrap(released, nonce))


def test_an_unparsed_gpu_is_refused_even_by_a_key_that_releases_on_warning(
    harness: Harness,
) -> None:
    # A GPU that merely warns (its RIM is not on the log) beside one whose report did not
    # parse: the composite is none, not warning, so a key released on warning stays put.
    nonce = harness.nonce()
    vectors = {0: RIM_NOT_LOGGED, 1: {"instance-identity": 1}}
    ear = composite_ear(harness, nonce, gpu_report_data={1: None}, gpu_vectors=vectors)
    refused(harness, "warning-key", ear, nonce, ReleaseDenied, "not-affirming")
    nonce = harness.nonce()  # the warning alone releases it
    ear = composite_ear(harness, nonce, gpu_vectors={0: RIM_NOT_LOGGED})
    released = harness.service.release("warning-key", harness.request(ear, nonce))
    assert harness.holds("warning-key", harness.unwrap(released, nonce))


def test_an_affirming_gpu_without_report_data_is_refused(harness: Harness, weights: str) -> None:
    nonce = harness.nonce()
    ear = composite_ear(harness, nonce, gpu_report_data={1: None})  # affirming, no nonce shown
    refused(harness, weights, ear, nonce, StaleNonce, "nonce-mismatch")


def test_a_cvm_that_does_not_commit_to_its_gpus_is_refused(harness: Harness, weights: str) -> None:
    nonce = harness.nonce()
    dropped = composite_nonce(harness.tee.report_data(nonce), 1)  # signed for one GPU
    ear = composite_ear(harness, nonce, gpus=2, cvm_report_data=dropped)
    refused(harness, weights, ear, nonce, StaleNonce, "nonce-mismatch")
    nonce = harness.nonce()
    plain = harness.tee.report_data(nonce)  # the single-evidence binding, GPUs beside it
    ear = composite_ear(harness, nonce, cvm_report_data=plain)
    refused(harness, weights, ear, nonce, StaleNonce, "nonce-mismatch")


def test_a_composite_for_another_key_or_nonce_or_without_eat_nonce_is_refused(
    harness: Harness, weights: str
) -> None:
    thief = TeeKeyPair.generate("ML-KEM-768")
    nonce = harness.nonce()
    ear = composite_ear(harness, nonce, tee=thief)  # the VM's EAR, the thief's key sent
    refused(harness, weights, ear, nonce, KeyBindingMismatch, "key-binding-mismatch")
    nonce, other = harness.nonce(), harness.nonce()
    ear = composite_ear(harness, other)
    refused(harness, weights, ear, nonce, StaleNonce, "nonce-mismatch")
    nonce = harness.nonce()
    ear = composite_ear(harness, nonce, eat_nonce=None)
    refused(harness, weights, ear, nonce, StaleNonce, "nonce-mismatch")


def test_check_composite_binding_directly(harness: Harness) -> None:
    nonce = bytes(32)
    challenge = harness.tee.report_data(nonce)
    gpus = [gpu_nonce(challenge, i) for i in range(3)]
    cvm = composite_nonce(challenge, 3)
    check_composite_binding(challenge, cvm, gpus, nonce=nonce, key=harness.tee.public)
    check_composite_binding(
        challenge, cvm, [gpus[0], None, gpus[2]], nonce=nonce, key=harness.tee.public
    )
    with pytest.raises(StaleNonce):
        check_composite_binding(challenge, cvm, gpus[:2], nonce=nonce, key=harness.tee.public)
    with pytest.raises(StaleNonce):
        check_composite_binding(challenge, None, gpus, nonce=nonce, key=harness.tee.public)
    with pytest.raises(StaleNonce):
        check_composite_binding(
            challenge, cvm, [gpus[1], gpus[0], gpus[2]], nonce=nonce, key=harness.tee.public
        )


@pytest.mark.parametrize(
    "labels", [("ironroot", "gpu0"), ("cvm", "gpu0", "gpu2")], ids=["plain-and-gpu", "gap"]
)
def test_gpus_of_an_ear_that_is_no_composite_are_not_the_policys(
    harness: Harness, weights: str, labels: tuple[str, ...]
) -> None:
    """An EAR whose submodules are not exactly ``cvm``, ``gpu0`` … is bound as a plain one:
    its GPU submodules answer no challenge of this release (here, another VM's session), so
    the policy sees no GPU and a key that needs one is refused."""
    nonce = harness.nonce()
    report_data = harness.tee.report_data(nonce)
    elsewhere = TeeKeyPair.generate().report_data(harness.nonce())
    bound, *gpus = labels
    submods = {
        bound: Appraisal(
            TrustTier.AFFIRMING, AFFIRMING, policy_id="t", evidence=evidence(report_data)
        )
    }
    for index, label in enumerate(gpus):
        submods[label] = Appraisal.from_vector(
            AFFIRMING, policy_id="t", evidence=gpu_evidence(gpu_nonce(elsewhere, index))
        )
    t = int((NOW - dt.timedelta(minutes=1)).timestamp())
    result = AttestationResult(
        iat=t, exp=t + 600, verifier_id=VerifierId("Ironroot", "test"), submods=submods
    )
    ear = sign_ear_jwt(result, harness.verifier_key)
    refused(harness, weights, ear, nonce, ReleaseDenied, "policy-claims")


@pytest.mark.parametrize("device", ["nvidia-gpu", "spdm"])
def test_a_device_in_the_cvm_place_is_refused(harness: Harness, weights: str, device: str) -> None:
    """A GPU signs cvm_nonce like any nonce: an EAR whose cvm submodule appraised a device's
    evidence (a verifier that did not refuse it) binds no VM, whatever it answers."""
    nonce = harness.nonce()
    ear = composite_ear(harness, nonce, cvm_format=device)
    refused(harness, weights, ear, nonce, ReleaseDenied, "not-a-cvm")


@pytest.mark.parametrize("cvm_format", [["nvidia-gpu"], {"spdm": 1}, 7])
def test_a_cvm_format_that_is_not_text_is_malformed_and_audited(
    harness: Harness, weights: str, cvm_format: object
) -> None:
    """The cvm submodule's evidence format is compared with the device formats: one that is
    not text (a list, a map: unhashable) is a malformed EAR, refused and audited like any
    other, not a ``TypeError`` that leaves the spent nonce's release with no record."""
    seen: list[tuple[str, str]] = []
    harness.hsm.add_listener(lambda operation, result: seen.append((operation, result)))
    nonce = harness.nonce()
    ear = composite_ear(harness, nonce, cvm_format=cvm_format)  # type: ignore[arg-type]
    refused(harness, weights, ear, nonce, MalformedInput, "malformed")
    assert seen[-1] == ("release", "malformed")
