"""The node: creation, boot-time detection and recovery, the update state machine, protected
flash, and power loss at every step of an update.

Every "must reject" asserts the exact error class and code. Each fault-injection test cuts the
power at one step (mid-write where the step writes), opens the node again as after a power
cycle, boots it, and checks that it runs either the old or the new firmware — never a mix,
never nothing — and that the journal says which.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import NOW, SLOT, World, make_world, raises_exactly, rw_region

from ironroot.errors import (
    Conflict,
    DeviceStateTampered,
    FirmwareRejected,
    FlashProtected,
    IronrootError,
    MalformedFirmware,
    PolicyRejected,
    StoreRolledBack,
    SvnRollback,
    UnknownIssuer,
)
from ironroot.platform import (
    COMPONENTS,
    STEPS,
    Faults,
    Platform,
    PowerLost,
    chip_layout,
)
from ironroot.rot import Device, Fuses


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("platform-world")) as w:
        yield w


@pytest.fixture
def node(world: World, tmp_path: Path) -> Platform:
    return world.node(tmp_path)


def _active(node: Platform, component: str) -> bytes:
    image = node.state().component(component).image
    assert image is not None
    return image.sha384


def _flash_digest(node: Platform, component: str) -> bytes | None:
    from ironroot.platform._flash import Flash

    state = node.state().component(component)
    return Flash(node.directory / "flash").chip(component).image_digest(f"slot{state.active}")


def _fuse_svn(node: Platform) -> int:
    from ironroot.rot import Device

    return Device(node.config.rot).fuses.svn


# --- creation and boot ----------------------------------------------------------------------


def test_a_created_node_boots_every_component(node: Platform, world: World) -> None:
    report = node.boot(now=NOW)
    assert report.ok, report.to_json()
    for name in COMPONENTS:
        assert report.component(name).running
        assert _active(node, name) == world.release(name, "1.0").sha384
    assert report.pcrs
    assert any(report.pcrs)
    inventory = {item.id: item for item in node.inventory()}
    assert inventory["bmc-active"].version == "1.0"
    assert inventory["bmc-recovery"].sha384 == world.release("bmc", "1.0").sha384
    assert [e.message_id for e in node.events()][-1] == "NodeBooted"


def test_a_node_is_not_created_with_a_bmc_below_the_rots_svn_fuse(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The RoT's boot refuses a BMC below its SVN fuse: such a factory image (slot and
    recovery) was accepted and the node came up with its BMC held in reset for good."""
    provision = world.rot_device

    def fused_at_v2(directory: Path) -> Device:
        device = provision(directory)
        device.program(functools.partial(Fuses.advance_svn, svn=world.release("bmc", "2.0").svn))
        return device

    monkeypatch.setattr(world, "rot_device", fused_at_v2)
    error = raises_exactly(SvnRollback, "svn-rollback", lambda: world.create(tmp_path))
    assert error.check == "svn"
    assert not (tmp_path / "node" / "platform.json").exists()


def test_an_update_is_committed_and_changes_the_measured_boot(node: Platform, world: World) -> None:
    before = node.boot(now=NOW)
    v2 = world.release("bmc", "2.0")
    steps: list[str] = []
    result = node.update(
        "bmc", v2.bundle, v2.statements, now=NOW, progress=lambda step, _pct: steps.append(step)
    )
    assert result.outcome == "committed"
    assert steps == ["receive", "stage", "verify", "write", "verify-write", "activate", "commit"]
    assert _active(node, "bmc") == v2.sha384 == _flash_digest(node, "bmc")
    assert result.boot.pcrs != before.pcrs
    assert result.boot.component("bmc").identity != before.component("bmc").identity
    roles = {item.id: item.version for item in node.inventory()}
    assert roles["bmc-active"] == "2.0"
    assert roles["bmc-previous"] == "1.0"
    assert roles["bmc-recovery"] == "1.0"
    steps_logged = [r["step"] for r in node.journal()]
    assert steps_logged[-6:] == ["staged", "writing", "written", "activated", "committed", "booted"]


