"""OCP SAFE Short Form Reports: the report model, JWS/JWT and CoRIM/COSE signing and
verification against review-provider keys, publication on the transparency service, and the
query "which reviews cover this firmware, and what do they leave open?".

The core is pure (bytes and values in, values out or a typed :mod:`ironroot.errors` exception);
reading key folders is the only I/O (:meth:`ProviderKeys.load`).
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.safe._corim import (
        SFR_PROFILE_OID,
        build_sfr_corim,
        corim_dropped_fields,
        parse_sfr_corim,
    )
    from ironroot.safe._jws import ACCEPTED_JWS_ALGORITHMS, CompactJws, parse_compact_jws
    from ironroot.safe._keys import ProviderKey, ProviderKeys, provider_names
    from ironroot.safe._model import (
        DEFAULT_SAFE_LIMITS,
        Audit,
        Device,
        Issue,
        ManifestEntry,
        SafeLimits,
        ShortFormReport,
        cvss_base_score,
        parse_report_json,
    )
    from ironroot.safe._query import (
        Review,
        firmware_subject,
        has_issue_at_or_above,
        max_open_cvss,
        parse_firmware_hash,
        review_from_statement,
        reviews_for,
        sfr_statement,
    )
    from ironroot.safe._verify import (
        CLOCK_SKEW,
        SFR_COSE_CONTENT_TYPE,
        SFR_JWS_CONTENT_TYPE,
        ReportFormat,
        UnverifiedReport,
        VerifiedReport,
        inspect_report,
        report_format,
        sign_report,
        verify_report,
    )

__all__ = [
    "ACCEPTED_JWS_ALGORITHMS",
    "CLOCK_SKEW",
    "DEFAULT_SAFE_LIMITS",
    "SFR_COSE_CONTENT_TYPE",
    "SFR_JWS_CONTENT_TYPE",
    "SFR_PROFILE_OID",
    "Audit",
    "CompactJws",
    "Device",
    "Issue",
    "ManifestEntry",
    "ProviderKey",
    "ProviderKeys",
    "ReportFormat",
    "Review",
    "SafeLimits",
    "ShortFormReport",
    "UnverifiedReport",
    "VerifiedReport",
    "build_sfr_corim",
    "corim_dropped_fields",
    "cvss_base_score",
    "firmware_subject",
    "has_issue_at_or_above",
    "inspect_report",
    "max_open_cvss",
    "parse_compact_jws",
    "parse_firmware_hash",
    "parse_report_json",
    "parse_sfr_corim",
    "provider_names",
    "report_format",
    "review_from_statement",
    "reviews_for",
    "sfr_statement",
    "sign_report",
    "verify_report",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
