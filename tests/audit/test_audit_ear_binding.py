"""The EAR in an audit bundle is bound to the evidence it was issued for.

The node of tests/audit/audit_world.py was admitted by the fleet's own admission: its EAR
records the challenge nonce and what it appraised (the quote's report data, Ueid and
measurements; each device's measurements), and the admission kept the evidence beside it.
Every part below is individually valid — EARs signed by the trusted verifier, quotes and SPDM
sessions signed by the node's own RoT and devices, resealed by the node's RoT — but an EAR
that belongs to other evidence is refused at the ``attestation`` step.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import secrets
from collections.abc import Iterator

import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world, ear
from tests.platform.node_world import NOW

from ironroot.attestation import ReferenceValues
from ironroot.audit import AuditBundle, AuditExport, check_bundle, spdm_nonce, verify_bundle
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.ear import decode_ear, sign_ear_jwt
from ironroot.errors import ChainNotTrusted, IronrootError, VerificationFailed
from ironroot.fleet import (
    ADMISSION_DIR,
    PLANES,
    NodeEvidence,
    collect_evidence,
    ear_id_of,
    latest_attestation,
)
from ironroot.platform import PlatformDevice, measure_device
from ironroot.spdm import DeviceIdentity

CBOR = "application/cbor"
JWT = "application/jwt"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-ear"))


@pytest.fixture(scope="module")
def collected(aw: AuditWorld) -> AuditExport:
    return aw.collect()


def _evidence(aw: AuditWorld, node: str = NODE) -> tuple[NodeEvidence, bytes, dict[str, bytes]]:
    """Another genuine answer of ``node`` to a fresh challenge (nothing submitted)."""
    nonce = secrets.token_bytes(32)
    keys = {p: PrivateKey.generate(Algorithm.ES384).public_key.to_der() for p in PLANES}
    at = NOW + dt.timedelta(minutes=2)
    return collect_evidence(aw.fleet, node, nonce=nonce, keys=keys, now=at), nonce, keys


def _appraised(aw: AuditWorld, node: str = NODE) -> tuple[bytes, bytes]:
    """An EAR the trusted verifier signed for fresh evidence of ``node``, and that evidence
    (appraised, not submitted: the registry does not change)."""
    evidence, nonce, keys = _evidence(aw, node)
    appraisal = aw.authority.verifier.appraise(
        node, evidence, nonce=nonce, keys=keys, now=NOW + dt.timedelta(minutes=2)
    )
    return appraisal.token, evidence.encode()


def _record(collected: AuditExport, ear_id: str) -> tuple[bytes, str]:
    """The registry row naming ``ear_id``."""
    record = json.loads(collected.members["node/record.json"][0])
    record["ear_id"] = ear_id
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode(), "application/json"


def _reseal(aw: AuditWorld, export: AuditExport, **changes: object) -> bytes:
    return export.replace(**changes).seal(aw.fleet.rot(NODE))  # type: ignore[arg-type]


def _attestation_error(aw: AuditWorld, data: bytes) -> IronrootError:
    report = check_bundle(data, aw.trust())
    failed = {s.name: s.error for s in report.steps if s.status == "failed"}
    assert set(failed) == {"attestation"}, failed
    error = failed["attestation"]
    assert error is not None
    with pytest.raises(type(error)):
        verify_bundle(data, aw.trust())
    return error


def test_the_admission_ear_is_exported_with_the_evidence_it_was_issued_for(
    aw: AuditWorld, collected: AuditExport
) -> None:
    stored = latest_attestation(aw.fleet.directory / ADMISSION_DIR, NODE)
    assert stored is not None
    assert stored.ear_id == aw.fleet.record_of(NODE).ear_id
    assert collected.members["attestation/ear.jwt"][0] == stored.ear
    assert collected.members["attestation/evidence.cbor"] == (stored.evidence, CBOR)
    assert NodeEvidence.decode(stored.evidence or b"").node == NODE
    step = verify_bundle(_reseal(aw, collected), aw.trust()).step("attestation")
    assert step.status == "ok"
    assert any("issued for the evidence in the bundle" in line for line in step.lines)
    for device in ("nic", "gpu", "nvme"):
        line = f"{device}: its session answers the EAR's nonce, with the measurements it records"
        assert line in step.lines


def test_an_ear_with_evidence_of_another_challenge_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """The registered EAR beside another genuine quote of the same RoT (another nonce)."""
    other, _, _ = _evidence(aw)
    data = _reseal(aw, collected, members={"attestation/evidence.cbor": (other.encode(), CBOR)})
    error = _attestation_error(aw, data)
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "ear-evidence-mismatch",
        "attestation",
    )
    assert "answers another challenge" in error.detail


def test_a_device_session_of_another_challenge_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """The admission's quote with one device's session swapped for a genuine one answering
    another challenge (node evidence is not signed as a whole: each part binds the nonce)."""
    stored = NodeEvidence.decode(collected.members["attestation/evidence.cbor"][0])
    other, _, _ = _evidence(aw)
    swapped = NodeEvidence(NODE, stored.quote, {**stored.devices, "gpu": other.devices["gpu"]})
    data = _reseal(aw, collected, members={"attestation/evidence.cbor": (swapped.encode(), CBOR)})
    error = _attestation_error(aw, data)
    assert (type(error), error.code) == (VerificationFailed, "ear-evidence-mismatch")
    assert error.detail == "gpu's session answers another challenge than the EAR's"


@pytest.mark.parametrize("dropped", [("gpu",), ("nic", "gpu", "nvme")])
def test_a_device_session_the_ear_appraised_left_out_is_refused(
    aw: AuditWorld, collected: AuditExport, dropped: tuple[str, ...]
) -> None:
    """The admission's evidence with device sessions the EAR appraised taken out, resealed
    by the node's RoT: the EAR's device records are then bound to nothing the bundle holds —
    it was not issued for this evidence."""
    stored = NodeEvidence.decode(collected.members["attestation/evidence.cbor"][0])
    kept = {name: data for name, data in stored.devices.items() if name not in dropped}
    fewer = NodeEvidence(NODE, stored.quote, kept)
    data = _reseal(aw, collected, members={"attestation/evidence.cbor": (fewer.encode(), CBOR)})
    error = _attestation_error(aw, data)
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "ear-evidence-mismatch",
        "attestation",
    )
    assert error.detail == (
        f"the EAR records the session of {min(dropped)}, which the evidence in the bundle "
        "does not hold"
    )


def test_an_ear_issued_for_another_quote_is_refused(aw: AuditWorld, collected: AuditExport) -> None:
    """A second EAR the trusted verifier issued (for another challenge of this node), named
    by the registry row, beside the evidence of the first."""
    token, _evidence_bytes = _appraised(aw)
    data = _reseal(
        aw,
        collected,
        members={
            "attestation/ear.jwt": (token, JWT),
            "node/record.json": _record(collected, ear_id_of(token)),
        },
    )
    error = _attestation_error(aw, data)
    assert (type(error), error.code) == (VerificationFailed, "ear-evidence-mismatch")


def test_an_ear_and_evidence_of_another_node_are_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Another node's EAR with its own evidence — relabelled for this node, both valid — in
    this node's bundle: the quote is not by the RoT that sealed the bundle."""
    (other,) = aw.fleet.add_nodes(1, vendor_ca=aw.ca, now=NOW)
    token, evidence_bytes = _appraised(aw, other)
    evidence = NodeEvidence.decode(evidence_bytes)
    relabelled = NodeEvidence(NODE, evidence.quote, evidence.devices).encode()
    members = {
        "attestation/ear.jwt": (token, JWT),
        "node/record.json": _record(collected, ear_id_of(token)),
    }
    error = _attestation_error(
        aw,
        _reseal(
            aw, collected, members={**members, "attestation/evidence.cbor": (relabelled, CBOR)}
        ),
    )
    assert (type(error), error.code) == (VerificationFailed, "ear-evidence-mismatch")
    assert "the bundle is sealed by" in error.detail
    error = _attestation_error(
        aw,
        _reseal(
            aw, collected, members={**members, "attestation/evidence.cbor": (evidence_bytes, CBOR)}
        ),
    )
    assert (type(error), error.code) == (VerificationFailed, "not-the-node")


