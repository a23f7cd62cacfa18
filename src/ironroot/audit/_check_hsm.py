"""The ``hsm`` step of an audit check (15 in :mod:`ironroot.audit._verify`).

The HSM's audit chain is intact and reaches each signed audit checkpoint, and its key releases
are listed; its attestation chain ties the HSM to the sealing RoT, or the report says nothing
signed does (:func:`_hsm_binding`).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Final

from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.audit._context import Context, cn, not_present, posix_time
from ironroot.audit._export import HSM_ARCHIVED, HSM_CHAIN
from ironroot.cose import SignedStatement, TransparentStatement
from ironroot.crypto import PublicKey, load_certificate, load_certificates
from ironroot.errors import (
    AuditChainBroken,
    CertificateExpired,
    ChainNotTrusted,
    IronrootError,
    MalformedInput,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.hsm import (
    AuditCheckpoint,
    AuditRecord,
    parse_segment_name,
    release_records,
    verify_attestation_chain,
    verify_audit,
    verify_audit_checkpoint,
    verify_audit_segments,
)
from ironroot.rot import parse_certificates

__all__ = ["HSM_DPE_LABEL", "check_hsm"]


HSM_DPE_LABEL: Final = "hsm"
"""The DPE label (``Device.derive_child(…, label=…)``, the child certificate's TCB type) of the
child identity a node's HSM is certified by."""


def _unsigned(detail: str) -> VerificationFailed:
    """The trust requires every HSM audit record signed (``require_signed_hsm_records``)."""
    error = VerificationFailed(detail, code="hsm-records-unsigned")
    error.check = "signed-records"
    return error


def check_hsm(ctx: Context) -> list[str]:
    required = ctx.trust.require_signed_hsm_records
    if "hsm/audit.jsonl" not in ctx.bundle.members:
        ctx.hsm_records = {"in_bundle": False, "require_signed": required}
        reason = ctx.index.absent.get("hsm")
        if required:
            raise _unsigned(
                f"the bundle holds no HSM audit chain ({reason or 'no reason stated'}): the "
                "trust requires every HSM audit record signed"
            )
        raise not_present(ctx.index.absent, "hsm", default="the bundle holds no HSM audit chain")
    segments = [
        n.removeprefix("hsm/")
        for n in ctx.bundle.members
        if n.startswith("hsm/audit-") and parse_segment_name(n.removeprefix("hsm/"))
    ]
    live = ctx.member("hsm/audit.jsonl")
    span = verify_audit_segments(
        segments, lambda name: ctx.member(f"hsm/{name}"), live, complete=False, keep_archived=True
    )
    first = span.first
    records = [*span.archived, *span.live]  # as verified: each member parsed once
    pruned = max((r.prunes for r in records), default=0)
    if first and pruned < first and HSM_ARCHIVED not in ctx.index.absent:
        raise AuditChainBroken(
            f"the HSM audit chain in the bundle starts at record {first}, and neither the "
            "bundle nor an audit-prune record in the chain states why the records before it "
            "are absent"
        )
    lines = [
        f"audit chain of {len(records)} record(s) is intact from record {first}"
        + (f" ({len(segments)} archived segment(s) and the live log)" if segments else "")
    ]
    if first and pruned >= first:
        lines.append(f"records 0 to {first - 1} pruned by an officer (audit-prune record)")
    elif first:
        lines.append(f"records 0 to {first - 1} absent: {ctx.index.absent[HSM_ARCHIVED]}")
    checkpoints = sorted(n for n in ctx.bundle.members if n.startswith("hsm/checkpoint-"))
    signed = 0  # the records a verified checkpoint covers: nothing signed vouches for the rest
    hsm_times: list[tuple[int, str]] = []
    signers: list[PublicKey] = []
    for name in checkpoints:
        data = ctx.member(name)
        try:
            statement = TransparentStatement.parse(data).statement
        except MalformedInput:
            statement = SignedStatement.parse(data)
        checkpoint = None
        for key in ctx.trust.hsm_attestation_keys:
            try:
                checkpoint = verify_audit_checkpoint(statement.log_entry(), key)
                signers.append(key)
                break
            except IronrootError:
                continue
        if checkpoint is None:
            raise UnknownIssuer(f"no trusted HSM attestation key signed {name}")
        if 0 < checkpoint.size <= first:
            # not compared with the chain: the HSM it names is not shown to be this one's
            lines.append(
                f"{name} covers {checkpoint.size} record(s), all before record {first}: "
                "archived and not in the bundle, not checked"
            )
            continue
        _reaches(records, checkpoint, first)
        ctx.hsm_ids.add(checkpoint.hsm)
        hsm_times.append((checkpoint.time, f"an HSM audit checkpoint ({name})"))
        signed = max(signed, checkpoint.size)
        lines.append(f"reaches {name}: {checkpoint.size} record(s) the HSM signed")
    node_bound, binding = _hsm_binding(ctx, signers)
    lines.append(binding)
    if not node_bound:
        ctx.hsm_unbound = binding
    end = first + len(records)
    covered = max(signed, first)
    ctx.hsm_records = {
        "in_bundle": True,
        "require_signed": required,
        "records": len(records),
        "first": first,
        "signed": covered - first,
        "unsigned": end - covered,
        "all_signed": end <= covered,
    }
    unvouched = None
    if end > covered:
        # the chain's hashes are public: whoever holds the records can rewrite, add or cut
        # them after the last checkpoint and hash again (only the HSM can check their MACs)
        unvouched = (
            f"records {covered} to {end - 1} of the HSM's audit chain follow the last signed "
            "audit checkpoint"
            if signed > first
            else f"no signed audit checkpoint covers the records {first} to {end - 1} of the "
            "HSM's audit chain"
        )
        lines.append(
            (
                f"records {covered} to {end - 1} follow the last signed checkpoint"
                if signed > first
                else "no signed audit checkpoint covers the records in the bundle"
            )
            + ": nothing signed vouches for them (rewritten, added or cut from the end, they "
            "would not show)"
        )
    bound = release_records(records)
    releases = [r for r in records if r.operation == "release"]
    lines.append(f"{len(releases)} key release record(s)")
    for record in releases[-20:]:
        lines.append(
            f"{posix_time(record.time)} {record.identity} release of {record.key}: {record.result}"
            + (" (after the last signed checkpoint)" if record.seq >= signed else "")
        )
    granted = sum(1 for r in releases if r.result == "ok")
    if granted:
        lines.append(
            f"{len(bound)} of {granted} granted release(s) bind their statement, wrapping key "
            "and EAR (the others were written before release binding)"
        )
    ctx.hsm_releases = bound
    if required and unvouched is not None:  # the releases step still runs on the chain
        raise _unsigned(
            f"{unvouched}: nothing signed vouches for them, and the trust requires every "
            "record signed"
        )
    if not node_bound and ctx.trust.require_hsm_node_binding:
        error = VerificationFailed(
            f"{binding}, and the trust requires the HSM bound to the node",
            code="hsm-not-bound",
        )
        error.check = "node-binding"
        raise error
    for seconds, what in hsm_times:
        ctx.signed(seconds, what)
    return lines


def _hsm_binding(ctx: Context, signers: Sequence[PublicKey]) -> tuple[bool, str]:
    """Whether signed data ties the HSM whose audit chain the bundle holds to the node's RoT,
    and the line that says so. The HSM and the node share no identifier in what either signs
    (the HSM's id is random; its checkpoints name only it; the RoT's quote names nothing of
    the HSM), so the tie is the HSM's attestation chain (``hsm/attestation-chain.pem``): its
    attestation certificate names the HSM the signed checkpoints name and certifies the key
    that signed them, and its device certificate is the sealing RoT's DPE child for its HSM
    layer (label ``hsm``: any child, a VM's identity too, could certify a key) — the chain
    reaches a trusted vendor CA through the very IDevID certificate the seal was signed
    under. A chain that reaches another RoT's IDevID is refused (``VerificationFailed``
    ``hsm-other-node``), as is a chain of another HSM (``hsm-chain-mismatch``); no chain, or
    one that reaches no trusted vendor CA (a device CA of the HSM vendor's), leaves the HSM
    unbound: ``(False, why)``."""
    data = ctx.bundle.members.get(HSM_CHAIN)
    unbound = "nothing signed binds the HSM to the node's RoT"
    if data is None:
        reason = ctx.index.absent.get(HSM_CHAIN, "the bundle holds no HSM attestation chain")
        return False, f"{unbound} ({reason}): its records could be another node's HSM's"
    if not ctx.hsm_ids:
        return False, (
            f"{unbound}: no signed audit checkpoint of the chain names the HSM its attestation "
            "chain is about"
        )
    try:
        certificates = load_certificates(data, what=HSM_CHAIN, max_count=8)
    except IronrootError as exc:
        raise MalformedInput(f"{HSM_CHAIN} is not a certificate chain: {exc.detail}") from exc
    chain = tuple(c.public_bytes(Encoding.DER) for c in certificates)
    roots = [load_certificate(der, der_only=True) for der in ctx.trust.vendor_roots]
    ids = sorted(h.hex() for h in ctx.hsm_ids)
    try:
        verified = verify_attestation_chain(chain, roots=roots, now=ctx.at)
    except (ChainNotTrusted, CertificateExpired) as exc:
        return False, (
            f"{unbound}: the HSM's attestation chain reaches no trusted vendor CA (its device "
            f"is not a DPE child of a root of trust: {exc.code})"
        )
    if [verified.hsm_id.hex()] != ids or verified.attestation_key not in signers:
        raise VerificationFailed(
            f"{HSM_CHAIN} is the chain of HSM {verified.hsm_id.hex()}, whose attestation key "
            f"signed no audit checkpoint of the bundle (of HSM {', '.join(ids)})",
            code="hsm-chain-mismatch",
        )
    idevid = ctx.claims.ecc_chain[0]
    if idevid.der not in chain:
        raise VerificationFailed(
            f"the HSM {ids[0]} is certified by the root of trust "
            f"{cn(certificates[-1].subject.rfc4514_string())!r}, not by the RoT that sealed "
            f"the bundle (Ueid {ctx.claims.ueid.hex()}): its records are another node's",
            code="hsm-other-node",
        )
    device = cn(certificates[1].subject.rfc4514_string())
    try:
        (device_cert,) = parse_certificates(chain[1])
    except (IronrootError, ValueError) as exc:
        raise MalformedInput(f"the HSM's device certificate does not parse: {exc}") from exc
    layers = [t.type for t in device_cert.dice.tcb_infos if t.type is not None]
    if layers != [HSM_DPE_LABEL.encode()]:
        # any DPE child of the RoT (a VM's identity) could certify a key: only its HSM layer
        named = ", ".join(repr(t.decode("utf-8", "replace")) for t in layers) or "no layer"
        return False, (
            f"{unbound}: the HSM's device certificate {device!r} is certified by the sealing "
            f"RoT for {named}, not for its HSM layer ({HSM_DPE_LABEL!r})"
        )
    return True, (
        f"the HSM {ids[0]} is the node's: its attestation key, which signed the audit "
        f"checkpoints, is certified by {device!r}, a DPE child of the sealing RoT (Ueid "
        f"{ctx.claims.ueid.hex()})"
    )


def _reaches(records: Sequence[AuditRecord], checkpoint: AuditCheckpoint, first: int) -> None:
    """What ``verify_audit(records, checkpoint=…)`` adds once the chain (from record
    ``first``) verified, without walking it again: its record ``size - 1`` hashes to the
    checkpoint's head. (Walked once per checkpoint, a chain of millions of records after one
    genuine checkpoint, and a thousand copies of it, cost billions of hashes.)"""
    size = checkpoint.size
    if 0 < size - first <= len(records) and hmac.compare_digest(
        records[size - 1 - first].digest(), checkpoint.head
    ):
        return
    if size:  # names the break
        verify_audit(
            records,
            checkpoint=checkpoint,
            start=first,
            prev=records[0].prev if records else bytes(32),
        )
    else:
        verify_audit((), checkpoint=checkpoint)
    raise AuditChainBroken(f"the audit chain does not reach its checkpoint at {size}")
