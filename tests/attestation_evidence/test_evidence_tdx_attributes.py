"""TDATTRIBUTES bits 7:0 are the TUD group ("TD under debug", Intel TDX module ABI): a TD with
any of them set is untrusted. Bit 0 is DEBUG; bits 4-6 are the profiling bits (HGS+, perf and
PMT profiling, as the Linux TDX guest names them), by which the host observes the TD. The
evidence's ``debug`` claim, which the default policy refuses, must be set by every one of
them, not by bit 0 alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot.attestation import Endorsements, appraise
from ironroot.attestation.evidence import EvidenceClaims, parse_tdx_quote, verify_tdx_quote
from ironroot.ear import AR4SI
from tee_fakes import TDX_NOW, FakeIntel


@pytest.fixture(scope="module")
def intel() -> FakeIntel:
    return FakeIntel()


def _claims(intel: FakeIntel, bits: int) -> EvidenceClaims:
    quote = intel.quote(td_attributes=bits.to_bytes(8, "little"))
    return verify_tdx_quote(quote, now=TDX_NOW, root=intel.root)


@pytest.mark.parametrize("bit", range(8))
def test_every_td_under_debug_bit_is_debug(intel: FakeIntel, bit: int) -> None:
    claims = _claims(intel, 1 << bit)
    assert claims.debug is True
    assert claims.raw["body"]["td_attributes"]["under_debug"] is True


@pytest.mark.parametrize("bits", [0, 1 << 28, 1 << 30, 1 << 31, 1 << 63, 1 << 8])
def test_bits_outside_the_tud_group_are_not_debug(intel: FakeIntel, bits: int) -> None:
    claims = _claims(intel, bits)
    assert claims.debug is False


@pytest.mark.vectors
def test_real_quotes_debug_claim(tdx_dir: Path) -> None:
    quote4 = parse_tdx_quote((tdx_dir / "deps_verifier_test_data_tdx_quote_4.dat").read_bytes())
    assert quote4.body.td_attributes.under_debug is True
    spr = parse_tdx_quote((tdx_dir / "testing_testdata_tdx_prod_quote_SPR_E4.dat").read_bytes())
    assert spr.body.td_attributes.raw & 0xFF == 0
    assert spr.body.td_attributes.under_debug is False


@pytest.mark.parametrize(("bits", "migratable"), [(0, False), (1 << 29, True)])
def test_a_migratable_td_is_not_approved_by_default(
    intel: FakeIntel, bits: int, migratable: bool
) -> None:
    """TDATTRIBUTES bit 29 (MIGRATABLE): a migration TD the host binds may export the TD's
    memory and state, and a v4 quote does not name it; like SEV-SNP's MIGRATE_MA, the default
    policy takes it as unsupportable configuration (it was approved)."""
    claims = _claims(intel, bits)
    assert claims.raw["body"]["td_attributes"]["migratable"] is migratable
    assert claims.debug is False
    result = appraise(claims, Endorsements(), nonce=None, now=TDX_NOW)
    appraisal = result.submods["tdx"]
    reason = (
        "migration-agent: the guest allows a migration agent (SEV-SNP MIGRATE_MA, TDX "
        "MIGRATABLE): the host chooses it, and it can export the guest's memory"
    )
    assert (reason in appraisal.reasons) is migratable
    if migratable:
        assert appraisal.trust_vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG
