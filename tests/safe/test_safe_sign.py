"""Signing and verifying SFRs (JWS, JWT, CoRIM in COSE_Sign/COSE_Sign1), and every header,
algorithm and structure fault refused with the exact error."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path

import cbor2
import pytest
from _safe_helpers import KID, SHA384, provider, report, report_bytes, store
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.cose import KID as KID_LABEL
from ironroot.cose import CoseSign, cose_sign, encode_cbor, sign1
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    AlgorithmNotAccepted,
    BadSignature,
    LimitExceeded,
    MalformedInput,
    MalformedReport,
    UnknownIssuer,
    UnsupportedAlgorithm,
    VerificationFailed,
)
from ironroot.safe import (
    SFR_PROFILE_OID,
    SafeLimits,
    build_sfr_corim,
    inspect_report,
    parse_compact_jws,
    parse_report_json,
    parse_sfr_corim,
    report_format,
    sign_report,
    verify_report,
)
from ironroot.safe._jws import sign_compact_jws


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _jws(header: dict[str, object], payload: bytes, key: PrivateKey | None) -> bytes:
    signing_input = _b64(json.dumps(header).encode()) + b"." + _b64(payload)
    signature = key.sign(signing_input) if key is not None else b""
    return signing_input + b"." + _b64(signature)


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", [Algorithm.ES384, Algorithm.ES512])
def test_jws_round_trip(alg: Algorithm) -> None:
    key, keys = provider(alg)
    signed = sign_report(report_bytes(), key, KID)
    assert report_format(signed) == "jws"
    header = parse_compact_jws(signed).header
    assert dict(header) == {"alg": alg.label, "kid": KID, "typ": "JWT"}
    verified = verify_report(signed, keys)
    assert verified.report == parse_report_json(report_bytes())
    assert (verified.kid, verified.algorithm, verified.format) == (KID, alg, "jws")
    assert verified.content_type == "application/vnd.ocp.sfr+jws"


@pytest.mark.parametrize("alg", [Algorithm.ES384, Algorithm.ES512])
def test_cose_round_trip(alg: Algorithm) -> None:
    key, keys = provider(alg)
    signed = sign_report(report_bytes(), key, KID, format="cose")
    assert signed[:2] == b"\xd8\x62"  # tag 98: COSE_Sign
    assert report_format(signed) == "cose"
    verified = verify_report(signed, keys)
    original = parse_report_json(report_bytes())
    got = verified.report
    assert (verified.kid, verified.algorithm, verified.format) == (KID, alg, "cose")
    assert got.device.vendor == original.device.vendor
    assert got.device.product == original.device.product
    assert got.device.fw_version == original.device.fw_version
    assert got.device.repo_tag == original.device.repo_tag
    assert got.firmware_hashes() == original.firmware_hashes()
    assert got.audit.srp == original.audit.srp
    assert got.audit.completion_date == original.audit.completion_date
    assert got.audit.scope == "1"
    assert got.audit.methodology is None  # the CoRIM profile has no place for it
    assert got.audit.cvss_version == "3.1"
    assert [(i.title, i.cvss_score, i.cvss_vector, i.cwe, i.cve) for i in got.audit.issues] == [
        (i.title, i.cvss_score, i.cvss_vector, i.cwe, i.cve) for i in original.audit.issues
    ]


def test_corim_is_deterministic_and_carries_the_profile() -> None:
    parsed = parse_report_json(report_bytes())
    corim = build_sfr_corim(parsed)
    assert corim == build_sfr_corim(parsed)
    assert encode_cbor(cbor2.loads(corim)) == corim
    decoded = cbor2.loads(corim)
    assert decoded.tag == 501
    assert decoded.value[3] == cbor2.CBORTag(111, SFR_PROFILE_OID)
    assert parse_sfr_corim(corim).device.vendor == "ACME Inc"


def test_corim_with_manifest_round_trips() -> None:
    manifest = [{"file_name": "src/a.c", "file_hash": "cd" * 64}]
    parsed = parse_report_json(report_bytes(device__manifest=manifest))
    back = parse_sfr_corim(build_sfr_corim(parsed))
    assert back.device.manifest == parsed.device.manifest


def test_cose_sign1_form_verifies() -> None:
    key, keys = provider()
    corim = build_sfr_corim(parse_report_json(report_bytes()))
    signed = sign1(key, corim, {KID_LABEL: KID.encode()}).encode()
    verified = verify_report(signed, keys)
    assert verified.format == "cose"
    assert verified.report.device.product == "Roadrunner Trap"


def test_jwt_time_claims() -> None:
    key, keys = provider()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    expired = sign_report(report_bytes(exp=int(now.timestamp()) - 1), key, KID)
    with pytest.raises(VerificationFailed) as info:
        verify_report(expired, keys, now=now)
    assert info.value.code == "report-expired"
    assert verify_report(expired, keys).report.expires_at is not None  # no clock, no check
    early = sign_report(report_bytes(nbf=int(now.timestamp()) + 60), key, KID)
    with pytest.raises(VerificationFailed) as info:
        verify_report(early, keys, now=now)
    assert info.value.code == "report-not-yet-valid"
    fine = sign_report(report_bytes(iat=1, exp=int(now.timestamp()) + 60), key, KID)
    assert verify_report(fine, keys, now=now).report.issued_at == 1


def test_the_cose_form_keeps_the_jwt_validity() -> None:
    # A JSON report's exp and nbf were dropped when it was signed as cose: a report meant to
    # expire never did (the CoRIM profile holds them as rim-validity).
    key, keys = provider()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    t = int(now.timestamp())
    expired = sign_report(report_bytes(exp=t), key, KID, format="cose")
    assert verify_report(expired, keys, now=now - dt.timedelta(seconds=1)).report.expires_at == t
    with pytest.raises(VerificationFailed) as info:
        verify_report(expired, keys, now=now)
    assert info.value.code == "report-expired"
    early = sign_report(report_bytes(nbf=t + 60, exp=t + 120), key, KID, format="cose")
    with pytest.raises(VerificationFailed) as info:
        verify_report(early, keys, now=now)
    assert info.value.code == "report-not-yet-valid"
    later = now + dt.timedelta(seconds=60)
    assert verify_report(early, keys, now=later).report.not_before == t + 60
    # a not-before alone has no place in a rim-validity (its not-after is required), and an
    # empty window would never verify: neither is signed as cose
    with pytest.raises(MalformedReport, match="the CoRIM profile carries nbf only with exp"):
        sign_report(report_bytes(nbf=t), key, KID, format="cose")
    with pytest.raises(MalformedReport, match="exp is not after nbf"):
        sign_report(report_bytes(nbf=t, exp=t), key, KID, format="cose")
    with pytest.raises(MalformedReport, match="exp is too early"):
        sign_report(report_bytes(exp=-(2**64)), key, KID, format="cose")


def test_inspect_reads_without_a_key() -> None:
    key, _ = provider()
    for fmt in ("jws", "cose"):
        seen = inspect_report(sign_report(report_bytes(), key, KID, format=fmt))  # type: ignore[arg-type]
        assert (seen.kid, seen.format, seen.report.device.vendor) == (KID, fmt, "ACME Inc")


@settings(max_examples=examples(20), deadline=None)
@given(
    vendor=st.text(min_size=1, max_size=20),
    scores=st.lists(st.integers(0, 100), max_size=4),
    fmt=st.sampled_from(["jws", "cose"]),
)
def test_round_trip_property(vendor: str, scores: list[int], fmt: str) -> None:
    key = _KEY
    issues = [
        {"title": f"t{i}", "cvss_score": f"{s / 10:.1f}", "cvss_vector": "AV:N", "cwe": "CWE-1",
         "description": "d", "cve": None}
        for i, s in enumerate(scores)
    ]  # fmt: skip
    data = report_bytes(device__vendor=vendor, audit__issues=issues)
    verified = verify_report(sign_report(data, key, KID, format=fmt), _KEYS)  # type: ignore[arg-type]
    assert verified.report.device.vendor == vendor
    assert [i.cvss_score for i in verified.report.audit.issues] == [s / 10 for s in scores]
    assert verified.report.max_cvss == (max(scores) / 10 if scores else None)


_KEY, _KEYS = provider()


# --- signing refuses ---------------------------------------------------------------------------


def test_sign_refuses_other_algorithms() -> None:
    with pytest.raises(AlgorithmNotAccepted):
        sign_report(report_bytes(), PrivateKey.generate(Algorithm.ES256), KID)
    with pytest.raises(AlgorithmNotAccepted):
        sign_report(report_bytes(), PrivateKey.generate(Algorithm.EDDSA), KID, format="cose")


def test_sign_refuses_malformed_reports() -> None:
    key, _ = provider()
    with pytest.raises(MalformedReport):
        sign_report(b'{"device": 1}', key, KID)
    with pytest.raises(MalformedReport):
        sign_report(report_bytes(), key, "")
    with pytest.raises(MalformedReport):
        sign_report(report_bytes(audit__completion_date="None"), key, KID, format="cose")
    with pytest.raises(MalformedReport):
        sign_report(report_bytes(audit__scope_number="3.1"), key, KID, format="cose")
    no_hash = report_bytes(device__fw_hash_sha2_384="", device__fw_hash_sha2_512="")
    with pytest.raises(MalformedReport):
        sign_report(no_hash, key, KID, format="cose")


# --- JWS must reject ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "HS256", "PS384", "RS256", "ES256", "EdDSA"])
def test_wrong_alg_in_header_is_not_accepted(alg: str) -> None:
    key, keys = provider()
    payload = report_bytes()
    if alg == "none":
        token = _jws({"alg": "none", "kid": KID}, payload, None)
    elif alg == "HS256":
        header = _b64(json.dumps({"alg": alg, "kid": KID}).encode()) + b"." + _b64(payload)
        mac = hmac.new(key.public_key.to_pem(), header, hashlib.sha256).digest()
        token = header + b"." + _b64(mac)
    else:
        token = _jws({"alg": alg, "kid": KID}, payload, key)
    with pytest.raises((AlgorithmNotAccepted, UnsupportedAlgorithm)):
        verify_report(token, keys)


def test_header_alg_must_be_the_keys() -> None:
    key, keys = provider(Algorithm.ES512)
    token = _jws({"alg": "ES384", "kid": KID}, report_bytes(), key)
    with pytest.raises(AlgorithmNotAccepted):
        verify_report(token, keys)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ({"kid": KID}, "no alg"),
        ({"alg": "ES512"}, "no kid"),
        ({"alg": "ES512", "kid": 5}, "kid not text"),
        ({"alg": 512, "kid": KID}, "alg not text"),
        ({"alg": "ES512", "kid": KID, "typ": 1}, "typ not text"),
        ({"alg": "ES512", "kid": KID, "b64": False}, "unencoded payload"),
        ({"alg": "ES512", "kid": KID, "crit": ["exp"], "exp": 1}, "critical extension"),
    ],
)
def test_bad_headers_are_malformed(header: dict[str, object], why: str) -> None:
    key, keys = provider()
    with pytest.raises(MalformedReport):
        verify_report(_jws(header, report_bytes(), key), keys)


def test_unknown_kid_is_unknown_issuer() -> None:
    key, keys = provider()
    with pytest.raises(UnknownIssuer):
        verify_report(sign_report(report_bytes(), key, "Somebody Else"), keys)
    with pytest.raises(UnknownIssuer):
        verify_report(sign_report(report_bytes(), key, KID), store())


@pytest.mark.parametrize(
    "token",
    [
        b"",
        b"abc",
        b"a.b",
        b"a.b.c.d",
        b"eyJhbGciOiJFUzUxMiJ9..",
        b"!!!.e30.AAAA",
        b"e30=.e30.AAAA",
        b"bm90IGpzb24.e30.AAAA",
    ],
)
def test_broken_tokens_are_malformed(token: bytes) -> None:
    _, keys = provider()
    with pytest.raises(MalformedReport):
        verify_report(token, keys)


def test_signed_non_json_payload_is_malformed() -> None:
    key, keys = provider()
    with pytest.raises(MalformedReport):
        verify_report(_jws({"alg": "ES512", "kid": KID}, b"not json", key), keys)
    with pytest.raises(MalformedReport):
        verify_report(_jws({"alg": "ES512", "kid": KID}, b'{"device": {}}', key), keys)


def test_tampering_is_bad_signature_not_malformed() -> None:
    key, keys = provider()
    signed = sign_report(report_bytes(), key, KID)
    head, payload, sig = signed.split(b".")
    # A valid, different report under the original signature: content check never reached.
    other = _b64(report_bytes(device__vendor="Evil Inc"))
    with pytest.raises(BadSignature):
        verify_report(b".".join((head, other, sig)), keys)
    with pytest.raises(BadSignature):
        verify_report(b".".join((head, payload, sig[:-8])), keys)  # short signature


def test_size_limits() -> None:
    key, keys = provider()
    signed = sign_report(report_bytes(), key, KID)
    with pytest.raises(LimitExceeded):
        verify_report(signed, keys, limits=SafeLimits(max_report_bytes=200))
    cose = sign_report(report_bytes(), key, KID, format="cose")
    with pytest.raises(LimitExceeded):
        verify_report(cose, keys, limits=SafeLimits(max_report_bytes=200))


def test_a_cose_report_is_at_most_one_mib() -> None:
    """16 MiB of one-byte CBOR items decode to over a GB of objects: a COSE report (a local
    file's) is refused whole above 1 MiB, before decoding; the published ones are <= 32 KB."""
    key, keys = provider()
    assert SafeLimits().max_cose_bytes == 1024 * 1024
    hostile = bytes((0xD2, 0x84)) + b"\x80" * (1024 * 1024)
    with pytest.raises(LimitExceeded, match=r"^COSE report of 1048578 bytes exceeds 1048576$"):
        verify_report(hostile, keys)
    with pytest.raises(LimitExceeded, match=r"^COSE report of 1048578 bytes exceeds 1048576$"):
        inspect_report(hostile)
    manifest = [{"file_name": f"f{i}", "file_hash": "cd" * 64} for i in range(14_000)]
    big = report_bytes(device__manifest=manifest)
    signing = SafeLimits(max_report_bytes=16 * 1024 * 1024)  # what the cap was for JSON
    cose = sign_report(big, key, KID, format="cose", limits=signing)
    assert len(cose) > 1024 * 1024
    with pytest.raises(LimitExceeded, match=rf"^COSE report of {len(cose)} bytes exceeds 1048576$"):
        verify_report(cose, keys)
    # the JSON form of the same report is refused at the same cap (it was taken to 16 MiB)
    jws = sign_report(big, key, KID, limits=signing)
    with pytest.raises(LimitExceeded, match=r"^JWS of \d+ bytes exceeds the report size limit$"):
        verify_report(jws, keys)


def test_a_json_report_is_at_most_one_mib() -> None:
    """Was: a JSON report (bare or signed as a JWS) was taken up to 16 MiB, where a COSE report
    stopped at 1 MiB; 16 MiB of ``[{},{},…]`` parse to some 400 MB of objects. Every form now
    stops at ``max_report_bytes``, 1 MiB: the published reports are at most 32 KB."""
    limits = SafeLimits()
    assert limits.max_report_bytes == limits.cose_cap == 1024 * 1024
    document = report_bytes()
    at_cap = document[:-1] + b" " * (limits.max_report_bytes - len(document)) + b"}"
    assert len(at_cap) == limits.max_report_bytes
    assert parse_report_json(at_cap).device.vendor  # whitespace: the cap itself is taken
    over = at_cap[:-1] + b" }"
    with pytest.raises(LimitExceeded, match=r"^report of 1048577 bytes exceeds 1048576$"):
        parse_report_json(over)
    key, keys = provider()
    with pytest.raises(LimitExceeded, match=r"^report of 1048577 bytes exceeds 1048576$"):
        sign_report(over, key, KID)
    signed = sign_compact_jws(over, key, KID)  # the payload as it is, whitespace and all
    with pytest.raises(LimitExceeded, match=r"^JWS payload of 1048577 bytes exceeds 1048576$"):
        verify_report(signed, keys)
    with pytest.raises(LimitExceeded, match=r"^JWS payload of 1048577 bytes exceeds 1048576$"):
        inspect_report(signed)
    assert verify_report(sign_compact_jws(at_cap, key, KID), keys).report.device.vendor


# --- COSE must reject --------------------------------------------------------------------------


def _corim(**changes: object) -> bytes:
    return build_sfr_corim(parse_report_json(report_bytes(**changes)))


def test_cose_flipped_bits_are_bad_signature() -> None:
    key, keys = provider()
    msg = CoseSign.decode(sign_report(report_bytes(), key, KID, format="cose"))
    assert msg.payload is not None
    payload = bytearray(msg.payload)
    payload[-5] ^= 0x01
    tampered = CoseSign(
        msg.protected_bytes, msg.protected, msg.unprotected, bytes(payload), msg.signatures
    )
    with pytest.raises(BadSignature):
        verify_report(tampered.encode(), keys)


def test_cose_signer_alg_must_be_the_keys() -> None:
    key, keys = provider(Algorithm.ES512)
    msg = cose_sign([key], _corim(), signer_headers=[({KID_LABEL: KID.encode()}, {})])
    signer = msg.signatures[0]
    forged = cbor2.dumps(
        cbor2.CBORTag(
            98,
            [
                msg.protected_bytes,
                {},
                msg.payload,
                [[cbor2.dumps({1: -35, 4: KID.encode()}), {}, signer.signature]],
            ],
        )
    )
    with pytest.raises(AlgorithmNotAccepted):
        verify_report(forged, keys)


def test_cose_key_of_another_algorithm_is_not_accepted() -> None:
    key = PrivateKey.generate(Algorithm.ES256)
    msg = cose_sign([key], _corim(), signer_headers=[({KID_LABEL: KID.encode()}, {})])
    with pytest.raises(AlgorithmNotAccepted):
        verify_report(msg.encode(), store(key.public_key))


def test_cose_signer_without_kid_or_unknown_kid() -> None:
    key, keys = provider()
    no_kid = cose_sign([key], _corim()).encode()
    with pytest.raises(UnknownIssuer):
        verify_report(no_kid, keys)
    other = cose_sign([key], _corim(), signer_headers=[({KID_LABEL: b"stranger"}, {})])
    with pytest.raises(UnknownIssuer):
        verify_report(other.encode(), keys)


def test_cose_multi_signer() -> None:
    key, keys = provider()
    stranger = PrivateKey.generate(Algorithm.ES384)
    both = cose_sign(
        [stranger, key],
        _corim(),
        signer_headers=[({KID_LABEL: b"stranger"}, {}), ({KID_LABEL: KID.encode()}, {})],
    )
    assert verify_report(both.encode(), keys).kid == KID
    # A known signer whose signature fails spoils the message even if another one verifies.
    bad = both.signatures[1]
    broken = bytes([bad.signature[0] ^ 1]) + bad.signature[1:]
    wrong = type(bad)(bad.protected_bytes, bad.protected, bad.unprotected, broken)
    twice = CoseSign(
        both.protected_bytes,
        both.protected,
        both.unprotected,
        both.payload,
        (both.signatures[1], wrong),
    )
    with pytest.raises(BadSignature):
        verify_report(twice.encode(), keys)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (cbor2.dumps(cbor2.CBORTag(501, {0: "x"})), "no profile"),
        (cbor2.dumps({0: "x"}), "untagged"),
        (cbor2.dumps(cbor2.CBORTag(501, {3: cbor2.CBORTag(111, b"\x06\x01\x01")})), "other OID"),
        (b"\xff", "not CBOR"),
    ],
)
def test_cose_with_a_bad_corim_is_malformed(payload: bytes, why: str) -> None:
    key, keys = provider()
    msg = cose_sign([key], payload, signer_headers=[({KID_LABEL: KID.encode()}, {})])
    with pytest.raises(MalformedReport):
        verify_report(msg.encode(), keys)


