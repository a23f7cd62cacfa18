"""Changing a password over Redfish: DMTF's ``#ManagerAccount.ChangePassword`` action, which
asks for the password of the session's account (``SessionAccountPassword``), and
``AccountService.RequireChangePasswordAction`` (on by default), which refuses a ``PATCH`` of
``Password``: a stolen session token no longer takes its account over for good."""

from __future__ import annotations

from tests.platform.test_platform_redfish import (
    ADMIN,
    INVENTORY,
    OPERATOR,
    ROOT,
    VIEWER,
    Bmc,
    _error,
    _login,
    bmc,
    world,
)

__all__ = ["bmc", "world"]  # the fixtures, imported for pytest

ACCOUNTS = f"{ROOT}/AccountService/Accounts"
ACTION = "ManagerAccount.ChangePassword"


def _action(account: str) -> str:
    return f"{ACCOUNTS}/{account}/Actions/{ACTION}"


def _logs_in(bmc: Bmc, who: tuple[str, str]) -> bool:
    with bmc.client() as client:
        response = client.post(
            f"{ROOT}/SessionService/Sessions", json={"UserName": who[0], "Password": who[1]}
        )
    return response.status_code == 201


def test_an_account_advertises_change_password_and_the_service_requires_it(bmc: Bmc) -> None:
    """The ManagerAccount schema (v1_11_0 on) defines ``ChangePassword``; the account shows it
    with its ``target``, and ``AccountService`` says PATCH may not set a password."""
    with bmc.client(VIEWER) as client:
        account = client.get(f"{ACCOUNTS}/3").json()
        service = client.get(f"{ROOT}/AccountService").json()
    assert account["Actions"] == {f"#{ACTION}": {"target": _action("3")}}
    assert service["RequireChangePasswordAction"] is True


def test_a_stolen_session_token_cannot_change_its_accounts_password(bmc: Bmc) -> None:
    """A session token alone PATCHed its account's password, so whoever stole one owned the
    account for good. The PATCH is refused (``RequireChangePasswordAction``), and the action
    needs the account's current password; only that changes it, and the change ends the
    account's sessions, the stolen one included."""
    with bmc.client() as client:
        token = {"X-Auth-Token": _login(client, VIEWER)}
        patched = client.patch(
            f"{ACCOUNTS}/3", json={"Password": "taken over by mallory"}, headers=token
        )
        guessed = client.post(
            _action("3"),
            json={"NewPassword": "taken over by mallory", "SessionAccountPassword": "a guess!!"},
            headers=token,
        )
        assert _logs_in(bmc, VIEWER)
        assert not _logs_in(bmc, ("viewer", "taken over by mallory"))
        changed = client.post(
            _action("3"),
            json={"NewPassword": "the viewer's new one", "SessionAccountPassword": VIEWER[1]},
            headers=token,
        )
        after = client.get(INVENTORY, headers=token)
    error = _error(patched, 400, "PropertyNotWritable")
    info = error["@Message.ExtendedInfo"][0]
    assert (info["MessageArgs"], info["RelatedProperties"]) == (["Password"], ["/Password"])
    assert _action("3") in error["message"]
    error = _error(guessed, 403, "ActionParameterValueError")
    info = error["@Message.ExtendedInfo"][0]
    assert info["MessageArgs"] == ["SessionAccountPassword", ACTION]
    assert info["RelatedProperties"] == ["/SessionAccountPassword"]
    assert "a guess" not in guessed.text
    assert "mallory" not in guessed.text
    assert changed.status_code == 200, changed.text
    assert changed.json()["@Message.ExtendedInfo"][0]["MessageId"] == "Base.1.22.AccountModified"
    _error(after, 401, "NoValidSession")
    assert not _logs_in(bmc, VIEWER)
    assert _logs_in(bmc, ("viewer", "the viewer's new one"))


