"""Nothing rolls back and the audit trail cannot be cut or forged (``_anchor``, ``_audit``).

Each break an attacker with write access to the HSM's files tried is reproduced here and must
now fail closed with its exact error: an older sealed store put back (deleted keys, removed
identities, a lockout, a zeroization undone), the anchor removed or put back, a log cut after
its anchor, a log rewritten and rehashed. And each crash point of a commit must power up.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from _hsm_helpers import (
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

from ironroot.errors import (
    AuditChainBroken,
    Conflict,
    HsmErrorState,
    HsmZeroized,
    IdentityLocked,
    KeyUsageNotPermitted,
    NotFound,
    RoleNotPermitted,
    SealedStoreError,
    StorageError,
    StoreRolledBack,
    Unauthorized,
)
from ironroot.hsm import (
    AuditRecord,
    DirectoryStorage,
    Hsm,
    KeyType,
    MemoryStorage,
    Role,
    check_sealed_audit,
    format_audit_log,
    parse_audit_log,
    verify_audit,
)
from ironroot.hsm._anchor import open_anchor
from ironroot.hsm._document import decode_store
from ironroot.hsm._storage import unseal
from ironroot.rot import Device, MemoryCounter
from rot_counters import provisioned_device


def _open(storage: MemoryStorage | DirectoryStorage) -> Hsm:
    return Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS)


def _files(storage: MemoryStorage) -> tuple[bytes, bytes]:
    return storage.read_store() or b"", storage.read_anchor() or b""


def _put_back(storage: MemoryStorage, store: bytes, anchor: bytes | None = None) -> None:
    storage.write_store(store)
    if anchor is not None:
        storage.write_anchor(anchor)


# --- an older store put back ---------------------------------------------------------------


def test_an_older_store_does_not_bring_back_a_deleted_key(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.AES_256)
    store, anchor = _files(storage)
    hsm.delete(officer, handle)
    hsm.close()
    _put_back(storage, store)  # the store alone
    with pytest.raises(StoreRolledBack) as info:
        _open(storage)
    assert "generation" in info.value.detail
    _put_back(storage, store, anchor)  # and its anchor too
    with pytest.raises(StoreRolledBack) as info:
        _open(storage)
    assert "older than the root of trust's counter" in info.value.detail


def test_an_older_store_does_not_clear_a_lockout(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    sessions(hsm)
    store, anchor = _files(storage)
    for _ in range(FAST.max_failed_logins):
        with pytest.raises(Unauthorized):
            hsm.login(USER, b"wrong-credential")
    hsm.close()
    _put_back(storage, store, anchor)
    with pytest.raises(StoreRolledBack):
        _open(storage)


def test_an_older_store_does_not_undo_zeroization(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    sessions(hsm)
    store, anchor = _files(storage)
    hsm.tamper()
    _put_back(storage, store)
    with pytest.raises(HsmZeroized):  # the zeroized anchor
        _open(storage)
    _put_back(storage, store, anchor)
    with pytest.raises(StoreRolledBack):  # an older anchor: behind the counter
        _open(storage)


def test_a_missing_anchor_is_a_rollback(device: DeviceChain) -> None:
    storage = MemoryStorage()
    new_hsm(device.identity, storage).close()
    bare = MemoryStorage(counter=storage.counter)
    bare.write_store(storage.read_store() or b"")
    bare.append_audit(storage.read_audit())
    with pytest.raises(StoreRolledBack) as info:
        _open(bare)
    assert "anchor is missing" in info.value.detail


def test_a_foreign_anchor_does_not_open(device: DeviceChain) -> None:
    storage, other = MemoryStorage(), MemoryStorage()
    new_hsm(device.identity, storage).close()
    new_hsm(device.identity, other).close()
    storage.write_anchor(b"IRHSMKS1" + bytes(60))
    with pytest.raises(SealedStoreError):
        _open(storage)


def test_the_refusal_is_audited(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    store, anchor = _files(storage)
    hsm.generate(officer, KeyType.AES_256)
    hsm.close()
    current = _files(storage)
    _put_back(storage, store, anchor)
    with pytest.raises(StoreRolledBack):
        _open(storage)
    last = parse_audit_log(storage.read_audit())[-1]
    assert (last.identity, last.operation, last.result) == ("-", "power-up", "store-rolled-back")
    _put_back(storage, *current)  # the real files again: it opens, and the record stays
    reopened = _open(storage)
    records = reopened.audit_records(reopened.login("auditor", b"auditor-credential"))
    assert ("-", "power-up", "store-rolled-back") in [
        (r.identity, r.operation, r.result) for r in records
    ]


def test_a_directory_copy_restored_is_refused_against_the_rot_counter(
    device: DeviceChain, tmp_path: Path
) -> None:
    """The whole HSM directory copied and put back — store, anchor and log together: only the
    root of trust's counter, which is not in the directory, says it is old."""
    rot = provisioned_device(tmp_path / "rot")
    directory = tmp_path / "hsm"
    with DirectoryStorage(directory, counter=rot.counter("hsm")) as storage:
        hsm = new_hsm(device.identity, storage)
        officer, _user, _auditor = sessions(hsm)
        handle = hsm.generate(officer, KeyType.AES_256)
        hsm.close()
    shutil.copytree(directory, tmp_path / "copy")
    with DirectoryStorage(directory, counter=rot.counter("hsm")) as storage:
        hsm = _open(storage)
        hsm.delete(hsm.login(OFFICER, OFFICER_PASS), handle)
        hsm.close()
    shutil.rmtree(directory)
    shutil.copytree(tmp_path / "copy", directory)
    with (
        DirectoryStorage(directory, counter=rot.counter("hsm")) as storage,
        pytest.raises(StoreRolledBack),
    ):
        _open(storage)
    assert rot.counter("hsm").value() > 0


