"""EAR tokens: claim names and labels, JWT and CWT signing, and every refusal of verify_ear."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.attestation import (
    AR4SI,
    EAR_PROFILE,
    TRUST_CATEGORIES,
    TRUST_CLAIM_TAGS,
    Appraisal,
    AttestationResult,
    TrustTier,
    VerifierId,
    decode_ear,
    sign_ear_cwt,
    sign_ear_jwt,
    tier_of,
    verify_ear,
)
from ironroot.cose import KID, Sign1, decode_cbor, encode_cbor, sign1
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    AlgorithmNotAccepted,
    BadSignature,
    LimitExceeded,
    MalformedInput,
    ResultExpired,
    UnknownIssuer,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KEY = PrivateKey.generate(Algorithm.ES384)


def _result(**changes: object) -> AttestationResult:
    appraisal = Appraisal.from_vector(
        {"instance-identity": 2, "executables": 33, "hardware": 2},
        policy_id="urn:ironroot:appraisal-policy:default:0",
        reasons=["reference-values: no logged reference value for runtime"],
        evidence={"format": "ironroot", "report_data": "00" * 32},
    )
    args: dict[str, object] = {
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 600,
        "verifier_id": VerifierId("Ironroot", "ironroot 0.1.0"),
        "submods": {"ironroot": appraisal},
        "nonce": b"n" * 32,
    }
    args.update(changes)
    return AttestationResult(**args)  # type: ignore[arg-type]


def _segments(token: bytes) -> list[bytes]:
    return [base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4)) for s in token.split(b".")]


def test_jwt_claims_use_the_ear_json_names() -> None:
    token = sign_ear_jwt(_result(), KEY)
    header, payload, signature = _segments(token)
    assert json.loads(header) == {
        "alg": "ES384",
        "typ": "JWT",
        "kid": base64.urlsafe_b64encode(KEY.kid).rstrip(b"=").decode(),
    }
    claims = json.loads(payload)
    assert claims["eat_profile"] == EAR_PROFILE == "tag:github.com,2023:veraison/ear"
    assert claims["ear.verifier-id"] == {"developer": "Ironroot", "build": "ironroot 0.1.0"}
    sub = claims["submods"]["ironroot"]
    assert sub["ear.status"] == "warning"
    assert sub["ear.trustworthiness-vector"] == {
        "instance-identity": 2,
        "executables": 33,
        "hardware": 2,
    }
    assert sub["ear.appraisal-policy-id"].startswith("urn:ironroot:")
    assert sub["ear.ironroot.reasons"] == [
        "reference-values: no logged reference value for runtime"
    ]
    assert len(signature) == 96  # ES384 r || s


def test_cwt_claims_use_the_ear_cbor_labels() -> None:
    token = sign_ear_cwt(_result(), KEY)
    message = Sign1.decode(token)
    assert message.protected[1] == -35
    assert message.protected[4] == KEY.kid
    assert message.payload is not None
    claims = decode_cbor(message.payload)
    assert isinstance(claims, dict)
    assert claims[265] == EAR_PROFILE
    assert claims[6] == int(NOW.timestamp())
    assert claims[4] == claims[6] + 600
    assert claims[10] == b"n" * 32
    assert claims[1004] == {0: "Ironroot", 1: "ironroot 0.1.0"}
    sub = claims[266]["ironroot"]
    assert sub[1000] == 32  # warning
    assert sub[1001] == {0: 2, 2: 33, 4: 2}
    assert sub[-70100] == ["reference-values: no logged reference value for runtime"]


@pytest.mark.parametrize("sign", [sign_ear_jwt, sign_ear_cwt], ids=["jwt", "cwt"])
def test_round_trip(sign: object) -> None:
    result = _result()
    token = sign(result, KEY)  # type: ignore[operator]
    back = verify_ear(token, [KEY.public_key], now=NOW)
    assert back == result
    assert back.status is TrustTier.WARNING
    assert back.submods["ironroot"].tags() == {
        "executables": "unrecognized_rt",
        "hardware": "genuine_hw",
        "instance-identity": "recognized_instance",
    }


@pytest.mark.parametrize("sign", [sign_ear_jwt, sign_ear_cwt], ids=["jwt", "cwt"])
def test_unknown_key(sign: object) -> None:
    token = sign(_result(), KEY)  # type: ignore[operator]
    other = PrivateKey.generate(Algorithm.ES384)
    with pytest.raises(UnknownIssuer):
        verify_ear(token, [other.public_key], now=NOW)
    with pytest.raises(UnknownIssuer):
        verify_ear(token, [], now=NOW)


@pytest.mark.parametrize("sign", [sign_ear_jwt, sign_ear_cwt], ids=["jwt", "cwt"])
def test_expired_and_future(sign: object) -> None:
    token = sign(_result(), KEY)  # type: ignore[operator]
    with pytest.raises(ResultExpired):
        verify_ear(token, [KEY.public_key], now=NOW + timedelta(seconds=600))
    verify_ear(token, [KEY.public_key], now=NOW + timedelta(seconds=599))
    with pytest.raises(ResultExpired):
        verify_ear(token, [KEY.public_key], now=NOW - timedelta(minutes=5))


def test_jwt_bad_signature_and_tampered_claims() -> None:
    token = sign_ear_jwt(_result(), KEY)
    head, payload, signature = token.split(b".")
    bad_sig = signature[:-2] + (b"A" if signature[-2:-1] != b"A" else b"B") + signature[-1:]
    with pytest.raises(BadSignature):
        verify_ear(b".".join((head, payload, bad_sig)), [KEY.public_key], now=NOW)
    claims = json.loads(_segments(token)[1])
    claims["submods"]["ironroot"]["ear.status"] = "affirming"
    claims["submods"]["ironroot"]["ear.trustworthiness-vector"]["executables"] = 2
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    with pytest.raises(BadSignature):
        verify_ear(b".".join((head, forged, signature)), [KEY.public_key], now=NOW)


def test_cwt_bad_signature() -> None:
    token = bytearray(sign_ear_cwt(_result(), KEY))
    token[-1] ^= 1
    with pytest.raises(BadSignature):
        verify_ear(bytes(token), [KEY.public_key], now=NOW)


def test_jwt_alg_none_and_wrong_alg() -> None:
    token = sign_ear_jwt(_result(), KEY)
    _, payload, _ = token.split(b".")
    kid = base64.urlsafe_b64encode(KEY.kid).rstrip(b"=").decode()
    for alg, error in (("none", MalformedInput), ("HS256", MalformedInput)):
        head = json.dumps({"alg": alg, "kid": kid}).encode()
        forged = base64.urlsafe_b64encode(head).rstrip(b"=") + b"." + payload + b"."
        with pytest.raises(error):
            verify_ear(forged, [KEY.public_key], now=NOW)
    head = json.dumps({"alg": "ES256", "kid": kid}).encode()
    forged = base64.urlsafe_b64encode(head).rstrip(b"=") + b"." + payload + b".AAAA"
    with pytest.raises(AlgorithmNotAccepted):
        verify_ear(forged, [KEY.public_key], now=NOW)


def test_only_es_keys_sign_jwts() -> None:
    with pytest.raises(AlgorithmNotAccepted):
        sign_ear_jwt(_result(), PrivateKey.generate(Algorithm.ML_DSA_87))
    mldsa = PrivateKey.generate(Algorithm.ML_DSA_87)
    token = sign_ear_cwt(_result(), mldsa)  # a CWT may be signed ML-DSA-87
    assert decode_ear(token, [mldsa.public_key]).status is TrustTier.WARNING


def test_newer_claim_names_are_accepted() -> None:
    claims = {
        "eat_profile": "tag:ietf.org,2026:rats/ear#04",
        "iat": 1666529184,
        "ear_verifier_id": {"developer": "https://veraison-project.org", "build": "vts 0.0.1"},
        "ear_raw_evidence": "NzQ3MjY5NzM2NTYzNzQK",
        "submods": {
            "PSA": {
                "ear_status": "contraindicated",
                "ear_trustworthiness_vector": {
                    "instance-identity": 2,
                    "executables": 96,
                    "hardware": 2,
                },
                "ear_appraisal_policy_ids": ["https://veraison.example/policy/1/60a0068d"],
            }
        },
        "unknown-claim": {"ignored": True},
    }
    result = AttestationResult.from_json_claims(claims)
    psa = result.submods["PSA"]
    assert psa.status is TrustTier.CONTRAINDICATED
    assert psa.trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME
    assert psa.policy_id == "https://veraison.example/policy/1/60a0068d"
    assert result.raw_evidence == base64.urlsafe_b64decode("NzQ3MjY5NzM2NTYzNzQK")


def test_older_draft_example_parses() -> None:
    claims = {
        "eat_profile": "tag:github.com,2023:veraison/ear",
        "iat": 1666529184,
        "ear.verifier-id": {"developer": "https://veraison-project.org", "build": "vts 0.0.1"},
        "ear.raw-evidence": "NzQ3MjY5NzM2NTYzNzQK",
        "submods": {
            "PSA": {
                "ear.status": "contraindicated",
                "ear.trustworthiness-vector": {
                    "instance-identity": 2,
                    "executables": 96,
                    "hardware": 2,
                },
                "ear.appraisal-policy-id": "https://veraison.example/policy/1/60a0068d",
            }
        },
    }
    result = AttestationResult.from_json_claims(claims)
    assert result.status is TrustTier.CONTRAINDICATED
    assert AttestationResult.from_cbor_claims(result.to_cbor_claims()) == result


@pytest.mark.parametrize(
    "claims",
    [
        {"eat_profile": "other", "iat": 1, "ear.verifier-id": {}, "submods": {}},
        {
            "eat_profile": EAR_PROFILE,
            "iat": 1,
            "ear.verifier-id": {"developer": "d", "build": "b"},
            "submods": {},
        },
        {
            "eat_profile": EAR_PROFILE,
            "iat": 1,
            "ear.verifier-id": {"developer": "d", "build": "b"},
            "submods": {
                "x": {"ear.status": "affirming", "ear.trustworthiness-vector": {"executables": 96}}
            },
        },
        {
            "eat_profile": EAR_PROFILE,
            "iat": 1,
            "ear.verifier-id": {"developer": "d", "build": "b"},
            "submods": {"x": {"ear.status": "fine", "ear.trustworthiness-vector": {"hardware": 2}}},
        },
        {
            "eat_profile": EAR_PROFILE,
            "iat": 1,
            "ear.verifier-id": {"developer": "d", "build": "b"},
            "submods": {"x": {"ear.status": "none", "ear.trustworthiness-vector": {"hw": 2}}},
        },
        {
            "eat_profile": EAR_PROFILE,
            "iat": 1,
            "ear.verifier-id": {"developer": "d", "build": "b"},
            "submods": {
                "x": {"ear.status": "none", "ear.trustworthiness-vector": {"hardware": 300}}
            },
        },
    ],
    ids=["profile", "no-submods", "status-too-trusting", "tier-name", "category", "range"],
)
def test_malformed_claims(claims: dict[str, object]) -> None:
    with pytest.raises(MalformedInput):
        AttestationResult.from_json_claims(claims)


@pytest.mark.parametrize("claim", ["iat", "exp", "nbf"])
@pytest.mark.parametrize("value", [10**30, 2**64 - 1, 253_402_300_800])
def test_a_time_past_the_year_9999_is_refused(claim: str, value: int) -> None:
    """A JSON EAR's integers have no bound: `exp` 10**30 was accepted, and every report, page
    or audit bundle that shows the EAR's times as a date failed on it (no date holds it)."""
    claims = {
        "eat_profile": EAR_PROFILE,
        "iat": 1,
        "ear.verifier-id": {"developer": "d", "build": "b"},
        "submods": {
            "x": {"ear.status": "affirming", "ear.trustworthiness-vector": {"hardware": 2}}
        },
        claim: value,
    }
    with pytest.raises(MalformedInput) as caught:
        AttestationResult.from_json_claims(claims)
    assert caught.value.detail.startswith(f"{claim} {str(value)[:24]} is past the year 9999")
    assert AttestationResult.from_json_claims({**claims, claim: 253_402_300_799}).iat >= 1


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        (-128, TrustTier.CONTRAINDICATED),
        (-97, TrustTier.CONTRAINDICATED),
        (-96, TrustTier.WARNING),
        (-33, TrustTier.WARNING),
        (-32, TrustTier.AFFIRMING),
        (-2, TrustTier.AFFIRMING),
        (-1, TrustTier.NONE),
        (0, TrustTier.NONE),
        (1, TrustTier.NONE),
        (2, TrustTier.AFFIRMING),
        (31, TrustTier.AFFIRMING),
        (32, TrustTier.WARNING),
        (95, TrustTier.WARNING),
        (96, TrustTier.CONTRAINDICATED),
        (127, TrustTier.CONTRAINDICATED),
    ],
)
def test_tier_boundaries(value: int, tier: TrustTier) -> None:
    assert tier_of(value) is tier


