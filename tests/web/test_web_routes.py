"""The dashboard's routes over real HTTP (the app in a server thread, an httpx client): who
may see what, the login (CSRF, throttling, sessions), escaping of hostile input, what is
never shown, the verification each page does, errors, and the mount under ``fleet serve``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import html
import logging
import re
import shutil
import socket
import sqlite3
from pathlib import Path

import httpx
import pytest
from tests.platform.node_world import NOW
from tests.web.conftest import log_in, login_token
from tests.web.web_world import (
    ADMITTED,
    HELD,
    HOSTILE,
    HOSTILE_ISSUER,
    HOSTILE_REASON,
    OPERATOR,
    PASSWORD,
    PENDING,
    ROGUE_FIRMWARE,
    SEEN,
    WRITE_TOKEN,
    WebWorld,
)

import http_calls
from ironroot.crypto import PrivateKey
from ironroot.errors import IronrootError, TooManyAttempts
from ironroot.http import ServerThread
from ironroot.log import Checkpoint, NoteSigner, layout, sign_checkpoint
from ironroot.web import Dashboard, LoginThrottle, LogSource, create_dashboard_app

pytestmark = pytest.mark.integration

OPERATOR_PAGES = ["/", "/fleet", "/fleet/nodes/node-0001", "/reviews", "/keys", "/alerts"]


def _public_pages(world: WebWorld) -> list[str]:
    return [
        "/log",
        "/log/trusted-log",
        "/log/ops-log",
        "/log/trusted-log/checkpoints",
        "/log/ops-log/checkpoints",
        f"/log/trusted-log/entries/{world.review_entry}",
        f"/log/trusted-log/entries/{world.hostile_entry}",
        f"/log/ops-log/entries/{world.hostile_issuer_entry}",
    ]


# --- who may see what ------------------------------------------------------------------------


@pytest.mark.parametrize("path", OPERATOR_PAGES)
def test_operator_pages_send_an_anonymous_visitor_to_the_login(
    anon: httpx.Client, path: str
) -> None:
    answer = anon.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=" + path.replace("/", "%2F")
    assert "node-0001" not in answer.text


def test_the_log_is_public(anon: httpx.Client, world: WebWorld) -> None:
    for path in _public_pages(world):
        answer = anon.get(path)
        assert answer.status_code == 200, path
        assert "Log in" in answer.text
    cose = anon.get(f"/log/trusted-log/entries/{world.review_entry}/statement.cose")
    assert cose.status_code == 200
    assert cose.headers["content-type"] == "application/cose"
    assert cose.content[:1] == b"\xd2"


def test_a_logged_in_operator_sees_every_page(client: httpx.Client, world: WebWorld) -> None:
    for path in [*OPERATOR_PAGES, *_public_pages(world)]:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert "Log out" in answer.text
        assert OPERATOR in answer.text


def test_every_response_carries_the_security_headers(anon: httpx.Client) -> None:
    for path in ("/log", "/login", "/fleet", "/no-such-page", "/static/dashboard.css"):
        headers = anon.get(path).headers
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"


# --- the login -------------------------------------------------------------------------------


def test_logging_in_sets_a_strict_http_only_session_cookie(anon: httpx.Client) -> None:
    answer = log_in(anon)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    cookie = next(h for h in answer.headers.get_list("set-cookie") if "ironroot_session=" in h)
    assert cookie.startswith("ironroot_session=")  # plain HTTP: no __Host- prefix
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the TLS test
    assert PASSWORD not in cookie
    assert anon.get("/fleet").status_code == 200


def test_a_wrong_password_is_refused_with_the_same_answer_as_an_unknown_user(
    anon: httpx.Client,
) -> None:
    wrong = log_in(anon, password="not the password at all")
    unknown = log_in(anon, user="mallory", password="not the password at all")
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert "unknown user or wrong password" in answer.text
        assert not any("ironroot_session=" in h for h in answer.headers.get_list("set-cookie"))
    assert anon.get("/fleet").status_code == 303


def test_a_login_without_the_form_token_is_refused(anon: httpx.Client) -> None:
    anon.get("/login")
    answer = anon.post("/login", data={"user": OPERATOR, "password": PASSWORD})
    assert answer.status_code == 403
    assert "did not come from this dashboard" in answer.text
    forged = anon.post("/login", data={"user": OPERATOR, "password": PASSWORD, "csrf": "A" * 43})
    assert forged.status_code == 403


def test_a_form_token_bound_to_another_browser_is_refused(served: str) -> None:
    with httpx.Client(base_url=served) as attacker, httpx.Client(base_url=served) as victim:
        token = login_token(attacker.get("/login").text)  # the attacker's own token
        victim.get("/login")  # the victim has a login cookie of its own
        answer = victim.post("/login", data={"user": OPERATOR, "password": PASSWORD, "csrf": token})
        assert answer.status_code == 403


def test_a_login_posted_from_another_origin_is_refused(anon: httpx.Client) -> None:
    token = login_token(anon.get("/login").text)
    answer = anon.post(
        "/login",
        data={"user": OPERATOR, "password": PASSWORD, "csrf": token},
        headers={"origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert not any("ironroot_session=" in h for h in answer.headers.get_list("set-cookie"))


def test_login_never_redirects_to_another_site(anon: httpx.Client) -> None:
    token = login_token(anon.get("/login").text)
    answer = anon.post(
        "/login",
        data={"user": OPERATOR, "password": PASSWORD, "csrf": token, "next": "//evil.example/x"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    page = anon.get("/login?next=https://evil.example/")
    assert page.status_code == 303
    assert page.headers["location"] == "/"


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/x",
        "//evil.example/x/",
        "//evil.example/log/",
        "/log/",
        "/log/trusted-log/",
        "/fleet/",
        "/login/",
        "/static/dashboard.css/",
    ],
)
def test_a_path_with_a_slash_too_many_is_a_404_page_never_a_redirect(
    served: str, path: str
) -> None:
    # Starlette would answer a path with a trailing slash with a 307 to the path without
    # it, an absolute URL built from the client's Host header: here another site's
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head = raw.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 404 ")
    assert b"content-type: text/html" in head
    assert b"location:" not in head
    assert b"evil.example" not in raw


def test_failed_logins_are_throttled_per_client(world: WebWorld) -> None:
    dashboard = world.dashboard()
    ticks = [0.0]
    dashboard.throttle = LoginThrottle(3, 60, clock=lambda: ticks[0])
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        for _ in range(3):
            assert log_in(client, password="guess guess guess").status_code == 401
        refused = log_in(client)  # the right password, too soon
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) == 61
        assert "too many failed logins" in refused.text
        ticks[0] = 61.0
        assert log_in(client).status_code == 303


def test_concurrent_failed_logins_cannot_outrun_the_throttle(world: WebWorld) -> None:
    """Logins in flight count against the limit: a burst of wrong passwords sent at once from
    one address (each scrypt check takes a while) gets exactly ``max_failures`` answers, the
    rest 429, never one guess per request."""
    dashboard = world.dashboard()
    dashboard.throttle = LoginThrottle(3, 60, clock=lambda: 0.0)

    async def burst(base: str) -> list[int]:
        clients = [httpx.AsyncClient(base_url=base, timeout=60) for _ in range(10)]
        try:
            tokens = [login_token((await c.get("/login")).text) for c in clients]
            answers = await asyncio.gather(
                *(
                    c.post(
                        "/login",
                        data={"user": f"nobody-{i}", "password": "guess guess guess", "csrf": t},
                    )
                    for i, (c, t) in enumerate(zip(clients, tokens, strict=True))
                )
            )
        finally:
            for c in clients:
                await c.aclose()
        return sorted(a.status_code for a in answers)

    with ServerThread(create_dashboard_app(dashboard)) as server:
        assert asyncio.run(burst(server.url)) == [401] * 3 + [429] * 7
        with httpx.Client(base_url=server.url) as client:
            assert log_in(client).status_code == 429  # the right password, too soon


def test_the_throttle_refuses_with_a_typed_error() -> None:
    throttle = LoginThrottle(2, 10, clock=lambda: 5.0)
    throttle.failed("10.0.0.1")
    throttle.check("10.0.0.1")
    throttle.failed("10.0.0.1")
    with pytest.raises(TooManyAttempts) as caught:
        throttle.check("10.0.0.1")
    assert caught.value.code == "too-many-attempts"
    assert caught.value.http_status == 429
    throttle.check("10.0.0.2")  # another client is not held back


def test_a_forged_or_altered_session_cookie_is_not_a_session(served: str) -> None:
    with httpx.Client(base_url=served) as client:
        log_in(client)
        value = client.cookies["ironroot_session"]
        body, mac = value.split(".")
        payload = base64.urlsafe_b64decode(body + "==").replace(b"alice", b"admin")
        forged = base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + "." + mac
        # One character of the MAC changed: the last but one, whose six bits are all the MAC's
        # (the last may carry only padding bits), never to the character it was.
        altered = value[:-2] + ("y" if value[-2] == "x" else "x") + value[-1]
        for bad in (forged, body + ".AAAA", "garbage", altered):
            client.cookies.clear()
            client.cookies.set("ironroot_session", bad)
            assert client.get("/fleet", follow_redirects=False).status_code == 303, bad


def test_a_session_ends_with_its_lifetime_and_with_a_new_password(
    world: WebWorld, tmp_path: Path
) -> None:
    clock = [SEEN]
    dashboard = Dashboard.open(world.data, clock=lambda: clock[0])
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        log_in(client)
        assert client.get("/fleet").status_code == 200
        clock[0] = SEEN + dt.timedelta(seconds=dashboard.config.session_lifetime + 1)
        assert client.get("/fleet").status_code == 303
        clock[0] = SEEN
        assert client.get("/fleet").status_code == 200
        dashboard.operators.set_password(OPERATOR, PASSWORD)  # a new salt: sessions end
        assert client.get("/fleet").status_code == 303
        assert log_in(client).status_code == 303


def test_a_lowered_session_lifetime_holds_for_sessions_issued_before(
    world: WebWorld, tmp_path: Path
) -> None:
    clock = [SEEN]
    dashboard = Dashboard.open(world.data, clock=lambda: clock[0])
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        log_in(client)  # issued for the configured lifetime (600 s)
        clock[0] = SEEN + dt.timedelta(seconds=120)
        assert client.get("/fleet").status_code == 200
        # the operator lowers the lifetime to 60 s (a restart with a new dashboard.toml)
        dashboard.config = dataclasses.replace(dashboard.config, session_lifetime=60)
        assert client.get("/fleet", follow_redirects=False).status_code == 303
        assert log_in(client).status_code == 303  # a new session, for 60 s
        assert client.get("/fleet").status_code == 200


def test_logging_out_needs_the_session_s_form_token(client: httpx.Client) -> None:
    page = client.get("/fleet").text
    token = re.search(r'action="/logout">\s*<input type="hidden" name="csrf" value="([^"]+)"', page)
    assert token is not None
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    assert client.get("/fleet").status_code == 200
    answer = client.post("/logout", data={"csrf": token.group(1)})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    assert client.get("/fleet").status_code == 303


def test_a_logout_token_is_no_login_token_nor_the_other_way_round(
    client: httpx.Client, anon: httpx.Client
) -> None:
    """Both tokens were one HMAC of their cookie under one label: a logout token was the
    login token of a pre-login cookie holding the session's value, and the other way round."""
    page = client.get("/fleet").text
    found = re.search(r'action="/logout">\s*<input type="hidden" name="csrf" value="([^"]+)"', page)
    assert found is not None
    session = client.cookies["ironroot_session"]
    as_login = anon.post(
        "/login",
        data={"user": OPERATOR, "password": PASSWORD, "csrf": found.group(1)},
        headers={"cookie": f"ironroot_login={session}"},
    )
    assert as_login.status_code == 403
    assert "the form has expired or did not come from this dashboard" in as_login.text
    form = anon.get("/login")
    nonce = anon.cookies["ironroot_login"]
    as_logout = anon.post(
        "/logout",
        data={"csrf": login_token(form.text)},
        headers={"cookie": f"ironroot_session={nonce}"},
    )
    assert as_logout.status_code == 403
    assert "the form has expired or did not come from this dashboard" in as_logout.text
    assert client.get("/fleet").status_code == 200


