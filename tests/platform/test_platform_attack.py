"""Attacks on a node: someone with the node's files but not the RoT's journal key, a BMC
writing through its SPI port, odd update inputs, and damage that lands between an update's
activation and its reboot.

Whatever the attacker does, the node must refuse with a typed ``IronrootError`` (never an
untyped exception, never a hang or an unbounded allocation) or boot only images its PFM lists
at or above their SVN floor, from the slots the journal names. Every refusal asserts the exact
error class and code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.platform.node_world import (
    NOW,
    SLOT,
    Release,
    World,
    make_world,
    raises_exactly,
    rw_region,
)

from hypothesis_budget import examples
from ironroot.cose import (
    InclusionProof,
    Receipt,
    Sign1,
    TransparentStatement,
    build_receipt,
    encode_cbor,
    make_transparent,
)
from ironroot.errors import (
    ConfigError,
    Conflict,
    DeviceStateTampered,
    DigestMismatch,
    FirmwareRejected,
    FlashProtected,
    InvalidProof,
    IronrootError,
    LimitExceeded,
    PolicyRejected,
    StorageError,
    StoreRolledBack,
    SvnRollback,
    UnknownIssuer,
)
from ironroot.firmware import Component, build_bundle, sign_bundle
from ironroot.merkle import leaf_hash, root_from_inclusion_proof
from ironroot.platform import (
    COMPONENTS,
    UPDATE_CHECKS,
    Faults,
    Platform,
    PowerLost,
    Region,
    chip_layout,
)
from ironroot.platform._flash import Flash, RotFlashWriter
from ironroot.platform._journal import COALESCE_AFTER
from scratch import in_memory


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with in_memory("platform-attack-world-") as root, make_world(root) as w:
        yield w


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Each test's directory, on tmpfs (``scratch.in_memory``: the nodes' fsyncs are most
    of this module's time on a disk, and the cuts here are injected faults)."""
    with in_memory("platform-attack-") as directory:
        yield directory


@pytest.fixture
def node(world: World, tmp_path: Path) -> Platform:
    return world.node(tmp_path)


def _region(chip: str, name: str) -> Region:
    return {r.name: r for r in chip_layout(chip, 0 if chip == "rot" else SLOT)}[name]


def _chip(node: Platform, chip: str) -> Path:
    return node.directory / "flash" / f"{chip}.bin"


def _patch(node: Platform, chip: str, offset: int, data: bytes) -> None:
    with _chip(node, chip).open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def _region_bytes(node: Platform, chip: str, region: str) -> bytes:
    r = _region(chip, region)
    with _chip(node, chip).open("rb") as handle:
        handle.seek(r.offset)
        return handle.read(r.size)


def _put_image(node: Platform, chip: str, region: str, image: bytes) -> None:
    """What an attacker with the files can do: write a well-formed image (header and bytes)
    into any region, exactly as the RoT would have."""
    RotFlashWriter(Flash(node.directory / "flash")).write_image(chip, region, image)


def _forged_header(chip: str, regions: list[Region], *, name: str | None = None) -> bytes:
    """A chip header with its SHA-256 recomputed (the layout of ``_flash``'s docstring): the
    digest is not a MAC, so anyone with the file can write one."""
    head = struct.pack(
        ">8sHHI32sQ",
        b"IRFLASH1",
        1,
        len(regions),
        4096,
        (name or chip).encode().ljust(32, b"\0"),
        regions[-1].end,
    )
    table = b"".join(
        struct.pack(">16sQQ", r.name.encode().ljust(16, b"\0"), r.offset, r.size) for r in regions
    )
    return head + table + hashlib.sha256(head + table).digest()


def _running_is_allowed(node: Platform, world: World) -> None:
    """Every running component runs a PFM-listed image at or above its floor, from the slot
    the journal names."""
    state = node.state()
    flash = Flash(node.directory / "flash")
    listed = {(r.component, r.sha384): r.svn for r in world.releases.values()}
    for name, cs in state.components.items():
        if state.last_boot.get(name) != "running":
            continue
        assert cs.image is not None
        assert (name, cs.image.sha384) in listed, name
        assert listed[(name, cs.image.sha384)] >= cs.min_svn, name
        assert flash.chip(name).image_digest(f"slot{cs.active}") == cs.image.sha384, name


def _update(node: Platform, release: Release, **kwargs: object) -> object:
    return node.update(release.component, release.bundle, release.statements, now=NOW, **kwargs)  # type: ignore[arg-type]


def _committed_twice(node: Platform, world: World, component: str) -> None:
    """``component`` updated to 2.0 and booted until 2.0 is its recovery image and floor."""
    _update(node, world.release(component, "2.0"))
    assert node.boot(now=NOW).recovery_replaced == (component,)


# --- the chips' headers ---------------------------------------------------------------------


def test_a_rot_chip_whose_header_claims_a_huge_sparse_journal_is_refused(node: Platform) -> None:
    """A re-written header (recomputed digest) that grows the journal region to 8 GiB of a
    sparse file: the RoT would read gigabytes into memory. The layout is the RoT's, not the
    chip's: refused before any region is read."""
    regions = list(chip_layout("rot", 0))
    journal = next(r for r in regions if r.name == "journal")
    huge = 8 << 30
    forged = [
        dataclasses.replace(r, size=huge)
        if r.name == "journal"
        else dataclasses.replace(r, offset=journal.offset + huge)
        if r.name == "log"
        else r
        for r in regions
    ]
    with _chip(node, "rot").open("r+b") as handle:
        handle.write(_forged_header("rot", forged))
        handle.truncate(forged[-1].end)
    raises_exactly(
        DeviceStateTampered, "flash-header", lambda: Platform.open(node.directory).state()
    )