def test_an_ear_that_records_other_measurements_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """The registered EAR's nonce and report data, with another record of the quote's
    measurements (signed by the trusted verifier)."""
    result = decode_ear(collected.members["attestation/ear.jwt"][0], aw.trust().verifier_keys)
    rot = result.submods["rot"]
    assert rot.evidence is not None
    recorded = dict(rot.evidence)
    recorded["measurements"] = {**recorded["measurements"], "runtime": "00" * 48}
    changed = dataclasses.replace(
        result, submods={**result.submods, "rot": dataclasses.replace(rot, evidence=recorded)}
    )
    token = sign_ear_jwt(changed, aw.verifier)
    data = _reseal(
        aw,
        collected,
        members={
            "attestation/ear.jwt": (token, JWT),
            "node/record.json": _record(collected, ear_id_of(token)),
        },
    )
    error = _attestation_error(aw, data)
    assert (type(error), error.code) == (VerificationFailed, "ear-evidence-mismatch")
    assert "other measurements" in error.detail


def test_an_ear_bound_to_nothing_is_refused(aw: AuditWorld, collected: AuditExport) -> None:
    unbound = ear(aw.verifier)  # signed by the trusted verifier, no nonce
    data = _reseal(
        aw,
        collected,
        members={
            "attestation/ear.jwt": (unbound, JWT),
            "node/record.json": _record(collected, ear_id_of(unbound)),
        },
    )
    error = _attestation_error(aw, data)
    assert (type(error), error.code) == (VerificationFailed, "ear-not-bound")
    # the admission's EAR without the evidence it was issued for
    data = _reseal(
        aw,
        collected,
        members={"attestation/evidence.cbor": None},
        absent={"attestation/evidence.cbor": "not stored"},
    )
    error = _attestation_error(aw, data)
    assert (type(error), error.code) == (VerificationFailed, "ear-not-bound")
    assert "not stored" in error.detail


