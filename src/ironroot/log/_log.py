"""The sequencer: durable submission, batched integration, signed checkpoints and tiles.

One writer thread owns all writes. Each cycle it takes what is queued (up to ``max_batch``)
and, when integration is due, prepares one :class:`StoreBatch` that both accepts the new
entries and integrates every pending entry: it assigns indices, extends the compact range
(whose ``visit`` hook fills the right-edge tiles: appending never rereads the tree), asks
the batch signer to sign the new root, signs the checkpoint, and writes it all in one
transaction. Only after that commit are the tickets' ``durable`` and ``integrated`` futures
resolved. (New entries that are integrated in the same transaction that accepts them are
written straight to ``entries``; a pending row that is deleted before the commit would
change nothing that survives.) :meth:`Log.submit_watched` gives a :class:`Submission`
instead of a ticket: its two steps are :class:`Outcome` objects resolved at the same points,
watched with callbacks, without a future and its condition variable per entry (for an event
loop that answers thousands of submissions a second).

If integration fails (a signer raises, or the write fails), the new entries alone are
committed as pending rows, their ``durable`` futures resolve, and integration is retried
with exponential backoff; their ``integrated`` futures stay pending until it succeeds. On
open, pending rows left by an earlier run are integrated first. After a failed write the
writer reads the stored state back before it prepares another: a write whose commit got no
answer may have committed after all (a database connection lost at ``COMMIT``), and another
writer may have moved the log (the store's fence refused the batch); either way the next
batch starts from what is stored, and the tickets of entries that the stored state holds
resolve from it. While the state cannot be read back the head may be behind the store: the
registrations of that cycle fail with :class:`~ironroot.errors.StoreUnavailable` (retry), and
nothing is answered from, nor prepared from, that head until a later cycle reads it back.

A pending row that no batch could hold (its entry altered in the database so that it no
longer hashes to its id, longer than an entry can be, or left beside its own integrated entry
by an older version) is refused, not retried: the store's rules would refuse every batch that
held it, and every registration after it would wait forever. The batch that integrates the
rest of its page drops that row and records why (the metadata key
:func:`~ironroot.log._store.refusal_key`; logged at error level); the registration waiting on
it fails with :class:`~ironroot.errors.StorageError` ``entry-refused``, and so does a later
look-up of its id, until the statement is registered again. A failure that no row explains
(a pending page that cannot be read, a signer or a store down) is retried with backoff, and
:attr:`Log.stalled` names it meanwhile.

Durability contract: a ``durable`` future resolves only after the commit that holds the
entry returned (SQLite: WAL, ``synchronous=FULL``; PostgreSQL: ``synchronous_commit=on``).
After a crash at any moment, every entry whose ``durable`` resolved is in the log (pending
or integrated), and every checkpoint ever published is a prefix of the tree that the next
checkpoint signs, because the state, the entries, the tiles and the checkpoint are committed
together.

:class:`Log` is a :class:`~ironroot.log.LogView` (``log/_view.py``) that also writes: the
reads (entries, tiles, proofs, checkpoints) are the view's, served from the store on the
caller's thread, and the writer seeds the view's node cache with the nodes each batch makes.
Its head is the writer's own, never re-read from the store.

A store that already holds a log must be this log's: its origin (else :class:`ConfigError`)
and its latest checkpoint signed by one of this log's checkpoint keys (else
:class:`ConfigError`): a service pointed at another log's store (a copied DSN or schema, the
same origin under another key) is refused rather than extending that log under its own key.

**A database restored from an older copy.** A writer that runs while its store goes back
refuses to write (``store-rolled-back``, :meth:`Log._resync`): it remembers the head it
wrote. A restarted one has only the store. With ``high_water`` (a file outside the store:
the service's ``<data>/signed-checkpoint``) the log keeps there the latest checkpoint it
signed, replaced atomically after each batch commits and before any of its entries is
acknowledged or its checkpoint served. At open, a store whose tree is smaller than that
checkpoint, or holds another root at its size, is not written to: every submission is
:class:`StoreUnavailable` (code ``store-rolled-back``, with ``Retry-After``) and
:attr:`Log.stalled` says why, for as long as the log runs. Continuing would give
acknowledged entries' indexes to new ones and sign a second checkpoint of a size already
signed: a fork of the log's own making, which every witness and monitor that saw the first
proves. A file that cannot be read or is not a checkpoint of this origin is
:class:`ConfigError` at open; a missing one is written from the store's head (the first
open with it). A record that fails to be written fails the batch's tickets (they are
committed: a retry is answered from the store) and every write after it until it is.
Restoring the file together with the database is not seen here: a witness's cosigned
checkpoint is the record kept off the host, and a caller that learns from witnesses that the
log is behind what they cosigned (the service, ``transparency/_witnessing.py``) holds the log
the same way with :meth:`Log.refuse_writes`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Generic, Protocol, Self, TypeVar, cast

from ironroot._fileio import read_limited, write_atomic
from ironroot.errors import (
    ConfigError,
    IronrootError,
    MalformedInput,
    PayloadTooLarge,
    StorageError,
    StoreUnavailable,
)
from ironroot.log._checkpoint import Checkpoint
from ironroot.log._memory import MemoryLogStore
from ironroot.log._note import Note, NoteSigner, open_checkpoint, sign_checkpoint
from ironroot.log._open import open_store
from ironroot.log._store import LogStore, StoreBatch, TreeState, refusal_key, refused_entry
from ironroot.log._tiles import HASH_SIZE, MAX_ENTRY_SIZE, TILE_HEIGHT, TILE_WIDTH
from ironroot.log._view import (
    FULL_TILE_BYTES,
    Integrated,
    LogView,
    check_origin,
    stored_checkpoint,
    stored_range,
)
from ironroot.merkle import EMPTY_ROOT, CompactRange, leaf_hash

__all__ = ["BatchSigner", "Log", "Outcome", "Submission", "Ticket", "unfit_pending"]

_log = logging.getLogger("ironroot.log")
# A batch up to this many entries puts the nodes it creates into the node cache (about two
# per entry); a bulk load's would only push each other out, so tiles serve those.
_SEED_ENTRIES = 2048
_BACKOFF_FIRST = 0.05
_MAX_HIGH_WATER = 1 << 16  # a signed checkpoint: origin, size, root and a few signatures
_BACKOFF_MAX = 30.0
_T = TypeVar("_T")
_T_in = TypeVar("_T_in", contravariant=True)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A submission: its id and two futures (durable, then integrated)."""

    entry_id: bytes
    durable: concurrent.futures.Future[None]
    integrated: concurrent.futures.Future[Integrated]


