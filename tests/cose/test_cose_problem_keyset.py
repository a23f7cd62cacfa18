"""RFC 9290 / RFC 9457 problem details, COSE Key Sets, and the package's public surface."""

from __future__ import annotations

import json

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ironroot.cose
from hypothesis_budget import examples
from ironroot import errors
from ironroot.cose import Problem, decode_cbor, decode_key_set, encode_cbor, encode_key_set
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import MalformedInput, PayloadTooLarge, UnsupportedAlgorithm

# --- problem details -----------------------------------------------------------------------


def test_scrapi_problem_bytes() -> None:
    problem = Problem(
        "Bad Signature Algorithm", "Signed Statement contained a non supported algorithm"
    )
    expected = (
        bytes.fromhex("a2")
        + bytes.fromhex("20")
        + bytes.fromhex("77")
        + b"Bad Signature Algorithm"
        + bytes.fromhex("21")
        + bytes.fromhex("7834")
        + b"Signed Statement contained a non supported algorithm"
    )
    assert problem.to_cbor() == expected
    assert Problem.from_cbor(expected) == problem


def test_problem_cbor_members() -> None:
    problem = Problem(
        "Not Found",
        "no such entry",
        status=404,
        type="tag:ironroot,2025:not-found",
        instance="/entries/7",
        extra={"entry": "7"},
    )
    decoded = decode_cbor(problem.to_cbor())
    assert decoded == {
        -1: "Not Found",
        -2: "no such entry",
        -3: "/entries/7",
        -4: 404,
        "tag:ironroot,2025:not-found": {"entry": "7"},
    }
    assert Problem.from_cbor(problem.to_cbor()) == problem


def test_problem_json() -> None:
    problem = Problem("Invalid Statement", "bad", status=400, type="urn:x", extra={"code": "c"})
    assert json.loads(problem.to_json()) == {
        "type": "urn:x",
        "title": "Invalid Statement",
        "status": 400,
        "detail": "bad",
        "code": "c",
    }
    assert Problem.from_json(problem.to_json()) == problem


def test_about_blank_is_no_type() -> None:
    assert Problem("t", "d", type="about:blank").type is None
    with_extra = Problem("t", "d", extra={"k": 1})
    assert decode_cbor(with_extra.to_cbor()) == {-1: "t", -2: "d", "about:blank": {"k": 1}}
    assert Problem.from_cbor(with_extra.to_cbor()) == with_extra


_text = st.text(max_size=30)


@settings(max_examples=examples(60), deadline=None)
@given(
    title=_text,
    detail=_text,
    status=st.none() | st.integers(100, 599),
    type_=st.none() | st.text(min_size=1, max_size=20).filter(lambda t: t != "about:blank"),
    instance=st.none() | _text,
    extra=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(
            lambda k: k not in {"type", "title", "status", "detail", "instance"}
        ),
        st.integers(-1000, 1000) | _text,
        max_size=3,
    ),
)
def test_problem_round_trips(
    title: str,
    detail: str,
    status: int | None,
    type_: str | None,
    instance: str | None,
    extra: dict[str, object],
) -> None:
    problem = Problem(title, detail, status=status, type=type_, instance=instance, extra=extra)
    assert Problem.from_cbor(problem.to_cbor()) == problem
    assert Problem.from_json(problem.to_json()) == problem


def test_from_cbor_defaults_and_ignored_members() -> None:
    assert Problem.from_cbor(encode_cbor({-1: "only a title"})) == Problem("only a title", "")
    assert Problem.from_cbor(encode_cbor({-2: "d", -5: "https://b/", 7: 1})) == Problem("", "d")


@pytest.mark.parametrize(
    "data",
    [
        encode_cbor([1]),
        encode_cbor({-1: 5}),
        encode_cbor({-2: b"d"}),
        encode_cbor({-4: "404"}),
        encode_cbor({-4: 99}),
        encode_cbor({-4: True}),
        encode_cbor({-3: 1}),
        encode_cbor({-8: "unknown standard member"}),
        encode_cbor({"urn:a": {}, "urn:b": {}}),
        encode_cbor({"urn:a": [1]}),
        encode_cbor({"urn:a": {1: 2}}),
        encode_cbor({b"k": 1}),
        b"\xa1\x20",
    ],
)
def test_malformed_cbor_problems(data: bytes) -> None:
    with pytest.raises(MalformedInput) as info:
        Problem.from_cbor(data)
    assert type(info.value) is MalformedInput


@pytest.mark.parametrize(
    "label", [-1.0, True, b"k", None, cbor2.CBORSimpleValue(1), cbor2.CBORTag(3, b"\x00")]
)
def test_a_problem_keyed_by_another_type_than_integer_or_text_is_refused(label: object) -> None:
    """RFC 9290 keys a concise problem by integers and URIs (text); ``-1.0`` would be found as
    the title (-1) by a Python lookup, a bignum ``-1`` (tag 3) by no lookup at all. Refused by
    ``check_cbor_labels``, the label named."""
    with pytest.raises(MalformedInput) as info:
        Problem.from_cbor(encode_cbor({label: "a title", -2: "a detail"}))
    assert type(info.value) is MalformedInput
    assert info.value.detail == f"problem detail key {label!r} is not an integer or text"


@pytest.mark.parametrize(
    "data",
    [b"[]", b"{", b'{"title": 1}', b'{"status": "400"}', b'{"type": 5}', b"\xff"],
)
def test_malformed_json_problems(data: bytes) -> None:
    with pytest.raises(MalformedInput) as info:
        Problem.from_json(data)
    assert type(info.value) is MalformedInput


