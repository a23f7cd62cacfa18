"""A hostile review provider or a man in the middle against SFR parsing and verification:
headers read two ways, text that lies on screen or cannot be re-encoded."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

import cbor2
import pytest
from _safe_helpers import KID, provider, report, report_bytes

from ironroot.cose import encode_cbor
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


@pytest.mark.parametrize(
    ("change", "why"),
    [
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
