"""Checking a whole log: as stored (:func:`verify_log`) and as served (:func:`verify_remote_log`).

Both recompute the tree from the entries alone and compare everything else against it.

:func:`verify_log` reads an :class:`AuditReader` (any store) and checks, in one pass over
the entries: the store names the origin (when it names one), the indices are contiguous,
the entry-id map sends SHA-256(entry) to its index and holds nothing else, every stored tile
(full and partial) equals the recomputed one byte for byte and no other tile is stored,
every stored checkpoint verifies under the given keys, names the origin and its size, and
carries the recomputed root at that size, the latest checkpoint is at the state's size, the
state row holds the recomputed size and compact range, pending rows hash to their ids, are
entries the log could integrate (at most 65,535 bytes) and are not integrated, and batch
data belongs to checkpointed sizes (not the empty tree's: no batch ends there). With a
:class:`BatchVerifier` (the transparency service's receipt signatures), what was stored for
every batch is checked against the root the entries give at its size, once per batch. Every
difference raises :class:`StorageError` naming what differs (chained from the underlying
error where there is one): the store holds data that does not match what the log wrote. An
earlier checkpoint given by the caller must verify (its own errors propagate:
``BadSignature``, ``UnknownIssuer``, ``MalformedInput``) and be a prefix of the stored tree,
else :class:`InconsistentCheckpoint`.

:func:`verify_remote_log` reads a log through the C2SP read API behind a :class:`LogFetcher`
(``checkpoint``, ``tile/<L>/<N>[.p/<W>]``, ``tile/entries/<N>[.p/<W>]`` and
``.well-known/transparency-configuration``): it verifies the checkpoint, fetches every entry
bundle and every tile the checkpoint's size needs, recomputes, and compares. A partial tile or
bundle the log no longer serves (it deletes them once their full versions exist: a mirror
that grew while it was read) is read as its full version's prefix, as c2sp.org/tlog-tiles
allows. A served resource that is missing, malformed or different raises
:class:`VerificationFailed`; the checkpoint's own signature errors propagate as they are; an
inconsistent earlier checkpoint raises :class:`InconsistentCheckpoint`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from ironroot.errors import (
    BadSignature,
    ConfigError,
    InconsistentCheckpoint,
    IronrootError,
    LimitExceeded,
    MalformedInput,
    NotFound,
    PayloadTooLarge,
    StorageError,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.log import layout
from ironroot.log._checkpoint import Checkpoint
from ironroot.log._note import MAX_SIGNATURES, NoteVerifier, open_checkpoint
from ironroot.log._open import StoreConfig
from ironroot.log._store import AuditReader
from ironroot.log._tiles import (
    HASH_SIZE,
    MAX_ENTRY_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    entry_bundle_path,
    entry_bundles_for_size,
    parse_entry_bundle,
    tile_path,
)
from ironroot.merkle import EMPTY_ROOT, CompactRange, leaf_hash

__all__ = [
    "CONFIG_PATH",
    "BatchVerifier",
    "LogFetcher",
    "LogReport",
    "fetch_checkpoint",
    "fetch_document",
    "fetch_log_identity",
    "fetch_resource",
    "verify_log",
    "verify_log_dir",
    "verify_remote_log",
]

CONFIG_PATH = ".well-known/transparency-configuration"
_CHECKPOINT = "checkpoint"

_T = TypeVar("_T")
_FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE


@dataclass(frozen=True, slots=True)
class LogReport:
    """What a verification checked."""

    origin: str
    size: int
    root: bytes
    entries: int
    tiles: int
    entry_bundles: int
    checkpoints: int
    pending: int = 0
    earlier_checkpoint_size: int | None = None
    batch_signatures: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode("ascii"),
            "entries": self.entries,
            "tiles": self.tiles,
            "entry_bundles": self.entry_bundles,
            "checkpoints": self.checkpoints,
            "pending": self.pending,
            "earlier_checkpoint_size": self.earlier_checkpoint_size,
            "batch_signatures": self.batch_signatures,
        }


class BatchVerifier(Protocol):
    """Checks what a :class:`~ironroot.log.BatchSigner` stored for the batch ending at
    ``tree_size`` against ``root``, the root the entries give there; returns how many
    signatures it checked. Raises an :class:`IronrootError` when the data does not verify
    (:class:`ConfigError` when it cannot be checked at all, for want of keys)."""

    def verify_batch(self, tree_size: int, root: bytes, data: Mapping[str, bytes]) -> int: ...


@dataclass(slots=True)
class _Rebuild:
    """Recomputes the tree and its tiles from entries, reporting each tile as it completes."""

    check_tile: Callable[[int, int, int | None, bytes], None]
    wanted: set[int]
    compact: CompactRange = field(default_factory=CompactRange)
    buffers: dict[int, bytearray] = field(default_factory=dict)
    roots: dict[int, bytes] = field(default_factory=dict)
    tiles: int = 0

    def __post_init__(self) -> None:
        if 0 in self.wanted:
            self.roots[0] = EMPTY_ROOT

    def _visit(self, level: int, index: int, digest: bytes) -> None:
        if level % TILE_HEIGHT:
            return
        tile_level = level // TILE_HEIGHT
        buffer = self.buffers.setdefault(tile_level, bytearray())
        buffer += digest
        if len(buffer) == _FULL_TILE_BYTES:
            self.check_tile(tile_level, index // TILE_WIDTH, None, bytes(buffer))
            self.tiles += 1
            buffer.clear()

    def add(self, entry: bytes) -> None:
        self.compact.append(leaf_hash(entry), self._visit)
        size = self.compact.size
        if size in self.wanted:
            self.roots[size] = self.compact.root()

    def finish(self) -> None:
        size = self.compact.size
        for tile_level, buffer in sorted(self.buffers.items()):
            if buffer:
                count = size >> (TILE_HEIGHT * tile_level)
                index, width = divmod(count, TILE_WIDTH)
                assert width * HASH_SIZE == len(buffer)
                self.check_tile(tile_level, index, width, bytes(buffer))
                self.tiles += 1


def _check_earlier(earlier: Checkpoint | None, roots: dict[int, bytes], size: int) -> None:
    if earlier is None:
        return
    if earlier.size > size:
        raise InconsistentCheckpoint(
            f"the earlier checkpoint has size {earlier.size}, larger than the log's {size}"
        )
    if not hmac.compare_digest(roots[earlier.size], earlier.root):
        raise InconsistentCheckpoint(
            f"the earlier checkpoint's root at size {earlier.size} is not the log's root there"
        )


# --- the stored log ---------------------------------------------------------------------


def verify_log(
    store: AuditReader,
    *,
    origin: str,
    verifiers: Sequence[NoteVerifier],
    earlier_checkpoint: bytes | None = None,
    batch_verifier: BatchVerifier | None = None,
) -> LogReport:
    """Recompute the stored log and compare every stored thing against it (see module doc)."""
    earlier = (
        open_checkpoint(earlier_checkpoint, verifiers, origin=origin)
        if earlier_checkpoint is not None
        else None
    )
    sizes = store.checkpoint_sizes()
    wanted = set(sizes)
    if earlier is not None:
        wanted.add(earlier.size)

    def check_tile(level: int, index: int, width: int | None, data: bytes) -> None:
        stored = store.tile(level, index)
        if stored is None:
            raise StorageError(f"tile {tile_path(level, index, width)} is missing")
        if stored != data:
            raise StorageError(
                f"tile {level}/{index} differs from the tile recomputed from the entries"
            )

    rebuild = _Rebuild(check_tile, wanted)
    expected = 0
    # Entries go to the rebuild a tile's worth at a time, after their ids are checked (one
    # look-up per tile): a changed entry is reported as such, before the tiles it changes.
    chunk: list[tuple[bytes, int, bytes]] = []
    for index, entry in store.iter_entries():
        if index != expected:
            raise StorageError(f"entry {expected} is missing (next stored index is {index})")
        chunk.append((hashlib.sha256(entry).digest(), index, entry))
        if len(chunk) == TILE_WIDTH:
            _check_ids(store, chunk, rebuild)
            chunk = []
        expected += 1
    _check_ids(store, chunk, rebuild)
    size = expected
    rebuild.finish()

    if store.count_entry_ids() != size:
        raise StorageError("the entry-id index holds ids of entries that are not in the log")
    stored_tiles = store.count_tiles()
    if stored_tiles != rebuild.tiles:
        raise StorageError(
            f"the store holds {stored_tiles} tiles; a tree of size {size} has {rebuild.tiles}"
        )
    stored_origin = store.meta("origin")
    if stored_origin is not None and stored_origin != origin:  # the log would not open it
        raise StorageError(f"the store is the log of {stored_origin[:200]!r}, not {origin!r}")
    state = store.state()
    if state.size != size:
        raise StorageError(f"the state row says size {state.size}; the log has {size} entries")
    if state.hashes != rebuild.compact.hashes:
        raise StorageError("the state row's compact range differs from the recomputed one")

    for cp_size in sizes:
        if cp_size > size:
            raise StorageError(f"a checkpoint at size {cp_size} is beyond the log's {size}")
        note = store.checkpoint(cp_size)
        assert note is not None
        try:
            checkpoint = open_checkpoint(note, verifiers, origin=origin)
        except IronrootError as exc:
            raise StorageError(
                f"the checkpoint at size {cp_size} does not verify: {exc.detail}"
            ) from exc
        if checkpoint.size != cp_size:
            raise StorageError(
                f"the checkpoint stored at size {cp_size} is for size {checkpoint.size}"
            )
        if not hmac.compare_digest(checkpoint.root, rebuild.roots[cp_size]):
            raise StorageError(
                f"the checkpoint at size {cp_size} has a root the entries do not give"
            )
    if not sizes or sizes[-1] != size:
        raise StorageError(f"no checkpoint was published at the log's size {size}")
    batch_sizes = set(store.batch_data_sizes())
    if not batch_sizes <= set(sizes):
        raise StorageError("the store holds batch data for a size without a checkpoint")
    if 0 in batch_sizes:  # the log signs batches of entries; this one no verifier would check
        raise StorageError("the store holds batch data for the empty tree")
    batch_signatures = 0
    if batch_verifier is not None:
        for cp_size in sizes:
            if cp_size == 0:
                continue
            data = store.batch_data(cp_size) or {}
            try:
                batch_signatures += batch_verifier.verify_batch(
                    cp_size, rebuild.roots[cp_size], data
                )
            except ConfigError:
                raise
            except IronrootError as exc:
                raise StorageError(
                    f"the batch at size {cp_size} does not verify: {exc.detail}"
                ) from exc

    pending = store.pending()
    for entry_id, entry in pending:
        if hashlib.sha256(entry).digest() != entry_id:
            raise StorageError("a pending entry does not hash to its id")
        if len(entry) > MAX_ENTRY_SIZE:  # the log never writes one: no batch could take it
            raise StorageError(f"a pending entry is larger than {MAX_ENTRY_SIZE} bytes")
    if pending and any(
        index is not None for index in store.lookup([i for i, _ in pending]).values()
    ):
        raise StorageError("a pending entry is also integrated")

    _check_earlier(earlier, rebuild.roots, size)
    return LogReport(
        origin=origin,
        size=size,
        root=rebuild.compact.root(),
        entries=size,
        tiles=rebuild.tiles,
        entry_bundles=-(-size // TILE_WIDTH),
        checkpoints=len(sizes),
        pending=len(pending),
        earlier_checkpoint_size=None if earlier is None else earlier.size,
        batch_signatures=batch_signatures,
    )


def _check_ids(
    store: AuditReader, chunk: Sequence[tuple[bytes, int, bytes]], rebuild: _Rebuild
) -> None:
    """The id → index map sends each entry's id to its index; then the entries are added."""
    if not chunk:
        return
    found = store.lookup([entry_id for entry_id, _, _ in chunk])
    for entry_id, index, _ in chunk:
        if found.get(entry_id) != index:
            raise StorageError(f"the entry-id index does not map entry {index} to its index")
    for _, _, entry in chunk:
        rebuild.add(entry)