# --- crashes in the middle of a commit ----------------------------------------------------------


@pytest.mark.parametrize("step", ["after-store", "after-anchor"])
def test_a_commit_cut_short_powers_up(device: DeviceChain, step: str) -> None:
    storage = CrashingStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    before = storage.counter.value()
    storage.crash_at = step
    with pytest.raises(StorageError):
        hsm.generate(officer, KeyType.AES_256)
    assert storage.counter.value() == before  # the increment never happened
    reopened = _open(storage)  # rolled forward
    assert storage.counter.value() > before
    assert len(reopened.keys(reopened.login(OFFICER, OFFICER_PASS))) == 1
    reopened.close()
    _open(storage).close()  # and it stays consistent


def test_a_commit_cut_short_after_its_audit_append_is_recorded_as_not_persisted(
    device: DeviceChain,
) -> None:
    """Was: a commit appends its audit records before it writes the store, and a crash (a
    real ``kill -9`` of ``generate`` at its file operations) between the two left
    ``generate ok <handle>`` in the log for a key no store held, and nothing said the
    operation had not persisted. Power-up keeps those records (the chain verifies) and adds
    an ``audit-uncommitted`` record naming them."""
    storage = CrashingStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    storage.crash_at = "after-append"
    with pytest.raises(StorageError):
        hsm.generate(officer, KeyType.AES_256)
    reopened = _open(storage)
    assert not reopened.keys(reopened.login(OFFICER, OFFICER_PASS))  # it did not persist
    records = parse_audit_log(storage.read_audit())
    verify_audit(records)
    (generated,) = [r for r in records if r.operation == "generate"]
    assert generated.result == "ok"
    cut = [r for r in records if r.operation == "audit-uncommitted"]
    assert [(r.identity, r.key, r.result) for r in cut] == [
        ("-", f"records-{generated.seq}-{generated.seq}", "ok")
    ]
    assert cut[0].seq > generated.seq
    reopened.close()
    again = _open(storage)  # recorded once: the head is sealed now
    again.close()
    assert (
        sum(r.operation == "audit-uncommitted" for r in parse_audit_log(storage.read_audit())) == 1
    )


@pytest.mark.parametrize("step", ["after-append", "after-store", "after-anchor"])
def test_a_record_that_fills_its_group_is_committed_with_the_store_change(
    device: DeviceChain, step: str
) -> None:
    """Was: a ``generate`` whose record filled a group (``audit_group_commit``; every record
    with 1, what ``tests/hsm/test_hsm_kill.py`` runs) committed that record on its own, then
    the store: a ``kill -9`` between the two commits left a sealed ``generate ok <handle>``
    for a key no store held (found by killing ``generate`` at each of its file operations).
    The record now waits for the store's commit: after a crash anywhere in it, the key and
    its record are both there, or the record is flagged ``audit-uncommitted``."""
    one = dataclasses.replace(FAST, audit_group_commit=1)
    storage = CrashingStorage()
    hsm = new_hsm(device.identity, storage, config=one)
    officer, _user, _auditor = sessions(hsm)
    storage.crash_at = step
    with pytest.raises(StorageError):
        hsm.generate(officer, KeyType.AES_256)
    reopened = Hsm.open(storage, SECRET, config=one, clock=lambda: NOW_TS)
    handles = [k.handle for k in reopened.keys(reopened.login(OFFICER, OFFICER_PASS))]
    reopened.close()
    records = parse_audit_log(storage.read_audit())
    (generated,) = [r for r in records if r.operation == "generate"]
    flagged = [r.key for r in records if r.operation == "audit-uncommitted"]
    if step == "after-append":
        assert (handles, flagged) == ([], [f"records-{generated.seq}-{generated.seq}"])
    else:  # rolled forward
        assert (handles, flagged) == ([generated.key], [])


