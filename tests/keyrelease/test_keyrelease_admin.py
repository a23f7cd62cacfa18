"""The running key service's HSM administered through ``/admin``, the HSM's roles deciding."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from _kr_helpers import VERIFIER, Harness, assert_problem, build_harness, problem_of
from cryptography.hazmat.primitives.serialization import load_der_public_key

import http_calls
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    Conflict,
    MalformedInput,
    NotFound,
    RoleNotPermitted,
    Unauthorized,
    UnknownIssuer,
    UnsupportedMediaType,
)
from ironroot.hsm import (
    HsmConfig,
    KeyType,
    Role,
    verify_audit,
    verify_audit_checkpoint,
    wrap_key_kem,
)
from ironroot.keyrelease import (
    KeyReleaseServerThread,
    KeyReleaseService,
    ReleasableKey,
    WrappingKey,
    create_keyrelease_app,
    keyrelease_info,
)

OFFICER = ("officer", "officer-credential")
USER = ("operator", "operator-credential")  # a crypto user that administers, not the service
SERVICE = ("keyrelease", "user-credential")  # the identity the service itself runs as


@pytest.fixture
def admin() -> tuple[Harness, str]:
    harness = build_harness()
    harness.hsm.add_identity(harness.officer, USER[0], Role.USER, USER[1].encode())
    with (
        harness.http,
        KeyReleaseServerThread(create_keyrelease_app(harness.service)) as server,
    ):
        harness.url = server.url
        yield harness, server.url


def _client(url: str, auth: tuple[str, str] | None) -> httpx.Client:
    return httpx.Client(base_url=url, auth=auth, timeout=30, headers={"Accept": "application/json"})


def _admin_get(
    app: Any,
    client: str,
    base_url: str = "http://localhost",
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] = OFFICER,
) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            sent = {"Accept": "application/json", **(headers or {})}
            return await http.get("/admin/keys", auth=auth, headers=sent)

    return asyncio.run(run())


def test_admin_answers_requests_for_a_loopback_host_only(caplog: pytest.LogCaptureFixture) -> None:
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 reaches the
    loopback interface from the operator's browser; its requests name evil.example as Host
    and are refused before any login, so its guesses count toward no lockout."""
    harness = build_harness()
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    with harness.http:
        before = _officer_logins(harness)
        app = create_keyrelease_app(harness.service)  # the default reach: loopback
        for base in ("http://localhost:8200", "http://127.0.0.1:8200", "http://[::1]:8200"):
            assert _admin_get(app, "127.0.0.1", base).status_code == 200
        wrong = ("officer", "a wrong guess")
        for base in ("http://evil.example:8200", "http://keys", "http://127.0.0.1.evil.example"):
            refused = _admin_get(app, "127.0.0.1", base, auth=wrong)
            assert_problem(refused, RoleNotPermitted, "admin-host-not-loopback")
        warned = [r for r in caplog.records if "not the loopback: refused" in r.getMessage()]
        assert len(warned) == 3  # the operator's log shows each attempt
        assert _officer_logins(harness) == before + 3  # the loopback hosts' logins only
        remote = create_keyrelease_app(harness.service, admin="any")  # any host (over TLS)
        assert _admin_get(remote, "10.0.0.5", "https://keys.example").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://localhost:8200"},  # a page of the service's own origin too
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-origin"},
    ],
)
def test_admin_answers_no_request_a_browser_sends_for_a_page(headers: dict[str, str]) -> None:
    """A browser that keeps an officer's credentials would send them with a page's request
    (a POST without Content-Type needs no CORS preflight): no web page administers."""
    harness = build_harness()
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    with harness.http:
        before = _officer_logins(harness)
        for reach in ("loopback", "any"):
            app = create_keyrelease_app(harness.service, admin=reach)
            refused = _admin_get(app, "127.0.0.1", "http://localhost:8200", headers)
            assert_problem(refused, RoleNotPermitted, "admin-browser-request")
        assert _officer_logins(harness) == before  # refused before any login


