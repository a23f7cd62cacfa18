"""Monotonic counters held by the RoT: increment-only, durable, protected like the fuses."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _rot_helpers import NOW, Product

import ironroot.rot._device
import ironroot.rot._nvstate
from ironroot.cli import main
from ironroot.errors import (
    ConfigError,
    Conflict,
    DeviceStateTampered,
    LimitExceeded,
    StorageError,
)
from ironroot.rot import Device, DeviceCounter, MemoryCounter, MonotonicCounter
from scratch import in_memory


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Each test's directory (and its device's), on tmpfs (``scratch.in_memory``): every
    increment is three synced writes, and the crashes here are injected, not power cuts."""
    with in_memory("rot-counter-") as directory:
        yield directory


def test_a_counter_starts_at_zero_and_only_goes_up(device: Device) -> None:
    counter = device.counter("hsm")
    assert isinstance(counter, MonotonicCounter)
    assert counter.name == "hsm"
    assert counter.value() == 0
    assert [counter.increment() for _ in range(3)] == [1, 2, 3]
    assert counter.value() == 3
    assert device.counter("audit").value() == 0
    assert device.counters() == {"hsm": 3}
    assert device.show()["counters"] == {"hsm": 3}


def test_a_counter_reads_its_siblings_on_the_same_device(device: Device) -> None:
    """``DeviceCounter.sibling``: a layer that recorded the counter it committed on (an HSM's
    zeroized anchor) reads that counter back through the counter it holds now."""
    device.counter("old").increment()
    sibling = device.counter("new").sibling("old")
    assert isinstance(sibling, DeviceCounter)
    assert (sibling.name, sibling.value()) == ("old", 1)
    with pytest.raises(ConfigError):
        device.counter("new").sibling("Not A Name")


def test_increments_survive_reopening(device: Device) -> None:
    for _ in range(5):
        device.counter("hsm").increment()
    reopened = Device(device.directory)
    assert reopened.counter("hsm").value() == 5
    assert reopened.counter("hsm").increment() == 6
    assert Device(device.directory).counter("hsm").value() == 6


def test_counters_do_not_change_identity_or_quotes(booted: Device, product: Product) -> None:
    before = booted.sealing_secret("hsm")
    booted.counter("hsm").increment()
    assert booted.sealing_secret("hsm") == before
    assert booted.quote(bytes(16))
    booted.boot(product.bundle(), now=NOW)
    assert booted.counter("hsm").value() == 1


def test_an_edited_counter_is_refused(device: Device) -> None:
    counter = device.counter("hsm")
    for _ in range(3):
        counter.increment()
    path = device.directory / "counter-hsm.json"
    for value in (1, 10):
        doc = json.loads(path.read_bytes())
        doc["body"]["value"] = value
        path.write_text(json.dumps(doc))
        with pytest.raises(DeviceStateTampered, match=r"counter-hsm\.json does not verify"):
            Device(device.directory).counter("hsm").value()
        with pytest.raises(DeviceStateTampered):
            Device(device.directory).counter("hsm").increment()


def test_a_rolled_back_counter_file_is_refused(booted: Device) -> None:
    counter = booted.counter("hsm")
    counter.increment()
    old = (booted.directory / "counter-hsm.json").read_bytes()  # a valid copy, at 1
    counter.increment()
    counter.increment()
    (booted.directory / "counter-hsm.json").write_bytes(old)
    reopened = Device(booted.directory)
    with pytest.raises(DeviceStateTampered, match="older copy"):
        reopened.counter("hsm").value()
    with pytest.raises(DeviceStateTampered, match="older copy"):
        reopened.counter("hsm").increment()
    with pytest.raises(DeviceStateTampered, match="older copy"):
        reopened.quote(bytes(16))  # the device trusts none of its state any more


def test_a_removed_counter_file_is_refused(device: Device) -> None:
    device.counter("hsm").increment()
    (device.directory / "counter-hsm.json").unlink()
    with pytest.raises(DeviceStateTampered, match="was removed"):
        Device(device.directory).counter("hsm").value()


def test_a_counter_copied_to_another_name_is_refused(device: Device) -> None:
    device.counter("hsm").increment()
    device.counter("audit").increment()
    device.counter("audit").increment()
    shutil.copyfile(device.directory / "counter-audit.json", device.directory / "counter-hsm.json")
    with pytest.raises(DeviceStateTampered):
        Device(device.directory).counter("hsm").value()


def test_an_older_root_with_its_counter_is_refused_once_anything_else_moved(
    booted: Device,
) -> None:
    counter = booted.counter("hsm")
    counter.increment()
    saved = {
        n: (booted.directory / n).read_bytes() for n in ("counter-hsm.json", "state-root.json")
    }
    counter.increment()
    booted.derive_child(bytes(48), label="bmc")  # boot.json moved on since the copy
    for name, data in saved.items():
        (booted.directory / name).write_bytes(data)
    with pytest.raises(DeviceStateTampered, match=r"boot\.json is not the copy"):
        Device(booted.directory).counter("hsm").value()


