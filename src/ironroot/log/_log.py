"""The sequenced log: durable submission, batched integration, checkpoints, tiles and proofs.

One writer thread owns all writes. Each cycle it takes what is queued (up to ``max_batch``)
and, when integration is due, prepares one :class:`StoreBatch` that both accepts the new
entries and integrates every pending entry: it assigns indices, extends the compact range
(whose ``visit`` hook fills the right-edge tiles: appending never rereads the tree), asks
the batch signer to sign the new root, signs the checkpoint, and writes it all in one
transaction. Only after that commit are the tickets' ``durable`` and ``integrated`` futures
resolved. (New entries that are integrated in the same transaction that accepts them are
written straight to ``entries``; a pending row that is deleted before the commit would
change nothing that survives.)

If integration fails (a signer raises, or the write fails), the new entries alone are
committed as pending rows, their ``durable`` futures resolve, and integration is retried
with exponential backoff; their ``integrated`` futures stay pending until it succeeds. On
open, pending rows left by an earlier run are integrated first. After a failed write the
writer reads the stored state back before it prepares another: a write whose commit got no
answer may have committed after all (a database connection lost at ``COMMIT``), and another
writer may have moved the log (the store's fence refused the batch); either way the next
batch starts from what is stored.

Durability contract: a ``durable`` future resolves only after the commit that holds the
entry returned (SQLite: WAL, ``synchronous=FULL``; PostgreSQL: ``synchronous_commit=on``).
After a crash at any moment, every entry whose ``durable`` resolved is in the log (pending
or integrated), and every checkpoint ever published is a prefix of the tree that the next
checkpoint signs, because the state, the entries, the tiles and the checkpoint are committed
together.

Reads (entries, tiles, proofs) go to the store from the caller's thread. Proof nodes are
computed from tiles and cached: a complete subtree's hash never changes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from types import TracebackType
from typing import Protocol, TypeVar

from ironroot.errors import (
    ConfigError,
    IronrootError,
    MalformedInput,
    NotFound,
    PayloadTooLarge,
    StorageError,
)
from ironroot.log._checkpoint import Checkpoint
from ironroot.log._memory import MemoryLogStore
from ironroot.log._note import Note, NoteSigner, NoteVerifier, sign_checkpoint
from ironroot.log._open import open_store
from ironroot.log._store import LogStore, StoreBatch, TreeState
from ironroot.log._tiles import (
    HASH_SIZE,
    MAX_ENTRY_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileAddress,
    encode_entry_bundle,
    tile_hash_range,
)
from ironroot.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
)

__all__ = ["BatchSigner", "Integrated", "Log", "Ticket"]

_log = logging.getLogger("ironroot.log")
_FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
_NODE_CACHE = 1 << 16
# A batch up to this many entries puts the nodes it creates into the node cache (about two
# per entry); a bulk load's would only push each other out, so tiles serve those.
_SEED_ENTRIES = 2048
_TILE_CACHE = 512
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 30.0
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Integrated:
    """Where an entry landed: its ``index`` and the size of the batch that integrated it."""

    index: int
    tree_size: int


@dataclass(frozen=True, slots=True)
class Ticket:
    """A submission: its id and two futures (durable, then integrated)."""

    entry_id: bytes
    durable: concurrent.futures.Future[None]
    integrated: concurrent.futures.Future[Integrated]


class BatchSigner(Protocol):
    """Signs each integrated batch's root (the transparency service makes receipts here)."""

    def sign_batch(self, tree_size: int, root: bytes) -> Mapping[str, bytes]: ...


_CommitListener = Callable[[int, bytes, Mapping[str, bytes]], None]
"""``listener(tree_size, root, batch_data)``: the integration batch ending at ``tree_size``, with
that root and the batch signer's data, has just committed (:meth:`Log.add_commit_listener`)."""


def _new_ticket(entry_id: bytes) -> Ticket:
    return Ticket(entry_id, concurrent.futures.Future(), concurrent.futures.Future())


