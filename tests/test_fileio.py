"""``ironroot._fileio``: bounded reads of whatever a path names."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from durability import SyncLog, unsynced_names
from ironroot._fileio import (
    DirectoryLock,
    asked_mode,
    make_dirs,
    process_umask,
    read_beneath,
    read_limited,
    read_limited_fd,
    resolve_unplanted,
    write_atomic,
)
from ironroot.errors import Conflict, InputUnavailable, InUse, LimitExceeded
from stale_files import plant_look_alikes, stale_temporary


def test_read_limited_reads_a_file_within_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_limited(path, 10) == b"x" * 10
    with pytest.raises(LimitExceeded):
        read_limited(path, 9)


def test_a_directory_is_input_unavailable_naming_its_path(tmp_path: Path) -> None:
    """``open()`` refuses a directory's descriptor with an ``IsADirectoryError`` named by the
    descriptor's number: the check for a directory came after it and never ran, so callers
    that map the typed error (the platform's evidence, the CLI's inputs) got a bare
    ``OSError`` — and the descriptor is closed either way."""
    before = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").is_dir() else None
    with pytest.raises(InputUnavailable) as info:
        read_limited(tmp_path, 1024)
    assert type(info.value) is InputUnavailable
    assert info.value.code == "input-unavailable"
    assert str(tmp_path) in info.value.detail
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before


def test_write_atomic_names_the_file_asked_for_not_its_temporary(tmp_path: Path) -> None:
    """A folder that takes no new file (gone, ``/proc``, read-only) fails on the temporary
    file: the error names the file the caller asked for, not ``.f.x1y2z3w4.tmp``."""
    target = tmp_path / "gone" / "f"
    with pytest.raises(FileNotFoundError) as caught:
        write_atomic(target, b"data")
    assert caught.value.filename == str(target)
    assert caught.value.errno == errno.ENOENT


def test_a_directory_lock_is_never_taken_through_a_link(tmp_path: Path) -> None:
    """The lock file is truncated to record its holder's pid: opened through a link planted
    in the data directory, it emptied the file the link named (anywhere the process may
    write). It is opened without following links: ``OSError`` ELOOP, the file untouched."""
    victim = tmp_path / "precious"
    victim.write_bytes(b"keep me\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / ".lock").symlink_to(victim)
    with pytest.raises(OSError, match="Too many levels of symbolic links") as info:
        DirectoryLock(data)
    assert info.value.errno == errno.ELOOP
    assert victim.read_bytes() == b"keep me\n"


# --- stale temporaries of write_atomic, removed under the directory's lock --------------------


def test_the_lock_holder_removes_what_write_atomic_left_and_nothing_else(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    stale = [stale_temporary(data), stale_temporary(data / "keys", "receipt-keys.cbor")]
    kept = plant_look_alikes(data) + plant_look_alikes(data / "keys")
    with DirectoryLock(data) as lock:
        write_atomic(data / "keystore.sealed", b"current")
        removed = lock.remove_stale_temporaries(data / "keys")
        assert removed == [stale[0], stale[1]]
    assert not any(p.exists() for p in stale)
    assert all(p.is_symlink() or p.exists() for p in kept)
    assert (data / "keystore.sealed").read_bytes() == b"current"
    assert (data / "keys" / ".dir.abcd1234.tmp").is_dir()


def test_nothing_is_removed_without_the_lock(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    stale = stale_temporary(data)
    with DirectoryLock(data), pytest.raises(InUse):
        DirectoryLock(data).remove_stale_temporaries()  # never reached: not taken
    lock = DirectoryLock(data)
    lock.close()
    with pytest.raises(Conflict) as refused:  # closed: another process may hold it now
        lock.remove_stale_temporaries()
    assert type(refused.value) is Conflict
    assert refused.value.code == "lock-not-held"
    assert stale.exists()


def test_only_the_locked_directory_and_its_own_folders_are_cleaned(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    outside = stale_temporary(tmp_path)
    with DirectoryLock(data) as lock, pytest.raises(ValueError, match="not beneath"):
        lock.remove_stale_temporaries(tmp_path)  # not beneath the locked directory
    assert outside.exists()


# --- read_beneath: nothing outside the folder, never through a link --------------------------


def test_read_beneath_follows_no_link_and_names_nothing_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"inside")
    (tmp_path / "secret").write_bytes(b"secret")
    os.symlink(tmp_path / "secret", root / "a" / "link")
    os.symlink(tmp_path, root / "up")
    assert read_beneath(root, "a/f", 100) == b"inside"
    with pytest.raises(OSError, match="symbolic links") as to_file:
        read_beneath(root, "a/link", 100)
    assert to_file.value.errno == errno.ELOOP
    with pytest.raises(NotADirectoryError):
        read_beneath(root, "up/secret", 100)
    for name in ("../secret", "a/../../secret", "", "a//f", "./a/f", "a/f\0", "a\\..\\f"):
        with pytest.raises(FileNotFoundError):
            read_beneath(root, name, 100)
    os.symlink(root, tmp_path / "current")
    assert read_beneath(tmp_path / "current", "a/f", 100) == b"inside"


def test_read_beneath_regular_reads_no_pipe_a_writer_holds_open(tmp_path: Path) -> None:
    """With ``regular``, a named pipe (one whose writer holds it open and never writes kept
    a read waiting) is ``InputUnavailable`` before any read, a folder as ever; a file reads."""
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_bytes(b"bytes")
    writer = os.open(tmp_path / "pipe", os.O_RDWR | os.O_NONBLOCK)
    try:
        with pytest.raises(InputUnavailable, match="is not a regular file"):
            read_beneath(tmp_path, "pipe", 100, regular=True)
        with pytest.raises(InputUnavailable, match="is not a regular file"):
            read_limited(tmp_path / "pipe", 100, regular=True)
        with pytest.raises(InputUnavailable, match="is a directory"):
            read_beneath(tmp_path, "folder", 100, regular=True)
    finally:
        os.close(writer)
    assert read_beneath(tmp_path, "file", 100, regular=True) == b"bytes"
    assert read_limited(tmp_path / "file", 100, regular=True) == b"bytes"


def test_a_sparse_file_over_the_limit_is_refused_from_its_size(tmp_path: Path) -> None:
    """A regular file says how large it is: one over the limit is refused without a read (a
    sparse terabyte costs nothing); the descriptor form reads what the caller opened."""
    path = tmp_path / "huge"
    path.touch()
    os.truncate(path, 1 << 40)
    with pytest.raises(LimitExceeded, match=rf"^{re.escape(str(path))} is larger than 4096 bytes$"):
        read_limited(path, 4096)
    fd = os.open(path, os.O_RDONLY)
    with pytest.raises(LimitExceeded, match=rf"^{re.escape(str(path))} is larger than 4096 bytes$"):
        read_limited_fd(fd, path, 4096)
    with pytest.raises(OSError, match="Bad file descriptor"):  # closed on the way out
        os.fstat(fd)
    path.write_bytes(b"y" * 4096)
    assert read_limited_fd(os.open(path, os.O_RDONLY), path, 4096) == b"y" * 4096


def test_make_dirs_syncs_the_name_of_each_folder_it_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Path.mkdir(parents=True)`` syncs nothing: a power cut could take the new folders, and
    every file later written durably into them, with it."""
    (tmp_path / "there").mkdir()
    log = SyncLog(monkeypatch)
    make_dirs(tmp_path / "there" / "a" / "b" / "c", mode=0o700)
    assert unsynced_names(tmp_path / "there" / "a", log) == []
    assert not log.synced(tmp_path)  # what was there already is not synced again
    assert (tmp_path / "there" / "a" / "b" / "c").stat().st_mode & 0o777 == 0o700
    make_dirs(tmp_path / "there" / "a")  # there already: nothing to do
    with pytest.raises(FileExistsError):
        make_dirs(tmp_path / "there" / "a", exist_ok=False)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FileExistsError):
        make_dirs(tmp_path / "file" / "x")


