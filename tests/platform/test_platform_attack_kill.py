"""Real power cuts and real concurrency: ``ironroot platform update`` and ``boot`` run as
subprocesses and are killed with SIGKILL, then the node is booted again.

The in-process fault injection (:class:`ironroot.platform.Faults`) cuts the power at the
platform's own write chunks. A SIGKILL also lands in everything around them: the RoT device's
counter and boot-state files (each a three-step state-root write), the evidence store, fuse
programming when a recovery image is replaced. Two ways to aim it, both seeded:

* at the *k*-th file operation that can change state (an ``open`` for writing, a rename, a
  remove, a chmod): a small audit hook in the child kills the process as it reaches it, so the
  trials sweep the whole update deterministically;
* at a random instant after the update reports a step (a plain ``kill -9`` from outside).

After every cut the node must boot with every component running either the old or the new
firmware (never a mix: the slot the journal names holds exactly the image it names), with no
update pending, and every later command must work (no internal error from the CLI).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import NOW, World, make_world

import ironroot
from ironroot.cli import main
from ironroot.platform import COMPONENTS, Platform
from ironroot.platform._flash import Flash
from kill_points import KillServer
from scratch import in_memory

AT = NOW.isoformat().replace("+00:00", "Z")
SEED = 20260601


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with in_memory("platform-kill-world-") as root, make_world(root) as w:
        yield w


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Each test's directory, on tmpfs (``scratch.in_memory``): a SIGKILL leaves the
    page cache as it was, so the cuts prove the same there, without a disk's fsyncs."""
    with in_memory("platform-kill-") as directory:
        yield directory


