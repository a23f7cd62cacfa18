"""The built-in HSM boundary: one object that holds keys and refuses everything it must.

Modelled on an integrated FIPS 140-3 Level 3 module (Azure Integrated HSM):

* **Identity-based authentication.** :meth:`Hsm.login` checks a named identity's credential
  (scrypt, RFC 7914, compared in constant time by ``cryptography``) and returns a
  :class:`Session`; every operation takes one, checks the identity's role, and writes an audit
  record whatever the outcome. ``max_failed_logins`` wrong credentials in a row lock the
  identity out for a while (``_identities``); a crypto officer's lock lasts until an officer
  unlocks it. An unknown identity costs the same scrypt work as a wrong credential.
* **Keys generated inside**, reached only through handles. Private and secret material never
  leaves in plaintext: an exportable key leaves wrapped (:meth:`wrap`, or :meth:`release` for a
  key with a release policy), a non-exportable one never; a key derived from a non-exportable
  key cannot be exportable; an unwrapped (imported) key is never exportable.
* **Self-tests.** The KAT table (a constructor argument) runs at power-up and on
  :meth:`self_test`; every new key pair gets a pairwise-consistency test. A failure puts the
  object into its error state: every call raises ``HsmErrorState``; only a new object (a
  restart) can leave it.
* **Tamper response.** :meth:`tamper` (and an officer's :meth:`zeroize`) overwrites every secret
  this object holds in ``bytearray`` form (key material, credential hashes, the sealing secret),
  drops every library key object, ends all sessions, and destroys the sealed store through its
  storage medium (overwrite, then unlink); afterwards every call raises ``HsmZeroized``.
* **Sealed persistence** (``_storage``): the key store opens only with this device's sealing
  secret; :meth:`migrate` re-seals it to another secret.
* **Audit** (``_audit``): hash-chained records. Durability: records of logins, identity and key
  management, migration and zeroization are written and fsynced before the call returns (they
  change the sealed store, which also records the audit head). Records of key *use* (sign,
  verify, encrypt, decrypt, wrap, unwrap, derive, attest, release) wait in memory and are
  written in groups of ``audit_group_commit`` (default 256), on any management operation, on
  :meth:`flush` and :meth:`close`; a crash loses at most the unwritten tail of use records, and
  the chain on disk stays valid. ``audit_group_commit=1`` makes every record durable first.

Limits of zeroization in Python (documented, not hidden): ``bytearray`` buffers are overwritten
in place, but ``cryptography`` key objects keep their own copies inside OpenSSL (freed with
``OPENSSL_clear_free`` when the object is released, which this object does, but not
overwritten on demand), and transient ``bytes`` copies made while (un)sealing or wrapping
cannot be overwritten at all: they are unreachable and left to the allocator. Overwriting a
file on a journaling file system or an SSD does not guarantee the old blocks are gone; that is
why the store is *sealed*: without the device's sealing secret the bytes are useless, and a
real device keeps that secret in its root of trust.

The core takes its clock as an argument (``clock``, POSIX seconds) and its storage as an object
(``HsmStorage``), so tests run it in memory with a fixed time.

The class is composed of rooms, one job each, every one a mixin over the shared state
(``_state``): sealed persistence (``_persistence``), audit buffering (``_audit_buffer``),
permissions (``_permissions``), identities and lockout (``_identities``), key operations
(``_key_operations``), wrap and release (``_wrap_release``), migration and backup
(``_backup``) and zeroization (``_zeroization``). Constructing the state runs the KATs
(``_state``); this module keeps creating and opening an HSM, the self-test and the auditor's
read-out.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Final

from ironroot.crypto import PrivateKey
from ironroot.errors import (
    AuditChainBroken,
    Conflict,
    HsmErrorState,
    HsmZeroized,
    MalformedInput,
    NotFound,
    PolicyRejected,
    SealedStoreError,
    StoreRolledBack,
    UnsupportedAlgorithm,
)
from ironroot.hsm._anchor import Anchor, check_anchor, counter_name, open_anchor
from ironroot.hsm._approvals import shown_target
from ironroot.hsm._audit import (
    ZERO_HASH,
    AuditCheckpoint,
    AuditRecord,
    audit_mac,
    checkpoint_statement,
    parse_audit_log,
    parse_segment_name,
    segment_name,
    segments_from,
    verify_audit,
)
from ironroot.hsm._audit_buffer import NO_IDENTITY
from ironroot.hsm._backup import MigrationAndBackup
from ironroot.hsm._certs import issue_attestation_certificate
from ironroot.hsm._document import KeyRecord, decode_store, zero
from ironroot.hsm._identities import Identities
from ironroot.hsm._material import KeyObject, generate_material
from ironroot.hsm._model import (
    KEY_TYPE_FOR_ALGORITHM,
    MAX_QUORUM,
    DeviceIdentity,
    HsmConfig,
    KeyAttributes,
    Role,
    Session,
    Usage,
    check_name,
)
from ironroot.hsm._selftest import (
    DEFAULT_KATS,
    Kat,
    SelfTestFailure,
    pairwise_consistency,
    run_kats,
)
from ironroot.hsm._state import PendingRecord
from ironroot.hsm._storage import HsmStorage, unseal
from ironroot.hsm._wrap_release import WrapAndRelease
from ironroot.hsm._zeroization import Zeroization

__all__ = ["Hsm"]


def _prior_quorum(records: tuple[AuditRecord, ...]) -> int:
    """The officer quorum the last ``zeroize`` or ``tamper`` record of ``records`` says the
    log was kept under (its key ``quorum-<n>``, ``Zeroization._dual_control_key``); 1 for
    none."""
    for record in reversed(records):
        if record.operation in ("zeroize", "tamper") and record.result == "ok":
            number = (record.key or "").removeprefix("quorum-")
            if record.key != number and number.isdigit() and 2 <= int(number) <= MAX_QUORUM:
                return int(number)
            return 1
    return 1


_CUT_SHORT_INITIALIZE: Final = frozenset({"initialize", "audit-rotate"})
"""The records an ``initialize`` cut short before its anchor leaves after the log it
continues (its own record, and a rotation's)."""


def _check_sealed_log(
    anchor: Anchor | None,
    start: int,
    prev: bytes,
    records: tuple[AuditRecord, ...],
    keyed: tuple[bytes, int] | None,
) -> tuple[AuditRecord, ...]:
    """``AuditChainBroken`` unless the log a new HSM would continue (the live ``records``
    from seq ``start``, ``prev`` the hash before them) is the one a zeroized predecessor's
    ``anchor`` sealed: its first ``anchor.audit_size`` records, the last of which hashes to
    the sealed head. Nothing holds the predecessor's audit key any more, so no MAC shows an
    edit made after the zeroize: the anchor does. With no such anchor, nothing is sealed: the
    log may hold no record before what follows. After those records only an ``initialize``
    cut short before its anchor wrote: its own records (``initialize``, ``audit-rotate``;
    their key went with it), and, from where the store it left starts its records
    (``keyed``: that store's audit key and ``audit.from``), records that verify under its key
    (a refused power-up of it). Returns the sealed records among ``records``."""
    if anchor is None:
        size, sealed_head = 0, ZERO_HASH
        what, after = "the audit log here holds records no zeroized HSM's anchor seals: ", ""
        tail = "; a new HSM does not continue it"
    else:
        size, sealed_head = anchor.audit_size, anchor.audit_head
        what = (
            f"the audit log of the zeroized HSM here is not the one its anchor sealed "
            f"({size} records): "
        )
        after = " after them"
        tail = "; it was edited after the zeroize, and a new HSM does not continue it"
    end = start + len(records)
    if end < size:
        raise AuditChainBroken(f"{what}the log ends at record {end - 1}{tail}")
    if size < start:
        raise AuditChainBroken(f"{what}the live log starts at record {start}{tail}")
    head = prev if size == start else records[size - start - 1].digest()
    if not hmac.compare_digest(head, sealed_head):
        raise AuditChainBroken(f"{what}the log ends at record {size - 1} with another head{tail}")
    for record in records[size - start :]:
        if keyed is not None and record.seq >= keyed[1]:
            written = hmac.compare_digest(record.mac, audit_mac(keyed[0], record.digest()))
        else:
            written = record.operation in _CUT_SHORT_INITIALIZE and record.result == "ok"
        if not written:
            raise AuditChainBroken(
                f"{what}record {record.seq} ({shown_target(record.operation)}){after} was "
                f"written by no HSM initialized here{tail}"
            )
    return records[: size - start]


def _predecessor_log(
    storage: HsmStorage, anchor: Anchor | None, keyed: tuple[bytes, int] | None = None
) -> tuple[int, bytes, tuple[AuditRecord, ...], int]:
    """Where a log a zeroized predecessor left goes on: ``(seq, prev)`` of the live log's
    first record (of the record after the last archived one when the live log is empty;
    ``(0, zero hash)`` when there is no log), the live records, their chain verified, and the
    officer quorum the predecessor's records were kept under (:func:`_prior_quorum`). The
    log must be the one the predecessor's zeroized ``anchor`` sealed, or with none hold only
    what an ``initialize`` cut short wrote (:func:`_check_sealed_log`), and only its sealed
    records say that quorum. A
    segment of records the live log still holds (a rotation the predecessor's crash cut short
    before its commit, then a tamper response) is removed, as power-up would have."""
    records = parse_audit_log(storage.read_audit())
    last = records
    if records:
        start, prev = records[0].seq, records[0].prev
    else:
        start, prev = 0, ZERO_HASH
        spans = [s for n in storage.audit_segments() if (s := parse_segment_name(n))]
        if spans:
            archived = parse_audit_log(storage.read_audit_segment(segment_name(*max(spans))))
            last = archived
            if archived:
                start, prev = archived[-1].seq + 1, archived[-1].digest()
    verify_audit(records, start=start, prev=prev)
    sealed = _check_sealed_log(anchor, start, prev, records, keyed)
    if records:
        for name in segments_from(storage.audit_segments(), start):  # a rotation cut short
            storage.remove_audit_segment(name)  # after its step 2
    last = sealed if records else last
    return start, prev, records, _prior_quorum(last)


def _check_latest_zeroized(anchor: Anchor, counter: object) -> None:
    """``StoreRolledBack`` unless the zeroized ``anchor`` found beside a new ``counter`` (the
    files moved to a counter of their own) is the latest the counter it names vouches for:
    that counter reads the anchor's value, or one less (a zeroize cut short before its
    increment). An older zeroized anchor with its older log, put back, would otherwise be
    continued, every record a later HSM wrote after it gone. An anchor that names no counter
    (written before anchors did, or on a counter without a name), or a counter that cannot
    read a sibling (``DeviceCounter.sibling``; a ``MemoryCounter`` cannot), is not checked:
    nothing says which counter to read."""
    sibling = getattr(counter, "sibling", None)
    if not anchor.rot_counter or not callable(sibling):
        return
    value: int = sibling(anchor.rot_counter).value()
    if anchor.counter < value:
        raise StoreRolledBack(
            f"the zeroized anchor here was committed at {anchor.counter} on the root of "
            f"trust's counter {anchor.rot_counter!r}, which reads {value}: an earlier copy of "
            "a zeroized HSM's files was restored, and a new HSM does not continue its log"
        )
    if anchor.counter > value + 1:
        raise StoreRolledBack(
            f"the zeroized anchor here was committed at {anchor.counter} on the root of "
            f"trust's counter {anchor.rot_counter!r}, which reads {value}: it is ahead of "
            "that counter (another device's counter, or one rolled back), and a new HSM does "
            "not continue its log"
        )


class Hsm(Identities, WrapAndRelease, MigrationAndBackup, Zeroization):
    """The built-in HSM. Create one with :meth:`initialize` or :meth:`open`."""

    @classmethod
    def initialize(
        cls,
        storage: HsmStorage,
        sealing_secret: bytes,
        *,
        officer: str,
        credential: bytes,
        device: DeviceIdentity,
        config: HsmConfig = HsmConfig(),  # noqa: B008
        kats: tuple[Kat, ...] = DEFAULT_KATS,
        pairwise: Callable[[KeyObject], None] = pairwise_consistency,
        clock: Callable[[], float] = time.time,
    ) -> Hsm:
        """A new HSM in ``storage``: its id, its attestation key (certified by ``device``) and
        its first crypto officer. ``Conflict`` if ``storage`` already holds a key store, or
        another HSM object of this process has it open."""
        hsm = cls(storage, sealing_secret, config=config, kats=kats, pairwise=pairwise, clock=clock)
        if hsm._state != "operational":
            return hsm
        hsm._claim_storage()
        try:
            hsm._initialize(storage, officer, credential, device)
        except BaseException:
            hsm._release_storage()
            raise
        return hsm

    def _initialize(
        self, storage: HsmStorage, officer: str, credential: bytes, device: DeviceIdentity
    ) -> None:
        hsm, config = self, self._config
        if storage.read_store() is not None and not hsm._initialize_cut_short(storage):
            raise Conflict("this storage already holds an HSM key store")
        hsm._check_counter_is_free(storage)
        check_name(officer)
        # A log left by a zeroized predecessor is continued (its chain verified, and against
        # the predecessor's zeroized anchor): this HSM's records are keyed from the next
        # index on.
        start, prev, records, prior_quorum = _predecessor_log(
            storage, hsm._zeroized_anchor(storage), hsm._cut_short_audit_key(storage)
        )
        with hsm._lock:
            hsm._prior_quorum = prior_quorum
            hsm._audit_base, hsm._audit_base_head = start, prev
            hsm._audit_size = hsm._audit_from = start + len(records)
            hsm._audit_head = records[-1].digest() if records else prev
            hsm._audit_key = bytearray(secrets.token_bytes(32))
            hsm._generation = storage.counter.value()
            hsm._hsm_id = secrets.token_bytes(16)
            key_type = KEY_TYPE_FOR_ALGORITHM[config.attestation_algorithm]
            stored, obj = generate_material(key_type)
            hsm._check_pair(obj)
            now = hsm._now()
            attestation = KeyRecord(
                "attestation",
                key_type,
                KeyAttributes(frozenset({Usage.SIGN})),
                local=True,
                created=now,
                stored=stored,
                obj=obj,
            )
            if attestation.public_key is None:  # unreachable: signing key types only
                raise UnsupportedAlgorithm("the attestation key must be a signing key")
            certificate = issue_attestation_certificate(
                subject_key=attestation.public_key,
                hsm_id=hsm._hsm_id,
                issuer=device.signer,
                issuer_chain=device.chain,
                now=dt.datetime.fromtimestamp(now, dt.UTC),
            )
            hsm._attestation = attestation
            hsm._chain = (certificate, *device.chain)
            hsm._identities[officer] = hsm._new_identity(officer, Role.OFFICER, credential)
            hsm._pending.append(PendingRecord(now, officer, "initialize", None, "ok"))
            hsm._persist()  # the first commit: store, anchor and the record together

    def _initialize_cut_short(self, storage: HsmStorage) -> bool:
        """Whether the key store in ``storage`` is the first store of an ``initialize`` that
        was cut short (a ``kill -9``, a power cut) before its anchor: no anchor vouches for it,
        on a new counter, or the anchor there is a zeroized predecessor's at the counter's
        value. No HSM ever powered up from it (power-up refuses it: ``StoreRolledBack``), so
        ``initialize`` writes its own over it rather than leave the storage stuck, neither
        opening nor initializing, until someone deletes the store by hand. A store any anchor
        vouches for is never written over."""
        sealed = storage.read_anchor()
        if sealed is None:
            return storage.counter.value() == 0
        try:
            anchor = open_anchor(bytes(self._secret), sealed)
        except SealedStoreError:
            return False
        return anchor.zeroized and anchor.counter == storage.counter.value()

    def _cut_short_audit_key(self, storage: HsmStorage) -> tuple[bytes, int] | None:
        """The audit key and ``audit.from`` of the store an ``initialize`` cut short before
        its anchor left in ``storage`` (``None`` when there is none, or it does not open)."""
        sealed = storage.read_store()
        if sealed is None:
            return None
        try:
            doc = decode_store(unseal(bytes(self._secret), sealed))
        except (SealedStoreError, MalformedInput, KeyError, TypeError, ValueError):
            return None
        for key in doc.keys:
            key.wipe()
        doc.attestation.wipe()
        for ident in doc.identities:
            zero(ident.hash)
        keyed = bytes(doc.audit_key), doc.audit_from
        zero(doc.audit_key)
        return keyed

    def _zeroized_anchor(self, storage: HsmStorage) -> Anchor | None:
        """The anchor a zeroized HSM whose files are here committed last, else ``None``: on
        a counter in use, the one at its value; on a new counter (0: the files moved to a
        counter of their own), whichever is here."""
        in_use = storage.counter.value()
        sealed = storage.read_anchor()
        if sealed is None:
            return None
        try:
            anchor = open_anchor(bytes(self._secret), sealed)
        except SealedStoreError:
            return None
        if not anchor.zeroized or (in_use and anchor.counter != in_use):
            return None
        if not in_use:
            _check_latest_zeroized(anchor, storage.counter)
        return anchor

    def _check_counter_is_free(self, storage: HsmStorage) -> None:
        """``Conflict`` unless the counter is new (0), or was last moved by the zeroized HSM
        whose files are here (its zeroized anchor at the counter's value). Otherwise another
        HSM commits to it: two HSMs on one counter each see it move under them, and the first
        to commit enters its error state and never powers up again (its anchor is then behind
        the counter: a rollback, for all it can tell)."""
        in_use = storage.counter.value()
        if not in_use or self._zeroized_anchor(storage) is not None:
            return
        raise Conflict(
            f"the root of trust's counter {counter_name(storage.counter) or '(unnamed)'} is at "
            f"{in_use} and no zeroized HSM's anchor here accounts for it: another HSM commits "
            "to it; give each HSM a counter of its own (--counter NAME)"
        )

    @classmethod
    def open(
        cls,
        storage: HsmStorage,
        sealing_secret: bytes,
        *,
        config: HsmConfig = HsmConfig(),  # noqa: B008
        kats: tuple[Kat, ...] = DEFAULT_KATS,
        pairwise: Callable[[KeyObject], None] = pairwise_consistency,
        clock: Callable[[], float] = time.time,
    ) -> Hsm:
        """Power up an existing HSM from ``storage``.

        ``NotFound`` if there is no key store, ``SealedStoreError`` if it does not open with
        ``sealing_secret``, ``StoreRolledBack`` if it is not the latest store the root of
        trust's counter vouches for (``_anchor``; the refusal is audited), ``HsmZeroized`` if
        the HSM was zeroized, ``AuditChainBroken`` if the audit log does not verify (chain and
        MACs) or does not reach the head sealed in the anchor. When a KAT fails, the returned
        object is in its error state (and the store was not opened). ``Conflict`` if another
        HSM object of this process has ``storage`` open (:meth:`close` it first).
        """
        hsm = cls(storage, sealing_secret, config=config, kats=kats, pairwise=pairwise, clock=clock)
        if hsm._state != "operational":
            return hsm
        hsm._claim_storage()
        try:
            hsm._power_up(storage)
        except BaseException:
            hsm._release_storage()
            raise
        return hsm

    def _power_up(self, storage: HsmStorage) -> None:
        hsm = self
        secret = bytes(hsm._secret)
        counter = storage.counter.value()
        sealed_anchor = storage.read_anchor()
        anchor = None if sealed_anchor is None else open_anchor(secret, sealed_anchor)
        sealed = storage.read_store()
        if sealed is None:
            if anchor is not None and anchor.zeroized:
                raise HsmZeroized("the HSM was zeroized: no key material is left")
            raise NotFound("this storage holds no HSM key store")
        plaintext = unseal(secret, sealed)
        try:
            doc = decode_store(plaintext)
        except (MalformedInput, KeyError, TypeError, ValueError) as exc:
            raise SealedStoreError("the sealed key store opened but does not parse") from exc
        try:
            pending = check_anchor(
                anchor,
                counter=counter,
                store=doc.generation,
                hsm=doc.hsm_id,
                rot_counter=counter_name(storage.counter),
            )
        except StoreRolledBack as exc:
            hsm._audit_refused_power_up(doc, exc.code)
            raise
        hsm._load_document(doc)
        hsm._resume_audit(anchor, doc)
        with hsm._lock:
            hsm._generation = counter
            if pending and anchor is not None and anchor.counter == counter + 1:
                hsm._advance_counter()  # the last commit wrote its anchor, not its increment
            hsm._time_untimed_lockouts(doc.untimed)  # a store older than timed lockouts
            hsm._record(NO_IDENTITY, "power-up", None, "ok")
            if doc.audit_segment != hsm._audit_segment:  # a new setting, or none sealed yet:
                segment = f"records-{hsm._audit_segment}"  # sealed, so that every opener
                hsm._record(NO_IDENTITY, "audit-segment", segment, "ok")  # rotates at it
                hsm._persist()

    def self_test(self, session: Session) -> None:
        """Run the KATs again; a failure puts the HSM into its error state."""
        with self._lock, self._operation(session, "self-test") as op:
            try:
                run_kats(self._kats)
            except SelfTestFailure as exc:
                self._fail(str(exc), record=(op.identity, "self-test"))
                raise HsmErrorState(
                    "a known-answer test failed: the HSM is in its error state"
                ) from exc

    def audit_records(self, session: Session) -> tuple[AuditRecord, ...]:
        """The records of the live audit log (those since the last rotation; the archived
        segments are files beside it), after writing those waiting in memory (auditor)."""
        with self._lock, self._operation(session, "audit-read"):
            self._sync()
            return parse_audit_log(self._storage.read_audit())

    def prune_audit(self, session: Session, before: int) -> tuple[str, ...]:
        """Remove the archived audit segments holding the records before ``before`` (crypto
        officer: an operator's retention policy); return their names.

        ``before`` must start an archived segment or the live log (segments are removed
        whole; the live log never is): ``MalformedInput`` otherwise. The ``audit-prune``
        record (key ``before-<N>``) is written, synced and anchored first, so the chain then
        states what was removed, and by whom: :func:`verify_audit_segments` accepts a chain
        starting at ``before`` only with it. A crash before the files are gone leaves them
        in place, still verifiable (prune again)."""
        if isinstance(before, bool) or not isinstance(before, int) or before < 1:
            raise MalformedInput("the first record kept is a positive record number")
        with self._lock:
            with self._operation(session, "audit-prune", f"before-{before}", (before,)):
                spans = {
                    span: name
                    for name in self._storage.audit_segments()
                    if (span := parse_segment_name(name)) is not None
                }
                if before > self._audit_base:
                    raise MalformedInput(
                        f"records from {self._audit_base} on are in the live log, which is "
                        f"never pruned: the first record kept is at most {self._audit_base}"
                    )
                starts = sorted({first for first, _last in spans} | {self._audit_base})
                if before not in starts:
                    raise MalformedInput(
                        f"record {before} does not start an archived segment or the live log "
                        f"(segments are pruned whole; they start at {', '.join(map(str, starts))})"
                    )
                doomed = tuple(
                    name for (_first, last), name in sorted(spans.items()) if last < before
                )
                if self._prior_quorum > 1 and any(
                    first < self._audit_from
                    for (first, last), _name in spans.items()
                    if last < before
                ):
                    raise PolicyRejected(
                        f"the archived segments before record {before} hold records of a "
                        "zeroized predecessor that was under dual control (a quorum of "
                        f"{self._prior_quorum}): no officer of this HSM prunes them",
                        code="predecessor-dual-control",
                    )
            self._sync()  # the record is durable and anchored before any file goes
            for name in doomed:
                self._written(functools.partial(self._storage.remove_audit_segment, name))
            return doomed

    def audit_checkpoint(self, session: Session) -> bytes:
        """A Signed Statement of the audit log's ``(size, head)`` (auditor), signed by the
        attestation key: register it on the transparency service to pin the log."""
        with self._lock:
            with self._operation(session, "audit-checkpoint"):
                pass
            self._sync()
            if self._attestation is None or not isinstance(self._attestation.obj, PrivateKey):
                raise HsmErrorState("the HSM has no attestation key")
            checkpoint = AuditCheckpoint(
                self._hsm_id, self._audit_size, self._audit_head, self._now()
            )
            return checkpoint_statement(self._attestation.obj, checkpoint)
