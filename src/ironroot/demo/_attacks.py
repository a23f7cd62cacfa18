"""The staged attacks: each one is really attempted through the product's own path, and
must be refused with exactly the typed error it names.

An :class:`Attack` says what the attacker tries (``title``), which layer must stop it
(``layer``), and the refusal expected: the error class and its code. Its ``attempt`` does
the attack against the world the acts built — an update pushed to a node's RoT, a request to
a real HTTPS service, a row edited in a log's SQLite file — and notes what it saw along the
way (the evidence). :func:`run_attack` judges it: **refused** only when the attempt raised
exactly that class with exactly that code. An attempt that returns (nothing stopped it) or
fails otherwise is **not refused**, and the demo exits 1: the table is the product's answer,
never a script's.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from ironroot import errors
from ironroot.demo._attacks_fleet import (
    debug_unlocked,
    drifted_node,
    replayed_nonce,
    stolen_identity,
    wrong_plane,
)
from ironroot.demo._attacks_gpu import (
    gpu_evidence_missing,
    gpu_evidence_stale,
    gpu_other_session,
    gpu_rim_not_logged,
)
from ironroot.demo._attacks_keys import (
    hsm_export,
    lone_hsm_officer,
    other_hsm_user,
    quarantined_vm,
    stolen_ear,
    swapped_release,
    tampered_audit,
    unattested_vm,
)
from ironroot.demo._attacks_supply import (
    borrowed_receipt,
    direct_flash_write,
    firmware_rollback,
    forged_receipt,
    never_logged,
    one_person_change,
    revoked_key,
    split_view,
    tampered_log_row,
    unreviewed_firmware,
    unsigned_firmware,
)
from ironroot.demo._attempt import Attempt
from ironroot.demo._world import Story
from ironroot.errors import IronrootError

__all__ = ["ATTACKS", "Attack", "AttackResult", "Attempt", "run_attack"]


@dataclasses.dataclass(frozen=True, slots=True)
class Attack:
    """One staged attack (module docs)."""

    name: str
    title: str
    layer: str
    expect: type[IronrootError]
    code: str
    attempt: Callable[[Story, Attempt], None]

    @property
    def expected(self) -> str:
        return f"{self.expect.__name__} / {self.code}"


@dataclasses.dataclass(frozen=True, slots=True)
class AttackResult:
    """How an attack ended: ``refused`` only with exactly the expected class and code."""

    attack: Attack
    refused: bool
    error_class: str | None
    error_code: str | None
    check: str | None
    message: str
    evidence: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.attack.name,
            "attack": self.attack.title,
            "layer": self.attack.layer,
            "expected": {"class": self.attack.expect.__name__, "code": self.attack.code},
            "outcome": "refused" if self.refused else "not-refused",
            "error": None
            if self.error_class is None
            else {
                "class": self.error_class,
                "code": self.error_code,
                "check": self.check,
                "message": self.message,
            },
            "evidence": self.evidence,
            "seconds": round(self.seconds, 3),
        }


def run_attack(story: Story, attack: Attack) -> AttackResult:
    """Attempt ``attack`` and judge how it ended (module docs)."""
    attempt = Attempt()
    started = time.monotonic()
    error: IronrootError | None = None
    unexpected = ""
    try:
        attack.attempt(story, attempt)
    except IronrootError as exc:
        error = exc
    except Exception as exc:  # a bug or a crash is not a refusal: shown, and it fails
        logging.getLogger("ironroot.demo").exception("attack %s", attack.name)
        unexpected = f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    if error is None:
        why = unexpected or "the attempt went through: nothing refused it"
        return AttackResult(
            attack,
            False,
            type_name(unexpected),
            None,
            None,
            why,
            "; ".join([*attempt.lines, why]),
            seconds,
        )
    refused = type(error) is attack.expect and error.code == attack.code
    evidence = list(attempt.lines)
    if error.check:
        evidence.append(f"failing check: {error.check}")
    evidence.append(_sentence(error.detail, 120 if refused else 400))
    return AttackResult(
        attack,
        refused,
        type(error).__name__,
        error.code,
        error.check,
        error.detail,
        "; ".join(evidence),
        seconds,
    )


def _sentence(text: str, limit: int = 160) -> str:
    """``text`` cut to about ``limit`` characters, at a word."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def type_name(unexpected: str) -> str | None:
    return unexpected.split(":", 1)[0] if unexpected else None


