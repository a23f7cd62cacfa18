"""``Device.held``: one operation made of several reads (a node's attestation) verifies the
device's state once; a write inside the hold, or the hold's end, makes the next read verify it
again, and a file changed after a hold is refused at the next use."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from typing import Any

import pytest
from _rot_helpers import NOW, Product, new_device

from ironroot.crypto import Algorithm
from ironroot.errors import DeviceStateTampered, StorageError
from ironroot.rot import BootState, Device, VendorCA, _device, _nvstate, verify_quote

NONCE = bytes(range(32))


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every verification of a device's whole state (``NvStore.load``), by directory."""
    seen: list[str] = []
    original = _nvstate.NvStore.load

    def counted(self: _nvstate.NvStore) -> _nvstate.NvSnapshot:
        seen.append(str(self.directory))
        return original(self)

    monkeypatch.setattr(_nvstate.NvStore, "load", counted)
    return seen


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[Algorithm]:
    """Every IDevID certificate checked against the IDevID key derived again, by algorithm."""
    seen: list[Algorithm] = []
    original = _device._certifies

    def counted(layers: Any, alg: Algorithm, der: bytes, public: Any) -> bool:
        seen.append(alg)
        return original(layers, alg, der, public)

    monkeypatch.setattr(_device, "_certifies", counted)
    return seen


def test_a_hold_verifies_the_state_once_for_its_reads(booted: Device, loads: list[str]) -> None:
    device = Device(booted.directory)
    with device.held() as held:
        assert held is device
        quote = device.quote(NONCE)
        assert device.counter("journal").value() == 0
        secret = device.sealing_secret("hsm")
    assert len(loads) == 1
    # The same answers as without the hold, each read verifying the state.
    loads.clear()
    other = Device(booted.directory)
    assert other.sealing_secret("hsm") == secret
    assert other.counter("journal").value() == 0
    assert other.quote(NONCE) != quote  # signed afresh (randomized signatures)
    assert len(loads) == 3


def test_a_write_inside_a_hold_is_read_back_verified(booted: Device, loads: list[str]) -> None:
    device = Device(booted.directory)
    with device.held():
        assert device.counter("journal").value() == 0
        assert device.counter("journal").increment() == 1  # the lock taken exclusive
        assert device.counter("journal").value() == 1  # the state verified again
        assert device.counter("journal").value() == 1
        device.quote(NONCE)
    # One verification for the first read, one for the write, one after it.
    assert len(loads) == 3
    assert Device(booted.directory).counter("journal").value() == 1


def test_each_hold_verifies_the_state_afresh(booted: Device) -> None:
    device = Device(booted.directory)
    with device.held():
        device.quote(NONCE)
    counter = booted.directory / "counter-journal.json"
    Device(booted.directory).counter("journal").increment()
    doc = json.loads(counter.read_bytes())
    doc["mac"] = ("0" if doc["mac"][0] != "0" else "1") + doc["mac"][1:]
    counter.write_text(json.dumps(doc))
    tampered = pytest.raises(DeviceStateTampered, match=re.escape("counter-journal.json"))
    with tampered, device.held():
        device.quote(NONCE)
    with pytest.raises(DeviceStateTampered):
        device.sealing_secret("hsm")


# --- the IDevID certificates a boot checked ---------------------------------------------------


def test_a_boot_records_the_idevid_certificates_it_checked(booted: Device) -> None:
    boot = booted.boot_state
    assert boot is not None
    assert boot.idevid_checked == tuple(
        hashlib.sha256((booted.directory / f"idevid-{name}.cert.der").read_bytes()).digest()
        for name in ("ecc", "mldsa")
    )


def test_a_quote_checks_the_certificates_against_the_boot_record(
    booted: Device, vendor_ca: VendorCA, derivations: list[Algorithm]
) -> None:
    quote = Device(booted.directory).quote(NONCE)
    claims = verify_quote(quote, nonce=NONCE, trust_anchors=vendor_ca.trust_anchors, now=NOW)
    assert derivations == []  # the files are the ones the boot checked: no key derived again
    assert claims.ueid


def test_a_boot_state_without_the_record_checks_by_derivation(
    booted: Device, derivations: list[Algorithm]
) -> None:
    # A boot state as written before the record existed: the quote derives the IDevID keys.
    device = Device(booted.directory)
    with device._locked():
        state = device._store.load()
        assert state.boot is not None
        device._store.commit(state, boot=dataclasses.replace(state.boot, idevid_checked=()))
    record = json.loads((booted.directory / "boot.json").read_bytes())
    assert "idevid_checked" not in record["body"]
    assert Device(booted.directory).quote(NONCE)
    assert derivations == [Algorithm.ES384, Algorithm.ML_DSA_87]


def _foreign_certificate(into: Device, name: str, product: Product, vendor_ca: VendorCA) -> None:
    """Put another device's IDevID certificate file ``name`` in place of ``into``'s."""
    other = new_device(into.directory.parent / "other", product, vendor_ca)
    shutil.copyfile(other.directory / name, into.directory / name)


def _quote_refused(device: Device, name: str) -> None:
    with pytest.raises(DeviceStateTampered, match=re.escape(f"{name} does not certify")):
        Device(device.directory).quote(NONCE)


def test_a_certificate_replaced_after_the_boot_is_checked_and_refused(
    booted: Device, product: Product, vendor_ca: VendorCA
) -> None:
    name = "idevid-mldsa.cert.der"
    _foreign_certificate(booted, name, product, vendor_ca)
    _quote_refused(booted, name)


def test_a_boot_with_a_foreign_certificate_records_nothing(
    device: Device, product: Product, vendor_ca: VendorCA
) -> None:
    name = "idevid-ecc.cert.der"
    _foreign_certificate(device, name, product, vendor_ca)
    state = device.boot(product.bundle(), now=NOW)
    assert state.idevid_checked == ()
    _quote_refused(device, name)


def test_a_boot_state_recording_a_wrong_digest_count_does_not_parse(booted: Device) -> None:
    boot = booted.boot_state
    assert boot is not None
    record = boot.to_record()
    record["idevid_checked"] = record["idevid_checked"][:1]
    with pytest.raises(StorageError, match="two IDevID certificates"):
        BootState.from_record(record)
    record["idevid_checked"] = ["00" * 31, "00" * 32]
    with pytest.raises(StorageError, match="two IDevID certificates"):
        BootState.from_record(record)
    record["idevid_checked"] = "00" * 32
    with pytest.raises(StorageError, match="does not parse"):
        BootState.from_record(record)