def _officer_logins(harness: Harness) -> int:
    auditor = harness.hsm.login("auditor", b"auditor-credential")
    records = harness.hsm.audit_records(auditor)
    return sum(r.operation == "login" and r.identity == OFFICER[0] for r in records)


def test_admin_answers_on_the_loopback_interface_unless_configured() -> None:
    harness = build_harness()
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    with harness.http:
        before = _officer_logins(harness)
        loopback = create_keyrelease_app(harness.service)  # the default reach
        assert _admin_get(loopback, "127.0.0.1").status_code == 200
        assert _admin_get(loopback, "::1").status_code == 200
        # anyone else (a TEE the service releases keys to) is refused before any login:
        # five wrong guesses would lock the officer in the HSM until another officer lifts it
        for client in ("10.0.0.5", "192.168.1.9", "2001:db8::7"):
            refused = _admin_get(loopback, client)
            assert_problem(refused, RoleNotPermitted, "admin-loopback-only")
        assert _officer_logins(harness) == before + 2  # the loopback requests' logins only
        remote = create_keyrelease_app(harness.service, admin="any")  # over TLS
        assert _admin_get(remote, "10.0.0.5", "https://keys.example").status_code == 200
        off = create_keyrelease_app(harness.service, admin="off")
        assert _admin_get(off, "127.0.0.1").status_code == 404


def test_the_hsms_identities_and_roles_decide(admin: tuple[Harness, str]) -> None:
    harness, url = admin
    with _client(url, None) as anonymous:
        response = anonymous.get("/admin/keys")
        assert_problem(response, Unauthorized)
        assert response.headers["www-authenticate"].startswith("Basic ")
    with _client(url, ("officer", "not-the-credential")) as wrong:
        assert_problem(wrong.get("/admin/keys"), Unauthorized)
    with _client(url, USER) as user:
        assert user.get("/admin/keys").status_code == 200  # a crypto user may list keys
        assert_problem(user.post("/admin/keys", json={"type": "AES-256"}), RoleNotPermitted)
        verifier = PrivateKey.generate(Algorithm.ES384).public_key.to_pem().decode()
        added = user.post("/admin/verifiers", json={"name": "x", "public_key": verifier})
        assert_problem(added, RoleNotPermitted)
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    records = harness.hsm.audit_records(harness.hsm.login("auditor", b"auditor-credential"))
    outcomes = {(r.identity, r.operation, r.result) for r in records}
    assert ("officer", "login", "unauthorized") in outcomes
    assert ("operator", "generate", "role-not-permitted") in outcomes
    assert ("operator", "verifier-add", "role-not-permitted") in outcomes


def test_an_admin_request_is_json_or_untyped(admin: tuple[Harness, str]) -> None:
    _, url = admin
    body = b'{"type": "AES-256", "usages": ["encrypt", "decrypt"]}'
    with _client(url, OFFICER) as officer:
        before = len(officer.get("/admin/keys").json()["keys"])
        refused = officer.post("/admin/keys", content=body, headers={"Content-Type": "text/plain"})
        assert_problem(refused, UnsupportedMediaType)
        assert len(officer.get("/admin/keys").json()["keys"]) == before  # no key made
        untyped = officer.post("/admin/keys", content=body)
        assert untyped.status_code == 201, untyped.text


def test_generate_offer_and_release_while_running(admin: tuple[Harness, str]) -> None:
    harness, url = admin
    with _client(url, OFFICER) as officer:
        listed = officer.get("/admin/keys").json()["keys"]
        assert len(listed) == len(harness.handles)
        created = officer.post(
            "/admin/keys",
            json={
                "type": "AES-256",
                "usages": ["encrypt", "decrypt"],
                "exportable": True,
                "release_policy": 'status == "affirming"',
                "offer_as": "fresh-key",
            },
        )
        assert created.status_code == 201, created.text
        handle = created.json()["handle"]
        assert created.json()["release_policy"] == 'status == "affirming"'
        bad = officer.post("/admin/keys", json={"type": "AES-256", "release_policy": "x =="})
        assert bad.status_code == 403  # invalid-release-policy: no key is made
    assert "fresh-key" in http_calls.get(f"{url}/keys", timeout=30).json()["keys"]
    harness.handles["fresh-key"] = handle
    nonce = harness.nonce()
    released = harness.service.release("fresh-key", harness.request(harness.ear(nonce), nonce))
    assert harness.holds("fresh-key", harness.unwrap(released, nonce))