@pytest.mark.parametrize("step", ["after-store", "after-anchor"])
def test_a_commit_cut_short_after_its_store_records_nothing_uncommitted(
    device: DeviceChain, step: str
) -> None:
    """Rolled forward (the store holds the change): its records are not flagged."""
    storage = CrashingStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    storage.crash_at = step
    with pytest.raises(StorageError):
        hsm.generate(officer, KeyType.AES_256)
    _open(storage).close()
    operations = [r.operation for r in parse_audit_log(storage.read_audit())]
    assert "generate" in operations
    assert "audit-uncommitted" not in operations


@pytest.mark.parametrize("before", ["new", "zeroized"])
def test_an_initialize_cut_short_before_its_anchor_is_initialized_again(
    device: DeviceChain, before: str
) -> None:
    """Was: an ``initialize`` cut short once its first store had landed, before its anchor
    (``tests/hsm/test_hsm_kill.py`` found it with a real ``kill -9``), left storage that
    neither opened (``StoreRolledBack``) nor initialized (``Conflict``: it holds a key store).
    No anchor vouches for that store, so a new initialize writes over it."""
    storage = CrashingStorage()
    if before == "zeroized":
        zeroized = new_hsm(device.identity, storage)
        zeroized.tamper()
        zeroized.close()
    storage.crash_at = "after-store"
    with pytest.raises(StorageError):
        new_hsm(device.identity, storage)
    assert storage.read_store() is not None
    with pytest.raises(StoreRolledBack) as refused:  # never vouched for: it does not open
        _open(storage)
    if before == "new":
        assert "initialize the HSM again" in refused.value.detail
    hsm = new_hsm(device.identity, storage)
    officer = hsm.login(OFFICER, OFFICER_PASS)
    handle = hsm.generate(officer, KeyType.AES_256)
    hsm.close()
    again = _open(storage)
    assert [k.handle for k in again.keys(again.login(OFFICER, OFFICER_PASS))] == [handle]


def test_a_store_an_anchor_vouches_for_is_never_initialized_over(device: DeviceChain) -> None:
    storage = MemoryStorage()
    new_hsm(device.identity, storage).close()
    with pytest.raises(Conflict, match="already holds an HSM key store"):
        new_hsm(device.identity, storage)
    bare = MemoryStorage(counter=storage.counter)  # its anchor gone: the counter still says
    bare.write_store(storage.read_store() or b"")
    with pytest.raises(Conflict, match="already holds an HSM key store"):
        new_hsm(device.identity, bare)


