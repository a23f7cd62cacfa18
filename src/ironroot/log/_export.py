"""Exporting a log as static C2SP tlog-tiles files: ``ironroot log export-tiles``.

:func:`export_tiles` brings a directory up to the checkpoint a source serves (the service over
HTTP, or a store read as served: :class:`~ironroot.log.StoreLogFetcher`). The directory then
holds ``checkpoint``, ``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``, byte for byte
what the service serves at those paths, and any static web server, object store or CDN can
serve it (cache rules: :func:`~ironroot.log.cache_control`).

Nothing unauthenticated is ever written. The source's checkpoint must verify under the log's
keys; then, before any file is written:

1. the right-edge (partial) tiles of the new tree must give the checkpoint's root;
2. each new full tile, top level first, must hash to the hash its parent tile holds for it
   (the parent being a tile already authenticated this way);
3. each entry bundle's leaf hashes must be the level-0 tile's hashes;
4. when the directory already holds an export, its own tiles must give its checkpoint's root,
   and the new tree must extend it: every partial tile of the old tree is a prefix of the new
   tile at that place (which, with 1-2, proves the old tree is a prefix of the new one).

A source whose checkpoint is older than the directory's is only checked for consistency and
nothing is written (a lagging replica); a different root at a size already exported raises
:class:`InconsistentCheckpoint`.

Writes are atomic (a temporary file, fsync, then link or rename); every folder written to is
fsynced once, before the checkpoint. A temporary file an export killed midway left behind is
deleted by the next export that writes its folder (the directory's own folder: every export).
A full tile or bundle is never rewritten: it is linked into place only if absent, and one
already present with other bytes raises :class:`Conflict` (another log's files, or a fork).
Nothing is written or deleted outside the directory: a symbolic link where a file or folder
of the export goes raises :class:`StorageError` (the export is served as regular files only:
:class:`DirectoryLogFetcher` follows no link).
Partial tiles are written under their width (``.p/<W>``) beside the older ones, so a client
still reading the previous checkpoint finds what it needs. The checkpoint is written last, so
a reader never sees a checkpoint whose tiles are missing, and a crash at any point leaves the
previous export intact. One export writes a directory at a time (an exclusive ``flock`` on
the directory itself, so no file is added; another export raises :class:`InUse`): two exports
interleaved could otherwise publish an older checkpoint over a newer one. Once the new
checkpoint is in place, the partial tiles and bundles whose full versions now exist are
deleted (c2sp.org/tlog-tiles allows it; clients fall back to the full tile). The size they
are deleted from is recorded (``.removing-partials``) before the checkpoint is replaced, so
the next export finishes a deletion a kill cut short.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ironroot._fileio import fsync_dir, is_write_temporary, make_dirs, read_beneath, write_atomic
from ironroot.errors import (
    ConfigError,
    Conflict,
    InconsistentCheckpoint,
    InputUnavailable,
    InUse,
    IronrootError,
    LimitExceeded,
    MalformedInput,
    NotFound,
    StorageError,
    VerificationFailed,
)
from ironroot.log._checkpoint import Checkpoint
from ironroot.log._note import NoteVerifier, open_checkpoint
from ironroot.log._static import CHECKPOINT_PATH, DirectoryLogFetcher
from ironroot.log._tiles import (
    HASH_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    encode_entry_bundle,
    entry_bundle_path,
    parse_entry_bundle,
    partial_tile_width,
    tile_hash_range,
    tile_path,
)
from ironroot.log._tiletree import TileTree
from ironroot.log._verify import LogFetcher, _served, fetch_checkpoint, fetch_resource
from ironroot.log.layout import LogIdentity
from ironroot.merkle import leaf_hash

__all__ = ["ExportReport", "export_tiles"]

_log = logging.getLogger("ironroot.log")
_FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
_FILE_MODE = 0o644
# Where an export records, before it replaces the checkpoint, the tree size whose partial
# tiles and bundles it then deletes up to the new size (removed once they are deleted).
_REMOVING = ".removing-partials"


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What one export step did."""

    origin: str
    size: int
    """The tree size of the checkpoint the directory now holds."""
    root: bytes
    previous_size: int
    """The tree size the directory held before (0 for a new export)."""
    tiles: int
    """Tiles written (full and partial)."""
    entry_bundles: int
    """Entry bundles written (full and partial)."""
    removed: int
    """Partial tiles and bundles deleted because their full versions now exist."""
    checkpoint_written: bool
    source_behind: bool = False
    """The source served an older (consistent) checkpoint: nothing was written."""

    def to_json(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": self.root.hex(),
            "previous_size": self.previous_size,
            "tiles": self.tiles,
            "entry_bundles": self.entry_bundles,
            "removed": self.removed,
            "checkpoint_written": self.checkpoint_written,
            "source_behind": self.source_behind,
        }


