"""Inputs the fuzzers found that once escaped as untyped errors, each pinned to the exact
typed error it must raise now."""

from __future__ import annotations

import pytest

from ironroot.attestation import AttestationResult
from ironroot.cose import decode_cbor
from ironroot.errors import MalformedInput


@pytest.mark.parametrize("claims", ["00", "80", "f6", "4100", "6161"])
def test_ear_cbor_claims_that_are_not_a_map(claims: str) -> None:
    # AttributeError: 'int' object has no attribute 'get' (target ear-claims, input 00)
    with pytest.raises(MalformedInput, match="an EAR's claims are a CBOR map"):
        AttestationResult.from_cbor_claims(decode_cbor(bytes.fromhex(claims)))  # type: ignore[arg-type]


@pytest.mark.parametrize("claims", [0, [], "text", None])
def test_ear_json_claims_that_are_not_an_object(claims: object) -> None:
    with pytest.raises(MalformedInput, match="an EAR's claims are a JSON object"):
        AttestationResult.from_json_claims(claims)  # type: ignore[arg-type]


def test_a_statement_whose_ecdsa_s_is_not_below_the_order() -> None:
    # OverflowError in ecdsa_low_s (target transparent-statement, make fuzz campaign): an s at
    # or above n is left alone (it never verifies) instead of being "normalised" to n - s < 0.
    from ironroot.crypto import Algorithm, ecdsa_low_s

    signature = b"\x01" * 32 + b"\xff" * 32
    assert ecdsa_low_s(Algorithm.ES256, signature) == signature


def test_a_release_policy_comparing_with_a_huge_integer() -> None:
    # OverflowError: int too large to convert to float (target release-policy, make fuzz).
    from ironroot.errors import InvalidReleasePolicy
    from ironroot.keyrelease import parse_release_policy

    text = (
        '{"version": "1.0.0", "anyOf": [{"authority": "zz", "allOf": '
        '[{"claim": "zz", "equals": 1' + "0" * 400 + "}]}]}"
    )
    with pytest.raises(InvalidReleasePolicy, match=r"equals takes a string, number"):
        parse_release_policy(text)