def test_the_counter_moving_under_the_hsm_is_an_error(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    storage.counter.increment()  # another process commits with this counter
    with pytest.raises(StoreRolledBack):
        hsm.generate(officer, KeyType.AES_256)
    assert hsm.state == "error"


# --- the audit log: cut, rewritten ----------------------------------------------------------------


def _world(device: DeviceChain) -> tuple[MemoryStorage, list[bytes]]:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    for _ in range(3):
        hsm.sign(user, handle, b"m")
        with pytest.raises(RoleNotPermitted):
            hsm.generate(user, KeyType.EC_P256)  # a refusal: durable and anchored
    hsm.close()
    return storage, storage.read_audit().splitlines(keepends=True)


def _with_audit(storage: MemoryStorage, audit: bytes) -> MemoryStorage:
    """The same HSM's files with another log, on a counter of its own at the same value (a
    power-up of the copy must not move the original's counter)."""
    copy = MemoryStorage(counter=MemoryCounter(storage.counter.value()))
    copy.write_store(storage.read_store() or b"")
    copy.write_anchor(storage.read_anchor() or b"")
    copy.append_audit(audit)
    return copy


def _check(storage: MemoryStorage) -> object:
    return check_sealed_audit(
        audit=storage.read_audit(),
        store=storage.read_store(),
        anchor=storage.read_anchor(),
        sealing_secret=SECRET,
        counter=storage.counter.value(),
    )


def test_a_cut_tail_is_refused_and_reported(device: DeviceChain) -> None:
    storage, lines = _world(device)
    cut = _with_audit(storage, b"".join(lines[:-3]))
    verify_audit(parse_audit_log(cut.read_audit()))  # the public chain alone cannot tell
    with pytest.raises(AuditChainBroken) as info:
        _open(cut)
    assert "were cut" in info.value.detail
    with pytest.raises(AuditChainBroken) as info:
        _check(cut)
    assert info.value.detail.endswith("its last 3 were cut")
    report = _check(storage)
    assert report.records == len(lines)  # type: ignore[attr-defined]


def test_a_rechained_log_is_refused(device: DeviceChain) -> None:
    """A record rewritten and every later hash recomputed: the chain verifies, the MACs do
    not (the audit key never left the HSM)."""
    storage, lines = _world(device)
    records = list(parse_audit_log(b"".join(lines)))
    index = next(i for i, r in enumerate(records) if r.result == "role-not-permitted")
    records[index] = dataclasses.replace(records[index], result="ok", operation="key-list")
    for i in range(index + 1, len(records)):
        records[i] = dataclasses.replace(records[i], prev=records[i - 1].digest())
    rewritten = _with_audit(storage, format_audit_log(records))
    verify_audit(records)  # publicly, the rewritten log chains
    with pytest.raises(AuditChainBroken) as info:
        _open(rewritten)
    assert "MAC does not verify" in info.value.detail or "head" in info.value.detail
    with pytest.raises(AuditChainBroken):
        verify_audit(records, key=bytes(32))  # any key but the HSM's fails


def test_a_record_rewritten_after_the_anchor_is_caught_by_its_mac(device: DeviceChain) -> None:
    """Records on disk after the last anchor (the process died between the log's fsync and
    the anchor) can be rewritten without touching the anchor's head: the MAC catches them."""
    storage = CrashingStorage()
    hsm = new_hsm(device.identity, storage)
    officer, user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    hsm.sign(user, handle, b"m")
    storage.crash_at = "after-append"
    with pytest.raises(StorageError):
        hsm.flush()
    records = list(parse_audit_log(storage.read_audit()))
    assert records[-1].operation == "sign"
    intact = _with_audit(storage, format_audit_log(records))
    _open(intact).close()  # the unanchored tail is genuine: accepted
    records[-1] = dataclasses.replace(records[-1], operation="verify")
    with pytest.raises(AuditChainBroken) as info:
        _open(_with_audit(storage, format_audit_log(records)))
    assert "MAC does not verify" in info.value.detail


# --- security events are durable ------------------------------------------------------------------


def test_refusals_are_durable_before_the_call_returns(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # group commit of 256 for use records
    officer, user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    hsm.sign(user, handle, b"use")  # waits in memory
    written = len(storage.read_audit().splitlines())
    with pytest.raises(KeyUsageNotPermitted):
        hsm.encrypt(user, handle, b"x")
    on_disk = parse_audit_log(storage.read_audit())
    assert len(on_disk) == written + 2  # the waiting use record and the refusal
    assert on_disk[-1].result == "key-usage-not-permitted"
    with pytest.raises(Unauthorized):
        hsm.login("nobody", b"whatever-credential")
    assert parse_audit_log(storage.read_audit())[-1].operation == "login"
    report = _check(storage)
    assert report.anchored == len(parse_audit_log(storage.read_audit()))  # type: ignore[attr-defined]


def test_a_failed_pairwise_test_leaves_a_record(device: DeviceChain) -> None:
    from ironroot.hsm._selftest import SelfTestFailure

    storage = MemoryStorage()
    armed = {"fail": False}

    def pairwise(obj: object) -> None:
        if armed["fail"]:
            raise SelfTestFailure("the key pair does not sign and verify")

    hsm = new_hsm(device.identity, storage, pairwise=pairwise)
    officer, _user, _auditor = sessions(hsm)
    armed["fail"] = True
    with pytest.raises(HsmErrorState):
        hsm.generate(officer, KeyType.EC_P256)
    last = parse_audit_log(storage.read_audit())[-1]
    assert (last.operation, last.result) == ("pairwise-test", "hsm-error-state")


# --- backup and restore, said so -----------------------------------------------------------------


def test_restore_is_an_officer_operation_that_says_so(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, user, auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.AES_256)
    backup = hsm.backup(officer)
    hsm.delete(officer, handle)
    with pytest.raises(RoleNotPermitted):
        hsm.restore(user, backup)
    hsm.restore(officer, backup)
    officer = hsm.login(OFFICER, OFFICER_PASS)  # restore ends every session
    assert [k.handle for k in hsm.keys(officer)] == [handle]
    auditor = hsm.login("auditor", b"auditor-credential")
    operations = [(r.operation, r.result) for r in hsm.audit_records(auditor)]
    assert ("restore", "ok") in operations
    hsm.close()
    reopened = _open(storage)  # the restored store is the latest generation
    assert [k.handle for k in reopened.keys(reopened.login(OFFICER, OFFICER_PASS))] == [handle]
    other = new_hsm(device.identity)
    with pytest.raises(Conflict, match="another HSM"):
        other.restore(other.login(OFFICER, OFFICER_PASS), backup)


# --- a locked identity says nothing to a wrong credential -----------------------------------------


def test_a_locked_identity_answers_a_wrong_credential_like_any_other(device: DeviceChain) -> None:
    hsm = new_hsm(device.identity)
    officer, _user, _auditor = sessions(hsm)
    hsm.lock_identity(officer, USER)
    with pytest.raises(Unauthorized) as locked:
        hsm.login(USER, b"wrong-credential")
    with pytest.raises(Unauthorized) as unknown:
        hsm.login("nobody", b"wrong-credential")
    assert (locked.value.code, locked.value.detail) == (unknown.value.code, unknown.value.detail)
    with pytest.raises(IdentityLocked):
        hsm.login(USER, USER_PASS)  # only the right credential learns it is locked
    with pytest.raises(NotFound):
        Hsm.open(MemoryStorage(), SECRET, config=FAST)


@pytest.mark.parametrize("step", ["after-append", "after-store", "after-anchor"])
def test_a_failed_write_stops_the_hsm_so_no_two_stores_share_a_generation(
    device: DeviceChain, step: str
) -> None:
    """A write that fails without a power cut (a full disk, an anchor file made unwritable)
    once left the HSM running: its next commit wrote another store of the generation already
    on disk, and that earlier copy, put back, opened and brought a deleted key back."""
    storage = CrashingStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.AES_256)
    storage.crash_at = step
    with pytest.raises(StorageError):
        hsm.generate(officer, KeyType.AES_256)
    stale = storage.read_store() or b""
    with pytest.raises(HsmErrorState):
        hsm.delete(officer, handle)  # nothing more is committed from this process
    reopened = _open(storage)  # power-up finishes the commit cut short
    reopened.delete(reopened.login(OFFICER, OFFICER_PASS), handle)
    reopened.close()
    storage.write_store(stale)
    with pytest.raises(StoreRolledBack):
        _open(storage)


def test_deleting_the_anchor_does_not_let_the_log_be_cut_unnoticed(device: DeviceChain) -> None:
    """Without the root of trust's counter, the anchor was optional: deleting it left only the
    store's (older) head, and the records since — refusals among them — could be cut."""
    storage, lines = _world(device)
    for without in (None, storage.counter.value()):
        with pytest.raises(StoreRolledBack, match="anchor is missing"):
            check_sealed_audit(
                audit=b"".join(lines[:-3]),
                store=storage.read_store(),
                anchor=None,
                sealing_secret=SECRET,
                counter=without,
            )


def test_without_the_counter_the_store_must_still_be_the_one_the_anchor_names(
    device: DeviceChain,
) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    old_anchor = storage.read_anchor()
    hsm.generate(officer, KeyType.AES_256)
    hsm.generate(officer, KeyType.AES_256)  # the store is two commits past the old anchor
    hsm.close()
    with pytest.raises(StoreRolledBack, match="generation"):
        check_sealed_audit(
            audit=storage.read_audit(),
            store=storage.read_store(),
            anchor=old_anchor,
            sealing_secret=SECRET,
        )


def test_another_hsms_anchor_does_not_vouch_for_an_older_store(device: DeviceChain) -> None:
    """Two HSMs sealed with the device's one secret, on counters of their own: an anchor of
    the second, whose counter and store generation happen to fit, put beside an older store of
    the first once opened it (a deleted key back). The anchor names its HSM."""
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.AES_256)
    older = storage.read_store() or b""
    older_generation = storage.counter.value()
    hsm.delete(officer, handle)
    for _ in range(4):
        hsm.logout(hsm.login(OFFICER, OFFICER_PASS))
    hsm.close()
    probe = MemoryStorage()
    new_hsm(device.identity, probe).close()
    first = decode_store(unseal(SECRET, probe.read_store() or b"")).generation  # from 0
    # The second HSM's counter is the one a zeroized predecessor left at the value that
    # makes the second's first store take the older store's generation.
    other = MemoryStorage()
    predecessor = new_hsm(device.identity, other)
    while other.counter.value() < older_generation - first - 1:
        predecessor.login(OFFICER, OFFICER_PASS)
    predecessor.tamper()
    assert other.counter.value() == older_generation - first
    second = new_hsm(device.identity, other)
    while other.counter.value() < storage.counter.value():
        second.login(OFFICER, OFFICER_PASS)  # a security event: an anchor, no store write
    second.close()
    assert other.counter.value() == storage.counter.value()
    storage.write_store(older)
    storage.write_anchor(other.read_anchor() or b"")
    with pytest.raises(StoreRolledBack, match="another HSM"):
        _open(storage)


