"""The platform: a DC-SCM root of trust and BMC with the host and devices they protect.

So far: the Platform Firmware Manifest (:class:`Pfm`, :func:`sign_pfm`, :func:`verify_pfm`,
:func:`pfm_statement` to publish it), the signed list of the firmware a platform's flash may
hold; what a platform trusts for its updates (:class:`PlatformTrust`, :class:`SafeRequirement`);
and the named checks an update must pass before the RoT writes it (:func:`verify_update`,
:func:`check_update`). See ``docs/platform.md``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.platform._checks import (
        UPDATE_CHECKS,
        UpdateReport,
        VerifiedUpdate,
        check_update,
        verify_update,
    )
    from ironroot.platform._pfm import (
        PFM_CONTENT_TYPE,
        Pfm,
        PfmComponent,
        PfmVersion,
        pfm_statement,
        sign_pfm,
        verify_pfm,
    )
    from ironroot.platform._policy import SEVERITIES, PlatformTrust, SafeRequirement

__all__ = [
    "PFM_CONTENT_TYPE",
    "SEVERITIES",
    "UPDATE_CHECKS",
    "Pfm",
    "PfmComponent",
    "PfmVersion",
    "PlatformTrust",
    "SafeRequirement",
    "UpdateReport",
    "VerifiedUpdate",
    "check_update",
    "pfm_statement",
    "sign_pfm",
    "verify_pfm",
    "verify_update",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
