"""The fleet: nodes of the platform layer, admitted to the control plane only on verified
evidence, scanned continuously, managed against a desired state on the log.

So far: :class:`Fleet` (a directory of nodes and the registry of their status),
:class:`NodeClass` (what a class of nodes is built from) and :class:`Scanner` (continuous
re-attestation, on a schedule and when the log changes). See ``docs/fleet.md``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.fleet._fleet import STATUSES, Fleet, FleetEvent, NodeClass, NodeRecord
    from ironroot.fleet._scan import Scanner, ScanReport, affected_classes

__all__ = ["STATUSES", "Fleet", "FleetEvent", "NodeClass", "NodeRecord"]
__all__ += ["ScanReport", "Scanner", "affected_classes"]

__getattr__, __dir__ = lazy_package(__name__, __file__)
