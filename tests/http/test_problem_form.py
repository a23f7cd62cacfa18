"""A problem is RFC 9457 JSON exactly when the client's ``Accept`` takes JSON and no CBOR
(``wants_json``), qualities included: ``q=0`` is "not acceptable" (RFC 9110 §12.5.1)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from hypothesis_budget import examples
from ironroot.http import wants_json

_MEDIA = st.sampled_from(
    [
        "application/json",
        "application/problem+json",
        "application/cbor",
        "application/concise-problem-details+cbor",
        "text/html",
        "*/*",
    ]
)
_QUALITY = st.sampled_from([None, "0", "0.0", "0.000", "0.001", "0.5", "1", "1.0"])


def _accept(ranges: list[tuple[str, str | None]]) -> str:
    return ", ".join(media if q is None else f"{media};q={q}" for media, q in ranges)


def _wants_json(accept: str) -> bool:
    return wants_json(Request({"type": "http", "headers": [(b"accept", accept.encode())]}))


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(_MEDIA, _QUALITY), max_size=4))
def test_json_exactly_when_json_is_acceptable_and_cbor_is_not(
    ranges: list[tuple[str, str | None]],
) -> None:
    taken = [media for media, q in ranges if q is None or float(q) > 0]
    expected = any("json" in m for m in taken) and not any("cbor" in m for m in taken)
    assert _wants_json(_accept(ranges)) is expected


def test_a_quality_zero_is_not_acceptable() -> None:
    assert _wants_json("application/json, application/cbor;q=0")
    assert not _wants_json("application/json;q=0")
    assert not _wants_json("application/json; q=0, application/cbor")