def test_restoring_the_whole_directory_is_outside_the_model(device: Device, tmp_path: Path) -> None:
    """The directory models the device's own NV storage: an older copy of *all* of it (root and
    every state file together) is a consistent older state the device cannot tell apart."""
    device.counter("hsm").increment()
    copy = tmp_path / "copy"
    shutil.copytree(device.directory, copy)
    device.counter("hsm").increment()
    shutil.rmtree(device.directory)
    shutil.copytree(copy, device.directory)
    assert Device(device.directory).counter("hsm").value() == 1


@pytest.mark.parametrize("name", ["", "HSM", "-x", "a/b", "a" * 33, "..", "x y", "é"])
def test_bad_counter_names_are_refused(device: Device, name: str) -> None:
    with pytest.raises(ConfigError):
        device.counter(name)


def test_counters_need_a_provisioned_device(tmp_path: Path) -> None:
    blank = Device.create(tmp_path / "blank")
    with pytest.raises(Conflict):
        blank.counter("hsm").value()
    with pytest.raises(Conflict):
        blank.counter("hsm").increment()


def test_a_device_holds_at_most_64_counters(device: Device) -> None:
    for index in range(ironroot.rot._nvstate.MAX_COUNTERS):
        device.counter(f"c{index}").increment()
    with pytest.raises(LimitExceeded):
        device.counter("one-more").increment()
    assert device.counter("c0").increment() == 2


def test_a_counter_stops_at_its_maximum(device: Device, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ironroot.rot._device, "MAX_COUNTER_VALUE", 2)
    counter = device.counter("hsm")
    counter.increment()
    counter.increment()
    with pytest.raises(Conflict):
        counter.increment()
    assert counter.value() == 2
    memory = MemoryCounter(2**64 - 1)
    with pytest.raises(Conflict):
        memory.increment()


def test_concurrent_increments_are_serialized(device: Device) -> None:
    def work() -> None:
        counter = Device(device.directory).counter("hsm")
        for _ in range(10):
            counter.increment()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert device.counter("hsm").value() == 30


@pytest.mark.parametrize("crash_after", [1, 2])
def test_a_crash_during_an_increment_leaves_the_old_or_the_new_value(
    device: Device, monkeypatch: pytest.MonkeyPatch, crash_after: int
) -> None:
    """The three durable writes of an increment (root naming both copies, the counter file, the
    root naming the new copy): a crash after any of them leaves a device that opens. A write
    that fails without a crash (a full disk) is ``StorageError`` naming the file (it was a
    bare ``OSError``, outside the errors a ``MonotonicCounter`` raises)."""
    counter = device.counter("hsm")
    counter.increment()
    real = ironroot.rot._nvstate.write_atomic
    writes: list[str] = []

    def crashing(path: Path, data: bytes, **kwargs: object) -> None:
        if len(writes) == crash_after:
            raise OSError("power cut")
        writes.append(Path(path).name)
        real(path, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ironroot.rot._nvstate, "write_atomic", crashing)
    written = ("state-root.json", "counter-hsm.json", "state-root.json")[crash_after]
    with pytest.raises(StorageError, match=f"cannot write {written} in .*: power cut"):
        counter.increment()
    monkeypatch.setattr(ironroot.rot._nvstate, "write_atomic", real)
    value = Device(device.directory).counter("hsm").value()
    assert value == (1 if crash_after == 1 else 2)
    assert Device(device.directory).counter("hsm").increment() == value + 1
    assert Device(device.directory).counter("hsm").value() == value + 1


def _interrupt_the_last_root_write(monkeypatch: pytest.MonkeyPatch, writes: int) -> None:
    """The next state write fails at its last step (the root naming only the new copies):
    a full disk there, or a kill, leaves the new files and a root naming old and new."""
    real = ironroot.rot._nvstate.write_atomic
    done: list[str] = []

    def failing(path: Path, data: bytes, **kwargs: object) -> None:
        if len(done) == writes:
            monkeypatch.setattr(ironroot.rot._nvstate, "write_atomic", real)
            raise OSError("No space left on device")
        done.append(Path(path).name)
        real(path, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ironroot.rot._nvstate, "write_atomic", failing)


