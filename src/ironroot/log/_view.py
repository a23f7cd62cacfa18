"""The read side of the log: entries, roots, proofs, checkpoints and tiles, from the store.

A :class:`LogView` reads a :class:`~ironroot.log.LogStore` and never writes it: it has no
writer thread, no checkpoint signer and no submission queue, so it can be opened on a store
that another process sequences (a read replica, an HTTP worker of ``ironroot serve
--workers``), on SQLite read-only (:func:`open_view`). The sequencer,
:class:`~ironroot.log.Log`, is a view that also writes; the reads below are the same code
for both.

Contract: the view's head (size, root, checkpoint) is the latest tree it has taken up. It
takes up the stored tree when a read asks for more than it has (an entry, a proof or a root
beyond its head) and on each :meth:`LogView.checkpoint`, so it never serves a proof for a
tree whose checkpoint it cannot also serve. Every read goes to the store from the caller's
thread; proof nodes are computed from tiles and cached, and so are full tiles: a complete
subtree's hash never changes. The ephemeral nodes of a tree size (its incomplete right edge,
:func:`~ironroot.merkle.right_edge`) are computed once and kept for the last few sizes, so
the inclusion proofs of one batch's receipts share them.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Self

from ironroot.errors import ConfigError, MalformedInput, NotFound, StorageError
from ironroot.log._checkpoint import Checkpoint
from ironroot.log._note import Note, NoteVerifier
from ironroot.log._open import StoreConfig, is_store_url, open_store
from ironroot.log._store import LogStore, TreeState, refusal_key, refused_entry
from ironroot.log._tiles import (
    HASH_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileAddress,
    encode_entry_bundle,
    tile_hash_range,
)
from ironroot.merkle import (
    EMPTY_ROOT,
    CompactRange,
    RightEdge,
    consistency_proof,
    inclusion_proof,
    right_edge,
    root_from_nodes,
)

__all__ = ["Integrated", "LogView", "open_view"]

FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
_NODE_CACHE = 1 << 16
_TILE_CACHE = 512
_EDGE_CACHE = 8  # tree sizes whose right edge is kept (a batch's receipts ask for one)

_Head = tuple[int, bytes, bytes]
"""(size, root, checkpoint) of the latest tree a view has taken up, replaced as one value."""


@dataclass(frozen=True, slots=True)
class Integrated:
    """Where an entry landed: its ``index`` and the size of the batch that integrated it."""

    index: int
    tree_size: int


class NodeCache:
    """A small thread-safe LRU map for immutable values (complete nodes, full tiles).

    Writers hold the lock (an insert and its evictions are one step); a read does not: it is
    a dictionary look-up and a move to the recent end, each one atomic, and a key evicted
    between the two is simply not moved. (An inclusion proof reads a dozen nodes: the lock
    was a third of its cost.)"""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._data: collections.OrderedDict[tuple[int, int], bytes] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> bytes | None:
        data = self._data
        value = data.get(key)
        if value is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs more than the look-up
                data.move_to_end(key)
            except KeyError:  # evicted by a writer in between: the value is still right
                pass
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


def check_origin(store: LogStore, origin: str) -> str | None:
    """The origin ``store`` records (``None`` in a new store); :class:`ConfigError` if it
    records another than ``origin``."""
    stored = store.meta("origin")
    if stored is not None and stored != origin:
        raise ConfigError(f"this log's origin is {stored!r}, not {origin!r}")
    return stored


def stored_checkpoint(store: LogStore, size: int, *, latest: bool) -> bytes:
    """The stored checkpoint of tree ``size``: asked for by size, or as the ``latest`` (which
    must then be of that size: a writer's own log, where nobody commits between the reads).
    :class:`StorageError` when it is missing, malformed or of another size."""
    note = store.checkpoint() if latest else store.checkpoint(size)
    if note is None:
        raise StorageError(f"no checkpoint is stored for tree size {size}")
    try:
        found = Checkpoint.parse(Note.parse(note).body).size
    except MalformedInput as exc:
        raise StorageError("the stored checkpoint is malformed") from exc
    if found != size:
        raise StorageError(f"the stored checkpoint is of tree size {found}, not {size}")
    return note


class LogView:
    """Reads of an append-only log over a :class:`~ironroot.log.LogStore`; never writes it.

    Open one with :func:`open_view` (a data directory or a PostgreSQL URL) or on any store; it
    takes up the stored tree as reads ask for it (:meth:`refresh`). :meth:`close` (or
    ``with``) closes the store. ``note_verifiers`` are the log's checkpoint keys, when the
    reader knows them (:attr:`note_verifiers`); the view itself checks no signature.
    """

    def __init__(
        self,
        store: LogStore,
        *,
        origin: str,
        note_verifiers: Sequence[NoteVerifier] = (),
    ) -> None:
        Checkpoint(origin, 0, EMPTY_ROOT)  # validates the origin line
        self._store = store
        self._origin = origin
        self._verifiers = tuple(note_verifiers)
        self._cond = threading.Condition()
        self._closing = False  # close() has begun: waits end, the sequencer takes no entries
        self._wakes = 0  # wake() calls: a wait that began before one ends
        self._closed = False
        self._nodes = NodeCache(_NODE_CACHE)
        self._full_tiles = NodeCache(_TILE_CACHE)
        self._edges: collections.OrderedDict[int, RightEdge] = collections.OrderedDict()
        self._edges_lock = threading.Lock()
        self._attach()
        self._head: _Head = self._open_head(store.state())

    def _attach(self) -> None:
        """Check the store before the head is read (the sequencer also initializes it)."""
        check_origin(self._store, self._origin)

    def _open_head(self, state: TreeState) -> _Head:
        """The head at open: the stored ``state`` and the checkpoint of its size. A writer may
        commit between the two reads, so the checkpoint is asked for by size, not as the
        latest (which may already be the next batch's)."""
        note = stored_checkpoint(self._store, state.size, latest=False)
        return state.size, stored_range(state).root(), note

    def refresh(self) -> int:
        """Take the stored latest tree (size, root, checkpoint) as this view's head if it grew;
        returns the head's size. (The sequencer's :class:`~ironroot.log.Log` keeps its own.)"""
        state = self._store.state()
        if state.size <= self._head[0]:
            return self._head[0]
        root = stored_range(state).root()
        note = self._store.checkpoint(state.size)
        if note is None:
            raise StorageError(f"no checkpoint is stored for tree size {state.size}")
        with self._cond:
            if state.size > self._head[0]:
                self._head = (state.size, root, note)
                self._cond.notify_all()  # wake wait_for_growth()
            return self._head[0]

    def _followed(self, size: object) -> int:
        """The head's size, taken up from the store first when asked for a larger tree."""
        if isinstance(size, int) and size > self._head[0]:
            return self.refresh()
        return self._head[0]

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the store (idempotent); :meth:`wait_for_growth` returns."""
        with self._cond:
            if self._closed:
                return
            self._closing = self._closed = True
            self._cond.notify_all()
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- reads ----------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def note_verifiers(self) -> tuple[NoteVerifier, ...]:
        """The checkpoint verifiers (publish their ``vkey`` strings)."""
        return self._verifiers

    @property
    def tree_size(self) -> int:
        """The size of the latest integrated (and checkpointed) tree."""
        return self._head[0]

    @property
    def store(self) -> LogStore:
        return self._store

    def status(self, entry_id: bytes) -> Integrated | None:
        """Where ``entry_id`` landed; ``None`` while pending; :class:`NotFound` if unknown;
        :class:`StorageError` ``entry-refused`` if the sequencer refused its pending row (and
        it was not registered again since), saying why."""
        if not isinstance(entry_id, bytes) or len(entry_id) != HASH_SIZE:
            raise MalformedInput("an entry id is 32 bytes")
        # The sequencer's queue first, then the store: the writer commits before it drops a
        # ticket, so an entry integrated in between is seen by the store look-up.
        queued = self._queued(entry_id)
        found = self._store.lookup([entry_id])
        index = found.get(entry_id)
        if index is not None:  # also a resubmitted entry whose ticket is still queued
            return self._integrated_at(index)
        if queued or entry_id in found:
            return None
        reason = self._store.meta(refusal_key(entry_id))
        if reason is not None:
            raise refused_entry(reason)
        raise NotFound("no entry has this id")

    def _queued(self, entry_id: bytes) -> bool:
        """Whether ``entry_id`` waits in this process's queue (a view queues nothing)."""
        return False

    def _integrated_at(self, index: int) -> Integrated:
        size = self._store.batch_size_of(index)
        if size is None:
            raise StorageError(f"entry {index} is in no checkpointed batch")
        return Integrated(index, size)

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree at ``size`` (default: the current tree)."""
        if size is not None and size > self._head[0]:
            self.refresh()
        current, current_root, _ = self._head
        if size is None:
            return current_root
        self._check_size(size, current)
        if size == current:
            return current_root
        return root_from_nodes(size, self._node)

    def entry(self, index: int) -> bytes:
        """The entry at ``index``; :class:`NotFound` beyond the tree."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise MalformedInput("an entry index is a non-negative integer")
        if index >= self._head[0] and index >= self.refresh():
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
        return inclusion_proof(index, tree_size, self._node, self._right_edge(tree_size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof from ``size1`` to ``size2``."""
        self._check_size(size2, self._followed(size2))
        return consistency_proof(size1, size2, self._node)

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint note (UTF-8 text bytes)."""
        self.refresh()
        return self._head[2]

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
        seconds pass, or :meth:`wake` is called, or the log closes); returns the tree size
        then. A view's head grows when a read (or :meth:`refresh`) takes up the stored tree."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            wakes = self._wakes
            while self._head[0] <= size and not self._closing and self._wakes == wakes:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._head[0]

    def wake(self) -> None:
        """End every :meth:`wait_for_growth` in progress now, grown or not (a thread that
        waits for growth and has been asked to stop)."""
        with self._cond:
            self._wakes += 1
            self._cond.notify_all()

    # --- nodes from tiles -----------------------------------------------------------------

    @staticmethod
    def _check_size(size: int, current: int) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise MalformedInput("a tree size is a non-negative integer")
        if size > current:
            raise NotFound(f"the log has no tree of size {size} yet")

    def _right_edge(self, size: int) -> RightEdge | None:
        """The ephemeral nodes of the tree of ``size`` (a size the caller checked), computed
        once per size; ``None`` for the empty tree."""
        if size <= 0:
            return None
        with self._edges_lock:
            edge = self._edges.get(size)
            if edge is not None:
                self._edges.move_to_end(size)
                return edge
        edge = right_edge(size, self._node)  # outside the lock: it may read tiles
        with self._edges_lock:
            self._edges[size] = edge
            if len(self._edges) > _EDGE_CACHE:
                self._edges.popitem(last=False)
        return edge

    def _tile(self, level: int, index: int) -> bytes | None:
        cached = self._full_tiles.get((level, index))
        if cached is not None:
            return cached
        data = self._store.tile(level, index)
        if data is not None and len(data) == FULL_TILE_BYTES:
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


def open_view(
    where: str | PathLike[str],
    *,
    origin: str,
    note_verifiers: Sequence[NoteVerifier] = (),
) -> LogView:
    """A view of the existing log at ``where`` (:func:`~ironroot.log.open_store`): SQLite is
    opened read-only; PostgreSQL through its pool, creating nothing (a read-only session would
    read one snapshot and never see the log grow)."""
    sqlite = not is_store_url(where) and StoreConfig.of_data_dir(Path(where)).kind == "sqlite"
    store = open_store(where, read_only=sqlite, create=False)
    try:
        return LogView(store, origin=origin, note_verifiers=note_verifiers)
    except BaseException:
        store.close()
        raise


def stored_range(state: TreeState) -> CompactRange:
    """The compact range of a stored tree state (:class:`StorageError` if malformed)."""
    try:
        return CompactRange(state.size, state.hashes)
    except MalformedInput as exc:
        raise StorageError("the stored tree state is malformed") from exc
