"""A relying party's attacker against ``verify_ear``: signed tokens that carry what no EAR may.

Each token here verifies (it is signed by the trusted key): only its content is hostile. What
``verify_ear`` returns is handed on as JSON (the key release's policy claims, the CLI, the audit
report) and re-signed as a JWT or a CWT, so it must hold only what both forms can carry.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.cose import KID, sign1
from ironroot.crypto import Algorithm, PrivateKey, b64url_encode
from ironroot.ear import (
    Appraisal,
    AttestationResult,
    VerifierId,
    answers_composite,
    composite_nonce,
    gpu_nonce,
    sign_ear_cwt,
    sign_ear_jwt,
    verify_ear,
)
from ironroot.errors import IronrootError, MalformedInput

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KEY = PrivateKey.generate(Algorithm.ES256)


def _result(evidence: dict[str, Any] | None = None) -> AttestationResult:
    appraisal = Appraisal.from_vector(
        {"instance-identity": 2, "hardware": 2},
        policy_id="urn:ironroot:appraisal-policy:default:0",
        reasons=["a reason"],
        evidence=evidence if evidence is not None else {"format": "ironroot"},
    )
    return AttestationResult(
        iat=int(NOW.timestamp()),
        exp=int(NOW.timestamp()) + 600,
        verifier_id=VerifierId("Ironroot", "ironroot 0.1.0"),
        submods={"cvm": appraisal},
        nonce=b"n" * 32,
    )


def _cwt(claims: dict[object, Any]) -> bytes:
    return sign1(KEY, cbor2.dumps(claims), {KID: KEY.kid}).encode()


def _jwt(claims_json: str, header_json: str | None = None) -> bytes:
    kid = b64url_encode(KEY.kid)
    header = header_json or json.dumps({"alg": "ES256", "typ": "JWT", "kid": kid})
    signing_input = f"{b64url_encode(header.encode())}.{b64url_encode(claims_json.encode())}"
    return (signing_input + "." + b64url_encode(KEY.sign(signing_input.encode()))).encode()


# --- a CWT's evidence holds only JSON values -------------------------------------------------

NOT_JSON: dict[str, object] = {
    "bytes": b"\x00" * 32,
    "undefined": cbor2.undefined,
    "unknown-tag": cbor2.CBORTag(99, 1),
    "epoch-tag": cbor2.CBORTag(1, 0),
    "simple-value": cbor2.CBORSimpleValue(99),
    "nan": float("nan"),
    "infinity": float("inf"),
    "integer-key": {1: 2},
    "nested-bytes": {"identity": {"driver_version": b"550.54"}},
    "bytes-in-list": [b"\x01"],
}


@pytest.mark.parametrize("value", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_cwt_evidence_that_is_not_json_is_refused(value: object) -> None:
    """Before: accepted, and ``to_json_claims`` / ``sign_ear_jwt`` of the result raised
    ``TypeError`` (bytes, undefined, a tag) or wrote ``NaN`` (not JSON)."""
    claims = _result().to_cbor_claims()
    claims[266]["cvm"][-70101] = {"format": "ironroot", "report_data": value}
    with pytest.raises(MalformedInput, match=r"ear\.ironroot\.evidence .*JSON"):
        verify_ear(_cwt(claims), [KEY.public_key], now=NOW)


def test_cwt_evidence_of_json_values_still_verifies() -> None:
    evidence = {"format": "ironroot", "n": [1, -2, 1.5, True, None, {"a": "b"}]}
    result = verify_ear(sign_ear_cwt(_result(evidence), KEY), [KEY.public_key], now=NOW)
    assert result.submods["cvm"].evidence == evidence
    json.dumps(result.to_json_claims(), allow_nan=False)


@pytest.mark.parametrize("value", [2**64, -(2**64) - 1, 10**40])
def test_jwt_evidence_integer_past_64_bits_is_refused(value: int) -> None:
    """A CBOR integer is 64 bits (past them, a bignum tag, which a CWT EAR does not carry).
    Before: the JWT verified, and its result signed as a CWT was refused by ``verify_ear``."""
    claims = _result().to_json_claims()
    claims["submods"]["cvm"]["ear.ironroot.evidence"]["count"] = value
    with pytest.raises(MalformedInput, match=r"ear\.ironroot\.evidence .*64 bits"):
        verify_ear(_jwt(json.dumps(claims)), [KEY.public_key], now=NOW)


@pytest.mark.parametrize("value", [2**64 - 1, -(2**64)])
def test_jwt_evidence_integer_within_64_bits_is_carried_as_a_cwt(value: int) -> None:
    claims = _result().to_json_claims()
    claims["submods"]["cvm"]["ear.ironroot.evidence"]["count"] = value
    result = verify_ear(_jwt(json.dumps(claims)), [KEY.public_key], now=NOW)
    again = verify_ear(sign_ear_cwt(result, KEY), [KEY.public_key], now=NOW)
    assert again.submods["cvm"].evidence == {"format": "ironroot", "count": value}


def test_appraisal_evidence_must_be_json() -> None:
    """The appraiser's own evidence is held to the same rule: a result that cannot be signed
    as a JWT is never made."""
    with pytest.raises(MalformedInput, match=r"ear\.ironroot\.evidence .*JSON"):
        _result({"report_data": b"\x00"})


# --- a JWT's text is Unicode -----------------------------------------------------------------

MARK = "LONE-SURROGATE"
SURROGATE_PLACES: dict[str, tuple[str, ...]] = {
    "submod label": ("submods",),
    "developer": ("ear.verifier-id", "developer"),
    "reason": ("submods", "cvm", "ear.ironroot.reasons"),
    "evidence key": ("submods", "cvm", "ear.ironroot.evidence"),
    "unknown claim": ("x-note",),
}


def _with_mark(claims: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    target = claims
    for step in path[:-1]:
        target = target[step]
    last = path[-1]
    if last == "submods":
        target[last] = {MARK: target[last]["cvm"]}
    elif last == "ear.ironroot.reasons":
        target[last] = [MARK]
    elif last == "ear.ironroot.evidence":
        target[last] = {MARK: 1}
    else:
        target[last] = MARK
    return claims


@pytest.mark.parametrize("where", SURROGATE_PLACES)
def test_jwt_text_with_a_lone_surrogate_is_refused(where: str) -> None:
    """``"\\ud800"`` is a JSON escape of no Unicode character (RFC 8259 §8.2; I-JSON, RFC 7493
    §2.1, forbids it). Before: accepted, and the result could not be written as UTF-8 nor
    signed as a CWT."""
    claims = _with_mark(_result().to_json_claims(), SURROGATE_PLACES[where])
    text = json.dumps(claims).replace(MARK, "\\ud800")
    with pytest.raises(MalformedInput, match="not Unicode"):
        verify_ear(_jwt(text), [KEY.public_key], now=NOW)


def test_jwt_header_with_a_lone_surrogate_is_refused() -> None:
    header = json.dumps({"alg": "ES256", "typ": "JWT\ud800", "kid": b64url_encode(KEY.kid)})
    with pytest.raises(MalformedInput, match="not Unicode"):
        verify_ear(_jwt(json.dumps(_result().to_json_claims()), header), [KEY.public_key], now=NOW)


def test_jwt_text_outside_the_bmp_still_verifies() -> None:
    """A surrogate pair is one character: allowed."""
    claims = _result().to_json_claims()
    claims["submods"]["cvm"]["ear.ironroot.reasons"] = ["\U0001f512 sealed"]
    token = _jwt(json.dumps(claims))
    assert b"\\ud83d\\udd12" in _segment(token)
    result = verify_ear(token, [KEY.public_key], now=NOW)
    assert result.submods["cvm"].reasons == ("\U0001f512 sealed",)
    sign_ear_cwt(result, KEY)
    sign_ear_jwt(result, KEY)


def _segment(token: bytes) -> bytes:
    payload = token.split(b".")[1]
    return base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))


# --- ear.verifier-id names a verifier --------------------------------------------------------


@pytest.mark.parametrize("member", ["developer", "build"])
def test_jwt_verifier_id_with_empty_text_is_refused(member: str) -> None:
    """``build`` and ``developer`` each identify the verifier (AR4SI); empty text identifies
    none (the reference implementation refuses it as well). Before: accepted."""
    claims = _result().to_json_claims()
    claims["ear.verifier-id"][member] = ""
    with pytest.raises(MalformedInput, match=rf"ear\.verifier-id {member} is empty"):
        verify_ear(_jwt(json.dumps(claims)), [KEY.public_key], now=NOW)


@pytest.mark.parametrize(("label", "member"), [(0, "developer"), (1, "build")])
def test_cwt_verifier_id_with_empty_text_is_refused(label: int, member: str) -> None:
    claims = _result().to_cbor_claims()
    claims[1004][label] = ""
    with pytest.raises(MalformedInput, match=rf"ear\.verifier-id {member} is empty"):
        verify_ear(_cwt(claims), [KEY.public_key], now=NOW)


def _rekey(claims: dict[Any, Any], path: tuple[object, ...], old: object, new: object) -> None:
    """The map at ``path`` in ``claims`` with its key ``old`` written as ``new``."""
    mapping = claims
    for step in path:
        mapping = mapping[step]
    mapping[new] = mapping.pop(old)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ((), 6, 6.0),  # iat
        ((), 265, 265.0),  # eat_profile
        ((1004,), 0, False),  # verifier-id developer
        ((1004,), 1, True),  # verifier-id build
        ((266, "cvm"), 1000, 1000.0),  # ear.status
    ],
    ids=["iat-as-float", "profile-as-float", "developer-as-false", "build-as-true", "status"],
)
def test_cwt_claims_keyed_by_a_float_or_a_boolean_are_refused(
    path: tuple[object, ...], old: int, new: object
) -> None:
    """A decoded map is a Python dict, where ``6.0 == 6`` and ``True == 1``: claims keyed by
    them were read as the integer labels (iat, the verifier's build, the status), though
    every other EAR reader sees other keys, as CoRIM and COSE labels are already refused."""
    claims = _result().to_cbor_claims()
    _rekey(claims, path, old, new)
    with pytest.raises(MalformedInput) as caught:
        verify_ear(_cwt(claims), [KEY.public_key], now=NOW)
    assert type(caught.value) is MalformedInput
    assert caught.value.code == "malformed"
    assert "is not an integer or text" in caught.value.detail


@pytest.mark.parametrize("status", [2.0, 96.0, 0.0])
def test_cwt_status_code_written_as_a_float_is_refused(status: float) -> None:
    """``2.0 == 2`` in Python: an ``ear.status`` of 2.0 was read as affirming, where every
    other EAR reader finds no trust tier code (an integer) there."""
    claims = _result().to_cbor_claims()
    claims[266]["cvm"][1000] = status
    with pytest.raises(MalformedInput) as caught:
        verify_ear(_cwt(claims), [KEY.public_key], now=NOW)
    assert type(caught.value) is MalformedInput
    assert caught.value.code == "malformed"
    assert caught.value.detail == f"ear.status {status!r} is not a trust tier code (0, 2, 32, 96)"


def test_a_verifier_id_with_empty_text_is_never_made() -> None:
    with pytest.raises(MalformedInput, match=r"ear\.verifier-id build is empty"):
        VerifierId("Ironroot", "")


# --- a token is bytes or text -----------------------------------------------------------------


@pytest.mark.parametrize("token", [None, 5, ["a.b.c"], {"ear": "a.b.c"}, 1.5])
def test_a_token_that_is_neither_bytes_nor_text_is_refused(token: object) -> None:
    """Before: ``TypeError`` for ``None`` and a float; an integer was read as that many zero
    bytes."""
    with pytest.raises(MalformedInput, match="an EAR is a JWT"):
        verify_ear(token, [KEY.public_key], now=NOW)  # type: ignore[arg-type]


def test_a_token_as_bytearray_or_memoryview_still_verifies() -> None:
    for token in (
        bytearray(sign_ear_cwt(_result(), KEY)),
        memoryview(sign_ear_jwt(_result(), KEY)),
    ):
        verify_ear(token, [KEY.public_key], now=NOW)  # type: ignore[arg-type]


# --- the composite nonce rule takes what its callers are handed ------------------------------


@pytest.mark.parametrize("count", [1.0, 2.5, "1", None, True])
def test_composite_nonce_of_a_count_that_is_no_integer_is_refused(count: object) -> None:
    """Before: ``AttributeError`` (a float has no ``to_bytes``) or ``TypeError``; ``True``
    was read as GPU 1."""
    for rule in (composite_nonce, gpu_nonce):
        with pytest.raises(MalformedInput, match="GPUs"):
            rule(b"n" * 32, count)  # type: ignore[arg-type]
    with pytest.raises(MalformedInput, match="GPUs"):
        answers_composite(b"\x00" * 64, b"n" * 32, count)  # type: ignore[arg-type]


@pytest.mark.parametrize("report_data", ["00" * 32, None, bytearray(32)])
def test_answers_composite_of_report_data_that_is_not_bytes_is_refused(
    report_data: object,
) -> None:
    with pytest.raises(MalformedInput, match="report data"):
        answers_composite(report_data, b"n" * 32, 1)  # type: ignore[arg-type]


# --- properties: whatever a trusted key signs, verify_ear refuses with a typed error or returns
# a result that both forms carry again -------------------------------------------------------

# st.text draws no lone surrogates: a JSON text may hold them as escapes
_TEXT = st.text(max_size=8) | st.sampled_from(["\ud800", "x\udc00", "\U0001f512"])
_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
    | st.sampled_from(["affirming", "none", "warning", "contraindicated", "AAAAAAAAAAA"])
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_CBOR_SCALARS = (
    _JSON_SCALARS
    | st.binary(max_size=8)
    | st.just(cbor2.undefined)
    | st.floats()
    | st.builds(cbor2.CBORTag, st.sampled_from([1, 2, 3, 24, 99, 258]), st.integers(0, 9))
)
_CBOR_VALUES = st.recursive(
    _CBOR_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.one_of(st.text(max_size=6), st.integers(-3, 1004)), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every member of ``node``'s maps, by path (to replace a value or add a member beside)."""
    found: list[tuple[object, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((*prefix, key))
            found.extend(_paths(value, (*prefix, key)))
    return found


def _replace(claims: Any, path: tuple[object, ...], value: object, *, rename: object) -> None:
    target = claims
    for step in path[:-1]:
        target = target[step]
    if rename is not None:
        target[rename] = target.pop(path[-1])
    else:
        target[path[-1]] = value


def _carried_again(result: AttestationResult) -> None:
    """What verified is written and read back as both forms, unchanged."""
    json.dumps(result.to_json_claims(), allow_nan=False).encode()
    for sign in (sign_ear_jwt, sign_ear_cwt):
        again = verify_ear(sign(result, KEY), [KEY.public_key], now=NOW)
        assert again.to_json_claims() == result.to_json_claims()


@settings(max_examples=examples(300), deadline=None)
@given(data=st.data())
def test_any_signed_json_claims_are_refused_typed_or_carried_again(data: st.DataObject) -> None:
    claims = _result().to_json_claims()
    path = data.draw(st.sampled_from(_paths(claims)))
    rename = data.draw(st.none() | _TEXT)
    _replace(claims, path, data.draw(_JSON_VALUES), rename=rename)
    token = _jwt(json.dumps(claims))
    try:
        result = verify_ear(token, [KEY.public_key], now=NOW)
    except IronrootError:
        return
    _carried_again(result)


@settings(max_examples=examples(300), deadline=None)
@given(data=st.data())
def test_any_signed_cbor_claims_are_refused_typed_or_carried_again(data: st.DataObject) -> None:
    claims = _result().to_cbor_claims()
    path = data.draw(st.sampled_from(_paths(claims)))
    rename = data.draw(st.none() | st.one_of(st.text(max_size=6), st.integers(-3, 1004)))
    _replace(claims, path, data.draw(_CBOR_VALUES), rename=rename)
    try:
        token = _cwt(claims)
    except (ValueError, TypeError, cbor2.CBOREncodeError):
        return  # not encodable (a float map key beside an equal integer one, say)
    try:
        result = verify_ear(token, [KEY.public_key], now=NOW)
    except IronrootError:
        return
    _carried_again(result)


@settings(max_examples=examples(300), deadline=None)
@given(
    form=st.sampled_from(["jwt", "cwt"]),
    at=st.integers(0, 10_000),
    cut=st.integers(0, 64),
    insert=st.binary(max_size=8),
)
def test_any_damaged_token_is_refused_typed(form: str, at: int, cut: int, insert: bytes) -> None:
    token = (sign_ear_jwt if form == "jwt" else sign_ear_cwt)(_result(), KEY)
    at %= len(token) + 1
    damaged = token[:at] + insert + token[at + cut :]
    if damaged.strip() == token and form == "jwt":  # white space around a JWT is read past
        return
    if damaged == token:
        return
    with pytest.raises(IronrootError):
        verify_ear(damaged, [KEY.public_key], now=NOW)
