"""Attestation evidence of every format, verified into one claims model.

Pure functions of bytes, certificates and ``now``: :func:`verify_snp_report`,
:func:`verify_azure_hcl_report`, :func:`verify_tdx_quote`, :func:`verify_rot_quote` (this
project's RoT quotes), :func:`verify_spdm` (recorded SPDM sessions) and
:func:`verify_nvidia_gpu` (NVIDIA GPU reports, typed as :class:`GpuEvidence`) return an
:class:`EvidenceClaims` or raise a typed error from :mod:`ironroot.errors`.
:data:`EVIDENCE_FORMATS` is the one table of formats (detection, parsing, verification, nonce
binding, pinned roots, default policy, cache); :func:`verify_evidence` goes through it and
records every check that ran (:class:`CheckLog`). The AMD, Intel and NVIDIA roots are built
in and pinned. Intel's TDX collateral (:class:`TdxCollateral`: TCB Info, QE Identity, CRLs)
gives a TDX quote its TCB status; CRLs and collateral past their ``nextUpdate`` are refused
(``CollateralExpired``) unless the caller allows stale collateral.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.attestation.evidence._certs import load_certificates
    from ironroot.attestation.evidence._claims import Check, CheckLog, EvidenceClaims, NotChecked
    from ironroot.attestation.evidence._formats import (
        EVIDENCE_FORMATS,
        EvidenceCaches,
        EvidenceFormat,
        FormatPolicy,
        NonceBinding,
        PinnedRoot,
        VerifyOptions,
        check_binding,
        decode_evidence,
        detect_format,
        format_row,
        parse_evidence,
        verify_evidence,
    )
    from ironroot.attestation.evidence._nvidia import (
        NVIDIA_GPU_FORMAT,
        NVIDIA_OPAQUE_TYPES,
        GpuChainCache,
        GpuEvidence,
        GpuOpaqueField,
        VerifiedGpuChain,
        device_id_extension,
        gpu_claims,
        parse_nvidia_gpu,
        parse_nvidia_opaque_data,
        verify_gpu_chain,
        verify_nvidia_gpu,
    )
    from ironroot.attestation.evidence._revocation import StaleCollateral
    from ironroot.attestation.evidence._roots import (
        AMD_ROOT_FINGERPRINTS,
        INTEL_SGX_ROOT_FINGERPRINT,
        NVIDIA_DEVICE_ROOT_FINGERPRINT,
        SnpTrustAnchor,
        builtin_intel_root,
        builtin_nvidia_root,
        builtin_snp_anchors,
    )
    from ironroot.attestation.evidence._rot import (
        ROT_QUOTE_FORMAT,
        RotChainCache,
        parse_rot_quote,
        quote_claims,
        verify_rot_quote,
    )
    from ironroot.attestation.evidence._snp import (
        SNP_REPORT_SIZE,
        SnpPlatformInfo,
        SnpPolicy,
        SnpProduct,
        SnpReport,
        SnpSigningKey,
        TcbVersion,
        parse_snp_report,
    )
    from ironroot.attestation.evidence._snp_verify import (
        AzureHclReport,
        SnpChainCache,
        check_snp_endorsement,
        compare_snp_endorsement,
        parse_azure_hcl_report,
        verify_azure_hcl_report,
        verify_snp_chain,
        verify_snp_report,
        verify_snp_signature,
    )
    from ironroot.attestation.evidence._spdm import (
        SPDM_FORMAT,
        parse_spdm_record,
        spdm_claims,
        verify_spdm,
    )
    from ironroot.attestation.evidence._tdx import (
        SgxReportBody,
        TdAttributes,
        TdxQuote,
        TdxQuoteHeader,
        TdxReportBody,
        parse_tdx_quote,
        split_tdx_quote,
    )
    from ironroot.attestation.evidence._tdx_collateral import (
        TCB_STATUSES,
        QeIdentity,
        QeTcb,
        TcbInfo,
        TdxCollateral,
        TdxTcbStatus,
        check_qe_identity,
        evaluate_tdx_tcb,
        parse_qe_identity,
        parse_tcb_info,
    )
    from ironroot.attestation.evidence._tdx_verify import (
        PckExtensions,
        TdxChainCache,
        load_crls,
        load_tdx_collateral,
        parse_pck_extensions,
        verify_tdx_quote,
    )

__all__ = [
    "AMD_ROOT_FINGERPRINTS",
    "EVIDENCE_FORMATS",
    "INTEL_SGX_ROOT_FINGERPRINT",
    "NVIDIA_DEVICE_ROOT_FINGERPRINT",
    "NVIDIA_GPU_FORMAT",
    "NVIDIA_OPAQUE_TYPES",
    "ROT_QUOTE_FORMAT",
    "SNP_REPORT_SIZE",
    "SPDM_FORMAT",
    "TCB_STATUSES",
    "AzureHclReport",
    "Check",
    "CheckLog",
    "EvidenceCaches",
    "EvidenceClaims",
    "EvidenceFormat",
    "FormatPolicy",
    "GpuChainCache",
    "GpuEvidence",
    "GpuOpaqueField",
    "NonceBinding",
    "NotChecked",
    "PckExtensions",
    "PinnedRoot",
    "QeIdentity",
    "QeTcb",
    "RotChainCache",
    "SgxReportBody",
    "SnpChainCache",
    "SnpPlatformInfo",
    "SnpPolicy",
    "SnpProduct",
    "SnpReport",
    "SnpSigningKey",
    "SnpTrustAnchor",
    "StaleCollateral",
    "TcbInfo",
    "TcbVersion",
    "TdAttributes",
    "TdxChainCache",
    "TdxCollateral",
    "TdxQuote",
    "TdxQuoteHeader",
    "TdxReportBody",
    "TdxTcbStatus",
    "VerifiedGpuChain",
    "VerifyOptions",
    "builtin_intel_root",
    "builtin_nvidia_root",
    "builtin_snp_anchors",
    "check_binding",
    "check_qe_identity",
    "check_snp_endorsement",
    "compare_snp_endorsement",
    "decode_evidence",
    "detect_format",
    "device_id_extension",
    "evaluate_tdx_tcb",
    "format_row",
    "gpu_claims",
    "load_certificates",
    "load_crls",
    "load_tdx_collateral",
    "parse_azure_hcl_report",
    "parse_evidence",
    "parse_nvidia_gpu",
    "parse_nvidia_opaque_data",
    "parse_pck_extensions",
    "parse_qe_identity",
    "parse_rot_quote",
    "parse_snp_report",
    "parse_spdm_record",
    "parse_tcb_info",
    "parse_tdx_quote",
    "quote_claims",
    "spdm_claims",
    "split_tdx_quote",
    "verify_azure_hcl_report",
    "verify_evidence",
    "verify_gpu_chain",
    "verify_nvidia_gpu",
    "verify_rot_quote",
    "verify_snp_chain",
    "verify_snp_report",
    "verify_snp_signature",
    "verify_spdm",
    "verify_tdx_quote",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
