"""Two creations of a fleet in one directory at once (two ``ironroot fleet init``): the fleet
ends with one node class, whole (its ``class.json`` and the images and statements it names
from one creation), and the other creation is ``InUse`` while the first writes, or
``Conflict`` once it is done. Never a class file of one written over the other's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.fleet_world import node_class
from tests.platform.node_world import World, make_world

from ironroot.errors import Conflict, InUse
from ironroot.fleet import Fleet, NodeClass
from pause_points import PausedProcess

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("fleet-create-race-world")) as w:
        yield w


def _same(a: NodeClass, b: NodeClass) -> bool:
    return (a.name, a.pfm, a.images, a.statements) == (b.name, b.pfm, b.images, b.statements)


def test_a_creation_while_another_writes_the_class_is_in_use_and_the_class_is_whole(
    world: World, tmp_path: Path
) -> None:
    first, second = node_class(world, "1.0"), node_class(world, "2.0")  # one name, two classes
    assert not _same(first, second)
    second.save(tmp_path / "second")
    directory = tmp_path / "fleet"
    with PausedProcess(
        tmp_path / "pause",
        [str(directory), str(tmp_path / "second")],
        before="class.json",
        script=HERE / "create_fleet.py",
    ) as writing:
        # It has written the class's images and not yet its class.json.
        with pytest.raises(InUse, match="is in use by another process") as caught:
            Fleet.create(directory, node_class=first)
        assert caught.value.code == "in-use"
        done = writing.resume()
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    with pytest.raises(Conflict, match="already holds a fleet"):
        Fleet.create(directory, node_class=first)
    assert _same(Fleet.open(directory).node_class(second.name), second)