def _resolve(future: concurrent.futures.Future[_T], value: _T) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: concurrent.futures.Future[_T], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class _LRU:
    """A small thread-safe LRU map for immutable values (complete nodes, full tiles)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._data: collections.OrderedDict[tuple[int, int], bytes] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[int, int], value: bytes) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._capacity:
                self._data.popitem(last=False)

    def put_many(self, items: Sequence[tuple[tuple[int, int], bytes]]) -> None:
        with self._lock:
            data = self._data
            for key, value in items:
                data[key] = value
                data.move_to_end(key)
            while len(data) > self._capacity:
                data.popitem(last=False)


@dataclass(slots=True)
class _Edge:
    """The writer's in-memory right edge: compact range and the partial tile per tile level."""

    compact: CompactRange
    tiles: dict[int, tuple[int, bytearray]]

    def copy(self) -> _Edge:
        return _Edge(
            self.compact.copy(), {k: (i, bytearray(b)) for k, (i, b) in self.tiles.items()}
        )


class Log:
    """An append-only log over a :class:`~ironroot.log.LogStore`.

    Use :meth:`open` (SQLite under a data directory, or a PostgreSQL URL), :meth:`open_memory`,
    or pass any store; then :meth:`start` (or ``with``) to run the writer, and :meth:`close`
    to stop it (it closes the store).
    """

    def __init__(
        self,
        store: LogStore,
        *,
        origin: str,
        note_signers: Sequence[NoteSigner],
        batch_signer: BatchSigner | None = None,
        max_batch: int = 4096,
        linger: float = 0.0,
        _follower: bool = False,
    ) -> None:
        if not note_signers and not _follower:
            raise ConfigError("a log needs at least one checkpoint signer")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError("max_batch must be a positive integer")
        Checkpoint(origin, 0, EMPTY_ROOT)  # validates the origin line
        self._store = store
        self._origin = origin
        self._signers = tuple(note_signers)
        self._batch_signer = batch_signer
        self._max_batch = max_batch
        if not 0.0 <= linger <= 1.0:
            raise ConfigError("linger must be between 0 and 1 second")
        self._linger = linger
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[bytes, bytes, Ticket]] = collections.deque()
        self._queued_at = 0.0  # when the queue last went from empty to non-empty (monotonic)
        self._inflight: dict[bytes, Ticket] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._nodes = _LRU(_NODE_CACHE)
        self._commit_listeners: list[_CommitListener] = []
        self._full_tiles = _LRU(_TILE_CACHE)
        self._store_failed = False  # the last integration failed in the store (writer thread)
        self._retry_now = False
        self._follower = _follower
        if _follower:
            stored = store.meta("origin")
            if stored is not None and stored != origin:
                raise ConfigError(f"this log's origin is {stored!r}, not {origin!r}")
        else:
            self._initialize()
        state = store.state()
        self._edge = self._load_edge(state)
        self._store_pending = not _follower and bool(store.pending())
        # (size, root, checkpoint) of the latest integrated tree, replaced as one value.
        self._head = (state.size, self._edge.compact.root(), self._latest_checkpoint(state))

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
    ) -> Log:
        """Open (creating if needed) the log at ``where``: the SQLite log under a data
        directory, or a PostgreSQL URL (:func:`~ironroot.log.open_store`).

        ``linger`` (seconds) lets the writer wait that long after the first queued entry for
        more, so concurrent submissions share one integration (root, signatures, commit)."""
        store = open_store(where)
        try:
            return cls(
                store,
                origin=origin,
                note_signers=note_signers,
                batch_signer=batch_signer,
                max_batch=max_batch,
                linger=linger,
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

    @classmethod
    def follower(cls, store: LogStore, *, origin: str) -> Log:
        """A log that only reads ``store`` while another process's writer writes it (the HTTP
        workers of ``ironroot serve --workers``, the replicas that are not the sequencer).

        It never writes, signs or starts a writer; it takes up the stored tree when a read asks
        for a larger one, and :meth:`checkpoint` reads the latest stored checkpoint each time.
        """
        return cls(store, origin=origin, note_signers=(), _follower=True)

    def refresh(self) -> int:
        """Follower: take the stored latest tree (size, root, checkpoint) as this log's head
        if it grew; returns the head's size. A writer's log keeps its own head."""
        if not self._follower:
            return self._head[0]
        state = self._store.state()
        if state.size <= self._head[0]:
            return self._head[0]
        try:
            root = CompactRange(state.size, state.hashes).root()
        except MalformedInput as exc:
            raise StorageError("the stored tree state is malformed") from exc
        note = self._store.checkpoint(state.size)
        if note is None:
            raise StorageError(f"no checkpoint is stored for tree size {state.size}")
        with self._cond:
            if state.size > self._head[0]:
                self._head = (state.size, root, note)
            return self._head[0]

    def _initialize(self) -> None:
        """Check the stored origin; record it, and the signed empty tree, in a new store."""
        stored = self._store.meta("origin")
        if stored is not None and stored != self._origin:
            raise ConfigError(f"this log's origin is {stored!r}, not {self._origin!r}")
        state = self._store.state()
        empty = state.size == 0 and self._store.checkpoint() is None
        if stored is not None and not empty:
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

    def _latest_checkpoint(self, state: TreeState) -> bytes:
        latest = self._store.checkpoint()
        if latest is None:
            raise StorageError("the log has entries but no checkpoint")
        try:
            latest_size = Checkpoint.parse(Note.parse(latest).body).size
        except MalformedInput as exc:
            raise StorageError("the latest stored checkpoint is malformed") from exc
        if latest_size != state.size:
            raise StorageError("the latest checkpoint does not match the stored tree size")
        return latest

    def _resync(self) -> None:
        """After a failed write: take the stored state as the writer's (writer thread)."""
        try:
            state = self._store.state()
            self._store_pending = bool(self._store.pending())
            if state.size == self._head[0] and state.hashes == self._edge.compact.hashes:
                return
            edge = self._load_edge(state)
            latest = self._latest_checkpoint(state)
        except IronrootError as exc:
            _log.warning("cannot read the log's stored state back yet: %s", exc)
            return
        _log.warning(
            "the stored log is at size %d, not %d: continuing from the stored state",
            state.size,
            self._head[0],
        )
        self._edge = edge
        with self._cond:
            self._head = (state.size, edge.compact.root(), latest)
            self._cond.notify_all()

    def _load_edge(self, state: TreeState) -> _Edge:
        try:
            compact = CompactRange(state.size, state.hashes)
        except MalformedInput as exc:
            raise StorageError("the stored tree state is malformed") from exc
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
            if self._closed:
                raise StorageError("the log is closed")
            if self._follower:
                raise StorageError("a follower log does not write")
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
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        else:
            self._drain()
        with self._cond:
            self._closed = True
            leftovers = list(self._inflight.values())
            self._inflight.clear()
        for ticket in leftovers:
            _fail(ticket.durable, StorageError("the log was closed before the entry was stored"))
            _fail(
                ticket.integrated,
                StorageError("the log was closed; the entry is integrated when it reopens"),
            )
        self._store.close()

    def __enter__(self) -> Log:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- submission ---------------------------------------------------------------------

    def submit(self, entry: bytes) -> Ticket:
        """Queue ``entry``; its id is SHA-256(entry), so resubmitting is idempotent."""
        if not isinstance(entry, bytes):
            raise MalformedInput("a log entry must be bytes")
        if len(entry) > MAX_ENTRY_SIZE:
            raise PayloadTooLarge(f"a log entry is at most {MAX_ENTRY_SIZE} bytes")
        entry_id = hashlib.sha256(entry).digest()
        with self._cond:
            if self._follower:
                raise StorageError("a follower log does not write")
            if self._closed or self._stopping:
                raise StorageError("the log is closed")
            # An entry already in the store is found by the writer's one batched look-up per
            # cycle (and its ticket resolved there): no query here, on the caller's thread.
            ticket = self._inflight.get(entry_id)
            if ticket is None:
                ticket = _new_ticket(entry_id)
                self._inflight[entry_id] = ticket
                self._enqueue((entry_id, entry, ticket))
            return ticket

    def _enqueue(self, item: tuple[bytes, bytes, Ticket]) -> None:
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
        elif len(queue) == self._max_batch:
            self._cond.notify_all()

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
        prepared = []
        for entry in entries:
            if not isinstance(entry, bytes):
                raise MalformedInput("a log entry must be bytes")
            if len(entry) > MAX_ENTRY_SIZE:
                raise PayloadTooLarge(f"a log entry is at most {MAX_ENTRY_SIZE} bytes")
            prepared.append((hashlib.sha256(entry).digest(), entry))
        tickets = []
        with self._cond:
            if self._closed or self._stopping:
                raise StorageError("the log is closed")
            for entry_id, entry in prepared:
                ticket = self._inflight.get(entry_id)
                if ticket is None:
                    ticket = _new_ticket(entry_id)
                    self._inflight[entry_id] = ticket
                    self._enqueue((entry_id, entry, ticket))
                tickets.append(ticket)
        return tickets

    def status(self, entry_id: bytes) -> Integrated | None:
        """Where ``entry_id`` landed; ``None`` while pending; :class:`NotFound` if unknown."""
        if not isinstance(entry_id, bytes) or len(entry_id) != HASH_SIZE:
            raise MalformedInput("an entry id is 32 bytes")
        # The ticket first, then the store: the writer commits before it drops a ticket, so
        # an entry integrated in between is seen by the store look-up.
        with self._cond:
            ticket = self._inflight.get(entry_id)
        found = self._store.lookup([entry_id])
        index = found.get(entry_id)
        if index is not None:  # also a resubmitted entry whose ticket is still queued
            return self._integrated_at(index)
        if ticket is not None or entry_id in found:
            return None
        raise NotFound("no entry has this id")

    def _integrated_at(self, index: int) -> Integrated:
        size = self._store.batch_size_of(index)
        if size is None:
            raise StorageError(f"entry {index} is in no checkpointed batch")
        return Integrated(index, size)

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
                while not self._queue and not self._stopping:
                    timeout = None if retry_at is None else retry_at - time.monotonic()
                    if timeout is not None and timeout <= 0:
                        break
                    self._cond.wait(timeout)
                if self._linger > 0 and self._queue and not self._stopping:
                    # Let concurrent submissions join this batch: one root, one signature
                    # and one commit for all of them. The linger counts from the first
                    # queued entry: entries that queued up during the previous cycle have
                    # waited long enough already.
                    until = self._queued_at + self._linger
                    while len(self._queue) < self._max_batch and not self._stopping:
                        left = until - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                items = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))
                ]
                last = self._stopping and not self._queue
            due = retry_at is None or time.monotonic() >= retry_at
            if items or (due and self._store_pending):
                if self._cycle(items, integrate=due):
                    backoff, retry_at = _BACKOFF_FIRST, None
                    self._store_failed = False
                elif self._retry_now:
                    self._retry_now = False
                    backoff, retry_at = _BACKOFF_FIRST, time.monotonic()
                elif self._store_pending and due:
                    retry_at = time.monotonic() + backoff
                    backoff = min(backoff * 2, _BACKOFF_MAX)
            if last:
                return

    def _cycle(self, items: list[tuple[bytes, bytes, Ticket]], *, integrate: bool) -> bool:
        """One writer cycle; returns True if integration ran and succeeded."""
        new: list[tuple[bytes, bytes]] = []
        seen: set[bytes] = set()
        durable_now: list[Ticket] = []
        done_now: list[tuple[Ticket, int]] = []
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
            try:
                where = self._integrated_at(index)
            except IronrootError as exc:  # the store went away since the look-up
                self._fail_items([(ticket.entry_id, b"", ticket)], exc)
                continue
            self._finish(ticket, where)
        for ticket in durable_now:
            _resolve(ticket.durable, None)

        if integrate and (new or self._store_pending):
            try:
                leftovers = self._store.pending() if self._store_pending else []
                batch, edge, nodes = self._prepare(leftovers, new)
                self._store.write(batch)
            except Exception as exc:  # a signer or the store failed: keep the entries durable
                _log.warning("log integration failed, will retry: %s", exc)
                if isinstance(exc, StorageError):
                    self._store_failed = True
                    self._resync()
                    new = self._still_new(new, items)
            else:
                self._commit_edge(batch, edge, nodes)
                self._store_pending = False
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
        self, new: list[tuple[bytes, bytes]], items: list[tuple[bytes, bytes, Ticket]]
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
            if index is None:
                self._store_pending = True
                _resolve(tickets[entry_id].durable, None)
            else:
                try:
                    self._finish(tickets[entry_id], self._integrated_at(index))
                except IronrootError as exc:
                    self._fail_items([(entry_id, b"", tickets[entry_id])], exc)
        return [(entry_id, entry) for entry_id, entry in new if entry_id not in known]

    def _prepare(
        self, leftovers: list[tuple[bytes, bytes]], new: list[tuple[bytes, bytes]]
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
            if len(buffer) == _FULL_TILE_BYTES:
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
        )
        return batch, edge, nodes

    def _commit_edge(
        self, batch: StoreBatch, edge: _Edge, nodes: Sequence[tuple[tuple[int, int], bytes]]
    ) -> None:
        assert batch.state is not None
        assert batch.checkpoint is not None
        size = batch.state.size
        root = edge.compact.root()
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
        for ticket, where in finished:
            _resolve(ticket.durable, None)
            _resolve(ticket.integrated, where)

    def add_commit_listener(self, listener: _CommitListener) -> None:
        """Call ``listener(tree_size, root, batch_data)`` after each integration commits.

        It runs on the writer thread, after the transaction that holds the batch returned and
        before the batch's tickets resolve, with the root and batch data exactly as committed.
        An exception it raises is logged and ignored. Add listeners before :meth:`start`.
        """
        self._commit_listeners.append(listener)

    def _finish(self, ticket: Ticket, where: Integrated) -> None:
        with self._cond:
            if self._inflight.get(ticket.entry_id) is ticket:
                del self._inflight[ticket.entry_id]
        _resolve(ticket.durable, None)
        _resolve(ticket.integrated, where)

    def _fail_items(self, items: list[tuple[bytes, bytes, Ticket]], exc: IronrootError) -> None:
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

    # --- reads ----------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def note_verifiers(self) -> tuple[NoteVerifier, ...]:
        """The checkpoint verifiers (publish their ``vkey`` strings)."""
        return tuple(s.verifier() for s in self._signers)

    @property
    def tree_size(self) -> int:
        """The size of the latest integrated (and checkpointed) tree."""
        return self._head[0]

    @property
    def store(self) -> LogStore:
        return self._store

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree at ``size`` (default: the current tree)."""
        if size is not None and self._follower and size > self._head[0]:
            self.refresh()
        current, current_root, _ = self._head
        if size is None:
            return current_root
        self._check_size(size, current)
        if size == current:
            return current_root
        if size == 0:
            return EMPTY_ROOT
        parts = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                parts.append(self._node(level, start >> level))
                start += 1 << level
        acc = parts[-1]
        for part in reversed(parts[:-1]):
            acc = node_hash(part, acc)
        return acc

    def entry(self, index: int) -> bytes:
        """The entry at ``index``; :class:`NotFound` beyond the tree."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise MalformedInput("an entry index is a non-negative integer")
        if index >= self._head[0] and (not self._follower or index >= self.refresh()):
            raise NotFound(f"no entry at index {index}")
        found = self._store.entries(index, index + 1)
        if not found:
            raise StorageError(f"entry {index} is missing from the store")
        return found[0]

    def entry_id_at(self, index: int) -> bytes:
        """SHA-256 of the entry at ``index``."""
        return hashlib.sha256(self.entry(index)).digest()

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``tree_size``."""
        self._check_size(tree_size, self._followed(tree_size))
        return inclusion_proof(index, tree_size, self._node)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof from ``size1`` to ``size2``."""
        self._check_size(size2, self._followed(size2))
        return consistency_proof(size1, size2, self._node)

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint note (UTF-8 text bytes)."""
        if self._follower:
            self.refresh()
        return self._head[2]

    def _followed(self, size: object) -> int:
        """The head's size, taken up from the store first when a follower is asked for a
        larger tree."""
        if self._follower and isinstance(size, int) and size > self._head[0]:
            return self.refresh()
        return self._head[0]

    def checkpoint_at(self, size: int) -> bytes:
        """The checkpoint published at ``size``; :class:`NotFound` if none was."""
        note = self._store.checkpoint(size)
        if note is None:
            raise NotFound(f"no checkpoint was published at size {size}")
        return note

    def batch_data(self, tree_size: int) -> Mapping[str, bytes]:
        """What the batch signer returned for the batch ending at ``tree_size``."""
        data = self._store.batch_data(tree_size)
        if data is None:
            raise NotFound(f"no batch ends at tree size {tree_size}")
        return data

    def read_tile(self, level: int, index: int, width: int | None) -> bytes:
        """A hash tile (``width`` None: full); :class:`NotFound` if the log has no such tile."""
        address = TileAddress(level, index, width)
        data = self._tile(level, index)
        need = address.count * HASH_SIZE
        if data is None or len(data) < need or (width is None and len(data) != need):
            raise NotFound(f"no tile {address.path}")
        return data[:need]

    def read_entry_bundle(self, index: int, width: int | None) -> bytes:
        """An entry bundle (``width`` None: full); :class:`NotFound` beyond the tree."""
        address = TileAddress(0, index, width, entries=True)
        start = index * TILE_WIDTH
        stop = start + address.count
        if stop > self._followed(stop):
            raise NotFound(f"no entry bundle {address.path}")
        entries = self._store.entries(start, stop)
        if len(entries) != address.count:
            raise StorageError(f"entries {start}..{stop} are missing from the store")
        return encode_entry_bundle(entries)

    def wait_for_growth(self, size: int, timeout: float | None = None) -> int:
        """Wait until the latest checkpointed tree is larger than ``size`` (or ``timeout``
        seconds pass, or the log closes); returns the tree size then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._head[0] <= size and not (self._closed or self._stopping):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._head[0]

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until the queue is empty and no ticket waits; True if it got there."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                tickets = [t.integrated for t in self._inflight.values()]
            if not tickets:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            concurrent.futures.wait(tickets, timeout=remaining)

    # --- nodes from tiles -----------------------------------------------------------------

    @staticmethod
    def _check_size(size: int, current: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise MalformedInput("a tree size is a non-negative integer")
        if size > current:
            raise NotFound(f"the log has no tree of size {size} yet")

    def _tile(self, level: int, index: int) -> bytes | None:
        cached = self._full_tiles.get((level, index))
        if cached is not None:
            return cached
        data = self._store.tile(level, index)
        if data is not None and len(data) == _FULL_TILE_BYTES:
            self._full_tiles.put((level, index), data)
        return data

    def _node(self, level: int, index: int) -> bytes:
        key = (level, index)
        cached = self._nodes.get(key)
        if cached is not None:
            return cached
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height
        tile_index, offset = divmod(first, TILE_WIDTH)
        count = 1 << height
        data = self._tile(tile_level, tile_index)
        if data is None or len(data) < (offset + count) * HASH_SIZE:
            raise StorageError(f"tile {tile_level}/{tile_index} lacks node {level}/{index}")
        start = offset * HASH_SIZE
        stop = start + count * HASH_SIZE
        hashes = [data[i : i + HASH_SIZE] for i in range(start, stop, HASH_SIZE)]
        digest = hashes[0] if count == 1 else tile_hash_range(hashes)
        self._nodes.put(key, digest)
        return digest