def test_recovery_is_replaced_after_n_healthy_boots(node: Platform, world: World) -> None:
    v2 = world.release("host", "2.0")
    node.update("host", v2.bundle, v2.statements, now=NOW)  # boot 1 (healthy_boots = 2)
    assert node.state().component("host").recovery.sha384 == world.release("host", "1.0").sha384  # type: ignore[union-attr]
    report = node.boot(now=NOW)
    assert report.recovery_replaced == ("host",)
    state = node.state().component("host")
    assert state.recovery is not None
    assert state.recovery.sha384 == v2.sha384
    assert state.min_svn == v2.svn


def test_an_unlogged_update_is_refused_and_nothing_changes(node: Platform, world: World) -> None:
    v2 = world.release("bmc", "2.0")
    before = node.show()
    error = raises_exactly(
        PolicyRejected, "no-receipt", lambda: node.update("bmc", v2.bundle, (), now=NOW)
    )
    assert error.check == "receipt"
    after = node.show()
    assert after["components"] == before["components"]
    assert after["pending"] is None
    refused = [e for e in node.events() if e.message_id == "UpdateRefused"]
    assert refused
    assert "receipt" in refused[-1].args


def test_a_statement_from_a_disallowed_issuer_is_refused(node: Platform, world: World) -> None:
    bundle = world.release("bmc", "2.0").bundle
    statements = world.publish("bmc", bundle, iss="https://someone-else.example")
    error = raises_exactly(
        UnknownIssuer, "issuer-not-allowed", lambda: node.update("bmc", bundle, statements, now=NOW)
    )
    assert error.check == "issuer"


def test_a_disabled_anti_rollback_fuse_does_not_let_an_update_below_the_node_floor(
    node: Platform, world: World
) -> None:
    """The component's SVN floor is the node's (its journal), which boot enforces whatever the
    RoT's fuses say: with the anti-rollback fuse set, an update below it was written and
    activated, then refused by boot's flash check and restored from recovery. It is refused
    before a byte is written, as a rollback."""
    v2, v1 = world.release("host", "2.0"), world.release("host", "1.0")
    node.update("host", v2.bundle, v2.statements, now=NOW)
    for minute in (1, 2):
        node.boot(now=NOW + dt.timedelta(minutes=minute))
    assert node.state().component("host").min_svn == v2.svn
    with node.rot() as rot:
        rot.device.program(Fuses.disable_anti_rollback)
    before = node.show()
    error = raises_exactly(
        SvnRollback,
        "svn-rollback",
        lambda: node.update("host", v1.bundle, v1.statements, now=NOW + dt.timedelta(minutes=3)),
    )
    assert error.check == "svn"
    after = node.show()
    assert after["components"] == before["components"]
    assert after["pending"] is None
    assert not [
        e
        for e in node.events()
        if e.message_id in ("UpdateActivated", "FlashCheckFailed") and e.at > "2026-06-01T12:02:00Z"
    ]


def test_a_bmc_update_below_the_rots_svn_fuse_is_refused_before_it_is_written(
    node: Platform, world: World
) -> None:
    """The RoT's SVN fuse can stand above the BMC's floor in the journal (a power cut between
    raising it and journaling the new recovery image; an operator's ``rot fuse svn``). The
    RoT's boot refuses a BMC below the fuse, so the update must too: before, the image was
    written and activated, then failed its boot and was rolled back."""
    v2, v1 = world.release("bmc", "2.0"), world.release("bmc", "1.0")
    node.update("bmc", v2.bundle, v2.statements, now=NOW)
    assert node.state().component("bmc").min_svn == v1.svn
    with node.rot() as rot:
        rot.device.program(functools.partial(Fuses.advance_svn, svn=v2.svn))
    before = node.show()
    error = raises_exactly(
        SvnRollback,
        "svn-rollback",
        lambda: node.update("bmc", v1.bundle, v1.statements, now=NOW + dt.timedelta(minutes=1)),
    )
    assert error.check == "svn"
    after = node.show()
    assert after["components"] == before["components"]
    assert after["pending"] is None
    assert not [e for e in node.events() if e.message_id == "UpdateRolledBack"]
    preflight = node.preflight(now=NOW + dt.timedelta(minutes=1))
    error = raises_exactly(
        SvnRollback, "svn-rollback", lambda: preflight.check("bmc", v1.bundle, v1.statements)
    )
    assert error.check == "svn"


