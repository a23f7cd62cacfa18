"""``decode_request_map``: a JSON request is I-JSON (RFC 7493) or ``MalformedInput``, as a CBOR
one with duplicate keys or invalid text is."""

from __future__ import annotations

import pytest

from ironroot.errors import MalformedInput
from ironroot.http import decode_request_map

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