@pytest.mark.parametrize("forgery", ["slots-swapped", "rw-over-slot0", "other-chip", "renamed"])
def test_a_forged_component_chip_header_holds_only_that_component(
    node: Platform, world: World, forgery: str
) -> None:
    regions = list(chip_layout("nic", SLOT))
    path = _chip(node, "nic")
    if forgery == "slots-swapped":
        a, b = regions[0], regions[1]
        regions[0], regions[1] = (
            dataclasses.replace(a, offset=b.offset),
            dataclasses.replace(b, offset=a.offset),
        )
        _patch(node, "nic", 0, _forged_header("nic", regions))
    elif forgery == "rw-over-slot0":
        rw = regions[-1]
        regions[-1] = dataclasses.replace(rw, offset=regions[0].offset)
        _patch(node, "nic", 0, _forged_header("nic", regions))
    elif forgery == "other-chip":
        shutil.copyfile(_chip(node, "gpu"), path)  # same size in this world
    else:
        _patch(node, "nic", 0, _forged_header("nic", regions, name="gpu"))
    before = path.read_bytes()
    report = Platform.open(node.directory).boot(now=NOW)
    nic = report.component("nic")
    assert not nic.running
    assert nic.code == "flash-header"
    assert all(c.running for c in report.components if c.name != "nic")
    assert path.read_bytes() == before  # the RoT wrote nothing through a forged layout
    assert "ComponentHeldInReset" in [e.message_id for e in node.events()]
    _running_is_allowed(node, world)
    measured = {m.name: m for m in node.measure(now=NOW)}
    assert measured["nic"].code == "flash-header"


@pytest.mark.parametrize(
    ("damage", "error", "code"),
    [
        ("truncate", DeviceStateTampered, "flash-header"),
        ("extend-sparse", DeviceStateTampered, "flash-header"),
        ("delete", StorageError, "flash-missing"),
    ],
)
def test_a_resized_or_missing_chip_holds_only_its_component(
    node: Platform, damage: str, error: type[IronrootError], code: str
) -> None:
    path = _chip(node, "gpu")
    if damage == "truncate":
        os.truncate(path, path.stat().st_size - 4096)
    elif damage == "extend-sparse":
        os.truncate(path, 1 << 40)  # a terabyte of holes
    else:
        path.unlink()
    report = Platform.open(node.directory).boot(now=NOW)
    assert not report.component("gpu").running
    assert report.component("gpu").code == code
    assert all(c.running for c in report.components if c.name != "gpu")
    raises_exactly(error, code, lambda: node.recover("gpu", now=NOW))
    measured = {m.name: m for m in node.measure(now=NOW)}
    assert measured["gpu"].code == code


def test_a_symlinked_chip_is_refused(node: Platform, tmp_path: Path) -> None:
    """Even a link to an exact copy of the chip: the RoT writes only to its own chips."""
    path = _chip(node, "nvme")
    elsewhere = tmp_path / "elsewhere.bin"
    shutil.copyfile(path, elsewhere)
    path.unlink()
    path.symlink_to(elsewhere)
    report = Platform.open(node.directory).boot(now=NOW)
    assert report.component("nvme").code == "flash-symlink"
    assert all(c.running for c in report.components if c.name != "nvme")
    rot = _chip(node, "rot")
    shutil.copyfile(rot, tmp_path / "rot.bin")
    rot.unlink()
    rot.symlink_to(tmp_path / "rot.bin")
    raises_exactly(
        DeviceStateTampered, "flash-symlink", lambda: Platform.open(node.directory).state()
    )


# --- the RoT chip: fuzzed -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_template(world: World) -> Iterator[Path]:
    """A node with history: NIC 2.0 committed (a fallback slot, a longer journal)."""
    with in_memory("platform-fuzz-template-") as root:
        node = world.node(root)
        _update(node, world.release("nic", "2.0"))
        yield node.directory


_ROT_TARGETS = ("journal", "log", "pfm0", "pfm1", "pfm-recovery", "header")
_flips = st.lists(
    st.tuples(
        st.sampled_from(_ROT_TARGETS),
        st.integers(0, 4095) | st.integers(0, 48 * 1024),  # the used start of a region, or on
        st.integers(1, 255),
    ),
    min_size=1,
    max_size=4,
)
_damage = st.tuples(
    st.sampled_from(("flips", "flips", "flips", "truncate", "extend")),
    _flips,
    st.integers(1, 2 << 20),
)


