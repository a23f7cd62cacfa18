"""A power cut right after a node is made keeps all of it: every file and folder a node is made
of has its name synced into its folder (tests/durability.py), not only its bytes. A flash chip
whose name was never synced could vanish while the RoT's journal, synced, says the node was
created with its images: the node would never boot again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import World, make_world

from durability import SyncLog, unsynced_names
from ironroot.platform._flash import Flash


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("durability-world")) as w:
        yield w


def test_a_created_node_keeps_every_name_through_a_power_cut(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SyncLog(monkeypatch)
    world.create(tmp_path)
    assert unsynced_names(tmp_path / "node", log) == []


def test_formatted_flash_chips_are_kept_through_a_power_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SyncLog(monkeypatch)
    Flash.format(tmp_path / "node" / "flash", {"rot": 0, "bmc": 64 * 1024})
    assert unsynced_names(tmp_path / "node", log) == []
    assert all(log.synced(tmp_path / "node" / "flash" / f"{c}.bin") for c in ("rot", "bmc"))
