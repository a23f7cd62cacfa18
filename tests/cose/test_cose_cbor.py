"""Strict CBOR decoding and RFC 8949 §4.2.1 deterministic encoding."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.cose import DEFAULT_LIMITS, Limits, decode_cbor, encode_cbor
from ironroot.errors import ConfigError, LimitExceeded, MalformedInput, PayloadTooLarge

# --- encoding ------------------------------------------------------------------------------

# RFC 8949 Appendix A examples (values with one preferred, deterministic encoding).
APPENDIX_A = [
    (0, "00"),
    (23, "17"),
    (24, "1818"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (18446744073709551616, "c249010000000000000000"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-18446744073709551617, "c349010000000000000000"),
    (-1, "20"),
    (-1000, "3903e7"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("IETF", "6449455446"),
    ("\u00fc", "62c3bc"),
    ([], "80"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (cbor2.CBORTag(1, 1363896240), "c11a514b67b0"),
    (1.5, "f93e00"),
]


@pytest.mark.parametrize(("value", "expected"), APPENDIX_A)
def test_encode_matches_rfc8949_appendix_a(value: object, expected: str) -> None:
    assert encode_cbor(value).hex() == expected


def test_map_keys_sorted_bytewise_not_length_first() -> None:
    # RFC 8949 §4.2.1: 24 (0x1818) sorts before -1 (0x20); RFC 7049 canonical puts -1 first.
    assert encode_cbor({-1: 0, 24: 0, "a": 0, 395: 0}).hex() == "a418180019018b002000616100"
    assert cbor2.dumps({-1: 0, 24: 0}, canonical=True).hex() == "a22000181800"


def test_encode_rejects_unencodable() -> None:
    with pytest.raises(MalformedInput):
        encode_cbor(object())
    with pytest.raises(MalformedInput):
        encode_cbor("\ud800")


_cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.integers(-30, 300) | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=20,
)


def _normalise(value: object) -> object:
    if isinstance(value, cbor2.CBORTag) and value.tag in (2, 3):
        n = int.from_bytes(value.value, "big")
        return n if value.tag == 2 else -1 - n
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {_normalise(k): _normalise(v) for k, v in value.items()}
    return value


@settings(max_examples=examples(150), deadline=None)
@given(_cbor_values)
def test_encode_decode_round_trip_and_idempotent(value: object) -> None:
    encoded = encode_cbor(value)
    decoded = decode_cbor(encoded, Limits(max_depth=64))
    assert _normalise(decoded) == value
    assert encode_cbor(decoded) == encoded
    # cbor2 agrees on the value.
    assert _normalise(cbor2.loads(encoded)) == value


# --- strict decoding -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("0102", "trailing bytes"),
        ("8301020304", "trailing item"),
        ("9f01ff", "indefinite array"),
        ("bf0101ff", "indefinite map"),
        ("5f4101ff", "indefinite byte string"),
        ("a201010102", "duplicate key"),
        ("a2616101616102", "duplicate text key"),
        # NaN != NaN, so a Python dict holds both: the same key bytes twice, still a duplicate
        ("a2f97e0001f97e0002", "duplicate NaN key"),
        ("a2f97e0001fa7fc0000002", "duplicate NaN key, two widths"),
        ("a281f97e000181f97e0002", "duplicate key holding a NaN"),
        ("a2a1f97e0001 01 a1f97e0001 02".replace(" ", ""), "duplicate map key holding a NaN"),
        ("83010203ff", "break outside indefinite"),
        ("8301", "truncated array"),
        ("44010203", "truncated byte string"),
        ("62c328", "invalid UTF-8"),
        ("1c", "reserved additional info"),
        ("", "empty"),
    ],
)
def test_decode_rejects_malformed(data: str, why: str) -> None:
    with pytest.raises(MalformedInput) as info:
        decode_cbor(bytes.fromhex(data))
    assert type(info.value) is MalformedInput, why


def test_decode_rejects_non_bytes() -> None:
    with pytest.raises(MalformedInput):
        decode_cbor("a0")  # type: ignore[arg-type]


def test_depth_limit() -> None:
    limits = Limits(max_depth=4)
    assert decode_cbor(bytes.fromhex("818181810a"), limits) == [[[[10]]]]
    with pytest.raises(LimitExceeded):
        decode_cbor(bytes.fromhex("81818181810a"), limits)
    # tags count as nesting too
    with pytest.raises(LimitExceeded):
        decode_cbor(bytes.fromhex("d818d818d818d818d8180a"), limits)


def test_default_depth_limit() -> None:
    deep = b"\x81" * (DEFAULT_LIMITS.max_depth + 1) + b"\x00"
    with pytest.raises(LimitExceeded):
        decode_cbor(deep)


def test_item_limit_arrays_and_maps() -> None:
    limits = Limits(max_items=3)
    assert decode_cbor(bytes.fromhex("83010203"), limits) == [1, 2, 3]
    with pytest.raises(LimitExceeded):
        decode_cbor(bytes.fromhex("8401020304"), limits)
    with pytest.raises(LimitExceeded):
        decode_cbor(bytes.fromhex("a40101020203030404"), limits)
    # nested containers are counted too
    with pytest.raises(LimitExceeded):
        decode_cbor(bytes.fromhex("81a40101020203030404"), limits)
    with pytest.raises(LimitExceeded):
        decode_cbor(bytes.fromhex("c18401020304"), limits)


def test_size_limit() -> None:
    limits = Limits(max_bytes=10)
    assert decode_cbor(bytes.fromhex("4801020304050607ff"), limits) == bytes.fromhex(
        "01020304050607ff"
    )
    with pytest.raises(PayloadTooLarge):
        decode_cbor(bytes.fromhex("4a") + bytes(10), limits)


def test_huge_declared_lengths_fail_fast() -> None:
    for head in ("9b7fffffffffffffff", "5b7fffffffffffffff", "bb7fffffffffffffff"):
        with pytest.raises(MalformedInput):
            decode_cbor(bytes.fromhex(head + "01"))


def _items(value: object) -> int:
    """The data items a decoded value holds (shared references counted at each use)."""
    if isinstance(value, list | tuple):
        return 1 + sum(_items(v) for v in value)
    if isinstance(value, dict):
        return 1 + sum(_items(k) + _items(v) for k, v in value.items())
    if isinstance(value, cbor2.CBORTag):
        return 1 + _items(value.value)
    return 1


# Many tiny items: empty arrays and maps, one-byte tags (0xc0..0xd7), small integers.
_dense = st.recursive(
    st.just([]) | st.just({}) | st.integers(0, 23),
    lambda children: (
        st.lists(children, max_size=30)
        | st.dictionaries(st.integers(0, 23), children, max_size=10)
        | st.builds(cbor2.CBORTag, st.integers(0, 23), children)
    ),
    max_leaves=200,
)


@settings(max_examples=examples(100), deadline=None)
@given(st.one_of(_dense.map(encode_cbor), st.binary(min_size=1, max_size=300)))
def test_decoding_builds_at_most_one_item_per_input_byte(data: bytes) -> None:
    """Why ``decode_cbor`` needs no total-items budget: every data item takes at least its one
    head byte, indefinite lengths are refused, a declared length allocates nothing before its
    items arrive, and value sharing (tags 28/29) stays raw, so nothing decodes into more
    items (Python objects) than the input has bytes. ``max_bytes`` bounds the work."""
    limits = Limits(max_depth=64, max_items=1_000_000)
    try:
        value = decode_cbor(data, limits)
    except MalformedInput:
        return
    assert _items(value) <= len(data)


def test_builtin_tags_stay_raw() -> None:
    # Value sharing (28/29) must not build shared references; dates and sets stay tags.
    shared = decode_cbor(bytes.fromhex("82d81c8101d81d00"))
    assert shared == [cbor2.CBORTag(28, [1]), cbor2.CBORTag(29, 0)]
    assert decode_cbor(bytes.fromhex("c11a514b67b0")) == cbor2.CBORTag(1, 1363896240)
    assert decode_cbor(bytes.fromhex("d9010283010203")) == cbor2.CBORTag(258, [1, 2, 3])
    assert decode_cbor(bytes.fromhex("c0f6")) == cbor2.CBORTag(0, None)


def test_non_shortest_forms_are_accepted_on_input() -> None:
    assert decode_cbor(bytes.fromhex("1800")) == 0
    assert decode_cbor(bytes.fromhex("98020102")) == [1, 2]


@pytest.mark.parametrize("field", ["max_bytes", "max_depth", "max_items", "max_x5chain"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ConfigError):
        Limits(**{field: 0})
    with pytest.raises(ConfigError):
        Limits(**{field: True})
