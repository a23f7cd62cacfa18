"""Sealed persistence, migration, directory storage, and tamper response."""

from __future__ import annotations

from pathlib import Path

import pytest
from _hsm_helpers import (
    FAST,
    NOW_TS,
    OFFICER,
    OFFICER_PASS,
    OTHER_SECRET,
    SECRET,
    USER,
    USER_PASS,
    new_hsm,
    sessions,
)

from durability import SyncLog, unsynced_names
from ironroot.errors import (
    ConfigError,
    Conflict,
    HsmZeroized,
    NotFound,
    SealedStoreError,
)
from ironroot.hsm import DirectoryStorage, Hsm, KeyAttributes, KeyType, MemoryStorage
from ironroot.hsm._storage import seal, unseal
from ironroot.rot import MemoryCounter
from stale_files import plant_look_alikes, stale_temporary


def test_seal_format() -> None:
    sealed = seal(SECRET, b"document")
    assert sealed[:8] == b"IRHSMKS1"
    assert len(sealed) == 8 + 32 + 12 + len(b"document") + 16
    assert unseal(SECRET, sealed) == b"document"
    assert seal(SECRET, b"document") != sealed  # fresh salt and nonce
    with pytest.raises(SealedStoreError):
        unseal(OTHER_SECRET, sealed)
    for index in (0, 10, 45, 60, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[index] ^= 1
        with pytest.raises(SealedStoreError):
            unseal(SECRET, bytes(altered))
    with pytest.raises(SealedStoreError):
        unseal(SECRET, sealed[:40])
    with pytest.raises(ConfigError):
        seal(b"short", b"x")


def test_store_reopens_with_keys_and_identities(device: object) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    handle = hsm.generate(officer, KeyType.ML_DSA_44)
    signature = hsm.sign(user, handle, b"m")
    hsm.close()
    again = Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS)
    user2 = again.login(USER, USER_PASS)
    again.verify(user2, handle, signature, b"m")
    assert again.hsm_id == hsm.hsm_id
    assert again.attestation_chain == hsm.attestation_chain


def test_another_device_or_firmware_cannot_open(device: object) -> None:
    storage = MemoryStorage()
    new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    with pytest.raises(SealedStoreError):
        Hsm.open(storage, OTHER_SECRET, config=FAST)
    with pytest.raises(NotFound):
        Hsm.open(MemoryStorage(), SECRET, config=FAST)
    with pytest.raises(Conflict):
        new_hsm(device.identity, storage)  # type: ignore[attr-defined]


def test_officer_migrates_explicitly(device: object) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    officer = hsm.login(OFFICER, OFFICER_PASS)
    handle = hsm.generate(officer, KeyType.EC_P256)
    hsm.migrate(officer, OTHER_SECRET)
    hsm.close()
    with pytest.raises(SealedStoreError):
        Hsm.open(storage, SECRET, config=FAST)
    moved = Hsm.open(storage, OTHER_SECRET, config=FAST)
    assert [k.handle for k in moved.keys(moved.login(OFFICER, OFFICER_PASS))] == [handle]
    with pytest.raises(ConfigError):
        moved.migrate(moved.login(OFFICER, OFFICER_PASS), b"too short")


def test_directory_storage_round_trip_and_lock(device: object, tmp_path: Path) -> None:
    directory = tmp_path / "hsm"
    counter = MemoryCounter()
    with DirectoryStorage(directory, counter=counter) as storage:
        hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
        officer, user, _ = sessions(hsm)
        handle = hsm.generate(officer, KeyType.AES_256)
        sealed = hsm.encrypt(user, handle, b"persisted")
        hsm.close()
        with pytest.raises(Conflict):
            DirectoryStorage(directory, counter=counter)  # one HSM at a time
    assert (directory / "keystore.sealed").stat().st_mode & 0o777 == 0o600
    assert (directory / "anchor.sealed").stat().st_mode & 0o777 == 0o600
    with DirectoryStorage(directory, counter=counter) as storage:
        again = Hsm.open(storage, SECRET, config=FAST)
        assert again.decrypt(again.login(USER, USER_PASS), handle, sealed) == b"persisted"