def test_corim_structure_faults_are_malformed() -> None:
    corim = cbor2.loads(_corim())
    body = dict(corim.value)
    comid = cbor2.loads(body[1][0].value)
    variants = []
    for change in (
        lambda b, c: b.pop(5),  # no entities
        lambda b, c: b.__setitem__(5, [{0: "x", 2: [2]}]),  # no manifest-creator
        lambda b, c: b.__setitem__(1, [body[1][0], body[1][0]]),  # two CoMIDs
        lambda b, c: c[4].__setitem__(10, []),  # no triples
        lambda b, c: c[4][10][0][1][0][1][0][1][-1].__setitem__(3, "1"),  # scope not int
        lambda b, c: c[4][10][0][1][0][1][0][1][-1].__setitem__(2, 5),  # untagged date
        lambda b, c: c[4][10][0][0][0][0][0].__setitem__(2, "Other"),  # environments differ
    ):
        b, c = dict(body), cbor2.loads(body[1][0].value)
        change(b, c)
        if 1 in b and b[1] is body[1]:
            b[1] = [cbor2.CBORTag(506, cbor2.dumps(c))]
        variants.append(cbor2.dumps(cbor2.CBORTag(501, b)))
    assert comid[4][10]
    for variant in variants:
        with pytest.raises(MalformedReport):
            parse_sfr_corim(variant)


