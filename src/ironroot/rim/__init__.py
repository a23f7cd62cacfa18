"""GPU Reference Integrity Manifests: NVIDIA's SWID-tag RIMs as reference values, from the log.

A RIM (ISO/IEC 19770-2 SWID tag, TCG RIM Information Model) lists the golden measurements of
a GPU driver or VBIOS, signed with an enveloped XML-DSig signature (ECDSA-SHA384) by NVIDIA's
RIM signing chain. :func:`verify_rim` verifies one (signxml, a hardened lxml parser, the chain
to the pinned NVIDIA RIM root of :func:`builtin_rim_roots`, validity at ``now``) and returns a
:class:`Rim`: identity (tag id, version, product, TCG RIM IM fields) and
:class:`GoldenMeasurement` per index.

RIMs reach a verifier only through the transparency log: :func:`rim_statement` makes the
Signed Statement that registers one (content type :data:`RIM_CONTENT_TYPE`, subject its
:class:`RimId`), :func:`logged_rim_from_statement` takes a :class:`LoggedRim` back from a
Transparent Statement whose receipts verify, and :class:`LoggedRims` appraises a GPU's
measurement blocks against the driver and VBIOS RIMs its evidence names
(:class:`RimAppraisal`, ``MeasurementMismatch`` naming each block). Everything is pure: bytes,
keys and ``now`` in, values out.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.rim._appraise import (
        NVDEC0_RIM_INDEX,
        IndexMismatch,
        LoggedRims,
        RimAppraisal,
        compare_measurements,
    )
    from ironroot.rim._id import RIM_CONTENT_TYPE, RimId, RimKind, vbios_version_key
    from ironroot.rim._model import (
        DEFAULT_RIM_LIMITS,
        GoldenMeasurement,
        Rim,
        RimLimits,
    )
    from ironroot.rim._roots import NVIDIA_RIM_ROOT_FINGERPRINT, builtin_rim_roots
    from ironroot.rim._statement import (
        LoggedRim,
        carries_rim,
        logged_rim_from_statement,
        rim_statement,
    )
    from ironroot.rim._verify import verify_rim

__all__ = [
    "DEFAULT_RIM_LIMITS",
    "NVDEC0_RIM_INDEX",
    "NVIDIA_RIM_ROOT_FINGERPRINT",
    "RIM_CONTENT_TYPE",
    "GoldenMeasurement",
    "IndexMismatch",
    "LoggedRim",
    "LoggedRims",
    "Rim",
    "RimAppraisal",
    "RimId",
    "RimKind",
    "RimLimits",
    "builtin_rim_roots",
    "carries_rim",
    "compare_measurements",
    "logged_rim_from_statement",
    "rim_statement",
    "vbios_version_key",
    "verify_rim",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
