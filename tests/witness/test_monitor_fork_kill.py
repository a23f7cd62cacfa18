"""A real ``kill -9`` of a monitor at each of its SQLite commits (right before it, and right
after it landed) and at some of its state-changing file operations, while it checks a log that
forked from the one it verified and reports the fork (``ForkDetected``). After every kill the
state opens (never taken for a rollback), the verified checkpoint is the honest one (never the
fork's), a fork reported keeps its proof, and the fork checked again after the restart is
reported again under that one proof."""

from __future__ import annotations

import json
import shutil
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from witness_testkit import ORIGIN, LogFetcher, entries, grown

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ForkDetected, StorageError
from ironroot.monitor import Monitor, MonitorStore
from kill_points import SQLITE_COMMITS, KillServer, some_points
from scratch import in_memory

_POINTS = 4

# argv: the state file, the folder of the log's key, and this folder; it checks the forked log
# and writes the outcome (ForkDetected's code, or "no fork") once the monitor reported it
_SCRIPT = SQLITE_COMMITS + textwrap.dedent(
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[3])  # the tests' folder: witness_testkit
    from witness_testkit import LogFetcher, entries, grown

    from ironroot.crypto import PrivateKey
    from ironroot.errors import ForkDetected
    from ironroot.monitor import Monitor, MonitorStore

    state, files = Path(sys.argv[1]), Path(sys.argv[2])
    log_key = PrivateKey.from_pem((files / "log.pem").read_bytes())
    forked = grown(log_key, entries(6, tag=b"evil"))
    store = MonitorStore(state)
    try:
        events = Monitor(store).check("b", LogFetcher(forked), forked.note_verifiers)
        try:
            Monitor.raise_for(events)
            outcome = "no fork"
        except ForkDetected as exc:
            outcome = exc.code
    finally:
        store.close()
    (files / "outcome").write_text(outcome)
    """
)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("monitor-fork-kill-") as directory:
        yield directory


# What the monitor script imports, once for the module's runs (kill_points.KillServer;
# ``ironroot.monitor`` is a lazy package: its modules are named, and those that witness_testkit
# imports).
_PRELOAD = (
    *("ironroot.monitor._monitor", "ironroot.monitor._store", "sqlite3", "httpx"),
    *("ironroot.witness._witness", "ironroot.witness._store", "ironroot._httpclient"),
    *("ironroot.log._log", "ironroot.log._view", "ironroot.log._memory"),
)


@pytest.fixture(scope="module")
def killer() -> Iterator[KillServer]:
    with (
        in_memory("monitor-fork-kill-server-") as directory,
        KillServer(directory, _PRELOAD) as server,
    ):
        yield server


def _run(killer: KillServer, script: Path, folder: Path, **env: str) -> int:
    argv = [str(folder / "m.db"), str(folder), str(Path(__file__).parent)]
    # no bytecode cache written: a write of the first run only would shift every later point
    return killer.run(argv, script=script, PYTHONDONTWRITEBYTECODE="1", **env).returncode


def test_a_fork_reported_before_a_kill_keeps_its_proof(tmp_path: Path, killer: KillServer) -> None:
    log_key = PrivateKey.generate(Algorithm.ED25519)
    honest = grown(log_key, entries(6))
    forked = grown(log_key, entries(6, tag=b"evil"))
    template = tmp_path / "template"
    template.mkdir()
    (template / "log.pem").write_bytes(log_key.to_pem())
    store = MonitorStore(template / "m.db")
    try:
        Monitor(store).check("a", LogFetcher(honest), honest.note_verifiers)
    finally:
        store.close()
    script = tmp_path / "monitor-step.py"
    script.write_text(_SCRIPT)
    commits, operations = tmp_path / "commits", tmp_path / "operations"
    for name, tally in (
        ("IRONROOT_TEST_KILL_COMMITS", commits),
        ("IRONROOT_TEST_KILL_TALLY", operations),
    ):
        whole = tmp_path / "whole"  # counted apart: writing one tally is an operation
        shutil.rmtree(whole, ignore_errors=True)
        shutil.copytree(template, whole)
        assert _run(killer, script, whole, **{name: str(tally)}) == 0
    assert (whole / "outcome").read_text() == ForkDetected.code
    kills = [
        {"IRONROOT_TEST_KILL_COMMIT": str(k), "IRONROOT_TEST_KILL_COMMIT_AFTER": after}
        for k in range(1, int(commits.read_text()) + 1)
        for after in ("0", "1")
    ]
    assert kills  # the proof's commit
    points = some_points(1, int(operations.read_text()) - 1, _POINTS)
    kills += [{"IRONROOT_TEST_KILL_AT": str(k)} for k in points]
    folders = []
    for number, env in enumerate(kills):
        folder = tmp_path / f"kill-{number}"
        shutil.copytree(template, folder)
        assert _run(killer, script, folder, **env) == -9, env
        folders.append(folder)
    for folder in [*folders, whole]:
        store = MonitorStore(folder / "m.db")
        try:
            (state,) = store.states()
            assert (state.size, state.root) == (6, honest.root(6)), folder.name
            if (folder / "outcome").exists():  # the fork was reported: its proof is kept
                assert len(store.forks()) == 1, folder.name
            (event,) = Monitor(store).check("b", LogFetcher(forked), forked.note_verifiers)
            assert event.kind == "fork", folder.name
            with pytest.raises(ForkDetected):
                Monitor.raise_for([event])
            assert len(store.forks()) == 1, folder.name  # reported again under the one proof
        finally:
            store.close()


def test_a_kill_between_the_fork_s_commit_and_its_tally_raises_the_tally(
    tmp_path: Path, killer: KillServer
) -> None:
    """Killed right after each commit: the one after the fork proof's commit leaves a proof
    the high-water file does not tally yet. The next open raises the tally (no alarm: nothing
    was lost), and from then on the proof cannot be lost without a word."""
    log_key = PrivateKey.generate(Algorithm.ED25519)
    honest = grown(log_key, entries(6))
    template = tmp_path / "template"
    template.mkdir()
    (template / "log.pem").write_bytes(log_key.to_pem())
    store = MonitorStore(template / "m.db")
    try:
        Monitor(store).check("a", LogFetcher(honest), honest.note_verifiers)
    finally:
        store.close()
    script = tmp_path / "monitor-step.py"
    script.write_text(_SCRIPT)
    commits, whole = tmp_path / "commits", tmp_path / "whole"
    shutil.copytree(template, whole)
    assert _run(killer, script, whole, IRONROOT_TEST_KILL_COMMITS=str(commits)) == 0
    between = []
    for k in range(1, int(commits.read_text()) + 1):
        folder = tmp_path / f"kill-{k}"
        shutil.copytree(template, folder)
        env = {"IRONROOT_TEST_KILL_COMMIT": str(k), "IRONROOT_TEST_KILL_COMMIT_AFTER": "1"}
        assert _run(killer, script, folder, **env) == -9, env
        db = sqlite3.connect(folder / "m.db")
        (forks,) = db.execute("SELECT count(*) FROM forks").fetchone()
        db.close()
        if forks and ORIGIN not in _tallies(folder / "m.db"):
            between.append(folder)
        store = MonitorStore(folder / "m.db")
        try:
            assert [s.size for s in store.states()] == [6], folder.name
            assert len(store.forks()) == forks, folder.name
        finally:
            store.close()
        assert _tallies(folder / "m.db").get(ORIGIN, {"count": 0})["count"] == forks
    assert between  # the kill landed between the proof's commit and its tally
    for folder in between:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{folder / 'm.db'}{suffix}").unlink(missing_ok=True)
        shutil.copy(template / "m.db", folder / "m.db")  # restored from before the fork
        store = MonitorStore(folder / "m.db")
        try:
            with pytest.raises(StorageError, match="holds 0 fork proofs") as lost:
                store.states()
            assert lost.value.code == "storage"
        finally:
            store.close()


def _tallies(path: Path) -> dict[str, dict[str, object]]:
    kept = json.loads(Path(f"{path}.verified").read_text()).get("kept", {})
    assert isinstance(kept, dict)
    return kept
