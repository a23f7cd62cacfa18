"""A device's debug state at admission: its SPDM evidence must prove debug off with a raw
DeviceMode block (what a platform device reports at index 0xFE). That block is not a firmware
component (no reference value names it); a device whose evidence has no DeviceMode block, or
one sent as a digest, is not "debug off": its submodule's configuration is 96 and the node is
refused."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world, prepare
from tests.platform.node_world import NOW, World, make_world

from ironroot.attestation import AR4SI, ReferenceValues, TrustTier, verify_ear
from ironroot.errors import AdmissionDenied
from ironroot.firmware import Component
from ironroot.fleet import AdmissionAuthority, Fleet
from ironroot.platform import (
    DEVICE_MODE,
    DEVICE_MODE_INDEX,
    PlatformDevice,
    device_measurement_blocks,
    measure_responder,
)
from ironroot.spdm import MeasurementBlock, MeasurementValueType, Responder


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("device-debug")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _nic(world: World) -> bytes:
    return world.signed(
        [
            Component(1, b"nic fmc debug" * 64, version=1),
            Component(2, b"nic runtime debug" * 64, version=2),
        ],
        svn=3,
    )


def _evidence(
    fleet: Fleet, node: str, firmware: bytes, nonce: bytes, mode: MeasurementBlock | None
) -> bytes:
    """The NIC's SPDM evidence, its DeviceMode block replaced by ``mode`` (none: left out)."""
    platform = fleet.node(node)
    device = PlatformDevice.open(platform.directory / "devices", "nic")
    blocks = [b for b in device_measurement_blocks(firmware) if b.index != DEVICE_MODE_INDEX]
    if mode is not None:
        blocks.append(mode)
    measured = measure_responder(
        Responder(device.identity.key, device.identity.chain, blocks),
        name="nic",
        vendor=device.vendor,
        model=device.model,
        root=platform.config.devices["nic"].root,
        references=ReferenceValues(),
        now=NOW,
        nonce=nonce,
    )
    assert measured.evidence is not None
    return measured.evidence


def _admit(
    aw: AdmissionWorld, tmp_path: Path, mode: MeasurementBlock | None
) -> tuple[Fleet, AdmissionAuthority, object]:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    firmware = _nic(aw.world)
    authority.add_endorsement(aw.world.log_reference("nic", firmware), now=NOW)
    prepared = prepare(fleet, authority, "node-0001")
    nic = _evidence(fleet, "node-0001", firmware, prepared.nonce, mode)
    devices = {**prepared.evidence.devices, "nic": nic}
    request = prepared.request(
        evidence=dataclasses.replace(prepared.evidence, devices=devices).encode()
    )
    return fleet, authority, request


def _nic_submod(authority: AdmissionAuthority) -> tuple[TrustTier, int, tuple[str, ...]]:
    result = verify_ear(authority.ear("node-0001"), [authority.verifier_key], now=NOW)
    submod = result.submods["nic"]
    return submod.status, submod.trust_vector["configuration"], submod.reasons


def test_a_device_proving_debug_off_is_admitted(aw: AdmissionWorld, tmp_path: Path) -> None:
    mode = MeasurementBlock(
        DEVICE_MODE_INDEX, MeasurementValueType.DEVICE_MODE, DEVICE_MODE.encode(), raw=True
    )
    _fleet, authority, request = _admit(aw, tmp_path, mode)
    assert authority.admit(request, now=NOW).status == "admitted"  # type: ignore[arg-type]
    status, configuration, reasons = _nic_submod(authority)
    assert (status, configuration, reasons) == (TrustTier.AFFIRMING, AR4SI.APPROVED_CONFIG, ())


@pytest.mark.parametrize("kind", ["none", "digest"])
def test_a_device_not_proving_debug_off_is_refused(
    aw: AdmissionWorld, tmp_path: Path, kind: str
) -> None:
    digest = hashlib.sha384(DEVICE_MODE.encode()).digest()
    mode = (
        None
        if kind == "none"
        else MeasurementBlock(DEVICE_MODE_INDEX, MeasurementValueType.DEVICE_MODE, digest)
    )
    fleet, authority, request = _admit(aw, tmp_path, mode)
    with pytest.raises(AdmissionDenied) as caught:
        authority.admit(request, now=NOW)  # type: ignore[arg-type]
    assert caught.value.code == "admission-denied"
    assert fleet.record_of("node-0001").status == "quarantined"
    status, configuration, reasons = _nic_submod(authority)
    assert status is TrustTier.CONTRAINDICATED
    assert configuration == AR4SI.UNSUPPORTABLE_CONFIG
    assert "debug: debug is enabled (unlocked) or not proven off" in reasons