class _Recorder:
    """A fetcher that keeps what it fetched (the edge tiles the root check reads)."""

    def __init__(self, source: LogFetcher) -> None:
        self._source = source
        self.fetched: dict[str, bytes] = {}

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        data = self._source.fetch(path, accept=accept)
        self.fetched[path] = data
        return data


def _refuse_links(root: Path, path: str) -> None:
    """``StorageError`` when a name of ``path`` beneath ``root`` is a symbolic link: an
    export writes only inside its directory, never through a link to elsewhere (and what it
    writes is served only as regular files, :class:`DirectoryLogFetcher`)."""
    at = root
    for name in path.split("/"):
        at = at / name
        try:
            mode = os.lstat(at).st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot read {at}: {exc.strerror}") from exc
        if stat.S_ISLNK(mode):
            raise StorageError(
                f"{at} is a symbolic link: an export writes only files inside its directory, "
                "never through a link; remove it"
            )


class _Directory:
    """The export directory: atomic, never-rewriting writes and partial clean-up."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tiles = 0
        self.bundles = 0
        self._unsynced: set[Path] = set()
        self._tidied: set[Path] = set()

    def tidy(self, folder: Path) -> None:
        """Delete the temporary files an export killed midway left in ``folder`` (once per
        export: it holds the directory's lock, so no other export is writing them)."""
        if folder in self._tidied:
            return
        self._tidied.add(folder)
        try:
            with os.scandir(folder) as found:
                stale = [
                    e.path
                    for e in found
                    if is_write_temporary(e.name) and e.is_file(follow_symlinks=False)
                ]
            for name in stale:
                os.unlink(name)
        except OSError as exc:
            raise StorageError(f"cannot clean up {folder}: {exc.strerror}") from exc

    def put(self, path: str, data: bytes, *, bundle: bool) -> None:
        file = self.root / path
        _refuse_links(self.root, path)
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            self.tidy(file.parent)
            # the file's bytes are synced now, its folder (and new folders' parents) once,
            # before the checkpoint is published
            write_atomic(file, data, mode=_FILE_MODE, exclusive=True, sync_dir=False)
        except Conflict:
            try:  # whatever is there (a named pipe too) is read without waiting
                present = read_beneath(self.root, path, len(data))
            except LimitExceeded:
                present = None
            except InputUnavailable as exc:  # a directory
                raise StorageError(f"cannot read {file}: {exc.detail}") from exc
            except OSError as exc:
                raise StorageError(f"cannot read {file}: {exc.strerror}") from exc
            if present != data:
                raise Conflict(
                    f"{file} already holds other bytes: the directory holds another log's "
                    "tiles, or the log forked; an exported tile is never replaced"
                ) from None
            return
        except OSError as exc:
            raise StorageError(f"cannot write {file}: {exc.strerror}") from exc
        folder = file.parent
        while folder != self.root and folder not in self._unsynced:
            self._unsynced.add(folder)
            folder = folder.parent
        if bundle:
            self.bundles += 1
        else:
            self.tiles += 1

    def publish(self, note: bytes) -> None:
        file = self.root / CHECKPOINT_PATH
        try:
            for folder in sorted(self._unsynced, key=lambda p: len(p.parts), reverse=True):
                fsync_dir(folder)
            self._unsynced.clear()
            write_atomic(file, note, mode=_FILE_MODE)  # syncs the root folder too
        except OSError as exc:
            raise StorageError(f"cannot write {file}: {exc.strerror}") from exc

    def begin_removal(self, start: int) -> None:
        """Record that the partials from the tree of ``start`` on are to be deleted (synced
        with the checkpoint that follows: it is only a reminder to finish the job)."""
        file = self.root / _REMOVING
        try:
            write_atomic(file, b"%d\n" % start, mode=_FILE_MODE, sync_dir=False)
        except OSError as exc:
            raise StorageError(f"cannot write {file}: {exc.strerror}") from exc

    def pending_removal(self) -> int | None:
        """The size recorded by an export whose deletion of partials did not finish."""
        file = self.root / _REMOVING
        try:
            text = read_beneath(self.root, _REMOVING, 32).decode("ascii")
            return int(text) if text.endswith("\n") and text[:-1].isdigit() else None
        except (FileNotFoundError, LimitExceeded, InputUnavailable, UnicodeDecodeError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {file}: {exc.strerror}") from exc

    def end_removal(self) -> None:
        file = self.root / _REMOVING
        try:
            file.unlink(missing_ok=True)
        except OSError as exc:  # the partials are deleted; the next export retries this
            _log.warning("cannot delete %s: %s", file, exc.strerror)

    def remove_partials(self, full_path: str) -> int:
        """Delete ``<full_path>.p/`` (the partial versions of a now full resource); never
        through a link, there or in a folder above it (:class:`StorageError`)."""
        _refuse_links(self.root, f"{full_path}.p")
        folder = self.root / f"{full_path}.p"
        if not folder.is_dir():
            return 0
        count = sum(1 for p in folder.iterdir() if p.is_file())
        try:
            shutil.rmtree(folder)
        except OSError as exc:  # the export is complete; a leftover partial is still correct
            _log.warning("cannot delete %s: %s", folder, exc.strerror)
            return 0
        return count


def export_tiles(source: LogFetcher, directory: Path, *, identity: LogIdentity) -> ExportReport:
    """Bring ``directory`` up to the checkpoint ``source`` serves (see the module doc).

    Raises :class:`VerificationFailed` when the source serves something that does not verify
    (the checkpoint's own signature errors propagate as they are),
    :class:`InconsistentCheckpoint` when its tree does not extend the exported one,
    :class:`InUse` when another export is writing the directory,
    :class:`ConfigError` when the directory holds another log's checkpoint, :class:`Conflict`
    when it holds other bytes at a path to write, :class:`StorageError` when it cannot be
    written or its own export is damaged.
    """
    origin, verifiers = identity.origin, tuple(identity.verifiers)
    note, new = fetch_checkpoint(source, verifiers, origin=origin)
    root = Path(directory)
    try:
        make_dirs(root)
    except OSError as exc:
        raise StorageError(f"cannot create {root}: {exc.strerror}") from exc
    with _locked(root):
        return _export(source, root, note, new, origin, verifiers)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the directory itself while one export writes it."""
    try:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise StorageError(f"cannot open {root}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise InUse(
                f"another export is writing {root}; one export writes a directory at a time"
            ) from exc
        yield
    finally:
        os.close(fd)


def _export(
    source: LogFetcher,
    root: Path,
    note: bytes,
    new: Checkpoint,
    origin: str,
    verifiers: tuple[NoteVerifier, ...],
) -> ExportReport:
    """:func:`export_tiles` once ``root`` is locked."""
    local = DirectoryLogFetcher(root)
    out = _Directory(root)
    out.tidy(root)

    old: Checkpoint | None = None
    old_note: bytes | None = None
    old_tree: TileTree | None = None
    with contextlib.suppress(NotFound):
        old_note = local.fetch(CHECKPOINT_PATH)
    if old_note is not None:
        try:
            old = open_checkpoint(old_note, verifiers, origin=origin)
        except IronrootError as exc:
            raise ConfigError(
                f"{root / CHECKPOINT_PATH} is not a checkpoint of {origin} under the log's "
                f"keys ({exc.detail}): the directory holds another log's export, or a damaged one"
            ) from exc
        old_tree = TileTree(local, old.size)
        try:
            exported_root = old_tree.root()
        except IronrootError as exc:
            raise StorageError(f"the export in {root} is damaged: {exc.detail}") from exc
        if exported_root != old.root:
            raise StorageError(
                f"the tiles in {root} do not give its checkpoint's root: the export is damaged"
            )
    old_size = 0 if old is None else old.size
    repaired = 0
    start = out.pending_removal()
    if start is not None and start <= old_size:  # a kill cut the last deletion short
        repaired = _remove_partials(out, start, old_size)
    out.end_removal()
    if old is not None and old_tree is not None and new.size <= old.size:
        if old_tree.root(new.size) != new.root:
            raise InconsistentCheckpoint(
                f"the source's checkpoint at size {new.size} has another root than the "
                f"tree exported in {root}: the log forked"
            )
        behind = new.size < old.size
        rewrite = not behind and note != old_note  # e.g. more cosignatures
        if rewrite:
            out.publish(note)
        return ExportReport(
            origin, old.size, old.root, old.size, 0, 0, repaired, rewrite, source_behind=behind
        )

    # 1. The new tree's edge: its partial tiles must give the checkpoint's root.
    recorder = _Recorder(source)
    if TileTree(recorder, new.size).root() != new.root:
        raise VerificationFailed("the source's tiles do not give its checkpoint's root")
    verified: dict[tuple[int, int], bytes] = {}
    level = 0
    while new.size >> (TILE_HEIGHT * level):
        width = partial_tile_width(level, new.size)
        if width:
            index = new.size >> (TILE_HEIGHT * (level + 1))
            data = recorder.fetched.get(tile_path(level, index, width))
            if data is None:  # the source no longer has the partial tile: its full one's prefix
                data = recorder.fetched[tile_path(level, index)]
            verified[(level, index)] = data[: width * HASH_SIZE]
        level += 1
    top = level - 1

    # 4. What the directory holds must be a prefix of the new tree.
    old_edges: dict[int, tuple[int, bytes]] = {}
    if old_tree is not None:
        for lvl in range(top + 1):
            width = partial_tile_width(lvl, old_size)
            if width:
                index = old_size >> (TILE_HEIGHT * (lvl + 1))
                first = index * TILE_WIDTH
                hashes = [old_tree.node(TILE_HEIGHT * lvl, first + i) for i in range(width)]
                old_edges[lvl] = (index, b"".join(hashes))

    def check_extends(lvl: int, index: int, data: bytes) -> None:
        edge = old_edges.get(lvl)
        if edge is not None and edge[0] == index and not data.startswith(edge[1]):
            raise InconsistentCheckpoint(
                f"tile {lvl}/{index} of the source's tree does not extend the one exported in "
                f"{root}: the log forked"
            )

    for (lvl, index), data in verified.items():
        check_extends(lvl, index, data)
    for (lvl, index), data in sorted(verified.items(), reverse=True):
        out.put(tile_path(lvl, index, len(data) // HASH_SIZE), data, bundle=False)

    # 2 and 3. The new full tiles, top level first, each against its parent; at level 0,
    # each with its entry bundle.
    for lvl in range(top - 1, -1, -1):
        first = old_size >> (TILE_HEIGHT * (lvl + 1))
        stop = new.size >> (TILE_HEIGHT * (lvl + 1))
        for index in range(first, stop):
            path = tile_path(lvl, index)
            data = _served(source, path)
            if len(data) != _FULL_TILE_BYTES:
                raise VerificationFailed(f"{path} is {len(data)} bytes, not a full tile")
            hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
            parent = verified[(lvl + 1, index // TILE_WIDTH)]
            offset = (index % TILE_WIDTH) * HASH_SIZE
            if tile_hash_range(hashes) != parent[offset : offset + HASH_SIZE]:
                raise VerificationFailed(f"{path} does not hash to its parent tile's hash")
            check_extends(lvl, index, data)
            if lvl:
                verified[(lvl, index)] = data
            else:
                bundle = _bundle(source, index, None, hashes)
            out.put(path, data, bundle=False)
            if not lvl:
                out.put(entry_bundle_path(index), bundle, bundle=True)

    width = new.size % TILE_WIDTH
    if width:
        index = new.size // TILE_WIDTH
        edge = verified[(0, index)]
        hashes = [edge[i : i + HASH_SIZE] for i in range(0, len(edge), HASH_SIZE)]
        out.put(entry_bundle_path(index, width), _bundle(source, index, width, hashes), bundle=True)

    completes = old_size // TILE_WIDTH != new.size // TILE_WIDTH  # a tile becomes full
    if completes:
        out.begin_removal(old_size)
    out.publish(note)
    removed = repaired
    if completes:
        removed += _remove_partials(out, old_size, new.size)
        out.end_removal()
    return ExportReport(origin, new.size, new.root, old_size, out.tiles, out.bundles, removed, True)


def _remove_partials(out: _Directory, start: int, stop: int) -> int:
    """Delete the partial tiles and bundles whose full versions the tree of ``stop`` has and
    the tree of ``start`` had not."""
    removed = 0
    level = 0
    while stop >> (TILE_HEIGHT * (level + 1)):
        shift = TILE_HEIGHT * (level + 1)
        for index in range(start >> shift, stop >> shift):
            removed += out.remove_partials(tile_path(level, index))
        level += 1
    for index in range(start // TILE_WIDTH, stop // TILE_WIDTH):
        removed += out.remove_partials(entry_bundle_path(index))
    return removed


def _bundle(source: LogFetcher, index: int, width: int | None, hashes: list[bytes]) -> bytes:
    """Entry bundle ``index`` (``width`` None: full), checked against its level-0 hashes."""
    count = TILE_WIDTH if width is None else width
    path = entry_bundle_path(index, width)
    try:
        data = fetch_resource(source, path)
        exact = True
    except NotFound as exc:
        if width is None:
            raise VerificationFailed(f"the source does not serve {path}") from exc
        data = _served(source, entry_bundle_path(index))  # only the full one is left
        exact = False
    try:  # exactly the entries its name says: the full bundle read instead holds 256
        entries = parse_entry_bundle(data, count if exact else TILE_WIDTH)[:count]
    except MalformedInput as exc:
        raise VerificationFailed(f"{path} is malformed: {exc.detail}") from exc
    for i, entry in enumerate(entries):
        if leaf_hash(entry) != hashes[i]:
            raise VerificationFailed(
                f"entry {index * TILE_WIDTH + i} in {path} does not hash to its leaf in the tile"
            )
    return data if exact else encode_entry_bundle(entries)