def test_an_hsm_start_removes_the_temporaries_a_killed_write_left_under_its_lock(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "hsm"
    counter = MemoryCounter()
    DirectoryStorage(directory, counter=counter).close()
    stale = [stale_temporary(directory, name) for name in ("keystore.sealed", "audit.jsonl")]
    kept = plant_look_alikes(directory)
    with DirectoryStorage(directory, counter=counter):
        late = stale_temporary(directory, "anchor.sealed")
        with pytest.raises(Conflict):  # refused the lock: removes nothing
            DirectoryStorage(directory, counter=counter)
        assert late.exists()
    assert not any(p.exists() for p in stale)
    assert all(p.is_symlink() or p.exists() for p in kept)


def test_a_new_hsm_directory_is_kept_through_a_power_cut(
    device: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folders a new HSM directory needs are made with their names synced into their
    parents (``make_dirs``): the store written durably into a folder whose name a power cut
    loses is lost with it, while the root of trust's counter has moved on."""
    log = SyncLog(monkeypatch)
    with DirectoryStorage(tmp_path / "new" / "hsm", counter=MemoryCounter()) as storage:
        new_hsm(device.identity, storage).close()  # type: ignore[attr-defined]
    lost = unsynced_names(tmp_path / "new", log, ignore=(".lock", "lock"))
    assert [str(p.relative_to(tmp_path)) for p in lost] == []


def test_tamper_zeroizes_everything(device: object) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    officer, user, auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.AES_256)
    key = hsm._keys[handle]
    material, secret = key.stored, hsm._secret
    identity_hash = hsm._identities[USER].hash
    assert any(material)
    hsm.tamper()
    assert hsm.state == "zeroized"
    assert not any(material)
    assert not any(secret)
    assert not any(identity_hash)
    assert storage.read_store() is None
    for call in (
        lambda: hsm.encrypt(user, handle, b"m"),
        lambda: hsm.login(OFFICER, OFFICER_PASS),
        lambda: hsm.audit_records(auditor),
        lambda: hsm.attestation_chain,
        lambda: hsm.generate(officer, KeyType.AES_256),
    ):
        with pytest.raises(HsmZeroized):
            call()
    with pytest.raises(HsmZeroized):  # the anchor says so, not only the missing store
        Hsm.open(storage, SECRET, config=FAST)
    hsm.tamper()  # a second event is harmless
    assert "tamper" in storage.read_audit().decode()


def test_tamper_destroys_the_file(device: object, tmp_path: Path) -> None:
    with DirectoryStorage(tmp_path / "hsm", counter=MemoryCounter()) as storage:
        hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
        copy = (tmp_path / "hsm" / "keystore.sealed").read_bytes()
        hsm.tamper()
        assert not (tmp_path / "hsm" / "keystore.sealed").exists()
        with pytest.raises(HsmZeroized):
            Hsm.open(storage, SECRET, config=FAST)
        (tmp_path / "hsm" / "keystore.sealed").write_bytes(copy)  # put back: still zeroized
        with pytest.raises(HsmZeroized):
            Hsm.open(storage, SECRET, config=FAST)
    # an earlier copy still needs the device's secret, which another device does not have
    other = MemoryStorage()
    other.write_store(copy)
    with pytest.raises(SealedStoreError):
        Hsm.open(other, OTHER_SECRET, config=FAST)


def test_officer_zeroize(device: object) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    officer = hsm.login(OFFICER, OFFICER_PASS)
    hsm.generate(officer, KeyType.EC_P384, KeyAttributes.of(["sign"]))
    hsm.zeroize(officer)
    with pytest.raises(HsmZeroized):
        hsm.keys(officer)
    assert storage.read_store() is None
    lines = storage.read_audit().decode().splitlines()
    assert '"operation":"zeroize"' in lines[-1]
    assert f'"identity":"{OFFICER}"' in lines[-1]


def test_a_second_open_of_an_open_storage_is_a_conflict(device: object) -> None:
    """Was: a second ``Hsm`` opened on a storage object another one had open; the two raced
    the root of trust's counter, and the first to commit after the other entered its error
    state, never to power up again. Now the second open is refused until the first closes,
    and a closed object that writes after another opened the storage writes nothing."""
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    officer = hsm.login(OFFICER, OFFICER_PASS)
    with pytest.raises(Conflict, match="this storage is open in another HSM object") as exc:
        Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS)
    assert exc.value.code == Conflict.code
    handle = hsm.generate(officer, KeyType.AES_256)  # the first is untouched
    hsm.close()
    again = Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS)
    with pytest.raises(Conflict, match="this storage is open in another HSM object"):
        hsm.login(OFFICER, OFFICER_PASS)  # the closed one writes nothing (its audit record)
    assert hsm.state == "error"
    again_officer = again.login(OFFICER, OFFICER_PASS)
    assert [k.handle for k in again.keys(again_officer)] == [handle]
    again.close()
    assert Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS).state == "operational"


def test_a_failed_open_does_not_hold_the_storage(device: object) -> None:
    storage = MemoryStorage()
    new_hsm(device.identity, storage).close()  # type: ignore[attr-defined]
    with pytest.raises(SealedStoreError):
        Hsm.open(storage, OTHER_SECRET, config=FAST)
    assert Hsm.open(storage, SECRET, config=FAST).state == "operational"