@settings(
    max_examples=examples(25),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(damage=_damage)
def test_a_damaged_rot_chip_fails_typed_or_boots_only_allowed_images(
    world: World, fuzz_template: Path, damage: tuple[str, list[tuple[str, int, int]], int]
) -> None:
    with in_memory("platform-fuzz-") as tmp:
        directory = tmp / "node"
        shutil.copytree(fuzz_template, directory)
        rot = directory / "flash" / "rot.bin"
        kind, flips, amount = damage
        size = rot.stat().st_size
        if kind == "flips":
            with rot.open("r+b") as handle:
                for target, offset, xor in flips:
                    base, span = (0, 4096) if target == "header" else _span(target)
                    handle.seek(base + offset % span)
                    byte = handle.read(1)
                    handle.seek(base + offset % span)
                    handle.write(bytes([byte[0] ^ xor]))
        else:
            os.truncate(rot, amount % size if kind == "truncate" else size + amount)
        try:
            node = Platform.open(directory)
            node.boot(now=NOW)
            node.show()
            node.events()
            node.journal()
        except IronrootError as exc:
            event(f"refused: {type(exc).__name__} {exc.code}")
            return
        event("booted")
        _running_is_allowed(node, world)


def _span(region: str) -> tuple[int, int]:
    r = _region("rot", region)
    return r.offset, r.size


# --- an attacker with the files, without the RoT's journal key -----------------------------


def test_a_slot_copied_from_another_component_is_restored(node: Platform, world: World) -> None:
    host_slot = _region_bytes(node, "host", "slot0")
    _patch(node, "nic", _region("nic", "slot0").offset, host_slot)
    report = node.boot(now=NOW)
    assert report.ok
    assert report.component("nic").recovered
    _running_is_allowed(node, world)
    assert node.state().component("nic").image.sha384 == world.release("nic", "1.0").sha384  # type: ignore[union-attr]


def test_an_older_image_copied_into_the_active_slot_is_replaced(
    node: Platform, world: World
) -> None:
    _committed_twice(node, world, "gpu")
    state = node.state().component("gpu")
    assert state.active == 1
    _patch(node, "gpu", _region("gpu", "slot1").offset, _region_bytes(node, "gpu", "slot0"))
    report = node.boot(now=NOW)
    assert report.component("gpu").recovered
    assert report.component("gpu").image.sha384 == world.release("gpu", "2.0").sha384  # type: ignore[union-attr]
    _running_is_allowed(node, world)


def test_an_allowed_image_below_the_floor_is_never_run(node: Platform, world: World) -> None:
    """NIC 2.0 is the recovery image and SVN 4 the floor; the attacker writes the PFM-listed
    1.0 (SVN 3) as a well-formed image into recovery and both slots."""
    _committed_twice(node, world, "nic")
    v1 = world.release("nic", "1.0").bundle
    for region in ("recovery", "slot0", "slot1"):
        _put_image(node, "nic", region, v1)
    report = node.boot(now=NOW)
    assert not report.component("nic").running
    assert report.component("nic").code == "flash-check"
    assert all(c.running for c in report.components if c.name != "nic")
    _running_is_allowed(node, world)
    raises_exactly(DeviceStateTampered, "recovery-damaged", lambda: node.recover("nic", now=NOW))


def test_swapped_device_identities_hold_both_devices(node: Platform, world: World) -> None:
    devices = node.directory / "devices"
    for suffix in ("key.pem", "chain.pem"):
        nic, gpu = devices / f"nic.{suffix}", devices / f"gpu.{suffix}"
        nic_bytes = nic.read_bytes()
        nic.write_bytes(gpu.read_bytes())
        gpu.write_bytes(nic_bytes)
    report = node.boot(now=NOW)
    for name in ("nic", "gpu"):
        assert not report.component(name).running
        assert report.component(name).code == "chain-not-trusted"
    assert report.component("nvme").running


def test_a_deeply_nested_device_description_holds_only_that_device(node: Platform) -> None:
    """A device's description file nested deeper than the JSON parser recurses was a
    ``RecursionError`` out of every boot: one damaged device file kept the whole node from
    booting (the boot stopped half way, unjournaled). Now ``ConfigError``: that device is
    held in reset, the rest boots."""
    from ironroot.platform import PlatformDevice

    (node.directory / "devices" / "gpu.device.json").write_text("[" * 100_000 + "]" * 100_000)
    raises_exactly(
        ConfigError, "config", lambda: PlatformDevice.open(node.directory / "devices", "gpu")
    )
    report = node.boot(now=NOW)
    assert report.component("gpu").code == "config"
    assert [c.name for c in report.components if not c.running] == ["gpu"]
    assert node.state().last_boot["gpu"] == "held-in-reset"
    measured = {m.name: m for m in node.measure(now=NOW)}
    assert (measured["gpu"].ok, measured["gpu"].code) == (False, "config")
    assert measured["nic"].ok


def test_evidence_that_cannot_be_read_or_removed_stops_no_boot(
    node: Platform, world: World
) -> None:
    """A directory where an evidence file belongs was an ``IsADirectoryError`` out of every
    boot (and measurement): the device that needs it is held in reset instead, the rest
    boots. An abandoned update whose statements cannot be removed still ends; an update
    whose statements cannot be kept is refused typed, before anything is journaled."""
    ident = node.state().component("nvme").image.evidence  # type: ignore[union-attr]
    path = node.directory / "evidence" / f"{ident}.cbor"
    path.unlink()
    path.mkdir()
    report = node.boot(now=NOW)
    assert (report.component("nvme").running, report.component("nvme").code) == (False, "evidence")
    assert [c.name for c in report.components if not c.running] == ["nvme"]
    measured = {m.name: m for m in node.measure(now=NOW)}
    assert (measured["nvme"].ok, measured["nvme"].code) == (False, "evidence")

    with pytest.raises(PowerLost):
        _update(node, world.release("host", "2.0"), faults=Faults("verify"))
    staged = node.state().pending.image.evidence  # type: ignore[union-attr]
    kept = node.directory / "evidence" / f"{staged}.cbor"
    kept.unlink()
    (kept / "inside").mkdir(parents=True)  # unlink() cannot remove it
    report = node.boot(now=NOW)
    assert node.state().pending is None
    assert report.component("host").running
    assert "UpdateAbandoned" in [e.message_id for e in node.events()]

    shutil.rmtree(node.directory / "evidence")
    (node.directory / "evidence").write_bytes(b"not a folder")
    before = node.state()
    raises_exactly(StorageError, "evidence", lambda: _update(node, world.release("gpu", "2.0")))
    assert node.state() == before


def test_edited_evidence_holds_the_device(node: Platform) -> None:
    ident = node.state().component("nvme").image.evidence  # type: ignore[union-attr]
    path = node.directory / "evidence" / f"{ident}.cbor"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 1
    path.write_bytes(bytes(blob))
    report = node.boot(now=NOW)
    assert report.component("nvme").code == "evidence"
    assert not report.component("nvme").running


@pytest.mark.parametrize("planted", [b"garbage", b"", None], ids=["garbage", "empty", "dir"])
def test_evidence_planted_ahead_of_an_update_is_replaced_by_the_delivered_one(
    node: Platform, world: World, planted: bytes | None
) -> None:
    """Whoever can write the node's directory knows an update's statements (the BMC receives
    them) and so the name its evidence will have. A file planted there was kept as it was
    ("already stored"): every boot then found the evidence changed and held the NIC in reset,
    and every delivery of the update rolled back, for ever. The delivered statements are now
    written over anything else at that name (a directory there: StorageError, nothing
    journaled)."""
    v2 = world.release("nic", "2.0")
    blob = encode_cbor({"statements": list(v2.statements), "pfm_statement": None})
    path = node.directory / "evidence" / f"{hashlib.sha256(blob).hexdigest()}.cbor"
    if planted is None:
        (path / "inside").mkdir(parents=True)
        before = node.state()
        raises_exactly(StorageError, "evidence", lambda: _update(node, v2))
        assert node.state() == before
        return
    path.write_bytes(planted)
    result = _update(node, v2)
    assert result.outcome == "committed"  # type: ignore[attr-defined]
    assert path.read_bytes() == blob
    assert node.boot(now=NOW).component("nic").running


def test_an_older_copy_of_the_node_directory_is_refused(
    node: Platform, world: World, tmp_path: Path
) -> None:
    """Everything the node's directory holds — flash, evidence, devices, platform.json —
    put back as it was before an update. The RoT's own storage (its counter) is not part of
    what the attacker can roll back: its counter catches it."""
    rot_storage = ("rot", "rot.obfuscation-key", ".lock")

    def outside_the_rot(directory: str, names: list[str]) -> list[str]:
        return [n for n in names if Path(directory) == node.directory and n in rot_storage]

    saved = tmp_path / "saved"
    shutil.copytree(node.directory, saved, ignore=outside_the_rot)
    _update(node, world.release("host", "2.0"))
    for entry in node.directory.iterdir():
        if entry.name not in rot_storage:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(saved, node.directory, dirs_exist_ok=True)
    again = Platform.open(node.directory)
    raises_exactly(StoreRolledBack, "journal-rolled-back", lambda: again.boot(now=NOW))
    raises_exactly(StoreRolledBack, "journal-rolled-back", again.show)


def test_a_node_whose_creation_was_cut_short_says_so(world: World, tmp_path: Path) -> None:
    """What a kill -9 during ``platform init`` leaves (platform.json and flash written, then
    the journal key, then the first journal record, which moves the RoT's counter): before
    the key, every command said DeviceStateTampered journal-key (an alarm, for a node that
    never existed); before the record, a StorageError with no code. Both are now StorageError
    ``never-created``, saying what to do; a missing key on a node that was created is still
    tampering."""
    made = world.create(tmp_path / "made")
    rot = tmp_path / "cut" / "node" / "rot"
    world.rot_device(rot)  # provisioned, its platform counter at 0
    half = rot.parent
    shutil.copytree(made.directory / "flash", half / "flash")
    config = json.loads((made.directory / "platform.json").read_text())
    config["rot"] = str(rot)
    (half / "platform.json").write_text(json.dumps(config))
    error = raises_exactly(StorageError, "never-created", lambda: Platform.open(half).show())
    assert "remove the node's directory and create it again" in error.detail
    (rot / "platform-journal.key").write_bytes(
        (made.config.rot / "platform-journal.key").read_bytes()
    )
    for chip in ("rot", *COMPONENTS):  # erased flash: the journal holds no record
        (half / "flash" / f"{chip}.bin").unlink()
    Flash.format(half / "flash", {"rot": 0, **{c: SLOT for c in COMPONENTS}})
    raises_exactly(StorageError, "never-created", lambda: Platform.open(half).show())
    (made.config.rot / "platform-journal.key").unlink()
    raises_exactly(DeviceStateTampered, "journal-key", lambda: Platform.open(made.directory).show())


def test_a_missing_journal_key_is_a_typed_error(node: Platform) -> None:
    (node.directory / "rot" / "platform-journal.key").unlink()
    raises_exactly(DeviceStateTampered, "journal-key", lambda: Platform.open(node.directory).show())


def test_a_deeply_nested_configuration_is_a_typed_error(node: Platform) -> None:
    (node.directory / "platform.json").write_text("[" * 200_000 + "]" * 200_000)
    raises_exactly(ConfigError, "config", lambda: Platform.open(node.directory))


@pytest.mark.parametrize("size", ["Infinity", "-Infinity", "1e400"])
def test_a_configuration_with_an_infinite_slot_size_is_a_typed_error(
    node: Platform, size: str
) -> None:
    """Python's JSON reads ``Infinity`` and ``1e400`` as a float no integer holds: that was an
    ``OverflowError`` out of ``Platform.open`` (the CLI's ``internal-error``)."""
    path = node.directory / "platform.json"
    text = path.read_text()
    slot = json.loads(text)["slot_sizes"]["bmc"]
    path.write_text(text.replace(f'"bmc": {slot}', f'"bmc": {size}', 1))
    assert size in path.read_text()
    raises_exactly(ConfigError, "config", lambda: Platform.open(node.directory))


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("rot", None, "rot is the RoT's directory (text)"),
        ("rot", 7, "rot is the RoT's directory (text)"),
        ("rot", "", "rot is the RoT's directory (text)"),
        ("slot_sizes", None, "slot_sizes maps components to integers"),
        ("slot_sizes", {"bmc": True}, "slot_sizes maps components to integers"),
        ("slot_sizes", {"bmc": 65536.5}, "slot_sizes maps components to integers"),
        ("slot_sizes", "x", "slot_sizes maps components to integers"),
        ("devices", [], "devices maps devices to a vendor, model and root (text)"),
        ("devices", {"nic": {"vendor": 1, "model": "m", "root": ""}}, "vendor, model and root"),
        ("devices", {"nic": {"vendor": "v", "model": "m", "root": "!"}}, "root is not base64"),
    ],
)
def test_a_configuration_field_of_the_wrong_type_is_named(
    node: Platform, field: str, value: object, detail: str
) -> None:
    """Each field of platform.json is checked for its type. Before, a ``null`` RoT directory
    opened a RoT at ``<node>/None`` (``InputUnavailable``), a float slot size was cut to an
    integer, a number vendor became text, and the other errors read as Python internals
    ("'NoneType' object is not iterable")."""
    path = node.directory / "platform.json"
    doc = json.loads(path.read_text())
    doc[field] = value
    path.write_text(json.dumps(doc))
    error = raises_exactly(ConfigError, "config", lambda: Platform.open(node.directory))
    assert detail in error.detail
    assert error.detail.startswith("platform.json is malformed: ")


