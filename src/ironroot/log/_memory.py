"""The in-memory log store: dictionaries behind one lock.

For tests of higher layers and for measuring; thread-safe. It keeps the same contract as the
durable stores (``tests/log/test_log_store_contract.py``): every write is checked by
:func:`~ironroot.log.check_batch` under the lock and applied whole or not at all.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Collection, Iterator, Sequence

from ironroot.log._store import StoreBatch, TreeState, check_batch

__all__ = ["MemoryLogStore"]


class _View:
    """What :func:`check_batch` reads, from the store's dictionaries (lock held)."""

    def __init__(self, store: MemoryLogStore) -> None:
        self._s = store

    def stored_size(self) -> int:
        return self._s._state.size

    def integrated_among(self, entry_ids: Collection[bytes]) -> set[bytes]:
        return {i for i in entry_ids if i in self._s._ids}

    def pending_among(self, entry_ids: Collection[bytes]) -> set[bytes]:
        return {i for i in entry_ids if i in self._s._pending}

    def tiles(self, keys: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        tiles = self._s._tiles
        return {k: tiles[k] for k in keys if k in tiles}

    def has_checkpoint(self, size: int) -> bool:
        return size in self._s._checkpoints

    def meta_values(self, keys: Collection[str]) -> dict[str, str]:
        meta = self._s._meta
        return {k: meta[k] for k in keys if k in meta}


class MemoryLogStore:
    """A :class:`~ironroot.log.LogStore` (and :class:`~ironroot.log.AuditReader`) in memory."""

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

    # --- the log's reads --------------------------------------------------------------------

    def state(self) -> TreeState:
        with self._lock:
            return self._state

    def lookup(self, entry_ids: Sequence[bytes]) -> dict[bytes, int | None]:
        with self._lock:
            ids, pending = self._ids, self._pending
            found: dict[bytes, int | None] = {}
            for entry_id in entry_ids:
                index = ids.get(entry_id)
                if index is not None:
                    found[entry_id] = index
                elif entry_id in pending:
                    found[entry_id] = None
            return found

    def pending(self, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        with self._lock:
            items = iter(self._pending.items())
            return list(items if limit is None else itertools.islice(items, max(limit, 0)))

    def count_pending(self) -> int:
        with self._lock:
            return len(self._pending)

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

    def meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta.get(key)

    # --- audit reads ------------------------------------------------------------------------

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

    def storage_bytes(self) -> int:
        with self._lock:
            total = sum(len(e) + 32 for e in self._entries) + 40 * len(self._ids)
            total += sum(len(t) for t in self._tiles.values())
            total += sum(len(c) for c in self._checkpoints.values())
            total += sum(len(k) + len(v) for d in self._batch.values() for k, v in d.items())
            return total + sum(len(e) + 32 for e in self._pending.values())

    # --- the write --------------------------------------------------------------------------

    def write(self, batch: StoreBatch) -> None:
        with self._lock:
            check_batch(batch, _View(self))
            # Everything is checked: apply (nothing below can fail half-way).
            for key, value in batch.meta.items():
                self._meta[key] = value
            for entry_id, entry in batch.pending:
                self._pending.setdefault(entry_id, entry)
            for entry_id in (*batch.cleared, *batch.refused):
                del self._pending[entry_id]
            for entry_id, entry in batch.integrated:
                self._ids[entry_id] = len(self._entries)
                self._entries.append(entry)
            self._tiles.update(batch.tiles)
            if batch.state is not None:
                size = batch.state.size
                self._state = batch.state
                assert batch.checkpoint is not None  # check_batch: a state carries one
                bisect.insort(self._sizes, size)
                self._checkpoints[size] = batch.checkpoint
                if batch.batch_data:
                    self._batch[size] = dict(batch.batch_data)

    def close(self) -> None:
        return None
