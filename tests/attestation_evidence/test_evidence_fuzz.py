"""Property tests: arbitrary bytes never crash the evidence parsers with an untyped error."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.attestation.evidence import (
    SNP_REPORT_SIZE,
    VerifyOptions,
    decode_evidence,
    parse_azure_hcl_report,
    parse_snp_report,
    parse_tdx_quote,
    verify_evidence,
)
from ironroot.errors import IronrootError, MalformedEvidence

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_typed_errors(data: bytes) -> None:
    for parse in (parse_snp_report, parse_tdx_quote, parse_azure_hcl_report):
        with contextlib.suppress(MalformedEvidence):
            parse(data)
    with contextlib.suppress(IronrootError):
        verify_evidence(data, VerifyOptions(now=NOW))


@settings(max_examples=examples(100), deadline=None)
@given(st.binary(min_size=SNP_REPORT_SIZE, max_size=SNP_REPORT_SIZE))
def test_random_reports_parse_or_are_malformed(data: bytes) -> None:
    try:
        report = parse_snp_report(data)
    except MalformedEvidence:
        return
    assert report.data == data
    assert len(report.signed_bytes) == 0x2A0


@settings(max_examples=examples(50), deadline=None)
@given(st.binary(max_size=600))
def test_hex_text_round_trips(data: bytes) -> None:
    text = data.hex().encode()
    assert decode_evidence(text) == data


@pytest.mark.vectors
@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cut=st.integers(min_value=0, max_value=1250), junk=st.binary(min_size=1, max_size=8))
def test_mangled_tdx_quotes_raise_typed_errors(tdx_dir: Path, cut: int, junk: bytes) -> None:
    # every byte before the PEM chain (offset 1258) is signed, bound or a length/type field
    data = (tdx_dir / "deps_verifier_test_data_tdx_quote_4.dat").read_bytes()
    mangled = data[:cut] + junk + data[cut + len(junk) :]
    if mangled == data:
        return
    with pytest.raises(IronrootError):
        verify_evidence(mangled, VerifyOptions(now=datetime(2026, 11, 28, tzinfo=UTC)))
