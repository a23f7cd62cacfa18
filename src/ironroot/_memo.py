"""A bounded memo shared by threads: results of a pure function of immutable keys (a digest,
exact bytes), kept up to a limit with the oldest entry first out; a caller that
:meth:`~Memo.refresh`-es its hits makes it the least recently used first out.

Written here, not taken from ``functools.lru_cache``: the callers key by a digest they compute
of what they read (a file's bytes, a certificate with its issuer's key), keep only successes,
and some keep a mark that a check passed rather than a function's result; ``lru_cache`` wraps
one function of its arguments and would hold every input's bytes as its key. One class, so the
bound and the locking are written once.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

__all__ = ["Memo"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """At most ``limit`` entries; :meth:`put` drops the oldest past it. Reads take no lock
    (a dict lookup is atomic); writes do, so the bound holds under concurrent writers."""

    __slots__ = ("_entries", "_limit", "_lock")

    def __init__(self, limit: int) -> None:
        self._entries: dict[K, V] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        return self._entries.get(key)

    def __contains__(self, key: K) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: K, value: V) -> None:
        """Hold ``value`` for ``key`` (a key held already keeps its place)."""
        with self._lock:
            self._entries[key] = value
            self._trim()

    def update(self, entries: Mapping[K, V]) -> None:
        """:meth:`put` of every entry, under one lock, the bound restored after the last."""
        with self._lock:
            self._entries.update(entries)
            self._trim()

    def refresh(self, key: K) -> None:
        """Make ``key``'s entry the newest, the last to go (a hit that should keep it); a key
        not held (never, or dropped since it was read) is left out."""
        with self._lock:
            if key in self._entries:  # only writers change it, and they take the lock
                self._entries[key] = self._entries.pop(key)

    def discard(self, key: K) -> None:
        """Drop ``key``'s entry, if held (a result no longer true)."""
        with self._lock:
            self._entries.pop(key, None)

    def _trim(self) -> None:
        """Under the lock."""
        while len(self._entries) > self._limit:
            del self._entries[next(iter(self._entries))]
