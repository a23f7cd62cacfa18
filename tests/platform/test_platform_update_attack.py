"""Attacks on the update state machine, boot's recovery and rollback: what a node must refuse
to install or to restore, and the state it must never be left in.

Every "must reject" asserts the exact error class and code (:func:`raises_exactly`).
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import NOW, SLOT, Release, World, make_world, raises_exactly

from ironroot.errors import StorageError
from ironroot.platform import COMPONENTS, Platform, chip_layout
from ironroot.rot import Fuses


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("platform-update-attack")) as w:
        yield w


@pytest.fixture
def node(world: World, tmp_path: Path) -> Platform:
    return world.node(tmp_path)


def _v3(world: World, component: str) -> tuple[Release, bytes, bytes]:
    """Release 3.0 of ``component`` (SVN 5) and a logged PFM (SVN 2) that lists it besides
    every 1.0 and 2.0."""
    bundle = world.bundle(component, svn=5, tag="3.0")
    v3 = Release(component, "3.0", 5, bundle, world.publish(component, bundle))
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    versions[component] = [*versions[component], v3]
    pfm = world.make_pfm(2, versions)
    return v3, pfm, world.log_pfm(pfm)


def _damage_active(node: Platform, component: str) -> None:
    active = node.state().component(component).active
    slot = {r.name: r for r in chip_layout(component, SLOT)}[f"slot{active}"]
    with (node.directory / "flash" / f"{component}.bin").open("r+b") as handle:
        handle.seek(slot.offset + 64 + 200)
        handle.write(b"\xde\xad\xbe\xef")


def test_boot_does_not_restore_a_bmc_recovery_image_below_the_rots_svn_fuse(
    node: Platform, world: World
) -> None:
    """The RoT's SVN fuse may stand above the BMC's recovery image (an operator's
    ``rot fuse svn``). When the active slot fails its check, boot restored that recovery
    image over it though the RoT's boot of the BMC refuses it, and held the BMC — and with it
    every component — in reset, while the known-good previous slot (at the fuse) would run."""
    v2 = world.release("bmc", "2.0")
    node.update("bmc", v2.bundle, v2.statements, now=NOW)
    v3, pfm, pfm_ts = _v3(world, "bmc")
    later = NOW + dt.timedelta(minutes=1)
    assert node.update("bmc", v3.bundle, v3.statements, now=later, pfm=pfm, pfm_statement=pfm_ts)
    bmc = node.state().component("bmc")
    assert bmc.recovery is not None
    assert bmc.recovery.svn == 3  # 1.0: not yet replaced
    assert bmc.fallback
    previous = bmc.slots[bmc.inactive]
    assert previous is not None
    assert previous.sha384 == v2.sha384
    with node.rot() as rot:
        rot.device.program(functools.partial(Fuses.advance_svn, svn=v2.svn))
    _damage_active(node, "bmc")
    report = node.boot(now=later + dt.timedelta(minutes=1))
    assert report.ok, report.to_json()
    booted = report.component("bmc")
    assert booted.recovered
    assert booted.image is not None
    assert booted.image.sha384 == v2.sha384
    # the recovery image was not written over the active slot: it stays the previous one
    assert node.state().component("bmc").recovery == bmc.recovery


# --- links planted in the node's directory ---------------------------------------------------


def test_a_lock_file_linked_out_of_the_node_is_refused_not_created(
    node: Platform, tmp_path: Path
) -> None:
    """The node's ``.lock`` was opened with ``O_CREAT`` through a symbolic link: one planted
    there made the RoT create (and hold open for writing) a file wherever the link pointed."""
    outside = tmp_path / "elsewhere" / "created-by-the-rot"
    outside.parent.mkdir()
    lock = node.directory / ".lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(outside)
    raises_exactly(StorageError, "storage", node.state)
    assert not outside.exists()


def test_an_evidence_folder_linked_out_of_the_node_is_refused_before_staging(
    node: Platform, world: World, tmp_path: Path
) -> None:
    """The RoT kept an update's statements (bytes the sender chose) in ``evidence/`` through a
    symbolic link planted in its place, writing them into whatever folder it named, and
    removed files there when it dropped a refused update's evidence."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    evidence = node.directory / "evidence"
    for item in evidence.iterdir():
        (outside / item.name).write_bytes(item.read_bytes())
    shutil.rmtree(evidence)
    evidence.symlink_to(outside)
    before = sorted(p.name for p in outside.iterdir())
    v2 = world.release("nic", "2.0")
    shown = node.show()
    raises_exactly(
        StorageError, "evidence", lambda: node.update("nic", v2.bundle, v2.statements, now=NOW)
    )
    assert sorted(p.name for p in outside.iterdir()) == before
    assert node.show() == shown
