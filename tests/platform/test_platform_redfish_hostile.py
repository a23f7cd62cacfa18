"""The platform's Redfish service against a hostile network client: requests forged to reach
the BMC's own services, privilege tricks and odd bodies, each answered with the exact Redfish
error (status and registry message) and no change to the node."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gzip
import ipaddress
import json
import logging
import re
import resource
import signal
import socket
import threading
import time
import zlib
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.platform.node_world import NOW
from tests.platform.test_platform_redfish import (
    ADMIN,
    INVENTORY,
    OPERATOR,
    PUSH,
    ROOT,
    SIMPLE,
    VIEWER,
    Bmc,
    _error,
    _gpu_2_0,
    _login,
    _parts,
    bmc,
    files,
    world,
)

from hostile_http import HostileServer, bounded, ok
from ironroot.errors import PolicyRejected
from ironroot.http import ServerThread
from ironroot.platform import chip_layout
from ironroot.platform._redfish import RedfishService, create_redfish_app
from ironroot.platform._redfish_update import check_fetch_address

__all__ = ["bmc", "files", "world"]  # the fixtures, imported for pytest


@pytest.fixture
def internal() -> Iterator[tuple[int, list[str]]]:
    """A service on the BMC's loopback (its port, and the paths it was asked for)."""
    asked: list[str] = []

    async def serve(request: Request) -> Response:
        asked.append(request.url.path)
        return Response(b"internal", media_type="application/octet-stream")

    with ServerThread(Starlette(routes=[Route("/{name}", serve)])) as server:
        yield int(server.url.rsplit(":", 1)[1]), asked


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "169.254.169.254", "fe80::1", "::ffff:127.0.0.1"],
)
def test_internal_addresses_are_refused_as_fetch_addresses(address: str) -> None:
    with pytest.raises(PolicyRejected) as refused:
        check_fetch_address(address, "http://x/")
    assert refused.value.code == "fetch-address"
    check_fetch_address("10.0.0.5", "http://x/")  # a firmware server on a private network
    check_fetch_address("firmware.example", "http://x/")  # a name: checked once connected


@pytest.mark.parametrize(
    "address", ["127.1", "0x7f000001", "2130706433", "0177.0.0.1", "0", "0x7f.1"]
)
def test_ipv4_loopback_in_the_resolvers_short_forms_is_refused(address: str) -> None:
    with pytest.raises(PolicyRejected) as refused:
        check_fetch_address(address, "http://x/")
    assert refused.value.code == "fetch-address"
    assert "127.0.0.1" in refused.value.detail or "0.0.0.0" in refused.value.detail


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("::127.0.0.1", "127.0.0.1"),
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("2002:7f00:1::", "127.0.0.1"),
    ],
)
def test_ipv4_loopback_inside_an_ipv6_address_is_refused(address: str, inner: str) -> None:
    """IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``)
    addresses carry an IPv4 address that a translator or relay on the BMC's network reaches
    for it: the one inside is checked too."""
    with pytest.raises(PolicyRejected) as refused:
        check_fetch_address(address, "http://x/")
    assert refused.value.code == "fetch-address"
    assert inner in refused.value.detail
    check_fetch_address("64:ff9b::a00:5", "http://x/")  # 10.0.0.5 through NAT64
    check_fetch_address("2001:db8::1", "http://x/")


def test_simple_update_refuses_loopback_written_as_the_resolver_reads_it(
    bmc: Bmc, internal: tuple[int, list[str]]
) -> None:
    """``127.1``, ``0x7f000001``, ``2130706433`` and ``0`` are not IP addresses to
    :mod:`ipaddress`, but the resolver (``inet_aton``) reads them as 127.0.0.1 and 0.0.0.0:
    they were taken for names, and the BMC connected to its own loopback (the answer, refused
    or cut, told which internal ports listen). They are literals, refused before any task."""
    port, asked = internal
    bmc.service.fetch_internal = False
    target = {"Targets": [f"{INVENTORY}/gpu-active"]}
    with bmc.client(OPERATOR) as client:
        for host in ("127.1", "0x7f000001", "2130706433", "0"):
            for where in (port, 1):
                body = {**target, "ImageURI": f"http://{host}:{where}/gpu.bin"}
                _error(client.post(SIMPLE, json=body), 400, "ActionParameterValueNotInList")
    assert bmc.service.tasks.tasks() == []
    assert asked == []


def test_simple_update_never_fetches_from_the_bmcs_own_addresses(
    bmc: Bmc, internal: tuple[int, list[str]]
) -> None:
    """An Operator's SimpleUpdate is a GET the BMC sends: to 127.0.0.1 or a link-local
    address it reaches the BMC's internal services (server-side request forgery). A literal
    address is refused before any task; a name that resolves to one (``localhost``) is cut
    once connected, before a request byte is sent."""
    port, asked = internal
    bmc.service.fetch_internal = False
    target = {"Targets": [f"{INVENTORY}/gpu-active"]}
    literal = [
        {**target, "ImageURI": f"http://127.0.0.1:{port}/gpu.bin"},
        {**target, "ImageURI": f"http://[::ffff:127.0.0.1]:{port}/gpu.bin"},
        {**target, "ImageURI": "http://169.254.169.254/latest/meta-data"},
        {
            **target,
            "ImageURI": "http://10.0.0.5/gpu.bin",
            "Oem": {"Ironroot": {"StatementURIs": [f"http://127.0.0.1:{port}/s.ts"]}},
        },
    ]
    with bmc.client(OPERATOR) as client:
        for body in literal:
            _error(client.post(SIMPLE, json=body), 400, "ActionParameterValueNotInList")
        assert bmc.service.tasks.tasks() == []
        named = client.post(SIMPLE, json={**target, "ImageURI": f"http://localhost:{port}/a"})
        error = _error(named, 400, "CouldNotEstablishConnection")
    assert "loopback" in error["message"]
    assert asked == []
    assert not bmc.service.updating.locked()
    assert bmc.active("gpu") == "1.0"