def test_recover_refuses_a_bmc_recovery_image_below_the_rots_svn_fuse(
    node: Platform, world: World
) -> None:
    """With the RoT's SVN fuse above the BMC's recovery image (raised by an operator, or by a
    boot cut off before it journaled the new recovery image), restoring it would leave the
    node a BMC the RoT never boots: the operator's recovery was done, and the next boot held
    the BMC in reset."""
    v2 = world.release("bmc", "2.0")
    node.update("bmc", v2.bundle, v2.statements, now=NOW)
    with node.rot() as rot:
        rot.device.program(functools.partial(Fuses.advance_svn, svn=v2.svn))
    before = node.show()
    raises_exactly(SvnRollback, "svn-rollback", lambda: node.recover("bmc", now=NOW))
    assert node.show()["components"] == before["components"]
    assert node.boot(now=NOW).component("bmc").running


def test_a_second_update_waits_for_the_first(node: Platform, world: World) -> None:
    v2 = world.release("nic", "2.0")
    with pytest.raises(PowerLost):
        node.update("nic", v2.bundle, v2.statements, now=NOW, faults=Faults("reboot"))
    nvme = world.release("nvme", "2.0")
    raises_exactly(
        Conflict,
        "update-in-progress",
        lambda: node.update("nvme", nvme.bundle, nvme.statements, now=NOW),
    )


# --- protected flash ------------------------------------------------------------------------


def test_the_bmc_cannot_write_protected_flash(node: Platform) -> None:
    slot0 = {r.name: r for r in chip_layout("bmc", SLOT)}["slot0"]
    path = node.directory / "flash" / "bmc.bin"
    before = path.read_bytes()
    for chip, offset in (
        ("bmc", slot0.offset),
        ("bmc", 0),
        ("host", slot0.offset + 100),
        ("rot", 4096),
        ("bmc", rw_region("bmc")[0] - 1),
    ):
        raises_exactly(
            FlashProtected,
            "flash-protected",
            lambda c=chip, o=offset: node.bmc_write(c, o, b"\xff" * 16, now=NOW),
        )
    assert path.read_bytes() == before
    blocked = [e for e in node.events() if e.message_id == "FlashWriteBlocked"]
    assert len(blocked) == 5


def test_the_bmc_writes_its_read_write_region(node: Platform) -> None:
    offset, _ = rw_region("bmc")
    node.bmc_write("bmc", offset + 16, b"bmc settings", now=NOW)
    assert node.bmc_read("bmc", offset + 16, 12) == b"bmc settings"
    assert node.boot(now=NOW).ok


# --- detection and recovery -----------------------------------------------------------------


@pytest.mark.parametrize("damage", ["corrupt", "erase"])
@pytest.mark.parametrize("component", ["bmc", "host", "gpu"])
def test_a_damaged_active_region_is_restored_from_recovery(
    node: Platform, world: World, component: str, damage: str
) -> None:
    slot = {r.name: r for r in chip_layout(component, SLOT)}[
        f"slot{node.state().component(component).active}"
    ]
    path = node.directory / "flash" / f"{component}.bin"
    with path.open("r+b") as handle:
        if damage == "corrupt":
            handle.seek(slot.offset + 64 + 200)
            handle.write(b"\x00\x01\x02\x03")
        else:
            handle.seek(slot.offset)
            handle.write(bytes(slot.size))
    report = node.boot(now=NOW)
    assert report.ok
    assert report.component(component).recovered
    assert _flash_digest(node, component) == world.release(component, "1.0").sha384
    ids = [e.message_id for e in node.events()]
    assert "FlashCheckFailed" in ids
    assert "FlashRecovered" in ids