def test_cose_detached_or_malformed_envelopes() -> None:
    key, keys = provider()
    detached = cose_sign(
        [key], _corim(), signer_headers=[({KID_LABEL: KID.encode()}, {})], detached=True
    )
    with pytest.raises(MalformedReport):
        verify_report(detached.encode(), keys)
    for data in (b"\xd8\x62\x80", b"\xd8\x62\x84\x40\xa0\xf6\x80", b"\xd2\x80", b"\xd8\x62"):
        with pytest.raises(MalformedReport):
            verify_report(data, keys)


# --- COSE_Sign itself --------------------------------------------------------------------------


def test_cose_sign_encode_decode_round_trip() -> None:
    a, b = PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ED25519)
    msg = cose_sign(
        [a, b],
        b"payload",
        protected={3: "text/plain"},
        unprotected={"note": "x"},
        signer_headers=[({4: b"a"}, {}), ({}, {4: b"b"})],
    )
    again = CoseSign.decode(msg.encode())
    assert again == msg
    assert [s.kid for s in again.signatures] == [b"a", b"b"]
    assert [s.algorithm for s in again.signatures] == [Algorithm.ES384, Algorithm.ED25519]
    again.verify_signature(again.signatures[0], a.public_key)
    again.verify_signature(again.signatures[1], b.public_key)
    with pytest.raises(AlgorithmNotAccepted):
        again.verify_signature(again.signatures[0], b.public_key)
    with pytest.raises(MalformedInput):
        again.verify_signature(msg.signatures[0].__class__(b"", {}, {}, b""), a.public_key)