def test_an_ear_other_than_the_registered_one_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    token, evidence_bytes = _appraised(aw)  # valid and bound, but not the registry's
    data = _reseal(
        aw,
        collected,
        members={
            "attestation/ear.jwt": (token, JWT),
            "attestation/evidence.cbor": (evidence_bytes, CBOR),
        },
    )
    error = _attestation_error(aw, data)
    assert (type(error), error.code) == (VerificationFailed, "ear-not-registered")
    # the same pair, registered: it holds
    data = _reseal(
        aw,
        collected,
        members={
            "attestation/ear.jwt": (token, JWT),
            "attestation/evidence.cbor": (evidence_bytes, CBOR),
            "node/record.json": _record(collected, ear_id_of(token)),
        },
    )
    report = check_bundle(data, aw.trust())
    assert report.step("attestation").status == "ok"
    # but the node's credential was issued on the EAR it was admitted on, not this one
    error = report.step("identity").error
    assert (type(error), error.code) == (ChainNotTrusted, "node-identity")  # type: ignore[union-attr]


def test_a_real_export_of_a_re_attested_node_binds_the_new_ear(aw: AuditWorld) -> None:
    from ironroot.fleet import attest_node

    (node,) = aw.fleet.add_nodes(1, vendor_ca=aw.ca, now=NOW)
    attest_node(aw.fleet, node, now=NOW, authority=aw.authority)
    first = aw.fleet.record_of(node).ear_id
    attest_node(aw.fleet, node, now=NOW + dt.timedelta(minutes=5), authority=aw.authority)
    assert aw.fleet.record_of(node).ear_id != first
    data = aw.export(node, now=EXPORTED)
    assert verify_bundle(data, aw.trust()).step("attestation").status == "ok"
    members = AuditBundle.parse(data).members
    assert ear_id_of(members["attestation/ear.jwt"]) == aw.fleet.record_of(node).ear_id


