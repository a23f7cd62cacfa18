"""Durable file writes for key material: temp file, fsync, rename, fsync of the directory.

A key file or an LMS state file is either the old bytes or the new bytes after a crash, never a
mix, and once the call returns the new bytes survive a power cut. The standard library has no
such call (``pathlib.Path.write_bytes`` neither syncs nor renames), so it is written here once.

:func:`load_each` is the other rule for files, on the reading side: a service that loads a
folder of files (reference values, trust anchors, keys) skips a file that does not load,
logs a warning naming it and the error, and lists it; one bad file never stops a service.

:meth:`DirectoryLock.remove_stale_temporaries` is the rule for what a write killed midway left
behind: the temporary files of :func:`write_atomic` (``.<name>.XXXXXXXX.tmp``) are deleted by
a component that holds its directory's lock, at its start, and by nothing else.

:func:`warn_if_exposed` is the rule for files that hold secrets (bearer tokens, sealing
secrets, credentials, private keys): Ironroot writes them 0600, and when it reads one that
its group or others may read it logs a warning naming the file, its mode and the fix.

:func:`resolve_unplanted` is the rule for following a name a user gave to write to: the
kernel's own rule for folders every user may write (``/tmp``), whether or not the machine
turns it on (``fs.protected_symlinks``, ``fs.protected_fifos``), so that no link or pipe
another user planted there is written through.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final, TypeVar

from ironroot.errors import (
    ConfigError,
    Conflict,
    InputUnavailable,
    InUse,
    IronrootError,
    LimitExceeded,
    StorageError,
)

__all__ = [
    "DirectoryLock",
    "asked_mode",
    "failure_reason",
    "file_lock",
    "fsync_dir",
    "is_write_temporary",
    "load_each",
    "make_dirs",
    "naming_file",
    "process_umask",
    "read_beneath",
    "read_config",
    "read_limited",
    "read_limited_fd",
    "refuse_planted",
    "remove_write_temporaries",
    "resolve_unplanted",
    "to_create",
    "warn_if_exposed",
    "warn_if_trust_writable",
    "write_atomic",
]

_log = logging.getLogger("ironroot.files")
_TEMPORARY_TAIL: Final = len(".XXXXXXXX.tmp")

_TEMPORARY: Final = re.compile(r"\.[^/]+\.[a-z0-9_]{8}\.tmp")
"""A temporary file of :func:`write_atomic`: ``tempfile.mkstemp(prefix=".<name>.",
suffix=".tmp")`` draws 8 characters of ``[a-z0-9_]``."""

_K = TypeVar("_K")
_T = TypeVar("_T")


def is_write_temporary(name: str) -> bool:
    """Whether the file name ``name`` is one :func:`write_atomic` gives its temporary files
    (``.<name>.XXXXXXXX.tmp``): what a write killed before its rename leaves behind."""
    return _TEMPORARY.fullmatch(name) is not None


def remove_write_temporaries(folder: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Delete, and return, the temporary files that writes killed before their renames left
    in ``folder``: regular files named exactly as :func:`write_atomic` names them
    (``.<name>.XXXXXXXX.tmp``), with ``names`` only those of one of its names; a link, a
    folder and every other name stay. Only for a caller that knows no other write of the
    folder is under way (it holds the folder's lock). ``OSError`` when the folder cannot be
    read or a file removed."""
    wanted = None if names is None else set(names)
    with os.scandir(folder) as found:
        stale = [
            Path(entry.path)
            for entry in found
            if is_write_temporary(entry.name)
            and (wanted is None or entry.name[1:-_TEMPORARY_TAIL] in wanted)
            and entry.is_file(follow_symlinks=False)
        ]
    removed = []
    for path in sorted(stale):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            _log.info("removed %s, left by a write that did not finish", path)
            removed.append(path)
    return removed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make what was renamed or linked into ``directory`` durable."""
    _fsync_dir(Path(directory))


def make_dirs(path: Path, *, mode: int = 0o777, exist_ok: bool = True) -> None:
    """``path`` and its missing parents made, durably: each folder made here has its name
    synced into its parent (``fsync`` of the parent), as a power cut keeps a new name only
    then. ``Path.mkdir(parents=True)`` syncs nothing, and a file written durably into a new
    folder (:func:`write_atomic`) is lost with the folder's name. ``mode`` is that of the
    last folder (its parents get the default); without ``exist_ok`` an existing ``path`` is
    ``FileExistsError``. A folder another process made meanwhile is synced too: its maker
    may not have got to it yet."""
    path = Path(path)
    missing: list[Path] = []
    ancestor = path
    while not ancestor.is_dir():
        missing.append(ancestor)
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if not missing:
        if not exist_ok:
            raise FileExistsError(errno.EEXIST, "the folder exists", str(path))
        return
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode if folder == path else 0o777)
        except FileExistsError:
            if folder == path and not exist_ok:
                raise
            if not folder.is_dir():
                raise
        _fsync_dir(folder.parent if str(folder.parent) else Path())


def process_umask() -> int:
    """The process's umask, read without changing it (``/proc/self/status``, Linux 4.7 on):
    setting it to read it back would, for that instant, apply to the files every other
    thread creates. Where it cannot be read so, it is set to 077 for that instant (a file
    made meanwhile is then only more private)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    current = os.umask(0o077)
    os.umask(current)
    return current


