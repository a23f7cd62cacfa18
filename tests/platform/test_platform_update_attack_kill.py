"""SIGKILL at file operations of the RoT's recovery paths: an operator's ``platform recover``,
a boot that restores a damaged active slot from recovery, and an update (carrying a PFM) whose
trial boot rolls it back (``tests/kill_points.py``). After every cut the node boots with every
component running an image the journal names, and the BMC runs either image it could have
ended on — never neither. Three seeded cuts each, to stay fast; ``SWEEP=N`` in the
environment takes N (``SWEEP=1000``: every operation; each path was swept so once by hand).
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import NOW, SLOT, Release, World, make_world

from ironroot.platform import COMPONENTS, Platform, chip_layout
from ironroot.platform._flash import Flash
from kill_points import KillServer
from scratch import in_memory

AT = NOW.isoformat().replace("+00:00", "Z")
SEED = 20261207
# What the platform commands import, once for a test's runs (kill_points.KillServer).
PRELOAD = (
    "ironroot.cli",
    "ironroot.cli.platform",
    "ironroot.platform._update",
    "ironroot.platform._boot",
)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with in_memory("platform-recover-kill-world-") as root, make_world(root) as w:
        yield w


@pytest.fixture
def scratch() -> Iterator[Path]:
    with in_memory("platform-recover-kill-") as directory:
        yield directory


def _count(killer: KillServer, argv: list[str], scratch: Path) -> int:
    tally = scratch / "tally"
    done = killer.run(argv, IRONROOT_TEST_KILL_AT="0", IRONROOT_TEST_KILL_TALLY=str(tally))
    assert done.returncode in (0, 1), done  # 1: an update rolled back
    return int(tally.read_text())


def _damage_active(node: Platform, component: str) -> None:
    active = node.state().component(component).active
    slot = {r.name: r for r in chip_layout(component, SLOT)}[f"slot{active}"]
    with (node.directory / "flash" / f"{component}.bin").open("r+b") as handle:
        handle.seek(slot.offset + 64 + 200)
        handle.write(b"\xde\xad\xbe\xef")


def _boots_on(directory: Path, allowed: set[bytes]) -> bytes:
    node = Platform.open(directory)
    report = node.boot(now=NOW)
    assert report.ok, report.to_json()
    state = node.state()
    assert state.pending is None
    flash = Flash(directory / "flash")
    for name, cs in state.components.items():
        assert cs.image is not None
        assert flash.chip(name).image_digest(f"slot{cs.active}") == cs.image.sha384, name
    bmc = state.component("bmc").image
    assert bmc is not None
    assert bmc.sha384 in allowed
    assert node.boot(now=NOW).ok
    return bmc.sha384


def _v3(world: World, component: str) -> tuple[Release, bytes, bytes]:
    """Release 3.0 of ``component`` (SVN 5) and a logged PFM (SVN 2) listing it besides every
    1.0 and 2.0."""
    bundle = world.bundle(component, svn=5, tag="3.0")
    v3 = Release(component, "3.0", 5, bundle, world.publish(component, bundle))
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    versions[component] = [*versions[component], v3]
    pfm = world.make_pfm(2, versions)
    return v3, pfm, world.log_pfm(pfm)


def _node_on_v2(world: World, directory: Path) -> Platform:
    node = world.node(directory)
    v2 = world.release("bmc", "2.0")
    node.update("bmc", v2.bundle, v2.statements, now=NOW)
    return node


@pytest.mark.parametrize("what", ["recover", "boot-restores", "rollback"])
def test_sigkill_at_any_file_operation_of_a_recovery_boots_an_image(
    world: World, scratch: Path, what: str
) -> None:
    v1, v2 = world.release("bmc", "1.0").sha384, world.release("bmc", "2.0").sha384
    v3, pfm, pfm_ts = _v3(world, "bmc")
    files = {"bmc-3.bin": v3.bundle, "pfm.bin": pfm, "pfm.ts": pfm_ts}
    files |= {f"bmc-3.{i}.ts": s for i, s in enumerate(v3.statements)}
    for file, data in files.items():
        (scratch / file).write_bytes(data)

    def prepared(name: str) -> tuple[Path, list[str]]:
        node = _node_on_v2(world, scratch / name)
        if what == "recover":
            argv = ["platform", "recover", "bmc"]
        elif what == "rollback":
            # 3.0 fails its health check: the trial boot rolls it back to 2.0
            argv = ["platform", "update", str(scratch / "bmc-3.bin"), "--component", "bmc"]
            for i in range(len(v3.statements)):
                argv += ["--statement", str(scratch / f"bmc-3.{i}.ts")]
            argv += ["--pfm", str(scratch / "pfm.bin"), "--pfm-statement", str(scratch / "pfm.ts")]
            argv += ["--inject", "fail-health"]
        else:
            _damage_active(node, "bmc")
            argv = ["platform", "boot"]
        return node.directory, [*argv, "--node", str(node.directory), "--at", AT, "--json"]

    with KillServer(scratch, PRELOAD) as killer:
        directory, argv = prepared("count")
        total = _count(killer, argv, scratch)
        assert total > 5
        rng = random.Random(f"{SEED}-{what}")
        for trial, kill_at in enumerate(
            sorted(rng.sample(range(1, total + 1), min(total, int(os.environ.get("SWEEP", "3")))))
        ):
            directory, argv = prepared(f"trial{trial}")
            done = killer.run(argv, IRONROOT_TEST_KILL_AT=str(kill_at))
            # not killed: the run made fewer operations than the counting one (a bytecode cache)
            assert done.returncode in (0, 1, -signal.SIGKILL), (kill_at, done)
            # recover: 2.0, or 1.0 once restored; rollback: 2.0, or 3.0 when the cut came after
            # its activation and before the rollback (the next boot finds it healthy)
            allowed = {"recover": {v1, v2}, "boot-restores": {v1}, "rollback": {v2, v3.sha384}}
            _boots_on(directory, allowed[what])