def test_a_refused_answer_sent_after_the_admission_does_not_unbind_the_export(
    aw: AuditWorld,
) -> None:
    """Anyone may answer a node's challenge (the admission endpoint is unauthenticated): an
    answer whose quote does not verify is refused and changes nothing of the node, yet its
    EAR is kept as the node's latest. The export still carries the EAR the registry names,
    with the evidence it was issued for, not the refusal's nor nothing."""
    from ironroot.fleet import AdmissionRequest, attest_node, make_csr

    (node,) = aw.fleet.add_nodes(1, vendor_ca=aw.ca, now=NOW)
    attest_node(aw.fleet, node, now=NOW, authority=aw.authority)
    admitted_on = aw.fleet.record_of(node).ear_id
    nonce, _ = aw.authority.challenge(NOW, client="203.0.113.9", node=node)
    keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
    forged = AdmissionRequest(
        node,
        nonce,
        NodeEvidence(node, b"not a quote", {}).encode(),
        {p: make_csr(k, node=node, plane=p) for p, k in keys.items()},
    )
    with pytest.raises(IronrootError):
        aw.authority.admit(forged, now=NOW)
    assert aw.fleet.record_of(node).ear_id == admitted_on
    assert ear_id_of(aw.authority.ear(node)) != admitted_on  # the refusal's EAR is the latest
    data = aw.export(node, now=EXPORTED)
    members = AuditBundle.parse(data).members
    assert ear_id_of(members["attestation/ear.jwt"]) == admitted_on
    assert NodeEvidence.decode(members["attestation/evidence.cbor"]).node == node
    assert verify_bundle(data, aw.trust()).step("attestation").status == "ok"


def test_a_device_pinned_to_another_root_in_the_bundle_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """The root a device is verified to comes from ``platform/config.json``, which whoever
    seals writes. An impostor NIC (a key and root of the sealer's own) pinned there, with its
    sessions answering the export's challenge and the EAR's nonce with the measurements of
    the genuine firmware, passed every step: the trusted verifier's EAR records the root it
    verified the device to (SHA-256), and the bundle's pinned root must be that one."""
    config = json.loads(collected.members["platform/config.json"][0])
    info = config["devices"]["nic"]
    impostor = PlatformDevice(
        "nic",
        info["vendor"],
        info["model"],
        DeviceIdentity.generate(Algorithm.ES384, now=NOW - dt.timedelta(days=1)),
    )
    config["devices"]["nic"]["root"] = base64.b64encode(impostor.root).decode()
    image = collected.members["firmware/nic/bundle.bin"][0]
    result = decode_ear(collected.members["attestation/ear.jwt"][0], aw.trust().verifier_keys)

    def session(nonce: bytes | None, at: dt.datetime) -> bytes:
        measured = measure_device(
            impostor, image, root=impostor.root, references=ReferenceValues(), now=at, nonce=nonce
        )
        assert measured.evidence is not None
        return measured.evidence

    stored = NodeEvidence.decode(collected.members["attestation/evidence.cbor"][0])
    admitted = session(result.nonce, NOW + dt.timedelta(minutes=1))
    forged = NodeEvidence(NODE, stored.quote, {**stored.devices, "nic": admitted})
    text = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    data = _reseal(
        aw,
        collected,
        members={
            "platform/config.json": (text, "application/json"),
            "spdm/nic.cbor": (session(spdm_nonce(collected.nonce, "nic"), EXPORTED), CBOR),
            "attestation/evidence.cbor": (forged.encode(), CBOR),
        },
    )
    error = _attestation_error(aw, data)
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "ear-evidence-mismatch",
        "attestation",
    )
    assert error.detail.startswith(
        "nic's session verifies to a root the bundle pins, not the root the EAR records "
    )
