"""SEV-SNP reports whose signature verifies but whose reserved fields are not what the ABI
specification (AMD 56860, ATTESTATION_REPORT and GUEST_POLICY) requires: reserved bytes and
bits must be zero, GUEST_POLICY bit 17 must be one. A verifier that ignores them reads a report
written by firmware it does not understand (a new field, a new policy bit) as one it does.

Every mutated report is re-signed by a self-made VCEK, so the signature step passes and the
refusal is the field check's. The real reports are checked to hold zeros there, so the rule
refuses none of them."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from evidence_fakes import NOW, FakeAmd, build_report

from ironroot.attestation.evidence import SnpProduct, parse_snp_report, verify_snp_report
from ironroot.crypto import PrivateKey
from ironroot.errors import EndorsementMismatch, MalformedEvidence

TCB = {"bootloader": 9, "tee": 1, "snp": 22, "microcode": 0xD5}
CHIP = bytes(range(64))


def _signed(key: PrivateKey, report: bytes) -> bytes:
    r = bytearray(report)
    r[0x2A0:] = bytes(0x4A0 - 0x2A0)
    sig = key.sign(bytes(r[:0x2A0]))
    r[0x2A0:0x2D0] = sig[:48][::-1]
    r[0x2E8:0x318] = sig[48:][::-1]
    return bytes(r)


def _verify(amd: FakeAmd, mutate: Callable[[bytearray], None], *, version: int = 3) -> object:
    cert, key = amd.leaf(tcb=TCB, hwid=CHIP)
    report = bytearray(build_report(None, version=version, tcb=TCB, chip_id=CHIP))
    mutate(report)
    return verify_snp_report(
        _signed(key, bytes(report)),
        [cert.public_bytes(Encoding.DER)],
        now=NOW,
        anchors=[amd.anchor],
    )


def _byte(offset: int, value: int = 1) -> Callable[[bytearray], None]:
    def mutate(r: bytearray) -> None:
        r[offset] = value

    return mutate


def _or64(offset: int, bits: int) -> Callable[[bytearray], None]:
    def mutate(r: bytearray) -> None:
        struct.pack_into("<Q", r, offset, struct.unpack_from("<Q", r, offset)[0] | bits)

    return mutate


def _or32(offset: int, bits: int) -> Callable[[bytearray], None]:
    def mutate(r: bytearray) -> None:
        struct.pack_into("<I", r, offset, struct.unpack_from("<I", r, offset)[0] | bits)

    return mutate


def _policy(value: int) -> Callable[[bytearray], None]:
    def mutate(r: bytearray) -> None:
        struct.pack_into("<Q", r, 0x08, value)

    return mutate


@pytest.fixture(scope="module")
def amd(fake_amd: Callable[[SnpProduct], FakeAmd]) -> FakeAmd:
    return fake_amd(SnpProduct.MILAN)


def test_the_unmutated_report_verifies(amd: FakeAmd) -> None:
    _verify(amd, lambda r: None)
    _verify(amd, lambda r: None, version=5)


RESERVED = [
    pytest.param(3, _byte(0x04C), "reserved bytes 0x04c-0x04f of the SNP report are not zero",
                 id="0x04c"),
    pytest.param(3, _byte(0x18B), "reserved bytes 0x18b-0x19f of the SNP report are not zero",
                 id="0x18b"),
    pytest.param(3, _byte(0x19F), "reserved bytes 0x18b-0x19f of the SNP report are not zero",
                 id="0x19f"),
    # version 2 has no CPUID fields: 0x188-0x18A are reserved too
    pytest.param(2, _byte(0x188, 0x19),
                 "reserved bytes 0x188-0x19f of the SNP report are not zero", id="v2-0x188"),
    pytest.param(3, _byte(0x1EB), "reserved bytes 0x1eb-0x1eb of the SNP report are not zero",
                 id="0x1eb"),
    pytest.param(3, _byte(0x1EF), "reserved bytes 0x1ef-0x1ef of the SNP report are not zero",
                 id="0x1ef"),
    # the mitigation vectors exist from version 5: reserved before
    pytest.param(3, _byte(0x1F8), "reserved bytes 0x1f8-0x29f of the SNP report are not zero",
                 id="v3-0x1f8"),
    pytest.param(5, _byte(0x208), "reserved bytes 0x208-0x29f of the SNP report are not zero",
                 id="v5-0x208"),
    pytest.param(5, _byte(0x29F), "reserved bytes 0x208-0x29f of the SNP report are not zero",
                 id="v5-0x29f"),
    pytest.param(3, _policy(0x10000),
                 "SNP guest policy bit 17 is zero (reserved, must be one)", id="policy-bit-17"),
    pytest.param(3, _or64(0x08, 1 << 26),
                 "SNP guest policy has reserved bits set: 0x0000000004030000", id="policy-bit-26"),
    pytest.param(3, _or64(0x08, 1 << 63),
                 "SNP guest policy has reserved bits set: 0x8000000000030000", id="policy-bit-63"),
    pytest.param(3, _or32(0x48, 1 << 5),
                 "SNP report flags (0x048) have reserved bits set: 0x00000020", id="flags-bit-5"),
    pytest.param(3, _or64(0x40, 1 << 6),
                 "SNP PLATFORM_INFO has reserved bits set: 0x0000000000000040",
                 id="platform-bit-6"),
    pytest.param(3, _or64(0x40, 1 << 40),
                 "SNP PLATFORM_INFO has reserved bits set: 0x0000010000000000",
                 id="platform-bit-40"),
]  # fmt: skip


@pytest.mark.parametrize(("version", "mutate", "detail"), RESERVED)
def test_reserved_fields_not_zero_are_refused_after_a_valid_signature(
    amd: FakeAmd, version: int, mutate: Callable[[bytearray], None], detail: str
) -> None:
    with pytest.raises(MalformedEvidence) as caught:
        _verify(amd, mutate, version=version)
    assert type(caught.value) is MalformedEvidence
    assert caught.value.detail == detail
    assert caught.value.check == "fields"


def test_defined_bits_are_not_reserved(amd: FakeAmd) -> None:
    # every defined policy bit (SMT, MIGRATE_MA, DEBUG, SINGLE_SOCKET, CXL_ALLOW, MEM_AES_256_XTS,
    # RAPL_DIS, CIPHERTEXT_HIDING, PAGE_SWAP_DISABLE), flags bits 0-1 and platform bits 0-5, 7
    claims = _verify(amd, _or64(0x08, 0x3FD0000))
    assert claims.debug  # type: ignore[attr-defined]
    _verify(amd, _or32(0x48, 0b11))
    _verify(amd, _or64(0x40, 0xBF))
    _verify(amd, _byte(0x1F8), version=5)


@pytest.mark.vectors
def test_every_real_report_holds_zeros_where_reserved(snp_dir: Path) -> None:
    reports = [
        bytes.fromhex((snp_dir / "tests_certs_data_report_milan.hex").read_text().strip()),
        (snp_dir / "deps_verifier_test_data_snp_test-report.bin").read_bytes(),
        (snp_dir / "deps_verifier_test_data_snp_test-vlek-report.bin").read_bytes(),
        (snp_dir / "verify_testdata_attestation.bin").read_bytes(),
        (snp_dir / "deps_verifier_test_data_az-snp-vtpm_hcl-report.bin").read_bytes()[32:1216],
    ]
    for report in reports:
        parse_snp_report(report)


TURIN_TCB = {"fmc": 1, "bootloader": 2, "tee": 3, "snp": 4, "microcode": 5}


@pytest.mark.parametrize(
    ("product", "index"),
    [(SnpProduct.MILAN, 2), (SnpProduct.MILAN, 5), (SnpProduct.TURIN, 4), (SnpProduct.TURIN, 6)],
)
def test_reported_tcb_with_reserved_bytes_is_not_what_the_vcek_endorses(
    fake_amd: Callable[[SnpProduct], FakeAmd], product: SnpProduct, index: int
) -> None:
    # every component the VCEK names equals the report's; a byte outside them is not endorsed
    amd = fake_amd(product)
    turin = product is SnpProduct.TURIN
    tcb = TURIN_TCB if turin else TCB
    chip = CHIP[:8] + bytes(56) if turin else CHIP
    cert, key = amd.leaf(tcb=tcb, hwid=chip[:8] if turin else chip)
    cpuid = (0x1A, 0x02, 0x01) if turin else (0x19, 0x01, 0x01)
    report = bytearray(build_report(None, tcb=tcb, turin=turin, chip_id=chip, cpuid=cpuid))
    report[0x180 + index] = 0x40
    raw = int.from_bytes(report[0x180:0x188], "little")
    with pytest.raises(EndorsementMismatch) as caught:
        verify_snp_report(
            _signed(key, bytes(report)),
            [cert.public_bytes(Encoding.DER)],
            now=NOW,
            anchors=[amd.anchor],
        )
    assert type(caught.value) is EndorsementMismatch
    assert caught.value.detail == (
        f"report reported_tcb {raw:016x} has reserved bytes set ({product.value} layout): "
        "the VCEK does not endorse them"
    )
    assert caught.value.check == "endorsement"
