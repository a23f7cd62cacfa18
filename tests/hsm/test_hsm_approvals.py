"""Quorum approvals bound to one operation and consumed once (``Hsm.approve``).

Before, an approval was granted per session: a login with approvers met the quorum for every
dual-control operation that session ran, of any kind, on any key, with any arguments, until it
ended. As a Thales/Entrust "k of n" authorisation or an AWS CloudHSM quorum token, an approval
now names one operation — its kind, its target (the key handle, identity, verifier… it acts
on) and a digest of its arguments — is consumed by the one run that matches it, and expires
after ``HsmConfig.approval_lifetime`` seconds. Each misuse is refused with its own code
(``RoleNotPermitted``, HTTP 403, CLI exit 1), audited under the officers who tried. The audit
chain records who approved what: an ``approve`` record per approving officer, its key the
operation and its target.
"""

from __future__ import annotations

import pytest
from _hsm_helpers import NOW_TS, OFFICER, OFFICER_PASS, USER, new_hsm, sessions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem

from ironroot.errors import LimitExceeded, MalformedInput, RoleNotPermitted
from ironroot.hsm import Approval, Hsm, HsmConfig, KeyType, Role, Session
from ironroot.hsm._permissions import DUAL_CONTROL

SECOND, SECOND_PASS = "second-officer", b"second-credential"
THIRD, THIRD_PASS = "third-officer", b"third-credential"
LIFETIME = 60


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW_TS)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def officers(device: object, clock: Clock) -> tuple[Hsm, Session, Session]:
    """Three crypto officers, quorum 2; the first officer's session alone, and an auditor's."""
    config = HsmConfig(scrypt_n=2**10, audit_group_commit=1, approval_lifetime=LIFETIME)
    hsm = new_hsm(device.identity, config=config, clock=clock)  # type: ignore[attr-defined]
    officer, _user, auditor = sessions(hsm)
    hsm.add_identity(officer, SECOND, Role.OFFICER, SECOND_PASS)
    hsm.add_identity(officer, THIRD, Role.OFFICER, THIRD_PASS)
    hsm.set_officer_quorum(officer, 2)
    return hsm, hsm.login(OFFICER, OFFICER_PASS), auditor


def _refused(code: str, call: object, *args: object) -> RoleNotPermitted:
    with pytest.raises(RoleNotPermitted) as info:
        call(*args)  # type: ignore[operator]
    assert info.value.code == code, info.value.detail
    assert info.value.http_status == 403
    return info.value


def _records(hsm: Hsm, auditor: Session, operation: str) -> list[tuple[str, str | None, str]]:
    return [
        (r.identity, r.key, r.result)
        for r in hsm.audit_records(auditor)
        if r.operation == operation
    ]


def test_an_approval_runs_the_one_operation_it_names_and_the_chain_says_who_approved_what(
    officers: tuple[Hsm, Session, Session],
) -> None:
    hsm, alone, auditor = officers
    key = hsm.generate(alone, KeyType.EC_P384)  # generating stays one officer's
    approval = hsm.approve(alone, "delete", key, approvers=[(SECOND, SECOND_PASS)])
    assert approval == Approval("delete", key, (SECOND,), NOW_TS + LIFETIME)
    hsm.delete(alone, key)
    assert _records(hsm, auditor, "approval")[-1] == (OFFICER, f"delete {key}", "ok")
    assert _records(hsm, auditor, "approve")[-1] == (SECOND, f"delete {key}", "ok")
    assert _records(hsm, auditor, "delete")[-1] == (f"{OFFICER}+{SECOND}", key, "ok")


def test_an_approval_is_consumed_by_its_operation(
    officers: tuple[Hsm, Session, Session],
) -> None:
    hsm, alone, auditor = officers
    arguments = ("svc", Role.USER, b"svc-credential")
    hsm.approve(alone, "identity-add", *arguments, approvers=[(SECOND, SECOND_PASS)])
    hsm.add_identity(alone, *arguments)
    error = _refused("approval-consumed", hsm.add_identity, alone, *arguments)
    assert error.detail == (
        "this approval of identity-add was consumed by the operation it approved: each "
        "approval runs one operation"
    )
    assert _records(hsm, auditor, "identity-add")[-1] == (OFFICER, None, "approval-consumed")


def test_an_approval_for_one_key_is_refused_on_another(
    officers: tuple[Hsm, Session, Session],
) -> None:
    hsm, alone, _auditor = officers
    a = hsm.generate(alone, KeyType.EC_P384)
    b = hsm.generate(alone, KeyType.EC_P384)
    hsm.approve(alone, "delete", a, approvers=[(SECOND, SECOND_PASS)])
    error = _refused("approval-key-mismatch", hsm.delete, alone, b)
    assert (
        error.detail
        == f"the approvals this session holds for delete are for other targets, not {b}"
    )
    assert {k.handle for k in hsm.keys(alone)} >= {a, b}
    long = "ab" * 100_000
    error = _refused("approval-key-mismatch", hsm.delete, alone, long)
    assert error.detail.endswith(f"for other targets, not {long[:16]}…")  # never all of it
    hsm.delete(alone, a)  # the approval was not spent by the refusals


