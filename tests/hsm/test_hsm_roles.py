"""Identities, roles, sessions and lockout: every operation needs a session of the right role."""

from __future__ import annotations

import dataclasses

import cbor2
import pytest
from _hsm_helpers import (
    AUDITOR,
    FAST,
    NOW_TS,
    OFFICER,
    OFFICER_PASS,
    SECRET,
    USER,
    USER_PASS,
    new_hsm,
    sessions,
)

from ironroot.errors import (
    Conflict,
    IdentityLocked,
    MalformedInput,
    NotFound,
    RoleNotPermitted,
    Unauthorized,
)
from ironroot.hsm import Hsm, HsmConfig, KeyAttributes, KeyType, MemoryStorage, Role, Session
from ironroot.hsm._document import decode_store
from ironroot.hsm._storage import unseal


def test_login_gives_a_session_of_the_identity_role(hsm: Hsm) -> None:
    session = hsm.login(OFFICER, OFFICER_PASS)
    assert (session.identity, session.role) == (OFFICER, Role.OFFICER)
    assert session.token.hex() not in repr(session)


def test_wrong_credential_and_unknown_identity_are_unauthorized(hsm: Hsm) -> None:
    with pytest.raises(Unauthorized) as wrong:
        hsm.login(OFFICER, b"not-the-credential")
    with pytest.raises(Unauthorized) as unknown:
        hsm.login("nobody", OFFICER_PASS)
    assert type(wrong.value) is Unauthorized
    assert type(unknown.value) is Unauthorized
    assert wrong.value.detail == unknown.value.detail  # no hint which one it was


