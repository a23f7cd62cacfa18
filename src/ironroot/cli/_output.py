"""How a verb writes a file it was asked for: whole or not at all, and never over a key.

:func:`write_output` writes a temporary file beside the target and renames it into place, so
a write that fails part way (a full disk, a file-size limit) leaves no half-written output and
an output named the same as an input leaves the input as it was. A symbolic link to a file is
followed (the file it names is replaced); a link to nothing is refused rather than followed to
create a file wherever it points, and so is a link another user may have planted in a folder
every user may write (``/tmp``: :func:`~ironroot._fileio.resolve_unplanted`).

An output never replaces a private key or an LMS state file (``config``, exit 2), whatever name
reaches it — the key's own path, a link, a hard link — and whichever verb writes it: the key
would be lost, and an LMS state file lost or rewound lets a one-time key sign twice. Nor does it
replace a file the command read a secret from (:func:`~ironroot.cli._input.read_secret`: a
sealing secret, a credential), which has nothing else to recognise it by, nor a file beneath a
folder of state it uses (:func:`~ironroot.cli._input.note_folder`: an HSM, a root of trust).

``-`` is stdout. A target that is no regular file (``/dev/stdout``, a terminal, a named pipe)
is written in place: a named pipe nobody reads is refused rather than waited on, one another
user may have planted in a folder every user may write is refused, and a terminal is never
sent binary output. An output written to the process's own stdout leaves stdout to
it: the verb's lines after it go to stderr, and under ``--json`` (whose object stdout carries)
it is refused.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
from pathlib import Path

from ironroot._fileio import (
    make_dirs,
    read_limited,
    refuse_planted,
    resolve_unplanted,
    write_atomic,
)
from ironroot.cli._input import folder_used, named_as_folder, secret_read
from ironroot.crypto import holds_private_key
from ironroot.errors import ConfigError, InputUnavailable, LimitExceeded

__all__ = ["check_output", "output_folder", "write_output"]

_MAX_KEY_FILE = 1024 * 1024
"""A file larger than this is no key file (the key loaders' own limit)."""


def check_output(path: Path) -> None:
    """Raise what :func:`write_output` would for ``path`` before writing a byte: a verb that
    writes several files checks each of them first, so that none is left without the others."""
    _target(_named(path))


def output_folder(path: Path, *, make: bool = True) -> Path:
    """The folder ``path`` names, checked as an output and made (with its missing parents)
    if it is not there, before a verb writes any file into it: a link another user planted
    anywhere in it is refused (:func:`~ironroot._fileio.resolve_unplanted`), and so are a
    link to nothing (never followed to make a folder where it points) and a file. Returns
    the folder resolved. Without ``make`` it is only checked (for a writer that makes it)."""
    folder = resolve_unplanted(path)
    if os.path.islink(path) and not os.path.exists(path):
        raise InputUnavailable(
            f"{path}: is a symbolic link to {os.readlink(path)}, which does not exist: "
            "no folder is made through a link"
        )
    if os.path.lexists(folder) and not folder.is_dir():
        raise InputUnavailable(f"{path}: is not a folder (it is a file)")
    if not make:
        return folder
    try:
        make_dirs(folder)
    except (FileExistsError, NotADirectoryError) as exc:  # a file among its parents
        raise InputUnavailable(f"{path}: is not a folder ({exc.filename}: not a folder)") from exc
    return folder


def write_output(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """``data`` written to ``path`` atomically (module docs); permissions ``mode``, narrowed
    by the umask and by the mode of the file it replaces
    (:func:`~ironroot._fileio.asked_mode`)."""
    target, kind = _target(_named(path))
    if kind is not None and not stat.S_ISREG(kind):
        _write_in_place(path, _named(path), kind, data)
        return
    write_atomic(target, data, mode=mode, asked=True)


def _named(path: Path) -> Path:
    """``-`` is stdout; anything else the file it names."""
    return Path("/dev/stdout") if str(path) == "-" else Path(path)


def _target(path: Path) -> tuple[Path, int | None]:
    """The file ``path`` names (a symbolic link followed) and its type, if it exists."""
    target = resolve_unplanted(path)  # no link another user planted, anywhere in the path
    try:  # follows every link, /dev/stdout's /proc/self/fd/1 to a pipe too
        kind: int | None = os.stat(path).st_mode
    except FileNotFoundError:
        kind = None
    if named_as_folder(Path(path)) and not (kind is not None and stat.S_ISDIR(kind)):
        raise InputUnavailable(f"{path}/: ends in /, which names a folder: name the file to write")
    if kind is not None and stat.S_ISDIR(kind):
        raise InputUnavailable(f"{path}: is a directory, not a file")
    if kind is not None and not stat.S_ISREG(kind):
        refuse_planted(path, target)  # written into: no pipe another user reads
        return Path(path), kind  # written in place, through the name given
    if kind is None and os.path.islink(path):
        raise InputUnavailable(
            f"{path}: is a symbolic link to {os.readlink(path)}, which does not exist: "
            "no file is created through a link"
        )
    if kind is None and not target.parent.is_dir():
        raise InputUnavailable(f"{path}: the folder {target.parent} does not exist")
    if kind is not None:
        _refuse_replacing_a_key(path, target)
    return target, kind


def _refuse_replacing_a_key(path: Path, target: Path) -> None:
    secret = secret_read(target.stat())
    if secret is not None:
        raise ConfigError(
            f"{path} is the secret file {secret} this command read: writing the output there "
            "would replace it (name another file)"
        )
    folder = folder_used(target)
    if folder is not None:
        raise ConfigError(
            f"{path} is a file of {folder}, which this command uses: writing the output there "
            "would replace it (name another file)"
        )
    try:
        existing = read_limited(target, _MAX_KEY_FILE)
    except LimitExceeded:
        return  # larger than any key file
    if holds_private_key(existing):
        shown = str(path) if Path(path) == target else f"{path} (the file {target})"
        raise ConfigError(
            f"{shown} holds a private key: writing the output there would replace it "
            "(name another file)"
        )


def _write_in_place(path: Path, opened: Path, kind: int, data: bytes) -> None:
    """``data`` written into ``opened`` (``path`` as the user gave it, for messages)."""
    try:  # without blocking: a named pipe with no reader fails at once (ENXIO)
        fd = os.open(opened, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ENXIO and stat.S_ISFIFO(kind):
            raise InputUnavailable(
                f"{path}: a named pipe nobody reads: nothing was written"
            ) from exc
        raise
    try:
        onto_stdout = _write_opened(path, fd, data)
    except OSError as exc:  # a full device, a pipe closed: named for the output, not stdout's
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    if onto_stdout:  # stdout carries the output alone: the verb's own lines go to stderr
        sys.stdout = sys.stderr


def _write_opened(path: Path, fd: int, data: bytes) -> bool:
    """``data`` written into ``fd`` (closed here); whether that is the process's stdout."""
    with open(fd, "wb") as handle:
        if os.isatty(fd) and _binary(data):
            raise ConfigError(
                f"{path}: is a terminal and the output is binary: name a file, or redirect stdout"
            )
        onto_stdout = _is_stdout(fd)
        if onto_stdout and isinstance(sys.stdout, io.StringIO):  # main() collects --json's
            raise ConfigError(f"{path}: is stdout, which carries the --json object: name a file")
        if onto_stdout:
            sys.stdout.flush()  # what the verb printed before comes first
        os.set_blocking(fd, True)
        handle.write(data)
    return onto_stdout


def _is_stdout(fd: int) -> bool:
    """Whether ``fd`` is the file, pipe or terminal that the process's stdout is."""
    try:
        mine, theirs = os.fstat(1), os.fstat(fd)
    except OSError:  # stdout closed
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def _binary(data: bytes) -> bool:
    """Whether ``data`` is anything but text a terminal shows as written: not UTF-8, or
    holding a control character (an escape sequence) other than tab and line ends."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any((ord(c) < 0x20 and c not in "\t\n\r") or 0x7F <= ord(c) <= 0x9F for c in text)
