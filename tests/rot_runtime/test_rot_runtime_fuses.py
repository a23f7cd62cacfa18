"""Fuses: one-time-programmable rules, the persisted form, and secrets kept out of sight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _rot_helpers import snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.errors import FuseError, StorageError
from ironroot.rot import Device, Fuses, Lifecycle

UDS = bytes(range(1, 65))
FE = bytes(range(100, 132))
HASH_A = b"\xaa" * 48
HASH_B = b"\xbb" * 48


def _fresh() -> Fuses:
    return Fuses().program_uds(UDS).program_field_entropy(FE)


def test_a_blank_bank_has_every_fuse_clear() -> None:
    fuses = Fuses()
    assert fuses.svn == 0
    assert fuses.lifecycle is Lifecycle.UNPROVISIONED
    assert fuses.debug_unlocked
    assert not fuses.uds_programmed


@pytest.mark.parametrize(
    ("write", "first", "second"),
    [
        ("program_uds", UDS, bytes(range(2, 66))),
        ("program_field_entropy", FE, bytes(range(1, 33))),
        ("program_vendor_key_hash", HASH_A, HASH_B),
        ("program_owner_key_hash", HASH_A, HASH_B),
    ],
)
def test_a_value_fuse_is_written_once(write: str, first: bytes, second: bytes) -> None:
    fuses = getattr(Fuses(), write)(first)
    assert getattr(fuses, write)(first) is fuses  # the same value again: nothing to do
    with pytest.raises(FuseError):
        getattr(fuses, write)(second)


@pytest.mark.parametrize("write", ["program_vendor_key_hash", "program_owner_key_hash"])
def test_a_value_fuse_takes_only_its_size_and_no_zeros(write: str) -> None:
    with pytest.raises(FuseError):
        getattr(Fuses(), write)(b"\x01" * 47)
    with pytest.raises(FuseError):
        getattr(Fuses(), write)(bytes(48))


def test_the_svn_fuse_is_a_thermometer_that_only_grows() -> None:
    fuses = Fuses().advance_svn(5)
    assert fuses.svn_bits == 0b11111
    assert fuses.svn == 5
    assert fuses.advance_svn(5) == fuses
    assert fuses.advance_svn(128).svn_bits == (1 << 128) - 1
    with pytest.raises(FuseError):
        fuses.advance_svn(4)
    with pytest.raises(FuseError):
        fuses.advance_svn(129)


def test_the_lifecycle_never_goes_back_and_production_locks_debug() -> None:
    fuses = _fresh().advance_lifecycle(Lifecycle.MANUFACTURING)
    assert fuses.lifecycle is Lifecycle.MANUFACTURING
    assert fuses.debug_unlocked
    production = fuses.advance_lifecycle(Lifecycle.PRODUCTION)
    assert production.lifecycle is Lifecycle.PRODUCTION
    assert production.debug_locked
    assert production.lifecycle_bits == 0b11
    with pytest.raises(FuseError):
        production.advance_lifecycle(Lifecycle.MANUFACTURING)
    with pytest.raises(FuseError):
        production.advance_lifecycle(Lifecycle.UNPROVISIONED)


def test_the_lifecycle_needs_a_uds_and_the_uds_needs_manufacturing() -> None:
    with pytest.raises(FuseError):
        Fuses().advance_lifecycle(Lifecycle.MANUFACTURING)
    production = _fresh().advance_lifecycle(Lifecycle.PRODUCTION)
    assert production.program_uds(UDS) is production  # same value: no write
    bank = Fuses(lifecycle_bits=0b11, debug_locked=True)
    with pytest.raises(FuseError):
        bank.program_uds(UDS)


def test_debug_lock_is_one_way() -> None:
    fuses = Fuses().lock_debug()
    assert fuses.debug_locked
    assert fuses.lock_debug() is fuses
    with pytest.raises(StorageError):
        Fuses(lifecycle_bits=0b11, uds_seed=UDS, debug_locked=False)


def test_revocation_bits_only_set_and_the_last_key_stays() -> None:
    fuses = Fuses().revoke_ecc_key(0).revoke_ecc_key(2)
    assert fuses.ecc_revocation == 0b0101
    assert fuses.revoke_ecc_key(0) is fuses
    fuses = fuses.revoke_ecc_key(1)
    with pytest.raises(FuseError):
        fuses.revoke_ecc_key(3)  # the last of four
    with pytest.raises(FuseError):
        Fuses().revoke_pqc_key(0, key_count=1)  # a product with one PQC key
    two = Fuses().revoke_pqc_key(1, key_count=2)
    with pytest.raises(FuseError):
        two.revoke_pqc_key(0, key_count=2)
    with pytest.raises(FuseError):
        Fuses().revoke_ecc_key(4)


def test_anti_rollback_disable_is_one_way() -> None:
    fuses = Fuses().disable_anti_rollback()
    assert fuses.anti_rollback_disabled
    assert fuses.disable_anti_rollback() is fuses


def test_secrets_never_show() -> None:
    fuses = _fresh().program_vendor_key_hash(HASH_A)
    text = repr(fuses) + json.dumps(fuses.public_json())
    assert UDS.hex() not in text
    assert FE.hex() not in text
    assert "uds_seed" not in repr(fuses)
    assert repr(UDS) not in repr(fuses)
    with pytest.raises(FuseError) as caught:
        fuses.program_uds(bytes(range(3, 67)))
    assert UDS.hex() not in str(caught.value)
    assert repr(UDS) not in repr(caught.value)


def _round_trip(fuses: Fuses) -> Fuses:
    record = json.loads(json.dumps(fuses.to_record()))
    return Fuses.from_record(record, uds_seed=fuses.uds_seed, field_entropy=fuses.field_entropy)


def test_the_record_round_trips_is_strict_and_holds_no_secret() -> None:
    fuses = (
        _fresh()
        .program_vendor_key_hash(HASH_A)
        .advance_svn(9)
        .revoke_pqc_key(3)
        .advance_lifecycle(Lifecycle.PRODUCTION)
    )
    assert _round_trip(fuses) == fuses
    doc = fuses.to_record()
    text = json.dumps(doc)
    assert UDS.hex() not in text
    assert FE.hex() not in text
    assert "uds_seed" not in doc
    for key, bad in [
        ("fw_svn", "5"),  # 0b101 is not a thermometer code
        ("lifecycle", "retired"),
        ("ecc_revocation", 16),
        ("debug_locked", 1),
        ("format", "ironroot-fuses/1"),  # the old form, with the secrets in the clear
    ]:
        broken = dict(doc, **{key: bad})
        with pytest.raises(StorageError):
            Fuses.from_record(broken, uds_seed=UDS, field_entropy=FE)
    with pytest.raises(StorageError):
        Fuses.from_record(dict(doc, extra=1), uds_seed=UDS, field_entropy=FE)
    with pytest.raises(StorageError):
        Fuses.from_record(dict(doc, uds_seed=UDS.hex()), uds_seed=UDS, field_entropy=FE)
    with pytest.raises(StorageError):
        Fuses.from_record([], uds_seed=UDS, field_entropy=FE)
    with pytest.raises(StorageError):
        Fuses.from_record(doc, uds_seed=bytes(64), field_entropy=FE)  # a zero UDS


_WRITES = st.one_of(
    st.tuples(st.just("advance_svn"), st.integers(0, 128)),
    st.tuples(st.just("revoke_ecc_key"), st.integers(0, 3)),
    st.tuples(st.just("revoke_pqc_key"), st.integers(0, 31)),
    st.tuples(st.just("advance_lifecycle"), st.sampled_from(list(Lifecycle))),
    st.tuples(st.just("lock_debug")),
    st.tuples(st.just("disable_anti_rollback")),
    st.tuples(st.just("program_owner_key_hash"), st.sampled_from([HASH_A, HASH_B])),
)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(_WRITES, max_size=25))
def test_any_sequence_of_writes_only_sets_bits(writes: list[tuple[object, ...]]) -> None:
    fuses = _fresh()
    for name, *args in writes:
        try:
            new = getattr(fuses, str(name))(*args)
        except FuseError:
            continue
        assert new.only_sets_bits_of(fuses)
        assert new.svn >= fuses.svn
        assert new.lifecycle >= fuses.lifecycle
        fuses = new
    assert _round_trip(fuses) == fuses


def test_a_refused_write_changes_nothing_on_disk(tmp_path: Path) -> None:
    device = Device.create(tmp_path / "d")
    device.program(lambda f: f.advance_svn(7))
    before = snapshot(device.directory)
    with pytest.raises(FuseError):
        device.program(lambda f: f.advance_svn(6))
    with pytest.raises(FuseError):
        device.program(lambda f: f.revoke_ecc_key(0, key_count=1))
    assert snapshot(device.directory) == before
    assert device.fuses.svn == 7
    assert (device.directory / "fuses.json").stat().st_mode & 0o777 == 0o600


def test_the_device_refuses_a_bank_that_clears_bits(tmp_path: Path) -> None:
    device = Device.create(tmp_path / "d")
    device.program(lambda f: f.advance_svn(3))
    with pytest.raises(FuseError):
        device.program(lambda f: Fuses())  # bypasses the methods: the store still refuses
    assert device.fuses.svn == 3
