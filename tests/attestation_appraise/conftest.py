"""Fixtures: one world per session (a vendor CA, releases logged on a live transparency
service, SAFE reviews) and a freshly booted device per test that needs one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from _ar_helpers import NOW, SAFE_ISS, VENDOR_ISS, World, new_keys

from ironroot.rot import Device, VendorCA
from ironroot.transparency import (
    ServiceThread,
    TransparencyClient,
    TransparencyService,
    init_data_dir,
)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ecc, pqc, vendor_key, provider_key, safe_key = new_keys()
    data = tmp_path_factory.mktemp("transparency")
    init_data_dir(data)
    (data / "vendor.pub.pem").write_bytes(vendor_key.public_key.to_pem())
    (data / "safe.pub.pem").write_bytes(safe_key.public_key.to_pem())
    config = data / "ironroot.toml"
    config.write_text(
        config.read_text()
        + f'\n[[transparency.issuers]]\niss = "{VENDOR_ISS}"\nkey = "vendor.pub.pem"\n'
        + f'\n[[transparency.issuers]]\niss = "{SAFE_ISS}"\nkey = "safe.pub.pem"\n'
    )
    # receipts signed at the tests' NOW: each appraisal holds them to its own now
    service = TransparencyService.open(data, clock=lambda: NOW)
    with service, ServiceThread(service) as server, TransparencyClient(server.url) as client:
        world = World(
            ca=VendorCA.generate(now=NOW - dt.timedelta(days=365)),
            ecc=ecc,
            pqc=pqc,
            vendor_key=vendor_key,
            provider_key=provider_key,
            safe_key=safe_key,
            client=client,
            service_keys=client.service_keys(),
        )
        world.release("good", svn=3)
        yield world


@pytest.fixture
def good_device(world: World, tmp_path: Path) -> Device:
    return world.device(tmp_path / "device", "good")
