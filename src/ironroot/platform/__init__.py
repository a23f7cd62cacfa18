"""The platform: a DC-SCM root of trust and BMC with the host and devices they protect.

So far: the Platform Firmware Manifest (:class:`Pfm`, :func:`sign_pfm`, :func:`verify_pfm`,
:func:`pfm_statement` to publish it), the signed list of the firmware a platform's flash may
hold; and what a platform trusts for its updates (:class:`PlatformTrust`,
:class:`SafeRequirement`). See ``docs/platform.md``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.platform._devices import (
        DEVICE_SVN_INDEX,
        DeviceMeasurement,
        PlatformDevice,
        device_measurement_blocks,
        device_references,
        measure_device,
        measure_responder,
        verify_device,
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
    "DEVICE_SVN_INDEX",
    "DeviceMeasurement",
    "PlatformDevice",
    "device_measurement_blocks",
    "device_references",
    "measure_device",
    "measure_responder",
    "verify_device",
]
__all__ += [
    "PFM_CONTENT_TYPE",
    "SEVERITIES",
    "Pfm",
    "PfmComponent",
    "PfmVersion",
    "PlatformTrust",
    "SafeRequirement",
    "pfm_statement",
    "sign_pfm",
    "verify_pfm",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
