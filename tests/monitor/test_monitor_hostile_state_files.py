"""The high-water file beside a monitor's (or witness's) state, and its lock file, replaced
by what is no regular file: a named pipe, a symbolic link. Each is a ``StorageError`` naming
the file, never a wait for a writer that does not come or a lock taken through a link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ironroot.errors import StorageError
from ironroot.monitor import MonitorStore
from ironroot.witness import SqliteWitnessStore


@pytest.mark.parametrize(
    ("opener", "suffix", "what"),
    [(MonitorStore, ".verified", "monitor"), (SqliteWitnessStore, ".cosigned", "witness")],
)
def test_a_high_water_file_that_is_a_named_pipe_is_refused_not_waited_on(
    tmp_path: Path, opener: type, suffix: str, what: str
) -> None:
    """Old behaviour: the high-water file was read with a blocking ``open``: a named pipe in
    its place (nobody writing) kept the service, and ``monitor status``, waiting for ever."""
    state = tmp_path / "state.db"
    opener(state).close()
    water = Path(f"{state}{suffix}")
    water.unlink()
    os.mkfifo(water)
    with pytest.raises(StorageError) as exc:
        opener(state)
    shown = water if what == "monitor" else water.name  # a witness names no directory
    assert exc.value.detail == f"the high-water file {shown} is not a regular file"


def test_a_high_water_lock_file_that_is_a_link_is_refused(tmp_path: Path) -> None:
    """Old behaviour: ``<state>.verified.lock`` was opened (and created) through a symbolic
    link: a planted one had the monitor create and lock a file elsewhere. Never through a
    link, as every other lock file of Ironroot."""
    state = tmp_path / "state.db"
    MonitorStore(state).close()
    lock = Path(f"{state}.verified.lock")
    lock.unlink()
    elsewhere = tmp_path / "elsewhere"
    lock.symlink_to(elsewhere)
    with pytest.raises(StorageError) as exc:
        MonitorStore(state)
    assert exc.value.detail == (
        f"cannot lock the high-water file {state}.verified: Too many levels of symbolic links"
    )
    assert not elsewhere.exists()