def _any_checkpoint_verifies(
    store: AuditReader, origin: str, verifiers: Sequence[NoteVerifier]
) -> bool:
    for size in store.checkpoint_sizes():
        note = store.checkpoint(size)
        try:
            open_checkpoint(note or b"", verifiers, origin=origin)
        except IronrootError:
            continue
        return True
    return False


def verify_log_dir(
    data_dir: Path,
    *,
    origin: str | None = None,
    verifiers: Sequence[NoteVerifier] | None = None,
    earlier_checkpoint: bytes | None = None,
    batch_verifier: BatchVerifier | None = None,
) -> LogReport:
    """:func:`verify_log` on the log of ``data_dir`` (opened read-only): the SQLite log in it,
    or the PostgreSQL one its ``[log]`` configuration names (read in one snapshot).

    Without ``verifiers``, the checkpoint's public key and the origin come from the data
    directory (:func:`ironroot.log.layout.load_log_identity`: public material only). When that
    key verifies none of the stored checkpoints, the key file is what is wrong (damaged, or
    another log's): :class:`ConfigError` names it rather than blaming every checkpoint.
    """
    from_dir = verifiers is None
    if verifiers is None:
        identity = layout.load_log_identity(data_dir, origin=origin)
        origin, verifiers = identity.origin, identity.verifiers
    elif origin is None:
        origin = layout.read_log_origin(data_dir)
    store = StoreConfig.of_data_dir(data_dir).open(data_dir, read_only=True)
    try:
        try:
            return verify_log(
                store,
                origin=origin,
                verifiers=verifiers,
                earlier_checkpoint=earlier_checkpoint,
                batch_verifier=batch_verifier,
            )
        except StorageError as exc:
            if (
                from_dir
                and isinstance(exc.__cause__, UnknownIssuer | BadSignature)
                and not _any_checkpoint_verifies(store, origin, verifiers)
            ):
                path = layout.checkpoint_public_key_path(data_dir)
                raise ConfigError(
                    f"{path} verifies none of the log's checkpoints: the key file is damaged "
                    "or is another log's key"
                ) from exc
            raise
    finally:
        store.close()


