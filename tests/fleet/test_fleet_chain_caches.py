"""The verifier's chain caches change the cost of re-attesting a node, never the decision: a
node whose DICE chains and device chains were verified once (and remembered) is refused
exactly as a verifier that never saw it refuses it when a certificate has expired since,
has been revoked since, or when one byte of a chain changed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from tests.fleet.admission_world import AdmissionWorld, admission_world, prepare
from tests.fleet.test_fleet_revocation import _crl
from tests.platform.node_world import NOW, World, make_world

from ironroot.attestation import ReferenceValues, TrustTier, verify_ear
from ironroot.crypto import Algorithm, PrivateKey, load_certificate
from ironroot.errors import AdmissionDenied, BadSignature
from ironroot.fleet import (
    PLANES,
    AdmissionAuthority,
    AdmissionRequest,
    Fleet,
    NodeEvidence,
    add_crl,
    attest_node,
    collect_evidence,
    make_csr,
)
from ironroot.platform import PlatformDevice
from ironroot.spdm import DeviceIdentity, SpdmEvidence

NODE = "node-0001"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("chain-cache-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _sizes(authority: AdmissionAuthority) -> tuple[int, int]:
    caches = authority.verifier.caches
    return len(caches.get("ironroot")), len(caches.get("spdm"))


def _submod(authority: AdmissionAuthority, node: str, name: str, at: dt.datetime) -> Any:
    appraisal = verify_ear(authority.ear(node), [authority.verifier_key], now=at).submods[name]
    return appraisal.status, dict(appraisal.trust_vector), appraisal.reasons


def _refused(fleet: Fleet, authority: AdmissionAuthority, at: dt.datetime, name: str) -> Any:
    """Attest the node at ``at``: refused, quarantined; what the EAR says of ``name``."""
    with pytest.raises(AdmissionDenied):
        attest_node(fleet, NODE, now=at, authority=authority)
    assert fleet.record_of(NODE).status == "quarantined"
    found = _submod(authority, NODE, name, at)
    assert found[0] is TrustTier.CONTRAINDICATED
    return found


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_a_nodes_chains_are_verified_once_and_remembered(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    assert _sizes(authority) == (0, 0)
    for _ in range(2):
        for node in fleet.node_ids():
            assert attest_node(fleet, node, now=NOW, authority=authority).status == "admitted"
    assert _sizes(authority) == (2, 6)  # per node: its DICE chains once, each device's chain


def test_a_device_certificate_expired_since_is_refused_as_without_the_cache(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NIC's chain is valid for a day. Two days later the node (its clock behind, so its
    BMC still measures the NIC) answers a fresh challenge: the verifier refuses the NIC's
    expired chain, remembered or not."""
    generate = DeviceIdentity.generate

    def short_nic(
        cls: type[DeviceIdentity],
        algorithm: Algorithm = Algorithm.ES384,
        *,
        now: dt.datetime,
        common_name: str = "Ironroot SPDM Device",
        days: int = 3650,
    ) -> DeviceIdentity:
        nic = common_name == "Platform device nic"
        return generate(algorithm, now=now, common_name=common_name, days=1 if nic else days)

    monkeypatch.setattr(DeviceIdentity, "generate", classmethod(short_nic))
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    monkeypatch.undo()
    assert attest_node(fleet, NODE, now=NOW, authority=authority).status == "admitted"
    assert _sizes(authority) == (1, 3)
    later = NOW + dt.timedelta(days=2)
    found = []
    for verifier in (authority, AdmissionAuthority.open(fleet)):
        nonce, _ = verifier.challenge(later, client=NODE, node=NODE)
        keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
        csrs = {p: make_csr(k, node=NODE, plane=p) for p, k in keys.items()}
        spkis = {p: k.public_key.to_der() for p, k in keys.items()}
        evidence = collect_evidence(fleet, NODE, nonce=nonce, keys=spkis, now=NOW)
        assert set(evidence.devices) == {"gpu", "nic", "nvme"}
        request = AdmissionRequest(NODE, nonce, evidence.encode(), csrs)
        with pytest.raises(AdmissionDenied):
            verifier.admit(request, now=later)
        found.append(_submod(verifier, NODE, "nic", later))
    assert found[0] == found[1]
    assert found[0][0] is TrustTier.CONTRAINDICATED
    assert any("is not valid at" in reason for reason in found[0][2])