def asked_mode(path: Path, mode: int) -> int:
    """The permissions of a file a user asked for at ``path``: ``mode`` narrowed by the
    umask (an operator's ``umask 077`` keeps every output private) and, when it replaces a
    file, by that file's mode (a file its owner made private is not opened up)."""
    mode &= ~process_umask()
    with contextlib.suppress(OSError):
        replaced = os.stat(path)
        if stat.S_ISREG(replaced.st_mode):
            mode &= replaced.st_mode
    return mode & 0o777


_NAME_MAX: Final = 255
"""The longest file name, in bytes, of Linux's file systems (``NAME_MAX``)."""
_TEMPORARY_EXTRA: Final = len(".") + _TEMPORARY_TAIL


def _temporary_stem(name: str) -> str:
    """As much of ``name`` as fits in a temporary file's name (``.<stem>.XXXXXXXX.tmp``)
    within ``NAME_MAX`` bytes: a file may take a name of 255 bytes, and its temporary file
    14 more."""
    while len(os.fsencode(name)) > _NAME_MAX - _TEMPORARY_EXTRA:
        name = name[:-1]
    return name


def write_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o600,
    exclusive: bool = False,
    sync_dir: bool = True,
    asked: bool = False,
) -> None:
    """Write ``data`` to ``path`` durably and atomically, with permissions ``mode``.

    With ``exclusive`` the call fails with :class:`~ironroot.errors.Conflict` if ``path``
    exists (the new file is linked into place, which never replaces). ``sync_dir=False``
    leaves the folder's fsync to the caller (:func:`fsync_dir`): one writing many files into
    few folders then syncs each folder once. With ``asked`` (a file a user asked a command
    for) ``mode`` is narrowed as ``open(2)`` narrows it, by the process's umask, and by the
    mode of the file it replaces (:func:`asked_mode`); without it ``mode`` is exact (a
    service's own files).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path()
    if asked:
        mode = asked_mode(path, mode)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{_temporary_stem(path.name)}.", suffix=".tmp", dir=directory
        )
    except OSError as exc:  # named for the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            if exclusive:
                os.link(tmp, path)
            else:
                os.replace(tmp, path)
        except FileExistsError as exc:
            if exclusive:  # a link never replaces
                raise Conflict(f"{path} already exists") from exc
            raise FileExistsError(exc.errno, exc.strerror, str(path)) from None
        except OSError as exc:  # named for the file asked for, not the temporary one
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        if exclusive:
            with contextlib.suppress(FileNotFoundError):  # already gone: what matters is done
                tmp.unlink()
        if sync_dir:
            _fsync_dir(directory)
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


_MAX_LINKS: Final = 40
"""The links one name may pass through (Linux's own limit): more is ``ELOOP``."""


def _planted_in(found: os.stat_result, folder: str) -> os.stat_result | None:
    """The folder's status when ``found`` (an entry of ``folder``) may be another user's
    plant: the folder is sticky and every user may write it (``/tmp``), and the entry belongs
    neither to this process's user nor to the folder's owner (the kernel's test for
    ``fs.protected_symlinks``)."""
    try:
        shared = os.stat(folder)
    except OSError:
        return None
    if not (shared.st_mode & stat.S_ISVTX and shared.st_mode & stat.S_IWOTH):
        return None
    if found.st_uid in (os.geteuid(), shared.st_uid):
        return None
    return shared


def refuse_planted(path: Path, target: Path) -> None:
    """``InputUnavailable`` when ``target`` (``path`` resolved: :func:`resolve_unplanted`)
    is a file that is written into rather than replaced (a named pipe, a device) and that
    another user may have planted in a folder every user may write (the kernel's
    ``fs.protected_fifos``): what is written would go to whoever reads its other end."""
    try:
        found = os.lstat(target)
    except OSError:
        return
    if _planted_in(found, os.path.dirname(target)) is not None:
        raise InputUnavailable(
            f"{path}: belongs to user {found.st_uid} in {target.parent}, a folder every user "
            "may write: nothing is written into it (another user may have planted it)"
        )


def resolve_unplanted(path: Path) -> Path:
    """``os.path.realpath(path)``, except that a symbolic link another user may have planted
    (in a sticky folder every user may write, such as ``/tmp``, and belonging neither to
    this process's user nor to the folder's owner) is ``InputUnavailable`` rather than
    followed, wherever it is in the path: ``realpath`` reads links by name, so it followed
    the links the kernel refuses to (``fs.protected_symlinks``), and a file written to what
    it returned replaced the file the plant named. Names past a missing one are kept as
    given; more than 40 links is ``OSError`` ``ELOOP``."""
    given = os.fspath(path)
    if "\0" in given:
        raise FileNotFoundError(errno.ENOENT, "a file name cannot hold a NUL byte", given)
    whole = given if given.startswith("/") else os.path.join(os.getcwd(), given)
    pending = list(reversed(whole.split("/")))
    current = "/"
    links = 0
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        entry = os.path.join(current, name)
        try:
            found = os.lstat(entry)
        except OSError:  # missing (or not a folder): the rest is taken as named
            current = entry
            continue
        if not stat.S_ISLNK(found.st_mode):
            current = entry
            continue
        if _planted_in(found, current) is not None:
            raise InputUnavailable(
                f"{given}: {entry} is a symbolic link of user {found.st_uid} in {current}, a "
                "folder every user may write: it is not followed (another user may have "
                "planted it)"
            )
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", given)
        target = os.readlink(entry)
        if target.startswith("/"):
            current = "/"
        pending.extend(reversed(target.split("/")))
    return Path(current)


def read_limited(path: str | os.PathLike[str], limit: int, *, regular: bool = False) -> bytes:
    """Read a whole file of at most ``limit`` bytes; larger files raise ``LimitExceeded``.

    Whatever ``path`` names is read within the limit: a device that never ends
    (``/dev/zero``) stops at it, a named pipe nobody writes to reads as empty rather than
    waiting for a writer (it is opened without blocking), and a directory is
    ``InputUnavailable``. A name holding a NUL byte (a TOML string may) names no file: it is
    ``FileNotFoundError``, as for any missing file, not the ``ValueError`` ``open`` raises.
    With ``regular`` it must be a regular file, as for :func:`read_beneath` (a named pipe
    whose writer holds it open and never writes would keep the read waiting).
    """
    if "\0" in os.fspath(path):
        raise FileNotFoundError(errno.ENOENT, "a file name cannot hold a NUL byte", str(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    return _read_opened(fd, path, limit, regular=regular)


class _Named:
    """``root / relative`` for messages, made a ``Path`` only when one is written: a read that
    succeeds never builds it."""

    __slots__ = ("_relative", "_root")

    def __init__(self, root: Path, relative: str) -> None:
        self._root, self._relative = root, relative

    def __str__(self) -> str:
        return str(self._root / self._relative)


def read_beneath(root: Path, relative: str, limit: int, *, regular: bool = False) -> bytes:
    """:func:`read_limited` of ``root/relative``, never through a symbolic link beneath
    ``root``: each name of ``relative`` (``/``-separated) is opened in the folder opened
    before it, with ``O_NOFOLLOW``, so no link there — to ``/etc/passwd``, to a folder
    elsewhere, even to a file inside — is followed, and a link swapped in meanwhile is not
    either. ``root`` itself may be a link (the operator's choice of where it lives). A link
    is an ``OSError`` ``ELOOP`` (or ``ENOTDIR`` where a folder is expected); a name that is
    empty, ``.`` or ``..``, or holds a NUL byte or a backslash, is ``FileNotFoundError``:
    nothing outside ``root`` is ever named. With ``regular``, what is opened must be a
    regular file (checked on the descriptor read): a named pipe, a device or a socket is
    ``InputUnavailable`` (a pipe whose writer holds it open and never writes would keep
    :func:`read_limited` waiting)."""
    names = relative.split("/")
    if any(n in ("", ".", "..") or "\0" in n or "\\" in n for n in names):
        raise FileNotFoundError(errno.ENOENT, "not a name beneath the folder", relative)
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names[:-1]:
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(names[-1], os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW, dir_fd=folder)
    finally:
        os.close(folder)
    return _read_opened(fd, _Named(root, relative), limit, regular=regular)


def read_limited_fd(fd: int, path: Path, limit: int) -> bytes:
    """:func:`read_limited` of a file the caller opened (``fd``, closed here; ``path`` names
    it in errors): for a caller that checks what it opened first, on the descriptor it reads
    (the HSM reads only regular files from its directory), so no other file can be swapped in
    between the check and the read."""
    return _read_opened(fd, path, limit)


_READ_PIECE: Final = 1 << 20
"""What a read of a file of no stated size (a pipe, a device) asks for at a time."""


def _read_opened(
    fd: int, path: str | os.PathLike[str] | _Named, limit: int, *, regular: bool = False
) -> bytes:
    """The rest of :func:`read_limited`, on the file it opened (``fd``, closed here): one
    ``fstat`` says what it is and its size, and the bytes are read straight from the
    descriptor (no buffered file object: it would ``fstat``, ``lseek`` and ``ioctl`` again).
    With ``regular``, only a regular file (or a directory, named as one) is read on."""
    try:
        info = os.fstat(fd)
        mode = info.st_mode
        if regular and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            named = path if isinstance(path, _Named) else Path(path)
            raise InputUnavailable(f"{named}: is not a regular file (a named pipe or a device)")
        if stat.S_ISDIR(mode):
            raise InputUnavailable(f"{path}: is a directory, not a file")
        if not stat.S_ISREG(mode):  # O_NONBLOCK changes nothing for a regular file
            os.set_blocking(fd, True)
        # Ask for what the file holds (not a buffer of ``limit`` bytes); a file that grows
        # meanwhile is read on to the limit.
        size = info.st_size
        if size > limit:  # a regular file says so without a read (a sparse one costs nothing)
            raise LimitExceeded(f"{path} is larger than {limit} bytes")
        data = _read_up_to(fd, min(size, limit) + 1)
        if len(data) > size:  # read on in pieces: one copy of the limit, never two
            grown = bytearray(data)
            while len(grown) <= limit:
                piece = _read_up_to(fd, min(_READ_PIECE, limit + 1 - len(grown)))
                if not piece:
                    break
                grown += piece
            if len(grown) > limit:
                raise LimitExceeded(f"{path} is larger than {limit} bytes")
            data = bytes(grown)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise LimitExceeded(f"{path} is larger than {limit} bytes")
    return data


def _read_up_to(fd: int, count: int) -> bytes:
    """Up to ``count`` bytes from ``fd``, fewer only at its end (a pipe or a device may
    answer one read with less)."""
    data = os.read(fd, count)
    if not data or len(data) == count:
        return data
    parts = [data]
    got = len(data)
    while got < count:
        piece = os.read(fd, count - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


def failure_reason(exc: BaseException) -> str:
    """One line saying why loading failed: ``code: detail`` for a typed error, else the
    exception's type and message (a parser bug, reported rather than raised)."""
    if isinstance(exc, IronrootError):
        return f"{exc.code}: {exc.detail}"
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_each(
    items: Iterable[_K],
    load: Callable[[_K], _T],
    *,
    log: logging.Logger,
    what: str,
) -> tuple[list[_T], list[str]]:
    """``load`` applied to each item (a path, or a labelled value); an item whose load raises
    anything is skipped, logged as a warning and listed as ``"<item>: <reason>"``.

    Returns (what loaded, in order; the rejected lines).
    """
    loaded: list[_T] = []
    rejected: list[str] = []
    for item in items:
        try:
            loaded.append(load(item))
        except Exception as exc:  # one bad file never stops a service: report it, skip it
            reason = failure_reason(exc)
            log.warning("%s %s left out: %s", what, item, reason)
            log.debug("%s %s left out", what, item, exc_info=exc)
            rejected.append(f"{item}: {reason}")
    return loaded, rejected


def warn_if_exposed(path: Path, what: str, *, writable: bool = False, fix: int = 0o600) -> bool:
    """Log a warning when ``path`` (holding ``what``, a secret) is readable by its group or by
    others; return whether it was. With ``writable`` the test is whether its group or others
    may write it (a directory of secrets: whoever may write it may swap what it holds), and
    ``fix`` is the mode the warning advises. A file that cannot be inspected is left to its
    reader."""
    try:
        mode = os.stat(path).st_mode & 0o777
    except (OSError, ValueError):  # ValueError: a name holding a NUL byte, which names no file
        return False
    if not mode & (0o022 if writable else 0o077):
        return False
    _log.warning(
        "%s holds %s but is %s beyond its owner (mode %04o): chmod %o %s",
        path,
        what,
        "writable" if writable else "readable",
        mode,
        fix,
        path,
    )
    return True


@contextlib.contextmanager
def naming_file(path: Path) -> Iterator[None]:
    """Every ``ConfigError`` raised inside names ``path``: its detail is prefixed with it
    unless it names it already (a configuration loader's errors, whichever check raised)."""
    try:
        yield
    except ConfigError as exc:
        if str(path) in exc.detail:
            raise
        raise ConfigError(f"{path}: {exc.detail}") from exc


def read_config(path: Path, limit: int) -> bytes:
    """:func:`read_limited` for a configuration, trust or secret file a service reads at start:
    every failure (unreadable, a folder or named pipe, over ``limit``) is a ``ConfigError``."""
    try:
        return read_limited(path, limit)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except InputUnavailable as exc:
        raise ConfigError(f"cannot read {exc.detail}") from exc
    except LimitExceeded as exc:
        raise ConfigError(exc.detail) from exc


def to_create(path: Path) -> bool:
    """Whether a service's configuration or key file at ``path`` is missing and is to be
    created. A symbolic link whose target is missing (kept elsewhere: a mount not there yet) is
    a ``ConfigError``: written over, the operator's link would be replaced by a new file, and
    the service would run on defaults or sign with a new key."""
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist")
    return not path.exists()


def warn_if_trust_writable(path: Path) -> bool:
    """Log a warning when ``path``, a configuration that says what a service trusts (keys,
    roots, witnesses), may be written by its group or others: they could change that trust.
    Every service's configuration loader calls it (one rule); return whether it warned."""
    return warn_if_exposed(path, "what the service trusts", writable=True, fix=0o644)


@contextlib.contextmanager
def file_lock(path: Path, what: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created mode 0600, never through a link: a
    planted one would have this create and open a file elsewhere) until the block ends;
    yield ``True``. With ``wait`` false, yield ``False`` at once when another holder has it.
    ``StorageError`` naming ``what`` when the file cannot be opened."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StorageError(f"{what} {path} cannot be opened: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = False
        else:
            held = True
        yield held
    finally:
        os.close(fd)


class DirectoryLock:
    """One process per data directory: an exclusive, non-blocking ``flock`` on
    ``<directory>/<name>`` (which records the holder's pid), held until :meth:`close`.

    A second holder gets ``error`` (:class:`InUse` by default) naming the directory and the pid
    that holds it, instead
    of two writers forking one store. The lock goes with the process (a ``kill -9`` releases
    it); the file stays, harmlessly.
    """

    __slots__ = ("_fd", "path")

    def __init__(
        self,
        directory: Path,
        name: str = ".lock",
        *,
        what: str = "data directory",
        error: type[Conflict] = InUse,
    ) -> None:
        self.path = Path(directory) / name
        # Never through a link (``OSError`` ELOOP): the holder's pid is written over the file
        # after it is truncated, and a lock file linked elsewhere would have emptied that file.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise error(
                f"the {what} {directory} is in use by another process (pid {holder}); "
                "one process serves it at a time"
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd: int | None = fd

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def remove_stale_temporaries(self, *folders: Path) -> list[Path]:
        """Delete the temporary files a :func:`write_atomic` killed before its rename left in
        the locked directory and in ``folders`` (each the directory or a folder beneath it
        that only the lock's holder writes: ``ValueError`` otherwise), and return them.

        Only regular files named exactly as ``write_atomic`` names them
        (``.<name>.XXXXXXXX.tmp``) go; links, folders and every other name stay. Called by a
        component right after it took the lock at its start, when no write of its own is
        under way and no other holder can be writing: a closed lock (which another process
        may hold by now) deletes nothing (``Conflict`` ``lock-not-held``). A folder that does
        not exist holds nothing to delete; one that cannot be read or cleaned is
        ``StorageError``."""
        if self._fd is None:
            raise Conflict(
                f"{self.path} is not held: the temporary files beside it may be another "
                "process's writes under way",
                code="lock-not-held",
            )
        directory = self.path.parent
        removed: list[Path] = []
        for folder in (directory, *folders):
            folder = Path(folder)
            if not folder.is_relative_to(directory) or ".." in folder.parts:
                raise ValueError(f"{folder} is not beneath the locked directory {directory}")
            try:
                removed += remove_write_temporaries(folder)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(
                    f"cannot remove the stale temporary files in {folder}: {exc.strerror or exc}"
                ) from exc
        return removed

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