ATTACKS: tuple[Attack, ...] = (
    Attack(
        "unsigned-firmware",
        "Push an unsigned BMC image",
        "platform: RoT update checks",
        errors.MissingSignature,
        "missing-signature",
        unsigned_firmware,
    ),
    Attack(
        "revoked-key",
        "Sign firmware with the vendor's leaked, revoked key 0",
        "platform: RoT fuses (revocation)",
        errors.KeyRevoked,
        "key-revoked",
        revoked_key,
    ),
    Attack(
        "firmware-rollback",
        "Roll BMC back from 2.0 to 1.0 (genuine, logged, reviewed)",
        "platform: RoT anti-rollback",
        errors.SvnRollback,
        "svn-rollback",
        firmware_rollback,
    ),
    Attack(
        "never-logged",
        "Install vendor-signed firmware and PFM that were never logged",
        "platform: receipt (transparency)",
        errors.PolicyRejected,
        "no-receipt",
        never_logged,
    ),
    Attack(
        "forged-receipt",
        "Receipts from the attacker's own log for secret firmware",
        "platform: receipt (transparency)",
        errors.UnknownIssuer,
        "untrusted-service",
        forged_receipt,
    ),
    Attack(
        "borrowed-receipt",
        "A genuine receipt spliced onto an unlogged PFM",
        "platform: receipt (Merkle proof)",
        errors.InvalidProof,
        "receipt-not-for-statement",
        borrowed_receipt,
    ),
    Attack(
        "unreviewed-firmware",
        "Install BMC 2.1: signed, logged, never SAFE-reviewed",
        "platform: SAFE review policy",
        errors.PolicyRejected,
        "safe-review-missing",
        unreviewed_firmware,
    ),
    Attack(
        "split-view",
        "The log operator shows a forked view of the log",
        "monitor + witness (fork proof)",
        errors.ForkDetected,
        "fork-detected",
        split_view,
    ),
    Attack(
        "tampered-log-row",
        "Edit an entry in the log's SQLite file",
        "log: ironroot log verify",
        errors.StorageError,
        "storage",
        tampered_log_row,
    ),
    Attack(
        "one-person-change",
        "One operator alone changes the fleet's desired state",
        "fleet: two-person rule",
        errors.PolicyRejected,
        "too-few-signers",
        one_person_change,
    ),
    Attack(
        "direct-flash-write",
        "The BMC writes the host's firmware flash directly",
        "platform: RoT SPI filter (PFM)",
        errors.FlashProtected,
        "flash-protected",
        direct_flash_write,
    ),
    Attack(
        "replayed-nonce",
        "Replay a node's admission request",
        "fleet admission: nonce",
        errors.StaleNonce,
        "nonce-reused",
        replayed_nonce,
    ),
    Attack(
        "stolen-identity",
        "Answer another node's challenge with your own evidence",
        "fleet admission: node identity",
        errors.ChainNotTrusted,
        "node-identity",
        stolen_identity,
    ),
    Attack(
        "debug-unlocked",
        "Admit a part whose runtime claims its debug port is unlocked",
        "fleet verifier: quote vs DICE certificates",
        errors.VerificationFailed,
        "verification-failed",
        debug_unlocked,
    ),
    Attack(
        "drifted-node",
        "A drifted node keeps using its credential",
        "fleet: scan → quarantine → control plane",
        errors.CredentialRejected,
        "credential-revoked",
        drifted_node,
    ),
    Attack(
        "wrong-plane",
        "A control-plane credential on the data plane",
        "fleet data plane (mutual TLS)",
        errors.RoleNotPermitted,
        "wrong-plane",
        wrong_plane,
    ),
    Attack(
        "hsm-export",
        "Export the database key from the HSM",
        "HSM key boundary",
        errors.KeyNotExportable,
        "key-not-exportable",
        hsm_export,
    ),
    Attack(
        "hsm-other-user",
        "Another crypto user of the HSM decrypts with the database key",
        "HSM key users",
        errors.RoleNotPermitted,
        "key-access-denied",
        other_hsm_user,
    ),
    Attack(
        "hsm-lone-officer",
        "One HSM officer alone installs a verifier of their own",
        "HSM dual control (officer quorum)",
        errors.RoleNotPermitted,
        "quorum-required",
        lone_hsm_officer,
    ),
    Attack(
        "unattested-vm",
        "Key release to a VM with a self-made EAR",
        "HSM release: verifier trust",
        errors.UnknownIssuer,
        "unknown-issuer",
        unattested_vm,
    ),
    Attack(
        "stolen-ear",
        "Key release with a stolen EAR and another wrapping key",
        "HSM release: key binding",
        errors.KeyBindingMismatch,
        "key-binding-mismatch",
        stolen_ear,
    ),
    Attack(
        "swapped-release",
        "A released key swapped on its way to the VM",
        "HSM release statement (checked by the VM)",
        errors.KeyBindingMismatch,
        "release-statement",
        swapped_release,
    ),
    Attack(
        "quarantined-vm",
        "Key release to a VM on a quarantined node",
        "fleet key release gate",
        errors.ReleaseDenied,
        "node-not-admitted",
        quarantined_vm,
    ),
    Attack(
        "gpu-evidence-missing",
        "Model-weights key for an AI VM that leaves its GPU's evidence out",
        "HSM release: the key's GPU policy",
        errors.ReleaseDenied,
        "policy-claims",
        gpu_evidence_missing,
    ),
    Attack(
        "gpu-evidence-stale",
        "Model-weights key with the GPU's report from an earlier release",
        "HSM release: composite binding (GPU nonce)",
        errors.StaleNonce,
        "nonce-mismatch",
        gpu_evidence_stale,
    ),
    Attack(
        "gpu-other-session",
        "Model-weights key with another VM's session's GPU report",
        "HSM release: composite binding (GPU nonce)",
        errors.StaleNonce,
        "nonce-mismatch",
        gpu_other_session,
    ),
    Attack(
        "gpu-rim-not-logged",
        "Model-weights key for a GPU whose driver's RIM is not on the log",
        "verifier: RIMs from the log → HSM release",
        errors.ReleaseDenied,
        "not-affirming",
        gpu_rim_not_logged,
    ),
    Attack(
        "tampered-audit",
        "Alter firmware inside a sealed audit bundle",
        "audit: offline verification",
        errors.AuditBundleRejected,
        "member-changed",
        tampered_audit,
    ),
)
"""Every staged attack, in the order the demo attempts them (grouped by layer)."""
