"""A provisioned root-of-trust device for tests that need its monotonic counters (an HSM's
directory is bound to one)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ironroot.rot import Device, VendorCA

_NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def provisioned_device(path: Path) -> Device:
    """A device in ``path``, provisioned by a throwaway vendor CA (its counters need a UDS)."""
    device = Device.create(path)
    device.provision(
        VendorCA.generate(now=_NOW - dt.timedelta(days=2)),
        vendor_key_hash=bytes(range(48)),
        now=_NOW - dt.timedelta(days=1),
    )
    return device