_OUTCOME_LOCK = threading.Lock()


class Outcome(Generic[_T]):
    """One step of a :class:`Submission` (durable, or integrated): a future that nobody can
    block on, so it needs no condition variable of its own (a
    :class:`concurrent.futures.Future` makes one, with its lock, deque and bound methods, for
    every entry). It resolves once, on the log's writer thread; :meth:`add_done_callback`
    runs its callback there then (at once if it resolved already)."""

    __slots__ = ("_callbacks", "_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = False
        self._value: _T | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[Outcome[_T]], object]] | None = None

    def done(self) -> bool:
        return self._done

    def result(self) -> _T:
        """Its value, or its error raised; :class:`~concurrent.futures.InvalidStateError`
        while it is not done (nothing waits here: watch it with :meth:`add_done_callback`)."""
        if not self._done:
            raise concurrent.futures.InvalidStateError("the submission is not there yet")
        if self._error is not None:
            raise self._error
        return cast(_T, self._value)

    def exception(self) -> BaseException | None:
        if not self._done:
            raise concurrent.futures.InvalidStateError("the submission is not there yet")
        return self._error

    def add_done_callback(self, fn: Callable[[Outcome[_T]], object]) -> None:
        with _OUTCOME_LOCK:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        _call(fn, self)

    def set_result(self, value: _T) -> None:
        self._settle(value, None)

    def set_exception(self, exc: BaseException) -> None:
        self._settle(None, exc)

    def _settle(self, value: _T | None, exc: BaseException | None) -> None:
        with _OUTCOME_LOCK:
            if self._done:
                raise concurrent.futures.InvalidStateError("the outcome is settled already")
            self._value, self._error = value, exc
            self._done = True
            callbacks, self._callbacks = self._callbacks, None
        for fn in callbacks or ():
            _call(fn, self)


def _call(fn: Callable[[Outcome[_T]], object], outcome: Outcome[_T]) -> None:
    try:
        fn(outcome)
    except Exception:  # as a Future does: a callback's bug must not stop the writer
        _log.exception("a submission's callback failed")


@dataclass(frozen=True, slots=True)
class Submission:
    """A submission watched by callbacks (:meth:`Log.submit_watched`): its id, then whether
    it is durable, then where it was integrated, as a :class:`Ticket` says them, without a
    :class:`~concurrent.futures.Future` per step."""

    entry_id: bytes
    durable: Outcome[None]
    integrated: Outcome[Integrated]


_InFlight = Ticket | Submission
"""What waits on an entry the log holds in flight: the ticket, or the submission, that its
first submitter got."""


class _Settable(Protocol[_T_in]):
    def done(self) -> bool: ...
    def set_result(self, value: _T_in, /) -> None: ...
    def set_exception(self, exc: BaseException, /) -> None: ...


class BatchSigner(Protocol):
    """Signs each integrated batch's root (the transparency service makes receipts here)."""

    def sign_batch(self, tree_size: int, root: bytes) -> Mapping[str, bytes]: ...


_CommitListener = Callable[[int, bytes, Mapping[str, bytes]], None]
"""``listener(tree_size, root, batch_data)``: the integration batch ending at ``tree_size``, with
that root and the batch signer's data, has just committed (:meth:`Log.add_commit_listener`)."""


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A pending row no batch can hold: its id, why, where its entry is when it is integrated
    already, and whether the store holds a record of an earlier refusal of the same id."""

    entry_id: bytes
    reason: str
    index: int | None
    recorded: bool


def unfit_pending(entry_id: bytes, entry: bytes) -> str | None:
    """Why the store's rules would refuse a pending row (``entry`` under ``entry_id``) in any
    batch: the sequencer refuses such a row (``None``: none)."""
    if not isinstance(entry_id, bytes) or not isinstance(entry, bytes):
        return "its id or entry is not bytes"
    if len(entry) > MAX_ENTRY_SIZE:
        return f"its entry is {len(entry)} bytes, more than a log entry's {MAX_ENTRY_SIZE}"
    if hashlib.sha256(entry).digest() != entry_id:
        return "its entry does not hash to its id (SHA-256): the row was altered"
    return None


def _records(refusals: Sequence[_Refusal]) -> dict[str, str]:
    """The refusal records a batch sets (an id refused before keeps its first record)."""
    return {refusal_key(r.entry_id): r.reason for r in refusals if not r.recorded}


def _head_unknown(why: IronrootError | None = None) -> StoreUnavailable:
    """What a submission is answered while the writer cannot take the stored tree as its
    own: the store did not answer, or (``why``, code ``store-rolled-back``) holds a tree
    behind the one this writer signed."""
    if why is not None and why.code == "store-rolled-back":
        return StoreUnavailable(why.detail, code="store-rolled-back")
    return StoreUnavailable(
        "the log's store did not answer whether a write committed; retry shortly"
    )


def _record_unwritten(path: Path | None) -> StoreUnavailable:
    """What a submission is answered while the latest checkpoint signed cannot be recorded
    in ``path`` (module docs): its entries are committed, but not acknowledged."""
    return StoreUnavailable(
        f"the latest checkpoint signed cannot be recorded in {path}; retry shortly",
        code="high-water-unwritten",
    )


def _entry_id(entry: bytes) -> bytes:
    """A submitted entry's id (SHA-256), once it is known to be bytes within the size."""
    if not isinstance(entry, bytes):
        raise MalformedInput("a log entry must be bytes")
    if len(entry) > MAX_ENTRY_SIZE:
        raise PayloadTooLarge(f"a log entry is at most {MAX_ENTRY_SIZE} bytes")
    return hashlib.sha256(entry).digest()


