"""Several hosts: ``ironroot serve --replica``, any number of replicas over one PostgreSQL log.

Every replica serves the whole HTTP API. Registration never needs the sequencer: a replica
checks the statement (parse, policy, signature) and makes its entry durable itself, as a
pending row in the shared store (:meth:`PostgresLogStore.add_pending`, one committed
transaction). Only then is the entry acknowledged: ``201`` with its receipt once it is
integrated within ``registration_wait``, else ``303`` to ``/entries/{id}`` (pending: it will be
integrated by whichever replica sequences, now or after a failover). Every replica then waits
for integration by polling the store for the entries its requests wait on (one batched
look-up every :data:`POLL` seconds while any request waits) and serves receipts, checkpoints,
proofs and tiles from the store like an HTTP worker (:meth:`TransparencyService.open_follower`).

Exactly one replica sequences at a time (ADR 0009). Each replica runs an elector thread: a
:class:`~ironroot.log.SequencerLease` on a dedicated session; the winner opens a store fenced
with its epoch (:meth:`PostgresLogStore.fence_with_lease`, its sessions named after the lease
holder) and the sequencing service over it (:meth:`TransparencyService.open_on_store`), then
loops: hand the oldest pending rows to its :class:`~ironroot.log.Log` (which integrates every
pending row, signs the checkpoint and the receipts' batch signature, and commits them in one
fenced transaction), renew the lease every third of its length. A renewal that fails, or one
not done within the lease, makes it stop sequencing at once (close its log) and stand again.
A replica killed with ``kill -9`` loses its lock with its session, so another takes over
within a third of a lease; a paused one keeps its session, so a candidate waits for its lease
to expire, then ends its sessions and bumps the epoch: when the paused process resumes, its
renewal fails and its next write is refused by the fence (:class:`~ironroot.errors.StaleBatch`).

Failure contract: an entry acknowledged by any replica is committed in the shared store, so
it survives the crash of that replica and of the sequencer; the fence (epoch and stored tree
size) means no two sequencers ever both extend the same tree, so there is no fork. While the
database is unreachable, registration and reads answer 503 with ``Retry-After``
(:class:`~ironroot.errors.StoreUnavailable`), and everything resumes when it returns. A
database that refuses the election for good (the role lacks a privilege, the schema is not
there: :class:`~ironroot.errors.ConfigError` with code ``store-privilege``; a connection it
refuses, code ``store-refused``: an unknown role or database, a wrong password) stops the replica,
which ``ironroot serve`` reports and exits 2 on, rather than stand again for ever.

A replica whose clock is more than ``max_clock_skew`` from the database server's (the one
clock the replicas share) does not stand for election, and a sequencer whose clock leaves that
bound steps down: a sequencer's clock far ahead would hold every later receipt's ``iat`` at
its time (receipt times never go back), one far behind would stop integration
(:class:`~ironroot.errors.ClockSkew`). Between two checks, each batch the sequencer signs is
held to the database's time as last read, carried forward by the monotonic clock, so a wall
clock that leaps in between signs nothing far off (``ClockSkew``, entries stay pending).
A replica whose clock is that far off also accepts no registration (``ClockSkew``: the
statement's certificates would be checked at a wrong time) and its ``GET /ready`` fails its
``clock`` check; so does every replica's while the latest receipt time stored for the log is
more than ``max_clock_skew`` ahead of the database server's time (no replica whose clock
agrees with the database's signs anything then) or while its own sequencing service refuses.

All replicas of one service need the same configuration (origin, policy, receipt algorithms)
and the same service keys, each in its own data directory (or the same HSM keys).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from starlette.applications import Starlette

from ironroot.crypto import PublicKey, Signer
from ironroot.errors import (
    ClockSkew,
    ConfigError,
    IronrootError,
    Overloaded,
    StoreUnavailable,
)
from ironroot.http import ServerTls, run_server, server_config
from ironroot.log import (
    Integrated,
    LogReader,
    NoteSigner,
    NoteVerifier,
    PostgresLogStore,
    SequencerLease,
    open_checkpoint,
    unfit_pending,
)
from ironroot.log.layout import load_checkpoint_signer
from ironroot.transparency._app import create_app
from ironroot.transparency._config import (
    TransparencyConfig,
    load_config,
    load_pq_checkpoint_signer,
    load_receipt_signers,
    lock_data_dir,
)
from ironroot.transparency._receipt_keys import publish_receipt_keys
from ironroot.transparency._registrar import Registration
from ironroot.transparency._service import (
    TransparencyService,
    _publish_checkpoint_key,
)

__all__ = ["POLL", "Replica", "ReplicaRegistrar", "serve_replica"]

POLL: Final = 0.05
"""Seconds between two look-ups of the entries that requests wait on, and between two looks
at the pending rows by the sequencer when there were none."""
_OPEN_TIMEOUT: Final = 60.0  # seconds a new replica waits for the log's first checkpoint

_log = logging.getLogger("ironroot.transparency.replica")


class _Waits:
    """Requests waiting for their entries' integration, answered by one polling thread."""

    def __init__(self, store: PostgresLogStore, limit: int) -> None:
        self._store = store
        self._limit = limit
        self._lock = threading.Lock()
        self._waiting: dict[bytes, list[concurrent.futures.Future[Integrated]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ironroot-replica-waits")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def wait(self, entry_id: bytes) -> concurrent.futures.Future[Integrated]:
        future: concurrent.futures.Future[Integrated] = concurrent.futures.Future()
        with self._lock:
            if sum(map(len, self._waiting.values())) >= self._limit:
                raise Overloaded("too many registrations are waiting for integration; retry")
            self._waiting.setdefault(entry_id, []).append(future)
        return future

    def forget(self, entry_id: bytes, future: concurrent.futures.Future[Integrated]) -> None:
        with self._lock:
            futures = self._waiting.get(entry_id)
            if futures is not None and future in futures:
                futures.remove(future)
                if not futures:
                    del self._waiting[entry_id]

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            with self._lock:
                ids = list(self._waiting)
            if not ids:
                continue
            try:
                found = self._store.lookup(ids)
                done = {}
                for entry_id, index in found.items():
                    if index is not None:
                        size = self._store.batch_size_of(index)
                        if size is not None:
                            done[entry_id] = Integrated(index, size)
            except IronrootError as exc:  # the store is away: the requests time out to 303
                _log.debug("cannot look up waiting entries: %s", exc)
                continue
            with self._lock:
                ready = [(self._waiting.pop(i, []), where) for i, where in done.items()]
            for futures, where in ready:
                for future in futures:
                    if not future.done():
                        future.set_result(where)


class ReplicaRegistrar:
    """Registration on a replica: check here, make the entry durable as a pending row of the
    shared store, wait (up to ``wait``) for whichever replica sequences to integrate it.
    A new entry is refused (:class:`Overloaded`) while ``max_pending`` entries are pending in
    the store already; any (:class:`ClockSkew`) while ``clock_off()`` says this host's clock
    is off: the policy would check the statement's certificates at a wrong time."""

    def __init__(
        self,
        service: TransparencyService,
        store: PostgresLogStore,
        waits: _Waits,
        clock_off: Callable[[], ClockSkew | None] = lambda: None,
    ):
        self._service = service
        self._store = store
        self._waits = waits
        self._clock_off = clock_off

    async def register(self, statement: bytes, wait: float) -> Registration:
        off = self._clock_off()
        if off is not None:
            raise ClockSkew(off.detail, retry_after=off.retry_after)
        entry = self._service.check(statement)
        entry_id = hashlib.sha256(entry).digest()
        known = await asyncio.to_thread(self._store.lookup, [entry_id])
        where: Integrated | None = None
        if known.get(entry_id) is not None:  # registered before: answer from the log
            where = await asyncio.to_thread(self._service.status, entry_id)
        else:
            if entry_id not in known:
                # max_pending holds here as in one process: with no sequencer integrating (none
                # elected, or its clock refused), pending rows would grow without bound
                # (shared by the replicas, so the bound is approximate under concurrency)
                backlog = await asyncio.to_thread(self._store.count_pending)
                if backlog >= self._service.config.max_pending:
                    raise Overloaded(
                        "too many registrations are waiting for integration; retry shortly"
                    )
                await asyncio.to_thread(self._store.add_pending, [(entry_id, entry)])
            if wait > 0:
                future = self._waits.wait(entry_id)
                try:
                    where = await asyncio.wait_for(asyncio.wrap_future(future), wait)
                except TimeoutError:
                    where = None
                finally:
                    self._waits.forget(entry_id, future)
        if where is None:  # durable, not integrated yet: the client polls /entries/{id}
            return Registration(entry_id, None, None)
        receipts = await asyncio.to_thread(self._service.receipts, entry_id, where)
        return Registration(entry_id, where, receipts[0] if receipts else None)


class Replica:
    """The sequencer election and, while elected, the sequencer of one replica.

    :meth:`start` runs the elector thread; :meth:`close` stops sequencing (if it does) and
    gives the lease up. :attr:`epoch` is the lease epoch while this replica sequences.
    """

    def __init__(
        self,
        data_dir: Path,
        config: TransparencyConfig,
        *,
        receipt_signers: Sequence[Signer],
        checkpoint_signers: Sequence[Signer] | None,
        lease: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        store = config.store
        if store.kind != "postgresql" or store.dsn is None:
            raise ConfigError('replicas share a log in PostgreSQL: set [log] store = "postgresql"')
        self._data_dir = data_dir
        self._config = config
        self._dsn = store.dsn
        self._receipt_signers = list(receipt_signers)
        self._checkpoint_signers = None if checkpoint_signers is None else list(checkpoint_signers)
        self.holder = f"ironroot-seq-{socket.gethostname()[:24]}-{secrets.token_hex(6)}"
        self._lease = SequencerLease(
            self._dsn, holder=self.holder, schema=store.schema, lease=lease, timeout=lease / 3
        )
        self._clock = clock
        # why the last clock check found this clock too far from the database's, if it did
        self._clock_off: ClockSkew | None = None
        # (time.monotonic(), the database server's time then) at the last clock check: what
        # the sequencing service's receipt times are held to between two checks
        self._database_clock: tuple[float, float] | None = None
        self._service: TransparencyService | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ironroot-replica-elector")
        self._thread.daemon = True
        self.epoch: int | None = None
        self.failure: ConfigError | None = None
        """Why the election stopped for good (a privilege the role lacks), once it did."""
        self.failed = threading.Event()
        """Set when :attr:`failure` is: the replica must stop (``ironroot serve`` exits 2)."""

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60.0)

    # --- the elector thread ---------------------------------------------------------------

    def _run(self) -> None:
        period = self._lease.lease / 3
        while not self._stop.is_set():
            try:
                # A clock far from the database's stays out of the election (said once).
                epoch = self._lease.try_acquire() if self._clock_agrees() else None
            except ConfigError as exc:  # a misconfiguration: standing again cannot cure it
                _log.error("sequencer election: %s: this replica stops", exc.detail)
                self.failure = exc
                self.failed.set()
                break
            except IronrootError as exc:  # transient (StoreUnavailable): stand again
                _log.warning("sequencer election: %s", exc.detail)
                epoch = None
            if epoch is not None:
                try:
                    self._sequence(epoch)
                except Exception:  # a bug: say so, give the lease up, stand again
                    _log.exception("the sequencer stopped (epoch %d)", epoch)
                    self._lease.release()
            self._stop.wait(period)
        self._lease.release()

    def _sequence(self, epoch: int) -> None:
        """Sequence until the lease is lost or the replica stops."""
        lease = self._lease.lease
        renewed_at = time.monotonic()  # the acquisition counts as a renewal
        try:
            store = PostgresLogStore(
                self._dsn,
                schema=self._config.store.schema,
                pool_size=2,
                timeout=min(self._config.store.timeout, lease / 2),
                application_name=self.holder,
            )
            store.fence_with_lease(epoch)
            service = TransparencyService.open_on_store(
                self._data_dir,
                store,
                receipt_signers=self._receipt_signers,
                checkpoint_signers=self._checkpoint_signers,
                clock=self._clock,
                clock_reference=self._database_time,
            )
        except IronrootError as exc:
            _log.warning("elected (epoch %d) but cannot open the log: %s", epoch, exc.detail)
            self._lease.release()
            return
        service.start()
        self._service, self.epoch = service, epoch
        _log.info(
            "this replica sequences (lease epoch %d, holder %s, pid %d, tree size %d)",
            epoch,
            self.holder,
            os.getpid(),
            service.log.tree_size,
        )
        log = service.writer
        try:
            while not self._stop.is_set():
                if time.monotonic() - renewed_at >= lease / 3:
                    started = time.monotonic()
                    if not self._lease.renew() or time.monotonic() - renewed_at >= lease:
                        _log.warning("lost the sequencer lease (epoch %d): stepping down", epoch)
                        return
                    renewed_at = started
                    try:
                        agrees = self._clock_agrees()
                    except IronrootError:  # the database is away: the renewals will say so
                        agrees = True
                    if not agrees:
                        _log.warning("stepping down (epoch %d): this clock is off", epoch)
                        return
                try:
                    rows = store.pending(self._config.max_batch)
                except IronrootError as exc:
                    _log.warning("cannot read the pending entries: %s", exc.detail)
                    self._stop.wait(POLL)
                    continue
                if not rows:
                    self._stop.wait(POLL)
                    continue
                # A row no batch can hold (altered: its entry no longer hashes to its id) is
                # never submitted, which would put its bytes in the log as an entry of their
                # own: the log refuses it from its pending rows.
                fit = [entry for entry_id, entry in rows if unfit_pending(entry_id, entry) is None]
                if len(fit) < len(rows):
                    log.integrate_pending()
                if not fit:
                    self._stop.wait(POLL)
                    continue
                tickets = log.submit_many(fit)
                # Until the batch is integrated or a renewal is due, in steps that see a
                # close(): a batch the log holds back (its clock refused) kept a replica
                # told to stop for a third of the lease.
                waiting = [t.integrated for t in tickets]
                until = time.monotonic() + max(lease / 3 - POLL, POLL)
                while waiting and not self._stop.is_set():
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    _, undone = concurrent.futures.wait(waiting, timeout=min(left, POLL))
                    waiting = list(undone)
        finally:
            self._service, self.epoch = None, None
            self._lease.release()
            service.close()
            _log.info("this replica no longer sequences (epoch %d)", epoch)

    def _database_time(self) -> float | None:
        """The database server's time now as the last clock check read it, carried forward
        by this host's monotonic clock (which no step of the wall clock moves); ``None``
        before any check. A sequencer signs only within ``max_clock_skew`` of it, so a wall
        clock that leaps between two checks (a renewal's) signs no time far off."""
        read = self._database_clock
        return None if read is None else read[1] + (time.monotonic() - read[0])

    def _clock_agrees(self) -> bool:
        """Whether this host's clock is within ``max_clock_skew`` of the database server's (the
        one clock every replica shares): a sequencer whose clock is far off would sign receipt
        times far from now, and one far ahead would hold every later receipt's time up to its
        own (they never go back). Said once while it lasts, at error level. The lease's
        errors (:meth:`SequencerLease.clock_offset`) pass through."""
        bound = self._config.max_clock_skew
        readings: list[tuple[float, float]] = []  # (monotonic, wall) around the database's

        def wall() -> float:
            now = self._clock().timestamp()
            readings.append((time.monotonic(), now))
            return now

        offset = self._lease.clock_offset(wall)
        # The database's time from the readings the offset was measured with, never from a
        # later read of the wall clock, which may have leapt since.
        (mono_before, before), (mono_after, after) = readings[0], readings[-1]
        self._database_clock = ((mono_before + mono_after) / 2, (before + after) / 2 - offset)
        if abs(offset) <= bound:
            if self._clock_off is not None:
                _log.warning("this replica's clock agrees with the database's again: it sequences")
            self._clock_off = None
            return True
        side = "ahead of" if offset > 0 else "behind"
        off = ClockSkew(
            f"this replica's clock is {abs(offset):.1f} s {side} the database server's, more "
            f"than max_clock_skew ({bound:g} s): it does not sequence and accepts no "
            "registration until they agree"
        )
        if self._clock_off is None:
            _log.error(
                "this replica's clock is %.1f s %s the database server's, more than "
                "max_clock_skew (%g s): it does not sequence until they agree",
                abs(offset),
                side,
                bound,
            )
        self._clock_off = off
        return False

    @property
    def clock_off(self) -> ClockSkew | None:
        """Why this host's clock is off (more than ``max_clock_skew`` from the database
        server's at the last check, before an election or at a renewal), ``None`` while it
        agrees: it then neither sequences nor accepts registrations."""
        return self._clock_off

    def clock_refusal(self, latest_receipt_time: Callable[[], int | None]) -> ClockSkew | None:
        """What this replica's ``GET /ready`` ``clock`` check fails with, ``None`` when it
        passes: :attr:`clock_off`; the refusal of the service it sequences with, if it does;
        or the latest receipt time stored for the log (``latest_receipt_time()``) more than
        ``max_clock_skew`` ahead of the database server's time (as last read, carried
        forward), which no sequencer whose clock agrees with the database's signs past."""
        if self._clock_off is not None:
            return self._clock_off
        service = self._service
        refusal = None if service is None else service.clock_refusal
        if refusal is not None:
            return refusal
        reference = self._database_time()
        floor = None if reference is None else latest_receipt_time()
        if reference is None or floor is None:
            return None
        bound = self._config.max_clock_skew
        if floor - reference <= bound or floor == self._config.reset_receipt_time_from:
            return None
        return ClockSkew(
            f"the latest receipt time of the log (iat {floor}) is {floor - reference:.1f} s "
            f"ahead of the database server's clock, more than max_clock_skew ({bound:g} s): "
            "no replica signs a receipt (entries stay pending) until the clocks agree"
        )


def _replica_app(
    service: TransparencyService, store: PostgresLogStore, waits: _Waits, replica: Replica
) -> Starlette:
    """The HTTP app of a replica serving ``service`` (its follower): its registrations go to
    ``store`` as pending rows, and its clock check is the replica's."""
    service.sequencer_clock = lambda: replica.clock_refusal(service.latest_receipt_time)
    return create_app(service, ReplicaRegistrar(service, store, waits, lambda: replica.clock_off))


def _vkeys(
    data_dir: Path, config: TransparencyConfig, checkpoint_signers: Sequence[Signer] | None
) -> list[str]:
    """The checkpoint keys (vkeys) a replica's follower service states; the public half of the
    first is kept in ``keys/checkpoint.pub.pem`` (what `ironroot log verify DIR` reads), on
    every replica, whether it ever sequences or not."""
    if checkpoint_signers is None:
        notes = [load_checkpoint_signer(data_dir, config.origin)]
        pq = load_pq_checkpoint_signer(config)
        if pq is not None:
            notes.append(NoteSigner(config.origin, pq))
    else:
        notes = [NoteSigner(config.origin, s) for s in checkpoint_signers]
    _publish_checkpoint_key(data_dir, notes[0])
    return [n.verifier().vkey for n in notes]


def _public(verifier: object) -> PublicKey:
    if not isinstance(verifier, PublicKey):
        raise ConfigError("a service signer must expose its public key (ironroot.crypto.PublicKey)")
    return verifier


def _wait_for_log(store: LogReader, stop_after: float, replica: Replica) -> None:
    """Until the log's first checkpoint is stored (whichever replica is elected first); the
    election's failure if it stops for good meanwhile."""
    deadline = time.monotonic() + stop_after
    while True:
        if replica.failure is not None:
            raise replica.failure
        try:
            if store.checkpoint() is not None:
                return
        except StoreUnavailable:
            pass
        if time.monotonic() >= deadline:
            raise StoreUnavailable("no replica has initialized the log yet; retry")
        time.sleep(0.1)


def _check_log_is_ours(store: LogReader, origin: str, vkeys: Sequence[str]) -> None:
    """The stored log's latest checkpoint is of ``origin`` and signed by one of ``vkeys``
    (:class:`ConfigError` otherwise): a replica pointed at another service's log (a second
    replica group on the same schema, with other keys or another origin) must not serve it,
    nor add the statements its own policy accepts to it as pending rows."""
    note = store.checkpoint()
    if note is None:  # pragma: no cover - waited for above
        raise StoreUnavailable("no replica has initialized the log yet; retry")
    try:
        open_checkpoint(note, [NoteVerifier.from_vkey(v) for v in vkeys], origin=origin)
    except IronrootError as exc:
        raise ConfigError(
            f"the log in this store is not this service's ({exc.detail}): it holds another "
            "log (every replica needs the same origin and checkpoint keys)"
        ) from exc


async def _stop_on_failure(replica: Replica) -> None:
    """Run on the server's loop once its signal handlers are in place: a watcher that stops the
    server (SIGTERM to this process, its graceful shutdown) when the election fails for good;
    :func:`serve_replica` then raises the failure."""

    async def watch() -> None:
        while not replica.failed.is_set():
            await asyncio.sleep(POLL)
        os.kill(os.getpid(), signal.SIGTERM)

    _watchers.add(task := asyncio.get_running_loop().create_task(watch()))
    task.add_done_callback(_watchers.discard)


_watchers: set[asyncio.Task[None]] = set()  # strong references to the running watchers


def serve_replica(
    data_dir: Path,
    host: str,
    port: int,
    *,
    lease: float = 5.0,
    receipt_signers: Sequence[Signer] | None = None,
    checkpoint_signers: Sequence[Signer] | None = None,
    tls: ServerTls | None = None,
) -> None:
    """Serve ``data_dir``'s service as one replica of a log in PostgreSQL, until
    SIGINT/SIGTERM; ``lease`` is the sequencer lease in seconds (a paused sequencer is
    replaced that long after its last renewal)."""
    config = load_config(data_dir)
    if config.witness_quorum:
        raise ConfigError("replicas do not serve witnessed checkpoints: run one process")
    if receipt_signers is None:
        receipt_signers = load_receipt_signers(config)
    vkeys = _vkeys(data_dir, config, checkpoint_signers)
    publics = [_public(s.verifier()) for s in receipt_signers]
    lock = lock_data_dir(data_dir)
    try:
        known = publish_receipt_keys(data_dir, publics)
        replica = Replica(
            data_dir,
            config,
            receipt_signers=receipt_signers,
            checkpoint_signers=checkpoint_signers,
            lease=lease,
        )
        replica.start()
        try:
            probe = config.store.open(data_dir)
            try:
                _wait_for_log(probe, _OPEN_TIMEOUT, replica)
                _check_log_is_ours(probe, config.origin, vkeys)
            finally:
                probe.close()
            service = TransparencyService.open_follower(data_dir, publics, vkeys, dict(known))
            store = service.log.store
            if not isinstance(store, PostgresLogStore):  # pragma: no cover - checked above
                raise ConfigError("replicas share a log in PostgreSQL")
            waits = _Waits(store, config.max_pending)
            waits.start()
            try:
                _log.info(
                    "transparency replica on %s://%s:%d: data %s (log in %s, tree size %d), "
                    "lease %g s",
                    "https" if tls is not None else "http",
                    host,
                    port,
                    data_dir,
                    config.store.describe(data_dir),
                    service.log.tree_size,
                    lease,
                )
                app = _replica_app(service, store, waits, replica)
                run_server(
                    server_config(app, host, port, config.server, tls=tls),
                    before=lambda: _stop_on_failure(replica),
                )
            finally:
                waits.close()
                service.close()
        finally:
            replica.close()
        if replica.failure is not None:
            raise replica.failure
    finally:
        lock.close()
