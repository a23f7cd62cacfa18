"""``platform init`` cut short by a real ``kill -9`` (after the node's configuration,
``platform.json``, landed, before the RoT journaled the node's creation: a child process
running ``Platform.create`` under the kill hook of ``kill_points``) is made again by the next:
its RoT protects no node yet (its platform counter is 0), so what the first run left is
removed. A node whose creation the RoT journaled is never made again (``Conflict``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.fleet_world import node_class
from tests.platform.node_world import NOW, World, make_world

import ironroot
from ironroot.errors import Conflict
from ironroot.fleet import NodeClass
from ironroot.platform import Platform
from kill_points import KILLER
from scratch import in_memory

_CREATE = """
import datetime as dt
import sys
from pathlib import Path
from ironroot.fleet import NodeClass
from ironroot.platform import Platform
k = NodeClass.load(Path(sys.argv[1]))
node = Path(sys.argv[2])
Platform.create(
    node, rot=node / "rot", trust=k.trust, pfm=k.pfm, pfm_statement=k.pfm_statement,
    images=k.images, statements=k.statements, devices=k.devices,
    now=dt.datetime.fromisoformat(sys.argv[3]), slot_sizes=k.slot_sizes,
)
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("create-crash-world")) as w:
        yield w


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("create-kill-") as directory:
        yield directory


def _create(klass: NodeClass, node: Path) -> Platform:
    return Platform.create(
        node,
        rot=node / "rot",
        trust=klass.trust,
        pfm=klass.pfm,
        pfm_statement=klass.pfm_statement,
        images=klass.images,
        statements=klass.statements,
        devices=klass.devices,
        now=NOW,
        slot_sizes=klass.slot_sizes,
    )


def test_a_creation_killed_before_the_rot_journaled_it_is_made_again(
    world: World, tmp_path: Path
) -> None:
    killer, child = tmp_path / "killer.py", tmp_path / "child.py"
    killer.write_text(KILLER)
    child.write_text(_CREATE)  # run under the kill hook (IRONROOT_TEST_KILL_SCRIPT)
    klass = node_class(world)
    klass.save(tmp_path / "class")
    src = str(Path(ironroot.__file__).resolve().parent.parent)
    node = tmp_path / "node"
    world.rot_device(node / "rot")
    # killed once the first update statements landed in evidence/: after platform.json and the
    # flash, before the RoT journaled anything
    done = subprocess.run(
        [sys.executable, str(killer), str(tmp_path / "class"), str(node), NOW.isoformat()],
        env={
            "PYTHONPATH": src,
            "IRONROOT_TEST_KILL_SCRIPT": str(child),
            "IRONROOT_TEST_KILL_AFTER_REPLACING": ".cbor",
        },
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == -9, done
    assert (node / "platform.json").is_file()
    assert (node / "flash" / "rot.bin").is_file()
    platform = _create(klass, node)  # the same RoT and class as the first run
    assert platform.boot(now=NOW).ok
    with pytest.raises(Conflict) as info:  # created: never made again
        _create(klass, node)
    assert type(info.value) is Conflict
    assert info.value.detail == f"{node} already holds a platform"
