"""Persistence sealed to the device: the sealed key-store format and the storage media.

The key store is one CBOR document (``_boundary`` defines its content), sealed as::

    sealed = "IRHSMKS1" ‖ salt (32 random bytes) ‖ nonce (12 random bytes)
             ‖ AES-256-GCM(K, nonce, plaintext, aad = the 52 bytes before it)
    K      = HKDF-SHA-384(IKM = sealing secret, salt = salt, info = "ironroot/hsm/store-seal/v1",
                          L = 32)

The sealing secret comes from the root of trust (a secret derived from its CDI), so another
device, or the same device after a firmware change, derives another ``K`` and the store does
not open (``SealedStoreError``). Every write draws a fresh salt, so ``K`` and the nonce are
never reused together.

A storage medium holds the sealed store, the sealed anchor (``_anchor``: the latest store
generation and audit head, bound to a monotonic counter) and the audit log, and it names the
**monotonic counter** the root of trust keeps for this HSM (``counter``). The counter is the one
thing that must not live beside the files: a copy of the directory restored from a backup
restores every file, never the counter. :class:`DirectoryStorage` takes it from the caller
(``Device(dir).counter("hsm")``, a :class:`~ironroot.rot.MonotonicCounter` whose state is
protected like fuses), writes ``keystore.sealed`` and ``anchor.sealed`` atomically (temporary
file, fsync, rename, fsync of the directory) and appends ``audit.jsonl`` with an fsync per
append; archived audit segments (``audit-<first>-<last>.jsonl``) are hard links made when the
live log is rotated (``_audit_buffer``); :class:`MemoryStorage` keeps them all and a
:class:`~ironroot.rot.MemoryCounter` in memory for tests and for higher layers' tests.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ironroot._fileio import (
    DirectoryLock,
    make_dirs,
    read_limited_fd,
    warn_if_exposed,
    write_atomic,
)
from ironroot.errors import (
    ConfigError,
    Conflict,
    LimitExceeded,
    MalformedInput,
    NotFound,
    SealedStoreError,
    StorageError,
)
from ironroot.hsm._audit import MAX_AUDIT_FILE, parse_segment_name
from ironroot.rot import MemoryCounter, MonotonicCounter

__all__ = ["DirectoryStorage", "HsmStorage", "MemoryStorage", "seal", "unseal"]

MAGIC: Final = b"IRHSMKS1"
SEAL_INFO: Final = b"ironroot/hsm/store-seal/v1"
_SALT: Final = 32
_NONCE: Final = 12
_HEADER: Final = len(MAGIC) + _SALT + _NONCE
MIN_SECRET: Final = 32
MAX_STORE: Final = 64 * 1024 * 1024
STORE_FILE: Final = "keystore.sealed"
AUDIT_FILE: Final = "audit.jsonl"
ANCHOR_FILE: Final = "anchor.sealed"
MAX_ANCHOR: Final = 4096
LOCK_FILE: Final = "lock"


def check_secret(secret: object) -> bytes:
    if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET:
        raise ConfigError(f"a sealing secret is at least {MIN_SECRET} bytes")
    return bytes(secret)


def _key(secret: bytes, salt: bytes) -> bytes:
    return HKDF(hashes.SHA384(), 32, salt, SEAL_INFO).derive(secret)


def seal(secret: bytes, plaintext: bytes) -> bytes:
    """Seal ``plaintext`` under ``secret`` (format in the module docstring)."""
    salt, nonce = secrets.token_bytes(_SALT), secrets.token_bytes(_NONCE)
    header = MAGIC + salt + nonce
    return header + AESGCM(_key(check_secret(secret), salt)).encrypt(nonce, plaintext, header)


def unseal(secret: bytes, sealed: bytes) -> bytes:
    """Open a sealed store; ``SealedStoreError`` if it is not one or does not open here."""
    if len(sealed) > MAX_STORE:
        raise SealedStoreError("the sealed store is larger than the limit")
    if len(sealed) < _HEADER + 16 or sealed[: len(MAGIC)] != MAGIC:
        raise SealedStoreError("not a sealed HSM key store")
    header = sealed[:_HEADER]
    salt, nonce = header[len(MAGIC) : len(MAGIC) + _SALT], header[len(MAGIC) + _SALT :]
    try:
        return AESGCM(_key(check_secret(secret), salt)).decrypt(nonce, sealed[_HEADER:], header)
    except InvalidTag as exc:
        raise SealedStoreError(
            "the key store does not open with this device's sealing secret "
            "(another device, changed firmware, or altered bytes)"
        ) from exc


@runtime_checkable
class HsmStorage(Protocol):
    """Where an HSM keeps its sealed store, its anchor and its audit log, and the monotonic
    counter (held by the root of trust, not by the medium) that says which store is the
    latest."""

    counter: MonotonicCounter

    def read_store(self) -> bytes | None:
        """The sealed store, or ``None`` if there is none."""
        ...

    def write_store(self, data: bytes) -> None:
        """Replace the sealed store atomically and durably."""
        ...

    def destroy_store(self) -> None:
        """Overwrite and remove the sealed store (zeroization)."""
        ...

    def read_anchor(self) -> bytes | None:
        """The sealed anchor, or ``None`` if there is none."""
        ...

    def write_anchor(self, data: bytes) -> None:
        """Replace the sealed anchor atomically and durably."""
        ...

    def append_audit(self, data: bytes) -> None:
        """Append audit lines durably."""
        ...

    def read_audit(self) -> bytes:
        """The live audit log: every line written since the last rotation."""
        ...

    def archive_audit(self, name: str) -> None:
        """Keep the live log's lines, as they are, durably as the archived segment ``name``
        too (``_audit_buffer``: rotation); the live log is left as it is."""
        ...

    def reset_audit(self, data: bytes = b"") -> None:
        """Replace the live log with ``data`` (an empty one by default), atomically and
        durably."""
        ...

    def audit_segments(self) -> tuple[str, ...]:
        """The names of the archived segments (``_audit.segment_name``), without reading them."""
        ...

    def read_audit_segment(self, name: str) -> bytes:
        """One archived segment (``NotFound`` when there is none of that name)."""
        ...

    def remove_audit_segment(self, name: str) -> None:
        """Remove an archived segment durably (one a crash left before its rotation was
        committed)."""
        ...


class MemoryStorage:
    """Keeps the sealed store, the anchor, the audit log and a counter in memory (tests)."""

    __slots__ = ("_anchor", "_audit", "_segments", "_store", "counter")

    def __init__(self, counter: MonotonicCounter | None = None) -> None:
        self._store: bytearray | None = None
        self._anchor: bytes | None = None
        self._audit = bytearray()
        self._segments: dict[str, bytes] = {}
        self.counter: MonotonicCounter = counter if counter is not None else MemoryCounter()

    def read_anchor(self) -> bytes | None:
        return self._anchor

    def write_anchor(self, data: bytes) -> None:
        self._anchor = bytes(data)

    def read_store(self) -> bytes | None:
        return None if self._store is None else bytes(self._store)

    def write_store(self, data: bytes) -> None:
        self._store = bytearray(data)

    def destroy_store(self) -> None:
        if self._store is not None:
            self._store[:] = bytes(len(self._store))
        self._store = None

    def append_audit(self, data: bytes) -> None:
        self._audit += data

    def read_audit(self) -> bytes:
        return bytes(self._audit)

    def archive_audit(self, name: str) -> None:
        _check_segment(name)
        if name in self._segments:
            raise StorageError(f"the audit segment {name} exists already")
        self._segments[name] = bytes(self._audit)

    def reset_audit(self, data: bytes = b"") -> None:
        self._audit = bytearray(data)

    def audit_segments(self) -> tuple[str, ...]:
        return tuple(sorted(self._segments))

    def read_audit_segment(self, name: str) -> bytes:
        if name not in self._segments:
            raise NotFound(f"there is no audit segment {name}")
        return self._segments[name]

    def remove_audit_segment(self, name: str) -> None:
        self._segments.pop(name, None)


class DirectoryStorage:
    """``keystore.sealed``, ``anchor.sealed`` and ``audit.jsonl`` in one directory (created
    mode 0700), and ``counter``: the root of trust's monotonic counter for this HSM.

    A directory its group or others may write is opened with a warning (logged, like a
    secret file others may read): whoever may write it may replace or remove the HSM's files.

    One HSM at a time: the constructor takes an exclusive ``flock`` on ``lock`` in the
    directory (``Conflict`` if another holder has it), released by :meth:`close`; two HSM
    objects appending to one audit log would fork its chain. Once it holds the lock it
    deletes the temporary files a write killed midway left there (a half-written copy of the
    sealed store: :meth:`~ironroot._fileio.DirectoryLock.remove_stale_temporaries`).
    """

    __slots__ = ("_dir", "_lock", "counter")

    def __init__(self, directory: Path | str, *, counter: MonotonicCounter) -> None:
        if counter is None:
            raise ConfigError("an HSM directory needs the root of trust's monotonic counter")
        self.counter = counter
        self._dir = Path(directory)
        try:
            make_dirs(self._dir, mode=0o700)
            self._lock: DirectoryLock | None = DirectoryLock(
                self._dir, LOCK_FILE, what="HSM directory", error=Conflict
            )
        except OSError as exc:
            raise self._fail("create or lock the HSM directory", exc) from exc
        try:  # held: no write of the store, anchor or audit log is under way
            self._lock.remove_stale_temporaries()
        except BaseException:
            self.close()
            raise
        warn_if_exposed(self._dir, "an HSM's sealed store and audit log", writable=True, fix=0o700)

    @classmethod
    def on_device(
        cls, directory: Path | str, rot_device: Path | str, *, counter: str = "hsm"
    ) -> DirectoryStorage:
        """The HSM directory ``directory`` with the counter ``counter`` of the root-of-trust
        device in ``rot_device`` (``ironroot rot``; its obfuscation key is found the way
        :class:`~ironroot.rot.Device` finds it)."""
        from ironroot.rot import Device

        return cls(directory, counter=Device(rot_device).counter(counter))

    def close(self) -> None:
        """Release the directory lock."""
        lock = getattr(self, "_lock", None)  # absent when __init__ failed
        if lock is not None:
            self._lock = None
            lock.close()

    def __enter__(self) -> DirectoryStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    @property
    def directory(self) -> Path:
        return self._dir

    def _fail(self, what: str, exc: OSError) -> StorageError:
        return StorageError(f"cannot {what} in {self._dir}: {exc.strerror or exc}")

    def _read(self, name: str, limit: int, what: str) -> bytes | None:
        """A file of the directory, ``None`` when absent; over ``limit`` bytes,
        ``SealedStoreError`` before it is read (``read_limited_fd``).

        Only a regular file is read: it is opened without waiting for a writer and checked
        before any read, so a named pipe (which blocked power-up for ever), a device that
        never ends or a directory in its place is refused at once."""
        path = self._dir / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(f"read the {what}", exc) from exc
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError as exc:
            os.close(fd)
            raise self._fail(f"read the {what}", exc) from exc
        if not regular:
            os.close(fd)
            raise SealedStoreError(
                f"{name} is not a regular file: the HSM never writes anything else there"
            )
        try:
            return read_limited_fd(fd, path, limit)
        except LimitExceeded as exc:
            raise SealedStoreError(
                f"{name} is larger than {limit} bytes, the most the HSM reads of its {what}"
            ) from exc
        except OSError as exc:
            raise self._fail(f"read the {what}", exc) from exc

    def read_store(self) -> bytes | None:
        return self._read(STORE_FILE, MAX_STORE, "key store")

    def _sync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_store(self, data: bytes) -> None:
        # A fresh temporary file (O_EXCL), never a fixed name: a ``keystore.sealed.tmp`` link
        # planted in the directory once made this write truncate and fill the file it named,
        # anywhere, and left ``keystore.sealed`` a link to it.
        try:
            make_dirs(self._dir, mode=0o700)
            write_atomic(self._dir / STORE_FILE, data)
        except OSError as exc:
            raise self._fail("write the key store", exc) from exc

    def destroy_store(self) -> None:
        """Overwrite and remove ``keystore.sealed``. A symbolic link in its place is removed,
        never followed: the HSM only ever writes a regular file there, so what a link names is
        not its store, and zeroization must not overwrite it."""
        path = self._dir / STORE_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise self._fail("destroy the key store", exc) from exc
            fd = -1
        try:
            found = os.fstat(fd) if fd >= 0 else None
            if found is not None and stat.S_ISREG(found.st_mode):
                os.pwrite(fd, secrets.token_bytes(found.st_size), 0)
                os.fsync(fd)
        except OSError as exc:
            raise self._fail("destroy the key store", exc) from exc
        finally:
            if fd >= 0:
                os.close(fd)
        try:
            path.unlink()
            self._sync_dir()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._fail("destroy the key store", exc) from exc

    def read_anchor(self) -> bytes | None:
        return self._read(ANCHOR_FILE, MAX_ANCHOR, "store anchor")

    def write_anchor(self, data: bytes) -> None:
        try:
            write_atomic(self._dir / ANCHOR_FILE, data)
        except OSError as exc:
            raise self._fail("write the store anchor", exc) from exc

    def append_audit(self, data: bytes) -> None:
        try:
            make_dirs(self._dir, mode=0o700)
            # Never through a link: the log is appended where the HSM wrote it, not to a file
            # a link planted in the directory names.
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
            fd = os.open(self._dir / AUDIT_FILE, flags, 0o600)
            with os.fdopen(fd, "ab") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise self._fail("append to the audit log", exc) from exc

    def read_audit(self) -> bytes:
        return self._read(AUDIT_FILE, MAX_AUDIT_FILE, "audit log") or b""

    def archive_audit(self, name: str) -> None:
        # A hard link: the segment is the live file's inode, whole and synced, at no copy;
        # ``reset_audit`` then puts a new inode in the live name, so the segment is never
        # appended to again. The link itself is never followed.
        _check_segment(name)
        try:
            os.link(self._dir / AUDIT_FILE, self._dir / name, follow_symlinks=False)
            self._sync_dir()
        except OSError as exc:
            raise self._fail(f"archive the audit log as {name}", exc) from exc

    def reset_audit(self, data: bytes = b"") -> None:
        try:
            write_atomic(self._dir / AUDIT_FILE, data)
        except OSError as exc:
            raise self._fail("start a new audit log", exc) from exc

    def audit_segments(self) -> tuple[str, ...]:
        try:
            names = os.listdir(self._dir)
        except OSError as exc:
            raise self._fail("list the audit segments", exc) from exc
        return tuple(sorted(n for n in names if parse_segment_name(n) is not None))

    def read_audit_segment(self, name: str) -> bytes:
        data = self._read(_check_segment(name), MAX_AUDIT_FILE, "audit segment")
        if data is None:
            raise NotFound(f"there is no audit segment {name} in {self._dir}")
        return data

    def remove_audit_segment(self, name: str) -> None:
        try:
            (self._dir / _check_segment(name)).unlink(missing_ok=True)
            self._sync_dir()
        except OSError as exc:
            raise self._fail(f"remove the audit segment {name}", exc) from exc


def _check_segment(name: str) -> str:
    if parse_segment_name(name) is None:
        raise MalformedInput(f"{name!r} is not an audit segment's name")
    return name