def test_a_corrupted_pfm_is_restored_from_its_recovery_copy(node: Platform) -> None:
    region = {r.name: r for r in chip_layout("rot", 0)}["pfm0"]
    with (node.directory / "flash" / "rot.bin").open("r+b") as handle:
        handle.seek(region.offset + 300)
        handle.write(b"\xaa" * 8)
    assert node.boot(now=NOW).ok
    assert "PfmRecovered" in [e.message_id for e in node.events()]


def test_a_put_back_copy_of_the_rot_flash_is_refused(node: Platform, world: World) -> None:
    rot_bin = node.directory / "flash" / "rot.bin"
    old = rot_bin.read_bytes()
    v2 = world.release("host", "2.0")
    node.update("host", v2.bundle, v2.statements, now=NOW)
    rot_bin.write_bytes(old)
    raises_exactly(StoreRolledBack, "journal-rolled-back", lambda: node.boot(now=NOW))


def test_a_changed_configuration_is_refused(node: Platform) -> None:
    path = node.directory / "platform.json"
    path.write_text(path.read_text().replace('"healthy_boots": 2', '"healthy_boots": 5'))
    raises_exactly(
        DeviceStateTampered, "config-changed", lambda: Platform.open(node.directory).boot(now=NOW)
    )


# --- power loss at every step ----------------------------------------------------------------


@pytest.mark.parametrize("step", STEPS)
def test_power_loss_at_each_step_ends_on_old_or_new(
    node: Platform, world: World, step: str
) -> None:
    old, new = world.release("bmc", "1.0"), world.release("bmc", "2.0")
    with pytest.raises(PowerLost) as lost:
        node.update("bmc", new.bundle, new.statements, now=NOW, faults=Faults(step))
    assert lost.value.step == step
    again = Platform.open(node.directory)
    report = again.boot(now=NOW)
    assert report.ok, report.to_json()
    running = _flash_digest(again, "bmc")
    expected = old.sha384 if STEPS.index(step) <= STEPS.index("activate") else new.sha384
    assert running == _active(again, "bmc") == expected
    outcome = [r["step"] for r in again.journal()]
    if expected == old.sha384:
        assert "abandoned" in outcome or "committed" not in outcome
    else:
        assert "committed" in outcome
    assert again.state().pending is None


def test_a_failed_health_check_rolls_back(node: Platform, world: World) -> None:
    old, new = world.release("gpu", "1.0"), world.release("gpu", "2.0")
    result = node.update("gpu", new.bundle, new.statements, now=NOW, faults=Faults("fail-health"))
    assert result.outcome == "rolled-back"
    assert _active(node, "gpu") == old.sha384 == _flash_digest(node, "gpu")
    assert result.boot.component("gpu").running
    assert "UpdateRolledBack" in [e.message_id for e in node.events()]


def test_a_bmc_update_that_fails_its_health_check_rolls_back_and_the_node_boots(
    node: Platform, world: World
) -> None:
    """The RoT's SVN fuse follows the BMC's floor, never an image on trial. Before, the first
    boot of BMC 2.0 (SVN 4) burnt the fuse to 4; the failed health check rolled back to 1.0
    (SVN 3), which the RoT then refused (SvnRollback) at this boot and every later one: the
    BMC, and with it every component, held in reset for ever by a fuse that cannot go back."""
    old, new = world.release("bmc", "1.0"), world.release("bmc", "2.0")
    fuse_before = _fuse_svn(node)
    assert fuse_before == old.svn
    result = node.update("bmc", new.bundle, new.statements, now=NOW, faults=Faults("fail-health"))
    assert result.outcome == "rolled-back"
    assert result.boot.ok, result.boot.to_json()
    assert _active(node, "bmc") == old.sha384 == _flash_digest(node, "bmc")
    assert _fuse_svn(node) == fuse_before
    assert Platform.open(node.directory).boot(now=NOW).ok
    # a committed update raises the fuse once it has replaced the recovery image
    node.update("bmc", new.bundle, new.statements, now=NOW)
    assert _fuse_svn(node) == fuse_before
    assert node.boot(now=NOW).recovery_replaced == ("bmc",)
    assert _fuse_svn(node) == new.svn