def test_another_hsms_whole_files_do_not_open_on_this_hsms_counter(
    device: DeviceChain, tmp_path: Path
) -> None:
    """The break: two HSMs on one device (one sealing secret, a counter each). A copy of the
    second HSM's files — store, anchor and log, all its own — taken when its counter read
    what the first's reads later, put in the first's directory, opened against the first's
    counter: the second HSM came back as it was, a key deleted since with it. The anchor
    names the counter it was committed on."""
    rot = provisioned_device(tmp_path / "rot")
    first, second = tmp_path / "first", tmp_path / "second"
    with DirectoryStorage(second, counter=rot.counter("hsm-second")) as storage:
        hsm = new_hsm(device.identity, storage)
        officer, _user, _auditor = sessions(hsm)
        handle = hsm.generate(officer, KeyType.AES_256)
        hsm.close()
    snapshot = rot.counter("hsm-second").value()
    shutil.copytree(second, tmp_path / "copy", ignore=shutil.ignore_patterns("lock"))
    with DirectoryStorage(second, counter=rot.counter("hsm-second")) as storage:
        hsm = _open(storage)
        hsm.delete(hsm.login(OFFICER, OFFICER_PASS), handle)
        hsm.close()
    with DirectoryStorage(first, counter=rot.counter("hsm")) as storage:
        hsm = new_hsm(device.identity, storage)
        while rot.counter("hsm").value() < snapshot:
            hsm.login(OFFICER, OFFICER_PASS)  # each login is one commit
        hsm.close()
    assert rot.counter("hsm").value() == snapshot
    for name in ("keystore.sealed", "anchor.sealed", "audit.jsonl"):
        shutil.copyfile(tmp_path / "copy" / name, first / name)
    with (
        DirectoryStorage(first, counter=rot.counter("hsm")) as storage,
        pytest.raises(StoreRolledBack) as info,
    ):
        _open(storage)
    assert "hsm-second" in info.value.detail
    with pytest.raises(StoreRolledBack, match="hsm-second"):  # and the owner's offline check
        check_sealed_audit(
            audit=(first / "audit.jsonl").read_bytes(),
            store=(first / "keystore.sealed").read_bytes(),
            anchor=(first / "anchor.sealed").read_bytes(),
            sealing_secret=SECRET,
            counter=rot.counter("hsm").value(),
            rot_counter="hsm",
        )


