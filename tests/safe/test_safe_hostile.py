"""A hostile review provider or a man in the middle against SFR parsing and verification:
headers read two ways, text that lies on screen or cannot be re-encoded."""

from __future__ import annotations

import base64

import pytest
from _safe_helpers import KID, provider, report, report_bytes

from ironroot.crypto import PrivateKey
from ironroot.errors import MalformedReport
from ironroot.safe import (
    ProviderKeys,
    build_sfr_corim,
    parse_report_json,
    parse_sfr_corim,
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
    ("field", "value", "why"),
    [
        ("device__vendor", "ACME\u202eInc", "bidirectional control U\\+202E"),
        ("device__product", "Trap\u2067 v2\u2069", "bidirectional control U\\+2067"),
        ("device__vendor", "ACME\x1b[2K\rGoodCo", "control character U\\+001B"),
        ("device__fw_version", "1.2.3\n1.2.4", "control character U\\+000A"),
        ("audit__srp", "Pentest\x85Corp", "control character U\\+0085"),
        ("device__vendor", "\ud800", "lone surrogate"),
    ],
)
def test_text_that_shows_other_than_it_says_is_refused(
    review_key: tuple[PrivateKey, ProviderKeys], field: str, value: str, why: str
) -> None:
    # Signed by a configured provider and verifying, but "ACME\u202eInc" prints reversed,
    # an ANSI escape rewrites the terminal line, and a lone surrogate (valid JSON "\ud800")
    # cannot be encoded again: printing or re-signing the report raised UnicodeEncodeError.
    key, providers = review_key
    token = _jws(key, b'{"alg":"ES512","kid":"%s"}' % KID.encode(), report_bytes(**{field: value}))
    with pytest.raises(MalformedReport, match=why):
        verify_report(token, providers)


def test_line_breaks_stay_allowed_in_an_issue_description_but_not_escapes(
    review_key: tuple[PrivateKey, ProviderKeys],
) -> None:
    key, providers = review_key
    issue = dict(report()["audit"]["issues"][0], description="line one\n\tline two\r\n")
    token = _jws(
        key, b'{"alg":"ES512","kid":"%s"}' % KID.encode(), report_bytes(audit__issues=[issue])
    )
    assert verify_report(token, providers).report.audit.issues[0].description.startswith("line")
    issue["title"] = "Stack overflow\u202e"
    token = _jws(
        key, b'{"alg":"ES512","kid":"%s"}' % KID.encode(), report_bytes(audit__issues=[issue])
    )
    with pytest.raises(MalformedReport, match="title holds bidirectional"):
        verify_report(token, providers)


def test_a_corim_sfr_with_a_bidi_vendor_is_refused() -> None:
    corim = build_sfr_corim(parse_report_json(report_bytes()))
    spoofed = corim.replace(b"ACME Inc", "ACME\u202eInc".encode()[:8])
    with pytest.raises(MalformedReport, match="bidirectional control U\\+202E"):
        parse_sfr_corim(spoofed)
