"""SEV-SNP revocation (AMD's per-product CRL, issued by the ARK, RSASSA-PSS SHA-384), its
staleness rule, and the endorsement comparison reported field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from evidence_fakes import NOW, FakeAmd, build_report, make_fake_amd

from ironroot.attestation.evidence import (
    CheckLog,
    EvidenceClaims,
    SnpProduct,
    VerifyOptions,
    _snp_verify,
    verify_azure_hcl_report,
    verify_evidence,
    verify_snp_report,
)
from ironroot.errors import CertificateRevoked, ChainNotTrusted, CollateralExpired
from tee_fakes import make_crl

TCB = {"bootloader": 9, "tee": 1, "snp": 22, "microcode": 0xD5}
CHIP = bytes(range(64))


@pytest.fixture(scope="module")
def amd() -> FakeAmd:
    return make_fake_amd(SnpProduct.MILAN, pss=True)


def _verify(
    amd: FakeAmd,
    crls: list[x509.CertificateRevocationList],
    *,
    vlek: bool = False,
    now: datetime = NOW,
    allow_stale: bool = False,
    log: CheckLog | None = None,
) -> EvidenceClaims:
    cert, key = amd.leaf(tcb=TCB, hwid=None if vlek else CHIP, vlek=vlek)
    report = build_report(key, tcb=TCB, chip_id=CHIP, signing_key=1 if vlek else 0)
    return verify_snp_report(
        report,
        [cert.public_bytes(Encoding.DER)],
        now=now,
        anchors=[amd.anchor],
        crls=crls,
        allow_stale_collateral=allow_stale,
        checks=log,
    )


def test_the_fake_chain_is_rsa_pss_like_amds(amd: FakeAmd) -> None:
    assert isinstance(amd.ark_key, rsa.RSAPrivateKey)
    crl = amd.crl([])
    assert crl.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.RSASSA_PSS
    assert crl.is_signature_valid(amd.ark.public_key())  # type: ignore[arg-type]


def test_a_crl_that_lists_nothing_of_the_chain(amd: FakeAmd) -> None:
    log = CheckLog()
    claims = _verify(amd, [amd.crl([12345])], log=log)
    revocation = next(c for c in log.checks if c.name == "revocation")
    assert revocation.ok
    assert revocation.detail == ("not revoked: SEV-Milan, ARK-Milan; no CRL given for: SEV-VCEK")
    assert claims.raw["stale_collateral"] == []


@pytest.mark.parametrize("vlek", [False, True])
def test_a_revoked_ask_or_asvk_is_refused(amd: FakeAmd, vlek: bool) -> None:
    revoked = (amd.asvk if vlek else amd.ask).serial_number
    with pytest.raises(CertificateRevoked) as caught:
        _verify(amd, [amd.crl([revoked])], vlek=vlek)
    assert caught.value.check == "revocation"
    assert caught.value.code == "certificate-revoked"
    # the other intermediate's revocation does not touch this chain
    other = (amd.ask if vlek else amd.asvk).serial_number
    _verify(amd, [amd.crl([other])], vlek=vlek)


def test_a_revoked_vcek_by_an_ask_crl(amd: FakeAmd) -> None:
    cert, key = amd.leaf(tcb=TCB, hwid=CHIP)
    report = build_report(key, tcb=TCB, chip_id=CHIP)
    ask_crl = make_crl(amd.ask.subject, amd.ask_key, [cert.serial_number],
                       next_update=NOW + timedelta(days=1))  # fmt: skip
    with pytest.raises(CertificateRevoked):
        verify_snp_report(
            report, [cert.public_bytes(Encoding.DER)], now=NOW, anchors=[amd.anchor],
            crls=[ask_crl],
        )  # fmt: skip


def test_a_crl_not_signed_by_the_ark_is_refused(amd: FakeAmd) -> None:
    forged = amd.crl([], key=rsa.generate_private_key(65537, 2048))
    with pytest.raises(ChainNotTrusted) as caught:
        _verify(amd, [forged])
    assert caught.value.check == "revocation"


@pytest.mark.parametrize(
    ("extension", "why"),
    [
        (x509.DeltaCRLIndicator(3), "a delta CRL (base CRL number 3), not a complete CRL"),
        (
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"),
            "unknown critical extension 1.2.3.4",
        ),
    ],
    ids=["delta", "unknown-critical"],
)
def test_an_ark_crl_that_cannot_decide_revocation_is_refused(
    amd: FakeAmd, extension: x509.ExtensionType, why: str
) -> None:
    hostile = amd.crl([12345], extensions=[(extension, True)])
    with pytest.raises(ChainNotTrusted) as caught:
        _verify(amd, [hostile])
    assert type(caught.value) is ChainNotTrusted
    assert (caught.value.check, caught.value.code) == ("revocation", "crl-unusable")
    ark = amd.ark.subject.rfc4514_string()
    assert caught.value.detail == f"CRL of {ark!r} cannot decide revocation: {why}"


def test_another_products_crl_does_not_apply(amd: FakeAmd) -> None:
    genoa = make_fake_amd(SnpProduct.GENOA)
    log = CheckLog()
    _verify(amd, [genoa.crl([amd.ask.serial_number])], log=log)
    assert {n.name: n.reason for n in log.not_checked}["revocation"] == (
        "none of the 1 CRL(s) given is of this chain's CAs"
    )


def test_without_crl_revocation_is_not_checked(amd: FakeAmd) -> None:
    log = CheckLog()
    _verify(amd, [], log=log)
    assert {n.name: n.reason for n in log.not_checked} == {"revocation": "no CRL given"}


def test_a_stale_crl_is_refused_unless_allowed(amd: FakeAmd) -> None:
    stale = amd.crl([], last_update=NOW - timedelta(days=10), next_update=NOW - timedelta(days=1))
    with pytest.raises(CollateralExpired) as caught:
        _verify(amd, [stale])
    assert caught.value.check == "revocation"
    log = CheckLog()
    claims = _verify(amd, [stale], allow_stale=True, log=log)
    assert "stale: allowed: CRL of ARK-Milan" in next(
        c.detail for c in log.checks if c.name == "revocation"
    )
    assert claims.raw["stale_collateral"] == [
        {
            "name": "CRL of ARK-Milan",
            "issued": (NOW - timedelta(days=10)).isoformat().replace("+00:00", "Z"),
            "next_update": (NOW - timedelta(days=1)).isoformat().replace("+00:00", "Z"),
            "reason": "next update was 2025-05-31T00:00:00Z",
        }
    ]
    # revoked stays revoked in a stale CRL
    stale_revoking = amd.crl(
        [amd.ask.serial_number], last_update=NOW - timedelta(days=10), next_update=NOW
    )
    with pytest.raises(CertificateRevoked):
        _verify(amd, [stale_revoking], now=NOW + timedelta(days=1), allow_stale=True)


def test_crls_through_the_format_table(amd: FakeAmd, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table passes --crl bytes (DER or PEM) and the staleness flag to SNP."""
    monkeypatch.setattr(_snp_verify, "builtin_snp_anchors", lambda: (amd.anchor,))
    cert, key = amd.leaf(tcb=TCB, hwid=CHIP)
    report = build_report(key, tcb=TCB, chip_id=CHIP)
    leaf = (cert.public_bytes(Encoding.DER),)
    revoking = amd.crl([amd.ask.serial_number]).public_bytes(Encoding.PEM)
    with pytest.raises(CertificateRevoked) as caught:
        verify_evidence(report, VerifyOptions(now=NOW, certificates=leaf, crls=(revoking,)))
    assert caught.value.check == "revocation"
    stale = amd.crl([], next_update=NOW - timedelta(days=1)).public_bytes(Encoding.DER)
    options = VerifyOptions(now=NOW, certificates=leaf, crls=(stale,))
    with pytest.raises(CollateralExpired):
        verify_evidence(report, options)
    allowed = VerifyOptions(now=NOW, certificates=leaf, crls=(stale,), allow_stale_collateral=True)
    claims = verify_evidence(report, allowed)
    assert [s["name"] for s in claims.raw["stale_collateral"]] == ["CRL of ARK-Milan"]


