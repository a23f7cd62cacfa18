"""Dual control: an officer quorum makes the HSM's sensitive operations need several officers.

Without it one crypto officer — or whoever holds one officer's credential — could add an
identity and use every key, take the audit log's old records, trust a verifier of their own
for key release, approve a recipient and wrap keys out to it, or restore an old key store.
With ``set_officer_quorum(k)`` each of those needs ``k - 1`` approvers (other crypto officers,
each authenticated): here through the login form, deprecated (``Hsm.approve`` binds an
approval to one operation: ``test_hsm_approvals.py``); one officer alone is
``RoleNotPermitted`` with code ``quorum-required``, and the refusal is audited under the
officers who tried.
"""

from __future__ import annotations

import pytest
from _hsm_helpers import (
    FAST,
    NOW_TS,
    OFFICER,
    OFFICER_PASS,
    SECRET,
    USER,
    new_hsm,
    sessions,
)

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    Conflict,
    IdentityLocked,
    MalformedInput,
    RoleNotPermitted,
    Unauthorized,
)
from ironroot.hsm import Hsm, KeyType, MemoryStorage, Role, Session
from ironroot.hsm._document import decode_store, encode_store
from ironroot.hsm._permissions import DUAL_CONTROL

SECOND, SECOND_PASS = "second-officer", b"second-credential"
THIRD, THIRD_PASS = "third-officer", b"third-credential"

# the login form (``login(..., approvers=...)``), deprecated: still kept, so still tested
pytestmark = pytest.mark.filterwarnings(
    "ignore:Hsm.login\\(\\.\\.\\., approvers=:DeprecationWarning"
)


@pytest.fixture
def officers(hsm: Hsm, roles: tuple[Session, Session, Session]) -> Hsm:
    """Three crypto officers, quorum 2."""
    officer = roles[0]
    hsm.add_identity(officer, SECOND, Role.OFFICER, SECOND_PASS)
    hsm.add_identity(officer, THIRD, Role.OFFICER, THIRD_PASS)
    hsm.set_officer_quorum(officer, 2)
    return hsm


def _pair(hsm: Hsm) -> Session:
    return hsm.login(OFFICER, OFFICER_PASS, approvers=[(SECOND, SECOND_PASS)])


def _quorum_refused(call: object, *args: object) -> RoleNotPermitted:
    with pytest.raises(RoleNotPermitted) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.code == "quorum-required"
    return info.value


def _last(hsm: Hsm, auditor: Session, operation: str) -> tuple[str, str, str | None]:
    record = [r for r in hsm.audit_records(auditor) if r.operation == operation][-1]
    return record.identity, record.result, record.key


