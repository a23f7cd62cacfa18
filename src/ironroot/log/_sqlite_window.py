"""The SQLite store's id window: the keys of the newest entries, kept in memory (ADR 0011).

The store (:mod:`ironroot.log._sqlite`) does not store the keys of the entries from
``indexed`` on; each store object keeps them here, as 16-byte records (the id's first 8 bytes,
then the entry's index) in 2^18 buckets by the id's first 18 bits, and its merger stores them
in key-ordered slices of buckets. This module holds the records only: no SQL beyond reading
the entries it is made from, no decision about what a key means (the store confirms every key
against the entry it points at).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import sqlite3
import struct
import threading
from collections.abc import Iterator, Sequence

from ironroot.errors import StorageError

__all__ = ["BUCKETS", "Window"]

_HASH = 32
BUCKET_BITS = 18  # the window's buckets: by the first 18 bits of the id
BUCKETS = 1 << BUCKET_BITS
_BUCKET_SHIFT = 32 - BUCKET_BITS
_DROP_RUN = 4096  # buckets the window forgets merged records from under one lock
_RECORD = 16  # a window record: the id's first 8 bytes, then the index (8 bytes)


class Window:
    """The keys of the entries whose keys are not stored yet (``start`` up to ``stop``), kept
    in memory by each store object and made from the entries themselves.

    16 bytes per entry: a record of the id's first 8 bytes and the entry's index, in one of
    2^18 buckets by the id's first 18 bits (``bytes`` of records each: ~10 records in each
    for a window of 2.5 million, and ~3 bytes of object header per entry). Records join a
    bucket in index order (the window only grows at its end), so a look-up is one ``find`` in
    a bucket, the entries a merge stored leave each bucket as a prefix, and a run of buckets
    is a run of keys (a merge slice). A key only says where an id may be: the caller confirms
    it against the entry. Buckets are immutable and replaced whole, so a look-up holding one
    reads what it held. Shared by the store's threads.
    """

    def __init__(self, key_bytes: int) -> None:
        self._key_bytes = key_bytes  # of an id, in the store's key (``keys``)
        self._lock = threading.Lock()
        self._drop = threading.Lock()  # one thread forgets merged entries; the others go on
        self.start = 0
        self.stop = 0
        # How many times records were forgotten (counted before any goes): a look-up that
        # read ``indexed`` before a drop may miss merged entries in the window, and this
        # tells it to look for them among the stored keys after all.
        self.drops = 0
        # The buckets new records join, then (while a merge runs) the frozen ones it merges:
        # one tuple, replaced whole, so a look-up reads both generations or one.
        self._gens: tuple[list[bytes], ...] = ([b""] * BUCKETS,)
        self._split = 0  # the frozen buckets hold the entries before this

    def catch_up(self, conn: sqlite3.Connection, indexed: int, size: int) -> None:
        # Entries before ``indexed`` that the window still holds are harmless (a look-up
        # confirms every key against the entry), so a thread that finds another dropping
        # them does not wait for it.
        if indexed > self.start and self._drop.acquire(blocking=False):
            try:
                self.drop_before(indexed)
            finally:
                self._drop.release()
        with self._lock:
            if self.stop >= size:
                return
            # Every entry from the window's end: the state row's size is not trusted to say
            # where the entries stop (log verify compares the two).
            cursor = conn.execute(
                "SELECT idx, entry FROM entries WHERE idx >= ? ORDER BY idx", (self.stop,)
            )
            buckets = self._gens[0]
            expected = self.stop
            while rows := cursor.fetchmany(4096):
                for idx, entry in rows:
                    if idx != expected:
                        self.stop = expected
                        raise StorageError(f"entry {expected} is missing from the log database")
                    entry_id = hashlib.sha256(entry).digest()
                    buckets[_bucket(entry_id)] += _record(entry_id, expected)
                    expected += 1
            self.stop = expected

    @contextlib.contextmanager
    def dropping(self) -> Iterator[None]:
        """Hold the window's drop (for :meth:`drop_before`): look-ups meanwhile skip it."""
        with self._drop:
            yield

    def freeze(self) -> int:
        """Set the window's buckets aside for a merge (new records go to fresh ones) and
        return where they stop: the merge stores their keys, then :meth:`drop_before` that
        index forgets them at once. A merge that failed left them frozen: the same again."""
        with self._lock:
            if len(self._gens) == 1:
                self._gens = ([b""] * BUCKETS, self._gens[0])
                self._split = self.stop
            return self._split

    def drop_before(self, indexed: int) -> None:
        """Forget the entries before ``indexed`` (their keys are stored now): the frozen
        buckets at once; records elsewhere (merged by another store object) a run of buckets
        at a time, so that a write adding its ids waits for one run, not for all."""
        with self._lock:
            if indexed > self.start:
                self.drops += 1
            if self.stop <= indexed:  # all of them (a new store object, or one behind)
                self._gens = ([b""] * BUCKETS,)
                self.start = self.stop = max(self.start, indexed)
                return
            if len(self._gens) == 2 and indexed >= self._split:
                self._gens = (self._gens[0],)
                self.start = max(self.start, self._split)
        for first in range(0, BUCKETS, _DROP_RUN):
            with self._lock:
                if indexed <= self.start:
                    return
                for buckets in self._gens:
                    _drop_run(buckets, first, indexed)
        with self._lock:
            self.start = max(self.start, indexed)
            self.stop = max(self.stop, self.start)

    def extend(self, first: int, entry_ids: Sequence[bytes]) -> None:
        """Add a committed batch's ids (when the window reaches up to it)."""
        with self._lock:
            if self.stop == first:
                buckets = self._gens[0]
                for idx, entry_id in enumerate(entry_ids, first):
                    buckets[_bucket(entry_id)] += _record(entry_id, idx)
                self.stop = first + len(entry_ids)

    def find(self, entry_id: bytes) -> list[int]:
        """The indices of the window's entries whose ids begin as ``entry_id`` does."""
        if len(entry_id) != _HASH:
            return []
        prefix, number = entry_id[:8], _bucket(entry_id)
        found = []
        for buckets in self._gens:
            bucket = buckets[number]
            at = bucket.find(prefix)
            while at >= 0:
                if at % _RECORD:
                    at = bucket.find(prefix, at + 1)
                else:
                    found.append(int.from_bytes(bucket[at + 8 : at + _RECORD], "big"))
                    at = bucket.find(prefix, at + _RECORD)
        return found

    def keys(self, first: int, stop_bucket: int, stop: int) -> list[tuple[int, int]]:
        """(key, index) of the window's entries before ``stop`` in buckets ``first ..<
        stop_bucket`` (the frozen ones, during a merge), in key order: a slice of a merge."""
        shift = 8 * (8 - self._key_bytes)
        records = struct.iter_unpack(">qQ", b"".join(self._gens[-1][first:stop_bucket]))
        if shift:
            rows = [(prefix >> shift, idx) for prefix, idx in records if idx < stop]
        else:  # the record's prefix is the key
            rows = [record for record in records if record[1] < stop]
        rows.sort()
        return rows


def _drop_run(buckets: list[bytes], first: int, indexed: int) -> None:
    """Drop the records before ``indexed`` from buckets ``first ..< first + _DROP_RUN``."""
    for number in range(first, first + _DROP_RUN):
        bucket = buckets[number]
        if not bucket or _record_index(bucket, 0) >= indexed:
            continue
        if int.from_bytes(bucket[-8:], "big") < indexed:  # the last record's index
            buckets[number] = b""
            continue
        low = bisect.bisect_left(  # the first record at or past ``indexed``
            range(len(bucket) // _RECORD), indexed, key=functools.partial(_record_index, bucket)
        )
        if low:
            buckets[number] = bucket[low * _RECORD :]


def _record(entry_id: bytes, idx: int) -> bytes:
    """A window record: the id's first 8 bytes, then the entry's index."""
    return entry_id[:8] + idx.to_bytes(8, "big")


def _record_index(bucket: bytes, number: int) -> int:
    """The index in record ``number`` of ``bucket``."""
    at = number * _RECORD + 8
    return int.from_bytes(bucket[at : at + 8], "big")


def _bucket(entry_id: bytes) -> int:
    return int.from_bytes(entry_id[:4], "big") >> _BUCKET_SHIFT
