"""Fixtures: a test RIM signing chain, and a live transparency service with RIMs registered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _rim_helpers import (
    DRIVER_FILE,
    DRIVER_ID,
    NOW,
    REGISTRANT,
    VBIOS_FILE,
    VBIOS_ID,
    VBIOS_TEST_FILE,
    RimLog,
    RimPki,
    vector_rim,
)

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.transparency import (
    ServiceThread,
    TransparencyClient,
    TransparencyService,
    init_data_dir,
)


@pytest.fixture(scope="session")
def pki() -> RimPki:
    return RimPki.generate()


@pytest.fixture(scope="session")
def rim_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RimLog]:
    key = PrivateKey.generate(Algorithm.ES384)
    data = tmp_path_factory.mktemp("rim-transparency")
    init_data_dir(data)
    (data / "registrant.pub.pem").write_bytes(key.public_key.to_pem())
    config = data / "ironroot.toml"
    config.write_text(
        config.read_text()
        + f'\n[[transparency.issuers]]\niss = "{REGISTRANT}"\nkey = "registrant.pub.pem"\n'
    )
    # receipts signed at the tests' NOW: logged_rim_from_statement holds them to its own now
    service = TransparencyService.open(data, clock=lambda: NOW)
    with service, ServiceThread(service) as server, TransparencyClient(server.url) as client:
        yield RimLog(client, client.service_keys(), key, server.url)


@pytest.fixture(scope="session")
def logged(rim_log: RimLog) -> dict[str, bytes]:
    """Transparent statements of the vector's driver RIM and two VBIOS RIMs of one id."""
    return {
        "driver": rim_log.register(vector_rim(DRIVER_FILE), DRIVER_ID),
        "vbios": rim_log.register(vector_rim(VBIOS_FILE), VBIOS_ID),
        "vbios-test": rim_log.register(vector_rim(VBIOS_TEST_FILE), VBIOS_ID),
    }
