"""Signed firmware bundles: a Caliptra-style manifest, build, sign, verify, and publication.

A bundle is a manifest (preamble with vendor key descriptors, active keys and signatures; a
signed header with SVN, validity dates and the TOC digest; TOC entries) followed by its
components (FMC, runtime, and any more). ``build_bundle`` lays one out, ``sign_bundle`` signs
its header with ECDSA P-384 and ML-DSA-87 or LMS, and ``verify_bundle`` is the decision the
root of trust takes at boot. ``publish_bundle`` registers the manifest digest and the
reference values (a CoRIM) with a transparency service. The byte layout is in
``docs/firmware.md``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.firmware._build import Component, build_bundle, sign_bundle
    from ironroot.firmware._keys import key_descriptor_hash
    from ironroot.firmware._leaves import (
        LMS_LEAVES_HEADER,
        LmsLeaf,
        LmsLeafReuse,
        LoggedLmsLeaf,
        check_lms_leaf_reuse,
        lms_leaves,
    )
    from ironroot.firmware._logged import (
        entry_lms_leaves,
        find_lms_leaf_reuse,
        logged_lms_leaves,
        verify_logged_statement,
    )
    from ironroot.firmware._manifest import (
        DEFAULT_LIMITS,
        FMC_ID,
        LAYOUT,
        MANIFEST_MARKER,
        MANIFEST_VERSION,
        MAX_ECC_KEYS,
        MAX_PQC_KEYS,
        MAX_SVN,
        RUNTIME_ID,
        FirmwareBundle,
        FirmwareLimits,
        KeyDescriptor,
        Manifest,
        ManifestHeader,
        PqcKeyType,
        Preamble,
        TocEntry,
        UnsignedBundle,
        field_offsets,
    )
    from ironroot.firmware._publish import PublishedFirmware, publish_bundle, write_published
    from ironroot.firmware._reference import (
        MANIFEST_CONTENT_TYPE,
        manifest_statement,
        reference_corim,
        reference_statement,
    )
    from ironroot.firmware._verify import (
        BundlePolicy,
        CheckResult,
        Measurement,
        VerificationReport,
        VerifiedComponent,
        VerifiedManifest,
        check_bundle,
        verify_bundle,
    )

__all__ = [
    "DEFAULT_LIMITS",
    "FMC_ID",
    "LAYOUT",
    "LMS_LEAVES_HEADER",
    "MANIFEST_CONTENT_TYPE",
    "MANIFEST_MARKER",
    "MANIFEST_VERSION",
    "MAX_ECC_KEYS",
    "MAX_PQC_KEYS",
    "MAX_SVN",
    "RUNTIME_ID",
    "BundlePolicy",
    "CheckResult",
    "Component",
    "FirmwareBundle",
    "FirmwareLimits",
    "KeyDescriptor",
    "LmsLeaf",
    "LmsLeafReuse",
    "LoggedLmsLeaf",
    "Manifest",
    "ManifestHeader",
    "Measurement",
    "PqcKeyType",
    "Preamble",
    "PublishedFirmware",
    "TocEntry",
    "UnsignedBundle",
    "VerificationReport",
    "VerifiedComponent",
    "VerifiedManifest",
    "build_bundle",
    "check_bundle",
    "check_lms_leaf_reuse",
    "entry_lms_leaves",
    "field_offsets",
    "find_lms_leaf_reuse",
    "key_descriptor_hash",
    "lms_leaves",
    "logged_lms_leaves",
    "manifest_statement",
    "publish_bundle",
    "reference_corim",
    "reference_statement",
    "sign_bundle",
    "verify_bundle",
    "verify_logged_statement",
    "write_published",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
