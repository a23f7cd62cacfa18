"""The log's storage seam: the store protocols, the one batch write and its rules.

A store keeps, for one log: pending entries (durable, not yet sequenced), integrated entries
by index and a way to find an entry's index from its id (SHA-256 of the entry), hash tiles
(level, index → current bytes; a full tile never changes), every published checkpoint by
size, the batch signer's data by tree size, the tree state (size and compact-range hashes)
and a few set-once metadata values (the origin).

Everything a log writes is one :class:`StoreBatch`, written atomically: all of it or none of
it, so the state always describes exactly the entries and tiles beside it. The rules a batch
must meet are written once, here, in :func:`check_batch`; every store runs it inside its
write transaction, against what that transaction reads (a :class:`StoreView`), before it
changes anything. The first rule is the fence: a batch names the tree size it was prepared
from, and a store whose stored size differs refuses it (:class:`~ironroot.errors.StaleBatch`),
so a stale or second writer can never write.

The protocols are narrow on purpose. :class:`LogStore` is what :class:`~ironroot.log.Log`
needs: one write and the reads that serve registration, proofs and tiles.
:class:`AuditReader` adds the reads only a whole-log check needs
(:func:`~ironroot.log.verify_log`): a scan of the entries, the stored sizes, counts and the
bytes occupied. A new store is one module that implements both and runs :func:`check_batch`,
and one parameter of ``tests/log/test_log_store_contract.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ironroot.errors import IronrootError, StaleBatch, StorageError
from ironroot.log._checkpoint import Checkpoint
from ironroot.log._note import Note
from ironroot.log._tiles import (
    HASH_SIZE,
    MAX_ENTRY_SIZE,
    MAX_TILE_LEVEL,
    TILE_HEIGHT,
    TILE_WIDTH,
)

__all__ = [
    "AuditReader",
    "AuditableStore",
    "LogReader",
    "LogStore",
    "StoreBatch",
    "StoreView",
    "TreeState",
    "check_batch",
    "check_batch_types",
    "refusal_key",
    "refused_entry",
]

_FULL_TILE = TILE_WIDTH * HASH_SIZE
_MAX_TILE_INDEX = (1 << 63) - 1  # a signed 64-bit column


@dataclass(frozen=True, slots=True)
class TreeState:
    """The stored tree: ``size`` leaves and the compact-range ``hashes`` of its right edge."""

    size: int
    hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class StoreBatch:
    """One atomic write.

    ``first_index`` is the tree size the batch was prepared from (the fence). ``pending``
    rows (entry id, entry) become durable but unsequenced. ``integrated`` (entry id, entry)
    pairs take indices ``first_index, first_index + 1, ...``; ``cleared`` are the pending ids
    among them, whose pending rows go. ``state`` (when integrating) is the new tree state,
    ``checkpoint`` the signed note at ``state.size``, ``batch_data`` the batch signer's
    result for that size, ``tiles`` the new bytes of every tile the batch changed, and
    ``meta`` set-once values (a key already stored must keep its value). ``refused`` are
    pending ids whose rows go without their entries being integrated (rows the sequencer
    cannot integrate: altered, too long, or beside their own integrated entry); each leaves
    its record, the reason under the metadata key :func:`refusal_key`, set by this batch's
    ``meta`` or already stored.
    """

    first_index: int
    pending: Sequence[tuple[bytes, bytes]] = ()
    integrated: Sequence[tuple[bytes, bytes]] = ()
    cleared: Sequence[bytes] = ()
    tiles: Mapping[tuple[int, int], bytes] = field(default_factory=dict)
    state: TreeState | None = None
    checkpoint: bytes | None = None
    batch_data: Mapping[str, bytes] | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    refused: Sequence[bytes] = ()


def refusal_key(entry_id: bytes) -> str:
    """The metadata key that records why the sequencer refused ``entry_id``'s pending row."""
    return "refused:" + entry_id.hex()