def test_code_points_are_the_ar4si_ones() -> None:
    assert TRUST_CATEGORIES[2] == "executables"
    assert TRUST_CLAIM_TAGS["executables"] == {
        -1: "verifier_malfunction",
        0: "no_claim",
        1: "unexpected_evidence",
        2: "approved_rt",
        3: "approved_boot",
        32: "unsafe_rt",
        33: "unrecognized_rt",
        96: "contraindicated_rt",
        99: "crypto_failed",
    }
    assert [t.code for t in TrustTier] == [0, 2, 32, 96]


@settings(max_examples=examples(40), deadline=None)
@given(
    vector=st.dictionaries(
        st.sampled_from(TRUST_CATEGORIES), st.integers(-128, 127), min_size=1, max_size=8
    ),
    reasons=st.lists(st.text(max_size=20), max_size=3),
)
def test_claims_round_trip(vector: dict[str, int], reasons: list[str]) -> None:
    result = AttestationResult(
        iat=1,
        verifier_id=VerifierId("d", "b"),
        submods={"s": Appraisal.from_vector(vector, reasons=reasons)},
    )
    assert AttestationResult.from_json_claims(result.to_json_claims()) == result
    assert AttestationResult.from_cbor_claims(result.to_cbor_claims()) == result


@pytest.mark.parametrize(
    ("statuses", "overall"),
    [
        ((TrustTier.AFFIRMING, TrustTier.NONE), TrustTier.NONE),
        ((TrustTier.NONE, TrustTier.AFFIRMING, TrustTier.AFFIRMING), TrustTier.NONE),
        ((TrustTier.NONE, TrustTier.WARNING), TrustTier.NONE),
        ((TrustTier.WARNING, TrustTier.AFFIRMING), TrustTier.WARNING),
        ((TrustTier.NONE, TrustTier.CONTRAINDICATED), TrustTier.CONTRAINDICATED),
        ((TrustTier.NONE, TrustTier.NONE), TrustTier.NONE),
        ((TrustTier.AFFIRMING, TrustTier.AFFIRMING), TrustTier.AFFIRMING),
    ],
)
def test_a_submodule_appraised_as_none_is_never_affirmed_overall(
    statuses: tuple[TrustTier, ...], overall: TrustTier
) -> None:
    vectors = {
        TrustTier.NONE: {"instance-identity": AR4SI.UNEXPECTED_EVIDENCE},
        TrustTier.AFFIRMING: {"instance-identity": 2},
        TrustTier.WARNING: {"executables": 33},
        TrustTier.CONTRAINDICATED: {"instance-identity": 96},
    }
    submods = {f"s{i}": Appraisal.from_vector(vectors[s]) for i, s in enumerate(statuses)}
    result = _result(submods=submods)
    assert result.status is overall
    for sign in (sign_ear_jwt, sign_ear_cwt):
        assert verify_ear(sign(result, KEY), [KEY.public_key], now=NOW).status is overall