def test_a_value_read_after_an_interrupted_increment_never_goes_back(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An increment cut short before its last root write left a root naming the old and the
    new counter file. The next open read the new value (a sealed store was accepted bound to
    it), yet the old file, put back, still opened: the counter went from 2 back to 1. The
    first read after the cut settles the root on the copy it found."""
    counter = device.counter("hsm")
    counter.increment()
    old = (device.directory / "counter-hsm.json").read_bytes()
    _interrupt_the_last_root_write(monkeypatch, 2)
    with pytest.raises(StorageError, match=re.escape("cannot write state-root.json")):
        counter.increment()
    assert Device(device.directory).counter("hsm").value() == 2
    (device.directory / "counter-hsm.json").write_bytes(old)
    with pytest.raises(
        DeviceStateTampered, match=re.escape("counter-hsm.json is not the copy the device")
    ):
        Device(device.directory).counter("hsm").value()


def test_a_fused_svn_read_after_an_interrupted_boot_never_goes_back(
    booted: Device, product: Product, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for the SVN fuse: a boot of SVN 6 cut short before its last root write, the
    device then read with SVN 6 fused, and the files of the SVN 3 boot put back, booted SVN 3
    firmware again."""
    old = {name: (booted.directory / name).read_bytes() for name in ("fuses.json", "boot.json")}
    _interrupt_the_last_root_write(monkeypatch, 3)
    with pytest.raises(StorageError, match=re.escape("cannot write state-root.json")):
        booted.boot(product.bundle(svn=6), now=NOW)
    assert Device(booted.directory).fuses.svn == 6
    for name, data in old.items():
        (booted.directory / name).write_bytes(data)
    with pytest.raises(DeviceStateTampered, match="is not the copy the device last wrote"):
        Device(booted.directory).boot(product.bundle(svn=3), now=NOW)


def test_the_old_copy_is_refused_once_an_increment_returned(device: Device) -> None:
    counter = device.counter("hsm")
    counter.increment()
    old = (device.directory / "counter-hsm.json").read_bytes()
    counter.increment()
    root = json.loads((device.directory / "state-root.json").read_bytes())
    assert len(root["body"]["files"]["counter-hsm.json"]) == 1  # only the new copy is named
    (device.directory / "counter-hsm.json").write_bytes(old)
    with pytest.raises(DeviceStateTampered):
        Device(device.directory).counter("hsm").value()


def test_the_memory_counter() -> None:
    counter = MemoryCounter()
    assert isinstance(counter, MonotonicCounter)
    assert counter.value() == 0
    assert counter.increment() == 1
    assert MemoryCounter(7).increment() == 8
    for bad in (-1, 2**64, True):
        with pytest.raises(ConfigError):
            MemoryCounter(bad)


def test_the_device_counter_type(device: Device) -> None:
    counter: MonotonicCounter = device.counter("hsm")
    assert isinstance(counter, DeviceCounter)
    assert repr(counter) == "DeviceCounter('hsm')"


# --- CLI -------------------------------------------------------------------------------------


def test_cli_counter_show_and_increment(device: Device, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--device", str(device.directory)]
    assert main(["rot", "counter", "show", *base, "hsm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "device": str(device.directory),
        "counter": "hsm",
        "value": 0,
    }
    assert main(["rot", "counter", "increment", *base, "hsm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 1
    assert main(["rot", "counter", "increment", *base, "hsm"]) == 0
    assert capsys.readouterr().out.strip() == "counter hsm: 2"
    assert main(["rot", "counter", "show", *base, "hsm"]) == 0
    assert capsys.readouterr().out.strip() == "counter hsm: 2"


def test_cli_counter_errors(device: Device, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--device", str(device.directory)]
    assert main(["rot", "counter", "show", *base, "Not/A/Name"]) == 2
    assert "config" in capsys.readouterr().err
    assert main(["rot", "counter", "increment", *base, "hsm"]) == 0
    path = device.directory / "counter-hsm.json"
    doc = json.loads(path.read_bytes())
    doc["body"]["value"] = 0
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["rot", "counter", "increment", *base, "hsm"]) == 1
    assert "device-state-tampered" in capsys.readouterr().err
    # a directory that is not a device is unusable input: exit 2
    assert main(["rot", "counter", "show", "--device", str(device.directory.parent), "x"]) == 2


def test_cli_obfuscation_key_option_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "keys" / "product.key"
    device = Device.create(tmp_path / "dev", obfuscation_key=key)
    base = ["--device", str(device.directory)]
    assert main(["rot", "counter", "show", *base, "hsm"]) == 2  # no dev.obfuscation-key
    assert "input-unavailable" in capsys.readouterr().err
    assert main(["rot", "counter", "show", *base, "--obfuscation-key", str(key), "hsm"]) == 1
    assert "not provisioned" in capsys.readouterr().err
    monkeypatch.setenv("IRONROOT_ROT_OBFUSCATION_KEY_FILE", str(key))
    assert main(["rot", "show", *base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counters"] == {}
    # The old name held a path without saying so: refused, naming the new one.
    monkeypatch.setenv("IRONROOT_ROT_OBFUSCATION_KEY", str(key))
    assert main(["rot", "show", *base]) == 2
    assert "IRONROOT_ROT_OBFUSCATION_KEY_FILE" in capsys.readouterr().err
