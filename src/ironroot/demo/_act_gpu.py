"""Act 7: key release for AI — a model-weights key released to a confidential VM whose GPU is
attested against RIMs taken from the log.

The GPU vendor (``ironroot.demo._gpu``: a demo-local identity CA and RIM signer, real SPDM 1.1
evidence and XML-DSig RIMs) registers the driver and VBIOS RIMs of its GPU on the transparency
log; the verifier takes them back with their receipts and trusts the vendor's identity root,
both configured explicitly. The HSM holds the model-weights key under a CEL release policy
that needs at least one GPU, every GPU affirming, and a driver of 550.90.07 or later.

The VM follows the composite rule (``docs/keyrelease.md``): it asks the key service for a
nonce, makes the challenge ``nonce ‖ SHA-256(wrapping key)``, has its GPU answer
``gpu_nonce(challenge, 0)`` and its node's RoT quote ``cvm_nonce(challenge, 1)``; the
verifier appraises both as one EAR (submodules ``cvm`` and ``gpu0``) and the HSM checks the
whole binding before its policy. The attacks on it (``_attacks_gpu``): GPU evidence missing,
stale, from another VM's session, or for a driver whose RIM is not on the log.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from rich.markup import escape

from ironroot.demo._act_keys import VERIFIER, hsm_roots
from ironroot.demo._world import Story

if TYPE_CHECKING:
    from ironroot.attestation import GpuReport
    from ironroot.keyrelease import ReleasedKey, TeeKeyPair

MODEL_KEY: Final = "model-weights"
"""The key the AI VM asks for (AES-256, in the HSM, released only to attested GPUs)."""
AI_VM: Final = "llm-serve"
AI_IMAGE: Final = hashlib.sha384(b"confidential VM image: llm-serve 2026.11").digest()
DRIVER: Final = "550.90.07"
"""The driver ``gpu-a`` runs; its RIM is on the log."""
UNLOGGED_DRIVER: Final = "555.42.02"
"""The driver ``gpu-b`` runs: signed by the GPU vendor, its RIM never logged."""
GPU_POLICY: Final = (
    f'authority == "{VERIFIER}" && status == "affirming" && !evidence.debug '
    "&& gpu_count >= 1 && gpus_affirming && min_gpu_driver >= 550090007"
)
"""The model-weights key's release policy (CEL)."""

GPU_ATTACKS: Final = (
    "gpu-evidence-missing",
    "gpu-evidence-stale",
    "gpu-other-session",
    "gpu-rim-not-logged",
)
"""The attacks on this act, by name (``_attacks_gpu``; each a row of the attack table)."""

GpuAnswer = Callable[["TeeKeyPair", bytes], Sequence["GpuReport"]]
"""What the VM's GPUs answer for the release of ``nonce`` to ``tee`` (the honest GPU by
default; an attack swaps it)."""


def gpu_answers(story: Story, gpu: str = "gpu-a") -> GpuAnswer:
    """The honest path: GPU ``gpu`` answers the VM's ``gpu_nonce(challenge, 0)``."""
    from ironroot.attestation import GpuReport

    def answer(tee: TeeKeyPair, nonce: bytes) -> Sequence[GpuReport]:
        report, chain = story.gpus[gpu].attest(tee.gpu_nonce(nonce, 0))
        return [GpuReport(report, chain)]

    return answer


def composite_ear(story: Story, node: str, tee: TeeKeyPair, nonce: bytes, gpus: GpuAnswer) -> bytes:
    """The verifier's EAR for the VM on ``node`` and its GPUs: the RoT quotes the composite
    nonce (committing to the release nonce, ``tee``'s key and the GPU nonces), the verifier
    appraises quote and GPU reports as one composite."""
    fleet = story.need(story.fleet, "fleet")
    verifier = story.need(story.verifier, "verifier")
    reports = list(gpus(tee, nonce))
    quote = fleet.rot(node).quote(tee.composite_report_data(nonce, len(reports)))
    result = verifier.verify(quote, runtime_data=tee.report_data(nonce), gpus=reports)
    return bytes(verifier.sign(result))


def release_to_ai_vm(
    story: Story,
    node: str,
    *,
    gpus: GpuAnswer | None = None,
    ear_for: Callable[[TeeKeyPair, bytes], bytes] | None = None,
) -> tuple[TeeKeyPair, ReleasedKey, bytes]:
    """The release path of an AI VM on ``node``: a fresh ML-KEM-768 wrapping key, the key
    service's nonce, the fleet's admission gate, the composite EAR (``gpus`` answering, or
    ``ear_for(tee, nonce)`` instead), and the HSM's decision. Returns ``(tee, released key,
    nonce)``."""
    from ironroot.fleet import node_may_receive_keys
    from ironroot.keyrelease import TeeKeyPair

    fleet = story.need(story.fleet, "fleet")
    client = story.need(story.keys, "key service")
    tee = TeeKeyPair.generate("ML-KEM-768")
    nonce = client.challenge()
    node_may_receive_keys(fleet, node, now=story.now())
    if ear_for is not None:
        ear = ear_for(tee, nonce)
    else:
        ear = composite_ear(story, node, tee, nonce, gpus or gpu_answers(story))
    released = client.release(MODEL_KEY, ear=ear, wrapping_key=tee.public_spki, nonce=nonce)
    return tee, released, nonce