def test_forged_session_is_unauthorized(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    handle = hsm.generate(officer, KeyType.EC_P256)
    forged = Session(USER, Role.USER, bytes(32))
    with pytest.raises(Unauthorized):
        hsm.sign(forged, handle, b"data")
    promoted = dataclasses.replace(user, role=Role.OFFICER)  # right token, claimed other role
    with pytest.raises(Unauthorized):
        hsm.generate(promoted, KeyType.EC_P256)
    with pytest.raises(Unauthorized):
        hsm.sign("not a session", handle, b"data")  # type: ignore[arg-type]


def test_logged_out_session_is_unauthorized(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    handle = hsm.generate(officer, KeyType.EC_P256)
    hsm.logout(user)
    with pytest.raises(Unauthorized):
        hsm.sign(user, handle, b"data")


@pytest.mark.parametrize(
    ("who", "operation"),
    [
        (0, "sign"),
        (2, "sign"),
        (0, "encrypt"),
        (0, "wrap"),
        (0, "unwrap"),
        (0, "derive"),
        (1, "generate"),
        (2, "generate"),
        (1, "delete"),
        (1, "add_identity"),
        (1, "migrate"),
        (1, "zeroize"),
        (1, "backup"),
        (0, "audit_records"),
        (1, "audit_records"),
        (1, "audit_checkpoint"),
        (2, "keys"),
        (2, "attest"),
    ],
)
def test_role_without_the_right_is_refused(
    hsm: Hsm, roles: tuple[Session, Session, Session], who: int, operation: str
) -> None:
    officer = roles[0]
    session = roles[who]
    ec = hsm.generate(officer, KeyType.EC_P256)
    aes = hsm.generate(
        officer, KeyType.AES_256, KeyAttributes.of(["encrypt", "wrap", "unwrap", "derive"])
    )
    calls = {
        "sign": lambda: hsm.sign(session, ec, b"x"),
        "encrypt": lambda: hsm.encrypt(session, aes, b"x"),
        "wrap": lambda: hsm.wrap(session, ec, wrapping_key=aes),
        "unwrap": lambda: hsm.unwrap(
            session, bytes(40), unwrapping_key=aes, attributes=KeyAttributes.of(["sign"])
        ),
        "derive": lambda: hsm.derive(session, aes, info=b"x"),
        "generate": lambda: hsm.generate(session, KeyType.EC_P256),
        "delete": lambda: hsm.delete(session, ec),
        "add_identity": lambda: hsm.add_identity(session, "x", Role.OFFICER, b"12345678"),
        "migrate": lambda: hsm.migrate(session, bytes(32)),
        "zeroize": lambda: hsm.zeroize(session),
        "backup": lambda: hsm.backup(session),
        "audit_records": lambda: hsm.audit_records(session),
        "audit_checkpoint": lambda: hsm.audit_checkpoint(session),
        "keys": lambda: hsm.keys(session),
        "attest": lambda: hsm.attest(session, ec),
    }
    with pytest.raises(RoleNotPermitted):
        calls[operation]()
    assert hsm.state == "operational"


def test_refusals_are_audited(hsm: Hsm, roles: tuple[Session, Session, Session]) -> None:
    _officer, user, auditor = roles
    with pytest.raises(RoleNotPermitted):
        hsm.generate(user, KeyType.EC_P256)
    with pytest.raises(Unauthorized):
        hsm.login(USER, b"wrong-credential")
    records = hsm.audit_records(auditor)
    outcomes = [(r.identity, r.operation, r.result) for r in records]
    assert (USER, "generate", "role-not-permitted") in outcomes
    assert (USER, "login", "unauthorized") in outcomes


def test_lockout_after_n_wrong_credentials(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer = roles[0]
    for _ in range(FAST.max_failed_logins):
        with pytest.raises(Unauthorized):
            hsm.login(USER, b"wrong-credential")
    with pytest.raises(Unauthorized, match=r"^unknown identity or wrong credential$"):
        hsm.login(USER, USER_PASS)  # the right credential no longer helps
    hsm.unlock_identity(officer, USER)
    assert hsm.login(USER, USER_PASS).identity == USER


def test_lockout_threshold_is_configurable_and_persists(device: object) -> None:
    config = dataclasses.replace(FAST, max_failed_logins=2)
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage, config=config)  # type: ignore[attr-defined]
    for _ in range(2):
        with pytest.raises(Unauthorized):
            hsm.login(OFFICER, b"wrong-credential")
    hsm.close()
    reopened = Hsm.open(storage, SECRET, config=config, clock=lambda: NOW_TS)
    with pytest.raises(Unauthorized, match=r"^unknown identity or wrong credential$"):
        reopened.login(OFFICER, OFFICER_PASS)


def test_success_resets_the_failure_count(hsm: Hsm) -> None:
    for _ in range(FAST.max_failed_logins - 1):
        with pytest.raises(Unauthorized):
            hsm.login(OFFICER, b"wrong-credential")
    hsm.login(OFFICER, OFFICER_PASS)
    for _ in range(FAST.max_failed_logins - 1):
        with pytest.raises(Unauthorized):
            hsm.login(OFFICER, b"wrong-credential")
    assert hsm.login(OFFICER, OFFICER_PASS).role is Role.OFFICER


def test_locking_ends_sessions(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    hsm.lock_identity(officer, USER)
    with pytest.raises(Unauthorized):
        hsm.keys(user)
    with pytest.raises(IdentityLocked):
        hsm.login(USER, USER_PASS)


def test_identity_management(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer = roles[0]
    assert [(n, r) for n, r, _ in hsm.identities(officer)] == [
        (AUDITOR, Role.AUDITOR),
        (OFFICER, Role.OFFICER),
        (USER, Role.USER),
    ]
    with pytest.raises(Conflict):
        hsm.add_identity(officer, USER, Role.USER, b"another-credential")
    with pytest.raises(MalformedInput):
        hsm.add_identity(officer, "bad name!", Role.USER, b"another-credential")
    with pytest.raises(MalformedInput):
        hsm.add_identity(officer, "short", Role.USER, b"1234")
    with pytest.raises(NotFound):
        hsm.unlock_identity(officer, "nobody")
    with pytest.raises(Conflict):
        hsm.lock_identity(officer, OFFICER)
    with pytest.raises(Conflict):
        hsm.remove_identity(officer, OFFICER)  # the last officer
    hsm.remove_identity(officer, USER)
    with pytest.raises(Unauthorized):
        hsm.login(USER, USER_PASS)


def test_config_is_validated() -> None:
    from ironroot.errors import ConfigError

    with pytest.raises(ConfigError):
        HsmConfig(scrypt_n=1000)
    with pytest.raises(ConfigError):
        HsmConfig(max_failed_logins=0)


# --- lockouts from failed logins end (the last officer could be locked out for good) ----------

_WRONG = r"^unknown identity or wrong credential$"


class _Clock:
    def __init__(self) -> None:
        self.now = NOW_TS

    def __call__(self) -> float:
        return self.now


def _lock_out(hsm: Hsm, identity: str, config: HsmConfig = FAST) -> None:
    for _ in range(config.max_failed_logins):
        with pytest.raises(Unauthorized, match=_WRONG):
            hsm.login(identity, b"wrong-credential")


def test_the_last_officers_lockout_ends_after_its_duration(device: object) -> None:
    """The break: five wrong logins locked the only crypto officer, and no one was left to
    unlock it. The lockout now lasts ``lockout_duration`` by the HSM's clock; during it the
    right credential gets a wrong one's answer, after it the right credential works."""
    clock = _Clock()
    hsm = new_hsm(device.identity, clock=clock)  # type: ignore[attr-defined]
    _lock_out(hsm, OFFICER)
    with pytest.raises(Unauthorized, match=_WRONG):
        hsm.login(OFFICER, OFFICER_PASS)
    clock.now += FAST.lockout_duration - 1
    with pytest.raises(Unauthorized, match=_WRONG):
        hsm.login(OFFICER, OFFICER_PASS)
    clock.now += 1
    assert hsm.login(OFFICER, OFFICER_PASS).role is Role.OFFICER


def test_an_officer_sees_who_is_locked_out_until_when(device: object) -> None:
    clock = _Clock()
    hsm = new_hsm(device.identity, clock=clock)  # type: ignore[attr-defined]
    officer, _user, _auditor = sessions(hsm)
    start = clock.now
    _lock_out(hsm, USER)
    assert hsm.lockouts(officer) == {USER: int(start) + FAST.lockout_duration}
    assert (USER, Role.USER, False) in hsm.identities(officer)  # not an officer's lock
    clock.now += FAST.lockout_duration
    assert hsm.lockouts(officer) == {}


def test_wrong_credentials_during_a_lockout_neither_count_nor_extend_it(device: object) -> None:
    clock = _Clock()
    hsm = new_hsm(device.identity, clock=clock)  # type: ignore[attr-defined]
    sessions(hsm)
    _lock_out(hsm, USER)
    for _ in range(3 * FAST.max_failed_logins):
        with pytest.raises(Unauthorized, match=_WRONG):
            hsm.login(USER, b"wrong-credential")
    clock.now += FAST.lockout_duration
    assert hsm.login(USER, USER_PASS).identity == USER


def test_repeated_lockouts_double_up_to_the_cap(device: object) -> None:
    config = dataclasses.replace(FAST, lockout_duration=10, max_lockout_duration=25)
    clock = _Clock()
    hsm = new_hsm(device.identity, config=config, clock=clock)  # type: ignore[attr-defined]
    sessions(hsm)
    for duration in (10, 20, 25, 25):
        _lock_out(hsm, USER, config)
        clock.now += duration - 1
        with pytest.raises(Unauthorized, match=_WRONG):
            hsm.login(USER, USER_PASS)
        clock.now += 1
    assert hsm.login(USER, USER_PASS).identity == USER  # a success resets the doubling
    _lock_out(hsm, USER, config)
    clock.now += 10
    assert hsm.login(USER, USER_PASS).identity == USER


def test_an_officer_ends_a_lockout_at_once(device: object) -> None:
    hsm = new_hsm(device.identity, clock=_Clock())  # type: ignore[attr-defined]
    officer, _user, _auditor = sessions(hsm)
    _lock_out(hsm, USER)
    hsm.unlock_identity(officer, USER)
    assert hsm.login(USER, USER_PASS).identity == USER


def test_an_officers_lock_is_not_ended_by_time(device: object) -> None:
    clock = _Clock()
    hsm = new_hsm(device.identity, clock=clock)  # type: ignore[attr-defined]
    officer, _user, _auditor = sessions(hsm)
    hsm.lock_identity(officer, USER)
    clock.now += 10 * FAST.max_lockout_duration
    with pytest.raises(IdentityLocked, match="a crypto officer must unlock it"):
        hsm.login(USER, USER_PASS)


def test_guesses_at_an_identity_an_officer_locked_count_toward_a_lockout(device: object) -> None:
    """The break: an officer's lock stopped failed logins from counting, and the right
    credential answers ``IdentityLocked``, not a wrong one's ``Unauthorized``: anyone could
    guess a locked identity's credential without end, told when they had it, and use it once
    an officer lifted the lock. Its failures now count: after ``max_failed_logins`` even the
    right credential gets a wrong one's answer until the lockout ends (across a restart)."""
    clock = _Clock()
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage, clock=clock)  # type: ignore[attr-defined]
    officer, _user, _auditor = sessions(hsm)
    hsm.lock_identity(officer, USER)
    _lock_out(hsm, USER)
    assert hsm.lockouts(officer) == {USER: int(clock.now) + FAST.lockout_duration}
    with pytest.raises(Unauthorized, match=_WRONG) as refused:
        hsm.login(USER, USER_PASS)
    assert type(refused.value) is Unauthorized  # not IdentityLocked: nothing is confirmed
    hsm.close()
    reopened = Hsm.open(storage, SECRET, config=FAST, clock=clock)
    with pytest.raises(Unauthorized, match=_WRONG) as again:
        reopened.login(USER, USER_PASS)
    assert type(again.value) is Unauthorized
    clock.now += FAST.lockout_duration
    with pytest.raises(IdentityLocked, match="a crypto officer must unlock it"):
        reopened.login(USER, USER_PASS)  # the officer's lock outlasts the lockout


def test_a_lockout_and_its_end_survive_a_restart(device: object) -> None:
    clock = _Clock()
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage, clock=clock)  # type: ignore[attr-defined]
    _lock_out(hsm, OFFICER)
    hsm.close()
    reopened = Hsm.open(storage, SECRET, config=FAST, clock=clock)
    with pytest.raises(Unauthorized, match=_WRONG):
        reopened.login(OFFICER, OFFICER_PASS)
    clock.now += FAST.lockout_duration
    assert reopened.login(OFFICER, OFFICER_PASS).role is Role.OFFICER


def test_a_store_written_before_timed_lockouts_reads_as_not_locked_out(device: object) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    hsm.flush()
    sealed = storage.read_store()
    assert sealed is not None
    document = cbor2.loads(unseal(SECRET, sealed))
    for entry in document["identities"]:
        assert (entry.pop("locked_until"), entry.pop("lockouts")) == (0, 0)
    (officer,) = decode_store(cbor2.dumps(document)).identities
    assert (officer.locked, officer.failures, officer.locked_until, officer.lockouts) == (
        False,
        0,
        0,
        0,
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lockout_duration": 0}, "lockout_duration must be a positive integer"),
        ({"max_lockout_duration": 0}, "max_lockout_duration must be a positive integer"),
        ({"lockout_duration": 600, "max_lockout_duration": 300}, "at least lockout_duration"),
    ],
)
def test_lockout_durations_are_validated(settings: dict[str, int], message: str) -> None:
    from ironroot.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        HsmConfig(**settings)  # type: ignore[arg-type]
