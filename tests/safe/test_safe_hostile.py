"""A hostile review provider or a man in the middle against SFR parsing and verification:
headers read two ways, text that lies on screen or cannot be re-encoded."""

from __future__ import annotations

import base64

import pytest
from _safe_helpers import KID, provider, report_bytes

from ironroot.crypto import PrivateKey
from ironroot.errors import MalformedReport
from ironroot.safe import ProviderKeys, verify_report


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