def test_an_approval_for_one_operation_is_refused_for_another(
    officers: tuple[Hsm, Session, Session],
) -> None:
    hsm, alone, _auditor = officers
    key = hsm.generate(alone, KeyType.EC_P384)
    hsm.approve(alone, "key-users", key, [USER], approvers=[(SECOND, SECOND_PASS)])
    error = _refused("approval-operation-mismatch", hsm.delete, alone, key)
    assert error.detail == "this session holds no approval of delete (only of key-users)"
    hsm.set_key_users(alone, key, [USER])


def test_an_approval_for_other_arguments_is_refused(
    officers: tuple[Hsm, Session, Session],
) -> None:
    """Same operation, same target, other arguments: the approved key users were ``[USER]``,
    the run names none (every crypto user)."""
    hsm, alone, _auditor = officers
    key = hsm.generate(alone, KeyType.EC_P384)
    hsm.approve(alone, "key-users", key, [USER], approvers=[(SECOND, SECOND_PASS)])
    error = _refused("approval-parameters-mismatch", hsm.set_key_users, alone, key, None)
    assert error.detail == (
        f"the approval of key-users on {key} was for other arguments than these"
    )


def test_an_expired_approval_is_refused(
    officers: tuple[Hsm, Session, Session], clock: Clock
) -> None:
    hsm, alone, auditor = officers
    key = hsm.generate(alone, KeyType.EC_P384)
    hsm.approve(alone, "delete", key, approvers=[(SECOND, SECOND_PASS)])
    clock.now += LIFETIME
    error = _refused("approval-expired", hsm.delete, alone, key)
    assert error.detail == f"the approval of delete on {key} expired (it lasts {LIFETIME} s)"
    assert _records(hsm, auditor, "delete")[-1] == (OFFICER, key, "approval-expired")
    _refused("quorum-required", hsm.delete, alone, key)  # and it is gone


def test_an_approval_is_the_sessions_that_asked_for_it(
    officers: tuple[Hsm, Session, Session],
) -> None:
    hsm, alone, _auditor = officers
    key = hsm.generate(alone, KeyType.EC_P384)
    hsm.approve(alone, "delete", key, approvers=[(SECOND, SECOND_PASS)])
    other = hsm.login(THIRD, THIRD_PASS)
    _refused("quorum-required", hsm.delete, other, key)
    hsm.logout(alone)
    again = hsm.login(OFFICER, OFFICER_PASS)
    _refused("quorum-required", hsm.delete, again, key)  # it ended with its session


def test_an_approval_by_too_few_officers_or_a_locked_one_approves_nothing(
    officers: tuple[Hsm, Session, Session],
) -> None:
    hsm, alone, _auditor = officers
    key = hsm.generate(alone, KeyType.EC_P384)
    hsm.approve(alone, "delete", key, approvers=[(SECOND, SECOND_PASS)])
    hsm.lock_identity(hsm.login(THIRD, THIRD_PASS), SECOND)  # its approvals end with it
    _refused("quorum-required", hsm.delete, alone, key)


def test_what_an_approval_names_is_checked_before_any_officer_authenticates(
    officers: tuple[Hsm, Session, Session],
) -> None:
    hsm, alone, auditor = officers
    before = len(_records(hsm, auditor, "approve"))
    for operation, arguments, detail in (
        ("sign", ("k",), "'sign' is not an operation under dual control"),
        ("delete", (), "delete takes 1 argument(s), not 0"),
        ("backup", ("x",), "backup takes 0 argument(s), not 1"),
    ):
        with pytest.raises(MalformedInput) as info:
            hsm.approve(alone, operation, *arguments, approvers=[(SECOND, SECOND_PASS)])
        assert info.value.detail == detail
    with pytest.raises(MalformedInput) as none:
        hsm.approve(alone, "backup", approvers=[])
    assert none.value.detail == "an approval names at least one approving crypto officer"
    assert len(_records(hsm, auditor, "approve")) == before


def test_a_session_holds_a_bounded_number_of_approvals(
    officers: tuple[Hsm, Session, Session],
) -> None:
    hsm, alone, _auditor = officers
    for n in range(16):
        hsm.approve(alone, "audit-prune", n + 1, approvers=[(SECOND, SECOND_PASS)])
    with pytest.raises(LimitExceeded) as info:
        hsm.approve(alone, "audit-prune", 99, approvers=[(SECOND, SECOND_PASS)])
    assert info.value.detail == "a session holds at most 16 unused approvals"