# --- the BMC's write port -------------------------------------------------------------------


def _chip_digests(node: Platform) -> dict[str, bytes]:
    """Each chip's digest; the RoT chip's without its event log (the RoT logs each refusal)."""
    log = _region("rot", "log")
    digests = {}
    for chip in (*COMPONENTS, "rot"):
        data = _chip(node, chip).read_bytes()
        if chip == "rot":
            data = data[: log.offset] + data[log.end :]
        digests[chip] = hashlib.sha256(data).digest()
    return digests


def test_the_bmc_write_port_refuses_every_range_outside_rw(node: Platform) -> None:
    offset, size = rw_region("host")
    slot0 = _region("host", "slot0")
    attempts = [
        ("host", -1, 1),
        ("host", -(1 << 63), 16),
        ("host", offset, 0),  # zero-length
        ("host", offset - 1, 2),  # straddles the start of rw
        ("host", offset + size - 1, 2),  # straddles its end (and the chip's)
        ("host", offset, size + 1),  # longer than rw
        ("host", offset + size, 1),  # just past the chip
        ("host", (1 << 64) - 1, 1),  # would wrap a 64-bit offset
        ("host", 1 << 200, 1),
        ("host", slot0.offset, 16),
        ("host", 0, 4096),  # the chip header
        ("rot", _region("rot", "journal").offset, 16),
        ("nope", offset, 1),
        ("../flash/host", offset, 1),
    ]
    before = _chip_digests(node)
    for chip, at, length in attempts:
        raises_exactly(
            FlashProtected,
            "flash-protected",
            lambda c=chip, o=at, n=length: node.bmc_write(c, o, b"\xa5" * n, now=NOW),
        )
    assert _chip_digests(node) == before
    blocked = [e for e in node.events() if e.message_id == "FlashWriteBlocked"]
    assert len(blocked) == COALESCE_AFTER  # every attempt logged, a flood folded into the last
    assert blocked[-1].args[-1] == f"repeats={len(attempts) - COALESCE_AFTER}"
    for data in ("text", None, 7, [1, 2]):
        raises_exactly(
            ConfigError,
            "config",
            lambda d=data: node.bmc_write("host", offset, d, now=NOW),  # type: ignore[arg-type]
        )
    assert _chip_digests(node) == before


