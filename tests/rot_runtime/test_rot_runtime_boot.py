"""Measured boot: PCRs and log, the SVN fuse, and refused boots that change nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from _rot_helpers import FMC, NOW, RUNTIME, Product, snapshot

from ironroot.errors import (
    BadSignature,
    ConfigError,
    Conflict,
    DigestMismatch,
    IronrootError,
    KeyDescriptorMismatch,
    KeyRevoked,
    ManifestExpired,
    StorageError,
    SvnRollback,
)
from ironroot.firmware import FirmwareBundle
from ironroot.rot import PCR_COUNT, BootState, Device, Fuses, cold_boot


def _sha384(data: bytes) -> bytes:
    return hashlib.sha384(data).digest()


def test_boot_extends_the_documented_pcrs(booted: Device, product: Product) -> None:
    state = booted.boot_state
    assert state is not None
    names = [(e.pcr, e.name) for e in state.log]
    assert names == [
        (0, "device-status"),
        (0, "vendor-ecc-key-hash"),
        (0, "vendor-pqc-key-hash"),
        (0, "owner-key-hash"),
        (0, "fmc-digest"),
        (1, "runtime-digest"),
        (1, "header-digest"),
    ]
    # lifecycle production, debug locked, anti-rollback on, ECC key 0, SVN 3, fuse SVN 3,
    # PQC key 0, PQC type ML-DSA (1), no owner key hash fused
    assert state.log[0].data == bytes([2, 1, 0, 0, 3, 3, 0, 1, 0])
    assert state.log[3].data == bytes(48)
    assert state.log[4].data == _sha384(FMC)
    assert state.log[5].data == _sha384(RUNTIME)
    pcr0 = bytes(48)
    for event in state.log[:5]:
        pcr0 = _sha384(pcr0 + event.data)
    pcr1 = _sha384(_sha384(bytes(48) + _sha384(RUNTIME)) + state.header_digest)
    assert state.pcrs == (pcr0, pcr1, bytes(48))
    assert len(state.pcrs) == PCR_COUNT
    assert state.svn == 3
    assert state.booted_at == NOW


def test_boot_advances_the_svn_fuse_and_a_cold_boot_resets_pcrs(
    booted: Device, product: Product
) -> None:
    assert booted.fuses.svn == 3
    booted.derive_child(b"\x01" * 48, label="vm")
    booted.boot(product.bundle(svn=7), now=NOW)
    state = booted.boot_state
    assert state is not None
    assert booted.fuses.svn == 7
    assert state.pcrs[2] == bytes(48)
    assert len(state.log) == 7


def _toc_mismatch(bundle: bytes) -> bytes:
    parsed = FirmwareBundle.parse(bundle)
    manifest = parsed.manifest
    toc = (dataclasses.replace(manifest.toc[0], version=99), *manifest.toc[1:])
    return dataclasses.replace(parsed, manifest=dataclasses.replace(manifest, toc=toc)).encode()


def _flip_component(bundle: bytes) -> bytes:
    data = bytearray(bundle)
    data[-1] ^= 0x01
    return bytes(data)


def _flip_signature(bundle: bytes) -> bytes:
    parsed = FirmwareBundle.parse(bundle)
    pre = parsed.manifest.preamble
    sig = bytearray(pre.vendor_ecc_signature)
    sig[10] ^= 0x80
    pre = dataclasses.replace(pre, vendor_ecc_signature=bytes(sig))
    manifest = dataclasses.replace(parsed.manifest, preamble=pre)
    return dataclasses.replace(parsed, manifest=manifest).encode()


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("wrong-vendor", KeyDescriptorMismatch),
        ("revoked-key", KeyRevoked),
        ("svn-below-fuse", SvnRollback),
        ("toc-mismatch", DigestMismatch),
        ("component-mismatch", DigestMismatch),
        ("expired", ManifestExpired),
        ("not-yet-valid", ManifestExpired),
        ("bad-signature", BadSignature),
    ],
)
def test_a_refused_boot_raises_and_changes_nothing(
    booted: Device, product: Product, case: str, error: type[IronrootError]
) -> None:
    booted.boot(product.bundle(svn=5), now=NOW)
    when = NOW
    if case == "wrong-vendor":
        bundle = Product.generate().bundle(svn=5)
    elif case == "revoked-key":
        booted.program(lambda f: f.revoke_ecc_key(0, key_count=2))
        bundle = product.bundle(svn=5)
    elif case == "svn-below-fuse":
        bundle = product.bundle(svn=4)
    elif case == "toc-mismatch":
        bundle = _toc_mismatch(product.bundle(svn=5))
    elif case == "component-mismatch":
        bundle = _flip_component(product.bundle(svn=5))
    elif case == "expired":
        bundle, when = product.bundle(svn=5), NOW + dt.timedelta(days=400)
    elif case == "not-yet-valid":
        bundle, when = product.bundle(svn=5), NOW - dt.timedelta(days=60)
    else:
        bundle = _flip_signature(product.bundle(svn=5))
    before = snapshot(booted.directory)
    with pytest.raises(error):
        booted.boot(bundle, now=when)
    assert snapshot(booted.directory) == before


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("wrong-vendor", KeyDescriptorMismatch),
        ("revoked-key", KeyRevoked),
        ("svn-below-fuse", SvnRollback),
        ("component-mismatch", DigestMismatch),
        ("bad-signature", BadSignature),
    ],
)
def test_expired_manifest_report_still_refuses_everything_but_the_dates(
    booted: Device, product: Product, case: str, error: type[IronrootError]
) -> None:
    """``expired_manifest="report"`` lets the dates pass, nothing else: an expired manifest
    that is also unsigned, revoked, rolled back or altered is refused as before."""
    booted.boot(product.bundle(svn=5), now=NOW)
    later = NOW + dt.timedelta(days=400)
    if case == "wrong-vendor":
        bundle = Product.generate().bundle(svn=5)
    elif case == "revoked-key":
        booted.program(lambda f: f.revoke_ecc_key(0, key_count=2))
        bundle = product.bundle(svn=5)
    elif case == "svn-below-fuse":
        bundle = product.bundle(svn=4)
    elif case == "component-mismatch":
        bundle = _flip_component(product.bundle(svn=5))
    else:
        bundle = _flip_signature(product.bundle(svn=5))
    before = snapshot(booted.directory)
    with pytest.raises(error):
        booted.boot(bundle, now=later, expired_manifest="report")
    assert snapshot(booted.directory) == before


@pytest.mark.parametrize(
    ("days", "finding"),
    [
        (400, "the manifest expired at "),
        (-60, "the manifest is not valid before "),
    ],
)
def test_expired_manifest_report_boots_and_records_the_finding(
    booted: Device, product: Product, days: int, finding: str
) -> None:
    bundle = product.bundle(svn=5)
    when = NOW + dt.timedelta(days=days)
    state = booted.boot(bundle, now=when, expired_manifest="report")
    assert state.manifest_validity is not None
    assert state.manifest_validity.startswith(finding)
    assert state.manifest_validity.endswith(" (vendor)")
    # the same keys as a boot within the dates: a date changes no measurement
    assert state.pcrs == booted.boot(bundle, now=NOW).pcrs
    assert booted.boot_state is not None
    assert booted.boot_state.manifest_validity is None
    again = BootState.from_record(state.to_record())
    assert again.manifest_validity == state.manifest_validity


def test_expired_manifest_takes_refuse_or_report_only(booted: Device, product: Product) -> None:
    with pytest.raises(ConfigError) as info:
        booted.boot(product.bundle(svn=5), now=NOW, expired_manifest="ignore")
    assert info.value.detail == 'expired_manifest is "refuse" or "report"'


def test_a_revoked_key_leaves_the_other_key_usable(booted: Device, product: Product) -> None:
    booted.program(lambda f: f.revoke_ecc_key(0, key_count=2))
    state = booted.boot(product.bundle(ecc_index=1), now=NOW)
    assert state.log[0].data[3] == 1  # the ECC key index is measured


def test_anti_rollback_disabled_boots_lower_svns_and_leaves_the_fuse(
    device: Device, product: Product
) -> None:
    device.program(lambda f: f.disable_anti_rollback().advance_svn(4))
    state = device.boot(product.bundle(svn=2), now=NOW)
    assert device.fuses.svn == 4
    assert state.log[0].data[2] == 1  # anti-rollback disabled is measured
    assert state.log[0].data[5] == 0  # and the fuse SVN reads as 0


def test_an_unprovisioned_device_does_not_boot(tmp_path: Path, product: Product) -> None:
    device = Device.create(tmp_path / "blank")
    with pytest.raises(Conflict):
        device.boot(product.bundle(), now=NOW)
    with pytest.raises(Conflict):
        cold_boot(Fuses(), product.bundle(), now=NOW)
    assert device.boot_state is None


def test_a_device_without_a_vendor_hash_refuses_firmware(product: Product) -> None:
    fuses = Fuses().program_uds(bytes(range(1, 65)))
    with pytest.raises(KeyDescriptorMismatch):
        cold_boot(fuses, product.bundle(), now=NOW)


def test_cold_boot_is_pure(device: Device, product: Product) -> None:
    before = snapshot(device.directory)
    result = cold_boot(device.fuses, product.bundle(), now=NOW)
    assert snapshot(device.directory) == before
    assert result.fuses.svn == 3
    assert result.state.pcrs[0] != bytes(48)


def test_the_boot_state_record_is_checked(booted: Device) -> None:
    state = booted.boot_state
    assert state is not None
    record = json.loads(json.dumps(state.to_record()))
    assert BootState.from_record(record) == state
    tampered = dict(record, log=[dict(record["log"][0], data="00" * 9), *record["log"][1:]])
    with pytest.raises(StorageError):  # the PCRs no longer replay from the log
        BootState.from_record(tampered)
    with pytest.raises(StorageError):
        BootState.from_record([])
    with pytest.raises(StorageError):
        BootState.from_record(dict(record, format="ironroot-boot-state/0"))