def test_an_image_server_sending_a_compressed_body_is_refused_undecoded(bmc: Bmc) -> None:
    """A hostile image server answers with ``Content-Encoding: gzip, gzip``: a few hundred
    bytes that decode to 16 MiB (to gigabytes with more layers) in one chunk, before the
    image's size limit (256 KiB here) was checked. The BMC asks for the bytes as they are
    and refuses an encoded answer without decoding it."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    layer = inner.compress(bytes(16 * 1024 * 1024)) + inner.flush()
    bomb = gzip.compress(layer, 9)
    assert len(bomb) < 4096
    asked: list[str | None] = []

    async def serve(request: Request) -> Response:
        asked.append(request.headers.get("accept-encoding"))
        coding = "gzip, gzip" if request.url.path == "/bomb.bin" else "gzip"
        body = bomb if request.url.path == "/bomb.bin" else gzip.compress(b"firmware")
        return Response(
            body, media_type="application/octet-stream", headers={"Content-Encoding": coding}
        )

    target = {"Targets": [f"{INVENTORY}/gpu-active"]}
    with (
        ServerThread(Starlette(routes=[Route("/{name}", serve)])) as server,
        bmc.client(OPERATOR) as client,
    ):
        nested = client.post(SIMPLE, json={**target, "ImageURI": f"{server.url}/bomb.bin"})
        single = client.post(SIMPLE, json={**target, "ImageURI": f"{server.url}/image.bin"})
    for response, name in ((nested, "bomb.bin"), (single, "image.bin")):
        error = _error(response, 400, "ResourceAtUriInUnknownFormat")
        assert error["@Message.ExtendedInfo"][0]["MessageArgs"] == [f"{server.url}/{name}"]
        assert "Content-Encoding" in error["message"]
    assert asked == ["identity", "identity"]
    assert not bmc.service.updating.locked()
    assert bmc.active("gpu") == "1.0"


def test_a_flood_of_password_guesses_is_503_and_sessions_keep_working(bmc: Bmc) -> None:
    """Each login or Basic request is an scrypt hash (about 32 MiB at the default cost) in a
    worker thread, sent by anyone: unbounded, a flood of guesses took all the BMC's memory and
    every worker thread. At most ``max_password_checks`` run at once; one more is 503 with
    ``Retry-After`` at once, while requests with a session token go on."""
    checks = bmc.service.password_checks
    with bmc.client() as client:
        token = _login(client, ADMIN)
        held = bmc.service.limits.max_password_checks
        for _ in range(held):  # every slot taken, as by a flood of guesses in flight
            assert checks.acquire(blocking=False)
        try:
            login = client.post(
                f"{ROOT}/SessionService/Sessions",
                json={"UserName": VIEWER[0], "Password": VIEWER[1]},
            )
            basic = client.get(INVENTORY, auth=ADMIN)
            public = client.get(f"{ROOT}/", auth=("nobody", "a guess"))
            session = client.get(INVENTORY, headers={"X-Auth-Token": token})
        finally:
            for _ in range(held):
                checks.release()
        after = client.post(
            f"{ROOT}/SessionService/Sessions", json={"UserName": VIEWER[0], "Password": VIEWER[1]}
        )
    for refused in (login, basic):
        _error(refused, 503, "ServiceTemporarilyUnavailable")
        assert refused.headers["retry-after"] == "1"
    assert public.status_code == 200
    assert session.status_code == 200
    assert after.status_code == 201


def test_read_only_changes_its_own_password_with_the_resources_annotations(bmc: Bmc) -> None:
    """A client that PATCHes back what it read carries ``@odata.id`` and ``@odata.etag``,
    which the service ignores; they were counted as properties to change, so a ReadOnly
    account could not change its own password (403). Its role stays out of reach. (A PATCH
    sets a password once an Administrator turns ``RequireChangePasswordAction`` off.)"""
    uri = f"{ROOT}/AccountService/Accounts/3"
    with bmc.client(ADMIN) as admin:
        off = admin.patch(f"{ROOT}/AccountService", json={"RequireChangePasswordAction": False})
        assert off.status_code == 200, off.text
    with bmc.client(VIEWER) as client:
        read = client.get(uri).json()
        annotations = {"@odata.id": uri, "@odata.etag": read["@odata.etag"]}
        escalate = client.patch(uri, json={**annotations, "RoleId": "Administrator"})
        changed = client.patch(uri, json={**annotations, "Password": "a new long password"})
    _error(escalate, 403, "InsufficientPrivilege")
    assert changed.status_code == 200, changed.text
    assert changed.json()["RoleId"] == "ReadOnly"
    with bmc.client(("viewer", "a new long password")) as client:
        assert client.get(uri).json()["RoleId"] == "ReadOnly"


def test_a_session_id_is_no_oracle_for_an_account_without_configure_manager(bmc: Bmc) -> None:
    """Another account's session was 403 and a missing one 404, so a ReadOnly account could
    tell which session ids are live; both are 403 now. An Administrator still gets 404."""
    sessions = f"{ROOT}/SessionService/Sessions"
    with bmc.client() as client:
        admin = _login(client, ADMIN)
        viewer = _login(client, VIEWER)
        members = client.get(sessions, headers={"X-Auth-Token": admin}).json()["Members"]
        mine = client.get(sessions, headers={"X-Auth-Token": viewer}).json()["Members"]
        other = next(m["@odata.id"] for m in members if m not in mine)
        as_viewer = {"X-Auth-Token": viewer}
        live = client.get(other, headers=as_viewer)
        missing = client.get(f"{sessions}/0123456789abcdef", headers=as_viewer)
        gone = client.delete(f"{sessions}/0123456789abcdef", headers=as_viewer)
        for_admin = client.get(f"{sessions}/0123456789abcdef", headers={"X-Auth-Token": admin})
    for response in (live, missing, gone):
        _error(response, 403, "InsufficientPrivilege")
    _error(for_admin, 404, "ResourceMissingAtURI")


def test_the_password_followed_by_nul_bytes_is_a_wrong_password(bmc: Bmc) -> None:
    """scrypt's HMAC pads the password with zero bytes, so ``password\\0`` hashed as the
    password: it logged in over HTTP Basic and as a session. Now it is a wrong password, and
    no account is given a password holding a NUL, by the ChangePassword action or (when
    ``RequireChangePasswordAction`` is off) a PATCH."""
    user, password = ADMIN
    sessions = f"{ROOT}/SessionService/Sessions"
    with bmc.client() as client:
        basic = client.get(f"{ROOT}/AccountService", auth=(user, password + "\0"))
        session = client.post(sessions, json={"UserName": user, "Password": password + "\0\0"})
    _error(basic, 401, "NoValidSession")
    _error(session, 401, "NoValidSession")
    with bmc.client(ADMIN) as client:
        created = client.post(
            f"{ROOT}/AccountService/Accounts",
            json={"UserName": "nul", "Password": "long enough\0pass", "RoleId": "ReadOnly"},
        )
        changed = client.post(
            f"{ROOT}/AccountService/Accounts/3/Actions/ManagerAccount.ChangePassword",
            json={"NewPassword": "viewer password!\0", "SessionAccountPassword": password},
        )
        off = client.patch(f"{ROOT}/AccountService", json={"RequireChangePasswordAction": False})
        assert off.status_code == 200, off.text
        patched = client.patch(
            f"{ROOT}/AccountService/Accounts/3", json={"Password": "viewer password!\0"}
        )
    error = _error(created, 400, "PropertyValueFormatError")
    assert "pass" not in json.dumps(error)  # a refused password is never echoed
    error = _error(changed, 400, "ActionParameterValueFormatError")
    assert "viewer" not in json.dumps(error)
    _error(patched, 400, "PropertyValueFormatError")
    assert [a.username for a in bmc.service.accounts.accounts()] == ["admin", "operator", "viewer"]


def _own_address() -> str:
    """This host's address on its network (a UDP connect sends nothing), or skip."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("no network interface but loopback")
        address = str(probe.getsockname()[0])
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("no network interface but loopback")
    return address


