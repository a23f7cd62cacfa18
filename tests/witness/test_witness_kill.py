"""A real ``kill -9`` of a witness at each of its SQLite commits (right before it, and right
after it landed) and at each of its state-changing file operations (its high-water file), while
it cosigns a checkpoint that extends the one it holds, and while it answers a fork with
``ForkDetected``. After every kill the state opens (never taken for a rollback), its
checkpoint never goes back (nor forward to the fork), a fork answered keeps its evidence, and
the fork sent again after the restart is answered ``ForkDetected`` again."""

from __future__ import annotations

import json
import shutil
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from witness_testkit import ORIGIN, entries, grown, make_witness

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ForkDetected, StorageError
from ironroot.log import Log
from ironroot.witness import AddCheckpoint, SqliteWitnessStore, Witness
from kill_points import SQLITE_COMMITS, KillServer, some_points
from scratch import in_memory

_POINTS = 4

# argv: the state file, the folder of the keys and the request, and this folder; it sends the
# request and writes the outcome ("cosigned" or ForkDetected's code) once the witness answered
_SCRIPT = SQLITE_COMMITS + textwrap.dedent(
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[3])  # the tests' folder: witness_testkit
    from witness_testkit import make_witness

    from ironroot.crypto import PrivateKey
    from ironroot.errors import ForkDetected
    from ironroot.witness import SqliteWitnessStore

    state, files = Path(sys.argv[1]), Path(sys.argv[2])
    log_key = PrivateKey.from_pem((files / "log.pem").read_bytes())
    key = PrivateKey.from_pem((files / "witness.pem").read_bytes())
    witness = make_witness(log_key, store=SqliteWitnessStore(state), key=key)
    try:
        try:
            witness.add_checkpoint((files / "request").read_bytes())
            outcome = "cosigned"
        except ForkDetected as exc:
            outcome = exc.code
    finally:
        witness.close()
    (files / "outcome").write_text(outcome)
    """
)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("witness-kill-") as directory:
        yield directory


# What the witness script imports, once for the module's runs (kill_points.KillServer;
# ``ironroot.witness`` is a lazy package: its modules are named, and those of ``ironroot.log``
# that witness_testkit imports).
_PRELOAD = (
    *("ironroot.witness._witness", "ironroot.witness._store", "sqlite3", "tomllib"),
    *("ironroot.log._log", "ironroot.log._open", "ironroot.log._view", "ironroot.log._memory"),
)


@pytest.fixture(scope="module")
def killer() -> Iterator[KillServer]:
    with in_memory("witness-kill-server-") as directory, KillServer(directory, _PRELOAD) as server:
        yield server


@pytest.fixture(scope="module")
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


def _witness(folder: Path, log_key: PrivateKey) -> Witness:
    key = PrivateKey.from_pem((folder / "witness.pem").read_bytes())
    return make_witness(log_key, store=SqliteWitnessStore(folder / "witness.sqlite3"), key=key)


def _template(folder: Path, log_key: PrivateKey, honest: Log, request: bytes) -> None:
    """A witness that cosigned the honest log at 5 and 11; the request to send next."""
    folder.mkdir()
    (folder / "log.pem").write_bytes(log_key.to_pem())
    (folder / "witness.pem").write_bytes(PrivateKey.generate(Algorithm.ED25519).to_pem())
    witness = _witness(folder, log_key)
    try:
        witness.add_checkpoint(AddCheckpoint(0, (), honest.checkpoint_at(5)).encode())
        proof = tuple(honest.consistency_proof(5, 11))
        witness.add_checkpoint(AddCheckpoint(5, proof, honest.checkpoint_at(11)).encode())
    finally:
        witness.close()
    (folder / "request").write_bytes(request)


def _run(killer: KillServer, script: Path, folder: Path, **env: str) -> int:
    argv = [str(folder / "witness.sqlite3"), str(folder), str(Path(__file__).parent)]
    # no bytecode cache written: a write of the first run only would shift every later point
    return killer.run(argv, script=script, PYTHONDONTWRITEBYTECODE="1", **env).returncode


def _kills(killer: KillServer, tmp_path: Path, template: Path) -> Iterator[Path]:
    """A copy of ``template`` after each kill: at every commit (before and after), then at
    some of the file operations; the whole run's copy last."""
    script = tmp_path / "witness-step.py"
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
    kills = [
        {"IRONROOT_TEST_KILL_COMMIT": str(k), "IRONROOT_TEST_KILL_COMMIT_AFTER": after}
        for k in range(1, int(commits.read_text()) + 1)
        for after in ("0", "1")
    ]
    points = some_points(1, int(operations.read_text()) - 1, _POINTS)
    kills += [{"IRONROOT_TEST_KILL_AT": str(k)} for k in points]
    for number, env in enumerate(kills):
        folder = tmp_path / f"kill-{number}"
        shutil.copytree(template, folder)
        assert _run(killer, script, folder, **env) == -9, env
        yield folder
        shutil.rmtree(folder)
    yield whole


