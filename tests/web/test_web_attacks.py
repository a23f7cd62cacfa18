"""The dashboard attacked as a web attacker would, over real HTTP: headers on every kind of
answer, open redirects, session fixation, cross-site logouts, hostile paths, queries and form
values. These held when they were written; each fails if its defence goes."""

from __future__ import annotations

import re
import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from tests.web.conftest import log_in, login_token
from tests.web.web_world import OPERATOR, PASSWORD, WebWorld

from ironroot.http import ServerThread
from ironroot.web import Dashboard, LoginThrottle, create_dashboard_app

pytestmark = pytest.mark.integration

HOSTILE = '"><script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'


EXPECTED_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def _assert_security_headers(answer: httpx.Response) -> None:
    for name, value in EXPECTED_HEADERS.items():
        assert answer.headers.get(name) == value, (answer.request.url, name)


def test_every_kind_of_answer_carries_every_security_header(world: WebWorld) -> None:
    dashboard = world.dashboard()
    dashboard.throttle = LoginThrottle(1, 60, clock=lambda: 0.0)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as anon,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        answers = [
            operator.get("/fleet"),  # an operator's page: never cached either
            operator.get(f"/log/trusted-log/entries/{world.review_entry}/statement.cose"),
            anon.get("/fleet"),  # 303 to the login
            anon.get("/no-such-page"),  # 404
            anon.get("/logout"),  # 405
            anon.post("/login", data={"user": OPERATOR, "password": PASSWORD}),  # 403
            log_in(anon, password="not the password at all"),  # 401
            log_in(anon),  # 429: one failure is the limit here
        ]
        assert [a.status_code for a in answers] == [200, 200, 303, 404, 405, 403, 401, 429]
        for answer in answers:
            _assert_security_headers(answer)