def test_a_file_lock_held_elsewhere_is_not_taken_without_waiting(tmp_path: Path) -> None:
    from ironroot._fileio import file_lock

    path = tmp_path / ".lock"
    with file_lock(path, "the lock") as first:
        assert first is True
        with file_lock(path, "the lock", wait=False) as second:  # another open file: refused
            assert second is False
    with file_lock(path, "the lock", wait=False) as again:
        assert again is True


def test_a_file_lock_is_never_taken_through_a_link(tmp_path: Path) -> None:
    from ironroot._fileio import file_lock
    from ironroot.errors import StorageError

    target = tmp_path / "elsewhere"
    (tmp_path / ".lock").symlink_to(target)
    with pytest.raises(StorageError) as caught, file_lock(tmp_path / ".lock", "the lock"):
        pass
    assert caught.value.detail.startswith(f"the lock {tmp_path / '.lock'} cannot be opened: ")
    assert not target.exists()


def test_resolve_unplanted_resolves_as_realpath_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Links relative and absolute, ``..`` after a link (the link's parent, not the name's),
    names past a missing one, a relative path: what ``os.path.realpath`` gives; a loop is
    ``ELOOP``."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "rel").symlink_to("a/b")
    (tmp_path / "abs").symlink_to(tmp_path / "a" / "b")
    (tmp_path / "a" / "b" / "up").symlink_to("..")
    (tmp_path / "loop").symlink_to("loop")
    monkeypatch.chdir(tmp_path / "a")
    for name in ("rel/f", "abs/../f", "rel/up/b/x", "missing/../y/z", "a/./b//f", ".."):
        given = tmp_path / name
        assert resolve_unplanted(given) == Path(os.path.realpath(given)), name
    assert resolve_unplanted(Path("b/up/f")) == Path(os.path.realpath("b/up/f"))
    with pytest.raises(OSError, match="too many levels of symbolic links") as raised:
        resolve_unplanted(tmp_path / "loop" / "f")
    assert raised.value.errno == errno.ELOOP


