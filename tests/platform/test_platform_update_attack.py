"""Attacks on the update state machine, boot's recovery and rollback: what a node must refuse
to install or to restore, and the state it must never be left in.

Every "must reject" asserts the exact error class and code (:func:`raises_exactly`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import resource
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import (
    NOW,
    SLOT,
    VENDOR,
    Release,
    World,
    make_world,
    raises_exactly,
)

from ironroot.corim import CORIM_CONTENT_TYPE
from ironroot.cose import create_statement
from ironroot.errors import StorageError, UnknownIssuer, VerificationFailed
from ironroot.firmware import reference_corim, reference_statement
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


# --- device updates ---------------------------------------------------------------------------


def test_a_device_update_whose_logged_corim_names_another_model_is_refused_before_it_is_written(
    node: Platform, world: World
) -> None:
    """A NIC release shipped with a logged CoRIM of the GPU's model (the vendor's, signed and
    logged): before, it was written and activated, the NIC held in reset at its trial boot
    (no reference values it may use) and the update rolled back. The reference values an
    update ships are checked before anything is written."""
    v2 = world.release("nic", "2.0")
    corim = world.trusted.register(
        reference_statement(
            v2.bundle,
            world.statement_key,
            iss=VENDOR,
            sub=world.model("gpu"),
            vendor=VENDOR,
            model=world.model("gpu"),
        )
    ).transparent_statement
    before = node.show()
    statements = (v2.statements[0], corim)
    error = raises_exactly(
        UnknownIssuer,
        "publisher-not-allowed",
        lambda: node.update("nic", v2.bundle, statements, now=NOW),
    )
    assert error.check == "reference-values"
    after = node.show()
    assert after["components"] == before["components"]
    assert after["pending"] is None
    assert not [e for e in node.events() if e.message_id == "UpdateActivated"]
    refused = [e for e in node.events() if e.message_id == "UpdateRefused"]
    assert refused[-1].args == ("nic", "reference-values")
    preflight = node.preflight(now=NOW)
    error = raises_exactly(
        UnknownIssuer,
        "publisher-not-allowed",
        lambda: preflight.check("nic", v2.bundle, statements),
    )
    assert error.check == "reference-values"


def test_a_device_update_with_an_expired_corim_is_refused_before_it_is_written(
    node: Platform, world: World
) -> None:
    """docs/platform.md: "An update whose CoRIM is outside its dates is refused either way".
    A NIC release shipped with its vendor's logged CoRIM whose own ``exp`` has passed (the
    vendor withdrew those reference values by letting them expire) was written, activated,
    measured against the expired values under ``expired_manifest = "report"`` and
    committed."""
    # The log refuses a statement already expired: this one expires a day from now, and the
    # update happens a day after that (a bundle and PFM that outlive it).
    expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=1)
    at = expires + dt.timedelta(days=1)
    bundle = world.bundle("nic", svn=5, tag="3.0", not_after=at + dt.timedelta(days=365))
    manifest = world.publish("nic", bundle, corim=False)[0]
    corim = world.trusted.register(
        create_statement(
            world.statement_key,
            reference_corim(bundle, vendor=VENDOR, model=world.model("nic")).encode(),
            iss=VENDOR,
            sub=world.model("nic"),
            content_type=CORIM_CONTENT_TYPE,
            exp=int(expires.timestamp()),
        )
    ).transparent_statement
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    versions["nic"].append(Release("nic", "3.0", 5, bundle, (manifest, corim)))
    pfm = world.make_pfm(2, versions)
    pfm_ts = world.log_pfm(pfm)
    before = node.show()
    error = raises_exactly(
        VerificationFailed,
        "rim-expired",
        lambda: node.update(
            "nic", bundle, (manifest, corim), now=at, pfm=pfm, pfm_statement=pfm_ts
        ),
    )
    assert error.check == "reference-values"
    after = node.show()
    assert after["components"] == before["components"]
    assert after["pending"] is None


# --- flash that cannot be written ---------------------------------------------------------------


@contextlib.contextmanager
def _files_limited_to(size: int) -> Iterator[None]:
    """Every write of this process past ``size`` bytes of a file fails (``RLIMIT_FSIZE``:
    ``EFBIG``, as a full disk fails a write into a sparse chip's unallocated blocks)."""
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.parametrize("fails", ["staging", "journal"])
def test_flash_that_cannot_be_written_refuses_the_update_typed_and_changes_nothing(
    node: Platform, world: World, fails: str
) -> None:
    """A flash write that failed (a full disk, a file size limit) came out of the update as
    the operating system's ``OSError`` ("File too large"): the CLI called it unavailable
    input, the Redfish service an internal error with a traceback. And the statements kept as
    evidence at ``stage`` stayed on the node for good (nothing journaled names them). The RoT
    now raises ``StorageError`` ``flash-write`` and drops them; the node is as it was and
    takes the update once its flash can be written."""
    staging = {r.name: r for r in chip_layout("bmc", SLOT)}["staging"]
    # within the staging region, or past it (the RoT's journal, far into its chip)
    size = staging.offset + 100 if fails == "staging" else staging.end + 64 * 1024
    v2 = world.release("bmc", "2.0")
    before = node.show()
    evidence = sorted(p.name for p in (node.directory / "evidence").iterdir())
    with _files_limited_to(size):
        raises_exactly(
            StorageError,
            "flash-write",
            lambda: node.update("bmc", v2.bundle, v2.statements, now=NOW),
        )
    assert node.show() == before
    assert sorted(p.name for p in (node.directory / "evidence").iterdir()) == evidence
    result = node.update("bmc", v2.bundle, v2.statements, now=NOW)
    assert result.outcome == "committed"
