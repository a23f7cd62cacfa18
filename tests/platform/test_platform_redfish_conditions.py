"""Conditional requests to the platform's Redfish service (RFC 9110 §13): ``If-Match`` and
``If-None-Match`` read strictly (a field that is not ``"*"`` or a list of entity tags is
``412`` ``HeaderInvalid``, never a match), and held to every change, ``POST`` included."""

from __future__ import annotations

import pytest
from tests.platform.test_platform_redfish import (
    ADMIN,
    OPERATOR,
    PUSH,
    ROOT,
    SIMPLE,
    VIEWER,
    Bmc,
    _error,
    bmc,
    world,
)

__all__ = ["bmc", "world"]  # the fixtures, imported for pytest

ACCOUNTS = f"{ROOT}/AccountService/Accounts"
CHANGE = f"{ACCOUNTS}/3/Actions/ManagerAccount.ChangePassword"


@pytest.mark.parametrize(
    "value",
    [
        '*, "junk"',
        "*, junk",
        '"a", *',
        "junk",
        '"a", junk',
        'W/"a" "b"',
        '"unterminated',
        'W/ "a"',
        'w/"a"',
        '"a"b',
        '"in"side"',
        "* *",
    ],
)
@pytest.mark.parametrize("name", ["If-Match", "If-None-Match"])
def test_a_malformed_condition_is_412_naming_the_field_and_nothing_changes(
    bmc: Bmc, name: str, value: str
) -> None:
    """``If-Match: *, junk`` was read as a match (``*`` was one of the comma-separated
    pieces), and so was any list with the ETag among unquoted junk: RFC 9110 §13.1.1 has
    ``"*"`` alone or a list of quoted entity tags. A field that does not parse is a condition
    that cannot hold: ``412`` (as DMTF's protocol validator expects of a spoiled ``If-Match``)
    with the Base registry's ``HeaderInvalid`` naming it, for a change and a read alike."""
    uri = f"{ROOT}/SessionService"
    with bmc.client(ADMIN) as client:
        etag = client.get(uri).headers["etag"]
        value = value.replace('"a"', etag)
        changed = client.patch(uri, json={"SessionTimeout": 60}, headers={name: value})
        read = client.get(uri, headers={name: value})
    for answer in (changed, read):
        error = _error(answer, 412, "HeaderInvalid")
        assert error["@Message.ExtendedInfo"][0]["MessageArgs"] == [name]
    assert bmc.service.accounts.settings.session_timeout != 60


def test_a_well_formed_condition_with_empty_list_members_is_evaluated(bmc: Bmc) -> None:
    """RFC 9110 §5.6.1.2: a recipient accepts and ignores empty list members; the list's
    tags are compared as usual (a stale one ``412``, the current one among others ``200``)."""
    uri = f"{ROOT}/SessionService"
    with bmc.client(ADMIN) as client:
        etag = client.get(uri).headers["etag"]
        stale = client.patch(
            uri, json={"SessionTimeout": 60}, headers={"If-Match": ', "stale",, W/"old" ,'}
        )
        current = client.patch(
            uri, json={"SessionTimeout": 61}, headers={"If-Match": f'"x",  ,{etag}'}
        )
    _error(stale, 412, "PreconditionFailed")
    assert current.status_code == 200, current.text
    assert bmc.service.accounts.settings.session_timeout == 61


def test_conditions_in_two_fields_are_one_list(bmc: Bmc) -> None:
    """Two ``If-None-Match`` fields are one list (RFC 9110 §5.3): the service read only the
    first, so ``If-None-Match: "other"`` then the current ETag made the change it forbids."""
    uri = f"{ROOT}/SessionService"
    with bmc.client(ADMIN) as client:
        etag = client.get(uri).headers["etag"]
        answer = client.patch(
            uri,
            json={"SessionTimeout": 60},
            headers=[("If-None-Match", '"other"'), ("If-None-Match", etag)],
        )
        mixed = client.patch(
            uri, json={"SessionTimeout": 60}, headers=[("If-Match", "*"), ("If-Match", etag)]
        )
    _error(answer, 412, "PreconditionFailed")
    error = _error(mixed, 412, "HeaderInvalid")
    assert error["@Message.ExtendedInfo"][0]["MessageArgs"] == ["If-Match"]
    assert bmc.service.accounts.settings.session_timeout != 60