def _new_ticket(entry_id: bytes) -> Ticket:
    return Ticket(entry_id, concurrent.futures.Future(), concurrent.futures.Future())


def _new_submission(entry_id: bytes) -> Submission:
    return Submission(entry_id, Outcome(), Outcome())


def _as_ticket(waiting: _InFlight) -> Ticket:
    """A ticket that resolves with ``waiting`` (``waiting`` itself if it is one)."""
    if isinstance(waiting, Ticket):
        return waiting
    ticket = _new_ticket(waiting.entry_id)
    waiting.durable.add_done_callback(lambda o: _copy(o, ticket.durable))
    waiting.integrated.add_done_callback(lambda o: _copy(o, ticket.integrated))
    return ticket


def _copy(outcome: Outcome[_T], future: concurrent.futures.Future[_T]) -> None:
    error = outcome.exception()
    if error is not None:
        _fail(future, error)
    else:
        _resolve(future, outcome.result())


def _resolve(future: _Settable[_T], value: _T) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: _Settable[_T], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


@dataclass(slots=True)
class _Edge:
    """The writer's in-memory right edge: compact range and the partial tile per tile level."""

    compact: CompactRange
    tiles: dict[int, tuple[int, bytearray]]

    def copy(self) -> _Edge:
        return _Edge(
            self.compact.copy(), {k: (i, bytearray(b)) for k, (i, b) in self.tiles.items()}
        )


