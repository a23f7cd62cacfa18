"""Checking an HSM's audit log against what the HSM sealed: nothing cut, nothing rewritten.

:func:`verify_audit` checks the chain with public information (and against a signed
checkpoint when one is given). :func:`check_sealed_audit` is the check its owner can make with
the device's sealing secret, without logging in and without opening the HSM (it reads the
files, so it works while the HSM is in use): it unseals the anchor and the store, checks the
anchor against the root of trust's counter when given, verifies the chain and every MAC of the
HSM's records with the audit key, and requires the log to reach the head sealed in the anchor.
A cut tail is reported with how many records are missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ironroot.errors import (
    AuditChainBroken,
    MalformedInput,
    SealedStoreError,
    StoreRolledBack,
)
from ironroot.hsm._anchor import Anchor, check_anchor, open_anchor
from ironroot.hsm._audit import (
    AuditCheckpoint,
    AuditRecord,
    parse_audit_log,
    verify_audit,
    verify_audit_segments,
)
from ironroot.hsm._document import StoreDocument, decode_store, zero
from ironroot.hsm._storage import check_secret, unseal

__all__ = ["AuditReport", "check_sealed_audit", "verify_to_sealed_head"]


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What a full audit check found: ``records`` in the log (its seqs: archived segments and
    the live log together), of which the first ``anchored``
    are covered by the sealed head and those from ``keyed_from`` on carry this HSM's MACs;
    ``head`` is the hash of the last record; ``counter`` the root of trust's counter when it
    was checked (``None`` when it was not)."""

    records: int
    anchored: int
    keyed_from: int
    head: bytes
    counter: int | None
    base: int = 0
    """The seq of the live log's first record (the records before it are archived)."""
    archived: int | None = None
    """How many archived segments were verified with it (``None``: they were not given, and
    only the live log, from ``base``, was checked)."""
    first: int = 0
    """The seq of the first record verified: where the chain starts with the archived
    segments (0, or the first record an officer kept when pruning), ``base`` without them."""


def verify_to_sealed_head(
    records: Sequence[AuditRecord], doc: StoreDocument, anchor: Anchor | None
) -> int:
    """Verify ``records`` (the chain from record 0, the MACs of the HSM's own records) and
    that they reach the head sealed in the anchor or in the store, whichever is later; return
    how many records that head covers. ``AuditChainBroken`` otherwise, naming a cut tail."""
    size, head = doc.audit_size, doc.audit_head
    if anchor is not None and anchor.audit_size > size:
        size, head = anchor.audit_size, anchor.audit_head
    key, mac_from, start, prev = doc.audit_key, doc.audit_from, doc.audit_base, doc.audit_base_head
    end = doc.audit_base + len(records)
    if end < size:
        verify_audit(records, key=key, mac_from=mac_from, start=start, prev=prev)
        raise AuditChainBroken(
            f"the log has {end} records, the HSM sealed a head covering {size}: "
            f"its last {size - end} were cut"
        )
    if size == doc.audit_base and head != doc.audit_base_head:
        raise AuditChainBroken("the sealed head is not the last archived record's")
    checkpoint = AuditCheckpoint(doc.hsm_id, size, head, 0)
    verify_audit(records, checkpoint=checkpoint, key=key, mac_from=mac_from, start=start, prev=prev)
    return size


