"""The platform's Redfish service over real HTTP (httpx against a live server): resources,
sessions, roles, updates and their tasks, and every status code with its Redfish error body."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from tests.platform.node_world import NOW, OTHER, World, make_world

from ironroot._trust import system_trust
from ironroot.http import ServerThread, ServerTls, client_context
from ironroot.platform import Faults, Platform, PowerLost
from ironroot.platform._redfish import RedfishLimits, RedfishService, create_redfish_app
from ironroot.platform._redfish_accounts import AccountStore

KDF = (2**10, 8, 1)  # a cheap scrypt for tests; the default is N=2^15
ADMIN = ("admin", "admin password 1")
OPERATOR = ("operator", "operator password")
VIEWER = ("viewer", "viewer password!")
ROOT = "/redfish/v1"
PUSH = f"{ROOT}/UpdateService/update-multipart"
SIMPLE = f"{ROOT}/UpdateService/Actions/UpdateService.SimpleUpdate"
INVENTORY = f"{ROOT}/UpdateService/FirmwareInventory"
LIMITS = RedfishLimits(max_image_bytes=256 * 1024, max_statement_bytes=64 * 1024)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("redfish-world")) as w:
        yield w


@dataclass
class Bmc:
    url: str
    service: RedfishService
    platform: Platform
    world: World

    def client(self, who: tuple[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=who, timeout=30, verify=system_trust())

    def active(self, component: str) -> str:
        items = {i.id: i for i in self.platform.inventory()}
        return items[f"{component}-active"].version


@pytest.fixture
def bmc(world: World, tmp_path: Path) -> Iterator[Bmc]:
    platform = world.node(tmp_path)
    accounts = AccountStore.create_with(platform.directory, *ADMIN, kdf=KDF)
    accounts.add(*OPERATOR, "Operator")
    accounts.add(*VIEWER, "ReadOnly")
    service = RedfishService(
        platform,
        accounts,
        clock=lambda: NOW,
        limits=LIMITS,
        basic_over_http=True,
        fetch_internal=True,
    )
    with ServerThread(create_redfish_app(service)) as server:
        yield Bmc(server.url, service, platform, world)


def _error(response: httpx.Response, status: int, message_id: str) -> dict[str, Any]:
    """The Redfish error body of ``response``, held to its status and first message id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["odata-version"] == "4.0"
    error = response.json()["error"]
    infos = error["@Message.ExtendedInfo"]
    assert infos, error
    assert infos[0]["MessageId"].endswith(f".{message_id}"), error
    assert error["code"] in (infos[0]["MessageId"], "Base.1.22.GeneralError")
    assert error["message"]
    return dict(error)


def _parts(
    bundle: bytes,
    statements: Sequence[bytes] = (),
    *,
    targets: Sequence[str] = (f"{INVENTORY}/bmc-active",),
    extra: dict[str, Any] | None = None,
) -> list[tuple[str, tuple[str | None, bytes | str, str]]]:
    params = {"Targets": list(targets), **(extra or {})}
    parts: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
        ("UpdateParameters", (None, json.dumps(params), "application/json")),
        ("UpdateFile", ("image.bin", bundle, "application/octet-stream")),
    ]
    parts += [
        ("OemIronrootStatement", (f"s{n}.cose", s, "application/cose"))
        for n, s in enumerate(statements)
    ]
    return parts


def _wait(client: httpx.Client, monitor: str) -> httpx.Response:
    """The task monitor's answer once the task has ended."""
    deadline = time.monotonic() + 60
    while True:
        response = client.get(monitor)
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        time.sleep(0.02)


def _login(client: httpx.Client, who: tuple[str, str]) -> str:
    response = client.post(
        f"{ROOT}/SessionService/Sessions", json={"UserName": who[0], "Password": who[1]}
    )
    assert response.status_code == 201, response.text
    return response.headers["x-auth-token"]


# --- the service root, metadata and conventions ---------------------------------------------


def test_every_kind_of_answer_is_never_sniffed_into_markup_nor_framed(bmc: Bmc) -> None:
    """A Redfish error repeats what the client sent (the path of a 404, a header's name): a
    page that links a browser to ``/redfish/v1/<script>…`` gets JSON that is never sniffed
    as HTML nor framed, as every other Ironroot service's answers (``REFUSAL_HEADERS``)."""
    from ironroot.http import REFUSAL_HEADERS

    with bmc.client() as client, bmc.client(ADMIN) as admin:
        answers = [
            client.get(f"{ROOT}/<script>alert(1)</script>"),  # 404, the path repeated
            client.get(f"{ROOT}/"),  # 200
            client.get(f"{ROOT}/$metadata"),  # XML
            client.get(INVENTORY),  # 401
            client.delete(f"{ROOT}/"),  # 405
            client.get("/health"),
            admin.get(f"{ROOT}/AccountService"),
            admin.get(INVENTORY, headers={"If-None-Match": "*"}),  # 304
        ]
    for answer in answers:
        for name in ("x-content-type-options", "content-security-policy"):
            assert answer.headers.get(name) == REFUSAL_HEADERS[name], (answer.url, name)
    assert [a.status_code for a in answers] == [404, 200, 200, 401, 405, 200, 200, 304]


def test_the_service_root_is_public_and_links_every_service(bmc: Bmc) -> None:
    with bmc.client() as client:
        assert client.get("/redfish").json() == {"v1": "/redfish/v1/"}
        response = client.get(f"{ROOT}/")
        same = client.get(ROOT)
    assert response.status_code == 200
    assert response.headers["odata-version"] == "4.0"
    assert response.headers["etag"].startswith('W/"')
    root = response.json()
    assert root == same.json()
    assert root["@odata.id"] == ROOT
    assert root["@odata.type"] == "#ServiceRoot.v1_20_0.ServiceRoot"
    assert root["@odata.context"] == f"{ROOT}/$metadata#ServiceRoot.ServiceRoot"
    assert root["@odata.etag"] == response.headers["etag"]
    for name, uri in (
        ("SessionService", "SessionService"),
        ("AccountService", "AccountService"),
        ("UpdateService", "UpdateService"),
        ("Tasks", "TaskService"),
        ("Managers", "Managers"),
    ):
        assert root[name] == {"@odata.id": f"{ROOT}/{uri}"}
    assert root["Links"]["Sessions"] == {"@odata.id": f"{ROOT}/SessionService/Sessions"}


def test_metadata_and_the_oem_schema_are_csdl(bmc: Bmc) -> None:
    edmx = "{http://docs.oasis-open.org/odata/ns/edmx}"
    with bmc.client() as client:
        metadata = client.get(f"{ROOT}/$metadata")
        oem = client.get(f"{ROOT}/Schemas/Ironroot_v1.xml")
        service = client.get(f"{ROOT}/odata").json()
    assert metadata.headers["content-type"].startswith("application/xml")
    tree = ET.fromstring(metadata.content)  # noqa: S314 - the service under test wrote it
    included = {i.get("Namespace") for i in tree.iter(f"{edmx}Include")}
    assert {
        "ServiceRoot.v1_20_0",
        "UpdateService.v1_17_0",
        "SoftwareInventory.v1_13_0",
        "Task.v1_7_4",
        "LogEntry.v1_21_0",
        "Ironroot.v1_0_0",
    } <= included
    types = {
        t.get("Name")
        for t in ET.fromstring(oem.content).iter()  # noqa: S314 - the service under test wrote it
        if t.tag.endswith("ComplexType")
    }
    assert types == {"SoftwareInventory", "UpdateService", "AccountService", "Message"}
    assert service["@odata.context"] == f"{ROOT}/$metadata"
    assert {"name": "Service", "kind": "Singleton", "url": f"{ROOT}/"} in service["value"]


def test_an_unchanged_resource_answers_304_to_its_etag(bmc: Bmc) -> None:
    with bmc.client(ADMIN) as client:
        first = client.get(f"{ROOT}/UpdateService")
        again = client.get(
            f"{ROOT}/UpdateService", headers={"If-None-Match": first.headers["etag"]}
        )
    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]


def test_an_unsupported_query_is_501_and_another_odata_version_412(bmc: Bmc) -> None:
    with bmc.client(ADMIN) as client:
        query = client.get(f"{INVENTORY}?$expand=.")
        version = client.get(f"{ROOT}/UpdateService", headers={"OData-Version": "5.0"})
        ignored = client.get(f"{INVENTORY}?page=2")
    assert _error(query, 501, "QueryParameterUnsupported")["@Message.ExtendedInfo"][0][
        "MessageArgs"
    ] == ["$expand"]
    _error(version, 412, "HeaderInvalid")
    assert ignored.status_code == 200


def test_unknown_resources_are_404_and_other_methods_405(bmc: Bmc) -> None:
    with bmc.client(ADMIN) as client:
        missing = client.get(f"{ROOT}/Systems")
        member = client.get(f"{INVENTORY}/bmc-staged")
        account = client.get(f"{ROOT}/AccountService/Accounts/99")
        role = client.get(f"{ROOT}/AccountService/Roles/Root")
        task = client.get(f"{ROOT}/TaskService/Tasks/7")
        entry = client.get(f"{ROOT}/Managers/bmc/LogServices/RoT/Entries/9999")
        delete = client.delete(ROOT)
        post = client.post(f"{INVENTORY}/bmc-active", json={})
        patch = client.patch(f"{ROOT}/AccountService/Roles/ReadOnly", json={})
    error = _error(missing, 404, "ResourceMissingAtURI")
    assert error["@Message.ExtendedInfo"][0]["MessageArgs"] == [f"{ROOT}/Systems"]
    for response in (member, account, role, task, entry):
        _error(response, 404, "ResourceMissingAtURI")
    for response in (delete, post, patch):
        _error(response, 405, "OperationNotAllowed")
        assert "GET" in response.headers["allow"]
        assert response.request.method not in response.headers["allow"]


