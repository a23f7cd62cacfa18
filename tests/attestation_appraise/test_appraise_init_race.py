"""``ironroot attest init`` racing another one, or killed midway: the directory ends with one
EAR signing key, which the configuration that lands goes with and no later init replaces. A
kill between the key and the configuration leaves a directory the next init finishes (before,
it was refused: the key "already exists"); an init while another writes is ``InUse``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironroot.attestation import load_attestation_config
from ironroot.cli import main
from kill_points import KillServer
from pause_points import PausedProcess
from scratch import in_memory

KEY = "verifier-es384.pem"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    with in_memory("attest-init-race-") as directory:
        yield directory


def test_an_init_while_another_writes_its_key_is_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    init = ["attest", "init", "--data", str(data)]
    with PausedProcess(tmp_path / "pause", init, before=KEY) as writing:
        # It has chosen to make the key and not yet put it in place.
        capsys.readouterr()
        assert main(init) == 2
        err = capsys.readouterr().err
        assert err.startswith(
            f"ironroot: in-use: the attestation data directory {data} is in use by another process"
        )
        assert not (data / KEY).exists()
        done = writing.resume()
    assert done.returncode == 0, done.stderr
    key = (data / KEY).read_bytes()
    load_attestation_config(data)
    assert main(init) == 2  # exists: ConfigError
    assert (data / KEY).read_bytes() == key


# What ``attest init`` imports, once for the sweep's runs (kill_points.KillServer).
_PRELOAD = ("ironroot.cli", "ironroot.cli.attest", "ironroot.attestation._config")


def test_an_init_killed_at_each_file_operation_is_finished_by_the_next_with_its_key(
    tmp_path: Path,
) -> None:
    tally = tmp_path / "tally"
    with KillServer(tmp_path, _PRELOAD) as killer:
        counted = tmp_path / "counted"
        done = killer.run(
            ["attest", "init", "--data", str(counted)], IRONROOT_TEST_KILL_TALLY=str(tally)
        )
        assert done.returncode == 0, done
        points = int(tally.read_text())
        assert points >= 3  # the key, the configuration (at least)
        for kill_at in range(1, points):
            data = tmp_path / f"kill-{kill_at}"
            init = ["attest", "init", "--data", str(data)]
            assert killer.run(init, IRONROOT_TEST_KILL_AT=str(kill_at)).returncode == -9
            landed = (data / KEY).read_bytes() if (data / KEY).exists() else None
            done = (data / "attestation.toml").exists()  # the init had finished its job
            again = killer.run(init)
            assert again.returncode == (2 if done else 0), (kill_at, again.stderr)
            assert landed is None or (data / KEY).read_bytes() == landed, kill_at
            load_attestation_config(data)
            if not done:  # the next init, holding the lock, removed what the killed one left
                assert not [p.name for p in data.iterdir() if p.name.endswith(".tmp")], kill_at
            shutil.rmtree(data)