def test_one_officer_alone_is_refused_every_dual_control_operation(
    officers: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    hsm = officers
    alone = hsm.login(OFFICER, OFFICER_PASS)
    verifier = PrivateKey.generate(Algorithm.ES384).public_key.to_der()
    error = _quorum_refused(hsm.add_identity, alone, "intruder", Role.USER, b"intruder-pass")
    assert error.detail == (
        "identity-add is under dual control: it needs 2 crypto officers (an approval of it "
        "by 1 other officer(s): Hsm.approve); this session has 1"
    )
    assert error.http_status == 403
    assert _last(hsm, roles[2], "identity-add") == (OFFICER, "quorum-required", None)
    key = hsm.generate(alone, KeyType.EC_P384)  # generating stays one officer's
    _quorum_refused(hsm.delete, alone, key)
    _quorum_refused(hsm.set_key_users, alone, key, [USER])
    _quorum_refused(hsm.remove_identity, alone, USER)
    _quorum_refused(hsm.unlock_identity, alone, USER)
    _quorum_refused(hsm.add_release_verifier, alone, "mine", verifier)
    _quorum_refused(hsm.add_wrap_recipient, alone, "mine", verifier)
    _quorum_refused(hsm.backup, alone)
    _quorum_refused(hsm.migrate, alone, bytes(range(2, 50)))
    _quorum_refused(hsm.prune_audit, alone, 1)
    _quorum_refused(hsm.set_officer_quorum, alone, 1)
    assert hsm.officer_quorum == 2
    assert "intruder" not in {name for name, _role, _locked in hsm.identities(alone)}


def test_a_login_with_an_approver_meets_the_quorum_and_its_records_name_both(
    officers: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    hsm = officers
    pair = _pair(hsm)
    assert pair.identity == OFFICER
    assert pair.approvers == (SECOND,)
    hsm.add_identity(pair, "new-service", Role.USER, b"new-service-pass")
    assert _last(hsm, roles[2], "identity-add") == (f"{OFFICER}+{SECOND}", "ok", None)
    assert _last(hsm, roles[2], "approve") == (SECOND, "ok", None)
    # a login's approval runs the session's first dual-control operation only
    # (test_hsm_approvals.py::test_a_logins_approval_runs_one_dual_control_operation)
    hsm.set_officer_quorum(_pair(hsm), 3)
    assert _last(hsm, roles[2], "officer-quorum") == (f"{OFFICER}+{SECOND}", "ok", "quorum-3")
    _quorum_refused(hsm.remove_identity, _pair(hsm), "new-service")  # two of three now
    trio = [(SECOND, SECOND_PASS), (THIRD, THIRD_PASS)]
    hsm.remove_identity(hsm.login(OFFICER, OFFICER_PASS, approvers=trio), "new-service")
    # back to one: each officer acts alone again
    hsm.set_officer_quorum(hsm.login(OFFICER, OFFICER_PASS, approvers=trio), 1)
    hsm.add_identity(hsm.login(OFFICER, OFFICER_PASS), "later", Role.USER, b"later-pass")


def test_approvers_are_authenticated_and_must_be_other_crypto_officers(
    officers: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    hsm = officers
    with pytest.raises(Unauthorized) as info:
        hsm.login(OFFICER, OFFICER_PASS, approvers=[(SECOND, b"wrong-credential")])
    assert info.value.detail == "unknown identity or wrong credential"
    assert _last(hsm, roles[2], "approve") == (SECOND, "unauthorized", None)
    with pytest.raises(Unauthorized):
        hsm.login(OFFICER, OFFICER_PASS, approvers=[("nobody", b"nobody-credential")])
    with pytest.raises(RoleNotPermitted) as denied:
        hsm.login(OFFICER, OFFICER_PASS, approvers=[(USER, b"user-credential")])
    assert denied.value.detail == f"approver {USER!r} is not a crypto officer"
    assert _last(hsm, roles[2], "approve") == (USER, "role-not-permitted", None)
    with pytest.raises(MalformedInput) as twice:
        hsm.login(OFFICER, OFFICER_PASS, approvers=[(SECOND, SECOND_PASS)] * 2)
    assert twice.value.detail == "each crypto officer approves a login once, and not its own"
    with pytest.raises(MalformedInput):
        hsm.login(OFFICER, OFFICER_PASS, approvers=[(OFFICER, OFFICER_PASS)])
    with pytest.raises(MalformedInput) as shape:
        hsm.login(OFFICER, OFFICER_PASS, approvers="second-officer")  # type: ignore[arg-type]
    assert shape.value.detail == "approvers are a list of (name, credential) pairs"
    with pytest.raises(MalformedInput) as user:
        hsm.login(USER, b"user-credential", approvers=[(SECOND, SECOND_PASS)])
    assert user.value.detail == "only a crypto officer's login takes approvers"


def test_an_approvers_wrong_credentials_count_towards_its_lockout(
    officers: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    hsm = officers
    for _ in range(FAST.max_failed_logins):
        with pytest.raises(Unauthorized):
            hsm.login(OFFICER, OFFICER_PASS, approvers=[(SECOND, b"guessed-credential")])
    with pytest.raises(Unauthorized):  # locked out now: the right credential is refused too
        _pair(hsm)
    with pytest.raises(Unauthorized):
        hsm.login(SECOND, SECOND_PASS)


def test_a_locked_approver_ends_the_sessions_it_approved(
    officers: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    hsm = officers
    pair = _pair(hsm)
    hsm.lock_identity(hsm.login(THIRD, THIRD_PASS), SECOND)  # locking stays one officer's
    with pytest.raises(Unauthorized):
        hsm.add_identity(pair, "new-service", Role.USER, b"new-service-pass")
    with pytest.raises(IdentityLocked):
        _pair(hsm)


def test_the_quorum_can_never_exceed_the_unlocked_officers(
    officers: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    hsm = officers
    with pytest.raises(Conflict) as above:
        hsm.set_officer_quorum(_pair(hsm), 4)
    assert above.value.detail == "a quorum of 4 needs as many unlocked crypto officers: there are 3"
    hsm.set_officer_quorum(_pair(hsm), 3)
    trio = hsm.login(OFFICER, OFFICER_PASS, approvers=[(SECOND, SECOND_PASS), (THIRD, THIRD_PASS)])
    with pytest.raises(Conflict) as removing:
        hsm.remove_identity(trio, THIRD)
    assert removing.value.detail == (
        f"removing {THIRD!r} would leave 2 unlocked crypto officer(s), fewer than the quorum of "
        "3: add an officer or lower the quorum first"
    )
    with pytest.raises(Conflict) as locking:
        hsm.lock_identity(trio, THIRD)
    assert locking.value.detail.startswith(f"locking {THIRD!r} would leave 2 unlocked")
    for bad in (0, 17, True, "2"):
        with pytest.raises(MalformedInput) as info:
            hsm.set_officer_quorum(trio, bad)  # type: ignore[arg-type]
        assert info.value.detail == "the officer quorum is an integer from 1 to 16"


def test_the_quorum_is_sealed_in_the_store_and_survives_a_restart(device: object) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    officer, _user, _auditor = sessions(hsm)
    hsm.add_identity(officer, SECOND, Role.OFFICER, SECOND_PASS)
    hsm.set_officer_quorum(officer, 2)
    hsm.close()
    reopened = Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS)
    assert reopened.officer_quorum == 2
    _quorum_refused(
        reopened.add_identity, reopened.login(OFFICER, OFFICER_PASS), "x", Role.USER, b"x-pass-1"
    )


def test_a_store_without_a_quorum_keeps_its_bytes_and_reads_as_one(
    hsm: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    document = hsm._document(1)
    assert document.officer_quorum == 1
    plain = encode_store(document)
    assert b"quorum" not in plain  # the form written before dual control
    assert decode_store(plain).officer_quorum == 1
    hsm.add_identity(roles[0], SECOND, Role.OFFICER, SECOND_PASS)
    hsm.set_officer_quorum(roles[0], 2)
    assert decode_store(encode_store(hsm._document(1))).officer_quorum == 2


def test_a_stored_quorum_out_of_range_is_refused() -> None:
    from ironroot.hsm._document import _quorum

    for bad in (0, 1, 17):
        with pytest.raises(MalformedInput) as info:
            _quorum(bad)
        assert info.value.detail == "the officer quorum is from 2 to 16"
    for bad in (-1, True, "2"):
        with pytest.raises(MalformedInput) as info:
            _quorum(bad)
        assert info.value.detail == "a key store counter is a non-negative integer"


def test_the_dual_control_operations_are_the_ones_documented() -> None:
    assert {
        "identity-add",
        "identity-unlock",
        "identity-remove",
        "key-users",
        "delete",
        "migrate",
        "backup",
        "restore",
        "verifier-add",
        "verifier-remove",
        "recipient-add",
        "recipient-remove",
        "audit-prune",
        "officer-quorum",
    } == DUAL_CONTROL


def test_a_restore_whose_officers_cannot_meet_the_quorum_is_refused(
    hsm: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    """A backup taken when fewer officers existed than today's quorum: restored, no
    dual-control operation — not even another restore, nor lowering the quorum — could ever
    be done again. The quorum in force stays (a restore by a pair does not lower it to the
    backup's), so such a restore is refused, and nothing is replaced."""
    officer = roles[0]
    old = hsm.backup(officer)  # one officer, quorum 1
    hsm.add_identity(officer, SECOND, Role.OFFICER, SECOND_PASS)
    hsm.set_officer_quorum(officer, 2)
    with pytest.raises(Conflict) as info:
        hsm.restore(_pair(hsm), old)
    assert info.value.detail == (
        "the backup holds 1 unlocked crypto officer(s), fewer than the quorum of 2 in force: "
        "no dual-control operation could be done after it; lower the quorum first"
    )
    assert _last(hsm, roles[2], "restore") == (f"{OFFICER}+{SECOND}", "conflict", None)
    pair = _pair(hsm)  # nothing was replaced: both officers are still there
    assert {name for name, _role, _locked in hsm.identities(pair)} >= {OFFICER, SECOND}
    hsm.set_officer_quorum(pair, 1)
    hsm.restore(hsm.login(OFFICER, OFFICER_PASS), old)
    assert hsm.officer_quorum == 1


def test_a_restore_keeps_the_quorum_in_force(
    hsm: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    """A backup made at quorum 1 restored by a pair leaves the quorum at 2: else a pair's
    restore would hand every later operation to each officer alone."""
    officer = roles[0]
    hsm.add_identity(officer, SECOND, Role.OFFICER, SECOND_PASS)
    old = hsm.backup(officer)  # two officers, quorum 1
    hsm.set_officer_quorum(officer, 2)
    hsm.restore(_pair(hsm), old)
    assert hsm.officer_quorum == 2
    _quorum_refused(hsm.add_identity, hsm.login(OFFICER, OFFICER_PASS), "x", Role.USER, b"x-pass-1")


def test_a_pair_sessions_refusals_name_both_officers(
    officers: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    """A pair's session refused an operation its role may not do is recorded under both
    officers, as every other record of that session is: not under the first alone."""
    hsm = officers
    key = hsm.generate(roles[0], KeyType.EC_P384)
    with pytest.raises(RoleNotPermitted) as info:
        hsm.sign(_pair(hsm), key, b"data")
    assert info.value.code == "role-not-permitted"
    assert _last(hsm, roles[2], "sign") == (f"{OFFICER}+{SECOND}", "role-not-permitted", key)


@pytest.mark.parametrize("event", ["zeroize", "tamper"])
def test_a_successor_does_not_prune_a_predecessors_records_kept_under_dual_control(
    device: object, event: str
) -> None:
    """Zeroizing stays one officer's, and so does initializing the zeroized device again; a
    successor's first officer acts alone (and may add officers of its own). Its prune of the
    archived segments was then one person's removal of the records the predecessor's quorum
    kept from any one officer. The quorum in force at the zeroize is in its record (key
    ``quorum-<n>``), the successor seals it, and refuses to prune those records
    (``PolicyRejected`` ``predecessor-dual-control``); its own records it prunes as ever."""
    from ironroot.errors import PolicyRejected
    from ironroot.hsm import HsmConfig

    config = HsmConfig(scrypt_n=2**10, audit_group_commit=1, audit_segment_records=10)
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage, config=config)  # type: ignore[attr-defined]
    officer, user, auditor = sessions(hsm)
    hsm.add_identity(officer, SECOND, Role.OFFICER, SECOND_PASS)
    hsm.set_officer_quorum(officer, 2)
    key = hsm.generate(officer, KeyType.EC_P256)
    for _ in range(12):
        hsm.sign(user, key, b"m")
    if event == "zeroize":
        hsm.zeroize(hsm.login(OFFICER, OFFICER_PASS))  # one officer may
    else:
        hsm.tamper()  # no session at all (`ironroot hsm tamper`)
    successor = new_hsm(device.identity, storage, config=config)  # type: ignore[attr-defined]
    alone, user, auditor = sessions(successor)
    zeroized = [r for r in successor.audit_records(auditor) if r.operation == event]
    who = OFFICER if event == "zeroize" else "-"
    assert [(r.identity, r.key, r.result) for r in zeroized] == [(who, "quorum-2", "ok")]
    key = successor.generate(alone, KeyType.EC_P256)
    for _ in range(30):
        successor.sign(user, key, b"m")
    starts = sorted(int(name.split("-")[1]) for name in storage.audit_segments())
    with pytest.raises(PolicyRejected) as info:
        successor.prune_audit(alone, starts[1])
    assert info.value.code == "predecessor-dual-control"
    assert info.value.detail == (
        "the archived segments before record "
        f"{starts[1]} hold records of a zeroized predecessor that was under dual control "
        "(a quorum of 2): no officer of this HSM prunes them"
    )
    assert len(storage.audit_segments()) == len(starts)
    successor.close()
    reopened = Hsm.open(storage, SECRET, config=config, clock=lambda: NOW_TS)
    with pytest.raises(PolicyRejected):  # sealed: a restart does not forget it
        reopened.prune_audit(reopened.login(OFFICER, OFFICER_PASS), starts[1])


def test_a_successor_prunes_a_predecessors_records_kept_without_dual_control(
    device: object,
) -> None:
    from ironroot.hsm import HsmConfig

    config = HsmConfig(scrypt_n=2**10, audit_group_commit=1, audit_segment_records=10)
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage, config=config)  # type: ignore[attr-defined]
    officer, user, _auditor = sessions(hsm)
    key = hsm.generate(officer, KeyType.EC_P256)
    for _ in range(12):
        hsm.sign(user, key, b"m")
    hsm.tamper()
    successor = new_hsm(device.identity, storage, config=config)  # type: ignore[attr-defined]
    alone, user, _auditor = sessions(successor)
    key = successor.generate(alone, KeyType.EC_P256)
    for _ in range(30):
        successor.sign(user, key, b"m")
    starts = sorted(int(name.split("-")[1]) for name in storage.audit_segments())
    assert successor.prune_audit(alone, starts[1]) == (f"audit-0-{starts[1] - 1}.jsonl",)
