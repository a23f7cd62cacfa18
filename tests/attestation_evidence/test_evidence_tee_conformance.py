"""Confidential-VM evidence against the rules an earlier round left out: Intel's DCAP quote
format (the QE vendor id of the quote header), the lenient reading of the collateral and CRLs
a service starts with (one bad file never stops it), and the SEV-SNP guest policy's
MIGRATE_MA bit in the default appraisal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from evidence_fakes import FakeAmd, build_report

from ironroot.attestation import (
    AR4SI,
    AttestationConfig,
    Endorsements,
    appraise_evidence,
    read_tdx_collateral,
)
from ironroot.attestation.evidence import (
    CheckLog,
    SnpProduct,
    VerifyOptions,
    _snp_verify,
    parse_evidence,
    parse_tdx_quote,
    verify_evidence,
    verify_tdx_quote,
)
from ironroot.errors import BadSignature, MalformedCollateral, MalformedEvidence
from tee_fakes import INTEL_QE_VENDOR_ID, TDX_NOW, FakeIntel, platform_level

TDX_QUOTES = (
    "deps_verifier_test_data_tdx_quote_4.dat",
    "testing_testdata_quote_v5_sample.dat",
    "testing_testdata_tdx_prod_quote_SPR_E4.dat",
    "testing_testdata_ccel_cos-113-tdx-quote.dat",
)
QUOTE_TIME = datetime(2026, 11, 28, tzinfo=UTC)  # inside the real PCK chains' validity
SNP_NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def intel() -> FakeIntel:
    return FakeIntel()


# --- the QE vendor id -------------------------------------------------------------------------


@pytest.mark.parametrize("name", TDX_QUOTES)
def test_every_real_quote_names_intels_qe_vendor(tdx_dir: Path, name: str) -> None:
    quote = parse_tdx_quote((tdx_dir / name).read_bytes())
    assert quote.header.qe_vendor_id == INTEL_QE_VENDOR_ID


@pytest.mark.parametrize(
    "vendor",
    [bytes(16), bytes.fromhex("939a7233f79c4ca9940a0db3957f0606"), b"\xff" * 16],
    ids=["zero", "last-bit", "ones"],
)
def test_a_quote_of_another_qe_vendor_is_refused(intel: FakeIntel, vendor: bytes) -> None:
    """Intel's QVL (``Quote::validate``) refuses a quote whose header names a QE vendor other
    than Intel's (939a7233-f79c-4ca9-940a-0db3957f0607); every Intel quote names it. The
    attestation key signs the header, so the vendor is the QE's own word: a quote naming another
    vendor was not made by Intel's QE."""
    quote = intel.quote(qe_vendor_id=vendor)
    log = CheckLog()
    with pytest.raises(MalformedEvidence, match="QE vendor"):
        verify_tdx_quote(quote, now=TDX_NOW, root=intel.root, checks=log)
    assert log.checks[-1].name == "header"
    assert not log.checks[-1].ok
    with pytest.raises(MalformedEvidence, match="QE vendor"):
        parse_tdx_quote(quote)
    with pytest.raises(MalformedEvidence, match="QE vendor"):
        parse_evidence(quote, format="tdx")


def test_a_quote_of_intels_qe_vendor_verifies(intel: FakeIntel) -> None:
    claims = verify_tdx_quote(intel.quote(), now=TDX_NOW, root=intel.root)
    assert claims.identity["qe_vendor_id"] == INTEL_QE_VENDOR_ID.hex()


def test_real_quote_with_its_vendor_changed_fails_the_signature_first(tdx_dir: Path) -> None:
    """The vendor id is signed: changing it in a real quote breaks the quote signature, which
    is checked before the header values."""
    data = bytearray((tdx_dir / TDX_QUOTES[0]).read_bytes())
    data[12] ^= 1
    with pytest.raises(BadSignature):
        verify_evidence(bytes(data), VerifyOptions(now=QUOTE_TIME), format="tdx")


# --- many CRLs in the configured collateral ---------------------------------------------------


def _collateral_dir(tmp_path: Path, intel: FakeIntel, crl_files: int) -> Path:
    folder = tmp_path / "collateral"
    folder.mkdir()
    (folder / "tcb_info.json").write_bytes(intel.tcb_info())
    (folder / "tcb_signing_chain.pem").write_bytes(intel.signing_chain())
    for serial in range(1, crl_files + 1):  # one PCK CRL per file, each listing another serial
        crl = intel.crl("pck", [serial])
        (folder / f"pck_crl_{serial:02d}.der").write_bytes(crl.public_bytes(Encoding.DER))
    return folder


def test_more_crls_than_collateral_holds_never_stop_the_service(
    tmp_path: Path, intel: FakeIntel
) -> None:
    """A collateral directory with more CRL files than a collateral holds (16: an operator
    keeping the PCK CRLs PCS served over time) made lenient reading, which a service starts
    with, raise MalformedCollateral instead of listing the problem."""
    folder = _collateral_dir(tmp_path, intel, 17)
    files = read_tdx_collateral(folder, strict=False)
    assert files.collateral is not None
    assert len(files.collateral.crls) == 16
    assert len(files.collateral.tcb_infos) == 1
    assert len(files.problems) == 1
    assert files.problems[0].startswith(f"{folder / 'pck_crl_17.der'}: malformed-collateral")
    assert "more than 16 CRLs" in files.problems[0]
    with pytest.raises(MalformedCollateral, match="more than 16 CRLs"):
        read_tdx_collateral(folder)


