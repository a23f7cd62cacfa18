"""Hardware attestation evidence: AMD SEV-SNP reports and Intel TDX quotes, verified into claims.

Pure functions of bytes, certificates and ``now``: :func:`verify_snp_report`,
:func:`verify_azure_hcl_report` and :func:`verify_tdx_quote` return an :class:`EvidenceClaims`
or raise a typed error from :mod:`ironroot.errors`; :func:`verify_evidence` picks the format
from the :data:`EVIDENCE_FORMATS` table. The AMD and Intel roots are built in and pinned.
"""

from ironroot.attestation.evidence._certs import load_certificates
from ironroot.attestation.evidence._claims import EvidenceClaims
from ironroot.attestation.evidence._formats import (
    EVIDENCE_FORMATS,
    EvidenceFormat,
    VerifyOptions,
    decode_evidence,
    detect_format,
    verify_evidence,
)
from ironroot.attestation.evidence._roots import (
    AMD_ROOT_FINGERPRINTS,
    INTEL_SGX_ROOT_FINGERPRINT,
    SnpTrustAnchor,
    builtin_intel_root,
    builtin_snp_anchors,
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
    parse_azure_hcl_report,
    verify_azure_hcl_report,
    verify_snp_chain,
    verify_snp_report,
    verify_snp_signature,
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
from ironroot.attestation.evidence._tdx_verify import (
    PckExtensions,
    TdxChainCache,
    load_crls,
    parse_pck_extensions,
    verify_tdx_quote,
)

__all__ = [
    "AMD_ROOT_FINGERPRINTS",
    "EVIDENCE_FORMATS",
    "INTEL_SGX_ROOT_FINGERPRINT",
    "SNP_REPORT_SIZE",
    "AzureHclReport",
    "EvidenceClaims",
    "EvidenceFormat",
    "PckExtensions",
    "SgxReportBody",
    "SnpChainCache",
    "SnpPlatformInfo",
    "SnpPolicy",
    "SnpProduct",
    "SnpReport",
    "SnpSigningKey",
    "SnpTrustAnchor",
    "TcbVersion",
    "TdAttributes",
    "TdxChainCache",
    "TdxQuote",
    "TdxQuoteHeader",
    "TdxReportBody",
    "VerifyOptions",
    "builtin_intel_root",
    "builtin_snp_anchors",
    "check_snp_endorsement",
    "decode_evidence",
    "detect_format",
    "load_certificates",
    "load_crls",
    "parse_azure_hcl_report",
    "parse_pck_extensions",
    "parse_snp_report",
    "parse_tdx_quote",
    "split_tdx_quote",
    "verify_azure_hcl_report",
    "verify_evidence",
    "verify_snp_chain",
    "verify_snp_report",
    "verify_snp_signature",
    "verify_tdx_quote",
]