@pytest.mark.parametrize(
    "target",
    [
        "javascript:alert(1)",
        "//evil.example/x",
        "/\\evil.example",
        "/\t/evil.example",
        "\\\\evil.example",
        "https:evil.example",
        "https://evil.example/",
        "/\r\nSet-Cookie: planted=1",
    ],
)
def test_the_page_after_login_is_never_another_site(anon: httpx.Client, target: str) -> None:
    token = login_token(anon.get("/login").text)
    answer = anon.post(
        "/login", data={"user": OPERATOR, "password": PASSWORD, "csrf": token, "next": target}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    assert "planted" not in answer.headers.get("set-cookie", "")
    again = anon.get("/login", params={"next": target})  # signed in: straight on
    assert again.status_code == 303
    assert again.headers["location"] == "/"


def test_a_session_id_planted_before_the_login_is_never_the_session(served: str) -> None:
    with httpx.Client(base_url=served) as victim:
        issued = []
        for planted in ("planted-by-the-attacker", "e30.AAAA"):
            victim.cookies.clear()
            victim.cookies.set("ironroot_session", planted)
            answer = log_in(victim)
            assert answer.status_code == 303
            issued.append(answer.cookies["ironroot_session"])
            assert issued[-1] != planted
            assert victim.get("/fleet").status_code == 200
        assert issued[0] != issued[1]  # the same operator, the same second: a new session


def test_logging_out_from_another_site_or_by_get_is_refused(client: httpx.Client) -> None:
    page = client.get("/fleet").text
    token = re.search(r'action="/logout">\s*<input type="hidden" name="csrf" value="([^"]+)"', page)
    assert token is not None
    cross = client.post(
        "/logout", data={"csrf": token.group(1)}, headers={"origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    assert client.get("/logout").status_code == 405
    assert client.get("/fleet").status_code == 200  # still signed in


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/fleet", "GET, HEAD"), ("/login", "GET, HEAD, POST"), ("/logout", "POST")],
)
def test_a_405_names_the_allowed_methods_sorted(
    client: httpx.Client, path: str, allowed: str
) -> None:
    # was: a 405 at /login said "Allow: GET, HEAD", though the login form is POSTed there
    # (RFC 9110 §15.5.6: the methods the resource supports, all of them)
    for method in ("TRACE", "PATCH", "DELETE", "OPTIONS"):
        answer = client.request(method, path)
        assert answer.status_code == 405
        assert answer.headers["allow"] == allowed  # Starlette's order is a set's
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_hostile_login_fields_are_escaped_in_the_form_that_echoes_them(
    anon: httpx.Client,
) -> None:
    page = anon.get("/login", params={"next": "/" + HOSTILE})
    assert HOSTILE not in page.text
    assert 'name="next" value="/&#34;&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;' in page.text
    token = login_token(page.text)
    refused = anon.post("/login", data={"user": HOSTILE, "password": "x" * 20, "csrf": token})
    assert refused.status_code == 401
    assert HOSTILE not in refused.text
    assert "<script>window.__pwned" not in refused.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/log/trusted-log?page=-5", 200),  # clamped to the first page
        ("/log/trusted-log?page=99999999999999999999999", 200),  # clamped to the last
        ("/log/trusted-log?page=" + "9" * 5000, 400),  # more digits than int() takes
        ("/log/trusted-log?page=%ff%fe", 400),
        ("/log/%ff", 404),
        ("/log/..%2f..%2fetc", 404),
        ("/log/trusted-log/entries/%ff/statement.cose", 404),
        ("/fleet/nodes/%00", 404),
        ("/fleet/nodes/%ff", 404),
        ("/fleet?status=%ff&class=%00&q=%ff%fe", 200),
    ],
)
def test_hostile_paths_and_queries_are_pages_with_a_4xx_never_a_500(
    client: httpx.Client, path: str, status: int
) -> None:
    answer = client.get(path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert "Traceback" not in answer.text


@pytest.mark.parametrize(
    "request_line", [b"GET /log/\xff\xfe HTTP/1.1", b"GET /log?\xff=\xfe HTTP/1.1"]
)
def test_raw_bytes_that_are_not_utf8_in_the_target_are_a_400(
    served: str, request_line: bytes
) -> None:
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert b"Traceback" not in raw


def test_a_huge_password_is_refused_before_it_is_hashed(anon: httpx.Client) -> None:
    token = login_token(anon.get("/login").text)
    huge = anon.post("/login", data={"user": OPERATOR, "password": "x" * 100_000, "csrf": token})
    assert huge.status_code == 413
    token = login_token(huge.text)  # the refusal is the form again, with a fresh token
    long = anon.post("/login", data={"user": OPERATOR, "password": "x" * 7000, "csrf": token})
    assert long.status_code == 401
    assert "unknown user or wrong password" in long.text


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/json", "multipart/form-data; boundary=x", "application/cbor"],
)
def test_a_login_or_logout_that_is_not_a_url_encoded_form_is_a_415(
    served: str, content_type: str
) -> None:
    with httpx.Client(base_url=served, follow_redirects=False, timeout=30) as browser:
        token = login_token(browser.get("/login").text)
        fields = {"user": OPERATOR, "password": PASSWORD, "csrf": token, "next": "/"}
        body = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
        # a body a form would send, the right token and password: not a form all the same
        login = browser.post("/login", content=body, headers={"content-type": content_type})
        assert login.status_code == 415, login.text
        assert "the request body must be application/x-www-form-urlencoded" in login.text
        assert "ironroot_session" not in browser.cookies
        assert browser.get("/fleet").status_code == 303  # not signed in
        token = login_token(login.text)  # the refusal is the form again, with a fresh token
        assert log_in_with(browser, token).status_code == 303
        page = browser.get("/fleet").text
        found = re.search(
            r'action="/logout">\s*<input type="hidden" name="csrf" value="([^"]+)"', page
        )
        assert found is not None
        logout = browser.post(
            "/logout", content=f"csrf={found.group(1)}", headers={"content-type": content_type}
        )
        assert logout.status_code == 415
        assert "the request body must be application/x-www-form-urlencoded" in logout.text
        assert browser.get("/fleet").status_code == 200  # still signed in