def test_configured_crls_beside_the_collateral_directory_never_stop_the_service(
    tmp_path: Path, intel: FakeIntel
) -> None:
    """``attestation.toml``'s ``crls`` are merged into the collateral directory's: 10 and 10
    made the merge raise MalformedCollateral when the service started. The same CRL given in
    both places counts once."""
    folder = _collateral_dir(tmp_path, intel, 10)
    extra = tmp_path / "crls"
    extra.mkdir()
    for serial in range(100, 110):
        crl = intel.crl("pck", [serial])
        (extra / f"{serial}.der").write_bytes(crl.public_bytes(Encoding.DER))
    again = extra / "again.der"
    again.write_bytes((folder / "pck_crl_01.der").read_bytes())
    config = AttestationConfig(data_dir=tmp_path, collateral=folder, crls=(again, extra))
    loaded = config.load_collateral()
    assert loaded.collateral is not None
    assert len(loaded.collateral.crls) == 16
    assert len(loaded.collateral.tcb_infos) == 1
    assert len(loaded.problems) == 4  # 20 distinct CRLs: the last four are left out
    assert all("more than 16 CRLs" in line for line in loaded.problems)


# --- a guest that allows a migration agent ----------------------------------------------------

SNP_TCB = {"bootloader": 9, "tee": 1, "snp": 22, "microcode": 0xD5}
MIGRATE_MA = 1 << 18


@pytest.mark.parametrize(
    ("policy", "refused"),
    [(0x30000, False), (0x30000 | MIGRATE_MA, True)],
    ids=["no-migration-agent", "migrate-ma"],
)
def test_an_snp_guest_that_allows_a_migration_agent_is_not_approved_by_default(
    fake_amd: Callable[[SnpProduct], FakeAmd],
    monkeypatch: pytest.MonkeyPatch,
    policy: int,
    refused: bool,
) -> None:
    """GUEST_POLICY bit 18 (MIGRATE_MA) lets the hypervisor associate a migration agent with the
    guest at launch, and that agent can export the guest's memory and state. The policy is not
    part of MEASUREMENT, so a host can launch the expected image with MIGRATE_MA set and an
    agent of its own: the report is genuine, the measurement the expected one. The default
    policy approved such a guest (only DEBUG was a rule); it is now unsupportable
    configuration, as DEBUG is (a deployment that trusts its migration agents writes its own
    rules)."""
    amd = fake_amd(SnpProduct.MILAN)
    monkeypatch.setattr(_snp_verify, "builtin_snp_anchors", lambda: (amd.anchor,))
    chip = bytes(range(64))
    cert, key = amd.leaf(tcb=SNP_TCB, hwid=chip)
    report = build_report(key, tcb=SNP_TCB, chip_id=chip, policy=policy)
    vcek = cert.public_bytes(Encoding.DER)
    claims = verify_evidence(report, VerifyOptions(now=SNP_NOW, certificates=(vcek,)))
    assert claims.raw["policy"]["migrate_ma"] is refused
    result = appraise_evidence(
        report, Endorsements(), nonce=b"\x42" * 64, now=SNP_NOW, certificates=[vcek]
    )
    appraisal = result.submods["snp"]
    reason = (
        "migration-agent: the guest allows a migration agent (SEV-SNP MIGRATE_MA, TDX "
        "MIGRATABLE): the host chooses it, and it can export the guest's memory"
    )
    assert (reason in appraisal.reasons) is refused
    if refused:
        assert appraisal.trust_vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG


def test_a_second_tcb_info_of_one_fmspc_leaves_only_itself_out(
    tmp_path: Path, intel: FakeIntel
) -> None:
    """Two TCB Info files for one FMSPC: lenient reading left out every TCB Info and the QE
    Identity too (the whole collateral failed to build) and blamed the signing chain file;
    only the second file is the problem."""
    folder = _collateral_dir(tmp_path, intel, 1)
    (folder / "qe_identity.json").write_bytes(intel.qe_identity())
    (folder / "tcb_info_again.json").write_bytes(intel.tcb_info([platform_level("OutOfDate")]))
    files = read_tdx_collateral(folder, strict=False)
    assert files.collateral is not None
    assert len(files.collateral.tcb_infos) == 1
    assert files.collateral.tcb_infos[0].tcb_levels[0].status == "UpToDate"
    assert files.collateral.qe_identity is not None
    assert len(files.problems) == 1
    assert files.problems[0].startswith(f"{folder / 'tcb_info_again.json'}: malformed-collateral")
    with pytest.raises(MalformedCollateral, match="TCB Info for FMSPC 50806f000000"):
        read_tdx_collateral(folder)