def test_a_witness_killed_while_it_cosigns_never_goes_back(
    tmp_path: Path, killer: KillServer, log_key: PrivateKey
) -> None:
    honest = grown(log_key, entries(5), entries(6, 5), entries(4, 11))
    request = AddCheckpoint(11, tuple(honest.consistency_proof(11, 15)), honest.checkpoint())
    template = tmp_path / "template"
    _template(template, log_key, honest, request.encode())
    for folder in _kills(killer, tmp_path, template):
        store = SqliteWitnessStore(folder / "witness.sqlite3")
        try:
            latest = store.latest(ORIGIN)
        finally:
            store.close()
        assert latest is not None
        assert latest.size in (11, 15), folder.name
        if (folder / "outcome").exists():  # answered: cosigned, and kept
            assert latest.size == 15, folder.name


def test_a_fork_answered_before_a_kill_keeps_its_evidence(
    tmp_path: Path, killer: KillServer, log_key: PrivateKey
) -> None:
    honest = grown(log_key, entries(5), entries(6, 5))
    forked = grown(log_key, entries(5), entries(6, 5, tag=b"evil"))
    fork = AddCheckpoint(11, (), forked.checkpoint())  # the size it holds, another root
    template = tmp_path / "template"
    _template(template, log_key, honest, fork.encode())
    for folder in _kills(killer, tmp_path, template):
        witness = _witness(folder, log_key)
        try:
            latest = witness.store.latest(ORIGIN)
            assert latest is not None
            assert (latest.size, latest.root) == (11, honest.root(11)), folder.name
            forks = [e for e in witness.store.evidence() if e.kind == "fork"]
            if (folder / "outcome").exists():  # the fork was answered: its evidence is kept
                assert (folder / "outcome").read_text() == ForkDetected.code, folder.name
                assert len(forks) == 1, folder.name
            with pytest.raises(ForkDetected) as again:  # and after the restart, answered again
                witness.add_checkpoint(fork.encode())
            assert again.value.code == ForkDetected.code
            assert len([e for e in witness.store.evidence() if e.kind == "fork"]) == 1
        finally:
            witness.close()


def test_a_kill_between_the_evidence_s_commit_and_its_tally_raises_the_tally(
    tmp_path: Path, killer: KillServer, log_key: PrivateKey
) -> None:
    """Killed right after each commit: the one after the fork's evidence committed leaves
    evidence the high-water file does not tally yet. The next open raises the tally (no
    alarm: nothing was lost), and from then on the evidence cannot be lost without a word."""
    honest = grown(log_key, entries(5), entries(6, 5))
    forked = grown(log_key, entries(5), entries(6, 5, tag=b"evil"))
    template = tmp_path / "template"
    _template(template, log_key, honest, AddCheckpoint(11, (), forked.checkpoint()).encode())
    script = tmp_path / "witness-step.py"
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
        path = folder / "witness.sqlite3"
        db = sqlite3.connect(path)
        (kept,) = db.execute("SELECT count(*) FROM evidence").fetchone()
        db.close()
        if kept and ORIGIN not in _tallies(path):
            between.append(folder)
        store = SqliteWitnessStore(path)
        try:
            latest = store.latest(ORIGIN)
            assert latest is not None
            assert latest.size == 11, folder.name
            assert len(store.evidence()) == kept, folder.name
        finally:
            store.close()
        assert _tallies(path).get(ORIGIN, {"count": 0})["count"] == kept
    assert between  # the kill landed between the evidence's commit and its tally
    for folder in between:
        path = folder / "witness.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        shutil.copy(template / "witness.sqlite3", path)  # restored from before the fork
        store = SqliteWitnessStore(path)
        try:
            with pytest.raises(StorageError, match="holds 0 evidence rows") as lost:
                store.latest(ORIGIN)
            assert lost.value.code == "storage"
        finally:
            store.close()


def _tallies(path: Path) -> dict[str, dict[str, object]]:
    kept = json.loads(Path(f"{path}.cosigned").read_text()).get("kept", {})
    assert isinstance(kept, dict)
    return kept
