"""SPDM claims say debug is off only when a raw DeviceMode block proves it.

``debug: false`` is an affirmation the default policy's ``debug`` rule (``!debug``) and
release policies (``!evidence.debug``) rely on. Evidence without a DeviceMode block (a device
that does not report one, a carrier that recorded one index), or with one as a digest, says
nothing about debug: its claims say ``debug: true`` (not proven off), and appraisal does not
affirm the configuration.
"""

from __future__ import annotations

import hashlib

import pytest
from _spdm_helpers import BLOCKS, NOW, OPAQUE, Device, make_requester

from ironroot.attestation import (
    DEFAULT_POLICY,
    Endorsements,
    VerifyOptions,
    appraise,
    verify_evidence,
)
from ironroot.crypto import Algorithm
from ironroot.ear import AR4SI
from ironroot.spdm import (
    DeviceMode,
    MeasurementBlock,
    MeasurementValueType,
    Responder,
)

NONCE = bytes(range(32))
MODE_INDEX = 0xFE
NOT_PROVEN = "debug: debug is enabled (unlocked) or not proven off"


@pytest.fixture(scope="module")
def device() -> Device:
    return Device(Algorithm.ES384)


def _without_mode() -> tuple[MeasurementBlock, ...]:
    return tuple(b for b in BLOCKS if b.index != MODE_INDEX)


def _mode(state: int, *, index: int = MODE_INDEX) -> MeasurementBlock:
    value = DeviceMode(0x3F, 0x04, 0x1F, state).encode()
    return MeasurementBlock(index, MeasurementValueType.DEVICE_MODE, value, raw=True)


def _digest_mode(index: int = MODE_INDEX) -> MeasurementBlock:
    digest = hashlib.sha384(DeviceMode(0x3F, 0x04, 0x1F, 0).encode()).digest()
    return MeasurementBlock(index, MeasurementValueType.DEVICE_MODE, digest, raw=False)


def _evidence(device: Device, blocks: tuple[MeasurementBlock, ...], operation: int = 0xFF) -> bytes:
    responder = Responder(device.leaf_key, device.chain, blocks, opaque_elements=OPAQUE)
    return make_requester(responder, device).evidence(NONCE, operation)


def _appraised(device: Device, data: bytes) -> tuple[bool, dict[str, int], tuple[str, ...]]:
    claims = verify_evidence(data, VerifyOptions(now=NOW, nonce=NONCE, roots=(device.root,)))
    trusted = Endorsements.build(service_keys={}, vendor_roots=[device.root], now=NOW)
    (appraisal,) = appraise(claims, trusted, DEFAULT_POLICY, nonce=NONCE, now=NOW).submods.values()
    return claims.debug, dict(appraisal.trust_vector), appraisal.reasons


def test_evidence_without_a_device_mode_block_is_not_debug_off(device: Device) -> None:
    debug, vector, reasons = _appraised(device, _evidence(device, _without_mode()))
    assert debug is True
    assert vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG
    assert NOT_PROVEN in reasons


def test_a_digest_only_device_mode_block_is_not_debug_off(device: Device) -> None:
    blocks = (*_without_mode(), _digest_mode())
    debug, vector, reasons = _appraised(device, _evidence(device, blocks))
    assert debug is True
    assert vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG
    assert NOT_PROVEN in reasons


def test_measurements_of_one_index_are_not_debug_off(device: Device) -> None:
    """A carrier that recorded GET_MEASUREMENTS for index 1 only: no DeviceMode in it."""
    debug, vector, reasons = _appraised(device, _evidence(device, BLOCKS, operation=1))
    assert debug is True
    assert vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG
    assert NOT_PROVEN in reasons


def test_a_raw_device_mode_with_debug_bits_clear_is_debug_off(device: Device) -> None:
    """Reported raw although the requester asked for no raw bit streams (the responder, as
    libspdm's, reports DeviceMode raw); state bits 0-3 clear, bit 4 (invasive debug active
    since manufacturing mode ended) is not a debug state of this boot."""
    debug, vector, reasons = _appraised(device, _evidence(device, (*_without_mode(), _mode(0))))
    assert debug is False
    assert vector["configuration"] == AR4SI.APPROVED_CONFIG
    assert not any(r.startswith("debug:") for r in reasons)


@pytest.mark.parametrize("bit", [0, 1, 2, 3])
def test_a_raw_device_mode_with_a_debug_bit_set_is_debug(device: Device, bit: int) -> None:
    blocks = (*_without_mode(), _mode(1 << bit))
    debug, vector, _ = _appraised(device, _evidence(device, blocks))
    assert debug is True
    assert vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG


def test_a_digest_device_mode_beside_a_raw_one_is_not_debug_off(device: Device) -> None:
    """Every DeviceMode block must prove debug off: a digest one could hide a debug state."""
    blocks = (*_without_mode(), _digest_mode(0x10), _mode(0))
    debug, vector, _ = _appraised(device, _evidence(device, blocks))
    assert debug is True
    assert vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG


def test_the_check_log_says_why_debug_is_not_proven_off(device: Device) -> None:
    data = _evidence(device, _without_mode())
    claims = verify_evidence(data, VerifyOptions(now=NOW, nonce=NONCE, roots=(device.root,)))
    (skipped,) = [c for c in claims.not_checked if c.name == "device-mode"]
    assert skipped.reason == (
        "no raw DeviceMode measurement block: debug mode is not proven off (claims say debug)"
    )
    assert not claims.raw["device_mode"]
    proven = _evidence(device, (*_without_mode(), _mode(0)))
    claims = verify_evidence(proven, VerifyOptions(now=NOW, nonce=NONCE, roots=(device.root,)))
    assert claims.raw["device_mode"] == [
        {
            "index": MODE_INDEX,
            "operational_mode_capabilities": 0x3F,
            "operational_mode_state": 0x04,
            "device_mode_capabilities": 0x1F,
            "device_mode_state": 0,
        }
    ]
    assert [c.name for c in claims.checks if c.ok].count("device-mode") == 1