def test_a_post_to_a_collection_is_held_to_the_collections_etag(bmc: Bmc) -> None:
    """``If-Match`` on a ``POST`` to ``Accounts`` was ignored: RFC 9110 §13.1.1 has the server
    evaluate it against the target resource, the collection (its ETag changes with its
    members), so an Administrator creating an account on a stale view of the accounts gets
    ``412`` and no account."""
    new = {"UserName": "newuser", "Password": "a long new password", "RoleId": "ReadOnly"}
    with bmc.client(ADMIN) as client:
        etag = client.get(ACCOUNTS).headers["etag"]
        stale = client.post(ACCOUNTS, json=new, headers={"If-Match": '"stale"'})
        exists = client.post(ACCOUNTS, json=new, headers={"If-None-Match": "*"})
        created = client.post(ACCOUNTS, json=new, headers={"If-Match": etag})
        again = client.post(
            ACCOUNTS, json={**new, "UserName": "another"}, headers={"If-Match": etag}
        )
        names = [
            client.get(m["@odata.id"]).json()["UserName"]
            for m in client.get(ACCOUNTS).json()["Members"]
        ]
    _error(stale, 412, "PreconditionFailed")
    _error(exists, 412, "PreconditionFailed")
    assert created.status_code == 201, created.text
    _error(again, 412, "PreconditionFailed")  # the collection changed with the new member
    assert names.count("newuser") == 1
    assert "another" not in names


def test_an_action_is_held_to_the_etag_of_the_resource_it_is_bound_to(bmc: Bmc) -> None:
    """``ChangePassword`` is bound to its account (OData's bound actions; Redfish's
    ``Actions`` of a resource): ``If-Match`` is compared with the account's ETag, so a
    password change made on a stale read of the account is ``412`` and changes nothing."""
    body = {"NewPassword": "the viewer's new one", "SessionAccountPassword": VIEWER[1]}
    with bmc.client(VIEWER) as client:
        etag = client.get(f"{ACCOUNTS}/3").headers["etag"]
        stale = client.post(CHANGE, json=body, headers={"If-Match": '"stale"'})
        refused = client.post(CHANGE, json=body, headers={"If-None-Match": etag})
        changed = client.post(CHANGE, json=body, headers={"If-Match": etag})
    _error(stale, 412, "PreconditionFailed")
    _error(refused, 412, "PreconditionFailed")
    assert changed.status_code in (200, 204), changed.text


def test_an_update_action_is_held_to_the_update_services_etag(bmc: Bmc) -> None:
    """``SimpleUpdate`` is bound to ``UpdateService``: a stale ``If-Match`` is ``412`` before
    the body is read (RFC 9110 §13.2.1); the current ETag or ``*`` passes on to the body."""
    with bmc.client(OPERATOR) as client:
        etag = client.get(f"{ROOT}/UpdateService").headers["etag"]
        stale = client.post(SIMPLE, json={}, headers={"If-Match": '"stale"'})
        current = client.post(SIMPLE, json={}, headers={"If-Match": etag})
        star = client.post(SIMPLE, json={}, headers={"If-Match": "*"})
    _error(stale, 412, "PreconditionFailed")
    _error(current, 400, "ActionParameterMissing")
    _error(star, 400, "ActionParameterMissing")


def test_a_push_under_if_match_is_412_as_its_uri_has_no_representation(bmc: Bmc) -> None:
    """The ``MultipartHttpPushUri`` has no representation (no ``GET``, no ETag): RFC 9110
    §13.1.1 makes any ``If-Match``, ``*`` included, false there, so a push under one is
    ``412``, before its body is read."""
    files = {"UpdateParameters": (None, "{}", "application/json")}
    with bmc.client(OPERATOR) as client:
        answers = [
            client.post(PUSH, files=files, headers={"If-Match": tag}) for tag in ("*", '"x"')
        ]
        unconditioned = client.post(PUSH, files=files, headers={"If-None-Match": "*"})
    for answer in answers:
        _error(answer, 412, "PreconditionFailed")
    assert unconditioned.status_code == 400, unconditioned.text


def test_a_login_is_held_to_the_sessions_collection_as_its_account_reads_it(bmc: Bmc) -> None:
    """A login is a ``POST`` to ``Sessions``: its conditions are judged, once the credentials
    are, against the collection as the logging-in account would read it; a stale one is
    ``412`` and opens no session."""
    login = {"UserName": ADMIN[0], "Password": ADMIN[1]}
    sessions = f"{ROOT}/SessionService/Sessions"
    with bmc.client(ADMIN) as client:
        etag = client.get(sessions).headers["etag"]
        stale = client.post(sessions, json=login, headers={"If-Match": '"stale"'}, auth=None)
        exists = client.post(sessions, json=login, headers={"If-None-Match": "*"}, auth=None)
        opened = client.post(sessions, json=login, headers={"If-Match": etag}, auth=None)
        members = client.get(sessions).json()["Members"]
    _error(stale, 412, "PreconditionFailed")
    _error(exists, 412, "PreconditionFailed")
    assert opened.status_code == 201, opened.text
    assert members == [{"@odata.id": opened.headers["location"]}]
