"""Every 503 and 429 problem says when to come back (``Retry-After``), whatever error made it:
a fence refusal or a plain store error as much as an unreachable store (RFC 9110 §10.2.3)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.errors import (
    HsmErrorState,
    IronrootError,
    MalformedInput,
    NotFound,
    Overloaded,
    StaleBatch,
    StorageError,
    StoreUnavailable,
    TooManyAttempts,
)
from ironroot.http import guarded, problem_app

_log = logging.getLogger("test")


def _answer(exc: IronrootError) -> httpx.Response:
    async def handler(request: Request) -> Response:
        raise exc

    app = problem_app([Route("/x", guarded(handler, _log), methods=["GET"])])

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return await client.get("/x", headers={"Accept": "application/json"})

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("exc", "status", "retry_after"),
    [
        (StoreUnavailable("the database is down", retry_after=7), 503, "7"),
        (Overloaded("too many waiting", retry_after=3), 503, "3"),
        (StaleBatch("a newer writer moved the log"), 503, "1"),
        (StorageError("the store failed"), 503, "1"),
        (HsmErrorState("a self-test failed"), 503, "1"),
        (TooManyAttempts("slow down", retry_after=30), 429, "30"),
    ],
)
def test_every_503_and_429_problem_carries_retry_after(
    exc: IronrootError, status: int, retry_after: str
) -> None:
    response = _answer(exc)
    assert response.status_code == status
    assert response.headers["Retry-After"] == retry_after
    assert response.json()["code"] == exc.code


@pytest.mark.parametrize("exc", [MalformedInput("bad"), NotFound("none")])
def test_other_problems_do_not_carry_retry_after(exc: IronrootError) -> None:
    response = _answer(exc)
    assert response.status_code == exc.http_status
    assert "Retry-After" not in response.headers
