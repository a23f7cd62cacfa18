"""Tamper-evident device state: every edit an attacker of the device directory would make is
refused with ``DeviceStateTampered``, by boot and by quote; the UDS is never in a file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _rot_helpers import NOW, Product, new_device, snapshot

from ironroot.crypto import Algorithm
from ironroot.errors import ConfigError, DeviceStateTampered, InputUnavailable, StorageError
from ironroot.rot import Device, Lifecycle, VendorCA

NONCE = bytes(range(16))
_ALGORITHMS = {"idevid-ecc.cert.der": Algorithm.ES384, "idevid-mldsa.cert.der": Algorithm.ML_DSA_87}
CHILD = hashlib.sha384(b"a child layer").digest()


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the JSON document in ``path`` in place, keeping its MAC as it was."""
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True))


def _flip_hex(text: str, at: int = 0) -> str:
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]


def _pcrs(log: list[dict[str, Any]]) -> list[str]:
    pcrs = [bytes(48)] * 3
    for event in log:
        index = event["pcr"]
        pcrs[index] = hashlib.sha384(pcrs[index] + bytes.fromhex(event["data"])).digest()
    return [p.hex() for p in pcrs]


def _assert_refused(device: Device, product: Product, *, match: str) -> None:
    """Reopened (power-on), the device refuses to quote, to boot, to count, to measure a child,
    to give a sealing secret and to show itself."""
    calls: list[Callable[[Device], object]] = [
        lambda d: d.quote(NONCE),
        lambda d: d.boot(product.bundle(), now=NOW),
        lambda d: d.counter("hsm").value(),
        lambda d: d.counter("hsm").increment(),
        lambda d: d.derive_child(CHILD, label="bmc"),
        lambda d: d.sealing_secret("hsm"),
        lambda d: d.program(lambda f: f.advance_svn(9)),
        Device.show,
    ]
    for call in calls:
        with pytest.raises(DeviceStateTampered, match=re.escape(match)):
            call(Device(device.directory))


@pytest.fixture
def dpe(booted: Device) -> Device:
    booted.derive_child(CHILD, label="cvm")
    return booted


def test_an_untouched_device_boots_quotes_and_counts(dpe: Device, product: Product) -> None:
    reopened = Device(dpe.directory)
    assert reopened.quote(NONCE)
    assert reopened.counter("hsm").increment() == 1
    reopened.boot(product.bundle(), now=NOW)


def test_a_lowered_fused_svn_is_refused(booted: Device, product: Product) -> None:
    booted.program(lambda f: f.advance_svn(5))
    _edit(
        booted.directory / "fuses.json",
        lambda d: d["body"]["fuses"].update(fw_svn=f"{(1 << 3) - 1:032x}"),
    )
    _assert_refused(booted, product, match="fuses.json does not verify")


def test_an_unrevoked_vendor_key_is_refused(booted: Device, product: Product) -> None:
    booted.program(lambda f: f.revoke_ecc_key(1, key_count=2))
    _edit(booted.directory / "fuses.json", lambda d: d["body"]["fuses"].update(ecc_revocation=0))
    _assert_refused(booted, product, match="fuses.json does not verify")


@pytest.mark.parametrize(
    "change",
    [
        {"lifecycle": Lifecycle.MANUFACTURING.label},
        {"debug_locked": False, "lifecycle": Lifecycle.MANUFACTURING.label},
        {"anti_rollback_disabled": True},
        {"vendor_key_hash": "ab" * 48},
    ],
    ids=["lifecycle", "debug", "anti-rollback", "vendor-key-hash"],
)
def test_a_changed_fuse_is_refused(
    booted: Device, product: Product, change: dict[str, Any]
) -> None:
    _edit(booted.directory / "fuses.json", lambda d: d["body"]["fuses"].update(change))
    _assert_refused(booted, product, match="fuses.json does not verify")


def test_a_removed_dpe_entry_is_refused(dpe: Device, product: Product) -> None:
    def remove(doc: dict[str, Any]) -> None:
        body = doc["body"]
        body["log"] = [e for e in body["log"] if not e["name"].startswith("dpe:")]
        body["pcrs"] = _pcrs(body["log"])  # the log still replays: only the MAC says no

    _edit(dpe.directory / "boot.json", remove)
    _assert_refused(dpe, product, match="boot.json does not verify")


