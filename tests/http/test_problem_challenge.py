"""The challenge of a problem (``ironroot.http.error_response``): ``WWW-Authenticate: Bearer``
on a ``401`` for a missing or wrong token only. A client certificate refused on a mutual-TLS
plane (``CredentialRejected``) is no bearer token a client could present instead: its ``401``
names no scheme; and a ``403`` or a ``429`` (``RoleNotPermitted``, ``IdentityLocked``,
``TooManyAttempts``, all ``Unauthorized`` by type) asks for no credentials at all."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.errors import (
    CredentialRejected,
    IdentityLocked,
    IronrootError,
    RoleNotPermitted,
    TooManyAttempts,
    Unauthorized,
)
from ironroot.http import PROBLEM_JSON, Handler, guarded, problem_app

_log = logging.getLogger("test")


def _get(
    wrap: Callable[[Handler], Handler], exc: IronrootError, base_url: str = "http://svc"
) -> httpx.Response:
    """``GET <base_url>/x`` of an app whose one route, wrapped by ``wrap``, raises ``exc``."""

    async def handler(request: Request) -> Response:
        raise exc

    app = problem_app([Route("/x", wrap(handler), methods=["GET"])])

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            return await client.get("/x", headers={"Accept": PROBLEM_JSON})

    return asyncio.run(run())


def _answer(exc: IronrootError) -> httpx.Response:
    return _get(lambda handler: guarded(handler, _log), exc)


def test_a_missing_token_is_a_401_that_asks_for_a_bearer_token() -> None:
    answer = _answer(Unauthorized("no token", code="token-missing"))
    assert answer.status_code == 401
    assert answer.headers.get_list("www-authenticate") == ["Bearer"]


def test_a_refused_client_certificate_is_a_401_that_asks_for_no_bearer_token() -> None:
    answer = _answer(CredentialRejected("no client certificate", code="credential-missing"))
    assert answer.status_code == 401
    assert answer.json()["code"] == "credential-missing"
    assert "www-authenticate" not in answer.headers


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (RoleNotPermitted("a data-plane credential", code="wrong-plane"), 403),
        (IdentityLocked("locked"), 403),
        (TooManyAttempts("slow down", retry_after=7), 429),
    ],
)
def test_a_403_or_429_asks_for_no_credentials(exc: IronrootError, status: int) -> None:
    answer = _answer(exc)
    assert answer.status_code == status
    assert "www-authenticate" not in answer.headers


def test_a_service_that_takes_basic_asks_for_basic_on_a_401_only() -> None:
    basic = 'Basic realm="admin", charset="UTF-8"'

    def answer(exc: IronrootError) -> httpx.Response:
        return _get(lambda handler: guarded(handler, _log, challenge=basic), exc)

    assert answer(Unauthorized("no credential")).headers.get_list("www-authenticate") == [basic]
    assert "www-authenticate" not in answer(RoleNotPermitted("not an officer")).headers
    assert "www-authenticate" not in answer(CredentialRejected("no certificate")).headers


def test_a_service_may_choose_its_challenge_per_request() -> None:
    basic = 'Basic realm="admin", charset="UTF-8"'
    seen: list[str] = []

    def over_tls(request: Request) -> str | None:
        seen.append(request.url.path)
        return basic if request.url.scheme == "https" else None

    def answer(exc: IronrootError, base_url: str) -> httpx.Response:
        return _get(lambda handler: guarded(handler, _log, challenge=over_tls), exc, base_url)

    tls = answer(Unauthorized("no credential"), "https://svc")
    assert tls.status_code == 401
    assert tls.headers.get_list("www-authenticate") == [basic]
    plain = answer(Unauthorized("no credential"), "http://svc")
    assert plain.status_code == 401
    assert "www-authenticate" not in plain.headers
    assert seen == ["/x", "/x"]
    # a 403 asks for no credential whatever the request: the callable is not asked
    assert "www-authenticate" not in answer(RoleNotPermitted("no"), "https://svc").headers
    assert seen == ["/x", "/x"]


@pytest.mark.parametrize(
    ("exc", "challenge"),
    [
        (Unauthorized("no token", code="token-missing"), "Bearer"),
        (RoleNotPermitted("a read-only token"), None),
        (IdentityLocked("locked"), None),
        (TooManyAttempts("slow down", retry_after=7), None),
    ],
)
def test_the_cts_api_asks_for_a_bearer_token_on_a_401_only(
    exc: IronrootError, challenge: str | None
) -> None:
    from ironroot.transparency._cts import _cts_errors

    answer = _get(_cts_errors, exc)
    assert answer.status_code == exc.http_status
    assert answer.headers.get("www-authenticate") == challenge