def test_cose_sign_detached_payload() -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    msg = CoseSign.decode(cose_sign([key], b"data", detached=True).encode())
    msg.verify_signature(msg.signatures[0], key.public_key, detached_payload=b"data")
    with pytest.raises(BadSignature):
        msg.verify_signature(msg.signatures[0], key.public_key, detached_payload=b"date")
    with pytest.raises(MalformedInput):
        msg.verify_signature(msg.signatures[0], key.public_key)


@pytest.mark.parametrize(
    "data",
    [
        cbor2.dumps([b"", {}, b"x", [[b"", {}, b"s"]]]),  # untagged
        cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"x", b"s"])),  # wrong tag
        cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"x"])),  # three items
        cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"x", []])),  # no signers
        cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"x", [[b"", {}]]])),  # short signer
        cbor2.dumps(cbor2.CBORTag(98, [b"", {1: -7}, b"x", [[b"", {}, b"s"]]])),  # alg unprotected
        cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"x", [[b"", {1: -7}, b"s"]]])),  # signer alg
        cbor2.dumps(cbor2.CBORTag(98, [b"\x01", {}, b"x", [[b"", {}, b"s"]]])),  # not a map
        cbor2.dumps(cbor2.CBORTag(98, [b"", {}, 5, [[b"", {}, b"s"]]])),  # payload type
        cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"x", [[b"", {}, "s"]]])),  # signature type
    ],
)
def test_cose_sign_decode_rejects(data: bytes) -> None:
    with pytest.raises(MalformedInput):
        CoseSign.decode(data)