def test_power_loss_at_random_writes_never_leaves_a_mix(world: World, tmp_path: Path) -> None:
    rng = random.Random(11)
    old, new = world.release("nvme", "1.0"), world.release("nvme", "2.0")
    clean = world.node(tmp_path / "count")
    counter = Faults()
    clean.update("nvme", new.bundle, new.statements, now=NOW, faults=counter)
    total = counter.writes
    assert total > 10
    for trial, cut in enumerate(sorted(rng.sample(range(1, total + 1), 12))):
        node = world.node(tmp_path / f"trial{trial}")
        with pytest.raises(PowerLost):
            node.update(
                "nvme", new.bundle, new.statements, now=NOW, faults=Faults(after_writes=cut)
            )
        node = Platform.open(node.directory)
        report = node.boot(now=NOW)
        assert report.ok, (cut, report.to_json())
        running = _flash_digest(node, "nvme")
        assert running == _active(node, "nvme")
        assert running in (old.sha384, new.sha384), cut
        assert hashlib.sha384(node.bmc_read("nvme", 0, 8)).digest()


# --- devices over SPDM ----------------------------------------------------------------------


def test_a_device_update_whose_measurements_do_not_match_its_logged_corim_rolls_back(
    node: Platform, world: World
) -> None:
    """The manifest of v2 is logged, but the only CoRIM given is v1's: the update verifies,
    the NIC boots v2, its signed SPDM measurements match no logged reference value, it is held
    in reset, and the update rolls back to v1."""
    v1, v2 = world.release("nic", "1.0"), world.release("nic", "2.0")
    statements = (v2.statements[0], v1.statements[1])
    result = node.update("nic", v2.bundle, statements, now=NOW)
    assert result.outcome == "rolled-back"
    assert _active(node, "nic") == v1.sha384
    assert result.boot.component("nic").running
    held = [e for e in node.events() if e.message_id == "ComponentHeldInReset"]
    assert held
    assert "measurement-mismatch" in held[-1].args


def test_a_device_with_another_identity_is_held_in_reset(node: Platform) -> None:
    devices = node.directory / "devices"
    for suffix in (".key.pem", ".chain.pem"):
        (devices / f"gpu{suffix}").write_bytes((devices / f"nic{suffix}").read_bytes())
    report = node.boot(now=NOW)
    assert not report.ok
    gpu = report.component("gpu")
    assert not gpu.running
    assert gpu.code == "chain-not-trusted"
    assert report.component("nic").running
    measured = {m.name: m for m in node.measure(now=NOW)}
    assert not measured["gpu"].ok
    assert measured["gpu"].code == "chain-not-trusted"
    assert measured["nvme"].ok


def test_a_flood_of_blocked_writes_cannot_push_older_events_out(node: Platform) -> None:
    from ironroot.platform._journal import COALESCE_AFTER

    slot0 = {r.name: r for r in chip_layout("bmc", SLOT)}["slot0"]
    node.boot(now=NOW)
    before = [e for e in node.events() if e.message_id != "FlashWriteBlocked"]
    for _ in range(40):
        with pytest.raises(FlashProtected):
            node.bmc_write("bmc", slot0.offset, b"\xff", now=NOW)
    events = node.events()
    blocked = [e for e in events if e.message_id == "FlashWriteBlocked"]
    assert len(blocked) == COALESCE_AFTER
    assert blocked[-1].args[-1] == f"repeats={40 - COALESCE_AFTER}"
    assert [e for e in events if e.message_id != "FlashWriteBlocked"] == before


