"""Every parser of outside bytes raises only typed errors (or succeeds) on arbitrary input."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.errors import IronrootError
from ironroot.log import (
    Checkpoint,
    Note,
    NoteVerifier,
    parse_entry_bundle,
    parse_tile,
    parse_tile_path,
)

_BYTE_PARSERS: list[Callable[[bytes], object]] = [
    Note.parse,
    Checkpoint.parse,
    parse_entry_bundle,
    lambda b: parse_entry_bundle(b, 3),
    parse_tile,
    lambda b: parse_tile(b, 1),
]
_TEXT_PARSERS: list[Callable[[str], object]] = [parse_tile_path, NoteVerifier.from_vkey]

_NOTEISH = st.lists(
    st.sampled_from(
        [
            b"\n",
            b"\n\n",
            "\u2014 ".encode(),
            b"a.example",
            b" ",
            b"AAAA",
            b"==",
            b"+",
            b"0",
            b"\xff",
        ]
    ),
    max_size=30,
).map(b"".join)


@pytest.mark.parametrize("parse", _BYTE_PARSERS)
@settings(max_examples=examples(150), deadline=None)
@given(data=st.one_of(st.binary(max_size=200), _NOTEISH))
def test_byte_parsers_raise_only_typed_errors(
    parse: Callable[[bytes], object], data: bytes
) -> None:
    with contextlib.suppress(IronrootError):
        parse(data)


_PATHISH = st.lists(
    st.sampled_from(["tile/", "entries/", "0", "1", "x", "/", ".p/", "9", "00", "+", "=", "A"]),
    max_size=12,
).map("".join)


@pytest.mark.parametrize("parse", _TEXT_PARSERS)
@settings(max_examples=examples(150), deadline=None)
@given(text=st.one_of(st.text(max_size=100), _PATHISH))
def test_text_parsers_raise_only_typed_errors(parse: Callable[[str], object], text: str) -> None:
    with contextlib.suppress(IronrootError):
        parse(text)
