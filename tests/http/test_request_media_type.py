"""``require_media_type``: a request body's ``Content-Type`` (without parameters, in any case)
is one its endpoint takes, or the answer is a 415 problem (``UnsupportedMediaType``) before
the body is read; a request without one is taken as the endpoint's ``untyped`` type, or refused
when it has none."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ironroot.errors import UnsupportedMediaType
from ironroot.http import PROBLEM_JSON, guarded, problem_app, require_media_type

_log = logging.getLogger("test")
_JSON = "application/json"


def _post(
    headers: dict[str, str] | list[tuple[str, str]], *, untyped: str | None
) -> httpx.Response:
    read: list[bytes] = []

    async def handler(request: Request) -> Response:
        media = require_media_type(request, _JSON, "application/cbor", untyped=untyped)
        read.append(await request.body())
        return PlainTextResponse(media)

    app = problem_app([Route("/x", guarded(handler, _log), methods=["POST"])])

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            fields = list(headers.items()) if isinstance(headers, dict) else headers
            return await client.post(
                "/x", content=b"{}", headers=[("Accept", "application/json"), *fields]
            )

    response = asyncio.run(run())
    if response.status_code != 200:
        assert read == []  # refused before the body was read
    return response


@pytest.mark.parametrize(
    ("given", "media"),
    [
        ("application/json", _JSON),
        ("Application/JSON; charset=utf-8", _JSON),
        (" application/cbor ", "application/cbor"),
    ],
)
def test_a_type_the_endpoint_takes_is_answered_as_before(given: str, media: str) -> None:
    response = _post({"Content-Type": given}, untyped=None)
    assert (response.status_code, response.text) == (200, media)


@pytest.mark.parametrize(
    "given",
    ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", "application/*"],
)
def test_another_type_is_a_415_problem(given: str) -> None:
    response = _post({"Content-Type": given}, untyped=_JSON)
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert (problem["status"], problem["code"], problem["title"]) == (
        415,
        UnsupportedMediaType.code,
        "Unsupported Media Type",
    )
    assert problem["detail"] == "the request body must be application/json or application/cbor"


@pytest.mark.parametrize("headers", [{}, {"Content-Type": ""}], ids=["absent", "empty"])
def test_a_body_without_a_type_is_taken_as_untyped_or_refused(headers: dict[str, str]) -> None:
    assert _post(headers, untyped=_JSON).text == _JSON
    refused = _post(headers, untyped=None)
    assert (refused.status_code, refused.json()["code"]) == (415, "unsupported-media-type")


@pytest.mark.parametrize(
    "types",
    [
        ("application/json", "text/plain"),
        ("text/plain", "application/json"),
        ("application/json", "application/json"),
        ("application/json; charset=utf-8", ""),
    ],
)
@pytest.mark.parametrize("untyped", [None, _JSON])
def test_two_content_type_fields_are_a_415_problem(
    types: tuple[str, str], untyped: str | None
) -> None:
    # the first was taken: a proxy that believed the second saw another type of body
    response = _post([("Content-Type", types[0]), ("Content-Type", types[1])], untyped=untyped)
    assert response.status_code == 415
    assert response.json()["code"] == UnsupportedMediaType.code


@pytest.mark.parametrize("coding", ["gzip", "br", "identity, gzip", "x-private"])
@pytest.mark.parametrize("untyped", [None, _JSON])
def test_a_body_in_a_content_coding_is_a_415_problem_not_read_as_it_is(
    coding: str, untyped: str | None
) -> None:
    # Read as it is, a body its client says is gzip is not the body the client sent, nor the
    # one a proxy that decodes it saw (RFC 9110 §8.4.1: 415 for a coding not taken).
    response = _post({"Content-Type": _JSON, "Content-Encoding": coding}, untyped=untyped)
    assert response.status_code == 415
    problem = response.json()
    assert (problem["status"], problem["code"]) == (415, UnsupportedMediaType.code)
    assert problem["detail"] == f"the request body must not be in a content coding ({coding})"


@pytest.mark.parametrize("coding", ["identity", "Identity", ""])
def test_a_body_in_the_identity_coding_is_read(coding: str) -> None:
    response = _post({"Content-Type": _JSON, "Content-Encoding": coding}, untyped=None)
    assert (response.status_code, response.text) == (200, _JSON)


@pytest.mark.parametrize(
    "given",
    [
        "application/json; charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/json;charset=utf-8; q=x",
        "application/cbor; charset=utf-8",
    ],
)
def test_a_declared_charset_of_utf_8_is_read(given: str) -> None:
    response = _post({"Content-Type": given}, untyped=None)
    assert (response.status_code, response.text) == (200, given.split(";")[0])


@pytest.mark.parametrize(
    ("given", "charset"),
    [
        ("application/json; charset=latin-1", "latin-1"),
        ("application/json; charset=ISO-8859-1", "iso-8859-1"),
        ("application/json; charset=utf-16", "utf-16"),
        ('application/json; charset="utf-16le"', "utf-16le"),
        ("application/json; charset=utf8", "utf8"),
        ("application/json; charset=", ""),
        ("application/json; charset=no-such-charset", "no-such-charset"),
        ("application/json; charset=utf-8; charset=latin-1", "latin-1"),
        ("application/json; Charset = latin-1", "latin-1"),
        # CBOR's text is UTF-8 by definition (RFC 8949 §3.1): a client that declares another
        # encoding meant a body this does not read
        ("application/cbor; charset=latin-1", "latin-1"),
    ],
)
@pytest.mark.parametrize("untyped", [None, _JSON])
def test_a_declared_charset_other_than_utf_8_is_a_415_problem_not_read_as_utf_8(
    given: str, charset: str, untyped: str | None
) -> None:
    # RFC 8259 §8.1: JSON between systems is UTF-8; a body its client says is Latin-1 and
    # read as UTF-8 is not the text the client meant
    response = _post({"Content-Type": given}, untyped=untyped)
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert (problem["status"], problem["code"]) == (415, UnsupportedMediaType.code)
    assert problem["detail"] == f"the request body must be UTF-8 (charset={charset} given)"