def test_a_blocked_write_to_a_chip_named_in_another_script_is_logged_not_hung(
    node: Platform,
) -> None:
    """The chip a BMC names goes into the RoT's event as it came. JSON escapes a non-ASCII
    character as six bytes (twelve for one outside the BMP), so an argument cut to 64
    characters could still not fit a 512-byte entry, and cutting the message never made it
    fit: the RoT looped for ever, holding the node (``ironroot platform flash-write --chip
    ééé…``). Now refused and logged like any other name."""
    offset, _ = rw_region("host")
    names = ["é" * 100, "\U0001f525" * 100, "\u202e" * 300 + "host"]
    failures: list[BaseException] = []

    def attempt() -> None:
        for name in names:
            try:
                node.bmc_write(name, offset, b"\xa5", now=NOW)
            except BaseException as exc:  # asserted below, in the test's thread
                failures.append(exc)

    before = _chip_digests(node)
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the RoT hung logging the blocked write"
    assert [(type(e), getattr(e, "code", None)) for e in failures] == [
        (FlashProtected, "flash-protected")
    ] * len(names)
    assert _chip_digests(node) == before
    blocked = [e for e in node.events() if e.message_id == "FlashWriteBlocked"]
    assert len(blocked) == len(names)
    assert all(n.startswith(e.args[0]) and e.args[0] for n, e in zip(names, blocked, strict=True))
    assert all(e.args[1:] == (str(offset), "1") for e in blocked)


@settings(
    max_examples=examples(40),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    start=st.integers(-(1 << 20), 1 << 21) | st.integers(-(1 << 70), 1 << 70),
    length=st.integers(0, 70000),
)
def test_a_bmc_write_changes_only_rw_bytes_or_nothing(
    node: Platform, start: int, length: int
) -> None:
    offset, size = rw_region("bmc")
    path = _chip(node, "bmc")
    before = path.read_bytes()
    data = os.urandom(length)
    inside = offset <= start and start + length <= offset + size and length > 0
    if inside:
        node.bmc_write("bmc", start, data, now=NOW)
        after = path.read_bytes()
        assert after[start : start + length] == data
        assert after[:start] == before[:start]
        assert after[start + length :] == before[start + length :]
    else:
        raises_exactly(
            FlashProtected,
            "flash-protected",
            lambda: node.bmc_write("bmc", start, data, now=NOW),
        )
        assert path.read_bytes() == before


# --- update inputs --------------------------------------------------------------------------


def test_odd_statement_arguments_are_typed_errors(node: Platform, world: World) -> None:
    v2 = world.release("bmc", "2.0")
    for statements in (None, (s for s in v2.statements), v2.statements[0], "text"):
        raises_exactly(
            ConfigError,
            "config",
            lambda s=statements: node.update("bmc", v2.bundle, s, now=NOW),  # type: ignore[arg-type]
        )
    raises_exactly(
        LimitExceeded,
        "limit-exceeded",
        lambda: node.update("bmc", v2.bundle, list(v2.statements) * 17, now=NOW),
    )
    assert node.state().pending is None


def test_statements_for_another_component_are_refused(node: Platform, world: World) -> None:
    v2 = world.release("bmc", "2.0")
    host = world.release("host", "2.0")
    error = raises_exactly(
        DigestMismatch,
        "logged-digest-mismatch",
        lambda: node.update("bmc", v2.bundle, host.statements, now=NOW),
    )
    assert error.check == "logged-digest"


def test_a_signed_logged_bundle_larger_than_the_slot_is_refused_before_staging(
    node: Platform, world: World
) -> None:
    unsigned = build_bundle(
        [Component(1, b"fmc" * 64, version=1), Component(2, os.urandom(SLOT + 4096), version=2)],
        svn=4,
        not_before=NOW.replace(year=2025),
        not_after=NOW.replace(year=2027),
        vendor_ecc_keys=[world.ecc.public_key],
        vendor_pqc_keys=[world.pqc.public_key],
        pqc_type="mldsa",
    )
    bundle = sign_bundle(unsigned, world.ecc, world.pqc)
    statements = world.publish("host", bundle)
    staged_before = _region_bytes(node, "host", "staging")
    raises_exactly(
        LimitExceeded, "limit-exceeded", lambda: node.update("host", bundle, statements, now=NOW)
    )
    assert _region_bytes(node, "host", "staging") == staged_before
    assert node.state().pending is None