def test_simple_update_never_fetches_from_the_bmcs_own_network_address(bmc: Bmc) -> None:
    """Not loopback, but the BMC all the same: a service listening on every interface is
    reached at the BMC's own network address (traffic that never leaves the host). The
    connection's peer is its own local address: cut before a request byte."""
    address = _own_address()
    asked: list[str] = []

    async def serve(request: Request) -> Response:
        asked.append(request.url.path)
        return Response(b"internal")

    bmc.service.fetch_internal = False
    app = Starlette(routes=[Route("/{name}", serve)])
    with ServerThread(app, host="0.0.0.0") as server, bmc.client(OPERATOR) as client:
        port = server.url.rsplit(":", 1)[1]
        body = {"ImageURI": f"http://{address}:{port}/a", "Targets": [f"{INVENTORY}/gpu-active"]}
        error = _error(client.post(SIMPLE, json=body), 400, "CouldNotEstablishConnection")
    assert "BMC itself" in error["message"]
    assert asked == []
    assert bmc.active("gpu") == "1.0"


def test_the_bmcs_own_network_address_is_refused_alike_whether_its_port_listens(
    bmc: Bmc,
) -> None:
    """Cut once connected, the BMC's own network address answered "connection refused" on a
    port where nothing listens: an Operator's SimpleUpdates mapped the BMC's listening
    ports. It is recognised before connecting (a UDP connect to it, which sends nothing,
    has it as its own local address), and refused alike."""
    address = _own_address()
    bmc.service.fetch_internal = False
    with socket.socket() as closed:  # a port bound and not listening: nothing answers
        closed.bind(("0.0.0.0", 0))
        port = closed.getsockname()[1]
        body = {"ImageURI": f"http://{address}:{port}/a", "Targets": [f"{INVENTORY}/gpu-active"]}
        with bmc.client(OPERATOR) as client:
            error = _error(client.post(SIMPLE, json=body), 400, "CouldNotEstablishConnection")
    assert "BMC itself" in error["message"], error["message"]
    assert "refused" not in error["message"], error["message"]


def test_a_change_a_browser_sends_for_another_site_is_403(bmc: Bmc) -> None:
    """A browser that was given Basic credentials (the service's 401 asks for them) sends them
    with requests any page makes; a POST with no Content-Type or a multipart one needs no
    CORS preflight. Such a request, marked by ``Origin`` or ``Sec-Fetch-Site``, created an
    Administrator; now it is refused, while the same request from the service's own origin,
    or from a client that is not a browser, goes on."""
    accounts = f"{ROOT}/AccountService/Accounts"
    body = b'{"UserName": "csrf", "Password": "a long password", "RoleId": "Administrator"}'
    forged = [
        ({"Origin": "https://evil.example"}, "Origin"),
        ({"Origin": "null"}, "Origin"),
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site"),
    ]
    with bmc.client(ADMIN) as client:
        own = bmc.url.removeprefix("http://")
        for headers, name in forged:
            response = client.post(accounts, content=body, headers=headers)
            error = _error(response, 403, "HeaderInvalid")
            assert error["@Message.ExtendedInfo"][0]["MessageArgs"] == [name]
        push = client.post(
            f"{ROOT}/UpdateService/update-multipart",
            files={"UpdateFile": ("a.bin", b"x")},
            headers={"Origin": "https://evil.example"},
        )
        _error(push, 403, "HeaderInvalid")
        assert client.get(accounts, headers={"Origin": "https://evil.example"}).status_code == 200
        assert not any(a.username == "csrf" for a in bmc.service.accounts.accounts())
        same = client.post(
            accounts,
            content=body,
            headers={"Origin": f"http://{own}", "Sec-Fetch-Site": "same-origin"},
        )
        assert same.status_code == 201, same.text


@pytest.mark.parametrize(
    "body",
    [
        '{"SessionTimeout": 600, "SessionTimeout": 60}',
        '{"SessionTimeout": NaN}',
        '{"SessionTimeout": -Infinity}',
        '{"SessionTimeout": 1e999}',
    ],
)
def test_a_body_json_readers_disagree_on_is_malformed_json(bmc: Bmc, body: str) -> None:
    """A member given twice (Python keeps the last, another reader, a proxy that checked the
    request, the first) and ``NaN``/``Infinity`` or a number past a double (not JSON) are
    ``400 MalformedJSON``, in a request body and in a push's ``UpdateParameters``; nothing
    changes."""
    with bmc.client(ADMIN) as client:
        before = client.get(f"{ROOT}/SessionService").json()["SessionTimeout"]
        patched = client.patch(
            f"{ROOT}/SessionService", content=body, headers={"Content-Type": "application/json"}
        )
        _error(patched, 400, "MalformedJSON")
        assert client.get(f"{ROOT}/SessionService").json()["SessionTimeout"] == before
        params = body.replace("SessionTimeout", "ForceUpdate")
        pushed = client.post(
            PUSH,
            files=[
                ("UpdateParameters", (None, params, "application/json")),
                ("UpdateFile", ("image.bin", b"x", "application/octet-stream")),
            ],
        )
        _error(pushed, 400, "MalformedJSON")
    assert bmc.service.tasks.tasks() == []


def test_a_name_for_the_bmcs_loopback_is_refused_alike_whether_its_port_listens(
    bmc: Bmc, internal: tuple[int, list[str]]
) -> None:
    """A name resolving to loopback (``localhost``) was connected to and cut once connected:
    a port where nothing listens answered "connection refused" instead, so an Operator's
    SimpleUpdates mapped which of the BMC's internal ports listen. The name's addresses are
    checked before connecting, and both are refused alike."""
    port, asked = internal
    bmc.service.fetch_internal = False
    target = {"Targets": [f"{INVENTORY}/gpu-active"]}
    with bmc.client(OPERATOR) as client:
        for where in (port, 1):
            body = {**target, "ImageURI": f"http://localhost:{where}/gpu.bin"}
            error = _error(client.post(SIMPLE, json=body), 400, "CouldNotEstablishConnection")
            assert "loopback" in error["message"], error["message"]
            assert "refused" not in error["message"], error["message"]
    assert asked == []


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("AccountService", "ServiceEnabled"),
        ("AccountService", "LocalAccountAuth"),
        ("AccountService", "AccountLockoutCounterResetEnabled"),
        ("SessionService", "Id"),
        ("SessionService", "Name"),
        ("SessionService", "Status"),
        ("SessionService", "Sessions"),
        ("AccountService/Accounts/1", "Name"),
        ("AccountService/Accounts/1", "Password@odata.type"),
    ],
)
def test_a_patch_of_a_property_the_resource_shows_but_does_not_change_is_not_writable(
    bmc: Bmc, uri: str, name: str
) -> None:
    """A property the resource has, given in a PATCH the service does not apply, is
    ``400 PropertyNotWritable`` naming it (DMTF Base registry), never ``PropertyUnknown``: it
    is not unknown, the client may not set it. A name the resource lacks stays unknown."""
    with bmc.client(ADMIN) as client:
        current = client.get(f"{ROOT}/{uri}").json()
        value = current.get(name, "x")
        expected = "PropertyNotWritable" if name in current else "PropertyUnknown"
        error = _error(client.patch(f"{ROOT}/{uri}", json={name: value}), 400, expected)
        after = client.get(f"{ROOT}/{uri}").json()
    info = error["@Message.ExtendedInfo"][0]
    assert info["MessageArgs"] == [name]
    assert info["RelatedProperties"] == [f"/{name}"]
    assert after == current


