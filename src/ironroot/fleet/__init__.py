"""The fleet: nodes of the platform layer, admitted to the control plane only on verified
evidence, scanned continuously, managed against a desired state on the log.

So far: :class:`Fleet` (a directory of nodes and the registry of their status),
:class:`NodeClass` (what a class of nodes is built from) and :class:`Scanner` (continuous
re-attestation, on a schedule and when the log changes); the desired state of a class as a
signed statement on the log with a two-person rule (:class:`DesiredState`,
:class:`DesiredStore`, :func:`verify_desired`), :func:`reconcile` (measured vs desired, per
node and item) and :func:`rollout` (waves through the receipt-gated update); admission (the
Azure Boost rule: :class:`AdmissionAuthority` admits a node only on an affirming EAR from
:class:`FleetVerifier` for fresh :class:`NodeEvidence` that binds its credential keys, and
issues short-lived credentials from the :class:`FleetCA`), :func:`quarantine` and
:func:`readmit`, and the mutual-TLS control- and data-plane APIs (:class:`FleetServers`). See
``docs/fleet.md``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.fleet._admission import (
        AdmissionAuthority,
        AdmissionRequest,
        AdmissionResult,
        attest_node,
        node_may_receive_keys,
        quarantine,
        readmit,
        scan_attest,
    )
    from ironroot.fleet._admission_state import ADMISSION_DIR, Placement, unusable_credentials
    from ironroot.fleet._api import (
        FleetServers,
        RolloutTrigger,
        admission_app,
        decode_nonce,
        desired_rollout,
        plane_app,
        serve_fleet,
        server_tls,
    )
    from ironroot.fleet._attestations import (
        StoredAttestation,
        latest_attestation,
        store_attestation,
        stored_attestation,
    )
    from ironroot.fleet._credentials import (
        DEFAULT_LIFETIME,
        FLEET_CREDENTIAL_OID,
        FLEET_OPERATOR_OID,
        OPERATOR_PREFIX,
        PLANES,
        Credential,
        CredentialStatus,
        CredentialStore,
        FleetCA,
        OperatorCredential,
        check_caller,
        check_credential,
        crl_revocations,
        csr_public_key,
        ear_id_of,
        make_csr,
        node_credential_key,
        node_tls_context,
        parse_credential,
        store_node_credentials,
        stored_credential_fault,
        verify_credential,
    )
    from ironroot.fleet._desired import (
        DESIRED_STATE_CONTENT_TYPE,
        AuthorizedSigner,
        DesiredState,
        DesiredStore,
        FirmwareTarget,
        FuseTarget,
        Governance,
        PfmTarget,
        RevokedSigner,
        VerifiedDesired,
        check_approvals,
        desired_subject,
        sign_desired,
        verify_desired,
    )
    from ironroot.fleet._evidence import (
        BINDING_LABEL,
        NODE_EVIDENCE_FORMAT,
        NodeEvidence,
        binding_key,
        collect_evidence,
        report_data,
    )
    from ironroot.fleet._fleet import STATUSES, Fleet, FleetEvent, NodeClass, NodeRecord
    from ironroot.fleet._governance import (
        GOVERNANCE_CHANGE_CONTENT_TYPE,
        GovernanceChange,
        VerifiedGovernanceChange,
        check_governance_change,
        governance_subject,
        sign_governance_change,
        verify_governance_change,
    )
    from ironroot.fleet._reconcile import (
        ClassDrift,
        DeviceReading,
        DriftItem,
        MeasuredImage,
        MeasuredState,
        NodeDrift,
        ReconcileReport,
        compare,
        compare_policies,
        measure_node,
        reconcile,
    )
    from ironroot.fleet._release_gate import FleetReleaseGate
    from ironroot.fleet._revocation import (
        CRL_CONTENT_TYPE,
        RevocationEvent,
        RevocationWatch,
        add_crl,
    )
    from ironroot.fleet._rollout import (
        ComponentUpdate,
        NodeRollout,
        ReleaseSet,
        RolloutReport,
        rollout,
    )
    from ironroot.fleet._scan import LogTriggers, Scanner, ScanReport, affected_classes
    from ironroot.fleet._verifier import (
        ClassEndorsements,
        FleetVerifier,
        NodeAppraisal,
        class_endorsements,
        device_policy,
        node_policy,
    )

__all__ = ["STATUSES", "Fleet", "FleetEvent", "NodeClass", "NodeRecord"]
__all__ += ["LogTriggers", "ScanReport", "Scanner", "affected_classes"]

# Desired state, reconcile and rollout (item 4 of issue 12).
__all__ += [
    "DESIRED_STATE_CONTENT_TYPE",
    "AuthorizedSigner",
    "ClassDrift",
    "ComponentUpdate",
    "DesiredState",
    "DesiredStore",
    "DeviceReading",
    "DriftItem",
    "FirmwareTarget",
    "FuseTarget",
    "Governance",
    "MeasuredImage",
    "MeasuredState",
    "NodeDrift",
    "NodeRollout",
    "PfmTarget",
    "ReconcileReport",
    "ReleaseSet",
    "RolloutReport",
    "VerifiedDesired",
    "check_approvals",
    "compare",
    "compare_policies",
    "desired_subject",
    "measure_node",
    "reconcile",
    "rollout",
    "sign_desired",
    "verify_desired",
]

# Admission, credentials, quarantine (item 2 of issue 12).
__all__ += [
    "ADMISSION_DIR",
    "BINDING_LABEL",
    "DEFAULT_LIFETIME",
    "FLEET_CREDENTIAL_OID",
    "FLEET_OPERATOR_OID",
    "NODE_EVIDENCE_FORMAT",
    "OPERATOR_PREFIX",
    "PLANES",
    "AdmissionAuthority",
    "AdmissionRequest",
    "AdmissionResult",
    "ClassEndorsements",
    "Credential",
    "CredentialStatus",
    "CredentialStore",
    "FleetCA",
    "FleetReleaseGate",
    "FleetServers",
    "FleetVerifier",
    "NodeAppraisal",
    "NodeEvidence",
    "OperatorCredential",
    "Placement",
    "RolloutTrigger",
    "admission_app",
    "attest_node",
    "binding_key",
    "check_caller",
    "check_credential",
    "class_endorsements",
    "collect_evidence",
    "csr_public_key",
    "decode_nonce",
    "desired_rollout",
    "device_policy",
    "ear_id_of",
    "make_csr",
    "node_may_receive_keys",
    "node_policy",
    "parse_credential",
    "plane_app",
    "quarantine",
    "readmit",
    "report_data",
    "scan_attest",
    "serve_fleet",
    "server_tls",
]

# What admission keeps of each attestation (the EAR and the evidence it appraised).
__all__ += [
    "StoredAttestation",
    "latest_attestation",
    "store_attestation",
    "stored_attestation",
]
# A node's credential keys, sealed to its root of trust.
__all__ += ["node_credential_key", "node_tls_context", "store_node_credentials"]
__all__ += ["stored_credential_fault", "unusable_credentials"]
# What an offline relying party (an auditor) checks of a credential: the CA, validity, CRL.
__all__ += ["crl_revocations", "verify_credential"]
# Who may approve a class's desired state, changed by governed changes on the log.
__all__ += [
    "GOVERNANCE_CHANGE_CONTENT_TYPE",
    "GovernanceChange",
    "RevokedSigner",
    "VerifiedGovernanceChange",
    "check_governance_change",
    "governance_subject",
    "sign_governance_change",
    "verify_governance_change",
]
# Revocation of DICE and SPDM certificates: the fleet's CRLs and their scan trigger.
__all__ += ["CRL_CONTENT_TYPE", "RevocationEvent", "RevocationWatch", "add_crl"]

__getattr__, __dir__ = lazy_package(__name__, __file__)
