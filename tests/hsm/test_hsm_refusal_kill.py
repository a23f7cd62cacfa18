"""A real ``kill -9`` of a process whose refused releases are group-committed
(``hsm_refusal_kill_step.py``: refusals sent together from several threads), at the
state-changing file operations of the run. After every kill the HSM powers up (no
``StoreRolledBack``, no ``AuditChainBroken``, no error state), and every refusal the process
had answered before it died is in the audit log: a refusal shares its commit with the others,
but is answered only once that commit is durable."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hsm_kill_step import CONFIG, SECRET
from hsm_refusal_kill_step import EACH, THREADS, ear
from test_hsm_release_kill import _records, _template

from ironroot.hsm import DirectoryStorage, Hsm
from kill_points import KillServer, some_points
from scratch import in_memory

SCRIPT = Path(__file__).with_name("hsm_refusal_kill_step.py")
_POINTS = 6


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("hsm-refusal-kill-") as directory:
        yield directory


# What the refusal script imports, once for the module's runs (kill_points.KillServer;
# ``ironroot.hsm`` and ``ironroot.rot`` are lazy packages: their modules are named; cel, which
# a release policy imports when it first runs, is a large one).
_PRELOAD = (
    "ironroot.hsm._boundary",
    "ironroot.hsm._storage",
    "ironroot.rot._device",
    "cel",
)


@pytest.fixture(scope="module")
def killer() -> Iterator[KillServer]:
    with (
        in_memory("hsm-refusal-kill-server-") as directory,
        KillServer(directory, _PRELOAD) as server,
    ):
        yield server


def _after_the_kill(root: Path) -> int:
    """Power up again; every refusal answered is recorded; how many were answered."""
    answered_file = root / "answered"
    answered = answered_file.read_text().split() if answered_file.exists() else []
    with DirectoryStorage.on_device(root / "hsm", root / "rot") as storage:
        hsm = Hsm.open(storage, SECRET, config=CONFIG)
        try:
            assert hsm.state == "operational", hsm.error
            recorded = {
                r.release.ear
                for r in _records(storage)
                if r.operation == "release" and r.result == "nonce-unknown" and r.release
            }
        finally:
            hsm.close()
    for number in answered:
        assert hashlib.sha256(ear(int(number))).digest() in recorded, number
    return len(answered)


def _run(root: Path, killer: KillServer, **env: str) -> int:
    argv = [str(root / "hsm"), str(root / "rot")]
    return killer.run(argv, script=SCRIPT, **env).returncode


def test_refusals_killed_at_any_file_operation_are_recorded_if_they_were_answered(
    tmp_path: Path, killer: KillServer
) -> None:
    template = tmp_path / "template"
    _template(template)
    counted = tmp_path / "counted"
    shutil.copytree(template, counted)
    tally = tmp_path / "tally"
    assert _run(counted, killer, IRONROOT_TEST_KILL_TALLY=str(tally)) == 0
    assert _after_the_kill(counted) == THREADS * EACH  # the whole run: every one recorded
    points = int(tally.read_text())
    for kill_at in some_points(1, points - 1, _POINTS):
        run = tmp_path / f"kill-{kill_at}"
        shutil.copytree(template, run)
        # threads interleave: a run may make fewer operations than the one counted
        assert _run(run, killer, IRONROOT_TEST_KILL_AT=str(kill_at)) in (-9, 0)
        _after_the_kill(run)
        shutil.rmtree(run)
