"""Starlette's 405 for a method the HTTP parser knows, in every ``problem_app`` service: a
problem with a sorted ``Allow`` and the security headers of the protocol's own refusals."""

from __future__ import annotations

import asyncio
import logging

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.http import PROBLEM_JSON, guarded, problem_app
from ironroot.witness import Cosigner, MemoryWitnessStore, Witness, create_witness_app

_log = logging.getLogger("test")
_SECURITY = {  # those of the server's own refusals (ironroot.http._server.REFUSAL_HEADERS)
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cache-control": "no-store",
}


def _request(app: object, method: str, path: str) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            return await client.request(method, path, headers={"Accept": PROBLEM_JSON})

    return asyncio.run(run())


def _assert_405(answer: httpx.Response, allow: str) -> None:
    assert answer.status_code == 405
    assert answer.headers["allow"] == allow
    for name, value in _SECURITY.items():
        assert answer.headers[name] == value
    assert answer.headers["content-type"] == PROBLEM_JSON
    problem = answer.json()
    assert (problem["title"], problem["status"], problem["code"]) == (
        "Method Not Allowed",
        405,
        "http",
    )


def test_a_405_allow_is_sorted_and_carries_the_security_headers() -> None:
    async def handler(request: Request) -> Response:
        return Response(b"")

    methods = ["PUT", "POST", "GET", "DELETE", "OPTIONS"]
    app = problem_app([Route("/x", guarded(handler, _log), methods=methods)])
    for method in ("TRACE", "PATCH"):
        _assert_405(_request(app, method, "/x"), "DELETE, GET, HEAD, OPTIONS, POST, PUT")


def test_the_witness_405_is_sorted_and_carries_the_security_headers() -> None:
    name = "witness.example/w"
    witness = Witness(
        name, [Cosigner(name, PrivateKey.generate(Algorithm.ED25519))], [], MemoryWitnessStore()
    )
    app = create_witness_app(witness)
    _assert_405(_request(app, "TRACE", "/add-checkpoint"), "POST")
    _assert_405(_request(app, "PATCH", "/witness"), "GET, HEAD")


def test_every_problem_carries_the_security_headers() -> None:
    """Not only the 405: a route's typed refusal, an unknown path's 404 and a 500 problem
    carry the refusal headers too (a problem is never sniffed, framed or cached)."""
    from ironroot.errors import NotFound

    async def refuses(request: Request) -> Response:
        raise NotFound("no such thing")

    async def breaks(request: Request) -> Response:
        raise RuntimeError("a bug")

    app = problem_app(
        [Route("/gone", guarded(refuses, _log)), Route("/bug", guarded(breaks, _log))]
    )
    for path, status in (("/gone", 404), ("/nowhere", 404), ("/bug", 500)):
        answer = _request(app, "GET", path)
        assert answer.status_code == status
        assert answer.headers["content-type"] == PROBLEM_JSON
        for name, value in _SECURITY.items():
            assert answer.headers[name] == value, (path, name)
