"""Fixtures for the RoT runtime tests: one product and one vendor CA per session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from _rot_helpers import NOW, Product, new_device

from ironroot.rot import Device, VendorCA


@pytest.fixture(scope="session")
def product() -> Product:
    return Product.generate()


@pytest.fixture(scope="session")
def vendor_ca() -> VendorCA:
    return VendorCA.generate(now=NOW - dt.timedelta(days=365))


@pytest.fixture
def device(tmp_path: Path, product: Product, vendor_ca: VendorCA) -> Device:
    return new_device(tmp_path / "device", product, vendor_ca)


@pytest.fixture
def booted(device: Device, product: Product) -> Device:
    device.boot(product.bundle(), now=NOW)
    return device
