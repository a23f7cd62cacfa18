"""Intel collateral needs the CRLs of the PCK chain, as Intel's QVL requires: with a TCB Info or
QE Identity given, the PCK must be covered by the PCK CRL of its issuer (the PCK Platform or
Processor CA) and that CA by the Intel SGX Root CA CRL; otherwise the quote is refused
(``MalformedCollateral`` code ``crl-missing``, check ``revocation``), never passed with a note.
CRLs alone are not Intel collateral and stay optional."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.attestation.evidence import (
    CheckLog,
    TdxCollateral,
    load_crls,
    load_tdx_collateral,
    verify_tdx_quote,
)
from ironroot.errors import ChainNotTrusted, MalformedCollateral
from tee_fakes import TDX_NOW, FakeIntel, _intel_name, make_crl

QUOTE4 = "deps_verifier_test_data_tdx_quote_4.dat"
SPR = "testing_testdata_tdx_prod_quote_SPR_E4.dat"
REAL_NOW = datetime(2023, 6, 20, tzinfo=UTC)  # inside both real CRLs' validity


@pytest.fixture(scope="module")
def intel() -> FakeIntel:
    return FakeIntel()


def _collateral(intel: FakeIntel, crls: Sequence[x509.CertificateRevocationList]) -> TdxCollateral:
    return load_tdx_collateral(
        tcb_info=intel.tcb_info(),
        qe_identity=intel.qe_identity(),
        signing_chain=intel.signing_chain(),
        crls=[c.public_bytes(Encoding.DER) for c in crls],
    )


def _missing(call: object, *args: object, **kwargs: object) -> MalformedCollateral:
    with pytest.raises(MalformedCollateral) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert type(caught.value) is MalformedCollateral
    assert caught.value.code == "crl-missing"
    assert caught.value.check == "revocation"
    return caught.value


def test_collateral_without_any_crl_is_refused(intel: FakeIntel) -> None:
    error = _missing(
        verify_tdx_quote, intel.quote(), now=TDX_NOW, root=intel.root,
        collateral=_collateral(intel, []),
    )  # fmt: skip
    assert str(error) == (
        "no CRL of 'Intel SGX PCK Platform CA' covers the PCK certificate: Intel collateral "
        "needs the PCK CRL of the PCK's issuer (PCS pckcrl?ca=platform)"
    )


def test_collateral_with_the_root_crl_only_is_refused(intel: FakeIntel) -> None:
    error = _missing(
        verify_tdx_quote, intel.quote(), now=TDX_NOW, root=intel.root,
        collateral=_collateral(intel, [intel.crl("root")]),
    )  # fmt: skip
    assert "'Intel SGX PCK Platform CA'" in str(error)


def test_collateral_with_the_pck_crl_only_is_refused(intel: FakeIntel) -> None:
    error = _missing(
        verify_tdx_quote, intel.quote(), now=TDX_NOW, root=intel.root,
        collateral=_collateral(intel, [intel.crl("pck")]),
    )  # fmt: skip
    assert str(error) == (
        "no CRL of 'Intel SGX Root CA' covers 'Intel SGX PCK Platform CA': Intel collateral "
        "needs the Intel SGX Root CA CRL"
    )


def test_the_other_pck_cas_crl_does_not_stand_in(intel: FakeIntel) -> None:
    # a Processor CA CRL (right for other platforms) says nothing of a Platform CA's PCK
    processor = make_crl(_intel_name("Intel SGX PCK Processor CA"), intel.root_key, [0x1234])
    error = _missing(
        verify_tdx_quote, intel.quote(), now=TDX_NOW, root=intel.root,
        collateral=_collateral(intel, [processor, intel.crl("root")]),
    )  # fmt: skip
    assert "'Intel SGX PCK Platform CA'" in str(error)


def test_a_pck_crl_whose_scope_leaves_the_pck_out_does_not_cover_it(intel: FakeIntel) -> None:
    cas_only = intel.crl(
        "pck",
        extensions=[
            (
                x509.IssuingDistributionPoint(
                    full_name=None, relative_name=None, only_contains_user_certs=False,
                    only_contains_ca_certs=True, only_some_reasons=None, indirect_crl=False,
                    only_contains_attribute_certs=False,
                ),
                True,
            )
        ],
    )  # fmt: skip
    _missing(
        verify_tdx_quote, intel.quote(), now=TDX_NOW, root=intel.root,
        collateral=_collateral(intel, [cas_only, intel.crl("root")]),
    )  # fmt: skip


def test_crls_given_beside_the_collateral_count(intel: FakeIntel) -> None:
    log = CheckLog()
    claims = verify_tdx_quote(
        intel.quote(), now=TDX_NOW, root=intel.root, collateral=_collateral(intel, []),
        crls=[intel.crl("pck"), intel.crl("root")], checks=log,
    )  # fmt: skip
    assert claims.identity["tcb_status"] == "UpToDate"
    detail = next(c.detail for c in log.checks if c.name == "revocation")
    assert detail.startswith("not revoked: Intel SGX PCK Certificate, Intel SGX PCK Platform CA")
    assert log.not_checked == ()


def test_without_collateral_crls_stay_optional(intel: FakeIntel) -> None:
    log = CheckLog()
    verify_tdx_quote(
        intel.quote(), now=TDX_NOW, root=intel.root, crls=[intel.crl("root")], checks=log
    )
    detail = next(c.detail for c in log.checks if c.name == "revocation")
    assert detail == (
        "not revoked: Intel SGX PCK Platform CA, Intel SGX Root CA; "
        "no CRL given for: Intel SGX PCK Certificate"
    )


def test_crls_alone_are_not_intel_collateral(intel: FakeIntel) -> None:
    # a verifier's configured CRLs (AMD's, NVIDIA's, a root CA CRL) reach the verifier as a
    # CRL-only collateral: they stay optional for a TDX quote, as without collateral
    log = CheckLog()
    verify_tdx_quote(
        intel.quote(), now=TDX_NOW, root=intel.root,
        collateral=load_tdx_collateral(crls=[intel.crl("root").public_bytes(Encoding.DER)]),
        checks=log,
    )  # fmt: skip
    detail = next(c.detail for c in log.checks if c.name == "revocation")
    assert detail.endswith("no CRL given for: Intel SGX PCK Certificate")


@pytest.mark.vectors
@pytest.mark.parametrize("name", [QUOTE4, SPR])
def test_real_pcs_crls_cover_real_quotes(tdx_dir: Path, intel: FakeIntel, name: str) -> None:
    # PCS's PCK CRL (issuer "Intel SGX PCK Platform CA") and root CA CRL, beside PCS's real
    # TCB Info (whose signing chain the vectors lack: a self-made one stops at "collateral")
    pck_crl = (tdx_dir / "testing_testdata_pckcrl").read_bytes()
    root_crl = (tdx_dir / "testing_testdata_rootcrl.der").read_bytes()
    assert [c.issuer for c in load_crls(pck_crl)] == [
        x509.Name.from_rfc4514_string(
            "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX PCK Platform CA"
        )
    ]
    tcb_info = (tdx_dir / "testing_testdata_sample_tcbInfo_response").read_bytes()

    def real(*crls: bytes) -> TdxCollateral:
        return load_tdx_collateral(
            tcb_info=tcb_info, signing_chain=intel.signing_chain(), crls=list(crls)
        )

    quote = (tdx_dir / name).read_bytes()
    log = CheckLog()
    with pytest.raises(ChainNotTrusted) as caught:
        verify_tdx_quote(quote, now=REAL_NOW, collateral=real(pck_crl, root_crl), checks=log)
    assert caught.value.check == "collateral"
    detail = next(c.detail for c in log.checks if c.name == "revocation")
    assert detail == (
        "not revoked: Intel SGX PCK Certificate, Intel SGX PCK Platform CA, Intel SGX Root CA"
    )
    error = _missing(verify_tdx_quote, quote, now=REAL_NOW, collateral=real(root_crl))
    assert "'Intel SGX PCK Platform CA'" in str(error)
    error = _missing(verify_tdx_quote, quote, now=REAL_NOW, collateral=real(pck_crl))
    assert "'Intel SGX Root CA'" in str(error)