def test_a_patch_names_every_property_it_cannot_apply(bmc: Bmc) -> None:
    """DSP0266: when every property of a PATCH is read-only or unknown, the ``400`` shows
    the non-updatable properties: one message for each, not only the first."""
    body = {"Id": "x", "LDAP": {}, "ServiceEnabled": False, "Frobnicate": 1}
    with bmc.client(ADMIN) as client:
        current = client.get(f"{ROOT}/AccountService").json()
        error = _error(
            client.patch(f"{ROOT}/AccountService", json=body), 400, "PropertyNotWritable"
        )
        assert client.get(f"{ROOT}/AccountService").json() == current
    assert error["code"] == "Base.1.22.GeneralError"
    named = [(i["MessageId"], i["MessageArgs"]) for i in error["@Message.ExtendedInfo"]]
    assert named == [
        ("Base.1.22.PropertyNotWritable", ["Id"]),
        ("Base.1.22.PropertyUnknown", ["LDAP"]),  # not one this service has
        ("Base.1.22.PropertyNotWritable", ["ServiceEnabled"]),
        ("Base.1.22.PropertyUnknown", ["Frobnicate"]),
    ]


def test_an_uploaded_file_name_is_shown_printable_and_bounded(bmc: Bmc) -> None:
    """The ``UpdateFile`` part's file name becomes the image's name in the task's messages
    (which every account reads) and the error: a terminal escape or a right-to-left override
    was kept as sent. Unprintable characters are shown as ``?`` (the name is cut to 200
    characters)."""
    params = json.dumps({"Targets": [f"{INVENTORY}/bmc-active"]})
    name = "img\x1b[2J\u202egpj." + "A" * 3000 + ".bin"
    parts = [
        ("UpdateParameters", (None, params, "application/json")),
        ("UpdateFile", (name, b"x", "application/octet-stream")),
    ]
    with bmc.client(ADMIN) as client:
        error = _error(client.post(PUSH, files=parts), 400, "VerificationFailed")
        tasks = client.get(f"{ROOT}/TaskService/Tasks").json()["Members"]
        task = client.get(tasks[-1]["@odata.id"]).json()
    shown = error["@Message.ExtendedInfo"][0]["MessageArgs"][0]
    assert shown == ("img?[2J?gpj." + "A" * 3000)[:200]
    assert all(shown in m["MessageArgs"] for m in task["Messages"][1:-1]), task["Messages"]


def test_an_accounts_etag_changes_with_its_password(bmc: Bmc) -> None:
    """An ETag changes when the resource changes (DSP0266): an account's did not when only
    its password did (not shown), so a password set with an ETag read before another
    administrator's reset overwrote that reset instead of being ``412``. (A PATCH sets a
    password once ``RequireChangePasswordAction`` is off; the action's change is
    ``test_a_password_changed_by_the_action_changes_the_accounts_etag``.)"""
    uri = f"{ROOT}/AccountService/Accounts/3"
    with bmc.client(ADMIN) as client:
        off = client.patch(f"{ROOT}/AccountService", json={"RequireChangePasswordAction": False})
        assert off.status_code == 200, off.text
        read = client.get(uri).headers["etag"]
        first = client.patch(uri, json={"Password": "reset by one"}, headers={"If-Match": read})
        assert first.status_code == 200, first.text
        assert first.headers["etag"] != read
        assert client.get(uri).headers["etag"] == first.headers["etag"]
        stale = client.patch(uri, json={"Password": "reset by two"}, headers={"If-Match": read})
        _error(stale, 412, "PreconditionFailed")
    with bmc.client(("viewer", "reset by one")) as viewer:
        assert viewer.get(uri).status_code == 200


def test_a_sessions_context_is_a_string_kept_with_the_session(bmc: Bmc) -> None:
    """``Context`` (Session schema: a string the client supplies, kept with the session) was
    taken of any type and dropped. A string is kept and shown; another type is ``400
    PropertyValueTypeError`` before the password is checked; a longer one than 256
    characters ``PropertyValueFormatError``."""
    sessions = f"{ROOT}/SessionService/Sessions"
    login = {"UserName": VIEWER[0], "Password": VIEWER[1]}
    with bmc.client() as client:
        for bad in (5, None, ["x"], {"a": "b"}):
            refused = client.post(sessions, json={**login, "Context": bad})
            _error(refused, 400, "PropertyValueTypeError")
        _error(
            client.post(sessions, json={**login, "Context": "x" * 257}),
            400,
            "PropertyValueFormatError",
        )
        assert bmc.service.sessions.sessions() == []
        opened = client.post(sessions, json={**login, "Context": "nightly inventory"})
        assert opened.status_code == 201, opened.text
        assert opened.json()["Context"] == "nightly inventory"
        token = opened.headers["x-auth-token"]
        shown = client.get(opened.headers["location"], headers={"X-Auth-Token": token})
    assert shown.json()["Context"] == "nightly inventory"


@pytest.mark.parametrize("where", ["missing", "refused"])
def test_a_failed_simple_update_fetch_keeps_no_query_of_its_uri_in_the_task(
    bmc: Bmc, files: tuple[str, dict[str, bytes]], where: str
) -> None:
    """A presigned image URL carries its secret in its query, which the task keeps out of
    its ``Payload`` and messages (every account reads tasks). A fetch that failed (a
    ``404``, a refused connection) put the whole URI, query and all, in the task's
    ``TransferFailed`` / ``CouldNotEstablishConnection`` message and the task monitor's
    answer, where a ReadOnly account read it."""
    body = _gpu_2_0(bmc, files)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    base = files[0] if where == "missing" else f"http://127.0.0.1:{port}"
    body["ImageURI"] = f"{base}/missing.bin?X-Amz-Signature=SECRET0123#frag"
    expected = "TransferFailed" if where == "missing" else "CouldNotEstablishConnection"
    with bmc.client(OPERATOR) as operator, bmc.client(VIEWER) as viewer:
        refused = operator.post(SIMPLE, json=body)
        error = _error(refused, 400, expected)
        (task,) = viewer.get(f"{ROOT}/TaskService/Tasks").json()["Members"]
        shown = viewer.get(task["@odata.id"])
        monitor = viewer.get(shown.json()["TaskMonitor"])
    assert error["@Message.ExtendedInfo"][0]["MessageArgs"][0] == f"{base}/missing.bin?(hidden)"
    assert shown.json()["TaskState"] == "Exception"
    _error(monitor, 400, expected)
    for answer in (refused, shown, monitor):
        assert "SECRET0123" not in answer.text
        assert "frag" not in answer.text


