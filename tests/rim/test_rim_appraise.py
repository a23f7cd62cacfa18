"""Appraisal of GPU measurement blocks against the driver and VBIOS RIMs on the log: real RIMs,
the real H100 report's blocks, and every block no RIM allows named."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest
from _rim_helpers import (
    DRIVER_FILE,
    DRIVER_ID,
    NOW,
    VBIOS_FILE,
    VBIOS_ID,
    VBIOS_TEST_FILE,
    RimLog,
    RimPki,
    golden_blocks,
    swid,
    vector_blocks,
    vector_evidence,
    vector_rim,
)

from ironroot.attestation import appraise_gpu_rims
from ironroot.attestation.evidence import parse_nvidia_opaque_data
from ironroot.errors import MalformedEvidence, MeasurementMismatch, NotFound, VerificationFailed
from ironroot.rim import (
    LoggedRim,
    LoggedRims,
    RimId,
    compare_measurements,
    logged_rim_from_statement,
    verify_rim,
)

# The H100 report's evidence values (its opaque data: project, SKU, chip, VBIOS, driver).
H100 = {
    "project": "1010",
    "sku": "0200",
    "chip": "882",
    "vbios_version": "96.00.9F.00.01",
    "driver_version": "550.90.07",
}
# The logged RIMs' versions, for evidence that has them.
LOGGED = {**H100, "vbios_version": "96.00.5E.00.01", "driver_version": "545.00"}


@pytest.fixture(scope="module")
def both_vbios(rim_log: RimLog, logged: dict[str, bytes]) -> LoggedRims:
    """The driver RIM and both VBIOS RIMs of one id: NVIDIA's production one and its test one,
    which carries the same tagId and tagVersion, signed by the same chain, other values."""
    return LoggedRims(
        logged_rim_from_statement(data, service_keys=rim_log.service_keys, now=NOW)
        for data in logged.values()
    )


@pytest.fixture(scope="module")
def rims(both_vbios: LoggedRims) -> LoggedRims:
    """The driver RIM and the production VBIOS RIM."""
    test = hashlib.sha384(vector_rim(VBIOS_TEST_FILE)).digest()
    return LoggedRims(r for r in both_vbios if r.rim.digest != test)


def _by(rims: LoggedRims, rim_id: str, digest_of: str) -> LoggedRim:
    digest = hashlib.sha384(vector_rim(digest_of)).digest()
    return next(r for r in rims.find(rim_id) if r.rim.digest == digest)


def test_the_log_holds_both_vbios_rims_of_one_id(both_vbios: LoggedRims) -> None:
    assert len(both_vbios) == 3
    assert len(both_vbios.find(VBIOS_ID)) == 2
    assert [str(r) for r in both_vbios.find(DRIVER_ID)] == [DRIVER_ID]
    assert both_vbios.find("NV_GPU_DRIVER_GH100_550.90.07") == ()


def test_blocks_that_the_rims_allow_are_affirmed(rims: LoggedRims) -> None:
    blocks = golden_blocks(vector_rim(DRIVER_FILE), vector_rim(VBIOS_FILE))
    blocks.update({b: bytes(48) for b in range(42, 65)})  # blocks no RIM has active
    result = rims.appraise(blocks, **LOGGED)
    result.check()
    assert str(result.driver.rim_id) == DRIVER_ID
    assert str(result.vbios.rim_id) == VBIOS_ID
    assert result.mismatches == ()
    assert result.matched == (*range(1, 14), *range(22, 42))
    assert result.not_covered == tuple(range(42, 65))
    assert result.skipped == ()


def test_real_rims_past_their_chains_validity_are_not_selected(rims: LoggedRims) -> None:
    # The vector RIMs were taken from the log at NOW, inside their chains' validity;
    # appraised later, after NVIDIA's signing certificates expired, they no longer count.
    blocks = golden_blocks(vector_rim(DRIVER_FILE), vector_rim(VBIOS_FILE))
    rims.appraise(blocks, **LOGGED, now=NOW)
    driver = rims.find(DRIVER_ID)[0].rim
    with pytest.raises(NotFound) as caught:
        rims.appraise(blocks, **LOGGED, now=driver.not_after + dt.timedelta(seconds=1))
    assert caught.value.code == "rim-expired"
    assert caught.value.detail.startswith(f"the driver RIM {DRIVER_ID} on the log is not valid")
    with pytest.raises(NotFound) as early:
        rims.appraise(blocks, **LOGGED, now=driver.not_before - dt.timedelta(seconds=1))
    assert early.value.code == "rim-expired"


def test_every_alternative_is_allowed(rims: LoggedRims) -> None:
    for alternative in range(4):  # measurement 12 of the VBIOS RIM has four
        blocks = golden_blocks(
            vector_rim(DRIVER_FILE), vector_rim(VBIOS_FILE), alternative=alternative
        )
        rims.appraise(blocks, **LOGGED)


def test_two_rims_of_one_tag_id_and_version_with_other_values_are_ambiguous(
    both_vbios: LoggedRims,
) -> None:
    """NVIDIA's test VBIOS RIM (``…_test_no_gpu``) carries the production RIM's tagId and
    tagVersion, is signed by the same production chain and lists other values for four
    blocks: only the file name tells them apart, and it is not signed. Evidence matching the
    test values was affirmed as the production VBIOS; now neither is chosen."""
    (tag_id,) = {r.rim.tag_id for r in both_vbios.find(VBIOS_ID)}
    for values in (VBIOS_TEST_FILE, VBIOS_FILE):
        blocks = golden_blocks(vector_rim(DRIVER_FILE), vector_rim(values))
        with pytest.raises(VerificationFailed) as caught:
            both_vbios.appraise(blocks, **LOGGED)
        assert caught.value.code == "rim-ambiguous"
        assert caught.value.detail == (
            f"the log holds 2 VBIOS RIMs {VBIOS_ID} that are one tag (tagId {tag_id[:16]}…, "
            "tagVersion 0) with different golden measurements (a test RIM signed like the "
            "production one?): which of them holds is unknown, so neither does"
        )


def _tagged_rim(pki: RimPki, rim_id: str, tag_version: str, value: str) -> LoggedRim:
    """A VBIOS RIM under ``pki`` of tagId ``test-tag`` and ``tag_version``, block 1 ``value``."""
    resources = (
        f'<Resource type="Measurement" index="0" active="True" alternatives="1" '
        f'ns2:Hash0="{value * 48}" name="m" size="48"/>'
    )
    unsigned = swid(resources=resources).replace(
        b'tagVersion="0"', f'tagVersion="{tag_version}"'.encode()
    )
    rim = verify_rim(pki.sign(unsigned), now=NOW, roots=[pki.root])
    return LoggedRim(rim=rim, rim_id=RimId.parse(rim_id), issuer="https://rims.example")


def test_a_newer_tag_version_supersedes_the_older(pki: RimPki) -> None:
    """A SWID tag is revised by a greater tagVersion of its tagId: the older one's values
    no longer count, whatever order the log holds them in."""
    driver = _tagged_rim(pki, DRIVER_ID, "0", "55").rim
    driver = dataclasses.replace(
        driver, colloquial_version="545.00", tag_id="driver", measurements=()
    )
    drivers = LoggedRim(rim=driver, rim_id=RimId.parse(DRIVER_ID), issuer="https://rims.example")
    old = _tagged_rim(pki, VBIOS_ID, "0", "11")
    new = _tagged_rim(pki, VBIOS_ID, "1", "22")
    for order in ((old, new), (new, old)):
        rims = LoggedRims([drivers, *order])
        assert rims.appraise({1: bytes.fromhex("22" * 48)}, **LOGGED).vbios is new
        with pytest.raises(MeasurementMismatch):
            rims.appraise({1: bytes.fromhex("11" * 48)}, **LOGGED)


def test_a_tag_version_of_thousands_of_digits_is_compared_as_a_number(pki: RimPki) -> None:
    """A signed tagVersion of 4,401 digits escaped the appraisal as ``ValueError`` (int() of
    text past 4,300 digits; target rim, fuzz campaign): it is a number like any other, the
    greater one here, so its tag supersedes tagVersion 1 and 0001 is 1."""
    driver = _tagged_rim(pki, DRIVER_ID, "0", "55").rim
    driver = dataclasses.replace(
        driver, colloquial_version="545.00", tag_id="driver", measurements=()
    )
    drivers = LoggedRim(rim=driver, rim_id=RimId.parse(DRIVER_ID), issuer="https://rims.example")
    old = _tagged_rim(pki, VBIOS_ID, "0001", "11")
    new = _tagged_rim(pki, VBIOS_ID, "9" * 4401, "22")
    for order in ((old, new), (new, old)):
        rims = LoggedRims([drivers, *order])
        assert rims.appraise({1: bytes.fromhex("22" * 48)}, **LOGGED).vbios is new
        with pytest.raises(MeasurementMismatch):
            rims.appraise({1: bytes.fromhex("11" * 48)}, **LOGGED)


def test_a_re_signed_copy_of_one_tag_is_not_ambiguous(pki: RimPki) -> None:
    """The same tag signed twice (two signatures, two digests, the same values) is one tag."""
    first = _tagged_rim(pki, VBIOS_ID, "0", "11")
    second = _tagged_rim(pki, VBIOS_ID, "0", "11")
    assert first.rim.digest != second.rim.digest
    driver = dataclasses.replace(
        first.rim, colloquial_version="545.00", tag_id="driver", measurements=()
    )
    drivers = LoggedRim(rim=driver, rim_id=RimId.parse(DRIVER_ID), issuer="https://rims.example")
    LoggedRims([drivers, first, second]).appraise({1: bytes.fromhex("11" * 48)}, **LOGGED)


def test_versions_and_names_are_matched_as_the_evidence_writes_them(rims: LoggedRims) -> None:
    blocks = golden_blocks(vector_rim(DRIVER_FILE), vector_rim(VBIOS_FILE))
    rims.appraise(blocks, **{**LOGGED, "vbios_version": "96.00.5e.00.01"})
    rims.appraise(blocks, **{**LOGGED, "product": "gh100"})


# --- must reject --------------------------------------------------------------------------


def test_the_real_h100_report_has_no_logged_rim(rims: LoggedRims) -> None:
    """End to end: the vector H100 report, verified as nvidia-gpu evidence, runs driver
    550.90.07 and VBIOS 96.00.9F.00.01; none of the RIMs NVIDIA shipped with it is for either,
    so it has no reference values on the log."""
    evidence = vector_evidence()
    assert (evidence.project, evidence.sku, evidence.chip) == ("1010", "0200", "882")
    assert (evidence.vbios_version, evidence.driver_version) == ("96.00.9F.00.01", "550.90.07")
    with pytest.raises(NotFound) as caught:
        appraise_gpu_rims(evidence, rims)
    assert caught.value.code == "rim-not-found"
    assert "NV_GPU_DRIVER_GH100_550.90.07" in caught.value.detail
    with pytest.raises(NotFound):
        LoggedRims().appraise(vector_blocks(), **H100)


def test_a_report_that_names_logged_rims_is_appraised_against_them(rims: LoggedRims) -> None:
    """The H100 report with its driver and VBIOS versions changed to the logged RIMs' (as a GPU
    running them would report): its blocks are then compared, each mismatch named, and its
    NVDEC0 (disabled, 0x55) leaves block 36 out."""
    evidence = vector_evidence()
    opaque = dict(evidence.opaque)
    for kind, text in ((3, b"545.00\x00"), (6, bytes.fromhex("00 5e 00 96 01 00 00 00"))):
        opaque[kind] = dataclasses.replace(opaque[kind], data=text)
    raw = dataclasses.replace(evidence, opaque=opaque).opaque_data  # the TLVs, re-encoded
    renamed = dataclasses.replace(evidence, opaque=parse_nvidia_opaque_data(raw))
    assert (renamed.vbios_version, renamed.driver_version) == ("96.00.5E.00.01", "545.00")
    with pytest.raises(MeasurementMismatch) as caught:
        appraise_gpu_rims(renamed, rims)
    assert 36 not in caught.value.indexes
    assert set(caught.value.indexes) >= {2, 3, 10, 12}


def test_a_report_without_its_board_cannot_select_a_rim(rims: LoggedRims) -> None:
    evidence = vector_evidence()
    stripped = dataclasses.replace(
        evidence, opaque={k: v for k, v in evidence.opaque.items() if k != 17}
    )
    with pytest.raises(MalformedEvidence):
        appraise_gpu_rims(stripped, rims)


def test_a_missing_vbios_rim_is_named(rims: LoggedRims) -> None:
    blocks = golden_blocks(vector_rim(DRIVER_FILE), vector_rim(VBIOS_FILE))
    with pytest.raises(NotFound) as caught:
        rims.appraise(blocks, **{**LOGGED, "vbios_version": "96.00.9F.00.01"})
    assert caught.value.code == "rim-not-found"
    assert "NV_GPU_VBIOS_1010_0200_882_96009F0001" in caught.value.detail
    with pytest.raises(NotFound):
        rims.appraise(blocks, **{**LOGGED, "sku": "0205"})


def test_the_real_report_against_the_nearest_real_rims_names_every_block(
    rims: LoggedRims,
) -> None:
    """The vector report's blocks (verified nvidia-gpu evidence) against the driver RIM and
    the VBIOS RIM of its board: the blocks its firmware does not share with them are each
    named."""
    driver = rims.find(DRIVER_ID)[0]
    vbios = _by(rims, VBIOS_ID, VBIOS_FILE)
    result = compare_measurements(vector_blocks(), driver, vbios)
    vbios_blocks = {2, 3, 10, 12}
    driver_blocks = {8, 22, 23, 26, 27, 28, 30, 31, 32, 33, 35, 37, 38, 40, 41}
    assert {m.block for m in result.mismatches} == vbios_blocks | driver_blocks
    assert {m.block for m in result.mismatches if m.rim_id == VBIOS_ID} == vbios_blocks
    assert all(m.reason == "value" for m in result.mismatches)
    assert set(result.matched) == {1, 4, 5, 6, 7, 9, 11, 13, 24, 25, 29, 34, 36, 39}
    with pytest.raises(MeasurementMismatch) as caught:
        result.check()
    assert caught.value.code == "measurement-mismatch"
    assert caught.value.indexes == tuple(sorted(vbios_blocks | driver_blocks))
    assert (
        "block 2 (RIM index 1, HashedMeasurement_1_FSP, NV_GPU_VBIOS_1010_0200_882_96005E0001)"
        in (caught.value.detail)
    )


def test_a_measurement_no_rim_allows_is_refused(rims: LoggedRims) -> None:
    blocks = golden_blocks(vector_rim(DRIVER_FILE), vector_rim(VBIOS_FILE))
    blocks[10] = bytes([blocks[10][0] ^ 1]) + blocks[10][1:]
    with pytest.raises(MeasurementMismatch) as caught:
        rims.appraise(blocks, **LOGGED)
    assert caught.value.code == "measurement-mismatch"
    assert caught.value.indexes == (10,)
    assert "block 10 (RIM index 9, Measurement_9, NV_GPU_VBIOS_1010_0200_882_96005E0001)" in (
        caught.value.detail
    )
    assert blocks[10].hex() in caught.value.detail


def test_an_absent_or_resized_block_is_refused(rims: LoggedRims) -> None:
    blocks = golden_blocks(vector_rim(DRIVER_FILE), vector_rim(VBIOS_FILE))
    del blocks[8]
    blocks[22] = blocks[22][:32]
    with pytest.raises(MeasurementMismatch) as caught:
        rims.appraise(blocks, **LOGGED)
    assert caught.value.indexes == (8, 22)
    assert "block 8 (RIM index 7" in caught.value.detail
    assert "absent from the evidence" in caught.value.detail
    assert "32 bytes, the RIM allows 48-byte values" in caught.value.detail


def test_nvdec0_disabled_leaves_its_block_out(rims: LoggedRims) -> None:
    blocks = golden_blocks(vector_rim(DRIVER_FILE), vector_rim(VBIOS_FILE))
    blocks[36] = bytes(48)
    with pytest.raises(MeasurementMismatch) as caught:
        rims.appraise(blocks, **LOGGED)
    assert caught.value.indexes == (36,)
    result = rims.appraise(blocks, **LOGGED, nvdec0_disabled=True)
    assert result.skipped == (36,)
    assert 36 not in result.matched


def test_rims_active_at_one_index_conflict(rims: LoggedRims) -> None:
    vbios = _by(rims, VBIOS_ID, VBIOS_FILE)
    with pytest.raises(VerificationFailed) as caught:
        compare_measurements({}, vbios, vbios)
    assert caught.value.code == "rim-index-conflict"


def test_no_logged_rims_allow_nothing() -> None:
    with pytest.raises(NotFound):
        LoggedRims().appraise({}, **LOGGED)


def _inactive_rim(pki: RimPki, rim_id: str, version: str, index: int) -> LoggedRim:
    """A RIM under ``pki`` whose only measurement is marked inactive."""
    resources = (
        f'<Resource type="Measurement" index="{index}" active="False" alternatives="1" '
        f'ns2:Hash0="{"11" * 48}" name="m" size="48"/>'
    )
    rim = verify_rim(
        pki.sign(swid(version=version, resources=resources)), now=NOW, roots=[pki.root]
    )
    return LoggedRim(rim=rim, rim_id=RimId.parse(rim_id), issuer="https://rims.example")


def test_rims_that_compare_nothing_allow_nothing(pki: RimPki) -> None:
    """Two RIMs with no active measurement would affirm any GPU: an empty comparison is
    refused, like an empty policy."""
    driver = _inactive_rim(pki, DRIVER_ID, "545.00", 0)
    vbios = _inactive_rim(pki, VBIOS_ID, "96.00.5E.00.01", 1)
    with pytest.raises(VerificationFailed) as caught:
        compare_measurements({1: bytes(48), 2: b"anything"}, driver, vbios)
    assert caught.value.code == "rim-nothing-compared"
    with pytest.raises(VerificationFailed) as caught:
        LoggedRims([driver, vbios]).appraise({1: bytes(48)}, **LOGGED)
    assert caught.value.code == "rim-nothing-compared"


def test_a_pair_whose_only_measurement_is_skipped_allows_nothing(rims: LoggedRims) -> None:
    """NVDEC0 disabled must not turn a comparison of block 36 alone into an affirmation."""
    driver = _by(rims, DRIVER_ID, DRIVER_FILE)
    only_nvdec0 = dataclasses.replace(
        driver.rim, measurements=tuple(m for m in driver.rim.measurements if m.index == 35)
    )
    assert [m.index for m in only_nvdec0.active] == [35]
    lone = dataclasses.replace(driver, rim=only_nvdec0)
    empty = dataclasses.replace(
        _by(rims, VBIOS_ID, VBIOS_FILE),
        rim=dataclasses.replace(driver.rim, measurements=()),
    )
    with pytest.raises(VerificationFailed) as caught:
        compare_measurements({}, lone, empty, nvdec0_disabled=True)
    assert caught.value.code == "rim-nothing-compared"
