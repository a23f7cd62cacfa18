"""The steps on the node and its root of trust (4 to 6 and 9 in :mod:`ironroot.audit._verify`).

``node``: the registry row and the node's records are the sealed node's; ``fuses``: the fuse
view holds the trusted vendor key hash, production lifecycle with debug locked, and agrees
with what the RoT signed; ``dice``: the exported DICE chains are the seal's; ``measured-boot``:
the RoT measured the firmware the ``firmware`` steps verified.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Final

from ironroot.audit._context import SEAL_LIMITS, Context, NotRun, cn, hex_bytes, text_time
from ironroot.cose import decode_cbor
from ironroot.errors import (
    ConfigError,
    KeyDescriptorMismatch,
    MalformedInput,
    PolicyRejected,
    StorageError,
    VerificationFailed,
)
from ironroot.platform import COMPONENTS
from ironroot.rot import Fuses, Lifecycle, QuoteClaims

__all__ = ["check_dice", "check_fuses", "check_measured_boot", "check_node"]


_FUSE_VIEW: Final = frozenset(
    {
        "lifecycle",
        "debug",
        "uds_programmed",
        "field_entropy_programmed",
        "vendor_key_hash",
        "owner_key_hash",
        "ecc_revocation",
        "pqc_revocation",
        "svn",
        "anti_rollback_disabled",
    }
)


_FLEET_EVENT: Final = frozenset({"seq", "at", "node", "kind", "detail"})
_JOURNAL_RECORD: Final = frozenset({"ctr", "step", "at"})
_ROT_EVENT: Final = frozenset({"seq", "at", "severity", "message_id", "message", "args"})


def _records(ctx: Context, name: str, keys: frozenset[str]) -> list[dict[str, Any]]:
    """A JSON member that is a list of records with exactly ``keys``."""
    value = ctx.json(name)
    if not isinstance(value, list) or not all(
        isinstance(r, dict) and set(r) == keys for r in value
    ):
        raise MalformedInput(f"{name} is not a list of {', '.join(sorted(keys))} records")
    return value


def check_node(ctx: Context) -> list[str]:
    record = ctx.json("node/record.json")
    if not isinstance(record, dict) or record.get("id") != ctx.index.node:
        raise VerificationFailed("the registry row is not the sealed node's", code="not-the-node")
    if record.get("class") != ctx.index.node_class:
        raise VerificationFailed("the registry row names another node class", code="not-the-node")
    events = _records(ctx, "node/events.json", _FLEET_EVENT)
    if any(e["node"] != ctx.index.node for e in events):
        raise VerificationFailed("the fleet events are not all the node's", code="not-the-node")
    events_count = len(events)
    del events  # one list parsed at a time (Context.json)
    journal = len(_records(ctx, "platform/journal.json", _JOURNAL_RECORD))
    rot_events = len(_records(ctx, "platform/events.json", _ROT_EVENT))
    lines = [
        f"{ctx.index.node} of class {ctx.index.node_class}, platform {ctx.index.platform}",
        f"registry: {record.get('status')} since {record.get('since')} "
        f"({record.get('reason') or 'no reason given'})",
        f"{events_count} fleet event(s), {journal} journal record(s) and "
        f"{rot_events} RoT event(s) about the node",
        f"exported at {text_time(ctx.index.exported_at)}; judged as of {text_time(ctx.at)}",
    ]
    if ctx.index.absent:
        lines.append(f"absent: {', '.join(sorted(ctx.index.absent))}")
    return lines


def check_fuses(ctx: Context) -> list[str]:
    view = ctx.json("rot/fuses.json")
    if not isinstance(view, dict) or set(view) != _FUSE_VIEW:
        raise MalformedInput("rot/fuses.json is not the RoT's fuse view")
    try:
        svn = view["svn"]
        fuses = Fuses(
            vendor_key_hash=hex_bytes(view["vendor_key_hash"], "vendor_key_hash", 48),
            owner_key_hash=hex_bytes(view["owner_key_hash"] or "", "owner_key_hash"),
            ecc_revocation=view["ecc_revocation"],
            pqc_revocation=view["pqc_revocation"],
            svn_bits=(1 << svn) - 1 if isinstance(svn, int) and 0 <= svn <= 128 else -1,
            anti_rollback_disabled=view["anti_rollback_disabled"],
            lifecycle_bits=Lifecycle.from_label(str(view["lifecycle"])).bits,
            debug_locked=view["debug"] == "locked",
        )
    except (StorageError, ConfigError, TypeError, ValueError) as exc:
        raise MalformedInput(f"rot/fuses.json holds an impossible fuse bank: {exc}") from exc
    if not hmac.compare_digest(fuses.vendor_key_hash, ctx.trust.fused_vendor_key_hash):
        raise KeyDescriptorMismatch(
            f"the RoT's fuses hold vendor key hash {fuses.vendor_key_hash.hex()[:16]}…, the "
            f"trust names {ctx.trust.fused_vendor_key_hash.hex()[:16]}…"
        )
    if fuses.debug_unlocked or fuses.lifecycle is not Lifecycle.PRODUCTION:
        raise PolicyRejected(
            f"the RoT is in {fuses.lifecycle.label} with debug "
            f"{'unlocked' if fuses.debug_unlocked else 'locked'}",
            code="debug-unlocked",
        )
    if ctx.claims.debug_locked != fuses.debug_locked or ctx.claims.lifecycle is not fuses.lifecycle:
        raise VerificationFailed(
            "the fuse view does not agree with the lifecycle and debug state the RoT signed",
            code="fuses-not-quoted",
        )
    _check_device_status(ctx.claims, fuses)
    ctx.fuses = fuses
    return [
        f"vendor key hash {fuses.vendor_key_hash.hex()[:32]}… is the trusted one",
        f"lifecycle {fuses.lifecycle.label}, debug locked (as the RoT signed)",
        f"firmware SVN fuse {fuses.svn}, ECC revocation {fuses.ecc_revocation:#x}, "
        f"ML-DSA revocation {fuses.pqc_revocation:#x}",
    ]


def _check_device_status(claims: QuoteClaims, fuses: Fuses) -> None:
    """The fuse view agrees with the ``device-status`` event the ROM measured into PCR0 at
    boot (signed in the seal's PCR log; layout in :mod:`ironroot.rot`): anti-rollback, the
    SVN fuse (which only grows: at least what it was at boot) and whether an owner key hash
    is fused (``VerificationFailed`` ``fuses-not-quoted``)."""
    disabled, fuse_svn, owner = (
        claims.anti_rollback_disabled,
        claims.fuse_svn,
        claims.owner_key_fused,
    )
    if disabled is None or fuse_svn is None or owner is None:
        raise VerificationFailed(
            "the seal's PCR log holds no single device-status event of the ROM",
            code="fuses-not-quoted",
        )
    if (
        disabled != fuses.anti_rollback_disabled
        or (not disabled and fuses.svn < fuse_svn)
        or owner != bool(fuses.owner_key_hash)
    ):
        raise VerificationFailed(
            "the fuse view does not agree with the device status the RoT's ROM measured at "
            f"boot: anti-rollback {'disabled' if disabled else 'enabled'}, SVN fuse "
            f"{fuse_svn}, owner key {'fused' if owner else 'not fused'}",
            code="fuses-not-quoted",
        )


def check_dice(ctx: Context) -> list[str]:
    try:
        chains = decode_cbor(ctx.member("rot/dice-chain.cbor"), SEAL_LIMITS)
        if not isinstance(chains, dict):
            raise TypeError
        exported = {"es384": chains["es384"], "ml-dsa-87": chains["ml-dsa-87"]}
    except (KeyError, TypeError) as exc:
        raise MalformedInput("rot/dice-chain.cbor is not the RoT's two chains") from exc
    for name, signed in (("es384", ctx.claims.ecc_chain), ("ml-dsa-87", ctx.claims.mldsa_chain)):
        if exported[name] != [cert.der for cert in signed]:
            raise VerificationFailed(
                f"the exported {name} DICE chain is not the chain the seal was signed with",
                code="dice-chain-mismatch",
            )
    rt = ctx.claims.ecc_chain[-1]
    return [
        "IDevID → LDevID → FMC alias → RT alias, both algorithms, as the seal",
        f"RT alias {cn(rt.subject)} ({rt.subject.split(',')[0]})",
        f"PCRs: {', '.join(p.hex()[:16] + '…' for p in ctx.claims.pcrs)}",
    ]


def check_measured_boot(ctx: Context) -> list[str]:
    bmc = ctx.verified.get("bmc")
    if bmc is None:
        raise NotRun("the BMC firmware did not verify")
    claims = ctx.claims
    firmware = bmc.firmware
    if (
        claims.fmc_digest != firmware.fmc.digest
        or claims.runtime_digest != firmware.runtime.digest
        or claims.manifest_digest != bmc.manifest_digest
        or claims.svn != bmc.svn
    ):
        raise VerificationFailed(
            "the RoT did not boot the exported BMC image: its FWIDs, manifest digest or SVN differ",
            code="not-measured",
        )
    lines = [f"the RoT measured the BMC {bmc.version.version}: FMC, runtime and manifest FWIDs"]
    dpe = {event.name: event.data for event in claims.log if event.name.startswith("dpe:")}
    for component in COMPONENTS[1:]:
        data = ctx.bundle.members.get(f"firmware/{component}/bundle.bin")
        if data is None:
            continue
        digest = hashlib.sha384(data).digest()
        if dpe.get(f"dpe:{component}") != digest:
            raise VerificationFailed(
                f"{component}'s active image is not the one the RoT last measured (PCR 2)",
                code="not-measured",
            )
        lines.append(f"{component} measured into PCR 2 (DPE) as its active image")
    return lines