def test_a_lockout_duration_of_zero_is_refused_not_a_lockout_for_ever(bmc: Bmc) -> None:
    """DSP0266 (AccountService): ``AccountLockoutDuration`` ``0`` means *no lockout*. The
    account store reads a duration of ``0`` as locked until an administrator unlocks: a
    client that PATCHed ``0`` to stop lockouts instead let anyone on the network lock every
    account, the Administrator's too, for ever with five wrong guesses. ``0`` is out of this
    service's range (``AccountLockoutThreshold: 0`` is how lockouts stop), and a lockout
    that no timer ends shows ``AccountLockoutCounterResetEnabled: false``, as the schema
    defines an indefinite lockout."""
    uri = f"{ROOT}/AccountService"
    with bmc.client(ADMIN) as admin:
        before = admin.get(uri).json()
        refused = admin.patch(uri, json={"AccountLockoutDuration": 0})
        error = _error(refused, 400, "PropertyValueOutOfRange")
        assert admin.get(uri).json() == before
        assert bmc.service.accounts.settings.lockout_duration == 300
        stopped = admin.patch(uri, json={"AccountLockoutThreshold": 0})
        assert stopped.status_code == 200, stopped.text
        bmc.service.accounts.configure(lockout_threshold=5, lockout_duration=0)
        shown = admin.get(uri).json()
    info = error["@Message.ExtendedInfo"][0]
    assert info["MessageArgs"] == ["0", "AccountLockoutDuration"]
    assert info["RelatedProperties"] == ["/AccountLockoutDuration"]
    assert shown["AccountLockoutCounterResetEnabled"] is False
    with bmc.client() as client:
        for _ in range(5):
            wrong = {"UserName": VIEWER[0], "Password": "a wrong guess"}
            client.post(f"{ROOT}/SessionService/Sessions", json=wrong)
    accounts = bmc.service.accounts
    viewer = accounts.by_name(VIEWER[0])
    assert viewer is not None
    assert accounts.locked(viewer.id, "127.0.0.1")
    accounts.flush()
    saved = json.loads(accounts.path.read_text())["accounts"][int(viewer.id) - 1]["lockouts"]
    assert saved == {"127.0.0.1": 0.0}  # from the guesser's address, until an administrator


def test_a_patch_body_sent_slowly_holds_up_no_other_change(bmc: Bmc) -> None:
    """``PATCH`` and ``DELETE`` take the service's one write lock from their ``If-Match`` check
    to their change. The body was read inside it: a ReadOnly account PATCHing its own account
    (``ConfigureSelf``) and sending the body a byte at a time held every other change up,
    an Administrator disabling that very account and every logout included, for as long as
    the server waits for a body, and again with the next such request. The body is read
    before the lock is taken."""
    host, port = bmc.url.removeprefix("http://").split(":")
    credentials = base64.b64encode(f"{VIEWER[0]}:{VIEWER[1]}".encode()).decode()
    head = (
        f"PATCH {ROOT}/AccountService/Accounts/3 HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Basic {credentials}\r\nContent-Type: application/json\r\n"
        "Content-Length: 40\r\n\r\n{"
    )
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(head.encode())
        deadline = time.monotonic() + 0.5  # until the slow PATCH would hold the lock
        while not bmc.service.writes.locked() and time.monotonic() < deadline:
            time.sleep(0.01)
        with bmc.client(ADMIN) as admin:
            disabled = admin.patch(
                f"{ROOT}/AccountService/Accounts/3", json={"Enabled": False}, timeout=5
            )
    assert disabled.status_code == 200, disabled.text
    assert bmc.service.accounts.by_name(VIEWER[0]).enabled is False  # type: ignore[union-attr]