def test_an_offer_that_loses_its_name_to_another_leaves_no_key_behind(
    admin: tuple[Harness, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two offers of one name at once: the one that loses gets 409, and no key is made for
    it (the name is taken before the key is made), none left in the HSM under no name."""
    harness, url = admin
    harness.service.add_key(ReleasableKey("raced-key", harness.handles["cel-key"]))
    # the request's own check saw the name free: the other offer landed just after it
    monkeypatch.setattr(type(harness.service), "keys", property(lambda _self: {}))
    with _client(url, OFFICER) as officer:
        before = {k["handle"] for k in officer.get("/admin/keys").json()["keys"]}
        body = {
            "type": "AES-256",
            "exportable": True,
            "release_policy": "true",
            "offer_as": "raced-key",
        }
        lost = officer.post("/admin/keys", json=body)
        assert lost.status_code == 409, lost.text
        after = {k["handle"] for k in officer.get("/admin/keys").json()["keys"]}
    assert after == before


def test_offers_of_one_name_at_once_make_one_key() -> None:
    """Two offers of one name from two threads: the second waits for the first to make its
    key and offer it, then is ``Conflict`` without making one."""
    service = KeyReleaseService(keys=[], vault=_OfferingVault())
    made: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def slow() -> str:
        entered.set()
        release.wait(10)
        made.append("first")
        return "first-handle"

    first = threading.Thread(target=service.add_new_key, args=("one", slow))
    first.start()
    assert entered.wait(10)
    errors: list[Exception] = []

    def second() -> None:
        try:
            service.add_new_key("one", lambda: made.append("second") or "second-handle")
        except Conflict as exc:
            errors.append(exc)

    other = threading.Thread(target=second)
    other.start()
    release.set()
    first.join(10)
    other.join(10)
    assert made == ["first"]
    assert [e.detail for e in errors] == ["a key is offered as 'one' already"]
    assert service.keys["one"].handle == "first-handle"


def test_verifiers_and_imported_keys(admin: tuple[Harness, str]) -> None:
    _harness, url = admin
    verifier = PrivateKey.generate(Algorithm.ES384).public_key.to_pem().decode()
    with _client(url, OFFICER) as officer:
        added = officer.post(
            "/admin/verifiers", json={"name": "https://second.example", "public_key": verifier}
        )
        assert added.status_code == 201, added.text
        names = [v["name"] for v in officer.get("/admin/verifiers").json()["verifiers"]]
        assert names == ["https://second.example", "https://verifier.example"]
        kem = officer.post("/admin/keys", json={"type": "ML-KEM-768", "usages": ["unwrap"]}).json()
        public = load_der_public_key(
            base64.urlsafe_b64decode(
                kem["public_key_der"] + "=" * (-len(kem["public_key_der"]) % 4)
            )
        )
        wrapped = wrap_key_kem(public, KeyType.AES_256, bytes(range(32)))  # type: ignore[arg-type]
    with _client(url, USER) as user:  # importing (unwrapping) is a crypto user's operation
        imported = user.post(
            "/admin/keys/import",
            json={
                "wrapped": base64.urlsafe_b64encode(wrapped).rstrip(b"=").decode(),
                "unwrapping_key": kem["handle"],
                "type": "AES-256",
                "usages": ["encrypt", "decrypt"],
            },
        )
        assert imported.status_code == 201, imported.text
        assert imported.json()["generated_inside"] is False
        assert imported.json()["exportable"] is False  # an imported key never leaves


def test_the_services_own_identity_cannot_be_locked_out_through_admin(
    admin: tuple[Harness, str],
) -> None:
    """The break: anyone who reached ``/admin`` sent five wrong credentials for the identity
    the service runs as; the HSM locked it and ended the service's session, so every
    challenge and release was refused (401) until an officer came. ``/admin`` now refuses
    that identity before any login: its attempts never count toward its lockout."""
    harness, url = admin
    attempts = HsmConfig().max_failed_logins + 1
    with _client(url, (SERVICE[0], "not-the-credential")) as guesser:
        for _ in range(attempts):
            assert_problem(guesser.get("/admin/keys"), Unauthorized)
    with _client(url, SERVICE) as service:  # not with its right credential either
        response = service.get("/admin/keys")
        assert_problem(response, Unauthorized)
        assert "the key service's own identity" in response.json()["detail"]
    nonce = harness.nonce()  # the service's session still works
    released = harness.service.release("cel-key", harness.request(harness.ear(nonce), nonce))
    assert harness.holds("cel-key", harness.unwrap(released, nonce))
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    records = harness.hsm.audit_records(harness.hsm.login("auditor", b"auditor-credential"))
    logins = [r.result for r in records if r.identity == "keyrelease" and r.operation == "login"]
    assert logins == ["ok"]  # the service's own login; no attempt through /admin reached the HSM


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/keys", b"[" * 100_000),  # json.loads: RecursionError, once a 500
        ("/admin/keys", b'{"a":' * 100_000),
        ("/admin/verifiers", b'{"name": "x", "public_key": "\\ud800"}'),  # .encode() failed
        ("/admin/keys", b'{"type": "AES-256", "label": "\\ud800"}'),  # poisoned the store
        ("/admin/keys", b'{"type": "AES-256", "label": "a", "label": "b"}'),  # which one?
        ("/admin/keys", b'{"type": "AES-256", "label": NaN}'),  # not JSON
        (
            "/admin/keys/import",
            b'{"wrapped": "AAAA", "type": "AES-256", "unwrapping_key": "\\udfff"}',
        ),
    ],
)
def test_hostile_bodies_are_malformed_input_and_the_hsm_still_commits(
    admin: tuple[Harness, str], path: str, body: bytes
) -> None:
    _harness, url = admin
    with _client(url, OFFICER) as officer:
        response = officer.post(path, content=body, headers={"Content-Type": "application/json"})
        assert_problem(response, MalformedInput)
        created = officer.post("/admin/keys", json={"type": "AES-256", "label": "after"})
        assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/keys", {"type": "AES-256", "exportabel": True}),
        ("/admin/keys", {"type": "AES-256", "release_polcy": 'status == "affirming"'}),
        ("/admin/keys/import", {"wrapped": "AAAA", "type": "AES-256", "unwrap_key": "h"}),
        ("/admin/verifiers", {"name": "v", "public_key": "x", "kid": "y"}),
    ],
    ids=["generate", "generate policy", "import", "verifier"],
)
def test_a_member_the_request_does_not_name_is_refused_before_the_hsm_acts(
    admin: tuple[Harness, str], path: str, body: dict[str, Any]
) -> None:
    """A misspelt member is not silently its default: nothing is made in the HSM."""
    harness, url = admin
    before = harness.hsm.keys(harness.officer)
    with _client(url, OFFICER) as officer:
        response = officer.post(path, json=body)
    assert_problem(response, MalformedInput)
    assert "unknown members" in response.json()["detail"]
    assert harness.hsm.keys(harness.officer) == before


class _OfferingVault:
    """A vault whose key lookups let a key be offered in between: what an admin ``offer_as``
    on another thread does while ``/ready`` checks every offered key."""

    def __init__(self) -> None:
        self.service: KeyReleaseService | None = None

    def challenge(self, client: str | None = None) -> tuple[bytes, int]:
        raise NotImplementedError

    def release(self, handle: str, *, ear: bytes, nonce: bytes, recipient: WrappingKey) -> bytes:
        raise NotImplementedError

    def key_type(self, handle: str) -> KeyType:
        assert self.service is not None
        self.service.add_key(ReleasableKey(f"offered-{handle}", f"{handle}-new"))
        return KeyType.AES_256


def test_a_key_offered_while_the_readiness_check_runs_does_not_break_it() -> None:
    vault = _OfferingVault()
    service = KeyReleaseService(
        keys=[ReleasableKey("a", "ha"), ReleasableKey("b", "hb")], vault=vault
    )
    vault.service = service
    before = service.keys
    keyrelease_info(service).checks["keys"]()  # a RuntimeError once the mapping grew under it
    assert sorted(before) == ["a", "b"]  # a view taken before is unchanged
    assert sorted(service.keys) == ["a", "b", "offered-ha", "offered-hb"]
    with pytest.raises(Conflict):
        service.add_key(ReleasableKey("a", "other"))


# --- removing a verifier while the service runs ---------------------------------------------

_REMOVE = f"/admin/verifiers/{quote(VERIFIER, safe='')}"


def _audited(harness: Harness) -> list[tuple[int, str, str, str | None, str]]:
    """The HSM's audit chain, verified against a checkpoint the HSM signed, as
    ``(seq, identity, operation, key, result)``."""
    if "auditor" not in {name for name, _, _ in harness.hsm.identities(harness.officer)}:
        harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    auditor = harness.hsm.login("auditor", b"auditor-credential")
    statement = harness.hsm.audit_checkpoint(auditor)
    checkpoint = verify_audit_checkpoint(statement, harness.hsm.attestation_public_key)
    records = harness.hsm.audit_records(auditor)
    verify_audit(records, checkpoint=checkpoint)
    return [(r.seq, r.identity, r.operation, r.key, r.result) for r in records]


def _release(harness: Harness) -> httpx.Response:
    nonce = harness.nonce()
    return harness.post("cel-key", harness.ear(nonce), nonce)


def test_a_removed_verifier_releases_nothing_from_the_answer_on(
    admin: tuple[Harness, str],
) -> None:
    """The gap: the running service could add a verifier but not remove one, and ``ironroot
    hsm verifier remove`` cannot open the HSM the service holds, so revoking a compromised
    verifier meant stopping the service. ``DELETE /admin/verifiers/{name}`` removes it."""
    harness, url = admin
    second = PrivateKey.generate(Algorithm.ES384)
    other = {"name": "https://second.example", "public_key": second.public_key.to_pem().decode()}
    with _client(url, OFFICER) as officer:
        assert officer.post("/admin/verifiers", json=other).status_code == 201
        assert _release(harness).status_code == 200  # trusted until now
        listed = officer.get("/admin/verifiers").json()["verifiers"]
        kid = {v["name"]: v["kid"] for v in listed}[VERIFIER]
        removed = officer.delete(_REMOVE)
        assert removed.status_code == 200, removed.text
        assert removed.json() == {"name": VERIFIER, "removed": True}
        names = [v["name"] for v in officer.get("/admin/verifiers").json()["verifiers"]]
        assert names == ["https://second.example"]
    refused = _release(harness)
    assert_problem(refused, UnknownIssuer)
    assert refused.status_code == 400
    assert problem_of(refused).detail == f"no verifier key has kid {kid}"
    nonce = harness.nonce()  # the verifier still installed releases as before
    assert harness.post("cel-key", harness.ear(nonce, signer=second), nonce).status_code == 200
    audited = _audited(harness)
    removal = [a for a in audited if a[2] == "verifier-remove"]
    # the record names the verifier removed and its key id
    assert [a[1:] for a in removal] == [("officer", "verifier-remove", f"{VERIFIER} {kid}", "ok")]
    after = [a[4] for a in audited if a[2] == "release" and a[0] > removal[0][0]]
    assert after == ["unknown-issuer", "ok"]  # the removed verifier's EAR, the other's


def test_removing_the_last_verifier_refuses_every_release(admin: tuple[Harness, str]) -> None:
    """An empty trust store trusts nothing: every release is refused, and ``/ready`` says so."""
    harness, url = admin
    with _client(url, OFFICER) as officer:
        assert officer.delete(_REMOVE).status_code == 200
        assert officer.get("/admin/verifiers").json() == {"verifiers": []}
    refused = _release(harness)
    assert_problem(refused, UnknownIssuer)
    assert "an empty trust store trusts nothing" in problem_of(refused).detail
    not_ready = harness.http.get(f"{url}/ready")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["verifiers"] == "no-verifier: Invalid Configuration"


def test_releases_racing_the_removal_are_ordered_by_the_hsm_lock(
    admin: tuple[Harness, str],
) -> None:
    """Releases run while the verifier is removed: each one the HSM decided before the removal
    may have succeeded, every one it decided after is refused, and every release started after
    the DELETE answered is refused."""
    harness, url = admin
    answered = threading.Event()
    late: list[httpx.Response] = []

    def releasing() -> None:
        while not answered.is_set():
            _release(harness)
        late.append(_release(harness))  # started after the answer

    workers = [threading.Thread(target=releasing) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        with _client(url, OFFICER) as officer:
            assert _release(harness).status_code == 200  # at least one before the removal
            removed = officer.delete(_REMOVE)
    finally:
        answered.set()
        for worker in workers:
            worker.join()
    assert removed.status_code == 200, removed.text
    assert len(late) == 2
    for response in late:
        assert_problem(response, UnknownIssuer)
    audited = _audited(harness)
    (cut,) = [a[0] for a in audited if a[2] == "verifier-remove"]
    releases = [(a[0], a[4]) for a in audited if a[2] == "release"]
    before = [result for seq, result in releases if seq < cut]
    after = [result for seq, result in releases if seq > cut]
    assert "ok" in before  # the one released before the DELETE, at least
    assert len(after) >= 2  # the late ones, at least
    assert set(after) == {"unknown-issuer"}  # whatever raced it, once removed: refused


def test_only_an_officer_on_the_loopback_interface_removes_a_verifier(
    admin: tuple[Harness, str],
) -> None:
    harness, url = admin
    with _client(url, None) as anonymous:
        assert_problem(anonymous.delete(_REMOVE), Unauthorized)
    with _client(url, ("officer", "not-the-credential")) as wrong:
        assert_problem(wrong.delete(_REMOVE), Unauthorized)
    with _client(url, USER) as user:  # a crypto user: the HSM's roles decide
        assert_problem(user.delete(_REMOVE), RoleNotPermitted)
    with _client(url, SERVICE) as service:  # never a login as the service's own identity
        assert_problem(service.delete(_REMOVE), Unauthorized)

    async def remote() -> httpx.Response:
        app = create_keyrelease_app(harness.service)  # the default reach: loopback
        transport = httpx.ASGITransport(app=app, client=("10.0.0.5", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            return await http.delete(_REMOVE, auth=OFFICER, headers={"Accept": "application/json"})

    assert_problem(asyncio.run(remote()), RoleNotPermitted, "admin-loopback-only")
    assert harness.hsm.release_verifiers(harness.officer)[0][0] == VERIFIER  # still trusted
    assert _release(harness).status_code == 200
    outcomes = {(a[1], a[2], a[4]) for a in _audited(harness) if a[2] == "verifier-remove"}
    assert outcomes == {("operator", "verifier-remove", "role-not-permitted")}


def test_removing_an_unknown_verifier_is_not_found(admin: tuple[Harness, str]) -> None:
    harness, url = admin
    with _client(url, OFFICER) as officer:
        unknown = officer.delete("/admin/verifiers/https%3A%2F%2Fnobody.example")
        assert_problem(unknown, NotFound)
        assert "'https://nobody.example'" in unknown.json()["detail"]
        assert_problem(officer.delete("/admin/verifiers/"), NotFound)
    unknown_key = harness.post("no-such-key", b"x", bytes(32))  # the service's other unknown
    assert_problem(unknown_key, NotFound)
    assert _release(harness).status_code == 200
    removal = [a[1:] for a in _audited(harness) if a[2] == "verifier-remove"]
    assert removal == [
        ("officer", "verifier-remove", "https://nobody.example -", "not-found"),
        ("officer", "verifier-remove", " -", "not-found"),  # the empty name
    ]


def test_the_cli_removes_a_verifier_from_the_running_service(
    admin: tuple[Harness, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    harness, url = admin
    credential = tmp_path / "officer.cred"
    credential.write_text(OFFICER[1] + "\n")
    credential.chmod(0o600)
    base = ["keyrelease", "verifier", "remove", VERIFIER, "--url", url, "--json"]
    monkeypatch.setenv("IRONROOT_HSM_CREDENTIAL", "not-the-credential")
    assert main([*base, "--identity", "officer"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "unauthorized"
    monkeypatch.delenv("IRONROOT_HSM_CREDENTIAL")
    assert main([*base, "--credential-file", str(credential)]) == 2  # no identity: usage
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "config"
    assert harness.hsm.release_verifiers(harness.officer)[0][0] == VERIFIER
    monkeypatch.setenv("IRONROOT_HSM_IDENTITY", "officer")
    assert main([*base, "--credential-file", str(credential)]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "name": VERIFIER, "removed": True}
    assert_problem(_release(harness), UnknownIssuer)
    assert main([*base, "--credential-file", str(credential)]) == 1  # gone already
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "not-found"
    assert VERIFIER in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "AES-256", "exportable": True, "offer_as": "unreleasable"},  # no policy
        {"type": "AES-256", "release_policy": "true", "offer_as": "unreleasable"},  # kept in
    ],
    ids=["no release policy", "not exportable"],
)
def test_offer_as_is_refused_for_a_key_no_release_could_take(
    admin: tuple[Harness, str], body: dict[str, Any]
) -> None:
    """A key without a release policy, or not exportable, is one every release refuses
    (``key-not-exportable``): offering it would list a name no TEE can ever get."""
    harness, url = admin
    before = harness.hsm.keys(harness.officer)
    with _client(url, OFFICER) as officer:
        refused = officer.post("/admin/keys", json=body)
    assert_problem(refused, MalformedInput)
    assert refused.json()["detail"] == (
        "offer_as needs a key a release can take: exportable, with a release_policy"
    )
    assert harness.hsm.keys(harness.officer) == before  # no key made
    assert "unreleasable" not in harness.service.keys


_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/admin/keys", None),
    ("POST", "/admin/keys", {"type": "AES-256"}),
    ("POST", "/admin/keys/import", {"wrapped": "AAAA", "unwrapping_key": "h", "type": "AES-256"}),
    ("GET", "/admin/verifiers", None),
    ("POST", "/admin/verifiers", {"name": "v", "public_key": "-----BEGIN"}),
    ("DELETE", "/admin/verifiers/nobody", None),
    ("POST", "/admin/audit/prune", {"before": 1}),
]
# what each identity gets on each route, in _ROUTES's order: the HSM's roles decide
_ANSWERS: dict[str, list[int]] = {
    "anonymous": [401] * 7,
    "wrong credential": [401] * 7,
    "the service itself": [401] * 7,
    "auditor": [403] * 7,
    "crypto user": [200, 403, 404, 200, 403, 403, 403],  # unwraps; h is no key: 404
    "officer": [200, 201, 403, 200, 400, 404, 400],  # never unwraps; 1 starts no segment
}


def test_every_admin_route_answers_each_identity_as_its_hsm_role_allows(
    admin: tuple[Harness, str],
) -> None:
    harness, url = admin
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    harness.hsm.add_identity(harness.officer, "victim", Role.OFFICER, b"victim-credential")
    identities: dict[str, tuple[str, str] | None] = {
        "anonymous": None,
        "wrong credential": ("victim", "a wrong guess"),  # seven guesses lock it out
        "the service itself": SERVICE,
        "auditor": ("auditor", "auditor-credential"),
        "crypto user": USER,
        "officer": OFFICER,
    }
    for who, auth in identities.items():
        with _client(url, auth) as client:
            got = [
                client.request(method, path, json=body).status_code
                for method, path, body in _ROUTES
            ]
        assert got == _ANSWERS[who], who
