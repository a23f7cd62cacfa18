"""Attacks on key release for AI: the model-weights key asked for with the GPU's evidence
missing, stale, from another VM's session, or from a GPU whose driver's RIM is not on the
log. Each goes through the AI VM's release path (``_act_gpu.release_to_ai_vm``): the real
GPU and RoT evidence, the real verifier, the HSM's decision."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ironroot.demo._act_gpu import AI_VM, UNLOGGED_DRIVER, gpu_answers, release_to_ai_vm
from ironroot.demo._act_keys import vm_ear
from ironroot.demo._attempt import Attempt
from ironroot.demo._world import Story

if TYPE_CHECKING:
    from ironroot.attestation import GpuReport
    from ironroot.keyrelease import TeeKeyPair


def _node(story: Story) -> str:
    return story.need(story.gpu_node, "AI VM")


def gpu_evidence_missing(story: Story, attempt: Attempt) -> None:
    node = _node(story)
    attempt.note(
        f"{AI_VM} on {node} attests its CVM alone (the RoT quote binds the nonce and its key) "
        "and leaves its GPU out"
    )
    release_to_ai_vm(
        story, node, ear_for=lambda tee, nonce: vm_ear(story, node, tee.report_data(nonce))
    )


def gpu_evidence_stale(story: Story, attempt: Attempt) -> None:

    node = _node(story)
    client = story.need(story.keys, "key service")
    honest = gpu_answers(story)
    earlier: list[GpuReport] = []

    def replayed(tee: TeeKeyPair, nonce: bytes) -> Sequence[GpuReport]:
        earlier.extend(honest(tee, client.challenge()))  # the GPU's answer to an older nonce
        return earlier

    attempt.note(
        f"{AI_VM} sends a fresh CVM quote with its GPU's report from an earlier release "
        "(genuine, signed, for an older nonce)"
    )
    release_to_ai_vm(story, node, gpus=replayed)


def gpu_other_session(story: Story, attempt: Attempt) -> None:
    from ironroot.keyrelease import TeeKeyPair

    node = _node(story)
    client = story.need(story.keys, "key service")
    victim = TeeKeyPair.generate("ML-KEM-768")
    victim_nonce = client.challenge()  # llm-serve's own session, running at the same time
    honest = gpu_answers(story)

    def borrowed(tee: TeeKeyPair, nonce: bytes) -> Sequence[GpuReport]:
        return honest(victim, victim_nonce)

    attempt.note(
        f"a VM without a GPU of its own on {node} presents gpu-a's fresh report from "
        f"{AI_VM}'s concurrent session"
    )
    release_to_ai_vm(story, node, gpus=borrowed)


def gpu_rim_not_logged(story: Story, attempt: Attempt) -> None:
    node = _node(story)
    attempt.note(
        f"{AI_VM} runs on gpu-b, driver {UNLOGGED_DRIVER}: its RIM is vendor-signed but was "
        "never logged"
    )
    release_to_ai_vm(story, node, gpus=gpu_answers(story, "gpu-b"))