def test_a_session_shows_the_user_name_its_account_has_now(bmc: Bmc) -> None:
    """A session showed the user name its account had at login. Renamed, and its old name
    given to a new account, the session still read ``UserName: viewer``: an administrator
    ending "viewer"'s access removed the new account and left the session's holder in."""
    accounts = f"{ROOT}/AccountService/Accounts"
    with bmc.client() as client, bmc.client(ADMIN) as admin:
        token = _login(client, VIEWER)
        renamed = admin.patch(f"{accounts}/3", json={"UserName": "renamed"})
        assert renamed.status_code == 200, renamed.text
        again = {"UserName": VIEWER[0], "Password": "another password", "RoleId": "ReadOnly"}
        created = admin.post(accounts, json=again)
        assert created.status_code == 201, created.text
        (session,) = client.get(
            f"{ROOT}/SessionService/Sessions", headers={"X-Auth-Token": token}
        ).json()["Members"]
        own = client.get(session["@odata.id"], headers={"X-Auth-Token": token})
        listed = admin.get(session["@odata.id"])
    assert own.json()["UserName"] == "renamed"
    assert listed.json()["UserName"] == "renamed"


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_request_whose_account_is_disabled_while_its_body_arrives_changes_nothing(
    bmc: Bmc, method: str
) -> None:
    """A request is authenticated when its head arrives; its body may take the server's
    whole body timeout. An Administrator whose account was disabled (its sessions ended)
    in that time still created an Administrator, or promoted an account, once its body was
    in: revoking a stolen account did not stop the requests it had already begun. The
    session and account are checked again once the body is read, before the change."""
    host, port = bmc.url.removeprefix("http://").split(":")
    with bmc.client(ADMIN) as admin:
        second = {"UserName": "admin2", "Password": "second admin pw", "RoleId": "Administrator"}
        assert admin.post(f"{ROOT}/AccountService/Accounts", json=second).status_code == 201
        with bmc.client() as client:
            token = _login(client, ("admin2", "second admin pw"))
        if method == "POST":
            target = f"{ROOT}/AccountService/Accounts"
            body = {
                "UserName": "mallory",
                "Password": "mallory's password",
                "RoleId": "Administrator",
            }
        else:
            target = f"{ROOT}/AccountService/Accounts/3"
            body = {"RoleId": "Administrator"}
        data = json.dumps(body).encode()
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nX-Auth-Token: {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        with socket.create_connection((host, int(port)), timeout=10) as slow:
            slow.sendall(head.encode() + data[:1])
            time.sleep(0.3)  # authenticated, waiting for the rest of its body
            disabled = admin.patch(f"{ROOT}/AccountService/Accounts/4", json={"Enabled": False})
            assert disabled.status_code == 200, disabled.text
            slow.sendall(data[1:])
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += slow.recv(65536)
            head_part, _, content = answer.partition(b"\r\n\r\n")
            length = int(head_part.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(content) < length:
                content += slow.recv(65536)
        roles = {a.username: a.role for a in bmc.service.accounts.accounts()}
    assert head_part.startswith(b"HTTP/1.1 401 "), answer[:300]
    info = json.loads(content)["error"]["@Message.ExtendedInfo"][0]
    assert info["MessageId"] == "Base.1.22.NoValidSession"
    assert "mallory" not in roles
    assert roles[VIEWER[0]] == "ReadOnly"


@pytest.mark.parametrize(
    "part", ["OemIronrootStatement", "OemIronrootPfm", "OemIronrootPfmStatement"]
)
def test_a_pushed_statement_or_pfm_over_its_limit_is_413_as_a_fetched_one_is(
    bmc: Bmc, part: str
) -> None:
    """``max_statement_bytes`` bounds each statement and PFM part of a push as it bounds each
    one ``SimpleUpdate`` fetches: the form parser bounds only parts without a file name, so a
    statement part of any size under the whole request's limit went on to verification."""
    limit = bmc.service.limits.max_statement_bytes
    v2 = bmc.world.release("bmc", "2.0")
    with bmc.client(ADMIN) as client:
        response = client.post(
            PUSH,
            files=[
                *_parts(v2.bundle, v2.statements),
                (part, ("big.cose", b"\x00" * (limit + 1), "application/cose")),
            ],
        )
    error = _error(response, 413, "PayloadTooLarge")
    assert part in error["message"]
    assert bmc.service.tasks.tasks() == []
    assert bmc.active("bmc") == "1.0"


@pytest.mark.parametrize("name", ["X-Auth-Token", "Authorization"])
def test_a_request_with_two_credentials_of_one_kind_is_400_naming_the_header(
    bmc: Bmc, name: str
) -> None:
    """``X-Auth-Token`` and ``Authorization`` are single fields (RFC 9110 §5.3): the service
    took the first of two, a proxy or log in front of it may take the last or join them, so
    which account a request acted as depended on who read it. Two are ``400 HeaderInvalid``
    naming the field, whichever comes first, for a read and a change alike; nothing changes."""
    basic = "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    with bmc.client() as client:
        admin, viewer = _login(client, ADMIN), _login(client, VIEWER)
        values = {"X-Auth-Token": (admin, viewer), "Authorization": (basic, "Basic eDp5")}[name]
        account = f"{ROOT}/AccountService/Accounts/1"
        answers = [
            client.get(account, headers=[(name, values[0]), (name, values[1])]),
            client.get(account, headers=[(name, values[1]), (name, values[0])]),
            client.patch(
                f"{ROOT}/SessionService",
                json={"SessionTimeout": 60},
                headers=[(name, values[0]), (name, values[1])],
            ),
        ]
        timeout = client.get(f"{ROOT}/SessionService", headers={"X-Auth-Token": admin})
    for answer in answers:
        error = _error(answer, 400, "HeaderInvalid")
        assert error["@Message.ExtendedInfo"][0]["MessageArgs"] == [name]
    assert timeout.json()["SessionTimeout"] != 60


def test_a_change_under_if_none_match_of_the_resource_is_412(bmc: Bmc) -> None:
    """``If-None-Match: *`` or the resource's ETag on a ``PATCH`` or ``DELETE`` is a condition
    that is false (the resource exists, with that ETag): RFC 9110 §13.1.2 has the change not
    made and ``412``. The service ignored it and made the change a client asked to be made
    only if the resource did not exist, or had changed."""
    with bmc.client(ADMIN) as client:
        service = client.get(f"{ROOT}/SessionService")
        session = client.post(
            f"{ROOT}/SessionService/Sessions",
            json={"UserName": VIEWER[0], "Password": VIEWER[1]},
        )
        refused = [
            client.patch(
                f"{ROOT}/SessionService",
                json={"SessionTimeout": 60},
                headers={"If-None-Match": tag},
            )
            for tag in ("*", service.headers["etag"], f'"other", {service.headers["etag"]}')
        ]
        gone = client.delete(session.headers["location"], headers={"If-None-Match": "*"})
        other = client.patch(
            f"{ROOT}/SessionService", json={"SessionTimeout": 600}, headers={"If-None-Match": '"x"'}
        )
        still = client.get(session.headers["location"])
    for answer in (*refused, gone):
        _error(answer, 412, "PreconditionFailed")
    assert still.status_code == 200
    assert other.status_code == 200
    assert bmc.service.accounts.settings.session_timeout == 600


def test_an_update_the_service_stops_during_runs_to_its_end(bmc: Bmc) -> None:
    """The service stops (its event loop closed) while an update it accepted is still being
    fetched: the worker thread goes on, as the process waits for it, and the update ends as
    it would have, its task ``Completed``. The worker told the closed loop that the image
    had verified from inside the RoT's update, so the update failed halfway there, and the
    task's end raised out of the thread."""
    gate = threading.Event()
    content: dict[str, bytes] = {}

    async def serve(request: Request) -> Response:
        await asyncio.to_thread(gate.wait, 60)
        return Response(content[request.path_params["name"]], media_type="application/octet-stream")

    service = RedfishService(
        bmc.platform,
        bmc.service.accounts,
        clock=lambda: NOW,
        limits=dataclasses.replace(bmc.service.limits, verify_wait=0),
        basic_over_http=True,
        fetch_internal=True,
    )
    with ServerThread(Starlette(routes=[Route("/{name}", serve)])) as images:
        body = _gpu_2_0(bmc, (images.url, content))
        with (
            ServerThread(create_redfish_app(service)) as server,
            httpx.Client(base_url=server.url, auth=ADMIN, timeout=30) as client,
        ):
            accepted = client.post(SIMPLE, json=body)
        assert accepted.status_code == 202, accepted.text
        gate.set()
        assert service.updating.acquire(timeout=60)  # the worker ended
        service.updating.release()
    (task,) = service.tasks.tasks()
    assert (task.state, task.status) == ("Completed", "OK")
    assert bmc.active("gpu") == "2.0"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_body_not_in_utf_8_is_malformed_json(bmc: Bmc, encoding: str) -> None:
    """JSON between systems is UTF-8 without a byte order mark (RFC 8259 §8.1). The service
    also read UTF-16 and UTF-32 (and a BOM), so a proxy that checked the request as UTF-8 saw
    no JSON, or other JSON, where the service saw a change: ``400 MalformedJSON``, in a
    request body and in a push's ``UpdateParameters``; nothing changes."""
    with bmc.client(ADMIN) as client:
        before = client.get(f"{ROOT}/SessionService").json()["SessionTimeout"]
        patched = client.patch(
            f"{ROOT}/SessionService",
            content='{"SessionTimeout": 600}'.encode(encoding),
            headers={"Content-Type": "application/json"},
        )
        after = client.get(f"{ROOT}/SessionService").json()["SessionTimeout"]
        params = json.dumps({"Targets": [f"{INVENTORY}/bmc-active"]}).encode(encoding)
        pushed = client.post(
            PUSH,
            files=[
                ("UpdateParameters", ("p.json", params, "application/json")),
                ("UpdateFile", ("image.bin", b"x", "application/octet-stream")),
            ],
        )
    _error(patched, 400, "MalformedJSON")
    assert after == before != 600
    _error(pushed, 400, "MalformedJSON")
    assert bmc.service.tasks.tasks() == []


def test_a_push_the_flash_cannot_take_is_503_with_retry_after_never_a_500(bmc: Bmc) -> None:
    """A push whose image the RoT could not write to flash (a full disk; here a file size
    limit, ``EFBIG``) ended as ``500 InternalError`` with a traceback in the log: the flash
    write's ``OSError`` was not a typed error. It is ``StorageError`` ``flash-write`` now:
    ``503`` (``Update.1.3.ApplyFailed``, then ``GeneralError`` naming the code) with
    ``Retry-After``, the task in ``Exception``, and the node unchanged."""
    staging = {r.name: r for r in chip_layout("bmc", 64 * 1024)}["staging"]
    v2 = bmc.world.release("bmc", "2.0")
    before = bmc.platform.show()
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (staging.offset + 100, limit[1]))
    try:
        with bmc.client(OPERATOR) as client:
            response = client.post(PUSH, files=_parts(v2.bundle, v2.statements))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, previous)
    error = _error(response, 503, "ApplyFailed")
    assert error["@Message.ExtendedInfo"][1]["Oem"]["Ironroot"]["Code"] == "flash-write"
    assert int(response.headers["retry-after"]) >= 1
    (task,) = bmc.service.tasks.tasks()
    assert task.state == "Exception"
    assert bmc.platform.show() == before


