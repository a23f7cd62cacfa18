"""A class trust's ``service_issuer`` (platform.toml ``[transparency] service_issuer``) pins
the fleet verifier's endorsements as it pins the node's updates: reference values whose
receipts name another service are rejected (``UnknownIssuer`` ``untrusted-service``); left out,
the service keys alone decide, as before."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from tests.fleet.fleet_world import node_class
from tests.platform.node_world import NOW, World, make_world

from ironroot.fleet._verifier import class_endorsements


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("fleet-service-issuer")) as w:
        yield w


def test_a_class_trust_s_service_issuer_pins_its_endorsements(world: World) -> None:
    klass = node_class(world)
    service = world.trusted.service_issuer()  # what the trusted log's receipts name
    unpinned = class_endorsements(klass, vendor_roots=(), now=NOW)
    assert unpinned.devices
    assert all(len(v) for v in unpinned.devices.values())
    assert not [line for line in unpinned.rejected if "untrusted-service" in line]
    right = dataclasses.replace(klass, trust=world.trust(service_issuer=service))
    pinned = class_endorsements(right, vendor_roots=(), now=NOW)
    assert pinned.rejected == unpinned.rejected
    assert {n: list(v) for n, v in pinned.devices.items()} == {
        n: list(v) for n, v in unpinned.devices.items()
    }
    # the trusted key signed every receipt, but the class knows its log by another iss
    other = "https://another-ts.example"
    wrong = dataclasses.replace(klass, trust=world.trust(service_issuer=other))
    refused = class_endorsements(wrong, vendor_roots=(), now=NOW)
    assert not any(len(v) for v in refused.devices.values())
    assert not list(refused.rot.reference_values)
    untrusted = [line for line in refused.rejected if ": untrusted-service: " in line]
    assert untrusted
    assert all(
        line.endswith(
            f"is by a trusted transparency service (the receipt is issued by {service!r}, "
            f"not by the transparency service {other!r})"
        )
        for line in untrusted
    )
    assert len(untrusted) == len(refused.rejected) - len(unpinned.rejected)
