"""``unchecked_protected_header``: the protected header of bytes read as a COSE_Sign1 by a
plain CBOR decode, nothing else checked (what the log monitor and the firmware LMS-leaf
reader look at in an entry the strict parse refused). Whatever the bytes, the answer is the
header's map or ``None``: it never raises."""

from __future__ import annotations

import cbor2
import pytest

from ironroot.cose._sign1 import unchecked_protected_header

_HEADER = {1: -7, 15: {1: "issuer", 2: "subject"}}
_PROTECTED = cbor2.dumps(_HEADER)


def _sign1(protected: object, *, tag: int | None = 18) -> bytes:
    message = [protected, {}, b"payload", b"signature"]
    return cbor2.dumps(cbor2.CBORTag(tag, message) if tag is not None else message)


@pytest.mark.parametrize("tag", [18, None], ids=["tagged", "untagged"])
def test_the_protected_header_of_a_sign1(tag: int | None) -> None:
    assert unchecked_protected_header(_sign1(_PROTECTED, tag=tag)) == _HEADER


def test_nothing_else_is_checked() -> None:
    """Neither the other members, nor ``alg``, nor bytes after the message."""
    message = cbor2.dumps([_PROTECTED, "not a map", 7, None]) + b"\xff\xff"
    assert unchecked_protected_header(message) == _HEADER
    assert unchecked_protected_header(_sign1(cbor2.dumps({"x": 1}))) == {"x": 1}


@pytest.mark.parametrize(
    "entry",
    [
        b"",
        b"\xff",  # a break outside an indefinite item
        b"\x9f\x01",  # an indefinite array never closed
        b"\x5a\xff\xff\xff\xff",  # a byte string longer than the input
        b"\x81" * 100_000 + b"\x00",  # nested deeper than any decoder goes
    ],
    ids=["empty", "break", "unclosed", "truncated", "deep"],
)
def test_bytes_that_are_not_cbor(entry: bytes) -> None:
    assert unchecked_protected_header(entry) is None


@pytest.mark.parametrize(
    "entry",
    [
        cbor2.dumps({1: _PROTECTED}),
        cbor2.dumps(_PROTECTED),
        cbor2.dumps([_PROTECTED, {}, b""]),
        cbor2.dumps([_PROTECTED, {}, b"", b"", b""]),
        cbor2.dumps(cbor2.CBORTag(98, [_PROTECTED, {}, b"", b""])),  # COSE_Sign
        cbor2.dumps(cbor2.CBORTag(18, cbor2.CBORTag(18, [_PROTECTED, {}, b"", b""]))),
    ],
    ids=["map", "bstr", "three", "five", "other-tag", "tag-twice"],
)
def test_cbor_that_is_not_a_sign1(entry: bytes) -> None:
    assert unchecked_protected_header(entry) is None


@pytest.mark.parametrize(
    "protected",
    [cbor2.dumps(_HEADER).decode("latin-1"), None, 0, [_PROTECTED], _HEADER, b""],
    ids=["text", "null", "int", "array", "map", "empty-bstr"],
)
def test_a_protected_header_that_is_not_a_bstr_or_is_empty(protected: object) -> None:
    assert unchecked_protected_header(_sign1(protected)) is None


@pytest.mark.parametrize(
    "protected",
    [
        cbor2.dumps([1, -7]),
        cbor2.dumps("text"),
        cbor2.dumps(None),
        cbor2.dumps(cbor2.CBORTag(18, _HEADER)),  # a map, but under a tag
        b"\xff",  # not CBOR
        b"\xa1\x01",  # a map cut short
        b"\x81" * 100_000 + b"\x00",
    ],
    ids=["array", "text", "null", "tagged-map", "not-cbor", "truncated", "deep"],
)
def test_a_protected_header_that_is_not_a_map(protected: bytes) -> None:
    assert unchecked_protected_header(_sign1(protected)) is None
