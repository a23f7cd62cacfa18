"""AMD SEV-SNP: every report in the vectors verifies; every must-reject case raises its error."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from evidence_fakes import NOW, FakeAmd, build_report, make_cert

from ironroot.attestation.evidence import (
    SNP_REPORT_SIZE,
    SnpChainCache,
    SnpProduct,
    SnpSigningKey,
    builtin_snp_anchors,
    check_snp_endorsement,
    load_certificates,
    parse_azure_hcl_report,
    parse_evidence,
    parse_snp_report,
    verify_azure_hcl_report,
    verify_snp_chain,
    verify_snp_report,
    verify_snp_signature,
)
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    EndorsementMismatch,
    MalformedEvidence,
)

pytestmark = pytest.mark.vectors

VLEK_TIME = datetime(2025, 6, 1, tzinfo=UTC)  # the VLEK expired 2025-12-10

# (report file, hex?, endorsement certificate file): from ../shared/vectors/README.md
REPORTS = [
    ("tests_certs_data_report_milan.hex", True, "tests_certs_data_vcek_milan.der"),
    ("verify_testdata_attestation.bin", False, "verify_testdata_vcek.testcer"),
    (
        "deps_verifier_test_data_snp_test-report.bin",
        False,
        "deps_verifier_test_data_snp_test-vcek.der",
    ),
    (
        "deps_verifier_test_data_snp_test-vlek-report.bin",
        False,
        "deps_verifier_test_data_snp_test-vlek.der",
    ),
]


def _report(snp_dir: Path, name: str, is_hex: bool) -> bytes:
    data = (snp_dir / name).read_bytes()
    return bytes.fromhex(data.decode()) if is_hex else data


@pytest.fixture(params=REPORTS, ids=[r[0] for r in REPORTS])
def case(request: pytest.FixtureRequest, snp_dir: Path) -> tuple[bytes, bytes]:
    report, is_hex, cert = request.param
    return _report(snp_dir, report, is_hex), (snp_dir / cert).read_bytes()


# --- every vector verifies -----------------------------------------------------------------


def test_every_vector_report_verifies(case: tuple[bytes, bytes]) -> None:
    report, cert = case
    claims = verify_snp_report(report, [cert], now=VLEK_TIME)
    parsed = parse_snp_report(report)
    assert claims.format == "snp"
    assert claims.measurements["measurement"] == parsed.measurement
    assert claims.measurements["host_data"] == parsed.host_data
    assert claims.report_data == parsed.report_data
    assert claims.identity["product"] == "Milan"
    assert claims.svns["guest_svn"] == parsed.guest_svn
    assert claims.signer.startswith("CN=SEV-V")
    assert claims.raw["measurement"] == parsed.measurement.hex()


def test_vcek_report_claims_exact(snp_dir: Path) -> None:
    report = (snp_dir / "deps_verifier_test_data_snp_test-report.bin").read_bytes()
    cert = (snp_dir / "deps_verifier_test_data_snp_test-vcek.der").read_bytes()
    claims = verify_snp_report(report, [cert], now=NOW)
    assert dict(claims.svns) == {
        "guest_svn": 4,
        "bootloader": 3,
        "tee": 0,
        "snp": 8,
        "microcode": 115,
    }
    assert claims.identity["signing_key"] == "vcek"
    assert claims.identity["chip_id"].startswith("c38427a30d4c7af9")
    assert claims.debug is False
    assert claims.raw["version"] == 2
    assert claims.raw["policy"]["abi_major"] == 0
    assert claims.raw["current_tcb"]["microcode"] == 0xCE


def test_vlek_report_is_v3_with_cpuid_and_csp(snp_dir: Path) -> None:
    report = (snp_dir / "deps_verifier_test_data_snp_test-vlek-report.bin").read_bytes()
    cert = (snp_dir / "deps_verifier_test_data_snp_test-vlek.der").read_bytes()
    claims = verify_snp_report(report, [cert], now=VLEK_TIME)
    parsed = parse_snp_report(report)
    assert parsed.version == 3
    assert (parsed.cpuid_fam_id, parsed.cpuid_mod_id, parsed.cpuid_step) == (0x19, 1, 1)
    assert parsed.signing_key is SnpSigningKey.VLEK
    assert claims.identity["signing_key"] == "vlek"
    assert claims.identity["csp_id"] == "CN=cc-us-east-2.amazonaws.com"
    assert claims.signer.startswith("CN=SEV-VLEK")


def test_vlek_expired_after_2025_12_10(snp_dir: Path) -> None:
    report = (snp_dir / "deps_verifier_test_data_snp_test-vlek-report.bin").read_bytes()
    cert = (snp_dir / "deps_verifier_test_data_snp_test-vlek.der").read_bytes()
    with pytest.raises(CertificateExpired):
        verify_snp_report(report, [cert], now=datetime(2025, 12, 11, tzinfo=UTC))


def test_debug_policy_is_reported(snp_dir: Path) -> None:
    report = (snp_dir / "verify_testdata_attestation.bin").read_bytes()
    cert = (snp_dir / "verify_testdata_vcek.testcer").read_bytes()
    claims = verify_snp_report(report, [cert], now=NOW)
    assert claims.debug is True
    assert claims.raw["policy"]["debug"] is True


def test_chain_files_may_be_supplied(snp_dir: Path) -> None:
    report = (snp_dir / "verify_testdata_attestation.bin").read_bytes()
    certs = [
        (snp_dir / "verify_testdata_vcek.testcer").read_bytes(),
        (snp_dir / "verify_testdata_milan.testcer").read_bytes(),
    ]
    assert verify_snp_report(report, certs, now=NOW).identity["product"] == "Milan"


def test_azure_hcl_report_verifies_and_binds_runtime_claims(snp_dir: Path) -> None:
    data = (snp_dir / "deps_verifier_test_data_az-snp-vtpm_hcl-report.bin").read_bytes()
    cert = (snp_dir / "deps_verifier_test_data_az-snp-vtpm_vcek.pem").read_bytes()
    claims = verify_azure_hcl_report(data, [cert], now=NOW)
    assert claims.format == "azure-hcl"
    runtime = claims.raw["azure_hcl"]["runtime_claims"]
    assert runtime["keys"][0]["kid"] == "HCLAkPub"
    # the hardware REPORT_DATA binds the runtime claims; the caller's bytes are user-data
    assert bytes.fromhex(claims.raw["report_data"])[:32] == claims.measurements["runtime_claims"]
    assert claims.report_data == bytes.fromhex(runtime["user-data"]) == bytes(64)


def test_azure_hcl_tampered_runtime_claims(snp_dir: Path) -> None:
    data = bytearray((snp_dir / "deps_verifier_test_data_az-snp-vtpm_hcl-report.bin").read_bytes())
    cert = (snp_dir / "deps_verifier_test_data_az-snp-vtpm_vcek.pem").read_bytes()
    hcl = parse_azure_hcl_report(bytes(data))
    at = bytes(data).index(hcl.runtime_claims) + 10
    data[at] ^= 0x01
    with pytest.raises(BadSignature):
        verify_azure_hcl_report(bytes(data), [cert], now=NOW)


def _hcl_with_claims(data: bytes, claims: bytes) -> bytes:
    """The HCL report ``data`` with its runtime claims replaced (sizes adjusted, unsigned)."""
    runtime_at = 32 + SNP_REPORT_SIZE
    size = runtime_at + 20 + len(claims)
    header = b"HCLA" + struct.pack("<III", 1, size, 2) + bytes(16)
    runtime = struct.pack("<IIIII", 20 + len(claims), 1, 2, 1, len(claims))
    return header + data[32:runtime_at] + runtime + claims


@pytest.mark.parametrize(
    "claims",
    [b"[" * 50_000, b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e999}', b'{"a": "\\ud800"}'],
    ids=["deep", "nan", "infinity", "out-of-range", "lone-surrogate"],
)
def test_hcl_runtime_claims_that_are_not_strict_json_are_shown_as_hex(
    snp_dir: Path, claims: bytes
) -> None:
    # inspecting an HCL report raised RecursionError for deep claims, and printed NaN (not
    # JSON) or failed to encode a lone surrogate for the others
    data = (snp_dir / "deps_verifier_test_data_az-snp-vtpm_hcl-report.bin").read_bytes()
    name, parsed = parse_evidence(_hcl_with_claims(data, claims))
    assert name == "azure-hcl"
    assert parsed["azure_hcl"]["runtime_claims"] == claims.hex()
    json.dumps(parsed, allow_nan=False).encode("utf-8")


# --- built-in roots -------------------------------------------------------------------------


@pytest.mark.parametrize("product", ["milan", "genoa", "turin"])
def test_builtin_roots_equal_the_vector_files(snp_dir: Path, product: str) -> None:
    anchors = {a.product.value.lower(): a for a in builtin_snp_anchors()}
    anchor = anchors[product]
    (ark,) = load_certificates((snp_dir / f"src_certs_snp_builtin_{product}_ark.pem").read_bytes())
    (ask,) = load_certificates((snp_dir / f"src_certs_snp_builtin_{product}_ask.pem").read_bytes())
    asvk = load_certificates((snp_dir / f"verify_trust_ask_ark_{product}_vlek.pem").read_bytes())[0]
    assert anchor.ark.public_bytes(Encoding.DER) == ark.public_bytes(Encoding.DER)
    assert anchor.ask.public_bytes(Encoding.DER) == ask.public_bytes(Encoding.DER)
    assert anchor.asvk.public_bytes(Encoding.DER) == asvk.public_bytes(Encoding.DER)


# --- must reject: flipped bits --------------------------------------------------------------


@pytest.mark.slow  # exhaustive: every byte or bit of real evidence (make test)
def test_every_byte_flipped_is_bad_signature(snp_dir: Path) -> None:
    report = (snp_dir / "deps_verifier_test_data_snp_test-report.bin").read_bytes()
    cert = (snp_dir / "deps_verifier_test_data_snp_test-vcek.der").read_bytes()
    for index in range(SNP_REPORT_SIZE):
        mutated = bytearray(report)
        mutated[index] ^= 1 << (index % 8)
        with pytest.raises(BadSignature):
            verify_snp_report(bytes(mutated), [cert], now=NOW)


# --- must reject: endorsement mismatches ----------------------------------------------------


def _vcek_and_report(snp_dir: Path) -> tuple[bytes, x509.Certificate]:
    report = (snp_dir / "deps_verifier_test_data_snp_test-report.bin").read_bytes()
    (cert,) = load_certificates(
        (snp_dir / "deps_verifier_test_data_snp_test-vcek.der").read_bytes()
    )
    return report, cert


def test_comparison_accepts_the_matching_pair(snp_dir: Path) -> None:
    report, cert = _vcek_and_report(snp_dir)
    check_snp_endorsement(parse_snp_report(report), cert, SnpProduct.MILAN)


@pytest.mark.parametrize(
    ("offset", "what"),
    [(0x180, "bootloader"), (0x181, "tee"), (0x186, "snp"), (0x187, "microcode"), (0x1A0, "chip")],
)
def test_reported_tcb_or_chip_id_disagreeing_with_vcek(
    snp_dir: Path, offset: int, what: str
) -> None:
    report, cert = _vcek_and_report(snp_dir)
    mutated = bytearray(report)
    mutated[offset] ^= 0x01  # signature no longer matters: the comparison is tested directly
    with pytest.raises(EndorsementMismatch):
        check_snp_endorsement(parse_snp_report(bytes(mutated)), cert, SnpProduct.MILAN)


def test_report_paired_with_another_chips_vcek(snp_dir: Path) -> None:
    report, _ = _vcek_and_report(snp_dir)
    other = (snp_dir / "verify_testdata_vcek.testcer").read_bytes()
    with pytest.raises(BadSignature):
        verify_snp_report(report, [other], now=NOW)
    (other_cert,) = load_certificates(other)
    with pytest.raises(EndorsementMismatch):
        check_snp_endorsement(parse_snp_report(report), other_cert, SnpProduct.MILAN)


def test_same_tcb_other_chip_is_a_chip_id_mismatch(snp_dir: Path) -> None:
    # two VCEKs with identical TCB extensions (3, 0, 8, 115) but different hwIDs
    report, _ = _vcek_and_report(snp_dir)
    (other,) = load_certificates((snp_dir / "tests_certs_data_vcek_milan.der").read_bytes())
    with pytest.raises(EndorsementMismatch, match="hwID"):
        check_snp_endorsement(parse_snp_report(report), other, SnpProduct.MILAN)


def test_product_disagreeing_with_chain(snp_dir: Path) -> None:
    report, cert = _vcek_and_report(snp_dir)
    with pytest.raises(EndorsementMismatch):
        check_snp_endorsement(parse_snp_report(report), cert, SnpProduct.GENOA)


TCB = {"bootloader": 9, "tee": 1, "snp": 22, "microcode": 0xD5}
TURIN_TCB = {**TCB, "fmc": 3}


def test_synthetic_report_with_own_anchor_verifies(
    fake_amd: Callable[[SnpProduct], FakeAmd],
) -> None:
    amd = fake_amd(SnpProduct.MILAN)
    chip = bytes(range(64))
    cert, key = amd.leaf(tcb=TCB, hwid=chip)
    report = build_report(key, tcb=TCB, chip_id=chip)
    claims = verify_snp_report(
        report, [cert.public_bytes(Encoding.DER)], now=NOW, anchors=[amd.anchor]
    )
    assert claims.svns["snp"] == 22
    assert claims.identity["chip_id"] == chip.hex()


def test_turin_layout_and_fmc(fake_amd: Callable[[SnpProduct], FakeAmd]) -> None:
    amd = fake_amd(SnpProduct.TURIN)
    chip = bytes(range(1, 9)) + bytes(56)
    cert, key = amd.leaf(tcb=TURIN_TCB, hwid=chip[:8])
    report = build_report(key, tcb=TURIN_TCB, turin=True, chip_id=chip, cpuid=(0x1A, 0x02, 0x01))
    der = cert.public_bytes(Encoding.DER)
    claims = verify_snp_report(report, [der], now=NOW, anchors=[amd.anchor])
    assert claims.svns["fmc"] == 3
    assert claims.svns["bootloader"] == 9
    assert claims.identity["product"] == "Turin"
    wrong_fmc, key2 = amd.leaf(tcb={**TURIN_TCB, "fmc": 4}, hwid=chip[:8])
    report2 = build_report(key2, tcb=TURIN_TCB, turin=True, chip_id=chip, cpuid=(0x1A, 2, 1))
    with pytest.raises(EndorsementMismatch, match="fmc"):
        verify_snp_report(
            report2, [wrong_fmc.public_bytes(Encoding.DER)], now=NOW, anchors=[amd.anchor]
        )
    chip2 = bytes(range(2, 10)) + bytes(56)
    report3 = build_report(key, tcb=TURIN_TCB, turin=True, chip_id=chip2, cpuid=(0x1A, 2, 1))
    with pytest.raises(EndorsementMismatch, match="hwID"):
        verify_snp_report(report3, [der], now=NOW, anchors=[amd.anchor])


def test_cpuid_product_disagreeing_with_chain(fake_amd: Callable[[SnpProduct], FakeAmd]) -> None:
    amd = fake_amd(SnpProduct.MILAN)
    chip = bytes(range(64))
    cert, key = amd.leaf(tcb=TCB, hwid=chip)
    report = build_report(key, tcb=TCB, chip_id=chip, cpuid=(0x19, 0x11, 1))  # Genoa CPU
    with pytest.raises(EndorsementMismatch, match="CPUID"):
        verify_snp_report(report, [cert.public_bytes(Encoding.DER)], now=NOW, anchors=[amd.anchor])


def test_signing_key_field_disagreeing_with_leaf(fake_amd: Callable[[SnpProduct], FakeAmd]) -> None:
    amd = fake_amd(SnpProduct.MILAN)
    cert, key = amd.leaf(vlek=True, tcb=TCB)
    report = build_report(key, tcb=TCB, signing_key=0)  # says VCEK, signed by a VLEK
    with pytest.raises(EndorsementMismatch, match="signing key"):
        verify_snp_report(report, [cert.public_bytes(Encoding.DER)], now=NOW, anchors=[amd.anchor])
    good = build_report(key, tcb=TCB, signing_key=1)
    claims = verify_snp_report(
        good, [cert.public_bytes(Encoding.DER)], now=NOW, anchors=[amd.anchor]
    )
    assert claims.identity["signing_key"] == "vlek"


def test_masked_chip_id_skips_hwid(fake_amd: Callable[[SnpProduct], FakeAmd]) -> None:
    amd = fake_amd(SnpProduct.MILAN)
    cert, key = amd.leaf(tcb=TCB, hwid=bytes(range(64)))
    report = build_report(key, tcb=TCB, chip_id=bytes(64))
    claims = verify_snp_report(
        report, [cert.public_bytes(Encoding.DER)], now=NOW, anchors=[amd.anchor]
    )
    assert claims.identity["chip_id"] == ""


# --- must reject: untrusted roots, expiry ---------------------------------------------------


def test_self_made_chain_is_not_trusted(fake_amd: Callable[[SnpProduct], FakeAmd]) -> None:
    amd = fake_amd(SnpProduct.MILAN)
    chip = bytes(range(64))
    cert, key = amd.leaf(tcb=TCB, hwid=chip)
    report = build_report(key, tcb=TCB, chip_id=chip)
    leaf = cert.public_bytes(Encoding.DER)
    ask = amd.ask.public_bytes(Encoding.PEM)
    ark = amd.ark.public_bytes(Encoding.PEM)
    with pytest.raises(ChainNotTrusted, match="not a built-in AMD ARK"):
        verify_snp_report(report, [leaf, ask, ark], now=NOW)
    with pytest.raises(ChainNotTrusted):
        verify_snp_report(report, [leaf, ask], now=NOW)
    with pytest.raises(ChainNotTrusted):
        verify_snp_report(report, [leaf], now=NOW)
    with pytest.raises(ChainNotTrusted):
        verify_snp_report(report, [leaf], now=NOW, anchors=[])


def test_self_made_ark_next_to_a_real_vcek(snp_dir: Path) -> None:
    report, _ = _vcek_and_report(snp_dir)
    key = ec.generate_private_key(ec.SECP384R1())
    fake_ark = make_cert("ARK-Milan", "ARK-Milan", key, key, ca=True)
    vcek = (snp_dir / "deps_verifier_test_data_snp_test-vcek.der").read_bytes()
    with pytest.raises(ChainNotTrusted):
        verify_snp_report(report, [vcek, fake_ark.public_bytes(Encoding.DER)], now=NOW)


@pytest.mark.parametrize(
    "when", [datetime(2023, 1, 1, tzinfo=UTC), datetime(2030, 1, 25, tzinfo=UTC)]
)
def test_vcek_outside_validity(snp_dir: Path, when: datetime) -> None:
    report = (snp_dir / "deps_verifier_test_data_snp_test-report.bin").read_bytes()
    cert = (snp_dir / "deps_verifier_test_data_snp_test-vcek.der").read_bytes()
    with pytest.raises(CertificateExpired):
        verify_snp_report(report, [cert], now=when)


def test_no_endorsement_certificate(snp_dir: Path) -> None:
    report, _ = _vcek_and_report(snp_dir)
    ask_ark = (snp_dir / "verify_trust_ask_ark_milan.pem").read_bytes()
    with pytest.raises(ChainNotTrusted, match="no VCEK"):
        verify_snp_report(report, [ask_ark], now=NOW)


def test_chain_cache_skips_signatures_but_not_validity(snp_dir: Path) -> None:
    report, cert = _vcek_and_report(snp_dir)
    cache = SnpChainCache()
    assert verify_snp_chain(cert, now=NOW, cache=cache) is SnpProduct.MILAN
    assert len(cache) == 1
    assert verify_snp_chain(cert, now=NOW, cache=cache) is SnpProduct.MILAN
    with pytest.raises(CertificateExpired):
        verify_snp_chain(cert, now=datetime(2031, 1, 1, tzinfo=UTC), cache=cache)
    verify_snp_report(report, [cert], now=NOW, cache=cache)


# --- must reject: malformed -----------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 0x2A0, SNP_REPORT_SIZE - 1, SNP_REPORT_SIZE + 1, 4096])
def test_wrong_size_is_malformed(snp_dir: Path, size: int) -> None:
    report, _ = _vcek_and_report(snp_dir)
    data = (report * 4)[:size]
    vcek = (snp_dir / "deps_verifier_test_data_snp_test-vcek.der").read_bytes()
    with pytest.raises(MalformedEvidence):
        parse_snp_report(data)
    with pytest.raises(MalformedEvidence):
        verify_snp_report(data, [vcek], now=NOW)


def test_unsupported_version_after_a_valid_signature(
    fake_amd: Callable[[SnpProduct], FakeAmd],
) -> None:
    amd = fake_amd(SnpProduct.MILAN)
    chip = bytes(range(64))
    cert, key = amd.leaf(tcb=TCB, hwid=chip)
    report = build_report(key, version=9, tcb=TCB, chip_id=chip)
    with pytest.raises(MalformedEvidence, match="version 9"):
        verify_snp_report(report, [cert.public_bytes(Encoding.DER)], now=NOW, anchors=[amd.anchor])


def test_signature_helper_rejects_padding_and_wrong_key(snp_dir: Path) -> None:
    report, cert = _vcek_and_report(snp_dir)
    key = PublicKey(cert.public_key(), Algorithm.ES384)  # type: ignore[arg-type]
    verify_snp_signature(report, key)
    padded = bytearray(report)
    padded[0x2A0 + 60] = 1  # high byte of R
    with pytest.raises(BadSignature):
        verify_snp_signature(bytes(padded), key)
    with pytest.raises(BadSignature):
        verify_snp_signature(report, PublicKey.from_pem(_p256_pem()))


def _p256_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    from cryptography.hazmat.primitives.serialization import PublicFormat

    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def test_v5_mitigation_vectors_are_parsed(fake_amd: Callable[[SnpProduct], FakeAmd]) -> None:
    amd = fake_amd(SnpProduct.GENOA)
    chip = bytes(range(64))
    cert, key = amd.leaf(tcb=TCB, hwid=chip)
    unsigned = bytearray(
        build_report(None, version=5, tcb=TCB, chip_id=chip, cpuid=(0x19, 0x11, 1))
    )
    struct.pack_into("<QQ", unsigned, 0x1F8, 0x5, 0x7)
    sig = key.sign(bytes(unsigned[:0x2A0]))
    unsigned[0x2A0:0x2D0] = sig[:48][::-1]
    unsigned[0x2E8:0x318] = sig[48:][::-1]
    claims = verify_snp_report(
        bytes(unsigned), [cert.public_bytes(Encoding.DER)], now=NOW, anchors=[amd.anchor]
    )
    assert claims.raw["launch_mit_vector"] == "0000000000000005"
    assert claims.raw["current_mit_vector"] == "0000000000000007"
    assert parse_snp_report(build_report(None, version=2, tcb=TCB)).launch_mit_vector is None


@pytest.mark.parametrize(
    "value",
    [
        b"\x02\x01\x09",
        b"\x02\x02\x00\x09",
        b"\x02\x01\x85",
        b"\x04\x01\x05",
        b"\x02\x02\x05",
        b"\x02\x00",
    ],
)
def test_malformed_tcb_extension_is_a_mismatch(
    fake_amd: Callable[[SnpProduct], FakeAmd], value: bytes
) -> None:
    amd = fake_amd(SnpProduct.MILAN)
    chip = bytes(range(64))
    key = ec.generate_private_key(ec.SECP384R1())
    amd_oid = "1.3.6.1.4.1.3704.1"
    ext = {
        f"{amd_oid}.2": b"\x16\x05Milan",
        f"{amd_oid}.3.1": value,
        f"{amd_oid}.3.2": b"\x02\x01\x01",
        f"{amd_oid}.3.3": b"\x02\x01\x16",
        f"{amd_oid}.3.8": b"\x02\x02\x00\xd5",
        f"{amd_oid}.4": chip,
    }
    cert = make_cert("SEV-VCEK", "SEV-Milan", key, amd.ask_key, ca=False, extensions=ext)
    report = build_report(PrivateKey(key), tcb=TCB, chip_id=chip)
    der = cert.public_bytes(Encoding.DER)
    if value == b"\x02\x01\x09":  # the well-formed control: boot loader SVN 9
        assert (
            verify_snp_report(report, [der], now=NOW, anchors=[amd.anchor]).svns["bootloader"] == 9
        )
        return
    with pytest.raises(EndorsementMismatch):
        verify_snp_report(report, [der], now=NOW, anchors=[amd.anchor])
