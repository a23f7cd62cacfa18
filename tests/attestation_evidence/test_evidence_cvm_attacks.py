"""An attack round on the confidential-VM evidence verifiers (SEV-SNP, TDX): the real reports
and quotes with their length fields set to boundary values, bits flipped, cut and extended
(only typed errors may come out), and forged or stale evidence that must be refused with its
exact error. Deterministic: derandomized hypothesis, no example database."""

from __future__ import annotations

import contextlib
import hashlib
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from evidence_fakes import NOW, FakeAmd, build_report, make_fake_amd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.attestation.evidence import (
    SnpProduct,
    VerifyOptions,
    parse_azure_hcl_report,
    parse_evidence,
    parse_snp_report,
    parse_tdx_quote,
    split_tdx_quote,
    verify_azure_hcl_report,
    verify_evidence,
    verify_snp_report,
    verify_tdx_quote,
)
from ironroot.errors import BadSignature, CollateralExpired, IronrootError, MalformedEvidence
from tee_fakes import TDX_NOW, FakeIntel

TDX_QUOTES = (
    "deps_verifier_test_data_tdx_quote_4.dat",
    "testing_testdata_quote_v5_sample.dat",
    "testing_testdata_tdx_prod_quote_SPR_E4.dat",
)
BOUNDARIES = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)
QUOTE_TIME = datetime(2026, 11, 28, tzinfo=UTC)


def _settings(count: int) -> settings:
    return settings(
        max_examples=examples(count),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _typed_only(data: bytes, *calls: Callable[[bytes], object]) -> None:
    for call in calls:
        with contextlib.suppress(IronrootError):
            call(data)


def _verify_tdx(data: bytes) -> object:
    return verify_evidence(data, VerifyOptions(now=QUOTE_TIME, nonce=bytes(32)), format="tdx")


TDX_CALLS = (parse_tdx_quote, split_tdx_quote, parse_evidence, _verify_tdx)


def _tdx_length_fields(quote: bytes) -> list[tuple[int, int]]:
    """(offset, width) of every size and type field of a v4/v5 quote."""
    pos, fields = 48, []
    body = 584
    if struct.unpack_from("<H", quote, 0)[0] == 5:
        fields += [(48, 2), (50, 4)]
        body = struct.unpack_from("<I", quote, 50)[0]
        pos += 6
    pos += body
    fields.append((pos, 4))  # signature data length
    pos += 4 + 64 + 64
    fields += [(pos, 2), (pos + 2, 4)]  # certification data type, size
    pos += 6 + 384 + 64
    fields.append((pos, 2))  # QE auth data size
    pos += 2 + struct.unpack_from("<H", quote, pos)[0]
    fields += [(pos, 2), (pos + 2, 4)]  # PCK chain type, size
    return fields


@pytest.fixture(scope="module")
def quotes(vectors: Path) -> list[bytes]:
    return [(vectors / "tee" / "tdx" / name).read_bytes() for name in TDX_QUOTES]


@pytest.mark.vectors
def test_every_tdx_length_field_at_every_boundary(quotes: list[bytes]) -> None:
    tried = 0
    for quote in quotes:
        for offset, width in _tdx_length_fields(quote):
            for value in BOUNDARIES:
                data = bytearray(quote)
                data[offset : offset + width] = (value % (1 << (8 * width))).to_bytes(
                    width, "little"
                )
                _typed_only(bytes(data), *TDX_CALLS)
                tried += 1
    assert tried == len(BOUNDARIES) * sum(len(_tdx_length_fields(q)) for q in quotes)


@st.composite
def _mangled(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(("flip", "cut", "extend", "huge")))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=64))
        else:
            data[at : at + 4] = draw(st.sampled_from(BOUNDARIES)).to_bytes(4, "little")
    return bytes(data)


@pytest.mark.vectors
@_settings(60)
@given(st.data())
def test_mangled_tdx_quotes_raise_only_typed_errors(
    quotes: list[bytes], data: st.DataObject
) -> None:
    seed = data.draw(st.sampled_from(quotes))
    _typed_only(data.draw(_mangled(seed)), *TDX_CALLS)


@pytest.mark.vectors
@_settings(60)
@given(st.data())
def test_mangled_snp_and_hcl_reports_raise_only_typed_errors(
    vectors: Path, data: st.DataObject
) -> None:
    folder = vectors / "tee" / "snp"
    name = data.draw(
        st.sampled_from(
            (
                "deps_verifier_test_data_snp_test-report.bin",
                "deps_verifier_test_data_snp_test-vlek-report.bin",
                "deps_verifier_test_data_az-snp-vtpm_hcl-report.bin",
                "verify_testdata_attestation.bin",
            )
        )
    )
    mangled = data.draw(_mangled((folder / name).read_bytes()))
    vcek = (folder / "deps_verifier_test_data_snp_test-vcek.der").read_bytes()

    def verify(raw: bytes) -> object:
        options = VerifyOptions(now=NOW, nonce=bytes(32), certificates=(vcek,))
        return verify_evidence(raw, options)

    _typed_only(mangled, parse_snp_report, parse_azure_hcl_report, parse_evidence, verify)


