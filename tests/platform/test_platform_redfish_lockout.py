"""The Redfish service against password guessing from the network, over real HTTP from
several source addresses (clients bound to 127.0.0.2, 127.0.0.3, …: the whole 127/8 is the
loopback): the lockout is counted per (account, source address), so a guesser cannot lock the
Administrator out; and an address that keeps failing is throttled, ``429`` with
``Retry-After`` before any password is hashed, while other addresses log in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.platform.node_world import NOW, World
from tests.platform.test_platform_redfish import ADMIN, INVENTORY, KDF, ROOT, _error, world

from ironroot.http import ServerThread
from ironroot.platform import _redfish_accounts
from ironroot.platform._redfish import RedfishService, create_redfish_app
from ironroot.platform._redfish_accounts import AccountStore

__all__ = ["world"]  # the fixture, imported for pytest

SESSIONS = f"{ROOT}/SessionService/Sessions"
ATTACKER = "127.0.0.2"
OPERATOR_DESK = "127.0.0.3"
WRONG = {"UserName": ADMIN[0], "Password": "a wrong guess"}
RIGHT = {"UserName": ADMIN[0], "Password": ADMIN[1]}


@dataclass
class Bmc:
    url: str
    service: RedfishService
    now: list[float]

    def client(self, source: str, who: tuple[str, str] | None = None) -> httpx.Client:
        """A client whose requests come from ``source``."""
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.url, auth=who, timeout=30, transport=transport)


@pytest.fixture
def bmc(world: World, tmp_path: Path) -> Iterator[Bmc]:
    now = [1_800_000_000.0]
    platform = world.node(tmp_path)
    accounts = AccountStore.create_with(platform.directory, *ADMIN, kdf=KDF, clock=lambda: now[0])
    service = RedfishService(
        platform,
        accounts,
        clock=lambda: NOW,
        basic_over_http=True,
        throttle_clock=lambda: now[0],
    )
    with ServerThread(create_redfish_app(service)) as server:
        yield Bmc(server.url, service, now)


class _Hashes:
    """How many passwords the account store has hashed (test side: its ``_hash`` observed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = _redfish_accounts._hash

        def counted(*args: Any) -> bytes:
            self.count += 1
            return real(*args)

        monkeypatch.setattr(_redfish_accounts, "_hash", counted)


def test_guesses_from_one_address_do_not_lock_the_administrator_out_at_another(
    bmc: Bmc,
) -> None:
    """Five wrong passwords from anywhere locked the Administrator's account for everyone
    (and ended its sessions): whoever knew the name "admin" could keep the BMC's owner out.
    The guesser's address is locked out of that account (its right password is answered as a
    wrong one, ``401 Base.1.22.NoValidSession``); the Administrator at another address logs
    in (``201``, Basic ``200``), its session goes on, the account shows ``Locked: true``, and
    ``PATCH Locked: false`` clears the lockout."""
    with bmc.client(OPERATOR_DESK) as desk, bmc.client(ATTACKER) as attacker:
        token = {"X-Auth-Token": desk.post(SESSIONS, json=RIGHT).headers["x-auth-token"]}
        for _ in range(5):  # AccountLockoutThreshold, the default
            _error(attacker.post(SESSIONS, json=WRONG), 401, "NoValidSession")
        locked = attacker.post(SESSIONS, json=RIGHT)
        _error(locked, 401, "NoValidSession")
        assert "x-auth-token" not in locked.headers
        assert locked.headers["www-authenticate"].startswith("Basic")
        assert desk.post(SESSIONS, json=RIGHT).status_code == 201
        assert desk.get(INVENTORY, auth=ADMIN).status_code == 200
        assert desk.get(INVENTORY, headers=token).status_code == 200
        _error(attacker.get(INVENTORY, auth=ADMIN), 401, "NoValidSession")
        account = desk.get(f"{ROOT}/AccountService/Accounts/1", headers=token)
        assert account.json()["Locked"] is True
        unlock = desk.patch(
            f"{ROOT}/AccountService/Accounts/1", json={"Locked": False}, headers=token
        )
        assert unlock.status_code == 200, unlock.text
        assert unlock.json()["Locked"] is False
        assert attacker.post(SESSIONS, json=RIGHT).status_code == 201


def test_an_address_that_keeps_failing_gets_429_before_any_password_is_checked(
    bmc: Bmc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``source_failure_limit`` failed logins (any names, known or not) within
    ``source_failure_window`` seconds, every login and Basic request from that address is
    ``429`` ``Base.1.22.ServiceTemporarilyUnavailable`` with ``Retry-After`` (the seconds
    until its oldest failure leaves the window), its right password too, and no password is
    hashed for it (no CPU for the guesser, no timing to read). Another address logs in."""
    bmc.service.accounts.configure(source_failure_limit=8, source_failure_window=60)
    hashes = _Hashes(monkeypatch)
    with bmc.client(ATTACKER) as attacker, bmc.client(OPERATOR_DESK) as desk:
        for n in range(8):  # unknown names: no account is locked, the address is held back
            guess = {"UserName": f"root{n}", "Password": "calvin"}
            _error(attacker.post(SESSIONS, json=guess), 401, "NoValidSession")
        assert hashes.count == 8
        bmc.now[0] += 10
        for throttled in (
            attacker.post(SESSIONS, json=RIGHT),
            attacker.post(SESSIONS, json=WRONG),
            attacker.get(INVENTORY, auth=ADMIN),
        ):
            error = _error(throttled, 429, "ServiceTemporarilyUnavailable")
            assert error["code"] == "Base.1.22.ServiceTemporarilyUnavailable"
            assert error["@Message.ExtendedInfo"][0]["MessageArgs"] == ["51"]
            assert throttled.headers["retry-after"] == "51"
            assert "x-auth-token" not in throttled.headers
        assert hashes.count == 8  # not one password checked for the throttled address
        assert desk.post(SESSIONS, json=RIGHT).status_code == 201
        assert desk.get(INVENTORY, auth=ADMIN).status_code == 200
        assert attacker.get(f"{ROOT}/").status_code == 200  # the public root still answers
        bmc.now[0] += 51
        assert attacker.post(SESSIONS, json=RIGHT).status_code == 201


def test_others_failures_never_throttle_a_good_address(bmc: Bmc) -> None:
    """Many addresses failing (each under its own budget) throttle none of the others: the
    Administrator's address logs in (HTTP Basic: a password check each), over and over,
    while they guess."""
    bmc.service.accounts.configure(source_failure_limit=3, source_failure_window=300)
    guessers = [bmc.client(f"127.0.0.{n}") for n in range(10, 20)]
    try:
        with bmc.client(OPERATOR_DESK) as desk:
            for guesser in guessers:
                for _ in range(3):
                    _error(guesser.post(SESSIONS, json=WRONG), 401, "NoValidSession")
                _error(guesser.post(SESSIONS, json=WRONG), 429, "ServiceTemporarilyUnavailable")
                assert desk.get(INVENTORY, auth=ADMIN).status_code == 200  # a login each
    finally:
        for guesser in guessers:
            guesser.close()


def test_the_per_source_budget_is_an_account_service_setting(bmc: Bmc) -> None:
    """``AccountService`` shows the budget beside the lockout properties, as
    ``Oem.Ironroot.SourceFailureLimit`` and ``SourceFailureWindow`` (DMTF defines no such
    property), and an Administrator PATCHes it; a value out of range or of another type is
    refused naming the property, and it applies to the next login."""
    uri = f"{ROOT}/AccountService"
    with bmc.client(OPERATOR_DESK, ADMIN) as admin, bmc.client(ATTACKER) as attacker:
        shown = admin.get(uri).json()
        assert shown["Oem"]["Ironroot"] == {
            "@odata.type": "#Ironroot.v1_0_0.AccountService",
            "SourceFailureLimit": 20,
            "SourceFailureWindow": 300,
        }
        for value, key in [
            ({"SourceFailureLimit": 10_001}, "PropertyValueOutOfRange"),
            ({"SourceFailureWindow": 0}, "PropertyValueOutOfRange"),
            ({"SourceFailureLimit": "3"}, "PropertyValueTypeError"),
            ({"SourceFailureWindow": True}, "PropertyValueTypeError"),
            ({"Lockout": 3}, "PropertyUnknown"),
        ]:
            refused = _error(admin.patch(uri, json={"Oem": {"Ironroot": value}}), 400, key)
            name = next(iter(value))
            related = refused["@Message.ExtendedInfo"][0]["RelatedProperties"]
            assert related == [f"/Oem/Ironroot/{name}"]
        _error(admin.patch(uri, json={"Oem": {"Contoso": {}}}), 400, "PropertyUnknown")
        assert admin.get(uri).json() == shown
        changed = admin.patch(
            uri,
            json={"Oem": {"Ironroot": {"SourceFailureLimit": 3, "SourceFailureWindow": 60}}},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["Oem"]["Ironroot"]["SourceFailureLimit"] == 3
        for _ in range(3):
            _error(attacker.post(SESSIONS, json=WRONG), 401, "NoValidSession")
        throttled = attacker.post(SESSIONS, json=WRONG)
        _error(throttled, 429, "ServiceTemporarilyUnavailable")
        assert throttled.headers["retry-after"] == "61"
    settings = bmc.service.accounts.settings
    assert (settings.source_failure_limit, settings.source_failure_window) == (3, 60)


def test_only_an_administrator_changes_the_per_source_budget(bmc: Bmc) -> None:
    bmc.service.accounts.add("operator", "operator password", "Operator")
    with bmc.client(OPERATOR_DESK, ("operator", "operator password")) as operator:
        body = {"Oem": {"Ironroot": {"SourceFailureLimit": 0}}}
        _error(operator.patch(f"{ROOT}/AccountService", json=body), 403, "InsufficientPrivilege")
    assert bmc.service.accounts.settings.source_failure_limit == 20
