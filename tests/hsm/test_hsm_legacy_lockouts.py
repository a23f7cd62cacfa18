"""Stores written before timed lockouts: a lock that failed logins set there (for good) is a
timed lockout once the store is loaded; an officer's lock stays.

Before timed lockouts (the HSM before commit a274efc) an identity entry of the sealed store
had exactly the nine members ``name, role, salt, hash, n, r, p, failures, locked``, and one
flag held both locks: ``max_failed_logins`` wrong credentials in a row set ``locked`` and left
``failures`` at that count (no failure counted while locked), and an officer's
``lock_identity`` set it and left ``failures`` as it was (below that count: an officer's
unlock set it to 0). Loaded by the version after, such a lock stayed until an officer unlocked
it, and a last crypto officer locked that way stayed locked for good.
"""

from __future__ import annotations

from typing import Final

import cbor2
import pytest
from _hsm_helpers import (
    AUDITOR,
    AUDITOR_PASS,
    FAST,
    NOW_TS,
    OFFICER,
    OFFICER_PASS,
    SECRET,
    USER,
    USER_PASS,
    CrashingStorage,
    DeviceChain,
    new_hsm,
    sessions,
)

from ironroot.cose import encode_cbor
from ironroot.errors import (
    IdentityLocked,
    MalformedInput,
    SealedStoreError,
    StorageError,
    Unauthorized,
)
from ironroot.hsm import Hsm, MemoryStorage, Role, parse_audit_log, verify_audit
from ironroot.hsm._document import decode_store
from ironroot.hsm._storage import seal, unseal

_WRONG: Final = r"^unknown identity or wrong credential$"
_OLD_MEMBERS: Final = ("name", "role", "salt", "hash", "n", "r", "p", "failures", "locked")
"""An identity's members as the store's ``encode_store`` wrote them before timed lockouts."""
_FAILED_LOGINS: Final = FAST.max_failed_logins


class _Clock:
    def __init__(self) -> None:
        self.now = NOW_TS

    def __call__(self) -> float:
        return self.now


def _before_timed_lockouts(sealed: bytes | None, locks: dict[str, int]) -> bytes:
    """``sealed`` as the HSM before timed lockouts wrote it: every identity with exactly that
    version's nine members (no ``locked_until``, no ``lockouts``), and each identity of
    ``locks`` locked with the failure count its lock left (``_FAILED_LOGINS`` for the lock of
    failed logins, fewer for an officer's). The rest of the document is unchanged: that
    version wrote it the same (version 2, same members), deterministic CBOR as ever."""
    assert sealed is not None
    document = cbor2.loads(unseal(SECRET, sealed))
    entries = []
    for entry in document["identities"]:
        old = {member: entry[member] for member in _OLD_MEMBERS}
        if entry["name"] in locks:
            old["failures"], old["locked"] = locks[entry["name"]], True
        entries.append(old)
    document["identities"] = entries
    return seal(SECRET, encode_cbor(document))


def _old_store(device: DeviceChain, clock: _Clock, locks: dict[str, int]) -> CrashingStorage:
    """An HSM with an officer, a user and an auditor, its store then as the version before
    timed lockouts left it with ``locks`` (the anchor names its generation: it opens)."""
    storage = CrashingStorage()
    hsm = new_hsm(device.identity, storage, clock=clock)
    sessions(hsm)
    hsm.close()
    storage.write_store(_before_timed_lockouts(storage.read_store(), locks))
    return storage


def _timed(storage: MemoryStorage) -> list[tuple[str, int, str]]:
    records = parse_audit_log(storage.read_audit())
    verify_audit(records)
    return [(r.identity, r.time, r.result) for r in records if r.operation == "lockout-timed"]


def _open(storage: MemoryStorage, clock: _Clock) -> Hsm:
    return Hsm.open(storage, SECRET, config=FAST, clock=clock)


# --- a lock from failed logins becomes a timed lockout -------------------------------------------


def test_the_last_officers_lock_from_failed_logins_is_timed_when_an_old_store_loads(
    device: DeviceChain,
) -> None:
    """Was: the only crypto officer, locked by five wrong logins under the version before
    timed lockouts, stayed locked after the upgrade, with no one left to unlock it (the HSM's
    administration bricked). Now the lock becomes a lockout of ``lockout_duration`` from the
    load, audited and committed at once."""
    clock = _Clock()
    storage = _old_store(device, clock, {OFFICER: _FAILED_LOGINS})
    before = decode_store(unseal(SECRET, storage.read_store() or b""))
    assert before.untimed == {OFFICER, USER, AUDITOR}
    clock.now += 1000
    loaded = int(clock.now)
    hsm = _open(storage, clock)
    assert _timed(storage) == [(OFFICER, loaded, "ok")]
    after = decode_store(unseal(SECRET, storage.read_store() or b""))
    assert after.untimed == frozenset()  # committed in the format of timed lockouts
    officer = next(i for i in after.identities if i.name == OFFICER)
    assert (officer.locked, officer.failures, officer.lockouts, officer.locked_until) == (
        False,
        0,
        1,
        loaded + FAST.lockout_duration,
    )
    with pytest.raises(Unauthorized, match=_WRONG):
        hsm.login(OFFICER, OFFICER_PASS)
    hsm.close()
    clock.now = loaded + FAST.lockout_duration - 1
    reopened = _open(storage, clock)  # a restart neither clears nor restarts it
    with pytest.raises(Unauthorized, match=_WRONG):
        reopened.login(OFFICER, OFFICER_PASS)
    assert _timed(storage) == [(OFFICER, loaded, "ok")]
    clock.now += 1
    session = reopened.login(OFFICER, OFFICER_PASS)
    assert session.role is Role.OFFICER
    assert (OFFICER, Role.OFFICER, False) in reopened.identities(session)