def test_an_altered_dpe_entry_is_refused(dpe: Device, product: Product) -> None:
    def alter(doc: dict[str, Any]) -> None:
        body = doc["body"]
        body["log"][-1]["data"] = hashlib.sha384(b"approved image").hexdigest()
        body["pcrs"] = _pcrs(body["log"])

    _edit(dpe.directory / "boot.json", alter)
    _assert_refused(dpe, product, match="boot.json does not verify")


def test_an_edited_boot_pcr_is_refused(booted: Device, product: Product) -> None:
    _edit(booted.directory / "boot.json", lambda d: d["body"]["pcrs"].__setitem__(0, "00" * 48))
    _assert_refused(booted, product, match="boot.json does not verify")


@pytest.mark.parametrize("file", ["fuses.json", "boot.json", "state-root.json", "counter-hsm.json"])
def test_a_flipped_mac_is_refused(booted: Device, product: Product, file: str) -> None:
    booted.counter("hsm").increment()
    _edit(booted.directory / file, lambda d: d.update(mac=_flip_hex(d["mac"], 17)))
    _assert_refused(booted, product, match=f"{file} does not verify")


@pytest.mark.parametrize("part", ["ciphertext", "nonce"])
@pytest.mark.parametrize("secret", ["uds_seed", "field_entropy"])
def test_a_flipped_obfuscated_secret_is_refused(
    booted: Device, product: Product, secret: str, part: str
) -> None:
    def flip(doc: dict[str, Any]) -> None:
        sealed = doc["body"][secret]
        sealed[part] = _flip_hex(sealed[part], 5)

    _edit(booted.directory / "fuses.json", flip)
    # the UDS keys the MAC, so it is decrypted first; the field entropy is under the MAC
    expected = "obfuscated uds_seed" if secret == "uds_seed" else "fuses.json does not verify"
    _assert_refused(booted, product, match=expected)


def test_a_removed_uds_is_refused(booted: Device, product: Product) -> None:
    _edit(booted.directory / "fuses.json", lambda d: d["body"].update(uds_seed=None))
    _assert_refused(booted, product, match="fuses.json does not verify")


def test_another_obfuscation_key_is_refused(booted: Device, product: Product) -> None:
    key = booted.obfuscation_key_path
    key.write_text(secrets.token_bytes(32).hex() + "\n")
    _assert_refused(booted, product, match="state-root.json does not verify")


def test_another_obfuscation_key_is_refused_before_provisioning(tmp_path: Path) -> None:
    device = Device.create(tmp_path / "blank")
    device.obfuscation_key_path.write_text(secrets.token_bytes(32).hex() + "\n")
    with pytest.raises(DeviceStateTampered):
        _ = Device(device.directory).fuses


@pytest.mark.parametrize("file", ["fuses.json", "boot.json", "state-root.json"])
def test_a_removed_state_file_is_refused(booted: Device, product: Product, file: str) -> None:
    (booted.directory / file).unlink()
    _assert_refused(booted, product, match="was removed")


def test_a_device_whose_fuses_were_removed_is_not_created_anew(
    booted: Device, product: Product
) -> None:
    """``Device.create`` (what ``ironroot rot provision`` calls when there is no
    ``fuses.json``) looked only for ``fuses.json``: with it removed, it wrote a blank state
    root and fuse bank over the provisioned device's, a reset of what the root recorded."""
    (booted.directory / "fuses.json").unlink()
    before = snapshot(booted.directory)
    with pytest.raises(DeviceStateTampered, match=re.escape("fuses.json was removed")):
        Device.create(booted.directory)
    assert snapshot(booted.directory) == before
    _assert_refused(booted, product, match="fuses.json was removed")