@pytest.mark.parametrize("crit", [[99], ["ironroot-ext"]], ids=["int", "text"])
def test_cwt_with_a_critical_header_it_does_not_understand_is_refused(crit: list[object]) -> None:
    # RFC 9052 §3.1: a recipient refuses a message whose crit names a header it does not
    # process; the JWT path refuses any crit, the CWT path must too.
    claims = encode_cbor(_result().to_cbor_claims())
    token = sign1(KEY, claims, {KID: KEY.kid, 2: crit, crit[0]: 1}).encode()
    assert Sign1.decode(token).protected[2] == crit  # well-formed COSE, signature valid
    with pytest.raises(MalformedInput) as caught:
        verify_ear(token, [KEY.public_key], now=NOW)
    assert type(caught.value) is MalformedInput
    assert "crit" in str(caught.value)
    assert verify_ear(sign_ear_cwt(_result(), KEY), [KEY.public_key], now=NOW) == _result()


@pytest.mark.parametrize("value", [96, -97], ids=["contraindicated", "negative"])
@pytest.mark.parametrize("sign", [sign_ear_jwt, sign_ear_cwt], ids=["jwt", "cwt"])
def test_a_status_of_none_cannot_hide_a_worse_vector(sign: object, value: int) -> None:
    # A signed EAR whose submodule says "none" over a contraindicated vector understates
    # what its verifier found (a relying party asking `status != "contraindicated"` would
    # pass it): refused like any status more trusting than its vector.
    forged = _result().to_cbor_claims()
    forged[266]["ironroot"][1000] = 0
    forged[266]["ironroot"][1001] = {0: 2, 2: value}
    token = sign1(KEY, encode_cbor(forged), {KID: KEY.kid}).encode()
    if sign is sign_ear_jwt:
        claims = _result().to_json_claims()
        claims["submods"]["ironroot"]["ear.status"] = "none"
        claims["submods"]["ironroot"]["ear.trustworthiness-vector"] = {
            "instance-identity": 2,
            "executables": value,
        }
        header = base64.urlsafe_b64encode(
            json.dumps(
                {"alg": "ES384", "kid": base64.urlsafe_b64encode(KEY.kid).decode().rstrip("=")}
            ).encode()
        ).rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        signing_input = header + b"." + body
        token = (
            signing_input + b"." + base64.urlsafe_b64encode(KEY.sign(signing_input)).rstrip(b"=")
        )
    with pytest.raises(MalformedInput, match="claims more trust than its trust vector"):
        verify_ear(token, [KEY.public_key], now=NOW)
    # "none" over a vector with nothing worse than a warning claims no more trust: accepted.
    for vector in ({"instance-identity": 1, "hardware": 2}, {"executables": 33}):
        assert Appraisal(TrustTier.NONE, vector).status is TrustTier.NONE