def test_wrong_session_account_passwords_lock_the_account_and_end_the_stolen_session(
    bmc: Bmc,
) -> None:
    """Each wrong ``SessionAccountPassword`` is a wrong password: it counts towards the
    lockout like a wrong login, so a stolen token is no unlimited guessing oracle; at the
    threshold the account locks and its sessions (the stolen one) end."""
    with bmc.client(ADMIN) as admin:
        assert admin.patch(f"{ROOT}/AccountService", json={"AccountLockoutThreshold": 3}).is_success
    with bmc.client() as client:
        token = {"X-Auth-Token": _login(client, OPERATOR)}
        guess = {"NewPassword": "mallory's password", "SessionAccountPassword": "not it, no"}
        answers = [client.post(_action("2"), json=guess, headers=token) for _ in range(3)]
        after = client.post(
            _action("2"),
            json={**guess, "SessionAccountPassword": OPERATOR[1]},
            headers=token,
        )
    for response in answers:
        _error(response, 403, "ActionParameterValueError")
    _error(after, 401, "NoValidSession")
    operator = bmc.service.accounts.by_name(OPERATOR[0])
    assert operator is not None
    assert bmc.service.accounts.locked(operator.id, "127.0.0.1")  # where it guessed from
    assert not _logs_in(bmc, OPERATOR)


def test_an_administrator_resets_another_password_with_its_own(bmc: Bmc) -> None:
    """The schema: "an administrator changing the password for a different user shall
    provide their own password". The other account's password is no credential for it, a
    PATCH is refused like any other, and without ``ConfigureUsers`` another account is
    ``403`` whatever the passwords."""
    with bmc.client(ADMIN) as admin, bmc.client(OPERATOR) as operator:
        patched = admin.patch(f"{ACCOUNTS}/3", json={"Password": "reset by the admin"})
        with_theirs = admin.post(
            _action("3"),
            json={"NewPassword": "reset by the admin", "SessionAccountPassword": VIEWER[1]},
        )
        by_operator = operator.post(
            _action("3"),
            json={"NewPassword": "reset by the operator", "SessionAccountPassword": OPERATOR[1]},
        )
        missing = admin.post(
            _action("99"),
            json={"NewPassword": "reset by the admin", "SessionAccountPassword": ADMIN[1]},
        )
        reset = admin.post(
            _action("3"),
            json={"NewPassword": "reset by the admin", "SessionAccountPassword": ADMIN[1]},
        )
        still = admin.get(f"{ROOT}/AccountService")  # the admin's own Basic credentials
    _error(patched, 400, "PropertyNotWritable")
    _error(with_theirs, 403, "ActionParameterValueError")
    _error(by_operator, 403, "InsufficientPrivilege")
    _error(missing, 404, "ResourceMissingAtURI")
    assert reset.status_code == 200, reset.text
    assert still.status_code == 200
    assert not _logs_in(bmc, VIEWER)
    assert _logs_in(bmc, ("viewer", "reset by the admin"))
    assert _logs_in(bmc, OPERATOR)


def test_change_password_parameters_are_checked_and_never_echoed(bmc: Bmc) -> None:
    """Each parameter is required, a string, and nothing else is taken; a bad one is the Base
    registry's action message, ``400``, before any password is checked, and no answer shows
    a password it was given."""
    right = {"NewPassword": "a new long password", "SessionAccountPassword": VIEWER[1]}
    cases = [
        ({"NewPassword": right["NewPassword"]}, "ActionParameterMissing"),
        ({"SessionAccountPassword": VIEWER[1]}, "ActionParameterMissing"),
        ({**right, "UserName": "admin"}, "ActionParameterUnknown"),
        ({**right, "NewPassword": ["a new long password"]}, "ActionParameterValueTypeError"),
        ({**right, "SessionAccountPassword": [VIEWER[1]]}, "ActionParameterValueTypeError"),
        ({**right, "NewPassword": "short"}, "PasswordIncorrectLength"),
        ({**right, "NewPassword": "a new long password\0"}, "ActionParameterValueFormatError"),
    ]
    with bmc.client(VIEWER) as client:
        answers = [(client.post(_action("3"), json=body), key) for body, key in cases]
        malformed = client.post(
            _action("3"), content=b"{", headers={"Content-Type": "application/json"}
        )
        read = client.get(_action("3"))
    for response, key in answers:
        _error(response, 400, key)
        assert "new long" not in response.text, response.text
        assert VIEWER[1] not in response.text, response.text
    missing = answers[0][0].json()["error"]["@Message.ExtendedInfo"][0]
    assert missing["MessageArgs"] == [ACTION, "SessionAccountPassword"]
    _error(malformed, 400, "MalformedJSON")
    _error(read, 405, "OperationNotAllowed")
    assert read.headers["allow"] == "POST"
    account = bmc.service.accounts.by_name(VIEWER[0])
    assert account is not None
    assert bmc.service.accounts.failures(account.id, "127.0.0.1") == 0  # none checked
    assert _logs_in(bmc, VIEWER)