def test_a_session_logged_out_is_over_on_the_server_too(world: WebWorld) -> None:
    """A copy of the cookie taken before logging out (another tab, a proxy's log, a thief's
    copy) is no session afterwards, in this process and in the next one."""
    dashboard = world.dashboard()
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as client,
        httpx.Client(base_url=server.url) as thief,
    ):
        assert log_in(client).status_code == 303
        stolen = client.cookies["ironroot_session"]
        page = client.get("/fleet").text
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        assert client.post("/logout", data={"csrf": token.group(1)}).status_code == 303
        thief.cookies.set("ironroot_session", stolen)
        answer = thief.get("/fleet")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=%2Ffleet"
        assert log_in(client).status_code == 303  # logging in again still works
        assert client.get("/fleet").status_code == 200
    with ServerThread(create_dashboard_app(world.dashboard())) as server:
        assert (
            http_calls.get(
                server.url + "/fleet", cookies={"ironroot_session": stolen}, follow_redirects=False
            ).status_code
            == 303
        )


@pytest.mark.parametrize("path", ["/login", "/logout"])
def test_a_client_gone_in_the_middle_of_its_form_is_a_debug_line_not_an_error(
    dashboard: Dashboard, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = ServerThread(create_dashboard_app(dashboard), name="dashboard-gone")
    uvicorn_log = logging.getLogger("uvicorn")  # it does not propagate to the root logger
    uvicorn_log.addHandler(caplog.handler)  # after the server's configuration reset it
    try:
        with caplog.at_level(logging.DEBUG, logger="ironroot.web"), server:
            host, port = server.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    "Content-Length: 100\r\n\r\nuser=al".encode()
                )  # and gone: the server's stop waits for the request's task to see it
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert [(r.name, r.levelname) for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert all(r.exc_info is None for r in caplog.records)
    assert ("ironroot.web", logging.DEBUG, f"POST {path}: the client disconnected") in [
        (r.name, r.levelno, r.getMessage()) for r in caplog.records
    ]


def _set_cookies(answer: httpx.Response, name: str) -> list[str]:
    return [h for h in answer.headers.get_list("set-cookie") if h.split("=", 1)[0] == name]


def test_over_tls_the_cookies_are_host_prefixed_and_no_plain_named_one_is_taken(
    world: WebWorld, tmp_path: Path
) -> None:
    """RFC 6265bis §4.1.3.2: over TLS the session and login cookies are ``__Host-`` ones
    (``Secure``, ``Path=/``, no ``Domain``), which a sibling subdomain cannot plant; one sent
    under the plain name (what a sibling could set) is no session and no login form's."""
    from tests.tls_pki import make_pki

    from ironroot.http import ServerTls, client_context

    pki = make_pki(tmp_path)
    tls = ServerTls(pki.server_cert, pki.server_key)
    with (
        ServerThread(create_dashboard_app(world.dashboard()), tls=tls) as server,
        httpx.Client(base_url=server.url, verify=client_context(pki.ca)) as client,
        httpx.Client(base_url=server.url, verify=client_context(pki.ca)) as planted,
    ):
        form = client.get("/login")
        (nonce,) = _set_cookies(form, "__Host-ironroot_login")
        answer = client.post(
            "/login", data={"user": OPERATOR, "password": PASSWORD, "csrf": login_token(form.text)}
        )
        assert answer.status_code == 303, answer.text
        (cookie,) = _set_cookies(answer, "__Host-ironroot_session")
        for header in (nonce, cookie):
            attributes = [a.strip().lower() for a in header.split(";")[1:]]
            assert "secure" in attributes
            assert "path=/" in attributes
            assert "httponly" in attributes
            assert not any(a.startswith("domain") for a in attributes)
        assert _set_cookies(answer, "ironroot_session") == []
        assert client.get("/fleet").status_code == 200
        value = cookie.split(";", 1)[0].split("=", 1)[1]
        # the same value under the plain name: not a session over TLS
        plain = planted.get("/fleet", headers={"cookie": f"ironroot_session={value}"})
        assert plain.status_code == 303
        assert plain.headers["location"] == "/login?next=%2Ffleet"
        hosted = planted.get("/fleet", headers={"cookie": f"__Host-ironroot_session={value}"})
        assert hosted.status_code == 200
        # a login nonce under the plain name: the form token is not the form's
        form = planted.get("/login")
        (fresh,) = _set_cookies(form, "__Host-ironroot_login")
        refused = planted.post(
            "/login",
            data={"user": OPERATOR, "password": PASSWORD, "csrf": login_token(form.text)},
            headers={"cookie": "ironroot_login=" + fresh.split(";", 1)[0].split("=", 1)[1]},
        )
        assert refused.status_code == 403
        assert "the form has expired or did not come from this dashboard" in refused.text
        # logging out ends the __Host- cookie
        page = client.get("/fleet").text
        token = re.search(
            r'action="/logout">\s*<input type="hidden" name="csrf" value="([^"]+)"', page
        )
        assert token is not None
        out = client.post("/logout", data={"csrf": token.group(1)})
        assert out.status_code == 303
        (ended,) = _set_cookies(out, "__Host-ironroot_session")
        assert "max-age=0" in ended.lower()


# --- hostile input ---------------------------------------------------------------------------


def _no_markup_from_data(text: str) -> None:
    assert "<script" not in text.lower()
    assert "<img" not in text.lower()
    assert html.escape(HOSTILE, quote=False) in text or html.escape(HOSTILE) in text


def test_hostile_subjects_issuers_and_reasons_are_escaped(
    client: httpx.Client, world: WebWorld
) -> None:
    pages = {
        "/log/trusted-log": HOSTILE,
        f"/log/trusted-log/entries/{world.hostile_entry}": HOSTILE,
        "/log/ops-log": HOSTILE_ISSUER,
        f"/log/ops-log/entries/{world.hostile_issuer_entry}": HOSTILE_ISSUER,
        "/fleet": HOSTILE_REASON,
        f"/fleet/nodes/{HELD}": HOSTILE_REASON,
        "/alerts": HOSTILE_REASON,
        "/": HOSTILE_ISSUER,
    }
    for path, hostile in pages.items():
        text = client.get(path).text
        _no_markup_from_data(text)
        assert html.escape(hostile, quote=False) in text or html.escape(hostile) in text, path


def test_a_hostile_filter_value_is_escaped(client: httpx.Client) -> None:
    text = client.get("/fleet", params={"q": '"><script>alert(1)</script>'}).text
    assert "<script>alert(1)" not in text
    assert "&#34;&gt;&lt;script&gt;" in text or "&quot;&gt;&lt;script&gt;" in text


# --- what is never shown ---------------------------------------------------------------------


def _raw_private(pem: bytes) -> list[str]:
    """The private scalar of an EC or Ed25519 key in hex (other types: their PEM suffices)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, None)
    except (ValueError, TypeError):
        return []
    if isinstance(key, ec.EllipticCurvePrivateKey):
        value = key.private_numbers().private_value
        return [f"{value:x}"[:32]]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return [key.private_bytes_raw().hex()[:32]]
    return []


def _secrets(world: WebWorld) -> list[str]:
    """Every private key, token and UDS in the world, in the forms a page could show them."""
    found = [WRITE_TOKEN, PASSWORD]
    roots = [world.data, world.world.root]
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.stat().st_size > 1 << 20:
                continue
            data = path.read_bytes()
            if b"PRIVATE KEY" in data:
                body = b"".join(
                    line for line in data.splitlines() if line and not line.startswith(b"-----")
                )
                found.append(body[16:80].decode())
                found.extend(_raw_private(data))
    for node in world.fleet.node_ids():
        fuses = world.fleet.rot(node).fuses
        found.append(fuses.uds_seed.hex()[:32])
        found.append(fuses.field_entropy.hex()[:32] if fuses.field_entropy else "")
        found.append(base64.b64encode(fuses.uds_seed).decode()[:24])
    key = (world.data / "dashboard" / "session.key").read_bytes()
    found += [key.hex(), base64.urlsafe_b64encode(key).decode().rstrip("=")]
    return [s for s in found if len(s) >= 16]


def _crawl(client: httpx.Client, start: list[str], limit: int = 120) -> dict[str, str]:
    seen: dict[str, str] = {}
    queue = list(start)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        answer = client.get(path)
        assert answer.status_code == 200, f"{path}: {answer.status_code}"
        seen[path] = answer.text if "text/html" in answer.headers["content-type"] else ""
        for href in re.findall(r'href="(/[^"#]*)', seen[path]):
            target = html.unescape(href)
            if target not in seen and not target.startswith("/static/"):
                queue.append(target)
    return seen


def test_no_page_shows_a_private_key_a_token_a_password_or_a_uds(
    client: httpx.Client, world: WebWorld
) -> None:
    pages = _crawl(client, [*OPERATOR_PAGES, *_public_pages(world)])
    assert len(pages) > 20
    secrets = _secrets(world)
    assert len(secrets) > 20
    for path, text in pages.items():
        assert "PRIVATE KEY" not in text, path
        for secret in secrets:
            assert secret not in text, f"{path} shows a secret"
        assert client.cookies["ironroot_session"] not in text, path


def test_every_link_resolves(client: httpx.Client, world: WebWorld) -> None:
    pages = _crawl(client, ["/"], limit=200)
    for needed in ("/fleet", "/log", "/reviews", "/keys", "/alerts", f"/fleet/nodes/{HELD}"):
        assert needed in pages


# --- what each page verifies -----------------------------------------------------------------


def test_the_fleet_counts_and_filters(client: httpx.Client) -> None:
    text = client.get("/fleet").text
    assert re.search(r'<span class="n">3</span>admitted', text)
    assert re.search(r'<span class="n">2</span>quarantined', text)
    assert re.search(r'<span class="n">1</span>pending', text)
    quarantined = client.get("/fleet", params={"status": "quarantined"}).text
    rows = re.findall(r'data-node="([^"]+)" data-status="([^"]+)"', quarantined)
    assert rows == [(ROGUE_FIRMWARE, "quarantined"), (HELD, "quarantined")]
    one = client.get("/fleet", params={"q": "node-0002"}).text
    assert re.findall(r'data-node="([^"]+)"', one) == ["node-0002"]
    assert "<svg" in text
    assert "Attestation results over time" in text


def _links(text: str) -> dict[str, str]:
    return dict(re.findall(r'data-link="([a-z]+)" data-status="([a-z]+)"', text))


def test_an_admitted_node_s_chain_of_trust_holds_link_by_link(client: httpx.Client) -> None:
    for node in ADMITTED:
        links = _links(client.get(f"/fleet/nodes/{node}").text)
        assert list(links) == [
            "fuses", "pfm", "firmware", "dice", "quote", "spdm", "ear", "credential", "keys",
        ]  # fmt: skip
        assert set(links.values()) == {"ok"}, (node, links)


def test_a_refused_admission_answer_anyone_sends_does_not_turn_a_node_red(
    world: WebWorld, tmp_path: Path
) -> None:
    """The admission endpoint is unauthenticated: a node's challenge answered with a quote that
    does not verify is refused, changes nothing of the node, and its EAR is kept as the node's
    latest. The chain of trust judges the EAR the registry names, so it stays green. (A fleet
    of its own: the session's is read by other processes.)"""
    from tests.fleet.admission_world import admission_world
    from tests.web.web_world import CHEAP_SCRYPT

    from ironroot.crypto import Algorithm
    from ironroot.fleet import (
        PLANES,
        AdmissionRequest,
        NodeEvidence,
        attest_node,
        ear_id_of,
        make_csr,
    )
    from ironroot.platform import AccountStore

    aw = admission_world(world.world)
    fleet, authority = aw.fleet(
        tmp_path / "fleet", 1, klass=aw.node_class(safe="medium", reviewed=(3.1,))
    )
    node = "node-0001"
    attest_node(fleet, node, now=NOW + dt.timedelta(minutes=10), authority=authority)
    admitted_on = fleet.record_of(node).ear_id
    nonce, _ = authority.challenge(NOW, client="203.0.113.9", node=node)
    keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
    forged = AdmissionRequest(
        node,
        nonce,
        NodeEvidence(node, b"not a quote", {}).encode(),
        {p: make_csr(k, node=node, plane=p) for p, k in keys.items()},
    )
    with pytest.raises(IronrootError):
        authority.admit(forged, now=NOW)
    assert fleet.record_of(node).ear_id == admitted_on
    assert ear_id_of(authority.ear(node)) != admitted_on  # the refusal's EAR is the latest
    data = tmp_path / "data"
    data.mkdir()
    (data / "dashboard.toml").write_text(f'[sources]\nfleet = "{fleet.directory}"\n')
    dashboard = Dashboard.open(data, clock=lambda: SEEN)
    dashboard.config.state_dir.mkdir(mode=0o700, exist_ok=True)
    accounts = AccountStore(dashboard.config.state_dir / "operators.json", kdf=CHEAP_SCRYPT)
    accounts.add(OPERATOR, PASSWORD, "ReadOnly")
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert log_in(client).status_code == 303
        text = client.get(f"/fleet/nodes/{node}").text
    assert set(_links(text).values()) == {"ok"}, _links(text)


def test_a_quarantined_node_shows_red_with_its_reason_and_the_failed_check(
    client: httpx.Client,
) -> None:
    text = client.get(f"/fleet/nodes/{ROGUE_FIRMWARE}").text
    links = _links(text)
    assert links["quote"] == "fail"
    assert links["ear"] == "fail"
    assert links["credential"] == "fail"
    assert links["keys"] == "fail"
    assert links["fuses"] == links["dice"] == links["spdm"] == "ok"
    # its RoT's last boot ran the rogue BMC bundle straight, not the platform's boot: no PFM
    # was measured, so the journal's PFM is not shown as the one the node enforces
    assert links["pfm"] == "unknown"
    assert "not measured: boot again" in text
    assert "failed: rot: reference-values" in text  # the check's name, in the picture
    assert 'id="quarantine"' in text
    assert "no logged reference value for runtime" in text
    assert "failed: node-not-admitted" in text
    assert "failed: ear-not-affirming" in text


def test_a_node_never_attested_is_grey_where_nothing_could_be_checked(
    client: httpx.Client,
) -> None:
    links = _links(client.get(f"/fleet/nodes/{PENDING}").text)
    assert links["fuses"] == links["pfm"] == links["firmware"] == links["dice"] == "ok"
    for link in ("quote", "spdm", "ear", "credential", "keys"):
        assert links[link] == "unknown", link


def test_an_operator_s_quarantine_breaks_the_credential_and_key_release_links(
    client: httpx.Client,
) -> None:
    links = _links(client.get(f"/fleet/nodes/{HELD}").text)
    assert links["ear"] == "ok"  # its attestation was good: an operator held it
    assert links["credential"] == "fail"
    assert links["keys"] == "fail"


def test_a_statement_s_receipt_is_verified_by_the_server(
    client: httpx.Client, world: WebWorld
) -> None:
    text = client.get(f"/log/trusted-log/entries/{world.review_entry}").text
    assert "Receipt verified" in text
    assert 'data-verified="true"' in text
    assert 'data-verified="false"' not in text
    assert "Inclusion proof" in text
    assert "signed by the log, same root" in text


def test_checkpoints_are_consistent_and_the_witness_cosignature_verifies(
    client: httpx.Client,
) -> None:
    trusted = client.get("/log/trusted-log/checkpoints").text
    assert "no split view" in trusted
    assert "row-bad" not in trusted
    ops = client.get("/log/ops-log/checkpoints").text
    assert "witness.example/w1" in ops
    assert "quorum met" in ops
    assert ">verified</span>" in ops


def test_a_review_dated_after_the_dashboard_s_now_is_not_verified(world: WebWorld) -> None:
    """The reviews page judges each review at the dashboard's clock, as every verifier does:
    one logged after now (plus the clock skew) is refused, not shown as verified — its
    receipt from the dashboard's future is the first refusal (before its report's date)."""

    def judged(dashboard: Dashboard) -> dict[tuple[str, int], dict[str, object]]:
        try:
            groups = dashboard.reviews()["groups"]
        finally:
            dashboard.close()
        return {(i["log"], i["row"].index): i for _digest, group in groups for i in group}

    now = judged(world.dashboard())
    early = judged(Dashboard.open(world.data, clock=lambda: dt.datetime(2026, 4, 1, tzinfo=dt.UTC)))
    verified = [key for key, item in now.items() if item["verified"]]
    assert verified
    for key in verified:
        assert not early[key]["verified"]
        assert str(early[key]["error"]).startswith("receipt-from-the-future: "), early[key]


def test_reviews_keys_and_alerts(client: httpx.Client) -> None:
    reviews = client.get("/reviews").text
    assert "Example Review Provider" in reviews
    assert "deployed: class node-7: bmc" in reviews
    assert ">verified</span>" in reviews
    assert "CWE-111" in reviews
    keys = client.get("/keys").text
    assert "Audit chain intact" in keys
    assert "db-key" in keys
    assert ">released</span>" in keys
    assert "refused: policy-claims" in keys
    alerts = client.get("/alerts").text
    assert "split view of split.example" in alerts
    assert "unannounced release" in alerts
    assert "pkg:firmware/acme/bmc" in alerts


def test_registrations_are_plotted(anon: httpx.Client) -> None:
    text = anon.get("/log").text
    assert "Registrations over time" in text
    assert "<rect" in text


# --- the verification fails where the data is wrong ------------------------------------------


@pytest.fixture
def log_copy(world: WebWorld, tmp_path: Path) -> Path:
    """A consistent copy of the trusted log's data directory (SQLite's backup)."""
    source = world.world.root / "trusted-log"
    copy = tmp_path / "log-copy"
    (copy / "keys").mkdir(parents=True)
    for name in ("ironroot.toml", "issuer0.pub.pem", "issuer1.pub.pem"):
        (copy / name).write_bytes((source / name).read_bytes())
    for name in ("checkpoint.pub.pem", "receipt-keys.cbor", "checkpoint.key"):
        (copy / "keys" / name).write_bytes((source / "keys" / name).read_bytes())
    with (
        contextlib.closing(sqlite3.connect(source / "log.sqlite3")) as src,
        contextlib.closing(sqlite3.connect(copy / "log.sqlite3")) as dst,
    ):
        src.backup(dst)
    return copy


def _reviews_page(world: WebWorld, root: Path, log: Path) -> str:
    """The reviews page, over HTTP, of a dashboard showing ``log`` and the world's fleet (its
    review providers), judged at the world's clock."""
    state = root / "dashboard"
    root.mkdir()
    state.mkdir(mode=0o700)
    for name in ("operators.json", "session.key"):
        shutil.copy2(world.data / "dashboard" / name, state / name)
    (root / "dashboard.toml").write_text(
        f'[sources]\nlogs = ["{log}"]\nfleet = "{world.data / "fleet"}"\n'
    )
    dashboard = Dashboard.open(root, clock=lambda: SEEN)
    try:
        with (
            ServerThread(create_dashboard_app(dashboard)) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            assert log_in(client).status_code == 303
            answer = client.get("/reviews")
    finally:
        dashboard.close()
    assert answer.status_code == 200
    return html.unescape(answer.text)


def _judged(page: str) -> dict[str, str | None]:
    """Each review on the reviews page by entry id: ``None`` when verified, else the error
    it shows."""
    judged: dict[str, str | None] = {}
    for item in page.split("<h3>")[1:]:
        entry = re.search(r"/entries/([0-9a-f]{64})", item)
        assert entry is not None, item
        if '<span class="badge ok">verified</span>' in item.split("</h3>")[0]:
            judged[entry.group(1)] = None
        else:
            banner = re.search(r'<div class="banner bad">([^<]*)</div>', item)
            assert banner is not None, item
            judged[entry.group(1)] = banner.group(1)
    return judged


def test_the_reviews_page_pins_the_log_s_service_issuer(
    log_copy: Path, world: WebWorld, tmp_path: Path
) -> None:
    # was: the reviews page verified a review's receipts with the log's receipt keys alone,
    # while the log's configuration names its service: a receipt naming another passed
    before = _judged(_reviews_page(world, tmp_path / "as-configured", log_copy))
    assert before[world.review_entry] is None
    verified = [entry for entry, error in before.items() if error is None]
    config = log_copy / "ironroot.toml"
    text = config.read_text()
    assert 'service_issuer = "https://transparency.example"' in text
    config.write_text(text.replace("https://transparency.example", "https://other-ts.example"))
    after = _judged(_reviews_page(world, tmp_path / "another-issuer", log_copy))
    assert set(after) == set(before)
    for entry in verified:
        error = after[entry]
        assert error is not None, entry
        assert error.startswith("untrusted-service: no receipt of the review of 'sha384:"), error
        assert error.endswith(
            "is by a trusted transparency service (the receipt is issued by "
            "'https://transparency.example', not by the transparency service "
            "'https://other-ts.example')"
        ), error


def test_a_tampered_receipt_signature_is_shown_unverified(log_copy: Path, world: WebWorld) -> None:
    with contextlib.closing(sqlite3.connect(log_copy / "log.sqlite3")) as db, db:
        rows = db.execute("SELECT size, name, value FROM batch_data").fetchall()
        for size, name, value in rows:
            db.execute(
                "UPDATE batch_data SET value = ? WHERE size = ? AND name = ?",
                (value[:-1] + bytes([value[-1] ^ 1]), size, name),
            )
    view = LogSource(log_copy).statement(world.review_entry)
    assert view.receipts
    assert not view.all_verified
    assert view.receipts[0].error is not None
    assert view.receipts[0].error.startswith("bad-signature")


def test_a_checkpoint_with_another_root_is_caught_as_inconsistent(log_copy: Path) -> None:
    source = LogSource(log_copy)
    with contextlib.closing(sqlite3.connect(log_copy / "log.sqlite3")) as db, db:
        sizes = [r[0] for r in db.execute("SELECT size FROM checkpoints ORDER BY size")]
        forged = sign_checkpoint(
            Checkpoint(source.origin, sizes[-2], bytes(32)),
            [
                NoteSigner(
                    source.origin,
                    PrivateKey.from_pem(layout.checkpoint_key_path(log_copy).read_bytes()),
                )
            ],
        )
        db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (forged, sizes[-2]))
    rows = {row.size: row for row in source.checkpoints()}
    assert rows[sizes[-2]].signed  # the log's key signed it: only consistency catches it
    assert rows[sizes[-2]].consistent is False or rows[sizes[-1]].consistent is False
    failed = [r for r in rows.values() if r.consistent is False]
    assert failed
    assert all(r.error and r.error.startswith("invalid-proof") for r in failed)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/fleet/nodes/node-9999", 404),
        ("/log/no-such-log", 404),
        ("/log/trusted-log/entries/" + "00" * 32, 404),
        ("/log/trusted-log/entries/not-hex", 404),
        ("/log/trusted-log?page=x", 400),
        ("/no/such/page", 404),
    ],
)
def test_errors_are_pages_with_their_status(client: httpx.Client, path: str, status: int) -> None:
    answer = client.get(path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert "Traceback" not in answer.text
    assert "<h1>" in answer.text


@pytest.mark.parametrize("around", ["%0d%0a", "%20", "%09", "%0a"])
@pytest.mark.parametrize("suffix", ["", "/statement.cose"])
def test_an_entry_id_is_64_hex_digits_and_nothing_around_them(
    anon: httpx.Client, world: WebWorld, around: str, suffix: str
) -> None:
    """``bytes.fromhex`` skips whitespace: an id with a line break before it named the entry,
    and the download then put the break in its Content-Disposition header (the server dropped
    the connection with no answer). Such an id is no entry: a 404 page."""
    answer = anon.get(f"/log/trusted-log/entries/{around}{world.review_entry}{suffix}")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "content-disposition" not in answer.headers
    good = anon.get(f"/log/trusted-log/entries/{world.review_entry}/statement.cose")
    assert good.status_code == 200
    assert good.headers["content-disposition"] == (
        f'attachment; filename="{world.review_entry[:16]}.cose"'
    )


def test_a_source_that_cannot_be_read_is_503_with_retry_after(
    log_copy: Path, tmp_path: Path
) -> None:
    (log_copy / "log.sqlite3").write_bytes(b"not a database" * 100)
    with ServerThread(create_dashboard_app(Dashboard.open(tmp_path))) as server:
        for page in ("/log/log-copy", "/log/log-copy/checkpoints"):
            answer = http_calls.get(server.url + page)
            assert answer.status_code == 503
            assert int(answer.headers["retry-after"]) >= 1
            assert answer.headers["content-type"].startswith("text/html")
            # an anonymous reader is not shown where the server keeps its files
            assert str(log_copy) not in answer.text
            assert str(tmp_path) not in answer.text
            assert "cannot be read now" in answer.text
        assert http_calls.get(server.url + "/log").status_code == 200


def test_a_public_page_names_the_server_s_files_to_operators_only(
    log_copy: Path, tmp_path: Path
) -> None:
    """The log pages are public, and the trouble they show inline (the log index's row of a
    store that cannot be read, the checkpoints page's witnessed checkpoint that cannot be
    read) named the file, with its path, to anyone: a reader who is not signed in is told
    the source cannot be read now, as by the 503 page; an operator sees the detail."""
    from tests.web.web_world import CHEAP_SCRYPT

    from ironroot.platform import AccountStore
    from ironroot.web._text import Trouble

    with (log_copy / "witnessed-checkpoint").open("wb") as note:
        note.truncate(2 << 20)  # over the 1 MiB the page reads
    dashboard = Dashboard.open(tmp_path)
    dashboard.config.state_dir.mkdir(mode=0o700, exist_ok=True)
    accounts = AccountStore(dashboard.config.state_dir / "operators.json", kdf=CHEAP_SCRYPT)
    accounts.add(OPERATOR, PASSWORD, "ReadOnly")
    witnessed = f"{log_copy / 'witnessed-checkpoint'} is larger than 1048576 bytes"
    stored = f"cannot open the log database {log_copy / 'log.sqlite3'}"
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as anon,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        page = anon.get("/log/log-copy/checkpoints")
        assert page.status_code == 200
        assert str(tmp_path) not in page.text
        assert html.escape(Trouble.PUBLIC) in page.text
        assert witnessed in operator.get("/log/log-copy/checkpoints").text
        (log_copy / "log.sqlite3").write_bytes(b"not a database" * 100)
        page = anon.get("/log")
        assert page.status_code == 200
        assert str(tmp_path) not in page.text
        assert html.escape(Trouble.PUBLIC) in page.text
        assert stored in operator.get("/log").text


def test_the_dashboard_changes_nothing_it_reads(client: httpx.Client, world: WebWorld) -> None:
    before = {
        p: p.stat().st_mtime_ns
        for p in world.fleet.directory.rglob("*")
        if p.is_file() and p.suffix not in (".db-shm", ".db-wal", ".lock") and p.name != ".lock"
    }
    for path in (*OPERATOR_PAGES, f"/fleet/nodes/{ROGUE_FIRMWARE}", f"/fleet/nodes/{HELD}"):
        assert client.get(path).status_code == 200
    after = {p: p.stat().st_mtime_ns for p in before}
    assert after == before


# --- mounted in fleet serve ------------------------------------------------------------------


def test_the_dashboard_mounts_under_the_fleet_s_admission_service(world: WebWorld) -> None:
    from ironroot.fleet import AdmissionAuthority, admission_app

    authority = AdmissionAuthority.open(world.fleet)
    dashboard = Dashboard.open(world.data, fleet=world.fleet.directory, clock=lambda: SEEN)
    app = admission_app(authority, mounts={"/dashboard": create_dashboard_app(dashboard)})
    with (
        ServerThread(app) as server,
        httpx.Client(base_url=server.url + "/dashboard") as client,
    ):
        assert client.get("/fleet").headers["location"] == "/dashboard/login?next=%2Ffleet"
        form = client.get("/login")
        assert 'action="/dashboard/login"' in form.text
        assert "Path=/dashboard" in form.headers["set-cookie"]
        answer = client.post(
            "/login",
            data={"user": OPERATOR, "password": PASSWORD, "csrf": login_token(form.text)},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/dashboard/"
        fleet = client.get("/fleet").text
        assert 'href="/dashboard/fleet/nodes/node-0001"' in fleet
        assert http_calls.get(server.url + "/fleet/ca").status_code == 200  # admission still there


def test_the_mounted_dashboard_s_prefix_without_its_slash_is_a_308_to_it(world: WebWorld) -> None:
    # A person typing https://fleet/dashboard gets the dashboard, not a CBOR 404 problem; the
    # Location is the fixed prefix and the query as it came: never another host or path.
    from ironroot.fleet import AdmissionAuthority, admission_app

    authority = AdmissionAuthority.open(world.fleet)
    dashboard = Dashboard.open(world.data, fleet=world.fleet.directory, clock=lambda: SEEN)
    app = admission_app(authority, mounts={"/dashboard": create_dashboard_app(dashboard)})
    with (
        ServerThread(app) as server,
        httpx.Client(base_url=server.url, follow_redirects=False) as browser,
    ):
        for method in ("GET", "HEAD"):
            answer = browser.request(method, "/dashboard", headers={"Accept": "text/html"})
            assert (answer.status_code, answer.headers["location"]) == (308, "/dashboard/")
        posted = browser.post("/dashboard", content=b"x")  # no page: the service's 404, as before
        assert (posted.status_code, "location" in posted.headers) == (404, False)
        queried = browser.get("/dashboard?next=%2Ffleet&x=//evil.example/%0d%0a")
        assert queried.status_code == 308
        assert queried.headers["location"] == "/dashboard/?next=%2Ffleet&x=//evil.example/%0d%0a"
        hostile = browser.get("/dashboard", headers={"Host": "evil.example"})
        assert (hostile.status_code, hostile.headers["location"]) == (308, "/dashboard/")
        assert browser.get("/dashboardx").status_code == 404  # no prefix of a name
        # then as /dashboard/ is: to the login page, for a person not signed in
        assert browser.get("/dashboard", follow_redirects=True).url.path == "/dashboard/login"


def test_the_fleet_s_public_metrics_say_nothing_of_the_mounted_dashboard(world: WebWorld) -> None:
    # The admission service's /metrics is anyone's; the dashboard's are an operator's, since
    # they tell who logs in, when and whether it failed. Counted by the admission service
    # too, the mounted dashboard's POST /login 401s and 303s were there for anyone to read.
    from ironroot.fleet import AdmissionAuthority, admission_app

    authority = AdmissionAuthority.open(world.fleet)
    dashboard = Dashboard.open(world.data, fleet=world.fleet.directory, clock=lambda: SEEN)
    app = admission_app(authority, mounts={"/dashboard": create_dashboard_app(dashboard)})
    with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
        form = client.get("/dashboard/login")
        refused = client.post(
            "/dashboard/login",
            data={"user": OPERATOR, "password": "not it", "csrf": login_token(form.text)},
        )
        assert refused.status_code == 401
        assert client.get("/fleet/ca").status_code == 200
        public = client.get("/metrics")
        assert public.status_code == 200
        assert set(re.findall(r'route="([^"]*)"', public.text)) == {"/fleet/ca"}
        assert client.get("/dashboard/metrics").status_code == 401  # the dashboard's own


def test_a_log_source_keeps_one_store_and_opens_again_when_the_file_is_replaced(
    log_copy: Path,
) -> None:
    source = LogSource(log_copy)
    with source.store() as first:
        size = first.state().size
    with source.store() as again:
        assert again is first  # kept across pages
    replacement = log_copy / "replacement.sqlite3"
    with (
        contextlib.closing(sqlite3.connect(log_copy / "log.sqlite3")) as src,
        contextlib.closing(sqlite3.connect(replacement)) as dst,
    ):
        src.backup(dst)
    replacement.replace(log_copy / "log.sqlite3")  # a restore: another file at the path
    with source.store() as reopened:
        assert reopened is not first
        assert reopened.state().size == size
    source.close()
    with source.store() as after_close:
        assert after_close is not reopened
    source.close()


def test_the_registrations_chart_reads_only_the_latest_batches(log_copy: Path) -> None:
    # The page that draws it is public: reading every batch's receipt data made its cost grow
    # with the log (some 300,000 batches at 10^7 entries).
    source = LogSource(log_copy)
    with source.store() as store:
        sizes = store.checkpoint_sizes()
    every = source.registrations(limit=len(sizes) + 5)
    assert sum(n for _, n in every) == sizes[-1]
    fresh = LogSource(log_copy)  # nothing read yet: the source keeps what it read
    with fresh.store() as store:
        reads: list[int] = []
        read = store.batch_data

        def counting(size: int) -> dict[str, bytes] | None:
            reads.append(size)
            return read(size)

        store.batch_data = counting  # type: ignore[method-assign]
        try:
            latest = fresh.registrations(limit=2)
        finally:
            del store.batch_data
    assert reads == sizes[-2:]
    assert latest == every[-2:]


def test_a_receipt_naming_another_issuer_than_the_service_s_is_shown_unverified(
    log_copy: Path, world: WebWorld
) -> None:
    assert LogSource(log_copy).statement(world.review_entry).all_verified
    # the receipt key signed it, but the service's configuration names another issuer
    config = log_copy / "ironroot.toml"
    text = config.read_text()
    assert 'service_issuer = "https://transparency.example"' in text
    config.write_text(text.replace("https://transparency.example", "https://other-ts.example"))
    view = LogSource(log_copy).statement(world.review_entry)
    assert view.receipts
    assert not view.all_verified
    assert view.receipts[0].error == (
        "untrusted-service: the receipt is issued by 'https://transparency.example', not by the "
        "transparency service 'https://other-ts.example'"
    )