def test_a_push_is_parsed_in_memory_not_spooled_to_a_disk_that_may_be_full(bmc: Bmc) -> None:
    """The body of a push is read into memory (bounded) before it is parsed; the form parser
    then copied each file part over 1 MiB into a temporary file again, so a large part on a
    BMC whose temporary directory was full (here a file size limit, ``EFBIG``) was a ``500
    InternalError``, and every push wrote unverified bytes to that disk. The parts stay in
    memory: an image over ``MaxImageSizeBytes`` is ``413 PayloadTooLarge`` however full the
    disk is."""
    image = b"\x00" * (1024 * 1024 + 200 * 1024)  # over 1 MiB, under the request's limit
    assert len(image) > bmc.service.limits.max_image_bytes
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, limit[1]))
    try:
        with bmc.client(OPERATOR) as client:
            response = client.post(PUSH, files=_parts(image))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, previous)
    _error(response, 413, "PayloadTooLarge")
    assert bmc.service.tasks.tasks() == []
    assert bmc.active("bmc") == "1.0"


@pytest.mark.parametrize(
    "part", ["OemIronrootStatement", "OemIronrootPfm", "OemIronrootPfmStatement"]
)
def test_a_binary_part_sent_without_a_file_name_is_refused_not_mangled(bmc: Bmc, part: str) -> None:
    """A statement or PFM part sent as a form field (no file name, as ``curl -F
    'part=<file'`` sends it) was decoded as text — UTF-8, else Latin-1 — and encoded back as
    UTF-8: other bytes than were sent, so the update was refused by a check it would have
    passed (``receipt``, "not on a transparency log"). Such a part is refused as the
    ``UpdateFile`` part is, ``400 MissingOrMalformedPart`` naming it, before any task."""
    v2 = bmc.world.release("bmc", "2.0")
    statements = v2.statements if part != "OemIronrootStatement" else v2.statements[1:]
    sent = v2.statements[0] if part != "OemIronrootPfm" else bmc.world.pfm
    with bmc.client(OPERATOR) as client:
        response = client.post(
            PUSH,
            files=[*_parts(v2.bundle, statements), (part, (None, sent, "application/cose"))],
        )
    error = _error(response, 400, "MissingOrMalformedPart")
    assert part in error["message"]
    assert bmc.service.tasks.tasks() == []
    assert bmc.active("bmc") == "1.0"


def test_a_user_name_differing_from_anothers_only_in_case_is_taken(bmc: Bmc) -> None:
    """``Admin`` or ``ADMIN`` beside ``admin`` is a second "admin" to whoever reads a session
    list, a log or an audit trail: a user name is taken whatever its case, created or
    renamed to, and nothing changes. An account takes its own name in another case."""
    accounts = f"{ROOT}/AccountService/Accounts"
    with bmc.client(ADMIN) as client:
        for name in ("Admin", "ADMIN", "aDmIn"):
            created = client.post(
                accounts,
                json={"UserName": name, "Password": "a long password", "RoleId": "ReadOnly"},
            )
            _error(created, 400, "ResourceAlreadyExists")
        renamed = client.patch(f"{accounts}/2", json={"UserName": "Viewer"})
        _error(renamed, 400, "ResourceAlreadyExists")
        assert [a.username for a in bmc.service.accounts.accounts()] == [
            "admin",
            "operator",
            "viewer",
        ]
        own = client.patch(f"{accounts}/2", json={"UserName": "Operator"})
        assert own.status_code == 200, own.text
        assert own.json()["UserName"] == "Operator"


def test_a_password_of_the_wrong_type_is_refused_without_echoing_it(bmc: Bmc) -> None:
    """A password sent as a list or a number (a client's bug, a mangled template) is still a
    secret: the ``400`` names its property and shows ``(hidden)``, as every refused password
    is shown, never the value itself (an error body ends up in client logs and tickets)."""
    secret = "a secret password 7319"
    sessions = f"{ROOT}/SessionService/Sessions"
    accounts = f"{ROOT}/AccountService/Accounts"
    target = {"Targets": [f"{INVENTORY}/bmc-active"], "ImageURI": "https://fw.example/bmc.bin"}
    with bmc.client(ADMIN) as client:
        refused = {
            "PropertyValueTypeError": [
                client.post(sessions, json={"UserName": "admin", "Password": [secret]}),
                client.post(sessions, json={"UserName": "admin", "Password": 73197319731973}),
                client.post(
                    accounts,
                    json={"UserName": "new", "Password": {"p": secret}, "RoleId": "ReadOnly"},
                ),
            ],
            "ActionParameterValueTypeError": [
                client.post(SIMPLE, json={**target, "Username": "fw", "Password": [secret]}),
            ],
        }
        for message_id, responses in refused.items():
            for response in responses:
                error = _error(response, 400, message_id)
                assert error["@Message.ExtendedInfo"][0]["MessageArgs"][0] == "(hidden)"
                assert secret not in response.text
                assert "73197319731973" not in response.text
    assert [a.username for a in bmc.service.accounts.accounts()] == ["admin", "operator", "viewer"]
    assert bmc.service.tasks.tasks() == []


