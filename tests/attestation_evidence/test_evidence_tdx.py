"""Intel TDX: every v4 quote in the vectors verifies, v5 too; every must-reject case fails."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.attestation.evidence import (
    INTEL_SGX_ROOT_FINGERPRINT,
    CheckLog,
    TdxChainCache,
    builtin_intel_root,
    load_certificates,
    load_crls,
    parse_pck_extensions,
    parse_tdx_quote,
    split_tdx_quote,
    verify_tdx_quote,
)
from ironroot.attestation.evidence._certs import fingerprint
from ironroot.attestation.evidence._revocation import check_chain_revocation
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    CertificateRevoked,
    ChainNotTrusted,
    CollateralExpired,
    MalformedEvidence,
)

pytestmark = pytest.mark.vectors

NOW = datetime(2026, 11, 28, tzinfo=UTC)
QUOTE4 = "deps_verifier_test_data_tdx_quote_4.dat"
CCEL = "testing_testdata_ccel_cos-113-tdx-quote.dat"
SPR = "testing_testdata_tdx_prod_quote_SPR_E4.dat"
V5 = "testing_testdata_quote_v5_sample.dat"


def _quote(tdx_dir: Path, name: str = QUOTE4) -> bytes:
    return (tdx_dir / name).read_bytes()


@pytest.mark.parametrize("name", [QUOTE4, CCEL, SPR])
def test_every_v4_quote_verifies(tdx_dir: Path, name: str) -> None:
    data = _quote(tdx_dir, name)
    claims = verify_tdx_quote(data, now=NOW)
    quote = parse_tdx_quote(data)
    assert quote.header.version == 4
    assert claims.format == "tdx"
    assert claims.measurements["mrtd"] == quote.body.mrtd
    assert claims.measurements["rtmr3"] == quote.body.rtmrs[3]
    assert claims.report_data == quote.body.report_data
    assert claims.identity["qe_vendor_id"] == "939a7233f79c4ca9940a0db3957f0607"
    assert claims.signer.endswith("CN=Intel SGX PCK Certificate")
    assert len(claims.identity["fmspc"]) == 12


def test_quote4_claims_exact(tdx_dir: Path) -> None:
    claims = verify_tdx_quote(_quote(tdx_dir), now=NOW)
    assert claims.identity["fmspc"] == "50806f000000"
    assert claims.debug is True  # this sample TD runs with TDATTRIBUTES.DEBUG
    assert claims.raw["body"]["td_attributes"]["debug"] is True
    assert claims.svns["tee_tcb_svn_0"] == 3
    assert claims.svns["qe_isvsvn"] == parse_tdx_quote(_quote(tdx_dir)).qe_report.isv_svn


def test_ccel_quote_debug_off_and_nonce(tdx_dir: Path) -> None:
    claims = verify_tdx_quote(_quote(tdx_dir, CCEL), now=NOW)
    assert claims.debug is False
    assert claims.report_data == (tdx_dir / "testing_testdata_ccel_nonce.dat").read_bytes()


def test_v5_quote_with_tdx15_body_verifies(tdx_dir: Path) -> None:
    claims = verify_tdx_quote(_quote(tdx_dir, V5), now=NOW)
    quote = parse_tdx_quote(_quote(tdx_dir, V5))
    assert quote.header.version == 5
    assert quote.body_type == 3
    assert quote.body.mrservicetd is not None
    assert "mrservicetd" in claims.measurements
    assert "tee_tcb_svn2_0" in claims.svns


def test_builtin_intel_root_equals_the_quote_chains(tdx_dir: Path) -> None:
    root = builtin_intel_root()
    assert fingerprint(root).hex() == INTEL_SGX_ROOT_FINGERPRINT
    for name in (QUOTE4, CCEL, SPR, V5):
        quote = parse_tdx_quote(_quote(tdx_dir, name))
        chain = load_certificates(quote.pck_chain_pem.rstrip(b"\0"))
        assert chain[-1].public_bytes(Encoding.DER) == root.public_bytes(Encoding.DER)


def test_pck_extensions(tdx_dir: Path) -> None:
    quote = parse_tdx_quote(_quote(tdx_dir))
    pck = load_certificates(quote.pck_chain_pem.rstrip(b"\0"))[0]
    ext = parse_pck_extensions(pck)
    assert ext.fmspc.hex() == "50806f000000"
    assert len(ext.tcb_components) == 16
    assert len(ext.cpusvn) == 16


# The real PCS CRLs: the PCK (Platform CA) CRL runs 2023-06-08 → 2023-07-08, the root CA CRL
# 2023-04-03 → 2024-04-02; the quote-4 PCK is valid from 2023-02-07.
CRL_FRESH = datetime(2023, 6, 20, tzinfo=UTC)


def _real_crls(tdx_dir: Path) -> list[x509.CertificateRevocationList]:
    return load_crls((tdx_dir / "testing_testdata_pckcrl").read_bytes()) + load_crls(
        (tdx_dir / "testing_testdata_rootcrl.der").read_bytes()
    )


def test_real_crls_do_not_revoke_while_fresh(tdx_dir: Path) -> None:
    crls = _real_crls(tdx_dir)
    assert len(crls) == 2
    assert crls[0].next_update_utc == datetime(2023, 7, 8, 7, 27, 52, tzinfo=UTC)
    assert crls[1].next_update_utc == datetime(2024, 4, 2, 10, 22, 51, tzinfo=UTC)
    log = CheckLog()
    claims = verify_tdx_quote(_quote(tdx_dir), now=CRL_FRESH, crls=crls, checks=log)
    revocation = next(c for c in log.checks if c.name == "revocation")
    assert revocation.ok
    assert "not revoked: Intel SGX PCK Certificate, Intel SGX PCK Platform CA" in revocation.detail
    assert claims.raw["stale_collateral"] == []


def test_real_crls_past_next_update_are_refused(tdx_dir: Path) -> None:
    with pytest.raises(CollateralExpired) as caught:
        verify_tdx_quote(_quote(tdx_dir), now=NOW, crls=_real_crls(tdx_dir))
    assert caught.value.check == "revocation"
    assert caught.value.code == "collateral-expired"
    # the root CA CRL alone, once past its own nextUpdate
    root_crl = _real_crls(tdx_dir)[1:]
    verify_tdx_quote(_quote(tdx_dir), now=datetime(2024, 4, 1, tzinfo=UTC), crls=root_crl)
    with pytest.raises(CollateralExpired):
        verify_tdx_quote(_quote(tdx_dir), now=datetime(2024, 4, 3, tzinfo=UTC), crls=root_crl)


def test_real_stale_crls_accepted_when_allowed_and_reported(tdx_dir: Path) -> None:
    log = CheckLog()
    claims = verify_tdx_quote(
        _quote(tdx_dir), now=NOW, crls=_real_crls(tdx_dir), allow_stale_collateral=True, checks=log
    )
    revocation = next(c for c in log.checks if c.name == "revocation")
    assert revocation.ok
    assert "stale: allowed" in revocation.detail
    stale = claims.raw["stale_collateral"]
    assert [s["name"] for s in stale] == [
        "CRL of Intel SGX PCK Platform CA",
        "CRL of Intel SGX Root CA",
    ]
    assert stale[0]["next_update"] == "2023-07-08T07:27:52Z"


# --- must reject ----------------------------------------------------------------------------


def _regions(data: bytes) -> dict[str, range]:
    """Byte ranges of the quote-4 vector covered by a signature or a binding."""
    quote = parse_tdx_quote(data)
    sig_at = 48 + 584 + 4
    qe_at = sig_at + 128 + 6
    auth_at = qe_at + 384 + 64 + 2
    return {
        "header (after version)": range(2, 48),
        "body": range(48, 632),
        "quote signature": range(sig_at, sig_at + 64),
        "attestation key": range(sig_at + 64, sig_at + 128),
        "QE report": range(qe_at, qe_at + 384),
        "QE report signature": range(qe_at + 384, qe_at + 448),
        "QE auth data": range(auth_at, auth_at + len(quote.qe_auth_data)),
    }


@pytest.mark.slow  # exhaustive: every byte or bit of real evidence (make test)
def test_flipped_bits_in_signed_regions_are_bad_signature(tdx_dir: Path) -> None:
    data = _quote(tdx_dir)
    for region, span in _regions(data).items():
        for index in span:
            mutated = bytearray(data)
            mutated[index] ^= 1 << (index % 8)
            with pytest.raises(BadSignature):
                verify_tdx_quote(bytes(mutated), now=NOW)
        assert span, region


@pytest.mark.parametrize("bit", range(16))
def test_flipped_version_bits_are_malformed(tdx_dir: Path, bit: int) -> None:
    mutated = bytearray(_quote(tdx_dir))
    mutated[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(MalformedEvidence):
        verify_tdx_quote(bytes(mutated), now=NOW)


def test_version_4_to_5_flip_is_malformed(tdx_dir: Path) -> None:
    mutated = bytearray(_quote(tdx_dir))
    mutated[0] = 5
    with pytest.raises(MalformedEvidence):
        verify_tdx_quote(bytes(mutated), now=NOW)


def test_genuine_quotes_with_trailing_bytes_verify(tdx_dir: Path) -> None:
    for name in (SPR, CCEL):
        data = _quote(tdx_dir, name)
        claims = verify_tdx_quote(data, now=NOW)
        quote, rest = split_tdx_quote(data)
        assert claims.raw["trailing_bytes"] == len(rest) > 0
        assert verify_tdx_quote(quote, now=NOW).measurements == claims.measurements
    _, rest = split_tdx_quote(_quote(tdx_dir, SPR))
    assert rest.startswith(b"\nextra bytes")


@pytest.mark.parametrize("cut", [0, 10, 48, 631, 700, 1200, 4935])
def test_truncated_quote_is_malformed(tdx_dir: Path, cut: int) -> None:
    with pytest.raises(MalformedEvidence):
        verify_tdx_quote(_quote(tdx_dir)[:cut], now=NOW)


def test_oversized_buffer_is_malformed(tdx_dir: Path) -> None:
    with pytest.raises(MalformedEvidence, match="buffer is at most"):
        verify_tdx_quote(_quote(tdx_dir) + b"\x01" * (1024 * 1024), now=NOW)


def test_quote_declaring_over_64k_of_signature_data_is_malformed(tdx_dir: Path) -> None:
    data = bytearray(_quote(tdx_dir) + bytes(70_000))
    sig_len_at = 48 + 584
    data[sig_len_at : sig_len_at + 4] = (66_000).to_bytes(4, "little")
    with pytest.raises(MalformedEvidence, match="over 65536 bytes"):
        parse_tdx_quote(bytes(data))


@pytest.mark.parametrize("tail", [bytes(4096), b"\xff" * 17, bytes(range(256)) * 40])
@pytest.mark.parametrize("name", [QUOTE4, V5])
def test_quote_followed_by_any_bytes_verifies_and_reports_them(
    tdx_dir: Path, name: str, tail: bytes
) -> None:
    plain = verify_tdx_quote(_quote(tdx_dir, name), now=NOW)
    claims = verify_tdx_quote(_quote(tdx_dir, name) + tail, now=NOW)
    assert claims.raw["trailing_bytes"] == len(tail)
    assert plain.raw["trailing_bytes"] == 0
    # the extra bytes are never part of the claims
    assert claims.measurements == plain.measurements
    assert claims.report_data == plain.report_data
    assert claims.svns == plain.svns
    assert claims.identity == plain.identity
    assert tail.hex() not in json.dumps(claims.to_dict())


def test_ccel_buffer_reports_its_padding(tdx_dir: Path) -> None:
    data = _quote(tdx_dir, CCEL)
    quote = parse_tdx_quote(data)
    assert quote.trailing_bytes == len(data) - len(quote.data) > 0
    assert split_tdx_quote(data) == (quote.data, data[len(quote.data) :])


@pytest.mark.parametrize(
    "when", [datetime(2023, 2, 6, tzinfo=UTC), datetime(2030, 2, 8, tzinfo=UTC)]
)
def test_pck_outside_validity(tdx_dir: Path, when: datetime) -> None:
    with pytest.raises(CertificateExpired):
        verify_tdx_quote(_quote(tdx_dir), now=when)


def _with_chain(data: bytes, pem: bytes) -> bytes:
    """The quote with its PCK chain replaced (the lengths rewritten; nothing re-signed)."""
    quote = parse_tdx_quote(data)
    sig_at = 48 + 584
    qe_at = sig_at + 4 + 128 + 6
    inner_at = qe_at + 384 + 64 + 2 + len(quote.qe_auth_data)
    head = bytearray(data[: inner_at + 6])
    cert_size = inner_at + 6 + len(pem) - qe_at
    struct.pack_into("<I", head, sig_at, 128 + 6 + cert_size)
    struct.pack_into("<HI", head, sig_at + 4 + 128, 6, cert_size)
    struct.pack_into("<HI", head, inner_at, 5, len(pem))
    return bytes(head) + pem


def _self_signed(cn: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = datetime(2020, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=20000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_rebuilt_chain_helper_round_trips(tdx_dir: Path) -> None:
    data = _quote(tdx_dir)
    pem = parse_tdx_quote(data).pck_chain_pem
    assert _with_chain(data, pem) == data


def test_untrusted_root_in_the_quote(tdx_dir: Path) -> None:
    data = _quote(tdx_dir)
    chain = load_certificates(parse_tdx_quote(data).pck_chain_pem.rstrip(b"\0"))
    fake_root = _self_signed("Intel SGX Root CA")
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in (*chain[:2], fake_root))
    with pytest.raises(ChainNotTrusted):
        verify_tdx_quote(_with_chain(data, pem), now=NOW)


def test_missing_intermediate(tdx_dir: Path) -> None:
    data = _quote(tdx_dir)
    chain = load_certificates(parse_tdx_quote(data).pck_chain_pem.rstrip(b"\0"))
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in (chain[0], chain[2]))
    with pytest.raises(ChainNotTrusted):
        verify_tdx_quote(_with_chain(data, pem), now=NOW)


def test_pck_from_another_quote_fails_the_qe_signature(tdx_dir: Path) -> None:
    data = _quote(tdx_dir)
    other = parse_tdx_quote(_quote(tdx_dir, SPR)).pck_chain_pem
    with pytest.raises(BadSignature):
        verify_tdx_quote(_with_chain(data, other), now=NOW)


def test_explicit_untrusted_root_parameter(tdx_dir: Path) -> None:
    with pytest.raises(ChainNotTrusted):
        verify_tdx_quote(_quote(tdx_dir), now=NOW, root=_self_signed("Intel SGX Root CA"))


def test_revoked_certificate_is_rejected() -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    start = datetime(2020, 1, 1, tzinfo=UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=9000))
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(0x1234)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=9000))
        .sign(ca_key, hashes.SHA256())
    )

    def crl(serials: list[int], key: ec.EllipticCurvePrivateKey) -> x509.CertificateRevocationList:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_name)
            .last_update(start)
            .next_update(start + timedelta(days=30))
        )
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(start)
                .build()
            )
        return builder.sign(key, hashes.SHA256())

    def check(crls: list[x509.CertificateRevocationList]) -> object:
        return check_chain_revocation(
            (leaf, ca), crls, now=start + timedelta(days=1), allow_stale=False
        )

    assert check([crl([7], ca_key)]) is not None
    with pytest.raises(CertificateRevoked):
        check([crl([7, 0x1234], ca_key)])
    with pytest.raises(ChainNotTrusted):
        check([crl([], ec.generate_private_key(ec.SECP256R1()))])
    # revoked is revoked even in a stale CRL
    with pytest.raises(CertificateRevoked):
        check_chain_revocation(
            (leaf, ca), [crl([0x1234], ca_key)], now=start + timedelta(days=99), allow_stale=False
        )
    with pytest.raises(CollateralExpired):
        check_chain_revocation(
            (leaf, ca), [crl([7], ca_key)], now=start + timedelta(days=99), allow_stale=False
        )


def test_chain_cache(tdx_dir: Path) -> None:
    cache = TdxChainCache()
    verify_tdx_quote(_quote(tdx_dir), now=NOW, cache=cache)
    assert len(cache) == 1
    verify_tdx_quote(_quote(tdx_dir), now=NOW, cache=cache)
    with pytest.raises(CertificateExpired):
        verify_tdx_quote(_quote(tdx_dir), now=datetime(2031, 1, 1, tzinfo=UTC), cache=cache)


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [(2, 3, "key type"), (4, 0x00, "TEE type"), (636 + 128, 7, "type 7")],
)
def test_unsupported_types(tdx_dir: Path, offset: int, value: int, match: str) -> None:
    mutated = bytearray(_quote(tdx_dir))
    mutated[offset] = value
    with pytest.raises(MalformedEvidence, match=match):
        parse_tdx_quote(bytes(mutated))
