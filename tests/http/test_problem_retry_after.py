"""Every 503 and 429 problem says when to come back (``Retry-After``), whatever error made it:
a fence refusal or a plain store error as much as an unreachable store (RFC 9110 §10.2.3); and
so does ``/ready`` when it answers 503."""

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
    ConfigError,
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
from ironroot.http import ServiceInfo, guarded, problem_app

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


def _ready(*failures: IronrootError) -> httpx.Response:
    """``GET /ready`` of a service with a passing check and one check per failure."""

    def failing(exc: IronrootError) -> Callable[[], None]:
        def check() -> None:
            raise exc

        return check

    checks = {"fine": lambda: None} | {f"check{n}": failing(e) for n, e in enumerate(failures)}
    app = problem_app([], ServiceInfo("svc", "a service", checks=checks))

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return await client.get("/ready")

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("failures", "retry_after"),
    [
        ((ConfigError("no verifier installed"),), "1"),
        ((HsmErrorState("a self-test failed"),), "1"),
        ((StoreUnavailable("the database is down", retry_after=7),), "7"),
        ((ConfigError("no keys"), StoreUnavailable("down", retry_after=5)), "5"),  # the longest
    ],
    ids=["config", "HSM", "store", "the longest of two"],
)
def test_a_ready_check_failing_is_503_with_retry_after(
    failures: tuple[IronrootError, ...], retry_after: str
) -> None:
    response = _ready(*failures)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == retry_after
    body = response.json()
    assert (body["status"], body["checks"]["fine"]) == ("not ready", "ok")
    assert body["checks"]["check0"] == f"{failures[0].code}: {failures[0].title}"
    assert failures[0].detail not in response.text


def test_a_failing_check_s_detail_goes_to_the_log_not_to_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``/ready`` answers anyone, and a check's error may name the server's files: it
    answered ``storage: cannot open the log database /srv/ironroot/log.db: …``. It says
    ``code: title`` now; the detail is logged once (again when it changes) for the operator."""
    secret = "/srv/ironroot/private/log.db"
    failures = [StorageError(f"cannot open the log database {secret}: disk I/O error")]

    def check() -> None:
        if failures:
            raise failures[0]

    app = problem_app([], ServiceInfo("svc", "a service", checks={"store": check}))

    async def run(times: int) -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return [await client.get("/ready") for _ in range(times)]

    with caplog.at_level(logging.INFO, logger="ironroot.ready"):
        answers = asyncio.run(run(3))
        failures[:] = [StoreUnavailable(f"{secret} is locked", code="store-unavailable")]
        answers += asyncio.run(run(1))
        failures.clear()
        answers += asyncio.run(run(2))
    assert [a.status_code for a in answers] == [503, 503, 503, 503, 200, 200]
    assert [a.json()["checks"]["store"] for a in answers] == [
        "storage: Storage Error",
        "storage: Storage Error",
        "storage: Storage Error",
        "store-unavailable: Service Unavailable",
        "ok",
        "ok",
    ]
    assert not any(secret in a.text for a in answers)
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "ironroot.ready"]
    assert logged == [
        (
            logging.WARNING,
            f"svc: readiness check store fails: storage: cannot open the log database {secret}:"
            " disk I/O error",
        ),
        (
            logging.WARNING,
            f"svc: readiness check store fails: store-unavailable: {secret} is locked",
        ),
        (logging.INFO, "svc: readiness check store passes again"),
    ]


def test_a_code_from_another_service_s_problem_is_not_repeated() -> None:
    """An error made from another service's problem carries that service's ``code`` text:
    ``/ready`` names its class's code instead."""
    response = _ready(StorageError("down", code="see /etc/ironroot/secret.toml"))
    assert response.json()["checks"]["check0"] == "storage: Storage Error"


def test_ready_without_a_failing_check_has_no_retry_after() -> None:
    response = _ready()
    assert response.status_code == 200
    assert "Retry-After" not in response.headers


def test_every_retry_later_error_says_when_at_least_one_second_ahead() -> None:
    """The refusals that say when to come back share one rule: the class's default unless
    given, never below one second (a 0 or negative wait would ask for an immediate retry)."""
    import ironroot.errors as errors

    kinds = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.RetryLater)
    ]
    assert {k.__name__ for k in kinds} >= {
        "RetryLater",
        "StoreUnavailable",
        "Overloaded",
        "ClockSkew",
        "TooManyAttempts",
    }
    for kind in kinds:
        assert kind("x").retry_after == kind.default_retry_after >= 1
        assert kind("x", retry_after=7).retry_after == 7
        assert kind("x", retry_after=0).retry_after == 1
        assert kind("x", retry_after=-5).retry_after == 1
    assert errors.ClockSkew("x").retry_after == 30
    assert errors.StoreUnavailable("x").retry_after == 1