@pytest.fixture(scope="module")
def files(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v2 of the BMC and the host with their statements, and a PFM (SVN 2) that the host
    update carries."""
    root = tmp_path_factory.mktemp("platform-kill-files")
    for name in ("bmc", "host", "nic", "gpu"):
        release = world.release(name, "2.0")
        (root / f"{name}.bin").write_bytes(release.bundle)
        for i, statement in enumerate(release.statements):
            (root / f"{name}.{i}.ts").write_bytes(statement)
    pfm = world.make_pfm(
        2, {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    )
    (root / "pfm2.bin").write_bytes(pfm)
    (root / "pfm2.ts").write_bytes(world.log_pfm(pfm))
    return root


@pytest.fixture(scope="module")
def killer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillServer]:
    """The killed runs' CLI processes, forked from one that imported the platform commands
    once (kill_points.KillServer); each run is a child of its own."""
    preload = ("ironroot.cli", "ironroot.cli.platform", "ironroot.platform._update")
    with KillServer(tmp_path_factory.mktemp("platform-kill-server"), preload) as server:
        yield server


def _env(**extra: str) -> dict[str, str]:
    src = str(Path(ironroot.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _update_argv(files: Path, node: Path, component: str, *, pfm: bool = False) -> list[str]:
    argv = ["platform", "update", str(files / f"{component}.bin"), "--component", component]
    for statement in sorted(files.glob(f"{component}.*.ts")):
        argv += ["--statement", str(statement)]
    if pfm:
        argv += ["--pfm", str(files / "pfm2.bin"), "--pfm-statement", str(files / "pfm2.ts")]
    return [*argv, "--node", str(node), "--at", AT]


def _boot_argv(node: Path) -> list[str]:
    return ["platform", "boot", "--node", str(node), "--at", AT]


def _run_killed(
    killer: KillServer, argv: list[str], kill_at: int, tally: Path | None = None
) -> int:
    env = {"IRONROOT_TEST_KILL_AT": str(kill_at)}
    if tally is not None:
        env["IRONROOT_TEST_KILL_TALLY"] = str(tally)
    return killer.run([*argv, "--json"], **env).returncode  # never an internal-error


def _operations(killer: KillServer, argv: list[str], tmp: Path) -> int:
    """How many state-changing file operations ``argv`` makes when nothing cuts it."""
    tally = tmp / "tally"
    assert _run_killed(killer, argv, 0, tally) == 0
    return int(tally.read_text())


def _cli(*argv: str) -> dict[str, object]:
    """A later command, in process: it must answer (exit 0) with JSON, never an internal error."""
    from contextlib import redirect_stdout
    from io import StringIO

    out = StringIO()
    with redirect_stdout(out):
        code = main([*argv, "--json"])
    doc = json.loads(out.getvalue())
    assert code == 0, doc
    return doc  # type: ignore[no-any-return]


def _after_power_cut(directory: Path, component: str, old: bytes, new: bytes) -> bytes:
    """Boot after a cut and check the node; return the digest ``component`` runs."""
    node = Platform.open(directory)
    report = node.boot(now=NOW)
    assert report.ok, report.to_json()
    state = node.state()
    assert state.pending is None
    flash = Flash(directory / "flash")
    for name, cs in state.components.items():
        assert cs.image is not None
        assert flash.chip(name).image_digest(f"slot{cs.active}") == cs.image.sha384, name
        assert report.component(name).image == cs.image
    running = state.component(component).image
    assert running is not None
    assert running.sha384 in (old, new)
    again = node.boot(now=NOW)
    assert again.ok
    assert node.state().component(component).image == running
    shown = _cli("platform", "show", "--node", str(directory))
    assert shown["pending"] is None
    _cli("platform", "journal", "--node", str(directory))
    _cli("platform", "events", "--node", str(directory))
    return running.sha384


def _digests(world: World, component: str) -> tuple[bytes, bytes]:
    return world.release(component, "1.0").sha384, world.release(component, "2.0").sha384


@pytest.mark.parametrize(
    ("component", "pfm", "trials"),
    [("bmc", False, 3), ("host", True, 2)],
    ids=["bmc", "host-with-pfm"],
)
def test_sigkill_at_any_file_operation_of_an_update_ends_on_old_or_new(
    world: World,
    files: Path,
    killer: KillServer,
    tmp_path: Path,
    component: str,
    pfm: bool,
    trials: int,
) -> None:
    old, new = _digests(world, component)
    counted = world.node(tmp_path / "count").directory
    total = _operations(killer, _update_argv(files, counted, component, pfm=pfm), tmp_path)
    assert total > 50
    rng = random.Random(f"{SEED}-{component}")
    seen = set()
    for trial, kill_at in enumerate(sorted(rng.sample(range(1, total + 1), trials))):
        directory = world.node(tmp_path / f"trial{trial}").directory
        argv = _update_argv(files, directory, component, pfm=pfm)
        assert _run_killed(killer, argv, kill_at) == -signal.SIGKILL, kill_at
        seen.add(_after_power_cut(directory, component, old, new))
    assert seen <= {old, new}


def test_sigkill_while_boot_replaces_the_recovery_image(
    world: World, killer: KillServer, tmp_path: Path
) -> None:
    """The boot that copies new BMC firmware to recovery also raises the RoT's SVN fuse: a
    cut anywhere in it leaves the BMC running 2.0, and a later boot finishes the job."""
    old, new = _digests(world, "bmc")
    template = world.node(tmp_path / "template")
    release = world.release("bmc", "2.0")
    template.update("bmc", release.bundle, release.statements, now=NOW)
    # Counted on a copy: the counting boot is itself the one that replaces the recovery
    # image, and the trials must boot the template as it is before that boot (counted on the
    # template, they booted a node whose replacement was done, with fewer operations to cut).
    counted = tmp_path / "count" / "node"
    shutil.copytree(template.directory, counted)
    total = _operations(killer, _boot_argv(counted), tmp_path)
    replaced = Platform.open(counted).state().component("bmc").recovery
    before = Platform.open(template.directory).state().component("bmc").recovery
    assert replaced is not None
    assert before is not None
    assert (replaced.sha384, before.sha384) == (new, old)
    rng = random.Random(f"{SEED}-boot")
    for trial, kill_at in enumerate(sorted(rng.sample(range(1, total + 1), 2))):
        directory = tmp_path / f"trial{trial}" / "node"
        shutil.copytree(template.directory, directory)  # the RoT (and its key) is inside
        assert _run_killed(killer, _boot_argv(directory), kill_at) == -signal.SIGKILL
        assert _after_power_cut(directory, "bmc", old, new) == new
        recovery = Platform.open(directory).state().component("bmc").recovery
        assert recovery is not None
        assert recovery.sha384 == new


def test_kill_9_at_a_random_instant_of_an_update_ends_on_old_or_new(
    world: World, files: Path, tmp_path: Path
) -> None:
    """A plain ``kill -9`` from outside, a random few milliseconds after the update reports
    a step (the steps' output is on stderr)."""
    old, new = _digests(world, "nic")
    rng = random.Random(f"{SEED}-instant")
    for trial, step in enumerate(("write", "activate")):
        directory = world.node(tmp_path / f"trial{trial}").directory
        child = subprocess.Popen(
            [sys.executable, "-m", "ironroot", *_update_argv(files, directory, "nic")],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert child.stderr is not None
        for line in child.stderr:
            if line.split()[-1:] == [step.encode()]:
                break
        time.sleep(rng.uniform(0, 0.03))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        child.stderr.close()
        assert child.returncode in (0, -signal.SIGKILL)
        _after_power_cut(directory, "nic", old, new)


def test_concurrent_updates_and_boots_of_one_node_serialize(
    world: World, files: Path, tmp_path: Path
) -> None:
    """Three updates and a boot at once, as four processes: the node's lock takes them one at
    a time, so every one succeeds and the journal holds each update's whole run in turn."""
    directory = world.node(tmp_path).directory
    argvs = [_update_argv(files, directory, c) for c in ("nic", "gpu", "host")]
    argvs.append(_boot_argv(directory))
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "ironroot", *argv, "--json"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for argv in argvs
    ]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, (out, err)
    node = Platform.open(directory)
    state = node.state()
    for name in ("nic", "gpu", "host"):
        image = state.component(name).image
        assert image is not None
        assert image.sha384 == world.release(name, "2.0").sha384
    assert state.pending is None
    steps = [r["step"] for r in node.journal()]
    # each update's records are contiguous: staged … committed, never interleaved
    runs = [i for i, s in enumerate(steps) if s == "staged"]
    assert len(runs) == 3
    for start in runs:
        assert steps[start : start + 5] == [
            "staged",
            "writing",
            "written",
            "activated",
            "committed",
        ]
    assert node.boot(now=NOW).ok
    assert hashlib.sha384(node.bmc_read("nic", 0, 8)).digest()
