"""A verified NVIDIA GPU report appraised against the RIMs on the log.

:func:`appraise_gpu_rims` hands :meth:`ironroot.rim.LoggedRims.appraise` what it needs from a
:class:`GpuEvidence` (the typed view of ``nvidia-gpu`` claims): the measurement blocks by SPDM
index, and the opaque-data fields that select the RIMs — project (type 17), project SKU (18),
chip SKU (15), VBIOS version (6), driver version (3) — and NVDEC0's status (11: ``0x55``
disabled, so block 36 is not compared, as NVIDIA's verifier does). A report without one of
the selecting fields is ``MalformedEvidence``; the appraisal's own errors are
``rim-not-found`` (``NotFound``), ``rim-ambiguous``, ``rim-index-conflict``,
``rim-nothing-compared`` and ``MeasurementMismatch``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from ironroot.attestation.evidence import GpuEvidence
from ironroot.errors import MalformedEvidence
from ironroot.rim import LoggedRims, RimAppraisal

__all__ = ["appraise_gpu_rims"]

_NVDEC0_STATUS: Final = 11
_NVDEC0_DISABLED: Final = b"\x55"


def appraise_gpu_rims(
    evidence: GpuEvidence,
    rims: LoggedRims,
    *,
    product: str = "GH100",
    now: datetime | None = None,
) -> RimAppraisal:
    """The appraisal of ``evidence`` (verified) against the logged driver and VBIOS RIMs its
    opaque data names (module docs), or the exact error; with ``now``, only RIMs valid then
    count (``rim-expired``)."""
    values = {
        "project": evidence.project,
        "sku": evidence.sku,
        "chip": evidence.chip,
        "vbios_version": evidence.vbios_version,
        "driver_version": evidence.driver_version,
    }
    missing = sorted(name for name, value in values.items() if not value)
    if missing:
        raise MalformedEvidence(
            f"the GPU report does not name its {', '.join(missing)}: no RIM can be selected"
        )
    nvdec0 = evidence.opaque.get(_NVDEC0_STATUS)
    return rims.appraise(
        evidence.measurements,
        project=str(values["project"]),
        sku=str(values["sku"]),
        chip=str(values["chip"]),
        vbios_version=str(values["vbios_version"]),
        driver_version=str(values["driver_version"]),
        product=product,
        nvdec0_disabled=nvdec0 is not None and nvdec0.data == _NVDEC0_DISABLED,
        now=now,
    )