def test_a_pfm_that_drops_an_active_image_is_refused(node: Platform, world: World) -> None:
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    versions["gpu"] = [world.release("gpu", "2.0")]  # gpu runs 1.0
    pfm = world.make_pfm(2, versions)
    error = raises_exactly(
        PolicyRejected,
        "pfm-drops-active-image",
        lambda: _update(
            node, world.release("host", "2.0"), pfm=pfm, pfm_statement=world.log_pfm(pfm)
        ),
    )
    assert error.check == "pfm"
    assert node.state().pfm.image.svn == 1  # type: ignore[union-attr]


def test_an_update_result_names_its_checks(node: Platform, world: World) -> None:
    result = _update(node, world.release("host", "2.0"))
    checks = result.checks  # type: ignore[attr-defined]
    assert checks[0] == "parse"
    assert "svn" in checks
    assert checks[-len(UPDATE_CHECKS) :] == UPDATE_CHECKS
    assert result.to_json()["checks"] == list(checks)  # type: ignore[attr-defined]


def test_the_factory_image_svn_is_the_floor(world: World, tmp_path: Path) -> None:
    """A PFM may still list an older release (here bmc 0.9, SVN 2); the node was made with
    1.0 (SVN 3) and must not go below it."""
    bundle = world.bundle("bmc", svn=2, tag="0.9")
    old = Release("bmc", "0.9", 2, bundle, world.publish("bmc", bundle))
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    versions["bmc"] = [old, *versions["bmc"]]
    pfm = world.make_pfm(1, versions)
    node = world.create(tmp_path, pfm=pfm, pfm_statement=world.log_pfm(pfm))
    assert node.state().component("bmc").min_svn == 3
    error = raises_exactly(SvnRollback, "svn-rollback", lambda: _update(node, old))
    assert error.check == "svn"


# --- damage between an update's activation and its reboot ----------------------------------


def test_a_new_slot_damaged_before_reboot_is_rolled_back_not_committed(
    node: Platform, world: World
) -> None:
    v1, v2 = world.release("host", "1.0"), world.release("host", "2.0")
    with pytest.raises(PowerLost):
        _update(node, v2, faults=Faults("reboot"))
    active = node.state().component("host").active
    _patch(node, "host", _region("host", f"slot{active}").offset + 500, b"\xff\xff\xff\xff")
    report = Platform.open(node.directory).boot(now=NOW)
    assert report.update == "rolled-back"
    assert report.ok
    assert report.component("host").image.sha384 == v1.sha384  # type: ignore[union-attr]
    assert "UpdateCommitted" not in [e.message_id for e in node.events()]
    _running_is_allowed(node, world)


def test_a_new_pfm_damaged_before_reboot_rolls_the_update_back(
    node: Platform, world: World
) -> None:
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    pfm = world.make_pfm(2, versions)
    with pytest.raises(PowerLost):
        _update(
            node,
            world.release("host", "2.0"),
            pfm=pfm,
            pfm_statement=world.log_pfm(pfm),
            faults=Faults("reboot"),
        )
    ps = node.state().pfm
    _patch(node, "rot", _region("rot", f"pfm{ps.active}").offset + 300, b"\xaa" * 8)
    report = Platform.open(node.directory).boot(now=NOW)
    assert report.update == "rolled-back"
    assert report.ok
    assert report.pfm_svn == 1
    assert node.state().pfm.image.svn == 1  # type: ignore[union-attr]
    assert report.component("host").image.version == "1.0"  # type: ignore[union-attr]


def test_a_pfm_restored_during_an_update_stays_restored_in_the_journal(
    node: Platform, world: World
) -> None:
    """The active PFM (a newer one than its recovery copy) is damaged; the next update finds
    it so and the RoT restores it from ``pfm-recovery``, journaled. The update's own records
    must go on from that state: written from the state it read before, they named the
    damaged PFM again, so the journal vouched for PFM bytes the slot did not hold."""
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    pfm = world.make_pfm(2, versions)
    _update(node, world.release("bmc", "2.0"), pfm=pfm, pfm_statement=world.log_pfm(pfm))
    ps = node.state().pfm
    assert (ps.image.svn, ps.recovery.svn) == (2, 1)  # type: ignore[union-attr]
    _patch(node, "rot", _region("rot", f"pfm{ps.active}").offset + 300, b"\xaa" * 8)
    with pytest.raises(PowerLost):
        _update(node, world.release("host", "2.0"), faults=Faults("reboot"))
    # the journaled PFM is the one in its slot (was DeviceStateTampered, flash-check)
    node.active_image("pfm")
    assert node.state().pfm.image == ps.recovery
    report = node.boot(now=NOW)
    assert report.update == "committed"
    assert report.pfm_svn == 1
    assert [e.message_id for e in node.events()].count("PfmCheckFailed") == 1


def test_a_preflight_over_a_damaged_pfm_checks_against_the_copy_an_update_restores(
    node: Platform, world: World
) -> None:
    """The check-only preflight finds the PFM an update would find (the active one damaged:
    its recovery copy) without restoring, journaling or logging anything; the update then
    meets the same PFM, restored."""
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    pfm = world.make_pfm(2, versions)
    _update(node, world.release("bmc", "2.0"), pfm=pfm, pfm_statement=world.log_pfm(pfm))
    ps = node.state().pfm
    _patch(node, "rot", _region("rot", f"pfm{ps.active}").offset + 300, b"\xaa" * 8)

    def seen() -> tuple[object, ...]:
        rot_flash = _chip(node, "rot").read_bytes()
        return node.journal(), node.events(), node.state(), rot_flash

    before = seen()
    host = world.release("host", "2.0")
    preflight = node.preflight(now=NOW)
    assert preflight.check("host", host.bundle, host.statements).pfm.svn == 1
    nic = world.release("nic", "2.0")
    with pytest.raises(PolicyRejected) as info:
        preflight.check("nic", nic.bundle, ())  # no statement: on no log
    assert (info.value.code, info.value.check) == ("no-receipt", "receipt")
    assert seen() == before
    _update(node, host)
    assert node.state().pfm.image == ps.recovery
    assert [e.message_id for e in node.events()].count("PfmCheckFailed") == 1


