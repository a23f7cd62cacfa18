"""External audit: one self-contained file with everything that justifies a node's state,
verified offline, step by step, against what an auditor trusts.

:func:`export_bundle` (I/O: the fleet, the node's RoT, the transparency services' read API)
collects the node's evidence and has its RoT seal it; :func:`check_bundle` /
:func:`verify_bundle` (pure) re-check it against an :class:`AuditTrust` and return an
:class:`AuditReport`, which :func:`render_console` and :func:`render_html` show. The file
format is in :mod:`ironroot.audit._bundle`, the steps in :mod:`ironroot.audit._verify`, and
both in ``docs/fleet.md`` ("External audit").
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.audit._bundle import (
        BUNDLE_FORMAT,
        INDEX_FORMAT,
        AuditBundle,
        AuditIndex,
        MemberEntry,
        seal_nonce,
    )
    from ironroot.audit._export import (
        NODE_CHANGED,
        AuditExport,
        collect_export,
        export_bundle,
        export_sealed,
        spdm_nonce,
    )
    from ironroot.audit._proofs import PROOFS_FORMAT, LogProofs
    from ironroot.audit._report import (
        STEP_STATUSES,
        AuditReport,
        AuditStep,
        render_console,
        render_html,
    )
    from ironroot.audit._trust import AuditTrust, TrustedLog
    from ironroot.audit._verify import check_bundle, report_unread, verify_bundle

__all__ = [
    "BUNDLE_FORMAT",
    "INDEX_FORMAT",
    "NODE_CHANGED",
    "PROOFS_FORMAT",
    "STEP_STATUSES",
    "AuditBundle",
    "AuditExport",
    "AuditIndex",
    "AuditReport",
    "AuditStep",
    "AuditTrust",
    "LogProofs",
    "MemberEntry",
    "TrustedLog",
    "check_bundle",
    "collect_export",
    "export_bundle",
    "export_sealed",
    "render_console",
    "render_html",
    "report_unread",
    "seal_nonce",
    "spdm_nonce",
    "verify_bundle",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
