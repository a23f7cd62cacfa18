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


def _wants_json_from(*fields: str) -> bool:
    headers = [(b"accept", field.encode()) for field in fields]
    return wants_json(Request({"type": "http", "headers": headers}))


def test_media_types_are_matched_without_regard_to_case() -> None:
    # RFC 9110 §8.3.1: "APPLICATION/JSON" was not seen as JSON
    assert _wants_json("APPLICATION/JSON")
    assert _wants_json("Application/Problem+JSON")
    assert not _wants_json("application/json, APPLICATION/CBOR")
    assert not _wants_json("application/json;Q=0")


def test_several_accept_fields_are_one_list() -> None:
    # RFC 9110 §5.3 (SCRAPI's own examples send two): only the first field was read
    assert not _wants_json_from("application/json", "application/cbor")
    assert not _wants_json_from("application/json", "application/concise-problem-details+cbor")
    assert _wants_json_from("text/html", "application/json")
    assert _wants_json_from("application/json", "application/cbor;q=0")


def test_only_json_media_types_are_json() -> None:
    # a media type that merely holds the letters "json" or "cbor" is neither
    assert not _wants_json("text/jsonx")
    assert not _wants_json("application/jsonp")
    assert _wants_json("application/json, application/x-cbor-ish")
    assert _wants_json("application/vnd.example+json")