def _signed_jwt(claims: dict[str, object]) -> bytes:
    kid = base64.urlsafe_b64encode(KEY.kid).rstrip(b"=").decode()
    head = base64.urlsafe_b64encode(json.dumps({"alg": "ES384", "kid": kid}).encode())
    body = base64.urlsafe_b64encode(json.dumps(claims).encode())
    signing_input = head.rstrip(b"=") + b"." + body.rstrip(b"=")
    return signing_input + b"." + base64.urlsafe_b64encode(KEY.sign(signing_input)).rstrip(b"=")


@pytest.mark.parametrize(
    ("older", "newer", "older_value", "newer_value"),
    [
        ("ear.status", "ear_status", "affirming", "contraindicated"),
        (
            "ear.trustworthiness-vector",
            "ear_trustworthiness_vector",
            {"instance-identity": 2},
            {"instance-identity": 96},
        ),
        ("ear.appraisal-policy-id", "ear_appraisal_policy_ids", "lenient", ["strict"]),
    ],
    ids=["status", "vector", "policy"],
)
def test_an_appraisal_spelling_one_claim_both_ways_is_refused(
    older: str, newer: str, older_value: object, newer_value: object
) -> None:
    # A consumer of the later draft reads ear_status (contraindicated), this one read
    # ear.status (affirming): the same signed EAR meant two things. Refused as ambiguous.
    claims = _result(submods={"x": Appraisal.from_vector({"instance-identity": 2})})
    body = claims.to_json_claims()
    body["submods"]["x"][older] = older_value
    body["submods"]["x"][newer] = newer_value
    with pytest.raises(MalformedInput, match="both"):
        verify_ear(_signed_jwt(body), [KEY.public_key], now=NOW)
    del body["submods"]["x"][newer]  # one spelling alone is read
    assert verify_ear(_signed_jwt(body), [KEY.public_key], now=NOW).submods["x"]