class Log(LogView):
    """An append-only log over a :class:`~ironroot.log.LogStore`: the sequencer.

    Use :meth:`open` (SQLite under a data directory, or a PostgreSQL URL), :meth:`open_memory`,
    or pass any store; then :meth:`start` (or ``with``) to run the writer, and :meth:`close`
    to stop it (it closes the store). Every read is :class:`~ironroot.log.LogView`'s.
    """

    _edge: _Edge
    _store_pending: bool

    def __init__(
        self,
        store: LogStore,
        *,
        origin: str,
        note_signers: Sequence[NoteSigner],
        batch_signer: BatchSigner | None = None,
        max_batch: int = 4096,
        linger: float = 0.0,
        fill: int | None = None,
        high_water: str | PathLike[str] | None = None,
    ) -> None:
        if not note_signers:
            raise ConfigError("a log needs at least one checkpoint signer")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError("max_batch must be a positive integer")
        if not 0.0 <= linger <= 1.0:
            raise ConfigError("linger must be between 0 and 1 second")
        if fill is not None and (isinstance(fill, bool) or not isinstance(fill, int) or fill < 1):
            raise ConfigError("fill must be a positive integer")
        self._signers = tuple(note_signers)
        self._batch_signer = batch_signer
        self._max_batch = max_batch
        self._linger = linger
        # Queued entries that end a linger at once: as many as the last batch took (the
        # clients it answered are back), at most ``fill`` (a full batch does too).
        self._fill = max_batch if fill is None else min(fill, max_batch)
        self._enough = self._fill
        self._queue: collections.deque[tuple[bytes, bytes, _InFlight]] = collections.deque()
        self._queued_at = 0.0  # when the queue last went from empty to non-empty (monotonic)
        self._inflight: dict[bytes, _InFlight] = {}
        self._thread: threading.Thread | None = None
        self._commit_listeners: list[_CommitListener] = []
        self._cycle_listeners: tuple[Callable[[], None], ...] = ()
        self._store_failed = False  # the last integration failed in the store (writer thread)
        self._retry_now = False
        # A write failed and the stored state could not be read back: the head may be behind
        # the store (the write may have committed). Nothing is answered from it, and no batch
        # is prepared from it, until the state is read back (writer thread).
        self._head_unknown = False
        self._stalled: IronrootError | None = None
        self._pending_asked = False  # integrate_pending() was called (under self._cond)
        self._high_water = None if high_water is None else Path(high_water)
        # The store is behind (or beside) the latest checkpoint this log signed (module
        # docs): nothing is written for as long as the log runs.
        self._rolled_back: StorageError | None = None
        self._record_unwritten = False  # the high-water file lags the head (writer thread)
        # The view checks the origin, initializes the store (_attach) and reads the head,
        # loading the writer's edge (_open_head).
        super().__init__(store, origin=origin, note_verifiers=[s.verifier() for s in note_signers])
        if self._high_water is not None:
            self._check_high_water(self._high_water)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        where: str | PathLike[str],
        *,
        origin: str,
        note_signers: Sequence[NoteSigner],
        batch_signer: BatchSigner | None = None,
        max_batch: int = 4096,
        linger: float = 0.0,
        fill: int | None = None,
        high_water: str | PathLike[str] | None = None,
    ) -> Log:
        """Open (creating if needed) the log at ``where``: the SQLite log under a data
        directory, or a PostgreSQL URL (:func:`~ironroot.log.open_store`).

        ``linger`` (seconds) lets the writer wait that long after the first queued entry for
        more, so concurrent submissions share one integration (root, signatures, commit);
        ``fill`` queued entries end the wait at once (default: ``max_batch``). A batch takes
        at most ``fill`` entries while no more than twice that are queued, the rest going in
        the next batch; a longer queue (a backlog) is taken whole, up to ``max_batch``
        (:meth:`_take`). ``high_water``: the file that keeps the latest checkpoint signed
        (module docs)."""
        store = open_store(where)
        try:
            return cls(
                store,
                origin=origin,
                note_signers=note_signers,
                batch_signer=batch_signer,
                max_batch=max_batch,
                linger=linger,
                fill=fill,
                high_water=high_water,
            )
        except BaseException:
            store.close()
            raise

    @classmethod
    def open_memory(
        cls,
        *,
        origin: str,
        note_signers: Sequence[NoteSigner],
        batch_signer: BatchSigner | None = None,
        max_batch: int = 4096,
        store: MemoryLogStore | None = None,
    ) -> Log:
        """A log in memory (pass ``store`` to reopen one that an earlier log used)."""
        return cls(
            store if store is not None else MemoryLogStore(),
            origin=origin,
            note_signers=note_signers,
            batch_signer=batch_signer,
            max_batch=max_batch,
        )

    def refresh(self) -> int:
        """The head's size: the sequencer's head is its own, never re-read from the store."""
        return self._head[0]

    def _open_head(self, state: TreeState) -> tuple[int, bytes, bytes]:
        self._edge = self._load_edge(state)
        self._store_pending = self._any_pending()
        return (
            state.size,
            self._edge.compact.root(),
            stored_checkpoint(self._store, state.size, latest=True),
        )

    def _attach(self) -> None:
        """Check the stored origin; record it, and the signed empty tree, in a new store."""
        stored = check_origin(self._store, self._origin)
        state = self._store.state()
        latest = self._store.checkpoint()
        empty = state.size == 0 and latest is None
        if stored is not None and not empty:
            self._check_signed_here(latest)
            return
        batch = StoreBatch(
            first_index=state.size,
            state=state if empty else None,
            checkpoint=self._sign(0, EMPTY_ROOT) if empty else None,
            meta={"origin": self._origin},
        )
        try:
            self._store.write(batch)
        except StorageError:
            # Another process may have initialized the store at the same moment: what is
            # stored now decides (the origin is checked again, the checkpoint must exist).
            stored = self._store.meta("origin")
            if stored is None or self._store.checkpoint() is None:
                raise
            if stored != self._origin:
                raise ConfigError(
                    f"this log's origin is {stored!r}, not {self._origin!r}"
                ) from None
            self._check_signed_here(self._store.checkpoint())

    def _check_signed_here(self, note: bytes | None) -> None:
        """The stored latest checkpoint verifies under one of this log's checkpoint keys
        (:class:`ConfigError` otherwise: the store holds another log)."""
        if note is None:
            return  # no checkpoint at all: the view's open reports the damaged store
        try:
            open_checkpoint(note, self.note_verifiers, origin=self._origin)
        except IronrootError as exc:
            raise ConfigError(
                f"the log in this store is not signed by this log's checkpoint key "
                f"({exc.detail}): the store holds another log of origin {self._origin!r}"
            ) from exc

    def _check_high_water(self, path: Path) -> None:
        """Compare the store with the latest checkpoint this log signed, kept at ``path``
        (module docs); record the store's head there when it is ahead or the file missing."""
        try:
            raw: bytes | None = read_limited(path, _MAX_HIGH_WATER, regular=True)
        except FileNotFoundError:
            raw = None
        except (OSError, IronrootError) as exc:
            raise ConfigError(
                f"{path} (the latest checkpoint this log signed) cannot be read: {exc}"
            ) from exc
        size, _, latest = self._head
        if raw is None:
            self._write_high_water(latest)
            return
        try:
            signed = Checkpoint.parse(Note.parse(raw).body)
        except IronrootError as exc:
            raise ConfigError(
                f"{path} (the latest checkpoint this log signed) is not a checkpoint: {exc.detail}"
            ) from exc
        if signed.origin != self._origin:
            raise ConfigError(
                f"{path} (the latest checkpoint this log signed) is a checkpoint of "
                f"{signed.origin!r}, not of this log's origin {self._origin!r}"
            )
        if signed.size > size or not hmac.compare_digest(self.root(signed.size), signed.root):
            self._rolled_back = StorageError(
                f"the stored log is at size {size}, "
                f"{'behind' if signed.size > size else 'beside'} the checkpoint of size "
                f"{signed.size} this log signed ({path}): its database was restored from an "
                "older copy or edited; refusing to write (it would fork the log). Restore a "
                "copy that holds the signed tree, or start a new log (another origin)",
                code="store-rolled-back",
            )
            self._stalled = self._rolled_back
            _log.error("%s", self._rolled_back)
        elif signed.size < size:
            self._write_high_water(latest)

    def _write_high_water(self, note: bytes) -> bool:
        """Record ``note`` (a checkpoint just committed) as the latest signed; ``False``,
        logged, if the file could not be written."""
        assert self._high_water is not None
        try:
            write_atomic(self._high_water, note, mode=0o644)
        except (OSError, IronrootError) as exc:
            _log.error(
                "cannot record the latest checkpoint signed in %s: %s", self._high_water, exc
            )
            self._record_unwritten = True
            return False
        self._record_unwritten = False
        return True

    def _any_pending(self) -> bool:
        """Whether the store holds pending rows. A pending row that cannot be read (damaged)
        counts as one: the log opens, and its writer says why it integrates nothing
        (:attr:`stalled`), rather than the service refusing to start, or taking its head
        for unknown, over one row. A store that does not answer raises."""
        try:
            return bool(self._store.pending(1))
        except StoreUnavailable:
            raise
        except StorageError as exc:
            _log.error("the log's pending entries cannot be read: %s", exc.detail)
            return True

    def _resync(self) -> bool:
        """After a failed write: take the stored state as the writer's, and resolve the
        tickets of the entries it holds (writer thread). ``False`` when the state could not be
        read back: the head is then unknown until a later call succeeds."""
        try:
            state = self._store.state()
            pending = self._any_pending()
            moved = state.size != self._head[0] or state.hashes != self._edge.compact.hashes
            if moved and state.size <= self._head[0]:
                # Behind (or beside) the tree this writer wrote and signed: the database was
                # restored from an older copy or edited. Every write this writer made was
                # acknowledged by a commit (synchronous), so no failure of ours explains it;
                # continuing from there would give acknowledged entries' indexes to new ones
                # and sign a second checkpoint of a size already signed: a fork.
                raise StorageError(
                    f"the stored log is at size {state.size}, "
                    f"{'behind' if state.size < self._head[0] else 'beside'} the tree of size "
                    f"{self._head[0]} this log wrote: its database was restored from an older "
                    "copy or edited; refusing to write (it would fork the log)",
                    code="store-rolled-back",
                )
            if moved:
                edge = self._load_edge(state)
                latest = stored_checkpoint(self._store, state.size, latest=True)
        except IronrootError as exc:
            if exc.code == "store-rolled-back":
                _log.error("%s", exc)
                self._stalled = exc
            else:
                _log.warning("cannot read the log's stored state back yet: %s", exc)
            self._head_unknown = True
            self._store_pending = True  # the writer retries the read-back with its backoff
            return False
        self._head_unknown = False
        self._store_pending = pending
        if not moved:
            return True
        _log.warning(
            "the stored log is at size %d, not %d: continuing from the stored state",
            state.size,
            self._head[0],
        )
        self._edge = edge
        with self._cond:
            self._head = (state.size, edge.compact.root(), latest)
            self._cond.notify_all()
        self._settle()
        return True

    def _settle(self) -> None:
        """After the head moved to the stored state: resolve the waiting tickets of entries
        that state holds (a write whose COMMIT got no answer committed them; the ones it
        integrated from pending rows have no other chance to be answered)."""
        with self._cond:
            waiting = list(self._inflight.values())
        if not waiting:
            return
        try:
            known = self._store.lookup([ticket.entry_id for ticket in waiting])
        except IronrootError as exc:
            _log.warning("cannot look up the entries waiting for integration yet: %s", exc)
            return
        for ticket in waiting:
            index = known.get(ticket.entry_id)
            if index is None or index >= self._head[0]:
                continue
            try:
                where = self._integrated_at(index)
            except IronrootError as exc:
                self._fail_items([(ticket.entry_id, b"", ticket)], exc)
                continue
            if where.tree_size <= self._head[0]:
                self._finish(ticket, where)

    def _load_edge(self, state: TreeState) -> _Edge:
        compact = stored_range(state)
        tiles: dict[int, tuple[int, bytearray]] = {}
        level = 0
        while state.size >> (TILE_HEIGHT * level):
            count = state.size >> (TILE_HEIGHT * level)
            index, width = divmod(count, TILE_WIDTH)
            if width:
                data = self._store.tile(level, index)
                if data is None or len(data) != width * HASH_SIZE:
                    raise StorageError(f"the right-edge tile {level}/{index} is missing or short")
                tiles[level] = (index, bytearray(data))
            level += 1
        return _Edge(compact, tiles)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._cond:
            if self._closing:
                raise StorageError("the log is closed")
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="ironroot-log-writer")
            self._thread.daemon = True
            self._thread.start()

    def close(self) -> None:
        """Finish what is queued, stop the writer and close the store.

        Tickets still waiting for integration (after a failed integration) get a
        :class:`StorageError` on ``integrated``: their entries are durable and are
        integrated when the log is opened again.
        """
        with self._cond:
            if self._closed:
                return
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        else:
            self._drain()
        with self._cond:
            leftovers = list(self._inflight.values())
            self._inflight.clear()
        for ticket in leftovers:
            _fail(ticket.durable, StorageError("the log was closed before the entry was stored"))
            _fail(
                ticket.integrated,
                StorageError("the log was closed; the entry is integrated when it reopens"),
            )
        super().close()

    def __enter__(self) -> Self:
        self.start()
        return self

    # --- submission ---------------------------------------------------------------------

    def submit(self, entry: bytes) -> Ticket:
        """Queue ``entry``; its id is SHA-256(entry), so resubmitting is idempotent."""
        entry_id = _entry_id(entry)
        with self._cond:
            if self._closing:
                raise StorageError("the log is closed")
            waiting = self._hold(entry_id, entry, _new_ticket)
        return _as_ticket(waiting)

    def submit_watched(self, entry: bytes) -> Ticket | Submission:
        """:meth:`submit` for a caller that watches the outcome with callbacks (an event loop
        answering many submissions): the same checks, queue and answers, in a
        :class:`Submission`, whose steps are :class:`Outcome` objects rather than futures
        (cheaper per entry; nothing can block on them). An entry already in flight from
        :meth:`submit` gives that :class:`Ticket`: both kinds have ``done``, ``result``,
        ``exception`` and ``add_done_callback`` on ``durable`` and ``integrated``."""
        entry_id = _entry_id(entry)
        with self._cond:
            if self._closing:
                raise StorageError("the log is closed")
            return self._hold(entry_id, entry, _new_submission)

    def integrate_pending(self) -> None:
        """Have the writer integrate the store's pending rows, those another process wrote
        included (a replica's sequencer: its queue knows nothing of them), and refuse those
        no batch can hold. Submitting a pending row's entry does that too, but submits the
        entry: an altered row's bytes would go into the log as a new entry of their own."""
        with self._cond:
            self._pending_asked = True
            self._cond.notify_all()

    def _enqueue(self, item: tuple[bytes, bytes, _InFlight]) -> None:
        """Queue one item (``self._cond`` held); wake the writer only when it waits for one:
        for a first item, or for a full batch while it lingers (a wake-up per submission
        would hand it the GIL for nothing). ``notify_all``: other threads wait on the same
        condition (:meth:`wait_for_growth`), and a single ``notify`` could wake one of them
        instead of the writer."""
        queue = self._queue
        queue.append(item)
        if len(queue) == 1:
            self._queued_at = time.monotonic()
            self._cond.notify_all()
        elif len(queue) == self._enough:
            self._cond.notify_all()

    def refuse_writes(self, detail: str) -> None:
        """Write nothing more for as long as the log runs, as when its store is found behind
        the latest checkpoint it signed (module docs), on evidence from outside the store:
        ``detail`` says what (witnesses that cosigned a tree this one does not extend). Every
        submission is then :class:`StoreUnavailable` ``store-rolled-back`` with ``detail``,
        and :attr:`stalled` says it; logged at error level. A log already refused keeps its
        first reason."""
        with self._cond:
            if self._rolled_back is not None:
                return
            self._rolled_back = StorageError(detail, code="store-rolled-back")
            self._stalled = self._rolled_back
            self._cond.notify_all()
        _log.error("%s", detail)

    @property
    def stalled(self) -> IronrootError | None:
        """Why the writer integrates nothing now: the failure of its last integration, while
        entries wait for it (a signer or the store down, a pending page that cannot be read,
        a refused batch); ``None`` once an integration succeeds, and while nothing waits (the
        entries of a failed cycle whose pending write failed too were answered with the
        error: a readiness check that stayed failed would keep away the registration whose
        integration clears it). The writer retries with backoff meanwhile."""
        if self._rolled_back is not None:  # for as long as the log runs
            return self._rolled_back
        stalled = self._stalled
        if stalled is not None and not self._store_pending:
            with self._cond:
                if not self._inflight:
                    return None
        return stalled

    @property
    def in_flight(self) -> int:
        """Entries submitted and not yet integrated (what a caller limits for backpressure)."""
        with self._cond:
            return len(self._inflight)

    def submit_many(self, entries: Sequence[bytes]) -> list[Ticket]:
        """Submit entries in order, queued together (the writer sees them as one batch).

        Same results as :meth:`submit` for each; an entry already in the log is answered by
        the writer rather than here.
        """
        prepared = [(_entry_id(entry), entry) for entry in entries]
        with self._cond:
            if self._closing:
                raise StorageError("the log is closed")
            waiting = [self._hold(entry_id, entry, _new_ticket) for entry_id, entry in prepared]
        return [_as_ticket(w) for w in waiting]

    def _hold(self, entry_id: bytes, entry: bytes, new: Callable[[bytes], _InFlight]) -> _InFlight:
        """What waits on ``entry`` (``self._cond`` held): the ticket or submission of the
        entry in flight, else ``new(entry_id)``, held and queued. An entry already in the
        store is found by the writer's one batched look-up per cycle (and answered there): no
        query here, on the caller's thread."""
        waiting = self._inflight.get(entry_id)
        if waiting is None:
            waiting = new(entry_id)
            self._inflight[entry_id] = waiting
            self._enqueue((entry_id, entry, waiting))
        return waiting

    def _queued(self, entry_id: bytes) -> bool:
        """Whether ``entry_id`` waits here for integration and is durable: an entry whose
        store write has not returned is not pending yet (that write may fail, and the entry
        was never registered), so :meth:`status` does not call it pending."""
        with self._cond:
            ticket = self._inflight.get(entry_id)
        if ticket is None or not ticket.durable.done():
            return False
        return ticket.durable.exception() is None

    def status(self, entry_id: bytes) -> Integrated | None:
        """Where ``entry_id`` landed; ``None`` while pending (durable: stored, not yet
        integrated) — also in the moment between the commit that integrated it and the writer
        taking that tree up as its head, when no proof of it can be made here yet (a reader
        asking then was told "no tree of that size"); :class:`NotFound` if unknown, or
        submitted and not durable yet."""
        found = super().status(entry_id)
        if found is not None and found.tree_size > self._head[0]:
            return None
        return found

    # --- the writer -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._drain()
        except BaseException:  # pragma: no cover - a bug; keep the process alive, say why
            _log.exception("the log writer stopped")
            raise

    def _drain(self) -> None:
        backoff = _BACKOFF_FIRST
        retry_at = time.monotonic() if self._store_pending else None
        while True:
            with self._cond:
                while not self._queue and not self._closing and not self._pending_asked:
                    timeout = None if retry_at is None else retry_at - time.monotonic()
                    if timeout is not None and timeout <= 0:
                        break
                    self._cond.wait(timeout)
                if self._linger > 0 and self._queue and not self._closing:
                    # Let concurrent submissions join this batch: one root, one signature
                    # and one commit for all of them. The linger counts from the first
                    # queued entry: entries that queued up during the previous cycle have
                    # waited long enough already.
                    until = self._queued_at + self._linger
                    while len(self._queue) < self._enough and not self._closing:
                        left = until - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                if self._pending_asked:
                    self._pending_asked = False
                    self._store_pending = True
                    if retry_at is None:  # at once, unless a backoff runs
                        retry_at = time.monotonic()
                items = [self._queue.popleft() for _ in range(self._take(len(self._queue)))]
                if items:
                    self._enough = min(self._fill, len(items))
                last = self._closing and not self._queue
            due = retry_at is None or time.monotonic() >= retry_at
            if items or (due and self._store_pending):
                try:
                    integrated = self._cycle(items, integrate=due)
                finally:
                    self._cycle_ended()
                if integrated:
                    backoff = _BACKOFF_FIRST
                    # Pending rows left beyond the page just integrated: the next page now.
                    retry_at = time.monotonic() if self._store_pending else None
                    self._store_failed = False
                elif self._retry_now:
                    self._retry_now = False
                    backoff, retry_at = _BACKOFF_FIRST, time.monotonic()
                elif self._store_pending and due:
                    retry_at = time.monotonic() + backoff
                    backoff = min(backoff * 2, _BACKOFF_MAX)
                elif not self._store_pending:  # nothing left to retry: wait for work
                    backoff, retry_at = _BACKOFF_FIRST, None
            if last:
                return

    def _take(self, queued: int) -> int:
        """How many of ``queued`` entries the next batch takes: at most ``fill`` unless more
        than twice that are queued, then up to ``max_batch``.

        Clients in a closed loop (each sends its next entry once answered, as a fleet of
        registering build jobs does) come back together when they are answered together. A
        batch that took every queued entry answered them all at once, so they returned as one
        cohort: the writer then waited while the workers checked that cohort, and the workers
        waited while the writer committed it. Taking ``fill`` at a time keeps two cohorts,
        one committing while the other is checked: 64 clients of ``bench/registration.py``
        went from a median of 0.232 to 0.248 of a core's ES256 verifications per second (0.30
        with the processes under ``chrt -r``; docs/transparency.md, "Eighth round"). The
        rest is taken by the next cycle at once, since its linger counts from the first entry
        queued, long past. A real backlog is taken whole: there, one root and one signature for
        as many entries as possible is what keeps up (128 and 256 clients lose nothing)."""
        if queued > 2 * self._fill:
            return min(queued, self._max_batch)
        return min(queued, self._fill)

    def _cycle(self, items: list[tuple[bytes, bytes, _InFlight]], *, integrate: bool) -> bool:
        """One writer cycle; returns True if integration ran and succeeded."""
        new: list[tuple[bytes, bytes]] = []
        seen: set[bytes] = set()
        durable_now: list[_InFlight] = []
        done_now: list[tuple[_InFlight, int]] = []
        if self._rolled_back is not None:
            self._fail_items(items, _head_unknown(self._rolled_back))
            return False
        if self._record_unwritten and not self._write_high_water(self._head[2]):
            self._fail_items(items, _record_unwritten(self._high_water))
            return False
        if self._head_unknown and not self._resync():
            self._fail_items(items, _head_unknown(self._stalled))
            return False
        try:
            known = self._store.lookup([entry_id for entry_id, _, _ in items])
            for entry_id, entry, ticket in items:
                if entry_id in seen:
                    continue
                seen.add(entry_id)
                if entry_id not in known:
                    new.append((entry_id, entry))
                elif (index := known[entry_id]) is not None:
                    done_now.append((ticket, index))
                else:  # pending: durable already, integrated with the store's pending rows
                    durable_now.append(ticket)
                    self._store_pending = True
        except IronrootError as exc:
            self._fail_items(items, exc)
            return False
        for ticket, index in done_now:
            self._finish_stored(ticket, index)
        for ticket in durable_now:
            _resolve(ticket.durable, None)

        if integrate and (new or self._store_pending):
            try:
                # The oldest page of pending rows: after a long outage there may be more than
                # fit one batch (or memory); the writer goes on with the next page at once.
                page = self._store.pending(self._max_batch) if self._store_pending else []
                leftovers, refusals = self._screen(page)
                edge: _Edge | None = None
                nodes: list[tuple[tuple[int, int], bytes]] = []
                if leftovers or new or not refusals:
                    batch, edge, nodes = self._prepare(leftovers, new, refusals)
                else:  # the page held only refused rows: drop them, integrate nothing
                    batch = StoreBatch(
                        first_index=self._head[0],
                        refused=[r.entry_id for r in refusals],
                        meta=_records(refusals),
                    )
                self._store.write(batch)
            except Exception as exc:  # a signer or the store failed: keep the entries durable
                _log.warning("log integration failed, will retry: %s", exc)
                self._stalled = (
                    exc
                    if isinstance(exc, IronrootError)
                    else StorageError(f"log integration failed: {exc}")
                )
                if isinstance(exc, StorageError):
                    self._store_failed = True
                    if not self._resync():
                        new_ids = {entry_id for entry_id, _ in new}
                        self._fail_items(
                            [i for i in items if i[0] in new_ids], _head_unknown(self._stalled)
                        )
                        return False
                    new = self._still_new(new, items)
            else:
                if edge is not None:
                    self._commit_edge(batch, edge, nodes)
                self._answer_refused(refusals)
                self._store_pending = len(page) >= self._max_batch  # more pages, maybe
                self._stalled = None
                return True
        if new:
            new_ids = {entry_id for entry_id, _ in new}
            fresh = [item for item in items if item[0] in new_ids]
            try:
                self._store.write(StoreBatch(first_index=self._head[0], pending=new))
            except IronrootError as exc:
                self._fail_items(fresh, exc)
                return False
            self._store_pending = True
            if self._store_failed:
                # The store that failed the last integration took this write: it is back, so
                # integrate now rather than at the end of the backoff.
                self._store_failed = False
                self._retry_now = True
            for _, _, ticket in fresh:
                _resolve(ticket.durable, None)
        return False

    def _still_new(
        self, new: list[tuple[bytes, bytes]], items: list[tuple[bytes, bytes, _InFlight]]
    ) -> list[tuple[bytes, bytes]]:
        """Of ``new``, those the store still does not hold (after a write whose outcome is not
        known); the tickets of the others resolve from what is stored."""
        if not new:
            return new
        try:
            known = self._store.lookup([entry_id for entry_id, _ in new])
        except IronrootError:
            return new  # the pending write below fails the same way, and says so
        if not known:
            return new
        tickets = {entry_id: ticket for entry_id, _, ticket in items}
        for entry_id, index in known.items():
            if index is None or index >= self._head[0]:
                # Pending, or integrated beyond the head (another writer moved the store
                # meanwhile): durable; answered once a later cycle integrates it or reads
                # that state back.
                self._store_pending = True
                _resolve(tickets[entry_id].durable, None)
            else:
                self._finish_stored(tickets[entry_id], index)
        return [(entry_id, entry) for entry_id, entry in new if entry_id not in known]

    def _screen(
        self, page: list[tuple[bytes, bytes]]
    ) -> tuple[list[tuple[bytes, bytes]], list[_Refusal]]:
        """Split a page of pending rows into those a batch can integrate and those it must
        refuse (:func:`unfit_pending`, or integrated already)."""
        if not page:
            return page, []
        found = self._store.lookup([entry_id for entry_id, _ in page])
        keep: list[tuple[bytes, bytes]] = []
        refusals: list[_Refusal] = []
        for entry_id, entry in page:
            index = found.get(entry_id)
            reason = unfit_pending(entry_id, entry)
            if reason is None and index is not None:
                reason = f"its entry is integrated already, at index {index}"
            if reason is None:
                keep.append((entry_id, entry))
                continue
            recorded = self._store.meta(refusal_key(entry_id)) is not None
            refusals.append(_Refusal(entry_id, reason, index, recorded))
        return keep, refusals

    def _answer_refused(self, refusals: list[_Refusal]) -> None:
        """After the write that dropped them: log each refused row, and answer the
        registrations waiting on them (integrated already: from its index; else failed)."""
        for refusal in refusals:
            _log.error(
                "the pending row of entry %s was refused and dropped (%s): it is not in the log",
                refusal.entry_id.hex(),
                refusal.reason,
            )
            with self._cond:
                ticket = self._inflight.get(refusal.entry_id)
            if ticket is None:
                continue
            if refusal.index is not None:
                self._finish_stored(ticket, refusal.index)
                continue
            with self._cond:
                if self._inflight.get(refusal.entry_id) is ticket:
                    del self._inflight[refusal.entry_id]
            error = refused_entry(refusal.reason)
            _fail(ticket.durable, error)
            _fail(ticket.integrated, error)

    def _prepare(
        self,
        leftovers: list[tuple[bytes, bytes]],
        new: list[tuple[bytes, bytes]],
        refusals: Sequence[_Refusal] = (),
    ) -> tuple[StoreBatch, _Edge, list[tuple[tuple[int, int], bytes]]]:
        edge = self._edge.copy()
        touched: dict[tuple[int, int], bytearray] = {}
        nodes: list[tuple[tuple[int, int], bytes]] = []
        seed = len(leftovers) + len(new) <= _SEED_ENTRIES

        def visit(level: int, index: int, digest: bytes) -> None:
            if seed:
                nodes.append(((level, index), digest))
            if level % TILE_HEIGHT:
                return
            tile_level = level // TILE_HEIGHT
            tile_index, position = divmod(index, TILE_WIDTH)
            current = edge.tiles.get(tile_level)
            if current is None or current[0] != tile_index:
                if position != 0:
                    raise StorageError(f"tile {tile_level}/{tile_index} is out of step")
                current = (tile_index, bytearray())
                edge.tiles[tile_level] = current
            buffer = current[1]
            if len(buffer) != position * HASH_SIZE:
                raise StorageError(f"tile {tile_level}/{tile_index} is out of step")
            buffer += digest
            touched[(tile_level, tile_index)] = buffer
            if len(buffer) == FULL_TILE_BYTES:
                del edge.tiles[tile_level]

        first = edge.compact.size
        integrated = leftovers + new
        append = edge.compact.append
        for _, entry in integrated:
            append(leaf_hash(entry), visit)
        size, root = edge.compact.size, edge.compact.root()
        data: dict[str, bytes] | None = None
        if self._batch_signer is not None:
            signed = self._batch_signer.sign_batch(size, root)
            data = {}
            for key, value in signed.items():
                if not isinstance(key, str) or not isinstance(value, bytes):
                    raise MalformedInput("batch data must map strings to bytes")
                data[key] = value
        batch = StoreBatch(
            first_index=first,
            integrated=integrated,
            cleared=[entry_id for entry_id, _ in leftovers],
            tiles={key: bytes(buf) for key, buf in touched.items()},
            state=TreeState(size, edge.compact.hashes),
            checkpoint=self._sign(size, root),
            batch_data=data,
            refused=[r.entry_id for r in refusals],
            meta=_records(refusals),
        )
        return batch, edge, nodes

    def _commit_edge(
        self, batch: StoreBatch, edge: _Edge, nodes: Sequence[tuple[tuple[int, int], bytes]]
    ) -> None:
        assert batch.state is not None
        assert batch.checkpoint is not None
        size = batch.state.size
        root = edge.compact.root()
        # Recorded before the head moves (nothing serves the checkpoint, nothing is
        # acknowledged, before): a restored database then never signs this size again.
        recorded = self._high_water is None or self._write_high_water(batch.checkpoint)
        self._edge = edge
        self._head = (size, root, batch.checkpoint)
        # Every complete node this batch created, as committed: the inclusion proofs of the
        # receipts about to be asked for need them, and a complete node never changes.
        self._nodes.put_many(nodes)
        for listener in self._commit_listeners:
            try:
                listener(size, root, batch.batch_data or {})
            except Exception:  # a listener's bug must not stop the writer
                _log.exception("a commit listener failed for tree size %d", size)
        finished = []
        with self._cond:
            self._cond.notify_all()  # wake wait_for_growth()
            for offset, (entry_id, _) in enumerate(batch.integrated):
                ticket = self._inflight.pop(entry_id, None)
                if ticket is not None:
                    finished.append((ticket, Integrated(batch.first_index + offset, size)))
        if not recorded:  # committed, not acknowledged: a retry is answered from the store
            self._fail_items(
                [(t.entry_id, b"", t) for t, _ in finished], _record_unwritten(self._high_water)
            )
            return
        for ticket, where in finished:
            _resolve(ticket.durable, None)
            _resolve(ticket.integrated, where)

    def add_cycle_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` on the writer thread at the end of each of its cycles, once the
        callbacks of every outcome the cycle settled have run: a callback that only notes its
        outcome (on the writer thread, :meth:`on_writer_thread`) can leave the hand-over to
        another thread to the listener, one wake-up per cycle instead of one per callback.
        An exception it raises is logged and ignored; it may be added while the log runs."""
        self._cycle_listeners = (*self._cycle_listeners, listener)

    def on_writer_thread(self) -> bool:
        """Whether the caller runs on the log's writer thread (where outcomes settle, and
        the cycle listeners run after them)."""
        thread = self._thread
        return thread is not None and thread.ident == threading.get_ident()

    def _cycle_ended(self) -> None:
        for listener in self._cycle_listeners:
            try:
                listener()
            except Exception:  # a listener's bug must not stop the writer
                _log.exception("a cycle listener failed")

    def add_commit_listener(self, listener: _CommitListener) -> None:
        """Call ``listener(tree_size, root, batch_data)`` after each integration commits.

        It runs on the writer thread, after the transaction that holds the batch returned and
        before the batch's tickets resolve, with the root and batch data exactly as committed.
        An exception it raises is logged and ignored. Add listeners before :meth:`start`.
        """
        self._commit_listeners.append(listener)

    def _finish(self, ticket: _InFlight, where: Integrated) -> None:
        with self._cond:
            if self._inflight.get(ticket.entry_id) is ticket:
                del self._inflight[ticket.entry_id]
        _resolve(ticket.durable, None)
        _resolve(ticket.integrated, where)

    def _finish_stored(self, ticket: _InFlight, index: int) -> None:
        """Resolve ``ticket`` from the stored batch that holds ``index``; fail it if the store
        cannot say which (it went away since the look-up)."""
        try:
            where = self._integrated_at(index)
        except IronrootError as exc:
            self._fail_items([(ticket.entry_id, b"", ticket)], exc)
            return
        self._finish(ticket, where)

    def _fail_items(self, items: list[tuple[bytes, bytes, _InFlight]], exc: IronrootError) -> None:
        _log.error("log write failed: %s", exc)
        with self._cond:
            for entry_id, _, ticket in items:
                if self._inflight.get(entry_id) is ticket:
                    del self._inflight[entry_id]
        for _, _, ticket in items:
            _fail(ticket.durable, exc)
            _fail(ticket.integrated, exc)

    def _sign(self, size: int, root: bytes) -> bytes:
        return sign_checkpoint(Checkpoint(self._origin, size, root), self._signers)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the queue is empty and no ticket waits; True if it got there."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                tickets = [_as_ticket(t).integrated for t in self._inflight.values()]
            if not tickets:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            concurrent.futures.wait(tickets, timeout=remaining)