def test_after_a_bmc_rollback_every_component_boots(node: Platform, world: World) -> None:
    """The new BMC image and the recovery image are both damaged before the reboot: the BMC
    is rolled back to its previous slot, and then the components it gates must boot too."""
    with pytest.raises(PowerLost):
        _update(node, world.release("bmc", "2.0"), faults=Faults("reboot"))
    active = node.state().component("bmc").active
    for region in (f"slot{active}", "recovery"):
        _patch(node, "bmc", _region("bmc", region).offset + 500, b"\xff\xff\xff\xff")
    report = Platform.open(node.directory).boot(now=NOW)
    assert report.update == "rolled-back"
    assert report.ok, report.to_json()
    assert set(node.state().last_boot.values()) == {"running"}


def test_recover_waits_for_a_pending_update(node: Platform, world: World) -> None:
    with pytest.raises(PowerLost):
        _update(node, world.release("host", "2.0"), faults=Faults("reboot"))
    raises_exactly(Conflict, "update-in-progress", lambda: node.recover("host", now=NOW))
    assert node.boot(now=NOW).update == "committed"
    assert node.recover("host", now=NOW).version == "1.0"


def test_the_journal_never_names_a_slot_the_rot_did_not_finish(
    node: Platform, world: World
) -> None:
    """Inventory after each fault-injection step agrees with the flash: what the journal calls
    active is always the bytes in that slot."""
    flash = Flash(node.directory / "flash")
    for step in ("stage", "write", "activate"):
        with pytest.raises(PowerLost):
            _update(node, world.release("nvme", "2.0"), faults=Faults(step))
        state = node.state()
        cs = state.component("nvme")
        assert cs.image is not None
        assert flash.chip("nvme").image_digest(f"slot{cs.active}") == cs.image.sha384
        node.boot(now=NOW)
    shown = json.loads(json.dumps(node.show()))
    assert shown["pending"] is None


# --- replacing the recovery images ----------------------------------------------------------


def _pfm2(world: World) -> tuple[bytes, bytes]:
    versions = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    pfm = world.make_pfm(2, versions)
    return pfm, world.log_pfm(pfm)


def test_a_power_cut_while_boot_replaces_recovery_never_strands_the_pfm(
    world: World, tmp_path: Path
) -> None:
    """Host 2.0 came with PFM 2; the next boot copies both to recovery and raises both floors.
    Cut that boot at every write: the boots after it finish the job — never a node left with
    no PFM recovery copy, or with PFM 2 in force over a floor that still admits PFM 1."""
    template = world.node(tmp_path / "template")
    pfm, statement = _pfm2(world)
    host = world.release("host", "2.0")
    _update(template, host, pfm=pfm, pfm_statement=statement)
    counted = Faults()
    copy = tmp_path / "count" / "node"
    shutil.copytree(template.directory, copy)
    Platform.open(copy).boot(now=NOW, faults=counted)
    assert counted.writes > 5
    for cut in range(1, counted.writes + 1, 2):  # every other write: each step, half the cost
        directory = tmp_path / f"cut{cut}" / "node"
        shutil.copytree(template.directory, directory)
        with pytest.raises(PowerLost):
            Platform.open(directory).boot(now=NOW, faults=Faults(after_writes=cut))
        node = Platform.open(directory)
        assert node.boot(now=NOW).ok
        state = node.state()
        assert state.component("host").recovery.sha384 == host.sha384, cut  # type: ignore[union-attr]
        assert state.component("host").min_svn == host.svn
        assert state.pfm.recovery is not None, cut
        assert state.pfm.recovery.svn == 2, cut
        assert state.pfm.min_svn == 2, cut
        _running_is_allowed(node, world)


def test_the_pfm_recovery_waits_for_its_own_healthy_boots(node: Platform, world: World) -> None:
    """NIC 2.0 (no PFM) reaches its healthy boots in the same boot that first runs host 2.0
    with PFM 2: the NIC's recovery is replaced, PFM 2's must wait until it has booted
    healthy ``healthy_boots`` times itself."""
    _update(node, world.release("nic", "2.0"))  # nic: 1 healthy boot
    pfm, statement = _pfm2(world)
    result = _update(node, world.release("host", "2.0"), pfm=pfm, pfm_statement=statement)
    assert result.boot.recovery_replaced == ("nic",)  # type: ignore[attr-defined]
    state = node.state()
    assert state.pfm.image.svn == 2  # type: ignore[union-attr]
    assert state.pfm.recovery.svn == 1  # type: ignore[union-attr]
    assert state.pfm.min_svn == 1
    assert node.boot(now=NOW).recovery_replaced == ("host",)
    state = node.state()
    assert state.pfm.recovery.svn == 2  # type: ignore[union-attr]
    assert state.pfm.min_svn == 2


# --- refused updates leave every slot, recovery image and PFM as they were -------------------


def _other_tree_size(statement: bytes, *, fits: bool) -> bytes:
    """``statement`` with its receipt's inclusion proof moved to another tree size (one leaf
    more), the service's signature kept: a proof of the entry in a tree the service never
    signed. With ``fits`` the path is cut or padded to the length that size takes, so that the
    proof computes a root (another one); without, the path does not fit."""
    parsed = TransparentStatement.parse(statement)
    receipt = Receipt.parse(parsed.receipts[0])
    proof = receipt.inclusion_proofs[0]
    size, path = proof.tree_size + 1, proof.path
    if fits:
        leaf = leaf_hash(parsed.statement.log_entry())
        path = next(
            p
            for length in range(64)
            if _fits(size, proof.leaf_index, leaf, p := (*path, *[bytes(32)] * 64)[:length])
        )
    moved = build_receipt(
        receipt.sign1.protected_bytes,
        receipt.sign1.signature,
        InclusionProof(size, proof.leaf_index, path),
    )
    bare = dataclasses.replace(Sign1.decode(statement), unprotected={}).encode()
    return make_transparent(bare, [moved])