def test_a_logins_approval_runs_one_dual_control_operation(
    officers: tuple[Hsm, Session, Session],
) -> None:
    """The login form (``login(…, approvers=…)``) now approves the session's first
    dual-control operation only, whichever it is: before, every later one too. Nothing in
    Ironroot uses it any more (the CLI, the admin API and the demo call ``approve``): it is
    deprecated, and says so."""
    hsm, _alone, auditor = officers
    with pytest.warns(DeprecationWarning, match=r"^Hsm\.login\(\.\.\., approvers=") as warned:
        pair = hsm.login(OFFICER, OFFICER_PASS, approvers=[(SECOND, SECOND_PASS)])
    assert [str(w.message) for w in warned] == [
        "Hsm.login(..., approvers=...) is deprecated and will be removed: the approvers "
        "approve whichever dual-control operation the session runs first; have them approve "
        "the operation with its arguments instead (Hsm.approve)"
    ]
    assert warned[0].filename == __file__  # the caller's line, not the HSM's
    hsm.add_identity(pair, "svc", Role.USER, b"svc-credential")
    error = _refused("approval-consumed", hsm.remove_identity, pair, "svc")
    assert error.detail == (
        "the approval this session's login carried was consumed by its first dual-control "
        "operation: ask for an approval of this one (Hsm.approve)"
    )
    assert _records(hsm, auditor, "identity-remove")[-1] == (
        f"{OFFICER}+{SECOND}",
        None,
        "approval-consumed",
    )
    hsm.approve(pair, "identity-remove", "svc", approvers=[(THIRD, THIRD_PASS)])
    hsm.remove_identity(pair, "svc")
    assert _records(hsm, auditor, "identity-remove")[-1] == (f"{OFFICER}+{THIRD}", None, "ok")


def _pem(public: object) -> bytes:
    return public.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("operation", sorted(DUAL_CONTROL))
def test_every_dual_control_operation_runs_once_on_an_approval_of_its_own_arguments(
    officers: tuple[Hsm, Session, Session], operation: str
) -> None:
    """``approve(s, op, *args)`` takes the arguments as the operation's method does: each of
    them runs on its approval (a refusal after the approval, as ``audit-prune`` of a record
    that starts no segment, is the operation's own), and a second run is refused."""
    hsm, alone, _auditor = officers

    def approved(op: str, *arguments: object) -> tuple[object, ...]:
        hsm.approve(alone, op, *arguments, approvers=[(SECOND, SECOND_PASS)])
        return arguments

    key = hsm.generate(alone, KeyType.EC_P384)
    verifier = _pem(ec.generate_private_key(ec.SECP384R1()).public_key())
    recipient = _pem(mlkem.MLKEM768PrivateKey.generate().public_key())
    if operation == "identity-remove":
        hsm.add_identity(alone, *approved("identity-add", "gone", Role.USER, b"gone-credential"))
    if operation == "verifier-remove":
        hsm.add_release_verifier(alone, *approved("verifier-add", "v", verifier))
    if operation == "recipient-remove":
        hsm.add_wrap_recipient(alone, *approved("recipient-add", "r", recipient))
    backup = hsm.backup(alone, *approved("backup")) if operation == "restore" else b""
    arguments = {
        "identity-add": ("svc", Role.USER, b"svc-credential"),
        "identity-unlock": (USER,),
        "identity-remove": ("gone",),
        "key-users": (key, frozenset({USER})),
        "delete": (key,),
        "migrate": (bytes(range(2, 50)),),
        "backup": (),
        "restore": (backup,),
        "verifier-add": ("v", verifier),
        "verifier-remove": ("v",),
        "recipient-add": ("r", recipient),
        "recipient-remove": ("r",),
        "audit-prune": (1,),
        "officer-quorum": (2,),
    }[operation]
    run = {
        "identity-add": hsm.add_identity,
        "identity-unlock": hsm.unlock_identity,
        "identity-remove": hsm.remove_identity,
        "key-users": hsm.set_key_users,
        "delete": hsm.delete,
        "migrate": hsm.migrate,
        "backup": hsm.backup,
        "restore": hsm.restore,
        "verifier-add": hsm.add_release_verifier,
        "verifier-remove": hsm.remove_release_verifier,
        "recipient-add": hsm.add_wrap_recipient,
        "recipient-remove": hsm.remove_wrap_recipient,
        "audit-prune": hsm.prune_audit,
        "officer-quorum": hsm.set_officer_quorum,
    }[operation]
    _refused("quorum-required", run, alone, *arguments)
    approved(operation, *arguments)
    if operation == "audit-prune":
        with pytest.raises(MalformedInput):  # authorized: the operation's own refusal
            run(alone, *arguments)
    else:
        run(alone, *arguments)
    if operation == "restore":
        return  # a restore ends every session, its own too
    _refused("approval-consumed", run, alone, *arguments)
