"""A real ``kill -9`` of ``ironroot log export-tiles DIR`` at the state-changing file operations
of an export that brings a directory from 300 entries to 600 (``kill_points``): tiles and entry
bundles whose partial versions are replaced by full ones, a new partial, the checkpoint, the
deletion of the old partials. After every kill each file the directory serves is whole (byte
for byte what the log serves at its path, never half written), the directory verifies at the
old size or the new one, and the next export completes it exactly."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from log_testkit import ORIGIN, LogBackedFetcher, ed25519_key, entries, fill, make_data_dir, signer
from tests.log.test_log_export import _assert_served_exactly, _files, _identity

from durability import SyncLog, unsynced_names
from ironroot.log import DirectoryLogFetcher, Log, StoreLogFetcher, export_tiles, verify_remote_log
from kill_points import KillServer, some_points
from scratch import in_memory


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("log-export-kill-") as directory:
        yield directory


# What ``log export-tiles`` imports, once for the module's runs (kill_points.KillServer;
# ``ironroot.log`` is a lazy package: its modules are named).
_PRELOAD = (
    *("ironroot.cli", "ironroot.cli.log", "ironroot.log._export", "ironroot.http._server"),
    *(
        "ironroot.transparency._config",
        "ironroot.transparency._cts",
        "ironroot.witness._cosignature",
    ),
)


@pytest.fixture(scope="module")
def killer() -> Iterator[KillServer]:
    with (
        in_memory("log-export-kill-server-") as directory,
        KillServer(directory, _PRELOAD) as server,
    ):
        yield server


def _export(killer: KillServer, run: Path, **env: str) -> int:
    argv = ["log", "export-tiles", str(run / "out"), "--data", str(run / "data")]
    return killer.run(argv, **env).returncode


def test_a_kill_at_file_operations_of_an_export_leaves_only_whole_files(
    tmp_path: Path, killer: KillServer
) -> None:
    key = ed25519_key()
    template = tmp_path / "template"
    data = make_data_dir(template / "data", key)
    with Log.open(data, origin=ORIGIN, note_signers=[signer(key)]) as log:
        fill(log, entries(300))
        export_tiles(StoreLogFetcher(log.store), template / "out", identity=_identity(log))
        fill(log, entries(300, 300))
    assert (template / "out" / "tile/0/001.p/44").exists()
    tally = tmp_path / "tally"
    shutil.copytree(template, tmp_path / "counted")
    assert _export(killer, tmp_path / "counted", IRONROOT_TEST_KILL_TALLY=str(tally)) == 0
    points = int(tally.read_text()) - 1  # the tally's own write is the last
    assert points >= 10  # tiles and bundles (temporary file, mode, link, unlink), …
    with Log.open(data, origin=ORIGIN, note_signers=[signer(key)]) as log:
        _assert_served_exactly(tmp_path / "counted" / "out", log)
        served = LogBackedFetcher(log)
        for kill_at in some_points(1, points, 5):
            run = tmp_path / f"kill-{kill_at}"
            shutil.copytree(template, run)
            assert _export(killer, run, IRONROOT_TEST_KILL_AT=str(kill_at)) == -9, kill_at
            for path, found in _files(run / "out").items():
                if path != "checkpoint":
                    assert found == served.fetch(path), (kill_at, path)
            report = verify_remote_log(DirectoryLogFetcher(run / "out"), identity=_identity(log))
            assert report.size in (300, 600), kill_at
            assert _export(killer, run) == 0, kill_at
            _assert_served_exactly(run / "out", log)
            assert not [p for p in (run / "out").rglob(".*") if p.is_file()], kill_at
            shutil.rmtree(run)


def test_a_new_export_directory_is_kept_through_a_power_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every name an export makes, the directory's own among them, is synced into its folder
    before the export returns: a checkpoint a power cut keeps in a folder it loses is lost."""
    key = ed25519_key()
    data = make_data_dir(tmp_path / "data", key)
    with Log.open(data, origin=ORIGIN, note_signers=[signer(key)]) as log:
        fill(log, entries(300))
        sync = SyncLog(monkeypatch)
        export_tiles(StoreLogFetcher(log.store), tmp_path / "new" / "out", identity=_identity(log))
    lost = unsynced_names(tmp_path / "new", sync)
    assert [str(p.relative_to(tmp_path)) for p in lost] == []
