"""``decode_request_map``: a JSON request is I-JSON (RFC 7493) or ``MalformedInput``, as a CBOR
one with duplicate keys or invalid text is."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from starlette.requests import Request

from ironroot.errors import MalformedInput, Overloaded
from ironroot.http import challenge_handler, decode_request_map

_NOT_I_JSON = {
    "duplicate member": b'{"a": 1, "a": 2}',
    "duplicate member, nested": b'{"a": [{"b": 1, "b": 1}]}',
    "NaN": b'{"a": NaN}',
    "Infinity": b'{"a": [Infinity]}',
    "a number past a double": b'{"a": 1e400}',
    "lone surrogate": b'{"a": "\\ud800"}',
    "lone surrogate, nested": b'{"a": {"b": ["x", "\\udfff"]}}',
    "lone surrogate name": b'{"\\udc80": 1}',
    "not UTF-8": b'{"a": "\xff"}',
    "UTF-16": '{"a": 1}'.encode("utf-16"),
    "nested too deep": b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "not a map": b"[1]",
    "empty": b"",
}


@pytest.mark.parametrize("body", _NOT_I_JSON.values(), ids=_NOT_I_JSON.keys())
def test_a_json_request_that_is_not_an_i_json_object_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedInput):
        decode_request_map(body)


def test_an_i_json_object_is_read_as_is() -> None:
    body = '{"a": [1, 2.5, "\\ud83d\\ude00", "é"], "b": {"c": null}}'.encode()
    assert decode_request_map(body) == {"a": [1, 2.5, "\U0001f600", "é"], "b": {"c": None}}


def test_a_cbor_request_with_a_duplicate_key_is_malformed_too() -> None:
    with pytest.raises(MalformedInput):
        decode_request_map(b"\xa2aa\x01aa\x02", cbor=True)


def _challenge_form(*accept: str) -> str:
    """The media type ``challenge_handler`` answers with for these ``Accept`` fields."""
    headers = [(b"accept", field.encode()) for field in accept]
    request = Request({"type": "http", "headers": headers, "client": ("127.0.0.1", 1)})
    handler = challenge_handler(lambda host: (b"\x01" * 16, 1_900_000_000))
    answer = asyncio.run(handler(request))
    assert answer.status_code == 201
    return answer.headers["content-type"]


@pytest.mark.parametrize(
    ("accept", "form"),
    [
        ((), "application/json"),
        (("application/cbor",), "application/cbor"),
        # media types in any case (RFC 9110 §8.3.1): this was JSON
        (("APPLICATION/CBOR",), "application/cbor"),
        # q=0 is "not acceptable" (RFC 9110 §12.5.1): this was CBOR
        (("application/cbor;q=0, application/json",), "application/json"),
        # another media type that holds the text "application/cbor": this was CBOR
        (("application/cbor-seq",), "application/json"),
        # every Accept field counts (RFC 9110 §5.3): only the first was read
        (("application/json", "application/cbor"), "application/cbor"),
    ],
)
def test_a_challenge_is_cbor_exactly_when_cbor_is_acceptable(
    accept: tuple[str, ...], form: str
) -> None:
    assert _challenge_form(*accept) == form


@pytest.mark.parametrize("blocking", [False, True])
def test_a_challenge_issued_by_a_coroutine_function_is_awaited(blocking: bool) -> None:
    """``issue`` may be a coroutine function (the key release service's, which waits on the
    event loop for the HSM's commit of a refusal); its nonce is answered as a plain one's, and
    what it raises is the handler's."""
    issued: list[str | None] = []

    async def issue(client: str | None) -> tuple[bytes, int]:
        await asyncio.sleep(0)
        issued.append(client)
        if client is None:
            raise Overloaded("no more challenges", code="challenge-rate")
        return b"\x02" * 16, 1_900_000_000

    handler = challenge_handler(issue, blocking=blocking)
    request = Request({"type": "http", "headers": [], "client": ("192.0.2.7", 1)})
    answer = asyncio.run(handler(request))
    assert answer.status_code == 201
    assert json.loads(bytes(answer.body)) == {
        "nonce": base64.urlsafe_b64encode(b"\x02" * 16).rstrip(b"=").decode(),
        "expires": 1_900_000_000,
    }
    with pytest.raises(Overloaded) as refused:
        asyncio.run(handler(Request({"type": "http", "headers": []})))
    assert refused.value.code == "challenge-rate"
    assert issued == ["192.0.2.7", None]