def test_an_anchor_committed_between_two_counter_readings_is_the_hsms(
    device: DeviceChain,
) -> None:
    """Read while the HSM runs (``audit verify``), the counter is read before and after the
    files: an anchor from the first reading to one past the second was committed meanwhile
    and is accepted; one behind the first is still an older copy, one beyond the second
    plus one still another counter's."""
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[arg-type]
    officer = hsm.login(OFFICER, OFFICER_PASS)
    older = storage.read_anchor()
    first = storage.counter.value()
    for _ in range(3):
        hsm.self_test(officer)
    anchored = storage.counter.value()
    files = {
        "audit": storage.read_audit(),
        "store": storage.read_store(),
        "anchor": storage.read_anchor(),
        "sealing_secret": SECRET,
    }
    report = check_sealed_audit(**files, counter=first, counter_after=anchored + 2)  # type: ignore[arg-type]
    assert report.counter == anchored  # type: ignore[attr-defined]
    check_sealed_audit(**files, counter=first, counter_after=anchored - 1)  # type: ignore[arg-type]
    with pytest.raises(StoreRolledBack, match="ahead of the root of trust's counter"):
        check_sealed_audit(**files, counter=first, counter_after=anchored - 2)  # type: ignore[arg-type]
    with pytest.raises(StoreRolledBack, match="older than the root of trust's counter"):
        check_sealed_audit(**files, counter=anchored + 1, counter_after=anchored + 5)  # type: ignore[arg-type]
    files["anchor"] = older  # an older anchor put back stays a rollback, whatever the range
    with pytest.raises(StoreRolledBack):
        check_sealed_audit(**files, counter=first + 1, counter_after=anchored)  # type: ignore[arg-type]


def test_a_second_hsm_on_a_counter_in_use_is_refused_at_initialize(
    device: DeviceChain, tmp_path: Path
) -> None:
    """Was: two HSM directories on one root-of-trust counter (the default name ``hsm`` for
    both) initialized fine; then each commit of one moved the counter under the other, which
    entered its error state and never powered up again: its anchor behind the counter is a
    rollback for all it can tell, and every key in it was lost. Now the second is refused
    before it writes anything; a counter of its own works."""
    rot = provisioned_device(tmp_path / "rot")
    with DirectoryStorage(tmp_path / "first", counter=rot.counter("hsm")) as storage:
        first = new_hsm(device.identity, storage)  # type: ignore[arg-type]
        officer = first.login(OFFICER, OFFICER_PASS)
        handle = first.generate(officer, KeyType.AES_256)
        with DirectoryStorage(tmp_path / "second", counter=rot.counter("hsm")) as other:
            with pytest.raises(Conflict, match="the root of trust's counter hsm is at"):
                new_hsm(device.identity, other)  # type: ignore[arg-type]
            assert other.read_store() is None
            assert other.read_anchor() is None
        with DirectoryStorage(tmp_path / "second", counter=rot.counter("hsm-2")) as other:
            new_hsm(device.identity, other).close()  # type: ignore[arg-type]
        first.self_test(officer)  # the first goes on committing
        first.close()
        again = _open(storage)
        assert handle in {k.handle for k in again.keys(again.login(OFFICER, OFFICER_PASS))}


