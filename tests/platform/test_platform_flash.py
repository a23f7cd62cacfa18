"""Reading a device's active image in one open of its chip (``Flash.image``): the same bytes
as the chip read twice, and the same refusals."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import NOW, SLOT, World, make_world, raises_exactly

from ironroot.errors import DeviceStateTampered, NotFound, StorageError
from ironroot.platform import DEVICES, Platform
from ironroot.platform._flash import Chip, Flash
from scratch import in_memory


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with in_memory("platform-flash-world-") as root, make_world(root) as w:
        yield w


@pytest.fixture
def node(world: World, tmp_path: Path) -> Platform:
    return world.node(tmp_path)


def _chip(node: Platform, chip: str) -> Path:
    return node.directory / "flash" / f"{chip}.bin"


def test_an_image_read_in_one_open_is_the_image_the_chip_reads(node: Platform) -> None:
    state = node.state()
    flash = Flash(node.directory / "flash", node.config.slot_sizes)
    for name in DEVICES:
        region = f"slot{state.component(name).active}"
        expected = Chip(_chip(node, name), SLOT).image(region)
        assert expected is not None
        assert flash.image(name, region) == expected  # opened now, for header and image
        assert flash.image(name, region) == expected  # the chip opened before
        assert flash.image(name, "staging") is None  # an empty region
        assert flash.chip(name).regions == Chip(_chip(node, name), SLOT).regions


def test_an_image_read_in_one_open_refuses_what_the_chip_refuses(
    node: Platform, tmp_path: Path
) -> None:
    flash = Flash(node.directory / "flash", node.config.slot_sizes)
    nvme = _chip(node, "nvme")
    shutil.copyfile(nvme, tmp_path / "elsewhere.bin")
    nvme.unlink()
    nvme.symlink_to(tmp_path / "elsewhere.bin")
    raises_exactly(DeviceStateTampered, "flash-symlink", lambda: flash.image("nvme", "slot0"))
    nic = _chip(node, "nic")
    nic.unlink()
    os.mkfifo(nic)
    raises_exactly(DeviceStateTampered, "flash-not-a-file", lambda: flash.image("nic", "slot0"))
    gpu = _chip(node, "gpu")
    os.truncate(gpu, gpu.stat().st_size - 4096)
    raises_exactly(DeviceStateTampered, "flash-header", lambda: flash.image("gpu", "slot0"))
    gpu.unlink()
    raises_exactly(StorageError, "flash-missing", lambda: flash.image("gpu", "slot0"))
    measured = {m.name: m.code for m in node.measure(now=NOW)}
    assert measured == {"nvme": "flash-symlink", "nic": "flash-not-a-file", "gpu": "flash-missing"}


@pytest.mark.parametrize(
    "ident",
    ["", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "0" * 63 + "\n", "\u0663" * 64, "../" + "0" * 61],
)
def test_an_evidence_id_that_is_not_64_lower_case_hex_digits_names_nothing(
    node: Platform, ident: str
) -> None:
    """Checked before any file is named (the id names a file in the node's directory)."""
    with pytest.raises(NotFound) as info:
        node.evidence(ident)
    assert type(info.value) is NotFound
    assert info.value.detail == "no such evidence"


def test_a_named_evidence_file_is_read_and_checked(node: Platform) -> None:
    image = node.state().component("nic").image
    assert image is not None
    statements, _ = node.evidence(image.evidence)
    assert statements
    raises_exactly(NotFound, "not-found", lambda: node.evidence("0" * 64))