def test_cose_sign_kid_must_be_bytes() -> None:
    data = cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"x", [[b"", {4: "text"}, b"s"]]]))
    with pytest.raises(MalformedInput):
        _ = CoseSign.decode(data).signatures[0].kid


def test_cose_sign_needs_signers() -> None:
    with pytest.raises(MalformedInput):
        cose_sign([], b"x")
    key = PrivateKey.generate(Algorithm.ES384)
    with pytest.raises(MalformedInput):
        cose_sign([key], b"x", signer_headers=[])
    with pytest.raises(UnsupportedAlgorithm):
        cose_sign([key], b"x", signer_headers=[({1: -36}, {})])


def test_report_helper_is_a_copy() -> None:
    doc = report(device__vendor="Other")
    assert doc["device"]["vendor"] == "Other"
    assert report()["device"]["vendor"] == "ACME Inc"
    assert SHA384 in report_bytes().decode()


def test_the_cose_form_names_every_field_it_drops() -> None:
    # device.class_id and iat were dropped from the CoRIM form without a word
    from ironroot.safe import corim_dropped_fields, parse_report_json

    data = report_bytes(device__class_id="acme-trap-v1", iat=1_700_000_000)
    assert corim_dropped_fields(parse_report_json(data)) == (
        "device.category",
        "device.class_id",
        "audit.methodology",
        "iat",
    )
    key, keys = provider()
    seen = verify_report(sign_report(data, key, KID, format="cose"), keys).report
    assert (seen.device.class_id, seen.issued_at) == (None, None)


