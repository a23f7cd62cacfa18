"""A TDX quote signed by a quoting enclave that is not Intel's TD QE.

The PCK signs the report of any enclave the platform lets hold the PROVISION_KEY attribute (the
PCE certifies it), and on a flexible-launch-control platform the host decides which enclaves
those are. An enclave of the host's own (or Intel's QE launched in debug mode, readable by the
host) thus gets a PCK-signed QE report binding an attestation key it holds, and signs any TD
report it likes: any MRTD, any RTMRs, the verifier's nonce. Only the QE's identity (MRSIGNER,
ISVPRODID, ATTRIBUTES) tells it apart, which Intel's QVL always checks against the QE Identity.
Without QE Identity collateral the verifier must still refuse a QE that is not Intel's TD QE."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ironroot.attestation.evidence import CheckLog, verify_tdx_quote
from ironroot.errors import EndorsementMismatch
from tee_fakes import QE_ATTRIBUTES, QE_MRSIGNER, TDX_NOW, FakeIntel

QUOTE_TIME = datetime(2026, 11, 28, tzinfo=UTC)  # inside the real PCK chains' validity


@pytest.fixture(scope="module")
def intel() -> FakeIntel:
    return FakeIntel()


def test_intels_td_qe_is_checked_without_collateral(intel: FakeIntel) -> None:
    log = CheckLog()
    verify_tdx_quote(intel.quote(), now=TDX_NOW, root=intel.root, checks=log)
    assert [c.detail for c in log.checks if c.name == "qe-signer"] == [
        "QE is Intel's TD QE (MRSIGNER dc9e2a7c…, ISVPRODID 2, MISCSELECT and ATTRIBUTES "
        "under Intel's masks; no QE Identity given)"
    ]


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {"mr_signer": b"\x5a" * 32},
            f"QE MRSIGNER {'5a' * 32} is not Intel's TD QE signer {QE_MRSIGNER.hex()} "
            "(no QE Identity given)",
        ),
        (
            {"isv_prod_id": 1},
            "QE ISVPRODID 1 is not Intel's TD QE (2) (no QE Identity given)",
        ),
        (
            # the DEBUG attribute (bit 1): the host can read a debug enclave's keys
            {"attributes": b"\x17" + QE_ATTRIBUTES[1:]},
            f"QE ATTRIBUTES 17{QE_ATTRIBUTES[1:].hex()} under mask fbffffffffffffff"
            "0000000000000000 are not 11000000000000000000000000000000 (no QE Identity given)",
        ),
        (
            {"misc_select": 1},
            "QE MISCSELECT 01000000 under mask ffffffff is not 00000000 (no QE Identity given)",
        ),
    ],
)
def test_a_qe_that_is_not_intels_is_refused_without_collateral(
    intel: FakeIntel, fields: dict[str, object], detail: str
) -> None:
    quote = intel.quote(**fields)  # type: ignore[arg-type]
    with pytest.raises(EndorsementMismatch) as caught:
        verify_tdx_quote(quote, now=TDX_NOW, root=intel.root)
    assert type(caught.value) is EndorsementMismatch
    assert caught.value.detail == detail
    assert caught.value.check == "qe-signer"


@pytest.mark.vectors
@pytest.mark.parametrize(
    "name",
    [
        "deps_verifier_test_data_tdx_quote_4.dat",
        "testing_testdata_quote_v5_sample.dat",
        "testing_testdata_tdx_prod_quote_SPR_E4.dat",
        "testing_testdata_ccel_cos-113-tdx-quote.dat",
    ],
)
def test_every_real_quote_is_intels_td_qe(tdx_dir: Path, name: str) -> None:
    log = CheckLog()
    verify_tdx_quote((tdx_dir / name).read_bytes(), now=QUOTE_TIME, checks=log)
    assert {"qe-signer", "tdx-module"} <= {c.name for c in log.checks}


# The TDX module the same way: without TCB Info, nothing said the module that measured and
# reported the TD was Intel's (MRSIGNERSEAM zero) or a production one (SEAMATTRIBUTES zero, as
# every tdxModule of Intel's TCB Info requires).


def test_intels_tdx_module_is_checked_without_tcb_info(intel: FakeIntel) -> None:
    log = CheckLog()
    verify_tdx_quote(intel.quote(), now=TDX_NOW, root=intel.root, checks=log)
    assert [c.detail for c in log.checks if c.name == "tdx-module"] == [
        "TDX module is Intel's (MRSIGNERSEAM zero, SEAMATTRIBUTES zero; no TCB Info given)"
    ]


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {"mrsignerseam": b"\x5a" * 48},
            f"MRSIGNERSEAM {'5a' * 8}… is not Intel's TDX module signer (zero) (no TCB Info given)",
        ),
        (
            {"seam_attributes": b"\x01" + bytes(7)},
            "SEAMATTRIBUTES 0100000000000000 are not 0000000000000000 (no TCB Info given)",
        ),
    ],
)
def test_a_tdx_module_that_is_not_intels_is_refused_without_tcb_info(
    intel: FakeIntel, fields: dict[str, object], detail: str
) -> None:
    quote = intel.quote(**fields)  # type: ignore[arg-type]
    with pytest.raises(EndorsementMismatch) as caught:
        verify_tdx_quote(quote, now=TDX_NOW, root=intel.root)
    assert type(caught.value) is EndorsementMismatch
    assert caught.value.detail == detail
    assert caught.value.check == "tdx-module"