# --- a zeroized predecessor's log: what a successor continues ------------------------------


def _zeroized_under_dual_control(device: DeviceChain) -> tuple[MemoryStorage, list[AuditRecord]]:
    """A predecessor kept under a quorum of 2, zeroized by one officer: its files (the
    zeroized anchor, the log) and its records."""
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, user, _auditor = sessions(hsm)
    hsm.add_identity(officer, "second", Role.OFFICER, b"second-credential")
    hsm.set_officer_quorum(officer, 2)
    handle = hsm.generate(officer, KeyType.EC_P256)
    hsm.sign(user, handle, b"m")
    hsm.zeroize(hsm.login(OFFICER, OFFICER_PASS))
    return storage, list(parse_audit_log(storage.read_audit()))


def _rehashed(records: list[AuditRecord], start: int) -> list[AuditRecord]:
    for i in range(max(start, 1), len(records)):
        records[i] = dataclasses.replace(records[i], prev=records[i - 1].digest())
    return records


@pytest.mark.parametrize("edit", ["cut", "rewritten", "appended"])
def test_a_successor_does_not_continue_a_predecessors_log_edited_after_the_zeroize(
    device: DeviceChain, edit: str
) -> None:
    """After a zeroize nothing holds the predecessor's audit key, so its records can be cut,
    rewritten and rehashed, or added to without a MAC failing; a successor initialized on the
    device then continued that log and sealed its head, so the edit verified for good
    (and a cut ``zeroize`` record, with its ``quorum-2``, let the successor's one officer
    prune what the predecessor's quorum kept). The zeroized anchor seals the log's length
    and head at the zeroize: the successor's initialize holds the log to it."""
    storage, records = _zeroized_under_dual_control(device)
    assert records[-1].operation == "zeroize"
    assert records[-1].key == "quorum-2"
    size = len(records)
    if edit == "cut":
        records = records[:-1]  # the zeroize record, and its quorum, gone
    elif edit == "rewritten":
        index = next(i for i, r in enumerate(records) if r.operation == "sign")
        records[index] = dataclasses.replace(records[index], operation="verify")
        records = _rehashed(records, index + 1)
    else:
        records.append(dataclasses.replace(records[-1], seq=size, prev=records[-1].digest()))
    storage.reset_audit(format_audit_log(records))
    verify_audit(records)  # publicly, the edited log chains
    with pytest.raises(AuditChainBroken) as info:
        new_hsm(device.identity, storage)
    assert info.value.code == "audit-chain-broken"
    expected = {
        "cut": f"the log ends at record {size - 2}",
        "rewritten": f"the log ends at record {size - 1} with another head",
        "appended": f"record {size} (zeroize) after them was written by no HSM initialized here",
    }[edit]
    assert info.value.detail == (
        f"the audit log of the zeroized HSM here is not the one its anchor sealed ({size} "
        f"records): {expected}; it was edited after the zeroize, and a new HSM does not "
        "continue it"
    )
    assert storage.read_store() is None  # nothing initialized over it


@pytest.mark.parametrize("counter", ["same", "new"])
def test_a_successor_continues_a_predecessors_log_as_its_anchor_sealed_it(
    device: DeviceChain, counter: str
) -> None:
    storage, records = _zeroized_under_dual_control(device)
    if counter == "new":
        moved = MemoryStorage()
        moved.write_anchor(storage.read_anchor() or b"")
        moved.append_audit(storage.read_audit())
        storage = moved
    successor = new_hsm(device.identity, storage)
    _alone, _user, auditor = sessions(successor)
    continued = successor.audit_records(auditor)
    assert list(continued[: len(records)]) == records