def log_in_with(browser: httpx.Client, token: str) -> httpx.Response:
    fields = {"user": OPERATOR, "password": PASSWORD, "csrf": token, "next": "/"}
    return browser.post("/login", data=fields)


def test_a_logout_form_that_is_not_utf8_is_a_400_not_a_403(client: httpx.Client) -> None:
    answer = client.post(
        "/logout",
        content=b"csrf=%ff\xff",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400
    assert "the form is not URL-encoded UTF-8" in answer.text
    assert client.get("/fleet").status_code == 200


@pytest.mark.parametrize("target", ["/../metrics-of-another-app", "/%2e%2e/admission", "/fleet/.."])
def test_the_page_after_login_never_leaves_the_dashboard_s_prefix(
    dashboard: Dashboard, target: str
) -> None:
    app = Starlette(routes=[Mount("/dashboard", app=create_dashboard_app(dashboard))])
    with (
        ServerThread(app, name="mounted") as server,
        httpx.Client(base_url=server.url + "/dashboard", follow_redirects=False) as browser,
    ):
        form = browser.get("/login")
        answer = browser.post(
            "/login",
            data={
                "user": OPERATOR,
                "password": PASSWORD,
                "csrf": login_token(form.text),
                "next": target,
            },
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/dashboard/"
        again = browser.get("/login", params={"next": target})  # signed in: straight there
        assert again.status_code == 303
        assert again.headers["location"] == "/dashboard/"


def test_a_public_404_does_not_repeat_a_long_text_from_the_link(anon: httpx.Client) -> None:
    """A link to /log/<text> is a page of the dashboard's own origin, public, with the text in
    its red banner: whole, a notice anyone can write ("your session has expired: log in at
    …"). The name is shown cut to 64 characters, enough to tell which log was asked for."""
    notice = "Security notice from the operators: your account was locked, log in again at "
    answer = anon.get("/log/" + notice + "https-phish.example-login")
    assert answer.status_code == 404
    assert f"no log &#39;{notice[:64]}…&#39; on this dashboard" in answer.text
    assert "phish" not in answer.text


def test_a_404_for_an_unknown_node_does_not_repeat_a_long_text_from_the_link(
    anon: httpx.Client,
) -> None:
    """As for a log's name: a link to /fleet/nodes/<text> sends an operator to the login and,
    once signed in, to that page, with the text in its red banner on the dashboard's origin.
    A node's id is at most 64 characters, so 64 tell which node was asked for."""
    notice = "Security notice from the operators: your account was locked, log in again at "
    link = "/fleet/nodes/" + notice + "https-phish.example-login"
    token = login_token(anon.get("/login").text)
    signed_in = anon.post(
        "/login", data={"user": OPERATOR, "password": PASSWORD, "csrf": token, "next": link}
    )
    assert signed_in.status_code == 303
    answer = anon.get(signed_in.headers["location"])
    assert answer.status_code == 404
    assert f"no node &#39;{notice[:64]}…&#39; in the fleet" in answer.text
    assert "phish" not in answer.text


def test_a_login_through_a_tls_proxy_the_dashboard_does_not_trust_says_so(
    anon: httpx.Client,
) -> None:
    """Behind a proxy that ends TLS, a browser's ``Origin`` is https://<host> while the
    dashboard, told nothing, sees http://<host>: the login is refused (the origin differs),
    and the refusal says what is wrong and what to do, not only "not from this dashboard"."""
    token = login_token(anon.get("/login").text)
    netloc = anon.base_url.netloc.decode()
    answer = anon.post(
        "/login",
        data={"user": OPERATOR, "password": PASSWORD, "csrf": token},
        headers={"origin": f"https://{netloc}"},
    )
    assert answer.status_code == 403
    assert (
        f"the form was sent from https://{netloc}, and this dashboard is served as "
        f"http://{netloc}: behind a proxy that ends TLS, name the proxy in [server] "
        "trusted_proxies"
    ) in answer.text
    assert not any("ironroot_session=" in h for h in answer.headers.get_list("set-cookie"))
