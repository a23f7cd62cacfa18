"""The acts of the datacenter story, in order: :data:`ACTS`.

An :class:`Act` is a name, a title, the sentence that tells what happens, and a function of the
:class:`~ironroot.demo._world.Story` that makes it happen with the product's own API and
services (nothing in an act decides what the product would decide; a failure raises and ends
the story). Acts run in order and each builds on the ones before: the story's fields say what
exists so far.

**Adding an act** (a storage-encryption act, say): write ``def storage(story: Story) ->
None`` in a module of its own (``_act_storage.py``; ``_act_gpu.py`` is one), put what it
establishes in ``story.facts["storage"]`` (it becomes the act's ``facts`` in the ``--json``
report; never a secret), and add ``Act("storage", title, story, storage)`` to
:data:`ACTS` where it belongs — after admission, before the attacks. Attacks on what it built
go in :data:`ironroot.demo._attacks.ATTACKS` the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ironroot.demo._act_audit import audit_node
from ironroot.demo._act_fleet import admission, manufacture, rollout_bmc
from ironroot.demo._act_gpu import ai_key_release
from ironroot.demo._act_keys import key_release
from ironroot.demo._act_supply import safe_review, vendor_release
from ironroot.demo._world import Story

__all__ = ["ACTS", "Act"]


@dataclasses.dataclass(frozen=True, slots=True)
class Act:
    """One act of the story (module docs)."""

    name: str
    title: str
    story: str
    run: Callable[[Story], None]


ACTS: tuple[Act, ...] = (
    Act(
        "vendor-release",
        "A vendor releases firmware and a PFM, and logs them",
        "Every release is signed (ECDSA P-384 + ML-DSA-87) and goes on the transparency log; "
        "a witness cosigns the log, a monitor follows it.",
        vendor_release,
    ),
    Act(
        "safe-review",
        "A SAFE lab reviews the BMC firmware",
        "An OCP SAFE review provider signs Short Form Reports of BMC 1.0 and 2.0 and logs them.",
        safe_review,
    ),
    Act(
        "manufacture",
        "A fleet of nodes is built and booted",
        "Each node's root of trust is provisioned by the vendor CA, its platform verified like "
        "an update (signatures, PFM, receipts, review) and booted once.",
        manufacture,
    ),
    Act(
        "admission",
        "The nodes attest and are admitted",
        "Only an affirming attestation result for fresh evidence reaches the control plane: "
        "the Azure Boost rule, over HTTPS.",
        admission,
    ),
    Act(
        "rollout",
        "A BMC update rolls out",
        "Two operators approve BMC 2.0 as the desired state (on the log); it rolls out in waves "
        "through each node's receipt-gated update, and the fleet attests again.",
        rollout_bmc,
    ),
    Act(
        "key-release",
        "A confidential VM gets its key",
        "A VM placed on an admitted node attests through the node's root of trust; the HSM "
        "releases the database key to it, wrapped to the VM's key, because its policy holds.",
        key_release,
    ),
    Act(
        "ai-key-release",
        "A confidential AI VM gets its model weights",
        "The GPU vendor logs its RIMs; a VM with a GPU attests both in one composite EAR (the "
        "GPU against the logged RIMs); the HSM releases the model-weights key, bound to the "
        "VM's session and key, because every GPU is affirming.",
        ai_key_release,
    ),
    Act(
        "audit",
        "An auditor verifies a node offline",
        "One self-contained bundle, sealed by the node's root of trust, re-checked with no "
        "network against what the auditor trusts.",
        audit_node,
    ),
)
"""The story, in order."""
