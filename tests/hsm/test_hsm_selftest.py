"""Self-tests: every KAT can fail the module; a failed self-test or pairwise test means an error
state in which everything is refused until a restart."""

from __future__ import annotations

import dataclasses

import pytest
from _hsm_helpers import FAST, NOW_TS, OFFICER, OFFICER_PASS, SECRET, USER, new_hsm, sessions

from ironroot.errors import HsmErrorState
from ironroot.hsm import DEFAULT_KATS, Hsm, Kat, KeyAttributes, KeyType, MemoryStorage
from ironroot.hsm._selftest import SelfTestFailure, pairwise_consistency, run_kats


def _corrupt(index: int) -> tuple[Kat, ...]:
    kat = DEFAULT_KATS[index]
    flipped = bytes([kat.expected[0] ^ 0x01]) + kat.expected[1:]
    return (
        *DEFAULT_KATS[:index],
        dataclasses.replace(kat, expected=flipped),
        *DEFAULT_KATS[index + 1 :],
    )


def test_the_default_table_covers_every_mechanism() -> None:
    run_kats(DEFAULT_KATS)
    names = {k.name for k in DEFAULT_KATS}
    for needed in (
        "SHA-384",
        "HMAC-SHA-384",
        "HKDF-SHA-384",
        "AES-256-GCM encrypt",
        "AES-256-GCM decrypt",
        "AES-KW",
        "AES-KWP",
        "ECDSA P-256",
        "ECDSA P-384",
        "Ed25519",
        "ML-DSA-44",
        "ML-DSA-65",
        "ML-DSA-87",
        "ML-KEM-768",
        "ML-KEM-1024",
        "RSA-OAEP-SHA-256",
    ):
        assert needed in names


@pytest.mark.parametrize("index", range(len(DEFAULT_KATS)), ids=[k.name for k in DEFAULT_KATS])
def test_each_failing_kat_puts_the_hsm_in_error_state(device: object, index: int) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    hsm.close()
    broken = Hsm.open(storage, SECRET, config=FAST, kats=_corrupt(index))
    assert broken.state == "error"
    assert DEFAULT_KATS[index].name in broken.error
    with pytest.raises(HsmErrorState):
        broken.login(OFFICER, OFFICER_PASS)
    # a restart with a good table works again
    assert Hsm.open(storage, SECRET, config=FAST).login(OFFICER, OFFICER_PASS).identity == OFFICER


def test_empty_or_unknown_tables_fail() -> None:
    with pytest.raises(SelfTestFailure):
        run_kats(())
    with pytest.raises(SelfTestFailure):
        run_kats((dataclasses.replace(DEFAULT_KATS[0], mechanism="md5"),))


def test_initialize_with_a_failing_kat_writes_nothing(device: object) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage, kats=_corrupt(0))  # type: ignore[attr-defined]
    assert hsm.state == "error"
    assert storage.read_store() is None
    with pytest.raises(HsmErrorState):
        _ = hsm.hsm_id


def test_on_demand_self_test_failure_refuses_everything_after(device: object) -> None:
    hsm = new_hsm(device.identity, kats=DEFAULT_KATS)  # type: ignore[attr-defined]
    officer, user, auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P384)
    hsm.self_test(user)  # passes
    hsm._kats = _corrupt(3)  # simulate a fault appearing later (the table is data)
    with pytest.raises(HsmErrorState):
        hsm.self_test(officer)
    calls = [
        lambda: hsm.sign(user, handle, b"m"),
        lambda: hsm.login(USER, b"user-credential"),
        lambda: hsm.generate(officer, KeyType.AES_256),
        lambda: hsm.audit_records(auditor),
        lambda: hsm.attest(user, handle),
        lambda: hsm.keys(officer),
    ]
    for call in calls:
        with pytest.raises(HsmErrorState):
            call()


def test_pairwise_consistency_failure_is_an_error_state(device: object) -> None:
    def failing(obj: object) -> None:
        if calls:  # the attestation key at initialization passes; every later pair fails
            raise SelfTestFailure("injected")
        calls.append(obj)

    calls: list[object] = []
    hsm = new_hsm(device.identity, pairwise=failing, clock=lambda: NOW_TS)  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    aes = hsm.generate(officer, KeyType.AES_256)  # secret keys have no pair to test
    with pytest.raises(HsmErrorState):
        hsm.generate(officer, KeyType.ML_DSA_87)
    assert hsm.state == "error"
    with pytest.raises(HsmErrorState):
        hsm.encrypt(user, aes, b"m")


def test_pairwise_consistency_runs_on_unwrapped_pairs(device: object) -> None:
    seen: list[object] = []

    def recording(obj: object) -> None:
        seen.append(obj)
        pairwise_consistency(obj)  # type: ignore[arg-type]

    hsm = new_hsm(device.identity, pairwise=recording)  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    target = hsm.generate(officer, KeyType.EC_P256, KeyAttributes.of(["sign"], exportable=True))
    kem = hsm.generate(officer, KeyType.ML_KEM_768)
    before = len(seen)
    hsm.unwrap(
        user,
        hsm.wrap(user, target, wrapping_key=kem),
        unwrapping_key=kem,
        attributes=KeyAttributes.of(["sign"]),
    )
    assert len(seen) == before + 1