def refused_entry(reason: str) -> StorageError:
    """What a registration, or a look-up, of an entry whose pending row was refused gets."""
    return StorageError(
        f"the sequencer refused this entry's stored row, so it is not in the log ({reason}): "
        "register the statement again",
        code="entry-refused",
    )


class StoreView(Protocol):
    """What :func:`check_batch` reads, answered by a store inside its write transaction."""

    def stored_size(self) -> int:
        """The stored tree size (read so that no other writer can change it before commit)."""
        ...

    def integrated_among(self, entry_ids: Collection[bytes]) -> set[bytes]:
        """Those of ``entry_ids`` that are integrated."""
        ...

    def pending_among(self, entry_ids: Collection[bytes]) -> set[bytes]:
        """Those of ``entry_ids`` that are pending."""
        ...

    def tiles(self, keys: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored bytes of those tiles that exist."""
        ...

    def has_checkpoint(self, size: int) -> bool: ...

    def meta_values(self, keys: Collection[str]) -> dict[str, str]:
        """The stored values of those keys that are set."""
        ...


class LogReader(Protocol):
    """The reads the log needs (safe from any thread)."""

    def state(self) -> TreeState: ...

    def lookup(self, entry_ids: Sequence[bytes]) -> dict[bytes, int | None]:
        """For each id the store knows: its index when integrated, ``None`` while pending.
        Unknown ids are absent from the result."""
        ...

    def pending(self, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        """The pending (entry id, entry) pairs, oldest first: the oldest ``limit`` of them,
        or every one when ``limit`` is ``None`` (a whole-log check; the writer reads pages)."""
        ...

    def entries(self, start: int, stop: int) -> list[bytes]:
        """The integrated entries with indices in ``[start, stop)``, in order."""
        ...

    def tile(self, level: int, index: int) -> bytes | None: ...

    def checkpoint(self, size: int | None = None) -> bytes | None:
        """The checkpoint published at ``size`` (default: the latest)."""
        ...

    def batch_size_of(self, index: int) -> int | None:
        """The size of the first checkpoint that covers entry ``index``."""
        ...

    def batch_data(self, size: int) -> dict[str, bytes] | None:
        """The batch signer's data at ``size`` (``{}`` if none), ``None`` without a checkpoint
        there."""
        ...

    def meta(self, key: str) -> str | None: ...


class LogStore(LogReader, Protocol):
    """A log store: the reads, one atomic write (checked by :func:`check_batch`), close."""

    def write(self, batch: StoreBatch) -> None: ...

    def close(self) -> None: ...


class AuditReader(LogReader, Protocol):
    """The reads of a whole-log check, beside the log's own (:func:`ironroot.log.verify_log`)."""

    def iter_entries(self) -> Iterator[tuple[int, bytes]]:
        """Every integrated (index, entry), by index."""
        ...

    def checkpoint_sizes(self) -> list[int]: ...

    def batch_data_sizes(self) -> list[int]: ...

    def count_tiles(self) -> int: ...

    def count_pending(self) -> int:
        """How many entries are pending (durable, not yet integrated)."""
        ...

    def count_entry_ids(self) -> int:
        """How many ids the id → index map holds (equal to the entries when it is sound)."""
        ...

    def storage_bytes(self) -> int:
        """Bytes the store occupies (files, relations, or an estimate in memory)."""
        ...


class AuditableStore(LogStore, AuditReader, Protocol):
    """A store the log writes and a whole-log check reads (every store shipped here)."""


# --- the batch rules ------------------------------------------------------------------------


def _refuse(detail: str) -> StorageError:
    return StorageError(f"the log write was refused: {detail}", code="batch-refused")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_pair(value: object, first: type, second: type) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) == 2
        and isinstance(value[0], first)
        and isinstance(value[1], second)
    )


