"""The fleet: nodes of the platform layer, admitted to the control plane only on verified
evidence, scanned continuously, managed against a desired state on the log.

So far: :class:`Fleet` (a directory of nodes and the registry of their status),
:class:`NodeClass` (what a class of nodes is built from) and :class:`Scanner` (continuous
re-attestation, on a schedule and when the log changes); the desired state of a class as a
signed statement on the log with a two-person rule (:class:`DesiredState`,
:class:`DesiredStore`, :func:`verify_desired`), :func:`reconcile` (measured vs desired, per
node and item) and :func:`rollout` (waves through the receipt-gated update). See
``docs/fleet.md``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.fleet._desired import (
        DESIRED_STATE_CONTENT_TYPE,
        AuthorizedSigner,
        DesiredState,
        DesiredStore,
        FirmwareTarget,
        FuseTarget,
        Governance,
        PfmTarget,
        VerifiedDesired,
        check_approvals,
        desired_subject,
        sign_desired,
        verify_desired,
    )
    from ironroot.fleet._fleet import STATUSES, Fleet, FleetEvent, NodeClass, NodeRecord
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
    from ironroot.fleet._rollout import (
        ComponentUpdate,
        NodeRollout,
        ReleaseSet,
        RolloutReport,
        rollout,
    )
    from ironroot.fleet._scan import Scanner, ScanReport, affected_classes

__all__ = ["STATUSES", "Fleet", "FleetEvent", "NodeClass", "NodeRecord"]
__all__ += ["ScanReport", "Scanner", "affected_classes"]

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

__getattr__, __dir__ = lazy_package(__name__, __file__)