# --- a served log ------------------------------------------------------------------------


class LogFetcher(Protocol):
    """Reads one resource of a log's read API, by path relative to the log's prefix.

    Raises :class:`NotFound` when the resource does not exist. A fetcher of a served log may
    also have a ``url`` (text, without user information): messages about what it serves name
    the resource by it (:class:`~ironroot.log.HttpLogFetcher` has one).
    """

    def fetch(self, path: str, *, accept: str | None = None) -> bytes: ...


def _where(fetcher: LogFetcher, path: str) -> str:
    """The resource ``path`` as messages name it: by the fetcher's ``url`` when it has one."""
    url = getattr(fetcher, "url", None)
    return f"{url}/{path}" if isinstance(url, str) else path


def fetch_document(
    fetcher: LogFetcher, path: str, parse: Callable[[bytes], _T], *, accept: str | None
) -> _T:
    """``parse`` of the log's resource ``path`` (a document the log publishes beside its
    tiles: its transparency configuration, its service's key set, its checkpoint). One larger
    than any log resource, or that ``parse`` refuses (``MalformedInput``), is the log's
    failure: :class:`VerificationFailed` (exit 1) naming the resource (by the fetcher's
    ``url`` when it has one), never ``MalformedInput`` (exit 2: nothing its reader gave was
    wrong). What the fetch itself raises otherwise passes through (a redirect stays
    ``ConfigError``). ``accept``: the media type asked for (``None``: none named)."""
    where = _where(fetcher, path)
    try:
        raw = fetcher.fetch(path, accept=accept)
    except PayloadTooLarge as exc:
        raise VerificationFailed(f"{where} is larger than any log resource") from exc
    try:
        return parse(raw)
    except MalformedInput as exc:
        raise VerificationFailed(f"{where} is served wrongly: {exc.detail}") from exc


