"""The Redfish service's accounts (scrypt hashes in the node directory, roles, lockout) and its
sessions (tokens, idle timeout, ended with their account), with a clock the test moves."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from ironroot.errors import (
    ConfigError,
    Conflict,
    IdentityLocked,
    InputUnavailable,
    IronrootError,
    LimitExceeded,
    MalformedInput,
    NotFound,
    StorageError,
    Unauthorized,
)
from ironroot.platform import _redfish_accounts
from ironroot.platform._redfish_accounts import (
    ACCOUNTS_FILE,
    LOCAL_SOURCE,
    MAX_SESSIONS,
    MAX_SESSIONS_PER_ACCOUNT,
    ROLES,
    Account,
    AccountStore,
    SessionStore,
)

KDF = (2**10, 8, 1)
PASSWORD = "first admin password"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> AccountStore:
    return AccountStore.create_with(tmp_path, "admin", PASSWORD, clock=clock, kdf=KDF)


def _raises(kind: type[IronrootError], code: str, call: object) -> IronrootError:
    assert callable(call)
    with pytest.raises(kind) as info:
        call()
    assert type(info.value) is kind, repr(info.value)
    assert info.value.code == code
    return info.value


def test_accounts_are_scrypt_hashes_in_a_private_file(tmp_path: Path, clock: Clock) -> None:
    store = AccountStore.create_with(tmp_path, "admin", PASSWORD, clock=clock, kdf=KDF)
    store.add("viewer", "viewer password", "ReadOnly")
    path = tmp_path / ACCOUNTS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text
    assert "viewer password" not in text
    doc = json.loads(text)
    assert {a["password"]["kdf"] for a in doc["accounts"]} == {"scrypt"}
    assert {a["password"]["n"] for a in doc["accounts"]} == {KDF[0]}
    again = AccountStore.open(tmp_path, clock=clock, kdf=KDF)
    assert [(a.id, a.username, a.role) for a in again.accounts()] == [
        ("1", "admin", "Administrator"),
        ("2", "viewer", "ReadOnly"),
    ]
    assert again.authenticate("viewer", "viewer password").role == "ReadOnly"


def test_the_default_hash_is_scrypt_n_2_15(tmp_path: Path) -> None:
    store = AccountStore.create_with(tmp_path, "admin", PASSWORD)
    assert store.get("1").kdf == (2**15, 8, 1)
    assert store.authenticate("admin", PASSWORD).id == "1"


def test_a_wrong_password_and_an_unknown_user_are_the_same_refusal(store: AccountStore) -> None:
    _raises(Unauthorized, "login", lambda: store.authenticate("admin", "wrong password"))
    _raises(Unauthorized, "login", lambda: store.authenticate("nobody", PASSWORD))
    assert store.authenticate("admin", PASSWORD).username == "admin"


OLD_KDF = (2**9, 8, 1)  # parameters an account was stored with before the store's changed


def _kdf_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """The scrypt parameters of every key derivation the account store makes, in order."""
    calls: list[tuple[int, int, int]] = []
    real = _redfish_accounts._hash

    def counted(password: bytes, salt: bytes, kdf: tuple[int, int, int]) -> bytes:
        calls.append(kdf)
        return real(password, salt, kdf)

    monkeypatch.setattr(_redfish_accounts, "_hash", counted)
    return calls


def test_an_account_of_other_parameters_is_rehashed_at_its_login_and_then_costs_as_unknown(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown name is derived with the store's parameters; an account stored with others
    cost another time for a wrong password (a timing oracle for the name). Its next right
    login rehashes it to the store's (same salt: its dashboard sessions go on), written, so
    a wrong password and an unknown name make the same derivation."""
    AccountStore.create_with(tmp_path, "admin", PASSWORD, clock=clock, kdf=KDF)
    AccountStore.open(tmp_path, clock=clock, kdf=OLD_KDF).add("old", "old password!", "ReadOnly")
    store = AccountStore.open(tmp_path, clock=clock, kdf=KDF)
    salt = store.by_name("old").salt  # type: ignore[union-attr]
    calls = _kdf_calls(monkeypatch)
    _raises(Unauthorized, "login", lambda: store.authenticate("nobody", "old password!"))
    assert calls == [KDF]
    calls.clear()
    assert store.authenticate("old", "old password!").kdf == KDF
    assert calls == [OLD_KDF, KDF]  # the check, then the rehash
    calls.clear()
    _raises(Unauthorized, "login", lambda: store.authenticate("old", "wrong password"))
    _raises(Unauthorized, "login", lambda: store.authenticate("nobody", "wrong password"))
    assert calls == [KDF, KDF]
    calls.clear()
    assert store.authenticate("old", "old password!").username == "old"
    assert calls == [KDF]  # rehashed once
    again = AccountStore.open(tmp_path, clock=clock, kdf=KDF).by_name("old")
    assert again is not None
    assert (again.kdf, again.salt) == (KDF, salt)
    doc = json.loads((tmp_path / ACCOUNTS_FILE).read_text())
    assert {a["password"]["n"] for a in doc["accounts"]} == {KDF[0]}


