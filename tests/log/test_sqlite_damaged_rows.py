"""A log database damaged row by row: a BLOB column holding text or an integer is a
``StorageError`` from every read, never a ``TypeError`` nor bytes made up from the value
(``bytes(n)`` is n zero bytes)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from log_testkit import ORIGIN, ed25519_key, entries, fill, signer

from ironroot.errors import StorageError
from ironroot.log import Log, SqliteLogStore
from ironroot.log._sqlite import stored_version


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "log.sqlite3"
    log = Log(SqliteLogStore(path), origin=ORIGIN, note_signers=[signer(ed25519_key())])
    log.start()
    try:
        fill(log, entries(5))
    finally:
        log.close()
    return path


def _damage(path: Path, statement: str, value: object) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(statement, (value,))
    finally:
        conn.close()


@pytest.mark.parametrize("value", ["an entry as text", 4096])
def test_an_entry_that_is_not_a_blob_is_a_storage_error(path: Path, value: object) -> None:
    _damage(path, "UPDATE entries SET entry = ? WHERE idx = 2", value)
    store = SqliteLogStore(path, read_only=True)
    try:
        assert len(store.entries(0, 2)) == 2  # the rows before it still read
        with pytest.raises(StorageError, match="where bytes belong"):
            store.entries(0, 5)
        with pytest.raises(StorageError, match="where bytes belong"):
            list(store.iter_entries())
    finally:
        store.close()


@pytest.mark.parametrize("value", ["a note as text", 4096])
def test_a_checkpoint_that_is_not_a_blob_is_a_storage_error(path: Path, value: object) -> None:
    _damage(path, "UPDATE checkpoints SET note = ?", value)
    store = SqliteLogStore(path, read_only=True)
    try:
        with pytest.raises(StorageError, match="where bytes belong"):
            store.checkpoint()
    finally:
        store.close()


@pytest.mark.parametrize(
    ("statement", "value", "read"),
    [
        pytest.param(
            "INSERT INTO batch_data VALUES (?, 'r', x'00')",
            "five",
            lambda s: s.batch_data_sizes(),
            id="batch-size-text",
        ),
        pytest.param(
            "INSERT INTO batch_data VALUES (?, 'r', x'00')",
            5.5,
            lambda s: s.batch_data_sizes(),
            id="batch-size-real",
        ),
        pytest.param(
            "UPDATE state SET size = ?",
            b"\x05",
            lambda s: s.lookup([bytes(32)]),
            id="state-size-blob",
        ),
        pytest.param(
            "UPDATE entry_key_state SET indexed = ?",
            "none",
            lambda s: s.lookup([bytes(32)]),
            id="indexed-text",
        ),
        pytest.param(
            "UPDATE entry_key_state SET indexed = ?",
            "none",
            lambda s: s.indexed(),
            id="indexed-text-read",
        ),
    ],
)
def test_a_number_that_is_not_an_integer_is_a_storage_error(
    path: Path, statement: str, value: object, read: Callable[[SqliteLogStore], object]
) -> None:
    """An integer column holding text, a blob or a real (SQLite stores what it is given) is a
    ``StorageError``, never a ``ValueError`` from ``int()`` nor a real rounded to a size."""
    _damage(path, statement, value)
    store = SqliteLogStore(path, read_only=True)
    try:
        with pytest.raises(StorageError, match="where an integer belongs"):
            read(store)
    finally:
        store.close()


@pytest.mark.parametrize(
    "open_it",
    [
        pytest.param(lambda p: SqliteLogStore(p, read_only=True).close(), id="read-only"),
        pytest.param(lambda p: SqliteLogStore(p).close(), id="read-write"),
        pytest.param(stored_version, id="stored-version"),
    ],
)
def test_a_named_pipe_for_the_database_is_refused_without_waiting(
    tmp_path: Path, open_it: Callable[[Path], object]
) -> None:
    """A named pipe where the database goes (``ironroot log verify DIR``, ``log migrate
    --check``): a ``StorageError`` at once, never an open that waits for a writer forever."""
    path = tmp_path / "log.sqlite3"
    os.mkfifo(path)
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            open_it(path)
        except BaseException as exc:  # the outcome is checked below
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # release the open that waits for a writer, then fail
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(5)
        pytest.fail("opening a named pipe as the log database waited for a writer")
    assert len(outcome) == 1
    assert isinstance(outcome[0], StorageError)
    assert "not a regular file" in outcome[0].detail
