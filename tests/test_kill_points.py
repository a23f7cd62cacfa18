"""The kill harness itself: a run from :class:`kill_points.KillServer` (a child forked from a
process that imported the CLI once) is the run :func:`kill_points.run_killer` makes in a fresh
interpreter, the same file operations counted, the same cuts, the same exit codes and output."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from kill_points import KILLER, KillServer, run_killer
from scratch import in_memory

PRELOAD = ("ironroot.cli", "ironroot.cli.keys")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    with in_memory("kill-points-") as directory:
        yield directory


def _generate(prefix: Path) -> list[str]:
    return ["key", "generate", "--alg", "ES384", "--out", str(prefix), "--json"]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_a_server_run_counts_cuts_and_ends_as_a_fresh_interpreter(tmp_path: Path) -> None:
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    (tmp_path / "fresh").mkdir()
    (tmp_path / "forked").mkdir()
    tallies = (tmp_path / "fresh.tally", tmp_path / "forked.tally")
    with KillServer(tmp_path / "forked", PRELOAD) as server:
        fresh = run_killer(
            killer,
            _generate(tmp_path / "fresh" / "whole"),
            IRONROOT_TEST_KILL_TALLY=str(tallies[0]),
            PYTHONDONTWRITEBYTECODE="1",
        )
        forked = server.run(
            _generate(tmp_path / "forked" / "whole"), IRONROOT_TEST_KILL_TALLY=str(tallies[1])
        )
        assert (fresh.returncode, forked.returncode) == (0, 0)
        assert json.loads(fresh.stdout).keys() == json.loads(forked.stdout).keys()
        operations = int(tallies[0].read_text())
        assert operations >= 3
        assert int(tallies[1].read_text()) == operations
        for point in range(1, operations):
            cut = (tmp_path / "fresh" / f"cut{point}", tmp_path / "forked" / f"cut{point}")
            for folder in cut:
                folder.mkdir()
            env = {"IRONROOT_TEST_KILL_AT": str(point)}
            fresh = run_killer(killer, _generate(cut[0] / "k"), PYTHONDONTWRITEBYTECODE="1", **env)
            forked = server.run(_generate(cut[1] / "k"), **env)
            assert fresh.returncode == forked.returncode == -signal.SIGKILL, point
            assert _files(cut[0]) == _files(cut[1]), point


def test_a_server_run_exits_with_the_cli_code_and_its_output(tmp_path: Path) -> None:
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    (tmp_path / "server").mkdir()
    with KillServer(tmp_path / "server", PRELOAD) as server:
        for argv in (["key", "generate", "--alg", "ES384"], ["--version"]):
            fresh, forked = run_killer(killer, argv), server.run(argv)
            assert forked.returncode == fresh.returncode, argv
            assert (forked.stdout, forked.stderr) == (fresh.stdout, fresh.stderr), argv
        assert server.run(["key", "generate", "--alg", "ES384"]).returncode == 2