def test_problem_construction_errors() -> None:
    with pytest.raises(MalformedInput):
        Problem("t", "d", extra={"title": "clash"})
    with pytest.raises(MalformedInput):
        Problem("t", "d", status=1000)
    with pytest.raises(MalformedInput):
        Problem("t", "d", extra={"k": object()}).to_json()
    with pytest.raises(PayloadTooLarge):
        Problem.from_json(b" " * 70000)


# --- key sets ------------------------------------------------------------------------------

ALGORITHMS = [a for a in Algorithm if a is not Algorithm.HSS_LMS]


@pytest.mark.parametrize(
    ("problem", "status", "expected", "code"),
    [
        # the code names the class
        (
            Problem("Result Expired", "the EAR expired", extra={"code": "result-expired"}),
            403,
            errors.ResultExpired,
            "result-expired",
        ),
        # a code refined per instance: the title names it, at the answer's status
        (
            Problem(
                "Stale Or Mismatching Nonce", "another nonce", extra={"code": "nonce-mismatch"}
            ),
            400,
            errors.StaleNonce,
            "nonce-mismatch",
        ),
        # a class that needs more than a detail and a code is never made (no TypeError)
        (
            Problem("Old Size Mismatch", "x", extra={"code": "old-size-mismatch"}),
            409,
            errors.IronrootError,
            "old-size-mismatch",
        ),
        # nothing known: the base class
        (Problem("Teapot", "short and stout"), 418, errors.IronrootError, None),
    ],
)
def test_a_problem_is_the_typed_error_it_stands_for(
    problem: Problem, status: int, expected: type[errors.IronrootError], code: str | None
) -> None:
    error = problem.error(status)
    assert type(error) is expected
    assert error.detail == problem.detail
    assert error.code == (code or expected.code)


def test_key_set_round_trip() -> None:
    keys = [PrivateKey.generate(a).public_key for a in ALGORITHMS]
    decoded = decode_key_set(encode_key_set(keys))
    assert list(decoded) == [k.kid for k in keys]
    for key in keys:
        assert decoded[key.kid] == key
        assert decoded[key.kid].algorithm is key.algorithm
    items = decode_cbor(encode_key_set(keys))
    assert isinstance(items, list)
    assert all(2 in item and 3 in item for item in items)


def test_key_set_kid_mismatch() -> None:
    a = PrivateKey.generate(Algorithm.ES384).public_key
    b = PrivateKey.generate(Algorithm.ES384).public_key
    cose_key = a.to_cose_key(include_kid=True)
    cose_key[2] = b.kid
    with pytest.raises(MalformedInput) as info:
        decode_key_set(encode_cbor([cose_key]))
    assert type(info.value) is MalformedInput


@pytest.mark.parametrize(
    "items",
    [
        {1: 2},
        [[1]],
        [{1: 2, -1: 1}],  # no kid
    ],
)
def test_malformed_key_sets(items: object) -> None:
    with pytest.raises(MalformedInput):
        decode_key_set(encode_cbor(items))


def test_key_set_duplicates_and_unknown_types() -> None:
    key = PrivateKey.generate(Algorithm.ED25519).public_key
    cose_key = key.to_cose_key(include_kid=True)
    with pytest.raises(MalformedInput):
        decode_key_set(encode_cbor([cose_key, cose_key]))
    with pytest.raises(UnsupportedAlgorithm):
        decode_key_set(encode_cbor([{1: 99, 2: b"kid"}]))


# --- public surface ------------------------------------------------------------------------


def test_public_surface() -> None:
    assert sorted(ironroot.cose.__all__) == sorted(
        [
            "ALG", "CONTENT_TYPE", "COSE_SIGN1_TAG", "COSE_SIGN_TAG", "CoseSign", "CoseSignature",
            "cose_sign", "CRIT", "CWT_CLAIMS", "DEFAULT_LIMITS",
            "HASH_SHA256", "HASH_SHA384", "HASH_SHA512", "KID", "PAYLOAD_HASH_ALG",
            "PAYLOAD_LOCATION", "PREIMAGE_CONTENT_TYPE", "RECEIPTS", "VDP", "VDS",
            "VDS_RFC9162_SHA256", "X5CHAIN", "X5T", "ConsistencyProof", "CwtClaims",
            "HashEnvelope", "InclusionProof", "Limits", "Problem", "Receipt", "Sign1",
            "SignedStatement", "TransparentStatement", "build_receipt", "create_statement",
            "decode_cbor", "decode_key_set", "encode_cbor", "encode_key_set", "make_transparent",
            "on_trusted_log", "receipt_protected_header", "receipt_to_be_signed", "sign1",
            "verify_did_x509", "verify_receipt", "verify_transparent_statement", "verify_x5chain",
        ]
    )  # fmt: skip
    for name in ironroot.cose.__all__:
        assert getattr(ironroot.cose, name) is not None
    labels = ironroot.cose
    assert (labels.ALG, labels.CRIT, labels.CONTENT_TYPE, labels.KID, labels.CWT_CLAIMS) == (
        1, 2, 3, 4, 15,
    )  # fmt: skip
    assert (labels.X5CHAIN, labels.X5T, labels.PAYLOAD_HASH_ALG) == (33, 34, 258)
    assert (labels.PREIMAGE_CONTENT_TYPE, labels.PAYLOAD_LOCATION) == (259, 260)
    assert (labels.RECEIPTS, labels.VDS, labels.VDP) == (394, 395, 396)