@pytest.mark.parametrize(
    ("older", "newer"),
    [("ear.verifier-id", "ear_verifier_id"), ("ear.raw-evidence", "ear_raw_evidence")],
)
def test_an_ear_spelling_one_claim_both_ways_is_refused(older: str, newer: str) -> None:
    body = _result(raw_evidence=b"evidence").to_json_claims()
    body[newer] = (
        {"developer": "Someone", "build": "else"} if older == "ear.verifier-id" else "b3RoZXI"
    )
    with pytest.raises(MalformedInput, match="both"):
        verify_ear(_signed_jwt(body), [KEY.public_key], now=NOW)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_a_jwt_whose_claims_are_not_utf8_is_refused(encoding: str) -> None:
    # RFC 7519 §7.2: the claims set is UTF-8 JSON. Python's json.loads would guess UTF-16/32
    # (or skip a BOM) from bytes, where other JWT libraries refuse: one token, two readings.
    kid = base64.urlsafe_b64encode(KEY.kid).rstrip(b"=").decode()
    head = base64.urlsafe_b64encode(json.dumps({"alg": "ES384", "kid": kid}).encode())
    claims = json.dumps(_result().to_json_claims()).encode(encoding)
    body = base64.urlsafe_b64encode(claims)
    signing_input = head.rstrip(b"=") + b"." + body.rstrip(b"=")
    token = signing_input + b"." + base64.urlsafe_b64encode(KEY.sign(signing_input)).rstrip(b"=")
    with pytest.raises(MalformedInput, match="UTF-8"):
        verify_ear(token, [KEY.public_key], now=NOW)


