"""Boot measures the PFM it enforces into the RoT (PCR 2's first event, ``pfm-digest``), so the
quote names it; a PFM update is measured by the boot that activates it (and a rolled-back one
is not)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import NOW, World, make_world

from ironroot.platform import COMPONENTS, Faults, Platform, PowerLost
from ironroot.rot import Device, measured_pfm
from scratch import in_memory


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with in_memory("platform-pfm-measured-") as root, make_world(root) as w:
        yield w


def _measured(node: Platform) -> bytes | None:
    state = Device(node.config.rot).boot_state
    assert state is not None
    return measured_pfm(state.log)


def _pfm2(world: World) -> tuple[bytes, bytes]:
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    pfm = world.make_pfm(2, versions)
    return pfm, world.log_pfm(pfm)


def test_boot_measures_the_active_pfm_first(world: World, tmp_path: Path) -> None:
    node = world.node(tmp_path)
    assert node.boot(now=NOW).ok
    state = Device(node.config.rot).boot_state
    assert state is not None
    dpe = [e.name for e in state.log if e.pcr == 2]
    assert dpe == ["pfm-digest", *(f"dpe:{c}" for c in COMPONENTS[1:])]
    assert _measured(node) == hashlib.sha384(world.pfm).digest()
    assert node.state().pfm.image.sha384 == hashlib.sha384(world.pfm).digest()  # type: ignore[union-attr]


def test_a_pfm_update_is_measured_by_the_boot_that_activates_it(
    world: World, tmp_path: Path
) -> None:
    """Power lost after the activation record, before the reboot: the journal already names
    PFM 2, the RoT still measured PFM 1 (what the node enforces until it boots) — until the
    next boot, which measures PFM 2."""
    node = world.node(tmp_path)
    pfm, statement = _pfm2(world)
    host = world.release("host", "2.0")
    with pytest.raises(PowerLost):
        node.update(
            "host",
            host.bundle,
            host.statements,
            now=NOW,
            pfm=pfm,
            pfm_statement=statement,
            faults=Faults("reboot"),
        )
    assert node.state().pfm.image.sha384 == hashlib.sha384(pfm).digest()  # type: ignore[union-attr]
    assert _measured(node) == hashlib.sha384(world.pfm).digest()
    assert node.boot(now=NOW).ok
    assert _measured(node) == hashlib.sha384(pfm).digest()


def test_a_rolled_back_pfm_update_leaves_the_old_pfm_measured(world: World, tmp_path: Path) -> None:
    node = world.node(tmp_path)
    pfm, statement = _pfm2(world)
    host = world.release("host", "2.0")
    result = node.update(
        "host",
        host.bundle,
        host.statements,
        now=NOW,
        pfm=pfm,
        pfm_statement=statement,
        faults=Faults("fail-health"),
    )
    assert result.outcome == "rolled-back"
    assert node.state().pfm.image.sha384 == hashlib.sha384(world.pfm).digest()  # type: ignore[union-attr]
    assert _measured(node) == hashlib.sha384(world.pfm).digest()