@pytest.mark.vectors
def test_hcl_size_fields_at_every_boundary(vectors: Path) -> None:
    hcl = vectors / "tee" / "snp" / "deps_verifier_test_data_az-snp-vtpm_hcl-report.bin"
    report = hcl.read_bytes()
    runtime = 32 + 1184
    for offset in (4, 8, 12, runtime, runtime + 4, runtime + 8, runtime + 12, runtime + 16):
        for value in BOUNDARIES:
            data = bytearray(report)
            data[offset : offset + 4] = value.to_bytes(4, "little")
            _typed_only(bytes(data), parse_azure_hcl_report, parse_evidence)


# --- forged and stale evidence ------------------------------------------------------------------


def _raw_p256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_tdx_quote_signed_by_a_key_the_qe_did_not_certify() -> None:
    # The attacker signs its own TD report with its own attestation key and keeps the genuine
    # QE report (signed by the PCK), which binds the genuine attestation key.
    intel = FakeIntel()
    quote = bytearray(intel.quote())
    signed_end = 48 + 584
    forged_body = bytearray(quote[:signed_end])
    forged_body[signed_end - 64 : signed_end] = b"\x66" * 64  # REPORTDATA of its choice
    attacker = ec.generate_private_key(ec.SECP256R1())
    numbers = attacker.public_key().public_numbers()
    key = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    quote[:signed_end] = forged_body
    quote[signed_end + 4 : signed_end + 4 + 64] = _raw_p256(attacker, bytes(forged_body))
    quote[signed_end + 4 + 64 : signed_end + 4 + 128] = key
    with pytest.raises(BadSignature, match="does not bind the attestation key") as caught:
        verify_tdx_quote(bytes(quote), now=TDX_NOW, root=intel.root)
    assert type(caught.value) is BadSignature
    assert caught.value.check == "key-binding"


@pytest.fixture(scope="module")
def amd() -> FakeAmd:
    return make_fake_amd(SnpProduct.MILAN, pss=True)


TCB = {"bootloader": 9, "tee": 1, "snp": 22, "microcode": 0xD5}
CHIP = bytes(range(64))


def _snp(amd: FakeAmd, crls: list[x509.CertificateRevocationList]) -> object:
    cert, key = amd.leaf(tcb=TCB, hwid=CHIP)
    report = build_report(key, tcb=TCB, chip_id=CHIP)
    return verify_snp_report(
        report,
        [cert.public_bytes(Encoding.DER)],
        now=NOW,
        anchors=[amd.anchor],
        crls=crls,
    )


def test_an_snp_crl_not_yet_valid_is_refused(amd: FakeAmd) -> None:
    future = amd.crl([], last_update=NOW + timedelta(days=1), next_update=NOW + timedelta(days=8))
    with pytest.raises(CollateralExpired, match="after the verification time") as caught:
        _snp(amd, [future])
    assert type(caught.value) is CollateralExpired
    assert caught.value.check == "revocation"


def _signed_hcl(amd: FakeAmd, claims: bytes) -> tuple[bytes, bytes]:
    """An HCL report whose SNP report (by the fake VCEK) binds ``claims`` by SHA-256."""
    cert, key = amd.leaf(tcb=TCB, hwid=CHIP)
    digest = hashlib.sha256(claims).digest()
    report = build_report(key, tcb=TCB, chip_id=CHIP, report_data=digest + bytes(32))
    size = 32 + len(report) + 20 + len(claims)
    header = b"HCLA" + struct.pack("<III", 1, size, 2) + bytes(16)
    runtime = struct.pack("<IIIII", 20 + len(claims), 1, 2, 1, len(claims))
    return header + report + runtime + claims, cert.public_bytes(Encoding.DER)


def test_hcl_runtime_claims_naming_user_data_twice_are_refused(amd: FakeAmd) -> None:
    nonce = b"\x07" * 32
    good, vcek = _signed_hcl(amd, b'{"user-data": "' + nonce.hex().encode() + b'"}')
    claims = verify_azure_hcl_report(good, [vcek], now=NOW, anchors=[amd.anchor])
    assert claims.report_data == nonce
    # which user-data counted depended on the reader: this one took the last
    twice = b'{"user-data": "' + bytes(32).hex().encode() + b'", "user-data": "'
    forged, vcek = _signed_hcl(amd, twice + nonce.hex().encode() + b'"}')
    with pytest.raises(MalformedEvidence) as caught:
        verify_azure_hcl_report(forged, [vcek], now=NOW, anchors=[amd.anchor])
    assert type(caught.value) is MalformedEvidence
    assert caught.value.detail == (
        "HCL runtime claims are not JSON: a member name appears twice in one object"
    )
    assert caught.value.check == "runtime-claims"