def check_batch_types(batch: StoreBatch) -> None:
    """Refuse ``batch`` (:class:`StorageError`, code ``batch-refused``) unless every field is
    of its declared type, and every tile key a level and an index a tile can have: a batch
    from outside the type checker. :func:`check_batch` runs it first, so that its rules
    compare, hash and shift without a ``TypeError``; a store that reads what the rules ask
    before it calls :func:`check_batch` (PostgreSQL, in one round trip) runs it first."""
    if not _is_int(batch.first_index):
        raise _refuse("first_index is not an integer")
    if not all(_is_pair(row, bytes, bytes) for row in (*batch.pending, *batch.integrated)):
        raise _refuse("a pending or integrated row is not a pair of an id and an entry (bytes)")
    if not all(isinstance(entry_id, bytes) for entry_id in batch.cleared):
        raise _refuse("a cleared pending id is not bytes")
    if not all(isinstance(entry_id, bytes) for entry_id in batch.refused):
        raise _refuse("a refused pending id is not bytes")
    if not isinstance(batch.tiles, Mapping) or not all(
        _is_pair(key, int, int)
        and _is_int(key[0])
        and _is_int(key[1])
        and 0 <= key[0] <= MAX_TILE_LEVEL
        and 0 <= key[1] <= _MAX_TILE_INDEX
        for key in batch.tiles
    ):
        raise _refuse("the tiles are not a mapping from the (level, index) of a tile")
    if not isinstance(batch.meta, Mapping):
        raise _refuse("the metadata is not a mapping")
    if batch.batch_data is not None and not isinstance(batch.batch_data, Mapping):
        raise _refuse("the batch data is not a mapping")
    state = batch.state
    if state is not None and (
        not isinstance(state, TreeState)
        or not _is_int(state.size)
        or not isinstance(state.hashes, Sequence)
    ):
        raise _refuse("the new tree state is not a size and a compact range")


def _check_shape(batch: StoreBatch) -> None:
    """The rules that need nothing from the store."""
    check_batch_types(batch)
    if batch.first_index < 0:
        raise _refuse("first_index is negative")
    for entry_id, entry in (*batch.pending, *batch.integrated):
        if not isinstance(entry, bytes) or len(entry) > MAX_ENTRY_SIZE:
            raise _refuse(f"an entry is not bytes of at most {MAX_ENTRY_SIZE}")
        if hashlib.sha256(entry).digest() != entry_id:
            raise _refuse("an entry id is not the SHA-256 of its entry")
    integrated = [entry_id for entry_id, _ in batch.integrated]
    if len(set(integrated)) != len(integrated):
        raise _refuse("an entry is integrated twice in one batch")
    if set(batch.cleared) - set(integrated) or len(set(batch.cleared)) != len(batch.cleared):
        raise _refuse("a cleared pending id is not one of the batch's integrated entries")
    if {entry_id for entry_id, _ in batch.pending} & set(integrated):
        raise _refuse("an entry is both pending and integrated in one batch")
    refused = set(batch.refused)
    if len(refused) != len(batch.refused) or refused & (
        set(integrated) | {entry_id for entry_id, _ in batch.pending}
    ):
        raise _refuse("a refused pending id is refused twice, or also written by the batch")
    for key, value in batch.meta.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise _refuse("metadata maps non-empty strings to strings")
    state = batch.state
    if state is None:
        if integrated or batch.cleared or batch.tiles or batch.checkpoint is not None:
            raise _refuse("entries, tiles or a checkpoint without a new tree state")
        if batch.batch_data is not None:
            raise _refuse("batch data without a new tree state")
        return
    if state.size != batch.first_index + len(integrated):
        raise _refuse(
            f"the new tree size {state.size} is not {batch.first_index} + {len(integrated)}"
        )
    if len(state.hashes) != state.size.bit_count() or any(
        not isinstance(h, bytes) or len(h) != HASH_SIZE for h in state.hashes
    ):
        raise _refuse("the new compact range does not fit the new tree size")
    if batch.checkpoint is None:
        raise _refuse("a new tree state without its checkpoint")
    try:
        signed = Checkpoint.parse(Note.parse(batch.checkpoint).body).size
    except IronrootError as exc:
        raise _refuse(f"the checkpoint does not parse: {exc.detail}") from exc
    if signed != state.size:
        raise _refuse(f"the checkpoint is for size {signed}, the new tree is {state.size}")
    if batch.batch_data is not None and not all(
        isinstance(k, str) and isinstance(v, bytes) for k, v in batch.batch_data.items()
    ):
        raise _refuse("batch data maps strings to bytes")
    for (level, index), data in batch.tiles.items():
        count = state.size >> (TILE_HEIGHT * level) if level >= 0 else 0
        width = min(TILE_WIDTH, count - index * TILE_WIDTH) if index >= 0 else 0
        if width <= 0 or not isinstance(data, bytes) or len(data) != width * HASH_SIZE:
            raise _refuse(f"tile {level}/{index} does not fit the new tree size {state.size}")


