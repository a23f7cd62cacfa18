"""The JSON report model: what parses, how it reads, and every malformed report refused."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json

import pytest
from _safe_helpers import SHA384, SHA512, report, report_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.errors import LimitExceeded, MalformedInput, MalformedReport
from ironroot.safe import SafeLimits, parse_report_json


def test_parses_every_field() -> None:
    r = parse_report_json(report_bytes())
    assert r.review_framework_version == "1.1"
    assert r.device.vendor == "ACME Inc"
    assert r.device.product == "Roadrunner Trap"
    assert r.device.category == "storage"
    assert r.device.repo_tag == "release_v1_2_3"
    assert r.device.fw_version == "1.2.3"
    assert r.device.fw_hash_sha2_384 == bytes.fromhex(SHA384)
    assert r.device.fw_hash_sha2_512 == bytes.fromhex(SHA512)
    assert r.device.manifest == ()
    assert r.device.manifest_matches is None
    assert r.audit.srp == "Example Review Provider"
    assert r.audit.methodology == "whitebox"
    assert r.audit.completion_date == dt.date(2023, 6, 25)
    assert r.audit.report_version == "1.2"
    assert r.audit.scope == "1"
    assert r.audit.scope_number == 1
    assert r.audit.cvss_version == "3.1"
    assert [i.cvss_score for i in r.audit.issues] == [7.9, 4.2]
    assert r.audit.issues[0].cve is None
    assert r.audit.issues[1].cve == "CVE-2014-10000"
    assert r.audit.issues[1].cwe == "CWE-222"
    assert r.max_cvss == 7.9
    assert r.firmware_hashes() == {"sha384": bytes.fromhex(SHA384), "sha512": bytes.fromhex(SHA512)}


def test_report_is_frozen() -> None:
    r = parse_report_json(report_bytes())
    with pytest.raises(AttributeError):
        r.device.vendor = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"device__fw_hash_sha2_384": "0x" + SHA384.upper()}, lambda r: r.device.fw_hash_sha2_384),
        ({"device__fw_hash_sha2_384": ""}, lambda r: r.device.fw_hash_sha2_384 is None),
        ({"device__fw_hash_sha2_512": None}, lambda r: r.device.fw_hash_sha2_512 is None),
        ({"device__category": None, "device__repo_tag": None}, lambda r: r.device.category is None),
        ({"audit__completion_date": "2025-8-3"}, lambda r: r.audit.completion_date.day == 3),
        ({"audit__completion_date": "None"}, lambda r: r.audit.completion_date is None),
        ({"audit__scope_number": 1.0}, lambda r: r.audit.scope == "1"),
        ({"audit__scope_number": "3.1"}, lambda r: r.audit.scope_number is None),
        ({"audit__scope_number": None, "audit__scope": "2"}, lambda r: r.audit.scope_number == 2),
        ({"audit__scope_number": None}, lambda r: r.audit.scope is None),
        ({"audit__solid_ver": "1.0"}, lambda r: r.audit.solid_version == "1.0"),
        ({"audit__issues": []}, lambda r: r.max_cvss is None),
        ({"iat": 1754594588}, lambda r: r.issued_at == 1754594588),
    ],
)
def test_published_variants_parse(changes: dict[str, object], check: object) -> None:
    assert check(parse_report_json(report_bytes(**changes)))  # type: ignore[operator]


@pytest.mark.parametrize("cve", [None, "", "none", "None", "N/A"])
def test_absent_cve_spellings(cve: str | None) -> None:
    doc = report()
    doc["audit"]["issues"][0]["cve"] = cve
    assert parse_report_json(json.dumps(doc).encode()).audit.issues[0].cve is None


def test_manifest_digest_is_checked() -> None:
    manifest = [{"file_name": "a.c", "file_hash": "cd" * 64}]
    text = json.dumps(manifest, separators=(",", ":")).encode()
    good = report_bytes(
        device__manifest=manifest,
        device__fw_hash_sha2_384=hashlib.sha384(text).hexdigest(),
        device__fw_hash_sha2_512=hashlib.sha512(text).hexdigest(),
    )
    assert parse_report_json(good).device.manifest_matches is True
    bad = report_bytes(device__manifest=manifest)
    parsed = parse_report_json(bad)
    assert parsed.device.manifest_matches is False
    assert parsed.device.manifest[0].file_hash == bytes.fromhex("cd" * 64)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "not an object"),
        (b'{"device": {}, "device": {}}', "duplicate member"),
        (report_bytes()[:-1], "truncated"),
        (report_bytes(review_framework_version=None), "no framework version"),
        (report_bytes(device=None), "no device"),
        (report_bytes(audit=None), "no audit"),
        (report_bytes(extra="x"), "unknown top-level member"),
        (report_bytes(device__serial="x"), "unknown device member"),
        (report_bytes(audit__extra=1), "unknown audit member"),
        (report_bytes(device__vendor=None), "no vendor"),
        (report_bytes(device__vendor=7), "vendor not text"),
        (report_bytes(device__fw_version=None), "no fw version"),
        (report_bytes(device__fw_hash_sha2_384="xyz"), "hash not hex"),
        (report_bytes(device__fw_hash_sha2_384="abc"), "odd hex"),
        (report_bytes(device__fw_hash_sha2_384="ab" * 20), "not a SHA-2 size"),
        (report_bytes(device__fw_hash_sha2_384="ab" * 64), "longer than SHA-384"),
        (report_bytes(device__fw_hash_sha2_384=12), "hash not text"),
        (report_bytes(device__manifest={}), "manifest not array"),
        (report_bytes(device__manifest=[{"file_name": "a"}]), "manifest entry no hash"),
        (report_bytes(device__manifest=[{"file_name": "a", "file_hash": ""}]), "empty hash"),
        (report_bytes(audit__completion_date="25/06/2023"), "date format"),
        (report_bytes(audit__completion_date="2023-02-30"), "not a date"),
        (report_bytes(audit__scope="1"), "scope and scope_number"),
        (report_bytes(audit__scope_number=[1]), "scope not scalar"),
        (report_bytes(audit__issues={}), "issues not array"),
        (report_bytes(audit__issues=None), "no issues"),
        (report_bytes(audit__cvss_version=None), "no cvss version"),
        (report_bytes(audit__methodology=None), "no methodology"),
        (report_bytes(iat="now"), "iat not a number"),
        (report_bytes(iss=5), "iss not text"),
        (b'{"review_framework_version": NaN}', "NaN"),
    ],
)
def test_malformed_reports_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(MalformedReport):
        parse_report_json(data)


@pytest.mark.parametrize(
    ("score", "ok"),
    [("0.0", True), ("10.0", True), ("7", True), ("10.1", False), ("7.95", False), ("high", False),
     ("-1.0", False), ("", False), (7.9, False), (None, False)],
)  # fmt: skip
def test_cvss_scores(score: object, ok: bool) -> None:
    doc = report()
    doc["audit"]["issues"][0]["cvss_score"] = score
    data = json.dumps(doc).encode()
    if ok:
        assert parse_report_json(data).audit.issues[0].cvss_score == float(str(score))
    else:
        with pytest.raises(MalformedReport):
            parse_report_json(data)


@pytest.mark.parametrize("missing", ["title", "cvss_score", "cvss_vector", "cwe", "description"])
def test_issue_members_are_required(missing: str) -> None:
    doc = report()
    del doc["audit"]["issues"][1][missing]
    with pytest.raises(MalformedReport):
        parse_report_json(json.dumps(doc).encode())


def test_limits() -> None:
    small = SafeLimits(max_report_bytes=100)
    with pytest.raises(LimitExceeded):
        parse_report_json(report_bytes(), small)
    with pytest.raises(LimitExceeded):
        parse_report_json(report_bytes(), SafeLimits(max_issues=1))
    with pytest.raises(LimitExceeded):
        parse_report_json(report_bytes(device__vendor="v" * 200), SafeLimits(max_text=100))
    manifest = [{"file_name": f"f{i}", "file_hash": "cd" * 64} for i in range(3)]
    with pytest.raises(LimitExceeded):
        parse_report_json(report_bytes(device__manifest=manifest), SafeLimits(max_manifest=2))


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedInput):
        parse_report_json(b"[" * 100_000 + b"]" * 100_000)


@settings(max_examples=examples(60), deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_escape_as_untyped_errors(data: bytes) -> None:
    with contextlib.suppress(MalformedInput):
        parse_report_json(data)


@settings(max_examples=examples(60), deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=8,
    ),
    st.sampled_from(["device", "audit", "review_framework_version", "iat"]),
)
def test_any_json_value_in_any_member_is_typed(value: object, member: str) -> None:
    doc = report()
    doc[member] = value
    with contextlib.suppress(MalformedInput):
        parse_report_json(json.dumps(doc).encode())