def fetch_checkpoint(
    fetcher: LogFetcher, verifiers: Sequence[NoteVerifier], *, origin: str | None = None
) -> tuple[bytes, Checkpoint]:
    """The log's ``checkpoint`` as served, and opened with ``verifiers`` (for ``origin``, when
    given): the one way every reader of a served log (``log verify``, ``export-tiles``, the
    monitor, ``audit export``, ``witness cosign``) fetches it.

    A checkpoint larger than any log resource, or that is no checkpoint (not UTF-8, a size
    beyond 2^63 - 1, a malformed line), is the log's failure: :class:`VerificationFailed`
    naming it (:func:`fetch_document`), never ``MalformedInput`` (exit 2: nothing its reader
    gave was wrong); so is a log that serves none (``NotFound``). The signature's own errors
    propagate as they are (``BadSignature``, ``UnknownIssuer``), and so does what the fetch
    raises otherwise (``Unreachable``, a redirect's ``ConfigError``).
    """

    def opened(note: bytes) -> tuple[bytes, Checkpoint]:
        return note, open_checkpoint(note, verifiers, origin=origin)

    try:
        return fetch_document(fetcher, _CHECKPOINT, opened, accept=None)
    except NotFound as exc:
        raise VerificationFailed(f"the log does not serve {_where(fetcher, _CHECKPOINT)}") from exc


def fetch_log_identity(fetcher: LogFetcher) -> layout.LogIdentity:
    """Origin and checkpoint keys from ``/.well-known/transparency-configuration`` (JSON).

    :class:`VerificationFailed` naming it when it is not such a document (or lists more
    keys than a note carries signatures, 100), or is larger than any log resource
    (:func:`fetch_document`).
    """
    return fetch_document(fetcher, CONFIG_PATH, _log_identity, accept="application/json")


