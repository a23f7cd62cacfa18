"""Byte-level damage to real CoRIMs, CoMIDs, signed CoRIMs and OCP SAFE CoRIM reports: flipped
bits, CBOR heads that change a length, a type or open an indefinite-length item, cut or
inserted bytes. Every reader either parses the result or refuses it with its layer's typed
error (``MalformedCorim``, ``MalformedReport``, ``LimitExceeded``); no ``KeyError``,
``TypeError``, ``OverflowError`` or ``cbor2`` exception escapes."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.corim import Comid, Corim, SignedCorim
from ironroot.errors import LimitExceeded, MalformedCorim, MalformedReport
from ironroot.safe import inspect_report

pytestmark = pytest.mark.vectors

# Heads that matter: indefinite-length byte/text strings, arrays and maps, "break", 8-byte
# lengths and integers, the simple values and floats, tags 0 and 24-bit tags.
_HEADS = st.sampled_from(
    [
        *(0x1B, 0x3B, 0x5B, 0x5F, 0x7F, 0x9F, 0xBF, 0xFF, 0xF4, 0xF5, 0xF6, 0xF7, 0xF9, 0xFB),
        *(0xC0, 0xD8, 0xD9, 0xDA, 0xDB, 0x18, 0x19, 0x1A, 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0),
    ]
)
_READERS: dict[str, Callable[[bytes], object]] = {
    "corim": Corim.parse,
    "comid": Comid.parse,
    "signed": SignedCorim.parse,
    "sfr": inspect_report,
}
_TYPED = (MalformedCorim, MalformedReport, LimitExceeded)


@functools.cache
def _files(vectors: Path) -> dict[str, list[bytes]]:
    corim = vectors / "corim"
    return {
        "comid": [p.read_bytes() for p in sorted(corim.glob("comid/testcases/*.cbor"))],
        "corim": [
            p.read_bytes()
            for p in sorted(corim.glob("corim/testcases/*.cbor"))
            if not p.name.startswith("signed-")
        ],
        "signed": [p.read_bytes() for p in sorted(corim.glob("corim/testcases/signed-*.cbor"))],
        "sfr": [p.read_bytes() for p in sorted((vectors / "ocp-safe").rglob("*_signed.cbor"))],
    }


@st.composite
def _damage(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "head", "cut", "insert", "truncate"]))
        if kind == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "head" and out:
            out[at] = draw(_HEADS)
        elif kind == "cut":
            del out[at : at + draw(st.integers(1, 9))]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=9))
        else:
            del out[at:]
    return bytes(out)


@settings(max_examples=examples(500), deadline=None)
@given(data=st.data())
def test_damaged_bytes_parse_or_are_refused_typed(vectors: Path, data: st.DataObject) -> None:
    files = _files(vectors)
    reader = data.draw(st.sampled_from(sorted(r for r in _READERS if files[r])), label="reader")
    original = data.draw(st.sampled_from(files[reader]), label="file")
    damaged = data.draw(_damage(original), label="damaged")
    with contextlib.suppress(*_TYPED):
        _READERS[reader](damaged)


def test_every_reader_has_vectors(vectors: Path) -> None:
    assert all(_files(vectors).values())
