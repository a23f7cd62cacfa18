"""The first start of a transparency service (``ironroot serve``'s ``init_data_dir`` and
``TransparencyService.open``): it makes the data directory, its configuration, its service keys
and the public keys it publishes. A real ``kill -9`` at every state-changing file operation of
it leaves each file whole or absent, and the next start finishes the job: the published receipt
and checkpoint keys are those of the private keys it signs with. And every name it makes is
kept through a power cut (each new folder's name synced into its parent)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from durability import SyncLog, unsynced_names
from ironroot.cose import decode_key_set
from ironroot.crypto import Algorithm, load_signer
from ironroot.log.layout import (
    checkpoint_key_path,
    checkpoint_public_key_path,
    receipt_keys_path,
)
from ironroot.transparency import TransparencyService, load_config
from ironroot.transparency._config import receipt_key_path
from kill_points import KILLER, KillServer, run_killer, some_points
from scratch import in_memory

STORE_INDEPENDENT = True  # the default configuration's SQLite store
SCRIPT = Path(__file__).with_name("first_start.py")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("ts-first-start-kill-") as directory:
        yield directory


def _start(root: Path, data: Path, **env: str) -> int:
    return run_killer(root / "killer.py", [str(data)], script=SCRIPT, **env).returncode


def _whole_or_absent(data: Path) -> None:
    """Every file the first start writes is absent or whole (it loads)."""
    if (data / "ironroot.toml").exists():
        load_config(data)
    for key in (receipt_key_path(data, Algorithm.ES384), checkpoint_key_path(data)):
        if key.exists():
            load_signer(key)
    if receipt_keys_path(data).exists():
        assert decode_key_set(receipt_keys_path(data).read_bytes())


def _published_as_signed(data: Path) -> None:
    receipt = load_signer(receipt_key_path(data, Algorithm.ES384))
    published = decode_key_set(receipt_keys_path(data).read_bytes())
    assert list(published) == [receipt.verifier().kid]
    checkpoint = load_signer(checkpoint_key_path(data))
    pem = checkpoint_public_key_path(data).read_bytes()
    assert pem == checkpoint.verifier().to_pem()  # type: ignore[attr-defined]


def test_a_kill_at_every_file_operation_of_a_first_start_is_finished_by_the_next(
    tmp_path: Path,
) -> None:
    (tmp_path / "killer.py").write_text(KILLER)
    tally = tmp_path / "tally"
    assert _start(tmp_path, tmp_path / "counted" / "data", IRONROOT_TEST_KILL_TALLY=str(tally)) == 0
    _published_as_signed(tmp_path / "counted" / "data")
    points = int(tally.read_text())
    assert points >= 8  # the lock, the configuration, two keys, two published keys, the store
    for kill_at in some_points(1, points - 1, 5):
        root = tmp_path / f"kill-{kill_at}"
        data = root / "data"
        killed = _start(tmp_path, data, IRONROOT_TEST_KILL_AT=str(kill_at))
        assert killed == -9, kill_at
        _whole_or_absent(data)
        assert _start(tmp_path, data) == 0, kill_at
        _published_as_signed(data)
        shutil.rmtree(root)


def test_every_name_the_first_start_makes_is_kept_through_a_power_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SyncLog(monkeypatch)
    data = tmp_path / "new" / "data"
    TransparencyService.open(data).close()
    lost = [p for p in unsynced_names(tmp_path / "new", log) if not p.name.startswith("log.sq")]
    assert [str(p.relative_to(tmp_path)) for p in lost] == []


# What ``serve --init-only`` imports, once for the sweep's runs (kill_points.KillServer).
_PRELOAD = (
    "ironroot.cli",
    "ironroot.cli.serve",
    "ironroot.hsm._service_keys",
    "ironroot.transparency._config",
    "ironroot.transparency._service",
)


def _key_files(data: Path) -> dict[str, bytes]:
    keys = data / "keys"
    return {p.name: p.read_bytes() for p in keys.iterdir()} if keys.is_dir() else {}


def test_a_key_a_killed_init_put_in_place_is_the_one_every_later_start_uses(
    tmp_path: Path,
) -> None:
    """``ironroot serve --init-only`` killed at each of its file operations: every key file it
    had put in place is kept as it is by the next ``--init-only`` and the next start, which
    make only what is missing (and sign with exactly those keys)."""
    tally = tmp_path / "tally"
    with KillServer(tmp_path, _PRELOAD) as killer:
        init = ["serve", "--init-only", "--data"]
        counted = killer.run(
            [*init, str(tmp_path / "counted")], IRONROOT_TEST_KILL_TALLY=str(tally)
        )
        assert counted.returncode == 0, counted
        points = int(tally.read_text())
        assert points >= 4  # the lock, the configuration, two keys
        for kill_at in range(1, points):
            data = tmp_path / f"kill-{kill_at}"
            killed = killer.run([*init, str(data)], IRONROOT_TEST_KILL_AT=str(kill_at))
            assert killed.returncode == -9, kill_at
            _whole_or_absent(data)
            landed = {k: v for k, v in _key_files(data).items() if not k.startswith(".")}
            assert killer.run([*init, str(data)]).returncode == 0, kill_at
            TransparencyService.open(data).close()
            after = _key_files(data)
            assert {k: after[k] for k in landed} == landed, kill_at
            assert not [k for k in after if k.startswith(".")], kill_at  # no temporary left
            _published_as_signed(data)
            shutil.rmtree(data)
