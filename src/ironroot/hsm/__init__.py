"""The integrated HSM: the key boundary of Ironroot.

:class:`Hsm` is the built-in boundary (roles, keys generated inside, sign/verify, AES-256-GCM,
wrap/unwrap, HKDF derive, key attestation, self-tests, tamper response, sealed persistence and a
hash-chained audit log). :class:`KeyBackend` is the narrow protocol that both it
(:class:`BuiltinBackend`) and a PKCS#11 token (:class:`Pkcs11Backend`) implement, and
:class:`HsmSigner` is a :class:`~ironroot.crypto.Signer` over either. The wrap formats are pure
functions so the receiving side (a TEE, another HSM) can unwrap with the same code.
See ``docs/hsm.md``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.hsm._approvals import Approval
    from ironroot.hsm._attest import (
        ATTESTATION_CONTENT_TYPE,
        AttestationChain,
        KeyAttestation,
        verify_attestation_chain,
        verify_key_attestation,
    )
    from ironroot.hsm._audit import (
        CHECKPOINT_CONTENT_TYPE,
        MAX_AUDIT_FILE,
        AuditCheckpoint,
        AuditRecord,
        AuditSpan,
        ReleaseBinding,
        format_audit_log,
        parse_audit_log,
        parse_segment_name,
        release_records,
        verify_audit,
        verify_audit_checkpoint,
        verify_audit_segments,
    )
    from ironroot.hsm._audit_check import AuditReport, check_sealed_audit
    from ironroot.hsm._backend import BuiltinBackend, HsmSigner, KeyBackend
    from ironroot.hsm._binding import (
        NONCE_SIZE,
        REPORT_DATA_SIZE,
        WRAPPING_KEY_KINDS,
        WrappingKey,
        bind_report_data,
        check_binding,
        check_composite_binding,
    )
    from ironroot.hsm._boundary import Hsm
    from ironroot.hsm._material import check_wrapped_material
    from ironroot.hsm._model import (
        MAX_QUORUM,
        DeviceIdentity,
        HsmConfig,
        KeyAttributes,
        KeyInfo,
        KeyType,
        Role,
        Session,
        Usage,
    )
    from ironroot.hsm._pkcs11 import Pkcs11Backend
    from ironroot.hsm._release import RELEASE_STATUSES, TrustedVerifier, authorize_release
    from ironroot.hsm._release_policy import (
        CEL_VARIABLES,
        AzureReleasePolicy,
        CelReleasePolicy,
        PolicyCache,
        ReleaseContext,
        ReleasePolicy,
        driver_number,
        parse_release_policy,
        release_claims,
    )
    from ironroot.hsm._release_statement import (
        RELEASE_STATEMENT_CONTENT_TYPE,
        HsmRelease,
        ReleaseStatement,
        open_release_statement,
        verify_release_statement,
    )
    from ironroot.hsm._selftest import DEFAULT_KATS, Kat
    from ironroot.hsm._service_keys import ServiceKeys, ServiceKeysConfig
    from ironroot.hsm._state import OwedRefusals
    from ironroot.hsm._storage import DirectoryStorage, HsmStorage, MemoryStorage, seal, unseal
    from ironroot.hsm._wrap import (
        unwrap_key_kem,
        unwrap_key_rsa_aes,
        wrap_key_kem,
        wrap_key_rsa_aes,
    )

__all__ = [
    "ATTESTATION_CONTENT_TYPE",
    "CEL_VARIABLES",
    "CHECKPOINT_CONTENT_TYPE",
    "DEFAULT_KATS",
    "MAX_AUDIT_FILE",
    "MAX_QUORUM",
    "NONCE_SIZE",
    "RELEASE_STATEMENT_CONTENT_TYPE",
    "RELEASE_STATUSES",
    "REPORT_DATA_SIZE",
    "WRAPPING_KEY_KINDS",
    "Approval",
    "AttestationChain",
    "AuditCheckpoint",
    "AuditRecord",
    "AuditReport",
    "AuditSpan",
    "AzureReleasePolicy",
    "BuiltinBackend",
    "CelReleasePolicy",
    "DeviceIdentity",
    "DirectoryStorage",
    "Hsm",
    "HsmConfig",
    "HsmRelease",
    "HsmSigner",
    "HsmStorage",
    "Kat",
    "KeyAttestation",
    "KeyAttributes",
    "KeyBackend",
    "KeyInfo",
    "KeyType",
    "MemoryStorage",
    "OwedRefusals",
    "Pkcs11Backend",
    "PolicyCache",
    "ReleaseBinding",
    "ReleaseContext",
    "ReleasePolicy",
    "ReleaseStatement",
    "Role",
    "ServiceKeys",
    "ServiceKeysConfig",
    "Session",
    "TrustedVerifier",
    "Usage",
    "WrappingKey",
    "authorize_release",
    "bind_report_data",
    "check_binding",
    "check_composite_binding",
    "check_sealed_audit",
    "check_wrapped_material",
    "driver_number",
    "format_audit_log",
    "open_release_statement",
    "parse_audit_log",
    "parse_release_policy",
    "parse_segment_name",
    "release_claims",
    "release_records",
    "unwrap_key_kem",
    "unwrap_key_rsa_aes",
    "verify_attestation_chain",
    "verify_audit",
    "verify_audit_checkpoint",
    "verify_audit_segments",
    "verify_key_attestation",
    "verify_release_statement",
    "wrap_key_kem",
    "wrap_key_rsa_aes",
]
__all__ += ["seal", "unseal"]  # the sealed-store format, for other data sealed to a RoT

__getattr__, __dir__ = lazy_package(__name__, __file__)
