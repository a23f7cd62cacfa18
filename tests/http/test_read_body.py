"""``read_body``: a request body read against a limit, whatever its ``Content-Length`` says.

The declared length only lets a body over the limit be refused before it is read; a header
that is not a length in ASCII digits is no reason to fail: the body is read and counted."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hypothesis_budget import examples
from ironroot.http import PROBLEM_JSON, guarded, problem_app, read_body

_log = logging.getLogger("test")
_LIMIT = 8


def _post(body: bytes, length: bytes) -> httpx.Response:
    async def handler(request: Request) -> Response:
        return Response(await read_body(request, _LIMIT))

    app = problem_app([Route("/x", guarded(handler, _log), methods=["POST"])])

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            headers = {"Accept": "application/json", "Content-Length": length}
            return await client.post("/x", content=body, headers=headers)

    return asyncio.run(run())


@pytest.mark.parametrize("length", ["²", "¹²³", "٣"])
def test_a_length_in_digits_other_than_ascii_is_not_believed(length: str) -> None:
    # "²".isdigit() is true and int("²") a ValueError: it was a 500 problem
    response = _post(b"body", length.encode("latin-1", "replace"))
    assert (response.status_code, response.content) == (200, b"body")


_LATIN1 = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=3)


@settings(max_examples=examples(100), deadline=None)
@given(_LATIN1.filter(lambda text: not (text.isascii() and text.isdigit())))
def test_a_length_that_is_not_ascii_digits_never_fails_the_request(length: str) -> None:
    assert _post(b"body", length.encode("latin-1")).status_code == 200
    response = _post(b"x" * (_LIMIT + 1), length.encode("latin-1"))
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "payload-too-large"


def test_a_declared_length_over_the_limit_is_refused_before_the_body() -> None:
    response = _post(b"x" * (_LIMIT + 1), str(_LIMIT + 1).encode())
    assert response.status_code == 413
    assert response.json()["detail"] == f"the request is {_LIMIT + 1} bytes; the limit is {_LIMIT}"
