"""A finding's CVSS score and vector that disagree: the report is judged by the worse of the
two, in every form and every consumer; a vector that reads two ways is refused."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from _safe_helpers import KID, SHA384, STATEMENT_ISS, ocp_safe, provider, report

from ironroot.crypto import PrivateKey
from ironroot.errors import MalformedReport
from ironroot.platform import SafeRequirement
from ironroot.safe import (
    ProviderKeys,
    build_sfr_corim,
    cvss_base_score,
    parse_report_json,
    parse_sfr_corim,
    review_from_statement,
    reviews_for,
    sfr_statement,
    sign_report,
    verify_report,
)

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8


@pytest.fixture(scope="module")
def review_key() -> tuple[PrivateKey, ProviderKeys]:
    return provider()


def _jws(key: PrivateKey, payload: bytes) -> bytes:
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=")  # noqa: E731
    signing_input = b64(b'{"alg":"ES512","kid":"%s"}' % KID.encode()) + b"." + b64(payload)
    return signing_input + b"." + b64(key.sign(signing_input))


def _one_issue(score: str, vector: str) -> bytes:
    issue: dict[str, Any] = dict(report()["audit"]["issues"][0], cvss_score=score)
    issue["cvss_vector"] = vector
    return json.dumps(report(audit__issues=[issue])).encode()


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        (CRITICAL, 9.8),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("AV:L/AC:L/PR:L/UI:N/S:C/C:L/I:H/A:L", 7.9),
        ("AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
        ("AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ("/AV:P/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:L", 3.7),  # as SK hynix publishes it
        ("av:n/ac:l/pr:n/ui:n/s:u/c:h/i:h/a:h", 9.8),
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),  # CVSS v2
        ("(AV:N/AC:L/Au:N/C:C/I:C/A:C)", 10.0),
        ("CVSS:4.0/AV:A/AC:H/AT:P/PR:H/UI:N/VC:L/VI:L/VA:L/SC:N/SI:L/SA:N", 2.0),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3),
        ("AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3),  # 4.0, no prefix
        ("AV:L/AC:L/AT:P/PR:L/UI:N/VC:L/VI:L/VA:L", None),  # 4.0 lacking SC, SI, SA
        ("N/A", None),
        ("AV:N", None),
    ],
)
def test_base_scores_of_cvss_vectors(vector: str, score: float | None) -> None:
    assert cvss_base_score(vector) == score


def test_a_low_score_beside_a_critical_vector_is_judged_by_the_vector(
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    # "3.0" passed every threshold although the signed vector computes to 9.8: one report,
    # two verdicts (a reader that scores the vector refuses the firmware).
    key, keys = review_key
    data = _one_issue("3.0", CRITICAL)
    parsed = parse_report_json(data)
    issue = parsed.audit.issues[0]
    assert (issue.cvss_score, issue.vector_score, issue.effective_score) == (3.0, 9.8, 9.8)
    assert parsed.max_cvss == 9.8
    statement = sfr_statement(sign_report(data, key, KID), key, iss=STATEMENT_ISS, providers=keys)
    review = review_from_statement(statement, keys)
    assert review.max_open_cvss == 9.8
    assert review.has_issue_at_or_above(7.0)
    assert not SafeRequirement(keys, "high").accepts(review)
    assert SafeRequirement(keys, "critical").accepts(review)
    (found,) = reviews_for(f"sha384:{SHA384}", [statement], providers=keys)
    assert found.has_issue_at_or_above(9.0)
    # the CoRIM form carries the vector as signed: the same verdict
    corim = parse_sfr_corim(build_sfr_corim(parsed))
    assert corim.audit.issues[0].cvss_score == 3.0
    assert corim.max_cvss == 9.8


def test_a_score_above_its_vector_keeps_the_score() -> None:
    parsed = parse_report_json(_one_issue("8.8", "AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"))
    assert parsed.audit.issues[0].vector_score == 1.6
    assert parsed.max_cvss == 8.8


@pytest.mark.parametrize(
    "vector",
    [
        "AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/AV:N",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N/c:H",
        "AV:N/AC:L/Au:N/C:N/I:N/A:N/C:C",
    ],
)
def test_a_vector_naming_a_metric_twice_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys], vector: str
) -> None:
    # The first AV reads 4.x, the last 9.8: which one a reader keeps decides the verdict.
    key, keys = review_key
    unsigned = _one_issue("4.0", vector)
    signed = _jws(key, unsigned)  # sign_report would refuse to sign it
    with pytest.raises(MalformedReport) as info:
        verify_report(signed, keys)
    assert info.value.code == "malformed-report"
    assert "twice" in info.value.detail
    with pytest.raises(MalformedReport, match="twice"):
        parse_report_json(unsigned)
    with pytest.raises(MalformedReport, match="twice"):
        cvss_base_score(vector)


def test_published_reports_whose_scores_and_vectors_disagree_are_judged_by_the_worse() -> None:
    base = ocp_safe()
    if base is None:
        pytest.skip("the OCP SAFE vectors are not here (set IRONROOT_VECTORS)")
    keys = ProviderKeys.load([base / "SRP_certificates" / "Active"])
    folder = base / "Reports" / "Rohde & Schwarz" / "2026" / "Trusted Disk"
    (path,) = folder.glob("*.jws")
    issues = verify_report(path.read_bytes(), keys).report.audit.issues
    assert [(i.cvss_score, i.vector_score) for i in issues] == [(2.1, 2.8), (2.1, 3.3)]
    assert [i.effective_score for i in issues] == [2.8, 3.3]


V4_CRITICAL = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H"  # 10.0


@pytest.mark.parametrize(
    "extra",
    [
        "/E:U",  # threat: CVSS-BT 9.1
        "/MAV:P/MAC:H/MAT:P/MPR:H/MUI:A/MVC:N/MVI:N/MVA:N/MSC:N/MSI:N/MSA:N",  # CVSS-BE 0.0
        "/CR:L/IR:L/AR:L/E:U/S:N/R:U",
    ],
)
def test_a_cvss_4_vector_is_scored_by_its_base_metrics_alone(
    review_key: tuple[PrivateKey, ProviderKeys], extra: str
) -> None:
    # CVSS v4.0 scores a vector with threat or environmental metrics as CVSS-BT/BE/BTE, not
    # as its base: the critical base metrics below, with "modified" ones beside them, read
    # 0.0, so a stated "1.0" passed every threshold while the base metrics say 10.0.
    assert cvss_base_score(V4_CRITICAL + extra) == 10.0
    key, keys = review_key
    data = _one_issue("1.0", V4_CRITICAL + extra)
    assert parse_report_json(data).max_cvss == 10.0
    assert verify_report(sign_report(data, key, KID), keys).report.max_cvss == 10.0


@pytest.mark.parametrize(
    "vector",
    [
        CRITICAL + "/XX:Y",  # an unknown metric
        CRITICAL + "/E:Q",  # an unknown value of a temporal metric
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # an unknown value of a base metric
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",  # a base metric missing
        "CVSS:3.1 AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # no "/" after the version
        "CVSS:9.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # an unknown version
        V4_CRITICAL + "/E:Q",
        V4_CRITICAL + "/MAV:Z",
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1",  # every v3 base metric, unprefixed
    ],
)
def test_a_vector_that_claims_cvss_but_does_not_score_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys], vector: str
) -> None:
    # A vector that names its CVSS version (or holds every base metric of one) but does not
    # score was read as no vector, and the issue at its stated score: "1.0" beside a 9.8
    # base with one unknown metric added passed every threshold, while a reader that skips
    # what it does not know saw the 9.8.
    key, keys = review_key
    unsigned = _one_issue("1.0", vector)
    with pytest.raises(MalformedReport, match="is not a valid CVSS"):
        cvss_base_score(vector)
    with pytest.raises(MalformedReport, match=r"issues\[0\].*is not a valid CVSS"):
        parse_report_json(unsigned)
    with pytest.raises(MalformedReport, match="is not a valid CVSS"):
        verify_report(_jws(key, unsigned), keys)
