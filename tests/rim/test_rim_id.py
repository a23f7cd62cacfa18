"""RIM ids: NVIDIA's catalogue names, parsed, normalised and checked against the RIM."""

from __future__ import annotations

import pytest
from _rim_helpers import NOW, RimPki, swid

from ironroot.errors import MalformedRim, VerificationFailed
from ironroot.rim import RimId, RimKind, vbios_version_key, verify_rim


def test_ids_round_trip() -> None:
    vbios = RimId.parse("NV_GPU_VBIOS_1010_0200_882_96005E0001")
    assert vbios == RimId(RimKind.VBIOS, "96005E0001", project="1010", sku="0200", chip="882")
    assert str(vbios) == "NV_GPU_VBIOS_1010_0200_882_96005E0001"
    driver = RimId.parse("NV_GPU_DRIVER_GH100_550.90.07")
    assert driver == RimId(RimKind.DRIVER, "550.90.07", product="GH100")
    assert str(driver) == "NV_GPU_DRIVER_GH100_550.90.07"


def test_vbios_ids_are_built_from_evidence_values() -> None:
    """The evidence writes VBIOS 96.00.9F.00.01 and may write a project in lower case."""
    assert str(RimId.vbios("g520", "0202", "885", "96.00.6d.00.08")) == (
        "NV_GPU_VBIOS_G520_0202_885_96006D0008"
    )
    assert RimId.parse("NV_GPU_VBIOS_g520_0202_885_96006d0008") == RimId.vbios(
        "G520", "0202", "885", "96006D0008"
    )
    assert vbios_version_key("96.00.9F.00.01") == "96009F0001"
    # the opaque data's fixed-width strings end in NULs
    assert RimId.vbios("1010\x00", "0200\x00", "882\x00\x00\x00", "96.00.9F.00.01") == (
        RimId.parse("NV_GPU_VBIOS_1010_0200_882_96009F0001")
    )
    assert RimId.driver("GH100", "550.90.07\x00") == RimId.parse("NV_GPU_DRIVER_GH100_550.90.07")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "NV_GPU_VBIOS_1010_0200_882",
        "NV_GPU_VBIOS_1010_0200_882_96.00.5E.00.01",
        "NV_GPU_DRIVER_GH100_",
        "NV_GPU_DRIVER_GH-100_550",
        "NV_SWITCH_BIOS_5612_0002_890_96105E0001",
        "nv_gpu_vbios_1010_0200_882_96005E0001",
    ],
)
def test_what_is_not_a_rim_id_is_refused(text: str) -> None:
    with pytest.raises(MalformedRim):
        RimId.parse(text)


@pytest.mark.parametrize("version", ["", "96.0.5E.00.01", "96-00", "xyz", "96.00.5E.00"])
def test_a_vbios_version_must_be_five_hex_octets(version: str) -> None:
    with pytest.raises(MalformedRim):
        RimId.vbios("1010", "0200", "882", version)
    with pytest.raises(MalformedRim):
        RimId.vbios("1010", "0200", None, "96.00.5E.00.01")  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["", "96.00.5E.00.01", "550.90.07.1", "r550", "5e5"])
def test_a_driver_version_is_decimal_groups(version: str) -> None:
    with pytest.raises(MalformedRim):
        RimId.driver("GH100", version)


def test_an_id_must_name_its_rim(pki: RimPki) -> None:
    vbios = verify_rim(pki.sign(swid()), now=NOW, roots=[pki.root])
    RimId.vbios("1010", "0200", "882", "96.00.5E.00.01").check(vbios)
    for wrong in (
        RimId.vbios("1010", "0200", "882", "96.00.5E.00.02"),
        RimId.driver("GH100", "96.00"),
    ):
        with pytest.raises(VerificationFailed) as caught:
            wrong.check(vbios)
        assert caught.value.code == "rim-id-mismatch"
    driver = verify_rim(pki.sign(swid(version="550.90.07")), now=NOW, roots=[pki.root])
    RimId.driver("GH100", "550.90.07").check(driver)
    with pytest.raises(VerificationFailed):
        RimId.driver("GB100", "550.90.07").check(driver)
    with pytest.raises(VerificationFailed):
        RimId.vbios("1010", "0200", "882", "5509007000").check(driver)