def test_cose_form_says_what_it_does_not_carry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CoRIM profile has no place for category and methodology: signing as cose says so
    (stderr, and `not_carried` in JSON) instead of dropping them silently; jws keeps them."""
    import json

    from ironroot.cli import main

    key = PrivateKey.generate(Algorithm.ES384)
    (tmp_path / "k.pem").write_bytes(key.to_pem())
    (tmp_path / "r.json").write_bytes(report_bytes())
    base = ["safe", "sign", str(tmp_path / "r.json"), "--key", str(tmp_path / "k.pem")]
    base += ["--kid", "lab", "--json"]
    assert main([*base, "--format", "cose", "--out", str(tmp_path / "r.cose")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["not_carried"] == ["device.category", "audit.methodology"]
    assert "device.category is not carried in the CoRIM (COSE) form" in captured.err
    assert main([*base, "--format", "jws", "--out", str(tmp_path / "r.jws")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["not_carried"] == []
    assert captured.err == ""


def test_sign_refuses_a_report_file_over_the_limit_by_its_size_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``safe sign`` of a 200 MiB file (sparse): refused from its size, beyond the largest
    report (1 MiB). It was read whole (some 240 MB of memory), then refused."""
    from ironroot.cli import main

    key = PrivateKey.generate(Algorithm.ES384)
    (tmp_path / "k.pem").write_bytes(key.to_pem())
    big = tmp_path / "big.json"
    with big.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)
    argv = ["safe", "sign", str(big), "--key", str(tmp_path / "k.pem"), "--kid", "lab",
            "--out", str(tmp_path / "r.jws")]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"ironroot: limit-exceeded: {big} is larger than 1048576 bytes\n"
    )
    assert not (tmp_path / "r.jws").exists()