def check_batch(batch: StoreBatch, view: StoreView) -> None:
    """Refuse ``batch`` unless it is a sound next write after what ``view`` holds.

    Run by every store inside its write transaction, before it changes anything. The rules:

    * every field is of its declared type, every tile key a tile's (level, index)
      (:func:`check_batch_types`);
    * the fence: ``first_index`` is the stored tree size, else :class:`StaleBatch`;
    * every entry is bytes of at most 65,535 and its id is its SHA-256;
    * a new tree state is ``first_index`` + the integrated entries, with a compact range of
      that size and the signed checkpoint at that size (batch data and tiles need one);
      without a new state a batch only adds pending rows and metadata;
    * an integrated entry is not integrated already, nor twice in the batch; the pending ones
      among them are exactly ``cleared`` (no pending row is dropped without its entry being
      integrated in the same write, and none is left beside its integrated entry);
    * a pending row is for an entry not integrated (already pending: nothing to do);
    * no checkpoint is stored at the new size yet;
    * a tile has the width the new size gives it; an existing tile is only extended (its
      stored hashes are a prefix of the new bytes) and a full tile is never rewritten;
    * a metadata key already set keeps its value;
    * a refused id is pending, and its record (:func:`refusal_key`) is set by the batch or
      stored already.

    Every other refusal is a :class:`StorageError` with code ``batch-refused``.
    """
    _check_shape(batch)
    stored = view.stored_size()
    if stored != batch.first_index:
        raise StaleBatch(
            f"the batch was prepared from tree size {batch.first_index}; the stored tree has "
            f"{stored}: another writer moved the log"
        )
    integrated = {entry_id for entry_id, _ in batch.integrated}
    pending = {entry_id for entry_id, _ in batch.pending}
    if integrated | pending:
        already = view.integrated_among(integrated | pending)
        if already & integrated:
            raise _refuse("an entry to integrate is integrated already")
        if already & pending:
            raise _refuse("a pending entry is integrated already")
    if batch.refused:
        if view.pending_among(batch.refused) != set(batch.refused):
            raise _refuse("an entry to refuse is not pending")
        unrecorded = [refusal_key(i) for i in batch.refused if refusal_key(i) not in batch.meta]
        if unrecorded and len(view.meta_values(unrecorded)) != len(unrecorded):
            raise _refuse("a refused pending row has no record of why")
    if integrated:
        waiting = view.pending_among(integrated)
        if waiting != set(batch.cleared):
            if set(batch.cleared) - waiting:
                raise _refuse("an entry to clear is not pending")
            raise _refuse("a pending entry would be integrated without clearing its row")
    state = batch.state
    if state is not None and view.has_checkpoint(state.size):
        raise _refuse(f"a checkpoint is stored at size {state.size} already")
    if batch.tiles:
        for (level, index), old in view.tiles(batch.tiles.keys()).items():
            new = batch.tiles[(level, index)]
            if len(old) == _FULL_TILE or len(old) >= len(new) or not new.startswith(old):
                raise _refuse(f"tile {level}/{index} would be rewritten, not extended")
    if batch.meta:
        for name, value in view.meta_values(batch.meta.keys()).items():
            if value != batch.meta[name]:
                raise _refuse(f"the log's {name} is {value!r}, not {batch.meta[name]!r}")