def ai_key_release(story: Story) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ironroot.demo._gpu import GPU_VENDOR, GpuVendor
    from ironroot.ear import verify_ear
    from ironroot.hsm import KeyAttributes, KeyType
    from ironroot.keyrelease import ReleasableKey
    from ironroot.rim import LoggedRims

    ui = story.ui
    log = story.need(story.log, "transparency log")
    hsm = story.need(story.hsm, "HSM")
    officer = story.need(story.hsm_officer, "HSM officer session")
    user = story.need(story.hsm_user, "HSM session")
    service = story.need(story.key_service, "key service")
    verifier = story.need(story.verifier, "verifier")
    authority = story.need(story.authority, "admission")
    fleet = story.need(story.fleet, "fleet")
    now = story.now()

    vendor = story.gpu_vendor = GpuVendor.generate(now=now, statements=story.gpu_statements)
    gpu_a = story.gpus["gpu-a"] = vendor.gpu("gpu-a", driver=DRIVER, now=now)
    story.gpus["gpu-b"] = vendor.gpu("gpu-b", driver=UNLOGGED_DRIVER, now=now)
    keys = log.service_keys()
    rims = [
        vendor.register(log, rim, now=now, service_keys=keys)
        for rim in (vendor.driver_rim(gpu_a), vendor.vbios_rim(gpu_a))
    ]
    for rim in rims:
        ui.ok(
            f"the GPU vendor ({GPU_VENDOR}) logged RIM [bold]{rim.rim_id}[/bold] "
            f"({len(rim.rim.measurements)} golden measurements, XML-DSig under its RIM root)"
        )
    ui.say(
        f"It signed the RIM of driver {UNLOGGED_DRIVER} too, but never logged it: "
        "the verifier trusts a RIM only with a receipt."
    )
    verifier.endorsements = dataclasses.replace(verifier.endorsements, rims=LoggedRims(rims))
    verifier.gpu_root = vendor.identity_root
    ui.fact("verifier trusts", "the GPU vendor's identity root (configured) + RIMs from the log")

    story.model_key = hsm.generate(
        officer,
        KeyType.AES_256,
        KeyAttributes.of(
            ["encrypt", "decrypt"], exportable=True, label=MODEL_KEY, release_policy=GPU_POLICY
        ),
    )
    service.add_key(ReleasableKey(MODEL_KEY, story.model_key))
    sealed = hsm.encrypt(user, story.model_key, b"llm-serve weights: 70B parameters, shard 0")
    ui.say("The HSM holds the model-weights key (AES-256) under this release policy (CEL):")
    ui.fact("requires", escape(GPU_POLICY))

    node = story.gpu_node = story.need(story.cvm_node, "confidential VM node")
    authority.place(AI_VM, now=story.now(), node=node)
    fleet.rot(node).derive_child(AI_IMAGE, label="cvm")
    ui.say(
        f"The control plane places confidential VM [bold]{AI_VM}[/bold] with GPU gpu-a "
        f"(driver {DRIVER}, confidential-computing mode) on {node}. Its node's RoT quotes the "
        "composite nonce; the GPU signs SPDM 1.1 measurements for its derived nonce."
    )
    presented: list[bytes] = []

    def appraised(tee: TeeKeyPair, nonce: bytes) -> bytes:
        presented.append(composite_ear(story, node, tee, nonce, gpu_answers(story)))
        return presented[-1]

    tee, released, nonce = release_to_ai_vm(story, node, ear_for=appraised)
    result = verify_ear(presented[-1], verifier.public_keys, now=story.now())
    for label, appraisal in result.submods.items():
        named = (appraisal.evidence or {}).get("rims")
        ui.fact(f"EAR {label}", appraisal.status.value + (f", RIMs {named}" if named else ""))
    key = tee.unwrap(
        released, nonce=nonce, hsm_roots=hsm_roots(story), kid=MODEL_KEY, now=story.now()
    )
    plaintext = AESGCM(key.material).decrypt(sealed[:12], sealed[12:], b"")
    ui.ok(
        f"the HSM released {MODEL_KEY} to {AI_VM}: CVM and GPU affirming in one EAR, the GPU's "
        f"blocks allowed by the logged RIMs; the VM decrypts: {escape(plaintext.decode())!r}"
    )
    ui.say(
        "The staged attacks try it with the GPU's evidence missing, stale, from another VM's "
        f"session, and from a GPU whose driver's RIM is not on the log ({UNLOGGED_DRIVER})."
    )
    story.facts["ai-key-release"] = {
        "vm": AI_VM,
        "node": node,
        "released": MODEL_KEY,
        "policy": GPU_POLICY,
        "gpus": {"gpu0": {"name": gpu_a.name, "driver": DRIVER}},
        "ear": {label: a.status.value for label, a in result.submods.items()},
        "rims": [str(r.rim_id) for r in rims],
        "gpu_identity_root_sha256": vendor.identity_root.fingerprint(hashes.SHA256()).hex(),
        "attacks": list(GPU_ATTACKS),
    }