def _fits(size: int, index: int, leaf: bytes, path: tuple[bytes, ...]) -> bool:
    try:
        root_from_inclusion_proof(index, size, leaf, path)
    except InvalidProof:
        return False
    return True


def _attack(world: World, case: str) -> tuple[str, bytes, tuple[bytes, ...]]:
    v2 = world.release("bmc", "2.0")
    if case == "untrusted-log":
        return "bmc", v2.bundle, world.publish("bmc", v2.bundle, client=world.untrusted)
    if case in ("another-tree-size", "a-tree-size-that-fits"):
        fits = case == "a-tree-size-that-fits"
        return "bmc", v2.bundle, (_other_tree_size(v2.statements[0], fits=fits),)
    if case == "another-statement":
        host = world.release("host", "2.0")
        receipts = TransparentStatement.parse(host.statements[0]).receipts
        bare = dataclasses.replace(Sign1.decode(v2.statements[0]), unprotected={}).encode()
        return "bmc", v2.bundle, (make_transparent(bare, receipts),)
    if case == "another-component":
        return "host", v2.bundle, v2.statements
    if case == "rollback":
        older = world.bundle("bmc", svn=2, tag="0.9")
        return "bmc", older, world.publish("bmc", older)
    if case == "not-in-pfm":
        newer = world.bundle("bmc", svn=5, tag="3.0")
        return "bmc", newer, world.publish("bmc", newer)
    if case == "runtime-swapped":
        swapped = v2.bundle[:-1] + bytes([v2.bundle[-1] ^ 1])
        return "bmc", swapped, v2.statements
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "error", "code", "check"),
    [
        ("untrusted-log", UnknownIssuer, "untrusted-service", "receipt"),
        ("another-tree-size", InvalidProof, "receipt-not-for-statement", "receipt"),
        ("a-tree-size-that-fits", InvalidProof, "receipt-not-for-statement", "receipt"),
        ("another-statement", InvalidProof, "receipt-not-for-statement", "receipt"),
        ("another-component", FirmwareRejected, "not-in-pfm", "pfm"),
        ("rollback", SvnRollback, "svn-rollback", "svn"),
        ("not-in-pfm", FirmwareRejected, "not-in-pfm", "pfm"),
        ("runtime-swapped", DigestMismatch, "digest-mismatch", "component:2"),
    ],
)
def test_a_refused_update_changes_no_slot_recovery_image_or_pfm(
    node: Platform, world: World, case: str, error: type[IronrootError], code: str, check: str
) -> None:
    """Each bundle below is vendor-signed and most carry a receipt of the trusted log, but not
    one that makes it this node's next image of this component: a receipt by another log, one
    whose proof is for another tree size (not fitting it, or fitting with another root), the
    receipt of another statement spliced on; the BMC's image offered as the host's; an older
    SVN; an image no PFM lists; a runtime part changed under an intact FMC. Each is refused
    with its exact error at its check, and no slot, recovery image or PFM changes."""
    component, bundle, statements = _attack(world, case)
    kept = {
        (chip, r.name): _region_bytes(node, chip, r.name)
        for chip in ("rot", *COMPONENTS)
        for r in chip_layout(chip, 0 if chip == "rot" else SLOT)
        if r.name.startswith(("slot", "recovery", "pfm"))
    }
    assert len(kept) == 3 + 3 * len(COMPONENTS)
    before = node.show()
    refused = raises_exactly(
        error, code, lambda: node.update(component, bundle, statements, now=NOW)
    )
    assert refused.check == check
    after = node.show()
    assert after["components"] == before["components"]
    assert after["pfm"] == before["pfm"]
    assert after["pending"] is None
    assert {k: _region_bytes(node, *k) for k in kept} == kept
    active = {i.id: i.version for i in node.inventory()}
    assert active[f"{component}-active"] == "1.0"


def test_refused_updates_leave_no_evidence_behind(node: Platform, world: World) -> None:
    """The statements of an update are kept (content-addressed, up to 4 MiB) when it is
    staged, before it is verified. A refused update's were never removed: whoever may update
    could fill the node's disk with refused pushes of junk "statements". They are removed with
    the refusal, unless an image the RoT holds was accepted with the very same ones."""
    evidence = node.directory / "evidence"

    def held() -> list[str]:
        return sorted(p.name for p in evidence.iterdir())

    before = held()
    v1, v2 = world.release("bmc", "1.0"), world.release("bmc", "2.0")
    for _ in range(3):
        junk = tuple(os.urandom(100_000) for _ in range(4))
        raises_exactly(
            PolicyRejected,
            "no-receipt",
            lambda junk=junk: node.update("bmc", v2.bundle, junk, now=NOW),
        )
    untrusted = world.publish("bmc", v2.bundle, client=world.untrusted)
    raises_exactly(
        UnknownIssuer,
        "untrusted-service",
        lambda: node.update("bmc", v2.bundle, untrusted, now=NOW),
    )
    # the active image's own statements with another bundle: refused, its evidence kept
    raises_exactly(
        DigestMismatch,
        "logged-digest-mismatch",
        lambda: node.update("bmc", v2.bundle, v1.statements, now=NOW),
    )
    assert held() == before
    # an update cut off by a power loss after staging is abandoned at the next boot: likewise
    with pytest.raises(PowerLost):
        node.update("bmc", v2.bundle, v2.statements, now=NOW, faults=Faults(step="verify"))
    assert len(held()) == len(before) + 1
    node.boot(now=NOW)
    assert held() == before
    node.update("bmc", v2.bundle, v2.statements, now=NOW)
    assert len(set(held()) - set(before)) == 1