def test_an_asked_file_keeps_to_the_umask_and_to_the_file_it_replaces(tmp_path: Path) -> None:
    """``write_atomic(asked=True)``: the umask narrows the mode (read, not set), and so does
    the mode of the regular file replaced; without ``asked`` the mode is exact."""
    previous = os.umask(0o027)
    try:
        assert process_umask() == 0o027
        assert os.umask(0o027) == 0o027  # reading it left it as it was
        write_atomic(tmp_path / "new", b"x", mode=0o644, asked=True)
        write_atomic(tmp_path / "exact", b"x", mode=0o644)
    finally:
        os.umask(previous)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "exact").stat().st_mode & 0o777 == 0o644
    (tmp_path / "old").write_bytes(b"old")
    (tmp_path / "old").chmod(0o600)
    assert asked_mode(tmp_path / "old", 0o644) == 0o600 & ~process_umask()
    write_atomic(tmp_path / "old", b"new", mode=0o644, asked=True)
    assert (tmp_path / "old").stat().st_mode & 0o777 == 0o600


def test_a_read_that_never_ends_costs_its_limit_not_twice_it(tmp_path: Path) -> None:
    """``/dev/zero`` (or a pipe) read to the limit: the rest was read whole and added to what
    came first, two copies of the limit at once (``statement inspect /dev/zero``: 550 MB
    for a 256 MB limit). Measured as the peak resident size of a fresh process."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    limit = 64 * 1024 * 1024
    script = (
        "import resource\n"
        "from ironroot._fileio import read_limited\n"
        "from ironroot.errors import LimitExceeded\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    read_limited('/dev/zero', {limit})\n"
        "except LimitExceeded:\n"
        "    pass\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    grown = int(run.stdout) * 1024  # ru_maxrss is in KiB on Linux
    assert grown < limit * 5 // 4, grown  # before: about 1.5 times the limit
