"""The HSM directory attacked through its file names. A named pipe, a device or a directory
in place of one of its files is refused at power-up, never waited on. A symbolic link planted
where the HSM writes (the store's temporary file, the store itself before a zeroization, the
audit log, the lock file) is never followed, so the HSM never overwrites, fills or empties a
file outside its directory (which it may be privileged to write)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hsm_helpers import FAST, OFFICER, OFFICER_PASS, SECRET, new_hsm, sessions

from ironroot.errors import HsmErrorState, HsmZeroized, SealedStoreError, StorageError
from ironroot.hsm import MAX_AUDIT_FILE, DirectoryStorage, Hsm, KeyType
from ironroot.hsm._storage import MAX_ANCHOR, MAX_STORE
from ironroot.rot import MemoryCounter

PRECIOUS = b"root:x:0:0:root:/root:/bin/sh\n"


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "elsewhere" / "precious"
    victim.parent.mkdir()
    victim.write_bytes(PRECIOUS)
    return victim


def test_a_link_planted_as_the_stores_temporary_file_is_not_followed(
    device: object, tmp_path: Path
) -> None:
    """Was: the store was written through ``keystore.sealed.tmp`` opened by its fixed name,
    following a link: the file it named was truncated and filled with the sealed store, and
    ``keystore.sealed`` became a link to it."""
    victim = _victim(tmp_path)
    with DirectoryStorage(tmp_path / "hsm", counter=MemoryCounter()) as storage:
        hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
        officer, _user, _auditor = sessions(hsm)
        (tmp_path / "hsm" / "keystore.sealed.tmp").symlink_to(victim)
        handle = hsm.generate(officer, KeyType.AES_256)
        hsm.close()
        assert victim.read_bytes() == PRECIOUS
        store = tmp_path / "hsm" / "keystore.sealed"
        assert not store.is_symlink()
        assert store.stat().st_mode & 0o777 == 0o600
        again = Hsm.open(storage, SECRET, config=FAST)
        officer = again.login(OFFICER, OFFICER_PASS)
        assert handle in {k.handle for k in again.keys(officer)}


def test_zeroization_removes_a_link_in_place_of_the_store_without_overwriting_its_target(
    device: object, tmp_path: Path
) -> None:
    """Was: ``tamper()`` opened ``keystore.sealed`` through a link and overwrote the file it
    named with random bytes."""
    victim = _victim(tmp_path)
    with DirectoryStorage(tmp_path / "hsm", counter=MemoryCounter()) as storage:
        hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
        store = tmp_path / "hsm" / "keystore.sealed"
        store.unlink()
        store.symlink_to(victim)
        hsm.tamper()
        assert victim.read_bytes() == PRECIOUS
        assert not store.is_symlink()
        assert not store.exists()
        with pytest.raises(HsmZeroized, match="the HSM was zeroized"):
            Hsm.open(storage, SECRET, config=FAST)


def test_a_link_in_place_of_the_audit_log_is_not_appended_to(
    device: object, tmp_path: Path
) -> None:
    """Was: audit records were appended to whatever file a link named ``audit.jsonl``
    pointed at. Now the append fails (``StorageError``) and the HSM enters its error state."""
    victim = _victim(tmp_path)
    with DirectoryStorage(tmp_path / "hsm", counter=MemoryCounter()) as storage:
        hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
        officer, _user, _auditor = sessions(hsm)
        log = tmp_path / "hsm" / "audit.jsonl"
        log.unlink()
        log.symlink_to(victim)
        with pytest.raises(StorageError, match="cannot append to the audit log"):
            hsm.generate(officer, KeyType.AES_256)
        assert victim.read_bytes() == PRECIOUS
        with pytest.raises(HsmErrorState):
            hsm.generate(officer, KeyType.AES_256)


def test_a_link_in_place_of_the_lock_file_is_not_emptied(tmp_path: Path) -> None:
    """Was: the lock file was opened through a link, then truncated to write the holder's
    pid: the file it named was emptied."""
    victim = _victim(tmp_path)
    (tmp_path / "hsm").mkdir(mode=0o700)
    (tmp_path / "hsm" / "lock").symlink_to(victim)
    with pytest.raises(StorageError, match="cannot create or lock the HSM directory"):
        DirectoryStorage(tmp_path / "hsm", counter=MemoryCounter())
    assert victim.read_bytes() == PRECIOUS


@contextlib.contextmanager
def _writers_come_and_go(fifo: Path) -> Iterator[None]:
    """Open and close ``fifo`` for writing, again and again, while the block runs: a reader
    that waits for a writer (as power-up once did) gets one and reads an empty file, instead
    of hanging the test. Each open waits for a reader; the last is released at the end."""
    done = threading.Event()

    def feed() -> None:
        while not done.is_set():
            os.close(os.open(fifo, os.O_WRONLY))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield
    finally:
        done.set()
        while feeder.is_alive():  # release the open waiting for a reader
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
            feeder.join(0.05)


@pytest.mark.parametrize("name", ["keystore.sealed", "anchor.sealed", "audit.jsonl"])
def test_a_named_pipe_in_place_of_a_file_is_refused_at_power_up(
    device: object, tmp_path: Path, name: str
) -> None:
    """Was: power-up opened each file with a blocking ``open``: a named pipe put in place of
    the store, the anchor or the log blocked it until some process wrote to the pipe (for
    ever, if none did). Now only a regular file is read."""
    counter = MemoryCounter()
    with DirectoryStorage(tmp_path / "hsm", counter=counter) as storage:
        new_hsm(device.identity, storage).close()  # type: ignore[attr-defined]
    path = tmp_path / "hsm" / name
    path.unlink()
    os.mkfifo(path)
    with (
        DirectoryStorage(tmp_path / "hsm", counter=counter) as storage,
        _writers_come_and_go(path),
        pytest.raises(SealedStoreError, match=f"{name} is not a regular file"),
    ):
        Hsm.open(storage, SECRET, config=FAST)


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_a_directory_others_may_write_is_opened_with_a_warning(
    tmp_path: Path, mode: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Was: accepted silently, though whoever may write the directory may replace or remove
    the HSM's files (a store put back, the audit log removed)."""
    directory = tmp_path / "hsm"
    directory.mkdir(mode=0o700)
    directory.chmod(mode)
    with caplog.at_level(logging.WARNING), DirectoryStorage(directory, counter=MemoryCounter()):
        pass
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert caplog.records[0].getMessage() == (
        f"{directory} holds an HSM's sealed store and audit log but is writable beyond its "
        f"owner (mode {mode:04o}): chmod 700 {directory}"
    )


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o755])
def test_a_directory_only_its_owner_may_write_is_opened_quietly(
    tmp_path: Path, mode: int, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "hsm"
    directory.mkdir(mode=0o700)
    directory.chmod(mode)
    with caplog.at_level(logging.WARNING), DirectoryStorage(directory, counter=MemoryCounter()):
        pass
    with (
        caplog.at_level(logging.WARNING),
        DirectoryStorage(tmp_path / "new", counter=MemoryCounter()),
    ):
        pass
    assert caplog.records == []


@pytest.mark.parametrize(
    ("name", "limit", "what"),
    [
        ("keystore.sealed", MAX_STORE, "key store"),
        ("anchor.sealed", MAX_ANCHOR, "store anchor"),
        ("audit.jsonl", MAX_AUDIT_FILE, "audit log"),
    ],
)
def test_a_huge_file_in_place_of_a_file_is_refused_unread(
    device: object, tmp_path: Path, name: str, limit: int, what: str
) -> None:
    """Was: power-up read the audit log whole, however large (a sparse terabyte planted in
    its place read until memory ran out), and the store and the anchor to their limit. Now
    every file of the directory is read within its cap (``read_limited_fd``), and one over it
    is refused from its size, before a byte is read."""
    counter = MemoryCounter()
    with DirectoryStorage(tmp_path / "hsm", counter=counter) as storage:
        new_hsm(device.identity, storage).close()  # type: ignore[attr-defined]
    os.truncate(tmp_path / "hsm" / name, limit + 1)  # sparse: nothing is written
    with (
        DirectoryStorage(tmp_path / "hsm", counter=counter) as storage,
        pytest.raises(
            SealedStoreError,
            match=rf"^{name} is larger than {limit} bytes, the most the HSM reads of its {what}$",
        ),
    ):
        Hsm.open(storage, SECRET, config=FAST)
    os.truncate(tmp_path / "hsm" / name, 1 << 40)
    with (
        DirectoryStorage(tmp_path / "hsm", counter=counter) as storage,
        pytest.raises(SealedStoreError, match=rf"^{name} is larger than {limit} bytes"),
    ):
        Hsm.open(storage, SECRET, config=FAST)