# --- the endorsement comparison, field by field, on real reports ------------------------------


@pytest.mark.vectors
def test_endorsement_fields_are_reported_with_both_values(snp_dir: Path) -> None:
    report = (snp_dir / "deps_verifier_test_data_snp_test-report.bin").read_bytes()
    vcek = (snp_dir / "deps_verifier_test_data_snp_test-vcek.der").read_bytes()
    log = CheckLog()
    claims = verify_snp_report(report, [vcek], now=NOW, checks=log)
    compared = claims.raw["endorsement"]
    fields = [item["field"] for item in compared]
    assert fields == [
        "signing_key",
        "product",
        "reported_tcb.bootloader",
        "reported_tcb.tee",
        "reported_tcb.snp",
        "reported_tcb.microcode",
        "chip_id",
    ]
    for item in compared:
        assert item["equal"] is True
        assert item["report"] == item["certificate"] or item["field"] == "product"
    tcb = {i["field"].split(".")[1]: i["report"] for i in compared if "." in i["field"]}
    assert tcb == {k: claims.svns[k] for k in ("bootloader", "tee", "snp", "microcode")}
    detail = next(c.detail for c in log.checks if c.name == "endorsement")
    assert detail.startswith("report = certificate: signing_key VCEK = VCEK, product Milan = ")
    assert f"snp {tcb['snp']} = {tcb['snp']}" in detail
    assert detail.endswith("hwID = CHIP_ID")


@pytest.mark.vectors
def test_hcl_report_takes_crls_too(snp_dir: Path, amd: FakeAmd) -> None:
    hcl = (snp_dir / "deps_verifier_test_data_az-snp-vtpm_hcl-report.bin").read_bytes()
    vcek = (snp_dir / "deps_verifier_test_data_az-snp-vtpm_vcek.pem").read_bytes()
    log = CheckLog()
    claims = verify_azure_hcl_report(
        hcl, [vcek], now=datetime(2025, 6, 1, tzinfo=UTC), crls=[amd.crl([])], checks=log
    )
    assert {n.name for n in log.not_checked} == {"revocation"}  # the fake ARK's CRL: not this chain
    assert [item["field"] for item in claims.raw["endorsement"]][:2] == ["signing_key", "product"]


def test_the_claims_hold_until_the_first_certificate_or_fresh_crl_ends(amd: FakeAmd) -> None:
    # What an EAR's exp is capped by: the chain's first notAfter, then the fresh CRLs'.
    ends = min(c.not_valid_after_utc for c in (amd.ark, amd.ask))
    without = _verify(amd, [])
    assert without.valid_until is not None
    assert without.valid_until <= ends
    soon = NOW + timedelta(days=2)
    claims = _verify(amd, [amd.crl([], last_update=NOW - timedelta(days=1), next_update=soon)])
    assert claims.valid_until == soon
    # a stale CRL that was allowed speaks for no time: the chain's end stands
    stale = amd.crl([], last_update=NOW - timedelta(days=9), next_update=NOW - timedelta(days=1))
    assert _verify(amd, [stale], allow_stale=True).valid_until == without.valid_until