def test_a_users_lock_from_failed_logins_is_timed_and_the_officer_sees_it(
    device: DeviceChain,
) -> None:
    clock = _Clock()
    storage = _old_store(device, clock, {USER: _FAILED_LOGINS + 2})  # a limit lowered since
    hsm = _open(storage, clock)
    officer = hsm.login(OFFICER, OFFICER_PASS)
    assert hsm.lockouts(officer) == {USER: int(clock.now) + FAST.lockout_duration}
    assert (USER, Role.USER, False) in hsm.identities(officer)
    clock.now += FAST.lockout_duration
    assert hsm.login(USER, USER_PASS).identity == USER


@pytest.mark.parametrize("failures", [0, 1, _FAILED_LOGINS - 1])
def test_an_officers_lock_in_an_old_store_stays(device: DeviceChain, failures: int) -> None:
    """An officer's ``lock_identity`` left fewer failures than the limit: it is not timed."""
    clock = _Clock()
    storage = _old_store(device, clock, {USER: failures, AUDITOR: _FAILED_LOGINS})
    hsm = _open(storage, clock)
    assert _timed(storage) == [(AUDITOR, int(clock.now), "ok")]
    clock.now += 10 * FAST.max_lockout_duration
    with pytest.raises(IdentityLocked, match=r"^identity 'service' is locked: a crypto officer"):
        hsm.login(USER, USER_PASS)
    assert hsm.login(AUDITOR, AUDITOR_PASS).identity == AUDITOR
    officer = hsm.login(OFFICER, OFFICER_PASS)
    assert (USER, Role.USER, True) in hsm.identities(officer)
    assert hsm.lockouts(officer) == {}


def test_an_old_store_without_locks_loads_without_a_write(device: DeviceChain) -> None:
    clock = _Clock()
    storage = _old_store(device, clock, {})
    sealed = storage.read_store()
    hsm = _open(storage, clock)
    assert storage.read_store() == sealed
    assert _timed(storage) == []
    assert hsm.login(OFFICER, OFFICER_PASS).identity == OFFICER


# --- a crash in the middle of it ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "again"), [("after-append", True), ("after-store", False), ("after-anchor", False)]
)
def test_a_crash_while_an_old_lock_is_timed_leaves_it_timed_once(
    device: DeviceChain, step: str, again: bool
) -> None:
    """A power cut in the commit that times the lock: before the store is written the old
    store stays, and the next power-up times it again from then; after, power-up rolls the
    commit forward and the lockout keeps its first end. Never a lock for good, never none."""
    clock = _Clock()
    storage = _old_store(device, clock, {OFFICER: _FAILED_LOGINS})
    first = int(clock.now)
    storage.crash_at = step
    with pytest.raises(StorageError, match=f"^power cut at {step}$"):
        _open(storage, clock)
    clock.now += 100
    hsm = _open(storage, clock)
    start = int(clock.now) if again else first
    expected = [(OFFICER, first, "ok")] + ([(OFFICER, start, "ok")] if again else [])
    assert _timed(storage) == expected  # the chain verifies, the record of the cut one too
    clock.now = start + FAST.lockout_duration - 1
    with pytest.raises(Unauthorized, match=_WRONG):
        hsm.login(OFFICER, OFFICER_PASS)
    clock.now += 1
    assert hsm.login(OFFICER, OFFICER_PASS).role is Role.OFFICER
    hsm.close()
    _open(storage, clock).close()  # and it stays consistent


# --- restore of a backup from before ------------------------------------------------------------


def test_a_backup_from_before_timed_lockouts_is_restored_with_its_lock_timed(
    device: DeviceChain,
) -> None:
    clock = _Clock()
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage, clock=clock)
    officer, _user, _auditor = sessions(hsm)
    backup = _before_timed_lockouts(hsm.backup(officer), {USER: _FAILED_LOGINS, AUDITOR: 0})
    clock.now += 50
    hsm.restore(officer, backup)
    assert _timed(storage) == [(USER, int(clock.now), "ok")]
    officer = hsm.login(OFFICER, OFFICER_PASS)
    assert hsm.lockouts(officer) == {USER: int(clock.now) + FAST.lockout_duration}
    assert (AUDITOR, Role.AUDITOR, True) in hsm.identities(officer)


# --- must reject ---------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["locked_until", "lockouts"])
def test_an_identity_with_one_timed_member_is_refused(device: DeviceChain, member: str) -> None:
    """No version wrote one of the two without the other: not a store of this HSM."""
    storage = MemoryStorage()
    new_hsm(device.identity, storage).close()
    document = cbor2.loads(unseal(SECRET, storage.read_store() or b""))
    del document["identities"][0][member]
    with pytest.raises(
        MalformedInput,
        match=r"^a stored identity has one of locked_until and lockouts without the other$",
    ):
        decode_store(encode_cbor(document))
    storage.write_store(seal(SECRET, encode_cbor(document)))
    with pytest.raises(SealedStoreError, match=r"^the sealed key store opened but does not parse$"):
        Hsm.open(storage, SECRET, config=FAST)
