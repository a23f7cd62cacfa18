"""The small SQLite state files of the monitor and the witness: made once, checked on open."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot._statedb import open_state_db
from ironroot.errors import StorageError
from ironroot.monitor import MonitorStore
from ironroot.witness import SqliteWitnessStore

SCHEMA = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"


def test_made_then_reopened_with_its_version(tmp_path: Path) -> None:
    db = open_state_db(tmp_path / "s.db", "test", SCHEMA, "1")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    again = open_state_db(tmp_path / "s.db", "test", SCHEMA, "1", create=False)
    assert again.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("1",)
    again.close()


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    open_state_db(tmp_path / "s.db", "test", SCHEMA, "1").close()
    with pytest.raises(StorageError, match=r"has test schema '1', not 2"):
        open_state_db(tmp_path / "s.db", "test", SCHEMA, "2")


def test_a_missing_file_is_refused_without_create(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no test state at"):
        open_state_db(tmp_path / "none.db", "test", SCHEMA, "1", create=False)
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(
    ("opener", "what"),
    [(MonitorStore, "monitor"), (SqliteWitnessStore, "witness")],
)
def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path, opener: type, what: str) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not sqlite at all, just some bytes " * 40)
    with pytest.raises(StorageError, match=f"is not a {what} database"):
        opener(path)
