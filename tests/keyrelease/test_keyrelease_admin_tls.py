"""An HSM officer's credential never travels in the clear: the admin client sends it over
HTTPS or to a loopback address only, and with ``admin = "any"`` the service refuses HTTP
Basic on plain HTTP before any HSM login (as a Redfish service does, DSP0266)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from _kr_helpers import assert_problem, build_harness

from ironroot.errors import ConfigError, NotFound, Unauthorized
from ironroot.hsm import Role
from ironroot.keyrelease import KeyReleaseClient, create_keyrelease_app

OFFICER = ("officer", "officer-credential")
IN_CLEAR = (
    "the key service's URL is plain http:// to a host other than the loopback: an HSM "
    "officer's credential is sent only over https://, or to localhost"
)


class _Recorder(httpx.BaseTransport):
    """Records what the client would send; answers nothing it was not meant to get."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return httpx.Response(404, json={"title": "Not Found", "status": 404})


@pytest.mark.parametrize(
    "url", ["http://keys.example:8200", "http://10.0.0.5:8200", "HTTP://keys.example"]
)
def test_the_client_sends_no_officer_credential_in_the_clear(url: str) -> None:
    recorder = _Recorder()
    with KeyReleaseClient(url, transport=recorder) as client:
        with pytest.raises(ConfigError) as caught:
            client.remove_verifier("v", identity=OFFICER[0], credential=OFFICER[1].encode())
        assert str(caught.value) == IN_CLEAR
        with pytest.raises(ConfigError):
            client.prune_audit(1, identity=OFFICER[0], credential=OFFICER[1].encode())
    assert recorder.sent == []  # nothing left the client


@pytest.mark.parametrize(
    "url",
    ["https://keys.example", "http://localhost:8200", "http://127.0.0.1:8200", "http://[::1]"],
)
def test_the_client_sends_it_over_https_or_to_the_loopback(url: str) -> None:
    recorder = _Recorder()
    with KeyReleaseClient(url, transport=recorder) as client, pytest.raises(NotFound):
        client.remove_verifier("v", identity=OFFICER[0], credential=OFFICER[1].encode())
    assert len(recorder.sent) == 1
    assert recorder.sent[0].headers["authorization"].startswith("Basic ")


def _admin_get(app: object, base_url: str, client: str = "10.0.0.5") -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client, 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            return await http.get(
                "/admin/keys", auth=OFFICER, headers={"Accept": "application/json"}
            )

    return asyncio.run(run())


def test_the_service_open_to_any_client_takes_basic_over_https_only() -> None:
    harness = build_harness()
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    auditor = harness.hsm.login("auditor", b"auditor-credential")

    def logins() -> int:
        records = harness.hsm.audit_records(auditor)
        return sum(r.operation == "login" and r.identity == OFFICER[0] for r in records)

    with harness.http:
        remote = create_keyrelease_app(harness.service, admin="any")
        before = logins()
        refused = _admin_get(remote, "http://keys.example")
        assert_problem(refused, Unauthorized, "admin-needs-https")
        # Basic is refused there unread: the 401 invites no credential in clear
        assert "www-authenticate" not in refused.headers
        assert refused.json()["detail"] == (
            'the admin API open to any client (admin = "any") takes an HSM officer\'s '
            "credential over HTTPS only: serve with TLS"
        )
        assert logins() == before  # refused before any login
        assert _admin_get(remote, "https://keys.example").status_code == 200
        # on the loopback interface, plain HTTP never leaves the host
        loopback = create_keyrelease_app(harness.service)
        assert _admin_get(loopback, "http://localhost:8200", "127.0.0.1").status_code == 200


BASIC = 'Basic realm="ironroot key service admin", charset="UTF-8"'


def _answer(
    app: object, base_url: str, client: str, auth: tuple[str, str] | None
) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client, 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            return await http.get("/admin/keys", auth=auth, headers={"Accept": "application/json"})

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("reach", "base_url", "client", "auth", "status", "challenge"),
    [
        # admin = "any": Basic offered over HTTPS only, never over plain HTTP
        ("any", "https://keys.example", "10.0.0.5", None, 401, [BASIC]),
        ("any", "https://keys.example", "10.0.0.5", ("officer", "wrong"), 401, [BASIC]),
        # the service's own identity, refused without a login
        ("any", "https://keys.example", "10.0.0.5", ("keyrelease", "x"), 401, [BASIC]),
        ("any", "https://keys.example", "10.0.0.5", OFFICER, 200, []),
        ("any", "http://keys.example", "10.0.0.5", None, 401, []),
        ("any", "http://keys.example", "10.0.0.5", ("officer", "wrong"), 401, []),
        ("any", "http://keys.example", "10.0.0.5", OFFICER, 401, []),
        # the loopback reach: plain HTTP never leaves the host, so Basic is offered there
        ("loopback", "http://localhost:8200", "127.0.0.1", None, 401, [BASIC]),
        ("loopback", "http://localhost:8200", "127.0.0.1", ("officer", "wrong"), 401, [BASIC]),
        ("loopback", "https://localhost:8200", "127.0.0.1", None, 401, [BASIC]),
        ("loopback", "http://localhost:8200", "127.0.0.1", OFFICER, 200, []),
        # a 403 asks for no credential, over either transport
        ("loopback", "http://localhost:8200", "10.0.0.5", None, 403, []),
        ("loopback", "https://localhost:8200", "10.0.0.5", OFFICER, 403, []),
        ("loopback", "http://keys.example", "127.0.0.1", None, 403, []),
    ],
)
def test_the_admin_apis_challenge_is_basic_on_a_401_where_basic_is_taken(
    reach: str,
    base_url: str,
    client: str,
    auth: tuple[str, str] | None,
    status: int,
    challenge: list[str],
) -> None:
    harness = build_harness()
    with harness.http:
        app = create_keyrelease_app(harness.service, admin=reach)
        answer = _answer(app, base_url, client, auth)
    assert answer.status_code == status, answer.content
    assert answer.headers.get_list("www-authenticate") == challenge