def test_a_device_creation_cut_short_is_created_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A creation cut short after its state root was written and before ``fuses.json`` (a
    kill, a full disk) is not a device whose fuses were removed: its root says the fuse file
    may be absent, so the next ``Device.create`` writes the blank device again."""
    import ironroot.rot._nvstate

    real = ironroot.rot._nvstate.write_atomic
    done: list[str] = []

    def failing(path: Path, data: bytes, **kwargs: Any) -> None:
        if len(done) == 1:
            raise OSError("No space left on device")
        done.append(Path(path).name)
        real(path, data, **kwargs)

    monkeypatch.setattr(ironroot.rot._nvstate, "write_atomic", failing)
    with pytest.raises(StorageError, match=re.escape("cannot write fuses.json")):
        Device.create(tmp_path / "dev")
    monkeypatch.setattr(ironroot.rot._nvstate, "write_atomic", real)
    assert done == ["state-root.json"]
    assert not (tmp_path / "dev" / "fuses.json").exists()
    device = Device.create(tmp_path / "dev")
    assert device.fuses.lifecycle is Lifecycle.UNPROVISIONED


def test_an_older_copy_of_the_fuses_is_refused(booted: Device, product: Product) -> None:
    old = (booted.directory / "fuses.json").read_bytes()  # SVN 3, nothing revoked
    booted.program(lambda f: f.advance_svn(6).revoke_ecc_key(1, key_count=2))
    (booted.directory / "fuses.json").write_bytes(old)
    _assert_refused(booted, product, match="fuses.json is not the copy the device last wrote")


def test_an_older_copy_of_the_boot_state_is_refused(booted: Device, product: Product) -> None:
    old = (booted.directory / "boot.json").read_bytes()  # before the child was measured
    booted.derive_child(CHILD, label="cvm")
    (booted.directory / "boot.json").write_bytes(old)
    _assert_refused(booted, product, match="boot.json is not the copy the device last wrote")


def test_another_devices_state_file_is_refused(
    booted: Device, product: Product, vendor_ca: VendorCA, tmp_path: Path
) -> None:
    other = new_device(tmp_path / "other", product, vendor_ca)
    other.boot(product.bundle(), now=NOW)
    shutil.copyfile(other.directory / "boot.json", booted.directory / "boot.json")
    _assert_refused(booted, product, match="boot.json does not verify")


def test_another_devices_root_and_fuses_are_refused(
    booted: Device, product: Product, vendor_ca: VendorCA, tmp_path: Path
) -> None:
    other = new_device(tmp_path / "other", product, vendor_ca)
    for name in ("fuses.json", "state-root.json"):
        shutil.copyfile(other.directory / name, booted.directory / name)
    _assert_refused(
        booted, product, match="state-root.json does not verify"
    )  # other's key file is not this device's


def test_an_added_state_file_is_refused(booted: Device, product: Product) -> None:
    booted.counter("hsm").increment()
    shutil.copyfile(booted.directory / "counter-hsm.json", booted.directory / "counter-x.json")
    _assert_refused(booted, product, match="counter-x.json is not a well-formed state file")


def test_a_boot_state_added_to_an_unbooted_device_is_refused(
    device: Device, product: Product, vendor_ca: VendorCA, tmp_path: Path
) -> None:
    other = new_device(tmp_path / "other", product, vendor_ca)
    other.boot(product.bundle(), now=NOW)
    shutil.copyfile(other.directory / "boot.json", device.directory / "boot.json")
    with pytest.raises(DeviceStateTampered):
        _ = Device(device.directory).boot_state


def test_garbage_state_files_are_refused(booted: Device, product: Product) -> None:
    for data in (b"", b"{not json", b"[]", b'{"format": "ironroot-rot-state/1"}', b"\xff" * 9):
        (booted.directory / "boot.json").write_bytes(data)
        _assert_refused(booted, product, match="boot.json is not a well-formed state file")


def _replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _replace_with_large_file(path: Path) -> None:
    path.unlink()
    with path.open("wb") as handle:
        handle.truncate(2 * 1024 * 1024)


def _replace_with_link_to_an_endless_device(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _replace_with_link_loop(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.name)


def _replace_with_link_to_its_own_copy(path: Path) -> None:
    copy = path.with_name(path.name + ".copy")
    path.rename(copy)
    path.symlink_to(copy)


@pytest.mark.parametrize("file", ["boot.json", "counter-hsm.json", "state-root.json", "fuses.json"])
@pytest.mark.parametrize(
    ("replace", "match"),
    [
        (_replace_with_directory, "is a directory, not a state file the device writes"),
        (_replace_with_fifo, "is not a regular file, not a state file the device writes"),
        (_replace_with_large_file, "is larger than any state file the device writes"),
        (_replace_with_link_to_an_endless_device, "is a link, not a state file the device writes"),
        (_replace_with_link_loop, "is a link, not a state file the device writes"),
        (_replace_with_link_to_its_own_copy, "is a link, not a state file the device writes"),
    ],
)
def test_a_state_file_replaced_by_another_kind_of_file_is_refused(
    booted: Device, product: Product, file: str, replace: Callable[[Path], None], match: str
) -> None:
    """A state file replaced by a directory, a named pipe (read, one whose writer held it open
    and never wrote kept the device waiting), a file larger than
    any the device writes or a link: tampering, refused at once (no wait, no memory blow-up).
    A directory was ``InputUnavailable`` (exit 2, an operator's mistake), not
    ``DeviceStateTampered``; a link was followed (a loop escaped as a bare ``OSError``
    ``ELOOP``), though the device writes no links: it replaces each file whole."""
    Device(booted.directory).counter("hsm").increment()
    replace(booted.directory / file)
    _assert_refused(booted, product, match=f"{file} {match}")


def test_a_lock_file_replaced_by_a_link_or_a_directory_is_refused(
    booted: Device, product: Product, tmp_path: Path
) -> None:
    """The device's ``.lock`` was opened with ``O_CREAT`` through whatever stood there: a link
    made every operation create the file it named, anywhere the process may write, and a
    directory escaped as a bare ``IsADirectoryError``. Both are an edited device directory."""
    lock = booted.directory / ".lock"
    elsewhere = tmp_path / "elsewhere" / "made-by-the-rot"
    elsewhere.parent.mkdir()
    lock.unlink(missing_ok=True)
    lock.symlink_to(elsewhere)
    _assert_refused(booted, product, match=".lock is not the lock file the device makes")
    assert not elsewhere.exists()
    lock.unlink()
    lock.mkdir()
    _assert_refused(booted, product, match=".lock is not the lock file the device makes")


def test_a_replaced_idevid_certificate_is_refused(
    booted: Device, product: Product, vendor_ca: VendorCA, tmp_path: Path
) -> None:
    other = new_device(tmp_path / "other", product, vendor_ca)
    Device(booted.directory).quote(NONCE)  # its own certificates, checked (and remembered)
    for name in ("idevid-ecc.cert.der", "idevid-mldsa.cert.der"):
        shutil.copyfile(other.directory / name, booted.directory / name)
        with pytest.raises(DeviceStateTampered):
            Device(booted.directory).quote(NONCE)
    (booted.directory / "idevid-ecc.cert.der").write_bytes(b"\x30\x03\x02\x01\x00")
    with pytest.raises(DeviceStateTampered):
        Device(booted.directory).quote(NONCE)


@pytest.mark.parametrize("name", ["idevid-ecc.cert.der", "idevid-mldsa.cert.der"])
def test_an_idevid_certificate_replaced_by_a_link_is_refused(
    booted: Device, product: Product, name: str
) -> None:
    """The IDevID certificates were read through a link: a loop escaped from ``quote`` and
    ``read_idevid_certificate`` as a bare ``OSError`` ``ELOOP``. The device writes them as
    files; a link there (a loop, or one to a copy) is an edited device directory."""
    path = booted.directory / name
    path.rename(path.with_name(name + ".copy"))
    path.symlink_to(name + ".copy")
    for call in (
        lambda: Device(booted.directory).quote(NONCE),
        lambda: Device.read_idevid_certificate(booted.directory, _ALGORITHMS[name]),
    ):
        with pytest.raises(DeviceStateTampered, match=f"{name} is a link, not a file the device"):
            call()
    path.unlink()
    path.symlink_to(name)
    for call in (
        lambda: Device(booted.directory).quote(NONCE),
        lambda: Device(booted.directory).chain(_ALGORITHMS[name]),  # read the IDevID as absent
        lambda: Device(booted.directory).show(),
    ):
        with pytest.raises(DeviceStateTampered, match=f"{name} is a link, not a file the device"):
            call()


def test_a_refusal_writes_nothing(booted: Device, product: Product) -> None:
    _edit(booted.directory / "fuses.json", lambda d: d["body"]["fuses"].update(ecc_revocation=1))
    before = snapshot(booted.directory)
    _assert_refused(booted, product, match="fuses.json does not verify")
    with pytest.raises(DeviceStateTampered):
        Device(booted.directory).counter("hsm").increment()
    assert snapshot(booted.directory) == before


def test_the_cli_reports_a_tampered_device(
    booted: Device, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ironroot.cli import main

    _edit(booted.directory / "boot.json", lambda d: d["body"].update(svn=9))
    out = tmp_path / "quote.cbor"
    argv = ["rot", "quote", "--device", str(booted.directory), "--nonce", NONCE.hex()]
    assert main([*argv, "--out", str(out)]) == 1
    assert "device-state-tampered" in capsys.readouterr().err
    assert not out.exists()


# --- the UDS and the obfuscation key -----------------------------------------------------------


def _encodings(secret: bytes) -> list[bytes]:
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]


def test_no_device_file_holds_the_uds(dpe: Device) -> None:
    dpe.counter("hsm").increment()
    fuses = dpe.fuses
    key = dpe.obfuscation_key_path.read_text().strip()
    files = [p for p in dpe.directory.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"fuses.json", "boot.json", "state-root.json"}
    for path in files:
        data = path.read_bytes()
        for secret in (fuses.uds_seed, fuses.field_entropy, bytes.fromhex(key)):
            for form in _encodings(secret):
                assert form not in data, f"{path.name} holds a secret"


def test_the_obfuscation_key_is_outside_the_directory_and_private(device: Device) -> None:
    path = device.obfuscation_key_path
    assert path == device.directory.resolve().with_name("device.obfuscation-key")
    assert not path.is_relative_to(device.directory.resolve())
    assert path.stat().st_mode & 0o777 == 0o600
    assert (device.directory / "fuses.json").stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip() not in repr(device)


def test_a_named_obfuscation_key_is_used_and_shared(tmp_path: Path) -> None:
    key = tmp_path / "secrets" / "product.key"
    first = Device.create(tmp_path / "a", obfuscation_key=key)
    second = Device.create(tmp_path / "b", obfuscation_key=key)
    assert first.obfuscation_key_path == second.obfuscation_key_path == key.resolve()
    assert not (tmp_path / "a.obfuscation-key").exists()
    third = Device.create(tmp_path / "c")  # its own key, beside it
    for name in ("fuses.json", "state-root.json"):
        shutil.copyfile(first.directory / name, third.directory / name)
    with pytest.raises(DeviceStateTampered):
        _ = Device(third.directory).fuses
    assert Device(third.directory, obfuscation_key=key).fuses.svn == 0  # a's state, a's key
    assert Device(tmp_path / "a", obfuscation_key=key).fuses.svn == 0


def test_a_key_inside_the_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Device.create(tmp_path / "d", obfuscation_key=tmp_path / "d" / "key")
    device = Device.create(tmp_path / "e")
    with pytest.raises(ConfigError):
        Device(device.directory, obfuscation_key=device.directory / "fuses.json")


def test_a_missing_or_malformed_key_is_reported(device: Device) -> None:
    path = device.obfuscation_key_path
    path.write_text("not a key\n")
    with pytest.raises(ConfigError):
        Device(device.directory)
    os.unlink(path)
    with pytest.raises(InputUnavailable):
        Device(device.directory)
    # a key that cannot be read (here a link to itself) was a bare OSError (ELOOP)
    path.symlink_to(path.name)
    with pytest.raises(
        InputUnavailable, match=re.escape(f"cannot read the obfuscation key {path}")
    ):
        Device(device.directory)


@pytest.mark.parametrize("file", ["boot.json", "state-root.json", "counter-hsm.json"])
def test_a_state_file_verified_before_is_verified_again_once_changed(
    booted: Device, product: Product, file: str
) -> None:
    """A state file is remembered by its exact bytes and key once it verified; a changed
    byte is verified afresh and refused."""
    booted.counter("hsm").increment()
    Device(booted.directory).quote(NONCE)  # every state file verified, and remembered
    _edit(booted.directory / file, lambda d: d.update(mac=_flip_hex(d["mac"], 17)))
    _assert_refused(booted, product, match=f"{file} does not verify")


def test_a_state_file_verified_on_one_device_is_refused_on_another(
    booted: Device, product: Product, vendor_ca: VendorCA, tmp_path: Path
) -> None:
    other = new_device(tmp_path / "other", product, vendor_ca)
    other.boot(product.bundle(), now=NOW)
    Device(other.directory).quote(NONCE)  # its boot state verified under its key
    shutil.copyfile(other.directory / "boot.json", booted.directory / "boot.json")
    _assert_refused(booted, product, match="boot.json does not verify")