@pytest.mark.parametrize("form", ["jwt", "cwt"])
def test_an_ear_before_its_nbf_is_refused(form: str) -> None:
    # RFC 7519 §4.1.5 / RFC 8392 §3.1.5: a token must not be accepted before nbf.
    start = int(NOW.timestamp()) + 300
    if form == "jwt":
        claims = _result().to_json_claims()
        claims["nbf"] = start
        token = _signed_jwt(claims)
    else:
        cbor = _result().to_cbor_claims()
        cbor[5] = start
        token = sign1(KEY, encode_cbor(cbor), {KID: KEY.kid}).encode()
    with pytest.raises(ResultExpired, match="not valid before"):
        verify_ear(token, [KEY.public_key], now=NOW)
    with pytest.raises(ResultExpired):  # a minute of clock skew, no more
        verify_ear(token, [KEY.public_key], now=NOW + timedelta(seconds=239))
    assert verify_ear(token, [KEY.public_key], now=NOW + timedelta(seconds=240)).nbf == start


def _nested(levels: int) -> object:
    value: object = 0
    for _ in range(levels):
        value = {"a": value}
    return value


def _token_with_evidence(form: str, evidence: dict[str, object]) -> bytes:
    appraisal = Appraisal.from_vector({"instance-identity": 2}, evidence=evidence)
    result = _result(submods={"ironroot": appraisal})
    if form == "jwt":
        return _signed_jwt(result.to_json_claims())
    return sign1(KEY, encode_cbor(result.to_cbor_claims()), {KID: KEY.kid}).encode()


@pytest.mark.parametrize("form", ["jwt", "cwt"])
def test_a_jwt_nests_and_counts_within_the_limits_of_a_cwt(form: str) -> None:
    """Claims, submods, an appraisal and its evidence are four levels: evidence nesting eight
    more is the limit (12) in either form, and a container holds at most 4,096 entries. A
    JWT read past them would hand the release policy claims its walk cannot take (Python's
    recursion limit: an untyped error, no audit record, a 500)."""
    assert verify_ear(_token_with_evidence(form, {"deep": _nested(8)}), [KEY.public_key], now=NOW)
    for evidence in ({"deep": _nested(9)}, {"wide": [0] * 4097}):
        with pytest.raises(LimitExceeded):
            verify_ear(_token_with_evidence(form, evidence), [KEY.public_key], now=NOW)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_jwt_whose_claims_hold_a_number_json_has_not_is_refused(number: str) -> None:
    """RFC 8259 has no NaN or Infinity (Python's reader takes them, and 1e400 for infinity):
    a claim ``Infinity`` would pass every ``>=`` a release policy asks of it."""
    claims = _token_with_evidence("jwt", {"svn": 7})
    head, body, _signature = claims.split(b".")
    text = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)).replace(
        b'"svn": 7', b'"svn": ' + number.encode()
    )
    assert number.encode() in text
    signing_input = head + b"." + base64.urlsafe_b64encode(text).rstrip(b"=")
    token = signing_input + b"." + base64.urlsafe_b64encode(KEY.sign(signing_input)).rstrip(b"=")
    with pytest.raises(MalformedInput, match="not JSON"):
        verify_ear(token, [KEY.public_key], now=NOW)


def _jwt_with_header(header: bytes) -> bytes:
    head = base64.urlsafe_b64encode(header).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(_result().to_json_claims()).encode()).rstrip(b"=")
    signing_input = head + b"." + body
    return signing_input + b"." + base64.urlsafe_b64encode(KEY.sign(signing_input)).rstrip(b"=")


