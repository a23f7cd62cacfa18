"""Audit buffering: records of key use wait in memory and go out in groups; security events
and refusals are written, synced and anchored before the call returns.

``release`` and ``release_challenge`` — what anyone reaching the key release service can make
the HSM refuse — group-commit those records instead (``_group_commit``, ``_make_durable``):
still durable and anchored before the call returns or raises, but the records of the calls
arriving together share one commit (one fsync, one counter increment), written outside the
lock while the next group queues.

A failure that puts the HSM in its error state is audited here first (``_fail``). The
record format and its chain are ``_audit``'s; verification at power-up is ``_audit_check``'s.

**Rotation.** The live log (``audit.jsonl``) is bounded: at the first audit write that finds it
holding ``audit_segment_records`` records or more, the HSM closes it as an archived segment
and starts a new one that continues the same chain (same ``seq`` numbering, the first record's
``prev`` the hash of the last archived one). In order:

1. append an ``audit-rotate`` record (identity ``-``, key: the segment's file name
   ``audit-<first>-<last>.jsonl``, ``last`` being this record's seq) and fsync;
2. ``archive_audit``: the live file is hard-linked under the segment's name (directory fsync);
3. commit the store (``_anchor``) with the live log's new **base**: the seq of its next
   record and the hash of the rotation record (``StoreDocument.audit_base``);
4. ``reset_audit``: an empty live file replaces the old one atomically.

Power-up reads only the live log and verifies it from the sealed base, so archived segments
(deleted, altered or swapped) never affect it. A crash at any step leaves a state power-up
accepts and completes, without losing or duplicating a record: before 3 the sealed base is
the old one, the live log still holds every record, and a segment named from that base on is
a leftover of step 2 that power-up removes (the next rotation archives those records again);
after 3 the live log still holds the records now archived, every one before the sealed base,
and power-up verifies them (chain, MACs, ending at the sealed base head) and, the segment of
that name being there, finishes step 4.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Final

from ironroot.errors import AuditChainBroken, HsmErrorState, IronrootError
from ironroot.hsm._anchor import Anchor
from ironroot.hsm._audit import (
    AuditRecord,
    ReleaseBinding,
    audit_mac,
    format_audit_log,
    parse_audit_log,
    segment_name,
    segments_from,
    verify_audit,
)
from ironroot.hsm._audit_check import verify_to_sealed_head
from ironroot.hsm._document import StoreDocument
from ironroot.hsm._persistence import Persistence
from ironroot.hsm._state import OwedRefusals, PendingRecord

__all__ = ["NO_IDENTITY", "AuditBuffer", "named_subject"]

NO_IDENTITY: Final = "-"
"""The identity of records that no session authenticated."""

MAX_AUDITED_KEY: Final = 128
"""The longest handle a record names as given (a handle the HSM makes is 32 hex digits)."""

_SECURITY_EVENTS: Final = frozenset(
    {
        "login",
        "approval",
        "release",
        "self-test",
        "pairwise-test",
        "power-up",
        "initialize",
        "tamper",
    }
)
"""Operations whose every record is durable and anchored before the call returns (any
refusal is too)."""


def audited_key(key: object) -> str | None:
    """The handle a record names: ``key`` when it is text of at most ``MAX_AUDITED_KEY``
    characters that encodes as UTF-8; else ``sha256:<hex>`` of its UTF-8 bytes (lone
    surrogates kept), or ``<type>`` for a value that is not text at all. So whatever a caller
    passes as a handle, the record it leaves is one the log can hold — a line that
    ``parse_audit_log`` reads (at most 4 KiB), a value deterministic CBOR encodes — and a
    refusal never wedges the records waiting behind it."""
    if key is None:
        return None
    if isinstance(key, _Named):  # composed by the HSM, bounded by construction
        return str(key)
    if not isinstance(key, str):
        return f"<{type(key).__name__}>"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        if len(key) <= MAX_AUDITED_KEY:
            return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def approval_subject(operation: str, target: str | None) -> str:
    """The subject of an approval's records (``approval``, ``approve``): ``<operation>
    <target>``, the target as a handle is recorded (:func:`audited_key`), ``-`` for none."""
    shown = audited_key(target)
    return _Named(f"{operation} {shown if shown is not None else '-'}")


class _Named(str):
    """A subject :func:`named_subject` composed: recorded as it is."""

    __slots__ = ()


def named_subject(name: object, key_id: str | None = None) -> str:
    """The subject (the ``key`` member) of the record of an operation on an entry an officer
    names — an EAR verifier (``verifier-add``, ``verifier-remove``), a wrap recipient
    (``recipient-add``, ``recipient-remove``): ``<name> <key id>``, the name as a handle is
    recorded (:func:`audited_key`: at most ``MAX_AUDITED_KEY`` characters, else
    ``sha256:<hex>``) and the id of its key (a verifier's key id, base64url; a recipient's
    SPKI SHA-256, hex), or ``-`` for a refusal before the key was known. An id holds no
    space, so the last space of the subject ends the name. At most 128 + 1 + 64 characters:
    a line the log can hold."""
    shown = audited_key(name)
    return _Named(f"{shown if shown is not None else '<NoneType>'} {key_id or '-'}")


class AuditBuffer(Persistence):
    """The audit records waiting in memory, their group commit, and the listeners."""

    def add_listener(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(operation, result)`` after every audited operation (for metrics:
        it sees what the audit log sees, never a key or a credential). A listener that raises
        is ignored."""
        self._listeners.append(listener)

    def _record(
        self,
        identity: str,
        operation: str,
        key: str | None,
        result: str,
        release: ReleaseBinding | None = None,
        *,
        with_store: bool = False,
    ) -> None:
        """Audit one outcome (``release``: what a release record binds). A security event —
        any refusal, and every login, release, self-test and power-up — is written, synced
        and anchored (bound to the counter) before this returns; other records wait for a
        group of ``audit_group_commit``. ``with_store``: the success of an operation that
        changed the store, whose caller commits the store next (``_persist``): the record
        waits for that commit even when it fills a group, so that the record and the change
        are one commit. Committed on its own, a crash before the store's commit left a
        sealed ``generate ok <handle>`` for a key no store held."""
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener(operation, result)
        with self._lock:
            self._pending.append(
                PendingRecord(self._now(), identity, operation, audited_key(key), result, release)
            )
            if (
                result != "ok"
                or operation in _SECURITY_EVENTS
                or (not with_store and len(self._pending) >= self._config.audit_group_commit)
            ):
                if getattr(self._owed, "ticket", None) is not None and self._state == (
                    "operational"
                ):  # in a group commit (``_group_commit``): made durable once unlocked
                    self._owed.ticket = self._audit_size + len(self._pending)
                    if result == "ok":  # a grant: its commit is never held by the budget
                        self._urgent_to = max(self._urgent_to, self._owed.ticket)
                else:
                    self._sync()

    @contextlib.contextmanager
    def _group_commit(self) -> Iterator[None]:
        """Around a whole operation, outside its lock: the records it must make durable (a
        refusal, a release, a full group) are written, synced and anchored by a group commit
        once the lock is released, before the operation returns or raises
        (``_make_durable``). Only the operations that anyone reaching the key release
        service can make the HSM refuse (``release``, ``release_challenge``) take it."""
        if getattr(self._owed, "ticket", None) is not None:  # nested: the outer one commits
            yield
            return
        self._owed.ticket = 0
        try:
            yield
        finally:
            ticket, self._owed.ticket = self._owed.ticket, None
            if ticket:  # inside ``owing_refusals``: a wait for the budget is left to it
                self._make_durable(ticket, getattr(self._owed, "refusals", None))

    @contextlib.contextmanager
    def owing_refusals(self, wake: Callable[[], None] | None = None) -> Iterator[OwedRefusals]:
        """Within it, in this thread, :meth:`release` and :meth:`release_challenge` never
        wait for the refusal budget (``HsmConfig.refusal_commit_rate``): records that would
        wait only for it are left owed, in what this yields, and the operation returns or
        raises at once. For a caller that waits elsewhere, not in a thread (the key release
        service: on its event loop, so that a refusal flood does not hold its worker
        threads), which must then answer neither the result nor the refusal before
        :meth:`settle_owed` returns 0. ``wake`` is called, from any thread and under the
        HSM's lock of its commits (it must be quick), when a commit made them durable.
        Nested, it yields the outer one's (whose caller settles them)."""
        outer = getattr(self._owed, "refusals", None)
        if outer is not None:  # nested: the outer one's caller settles what is owed
            yield outer
            return
        owed = OwedRefusals(wake)
        self._owed.refusals = owed
        try:
            yield owed
        finally:
            self._owed.refusals = None

    def settle_owed(self, owed: OwedRefusals) -> float:
        """0 once the records ``owed`` holds (:meth:`owing_refusals`) are written, synced and
        anchored (this commits them when the budget allows one more commit, or waits for a
        commit under way); else the seconds until the budget allows one: call again then, or
        when its ``wake`` is called, whichever comes first. Raises what the operation would
        have raised in their place (``HsmErrorState`` when the HSM left its operational state
        before they were durable; the storage's own error)."""
        return self._make_durable(owed.ticket, owed) if owed.ticket else 0.0

    def _make_durable(self, ticket: int, owed: OwedRefusals | None = None) -> float:
        """Return once the records before seq ``ticket`` are written, synced and anchored:
        a group commit, called without the lock. With ``owed``, a wait for the refusal
        budget is not made here: ``ticket`` goes into ``owed`` and the seconds to wait are
        returned (:meth:`owing_refusals`); else 0.

        One commit at a time writes outside the lock (``_in_flight``): while its append,
        fsync, anchor and counter increment are under way, the other operations run and
        queue their records, then wait for it. The first of them to find no commit under
        way commits every record queued by then: one append, one anchor and one counter
        increment for all of them. So refusals arriving together cost two commits, not one
        each. A commit that would carry refusals only waits for the refusal budget
        (``HsmConfig.refusal_commit_rate``, ``_budget_wait``), so that refusals from any
        number of clients cost a bounded number of commits a second; one carrying a grant
        goes at once. ``HsmErrorState`` (or ``HsmZeroized``) when the HSM left its
        operational state before they were durable: a refusal not durable is never answered
        as one; the storage's own error to the operation whose commit failed."""
        while True:
            with self._durable:
                while self._in_flight and self._durable_to < ticket:
                    self._durable.wait()
                if self._durable_to >= ticket:
                    return 0.0
            with self._lock:
                with self._durable:
                    if self._durable_to >= ticket:  # another's commit carried them
                        return 0.0
                    if self._in_flight:  # another took the lead meanwhile: wait for it
                        continue
                self._check_state()
                if self._audit_size + len(self._pending) - self._audit_base >= (
                    self._audit_segment
                ):  # a rotation: under the lock, as every other commit (rare)
                    self._flush_and_commit(store=False)
                    continue
                wait = self._budget_wait()
                if not wait:
                    data, size, head = self._format_pending()
                    self._pending.clear()
                    self._audit_size, self._audit_head = size, head
                    anchor = self._sealed_anchor()
                    with self._durable:
                        self._in_flight = True
            if wait:  # refusals only, past the budget: wait (unlocked) for the next commit
                with self._durable:
                    if self._durable_to < ticket and owed is not None:  # the caller waits
                        owed.ticket = max(owed.ticket, ticket)
                        self._owing.add(owed)
                        return wait
                    if self._durable_to < ticket:
                        self._durable.wait(wait)
                continue
            try:
                self._write_group(data, anchor)
            finally:
                with self._durable:
                    self._in_flight = False
                    if self._state == "operational":
                        self._durable_to = max(self._durable_to, size)
                    self._durable.notify_all()
                    self._wake_owing()

    def _wake_owing(self) -> None:
        """Under ``_durable``, after a commit: wake the callers (:meth:`owing_refusals`)
        whose owed records it made durable."""
        done = [owed for owed in self._owing if owed.ticket <= self._durable_to]
        for owed in done:
            self._owing.discard(owed)
            if owed.wake is not None:
                with contextlib.suppress(Exception):
                    owed.wake()

    def _budget_wait(self) -> float:
        """0 when the commit about to be made may go (it carries a grant, or the refusal
        budget allows one more commit: spent now); else the seconds until the budget allows
        one. Under the lock."""
        with self._durable:
            urgent = self._urgent_to > self._durable_to
        if urgent:
            return 0.0
        return self._refusal_budget.take()

    def _write_group(self, data: bytes, anchor: bytes) -> None:
        """A group commit's writes, outside the lock: the records (append, fsync), the anchor,
        the counter increment, in the order of every commit (``_anchor``)."""
        self._written(functools.partial(self._storage.append_audit, data))
        self._written(functools.partial(self._storage.write_anchor, anchor))
        self._advance_counter()

    def _format_pending(self) -> tuple[bytes, int, bytes]:
        """The waiting records keyed and chained, as log lines; the log's size and head after
        them."""
        records: list[AuditRecord] = []
        size, head = self._audit_size, self._audit_head
        for p in self._pending:
            unkeyed = AuditRecord(
                size, p.time, p.identity, p.operation, p.key, p.result, head, release=p.release
            )
            head = unkeyed.digest()
            records.append(replace(unkeyed, mac=audit_mac(self._audit_key, head)))
            size += 1
        return format_audit_log(records), size, head

    def _flush_audit(self) -> None:
        """Append the waiting records (keyed, chained) and fsync; no anchor."""
        if not self._pending:
            return
        self._await_flight()
        data, size, head = self._format_pending()
        self._written(lambda: self._storage.append_audit(data))
        self._pending.clear()
        self._audit_size, self._audit_head = size, head

    def _sync(self) -> None:
        """Flush the audit records and commit an anchor naming the new head."""
        self._flush_and_commit(store=False)

    def _flush_and_commit(self, *, store: bool) -> None:
        """Flush the audit records, then commit the anchor (and the store with ``store``); a
        live log at its segment size rotates instead, which commits both."""
        if self._state != "operational":
            return
        self._flush_audit()
        if self._rotation_due():
            self._rotate()
        else:
            self._commit(store=store)
        with self._durable:
            self._durable_to = max(self._durable_to, self._audit_size)
            self._durable.notify_all()  # refusals waiting for the budget: carried by this one
            self._wake_owing()

    def _rotation_due(self) -> bool:
        return self._audit_size - self._audit_base >= self._audit_segment

    def _rotate(self) -> None:
        """Close the live log as an archived segment and start a new one continuing the chain;
        this commits the store (module docs: the steps, and what a crash at each leaves)."""
        name = segment_name(self._audit_base, self._audit_size)
        self._pending.append(PendingRecord(self._now(), NO_IDENTITY, "audit-rotate", name, "ok"))
        self._flush_audit()
        self._written(lambda: self._storage.archive_audit(name))
        self._audit_base, self._audit_base_head = self._audit_size, self._audit_head
        self._commit(store=True)
        self._written(self._storage.reset_audit)

    def _persist_locked(self) -> None:
        with self._lock:
            self._persist()

    def _persist(self) -> None:
        """Flush the audit log, then commit the store and its anchor (``_anchor``)."""
        self._flush_and_commit(store=True)

    def flush(self) -> None:
        """Write, sync and anchor the audit records waiting in memory."""
        with self._lock:
            if self._pending:
                self._sync()

    def close(self) -> None:
        """Flush the audit log, end every session and let another HSM object of this process
        open the storage (this one stays usable until another does: ``_claim_storage``)."""
        with self._lock:
            try:
                if self._pending:
                    self._sync()
                self._await_flight()  # a group commit still writing: not released under it
            finally:
                self._sessions.clear()
                self._release_storage()

    def _fail(self, reason: str, *, record: tuple[str, str] | None = None) -> None:
        """Enter the error state: nothing more is done until a restart. ``record`` is
        ``(identity, operation)`` of the failure, audited durably first when the HSM was
        operational (a power-up KAT failure has no store open, so nothing to key a record
        with: the object's state reports it)."""
        if record is not None and self._state == "operational" and self._audit_key:
            with contextlib.suppress(IronrootError):  # failing anyway: that is the news
                self._record(*record, None, HsmErrorState.code)
                with self._lock:  # a group commit deferred it: durable before the error
                    if self._pending:
                        self._sync()
        self._enter_error(reason)

    def _resume_audit(self, anchor: Anchor | None, doc: StoreDocument) -> None:
        """Verify the live log from the sealed base to the head sealed in the anchor or the
        store (``_audit_check``), after completing a rotation a crash cut short (module
        docs). Archived segments are listed, never read.

        A partial last line (an append a crash cut short: the HSM ends every line it writes)
        was never a record the HSM anchored: it is dropped once the complete lines before it
        reach the sealed head, and an ``audit-torn-write`` record (key ``bytes-<N>``) says
        so. Were it kept, power-up would refuse the log for ever ("not JSON").

        Complete records past the sealed head were appended by a commit a crash cut short
        before its store and anchor: a commit appends its records first, so the log held
        ``generate ok <handle>`` for a key no store holds, and nothing said so. They are kept
        (the chain and their MACs verify) and an ``audit-uncommitted`` record (key
        ``records-<first>-<last>``) says that their commit did not complete: the store changes
        they name did not persist, and none of them was answered as durable."""
        data = self._storage.read_audit()
        complete = data[: data.rfind(b"\n") + 1]
        records = parse_audit_log(complete)
        if records and records[0].seq < doc.audit_base:
            self._finish_rotation(records, doc, anchor)  # a new, empty live log
            data = complete = b""
            records = ()
        for name in segments_from(self._storage.audit_segments(), doc.audit_base):
            # step 2 of a rotation that did not commit
            self._written(functools.partial(self._storage.remove_audit_segment, name))
        sealed = verify_to_sealed_head(records, doc, anchor)
        if len(complete) < len(data):  # a write cut short (docstring)
            self._written(functools.partial(self._storage.reset_audit, complete))
            torn = f"bytes-{len(data) - len(complete)}"
            self._pending.append(
                PendingRecord(self._now(), NO_IDENTITY, "audit-torn-write", torn, "ok")
            )
        self._audit_size = doc.audit_base + len(records)
        self._audit_head = records[-1].digest() if records else doc.audit_base_head
        if self._audit_size > sealed:  # a commit cut short after its append (docstring)
            cut = f"records-{sealed}-{self._audit_size - 1}"
            self._pending.append(
                PendingRecord(self._now(), NO_IDENTITY, "audit-uncommitted", cut, "ok")
            )

    def _finish_rotation(
        self, records: tuple[AuditRecord, ...], doc: StoreDocument, anchor: Anchor | None
    ) -> None:
        """Step 4 of a committed rotation: the live log holds the records just archived,
        which must be this HSM's (MACs) and end at the sealed base; the head sealed last must
        be that base (no record after it was anchored); their segment must be there.
        ``AuditChainBroken`` otherwise: nothing is reset."""
        first, last = records[0].seq, records[-1].seq
        sealed = max(doc.audit_size, anchor.audit_size if anchor is not None else 0)
        if sealed > doc.audit_base:  # a later live log was replaced by an archived one
            raise AuditChainBroken(
                f"the live log holds records {first} to {last}, all archived; the HSM sealed a "
                f"head covering {sealed}: its last {sealed - doc.audit_base} were cut"
            )
        verify_audit(
            records, key=doc.audit_key, mac_from=doc.audit_from, start=first, prev=records[0].prev
        )
        if last + 1 != doc.audit_base or not hmac.compare_digest(
            records[-1].digest(), doc.audit_base_head
        ):
            raise AuditChainBroken(
                f"the live log holds records {first} to {last}; the HSM sealed that it starts "
                f"at record {doc.audit_base}"
            )
        name = segment_name(first, last)
        if name not in self._storage.audit_segments():
            raise AuditChainBroken(
                f"the live log holds records {first} to {last}, which the HSM archived as "
                f"{name}, and that segment is missing: the live log is kept"
            )
        self._written(self._storage.reset_audit)

    def _audit_refused_power_up(self, doc: StoreDocument, code: str) -> None:
        """Append a keyed record of a refused power-up to the log, when the log verifies with
        the audit key of the store that was refused (best effort: the refusal is raised
        whatever happens here)."""
        try:
            records = parse_audit_log(self._storage.read_audit())
            start, prev = doc.audit_base, doc.audit_base_head
            verify_audit(
                records, key=doc.audit_key, mac_from=doc.audit_from, start=start, prev=prev
            )
            head = records[-1].digest() if records else prev
            unkeyed = AuditRecord(
                start + len(records), self._now(), NO_IDENTITY, "power-up", None, code, head
            )
            keyed = replace(unkeyed, mac=audit_mac(doc.audit_key, unkeyed.digest()))
            self._storage.append_audit(format_audit_log([keyed]))
        except IronrootError:
            pass