def test_a_store_s_parameters_are_kept_in_its_file(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parameters a store was made with are its own: opened without naming any (as
    ``platform serve`` and the dashboard open theirs), it derives an unknown name with them
    and rehashes nobody, instead of the default's."""
    AccountStore.create_with(tmp_path, "admin", PASSWORD, clock=clock, kdf=KDF)
    store = AccountStore.open(tmp_path, clock=clock)
    calls = _kdf_calls(monkeypatch)
    _raises(Unauthorized, "login", lambda: store.authenticate("nobody", PASSWORD))
    assert store.authenticate("admin", PASSWORD).kdf == KDF
    assert calls == [KDF, KDF]
    assert json.loads((tmp_path / ACCOUNTS_FILE).read_text())["kdf"] == list(KDF)


@pytest.mark.parametrize("stored", [[3, 8, 1], [1024, 8], "scrypt", [1024, 0, 1]])
def test_a_file_whose_parameters_are_not_scrypt_s_is_refused(
    tmp_path: Path, clock: Clock, stored: object
) -> None:
    AccountStore.create_with(tmp_path, "admin", PASSWORD, clock=clock, kdf=KDF)
    path = tmp_path / ACCOUNTS_FILE
    doc = json.loads(path.read_text())
    doc["kdf"] = stored
    path.write_text(json.dumps(doc))
    error = _raises(StorageError, "accounts", lambda: AccountStore.open(tmp_path, clock=clock))
    assert str(error.detail) == f"{path} is not a Redfish account file"


def test_a_rehash_does_not_refuse_a_login_checked_against_the_old_hash(
    tmp_path: Path, clock: Clock
) -> None:
    """Two logins of the account checked at once against its old hash: the first rehashes
    it; the second, right too, is still a login (the salt, so the password, is the same)."""
    AccountStore.create_with(tmp_path, "admin", PASSWORD, clock=clock, kdf=OLD_KDF)
    store = AccountStore.open(tmp_path, clock=clock, kdf=KDF)
    before = store.get("1")
    assert store.authenticate("admin", PASSWORD).kdf == KDF
    secret = PASSWORD.encode()
    wrong = lambda: Unauthorized("unknown user or wrong password", code="login")  # noqa: E731
    assert store._check(before, secret, False, wrong, LOCAL_SOURCE).kdf == KDF


class _Writes:
    """The durable writes of the account store (test side: the module's ``write_atomic``
    observed), as ``(path name, size)``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str, int]] = []
        real = _redfish_accounts.write_atomic

        def observed(path: Path, data: bytes, **options: Any) -> None:
            self.seen.append((path.name, len(data)))
            real(path, data, **options)

        monkeypatch.setattr(_redfish_accounts, "write_atomic", observed)

    def take(self) -> list[tuple[str, int]]:
        seen, self.seen = self.seen, []
        return seen


def test_no_refused_login_writes_before_it_is_answered(
    store: AccountStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    """A wrong password wrote (and fsynced) the file to count the failure, an unknown name
    the same bytes to a scratch file, so both cost alike; but a locked account's guesses
    write nothing (the flash must not wear under a flood), so once a name was locked by a few
    guesses its answers came an fsync sooner than an unknown name's: which names exist, told
    again, and every guess at an unknown name wore the flash. No refused login writes before
    it is answered: failures are counted in memory, and the lockout they lead to is written
    by a worker thread after the answer."""
    store.add("ops", "operator password", "Operator")
    store.add("off", "a disabled password", "ReadOnly", enabled=False)
    store.configure(lockout_threshold=3, lockout_duration=60, lockout_reset_after=60)
    path = tmp_path / ACCOUNTS_FILE
    writes = _Writes(monkeypatch)
    inode, text = path.stat().st_ino, path.read_bytes()
    for user, password in [
        ("nobody", "wrong password"),
        ("ops", "wrong password"),
        ("off", "a wrong password"),
        ("off", "a disabled password"),
        ("ops", "wrong password"),
    ]:
        _raises(Unauthorized, "login", lambda u=user, p=password: store.authenticate(u, p))
        assert writes.take() == []
    assert (path.stat().st_ino, path.read_bytes()) == (inode, text)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".timing")]
    _raises(Unauthorized, "login", lambda: store.authenticate("ops", "wrong password"))
    store.flush()  # the lockout, written after the answer
    assert writes.take() == [(path.name, len(path.read_bytes()))]
    reopened = AccountStore(path, clock=clock, kdf=KDF)
    _raises(IdentityLocked, "locked", lambda: reopened.authenticate("ops", "operator password"))
    assert writes.take() == []


def test_an_unknown_user_writes_nothing_where_there_is_no_account(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "none" / ACCOUNTS_FILE, kdf=KDF)
    _raises(Unauthorized, "login", lambda: store.authenticate("nobody", "wrong password"))
    assert not (tmp_path / "none").exists()


def test_wrong_passwords_lock_an_account_for_the_lockout_duration(
    store: AccountStore, clock: Clock
) -> None:
    store.add("ops", "operator password", "Operator")
    store.configure(lockout_threshold=3, lockout_duration=60, lockout_reset_after=60)
    for _ in range(3):
        _raises(Unauthorized, "login", lambda: store.authenticate("ops", "wrong password"))
    _raises(IdentityLocked, "locked", lambda: store.authenticate("ops", "operator password"))
    _raises(Unauthorized, "login", lambda: store.authenticate("ops", "wrong password"))
    assert store.by_name("ops") is not None
    clock.now += 61
    assert store.authenticate("ops", "operator password").username == "ops"


def test_failures_older_than_the_reset_time_do_not_count(store: AccountStore, clock: Clock) -> None:
    store.configure(lockout_threshold=2, lockout_duration=60, lockout_reset_after=30)
    _raises(Unauthorized, "login", lambda: store.authenticate("admin", "wrong password"))
    clock.now += 31
    _raises(Unauthorized, "login", lambda: store.authenticate("admin", "wrong password"))
    assert store.authenticate("admin", PASSWORD).username == "admin"


def test_a_lockout_without_duration_lasts_until_an_administrator_unlocks(
    store: AccountStore, clock: Clock
) -> None:
    account = store.add("ops", "operator password", "Operator")
    store.configure(lockout_threshold=1, lockout_duration=0, lockout_reset_after=0)
    _raises(Unauthorized, "login", lambda: store.authenticate("ops", "wrong password"))
    clock.now += 86400 * 365
    _raises(IdentityLocked, "locked", lambda: store.authenticate("ops", "operator password"))
    _raises(MalformedInput, "locked", lambda: store.update(account.id, locked=True))
    store.update(account.id, locked=False)
    assert store.authenticate("ops", "operator password").id == account.id


def test_a_disabled_account_cannot_log_in(store: AccountStore) -> None:
    account = store.add("ops", "operator password", "Operator", enabled=False)
    _raises(Unauthorized, "login", lambda: store.authenticate("ops", "operator password"))
    store.update(account.id, enabled=True)
    assert store.authenticate("ops", "operator password").enabled


def test_the_last_enabled_administrator_stays(store: AccountStore) -> None:
    _raises(Conflict, "last-administrator", lambda: store.remove("1"))
    _raises(Conflict, "last-administrator", lambda: store.update("1", role="Operator"))
    _raises(Conflict, "last-administrator", lambda: store.update("1", enabled=False))
    second = store.add("admin2", "second admin password", "Administrator")
    store.update("1", role="ReadOnly")
    _raises(Conflict, "last-administrator", lambda: store.remove(second.id))


def test_bad_account_values_are_refused(store: AccountStore) -> None:
    _raises(MalformedInput, "username", lambda: store.add("a b", "long enough pass", "ReadOnly"))
    _raises(MalformedInput, "username", lambda: store.add("-x", "long enough pass", "ReadOnly"))
    _raises(MalformedInput, "username", lambda: store.add("x" * 33, "long enough pass", "ReadOnly"))
    _raises(MalformedInput, "role", lambda: store.add("x", "long enough pass", "Root"))
    _raises(MalformedInput, "password-length", lambda: store.add("x", "short", "ReadOnly"))
    _raises(MalformedInput, "password-length", lambda: store.add("x", "y" * 129, "ReadOnly"))
    _raises(Conflict, "username-taken", lambda: store.add("admin", "long enough pass", "ReadOnly"))
    _raises(NotFound, "account", lambda: store.get("9"))


def test_a_password_with_nul_bytes_is_never_the_password_without_them(
    store: AccountStore,
) -> None:
    """scrypt keys HMAC-SHA-256 with the password, and HMAC pads its key with zero bytes:
    unchecked, the password followed by NULs hashed as the password and logged in."""
    assert store.authenticate("admin", PASSWORD).username == "admin"
    for suffix in ("\0", "\0\0\0"):
        _raises(Unauthorized, "login", lambda s=suffix: store.authenticate("admin", PASSWORD + s))
    assert store.failures("1") == 2  # each counted as a wrong guess
    _raises(MalformedInput, "password-nul", lambda: store.add("x", "long enough\0pass", "ReadOnly"))
    _raises(MalformedInput, "password-nul", lambda: store.update("1", password=PASSWORD + "\0"))


def test_settings_are_checked(store: AccountStore) -> None:
    _raises(ConfigError, "session_timeout", lambda: store.configure(session_timeout=29))
    _raises(ConfigError, "min_password_length", lambda: store.configure(min_password_length=7))
    _raises(
        ConfigError,
        "min_password_length",
        lambda: store.configure(min_password_length=100, max_password_length=50),
    )
    _raises(
        ConfigError,
        "lockout_reset_after",
        lambda: store.configure(lockout_duration=10, lockout_reset_after=20),
    )
    store.configure(min_password_length=16)
    _raises(
        MalformedInput, "password-length", lambda: store.add("x", "fifteen chars!!", "ReadOnly")
    )


def test_a_password_change_needs_the_password_of_the_account_that_asks(
    store: AccountStore,
) -> None:
    """``change_password`` is the ChangePassword action's core: the account that asks (the
    session's) gives its own password, for its own account or, an Administrator, for
    another. A wrong one changes nothing and counts as a wrong login; the new password is
    checked before any password is hashed."""
    viewer = store.add("viewer", "viewer password", "ReadOnly")
    _raises(
        Unauthorized,
        "session-account-password",
        lambda: store.change_password(viewer.id, "taken over!!", by=viewer.id, by_password="x"),
    )
    assert store.failures(viewer.id) == 1
    _raises(
        MalformedInput,
        "password-length",
        lambda: store.change_password(viewer.id, "short", by=viewer.id, by_password="x"),
    )
    assert store.failures(viewer.id) == 1  # not checked: the new password was refused first
    _raises(
        Unauthorized,
        "session-account-password",
        lambda: store.change_password(
            viewer.id, "reset by admin", by="1", by_password="viewer password"
        ),
    )
    store.change_password(
        viewer.id, "changed by itself", by=viewer.id, by_password="viewer password"
    )
    assert store.failures(viewer.id) == 0
    store.change_password(viewer.id, "reset by admin", by="1", by_password=PASSWORD)
    assert store.authenticate("viewer", "reset by admin").id == viewer.id
    _raises(
        Unauthorized,
        "session-account-password",
        lambda: store.change_password(viewer.id, "x" * 12, by="9", by_password=PASSWORD),
    )
    _raises(
        NotFound,
        "account",
        lambda: store.change_password("9", "x" * 12, by="1", by_password=PASSWORD),
    )


def test_wrong_passwords_given_to_a_password_change_lock_the_account(
    store: AccountStore, clock: Clock
) -> None:
    viewer = store.add("viewer", "viewer password", "ReadOnly")
    store.configure(lockout_threshold=3)
    for _ in range(3):
        _raises(
            Unauthorized,
            "session-account-password",
            lambda: store.change_password(viewer.id, "x" * 12, by=viewer.id, by_password="no"),
        )
    assert store.locked(viewer.id)
    _raises(
        IdentityLocked,
        "locked",
        lambda: store.change_password(
            viewer.id, "x" * 12, by=viewer.id, by_password="viewer password"
        ),
    )
    _raises(IdentityLocked, "locked", lambda: store.authenticate("viewer", "viewer password"))


def test_require_change_password_action_is_on_by_default_and_kept(
    store: AccountStore, tmp_path: Path, clock: Clock
) -> None:
    """On unless an Administrator turns it off; kept in the account file beside the settings
    an older build reads (which refuses settings it does not know: after a rollback of the
    BMC's firmware, it still opens the file), and a file without it is on."""
    assert store.settings.require_change_password_action is True
    _raises(
        ConfigError,
        "require_change_password_action",
        lambda: store.configure(require_change_password_action=1),
    )
    store.configure(require_change_password_action=False)
    path = tmp_path / ACCOUNTS_FILE
    doc = json.loads(path.read_text())
    assert doc["require_change_password_action"] is False
    assert "require_change_password_action" not in doc["settings"]
    assert AccountStore.open(tmp_path, clock=clock, kdf=KDF).settings == store.settings
    del doc["require_change_password_action"]
    path.write_text(json.dumps(doc))
    assert AccountStore.open(tmp_path).settings.require_change_password_action is True
    path.write_text(json.dumps({**doc, "require_change_password_action": "no"}))
    _raises(StorageError, "accounts", lambda: AccountStore.open(tmp_path))


def test_the_first_administrator_comes_from_a_password_file(tmp_path: Path) -> None:
    password_file = tmp_path / "admin.pw"
    password_file.write_text(f"{PASSWORD}\nignored second line\n")
    node = tmp_path / "node"
    node.mkdir()
    _raises(NotFound, "not-found", lambda: AccountStore.open(node))
    store = AccountStore.create(node, "root-admin", password_file, kdf=KDF)
    assert store.authenticate("root-admin", PASSWORD).role == "Administrator"
    _raises(Conflict, "accounts-exist", lambda: AccountStore.create(node, "x", password_file))
    _raises(
        InputUnavailable,
        "password-file",
        lambda: AccountStore.create(tmp_path / "other", "x", tmp_path / "missing.pw"),
    )


def test_a_damaged_account_file_is_refused(store: AccountStore, tmp_path: Path) -> None:
    path = tmp_path / ACCOUNTS_FILE
    for damage in (
        "{",
        "[]",
        '{"format": 2}',
        json.dumps({"format": 1, "settings": {}, "next_id": 2, "accounts": [{}]}),
    ):
        path.write_text(damage)
        _raises(StorageError, "accounts", lambda: AccountStore.open(tmp_path))
    doc = {
        "format": 1,
        "settings": {},
        "next_id": 2,
        "accounts": [
            {
                "id": "1",
                "username": "admin",
                "role": "God",
                "enabled": True,
                "failures": 0,
                "last_failure": 0,
                "locked_until": None,
                "password": {"kdf": "scrypt", "n": 1024, "r": 8, "p": 1, "salt": "", "hash": ""},
            }
        ],
    }
    path.write_text(json.dumps(doc))
    _raises(StorageError, "accounts", lambda: AccountStore.open(tmp_path))


# --- sessions ---------------------------------------------------------------------------------


def test_a_session_token_is_random_and_stored_only_as_its_hash(store: AccountStore) -> None:
    sessions = SessionStore(store)
    account = store.get("1")
    first, token = sessions.create(account, "192.0.2.1")
    second, other = sessions.create(account)
    assert token != other
    assert len(token) >= 43
    assert token not in repr(first)
    assert sessions.lookup(token) == first
    assert sessions.lookup(other) == second
    _raises(Unauthorized, "session", lambda: sessions.lookup("x" + token))


def test_an_idle_session_times_out(store: AccountStore, clock: Clock) -> None:
    store.configure(session_timeout=60)
    sessions = SessionStore(store)
    _, token = sessions.create(store.get("1"))
    clock.now += 59
    sessions.lookup(token)  # used: the idle timer restarts
    clock.now += 59
    sessions.lookup(token)
    clock.now += 61
    _raises(Unauthorized, "session", lambda: sessions.lookup(token))
    assert sessions.sessions() == []


@pytest.mark.parametrize(
    "change",
    ["remove", "password", "role", "disable", "password-change-lockout"],
)
def test_sessions_end_with_their_account(store: AccountStore, change: str) -> None:
    sessions = SessionStore(store)
    account = store.add("ops", "operator password", "Operator")
    _, token = sessions.create(account)
    _, admin_token = sessions.create(store.get("1"))
    if change == "remove":
        store.remove(account.id)
    elif change == "password":
        store.update(account.id, password="another long password")
    elif change == "role":
        store.update(account.id, role="ReadOnly")
    elif change == "disable":
        store.update(account.id, enabled=False)
    else:  # the session's holder guessed its own password (a stolen token): locked out
        store.configure(lockout_threshold=1)
        _raises(
            Unauthorized,
            "session-account-password",
            lambda: store.change_password(account.id, "x" * 12, by=account.id, by_password="no"),
        )
    _raises(Unauthorized, "session", lambda: sessions.lookup(token))
    assert sessions.lookup(admin_token).username == "admin"


def test_a_name_change_keeps_the_session(store: AccountStore) -> None:
    sessions = SessionStore(store)
    account = store.add("ops", "operator password", "Operator")
    _, token = sessions.create(account)
    store.update(account.id, username="ops-renamed")
    assert sessions.lookup(token).account_id == account.id


def test_the_number_of_sessions_is_bounded(store: AccountStore) -> None:
    sessions = SessionStore(store)
    account = store.get("1")
    for _ in range(MAX_SESSIONS_PER_ACCOUNT):
        sessions.create(account)
    _raises(LimitExceeded, "account-session-limit", lambda: sessions.create(account))
    others = [
        store.add(f"user{n}", "a long password", "ReadOnly")
        for n in range(MAX_SESSIONS // MAX_SESSIONS_PER_ACCOUNT)
    ]
    for other in others[:-1]:
        for _ in range(MAX_SESSIONS_PER_ACCOUNT):
            sessions.create(other)
    assert len(sessions.sessions()) == MAX_SESSIONS
    _raises(LimitExceeded, "session-limit", lambda: sessions.create(others[-1]))


def test_every_role_has_login_and_configure_self() -> None:
    assert set(ROLES) == {"Administrator", "Operator", "ReadOnly"}
    for privileges in ROLES.values():
        assert {"Login", "ConfigureSelf"} <= privileges
    assert "ConfigureComponents" not in ROLES["ReadOnly"]
    assert "ConfigureUsers" not in ROLES["Operator"]


def test_a_lower_maximum_password_length_keeps_longer_passwords_working(
    store: AccountStore,
) -> None:
    """MaxPasswordLength bounds new passwords. A login cut the password it was given to 4 ×
    the current maximum in bytes before hashing, so lowering the maximum below an existing
    password's length made that password wrong for good: the account (the last Administrator
    too) could not log in, and each try counted towards its lockout."""
    passphrase = "correct horse battery staple, and then some more words" * 2
    account = store.add("ops", passphrase, "Administrator")
    store.configure(max_password_length=16, min_password_length=8)
    for _ in range(store.settings.lockout_threshold + 1):
        assert store.authenticate("ops", passphrase).id == account.id
    assert store.failures(account.id) == 0
    _raises(Unauthorized, "login", lambda: store.authenticate("ops", passphrase[:64]))
    _raises(Unauthorized, "login", lambda: store.authenticate("ops", passphrase + "x"))


def test_a_password_of_the_longest_bytes_takes_no_suffix(store: AccountStore) -> None:
    """The cut at 4 × the maximum length in bytes also let a password of that many bytes
    (128 four-byte characters) be followed by anything."""
    widest = "\U0001f511" * store.settings.max_password_length
    account = store.add("keys", widest, "ReadOnly")
    assert store.authenticate("keys", widest).id == account.id
    _raises(Unauthorized, "login", lambda: store.authenticate("keys", widest + "anything"))
    _raises(Unauthorized, "login", lambda: store.authenticate("keys", widest + "x" * 10_000))


def test_guesses_at_a_locked_account_write_nothing(store: AccountStore, clock: Clock) -> None:
    """Each wrong password rewrote the account file, even for an account already locked: an
    endless flood of guesses at a locked name wore the BMC's flash. A locked account's wrong
    passwords are refused the same, and the file stays as it was."""
    store.configure(lockout_threshold=2, lockout_duration=60, lockout_reset_after=60)
    store.add("ops", "operator password", "Operator")
    for _ in range(2):
        _raises(Unauthorized, "login", lambda: store.authenticate("ops", "wrong password"))
    store.flush()  # the lockout, written after the answer
    path = store.path
    before = (path.read_bytes(), path.stat().st_ino)
    for _ in range(5):
        clock.now += 1
        _raises(Unauthorized, "login", lambda: store.authenticate("ops", "wrong password"))
    _raises(IdentityLocked, "locked", lambda: store.authenticate("ops", "operator password"))
    assert (path.read_bytes(), path.stat().st_ino) == before
    clock.now += 60
    assert store.authenticate("ops", "operator password").username == "ops"
    assert store.failures(store.get("2").id) == 0


class _ChangedWhileHashing(AccountStore):
    """An account store in which an administrator sets a new password for ``ops`` just as a
    login with the old one has looked the account up, and before its hash is compared."""

    new_password: str | None = None

    def by_name(self, username: str) -> Account | None:
        found = super().by_name(username)
        if found is not None and self.new_password is not None:
            password, self.new_password = self.new_password, None
            self.update(found.id, password=password)
        return found


def test_a_password_changed_while_the_old_one_is_checked_opens_no_session(
    tmp_path: Path, clock: Clock
) -> None:
    """The old password was hashed against the account as it was looked up, and the answer
    given for the account as it is after: right a moment ago, it logged in after the change
    (whose end of the account's sessions had already run), a session that outlived a password
    rotation. Now refused; and a session is opened only for the account as it was
    authenticated."""
    store = _ChangedWhileHashing.create_with(tmp_path, "admin", PASSWORD, clock=clock, kdf=KDF)
    sessions = SessionStore(store)
    store.add("ops", "operator password", "Operator")
    store.new_password = "a rotated password"
    _raises(Unauthorized, "login", lambda: store.authenticate("ops", "operator password"))
    assert store.authenticate("ops", "a rotated password").username == "ops"

    before = store.authenticate("ops", "a rotated password")
    store.update(before.id, password="rotated once more")  # between the check and the session
    _raises(Unauthorized, "session", lambda: sessions.create(before))
    admin = store.authenticate("admin", PASSWORD)
    store.add("admin2", "second admin password", "Administrator")
    store.update(admin.id, role="ReadOnly")
    _raises(Unauthorized, "session", lambda: sessions.create(admin))
    assert sessions.sessions() == []


def test_the_right_password_of_a_locked_or_disabled_account_costs_what_a_wrong_one_costs(
    store: AccountStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same refusal must not come sooner for the password that works: while an account is
    # locked, or disabled, neither a wrong nor the right password writes anything.
    store.configure(lockout_threshold=2, lockout_duration=600, lockout_reset_after=600)
    for _ in range(2):
        _raises(Unauthorized, "login", lambda: store.authenticate("admin", "wrong password"))
    store.flush()  # the lockout, written after the answer
    writes = _Writes(monkeypatch)
    _raises(Unauthorized, "login", lambda: store.authenticate("admin", "wrong again"))
    assert writes.take() == []
    _raises(IdentityLocked, "locked", lambda: store.authenticate("admin", PASSWORD))
    assert writes.take() == []
    account = store.add("off", "a disabled password", "ReadOnly", enabled=False)
    writes.take()  # the account's own
    _raises(Unauthorized, "login", lambda: store.authenticate("off", "a wrong password"))
    assert writes.take() == []
    _raises(Unauthorized, "login", lambda: store.authenticate("off", "a disabled password"))
    assert writes.take() == []
    assert store.failures(account.id) == 1


# --- lockout per (account, source address) ------------------------------------------------

ATTACKER = "192.0.2.66"
OPERATOR_DESK = "198.51.100.7"


def test_a_lockout_holds_for_the_address_that_guessed_not_for_the_others(
    store: AccountStore, clock: Clock
) -> None:
    """The lockout was the account's, from everywhere: anyone who knew the Administrator's
    name locked it out with a few wrong passwords, a denial of service at will. It is now
    counted per (account, source address): the guesser's address is locked out, the
    Administrator at its own desk logs in, and its sessions go on."""
    sessions = SessionStore(store)
    _, token = sessions.create(store.get("1"), OPERATOR_DESK)
    store.configure(lockout_threshold=3, lockout_duration=60, lockout_reset_after=60)
    for _ in range(3):
        _raises(
            Unauthorized,
            "login",
            lambda: store.authenticate("admin", "wrong password", source=ATTACKER),
        )
    _raises(
        IdentityLocked, "locked", lambda: store.authenticate("admin", PASSWORD, source=ATTACKER)
    )
    assert store.failures("1", ATTACKER) == 0  # reset by the lockout
    assert store.authenticate("admin", PASSWORD, source=OPERATOR_DESK).id == "1"
    assert sessions.lookup(token).username == "admin"
    assert store.locked("1")  # Redfish's ``Locked``: locked for some source
    assert store.locked("1", ATTACKER)
    assert not store.locked("1", OPERATOR_DESK)
    clock.now += 61
    assert not store.locked("1")
    assert store.authenticate("admin", PASSWORD, source=ATTACKER).id == "1"


def test_failures_from_different_addresses_are_counted_apart(
    store: AccountStore, clock: Clock
) -> None:
    store.configure(lockout_threshold=3, lockout_duration=60, lockout_reset_after=60)
    for source in (ATTACKER, OPERATOR_DESK, ATTACKER, OPERATOR_DESK):
        _raises(
            Unauthorized, "login", lambda s=source: store.authenticate("admin", "wrong", source=s)
        )
    assert (store.failures("1", ATTACKER), store.failures("1", OPERATOR_DESK)) == (2, 2)
    assert store.authenticate("admin", PASSWORD, source=OPERATOR_DESK).id == "1"
    assert (store.failures("1", ATTACKER), store.failures("1", OPERATOR_DESK)) == (2, 0)
    assert not store.locked("1")


def test_an_ipv6_client_is_one_source_for_its_whole_64(store: AccountStore) -> None:
    """An IPv6 host may send from any address of its /64: counted per address, it would have
    2**64 lockout counters. It counts as its /64, and an IPv4-mapped address as the IPv4 one."""
    store.configure(lockout_threshold=3)
    for source in ("2001:db8:1:2::1", "2001:db8:1:2::abcd", "2001:db8:1:2:ffff::9"):
        _raises(
            Unauthorized, "login", lambda s=source: store.authenticate("admin", "wrong", source=s)
        )
    _raises(
        IdentityLocked,
        "locked",
        lambda: store.authenticate("admin", PASSWORD, source="2001:db8:1:2::77"),
    )
    assert store.authenticate("admin", PASSWORD, source="2001:db8:1:3::1").id == "1"
    for _ in range(3):
        _raises(
            Unauthorized,
            "login",
            lambda: store.authenticate("admin", "wrong", source="::ffff:192.0.2.1"),
        )
    _raises(
        IdentityLocked, "locked", lambda: store.authenticate("admin", PASSWORD, source="192.0.2.1")
    )


def test_a_source_lockout_outlives_a_restart_and_an_administrator_clears_every_one(
    store: AccountStore, clock: Clock
) -> None:
    store.configure(lockout_threshold=2, lockout_duration=600, lockout_reset_after=600)
    for source in (ATTACKER, "203.0.113.5"):
        for _ in range(2):
            _raises(
                Unauthorized,
                "login",
                lambda s=source: store.authenticate("admin", "wrong", source=s),
            )
    store.flush()  # the lockouts, written after the answers
    reopened = AccountStore(store.path, clock=clock, kdf=KDF)
    for source in (ATTACKER, "203.0.113.5"):
        _raises(
            IdentityLocked,
            "locked",
            lambda s=source: reopened.authenticate("admin", PASSWORD, source=s),
        )
    assert reopened.authenticate("admin", PASSWORD, source=OPERATOR_DESK).id == "1"
    clock.now += 601  # the lockouts have ended while the service was down
    assert not AccountStore(store.path, clock=clock, kdf=KDF).locked("1")
    clock.now -= 601
    reopened.update("1", locked=False)  # Redfish's PATCH Locked: false
    assert not reopened.locked("1")
    assert reopened.authenticate("admin", PASSWORD, source=ATTACKER).id == "1"
    assert not AccountStore(store.path, clock=clock, kdf=KDF).locked("1")


def test_the_lockout_state_is_bounded_however_many_sources_or_names_guess(
    store: AccountStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker rotating source addresses (or account names) must not grow the BMC's
    memory or account file without bound: at most ``MAX_TALLIES`` (account, source) counts
    are held (the least recently failing forgotten first), guesses at names that do not
    exist hold nothing, and at most ``MAX_SAVED_LOCKOUTS`` lockouts an account are written
    (the most recent)."""
    monkeypatch.setattr(_redfish_accounts, "MAX_TALLIES", 16)
    monkeypatch.setattr(_redfish_accounts, "MAX_SAVED_LOCKOUTS", 4)
    store.configure(lockout_threshold=1, lockout_duration=600, lockout_reset_after=600)
    for n in range(200):
        source = f"10.0.{n // 250}.{n % 250}"
        _raises(Unauthorized, "login", lambda s=source: store.authenticate("admin", "x", source=s))
        _raises(
            Unauthorized,
            "login",
            lambda s=source, n=n: store.authenticate(f"nobody{n}", "x", source=s),
        )
        assert store.tracked <= 16
    assert store.tracked == 16
    assert store.locked("1", "10.0.0.199")  # the newest are held
    store.flush()
    saved = json.loads(store.path.read_text())["accounts"][0]["lockouts"]
    assert len(saved) == 4
    assert "10.0.0.199" in saved


def test_a_file_with_malformed_source_lockouts_is_refused(
    store: AccountStore, tmp_path: Path
) -> None:
    path = tmp_path / ACCOUNTS_FILE
    doc = json.loads(path.read_text())
    for bad in ([], {"192.0.2.1": "soon"}, {"192.0.2.1": -1}, {"": 5.0}):
        doc["accounts"][0]["lockouts"] = bad
        path.write_text(json.dumps(doc))
        _raises(StorageError, "accounts", lambda: AccountStore.open(tmp_path))
    del doc["accounts"][0]["lockouts"]  # a file an older build wrote
    for throttle in ([], {"failure_limit": "20", "window": 300}, {"failure_limit": 20}):
        path.write_text(json.dumps({**doc, "source_throttle": throttle}))
        _raises(StorageError, "accounts", lambda: AccountStore.open(tmp_path))
    del doc["source_throttle"]
    path.write_text(json.dumps(doc))
    assert not AccountStore.open(tmp_path).locked("1")
    assert AccountStore.open(tmp_path).settings.source_failure_limit == 20


def test_the_per_source_throttle_settings_are_checked_and_kept(
    store: AccountStore, tmp_path: Path, clock: Clock
) -> None:
    """Kept beside the settings an older build reads (it refuses a member it does not know)."""
    assert (store.settings.source_failure_limit, store.settings.source_failure_window) == (20, 300)
    _raises(ConfigError, "source_failure_window", lambda: store.configure(source_failure_window=0))
    _raises(ConfigError, "source_failure_limit", lambda: store.configure(source_failure_limit=-1))
    store.configure(source_failure_limit=8, source_failure_window=60)
    doc = json.loads((tmp_path / ACCOUNTS_FILE).read_text())
    assert doc["source_throttle"] == {"failure_limit": 8, "window": 60}
    assert "source_failure_limit" not in doc["settings"]
    assert AccountStore.open(tmp_path, clock=clock, kdf=KDF).settings == store.settings


def test_a_user_name_is_taken_whatever_its_case(store: AccountStore) -> None:
    viewer = store.add("viewer", "viewer password", "ReadOnly")
    _raises(Conflict, "username-taken", lambda: store.add("ADMIN", "a long password", "ReadOnly"))
    _raises(Conflict, "username-taken", lambda: store.update(viewer.id, username="Admin"))
    assert [a.username for a in store.accounts()] == ["admin", "viewer"]
    assert store.update(viewer.id, username="Viewer").username == "Viewer"
    _raises(Unauthorized, "login", lambda: store.authenticate("ADMIN", PASSWORD))  # exact at login