@pytest.mark.parametrize(
    ("template", "encoding"),
    [
        ('{{"alg": "ES256", "alg": "ES384", "kid": "{kid}"}}', "utf-8"),
        ('{{"alg": "ES384", "kid": "{other}", "kid": "{kid}"}}', "utf-8"),
        ('{{"alg": "ES384", "kid": "{kid}", "typ": "JWT", "typ": "JWT"}}', "utf-8"),
        ('{{"alg": "ES384", "kid": "{kid}"}}', "utf-16"),
        ('{{"alg": "ES384", "kid": "{kid}"}}', "utf-8-sig"),
    ],
    ids=["alg-twice", "kid-twice", "typ-twice", "utf-16", "bom"],
)
def test_a_jwt_header_another_reader_may_read_otherwise_is_refused(
    template: str, encoding: str
) -> None:
    """The header is held to what the claims are (``_json``): a member twice (a reader that
    keeps the first member sees another alg or kid than one that keeps the last), UTF-16, a
    byte order mark. Each is signed by the verifier's own key, so nothing else refuses it."""
    kid = base64.urlsafe_b64encode(KEY.kid).rstrip(b"=").decode()
    other = base64.urlsafe_b64encode(PrivateKey.generate(Algorithm.ES384).kid).rstrip(b"=")
    header = template.format(kid=kid, other=other.decode()).encode(encoding)
    token = _jwt_with_header(header)
    with pytest.raises(MalformedInput) as caught:
        verify_ear(token, [KEY.public_key], now=NOW)
    assert caught.value.code == "malformed"
    assert "JWS header" in caught.value.detail
    # the same header written once, in UTF-8, verifies: the refusal is of the repetition
    once = json.dumps({"alg": "ES384", "kid": kid, "typ": "JWT"}).encode()
    assert verify_ear(_jwt_with_header(once), [KEY.public_key], now=NOW).iat == int(NOW.timestamp())


# --- attacks that hold: each must be able to fail --------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"jwk": {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}},
        {"jku": "https://attacker.example/keys"},
        {"x5u": "https://attacker.example/chain.pem"},
        {"x5c": ["MIIB"]},
    ],
    ids=["jwk", "jku", "x5u", "x5c"],
)
def test_a_header_naming_another_key_is_never_used(extra: dict[str, object]) -> None:
    # Only the kid selects a key, and only among the configured ones: a token the attacker
    # signed with its own key, however its header points at that key, is an unknown issuer.
    attacker = PrivateKey.generate(Algorithm.ES384)
    kid = base64.urlsafe_b64encode(attacker.kid).rstrip(b"=").decode()
    head = base64.urlsafe_b64encode(json.dumps({"alg": "ES384", "kid": kid, **extra}).encode())
    body = base64.urlsafe_b64encode(json.dumps(_result().to_json_claims()).encode())
    signing_input = head.rstrip(b"=") + b"." + body.rstrip(b"=")
    token = signing_input + b"." + base64.urlsafe_b64encode(attacker.sign(signing_input))
    with pytest.raises(UnknownIssuer):
        verify_ear(token.rstrip(b"="), [KEY.public_key], now=NOW)


def test_hs256_keyed_with_the_verifiers_public_key_is_refused() -> None:
    import hashlib
    import hmac

    kid = base64.urlsafe_b64encode(KEY.kid).rstrip(b"=").decode()
    head = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": kid}).encode())
    body = base64.urlsafe_b64encode(json.dumps(_result().to_json_claims()).encode())
    signing_input = head.rstrip(b"=") + b"." + body.rstrip(b"=")
    for secret in (KEY.public_key.to_der(), KEY.public_key.to_pem()):
        mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
        token = signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")
        with pytest.raises(MalformedInput) as caught:
            verify_ear(token, [KEY.public_key], now=NOW)
        assert caught.value.code == "unsupported-algorithm"


def test_es256_under_the_kid_of_an_es384_key_is_refused() -> None:
    # The same kid mapped to an ES384 key: an ES256 signature (another key) is refused on
    # its algorithm, before any signature check.
    es256 = PrivateKey.generate(Algorithm.ES256)
    kid = base64.urlsafe_b64encode(KEY.kid).rstrip(b"=").decode()
    head = base64.urlsafe_b64encode(json.dumps({"alg": "ES256", "kid": kid}).encode())
    body = base64.urlsafe_b64encode(json.dumps(_result().to_json_claims()).encode())
    signing_input = head.rstrip(b"=") + b"." + body.rstrip(b"=")
    token = signing_input + b"." + base64.urlsafe_b64encode(es256.sign(signing_input)).rstrip(b"=")
    with pytest.raises(AlgorithmNotAccepted):
        verify_ear(token, {KEY.kid: KEY.public_key}, now=NOW)
    cwt = sign1(es256, encode_cbor(_result().to_cbor_claims()), {KID: KEY.kid}).encode()
    with pytest.raises(AlgorithmNotAccepted):
        verify_ear(cwt, {KEY.kid: KEY.public_key}, now=NOW)


