"""The platform: a DC-SCM root of trust and BMC with the host and devices they protect.

So far: the Platform Firmware Manifest (:class:`Pfm`, :func:`sign_pfm`, :func:`verify_pfm`,
:func:`pfm_statement` to publish it), the signed list of the firmware a platform's flash may
hold; what a platform trusts for its updates (:class:`PlatformTrust`, :class:`SafeRequirement`);
the named checks an update must pass before the RoT writes it (:func:`verify_update`,
:func:`check_update`); its SPDM devices (:class:`PlatformDevice`, :func:`measure_device`); and
the node itself (:class:`Platform`: flash, the RoT's journal and event log, boot, the update
state machine with fault injection). See ``docs/platform.md``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.cose import on_trusted_log  # the receipt check, shared with the other layers
    from ironroot.platform._checks import (
        UPDATE_CHECKS,
        UpdateReport,
        VerifiedUpdate,
        check_recovery_images,
        check_update,
        unwrap_witnessed,
        verify_update,
    )
    from ironroot.platform._devices import (
        DEVICE_LAYOUT,
        DEVICE_MODE,
        DEVICE_MODE_INDEX,
        DEVICE_SVN_INDEX,
        DeviceMeasurement,
        PlatformDevice,
        compare_device_references,
        device_block_keys,
        device_measurement_blocks,
        device_references,
        measure_device,
        measure_responder,
        verify_device,
    )
    from ironroot.platform._flash import (
        BLOCK,
        COMPONENT_REGIONS,
        IMAGE_HEADER_SIZE,
        ROT_REGIONS,
        PowerLost,
        Region,
        chip_layout,
    )
    from ironroot.platform._journal import Event
    from ironroot.platform._node import (
        COMPONENTS,
        DEVICES,
        FAIL_HEALTH,
        BootReport,
        ComponentBoot,
        DeviceInfo,
        Faults,
        InventoryItem,
        Platform,
    )
    from ironroot.platform._pfm import (
        MAX_PFM_BYTES,
        PFM_CONTENT_TYPE,
        Pfm,
        PfmComponent,
        PfmVersion,
        pfm_statement,
        sign_pfm,
        verify_pfm,
    )
    from ironroot.platform._policy import (
        SEVERITIES,
        PlatformTrust,
        PlatformWitnesses,
        SafeRequirement,
    )
    from ironroot.platform._redfish import (
        RedfishService,
        create_redfish_app,
        serve_redfish,
    )
    from ironroot.platform._redfish_accounts import ROLES, AccountStore
    from ironroot.platform._state import STEPS
    from ironroot.platform._update import UpdatePreflight, UpdateResult

__all__ = [
    "DEVICE_LAYOUT",
    "DEVICE_MODE",
    "DEVICE_MODE_INDEX",
    "DEVICE_SVN_INDEX",
    "DeviceMeasurement",
    "PlatformDevice",
    "compare_device_references",
    "device_block_keys",
    "device_measurement_blocks",
    "device_references",
    "measure_device",
    "measure_responder",
    "on_trusted_log",
    "verify_device",
]
__all__ += [
    "MAX_PFM_BYTES",
    "PFM_CONTENT_TYPE",
    "SEVERITIES",
    "UPDATE_CHECKS",
    "Pfm",
    "PfmComponent",
    "PfmVersion",
    "PlatformTrust",
    "PlatformWitnesses",
    "SafeRequirement",
    "UpdateReport",
    "VerifiedUpdate",
    "check_recovery_images",
    "check_update",
    "pfm_statement",
    "sign_pfm",
    "unwrap_witnessed",
    "verify_pfm",
    "verify_update",
]

__all__ += [
    "BLOCK",
    "COMPONENTS",
    "COMPONENT_REGIONS",
    "DEVICES",
    "FAIL_HEALTH",
    "IMAGE_HEADER_SIZE",
    "ROT_REGIONS",
    "STEPS",
    "BootReport",
    "ComponentBoot",
    "DeviceInfo",
    "Event",
    "Faults",
    "InventoryItem",
    "Platform",
    "PowerLost",
    "Region",
    "UpdatePreflight",
    "UpdateResult",
    "chip_layout",
]

__all__ += ["ROLES", "AccountStore", "RedfishService", "create_redfish_app", "serve_redfish"]

__getattr__, __dir__ = lazy_package(__name__, __file__)
