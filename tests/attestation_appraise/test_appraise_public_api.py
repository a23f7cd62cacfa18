"""The appraisal half of ``ironroot.attestation``'s public surface, and its layering."""

from __future__ import annotations

import ironroot.attestation as attestation

APPRAISAL_NAMES = {
    "AR4SI",
    "CWT_MEDIA_TYPE",
    "DEFAULT_POLICY",
    "DEFAULT_VERIFIER_ID",
    "EAR_PROFILE",
    "JWT_MEDIA_TYPE",
    "NONCE_SIZE",
    "ROT_QUOTE_FORMAT",
    "TRUST_CATEGORIES",
    "TRUST_CLAIM_TAGS",
    "VERIFICATION_FAILURES",
    "Appraisal",
    "AppraisalPolicy",
    "AttestationConfig",
    "AttestationResult",
    "AttestationService",
    "Endorsements",
    "EvidenceCaches",
    "EvidenceFormat",
    "CheckLog",
    "NonceStore",
    "PolicyRule",
    "ReferencePublisher",
    "ReferenceValue",
    "ReferenceValues",
    "RotChainCache",
    "RuleFailure",
    "TrustTier",
    "VerifierId",
    "appraise",
    "appraise_evidence",
    "appraise_failure",
    "attestation_routes",
    "common_releases",
    "create_attestation_app",
    "decode_ear",
    "detect_format",
    "parse_evidence",
    "init_attestation_dir",
    "load_attestation_config",
    "quote_claims",
    "reference_values_from_statement",
    "reviews_from_statements",
    "sign_ear_cwt",
    "sign_ear_jwt",
    "tier_of",
    "verify_ear",
    "verify_evidence",
    "verify_rot_quote",
}


def test_appraisal_names_are_public_and_resolvable() -> None:
    assert set(attestation.__all__) >= APPRAISAL_NAMES
    assert len(attestation.__all__) == len(set(attestation.__all__))
    for name in attestation.__all__:
        assert not name.startswith("_")
        assert getattr(attestation, name) is not None