def test_a_device_certificate_revoked_since_is_refused_as_without_the_cache(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NIC's device CA (its key kept by wrapping DeviceIdentity.generate) revokes the
    NIC's certificate after the node was admitted with its chain remembered."""
    from ironroot.spdm import _identity

    kept: dict[str, Any] = {}
    make = _identity._certificate

    def keep(**fields: Any) -> bytes:
        der = make(**fields)
        if fields["subject"] == "Platform device nic CA":
            kept["ca"], kept["key"] = der, fields["key"]
        return der

    monkeypatch.setattr(_identity, "_certificate", keep)
    fleet, authority = aw.fleet(tmp_path / "fleet", 1, fresh=True)
    monkeypatch.undo()
    assert attest_node(fleet, NODE, now=NOW, authority=authority).status == "admitted"
    assert _sizes(authority) == (1, 3)
    device = PlatformDevice.open(fleet.directory / "nodes" / NODE / "devices", "nic")
    leaf = load_certificate(device.chain[-1], der_only=True)
    add_crl(fleet, _crl(kept["ca"], kept["key"], leaf.serial_number), now=NOW)
    later = NOW + dt.timedelta(minutes=5)
    cached = _refused(fleet, authority, later, "nic")
    assert any("revoked: certificate" in reason for reason in cached[2])
    assert _sizes(authority) == (1, 3)  # the chain was found in the cache, and still refused
    fresh = _refused(fleet, AdmissionAuthority.open(fleet), later, "nic")
    assert cached == fresh


def _changed_nic_chain(evidence: NodeEvidence) -> NodeEvidence:
    """The node's evidence with the last byte of the NIC leaf's signature changed."""
    record = SpdmEvidence.decode(evidence.devices["nic"])
    chain = _flip(record.certificate_chain, len(record.certificate_chain) - 1)
    nic = dataclasses.replace(record, certificate_chain=chain).encode()
    return dataclasses.replace(evidence, devices={**evidence.devices, "nic": nic})


def _changed_ldevid(fleet: Fleet, evidence: NodeEvidence) -> NodeEvidence:
    """The node's evidence with the last byte of its ES384 LDevID certificate changed."""
    ldevid = fleet.rot(NODE).chain(Algorithm.ES384)[1]
    at = evidence.quote.index(ldevid) + len(ldevid) - 1
    return dataclasses.replace(evidence, quote=_flip(evidence.quote, at))


@pytest.mark.parametrize("part", ["nic", "rot"])
def test_a_changed_byte_in_a_remembered_chain_is_refused_as_without_the_cache(
    aw: AdmissionWorld, tmp_path: Path, part: str
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    assert attest_node(fleet, NODE, now=NOW, authority=authority).status == "admitted"
    sizes = _sizes(authority)
    assert sizes == (1, 3)
    found = []
    for verifier in (authority, AdmissionAuthority.open(fleet)):
        prepared = prepare(fleet, verifier, NODE)
        evidence = (
            _changed_nic_chain(prepared.evidence)
            if part == "nic"
            else _changed_ldevid(fleet, prepared.evidence)
        )
        # a device that fails quarantines the node; a quote that fails raises its own error
        with pytest.raises(AdmissionDenied if part == "nic" else BadSignature) as caught:
            verifier.admit(prepared.request(evidence=evidence.encode()), now=NOW)
        error = caught.value
        said = (error.code, error.detail) if part == "rot" else error.code  # nic: its EAR id
        found.append((type(error), said, _submod(verifier, NODE, part, NOW)))
    assert found[0] == found[1]
    assert found[0][2][0] is TrustTier.CONTRAINDICATED
    assert _sizes(authority) == sizes  # a failure is not remembered


def test_a_device_s_endorsements_are_built_once_for_each_class_s_values(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """The endorsements a device is appraised against (its class's values, its pinned root)
    are built once per pair, and afresh for other values or another root: never served for
    values they were not built from."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    verifier = authority.verifier
    values = verifier.endorsements(fleet.record_of(NODE).node_class, NOW).devices
    name, references = next(iter(values.items()))
    root = fleet.node(NODE).config.devices[name].root
    built = verifier._device_endorsements(name, root, references)
    assert verifier._device_endorsements(name, root, references) is built
    assert built.reference_values is references
    other = ReferenceValues(tuple(references))  # the same values, rebuilt: another object
    again = verifier._device_endorsements(name, root, other)
    assert again is not built
    assert again.reference_values is other
    assert verifier._device_endorsements(name, root, other) is again
    pinned = fleet.node(NODE).config.devices
    other_root = next(info.root for info in pinned.values() if info.root != root)
    elsewhere = verifier._device_endorsements(name, other_root, other)
    assert elsewhere is not again
    assert elsewhere.vendor_roots == (load_certificate(other_root).public_bytes(Encoding.DER),)
