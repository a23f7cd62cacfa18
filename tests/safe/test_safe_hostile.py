"""A hostile review provider or a man in the middle against SFR parsing and verification:
headers read two ways, text that lies on screen or cannot be re-encoded."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cbor2
import pytest
from _safe_helpers import KID, provider, report, report_bytes

from ironroot.attestation import Endorsements
from ironroot.cose import CONTENT_TYPE, cose_sign, encode_cbor
from ironroot.cose import KID as KID_LABEL
from ironroot.crypto import PrivateKey
from ironroot.errors import LimitExceeded, MalformedReport, VerificationFailed
from ironroot.safe import (
    ProviderKeys,
    Review,
    build_sfr_corim,
    parse_report_json,
    parse_sfr_corim,
    sign_report,
    verify_report,
)


@pytest.fixture(scope="module")
def review_key() -> tuple[PrivateKey, ProviderKeys]:
    return provider()


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _jws(key: PrivateKey, header: bytes, payload: bytes) -> bytes:
    signing_input = _b64(header) + b"." + _b64(payload)
    return signing_input + b"." + _b64(key.sign(signing_input))


@pytest.mark.parametrize(
    "header",
    [
        b'{"alg":"none","alg":"ES512","kid":"%s"}',
        b'{"alg":"ES512","kid":"Someone Else","kid":"%s"}',
        b'{"alg":"ES512","kid":"%s","typ":"JWT","typ":"JWT"}',
    ],
)
def test_a_jws_header_with_a_duplicate_member_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys], header: bytes
) -> None:
    # joserfc keeps the last of two members; another verifier may keep the first and see
    # alg "none" or another provider's kid. The header must read one way only.
    key, providers = review_key
    token = _jws(key, header % KID.encode(), report_bytes())
    with pytest.raises(MalformedReport, match="duplicate JSON member"):
        verify_report(token, providers)


@pytest.mark.parametrize(
    "field", ["device__vendor", "device__product", "audit__srp", "audit__report_version"]
)
def test_a_report_with_a_lone_surrogate_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys], field: str
) -> None:
    # "\ud800" is valid JSON but no Unicode text: the report verified, then printing it,
    # re-signing it or publishing it raised an untyped UnicodeEncodeError.
    key, providers = review_key
    data = report_bytes(**{field: "ACME \ud800"})
    assert b"\\ud800" in data
    header = b'{"alg":"ES512","kid":"%s"}' % KID.encode()
    with pytest.raises(MalformedReport, match="lone surrogate"):
        verify_report(_jws(key, header, data), providers)
    with pytest.raises(MalformedReport, match="lone surrogate"):
        sign_report(data, key, KID)


def test_a_lone_surrogate_in_an_issue_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    key, providers = review_key
    issue = dict(report()["audit"]["issues"][0], description="reads \udfff past the end")
    header = b'{"alg":"ES512","kid":"%s"}' % KID.encode()
    with pytest.raises(MalformedReport, match=r"issues\[0\].description holds a lone"):
        verify_report(_jws(key, header, report_bytes(audit__issues=[issue])), providers)
    # a surrogate pair written as two escapes is one character, and fine
    issue["description"] = "reads \ud83d\ude00 past the end"
    token = _jws(key, header, report_bytes(audit__issues=[issue]))
    assert verify_report(token, providers).report.audit.issues[0].description.count("\U0001f600")


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"iss": "ACME \ud800"}, r"JWT claim 'iss' holds a lone surrogate"),
        ({"sub": "\udfff"}, r"JWT claim 'sub' holds a lone surrogate"),
        ({"jti": "\ud800"}, r"JWT claim 'jti' holds a lone surrogate"),
        ({"aud": "\ud800"}, r"JWT claim 'aud' holds a lone surrogate"),
        ({"aud": ["ok", "\ud800"]}, r"JWT claim 'aud\[1\]' holds a lone surrogate"),
        ({"aud": [1, {"x": "\ud800"}]}, r"JWT claim 'aud' must be text or an array of text"),
        ({"aud": [[]]}, r"JWT claim 'aud' must be text or an array of text"),
        ({"iss": "x" * 70_000}, r"JWT claim 'iss' is longer than 65536 characters"),
    ],
)
def test_jwt_claims_are_text(
    review_key: tuple[PrivateKey, ProviderKeys], claims: dict[str, object], message: str
) -> None:
    # iss, sub, jti and aud were only type-checked (aud not even its members): a lone
    # surrogate in one verified, then re-signing the report raised an untyped
    # UnicodeEncodeError, and aud carried any JSON value.
    key, providers = review_key
    data = report_bytes(**claims)
    header = b'{"alg":"ES512","kid":"%s"}' % KID.encode()
    error = LimitExceeded if "longer" in message else MalformedReport
    with pytest.raises(error, match=message):
        verify_report(_jws(key, header, data), providers)
    with pytest.raises(error, match=message):
        sign_report(data, key, KID)


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


def _corim_with(change: Callable[[dict[Any, Any]], None]) -> bytes:
    issue = dict(report()["audit"]["issues"][0])
    corim = cbor2.loads(build_sfr_corim(parse_report_json(report_bytes(audit__issues=[issue]))))
    comid = _thaw(cbor2.loads(corim.value[1][0].value))
    change(comid)
    body = dict(corim.value)
    body[1] = [cbor2.CBORTag(506, cbor2.dumps(comid, datetime_as_timestamp=True))]
    return encode_cbor(cbor2.CBORTag(corim.tag, body))


def _sfr(comid: dict[Any, Any]) -> dict[Any, Any]:
    sfr: dict[Any, Any] = comid[4][10][0][1][0][1][0][1][-1]
    return sfr


def _other_firmware_reference(comid: dict[Any, Any]) -> None:
    env = comid[4][10][0][0][0][0]
    comid[4][0] = [[env, [{1: {2: [[-43, b"\x66" * 48]]}}]]]


def _hidden_issue(comid: dict[Any, Any]) -> None:
    _sfr(comid)[9] = [{0: "t", 1: "d", 2: {0: "9.8", 1: "AV:N"}}]


def _issue_extra(comid: dict[Any, Any]) -> None:
    _sfr(comid)[5][0][7] = "withdrawn"


def _cvss_extra(comid: dict[Any, Any]) -> None:
    _sfr(comid)[5][0][2]["score"] = "0.0"


def _condition_on_another_class_id(comid: dict[Any, Any]) -> None:
    comid[4][10][0][0][0][0][0][0] = b"\x01" * 16


def _condition_on_one_instance(comid: dict[Any, Any]) -> None:
    comid[4][10][0][0][0][0][1] = cbor2.CBORTag(37, b"\x02" * 16)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_condition_on_another_class_id, "different environments"),
        (_condition_on_one_instance, "different environments"),
        (_other_firmware_reference, "triples other than conditional endorsements"),
        (_hidden_issue, "ocp-safe-sfr \\(-1\\) has unknown key"),
        (_issue_extra, "SFR issue 0 has unknown key"),
        (_cvss_extra, "assessment has unknown key"),
    ],
)
def test_a_corim_sfr_with_content_this_parser_would_skip_is_refused(
    change: Callable[[dict[Any, Any]], None], why: str
) -> None:
    # A general CoRIM verifier would apply a reference-value triple beside the SFR, and
    # another SFR reader might see an issue filed under a key Ironroot skipped.
    assert parse_sfr_corim(_corim_with(lambda comid: None)).max_cvss == 7.9
    with pytest.raises(MalformedReport, match=why):
        parse_sfr_corim(_corim_with(change))


def _signed_corim_valid(
    key: PrivateKey, validity: dict[int, object] | None, extra: dict[int, object] | None = None
) -> bytes:
    corim = cbor2.loads(build_sfr_corim(parse_report_json(report_bytes())))
    body = dict(corim.value) | (extra or {})
    if validity is not None:
        body[4] = {k: cbor2.CBORTag(1, v) if isinstance(v, int) else v for k, v in validity.items()}
    payload = encode_cbor(cbor2.CBORTag(corim.tag, body))
    message = cose_sign(
        [key],
        payload,
        protected={CONTENT_TYPE: "application/rim+cbor"},
        signer_headers=[({KID_LABEL: KID.encode()}, {})],
    )
    return message.encode()


def test_an_expired_corim_sfr_is_refused_as_an_expired_jwt_is(
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    # The CoRIM's rim-validity (4) was ignored: a report its provider let expire in 2024
    # still counted as a review in 2026 (a JWT's exp was honoured).
    key, providers = review_key
    now = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    day = 86_400
    t = int(now.timestamp())
    assert verify_report(_signed_corim_valid(key, None), providers, now=now).format == "cose"
    live = _signed_corim_valid(key, {0: t - day, 1: t + day})
    assert verify_report(live, providers, now=now).report.expires_at == t + day + 1
    with pytest.raises(VerificationFailed) as info:
        verify_report(_signed_corim_valid(key, {1: t - 700 * day}), providers, now=now)
    assert info.value.code == "report-expired"
    with pytest.raises(VerificationFailed) as info:
        verify_report(_signed_corim_valid(key, {0: t + day, 1: t + 9 * day}), providers, now=now)
    assert info.value.code == "report-not-yet-valid"
    for bad in ({0: t}, {1: "2024-01-01"}, {1: t, 2: t}, {0: t + day, 1: t}):
        with pytest.raises(MalformedReport, match="rim-validity"):
            verify_report(_signed_corim_valid(key, bad), providers, now=now)


@pytest.mark.parametrize("tail", [b"==", b"+/"])
def test_a_signature_that_is_not_base64url_says_so(
    review_key: tuple[PrivateKey, ProviderKeys], tail: bytes
) -> None:
    # The message was "not a compact JWS: " and nothing more.
    key, providers = review_key
    token = _jws(key, b'{"alg":"ES512","kid":"%s"}' % KID.encode(), report_bytes())
    with pytest.raises(MalformedReport, match="not strict unpadded base64url"):
        verify_report(token + tail, providers)


@pytest.mark.parametrize("score", ["\u0669.\u0668", "\uff19.\uff18", "\u0969.\u096e"])
def test_a_score_in_other_digits_than_ascii_is_refused(score: str) -> None:
    # float() reads Arabic-Indic or full-width "9.8" as 9.8; other SFR readers refuse it or
    # read NaN, which compares false with every threshold: one text, two verdicts.
    issue = dict(report()["audit"]["issues"][0], cvss_score=score)
    with pytest.raises(MalformedReport, match="CVSS score as text"):
        parse_report_json(report_bytes(audit__issues=[issue]))


def test_a_date_in_other_digits_than_ascii_is_refused() -> None:
    with pytest.raises(MalformedReport, match="not a YYYY-MM-DD date"):
        parse_report_json(report_bytes(audit__completion_date="\uff12\uff10\uff12\uff13-06-25"))
    odd_scope = parse_report_json(report_bytes(audit__scope_number="\u0663"))
    assert odd_scope.audit.scope_number is None


@pytest.mark.parametrize(
    "scope",
    ["9" * 4301, str(2**64), 2**64, 10**4000],
    ids=["4301-digit-text", "text-past-64-bits", "integer-past-64-bits", "4001-digit-integer"],
)
def test_a_scope_no_corim_can_hold_is_no_scope_number(scope: object) -> None:
    # A scope of 4,301 digits escaped ``scope_number`` as ValueError (int() of text past
    # 4,300 digits; target safe, fuzz campaign), and one past 64 bits was built into a CoRIM
    # (a bignum) that parse_sfr_corim then refused: both are no scope number, so the CoRIM
    # profile refuses the report up front.
    parsed = parse_report_json(report_bytes(audit__scope_number=scope))
    assert parsed.audit.scope_number is None
    with pytest.raises(MalformedReport) as caught:
        build_sfr_corim(parsed)
    assert type(caught.value) is MalformedReport
    assert caught.value.code == "malformed-report"
    assert "integer scope number" in caught.value.detail
    top = parse_report_json(report_bytes(audit__scope_number=str(2**64 - 1)))
    assert parse_sfr_corim(build_sfr_corim(top)).audit.scope_number == 2**64 - 1


def _with_signatures(signed: bytes, count: int) -> bytes:
    """``signed`` (a COSE_Sign SFR) with its one signature given ``count`` times."""
    body = list(cbor2.loads(signed).value)
    (signature,) = body[3]
    body[3] = [signature] * count
    return cbor2.dumps(cbor2.CBORTag(98, body))


def test_a_cose_sfr_with_its_signature_copied_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    # Every copy verified, as the one signature does: a published SFR with its signature
    # copied 1,000 times (128 KB) cost 1.8 s of ECDSA in verify_report, and verified.
    key, keys = review_key
    signed = sign_report(report_bytes(), key, KID, format="cose")
    assert verify_report(_with_signatures(signed, 1), keys).kid == KID
    with pytest.raises(MalformedReport) as twice:
        verify_report(_with_signatures(signed, 2), keys)
    assert type(twice.value) is MalformedReport
    assert twice.value.code == "malformed-report"
    assert twice.value.detail == "the COSE SFR carries one signature twice"
    with pytest.raises(LimitExceeded) as many:
        verify_report(_with_signatures(signed, 1000), keys)
    assert type(many.value) is LimitExceeded
    assert many.value.code == "limit-exceeded"
    assert many.value.detail == "the COSE SFR has 1000 signatures, more than 8"


def _endorse_a_digest_too(comid: dict[Any, Any]) -> None:
    comid[4][10][0][1][0][1][0][1][2] = [[-43, b"\x66" * 48]]


def _comid_extension(comid: dict[Any, Any]) -> None:
    comid[-7] = "x"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_endorse_a_digest_too, "endorsement mval has unknown key"),
        (_comid_extension, "CoMID has unknown key"),
    ],
)
def test_a_corim_sfr_endorsing_more_than_the_sfr_is_refused(
    change: Callable[[dict[Any, Any]], None], why: str
) -> None:
    with pytest.raises(MalformedReport, match=why):
        parse_sfr_corim(_corim_with(change))


def test_a_corim_with_an_unknown_top_level_key_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    key, providers = review_key
    with pytest.raises(MalformedReport, match="CoRIM has unknown key"):
        verify_report(_signed_corim_valid(key, None, extra={99: "x"}), providers)


def test_a_corim_sfr_counts_through_its_not_after_second_as_a_jwt_stops_at_exp(
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    # rim-validity not-after was read as a JWT exp (``t >= not-after`` refused): a CoRIM SFR
    # stopped counting one second before the instant its validity-map includes, while logged
    # reference values count through it. A JWT's exp is the first instant it no longer counts.
    key, providers = review_key
    end = int(dt.datetime(2026, 12, 6, tzinfo=dt.UTC).timestamp())
    at = lambda t: dt.datetime.fromtimestamp(t, dt.UTC)  # noqa: E731
    corim = _signed_corim_valid(key, {1: end})
    verified = verify_report(corim, providers, now=at(end + 0.999))
    assert verified.report.expires_at == end + 1
    with pytest.raises(VerificationFailed) as info:
        verify_report(corim, providers, now=at(end + 1))
    assert info.value.code == "report-expired"
    jwt = sign_report(report_bytes(exp=end), key, KID)
    assert verify_report(jwt, providers, now=at(end - 0.001)).report.expires_at == end
    with pytest.raises(VerificationFailed) as info:
        verify_report(jwt, providers, now=at(end))
    assert info.value.code == "report-expired"
    # An appraisal asks again at its own now (Endorsements.reviews_for): the same boundary.
    review = Review(verified.report, "cose", KID, "did:example:lab", "sha384:00", True)
    alg, digest = next(iter(verified.report.firmware_hashes().items()))
    endorsements = Endorsements(reviews=(review,))
    assert endorsements.reviews_for(alg, digest, now=at(end + 0.999)) == (review,)
    assert endorsements.reviews_for(alg, digest, now=at(end + 1)) == ()


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", b"1" + b"0" * 400), ("nbf", b"-" + b"9" * 30), ("iat", b"18446744073709551616")],
)
def test_a_jwt_date_wider_than_64_bits_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys], claim: str, value: bytes
) -> None:
    # A signed "exp" of 10**400 verified, and the review it carried then broke every
    # Endorsements built with it (OverflowError: the validity epochs are floats).
    key, providers = review_key
    payload = report_bytes()[:-1] + b', "%s": %s}' % (claim.encode(), value)
    token = _jws(key, b'{"alg":"ES512","kid":"%s"}' % KID.encode(), payload)
    with pytest.raises(MalformedReport) as info:
        verify_report(token, providers)
    assert info.value.code == "malformed-report"
    assert f"JWT claim {claim!r} must be a NumericDate" in info.value.detail
    widest = report_bytes()[:-1] + b', "exp": 18446744073709551615}'
    verified = verify_report(
        _jws(key, b'{"alg":"ES512","kid":"%s"}' % KID.encode(), widest), providers
    )
    Endorsements(
        reviews=(Review(verified.report, "jws", KID, "did:example:lab", "sha384:00", True),)
    )


def test_a_corim_sfr_naming_two_review_providers_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    # Only the first manifest creator was read (and checked against the signing key): a
    # provider could name itself first and a more trusted provider after it, for any reader
    # that keeps the last creator, or lists them all, to credit the review to.
    key, providers = review_key
    own = {0: KID, 2: [1]}
    for entities in ([own, {0: "Trusted Lab", 2: [1]}], [own, {0: KID, 2: [0, 1]}]):
        with pytest.raises(MalformedReport) as info:
            verify_report(_signed_corim_valid(key, None, extra={5: entities}), providers)
        assert info.value.code == "malformed-report"
        assert "2 manifest-creator entities" in info.value.detail
    # another entity in another role (a tag creator) is not a second provider
    fine = _signed_corim_valid(key, None, extra={5: [own, {0: "ACME Inc", 2: [0]}]})
    assert verify_report(fine, providers).report.audit.srp == KID


def test_a_report_whose_two_hashes_name_two_firmwares_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    # The SHA-384 is the source manifest's (as the OCP library makes it), the SHA-512 is
    # another image's: the review was found under both hashes, so a reader querying by
    # SHA-512 took it as a review of firmware it never covered.
    key, providers = review_key
    manifest = [{"file_name": "main.c", "file_hash": "cd" * 64}]
    text = json.dumps(manifest, separators=(",", ":")).encode()
    sha384, sha512 = hashlib.sha384(text).hexdigest(), hashlib.sha512(text).hexdigest()
    for h384, h512 in ((sha384, "ee" * 64), ("ee" * 48, sha512)):
        data = report_bytes(
            device__manifest=manifest, device__fw_hash_sha2_384=h384, device__fw_hash_sha2_512=h512
        )
        with pytest.raises(MalformedReport) as info:
            verify_report(_jws(key, b'{"alg":"ES512","kid":"%s"}' % KID.encode(), data), providers)
        assert info.value.code == "malformed-report"
        assert "name different firmware" in info.value.detail
    both = report_bytes(
        device__manifest=manifest, device__fw_hash_sha2_384=sha384, device__fw_hash_sha2_512=sha512
    )
    assert parse_report_json(both).device.manifest_matches is True


_UNDER_A_MEMORY_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # a read without a bound fails here
from ironroot.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_provider_key_that_never_ends_or_never_answers_is_refused(tmp_path: Path) -> None:
    """``--provider-key`` (a path, a folder of keys, or ``kid=path``) is read within the key
    limit: ``/dev/zero`` filled memory (``internal-error``), a named pipe nobody writes to
    was waited on forever."""
    import os
    import subprocess
    import sys

    report_file = tmp_path / "report.jws"
    report_file.write_text("x")
    fifo = tmp_path / "stuck.pem"
    os.mkfifo(fifo)
    cases = {
        "/dev/zero": "FAILED: limit-exceeded: /dev/zero is larger than 1048576 bytes\n",
        "kid=/dev/zero": "FAILED: limit-exceeded: /dev/zero is larger than 1048576 bytes\n",
        str(fifo): f"FAILED: config: {fifo}: ",
    }
    for key, expected in cases.items():
        argv = ["safe", "verify", str(report_file), "--provider-key", key]
        run = subprocess.run(
            [sys.executable, "-c", _UNDER_A_MEMORY_LIMIT, *argv],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert run.returncode == 1, (key, run.stderr)
        assert run.stderr.startswith(expected), (key, run.stderr)
        assert "Traceback" not in run.stderr


def _condition_names_sha384_only(comid: dict[Any, Any]) -> None:
    mval = comid[4][10][0][0][0][1][0][1]
    mval[2] = [d for d in mval[2] if d[0] == -43]


def _condition_names_sha512_only(comid: dict[Any, Any]) -> None:
    mval = comid[4][10][0][0][0][1][0][1]
    mval[2] = [d for d in mval[2] if d[0] == -44]


@pytest.mark.parametrize(
    ("change", "alg"),
    [(_condition_names_sha384_only, -44), (_condition_names_sha512_only, -43)],
)
def test_an_sfr_digest_its_condition_does_not_name_is_refused(
    change: Callable[[dict[Any, Any]], None], alg: int
) -> None:
    # The condition names the firmware the review holds for by one hash; the SFR names
    # another hash besides. A CoRIM verifier applies the review to the condition's firmware
    # only; Ironroot found it under the other hash too, which may be another image's.
    with pytest.raises(MalformedReport) as info:
        parse_sfr_corim(_corim_with(change))
    assert info.value.code == "malformed-report"
    assert info.value.detail == (
        f"the SFR's hash alg {alg} firmware digest is not in the condition: a CoRIM verifier "
        "would not apply the review to that firmware"
    )


def _triples_keyed_by_a_float(comid: dict[Any, Any]) -> None:
    comid[4] = {10.0: comid[4].pop(10)}


def _fw_digests_keyed_by_a_float(comid: dict[Any, Any]) -> None:
    fw = _sfr(comid)[4][0]
    fw[1.0] = fw.pop(1)


def _triples_keyed_by(label: object) -> Callable[[dict[Any, Any]], None]:
    def change(comid: dict[Any, Any]) -> None:
        comid[4] = {label: comid[4].pop(10)}

    return change


def _fw_digests_keyed_by(label: object) -> Callable[[dict[Any, Any]], None]:
    def change(comid: dict[Any, Any]) -> None:
        fw = _sfr(comid)[4][0]
        fw[label] = fw.pop(1)

    return change


def _measurement_keyed_by_true(comid: dict[Any, Any]) -> None:
    measurement = comid[4][10][0][1][0][1][0]
    measurement[True] = measurement.pop(1)


def _class_keyed_by_true(comid: dict[Any, Any]) -> None:
    for env in (comid[4][10][0][0][0][0], comid[4][10][0][1][0][0]):
        env[0][True] = env[0].pop(1)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (_triples_keyed_by_a_float, "CoMID triples (4) key 10.0"),
        (_fw_digests_keyed_by_a_float, "SFR fw-identifier key 1.0"),
        (_measurement_keyed_by_true, "endorsement measurement key True"),
        (_class_keyed_by_true, "endorsement class key True"),
        (_triples_keyed_by(cbor2.CBORSimpleValue(10)), "CoMID triples (4) key CBORSimpleValue(10)"),
        (_triples_keyed_by(cbor2.CBORTag(2, b"\x0a")), "CoMID triples (4) key CBORTag(2, b'\\n')"),
        (_fw_digests_keyed_by(b"\x01"), "SFR fw-identifier key b'\\x01'"),
        (_fw_digests_keyed_by(None), "SFR fw-identifier key None"),
    ],
)
def test_a_corim_sfr_map_key_that_equals_an_integer_but_is_not_one_is_refused(
    change: Callable[[dict[Any, Any]], None], what: str
) -> None:
    # A decoded map is a dict, where 10.0 == 10 and True == 1: a map keyed by them was read
    # as if keyed by the integer, though every other CoRIM reader sees another key (and
    # none of what this parser read there).
    with pytest.raises(MalformedReport) as info:
        parse_sfr_corim(_corim_with(change))
    assert info.value.code == "malformed-report"
    assert info.value.detail == f"{what} is not an integer or text"


@pytest.mark.parametrize("roles", [[True], [1.0], [-1, 1.0]])
def test_a_corim_sfr_provider_role_that_is_no_integer_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys], roles: list[object]
) -> None:
    # ``1 in [True]`` holds in Python: an entity whose role is the boolean true (or 1.0) was
    # taken for the manifest creator, the review provider, which no other reader sees.
    key, providers = review_key
    entities = [{0: KID, 2: roles}]
    with pytest.raises(MalformedReport) as info:
        verify_report(_signed_corim_valid(key, None, extra={5: entities}), providers)
    assert info.value.code == "malformed-report"
    assert info.value.detail == "CoRIM entity 0 roles must be an array of unsigned integers"