def test_a_method_no_http_parser_knows_gets_a_redfish_501(bmc: Bmc) -> None:
    """The HTTP parser refuses a method it does not know before any route sees it: the server
    hands it back to the Redfish app, which answers RFC 9110's 501 as a Redfish error (it was
    a 405 with the resource's ``Allow``, or a 404, as if the method were known); a known
    method a resource does not take stays 405 with ``Allow``."""
    with bmc.client(ADMIN) as client:
        root = client.request("FAKEMETHODFORTEST", f"{ROOT}/")
        inventory = client.request("FAKEMETHODFORTEST", f"{INVENTORY}?x=1")
        missing = client.request("FAKEMETHODFORTEST", f"{ROOT}/Nothing%20Here")
        known = client.request("TRACE", f"{ROOT}/AccountService")
        allow = client.get(f"{ROOT}/AccountService").headers["allow"]
    for response in (root, inventory, missing):
        error = _error(response, 501, "GeneralError")
        assert "no such HTTP method" in json.dumps(error)
        assert "allow" not in response.headers
        assert response.headers["connection"] == "close"
    _error(known, 405, "OperationNotAllowed")
    assert set(known.headers["allow"].split(", ")) == set(allow.split(", "))
    # a bare method, no target; a lowercase one (methods are case-sensitive): the same
    host, port = bmc.url.removeprefix("http://").split(":")
    for request in (b"XYZZY\r\n\r\n", b"get /redfish/v1/ HTTP/1.1\r\nHost: x\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request)
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
        assert b"odata-version: 4.0" in head.lower()
        assert json.loads(body)["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith(
            ".GeneralError"
        )


# --- sessions and credentials ---------------------------------------------------------------


def test_without_a_session_everything_but_the_root_is_401(bmc: Bmc) -> None:
    with bmc.client() as client:
        for uri in (
            f"{ROOT}/UpdateService",
            INVENTORY,
            f"{ROOT}/AccountService/Accounts",
            f"{ROOT}/Managers/bmc/LogServices/RoT/Entries",
            f"{ROOT}/TaskService",
        ):
            response = client.get(uri)
            _error(response, 401, "NoValidSession")
            assert response.headers["www-authenticate"].startswith("Basic")
        bogus = client.get(INVENTORY, headers={"X-Auth-Token": "not-a-session"})
        wrong = client.get(INVENTORY, auth=(ADMIN[0], "wrong password"))
        unknown = client.get(INVENTORY, auth=("nobody", ADMIN[1]))
        push = client.post(PUSH, files=_parts(bmc.world.release("bmc", "2.0").bundle))
    for response in (bogus, wrong, unknown, push):
        _error(response, 401, "NoValidSession")
    assert bmc.active("bmc") == "1.0"


def test_basic_credentials_need_https_unless_told_otherwise(bmc: Bmc, tmp_path: Path) -> None:
    from tls_pki import make_pki

    service = RedfishService(bmc.platform, bmc.service.accounts, clock=lambda: NOW)
    app = create_redfish_app(service)
    with ServerThread(app) as plain, httpx.Client(base_url=plain.url, auth=ADMIN) as client:
        refused = client.get(INVENTORY)
        token = _login(client, ADMIN)
        assert client.get(INVENTORY, headers={"X-Auth-Token": token}, auth=None).status_code == 200
    _error(refused, 401, "NoValidSession")
    pki = make_pki(tmp_path)
    tls = ServerTls(pki.server_cert, pki.server_key)
    with (
        ServerThread(app, tls=tls) as secure,
        httpx.Client(base_url=secure.url, auth=ADMIN, verify=client_context(pki.ca)) as client,
    ):
        assert client.get(INVENTORY).status_code == 200


@pytest.mark.parametrize("credentials", [b"Basic \xe9\xe9\xe9\xe9", b"Basic YWRt\xffaW4="])
def test_basic_credentials_that_are_not_ascii_are_a_401_not_a_500(
    bmc: Bmc, credentials: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A header field's bytes past ASCII reach the app as Latin-1 text, which base64 refuses
    with a ``ValueError`` that is no ``binascii.Error``: it was a 500 with a traceback in the
    log, for any client, at the public service root too."""
    with bmc.client() as client:
        protected = client.get(INVENTORY, headers={"Authorization": credentials})
        public = client.get(f"{ROOT}/", headers={"Authorization": credentials})
    _error(protected, 401, "NoValidSession")
    assert public.status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_plain_http_offers_no_basic_and_refuses_basic_without_checking_it(
    bmc: Bmc, tmp_path: Path
) -> None:
    """Over plain HTTP (no ``basic_over_http``) a 401 carries no ``Basic`` challenge (a
    browser would prompt for a password and send it in clear; the AccountService's
    ``HTTPBasicAuth`` says ``Disabled``), and Basic credentials are refused unchecked: the
    right password gets the answer no credentials get, and wrong ones lock nothing. Over
    HTTPS the 401 offers Basic (DSP0266 §13.3.4.1; ``HTTPBasicAuth: Enabled``)."""
    from tls_pki import make_pki

    service = RedfishService(bmc.platform, bmc.service.accounts, clock=lambda: NOW)
    app = create_redfish_app(service)
    with ServerThread(app) as plain, httpx.Client(base_url=plain.url) as client:
        anonymous = client.get(INVENTORY)
        right = client.get(INVENTORY, auth=ADMIN)
        for _ in range(8):  # past AccountLockoutThreshold (5), were they checked
            client.get(INVENTORY, auth=(ADMIN[0], "a wrong guess"))
        token = _login(client, ADMIN)
        shown = client.get(f"{ROOT}/AccountService", headers={"X-Auth-Token": token})
    for refused in (anonymous, right):
        _error(refused, 401, "NoValidSession")
        assert "www-authenticate" not in refused.headers
    assert right.content == anonymous.content
    assert shown.json()["HTTPBasicAuth"] == "Disabled"
    pki = make_pki(tmp_path)
    tls = ServerTls(pki.server_cert, pki.server_key)
    with (
        ServerThread(app, tls=tls) as secure,
        httpx.Client(base_url=secure.url, verify=client_context(pki.ca)) as client,
    ):
        challenged = client.get(INVENTORY)
        shown = client.get(f"{ROOT}/AccountService", auth=ADMIN)
    _error(challenged, 401, "NoValidSession")
    assert (
        challenged.headers["www-authenticate"] == 'Basic realm="Ironroot Redfish", charset="UTF-8"'
    )
    assert shown.json()["HTTPBasicAuth"] == "Enabled"
    with bmc.client(ADMIN) as client:  # basic_over_http: Basic is offered on plain HTTP
        assert client.get(f"{ROOT}/AccountService").json()["HTTPBasicAuth"] == "Enabled"


@pytest.mark.parametrize(("peer", "taken"), [("127.0.0.1", True), ("10.0.0.5", False)])
def test_basic_over_plain_http_is_for_loopback_clients_only(
    bmc: Bmc, peer: str, taken: bool
) -> None:
    """``basic_over_http`` (tests, a TLS proxy on the same host) takes Basic credentials on
    plain HTTP from a loopback peer only: from another host they crossed a network in clear,
    and are refused unchecked as without it (a proxy elsewhere: ``trusted_proxies``, whose
    ``X-Forwarded-Proto: https`` makes the request an HTTPS one)."""
    app = create_redfish_app(bmc.service)  # basic_over_http=True

    async def run() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bmc") as client:
            anonymous = await client.get(INVENTORY)
            basic = await client.get(INVENTORY, auth=ADMIN)
            created = await client.post(
                f"{ROOT}/SessionService/Sessions",
                json={"UserName": ADMIN[0], "Password": ADMIN[1]},
            )
            shown = await client.get(
                f"{ROOT}/AccountService", headers={"X-Auth-Token": created.headers["x-auth-token"]}
            )
            return anonymous, basic, shown

    anonymous, basic, shown = asyncio.run(run())
    assert shown.json()["HTTPBasicAuth"] == ("Enabled" if taken else "Disabled")
    if taken:
        assert basic.status_code == 200
        assert anonymous.headers["www-authenticate"].startswith("Basic ")
    else:
        _error(basic, 401, "NoValidSession")
        assert "www-authenticate" not in anonymous.headers
        assert "www-authenticate" not in basic.headers


def test_a_post_to_a_collections_members_is_a_post_to_the_collection(bmc: Bmc) -> None:
    with bmc.client() as client:
        created = client.post(
            f"{ROOT}/SessionService/Sessions/Members",
            json={"UserName": VIEWER[0], "Password": VIEWER[1]},
        )
    assert created.status_code == 201
    with bmc.client(ADMIN) as client:
        account = client.post(
            f"{ROOT}/AccountService/Accounts/Members",
            json={"UserName": "via-members", "Password": "a long password", "RoleId": "ReadOnly"},
        )
    assert account.status_code == 201
    assert account.json()["UserName"] == "via-members"


def test_concurrent_writes_with_one_etag_change_the_resource_once(bmc: Bmc) -> None:
    uri = f"{ROOT}/AccountService/Accounts/2"
    with bmc.client(ADMIN) as client:
        etag = client.get(uri).headers["etag"]
    statuses: list[int] = []

    def write(n: int) -> None:
        with bmc.client(ADMIN) as client:
            response = client.patch(
                uri, json={"UserName": f"writer{n}"}, headers={"If-Match": etag}
            )
            statuses.append(response.status_code)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert sorted(statuses) == [200, 412, 412, 412]


def test_answers_name_their_schema_in_a_link_header(bmc: Bmc) -> None:
    with bmc.client(ADMIN) as client:
        root = client.get(f"{ROOT}/")
        members = client.get(INVENTORY)
    assert root.headers["link"] == (
        "<http://redfish.dmtf.org/schemas/v1/ServiceRoot.v1_20_0.json>; rel=describedby"
    )
    assert "SoftwareInventoryCollection.json>" in members.headers["link"]


def test_a_session_is_created_used_and_deleted(bmc: Bmc) -> None:
    with bmc.client() as client:
        created = client.post(
            f"{ROOT}/SessionService/Sessions", json={"UserName": VIEWER[0], "Password": VIEWER[1]}
        )
        assert created.status_code == 201
        token, location = created.headers["x-auth-token"], created.headers["location"]
        assert created.json()["@odata.id"] == location
        assert created.json()["UserName"] == VIEWER[0]
        assert created.json()["Password"] is None
        headers = {"X-Auth-Token": token}
        assert client.get(location, headers=headers).status_code == 200
        assert client.get(INVENTORY, headers=headers).status_code == 200
        listed = client.get(f"{ROOT}/SessionService/Sessions", headers=headers).json()
        assert listed["Members"] == [{"@odata.id": location}]
        assert client.delete(location, headers=headers).status_code == 204
        _error(client.get(INVENTORY, headers=headers), 401, "NoValidSession")


def test_a_login_with_bad_input_is_400_and_a_wrong_password_401(bmc: Bmc) -> None:
    sessions = f"{ROOT}/SessionService/Sessions"
    with bmc.client() as client:
        missing = client.post(sessions, json={"UserName": "admin"})
        malformed = client.post(
            sessions, content=b"{", headers={"Content-Type": "application/json"}
        )
        typed = client.post(sessions, json={"UserName": "admin", "Password": 12})
        unknown = client.post(
            sessions, json={**dict(zip(("UserName", "Password"), ADMIN, strict=True)), "Role": "x"}
        )
        wrong = client.post(sessions, json={"UserName": "admin", "Password": "nope nope nope"})
    error = _error(missing, 400, "PropertyMissing")
    assert error["@Message.ExtendedInfo"][0]["RelatedProperties"] == ["/Password"]
    _error(malformed, 400, "MalformedJSON")
    _error(typed, 400, "PropertyValueTypeError")
    _error(unknown, 400, "PropertyUnknown")
    _error(wrong, 401, "NoValidSession")


def test_other_users_sessions_need_configure_manager(bmc: Bmc) -> None:
    with bmc.client() as client:
        admin = _login(client, ADMIN)
        viewer = _login(client, VIEWER)
        sessions = client.get(
            f"{ROOT}/SessionService/Sessions", headers={"X-Auth-Token": admin}
        ).json()["Members"]
        assert len(sessions) == 2
        mine = client.get(
            f"{ROOT}/SessionService/Sessions", headers={"X-Auth-Token": viewer}
        ).json()["Members"]
        others = [s["@odata.id"] for s in sessions if s not in mine]
        response = client.delete(others[0], headers={"X-Auth-Token": viewer})
        _error(response, 403, "InsufficientPrivilege")
        assert client.get(INVENTORY, headers={"X-Auth-Token": admin}).status_code == 200


def test_one_account_cannot_take_every_session(bmc: Bmc) -> None:
    """Sessions are bounded (64) for the service; a ReadOnly account that opened them all
    would lock every other account, the Administrator's too, out of sessions for as long as it
    kept them alive. Each account has at most 8; the others still log in."""
    with bmc.client() as client:
        mine = [_login(client, VIEWER) for _ in range(8)]
        response = client.post(
            f"{ROOT}/SessionService/Sessions",
            json={"UserName": VIEWER[0], "Password": VIEWER[1]},
        )
        # the Base registry's message for a session refused for the number of sessions
        _error(response, 400, "SessionLimitExceeded")
        assert "x-auth-token" not in response.headers
        admin = _login(client, ADMIN)
        assert client.get(INVENTORY, headers={"X-Auth-Token": admin}).status_code == 200
        listed = client.get(
            f"{ROOT}/SessionService/Sessions", headers={"X-Auth-Token": mine[0]}
        ).json()["Members"]
        assert len(listed) == 8
        gone = client.delete(listed[0]["@odata.id"], headers={"X-Auth-Token": mine[1]})
        assert gone.status_code == 204
        _login(client, VIEWER)  # a session ended makes room for the account again


def test_a_token_dies_with_its_accounts_password_role_or_removal(bmc: Bmc) -> None:
    """A stolen token is worth nothing once its account changes: a new password (set by an
    administrator), a new role or the account's removal ends it for good, and it never
    becomes another account's, even when an account of the same name is created again."""
    accounts = f"{ROOT}/AccountService/Accounts"
    with bmc.client() as client, bmc.client(ADMIN) as admin:
        viewer, operator = _login(client, VIEWER), _login(client, OPERATOR)
        reset = {"NewPassword": "reset by the admin", "SessionAccountPassword": ADMIN[1]}
        change = f"{accounts}/3/Actions/ManagerAccount.ChangePassword"
        assert admin.post(change, json=reset).is_success
        assert admin.patch(f"{accounts}/2", json={"RoleId": "ReadOnly"}).is_success
        for token in (viewer, operator):
            _error(client.get(INVENTORY, headers={"X-Auth-Token": token}), 401, "NoValidSession")
        viewer = _login(client, ("viewer", "reset by the admin"))
        assert admin.delete(f"{accounts}/3").status_code == 204
        recreated = admin.post(
            accounts, json={"UserName": "viewer", "Password": VIEWER[1], "RoleId": "Administrator"}
        )
        assert recreated.status_code == 201
        _error(client.get(INVENTORY, headers={"X-Auth-Token": viewer}), 401, "NoValidSession")


def test_guesses_lock_the_administrator_out_for_the_lockout_duration_only(
    world: World, tmp_path: Path
) -> None:
    """Five wrong guesses lock even the Administrator (brute force stops), but not for ever
    (that would be a denial of service anyone could cause): the lockout ends after
    AccountLockoutDuration, and failures older than AccountLockoutCounterResetAfter are
    forgotten. The clock is injected: nothing sleeps."""
    now = [1_800_000_000.0]
    platform = world.node(tmp_path)
    accounts = AccountStore.create_with(platform.directory, *ADMIN, kdf=KDF, clock=lambda: now[0])
    service = RedfishService(platform, accounts, clock=lambda: NOW, basic_over_http=True)
    sessions = f"{ROOT}/SessionService/Sessions"
    wrong = {"UserName": ADMIN[0], "Password": "a wrong guess"}
    right = {"UserName": ADMIN[0], "Password": ADMIN[1]}
    with (
        ServerThread(create_redfish_app(service)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        shown = client.get(f"{ROOT}/AccountService", auth=ADMIN).json()
        assert shown["AccountLockoutThreshold"] == 5
        assert shown["AccountLockoutDuration"] == 300
        assert shown["AccountLockoutCounterResetAfter"] == 300
        # four guesses, a quiet period longer than the reset time, four more: no lockout
        for _ in range(4):
            _error(client.post(sessions, json=wrong), 401, "NoValidSession")
        now[0] += 301
        for _ in range(4):
            _error(client.post(sessions, json=wrong), 401, "NoValidSession")
        assert client.post(sessions, json=right).status_code == 201  # and the count is reset
        for _ in range(5):
            _error(client.post(sessions, json=wrong), 401, "NoValidSession")
        now[0] += 299
        _error(client.post(sessions, json=right), 401, "NoValidSession")  # locked: right too
        now[0] += 2
        assert client.post(sessions, json=right).status_code == 201  # the lockout is over


def test_a_locked_account_answers_its_right_password_as_a_wrong_one(bmc: Bmc) -> None:
    """Once locked, the right password gets the very answer a wrong one gets (no oracle for
    guessing on), over a session login and over Basic."""
    with bmc.client(ADMIN) as admin:
        assert admin.patch(f"{ROOT}/AccountService", json={"AccountLockoutThreshold": 3}).is_success
    sessions = f"{ROOT}/SessionService/Sessions"
    with bmc.client() as client:
        for _ in range(3):
            wrong = client.post(sessions, json={"UserName": "viewer", "Password": "not it, no"})
            _error(wrong, 401, "NoValidSession")
        right = client.post(sessions, json={"UserName": VIEWER[0], "Password": VIEWER[1]})
        _error(right, 401, "NoValidSession")
        assert right.content == wrong.content
        assert "x-auth-token" not in right.headers
    with bmc.client(VIEWER) as basic, bmc.client(("viewer", "not it, no")) as guess:
        by_basic, by_guess = basic.get(INVENTORY), guess.get(INVENTORY)
    _error(by_basic, 401, "NoValidSession")
    assert by_basic.content == by_guess.content
    assert by_basic.headers["www-authenticate"] == by_guess.headers["www-authenticate"]


def test_an_operator_changes_no_account_but_its_own_password(bmc: Bmc) -> None:
    accounts = f"{ROOT}/AccountService/Accounts"
    with bmc.client(OPERATOR) as client:
        cases = [
            client.patch(f"{accounts}/1", json={"Password": "the admin's new one"}),
            client.patch(f"{accounts}/3", json={"RoleId": "Administrator"}),
            client.patch(f"{accounts}/2", json={"RoleId": "Administrator"}),
            client.patch(f"{accounts}/2", json={"Password": "a long password", "Enabled": True}),
            client.patch(f"{accounts}/2", json={"UserName": "admin2"}),
            client.delete(f"{accounts}/1"),
            client.post(
                accounts,
                json={"UserName": "Admin", "Password": "a long password", "RoleId": "ReadOnly"},
            ),
            client.patch(f"{ROOT}/AccountService", json={"AccountLockoutThreshold": 0}),
            client.patch(f"{ROOT}/SessionService", json={"SessionTimeout": 86400}),
        ]
        for response in cases:
            _error(response, 403, "InsufficientPrivilege")
    roles = {a.username: a.role for a in bmc.service.accounts.accounts()}
    assert roles == {"admin": "Administrator", "operator": "Operator", "viewer": "ReadOnly"}
    with bmc.client(ADMIN) as admin:
        assert admin.get(INVENTORY).status_code == 200


def test_user_names_with_spaces_or_other_scripts_are_refused(bmc: Bmc) -> None:
    """No second "admin" from a look-alike: names are ASCII letters, digits, '.', '_', '-'."""
    accounts = f"{ROOT}/AccountService/Accounts"
    with bmc.client(ADMIN) as client:
        for name in ("admin ", " admin", "admin\t", "\uff41dmin", "adm\u0131n", "admin\u200b", ""):
            response = client.post(
                accounts,
                json={"UserName": name, "Password": "a long password", "RoleId": "Administrator"},
            )
            _error(response, 400, "PropertyValueFormatError")
        taken = client.post(
            accounts,
            json={"UserName": "admin", "Password": "a long password", "RoleId": "Administrator"},
        )
        _error(taken, 400, "ResourceAlreadyExists")
    assert [a.username for a in bmc.service.accounts.accounts()] == ["admin", "operator", "viewer"]


# --- accounts and roles ---------------------------------------------------------------------


def test_the_three_roles_have_redfish_privileges(bmc: Bmc) -> None:
    expected = {
        "Administrator": [
            "Login",
            "ConfigureManager",
            "ConfigureUsers",
            "ConfigureComponents",
            "ConfigureSelf",
        ],
        "Operator": ["Login", "ConfigureComponents", "ConfigureSelf"],
        "ReadOnly": ["Login", "ConfigureSelf"],
    }
    with bmc.client(VIEWER) as client:
        roles = client.get(f"{ROOT}/AccountService/Roles").json()
        assert roles["Members@odata.count"] == 3
        for member in roles["Members"]:
            role = client.get(member["@odata.id"]).json()
            assert role["IsPredefined"] is True
            assert role["AssignedPrivileges"] == expected[role["RoleId"]]


def test_an_administrator_creates_changes_and_removes_an_account(bmc: Bmc) -> None:
    accounts = f"{ROOT}/AccountService/Accounts"
    with bmc.client(ADMIN) as admin, bmc.client() as anyone:
        created = admin.post(
            accounts, json={"UserName": "ops2", "Password": "a long password", "RoleId": "Operator"}
        )
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert created.json()["RoleId"] == "Operator"
        token = _login(anyone, ("ops2", "a long password"))
        etag = admin.get(location).headers["etag"]
        stale = admin.patch(location, json={"RoleId": "ReadOnly"}, headers={"If-Match": '"x"'})
        _error(stale, 412, "PreconditionFailed")
        changed = admin.patch(location, json={"RoleId": "ReadOnly"}, headers={"If-Match": etag})
        assert changed.status_code == 200
        assert changed.json()["RoleId"] == "ReadOnly"
        assert changed.json()["Links"]["Role"] == {
            "@odata.id": f"{ROOT}/AccountService/Roles/ReadOnly"
        }
        _error(anyone.get(INVENTORY, headers={"X-Auth-Token": token}), 401, "NoValidSession")
        assert admin.delete(location).status_code == 204
        _error(admin.get(location), 404, "ResourceMissingAtURI")
        _error(anyone.get(INVENTORY, auth=("ops2", "a long password")), 401, "NoValidSession")


def test_account_requests_with_bad_values_are_400(bmc: Bmc) -> None:
    accounts = f"{ROOT}/AccountService/Accounts"
    good = {"UserName": "newuser", "Password": "a long password", "RoleId": "ReadOnly"}
    with bmc.client(ADMIN) as client:
        cases = {
            "PropertyValueFormatError": client.post(accounts, json={**good, "UserName": "a b/c"}),
            "PasswordIncorrectLength": client.post(accounts, json={**good, "Password": "short"}),
            "PropertyValueNotInList": client.post(accounts, json={**good, "RoleId": "Root"}),
            "ResourceAlreadyExists": client.post(accounts, json={**good, "UserName": "viewer"}),
            "PropertyMissing": client.post(accounts, json={"UserName": "x"}),
            "PropertyNotWritable": client.patch(f"{accounts}/2", json={"Id": "7"}),
            "PropertyValueTypeError": client.patch(f"{accounts}/2", json={"Enabled": "yes"}),
        }
    for message_id, response in cases.items():
        _error(response, 400, message_id)


def test_the_last_administrator_stays(bmc: Bmc) -> None:
    with bmc.client(ADMIN) as client:
        removed = client.delete(f"{ROOT}/AccountService/Accounts/1")
        demoted = client.patch(f"{ROOT}/AccountService/Accounts/1", json={"RoleId": "Operator"})
    _error(removed, 409, "ResourceCannotBeDeleted")
    _error(demoted, 409, "PropertyValueConflict")


def test_read_only_changes_its_own_password_and_nothing_else(bmc: Bmc) -> None:
    accounts = f"{ROOT}/AccountService/Accounts"
    with bmc.client(VIEWER) as client:
        listed = client.get(accounts).json()
        assert listed["Members"] == [{"@odata.id": f"{accounts}/3"}]
        _error(client.get(f"{accounts}/1"), 403, "InsufficientPrivilege")
        _error(
            client.patch(f"{accounts}/3", json={"RoleId": "Administrator"}),
            403,
            "InsufficientPrivilege",
        )
        _error(
            client.post(
                accounts,
                json={"UserName": "x", "Password": "a long password", "RoleId": "ReadOnly"},
            ),
            403,
            "InsufficientPrivilege",
        )
        _error(
            client.patch(f"{accounts}/3", json={"Password": "a new long password"}),
            400,
            "PropertyNotWritable",  # RequireChangePasswordAction: with the current password
        )
        changed = client.post(
            f"{accounts}/3/Actions/ManagerAccount.ChangePassword",
            json={"NewPassword": "a new long password", "SessionAccountPassword": VIEWER[1]},
        )
        assert changed.status_code == 200, changed.text
    with bmc.client(("viewer", "a new long password")) as client:
        assert client.get(INVENTORY).status_code == 200
        assert client.get(f"{accounts}/3").json()["Password"] is None


def test_the_account_and_session_services_are_configured_with_if_match(bmc: Bmc) -> None:
    with bmc.client(ADMIN) as admin, bmc.client(OPERATOR) as operator:
        service = admin.get(f"{ROOT}/SessionService")
        assert service.json()["SessionTimeout"] == 1800
        _error(
            operator.patch(f"{ROOT}/SessionService", json={"SessionTimeout": 60}),
            403,
            "InsufficientPrivilege",
        )
        _error(
            admin.patch(f"{ROOT}/SessionService", json={"SessionTimeout": 5}),
            400,
            "PropertyValueOutOfRange",
        )
        changed = admin.patch(
            f"{ROOT}/SessionService",
            json={"SessionTimeout": 600},
            headers={"If-Match": service.headers["etag"]},
        )
        assert changed.status_code == 200
        assert changed.json()["SessionTimeout"] == 600
        again = admin.patch(
            f"{ROOT}/SessionService",
            json={"SessionTimeout": 900},
            headers={"If-Match": service.headers["etag"]},
        )
        _error(again, 412, "PreconditionFailed")
        accounts = admin.patch(
            f"{ROOT}/AccountService", json={"MinPasswordLength": 20, "AccountLockoutThreshold": 3}
        )
        assert accounts.json()["MinPasswordLength"] == 20
        conflict = admin.patch(f"{ROOT}/AccountService", json={"MinPasswordLength": 200})
        _error(conflict, 400, "PropertyValueOutOfRange")
    assert bmc.service.accounts.settings.session_timeout == 600


# --- updates --------------------------------------------------------------------------------


def test_an_operator_updates_the_bmc_over_multipart_push(bmc: Bmc) -> None:
    v2 = bmc.world.release("bmc", "2.0")
    with bmc.client(OPERATOR) as client:
        response = client.post(PUSH, files=_parts(v2.bundle, v2.statements))
        assert response.status_code == 202, response.text
        monitor = response.headers["location"]
        task = response.json()
        assert task["@odata.type"] == "#Task.v1_7_4.Task"
        assert task["TaskMonitor"] == monitor
        done = _wait(client, monitor)
        assert done.status_code == 200, done.text
        assert done.json()["@Message.ExtendedInfo"][0]["MessageId"] == "Update.1.3.UpdateSuccessful"
        task = client.get(task["@odata.id"]).json()
        active = client.get(f"{INVENTORY}/bmc-active").json()
        previous = client.get(f"{INVENTORY}/bmc-previous").json()
        manager = client.get(f"{ROOT}/Managers/bmc").json()
    assert task["TaskState"] == "Completed"
    assert task["TaskStatus"] == "OK"
    assert task["PercentComplete"] == 100
    ids = [m["MessageId"].rsplit(".", 1)[1] for m in task["Messages"]]
    assert ids == [
        "TaskStarted",
        "TargetDetermined",
        "TransferringToComponent",
        "VerifyingAtComponent",
        "InstallingOnComponent",
        "VerifyingAtComponent",
        "ApplyingOnComponent",
        "UpdateSuccessful",
        "TaskCompletedOK",
    ]
    assert active["Version"] == "2.0"
    assert active["Oem"]["Ironroot"] == {
        "@odata.type": "#Ironroot.v1_0_0.SoftwareInventory",
        "Component": "bmc",
        "Role": "active",
        "SVN": 4,
        "SHA384": v2.sha384.hex(),
    }
    assert active["Updateable"] is True
    assert previous["Version"] == "1.0"
    assert previous["Updateable"] is False
    assert manager["FirmwareVersion"] == "2.0"
    assert manager["Links"]["ActiveSoftwareImage"] == {"@odata.id": f"{INVENTORY}/bmc-active"}
    assert bmc.active("bmc") == "2.0"


def test_a_task_s_payload_is_shown_to_its_owner_and_administrators_only(bmc: Bmc) -> None:
    """DSP8011 maps a Task's GET to Login, so every account reads every task; but the
    Payload (the request that started it) was shown to all of them, so a ReadOnly account or
    another Operator read one operator's update request. Per the Task schema's HidePayload,
    only the account that started the task and a ConfigureManager account read it now."""
    other = ("operator2", "other operator password")
    bmc.service.accounts.add(*other, "Operator")
    v2 = bmc.world.release("bmc", "2.0")
    oem = {"Ironroot": {"AllowRecoveryRemoval": ["bmc"]}}
    with bmc.client(OPERATOR) as client:
        response = client.post(PUSH, files=_parts(v2.bundle, v2.statements, extra={"Oem": oem}))
        assert response.status_code == 202, response.text
        assert response.json()["HidePayload"] is False
        assert json.loads(response.json()["Payload"]["JsonBody"])["Oem"] == oem
        uri = response.json()["@odata.id"]
        assert _wait(client, response.headers["location"]).status_code == 200
        own = client.get(uri).json()
    seen = {}
    for who in (ADMIN, VIEWER, other):
        with bmc.client(who) as client:
            task = client.get(uri)
            assert task.status_code == 200, task.text
            seen[who[0]] = task.json()
    assert json.loads(own["Payload"]["JsonBody"])["Oem"] == oem
    assert seen["admin"]["Payload"] == own["Payload"]
    for name in ("viewer", "operator2"):
        task = seen[name]
        assert "Payload" not in task
        assert task["HidePayload"] is True
        assert "AllowRecoveryRemoval" not in json.dumps(task)
        # the rest of the task is every account's, as the privilege registry has it
        assert (task["TaskState"], task["Messages"]) == ("Completed", own["Messages"])
    # a task still running answers its monitor with the task: the same rule there
    running = bmc.service.tasks.create("Update of bmc", {"JsonBody": "{}"}, owner="2")
    monitor = f"{ROOT}/TaskService/TaskMonitors/{running.id}"
    with bmc.client(VIEWER) as viewer, bmc.client(OPERATOR) as owner:
        hidden, shown = viewer.get(monitor), owner.get(monitor)
    assert (hidden.status_code, shown.status_code) == (202, 202)
    assert "Payload" not in hidden.json()
    assert hidden.json()["HidePayload"] is True
    assert shown.json()["Payload"] == {"JsonBody": "{}"}


def test_a_restarted_service_never_shows_another_task_under_an_id_polled_before(
    bmc: Bmc,
) -> None:
    """Tasks live in memory; their ids were a count from 1, so after a restart a client
    polling its task 1 was shown the next client's task 1. Ids are random now."""
    v2 = bmc.world.release("bmc", "2.0")
    with bmc.client(OPERATOR) as client:
        response = client.post(PUSH, files=_parts(v2.bundle, v2.statements))
        assert response.status_code == 202, response.text
        first = response.json()
        assert _wait(client, response.headers["location"]).status_code == 200
    assert first["Id"] != "1"
    restarted = RedfishService(
        bmc.platform, bmc.service.accounts, clock=lambda: NOW, limits=LIMITS, basic_over_http=True
    )
    created = [restarted.tasks.create("Update of bmc", {}, owner="1") for _ in range(3)]
    assert first["Id"] not in {t.id for t in created}
    assert len({t.id for t in created}) == 3
    with (
        ServerThread(create_redfish_app(restarted)) as server,
        httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as client,
    ):
        task = client.get(first["@odata.id"])
        monitor = client.get(first["TaskMonitor"])
    _error(task, 404, "ResourceMissingAtURI")
    _error(monitor, 404, "ResourceMissingAtURI")


def test_read_only_may_not_update(bmc: Bmc) -> None:
    v2 = bmc.world.release("bmc", "2.0")
    with bmc.client(VIEWER) as client:
        push = client.post(PUSH, files=_parts(v2.bundle, v2.statements))
        simple = client.post(
            SIMPLE,
            json={"ImageURI": "http://127.0.0.1:9/x.bin", "Targets": [f"{INVENTORY}/bmc-active"]},
        )
    _error(push, 403, "InsufficientPrivilege")
    _error(simple, 403, "InsufficientPrivilege")
    assert bmc.active("bmc") == "1.0"
    assert bmc.service.tasks.tasks() == []


def _statements_for(world: World, case: str) -> tuple[bytes, Sequence[bytes]]:
    v2 = world.release("bmc", "2.0")
    if case == "no-receipt":
        return v2.bundle, ()
    if case == "untrusted-service":
        return v2.bundle, world.publish("bmc", v2.bundle, client=world.untrusted)
    if case == "issuer-not-allowed":
        return v2.bundle, world.publish("bmc", v2.bundle, iss=OTHER)
    if case == "not-in-pfm":
        v3 = world.bundle("bmc", svn=5, tag="3.0")
        return v3, world.publish("bmc", v3)
    if case == "logged-digest-mismatch":
        return v2.bundle, world.release("bmc", "1.0").statements
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("no-receipt", "receipt"),
        ("untrusted-service", "receipt"),
        ("issuer-not-allowed", "issuer"),
        ("not-in-pfm", "pfm"),
        ("logged-digest-mismatch", "logged-digest"),
    ],
)
def test_a_refused_bundle_is_400_naming_the_check(bmc: Bmc, case: str, check: str) -> None:
    bundle, statements = _statements_for(bmc.world, case)
    with bmc.client(ADMIN) as client:
        response = client.post(PUSH, files=_parts(bundle, statements))
        error = _error(response, 400, "VerificationFailed")
        tasks = client.get(f"{ROOT}/TaskService/Tasks").json()["Members"]
        task = client.get(tasks[-1]["@odata.id"]).json()
        log = client.get(f"{ROOT}/Managers/bmc/LogServices/RoT/Entries").json()["Members"]
    info = error["@Message.ExtendedInfo"][0]
    assert info["MessageId"] == "Update.1.3.VerificationFailed"
    assert info["MessageArgs"] == ["image.bin", "bmc"]
    assert info["Oem"]["Ironroot"]["Check"] == check
    assert info["Oem"]["Ironroot"]["Code"] == case
    assert f"check {check!r} ({case})" in error["message"]
    assert task["TaskState"] == "Exception"
    assert task["TaskStatus"] == "Critical"
    assert task["Messages"][-1]["MessageId"] == "TaskEvent.1.0.TaskAborted"
    refused = [e for e in log if e["MessageId"] == "UpdateRefused"]
    assert refused
    assert refused[-1]["MessageArgs"][:2] == ["bmc", check]
    assert bmc.active("bmc") == "1.0"


def test_an_update_that_fails_its_health_check_ends_its_task_in_exception(bmc: Bmc) -> None:
    """v2's manifest is logged but the only CoRIM is v1's: the NIC's measurements match no
    logged reference value, so the update verifies, boots, and rolls back."""
    v1, v2 = bmc.world.release("nic", "1.0"), bmc.world.release("nic", "2.0")
    parts = _parts(
        v2.bundle, (v2.statements[0], v1.statements[1]), targets=[f"{INVENTORY}/nic-active"]
    )
    with bmc.client(ADMIN) as client:
        response = client.post(PUSH, files=parts)
        assert response.status_code == 202, response.text
        done = _wait(client, response.headers["location"])
        task = client.get(response.json()["@odata.id"]).json()
    _error(done, 500, "ActivateFailed")
    assert task["TaskState"] == "Exception"
    assert task["Messages"][-2]["Oem"]["Ironroot"]["Code"] == "rolled-back"
    assert bmc.active("nic") == "1.0"


def test_one_update_at_a_time(bmc: Bmc) -> None:
    v2 = bmc.world.release("host", "2.0")
    with bmc.client(ADMIN) as client:
        with bmc.service.updating:  # an update of this service is running
            busy = client.post(
                PUSH, files=_parts(v2.bundle, v2.statements, targets=[f"{INVENTORY}/host-active"])
            )
        nic = bmc.world.release("nic", "2.0")
        with pytest.raises(PowerLost):  # a drill left an update of the nic half done
            bmc.platform.update("nic", nic.bundle, nic.statements, now=NOW, faults=Faults("reboot"))
        pending = client.post(
            PUSH, files=_parts(v2.bundle, v2.statements, targets=[f"{INVENTORY}/host-active"])
        )
    _error(busy, 409, "ResourceInUse")
    _error(pending, 409, "ResourceInUse")
    assert bmc.active("host") == "1.0"


def _push_head(bmc: Bmc, length: int) -> socket.socket:
    """A raw connection that sent a multipart push's head (as the administrator, Basic) and
    none of its ``length`` bytes of body."""
    host, port = bmc.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    token = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    head = (
        f"POST {PUSH} HTTP/1.1\r\nHost: bmc\r\nAuthorization: Basic {token}\r\n"
        f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode())
    return sock


def test_a_push_while_another_is_received_or_runs_is_refused_before_its_body(bmc: Bmc) -> None:
    """Before, each push's body (up to max_request_bytes) was read into memory first and the
    one-update rule checked after: many pushes at once held that much memory each."""
    receiving = _push_head(bmc, 1 << 20)
    try:
        receiving.sendall(b"--xyz\r\n")  # the first push's body has begun and is not done
        deadline = time.monotonic() + 10
        while not bmc.service.receiving and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bmc.service.receiving
        second = _push_head(bmc, 1 << 20)  # sends no body at all
        try:
            answer = second.recv(65536)  # answered without the body (a hang fails at 20 s)
        finally:
            second.close()
    finally:
        receiving.close()
    assert answer.startswith(b"HTTP/1.1 409 "), answer[:200]
    assert b"UpdateInProgress" in answer
    deadline = time.monotonic() + 10
    while bmc.service.receiving and time.monotonic() < deadline:  # the first client left
        time.sleep(0.01)
    assert not bmc.service.receiving
    with bmc.service.updating:  # an update runs: a push is refused before its body too
        third = _push_head(bmc, 1 << 20)
        try:
            answer = third.recv(65536)
        finally:
            third.close()
    assert answer.startswith(b"HTTP/1.1 409 "), answer[:200]


def test_malformed_multipart_updates_are_4xx(bmc: Bmc) -> None:
    v2 = bmc.world.release("bmc", "2.0")
    big = b"\0" * (LIMITS.max_image_bytes + 1)
    with bmc.client(ADMIN) as client:
        cases = [
            (client.post(PUSH, json={"Targets": []}), 415, "UnrecognizedRequestBody"),
            (client.post(PUSH, files=_parts(v2.bundle)[:1]), 400, "MissingOrMalformedPart"),
            (
                client.post(PUSH, files=[*_parts(v2.bundle), ("Extra", ("x", b"x", "text/plain"))]),
                400,
                "MissingOrMalformedPart",
            ),
            (client.post(PUSH, files=_parts(v2.bundle, targets=[])), 400, "PropertyMissing"),
            (
                client.post(
                    PUSH,
                    files=_parts(
                        v2.bundle, targets=[f"{INVENTORY}/bmc-active", f"{INVENTORY}/host-active"]
                    ),
                ),
                400,
                "ArraySizeTooLong",
            ),
            (
                client.post(PUSH, files=_parts(v2.bundle, targets=[f"{ROOT}/Systems/1"])),
                400,
                "PropertyValueNotInList",
            ),
            (
                client.post(PUSH, files=_parts(v2.bundle, extra={"ForceUpdate": True})),
                400,
                "PropertyValueNotInList",
            ),
            (
                client.post(PUSH, files=_parts(v2.bundle, extra={"Bogus": 1})),
                400,
                "PropertyUnknown",
            ),
            (
                client.post(
                    PUSH, files=_parts(v2.bundle, extra={"@Redfish.OperationApplyTime": "OnReset"})
                ),
                400,
                "PropertyValueNotInList",
            ),
            (
                client.post(
                    PUSH,
                    files=[
                        ("UpdateParameters", (None, "{", "application/json")),
                        *_parts(v2.bundle)[1:],
                    ],
                ),
                400,
                "MalformedJSON",
            ),
            (client.post(PUSH, files=_parts(big)), 413, "PayloadTooLarge"),
            (
                client.post(
                    PUSH,
                    content=b"--x\r\nnot a part\r\n--x--\r\n",
                    headers={"Content-Type": "multipart/form-data; boundary=x"},
                ),
                400,
                "MissingOrMalformedPart",
            ),
        ]
    for response, status, message_id in cases:
        _error(response, status, message_id)
    assert bmc.service.tasks.tasks() == []
    assert bmc.active("bmc") == "1.0"


def test_a_truncated_multipart_push_is_refused(bmc: Bmc) -> None:
    # Found by the redfish-body fuzz target: a body cut inside its last part (no closing
    # boundary) was taken without that part — the update went ahead (202) — and the part's
    # spooled file was left open (ResourceWarning).
    v2 = bmc.world.release("bmc", "2.0")
    pushed = httpx.Request("POST", f"{bmc.url}{PUSH}", files=_parts(v2.bundle, v2.statements))
    body, kind = pushed.read(), pushed.headers["content-type"]
    boundary = kind.partition("boundary=")[2].encode()
    extra = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="OemIronrootStatement"; filename="s9.cose"\r\n'
        b"Content-Type: application/cose\r\n\r\n\xd2\x84"
    )
    cut_last = body[: body.rindex(b"--" + boundary + b"--")] + extra
    cut_file = body[: body.index(b"\r\n\r\n", body.index(b'name="UpdateFile"')) + 100]
    with bmc.client(ADMIN) as client:
        for truncated in (cut_last, cut_file, body[:-4]):
            response = client.post(PUSH, content=truncated, headers={"Content-Type": kind})
            error = _error(response, 400, "MissingOrMalformedPart")
            assert "closing boundary" in error["message"]
        assert bmc.service.tasks.tasks() == []
        whole = client.post(PUSH, content=body, headers={"Content-Type": kind})
        assert whole.status_code == 202
        assert _wait(client, whole.headers["location"]).status_code == 200
    assert bmc.active("bmc") == "2.0"


# --- SimpleUpdate ---------------------------------------------------------------------------


@pytest.fixture
def files() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A web server holding firmware and statements (path -> bytes)."""
    content: dict[str, bytes] = {}

    async def serve(request: Request) -> Response:
        data = content.get(request.path_params["name"])
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type="application/octet-stream")

    app = Starlette(routes=[Route("/{name}", serve)])
    with ServerThread(app) as server:
        yield server.url, content


def _gpu_2_0(bmc: Bmc, files: tuple[str, dict[str, bytes]], query: str = "") -> dict[str, Any]:
    """GPU 2.0 and its statements served by ``files``; the SimpleUpdate body that installs
    it, each URI followed by ``query``."""
    base, content = files
    v2 = bmc.world.release("gpu", "2.0")
    content["gpu.bin"] = v2.bundle
    for n, statement in enumerate(v2.statements):
        content[f"gpu.{n}.ts"] = statement
    return {
        "ImageURI": f"{base}/gpu.bin{query}",
        "TransferProtocol": "HTTP",
        "Targets": [f"{INVENTORY}/gpu-active"],
        "Oem": {
            "Ironroot": {
                "StatementURIs": [f"{base}/gpu.{n}.ts{query}" for n in range(len(v2.statements))]
            }
        },
    }


def _simple_update(client: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response, Any]:
    """POST it; the task monitor's answer once the task ended, and the task."""
    response = client.post(SIMPLE, json=body)
    assert response.status_code == 202, response.text
    done = _wait(client, response.headers["location"])
    return done, client.get(response.json()["@odata.id"]).json()


def test_simple_update_fetches_the_image_and_its_statements(
    bmc: Bmc, files: tuple[str, dict[str, bytes]]
) -> None:
    body = _gpu_2_0(bmc, files)
    with bmc.client(OPERATOR) as client:
        done, task = _simple_update(client, body)
    assert done.status_code == 200, done.text
    assert task["Payload"]["TargetUri"] == SIMPLE
    assert json.loads(task["Payload"]["JsonBody"])["ImageURI"] == body["ImageURI"]
    assert bmc.active("gpu") == "2.0"


def test_a_simple_update_keeps_no_query_of_its_uris_in_the_task(
    bmc: Bmc, files: tuple[str, dict[str, bytes]]
) -> None:
    # A presigned URL carries its secret in the query: the task (its Payload and messages,
    # which every account may read) keeps each URI without it.
    base = files[0]
    body = _gpu_2_0(bmc, files, "?X-Amz-Signature=SECRET0123#frag")
    with bmc.client(OPERATOR) as client:
        done, task = _simple_update(client, body)
    assert done.status_code == 200, done.text
    assert bmc.active("gpu") == "2.0"  # fetched with the query
    kept = json.loads(task["Payload"]["JsonBody"])
    assert kept["ImageURI"] == f"{base}/gpu.bin?(hidden)"
    assert kept["Oem"]["Ironroot"]["StatementURIs"][0] == f"{base}/gpu.0.ts?(hidden)"
    assert "SECRET0123" not in json.dumps(task)
    assert "SECRET0123" not in done.text


def test_a_simple_update_fetches_directly_whatever_proxy_the_environment_names(
    bmc: Bmc, files: tuple[str, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The BMC's fetch took HTTP(S)_PROXY (and ~/.netrc) from its environment: a proxy a
    # variable names would see every image and the Basic credentials for it.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    body = _gpu_2_0(bmc, files)
    with httpx.Client(  # the test's own client: not through that proxy either
        base_url=bmc.url, auth=OPERATOR, timeout=30, verify=system_trust(), trust_env=False
    ) as client:
        done, _task = _simple_update(client, body)
    assert done.status_code == 200, done.text
    assert bmc.active("gpu") == "2.0"


def test_simple_update_without_statements_is_refused_by_the_receipt_check(
    bmc: Bmc, files: tuple[str, dict[str, bytes]]
) -> None:
    base, content = files
    content["bmc.bin"] = bmc.world.release("bmc", "2.0").bundle
    with bmc.client(ADMIN) as client:
        response = client.post(
            SIMPLE, json={"ImageURI": f"{base}/bmc.bin", "Targets": [f"{ROOT}/Managers/bmc"]}
        )
    error = _error(response, 400, "VerificationFailed")
    assert error["@Message.ExtendedInfo"][0]["Oem"]["Ironroot"]["Check"] == "receipt"
    assert bmc.active("bmc") == "1.0"


def test_credentials_in_a_uri_are_refused_never_shown_to_other_accounts(
    bmc: Bmc, files: tuple[str, dict[str, bytes]]
) -> None:
    """An image server's password in a URI's userinfo (``https://user:pw@host/…``) would end up
    in the task's Payload and messages, which every ReadOnly account reads, and in the log:
    it is refused (credentials go in ``Username``/``Password``) and never echoed."""
    base, content = files
    v2 = bmc.world.release("gpu", "2.0")
    content["gpu.bin"] = v2.bundle
    content["gpu.0.ts"] = v2.statements[0]
    host = base.removeprefix("http://")
    secret = "s3cret-of-the-image-server"
    with_userinfo = f"http://op:{secret}@{host}"
    target = {"Targets": [f"{INVENTORY}/gpu-active"]}
    cases = [
        ({"ImageURI": f"{with_userinfo}/gpu.bin"}, "ImageURI"),
        ({"ImageURI": f"op:{secret}@{host}/gpu.bin", "TransferProtocol": "HTTP"}, "ImageURI"),
        ({"ImageURI": f"http://op:{secret}@[::1/gpu.bin"}, "ImageURI"),  # nor unparsable
        (
            {
                "ImageURI": f"{base}/gpu.bin",
                "Oem": {"Ironroot": {"StatementURIs": [f"{with_userinfo}/gpu.0.ts"]}},
            },
            "Oem/Ironroot/StatementURIs",
        ),
        (
            {"ImageURI": f"{base}/gpu.bin", "Oem": {"Ironroot": {"PfmURI": f"{with_userinfo}/p"}}},
            "Oem/Ironroot/PfmURI",
        ),
    ]
    with bmc.client(OPERATOR) as client:
        for body, parameter in cases:
            response = client.post(SIMPLE, json={**target, **body})
            error = _error(response, 400, "ActionParameterValueFormatError")
            assert error["@Message.ExtendedInfo"][0]["MessageArgs"][1] == parameter
            assert secret not in response.text
    with bmc.client(VIEWER) as viewer:
        tasks = viewer.get(f"{ROOT}/TaskService/Tasks").json()
        shown = [viewer.get(m["@odata.id"]).text for m in tasks["Members"]]
    assert not any(secret in text for text in shown)
    assert bmc.active("gpu") == "1.0"


def test_image_server_credentials_are_sent_only_over_https(bmc: Bmc, tmp_path: Path) -> None:
    """``Username``/``Password`` go to the image server as HTTP Basic, the password as it is:
    with a plain ``http://`` ImageURI they are refused before any task or fetch (no request
    reaches the server), over HTTPS they are sent and the update runs."""
    from tls_pki import make_pki

    v2 = bmc.world.release("gpu", "2.0")
    content = {"gpu.bin": v2.bundle} | {f"gpu.{n}.ts": s for n, s in enumerate(v2.statements)}
    secret = "password-of-the-image-server"
    seen: list[str | None] = []

    async def serve(request: Request) -> Response:
        seen.append(request.headers.get("authorization"))
        return Response(content[request.path_params["name"]])

    app = Starlette(routes=[Route("/{name}", serve)])
    target = {"Targets": [f"{INVENTORY}/gpu-active"]}
    pki = make_pki(tmp_path)
    with ServerThread(app) as plain, bmc.client(OPERATOR) as client:
        host = plain.url.removeprefix("http://")
        for body in (
            {"ImageURI": f"{plain.url}/gpu.bin", "Username": "op", "Password": secret},
            {"ImageURI": f"{host}/gpu.bin", "TransferProtocol": "HTTP", "Password": secret},
            {"ImageURI": f"HTTP://{host}/gpu.bin", "Username": "op"},
        ):
            error = _error(
                client.post(SIMPLE, json={**target, **body}), 400, "ActionParameterNotSupported"
            )
            info = error["@Message.ExtendedInfo"][0]
            name = "Password" if "Password" in body else "Username"
            assert info["MessageArgs"][0] == name
            assert info["RelatedProperties"] == [f"/{name}"]
            assert secret not in json.dumps(error)
    assert seen == []
    assert bmc.service.tasks.tasks() == []
    bmc.service.fetch_verify = client_context(pki.ca)
    with (
        ServerThread(app, tls=ServerTls(pki.server_cert, pki.server_key)) as secure,
        bmc.client(OPERATOR) as client,
    ):
        body = {
            **target,
            "ImageURI": f"{secure.url}/gpu.bin",
            "Username": "op",
            "Password": secret,
            "Oem": {
                "Ironroot": {
                    "StatementURIs": [f"{secure.url}/gpu.{n}.ts" for n in range(len(v2.statements))]
                }
            },
        }
        response = client.post(SIMPLE, json=body)
        assert response.status_code == 202, response.text
        assert _wait(client, response.headers["location"]).status_code == 200
    basic = "Basic " + base64.b64encode(f"op:{secret}".encode()).decode()
    assert seen[0] == basic  # the image, and only the image, with the credentials
    assert seen[1:] == [None] * len(v2.statements)
    assert bmc.active("gpu") == "2.0"


def test_local_files_and_odd_targets_are_never_an_update(
    bmc: Bmc, files: tuple[str, dict[str, bytes]]
) -> None:
    """The service fetches only http(s) from a host; a target is one known component, named
    once, with no path tricks. Each is refused before any task or fetch, the node unchanged."""
    base, content = files
    v2 = bmc.world.release("bmc", "2.0")
    content["bmc.bin"] = v2.bundle
    bmc_target = {"Targets": [f"{INVENTORY}/bmc-active"]}
    image = {"ImageURI": f"{base}/bmc.bin"}
    node = bmc.platform.directory
    simple = [
        ({**bmc_target, "ImageURI": f"file://{node}/flash/bmc"}, "ActionParameterValueFormatError"),
        (
            {**bmc_target, "ImageURI": "/etc/passwd", "TransferProtocol": "HTTP"},
            "ActionParameterValueFormatError",
        ),
        (
            {**bmc_target, "ImageURI": "file:///etc/passwd", "TransferProtocol": "HTTPS"},
            "ActionParameterValueFormatError",
        ),
        (
            {**bmc_target, "ImageURI": "../../flash/bmc", "TransferProtocol": "NFS"},
            "ActionParameterValueNotInList",
        ),
        (
            {**image, "Targets": [f"{INVENTORY}/bmc-active", f"{INVENTORY}/bmc-active"]},
            "ArraySizeTooLong",
        ),
        (
            {**image, "Targets": [f"{INVENTORY}/bmc-active", f"{INVENTORY}/gpu-active"]},
            "ArraySizeTooLong",
        ),
        (
            {**image, "Targets": [f"{INVENTORY}/../../Managers/bmc"]},
            "ActionParameterValueNotInList",
        ),
        ({**image, "Targets": [f"{INVENTORY}/rot-active"]}, "ActionParameterValueNotInList"),
        ({**image, "Targets": [f"{INVENTORY}/BMC-active"]}, "ActionParameterValueNotInList"),
        ({**image, "Targets": [f"{ROOT}/Managers/bmc/../gpu"]}, "ActionParameterValueNotInList"),
    ]
    with bmc.client(ADMIN) as client:
        for body, message_id in simple:
            _error(client.post(SIMPLE, json=body), 400, message_id)
        twice = client.post(
            PUSH,
            files=_parts(
                v2.bundle,
                v2.statements,
                targets=[f"{INVENTORY}/bmc-active", f"{ROOT}/Managers/bmc"],
            ),
        )
        _error(twice, 400, "ArraySizeTooLong")
    assert bmc.service.tasks.tasks() == []
    assert bmc.active("bmc") == "1.0"


@pytest.mark.parametrize("role", ["recovery", "previous", "staged"])
def test_an_update_naming_an_image_other_than_the_active_one_is_refused(
    bmc: Bmc, files: tuple[str, dict[str, bytes]], role: str
) -> None:
    """A target means what it names. ``…/gpu-recovery`` updated the active image (any role
    was taken as "the component"), while an operator naming the recovery image expects the
    recovery image written, or nothing. No update writes a recovery image: the RoT replaces
    it with the active image once that has booted healthy ``healthy_boots`` times, so it is
    always firmware that ran (the previous and staged images are the update's own). Such a
    target is refused before any task or fetch, as the inventory shows it: ``Updateable``
    is false."""
    target = f"{INVENTORY}/gpu-{role}"
    body = {**_gpu_2_0(bmc, files), "Targets": [target]}
    v2 = bmc.world.release("gpu", "2.0")
    before = {i.id: i.sha384 for i in bmc.platform.inventory()}
    with bmc.client(ADMIN) as client:
        shown = client.get(f"{INVENTORY}/gpu-recovery").json()
        simple = client.post(SIMPLE, json=body)
        push = client.post(PUSH, files=_parts(v2.bundle, v2.statements, targets=[target]))
    assert shown["Updateable"] is False
    error = _error(simple, 400, "ActionParameterValueConflict")
    info = error["@Message.ExtendedInfo"][0]
    assert info["MessageArgs"] == ["Targets", target]
    assert info["RelatedProperties"] == ["/Targets"]
    assert f"{INVENTORY}/gpu-active" in error["message"]
    error = _error(push, 400, "PropertyValueResourceConflict")
    info = error["@Message.ExtendedInfo"][0]
    assert info["MessageArgs"] == ["Targets", target, target]
    assert info["RelatedProperties"] == ["/UpdateParameters/Targets"]
    assert bmc.service.tasks.tasks() == []
    assert {i.id: i.sha384 for i in bmc.platform.inventory()} == before
    assert bmc.active("gpu") == "1.0"


def test_a_slow_image_server_holds_the_update_slot_at_most_the_fetch_timeout(
    bmc: Bmc,
) -> None:
    """An image server that sends a little every few hundred milliseconds never trips a
    per-read timeout, and would hold the node's one update slot for as long as it liked. The
    whole fetch gets ``fetch_timeout`` seconds: here 1 s, for an image (a good one, logged)
    that takes at least 3 s to arrive."""
    v2 = bmc.world.release("gpu", "2.0")
    chunks = 10
    step = -(-len(v2.bundle) // chunks)

    async def drip(request: Request) -> Response:
        if request.path_params["name"] != "gpu.bin":
            return Response(v2.statements[int(request.path_params["name"].split(".")[1])])

        async def body() -> Any:
            for n in range(chunks):
                yield v2.bundle[n * step : (n + 1) * step]
                await asyncio.sleep(0.3)

        return StreamingResponse(body(), media_type="application/octet-stream")

    bmc.service.limits = dataclasses.replace(LIMITS, fetch_timeout=1.0)
    with ServerThread(Starlette(routes=[Route("/{name}", drip)])) as slow:
        body = {
            "ImageURI": f"{slow.url}/gpu.bin",
            "Targets": [f"{INVENTORY}/gpu-active"],
            "Oem": {
                "Ironroot": {
                    "StatementURIs": [f"{slow.url}/s.{n}.ts" for n in range(len(v2.statements))]
                }
            },
        }
        with bmc.client(OPERATOR) as client:
            response = client.post(SIMPLE, json=body)
            error = _error(response, 400, "TransferFailed")
            assert "1.0 s" in error["message"]
            tasks = client.get(f"{ROOT}/TaskService/Tasks").json()["Members"]
            task = client.get(tasks[-1]["@odata.id"]).json()
    assert task["TaskState"] == "Exception"
    assert not bmc.service.updating.locked()
    assert bmc.active("gpu") == "1.0"


def test_an_image_server_that_drips_its_headers_holds_the_update_slot_at_most_the_fetch_timeout(
    bmc: Bmc,
) -> None:
    """httpx reads a status line and headers to their end before it answers, each read with
    its own timeout: a server that sends one header byte every 200 ms (for 20 s here, then
    hangs up) was never cut by the whole-fetch deadline, which was checked only between body
    reads. The fetch now ends at ``fetch_timeout`` (1 s) with ``TransferFailed``."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            for _ in range(100):
                if stop.wait(0.2):
                    break
                try:
                    conn.sendall(b"a")
                except OSError:
                    break

    server = threading.Thread(target=drip, daemon=True)
    server.start()
    bmc.service.limits = dataclasses.replace(LIMITS, fetch_timeout=1.0)
    body = {
        "ImageURI": f"http://127.0.0.1:{listener.getsockname()[1]}/gpu.bin",
        "Targets": [f"{INVENTORY}/gpu-active"],
    }
    try:
        with bmc.client(OPERATOR) as client:
            started = time.monotonic()
            response = client.post(SIMPLE, json=body)
            took = time.monotonic() - started
        error = _error(response, 400, "TransferFailed")
        assert "1.0 s" in error["message"]
        assert took < 10, took
        assert not bmc.service.updating.locked()
        assert bmc.active("gpu") == "1.0"
    finally:
        stop.set()
        server.join(30)
        listener.close()


def test_simple_update_requests_with_bad_parameters_are_400(
    bmc: Bmc, files: tuple[str, dict[str, bytes]]
) -> None:
    base, _ = files
    target = {"Targets": [f"{INVENTORY}/bmc-active"]}
    with ServerThread(Starlette()) as closed:
        unreachable = closed.url
    with bmc.client(ADMIN) as client:
        cases = [
            (client.post(SIMPLE, json=target), "ActionParameterMissing"),
            (client.post(SIMPLE, json={"ImageURI": f"{base}/x"}), "ActionParameterMissing"),
            (
                client.post(SIMPLE, json={**target, "ImageURI": "ftp://host/x"}),
                "ActionParameterValueFormatError",
            ),
            (client.post(SIMPLE, json={**target, "ImageURI": 7}), "ActionParameterValueTypeError"),
            (
                client.post(SIMPLE, json={**target, "ImageURI": f"{base}/x", "Stage": True}),
                "ActionParameterUnknown",
            ),
            (
                client.post(
                    SIMPLE, json={**target, "ImageURI": f"{base}/x", "TransferProtocol": "TFTP"}
                ),
                "ActionParameterValueNotInList",
            ),
            (
                client.post(
                    SIMPLE,
                    json={
                        **target,
                        "ImageURI": f"{base}/x",
                        "Oem": {"Ironroot": {"StatementURIs": "x"}},
                    },
                ),
                "ActionParameterValueTypeError",
            ),
            *(
                # HTTP Basic credentials: UTF-8 (no lone surrogate escape), no colon in a user
                (
                    client.post(
                        SIMPLE,
                        content=json.dumps({**target, "ImageURI": f"{base}/x", **auth}),
                        headers={"content-type": "application/json"},
                    ),
                    "ActionParameterValueFormatError",
                )
                for auth in (
                    {"Username": "\ud800"},
                    {"Username": "op", "Password": "secret \udc80"},
                    {"Username": "a:b", "Password": "pw"},
                )
            ),
            (
                client.post(SIMPLE, json={**target, "ImageURI": f"{base}/missing.bin"}),
                "TransferFailed",
            ),
            (
                client.post(SIMPLE, json={**target, "ImageURI": f"{unreachable}/x.bin"}),
                "CouldNotEstablishConnection",
            ),
        ]
    for response, message_id in cases:
        _error(response, 400, message_id)
        assert "secret" not in response.text  # a refused password is never echoed
    assert bmc.active("bmc") == "1.0"


# --- the manager and the RoT's log ----------------------------------------------------------


def test_the_rot_event_log_is_a_log_service(bmc: Bmc) -> None:
    with bmc.client(VIEWER) as client:
        manager = client.get(f"{ROOT}/Managers/bmc").json()
        services = client.get(manager["LogServices"]["@odata.id"]).json()
        log = client.get(services["Members"][0]["@odata.id"]).json()
        entries = client.get(log["Entries"]["@odata.id"]).json()
        first = client.get(entries["Members"][0]["@odata.id"]).json()
    events = bmc.platform.events()
    assert manager["ManagerType"] == "BMC"
    assert manager["FirmwareVersion"] == "1.0"
    assert log["Id"] == "RoT"
    assert entries["Members@odata.count"] == len(events)
    assert first["MessageId"] == events[0].message_id
    assert first["Message"] == events[0].message
    assert first["Created"] == events[0].at
    assert first["EntryType"] == "Oem"
    assert {k: v for k, v in first.items() if k != "@odata.etag"} == entries["Members"][0]


# --- bad input never breaks the service -----------------------------------------------------

_GARBAGE: list[tuple[str, bytes]] = [
    ("application/json", b""),
    ("application/json", b"\xff\xfe\x00"),
    ("application/json", b"[" * 5000),
    ("application/json", b"null"),
    ("application/json", b'{"UserName": {"a": [1, 2]}, "Password": null}'),
    ("application/json", json.dumps({"x" * 70000: 1}).encode()),
    ("text/plain", b"hello"),
    ("multipart/form-data", b"--"),
    ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--"),
]


@pytest.mark.parametrize(
    "uri",
    [
        f"{ROOT}/SessionService/Sessions",
        f"{ROOT}/AccountService/Accounts",
        f"{ROOT}/AccountService/Accounts/2",
        f"{ROOT}/AccountService",
        f"{ROOT}/SessionService",
        PUSH,
        SIMPLE,
    ],
)
def test_bad_input_is_a_redfish_error_never_a_500(bmc: Bmc, uri: str) -> None:
    method = "PATCH" if uri.endswith(("/2", "Service")) else "POST"
    with bmc.client(ADMIN) as client:
        for kind, body in _GARBAGE:
            response = client.request(method, uri, content=body, headers={"Content-Type": kind})
            assert 400 <= response.status_code < 500, (kind, body[:40], response.text)
            assert "@Message.ExtendedInfo" in response.json()["error"]
            assert "Traceback" not in response.text


def test_a_damaged_rot_is_503_with_retry_after_and_the_service_recovers(bmc: Bmc) -> None:
    """A storage failure under a request (a RoT state file edited behind the service's back)
    is 503, and every 503 says when to come back."""
    state = bmc.platform.directory / "rot" / "boot.json"
    kept = state.read_bytes()
    uri = f"{INVENTORY}/bmc-active"
    with bmc.client(ADMIN) as client:
        state.write_bytes(b"edited")
        try:
            answer = client.get(uri)
            error = _error(answer, 503, "GeneralError")
            oem = error["@Message.ExtendedInfo"][0]["Oem"]["Ironroot"]
            assert oem["Code"] == "device-state-tampered"
            assert int(answer.headers["retry-after"]) >= 1
        finally:
            state.write_bytes(kept)
        assert client.get(uri).status_code == 200


def test_a_node_lock_that_cannot_be_opened_is_503_not_500(bmc: Bmc) -> None:
    """The node's lock file replaced by a directory: an ``IsADirectoryError`` out of every
    operation, a ``500 InternalError`` here. A storage failure, ``503`` with ``Retry-After``."""
    lock = bmc.platform.directory / ".lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    uri = f"{INVENTORY}/bmc-active"
    with bmc.client(ADMIN) as client:
        try:
            answer = client.get(uri)
            error = _error(answer, 503, "GeneralError")
            assert error["@Message.ExtendedInfo"][0]["Oem"]["Ironroot"]["Code"] == "storage"
            assert int(answer.headers["retry-after"]) >= 1
        finally:
            lock.rmdir()
        assert client.get(uri).status_code == 200


def test_many_threads_read_while_an_update_runs(bmc: Bmc) -> None:
    """Reads during an update wait for the RoT, in worker threads: none fails."""
    v2 = bmc.world.release("nvme", "2.0")
    failures: list[str] = []

    def read() -> None:
        with bmc.client(VIEWER) as client:
            for uri in (INVENTORY, f"{ROOT}/TaskService/Tasks", f"{ROOT}/Managers/bmc"):
                response = client.get(uri)
                if response.status_code != 200:
                    failures.append(f"{uri}: {response.status_code}")

    with bmc.client(ADMIN) as client:
        response = client.post(
            PUSH, files=_parts(v2.bundle, v2.statements, targets=[f"{INVENTORY}/nvme-active"])
        )
        readers = [threading.Thread(target=read) for _ in range(4)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        assert _wait(client, response.headers["location"]).status_code == 200
    assert failures == []
    assert bmc.active("nvme") == "2.0"


# --- a PFM that drops a recovery image: the operator's per-update opt-in -----------------------

_DROPS_HOST_RECOVERY = (
    "the new PFM no longer allows the host recovery image: host could not be recovered "
    "(allow_recovery_removal must name it to accept that)"
)


def _pfm_without_host_1(world: World) -> tuple[bytes, bytes]:
    """A PFM listing every 1.0 and 2.0 release but host 1.0 (the host's recovery image on a
    new node), and its logged statement."""
    from ironroot.platform import COMPONENTS

    listed = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    listed["host"] = [world.release("host", "2.0")]
    pfm = world.make_pfm(2, listed)
    return pfm, world.log_pfm(pfm)


def _host_push(
    bmc: Bmc, pfm: bytes, pfm_ts: bytes, oem: dict[str, Any] | None
) -> list[tuple[str, tuple[str | None, bytes | str, str]]]:
    v2 = bmc.world.release("host", "2.0")
    extra = {} if oem is None else {"Oem": oem}
    parts = _parts(v2.bundle, v2.statements, targets=[f"{INVENTORY}/host-active"], extra=extra)
    parts.append(("OemIronrootPfm", ("node.pfm", pfm, "application/cose")))
    parts.append(("OemIronrootPfmStatement", ("node.pfm.ts", pfm_ts, "application/cose")))
    return parts


def _drops_recovery(response: httpx.Response) -> None:
    error = _error(response, 400, "VerificationFailed")
    ours = dict(error["@Message.ExtendedInfo"][0]["Oem"]["Ironroot"])
    ours.pop("@odata.type")
    assert ours == {
        "Check": "pfm",
        "Code": "pfm-drops-recovery-image",
        "Detail": _DROPS_HOST_RECOVERY,
    }


@pytest.mark.parametrize(
    "oem",
    [None, {"Ironroot": {}}, {"Ironroot": {"AllowRecoveryRemoval": ["gpu"]}}],
    ids=["no-oem", "no-opt-in", "another-component"],
)
def test_a_push_whose_pfm_drops_a_recovery_image_is_refused_without_naming_it(
    bmc: Bmc, oem: dict[str, Any] | None
) -> None:
    pfm, pfm_ts = _pfm_without_host_1(bmc.world)
    with bmc.client(OPERATOR) as client:
        _drops_recovery(client.post(PUSH, files=_host_push(bmc, pfm, pfm_ts, oem)))
    assert bmc.active("host") == "1.0"
    assert bmc.platform.state().pfm.image.svn == 1  # type: ignore[union-attr]


def test_a_push_naming_the_component_installs_a_pfm_that_drops_its_recovery_image(
    bmc: Bmc,
) -> None:
    pfm, pfm_ts = _pfm_without_host_1(bmc.world)
    oem = {"Ironroot": {"AllowRecoveryRemoval": ["host"]}}
    with bmc.client(OPERATOR) as client:
        response = client.post(PUSH, files=_host_push(bmc, pfm, pfm_ts, oem))
        assert response.status_code == 202, response.text
        done = _wait(client, response.headers["location"])
        task = client.get(response.json()["@odata.id"]).json()
    assert done.status_code == 200, done.text
    # the opt-in is kept in the task's Payload (its owner and administrators read it)
    assert json.loads(task["Payload"]["JsonBody"])["Oem"] == oem
    assert bmc.active("host") == "2.0"
    assert bmc.platform.state().pfm.image.svn == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("oem", "message_id"),
    [
        ({"Ironroot": {"AllowRecoveryRemoval": "host"}}, "PropertyValueTypeError"),
        ({"Ironroot": {"AllowRecoveryRemoval": ["host", "bios"]}}, "PropertyValueNotInList"),
        ({"Ironroot": {"AllowRecoveryRemovals": ["host"]}}, "PropertyUnknown"),
        ({"Acme": {}}, "PropertyUnknown"),
        ({"Ironroot": ["host"]}, "PropertyValueTypeError"),
        (["host"], "PropertyValueTypeError"),
    ],
)
def test_a_push_with_a_bad_allow_recovery_removal_is_400(
    bmc: Bmc, oem: Any, message_id: str
) -> None:
    pfm, pfm_ts = _pfm_without_host_1(bmc.world)
    with bmc.client(OPERATOR) as client:
        _error(client.post(PUSH, files=_host_push(bmc, pfm, pfm_ts, oem)), 400, message_id)
    assert bmc.service.tasks.tasks() == []
    assert bmc.active("host") == "1.0"


def _host_simple(
    bmc: Bmc, files: tuple[str, dict[str, bytes]], allowed: object | None
) -> dict[str, Any]:
    base, content = files
    v2 = bmc.world.release("host", "2.0")
    pfm, pfm_ts = _pfm_without_host_1(bmc.world)
    content["host.bin"] = v2.bundle
    content["host.ts"] = v2.statements[0]
    content["node.pfm"] = pfm
    content["node.pfm.ts"] = pfm_ts
    ours: dict[str, Any] = {
        "StatementURIs": [f"{base}/host.ts"],
        "PfmURI": f"{base}/node.pfm",
        "PfmStatementURI": f"{base}/node.pfm.ts",
    }
    if allowed is not None:
        ours["AllowRecoveryRemoval"] = allowed
    return {
        "ImageURI": f"{base}/host.bin",
        "Targets": [f"{INVENTORY}/host-active"],
        "Oem": {"Ironroot": ours},
    }


def test_simple_update_takes_allow_recovery_removal_for_the_component_it_names(
    bmc: Bmc, files: tuple[str, dict[str, bytes]]
) -> None:
    with bmc.client(OPERATOR) as client:
        for allowed in (None, [], ["gpu", "nvme"]):
            _drops_recovery(client.post(SIMPLE, json=_host_simple(bmc, files, allowed)))
        assert bmc.active("host") == "1.0"
        for allowed, message_id in (
            ("host", "ActionParameterValueTypeError"),
            (["host", 7], "ActionParameterValueTypeError"),
            (["Host"], "ActionParameterValueNotInList"),
        ):
            _error(client.post(SIMPLE, json=_host_simple(bmc, files, allowed)), 400, message_id)
        done, task = _simple_update(client, _host_simple(bmc, files, ["host"]))
    assert done.status_code == 200, done.text
    assert json.loads(task["Payload"]["JsonBody"])["Oem"]["Ironroot"]["AllowRecoveryRemoval"] == [
        "host"
    ]
    assert bmc.active("host") == "2.0"
    assert bmc.platform.state().pfm.image.svn == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "allowed",
    [["\u04bbost"], ["ho\u0455t"], ["host\u200b"], ["HOST"], [["host"]], [None], {"host": True}],
    ids=["cyrillic-h", "cyrillic-s", "zero-width", "upper", "nested", "null", "object"],
)
def test_a_push_naming_a_look_alike_of_a_component_is_400(bmc: Bmc, allowed: object) -> None:
    """A name that only looks like a component's (another script's letter, a zero-width
    space, another case) or a value of another type accepts nothing: 400, nothing runs."""
    pfm, pfm_ts = _pfm_without_host_1(bmc.world)
    oem = {"Ironroot": {"AllowRecoveryRemoval": allowed}}
    expected = (
        "PropertyValueNotInList"
        if isinstance(allowed, list) and all(isinstance(n, str) for n in allowed)
        else "PropertyValueTypeError"
    )
    with bmc.client(OPERATOR) as client:
        _error(client.post(PUSH, files=_host_push(bmc, pfm, pfm_ts, oem)), 400, expected)
    assert bmc.service.tasks.tasks() == []
    assert bmc.active("host") == "1.0"


def test_a_viewer_naming_a_component_cannot_push(bmc: Bmc) -> None:
    """``AllowRecoveryRemoval`` grants nothing of itself: an account without
    ``ConfigureComponents`` is refused the update however it is phrased."""
    pfm, pfm_ts = _pfm_without_host_1(bmc.world)
    oem = {"Ironroot": {"AllowRecoveryRemoval": ["host"]}}
    with bmc.client(VIEWER) as client:
        response = client.post(PUSH, files=_host_push(bmc, pfm, pfm_ts, oem))
    assert response.status_code == 403, response.text
    assert bmc.service.tasks.tasks() == []
    assert bmc.active("host") == "1.0"


def test_a_failing_readiness_check_names_no_path(bmc: Bmc) -> None:
    """``/ready`` answers anyone: a node whose configuration no longer reads answered
    ``config: /var/lib/…/platform.json is not JSON``, where the BMC keeps its files. It says the
    check's error kind now."""
    node = bmc.platform.directory / "platform.json"
    with bmc.client() as client:
        assert client.get("/ready").status_code == 200
        node.write_bytes(b"{ not json")
        ready = client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["node"] == "config: Invalid Configuration"
    assert str(bmc.platform.directory) not in ready.text