@pytest.mark.parametrize("anchor", ["kept", "removed"])
def test_a_predecessors_edited_log_is_not_continued_on_a_new_counter(
    device: DeviceChain, anchor: str
) -> None:
    """The same edit, the files then put on a new counter (a counter of its own for the
    next HSM, ``--counter NAME``), with the zeroized anchor or without it: a new counter
    vouches for no anchor, and no anchor at all let any log be continued. A log is continued
    only as a zeroized anchor here sealed it; with none, only what a first ``initialize`` cut
    short before its anchor wrote is."""
    storage, records = _zeroized_under_dual_control(device)
    size = len(records)
    moved = MemoryStorage()  # a new counter, at 0
    if anchor == "kept":
        moved.write_anchor(storage.read_anchor() or b"")
    moved.append_audit(format_audit_log(records[:-1]))
    with pytest.raises(AuditChainBroken) as info:
        new_hsm(device.identity, moved)
    assert info.value.detail == (
        f"the audit log of the zeroized HSM here is not the one its anchor sealed ({size} "
        f"records): the log ends at record {size - 2}; it was edited after the zeroize, and a "
        "new HSM does not continue it"
        if anchor == "kept"
        else "the audit log here holds records no zeroized HSM's anchor seals: record 1 "
        f"({records[1].operation}) was written by no HSM initialized here; a new HSM does not "
        "continue it"
    )
    assert moved.read_store() is None


def _zeroized_twice(device: DeviceChain, tmp_path: Path) -> tuple[Device, Path, Path]:
    """Two HSMs in one directory on the root of trust's counter ``hsm``: the first zeroized
    (a copy of its zeroized anchor and log kept aside), the second initialized after it (it
    continues the first's log: a key generated and used), then zeroized. Returns the root of
    trust, the directory and the copy of the first's files."""
    rot = provisioned_device(tmp_path / "rot")
    directory, older = tmp_path / "hsm", tmp_path / "older"
    with DirectoryStorage(directory, counter=rot.counter("hsm")) as storage:
        new_hsm(device.identity, storage).tamper()  # type: ignore[arg-type]
    shutil.copytree(directory, older, ignore=shutil.ignore_patterns("lock"))
    with DirectoryStorage(directory, counter=rot.counter("hsm")) as storage:
        second = new_hsm(device.identity, storage)  # type: ignore[arg-type]
        officer, user, _auditor = sessions(second)
        second.sign(user, second.generate(officer, KeyType.EC_P256), b"m")
        second.zeroize(second.login(OFFICER, OFFICER_PASS))
    return rot, directory, older


def test_an_older_zeroized_anchor_and_its_log_are_not_continued_on_a_new_counter(
    device: DeviceChain, tmp_path: Path
) -> None:
    """The break: the files of a zeroized HSM (zeroized anchor, log) copied aside; a second
    HSM initialized after it on the same counter continues the log (a key made and used),
    then is zeroized. The older zeroized anchor and its shorter log, put back and initialized
    on a new counter (which reads 0, so it vouches for no anchor), were continued: the second
    HSM's records were gone, and the new HSM sealed the cut log as its own. The anchor names
    the counter it was committed on, which reads past it: an earlier copy."""
    rot, directory, older = _zeroized_twice(device, tmp_path)
    latest = parse_audit_log((directory / "audit.jsonl").read_bytes())
    assert any(r.operation == "sign" for r in latest)
    older_anchor = open_anchor(SECRET, (older / "anchor.sealed").read_bytes())
    assert older_anchor.zeroized
    assert older_anchor.counter < rot.counter("hsm").value()
    for name in ("anchor.sealed", "audit.jsonl"):
        shutil.copyfile(older / name, directory / name)
    with (
        DirectoryStorage(directory, counter=rot.counter("hsm-new")) as storage,
        pytest.raises(StoreRolledBack) as info,
    ):
        new_hsm(device.identity, storage)  # type: ignore[arg-type]
    assert info.value.code == "store-rolled-back"
    assert info.value.detail == (
        f"the zeroized anchor here was committed at {older_anchor.counter} on the root of "
        f"trust's counter 'hsm', which reads {rot.counter('hsm').value()}: an earlier copy of "
        "a zeroized HSM's files was restored, and a new HSM does not continue its log"
    )
    assert not (directory / "keystore.sealed").exists()  # nothing initialized over it
    assert rot.counter("hsm-new").value() == 0


def test_the_latest_zeroized_anchor_and_its_log_are_continued_on_a_new_counter(
    device: DeviceChain, tmp_path: Path
) -> None:
    """The files as the last zeroize left them (the counter they name reads the anchor's
    value) move to a counter of their own: the successor continues the whole log."""
    rot, directory, _older = _zeroized_twice(device, tmp_path)
    records = parse_audit_log((directory / "audit.jsonl").read_bytes())
    with DirectoryStorage(directory, counter=rot.counter("hsm-new")) as storage:
        successor = new_hsm(device.identity, storage)  # type: ignore[arg-type]
        _officer, _user, auditor = sessions(successor)
        assert successor.audit_records(auditor)[: len(records)] == records
        successor.close()
    assert rot.counter("hsm-new").value() > 0
