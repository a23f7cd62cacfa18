"""Two openers of one device directory at once: creation, provisioning and reads serialize
on the directory lock, so one cannot undo what the other wrote."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from _rot_helpers import NOW, Product

from ironroot.errors import Conflict, DeviceStateTampered
from ironroot.rot import Device, VendorCA, _nvstate


def test_a_device_created_twice_at_once_is_never_reset_under_a_provisioned_one(
    tmp_path: Path, product: Product, vendor_ca: VendorCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Device.create`` checks that no device is there, then writes a blank one. Two
    creations at once (two ``ironroot rot provision`` runs on one directory) both passed the
    check; the later blank write landed over the device the other had created *and
    provisioned meanwhile*, clearing its UDS and every other fuse (OTP bits cleared) under a
    ``provision`` that had returned. The check and the write now hold the directory lock:
    the second creation waits, finds the device and raises ``Conflict``."""
    path = tmp_path / "dev"
    reached, go = threading.Event(), threading.Event()
    original = _nvstate.NvStore.initialize

    def paused(self: _nvstate.NvStore, fuses: object) -> None:
        if threading.current_thread().name == "first":
            reached.set()
            assert go.wait(10)
        original(self, fuses)  # type: ignore[arg-type]

    monkeypatch.setattr(_nvstate.NvStore, "initialize", paused)
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            outcome["first"] = Device.create(path)
        except Conflict as exc:
            outcome["first"] = exc

    def second() -> None:
        try:
            device = Device.create(path)
            device.provision(
                vendor_ca, vendor_key_hash=product.descriptor_hash, now=NOW - dt.timedelta(days=1)
            )
            outcome["second"] = device
        except Conflict as exc:
            outcome["second"] = exc

    one = threading.Thread(target=first, name="first")
    one.start()
    assert reached.wait(10)
    two = threading.Thread(target=second, name="second")
    two.start()
    two.join(1.0)  # before the fix: created and provisioned while the first was paused
    go.set()
    one.join(10)
    two.join(10)
    assert set(outcome) == {"first", "second"}
    created = [name for name, value in outcome.items() if isinstance(value, Device)]
    refused = [value for value in outcome.values() if isinstance(value, Conflict)]
    assert len(created) == 1
    assert len(refused) == 1
    assert "already holds a device" in refused[0].detail
    # whoever won, the device on disk is its device: a provisioning that returned stands
    assert Device(path).fuses.uds_programmed is (created == ["second"])


def test_a_device_opened_while_it_is_created_is_not_reported_tampered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A creation writes the state root (naming ``fuses.json`` absent or new) before
    ``fuses.json``. Another process opening the device in between (``ironroot rot show``
    while ``provision`` creates it) saw a root without fuses and raised
    ``DeviceStateTampered`` "fuses.json was removed": a false alarm. The opener now checks
    again under the directory lock, which the creation holds, and opens the new device."""
    path = tmp_path / "dev"
    reached, go = threading.Event(), threading.Event()
    original = _nvstate.NvStore._write

    def paused(self: _nvstate.NvStore, name: str, data: bytes) -> None:
        if name == _nvstate.FUSES and threading.current_thread().name == "creator":
            reached.set()
            assert go.wait(10)
        original(self, name, data)

    monkeypatch.setattr(_nvstate.NvStore, "_write", paused)
    creator = threading.Thread(target=Device.create, args=(path,), name="creator")
    creator.start()
    assert reached.wait(10)
    opened: list[object] = []

    def open_device() -> None:
        try:
            opened.append(Device(path))
        except DeviceStateTampered as exc:
            opened.append(exc)

    opener = threading.Thread(target=open_device)
    opener.start()
    opener.join(0.5)
    go.set()
    creator.join(10)
    opener.join(10)
    assert len(opened) == 1
    assert isinstance(opened[0], Device), opened[0]
    assert not opened[0].fuses.uds_programmed