def test_a_cwt_with_alg_or_kid_unprotected_is_refused() -> None:
    claims = encode_cbor(_result().to_cbor_claims())
    with pytest.raises(UnknownIssuer):  # the kid is only trusted protected
        verify_ear(
            sign1(KEY, claims, {}, unprotected={KID: KEY.kid}).encode(), [KEY.public_key], now=NOW
        )
    # alg only in the unprotected bucket, over a valid signature of the protected kid
    protected = encode_cbor({4: KEY.kid})
    to_sign = encode_cbor(["Signature1", protected, b"", claims])
    message = encode_cbor(cbor2.CBORTag(18, [protected, {1: -35}, claims, KEY.sign(to_sign)]))
    with pytest.raises(MalformedInput, match="alg"):
        verify_ear(message, [KEY.public_key], now=NOW)


@pytest.mark.parametrize("form", ["jwt", "cwt"])
def test_an_eat_nonce_array_is_refused(form: str) -> None:
    nonce = b"n" * 32
    if form == "jwt":
        claims = _result().to_json_claims()
        claims["eat_nonce"] = [claims["eat_nonce"], b64url_text(b"m" * 32)]
        token = _signed_jwt(claims)
    else:
        cbor = _result().to_cbor_claims()
        cbor[10] = [nonce, b"m" * 32]
        token = sign1(KEY, encode_cbor(cbor), {KID: KEY.kid}).encode()
    with pytest.raises(MalformedInput, match="eat_nonce"):
        verify_ear(token, [KEY.public_key], now=NOW)


def b64url_text(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("form", ["jwt", "cwt"])
def test_exp_and_iat_edges(form: str) -> None:
    t = int(NOW.timestamp())
    sign = sign_ear_jwt if form == "jwt" else sign_ear_cwt
    with pytest.raises(ResultExpired):  # exp == now is expired
        verify_ear(sign(_result(exp=t), KEY), [KEY.public_key], now=NOW)
    verify_ear(sign(_result(exp=t + 1), KEY), [KEY.public_key], now=NOW)
    with pytest.raises(ResultExpired):  # issued 61 s ahead: beyond the skew
        verify_ear(sign(_result(iat=t + 61, exp=t + 600), KEY), [KEY.public_key], now=NOW)
    verify_ear(sign(_result(iat=t + 60, exp=t + 600), KEY), [KEY.public_key], now=NOW)


@pytest.mark.parametrize("status", [TrustTier.AFFIRMING, TrustTier.WARNING])
@pytest.mark.parametrize("form", ["jwt", "cwt"])
def test_a_trusting_status_over_a_vector_with_no_trust_claim_is_refused(
    status: TrustTier, form: str
) -> None:
    # Every claim in the none tier (unexpected evidence, no claim): nothing was appraised,
    # so a submodule may not say affirming or warning over it.
    if form == "jwt":
        claims = _result().to_json_claims()
        claims["submods"]["ironroot"]["ear.status"] = status.value
        claims["submods"]["ironroot"]["ear.trustworthiness-vector"] = {"instance-identity": 1}
        token = _signed_jwt(claims)
    else:
        cbor = _result().to_cbor_claims()
        cbor[266]["ironroot"][1000] = status.code
        cbor[266]["ironroot"][1001] = {0: 1, 2: 0}
        token = sign1(KEY, encode_cbor(cbor), {KID: KEY.kid}).encode()
    with pytest.raises(MalformedInput, match="claims more trust than its trust vector"):
        verify_ear(token, [KEY.public_key], now=NOW)
    assert Appraisal.from_vector({"instance-identity": 1}).status is TrustTier.NONE
    # a none-tier claim beside an affirming one does not make the appraisal none
    assert Appraisal(status, {"instance-identity": 2, "executables": 0}).status is status