def test_http_basic_gives_the_same_password_as_session_account_password(bmc: Bmc) -> None:
    """The schema: with HTTP Basic, ``SessionAccountPassword`` is the password the
    ``Authorization`` header carries."""
    with bmc.client(OPERATOR) as client:
        changed = client.post(
            _action("2"),
            json={"NewPassword": "the operator's new one", "SessionAccountPassword": OPERATOR[1]},
        )
    assert changed.status_code == 200, changed.text
    assert _logs_in(bmc, ("operator", "the operator's new one"))


def test_require_change_password_action_false_lets_a_patch_set_passwords(bmc: Bmc) -> None:
    """An Administrator may turn the requirement off (``ConfigureUsers``): a PATCH of
    ``Password`` is then taken as before, for one's own account (``ConfigureSelf``) and by an
    Administrator for another. The action keeps working."""
    with bmc.client(ADMIN) as admin, bmc.client(VIEWER) as viewer:
        service = f"{ROOT}/AccountService"
        refused = viewer.patch(service, json={"RequireChangePasswordAction": False})
        typed = admin.patch(service, json={"RequireChangePasswordAction": "no"})
        off = admin.patch(service, json={"RequireChangePasswordAction": False})
        own = viewer.patch(f"{ACCOUNTS}/3", json={"Password": "set by a patch"})
    _error(refused, 403, "InsufficientPrivilege")
    _error(typed, 400, "PropertyValueTypeError")
    assert off.status_code == 200, off.text
    assert off.json()["RequireChangePasswordAction"] is False
    assert own.status_code == 200, own.text
    assert _logs_in(bmc, ("viewer", "set by a patch"))
    with bmc.client(ADMIN) as admin:
        other = admin.patch(f"{ACCOUNTS}/3", json={"Password": "reset by a patch"})
        on = admin.patch(f"{ROOT}/AccountService", json={"RequireChangePasswordAction": True})
        again = admin.patch(f"{ACCOUNTS}/3", json={"Password": "reset once more"})
    assert other.status_code == 200, other.text
    assert on.json()["RequireChangePasswordAction"] is True
    _error(again, 400, "PropertyNotWritable")
    assert _logs_in(bmc, ("viewer", "reset by a patch"))


def test_a_patch_with_a_password_and_a_stale_etag_is_412_first(bmc: Bmc) -> None:
    """``If-Match`` is judged before the body (RFC 9110): a stale ETag is ``412`` whatever the
    PATCH asks, a refused ``Password`` included."""
    uri = f"{ACCOUNTS}/3"
    with bmc.client(ADMIN) as client:
        stale = client.patch(
            uri, json={"Password": "a new long password"}, headers={"If-Match": '"stale"'}
        )
    _error(stale, 412, "PreconditionFailed")


def test_a_password_changed_by_the_action_changes_the_accounts_etag(bmc: Bmc) -> None:
    """An account's ETag covers its password (which it does not show): a PATCH with an ETag
    read before the action's change is ``412``."""
    uri = f"{ACCOUNTS}/3"
    with bmc.client(ADMIN) as client:
        read = client.get(uri).headers["etag"]
        changed = client.post(
            _action("3"),
            json={"NewPassword": "reset by the action", "SessionAccountPassword": ADMIN[1]},
        )
        assert changed.status_code == 200, changed.text
        stale = client.patch(uri, json={"RoleId": "Operator"}, headers={"If-Match": read})
        role = client.get(uri).json()["RoleId"]
    _error(stale, 412, "PreconditionFailed")
    assert role == "ReadOnly"
