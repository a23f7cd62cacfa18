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
