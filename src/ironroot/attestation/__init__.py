"""The attestation verifier (RFC 9334 Verifier role): evidence, endorsements, appraisal, results.

:mod:`ironroot.attestation.evidence` turns evidence of every format (the one table,
:data:`EVIDENCE_FORMATS`: RoT quotes, SPDM, SEV-SNP, Azure HCL, TDX) into
:class:`EvidenceClaims`. :class:`Endorsements`
holds the reference values (CoRIM, and NVIDIA's GPU RIMs: :mod:`ironroot.rim`) and SAFE
reviews found on the transparency log; :func:`appraise`
(pure) applies an :class:`AppraisalPolicy` (CEL) and returns an EAR
(:class:`AttestationResult`), signed as a JWT or CWT by :func:`sign_ear_jwt` /
:func:`sign_ear_cwt` and checked by :func:`verify_ear`. :class:`AttestationService` and
:func:`attestation_routes` serve it over HTTP. :func:`read_tdx_collateral` and :func:`read_crls`
read collateral (Intel's TDX TCB Info and QE Identity, CRLs) from files.
"""

# --- appraisal, endorsements, results and the HTTP API -----------------------------------------
from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.attestation._appraise import (
        DEFAULT_VERIFIER_ID,
        VERIFICATION_FAILURES,
        appraise,
        appraise_evidence,
        appraise_failure,
    )
    from ironroot.attestation._collateral_files import (
        COLLATERAL_FILES,
        CollateralFiles,
        read_crls,
        read_tdx_collateral,
        stale_at,
    )
    from ironroot.attestation._composite import (
        COMPOSITE_NONCE_CONTEXT,
        GPU_NONCE_CONTEXT,
        MAX_GPUS,
        GpuReport,
        GpuRimCache,
        appraise_composite,
        composite_nonce,
        gpu_nonce,
    )
    from ironroot.attestation._config import (
        AttestationConfig,
        init_attestation_dir,
        load_attestation_config,
    )
    from ironroot.attestation._endorsements import (
        Endorsements,
        ReferencePublisher,
        ReferenceValue,
        ReferenceValues,
        publishers_of_release,
        reference_values_from_statement,
        reviews_from_statements,
        rim_from_statement,
    )
    from ironroot.attestation._gpu_rims import appraise_gpu_rims
    from ironroot.attestation._http import (
        AttestationService,
        attestation_routes,
        create_attestation_app,
    )
    from ironroot.attestation._policy import (
        DEFAULT_POLICY,
        AppraisalPolicy,
        PolicyRule,
        RuleFailure,
    )
    from ironroot.attestation._releases import common_releases
    from ironroot.attestation.evidence import (
        EVIDENCE_FORMATS,
        ROT_QUOTE_FORMAT,
        SPDM_FORMAT,
        CheckLog,
        EvidenceCaches,
        EvidenceClaims,
        EvidenceFormat,
        RotChainCache,
        TdxCollateral,
        VerifyOptions,
        detect_format,
        parse_evidence,
        quote_claims,
        spdm_claims,
        verify_evidence,
        verify_rot_quote,
        verify_spdm,
    )
    from ironroot.ear import (
        AR4SI,
        CWT_MEDIA_TYPE,
        EAR_PROFILE,
        JWT_MEDIA_TYPE,
        NONCE_SIZE,
        TRUST_CATEGORIES,
        TRUST_CLAIM_TAGS,
        Appraisal,
        AttestationResult,
        ChallengeLimits,
        NonceStore,
        TrustTier,
        VerifierId,
        decode_ear,
        sign_ear_cwt,
        sign_ear_jwt,
        tier_of,
        verify_ear,
    )

__all__ = [
    "EVIDENCE_FORMATS",
    "CheckLog",
    "EvidenceClaims",
    "EvidenceFormat",
    "VerifyOptions",
    "detect_format",
    "parse_evidence",
    "verify_evidence",
]
__all__ += [
    "AR4SI",
    "COLLATERAL_FILES",
    "COMPOSITE_NONCE_CONTEXT",
    "CWT_MEDIA_TYPE",
    "DEFAULT_POLICY",
    "DEFAULT_VERIFIER_ID",
    "EAR_PROFILE",
    "GPU_NONCE_CONTEXT",
    "JWT_MEDIA_TYPE",
    "MAX_GPUS",
    "NONCE_SIZE",
    "ROT_QUOTE_FORMAT",
    "SPDM_FORMAT",
    "TRUST_CATEGORIES",
    "TRUST_CLAIM_TAGS",
    "VERIFICATION_FAILURES",
    "Appraisal",
    "AppraisalPolicy",
    "AttestationConfig",
    "AttestationResult",
    "AttestationService",
    "ChallengeLimits",
    "CollateralFiles",
    "Endorsements",
    "EvidenceCaches",
    "GpuReport",
    "GpuRimCache",
    "NonceStore",
    "PolicyRule",
    "ReferencePublisher",
    "ReferenceValue",
    "ReferenceValues",
    "RotChainCache",
    "RuleFailure",
    "TdxCollateral",
    "TrustTier",
    "VerifierId",
    "appraise",
    "appraise_composite",
    "appraise_evidence",
    "appraise_failure",
    "appraise_gpu_rims",
    "attestation_routes",
    "common_releases",
    "composite_nonce",
    "create_attestation_app",
    "decode_ear",
    "gpu_nonce",
    "init_attestation_dir",
    "load_attestation_config",
    "publishers_of_release",
    "quote_claims",
    "read_crls",
    "read_tdx_collateral",
    "reference_values_from_statement",
    "reviews_from_statements",
    "rim_from_statement",
    "sign_ear_cwt",
    "sign_ear_jwt",
    "spdm_claims",
    "stale_at",
    "tier_of",
    "verify_ear",
    "verify_rot_quote",
    "verify_spdm",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
