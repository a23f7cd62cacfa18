"""The Code Transparency Service: registration policy + log + receipts.

Receipts are signed once per integrated batch and per receipt algorithm: the log calls
:meth:`_ReceiptBatchSigner.sign_batch` with the new tree size and root inside its integration
transaction, and stores the protected header and signature with the batch. A receipt for any
entry of that batch is then the shared header and signature plus the entry's inclusion proof,
assembled on read. A stored batch signature is checked against the root of the log's own tree
at that size before any receipt is made from it (once per batch); one that does not verify is
never served and never cached (:class:`StorageError`, logged). Checked receipts are cached:
they are immutable.

A batch the running service integrates is checked on the log's writer thread as soon as its
transaction commits (:meth:`ironroot.log.Log.add_commit_listener`), on the bytes and root that
were committed, before its tickets resolve; the registrations waiting on it then find it
checked. The signature check releases the GIL, so it no longer stalls the event loop. A batch
read back from the store (another run's, or one evicted from the cache) is checked on read.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from ironroot._fileio import DirectoryLock, make_dirs, read_limited, write_atomic
from ironroot.cose import (
    InclusionProof,
    build_receipt,
    decode_cbor,
    encode_cbor,
    make_transparent,
    receipt_protected_header,
    receipt_to_be_signed,
)
from ironroot.crypto import PublicKey, Signer, Verifier
from ironroot.errors import (
    ClockSkew,
    ConfigError,
    IronrootError,
    NotFound,
    PolicyRejected,
    StorageError,
    StoreUnavailable,
    VerificationFailed,
)
from ironroot.http import client_context
from ironroot.log import (
    Checkpoint,
    Integrated,
    Log,
    LogStore,
    LogView,
    Note,
    NoteSigner,
    Ticket,
)
from ironroot.log.layout import checkpoint_public_key_path, load_checkpoint_signer
from ironroot.transparency._config import (
    TransparencyConfig,
    load_config,
    load_pq_checkpoint_signer,
    load_receipt_signers,
    lock_data_dir,
    write_missing,
)
from ironroot.transparency._policy import RegistrationPolicy
from ironroot.transparency._receipt_keys import (
    RECEIPT_PREFIX,
    check_receipt_signature,
    publish_receipt_keys,
    receipt_iat,
)
from ironroot.transparency._witnessing import WITNESSED_CHECKPOINT, CheckpointWitnessing

__all__ = ["TransparencyService"]

SIGNED_CHECKPOINT: Final = "signed-checkpoint"
"""The latest checkpoint the log signed, kept outside its database (``Log(high_water=…)``)."""
_CACHE_SIZE: Final = 65536
_MAX_NOTE: Final = 1 << 20
_BATCH_CACHE_SIZE: Final = 4096

_log = logging.getLogger("ironroot.transparency")

_DATABASE_TIME: Final = (
    "the database server's (as last read, carried forward by the monotonic clock)"
)
_OWN_TIME: Final = (
    "its own time when the service started, carried forward by the boot-time clock: the "
    "wall clock was stepped since (restart the service to take its time as it is now)"
)


class _ReceiptBatchSigner:
    """Signs one receipt root per batch and per algorithm (called by the log's writer).

    The receipts' ``iat`` never goes back: it is the clock's time, or :attr:`floor` (the
    latest ``iat`` stored for the log, then the latest signed here) when the clock is behind
    it, as after a failover to a replica whose clock is late (a warning names the skew once it
    exceeds a second). When the floor is more than ``max_skew`` seconds ahead of the clock (a
    predecessor's clock ran far ahead, or this clock was stepped far back), signing the floor
    would hold every receipt's time at one far from now: it raises :class:`ClockSkew`
    instead, so the log integrates nothing (its entries stay pending, durable) until the clock
    catches up (an error names the skew once, and the resumption is logged). Unless the
    floor is ``reset_from``, the time the operator named as wrong
    (``reset_receipt_time_from``): then the clock's time is signed, going back (said at
    error level), and becomes the floor.

    ``reference`` is the time the clock should read now, and ``reference_is`` says what it
    is, for the refusal's message: the database server's for a replica, or, for a service on
    its own, the clock's own time at open carried forward (:func:`_unstepped`), so that a
    clock stepped forward signs no receipt time far ahead either."""

    def __init__(
        self,
        signers: Sequence[Signer],
        issuer: str,
        clock: Callable[[], datetime],
        max_skew: float,
        reference: Callable[[], float | None] | None = None,
        reset_from: int | None = None,
        reference_is: str = _DATABASE_TIME,
    ) -> None:
        self._signers = tuple(signers)
        self._issuer = issuer
        self._clock = clock
        self._max_skew = max_skew
        self._reference = reference
        self._reference_is = reference_is
        self._reset_from = reset_from
        self.refusal: ClockSkew | None = None
        """Why this signer refuses to sign now (its clock too far behind the floor), if it does."""
        self.last_size: int | None = None
        self.listeners: list[Callable[[int], None]] = []
        self.floor: int | None = None
        """The latest ``iat`` stored for the log (set at open) or signed since."""
        self._behind = False

    def _refuse(self, detail: str) -> ClockSkew:
        refusal = ClockSkew(detail)
        if self.refusal is None:
            _log.error("%s", refusal.detail)
        self.refusal = refusal
        return refusal

    def _iat(self) -> int:
        now = self._clock().timestamp()
        floor = self.floor
        expected = self._reference() if self._reference is not None else None
        if expected is not None and abs(now - expected) > self._max_skew:
            raise self._refuse(
                f"this sequencer's clock is {abs(now - expected):.1f} s "
                f"{'ahead of' if now > expected else 'behind'} {self._reference_is}, more than "
                f"max_clock_skew ({self._max_skew:g} s): no receipt is signed (entries stay "
                "pending) until the clocks agree"
            )
        if floor is not None and floor - now > self._max_skew and floor == self._reset_from:
            _log.error(
                "receipt times go back: the latest receipt time of the log (iat %d) is %.1f s "
                "ahead of this sequencer's clock, and transparency.reset_receipt_time_from "
                "names it as wrong: receipts are signed with this clock's time from iat %d on; "
                "remove the setting",
                floor,
                floor - now,
                int(now),
            )
            floor = None
        if floor is not None and floor - now > self._max_skew:
            raise self._refuse(
                f"the latest receipt time of the log (iat {floor}) is {floor - now:.1f} s ahead "
                f"of this sequencer's clock, more than max_clock_skew ({self._max_skew:g} s): "
                "no receipt is signed (entries stay pending) until the clocks agree"
            )
        if self.refusal is not None:
            self.refusal = None
            if floor is None:
                _log.warning(
                    "this sequencer's clock is within max_clock_skew of the database server's "
                    "again: integration resumes"
                )
            else:
                _log.warning(
                    "this sequencer's clock is within max_clock_skew of the latest receipt "
                    "time again (iat %d): integration resumes",
                    floor,
                )
        behind = floor is not None and now < floor - 1
        if behind and not self._behind and floor is not None:
            _log.warning(
                "this sequencer's clock is %.1f s behind the latest receipt time stored "
                "for the log (iat %d): receipts carry iat %d until the clock catches up",
                floor - now,
                floor,
                floor,
            )
        self._behind = behind
        self.floor = iat = int(now) if floor is None else max(int(now), floor)
        return iat

    def sign_batch(self, tree_size: int, root: bytes) -> Mapping[str, bytes]:
        iat = self._iat()  # first: a batch refused for the clock is not counted
        if self.last_size is not None and tree_size > self.last_size:
            for listener in self.listeners:
                listener(tree_size - self.last_size)
        self.last_size = tree_size
        out: dict[str, bytes] = {}
        for signer in self._signers:
            protected = receipt_protected_header(signer.algorithm, signer.kid, self._issuer, iat)
            signature = signer.sign(receipt_to_be_signed(protected, root))
            out[RECEIPT_PREFIX + signer.algorithm.label] = encode_cbor([protected, signature])
        return out


def _unstepped(clock: Callable[[], datetime]) -> Callable[[], float]:
    """What ``clock`` should read now if nobody stepped it: its time now, carried forward by
    ``CLOCK_BOOTTIME`` (Linux; ``CLOCK_MONOTONIC`` elsewhere). The boot-time clock follows
    NTP's slewing as the wall clock does and counts a suspended machine's sleep, but no step
    of the wall clock moves it: the two part only when the wall clock is set."""
    boottime: int | None = getattr(time, "CLOCK_BOOTTIME", None)

    def steady() -> float:
        return time.monotonic() if boottime is None else time.clock_gettime(boottime)

    start, since = clock().timestamp(), steady()

    def expected() -> float:
        return start + (steady() - since)

    return expected


def _public(verifier: object) -> PublicKey:
    if not isinstance(verifier, PublicKey):
        raise ConfigError("a service signer must expose its public key (ironroot.crypto.PublicKey)")
    return verifier


def _seed_signed_checkpoint(data_dir: Path, origin: str) -> None:
    """Raise ``signed-checkpoint`` (the floor the log starts from, ``Log(high_water=…)``) to
    the witnessed checkpoint, kept outside the database too, when that one is larger or the
    record is missing (a data directory written before it existed, or the record restored
    with the database from one backup while the witnessed checkpoint published since
    stayed). One that is no checkpoint of ``origin`` is left out (the witnessing logs it);
    a record that cannot be read is left for the log to refuse."""
    record = data_dir / SIGNED_CHECKPOINT
    witnessed = data_dir / WITNESSED_CHECKPOINT
    if not witnessed.is_file():
        return
    try:
        note = read_limited(witnessed, _MAX_NOTE, regular=True)
        checkpoint = Checkpoint.parse(Note.parse(note).body)
    except (OSError, IronrootError) as exc:
        _log.warning("%s is not taken as the latest checkpoint signed: %s", witnessed, exc)
        return
    if checkpoint.origin != origin:
        return
    if record.exists():
        try:
            recorded = Checkpoint.parse(Note.parse(read_limited(record, _MAX_NOTE)).body)
        except (OSError, IronrootError):
            return  # the log says why it cannot start
        if recorded.origin != origin or recorded.size >= checkpoint.size:
            return
    was = "behind it" if record.exists() else "missing"
    write_atomic(record, note, mode=0o644)
    _log.warning(
        "recorded the witnessed checkpoint at size %d as the latest signed (%s was %s)",
        checkpoint.size,
        record,
        was,
    )


def _publish_checkpoint_key(data_dir: Path, signer: NoteSigner) -> None:
    """Keep ``keys/checkpoint.pub.pem`` current, so `ironroot log verify DIR` works even when
    the private key lives in an HSM."""
    path = checkpoint_public_key_path(data_dir)
    pem = signer.verifier().public_key.to_pem()
    if path.exists():
        if path.read_bytes() == pem:
            return
        _log.warning("%s did not hold the checkpoint key's public half: rewritten", path)
    make_dirs(path.parent)
    write_atomic(path, pem, mode=0o644)


class TransparencyService:
    """One service instance over one data directory. Thread-safe; start() before use."""

    def __init__(
        self,
        config: TransparencyConfig,
        log: LogView,
        receipt_keys: Sequence[PublicKey],
        checkpoint_vkeys: Sequence[str],
        clock: Callable[[], datetime],
        known_receipt_keys: Mapping[bytes, Verifier] | None = None,
        batch_signer: _ReceiptBatchSigner | None = None,
    ) -> None:
        self.config = config
        self.log = log
        """The log's reads; the sequencer's :class:`Log` itself, or a follower's view."""
        self._writer = log if isinstance(log, Log) else None
        self.policy = RegistrationPolicy(config)
        self.receipt_keys: tuple[PublicKey, ...] = tuple(receipt_keys)
        self._labels: tuple[str, ...] = tuple(
            RECEIPT_PREFIX + k.algorithm.label for k in self.receipt_keys
        )
        self.checkpoint_vkeys = tuple(checkpoint_vkeys)
        self._clock = clock
        # Every key a stored batch signature may name: the current ones and those published
        # in keys/receipt-keys.cbor by earlier configurations.
        self._receipt_verifiers: dict[bytes, Verifier] = dict(known_receipt_keys or {})
        for key in self.receipt_keys:
            self._receipt_verifiers.setdefault(key.kid, key)
        self._cache: OrderedDict[bytes, tuple[bytes, ...]] = OrderedDict()
        self._batches: OrderedDict[int, tuple[tuple[bytes, bytes], ...]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._batch_signer = batch_signer
        self._lock: DirectoryLock | None = None
        if batch_signer is not None:
            batch_signer.last_size = log.tree_size
        if self._writer is not None:
            self._writer.add_commit_listener(self._batch_committed)
        self.witnessing: CheckpointWitnessing | None = None
        """With witnesses configured, what gets checkpoints cosigned before publication."""
        self.sequencer_clock: Callable[[], ClockSkew | None] | None = None
        """In a follower, what says why the log's sequencer signs nothing now (an HTTP
        worker: its sequencer's notices; a replica: its clock checks), for
        :attr:`clock_refusal`."""
        self.sequencer_integration: Callable[[], StorageError | None] | None = None
        """In an HTTP worker, what says why the log's sequencer integrates nothing now (its
        notices), for :attr:`integration_stalled`."""
        if config.witness_quorum:
            verify: ssl.SSLContext | bool = True
            if config.witness_ca is not None:
                verify = client_context(config.witness_ca)
            self.witnessing = CheckpointWitnessing(
                log,
                config.witnesses,
                config.witness_quorum,
                data_dir=config.data_dir,
                timeout=config.witness_timeout,
                verify=verify,
                # a quorum of witnesses ahead of the log holds it as rolled back (docs)
                refuse=None if self._writer is None else self._writer.refuse_writes,
            )

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        clock: Callable[[], datetime] | None = None,
        init: bool = True,
        receipt_signers: Sequence[Signer] | None = None,
        checkpoint_signers: Sequence[Signer] | None = None,
        watch_steps: bool | None = None,
    ) -> TransparencyService:
        """Open (creating on first use) the service in ``data_dir``; call :meth:`start` next.

        By default the service keys are the PEM files under ``keys/``. A deployment that keeps
        them in an HSM passes the signers (one receipt signer per configured receipt algorithm,
        in order; the Ed25519 checkpoint signer first, then any ML-DSA-44 cosigner).

        One service at a time holds a data directory (``<data>/.lock``, released by
        :meth:`close` or the process's end): opening it again, from this process or another,
        raises :class:`~ironroot.errors.InUse` rather than let two writers fork one log.
        Once it holds the lock, the temporary files a write killed midway left in the
        directory and its ``keys/`` are deleted (:func:`lock_data_dir`), and only then, with
        ``init``, are the missing configuration and keys made (:func:`write_missing`): a start
        racing another first start never replaces a key the other one signs with.

        With ``watch_steps`` (the default with the real clock, ``clock`` None), a batch is
        signed only while the clock is within ``max_clock_skew`` of its time at open carried
        forward (:func:`_unstepped`): a wall clock stepped forward mid-run signs no receipt
        time far ahead (:class:`ClockSkew`; entries stay pending until the clock is set back
        or the service restarts).
        """
        if init:
            make_dirs(Path(data_dir))
        elif not Path(data_dir).is_dir():
            raise ConfigError(f"{data_dir} is not a data directory")
        lock = lock_data_dir(Path(data_dir))
        try:
            if init:
                write_missing(Path(data_dir))
            service = cls._open_locked(
                data_dir,
                clock=clock,
                receipt_signers=receipt_signers,
                checkpoint_signers=checkpoint_signers,
                watch_steps=clock is None if watch_steps is None else watch_steps,
            )
        except BaseException:
            lock.close()
            raise
        service._lock = lock
        return service

    @classmethod
    def open_on_store(
        cls,
        data_dir: Path,
        store: LogStore,
        *,
        receipt_signers: Sequence[Signer] | None = None,
        checkpoint_signers: Sequence[Signer] | None = None,
        clock: Callable[[], datetime] | None = None,
        clock_reference: Callable[[], float | None] | None = None,
    ) -> TransparencyService:
        """The sequencing service of ``data_dir``'s configuration over ``store``, which the
        caller opened (an elected replica's fenced PostgreSQL store, ADR 0009); it takes no
        data directory lock (the caller holds it) and closes ``store`` when it fails to open
        and on :meth:`close`. ``clock`` as for :meth:`open`. ``clock_reference`` gives the
        time ``clock`` should read now (seconds since the epoch; the database server's, as a
        replica last read it, carried forward), or ``None`` when unknown: a batch is signed
        only while ``clock`` is within ``max_clock_skew`` of it (:class:`ClockSkew`), so a
        clock that leaps between two of the replica's checks signs no time far off."""
        try:
            return cls._open_locked(
                data_dir,
                clock=clock,
                receipt_signers=receipt_signers,
                checkpoint_signers=checkpoint_signers,
                store=store,
                clock_reference=clock_reference,
            )
        except BaseException:
            store.close()  # closing twice is harmless
            raise

    @classmethod
    def _open_locked(
        cls,
        data_dir: Path,
        *,
        clock: Callable[[], datetime] | None,
        receipt_signers: Sequence[Signer] | None,
        checkpoint_signers: Sequence[Signer] | None,
        store: LogStore | None = None,
        clock_reference: Callable[[], float | None] | None = None,
        watch_steps: bool = False,
    ) -> TransparencyService:
        config = load_config(data_dir)
        now = clock or (lambda: datetime.now(UTC))
        reference_is = _DATABASE_TIME
        if watch_steps and clock_reference is None:
            clock_reference, reference_is = _unstepped(now), _OWN_TIME
        if receipt_signers is None:
            receipt_signers = load_receipt_signers(config)
        if [s.algorithm for s in receipt_signers] != list(config.receipt_algorithms):
            raise ConfigError("the receipt signers do not match receipt_algorithms, in order")
        if checkpoint_signers is None:
            note_signers = [load_checkpoint_signer(data_dir, config.origin)]
            pq = load_pq_checkpoint_signer(config)
            if pq is not None:
                note_signers.append(NoteSigner(config.origin, pq))
        else:
            note_signers = [NoteSigner(config.origin, s) for s in checkpoint_signers]
        _publish_checkpoint_key(data_dir, note_signers[0])
        known = publish_receipt_keys(data_dir, [_public(s.verifier()) for s in receipt_signers])
        batch_signer = _ReceiptBatchSigner(
            receipt_signers,
            config.service_issuer,
            now,
            config.max_clock_skew,
            clock_reference,
            config.reset_receipt_time_from,
            reference_is,
        )
        _seed_signed_checkpoint(Path(data_dir), config.origin)
        if store is None:
            store = config.store.open(data_dir)  # SQLite in data_dir, or [log] store's database
        try:
            log = Log(
                store,
                origin=config.origin,
                note_signers=note_signers,
                batch_signer=batch_signer,
                max_batch=config.max_batch,
                linger=config.batch_linger,
                fill=config.batch_fill,
                # outside the database: a restored older copy signs no fork (docs)
                high_water=Path(data_dir) / SIGNED_CHECKPOINT,
            )
        except BaseException:
            store.close()
            raise
        vkeys = [n.verifier().vkey for n in note_signers]
        service = cls(
            config,
            log,
            [_public(s.verifier()) for s in receipt_signers],
            vkeys,
            now,
            known_receipt_keys=known,
            batch_signer=batch_signer,
        )
        try:
            batch_signer.floor = floor = service.latest_receipt_time()
        except BaseException:
            log.close()
            raise
        reset = config.reset_receipt_time_from
        if reset is not None and reset != floor:
            _log.warning(
                "transparency.reset_receipt_time_from (%d) is not the latest receipt time of "
                "the log (%s): it has no effect; remove it",
                reset,
                "none yet" if floor is None else f"iat {floor}",
            )
        return service

    @classmethod
    def open_follower(
        cls,
        data_dir: Path,
        receipt_keys: Sequence[PublicKey],
        checkpoint_vkeys: Sequence[str],
        known_receipt_keys: Mapping[bytes, Verifier],
    ) -> TransparencyService:
        """The read side of a service whose log another process writes (an HTTP worker of
        ``ironroot serve --workers``): it checks statements against the registration policy
        and serves receipts, checkpoints and tiles from the store, and never writes (SQLite is
        opened read-only; PostgreSQL through its pool, for reads only)."""
        config = load_config(data_dir)
        store = config.store.open(data_dir, read_only=config.store.kind == "sqlite")
        try:
            log = LogView(store, origin=config.origin)
        except BaseException:
            store.close()
            raise
        return cls(
            config,
            log,
            receipt_keys,
            checkpoint_vkeys,
            lambda: datetime.now(UTC),
            known_receipt_keys=known_receipt_keys,
        )

    def known_receipt_keys(self) -> dict[bytes, PublicKey]:
        """Every public receipt key a stored batch may name (current and earlier), by kid."""
        return {k: v for k, v in self._receipt_verifiers.items() if isinstance(v, PublicKey)}

    def check(self, statement: bytes) -> bytes:
        """Check ``statement`` against the registration policy and, unless
        ``outside_validity = "accept"``, its own CWT ``exp``/``nbf`` at the same ``now`` (the
        receipt's time is never earlier: ``exp`` has no leeway; ``nbf`` may be
        ``max_clock_skew`` ahead, the issuer's clock ahead of this one): ``PolicyRejected``
        ``statement-expired`` / ``statement-not-yet-valid``; a non-integer one is
        ``MalformedStatement`` in either mode. Returns its log entry."""
        now = self._clock()
        parsed = self.policy.check(statement, now)
        if self.config.outside_validity == "accept":
            parsed.validity  # noqa: B018  # raises MalformedStatement for a non-integer exp or nbf
        else:
            try:
                parsed.check_validity(now, leeway=self.config.max_clock_skew)
            except VerificationFailed as exc:
                raise PolicyRejected(
                    f"Signed Statement not accepted by the current Registration Policy: "
                    f"{exc.detail}",
                    code=exc.code,
                ) from exc
        return parsed.log_entry()

    def add_batch_listener(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(entries)`` for every batch integrated from now on (metrics)."""
        if self._batch_signer is not None:
            self._batch_signer.listeners.append(listener)

    @property
    def writer(self) -> Log:
        """The log's sequencer; :class:`StorageError` in a follower, which never writes."""
        if self._writer is None:
            raise StorageError("this process reads the log; another process writes it")
        return self._writer

    @property
    def clock_refusal(self) -> ClockSkew | None:
        """Why this sequencer signs nothing now (its clock more than ``max_clock_skew`` behind
        the latest stored receipt time), ``None`` while it signs: until its next batch is
        signed, which clears it. In a follower, what :attr:`sequencer_clock` says (``None``
        without one)."""
        if self._batch_signer is not None:
            return self._batch_signer.refusal
        return None if self.sequencer_clock is None else self.sequencer_clock()

    @property
    def integration_stalled(self) -> StorageError | None:
        """Why this sequencer integrates nothing now, other than its clock
        (:attr:`clock_refusal`): its last integration failed (a signer or the store down, a
        pending page it cannot read) and it retries; ``None`` once one succeeds. In a
        follower, what :attr:`sequencer_integration` says (``None`` without one)."""
        if self._writer is None:
            return None if self.sequencer_integration is None else self.sequencer_integration()
        stalled = self._writer.stalled
        if stalled is None or isinstance(stalled, ClockSkew):
            return None
        return StorageError(
            f"the log integrates nothing: {stalled.detail}; registered entries stay pending "
            "(durable) while the sequencer retries",
            code="integration-stalled",
        )

    @property
    def in_flight(self) -> int:
        """Entries submitted here and not yet integrated (none in a follower)."""
        return 0 if self._writer is None else self._writer.in_flight

    def start(self) -> None:
        """Start the log's writer (and the witnessing). With witnesses configured, first ask
        them what they cosigned of this log, once, all at once (done when their answers
        decide it, at the latest ``witness_timeout`` later): when the quorum cosigned a tree
        the log does not extend (the whole data directory restored from an older copy), the
        log writes nothing (``store-rolled-back``, ``CheckpointWitnessing.check_witnesses``)."""
        if self._batch_signer is None:  # a follower: nothing to run
            return
        if self.witnessing is not None:
            self.witnessing.check_witnesses()
        self.writer.start()
        if self.witnessing is not None:
            self.witnessing.start()

    def serving(self, data_dir: Path, *, host: str, port: int, tls: bool) -> str:
        """The start-up line's first part (one process or workers): where the service answers
        and which log it serves."""
        return (
            f"transparency service on {'https' if tls else 'http'}://{host}:{port}: "
            f"data {data_dir} (log in {self.config.store.describe(data_dir)}, "
            f"tree size {self.log.tree_size})"
        )

    def published_checkpoint(self) -> bytes:
        """The checkpoint ``GET /checkpoint`` serves: the log's latest, or, with witnesses
        configured, the latest one a quorum of them cosigned (:class:`StorageError` before
        the first; :class:`StoreUnavailable` ``store-rolled-back`` once the quorum said that
        the log does not extend what they cosigned)."""
        if self.witnessing is None:
            return self.log.checkpoint()
        refused = self.witnessing.refused
        if refused is not None:  # what was published is not what this log extends
            raise StoreUnavailable(refused, code="store-rolled-back")
        note = self.witnessing.published()
        if note is None:
            policy = self.witnessing.policy
            raise StorageError(
                f"no checkpoint has been cosigned by {policy.quorum} of the "
                f"{len(policy.witnesses)} witnesses yet; retry shortly"
            )
        return note

    def close(self) -> None:
        try:
            if self.witnessing is not None:
                self.witnessing.close()
            self.log.close()
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    def __enter__(self) -> TransparencyService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- registration -----------------------------------------------------------------------

    def submit(self, statement: bytes) -> Ticket:
        """Check the registration policy, then hand the log entry to the log (not yet durable:
        wait on ``ticket.durable`` before acknowledging)."""
        return self.writer.submit(self.check(statement))

    def status(self, entry_id: bytes) -> Integrated | None:
        """``None`` while pending; raises ``NotFound`` for an unknown id."""
        return self.log.status(entry_id)

    # --- receipts ---------------------------------------------------------------------------

    def receipts(
        self, entry_id: bytes, integrated: Integrated | None = None
    ) -> tuple[bytes, ...] | None:
        """Every receipt of an entry (one per receipt algorithm), ``None`` while pending.

        ``integrated`` is where the entry landed when the caller already knows it (saves a
        look-up on the registration path)."""
        with self._cache_lock:
            cached = self._cache.get(entry_id)
            if cached is not None:
                self._cache.move_to_end(entry_id)
                return cached
        if integrated is None:
            integrated = self.log.status(entry_id)
        if integrated is None:
            return None
        receipts = self._build_receipts(integrated)
        with self._cache_lock:
            self._cache[entry_id] = receipts
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return receipts

    def remember_receipts(self, entry_id: bytes, receipts: Sequence[bytes]) -> None:
        """Keep the receipts of an integrated entry that the process writing this service's
        log built from a batch it checked (the sequencer of ``ironroot serve --workers``,
        for its HTTP workers), so that :meth:`receipts` answers from memory."""
        if len(entry_id) != 32 or not receipts:
            return
        with self._cache_lock:
            self._cache[entry_id] = tuple(receipts)
            self._cache.move_to_end(entry_id)
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)

    def _batch_signatures(self, tree_size: int) -> tuple[tuple[bytes, bytes], ...]:
        """The batch's checked ``(protected, signature)`` pairs, primary algorithm first."""
        with self._cache_lock:
            cached = self._batches.get(tree_size)
            if cached is not None:
                self._batches.move_to_end(tree_size)
                return cached
        checked = self._check_batch(
            tree_size, self.log.root(tree_size), self.log.batch_data(tree_size)
        )
        self._remember_batch(tree_size, checked)
        return checked

    def _batch_committed(self, tree_size: int, root: bytes, batch: Mapping[str, bytes]) -> None:
        """The log's commit listener: check the batch just committed and cache it checked (a
        failure is logged here and answered 503 on read, where the stored bytes are checked
        again)."""
        try:
            checked = self._check_batch(tree_size, root, batch)
        except StorageError:
            return
        self._remember_batch(tree_size, checked)

    def _remember_batch(self, tree_size: int, checked: tuple[tuple[bytes, bytes], ...]) -> None:
        with self._cache_lock:
            self._batches[tree_size] = checked
            self._batches.move_to_end(tree_size)
            if len(self._batches) > _BATCH_CACHE_SIZE:
                self._batches.popitem(last=False)

    def _check_batch(
        self, tree_size: int, root: bytes, batch: Mapping[str, bytes]
    ) -> tuple[tuple[bytes, bytes], ...]:
        """Every receipt signature of a batch checked against ``root``, primary first; a
        missing or failing one is logged and raises :class:`StorageError`."""
        # Configured algorithms first (the primary receipt leads), then any a batch was signed
        # with under an earlier configuration.
        labels = [k for k in self._labels if k in batch]
        labels += sorted(k for k in batch if k.startswith(RECEIPT_PREFIX) and k not in labels)
        if not labels:
            raise StorageError(f"no receipt signature stored for tree size {tree_size}")
        pairs = []
        for label in labels:
            try:
                pairs.append(
                    check_receipt_signature(label, batch[label], root, self._receipt_verifiers)
                )
            except IronrootError as exc:
                _log.error(
                    "the stored receipt signature %s for tree size %d does not verify (%s): "
                    "no receipt is served from it",
                    label,
                    tree_size,
                    exc.detail,
                )
                raise StorageError(
                    f"the stored receipt signature {label} for tree size {tree_size} does not "
                    "verify"
                ) from exc
        return tuple(pairs)

    def latest_receipt_time(self) -> int | None:
        """The latest ``iat`` of the stored log's receipts (those of its latest batch, checked
        against its root first): ``None`` for an empty log, or one whose latest batch holds
        no receipt time. A batch whose signatures do not verify now (logged by the check: its
        key lost, a damaged row) still gives its stored times: receipts may have been handed
        out with them while it verified, and taken for "no receipt" it left the sequencer with
        no floor. A store that cannot be read raises (:class:`StoreUnavailable`), for the
        same reason."""
        size = self.log.tree_size
        if size == 0:
            return None
        try:
            headers = [protected for protected, _ in self._batch_signatures(size)]
        except StoreUnavailable:
            raise
        except StorageError:
            headers = self._stored_headers(size)
        times = []
        for protected in headers:
            try:
                iat = receipt_iat(protected)
            except IronrootError:
                continue
            if iat is not None and iat >= 0:
                times.append(iat)
        return max(times, default=None)

    def _stored_headers(self, tree_size: int) -> list[bytes]:
        """The protected headers of the batch's stored receipt signatures, unchecked."""
        headers = []
        for label, value in self.log.batch_data(tree_size).items():
            if not label.startswith(RECEIPT_PREFIX):
                continue
            try:
                item = decode_cbor(value)
            except IronrootError:
                continue
            if isinstance(item, list) and len(item) == 2 and isinstance(item[0], bytes):
                headers.append(item[0])
        return headers

    def _build_receipts(self, integrated: Integrated) -> tuple[bytes, ...]:
        pairs = self._batch_signatures(integrated.tree_size)
        path = tuple(self.log.inclusion_proof(integrated.index, integrated.tree_size))
        proof = InclusionProof(integrated.tree_size, integrated.index, path)
        return tuple(build_receipt(protected, signature, proof) for protected, signature in pairs)

    def transparent_statement(self, entry_id: bytes) -> bytes:
        """The registered statement with all its receipts in unprotected header 394."""
        receipts = self.receipts(entry_id)
        if receipts is None:
            raise NotFound("the entry is not integrated yet")
        integrated = self.log.status(entry_id)
        assert integrated is not None
        return make_transparent(self.log.entry(integrated.index), receipts)
