"""A bounded memo shared by threads: results of a pure function of immutable keys (a digest,
exact bytes), kept up to a limit with the oldest entry first out.

Written here, not taken from ``functools.lru_cache``: the callers key by a digest they compute
of what they read (a file's bytes, a certificate with its issuer's key), keep only successes,
and some keep a mark that a check passed rather than a function's result; ``lru_cache`` wraps
one function of its arguments and would hold every input's bytes as its key. One class, so the
bound and the locking are written once.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
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
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._limit:
                del self._entries[next(iter(self._entries))]
