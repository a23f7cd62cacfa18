"""The log's storage protocol and the in-memory store.

A store keeps, for one log: pending entries (durable, not yet sequenced), integrated entries
by index, the entry-id → index map, hash tiles (level, index → current bytes; a full tile
never changes), every published checkpoint by size, the batch signer's data by tree size,
and the tree state (size and compact-range hashes). A :class:`StoreBatch` is written
atomically: all of it or none of it, so the state row always describes exactly the entries
and tiles beside it. Stores check the batch against the stored size (a fence: a batch
prepared from a stale state is refused with :class:`StorageError`).

The in-memory store is for tests of higher layers and for measuring; it is thread-safe.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ironroot.errors import StorageError

__all__ = ["LogReader", "LogStore", "MemoryLogStore", "StoreBatch", "TreeState"]


@dataclass(frozen=True, slots=True)
class TreeState:
    """The stored tree: ``size`` leaves and the compact-range ``hashes`` of its right edge."""

    size: int
    hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class StoreBatch:
    """One atomic write.

    ``pending`` rows (entry id, entry) become durable but unsequenced. ``integrated``
    (entry id, entry) pairs take indices
    ``first_index, first_index + 1, ...``; ``cleared`` are the pending ids they consume.
    ``state`` (when integrating) is the new tree state, ``checkpoint`` the signed note at
    ``state.size``, ``batch_data`` the batch signer's result for that size, and ``tiles``
    the new bytes of every tile the batch changed.
    """

    first_index: int
    pending: Sequence[tuple[bytes, bytes]] = ()
    integrated: Sequence[tuple[bytes, bytes]] = ()
    cleared: Sequence[bytes] = ()
    tiles: Mapping[tuple[int, int], bytes] = field(default_factory=dict)
    state: TreeState | None = None
    checkpoint: bytes | None = None
    batch_data: Mapping[str, bytes] | None = None


class LogReader(Protocol):
    """Reads of a log store (safe from any thread)."""

    def state(self) -> TreeState: ...
    def find(self, entry_id: bytes) -> int | None: ...
    def find_many(self, entry_ids: Sequence[bytes]) -> dict[bytes, int]: ...
    def is_pending(self, entry_id: bytes) -> bool: ...
    def entry(self, index: int) -> bytes | None: ...
    def entries(self, start: int, stop: int) -> list[bytes]: ...
    def tile(self, level: int, index: int) -> bytes | None: ...
    def checkpoint(self, size: int | None = None) -> bytes | None: ...
    def batch_size_of(self, index: int) -> int | None: ...
    def batch_data(self, size: int) -> dict[str, bytes] | None: ...
    def pending(self) -> list[tuple[bytes, bytes]]: ...
    def iter_entries(self) -> Iterator[tuple[int, bytes]]: ...
    def checkpoint_sizes(self) -> list[int]: ...
    def batch_data_sizes(self) -> list[int]: ...
    def count_tiles(self) -> int: ...
    def count_entry_ids(self) -> int: ...
    def meta(self, key: str) -> str | None: ...
    def storage_bytes(self) -> int: ...


class LogStore(LogReader, Protocol):
    """A log store: reads, plus one atomic write and metadata."""

    def write(self, batch: StoreBatch) -> None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def close(self) -> None: ...


class MemoryLogStore:
    """A :class:`LogStore` in dictionaries, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meta: dict[str, str] = {}
        self._pending: dict[bytes, bytes] = {}
        self._entries: list[bytes] = []
        self._ids: dict[bytes, int] = {}
        self._tiles: dict[tuple[int, int], bytes] = {}
        self._checkpoints: dict[int, bytes] = {}
        self._sizes: list[int] = []  # checkpoint sizes, increasing
        self._batch: dict[int, dict[str, bytes]] = {}
        self._state = TreeState(0, ())

    # --- reads ----------------------------------------------------------------------------

    def state(self) -> TreeState:
        with self._lock:
            return self._state

    def find(self, entry_id: bytes) -> int | None:
        with self._lock:
            return self._ids.get(entry_id)

    def find_many(self, entry_ids: Sequence[bytes]) -> dict[bytes, int]:
        with self._lock:
            ids = self._ids
            return {i: ids[i] for i in entry_ids if i in ids}

    def is_pending(self, entry_id: bytes) -> bool:
        with self._lock:
            return entry_id in self._pending

    def entry(self, index: int) -> bytes | None:
        with self._lock:
            return self._entries[index] if 0 <= index < len(self._entries) else None

    def entries(self, start: int, stop: int) -> list[bytes]:
        with self._lock:
            return self._entries[max(start, 0) : max(stop, 0)]

    def tile(self, level: int, index: int) -> bytes | None:
        with self._lock:
            return self._tiles.get((level, index))

    def checkpoint(self, size: int | None = None) -> bytes | None:
        with self._lock:
            if size is None:
                return self._checkpoints[self._sizes[-1]] if self._sizes else None
            return self._checkpoints.get(size)

    def batch_size_of(self, index: int) -> int | None:
        with self._lock:
            at = bisect.bisect_right(self._sizes, index)
            return self._sizes[at] if at < len(self._sizes) else None

    def batch_data(self, size: int) -> dict[str, bytes] | None:
        with self._lock:
            if size not in self._checkpoints:
                return None
            return dict(self._batch.get(size, {}))

    def pending(self) -> list[tuple[bytes, bytes]]:
        with self._lock:
            return list(self._pending.items())

    def iter_entries(self) -> Iterator[tuple[int, bytes]]:
        with self._lock:
            snapshot = list(self._entries)
        yield from enumerate(snapshot)

    def checkpoint_sizes(self) -> list[int]:
        with self._lock:
            return list(self._sizes)

    def batch_data_sizes(self) -> list[int]:
        with self._lock:
            return sorted(self._batch)

    def count_tiles(self) -> int:
        with self._lock:
            return len(self._tiles)

    def count_entry_ids(self) -> int:
        with self._lock:
            return len(self._ids)

    def meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta.get(key)

    def storage_bytes(self) -> int:
        with self._lock:
            total = sum(len(e) + 32 for e in self._entries) + 40 * len(self._ids)
            total += sum(len(t) for t in self._tiles.values())
            total += sum(len(c) for c in self._checkpoints.values())
            total += sum(len(k) + len(v) for d in self._batch.values() for k, v in d.items())
            return total + sum(len(e) + 32 for e in self._pending.values())

    # --- writes ---------------------------------------------------------------------------

    def write(self, batch: StoreBatch) -> None:
        with self._lock:
            if batch.first_index != len(self._entries):
                raise StorageError("the batch was prepared from a stale tree state")
            for entry_id, _ in batch.pending:
                if entry_id in self._ids:
                    raise StorageError("a pending entry is already integrated")
            for entry_id in batch.cleared:
                if entry_id not in self._pending:
                    raise StorageError("an entry to integrate is not pending")
            for key, data in batch.tiles.items():
                old = self._tiles.get(key)
                if old is not None and (len(old) == 8192 or not data.startswith(old)):
                    raise StorageError("a tile would be rewritten, not extended")
            # Everything is checked: apply (nothing below can fail half-way).
            for entry_id, entry in batch.pending:
                self._pending.setdefault(entry_id, entry)
            for entry_id in batch.cleared:
                del self._pending[entry_id]
            for entry_id, entry in batch.integrated:
                self._ids[entry_id] = len(self._entries)
                self._entries.append(entry)
            self._tiles.update(batch.tiles)
            if batch.state is not None:
                self._state = batch.state
                if batch.checkpoint is not None:
                    if batch.state.size not in self._checkpoints:
                        bisect.insort(self._sizes, batch.state.size)
                    self._checkpoints[batch.state.size] = batch.checkpoint
                if batch.batch_data is not None:
                    self._batch[batch.state.size] = dict(batch.batch_data)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._meta[key] = value

    def close(self) -> None:
        return None