def check_sealed_audit(
    *,
    audit: bytes,
    store: bytes | None,
    anchor: bytes | None,
    sealing_secret: bytes,
    counter: int | None = None,
    rot_counter: str = "",
    counter_after: int | None = None,
    segments: Sequence[str] | None = None,
    read_segment: Callable[[str], bytes] | None = None,
    checkpoint: AuditCheckpoint | None = None,
) -> AuditReport:
    """Check an audit log (``audit``: its bytes) against the sealed ``store`` and ``anchor``.

    ``SealedStoreError`` when they do not open with ``sealing_secret``; ``StoreRolledBack``
    when ``counter`` (the root of trust's reading of its counter named ``rot_counter``) shows
    them to be an older copy or another HSM's files, when the
    anchor is missing, or (without ``counter``) when the store is not the one it names;
    ``AuditChainBroken`` when a record was altered, rewritten outside the HSM (MAC), removed,
    or cut from the end (the message says how many are missing).

    The files may be read while the HSM runs (``ironroot hsm audit verify``): read the counter
    (``counter``), then the anchor, the store and the log, then the counter again
    (``counter_after``). Commits made meanwhile move the anchor ahead of the first reading;
    an anchor from ``counter`` to ``counter_after + 1`` is one the HSM wrote in that time
    (an anchor is written before its increment), so it is checked against the reading that
    fits it. An anchor behind ``counter`` is still an older copy, and one beyond
    ``counter_after + 1`` still belongs to another counter. Without ``counter`` the anchor's
    own counter name is taken as it is: nothing read here can check it.

    ``audit`` is the live log, checked from the base the store seals (where it starts after
    the last rotation). With ``segments`` (the archived segments' names) and ``read_segment``
    (their bytes by name), they are checked too, chain and MACs, as one chain from record 0
    ending where the live log starts (:func:`~ironroot.hsm.verify_audit_segments`, whose
    errors name the segment missing, truncated, swapped or altered), and with ``checkpoint``
    (a signed checkpoint, :func:`~ironroot.hsm.verify_audit_checkpoint`) the whole chain must
    hold its records too. Each segment and the live log is read and verified once: the
    public chain, every MAC and the checkpoint in one pass.
    """
    secret = check_secret(sealing_secret)
    if store is None:
        raise SealedStoreError("there is no key store to check the audit log against")
    try:
        doc = decode_store(unseal(secret, store))
    except MalformedInput as exc:
        raise SealedStoreError("the sealed key store opened but does not parse") from exc
    try:
        sealed_anchor = None if anchor is None else open_anchor(secret, anchor)
        if counter is not None:
            if (
                counter_after is not None
                and sealed_anchor is not None
                and counter <= sealed_anchor.counter <= counter_after + 1
            ):
                counter = min(sealed_anchor.counter, counter_after)  # committed meanwhile
            check_anchor(
                sealed_anchor,
                counter=counter,
                store=doc.generation,
                hsm=doc.hsm_id,
                rot_counter=rot_counter,
            )
        elif sealed_anchor is None:  # every commit writes one: a store alone was left so
            raise StoreRolledBack(  # that the audit records since the store's head be cut
                "the key store's anchor is missing: the audit log cannot be checked to the "
                "head the HSM last sealed"
            )
        else:  # without the counter, at least the store must be the one the anchor names
            check_anchor(
                sealed_anchor,
                counter=sealed_anchor.counter,
                store=doc.generation,
                hsm=doc.hsm_id,
                rot_counter=sealed_anchor.rot_counter,  # no counter read: no name to check
            )
        end: int | None = None  # of the chain with the archived segments, when given
        if segments is None:
            if checkpoint is not None:
                raise MalformedInput("checking a checkpoint needs the archived segments")
            records, first = parse_audit_log(audit), doc.audit_base
        else:
            if read_segment is None:
                raise MalformedInput("checking archived segments needs a way to read them")
            span = verify_audit_segments(
                segments,
                read_segment,
                audit,
                checkpoint=checkpoint,
                key=doc.audit_key,
                mac_from=doc.audit_from,
            )
            records, first, end = span.live, span.first, span.first + span.records
        size = verify_to_sealed_head(records, doc, sealed_anchor)
        if end is not None and end != doc.audit_base + len(records):  # an empty live log
            raise AuditChainBroken(
                f"the archived segments end at record {end - 1}; the HSM sealed that the "
                f"live log starts at record {doc.audit_base}: records {end} to "
                f"{doc.audit_base - 1} are missing"
            )
        return AuditReport(
            records=doc.audit_base + len(records),
            anchored=size,
            keyed_from=doc.audit_from,
            head=records[-1].digest() if records else doc.audit_base_head,
            counter=counter,
            base=doc.audit_base,
            archived=None if segments is None else len(segments),
            first=first,
        )
    finally:
        zero(doc.audit_key)
        for key in doc.keys:
            key.wipe()
        doc.attestation.wipe()
        for ident in doc.identities:
            zero(ident.hash)
