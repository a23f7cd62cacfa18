"""Appraising real AMD SEV-SNP reports and Intel TDX quotes (the shared vectors) against
reference values and SAFE reviews logged on the transparency service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _ar_helpers import PROVIDER, SAFE_ISS, VENDOR_ISS, World, flip, sfr_json

from ironroot.attestation import (
    AR4SI,
    DEFAULT_POLICY,
    Appraisal,
    AppraisalPolicy,
    Endorsements,
    TrustTier,
    VerifyOptions,
    appraise_evidence,
    verify_evidence,
)
from ironroot.corim import (
    CORIM_CONTENT_TYPE,
    HASH_ALG_SHA384,
    ClassMap,
    Comid,
    Corim,
    Digest,
    Environment,
    Measurement,
    MeasurementValues,
    Svn,
    TagIdentity,
    Triple,
    Triples,
)
from ironroot.cose import create_statement
from ironroot.errors import ConfigError
from ironroot.safe import sfr_statement, sign_report

SNP_NOW = datetime(2025, 6, 1, tzinfo=UTC)
TDX_NOW = datetime(2026, 11, 28, tzinfo=UTC)
SNP_REPORT = "deps_verifier_test_data_snp_test-report.bin"
SNP_VCEK = "deps_verifier_test_data_snp_test-vcek.der"
VLEK_REPORT = "deps_verifier_test_data_snp_test-vlek-report.bin"
VLEK = "deps_verifier_test_data_snp_test-vlek.der"
TDX_QUOTE = "deps_verifier_test_data_tdx_quote_4.dat"


def _corim(model: str, mkey: str, digest: bytes, svn: int | None) -> bytes:
    values = MeasurementValues(
        svn=Svn(svn, minimum=True) if svn is not None else None,
        digests=(Digest(HASH_ALG_SHA384, digest),),
    )
    comid = Comid(
        # one tag per release: one tag-id stated two ways would match nothing
        tag_identity=TagIdentity(uuid.uuid5(uuid.NAMESPACE_URL, f"{model}{mkey}{svn}").bytes),
        triples=Triples(
            reference=(
                Triple(
                    Environment(ClassMap(vendor=VENDOR_ISS, model=model)),
                    (Measurement(values, mkey=mkey),),
                ),
            )
        ),
    )
    return Corim(id=uuid.uuid4().bytes, tags=(comid,)).encode()


def _publish(
    world: World, model: str, mkey: str, digest: bytes, svn: int | None, review: bool = True
) -> tuple[bytes, list[bytes]]:
    statement = create_statement(
        world.vendor_key,
        _corim(model, mkey, digest, svn),
        iss=VENDOR_ISS,
        sub=model,
        content_type=CORIM_CONTENT_TYPE,
    )
    reference = world.client.register(statement).transparent_statement
    reviews = []
    if review:
        sfr = sign_report(sfr_json(digest), world.provider_key, PROVIDER)
        sfr_st = sfr_statement(sfr, world.safe_key, iss=SAFE_ISS)
        reviews.append(world.client.register(sfr_st).transparent_statement)
    return reference, reviews


def _endorsements(world: World, reference: bytes, reviews: list[bytes]) -> Endorsements:
    return Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[reference],
        review_statements=reviews,
        providers=world.providers,
        publishers=world.publishers,
    )


@pytest.fixture(scope="module")
def snp(vectors: Path) -> tuple[bytes, bytes]:
    folder = vectors / "tee" / "snp"
    return (folder / SNP_REPORT).read_bytes(), (folder / SNP_VCEK).read_bytes()


def test_snp_report_with_logged_measurement_is_affirming(
    world: World, snp: tuple[bytes, bytes]
) -> None:
    report, vcek = snp
    claims = verify_evidence(report, VerifyOptions(now=SNP_NOW, certificates=(vcek,)))
    reference, reviews = _publish(
        world, "snp-guest", "measurement", claims.measurements["measurement"], 4
    )
    result = appraise_evidence(
        report,
        _endorsements(world, reference, reviews),
        nonce=claims.report_data,
        now=SNP_NOW,
        certificates=[vcek],
    )
    appraisal = result.submods["snp"]
    assert result.status is TrustTier.AFFIRMING, appraisal.reasons
    assert dict(appraisal.trust_vector) == {
        "instance-identity": AR4SI.TRUSTWORTHY_INSTANCE,
        "configuration": AR4SI.APPROVED_CONFIG,
        "executables": AR4SI.APPROVED_BOOT,
        "hardware": AR4SI.GENUINE_HARDWARE,
        "runtime-opaque": AR4SI.ENCRYPTED_MEMORY,
    }
    # guest SVN 4 under a logged minimum of 5: contraindicated
    reference5, _ = _publish(
        world, "snp-guest", "measurement", claims.measurements["measurement"], 5, review=False
    )
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[reference, reference5],
        review_statements=reviews,
        providers=world.providers,
        publishers=world.publishers,
    )
    result = appraise_evidence(
        report, endorsements, nonce=claims.report_data, now=SNP_NOW, certificates=[vcek]
    )
    assert result.status is TrustTier.CONTRAINDICATED
    assert result.submods["snp"].trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME
    assert result.submods["snp"].reasons == ("svn: SVN 4 is below the logged minimum 5",)


def test_snp_answering_another_nonce_is_refused_at_verification(
    snp: tuple[bytes, bytes],
) -> None:
    report, vcek = snp
    result = appraise_evidence(
        report, Endorsements(), nonce=b"another nonce!!!", now=SNP_NOW, certificates=[vcek]
    )
    appraisal = result.submods["snp"]
    assert result.status is TrustTier.CONTRAINDICATED
    # a stale nonce affirms nothing: the only claim is the untrustworthy instance
    assert dict(appraisal.trust_vector) == {"instance-identity": AR4SI.UNTRUSTWORTHY_INSTANCE}
    assert appraisal.reasons[0].startswith("evidence: nonce-mismatch: ")


def test_snp_without_references(snp: tuple[bytes, bytes]) -> None:
    report, vcek = snp
    claims = verify_evidence(report, VerifyOptions(now=SNP_NOW, certificates=(vcek,)))
    result = appraise_evidence(
        report, Endorsements(), nonce=claims.report_data, now=SNP_NOW, certificates=[vcek]
    )
    appraisal = result.submods["snp"]
    assert appraisal.trust_vector["instance-identity"] == AR4SI.TRUSTWORTHY_INSTANCE
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    assert [r.split(":")[0] for r in appraisal.reasons] == ["reference-values", "safe-review"]
    checks = [c["name"] for c in appraisal.evidence["checks"]]
    assert checks[-1] == "nonce"


def test_snp_flipped_bit_is_crypto_failure(snp: tuple[bytes, bytes]) -> None:
    report, vcek = snp
    for offset in (0x50, 0x90, 0x1A0, 0x2A0):  # policy, measurement, chip id, signature
        result = appraise_evidence(
            flip(report, offset), Endorsements(), nonce=None, now=SNP_NOW, certificates=[vcek]
        )
        appraisal = result.submods["snp"]
        assert result.status is TrustTier.CONTRAINDICATED
        assert dict(appraisal.trust_vector) == {"instance-identity": AR4SI.CRYPTO_VALIDATION_FAILED}


def test_snp_flipped_bit_in_vcek_is_untrusted(snp: tuple[bytes, bytes]) -> None:
    report, vcek = snp
    result = appraise_evidence(
        report, Endorsements(), nonce=None, now=SNP_NOW, certificates=[flip(vcek, len(vcek) - 3)]
    )
    assert result.status is TrustTier.CONTRAINDICATED
    assert result.submods["snp"].trust_vector["instance-identity"] in (
        AR4SI.CRYPTO_VALIDATION_FAILED,
        AR4SI.UNRECOGNIZED_INSTANCE,
    )


def test_snp_expired_vlek(vectors: Path) -> None:
    folder = vectors / "tee" / "snp"
    report, vlek = (folder / VLEK_REPORT).read_bytes(), (folder / VLEK).read_bytes()
    result = appraise_evidence(
        report,
        Endorsements(),
        nonce=None,
        now=datetime(2025, 12, 11, tzinfo=UTC),
        certificates=[vlek],
    )
    assert result.status is TrustTier.CONTRAINDICATED
    assert dict(result.submods["snp"].trust_vector) == {
        "instance-identity": AR4SI.UNTRUSTWORTHY_INSTANCE
    }


def test_snp_debug_policy_is_unsupportable(vectors: Path) -> None:
    folder = vectors / "tee" / "snp"
    report = (folder / "verify_testdata_attestation.bin").read_bytes()
    cert = (folder / "verify_testdata_vcek.testcer").read_bytes()
    claims = verify_evidence(report, VerifyOptions(now=SNP_NOW, certificates=(cert,)))
    result = appraise_evidence(
        report, Endorsements(), nonce=claims.report_data, now=SNP_NOW, certificates=[cert]
    )
    appraisal = result.submods["snp"]
    assert result.status is TrustTier.CONTRAINDICATED
    assert appraisal.trust_vector["configuration"] == AR4SI.UNSUPPORTABLE_CONFIG
    assert "debug: debug is enabled (unlocked) or not proven off" in appraisal.reasons


def test_snp_without_vcek_is_untrusted(snp: tuple[bytes, bytes]) -> None:
    report, _ = snp
    result = appraise_evidence(report, Endorsements(), nonce=None, now=SNP_NOW)
    assert dict(result.submods["snp"].trust_vector) == {
        "instance-identity": AR4SI.UNRECOGNIZED_INSTANCE
    }


def test_tdx_quote_debug_td_with_logged_mrtd(world: World, vectors: Path) -> None:
    quote = (vectors / "tee" / "tdx" / TDX_QUOTE).read_bytes()
    claims = verify_evidence(quote, VerifyOptions(now=TDX_NOW))
    reference, reviews = _publish(world, "td", "mrtd", claims.measurements["mrtd"], None)
    result = appraise_evidence(
        quote, _endorsements(world, reference, reviews), nonce=claims.report_data, now=TDX_NOW
    )
    appraisal = result.submods["tdx"]
    # the sample TD runs with TDATTRIBUTES.DEBUG: everything else is on the log
    assert result.status is TrustTier.CONTRAINDICATED
    assert dict(appraisal.trust_vector) == {
        "instance-identity": AR4SI.TRUSTWORTHY_INSTANCE,
        "configuration": AR4SI.UNSUPPORTABLE_CONFIG,
        "executables": AR4SI.APPROVED_BOOT,
        "hardware": AR4SI.GENUINE_HARDWARE,
        "runtime-opaque": AR4SI.ENCRYPTED_MEMORY,
    }
    assert appraisal.reasons == ("debug: debug is enabled (unlocked) or not proven off",)


def test_tdx_flipped_bit_is_crypto_failure(vectors: Path) -> None:
    quote = (vectors / "tee" / "tdx" / TDX_QUOTE).read_bytes()
    result = appraise_evidence(flip(quote, 0x100), Endorsements(), nonce=None, now=TDX_NOW)
    assert result.status is TrustTier.CONTRAINDICATED
    assert dict(result.submods["tdx"].trust_vector) == {
        "instance-identity": AR4SI.CRYPTO_VALIDATION_FAILED
    }


def test_unrecognised_evidence_is_unexpected() -> None:
    result = appraise_evidence(b"\x00" * 100, Endorsements(), nonce=None, now=TDX_NOW)
    assert result.status is TrustTier.NONE
    assert dict(result.submods["unknown"].trust_vector) == {
        "instance-identity": AR4SI.UNEXPECTED_EVIDENCE
    }


def test_snp_report_requested_below_vmpl0_is_not_trusted_by_default(vectors: Path) -> None:
    """Trustee's VLEK report was requested at VMPL 1: software below VMPL 0 chose its report
    data, so the default policy (VMPL 0 only) does not trust the instance; a policy for
    guests under an SVSM names the VMPLs it accepts (``snp_vmpls``)."""
    folder = vectors / "tee" / "snp"
    report, vlek = (folder / VLEK_REPORT).read_bytes(), (folder / VLEK).read_bytes()
    at = datetime(2025, 6, 1, tzinfo=UTC)  # the VLEK expired on 2025-12-10
    claims = verify_evidence(report, VerifyOptions(now=at, certificates=(vlek,)))
    assert claims.raw["vmpl"] == 1

    def appraisal(policy: AppraisalPolicy = DEFAULT_POLICY) -> Appraisal:
        result = appraise_evidence(
            report, Endorsements(), policy, nonce=claims.report_data, now=at, certificates=[vlek]
        )
        return result.submods["snp"]

    refused = appraisal()
    assert refused.status is TrustTier.CONTRAINDICATED
    assert refused.trust_vector["instance-identity"] == AR4SI.UNTRUSTWORTHY_INSTANCE
    assert (
        "vmpl: the SEV-SNP report was requested at VMPL 1, this policy accepts VMPL 0: "
        "less privileged guest software chose its report data"
    ) in refused.reasons
    svsm = AppraisalPolicy.from_toml('[policy]\nname = "svsm"\nsnp_vmpls = [0, 1]\n')
    accepted = appraisal(svsm)
    assert accepted.trust_vector["instance-identity"] == AR4SI.TRUSTWORTHY_INSTANCE
    assert not any(line.startswith("vmpl:") for line in accepted.reasons)


def test_snp_report_at_vmpl0_passes_the_vmpl_rule(snp: tuple[bytes, bytes]) -> None:
    report, vcek = snp
    claims = verify_evidence(report, VerifyOptions(now=SNP_NOW, certificates=(vcek,)))
    assert claims.raw["vmpl"] == 0
    result = appraise_evidence(
        report, Endorsements(), nonce=claims.report_data, now=SNP_NOW, certificates=[vcek]
    )
    assert not any(line.startswith("vmpl:") for line in result.submods["snp"].reasons)


@pytest.mark.parametrize("vmpls", [[], [4], [-1], ["0"], [True], 0])
def test_snp_vmpls_must_be_vmpls(vmpls: object) -> None:
    with pytest.raises(ConfigError, match="snp_vmpls must list"):
        AppraisalPolicy.from_mapping({"snp_vmpls": vmpls})
