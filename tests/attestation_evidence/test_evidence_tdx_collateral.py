"""Intel TDX collateral: TCB Info and QE Identity parse (real PCS samples), verify (signatures,
chain, freshness) and give a TCB status; every status, mismatch, tampered byte and stale
document is tested end to end with a self-made Intel PKI (``FakeIntel``)."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.attestation.evidence import (
    TCB_STATUSES,
    CheckLog,
    EvidenceClaims,
    TdxChainCache,
    TdxCollateral,
    VerifyOptions,
    _tdx_verify,
    check_qe_identity,
    evaluate_tdx_tcb,
    load_certificates,
    load_tdx_collateral,
    parse_pck_extensions,
    parse_qe_identity,
    parse_tcb_info,
    parse_tdx_quote,
    verify_evidence,
    verify_tdx_quote,
)
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    CertificateRevoked,
    ChainNotTrusted,
    CollateralExpired,
    EndorsementMismatch,
    MalformedCollateral,
    MalformedInput,
)
from tee_fakes import (
    FMSPC,
    ISSUED,
    NEXT_UPDATE,
    QE_MRSIGNER,
    TDX_NOW,
    FakeIntel,
    _intel_cert,
    _intel_name,
    crl_without_next_update,
    identity_level,
    make_crl,
    module_identity,
    platform_level,
)

TCB_INFO = "testing_testdata_sample_tcbInfo_response"
QE_IDENTITY = "testing_testdata_sample_qeIdentity_response"
QUOTE4 = "deps_verifier_test_data_tdx_quote_4.dat"
SPR = "testing_testdata_tdx_prod_quote_SPR_E4.dat"
CCEL = "testing_testdata_ccel_cos-113-tdx-quote.dat"
V5 = "testing_testdata_quote_v5_sample.dat"


@pytest.fixture(scope="module")
def intel() -> FakeIntel:
    return FakeIntel()


def collateral(
    intel: FakeIntel,
    *,
    tcb_info: bytes | Sequence[bytes] | None = None,
    qe_identity: bytes | bool | None = True,
    crls: Sequence[x509.CertificateRevocationList] | None = None,
    chain: bytes | None = None,
) -> TdxCollateral:
    """Intel collateral; ``crls`` by default the PCK CRL and root CA CRL it needs."""
    if crls is None:
        crls = [intel.crl("pck"), intel.crl("root")]
    return load_tdx_collateral(
        tcb_info=intel.tcb_info() if tcb_info is None else tcb_info,
        qe_identity=(
            intel.qe_identity() if qe_identity is True else (qe_identity or None)  # type: ignore[arg-type]
        ),
        signing_chain=intel.signing_chain() if chain is None else chain,
        crls=[c.public_bytes(Encoding.DER) for c in crls],
    )


def verify(
    intel: FakeIntel,
    quote: bytes | None = None,
    *,
    now: datetime = TDX_NOW,
    allow_stale: bool = False,
    log: CheckLog | None = None,
    **kwargs: Any,
) -> EvidenceClaims:
    return verify_tdx_quote(
        intel.quote() if quote is None else quote,
        now=now,
        root=intel.root,
        collateral=collateral(intel, **kwargs),
        allow_stale_collateral=allow_stale,
        checks=log,
    )


def fails(error: type[Exception], check: str, call: Any, *args: Any, **kwargs: Any) -> Exception:
    with pytest.raises(error) as caught:
        call(*args, **kwargs)
    assert type(caught.value) is error
    assert getattr(caught.value, "check", None) == check
    return caught.value


# --- the real PCS samples ---------------------------------------------------------------------


@pytest.mark.vectors
def test_real_tcb_info_parses(tdx_dir: Path) -> None:
    info = parse_tcb_info((tdx_dir / TCB_INFO).read_bytes())
    assert (info.id, info.version, info.fmspc.hex(), info.pce_id.hex()) == (
        "TDX", 3, "50806f000000", "0000",
    )  # fmt: skip
    assert info.tcb_evaluation_data_number == 15
    assert info.issue_date == datetime(2023, 6, 18, 8, 42, 58, tzinfo=UTC)
    assert info.next_update == datetime(2023, 7, 18, 8, 42, 58, tzinfo=UTC)
    assert [lv.status for lv in info.tcb_levels] == ["UpToDate", "OutOfDate"]
    assert info.tcb_levels[0].sgx_components[:8] == (5, 5, 2, 2, 3, 1, 0, 3)
    assert info.tcb_levels[0].tdx_components is not None
    assert info.tcb_levels[0].tdx_components[:3] == (3, 0, 5)
    assert info.tcb_levels[1].advisory_ids[0] == "INTEL-SA-00106"
    assert len(info.tcb_levels[1].advisory_ids) == 13
    assert info.tdx_module is not None
    assert info.tdx_module.mrsigner == bytes(48)
    body = (tdx_dir / TCB_INFO).read_bytes()
    assert info.signed_body.startswith(b'{"id":"TDX"')
    assert info.signed_body in body
    assert len(info.signature) == 64


@pytest.mark.vectors
def test_real_qe_identity_parses(tdx_dir: Path) -> None:
    qe = parse_qe_identity((tdx_dir / QE_IDENTITY).read_bytes())
    assert (qe.id, qe.version, qe.isvprodid) == ("TD_QE", 2, 2)
    assert qe.mrsigner.hex().startswith("dc9e2a7c")
    assert qe.attributes_mask.hex() == "fbffffffffffffff0000000000000000"
    assert [(lv.isvsvn, lv.status) for lv in qe.tcb_levels] == [(4, "UpToDate")]
    assert qe.next_update == datetime(2023, 7, 8, 7, 24, 59, tzinfo=UTC)


def _real(tdx_dir: Path, name: str) -> tuple[Any, Any]:
    quote = parse_tdx_quote((tdx_dir / name).read_bytes())
    pck = load_certificates(quote.pck_chain_pem.rstrip(b"\0"))[0]
    return quote, parse_pck_extensions(pck)


def _evaluate(tdx_dir: Path, name: str) -> Any:
    quote, ext = _real(tdx_dir, name)
    info = parse_tcb_info((tdx_dir / TCB_INFO).read_bytes())
    qe = check_qe_identity(parse_qe_identity((tdx_dir / QE_IDENTITY).read_bytes()), quote.qe_report)
    return evaluate_tdx_tcb(
        info,
        fmspc=ext.fmspc,
        pce_id=ext.pceid,
        pck_components=ext.tcb_components,
        pcesvn=ext.pcesvn,
        quote=quote,
        qe=qe,
    )


@pytest.mark.vectors
def test_real_quote_with_matching_fmspc_is_up_to_date(tdx_dir: Path) -> None:
    status = _evaluate(tdx_dir, QUOTE4)
    assert status.status == "UpToDate"
    assert (status.sgx_status, status.platform_status, status.qe_status) == ("UpToDate",) * 3
    assert status.module_status is None  # TEE_TCB_SVN[1] = 0: the tdxModule of the TCB Info
    assert status.tcb_date == datetime(2023, 2, 15, tzinfo=UTC)
    assert status.advisory_ids == ()
    assert status.tcb_evaluation_data_number == 15


@pytest.mark.vectors
def test_real_quote_below_every_level_is_not_supported(tdx_dir: Path) -> None:
    # the SPR quote's PCK has SGX components 3,3,2,2,2,1,0,2: below both levels (5,5,…)
    with pytest.raises(EndorsementMismatch, match="TCB not supported"):
        _evaluate(tdx_dir, SPR)


@pytest.mark.vectors
@pytest.mark.parametrize("name", [CCEL, V5])
def test_real_quotes_of_another_fmspc_are_refused(tdx_dir: Path, name: str) -> None:
    with pytest.raises(EndorsementMismatch, match="FMSPC"):
        _evaluate(tdx_dir, name)


@pytest.mark.vectors
def test_real_collateral_without_its_signing_chain(tdx_dir: Path, intel: FakeIntel) -> None:
    tcb_info = (tdx_dir / TCB_INFO).read_bytes()
    with pytest.raises(MalformedCollateral, match="signing chain"):
        load_tdx_collateral(tcb_info=tcb_info)
    # a self-made chain cannot vouch for Intel's documents: it does not reach Intel's root
    quote = (tdx_dir / QUOTE4).read_bytes()
    # with PCS's CRLs of the chain (the PCK Platform CA's and the root CA's), as Intel's
    # collateral needs
    crls = [
        (tdx_dir / n).read_bytes()
        for n in ("testing_testdata_pckcrl", "testing_testdata_rootcrl.der")
    ]
    for chain in (intel.signing_chain(), intel.signing_chain(intel.tcb_signing)):
        real = load_tdx_collateral(tcb_info=tcb_info, signing_chain=chain, crls=crls)
        fails(
            ChainNotTrusted, "collateral", verify_tdx_quote, quote,
            now=datetime(2023, 6, 20, tzinfo=UTC), collateral=real,
        )  # fmt: skip


# --- end to end with a self-made PKI: the happy path and what the result says -------------------


def test_collateral_checks_are_recorded(intel: FakeIntel) -> None:
    log = CheckLog()
    claims = verify(intel, log=log, crls=[intel.crl("root"), intel.crl("pck")])
    names = [c.name for c in log.checks]
    assert names[-4:] == ["revocation", "collateral", "qe-identity", "tcb-status"]
    assert all(c.ok for c in log.checks)
    detail = {c.name: c.detail for c in log.checks}
    assert "signed by Intel SGX TCB Signing → root" in detail["collateral"]
    assert "fresh until 2025-06-01T00:00:00Z" in detail["collateral"]
    assert "signer not revoked" in detail["collateral"]
    assert detail["tcb-status"].startswith("UpToDate")
    assert claims.identity["tcb_status"] == "UpToDate"
    assert claims.identity["qe_tcb_status"] == "UpToDate"
    assert claims.raw["tcb"]["tcb_evaluation_data_number"] == 17
    assert claims.raw["tcb"]["fmspc"] == FMSPC.hex()
    assert claims.raw["qe_tcb"]["isvsvn"] == 4
    assert claims.raw["stale_collateral"] == []
    assert log.not_checked == ()


def test_without_collateral_nothing_passes_by_omission(intel: FakeIntel) -> None:
    log = CheckLog()
    claims = verify_tdx_quote(intel.quote(), now=TDX_NOW, root=intel.root, checks=log)
    skipped = {n.name: n.reason for n in log.not_checked}
    assert skipped["revocation"] == "no CRL given"
    for name in ("collateral", "qe-identity", "tcb-status"):
        assert skipped[name] == "no collateral given (TCB Info, QE Identity)"
    assert "tcb_status" not in claims.identity


def test_tcb_info_without_qe_identity(intel: FakeIntel) -> None:
    log = CheckLog()
    claims = verify(intel, qe_identity=None, log=log)
    assert {n.name: n.reason for n in log.not_checked} == {"qe-identity": "no QE Identity given"}
    assert claims.identity["tcb_status"] == "UpToDate"
    assert "qe_tcb_status" not in claims.identity
    only_qe = verify_tdx_quote(
        intel.quote(),
        now=TDX_NOW,
        root=intel.root,
        collateral=collateral(intel, tcb_info=[]),
        checks=(log := CheckLog()),
    )
    assert only_qe.identity["qe_tcb_status"] == "UpToDate"
    assert {n.name: n.reason for n in log.not_checked} == {"tcb-status": "no TCB Info given"}


def test_the_tcb_info_of_the_pck_fmspc_is_chosen(intel: FakeIntel) -> None:
    other = intel.tcb_info([platform_level("OutOfDate")], fmspc=bytes.fromhex("00906ed50000"))
    claims = verify(intel, tcb_info=[other, intel.tcb_info([platform_level("UpToDate")])])
    assert claims.identity["tcb_status"] == "UpToDate"


def test_url_encoded_issuer_chain_header_is_accepted(intel: FakeIntel) -> None:
    header = urllib.parse.quote(intel.signing_chain().decode()).encode()
    assert b"%20CERTIFICATE" in header
    assert verify(intel, chain=header).identity["tcb_status"] == "UpToDate"


def test_verify_evidence_passes_collateral_through_the_table(
    intel: FakeIntel, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = VerifyOptions(now=TDX_NOW, collateral=collateral(intel))
    # the table's row anchors at the built-in Intel root: a self-made chain stops at "chain"
    fails(ChainNotTrusted, "chain", verify_evidence, intel.quote(), options, format="tdx")
    monkeypatch.setattr(_tdx_verify, "builtin_intel_root", lambda: intel.root)
    claims = verify_evidence(intel.quote(), options)
    assert claims.identity["tcb_status"] == "UpToDate"
    assert [c.name for c in claims.checks][-3:] == ["collateral", "qe-identity", "tcb-status"]
    late = VerifyOptions(now=NEXT_UPDATE + timedelta(days=1), collateral=collateral(intel))
    fails(CollateralExpired, "revocation", verify_evidence, intel.quote(), late)
    allowed = VerifyOptions(
        now=NEXT_UPDATE + timedelta(days=1),
        collateral=collateral(intel),
        allow_stale_collateral=True,
    )
    assert len(verify_evidence(intel.quote(), allowed).raw["stale_collateral"]) == 4


# --- every TCB status ----------------------------------------------------------------------------

LOW = [1] * 16


@pytest.mark.parametrize("status", [s for s in TCB_STATUSES[:6]])
def test_every_platform_status_is_a_claim(intel: FakeIntel, status: str) -> None:
    levels = [
        platform_level("UpToDate", sgx=[9] * 16),  # above the PCK's SGX components (2)
        platform_level(status, advisories=["INTEL-SA-00001"], date="2024-11-13T00:00:00Z"),
        platform_level("OutOfDate", sgx=LOW, advisories=["INTEL-SA-00002"]),
    ]
    claims = verify(intel, tcb_info=intel.tcb_info(levels))
    assert claims.identity["tcb_status"] == status
    tcb = claims.raw["tcb"]
    assert tcb["platform_status"] == tcb["sgx_status"] == status
    assert tcb["advisory_ids"] == ["INTEL-SA-00001"]
    assert tcb["tcb_date"] == "2024-11-13T00:00:00Z"


def test_revoked_tcb_is_refused(intel: FakeIntel) -> None:
    tcb_info = intel.tcb_info([platform_level("Revoked", advisories=["INTEL-SA-00615"])])
    error = fails(CertificateRevoked, "tcb-status", verify, intel, tcb_info=tcb_info)
    assert "INTEL-SA-00615" in str(error)


def test_tdx_components_pick_a_lower_level(intel: FakeIntel) -> None:
    levels = [
        platform_level("UpToDate", tdx=[3, 0, 6] + [0] * 13),  # TEE_TCB_SVN[2] is 5
        platform_level("OutOfDate", advisories=["INTEL-SA-00837"]),
    ]
    claims = verify(intel, tcb_info=intel.tcb_info(levels))
    assert claims.identity["tcb_status"] == "OutOfDate"
    assert claims.raw["tcb"]["sgx_status"] == "UpToDate"  # the first SGX match
    assert claims.raw["tcb"]["advisory_ids"] == ["INTEL-SA-00837"]


def test_pcesvn_below_a_level_skips_it(intel: FakeIntel) -> None:
    levels = [platform_level("UpToDate", pcesvn=12), platform_level("SWHardeningNeeded")]
    assert verify(intel, tcb_info=intel.tcb_info(levels)).identity["tcb_status"] == (
        "SWHardeningNeeded"
    )


@pytest.mark.parametrize(
    ("levels", "match"),
    [
        ([platform_level("UpToDate", sgx=[3] * 16)], "SGX TCB components"),
        ([platform_level("UpToDate", pcesvn=12)], "SGX TCB components and PCESVN"),
        ([platform_level("UpToDate", tdx=[4, 0, 5] + [0] * 13)], "TEE_TCB_SVN"),
    ],
)
def test_tcb_below_every_level_is_not_supported(
    intel: FakeIntel, levels: list[dict[str, Any]], match: str
) -> None:
    error = fails(EndorsementMismatch, "tcb-status", verify, intel, tcb_info=intel.tcb_info(levels))
    assert match in str(error)


# --- TDX module identities (TEE_TCB_SVN[1] > 0) and TDX 1.5 relaunch ---------------------------

MODULE_SVN = bytes([4, 1, 7]) + bytes(13)  # module ISVSVN 4, major version 1


def _module_info(intel: FakeIntel, module_levels: list[dict[str, Any]], **kw: Any) -> bytes:
    levels = kw.pop("levels", None) or [
        # indices 0 and 1 are the module's own: not compared when TEE_TCB_SVN[1] > 0
        platform_level("UpToDate", tdx=[9, 9, 7] + [0] * 13),
        platform_level("OutOfDate", tdx=[0, 0, 2] + [0] * 13, advisories=["INTEL-SA-00960"]),
    ]
    return intel.tcb_info(levels, identities=[module_identity(1, module_levels)], **kw)


@pytest.mark.parametrize(
    ("module", "platform", "final"),
    [
        ("UpToDate", "UpToDate", "UpToDate"),
        ("OutOfDate", "UpToDate", "OutOfDate"),
        ("OutOfDate", "SWHardeningNeeded", "OutOfDate"),
        ("OutOfDate", "ConfigurationNeeded", "OutOfDateConfigurationNeeded"),
        ("OutOfDate", "ConfigurationAndSWHardeningNeeded", "OutOfDateConfigurationNeeded"),
        ("UpToDate", "ConfigurationNeeded", "ConfigurationNeeded"),
    ],
)
def test_module_status_converges(intel: FakeIntel, module: str, platform: str, final: str) -> None:
    info = _module_info(
        intel,
        [identity_level(module, 4, advisories=["INTEL-SA-01010"]), identity_level("Revoked", 0)],
        levels=[platform_level(platform, tdx=[9, 9, 7] + [0] * 13)],
    )
    claims = verify(intel, intel.quote(tee_tcb_svn=MODULE_SVN), tcb_info=info)
    assert claims.identity["tcb_status"] == final
    tcb = claims.raw["tcb"]
    assert (tcb["module_status"], tcb["module_identity"]) == (module, "TDX_01")
    assert tcb["advisory_ids"] == ["INTEL-SA-01010"]


def test_module_levels_by_isvsvn(intel: FakeIntel) -> None:
    info = _module_info(intel, [identity_level("UpToDate", 5), identity_level("OutOfDate", 3)])
    claims = verify(intel, intel.quote(tee_tcb_svn=MODULE_SVN), tcb_info=info)
    assert claims.raw["tcb"]["module_status"] == "OutOfDate"  # ISVSVN 4 < 5, ≥ 3
    revoked = _module_info(intel, [identity_level("UpToDate", 5), identity_level("Revoked", 0)])
    fails(
        CertificateRevoked, "tcb-status", verify, intel, intel.quote(tee_tcb_svn=MODULE_SVN),
        tcb_info=revoked,
    )  # fmt: skip
    below = _module_info(intel, [identity_level("UpToDate", 5)])
    error = fails(
        EndorsementMismatch, "tcb-status", verify, intel, intel.quote(tee_tcb_svn=MODULE_SVN),
        tcb_info=below,
    )  # fmt: skip
    assert "ISVSVN 4" in str(error)


def test_module_identity_must_exist_and_match(intel: FakeIntel) -> None:
    quote = intel.quote(tee_tcb_svn=bytes([4, 2, 7]) + bytes(13))  # TDX_02: not in the info
    info = _module_info(intel, [identity_level("UpToDate", 0)])
    error = fails(EndorsementMismatch, "tcb-status", verify, intel, quote, tcb_info=info)
    assert "TDX_02" in str(error)
    signer = intel.tcb_info(
        identities=[module_identity(1, [identity_level("UpToDate", 0)], mrsigner=b"\1" * 48)],
        levels=[platform_level("UpToDate", tdx=[0] * 16)],
    )
    error = fails(
        EndorsementMismatch, "tcb-status", verify, intel, intel.quote(tee_tcb_svn=MODULE_SVN),
        tcb_info=signer,
    )  # fmt: skip
    assert "MRSIGNERSEAM" in str(error)


def test_seam_signer_and_attributes_of_the_tdx_module(intel: FakeIntel) -> None:
    fails(EndorsementMismatch, "tcb-status", verify, intel, intel.quote(mrsignerseam=b"\2" * 48))
    masked = intel.tcb_info(
        module={"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "00" * 8}
    )
    quote = intel.quote(seam_attributes=b"\xff" * 8)
    assert verify(intel, quote, tcb_info=masked).identity["tcb_status"] == "UpToDate"
    error = fails(EndorsementMismatch, "tcb-status", verify, intel, quote)
    assert "SEAMATTRIBUTES" in str(error)


@pytest.mark.parametrize(
    ("svn2", "platform", "final"),
    [
        (bytes([5, 0, 7]) + bytes(13), "UpToDate", "TDRelaunchAdvised"),
        (
            bytes([5, 0, 7]) + bytes(13),
            "ConfigurationNeeded",
            "TDRelaunchAdvisedConfigurationNeeded",
        ),
        (bytes([6, 1, 7]) + bytes(13), "UpToDate", "TDRelaunchAdvised"),
        (bytes([5, 1, 7]) + bytes(13), "UpToDate", "OutOfDate"),  # TDX_01 latest needs 6
        (bytes([5, 0, 6]) + bytes(13), "UpToDate", "OutOfDate"),  # SVN2[2] below the latest 7
    ],
)
def test_tdx15_relaunch_advised(intel: FakeIntel, svn2: bytes, platform: str, final: str) -> None:
    latest = [5, 0, 7] + [0] * 13
    info = intel.tcb_info(
        [platform_level(platform, tdx=latest)],
        identities=[
            module_identity(1, [identity_level("UpToDate", 6), identity_level("OutOfDate", 0)])
        ],
    )
    quote = intel.quote(version=5, tee_tcb_svn=MODULE_SVN, tee_tcb_svn2=svn2)
    assert parse_tdx_quote(quote).body_type == 3
    claims = verify(intel, quote, tcb_info=info)
    assert claims.identity["tcb_status"] == final
    # a v5 quote with a TDX 1.0 body is never advised to relaunch
    plain = intel.quote(version=5, tee_tcb_svn=MODULE_SVN)
    assert verify(intel, plain, tcb_info=info).identity["tcb_status"].startswith("OutOfDate")


# --- QE identity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qe_status", "platform", "final"),
    [
        ("OutOfDate", "UpToDate", "OutOfDate"),
        ("OutOfDate", "SWHardeningNeeded", "OutOfDate"),
        ("OutOfDate", "ConfigurationNeeded", "OutOfDateConfigurationNeeded"),
        ("OutOfDate", "ConfigurationAndSWHardeningNeeded", "OutOfDateConfigurationNeeded"),
        ("OutOfDate", "OutOfDate", "OutOfDate"),
        ("UpToDate", "ConfigurationNeeded", "ConfigurationNeeded"),
    ],
)
def test_qe_status_converges(intel: FakeIntel, qe_status: str, platform: str, final: str) -> None:
    qe = intel.qe_identity(
        [identity_level("UpToDate", 8), identity_level(qe_status, 3, advisories=["INTEL-SA-00999"])]
    )
    claims = verify(intel, tcb_info=intel.tcb_info([platform_level(platform)]), qe_identity=qe)
    assert claims.identity["qe_tcb_status"] == qe_status
    assert claims.identity["tcb_status"] == final
    assert "INTEL-SA-00999" in claims.raw["tcb"]["advisory_ids"]


def test_revoked_qe_is_refused(intel: FakeIntel) -> None:
    qe = intel.qe_identity([identity_level("UpToDate", 8), identity_level("Revoked", 0)])
    fails(CertificateRevoked, "qe-identity", verify, intel, qe_identity=qe)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"mrsigner": "00" * 32}, "MRSIGNER"),
        ({"isvprodid": 1}, "ISVPRODID"),
        ({"miscselect": "01000000"}, "MISCSELECT"),
        ({"attributes": "15000000000000000000000000000000"}, "ATTRIBUTES"),
        ({"id": "QE"}, "TD_QE"),
        ({"tcbLevels": [identity_level("UpToDate", 5)]}, "ISVSVN 4"),
    ],
)
def test_qe_identity_mismatch(intel: FakeIntel, fields: dict[str, Any], match: str) -> None:
    error = fails(
        EndorsementMismatch, "qe-identity", verify, intel, qe_identity=intel.qe_identity(**fields)
    )
    assert match in str(error)


def test_qe_masks_apply(intel: FakeIntel) -> None:
    quote = intel.quote(misc_select=0xFF00, attributes=b"\x15" + bytes(15))
    qe = intel.qe_identity(miscselectMask="FF000000", attributes="11" + "00" * 15)
    assert verify(intel, quote, qe_identity=qe).identity["qe_tcb_status"] == "UpToDate"


# --- platform mismatch ----------------------------------------------------------------------------


def test_fmspc_and_pce_id_must_be_the_pck_certificates(intel: FakeIntel) -> None:
    info = intel.tcb_info(fmspc=bytes.fromhex("00906ed50000"))
    error = fails(EndorsementMismatch, "tcb-status", verify, intel, tcb_info=info)
    assert "FMSPC 50806f000000" in str(error)
    assert "given: 00906ed50000" in str(error)
    fails(EndorsementMismatch, "tcb-status", verify, intel, tcb_info=intel.tcb_info(pce_id=b"\0\1"))
    pck = intel.pck(fmspc=bytes.fromhex("00906ed50000"))
    fails(EndorsementMismatch, "tcb-status", verify, intel, intel.quote(pck))


def test_an_sgx_tcb_info_cannot_appraise_a_tdx_quote(intel: FakeIntel) -> None:
    body = {
        "id": "SGX", "version": 3, "issueDate": "2025-05-01T00:00:00Z",
        "nextUpdate": "2025-06-01T00:00:00Z", "fmspc": FMSPC.hex(), "pceId": "0000",
        "tcbType": 0, "tcbEvaluationDataNumber": 17,
        "tcbLevels": [{
            "tcb": {"sgxtcbcomponents": [{"svn": 1}] * 16, "pcesvn": 1},
            "tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": "UpToDate",
        }],
    }  # fmt: skip
    sgx = intel.sign_document("tcbInfo", body)
    assert parse_tcb_info(sgx).tcb_levels[0].tdx_components is None
    error = fails(EndorsementMismatch, "tcb-status", verify, intel, tcb_info=sgx)
    assert "SGX TCB Info" in str(error)


def test_sgx_tcb_info_version_2_parses(intel: FakeIntel) -> None:
    tcb = {f"sgxtcbcomp{i:02d}svn": i for i in range(1, 17)} | {"pcesvn": 7}
    body = {
        "version": 2, "issueDate": "2025-05-01T00:00:00Z", "nextUpdate": "2025-06-01T00:00:00Z",
        "fmspc": FMSPC.hex(), "pceId": "0000", "tcbType": 0, "tcbEvaluationDataNumber": 9,
        "tcbLevels": [{"tcb": tcb, "tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": "Revoked"}],
    }  # fmt: skip
    info = parse_tcb_info(intel.sign_document("tcbInfo", body))
    assert info.id == "SGX"
    assert info.tcb_levels[0].sgx_components == tuple(range(1, 17))
    assert info.tcb_levels[0].pcesvn == 7


# --- signatures and the signing chain -------------------------------------------------------------


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("tcb_info", b'"tcbEvaluationDataNumber":17', b'"tcbEvaluationDataNumber":18'),
        ("tcb_info", b'"pcesvn":11', b'"pcesvn":10'),
        ("tcb_info", b'"tcbDate":"2025-02-12', b'"tcbDate":"2025-02-13'),
        ("qe_identity", b'"isvprodid":2', b'"isvprodid":3'),
        ("qe_identity", b'"nextUpdate":"2025-06-01', b'"nextUpdate":"2025-06-02'),
    ],
)
def test_a_tampered_byte_in_the_signed_json_is_refused(
    intel: FakeIntel, what: str, old: bytes, new: bytes
) -> None:
    good = intel.tcb_info() if what == "tcb_info" else intel.qe_identity()
    assert good.count(old) == 1
    assert len(old) == len(new)
    fails(BadSignature, "collateral", verify, intel, **{what: good.replace(old, new)})


def test_a_changed_signature_is_refused(intel: FakeIntel) -> None:
    good = intel.qe_identity()
    at = good.index(b'"signature":"') + 13
    bad = good[:at] + (b"0" if good[at : at + 1] != b"0" else b"1") + good[at + 1 :]
    fails(BadSignature, "collateral", verify, intel, qe_identity=bad)


def test_documents_signed_by_another_key(intel: FakeIntel) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    fails(BadSignature, "collateral", verify, intel, tcb_info=intel.tcb_info(key=other))


def test_the_signing_chain_must_reach_the_root(intel: FakeIntel) -> None:
    stranger = FakeIntel()
    # a TCB signing certificate of another root, alone or with that root
    fails(
        ChainNotTrusted, "collateral", verify, intel,
        chain=stranger.signing_chain(stranger.tcb_signing),
    )  # fmt: skip
    fails(ChainNotTrusted, "collateral", verify, intel, chain=stranger.signing_chain())
    # the PCK CA is not a TCB signing certificate
    fails(ChainNotTrusted, "collateral", verify, intel, chain=intel.signing_chain(intel.ca))
    expired = _intel_cert(
        "Intel SGX TCB Signing", intel.tcb_key, "Intel SGX Root CA", intel.root_key, ca=False,
        not_before=datetime(2020, 1, 1, tzinfo=UTC), days=365,
    )  # fmt: skip
    fails(CertificateExpired, "collateral", verify, intel, chain=intel.signing_chain(expired))


def test_a_revoked_tcb_signing_certificate(intel: FakeIntel) -> None:
    serial = intel.tcb_signing.serial_number
    fails(
        CertificateRevoked, "collateral", verify_tdx_quote, intel.quote(), now=TDX_NOW,
        root=intel.root,
        collateral=collateral(intel, crls=[intel.crl("root", [serial]), intel.crl("pck")]),
    )  # fmt: skip


def test_a_revoked_tcb_signing_certificate_by_a_crl_given_beside_the_collateral(
    intel: FakeIntel,
) -> None:
    # The root CA CRL given as a CRL (--crl, VerifyOptions.crls) rather than inside the
    # collateral used to reach the PCK chain only: the revoked signer's TCB Info was accepted.
    revoking = intel.crl("root", [intel.tcb_signing.serial_number])
    error = fails(
        CertificateRevoked, "collateral", verify_tdx_quote, intel.quote(), now=TDX_NOW,
        root=intel.root, collateral=collateral(intel, crls=[intel.crl("pck")]), crls=[revoking],
    )  # fmt: skip
    assert "'Intel SGX TCB Signing'" in str(error)
    fails(
        CertificateRevoked, "collateral", _tdx_verify.verify_tdx_quote, intel.quote(),
        now=TDX_NOW, root=intel.root,
        collateral=collateral(intel, crls=[revoking, intel.crl("pck")]), crls=[revoking],
    )  # fmt: skip
    # a root CRL that does not list it still passes, and is not counted twice
    log = CheckLog()
    verify_tdx_quote(
        intel.quote(), now=TDX_NOW, root=intel.root, collateral=collateral(intel),
        crls=[intel.crl("root")], checks=log,
    )  # fmt: skip
    detail = next(c.detail for c in log.checks if c.name == "collateral")
    assert detail.endswith("signer not revoked")


def test_signature_checks_are_cached(intel: FakeIntel) -> None:
    cache = TdxChainCache()
    doc = collateral(intel)
    verify_tdx_quote(intel.quote(), now=TDX_NOW, root=intel.root, collateral=doc, cache=cache)
    assert len(cache) == 3  # the PCK chain, the TCB Info, the QE Identity
    verify_tdx_quote(intel.quote(), now=TDX_NOW, root=intel.root, collateral=doc, cache=cache)
    assert len(cache) == 4  # a new quote's PCK; the documents were remembered


# --- revocation and staleness --------------------------------------------------------------------


def test_a_revoked_pck_is_refused(intel: FakeIntel) -> None:
    pck = intel.pck(serial=0xBAD)
    crls = [intel.crl("pck", [0x77, 0xBAD]), intel.crl("root")]
    error = fails(CertificateRevoked, "revocation", verify, intel, intel.quote(pck), crls=crls)
    assert "0xbad" in str(error)
    # the same CRLs given through --crl (not the collateral)
    fails(
        CertificateRevoked, "revocation", verify_tdx_quote, intel.quote(pck), now=TDX_NOW,
        root=intel.root, crls=crls,
    )  # fmt: skip


def test_a_crl_signed_by_another_key_is_refused(intel: FakeIntel) -> None:
    forged = FakeIntel()
    forged_crl = forged.crl("pck")  # same issuer name, another key
    fails(ChainNotTrusted, "revocation", verify, intel, crls=[forged_crl])


def test_crls_of_other_cas_do_not_apply(intel: FakeIntel) -> None:
    processor = make_crl(_intel_name("Intel SGX PCK Processor CA"), intel.root_key, [0x1234])
    log = CheckLog()
    verify_tdx_quote(intel.quote(), now=TDX_NOW, root=intel.root, crls=[processor], checks=log)
    assert {n.name: n.reason for n in log.not_checked}["revocation"] == (
        "none of the 1 CRL(s) given is of this chain's CAs"
    )


def _point(**fields: bool) -> x509.IssuingDistributionPoint:
    return x509.IssuingDistributionPoint(
        full_name=None,
        relative_name=None,
        only_contains_user_certs=fields.get("users", False),
        only_contains_ca_certs=fields.get("cas", False),
        only_some_reasons=(
            frozenset({x509.ReasonFlags.key_compromise}) if fields.get("reasons") else None
        ),
        indirect_crl=fields.get("indirect", False),
        only_contains_attribute_certs=False,
    )


@pytest.mark.parametrize(
    ("issuer", "extension", "why"),
    [
        ("pck", x509.DeltaCRLIndicator(1), "a delta CRL (base CRL number 1), not a complete CRL"),
        ("pck", _point(reasons=True), "it covers only some revocation reasons (keyCompromise)"),
        (
            "root",
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"),
            "unknown critical extension 1.2.3.4",
        ),
        ("root", _point(indirect=True), "an indirect CRL (issuing distribution point indirectCRL)"),
    ],
    ids=["pck-delta", "pck-only-some-reasons", "root-unknown-critical", "root-indirect"],
)
def test_a_crl_that_cannot_decide_revocation_is_refused(
    intel: FakeIntel, issuer: str, extension: x509.ExtensionType, why: str
) -> None:
    # signed by the right CA and listing nothing of the chain: not read as "not revoked"
    hostile = intel.crl(issuer, [0x1234], extensions=[(extension, True)])
    for crls in ([hostile], [intel.crl(issuer), hostile]):
        error = fails(ChainNotTrusted, "revocation", verify, intel, crls=crls)
        assert error.code == "crl-unusable"  # type: ignore[attr-defined]
        assert str(error).endswith(f"cannot decide revocation: {why}")
    # given with --crl rather than in the collateral
    fails(
        ChainNotTrusted, "revocation", verify_tdx_quote, intel.quote(), now=TDX_NOW,
        root=intel.root, crls=[hostile],
    )  # fmt: skip


def test_a_crl_whose_scope_leaves_a_certificate_out_does_not_cover_it(intel: FakeIntel) -> None:
    pck = intel.pck(serial=0xBAD)
    # a PCK CA CRL only of CA certificates lists the PCK's serial: not a revocation of it
    cas_only = intel.crl("pck", [0xBAD], extensions=[(_point(cas=True), True)])
    log = CheckLog()
    verify_tdx_quote(intel.quote(pck), now=TDX_NOW, root=intel.root, crls=[cas_only], checks=log)
    detail = next(c.detail for c in log.checks if c.name == "revocation")
    assert detail == (
        "no CRL given for: Intel SGX PCK Certificate, Intel SGX PCK Platform CA, Intel SGX Root CA"
    )
    # one only of end entities covers it, and revokes it
    users_only = intel.crl("pck", [0xBAD], extensions=[(_point(users=True), True)])
    fails(
        CertificateRevoked, "revocation", verify_tdx_quote, intel.quote(pck), now=TDX_NOW,
        root=intel.root, crls=[users_only],
    )  # fmt: skip


LATE = NEXT_UPDATE + timedelta(days=1)


@pytest.mark.parametrize("what", ["tcb_info", "qe_identity"])
def test_expired_documents_are_refused_unless_allowed(intel: FakeIntel, what: str) -> None:
    expired = {
        "tcb_info": intel.tcb_info(next_update=TDX_NOW - timedelta(days=1)),
        "qe_identity": intel.qe_identity(next_update=TDX_NOW - timedelta(days=1)),
    }[what]
    error = fails(CollateralExpired, "collateral", verify, intel, **{what: expired})
    assert error.code == "collateral-expired"
    log = CheckLog()
    claims = verify(intel, allow_stale=True, log=log, **{what: expired})
    detail = next(c.detail for c in log.checks if c.name == "collateral")
    assert "stale: allowed" in detail
    name = "TCB Info 50806f000000" if what == "tcb_info" else "QE Identity"
    assert [s["name"] for s in claims.raw["stale_collateral"]] == [name]
    assert claims.raw["stale_collateral"][0]["next_update"] == "2025-05-19T00:00:00Z"
    assert claims.identity["tcb_status"] == "UpToDate"


def test_documents_issued_after_the_verification_time(intel: FakeIntel) -> None:
    early = ISSUED - timedelta(days=1)
    crls = [intel.crl(ca, last_update=early - timedelta(days=1)) for ca in ("pck", "root")]
    fails(CollateralExpired, "collateral", verify, intel, now=early, crls=crls)


def test_expired_crls_are_refused_unless_allowed(intel: FakeIntel) -> None:
    stale = intel.crl("pck", last_update=ISSUED - timedelta(days=60), next_update=ISSUED)
    root = intel.crl("root")
    fails(CollateralExpired, "revocation", verify, intel, crls=[stale, root])
    claims = verify(intel, crls=[stale, root], allow_stale=True)
    assert [s["name"] for s in claims.raw["stale_collateral"]] == [
        "CRL of Intel SGX PCK Platform CA"
    ]
    # a newer CRL of the same CA covers it
    claims = verify(intel, crls=[stale, intel.crl("pck"), root])
    assert claims.raw["stale_collateral"] == []


def test_a_crl_without_next_update_counts_as_stale(intel: FakeIntel) -> None:
    bare = crl_without_next_update(intel.crl("pck"), intel.ca_key)
    assert bare.next_update_utc is None
    assert bare.is_signature_valid(intel.ca.public_key())
    error = fails(CollateralExpired, "revocation", verify, intel, crls=[bare, intel.crl("root")])
    assert "no nextUpdate" in str(error)
    claims = verify(intel, crls=[bare, intel.crl("root")], allow_stale=True)
    assert claims.raw["stale_collateral"][0]["next_update"] is None


def test_all_stale_collateral_listed_once(intel: FakeIntel) -> None:
    claims = verify(
        intel,
        now=LATE,
        allow_stale=True,
        crls=[intel.crl("root"), intel.crl("pck")],
    )
    names = [s["name"] for s in claims.raw["stale_collateral"]]
    assert sorted(names) == sorted(
        {
            "CRL of Intel SGX PCK Platform CA",
            "CRL of Intel SGX Root CA",
            "TCB Info 50806f000000",
            "QE Identity",
        }
    )


# --- malformed collateral ------------------------------------------------------------------------


def _document(member: str, body: dict[str, Any] | str, signature: str = "00" * 64) -> bytes:
    inner = body if isinstance(body, str) else json.dumps(body)
    return f'{{"{member}": {inner}, "signature": "{signature}"}}'.encode()


def _good_tcb_body(intel: FakeIntel) -> dict[str, Any]:
    return json.loads(parse_tcb_info(intel.tcb_info()).signed_body)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(version=4),
        lambda b: b.update(id="TDXX"),
        lambda b: b.update(tcbType=1),
        lambda b: b.update(fmspc="50806f"),
        lambda b: b.update(fmspc="zz806f000000"),
        lambda b: b.update(issueDate="yesterday"),
        lambda b: b.update(issueDate="2025-05-01T00:00:00"),
        lambda b: b.update(tcbLevels=[]),
        lambda b: b.update(tcbLevels="none"),
        lambda b: b["tcbLevels"][0].update(tcbStatus="Fine"),
        lambda b: b["tcbLevels"][0]["tcb"].update(pcesvn=-1),
        lambda b: b["tcbLevels"][0]["tcb"].update(pcesvn=True),
        lambda b: b["tcbLevels"][0]["tcb"]["sgxtcbcomponents"].pop(),
        lambda b: b["tcbLevels"][0]["tcb"]["tdxtcbcomponents"][0].update(svn=256),
        lambda b: b["tcbLevels"][0].update(advisoryIDs=[1]),
        lambda b: b.pop("tdxModule"),
        lambda b: b["tdxModule"].update(mrsigner="00"),
        lambda b: b.update(tdxModuleIdentities=[{"id": "TDX_01"}]),
        lambda b: b.pop("nextUpdate"),
    ],
)
def test_malformed_tcb_info(intel: FakeIntel, mutate: Any) -> None:
    body = _good_tcb_body(intel)
    mutate(body)
    with pytest.raises(MalformedCollateral):
        parse_tcb_info(_document("tcbInfo", body))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"tcbInfo": {}}',
        b'{"signature": "00"}',
        b'{"tcbInfo": [], "signature": "' + b"00" * 64 + b'"}',
        b'{"tcbInfo": {}, "signature": "00"}',
        b'{"tcbInfo": {}, "signature": "' + b"zz" * 64 + b'"}',
        b'{"tcbInfo": {}, "tcbInfo": {}, "signature": "' + b"00" * 64 + b'"}',
        b'{"tcbInfo": {"a": 1, "a": 2}, "signature": "' + b"00" * 64 + b'"}',
        b'{"tcbInfo": {"a": NaN}, "signature": "' + b"00" * 64 + b'"}',
        b'{"tcbInfo": {}, "signature": "' + b"00" * 64 + b'",}',
        b'{"tcbInfo": {}, "signature": "' + b"00" * 64 + b'"} {}',
        b'{"tcbInfo": {} "signature": "' + b"00" * 64 + b'"}',
        b"\xff\xfe{}",
        b'{"tcbInfo":' + b"[" * 100_000,
        b" " * (1024 * 1024 + 1),
    ],
)
def test_malformed_documents(data: bytes) -> None:
    with pytest.raises(MalformedCollateral):
        parse_tcb_info(data)
    with pytest.raises(MalformedCollateral):
        parse_qe_identity(data.replace(b"tcbInfo", b"enclaveIdentity"))


@pytest.mark.parametrize(
    "fields",
    [
        {"version": 1},
        {"id": "XX"},
        {"mrsigner": "00" * 31},
        {"miscselectMask": "FFFF"},
        {"isvprodid": 70000},
        {"tcbLevels": []},
        {"tcbLevels": [identity_level("SWHardeningNeeded", 1)]},
    ],
)
def test_malformed_qe_identity(intel: FakeIntel, fields: dict[str, Any]) -> None:
    with pytest.raises(MalformedCollateral):
        parse_qe_identity(intel.qe_identity(**fields))


@pytest.mark.parametrize(
    ("document", "name", "spaced"),
    [
        ("qe", "mrsigner", QE_MRSIGNER.hex().upper()[:60] + "    "),
        ("qe", "attributesMask", "FBFFFFFF FFFFFFFF  0000000000 00"),
        ("tcb", "fmspc", "5080 6f00 00"),
        ("tcb", "pceId", "00  "),
    ],
)
def test_hex_with_spaces_is_not_a_shorter_value(
    intel: FakeIntel, document: str, name: str, spaced: str
) -> None:
    """``bytes.fromhex`` skips spaces, so a 32-byte mrsigner written as 60 hex digits and
    four spaces parsed as 30 bytes (a mask as 14 of its 16, an FMSPC as 5 of its 6): a field
    of the wrong size, and a masked comparison over fewer bytes (zip stops at the shorter)."""
    data = intel.qe_identity() if document == "qe" else intel.tcb_info()
    parse = parse_qe_identity if document == "qe" else parse_tcb_info
    body = json.loads(parse(data).signed_body)  # type: ignore[operator]
    old = f'"{name}":"{body[name]}"'.encode()
    assert data.count(old) == 1
    with pytest.raises(MalformedCollateral) as caught:
        parse(data.replace(old, f'"{name}":"{spaced}"'.encode()))  # type: ignore[operator]
    assert type(caught.value) is MalformedCollateral
    assert caught.value.code == "malformed-collateral"
    assert "bytes of hex" in caught.value.detail


def test_a_signature_with_spaces_is_malformed(intel: FakeIntel) -> None:
    """The signature's 128 characters with spaces among them were read as fewer bytes."""
    good = intel.qe_identity()
    signature = parse_qe_identity(good).signature.hex()
    spaced = good.replace(signature.encode(), signature[:-4].encode() + b"  00")
    with pytest.raises(MalformedCollateral) as caught:
        parse_qe_identity(spaced)
    assert type(caught.value) is MalformedCollateral
    assert caught.value.code == "malformed-collateral"
    assert "the signature is not 64 bytes of hex" in caught.value.detail


