"""Exporting a log as static tlog-tiles files: byte for byte what the log serves, growing step
by step, verified from the directory alone; nothing unauthenticated is written, a full tile is
never rewritten, the checkpoint comes last, and every refusal names its error."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from log_testkit import (
    ORIGIN,
    LogBackedFetcher,
    ed25519_key,
    entries,
    fill,
    make_data_dir,
    signer,
)

import ironroot
from ironroot.cli import main
from ironroot.crypto import PrivateKey
from ironroot.errors import (
    ConfigError,
    Conflict,
    InconsistentCheckpoint,
    InUse,
    MalformedInput,
    NotFound,
    StorageError,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.log import (
    CACHE_CHECKPOINT,
    CACHE_FULL,
    CACHE_PARTIAL,
    Checkpoint,
    DirectoryLogFetcher,
    Log,
    LogFetcher,
    LogIdentity,
    MemoryLogStore,
    NoteSigner,
    StoreLogFetcher,
    TileTree,
    cache_control,
    entry_bundles_for_size,
    export_tiles,
    open_note,
    sign_checkpoint,
    tiles_for_size,
    verify_remote_log,
)
from ironroot.log._static import MAX_RESOURCE
from kill_points import KILLER


def _identity(log: Log) -> LogIdentity:
    return LogIdentity(origin=ORIGIN, verifiers=log.note_verifiers)


def _new_log(key: PrivateKey, store: MemoryLogStore | None = None) -> Log:
    log = Log.open_memory(origin=ORIGIN, note_signers=[signer(key)], store=store)
    log.start()
    return log


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def _assert_served_exactly(root: Path, log: Log) -> None:
    """The directory holds the log's checkpoint, every tile and bundle its size needs (byte
    for byte as served), and besides them only older partial tiles that are still needed."""
    served = LogBackedFetcher(log)
    size = log.tree_size
    files = _files(root)
    assert files.pop("checkpoint") == log.checkpoint()
    for address in [*tiles_for_size(size), *entry_bundles_for_size(size)]:
        assert files.pop(address.path) == served.fetch(address.path), address.path
    for path, data in files.items():  # an older partial of a tile that is still partial
        assert ".p/" in path, path
        full, _, _width = path.partition(".p/")
        assert not (root / full).exists(), path
        assert data == served.fetch(path)
    report = verify_remote_log(DirectoryLogFetcher(root), identity=_identity(log))
    assert (report.size, report.root) == (size, log.root())


@pytest.fixture
def key() -> PrivateKey:
    return ed25519_key()


@pytest.fixture
def log(key: PrivateKey) -> Iterator[Log]:
    log = _new_log(key)
    yield log
    log.close()


def test_a_growing_log_exported_step_by_step(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    source = LogBackedFetcher(log)
    sizes = [1, 2, 255, 256, 257, 511, 700, 65_536 + 256 + 3]
    previous = 0
    full_tile = tmp_path / "unused"
    for size in sizes:
        fill(log, entries(size - previous, previous))
        report = export_tiles(source, out, identity=_identity(log))
        assert (report.size, report.previous_size, report.root) == (size, previous, log.root())
        assert report.checkpoint_written
        assert not report.source_behind
        _assert_served_exactly(out, log)
        if size == 256:
            full_tile = out / "tile/0/000"
            stamp = full_tile.stat()
            assert report.removed == 6  # the partial tiles and bundles of sizes 1, 2 and 255
        previous = size
    # a full tile is written once and never again
    assert (full_tile.stat().st_ino, full_tile.stat().st_mtime_ns) == (
        stamp.st_ino,
        stamp.st_mtime_ns,
    )
    # the largest step wrote one full level-1 tile and a level-2 partial
    assert (out / "tile/1/000").stat().st_size == 8192
    assert (out / "tile/2/000.p/1").stat().st_size == 32
    # nothing new: nothing written
    again = export_tiles(source, out, identity=_identity(log))
    assert (again.tiles, again.entry_bundles, again.checkpoint_written) == (0, 0, False)


def test_older_partial_tiles_stay_until_the_full_tile_exists(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    fill(log, entries(10))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    fill(log, entries(5, 10))
    report = export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    assert (report.tiles, report.entry_bundles, report.removed) == (1, 1, 0)
    # a reader still holding the size-10 checkpoint finds its tiles
    assert (out / "tile/0/000.p/10").exists()
    assert (out / "tile/0/000.p/15").exists()
    fill(log, entries(300, 15))
    report = export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    assert report.removed == 4
    assert not (out / "tile/0/000.p").exists()
    assert not (out / "tile/entries/000.p").exists()
    _assert_served_exactly(out, log)


def test_a_store_is_exported_as_the_log_serves_it(key: PrivateKey, tmp_path: Path) -> None:
    store = MemoryLogStore()
    log = _new_log(key, store)
    try:
        fill(log, entries(600))
        served = LogBackedFetcher(log)
        from_store = StoreLogFetcher(store)
        for address in [*tiles_for_size(600), *entry_bundles_for_size(600)]:
            assert from_store.fetch(address.path) == served.fetch(address.path)
        assert from_store.fetch("checkpoint") == log.checkpoint()
        with pytest.raises(NotFound):
            from_store.fetch("tile/0/003")
        with pytest.raises(NotFound):
            from_store.fetch("tile/entries/002")  # only partial at 600
        with pytest.raises(NotFound):
            from_store.fetch(".well-known/transparency-configuration")
        export_tiles(from_store, tmp_path / "t", identity=_identity(log))
        _assert_served_exactly(tmp_path / "t", log)
    finally:
        log.close()
    with pytest.raises(NotFound):
        StoreLogFetcher(MemoryLogStore()).fetch("checkpoint")


def test_cache_rules() -> None:
    assert cache_control("checkpoint") == CACHE_CHECKPOINT == "no-cache"
    assert cache_control("tile/0/x001/234") == CACHE_FULL
    assert cache_control("/tile/entries/000") == CACHE_FULL
    assert "immutable" in CACHE_FULL
    assert "max-age=31536000" in CACHE_FULL
    assert cache_control("tile/3/000.p/7") == CACHE_PARTIAL
    assert cache_control("tile/entries/001.p/255") == CACHE_PARTIAL
    assert "immutable" not in CACHE_PARTIAL
    with pytest.raises(MalformedInput):
        cache_control("tile/0/1")


def test_the_directory_reader_reads_only_resources(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"x")
    reader = DirectoryLogFetcher(tmp_path)
    for bad in ("secret", "../secret", "tile/0/../../secret", "tile/0/1", "tile/0/000.p/0"):
        with pytest.raises(MalformedInput):
            reader.fetch(bad)
    with pytest.raises(NotFound):
        reader.fetch("checkpoint")
    (tmp_path / "tile" / "0" / "000").mkdir(parents=True)  # a folder where a tile would be
    with pytest.raises(NotFound):
        reader.fetch("tile/0/000")
    with pytest.raises(ConfigError):
        DirectoryLogFetcher(tmp_path / "secret")


def test_the_directory_reader_follows_no_symbolic_link(tmp_path: Path) -> None:
    # was: a link in the directory was read through, to wherever it led
    root = tmp_path / "tiles"
    (root / "tile" / "0").mkdir(parents=True)
    (root / "tile" / "0" / "000").write_bytes(b"\1" * 8192)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "0").mkdir(parents=True)
    (elsewhere / "secret").write_bytes(b"secret")
    (elsewhere / "0" / "000").write_bytes(b"\2" * 8192)
    os.symlink(elsewhere / "secret", root / "checkpoint")
    os.symlink(elsewhere / "0", root / "tile" / "1")
    os.symlink("000", root / "tile" / "0" / "001")
    reader = DirectoryLogFetcher(root)
    for path, name in (("checkpoint", "checkpoint"), ("tile/0/001", "tile/0/001")):
        with pytest.raises(NotFound) as caught:
            reader.fetch(path)
        assert caught.value.detail == f"{root / name} is a symbolic link, which is never followed"
    with pytest.raises(NotFound) as folder:
        reader.fetch("tile/1/000")
    assert folder.value.detail == f"{root / 'tile/1/000'} does not exist"
    assert reader.fetch("tile/0/000") == b"\1" * 8192
    linked = tmp_path / "linked"
    os.symlink(root, linked)  # the directory itself may be a link
    assert DirectoryLogFetcher(linked).fetch("tile/0/000") == b"\1" * 8192


def test_an_export_never_writes_through_a_symbolic_link(log: Log, tmp_path: Path) -> None:
    # was: a link where a folder of the export goes took its files elsewhere
    out = tmp_path / "tiles"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "tile").mkdir(parents=True)
    os.symlink(elsewhere, out / "tile" / "0")
    fill(log, entries(300))
    with pytest.raises(StorageError) as caught:
        export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    assert caught.value.detail == (
        f"{out / 'tile/0'} is a symbolic link: an export writes only files inside its "
        "directory, never through a link; remove it"
    )
    assert list(elsewhere.iterdir()) == []
    assert not (out / "checkpoint").exists()
    (out / "tile" / "0").unlink()
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    _assert_served_exactly(out, log)


# --- refusals: nothing unauthenticated is written -----------------------------------------


class Tampered(LogBackedFetcher):
    """Serves the log, with one byte of one resource flipped."""

    def __init__(self, log: Log, path: str) -> None:
        super().__init__(log)
        self.path = path

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        data = super().fetch(path, accept=accept)
        if path == self.path:
            return data[:-1] + bytes([data[-1] ^ 1])
        return data


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tile/entries/001", "does not hash to its leaf"),
        ("tile/entries/002.p/188", "does not hash to its leaf"),
        ("tile/0/001", "does not hash to its parent"),
        ("tile/0/002.p/188", "do not give its checkpoint's root"),
        ("tile/1/000.p/2", "do not give its checkpoint's root"),
    ],
)
def test_a_tampered_resource_is_refused_and_nothing_is_published(
    log: Log, tmp_path: Path, path: str, message: str
) -> None:
    out = tmp_path / "tiles"
    fill(log, entries(100))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    before = _files(out)
    fill(log, entries(600, 100))
    with pytest.raises(VerificationFailed, match=message):
        export_tiles(Tampered(log, path), out, identity=_identity(log))
    after = _files(out)
    assert after["checkpoint"] == before["checkpoint"]
    assert path not in after
    # what the earlier checkpoint needs is intact, and a good source completes the export
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    _assert_served_exactly(out, log)


def test_a_checkpoint_under_another_key_is_refused(log: Log, tmp_path: Path) -> None:
    fill(log, entries(3))
    stranger = LogIdentity(origin=ORIGIN, verifiers=(signer(ed25519_key()).verifier(),))
    with pytest.raises(UnknownIssuer):
        export_tiles(LogBackedFetcher(log), tmp_path / "t", identity=stranger)
    assert not (tmp_path / "t" / "checkpoint").exists()
    other_origin = LogIdentity(origin="other.example", verifiers=log.note_verifiers)
    with pytest.raises(UnknownIssuer):
        export_tiles(LogBackedFetcher(log), tmp_path / "t", identity=other_origin)


def test_a_fork_is_refused(key: PrivateKey, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    first, second = _new_log(key), _new_log(key)
    try:
        fill(first, entries(300))
        export_tiles(LogBackedFetcher(first), out, identity=_identity(first))
        before = _files(out)
        fill(second, [*entries(299), b"another entry", *entries(100, 300)])
        with pytest.raises(InconsistentCheckpoint, match="forked"):
            export_tiles(LogBackedFetcher(second), out, identity=_identity(first))
        assert _files(out) == before
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("size", [300, 200])
def test_a_fork_at_or_below_the_exported_size_is_refused(
    key: PrivateKey, tmp_path: Path, size: int
) -> None:
    out = tmp_path / "tiles"
    first, second = _new_log(key), _new_log(key)
    try:
        fill(first, entries(300))
        export_tiles(LogBackedFetcher(first), out, identity=_identity(first))
        fill(second, [b"x", *entries(size - 1, 1)])
        with pytest.raises(InconsistentCheckpoint):
            export_tiles(LogBackedFetcher(second), out, identity=_identity(first))
    finally:
        first.close()
        second.close()


def test_a_lagging_source_writes_nothing(key: PrivateKey, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    first, lagging = _new_log(key), _new_log(key)
    try:
        fill(first, entries(300))
        fill(lagging, entries(200))
        export_tiles(LogBackedFetcher(first), out, identity=_identity(first))
        before = _files(out)
        report = export_tiles(LogBackedFetcher(lagging), out, identity=_identity(first))
        assert report.source_behind
        assert (report.size, report.tiles) == (300, 0)
        assert _files(out) == before
    finally:
        first.close()
        lagging.close()


def test_another_logs_directory_is_refused(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    other = _new_log(ed25519_key())
    try:
        fill(other, entries(5))
        export_tiles(LogBackedFetcher(other), out, identity=_identity(other))
    finally:
        other.close()
    fill(log, entries(5))
    with pytest.raises(ConfigError, match="another log's export"):
        export_tiles(LogBackedFetcher(log), out, identity=_identity(log))


def test_a_damaged_export_is_refused(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    fill(log, entries(40))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    tile = out / "tile/0/000.p/40"
    data = tile.read_bytes()
    tile.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    fill(log, entries(5, 40))
    with pytest.raises(StorageError, match="damaged"):
        export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    tile.unlink()
    with pytest.raises(StorageError, match="damaged"):
        export_tiles(LogBackedFetcher(log), out, identity=_identity(log))


def test_other_bytes_at_a_full_tile_are_never_replaced(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    (out / "tile" / "0").mkdir(parents=True)
    (out / "tile/0/000").write_bytes(b"\0" * 8192)
    fill(log, entries(300))
    with pytest.raises(Conflict, match="never replaced"):
        export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    assert (out / "tile/0/000").read_bytes() == b"\0" * 8192
    assert not (out / "checkpoint").exists()


class Failing(LogBackedFetcher):
    """A source that goes away after ``budget`` fetches."""

    def __init__(self, log: Log, budget: int) -> None:
        super().__init__(log)
        self.budget = budget

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        self.budget -= 1
        if self.budget < 0:
            raise StorageError("the source went away")
        return super().fetch(path, accept=accept)


def test_an_interrupted_export_leaves_the_previous_one_whole(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    fill(log, entries(100))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    old_checkpoint = log.checkpoint()
    fill(log, entries(1000, 100))
    with pytest.raises(StorageError):
        export_tiles(Failing(log, 6), out, identity=_identity(log))
    assert (out / "checkpoint").read_bytes() == old_checkpoint
    assert (out / "tile/0/000").exists()  # some authenticated tiles were written already
    report = verify_remote_log(DirectoryLogFetcher(out), identity=_identity(log))
    assert report.size == 100
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary file is left
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    _assert_served_exactly(out, log)


def test_temporary_files_a_killed_export_left_are_deleted_by_the_next(
    log: Log, tmp_path: Path
) -> None:
    """A ``kill -9`` between a temporary file's creation and its link leaves it behind; the
    next export that writes its folder deletes it (the checkpoint's: every export)."""
    out = tmp_path / "tiles"
    fill(log, entries(300))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    fill(log, entries(300, 300))
    left = []
    for folder, name in [
        (out, "checkpoint"),
        (out / "tile/0", "001"),
        (out / "tile/entries", "001"),
    ]:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        os.write(fd, b"half a tile")
        os.close(fd)
        left.append(Path(tmp))
    unrelated = out / "tile/0/.keep"
    unrelated.write_bytes(b"")
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    assert [p for p in left if p.exists()] == []
    assert unrelated.exists()  # only the export's own temporary files are deleted
    _assert_served_exactly(out, log)
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", suffix=".tmp", dir=out)
    os.close(fd)
    report = export_tiles(LogBackedFetcher(log), out, identity=_identity(log))  # nothing new
    assert not report.checkpoint_written
    assert not Path(tmp).exists()


class _WithCheckpoint:
    """``inner`` serving ``note`` as its checkpoint: a mirror read by a client that fetched
    its checkpoint before the mirror grew, or the same tree with one more signature line."""

    def __init__(self, inner: LogFetcher, note: bytes) -> None:
        self.inner = inner
        self.note = note

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        return self.note if path == "checkpoint" else self.inner.fetch(path, accept=accept)


def test_a_mirror_that_grew_while_read_still_verifies(log: Log, tmp_path: Path) -> None:
    """The export deletes the partial tiles and bundles whose full versions exist; a reader
    still at the previous checkpoint reads their full versions' prefixes instead."""
    out = tmp_path / "tiles"
    fill(log, entries(300))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    before = log.checkpoint()
    fill(log, entries(300, 300))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    assert not (out / "tile/0/001.p").exists()
    assert not (out / "tile/entries/001.p").exists()
    reader = _WithCheckpoint(DirectoryLogFetcher(out), before)
    report = verify_remote_log(reader, identity=_identity(log))
    assert report.size == 300

    # the full versions must still agree with what the previous checkpoint needs
    tile = out / "tile/0/001"
    tile.chmod(0o644)
    tile.write_bytes(tile.read_bytes()[:-32])
    with pytest.raises(VerificationFailed, match="tile/0/001 is not a full tile"):
        verify_remote_log(reader, identity=_identity(log))
    tile.write_bytes(bytes(256 * 32))
    with pytest.raises(VerificationFailed, match="differs"):
        verify_remote_log(reader, identity=_identity(log))
    (out / "tile/0/001").unlink()
    with pytest.raises(VerificationFailed, match="neither"):
        verify_remote_log(reader, identity=_identity(log))


def test_a_full_bundle_read_for_a_deleted_partial_must_hold_every_entry(
    log: Log, tmp_path: Path
) -> None:
    out = tmp_path / "tiles"
    fill(log, entries(300))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    before = log.checkpoint()
    fill(log, entries(300, 300))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    reader = _WithCheckpoint(DirectoryLogFetcher(out), before)
    bundle = out / "tile/entries/001"
    bundle.write_bytes(LogBackedFetcher(log).fetch("tile/entries/001.p/44"))  # 44 of 256
    with pytest.raises(VerificationFailed, match="malformed"):
        verify_remote_log(reader, identity=_identity(log))


@pytest.mark.parametrize("path", ["tile/0/000", "tile/0/001.p/44", "tile/entries/000"])
def test_a_resource_larger_than_any_is_one_that_does_not_verify(
    log: Log, tmp_path: Path, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Served too large, a tile or bundle is served wrongly: ``verification-failed`` (exit 1)
    from every reader, as one of the wrong length is, not a caller's malformed input."""
    mirror = tmp_path / "mirror"
    fill(log, entries(300))
    export_tiles(LogBackedFetcher(log), mirror, identity=_identity(log))
    with (mirror / path).open("r+b") as handle:
        handle.truncate(MAX_RESOURCE + 1)
    # a hash tile is named as one (the largest tile is 8 KiB), a bundle as any resource
    too_large = "larger than a hash tile" if "entries" not in path else "larger than any"
    with pytest.raises(VerificationFailed, match=too_large):
        verify_remote_log(DirectoryLogFetcher(mirror), identity=_identity(log))
    with pytest.raises(VerificationFailed, match=too_large):
        export_tiles(DirectoryLogFetcher(mirror), tmp_path / "copy", identity=_identity(log))
    tree = TileTree(DirectoryLogFetcher(mirror), 300)
    with pytest.raises(VerificationFailed, match=too_large):
        tree.entries(0, 300) if "entries" in path else tree.node(0, 0) + tree.node(0, 299)
    vkey = log.note_verifiers[0].vkey
    assert main(["log", "verify", str(mirror), "--origin", ORIGIN, "--key", vkey]) == 1
    assert "verification-failed" in capsys.readouterr().err


def test_a_kill_right_after_the_checkpoint_lands_is_finished_by_the_next_export(
    key: PrivateKey, tmp_path: Path
) -> None:
    """``kill -9`` once the new checkpoint is in place, before the partial tiles and bundles
    whose full versions now exist are deleted: the next export deletes them, even when the
    log has not grown since."""
    data = make_data_dir(tmp_path / "data", key)
    out = tmp_path / "tiles"
    with Log.open(data, origin=ORIGIN, note_signers=[signer(key)]) as log:
        fill(log, entries(300))
        export_tiles(StoreLogFetcher(log.store), out, identity=_identity(log))
        fill(log, entries(300, 300))
    assert (out / "tile/0/001.p/44").exists()
    (tmp_path / "killer.py").write_text(KILLER)
    src = str(Path(ironroot.__file__).resolve().parent.parent)
    argv = ["log", "export-tiles", str(out), "--data", str(data)]
    done = subprocess.run(
        [sys.executable, str(tmp_path / "killer.py"), *argv],
        env={**os.environ, "PYTHONPATH": src, "IRONROOT_TEST_KILL_AFTER_REPLACING": "checkpoint"},
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -9, done
    assert (out / "tile/0/001.p/44").exists()  # killed before the deletion
    with Log.open(data, origin=ORIGIN, note_signers=[signer(key)]) as log:
        assert (out / "checkpoint").read_bytes() == log.checkpoint()
        report = export_tiles(StoreLogFetcher(log.store), out, identity=_identity(log))
        assert (report.size, report.checkpoint_written, report.removed) == (600, False, 2)
        assert not [p for p in out.rglob(".*") if p.is_file()]
        _assert_served_exactly(out, log)
        assert not (out / "tile/0/001.p").exists()
        assert not (out / "tile/entries/001.p").exists()


def test_files_are_world_readable(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    fill(log, entries(3))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    for path in out.rglob("*"):
        if path.is_file():
            assert os.stat(path).st_mode & 0o777 == 0o644, path


def test_a_mirror_of_a_mirror_is_the_same_bytes(log: Log, tmp_path: Path) -> None:
    fill(log, entries(1000))
    export_tiles(LogBackedFetcher(log), tmp_path / "a", identity=_identity(log))
    export_tiles(DirectoryLogFetcher(tmp_path / "a"), tmp_path / "b", identity=_identity(log))
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


class Advanced(LogBackedFetcher):
    """A static source whose checkpoint is an older snapshot while its files moved on and
    its partial files were deleted once the full ones existed."""

    def __init__(self, log: Log, note: bytes) -> None:
        super().__init__(log)
        self.note = note

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path == "checkpoint":
            return self.note
        if path.startswith(("tile/0/001.p/", "tile/entries/001.p/")):
            raise NotFound(path)
        return super().fetch(path, accept=accept)


def test_partial_resources_a_source_deleted_are_cut_from_the_full_ones(
    log: Log, tmp_path: Path
) -> None:
    fill(log, entries(300))
    then = {p: LogBackedFetcher(log).fetch(p) for p in ("tile/0/001.p/44", "tile/entries/001.p/44")}
    note = log.checkpoint()
    fill(log, entries(300, 300))
    export_tiles(Advanced(log, note), tmp_path / "t", identity=_identity(log))
    for path, data in then.items():
        assert (tmp_path / "t" / path).read_bytes() == data
    assert (tmp_path / "t" / "checkpoint").read_bytes() == note


def test_the_same_tree_with_more_signatures_replaces_only_the_checkpoint(
    key: PrivateKey, log: Log, tmp_path: Path
) -> None:
    out = tmp_path / "tiles"
    fill(log, entries(20))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    before = _files(out)
    body = open_note(log.checkpoint(), log.note_verifiers)
    extra = NoteSigner("witness.example/w", ed25519_key())
    note = sign_checkpoint(Checkpoint.parse(body), [signer(key), extra])
    assert note != log.checkpoint()
    resigned = _WithCheckpoint(LogBackedFetcher(log), note)
    report = export_tiles(resigned, out, identity=_identity(log))
    assert report.checkpoint_written
    assert (report.tiles, report.entry_bundles) == (0, 0)
    after = _files(out)
    assert after.pop("checkpoint") == note
    before.pop("checkpoint")
    assert after == before


def test_an_empty_log_exports_its_checkpoint_alone(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    report = export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    assert (report.size, report.tiles, report.entry_bundles) == (0, 0, 0)
    assert _files(out) == {"checkpoint": log.checkpoint()}
    fill(log, entries(2))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    _assert_served_exactly(out, log)


class _ExportsMeanwhile(LogBackedFetcher):
    """Serves the log frozen at one checkpoint; at its first tile, the log grows and another
    export of the same directory runs (a mirror restarted while the old one still writes)."""

    def __init__(self, log: Log, out: Path) -> None:
        super().__init__(log)
        self.note = log.checkpoint()
        self.out = out
        self.inner: BaseException | None = None

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path == "checkpoint":
            return self.note
        if self.inner is None and path.startswith("tile/"):
            fill(self.log, entries(400, self.log.tree_size))
            try:
                export_tiles(LogBackedFetcher(self.log), self.out, identity=_identity(self.log))
            except InUse as exc:
                self.inner = exc
            else:
                self.inner = AssertionError("the second export ran")
        return super().fetch(path, accept=accept)


def test_two_exports_of_one_directory_never_publish_an_older_checkpoint(
    log: Log, tmp_path: Path
) -> None:
    out = tmp_path / "tiles"
    fill(log, entries(10))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    fill(log, entries(290, 10))
    source = _ExportsMeanwhile(log, out)
    report = export_tiles(source, out, identity=_identity(log))
    assert isinstance(source.inner, InUse)
    assert "another export is writing" in source.inner.detail
    assert report.size == 300
    assert _exported_size(out / "checkpoint") == 300
    # once the first export is done, the next one brings the directory up to the log
    assert export_tiles(LogBackedFetcher(log), out, identity=_identity(log)).size == 700
    _assert_served_exactly(out, log)


def _exported_size(path: Path) -> int:
    return int(path.read_bytes().split(b"\n")[1])


def _within(seconds: float, work: Callable[[], object]) -> object:
    """``work()``'s result or error, failing the test if it has not returned in ``seconds``."""
    done: list[object] = []

    def run() -> None:
        try:
            done.append(work())
        except BaseException as exc:  # handed to the test
            done.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert done, f"still running after {seconds} s"
    return done[0]


def _unblock(fifo: Path) -> None:
    """Let a reader stuck opening ``fifo`` go (a writer appears and leaves at once)."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_named_pipe_in_a_static_directory_is_read_without_waiting(
    log: Log, tmp_path: Path
) -> None:
    # e.g. an unpacked archive of someone's tiles: tar keeps named pipes
    out = tmp_path / "tiles"
    fill(log, entries(300))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    fifo = out / "tile/entries/000"
    fifo.unlink()
    os.mkfifo(fifo)
    try:
        failed = _within(
            5, lambda: verify_remote_log(DirectoryLogFetcher(out), identity=_identity(log))
        )
        assert isinstance(failed, VerificationFailed)
        assert (
            failed.detail
            == "tile/entries/000 is malformed: the entry bundle has 0 entries, not 256"
        )
    finally:
        _unblock(fifo)


def test_a_named_pipe_where_a_tile_goes_is_a_conflict_not_a_wait(log: Log, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    (out / "tile" / "0").mkdir(parents=True)
    fifo = out / "tile/0/000"
    os.mkfifo(fifo)
    fill(log, entries(300))
    try:
        failed = _within(
            5, lambda: export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
        )
        assert isinstance(failed, Conflict)
        assert "already holds other bytes" in failed.detail
        assert not (out / "checkpoint").exists()
    finally:
        _unblock(fifo)


def test_partials_are_never_deleted_through_a_symbolic_link(log: Log, tmp_path: Path) -> None:
    """An export finishing the deletion a killed one left (``.removing-partials``) deleted
    ``tile/entries/000.p`` through a link at ``tile/entries``: a folder outside the export,
    with whatever it held, before any write checked the path for links."""
    out = tmp_path / "tiles"
    fill(log, entries(300))
    export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    elsewhere = tmp_path / "elsewhere"
    (out / "tile" / "entries").rename(elsewhere)
    os.symlink(elsewhere, out / "tile" / "entries")
    (elsewhere / "000.p").mkdir()
    (elsewhere / "000.p" / "kept").write_bytes(b"not the export's")
    (out / ".removing-partials").write_bytes(b"0\n")
    with pytest.raises(StorageError) as caught:
        export_tiles(LogBackedFetcher(log), out, identity=_identity(log))
    assert caught.value.detail == (
        f"{out / 'tile/entries'} is a symbolic link: an export writes only files inside its "
        "directory, never through a link; remove it"
    )
    assert (elsewhere / "000.p" / "kept").read_bytes() == b"not the export's"


def test_a_full_bundle_exported_for_a_deleted_partial_must_hold_every_entry(
    log: Log, tmp_path: Path
) -> None:
    """A source that no longer serves a partial bundle, and serves its full bundle with
    fewer than 256 entries (but more than the partial's), was exported from: a full bundle
    is 256 entries, whichever tree reads it (as ``verify_remote_log`` and ``TileTree``)."""
    fill(log, entries(600))
    before = log.checkpoint()  # 600 entries: the partial bundle 002.p/88

    class Source(LogBackedFetcher):
        def fetch(self, path: str, *, accept: str | None = None) -> bytes:
            if path == "checkpoint":
                return before
            if path == "tile/entries/002.p/88":
                raise NotFound(path)
            if path == "tile/entries/002":
                return self.log.read_entry_bundle(2, 200)
            return super().fetch(path, accept=accept)

    fill(log, entries(200, 600))  # the log now holds 200 entries of bundle 2
    out = tmp_path / "tiles"
    with pytest.raises(VerificationFailed) as info:
        export_tiles(Source(log), out, identity=_identity(log))
    assert info.value.detail == (
        "tile/entries/002.p/88 is malformed: the entry bundle has 200 entries, not 256"
    )
    assert not (out / "checkpoint").exists()
