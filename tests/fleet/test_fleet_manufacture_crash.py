"""Manufacturing cut short (a crash while a node's folder is being made, before the registry
names it) is undone by the next ``add_nodes``: the half-made folder is removed and the node made
again, registered and bootable; the registry never names a node whose folder is not whole. A
folder under ``nodes/`` that no manufacturing left half-made is still refused (``Conflict``):
what is not the fleet's own is never removed. The cut is a fault injected at a rename or link
that lands a file (``write_atomic``'s last step): what the disk holds then is what a
``kill -9`` there leaves."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fleet.fleet_world import node_class
from tests.platform.node_world import NOW, World, make_world

from ironroot._fileio import DirectoryLock
from ironroot.errors import Conflict, InUse
from ironroot.fleet import Fleet
from ironroot.rot import VendorCA


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("manufacture-crash-world")) as w:
        yield w


@pytest.fixture(scope="module")
def vendor_ca() -> VendorCA:
    return VendorCA.generate(now=NOW - dt.timedelta(days=2))


class _Cut(BaseException):
    """The process died here (nothing may catch it and go on)."""


def _cut_at(monkeypatch: pytest.MonkeyPatch, at: int) -> list[int]:
    seen = [0]

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen[0] += 1
            if seen[0] == at:
                raise _Cut
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(os, "replace", wrap(os.replace))
    monkeypatch.setattr(os, "link", wrap(os.link))
    return seen


def test_a_manufacture_cut_short_is_undone_by_the_next(
    world: World, vendor_ca: VendorCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = Fleet.create(tmp_path / "counted", node_class=node_class(world))
    with monkeypatch.context() as m:
        seen = _cut_at(m, 0)
        counted.add_nodes(1, vendor_ca=vendor_ca, now=NOW)
        landings = seen[0]
    assert landings > 10
    # the first landing, the last before the registry, and a few between
    for at in sorted({1, 2, landings // 3, landings // 2, landings - 1, landings}):
        fleet = Fleet.create(tmp_path / f"cut-{at}", node_class=node_class(world))
        with monkeypatch.context() as m:
            _cut_at(m, at)
            with pytest.raises(_Cut):
                fleet.add_nodes(1, vendor_ca=vendor_ca, now=NOW)
        assert fleet.node_ids() == [], at  # registered only once whole
        assert fleet.add_nodes(1, vendor_ca=vendor_ca, now=NOW) == ["node-0001"], at
        assert fleet.record_of("node-0001").status == "pending"
        assert fleet.node("node-0001").boot(now=NOW).ok, at
        assert not (fleet.directory / "nodes" / "node-0001" / ".manufacturing").exists()


def test_a_folder_no_manufacture_left_is_never_removed(
    world: World, vendor_ca: VendorCA, tmp_path: Path
) -> None:
    fleet = Fleet.create(tmp_path / "fleet", node_class=node_class(world))
    planted = fleet.directory / "nodes" / "node-0001"
    planted.mkdir(parents=True)
    (planted / "notes.txt").write_bytes(b"the operator's")
    with pytest.raises(Conflict) as info:
        fleet.add_nodes(1, vendor_ca=vendor_ca, now=NOW)
    assert type(info.value) is Conflict
    assert info.value.detail == f"{planted} exists but is not in the registry"
    assert (planted / "notes.txt").read_bytes() == b"the operator's"
    assert fleet.node_ids() == []


def test_one_manufacture_at_a_time(world: World, vendor_ca: VendorCA, tmp_path: Path) -> None:
    """The removal of a half-made folder is safe only while no other manufacture is making
    it: a second one at once is refused before it looks."""
    fleet = Fleet.create(tmp_path / "fleet", node_class=node_class(world))
    with DirectoryLock(fleet.directory, ".manufacture.lock"), pytest.raises(InUse) as info:
        fleet.add_nodes(1, vendor_ca=vendor_ca, now=NOW)
    assert type(info.value) is InUse
    assert "manufacture of nodes for the fleet" in info.value.detail
    assert fleet.node_ids() == []