def _log_identity(raw: bytes) -> layout.LogIdentity:
    """A transparency configuration's origin and keys; ``MalformedInput`` (``LimitExceeded``
    past 100 keys) for anything else."""
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedInput("the transparency configuration is not JSON") from exc
    if not isinstance(config, dict):
        raise MalformedInput("the transparency configuration is not a JSON object")
    origin = config.get("checkpoint_origin")
    keys = config.get("checkpoint_keys")
    if not isinstance(origin, str) or not origin:
        raise MalformedInput("the transparency configuration has no checkpoint_origin")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise MalformedInput("the transparency configuration has no checkpoint_keys list")
    if len(keys) > MAX_SIGNATURES:  # no note carries more signatures: parse none of them
        raise LimitExceeded(
            f"the transparency configuration lists more than {MAX_SIGNATURES} checkpoint keys"
        )
    verifiers = tuple(NoteVerifier.from_vkey(k) for k in keys)
    return layout.LogIdentity(origin=origin, verifiers=verifiers)


def fetch_resource(fetcher: LogFetcher, path: str) -> bytes:
    """``fetcher.fetch(path)``, where a resource larger than any of the read API is one the
    log serves wrongly (:class:`VerificationFailed`), like one of the wrong length."""
    try:
        return fetcher.fetch(path)
    except PayloadTooLarge as exc:
        relative = path.lstrip("/")
        tile = relative.startswith("tile/") and not relative.startswith("tile/entries/")
        largest = "a hash tile" if tile else "any log resource"
        raise VerificationFailed(f"{path} is larger than {largest}") from exc


def _served(fetcher: LogFetcher, path: str) -> bytes:
    try:
        return fetch_resource(fetcher, path)
    except NotFound as exc:
        raise VerificationFailed(f"the log does not serve {path}") from exc


def _served_edge(fetcher: LogFetcher, path: str, full_path: str) -> tuple[bytes, bool]:
    """A partial resource, or its full version once the log deleted it (then ``False``)."""
    try:
        return fetch_resource(fetcher, path), True
    except NotFound:
        pass
    try:
        return fetch_resource(fetcher, full_path), False
    except NotFound as exc:
        raise VerificationFailed(f"the log serves neither {path} nor {full_path}") from exc


def verify_remote_log(
    fetcher: LogFetcher,
    *,
    identity: layout.LogIdentity | None = None,
    earlier_checkpoint: bytes | None = None,
) -> LogReport:
    """Verify a served log end to end (see module doc); keys from the server unless given."""
    if identity is None:
        identity = fetch_log_identity(fetcher)
    origin, verifiers = identity.origin, identity.verifiers
    _, checkpoint = fetch_checkpoint(fetcher, verifiers, origin=origin)
    earlier = (
        open_checkpoint(earlier_checkpoint, verifiers, origin=origin)
        if earlier_checkpoint is not None
        else None
    )
    wanted = {checkpoint.size}
    if earlier is not None:
        wanted.add(earlier.size)

    def check_tile(level: int, index: int, width: int | None, data: bytes) -> None:
        path = tile_path(level, index, width)
        if width is None:
            served = _served(fetcher, path)
        else:
            served, exact = _served_edge(fetcher, path, tile_path(level, index))
            if not exact:
                if len(served) != _FULL_TILE_BYTES:
                    raise VerificationFailed(f"{tile_path(level, index)} is not a full tile")
                served = served[: len(data)]
        if served != data:
            raise VerificationFailed(
                f"tile {path} differs from the tile recomputed from the entries"
            )

    rebuild = _Rebuild(check_tile, wanted)
    bundles = 0
    for address in entry_bundles_for_size(checkpoint.size):
        try:
            if address.width is None:
                entries = parse_entry_bundle(_served(fetcher, address.path), address.count)
            else:
                full_path = entry_bundle_path(address.index)
                raw, exact = _served_edge(fetcher, address.path, full_path)
                count = address.count if exact else TILE_WIDTH
                entries = parse_entry_bundle(raw, count)[: address.count]
        except MalformedInput as exc:
            raise VerificationFailed(f"{address.path} is malformed: {exc.detail}") from exc
        for entry in entries:
            rebuild.add(entry)
        bundles += 1
    rebuild.finish()
    if not hmac.compare_digest(rebuild.roots[checkpoint.size], checkpoint.root):
        raise VerificationFailed("the checkpoint root is not the root of the served entries")
    _check_earlier(earlier, rebuild.roots, checkpoint.size)
    return LogReport(
        origin=origin,
        size=checkpoint.size,
        root=checkpoint.root,
        entries=checkpoint.size,
        tiles=rebuild.tiles,
        entry_bundles=bundles,
        checkpoints=1,
        earlier_checkpoint_size=None if earlier is None else earlier.size,
    )