def test_signed_bytes_are_exactly_the_inner_object(intel: FakeIntel) -> None:
    spaced = b'  {  "tcbInfo" :\n' + parse_tcb_info(intel.tcb_info()).signed_body + b" ,"
    signature = parse_tcb_info(intel.tcb_info()).signature.hex().encode()
    document = spaced + b' "signature" : "' + signature + b'" , "extra": [1] }\n'
    info = parse_tcb_info(document)
    assert info.signed_body == parse_tcb_info(intel.tcb_info()).signed_body
    assert verify(intel, tcb_info=document).identity["tcb_status"] == "UpToDate"


def test_duplicate_tcb_infos_of_one_fmspc_are_refused(intel: FakeIntel) -> None:
    with pytest.raises(MalformedCollateral):
        collateral(intel, tcb_info=[intel.tcb_info(), intel.tcb_info()])


def test_collateral_for_another_format_is_a_usage_error(intel: FakeIntel, snp_dir: Path) -> None:
    options = VerifyOptions(now=TDX_NOW, collateral=collateral(intel))
    report = (snp_dir / "deps_verifier_test_data_snp_test-report.bin").read_bytes()
    with pytest.raises(MalformedInput, match="takes no Intel TDX collateral"):
        verify_evidence(report, options)


# --- property tests: only typed errors escape the collateral parsers -------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _parses_or_is_malformed(data: bytes) -> None:
    for parse in (parse_tcb_info, parse_qe_identity):
        with contextlib.suppress(MalformedCollateral):
            parse(data)


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_are_malformed_collateral(data: bytes) -> None:
    _parses_or_is_malformed(data)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_documents_raise_only_malformed_collateral(data: st.DataObject) -> None:
    """Structure-aware: one member anywhere in a valid TCB Info / QE Identity replaced by any
    JSON value, or removed; then bytes flipped or cut."""
    intel = _PROPERTY_INTEL
    member, good = data.draw(
        st.sampled_from(
            [
                (
                    "tcbInfo",
                    parse_tcb_info(
                        intel.tcb_info(
                            identities=[module_identity(1, [identity_level("UpToDate", 2)])]
                        )
                    ).signed_body,
                ),
                ("enclaveIdentity", parse_qe_identity(intel.qe_identity()).signed_body),
            ]
        )
    )
    body = json.loads(good)
    target: Any = body
    for _ in range(data.draw(st.integers(0, 4))):
        if isinstance(target, dict) and target:
            key = data.draw(st.sampled_from(sorted(target)))
            if not isinstance(target[key], dict | list) or not target[key]:
                break
            target = target[key]
        elif isinstance(target, list) and target:
            index = data.draw(st.integers(0, len(target) - 1))
            if not isinstance(target[index], dict | list) or not target[index]:
                break
            target = target[index]
    if isinstance(target, dict) and target:
        key = data.draw(st.sampled_from(sorted(target)))
        if data.draw(st.booleans()):
            del target[key]
        else:
            target[key] = data.draw(_JSON)
    document = json.dumps({member: body, "signature": "00" * 64}).encode()
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(document)))
        flip = data.draw(st.integers(0, 255))
        document = document[:cut] + bytes([flip]) + document[cut + 1 :]
    _parses_or_is_malformed(document)


_PROPERTY_INTEL = FakeIntel()


def test_the_claims_hold_until_the_first_certificate_or_fresh_collateral_ends(
    intel: FakeIntel,
) -> None:
    bare = verify_tdx_quote(intel.quote(), now=TDX_NOW, root=intel.root)
    assert bare.valid_until == min(c.not_valid_after_utc for c in (intel.ca, intel.root))
    assert bare.valid_until > NEXT_UPDATE
    claims = verify(intel, crls=[intel.crl("root"), intel.crl("pck")])
    assert claims.valid_until == NEXT_UPDATE  # the CRLs', the TCB Info's, the QE Identity's
    # collateral allowed though stale speaks for no time: the certificates' end stands
    late = verify(intel, now=NEXT_UPDATE + timedelta(days=1), allow_stale=True)
    assert late.valid_until == bare.valid_until