def test_an_accounts_change_is_logged_by_the_properties_it_applies_only(
    bmc: Bmc, caplog: pytest.LogCaptureFixture
) -> None:
    """Every account may ``PATCH`` its own account, and ``@odata.`` annotations are ignored:
    their names (anything, up to the body's 64 KiB) were written into the log line of the
    change, a client's text in the BMC's log at every request. The line names the
    properties the change applied."""
    caplog.set_level(logging.INFO, logger="ironroot.platform.redfish")
    planted = "@odata.x" + "y" * 30_000 + " a secret password 7319"
    with bmc.client(ADMIN) as client:
        response = client.patch(
            f"{ROOT}/AccountService/Accounts/3", json={planted: 1, "Enabled": True}
        )
    assert response.status_code == 200, response.text
    changed = [r.getMessage() for r in caplog.records if "changed" in r.getMessage()]
    assert changed == ["redfish account viewer changed: Enabled"]


def _redirect_text(uri: str, status: int, where: str) -> str:
    return (
        f"GET {uri} answered {status}, a redirect to {where}: an image or a statement is "
        "fetched only at the URI given, no redirect is followed; if it moved, give its new URI"
    )


# Where an image server's Location points, and how the refusal names it: resolved against
# the request, without its query; its path as it came, percent-encoded (never decoded into
# the control characters it spells); a host in its IDNA form (not the Cyrillic homograph
# it decodes to); at most 300 characters. {target} is another server, {server} the image's.
_LOCATIONS = [
    pytest.param(
        "{target}/v2/gpu.bin?X-Amz-Signature=SECRET0123#frag",
        "{target}/v2/gpu.bin?(hidden)",
        id="elsewhere, with a query",
    ),
    pytest.param(
        "/next%1b%5b2J%0d%0aforged%e2%80%ae",
        "{server}/next%1b%5b2J%0d%0aforged%e2%80%ae",
        id="percent-encoded controls",
    ),
    pytest.param("/a\xe2\x80\xaeb\xc2\x9bc", "{server}/a%E2%80%AEb%C2%9Bc", id="bidi and C1 raw"),
    pytest.param("/next\x1b[2J", "a Location that is no URL", id="ESC raw"),
    pytest.param(
        "http://xn--80ak6aa92e.com/gpu.bin", "http://xn--80ak6aa92e.com/gpu.bin", id="IDNA"
    ),
    pytest.param("/" + "a" * 5000, "{long}", id="5000 characters"),
    pytest.param(None, "nowhere (no Location)", id="no Location"),
]


@pytest.mark.parametrize(("location", "where"), _LOCATIONS)
@pytest.mark.parametrize("fetched", ["image", "statement"])
def test_a_redirect_from_the_image_server_is_transfer_failed_naming_where_never_followed(
    bmc: Bmc, fetched: str, location: str | None, where: str
) -> None:
    """A ``SimpleUpdate`` fetch is never redirected. A ``3xx`` was ``TransferFailed`` saying
    only "answered 302": the operator could not tell where the server pointed. It still is
    ``TransferFailed``, nothing is asked of the target, and the error names the
    ``Location`` as a refused client redirect does: attacker-controlled text, which goes in
    the task's answer (every account reads it) and the log, so shown without its query,
    without a control or bidirectional character (it stays percent-encoded), and bounded."""
    v2 = bmc.world.release("gpu", "2.0")
    content = {"gpu.bin": v2.bundle, **{f"gpu.{n}.ts": s for n, s in enumerate(v2.statements)}}
    redirected = "gpu.bin" if fetched == "image" else "gpu.0.ts"
    with HostileServer() as target, HostileServer(content.get) as server, bounded(120):
        headers = {} if location is None else {"Location": location.format(target=target.url)}
        server.attacks[redirected] = ok(b"", headers, 302)
        body = {
            "ImageURI": f"{server.url}/gpu.bin",
            "Targets": [f"{INVENTORY}/gpu-active"],
            "Oem": {
                "Ironroot": {
                    "StatementURIs": [f"{server.url}/gpu.{n}.ts" for n in range(len(v2.statements))]
                }
            },
        }
        with bmc.client(OPERATOR) as operator, bmc.client(VIEWER) as viewer:
            refused = operator.post(SIMPLE, json=body)
            error = _error(refused, 400, "TransferFailed")
            (task,) = viewer.get(f"{ROOT}/TaskService/Tasks").json()["Members"]
            shown = viewer.get(task["@odata.id"])
            monitor = viewer.get(shown.json()["TaskMonitor"])
        assert target.requests == []
    expected_where = where.format(
        target=target.url, server=server.url, long=f"{server.url}/{'a' * 5000}"[:300] + "..."
    )
    uri = f"{server.url}/{redirected}"
    assert error["message"] == _redirect_text(uri, 302, expected_where)
    assert error["@Message.ExtendedInfo"][0]["MessageArgs"] == [uri, "gpu"]
    assert shown.json()["TaskState"] == "Exception"
    assert _error(monitor, 400, "TransferFailed")["message"] == error["message"]
    for answer in (refused, shown, monitor):
        text = answer.json()
        assert "SECRET0123" not in answer.text
        assert not re.search("[\x00-\x1f\x7f-\x9f\u202e]", json.dumps(text, ensure_ascii=False))
    assert server.requests[-1] == redirected
    assert bmc.active("gpu") == "1.0"


@pytest.mark.parametrize("status", [300, 301, 303, 307, 308])
def test_every_redirect_status_from_the_image_server_is_transfer_failed_naming_where(
    bmc: Bmc, status: int
) -> None:
    with HostileServer() as target, HostileServer() as server, bounded(60):
        server.attacks["gpu.bin"] = ok(b"", {"Location": f"{target.url}/gpu.bin"}, status)
        body = {"ImageURI": f"{server.url}/gpu.bin", "Targets": [f"{INVENTORY}/gpu-active"]}
        with bmc.client(OPERATOR) as operator:
            error = _error(operator.post(SIMPLE, json=body), 400, "TransferFailed")
        assert target.requests == []
    expected = _redirect_text(f"{server.url}/gpu.bin", status, f"{target.url}/gpu.bin")
    assert error["message"] == expected
    assert server.requests == ["gpu.bin"]