@pytest.mark.parametrize(
    ("image", "error", "code", "check"),
    [
        (b"not a bundle", MalformedFirmware, "malformed-firmware", "parse"),
        ("bmc", FirmwareRejected, "not-in-pfm", "pfm"),
    ],
)
def test_a_bad_factory_image_is_refused_for_its_own_component(
    world: World,
    tmp_path: Path,
    image: bytes | str,
    error: type[IronrootError],
    code: str,
    check: str,
) -> None:
    """A bad host image at creation is refused by the host's own checks. Before, the BMC was
    verified first with every other image passed as "active", so any bad image came out as
    the BMC's PolicyRejected pfm-drops-active-image ("the new PFM no longer allows the active
    host image"), naming neither the fault nor a node that had anything active."""
    images = {c: world.release(c, "1.0").bundle for c in COMPONENTS}
    images["host"] = images[image] if isinstance(image, str) else image
    with pytest.raises(error) as info:
        world.create(tmp_path, images=images)
    assert type(info.value) is error
    assert (info.value.code, info.value.check) == (code, check)
    assert not (tmp_path / "node" / "platform.json").exists()


def test_a_remembered_factory_verification_is_for_the_exact_inputs(
    world: World, tmp_path: Path
) -> None:
    """``Platform.create(verified=…)`` (what ``Fleet.add_nodes`` keeps for one call) reuses a
    verification only for the same images, statements, PFM, fuse values and time: a changed
    image is verified and refused exactly as without it."""
    cache: dict[bytes, object] = {}
    world.create(tmp_path / "a", verified=cache)
    assert len(cache) == len(COMPONENTS)
    world.create(tmp_path / "b", verified=cache)
    assert len(cache) == len(COMPONENTS)
    images = {c: world.release(c, "1.0").bundle for c in COMPONENTS}
    bad = bytearray(images["bmc"])
    bad[-1] ^= 0x01
    images["bmc"] = bytes(bad)
    with pytest.raises(IronrootError) as plain:
        world.create(tmp_path / "c", images=images)
    with pytest.raises(IronrootError) as cached:
        world.create(tmp_path / "d", images=images, verified=cache)
    assert type(cached.value) is type(plain.value)
    assert cached.value.code == plain.value.code


def test_a_remembered_trust_is_for_the_exact_configuration(world: World) -> None:
    from ironroot.errors import ConfigError
    from ironroot.platform._node import _trust

    doc = world.trust().to_json()
    first = _trust(doc)
    assert _trust(dict(doc)) is first  # the same configuration, parsed once
    changed = _trust({**doc, "healthy_boots": doc.get("healthy_boots", 3) + 1})
    assert changed.healthy_boots == first.healthy_boots + 1
    for bad in ({**doc, "format": 99}, {**doc, "service_keys": ["not base64"]}, [doc]):
        for _ in range(2):  # a failure is never remembered
            with pytest.raises(ConfigError):
                _trust(bad)


def test_a_reopened_node_shares_its_parsed_configuration_read_only(node: Platform) -> None:
    first, again = Platform.open(node.directory), Platform.open(node.directory)
    assert again.config is first.config  # the same bytes, parsed once
    assert again.config_digest == first.config_digest == node.config_digest
    for mapping in (again.config.devices, again.config.slot_sizes, again.config.extra):
        with pytest.raises(TypeError):
            mapping["planted"] = None  # type: ignore[index]


def test_a_configuration_changed_on_disk_is_parsed_afresh(node: Platform) -> None:
    from ironroot.errors import ConfigError

    path = node.directory / "platform.json"
    good = path.read_bytes()
    before = Platform.open(node.directory)
    path.write_text(path.read_text().replace('"healthy_boots": 2', '"healthy_boots": 5'))
    changed = Platform.open(node.directory)
    assert changed.config is not before.config
    assert changed.config.trust.healthy_boots == 5
    assert changed.config_digest == hashlib.sha256(path.read_bytes()).digest()
    path.write_bytes(good.replace(b'"rot"', b'"rot_"'))
    for _ in range(2):  # a configuration that does not parse is refused each time
        raises_exactly(ConfigError, "config", lambda: Platform.open(node.directory))
    path.write_bytes(good)
    assert Platform.open(node.directory).config is before.config
