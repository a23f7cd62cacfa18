"""Two ``ironroot witness init`` on one data directory at once: whatever the interleaving,
the directory ends with one cosigning key, the one each of them printed for logs to trust and
the one the witness cosigns with. A key file, once in place, is never replaced: the init that
finds one there (made by the other meanwhile) uses it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.witness import load_witness_config
from kill_points import KillServer
from pause_points import PausedProcess
from scratch import in_memory

NAME = "witness.example/w1"
KEY = "witness-ed25519.key"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    with in_memory("witness-init-race-") as directory:
        yield directory


def _printed_key(out: str) -> str:
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"witness {NAME} in "), out
    (key,) = lines[1:]
    return key


def _cosigning_key(data: Path) -> str:
    (cosigner,) = load_witness_config(data).cosigners()
    return cosigner.verifier().vkey


# Where the other init is held, and what it asks for: at its configuration, another name and
# key type (the configuration that landed first is the witness's); at its key, the same.
OTHER = {
    "witness.toml": ["--name", "witness.example/w2", "--algorithm", "ML-DSA-44"],
    KEY: ["--name", NAME],
}


@pytest.mark.parametrize("before", sorted(OTHER))
def test_an_init_while_another_writes_ends_with_the_one_key_both_printed(
    tmp_path: Path, before: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    init = ["witness", "init", "--data", str(data), "--name", NAME]
    other = ["witness", "init", "--data", str(data), *OTHER[before]]
    with PausedProcess(tmp_path / "pause", other, before=before) as writing:
        # It has chosen to write ``before`` and not yet put it in place; this one goes first.
        assert main(init) == 0
        first = _printed_key(capsys.readouterr().out)
        landed = (data / "keys" / KEY).read_bytes()
        done = writing.resume()
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    assert _printed_key(done.stdout.decode()) == first
    assert (data / "keys" / KEY).read_bytes() == landed
    assert _cosigning_key(data) == first


# What ``witness init`` imports, once for the sweep's runs (kill_points.KillServer).
_PRELOAD = ("ironroot.cli", "ironroot.cli.witness", "ironroot.witness._config")


def test_a_key_a_killed_init_put_in_place_is_the_one_the_next_init_prints(
    tmp_path: Path,
) -> None:
    """``witness init`` killed at each of its file operations: the next one finishes, and a
    key the killed one had put in place is the one it prints."""
    tally = tmp_path / "tally"
    with KillServer(tmp_path, _PRELOAD) as killer:
        counted = tmp_path / "counted"
        done = killer.run(
            ["witness", "init", "--data", str(counted), "--name", NAME],
            IRONROOT_TEST_KILL_TALLY=str(tally),
        )
        assert done.returncode == 0, done
        points = int(tally.read_text())
        assert points >= 2  # the configuration, the key
        for kill_at in range(1, points):
            data = tmp_path / f"kill-{kill_at}"
            init = ["witness", "init", "--data", str(data), "--name", NAME]
            killed = killer.run(init, IRONROOT_TEST_KILL_AT=str(kill_at))
            assert killed.returncode == -9, kill_at
            key = data / "keys" / KEY
            landed = key.read_bytes() if key.exists() else None
            again = killer.run(init)
            assert again.returncode == 0, kill_at
            assert landed is None or key.read_bytes() == landed, kill_at
            assert _printed_key(again.stdout.decode()) == _cosigning_key(data), kill_at
            shutil.rmtree(data)
