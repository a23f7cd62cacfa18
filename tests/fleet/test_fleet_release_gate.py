"""The fleet's gate on key release (``ironroot.fleet.FleetReleaseGate``): the key service
refuses a key to a VM whose node is not admitted, reading the node from the verified EAR — not
from what the requester says (the demo's ``quarantined-vm`` attack runs it over HTTP)."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.keyrelease._kr_helpers import Harness, build_harness, evidence, make_ear
from tests.platform.node_world import NOW, World, make_world

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.ear import Appraisal, AttestationResult, VerifierId, sign_ear_jwt
from ironroot.errors import ReleaseDenied, ResultExpired, UnknownIssuer
from ironroot.fleet import Fleet, FleetReleaseGate, attest_node, quarantine, readmit
from ironroot.hsm import HsmRelease, KeyType, Role, WrappingKey
from ironroot.keyrelease import (
    HsmVault,
    KeyReleaseService,
    ReleaseRequest,
    ReleaseStatements,
    TeeKeyPair,
)
from ironroot.rot import parse_certificate

VERIFIER = PrivateKey.generate(Algorithm.ES384)
TEE = TeeKeyPair.generate()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("release-gate-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _ueid(gate: FleetReleaseGate, node: str) -> str:
    certificate = gate.fleet.idevid_certificate(node, Algorithm.ES384)
    ueid = parse_certificate(certificate).dice.ueid
    assert ueid
    return ueid.hex()


def _request(*ueids: str, signer: PrivateKey = VERIFIER, at: dt.datetime = NOW) -> ReleaseRequest:
    """A release request whose EAR (signed by ``signer``) names the RoTs ``ueids``."""
    iat = int(at.timestamp())
    vector = {"instance-identity": 2, "configuration": 2, "hardware": 2}
    submods = {
        f"vm{n}": Appraisal.from_vector(
            vector, evidence={"identity": {"ueid": ueid}, "debug": False}
        )
        for n, ueid in enumerate(ueids)
    } or {"vm": Appraisal.from_vector(vector, evidence={"debug": False})}  # names no RoT
    result = AttestationResult(
        iat=iat, exp=iat + 600, verifier_id=VerifierId("vm-verifier", "1"), submods=submods
    )
    return ReleaseRequest(sign_ear_jwt(result, signer), TEE.public, bytes(32))


def test_quarantine_refuses_release_to_the_nodes_vms_until_readmitted(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    for node in ("node-0001", "node-0002"):
        attest_node(fleet, node, now=NOW, authority=authority)
    clock = {"now": NOW}
    gate = FleetReleaseGate(fleet, [VERIFIER.public_key], clock=lambda: clock["now"])
    one, two = _ueid(gate, "node-0001"), _ueid(gate, "node-0002")
    gate("db-key", _request(one))
    quarantine(fleet, "node-0001", "suspected tampering", now=NOW)
    with pytest.raises(ReleaseDenied) as denied:
        gate("db-key", _request(one))
    assert denied.value.code == "node-not-admitted"
    gate("db-key", _request(two))  # the other node's VMs still get keys
    with pytest.raises(ReleaseDenied) as either:  # an EAR naming both: every node must pass
        gate("db-key", _request(two, one))
    assert either.value.code == "node-not-admitted"
    clock["now"] = later = NOW + dt.timedelta(minutes=10)
    readmit(fleet, "node-0001", now=later, authority=authority)
    gate("db-key", _request(one, at=later))
    # an admission that lapsed (the credential's hour) refuses too
    clock["now"] = lapsed = later + dt.timedelta(hours=2)
    with pytest.raises(ReleaseDenied) as stale:
        gate("db-key", _request(one, at=lapsed))
    assert stale.value.code == "attestation-expired"


def test_an_ear_that_names_no_node_of_the_fleet_is_refused(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    gate = FleetReleaseGate(fleet, [VERIFIER.public_key], clock=lambda: NOW)
    for request in (_request("00" * 16), _request()):
        with pytest.raises(ReleaseDenied) as denied:
            gate("db-key", request)
        assert denied.value.code == "node-unknown"


def test_the_node_is_read_from_a_verified_ear_only(aw: AdmissionWorld, tmp_path: Path) -> None:
    """An EAR the gate's verifier keys did not sign, or one that expired, is refused before
    its claims are read: a requester cannot name an admitted node for its VM."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    gate = FleetReleaseGate(fleet, [VERIFIER.public_key], clock=lambda: NOW)
    ueid = _ueid(gate, "node-0001")
    with pytest.raises(UnknownIssuer):
        gate("db-key", _request(ueid, signer=PrivateKey.generate(Algorithm.ES384)))
    with pytest.raises(ResultExpired):
        gate("db-key", _request(ueid, at=NOW - dt.timedelta(hours=1)))


def test_a_node_added_after_the_gate_was_made_is_found(aw: AdmissionWorld, tmp_path: Path) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    gate = FleetReleaseGate(fleet, [VERIFIER.public_key], clock=lambda: NOW)
    gate("db-key", _request(_ueid(gate, "node-0001")))  # the map is built: one node
    (added,) = fleet.add_nodes(1, vendor_ca=aw.vendor_ca, now=NOW)
    attest_node(fleet, added, now=NOW, authority=authority)
    gate("db-key", _request(_ueid(gate, added)))


class _QuarantinedWhileTheHsmDecides:
    """The key service's HSM vault, with a quarantine of ``node`` committing while the HSM
    decides a release: what a concurrent scan or operator does between the gate's check and
    the HSM's answer."""

    def __init__(self, vault: HsmVault, fleet: Fleet, node: str) -> None:
        self.vault, self.fleet, self.node = vault, fleet, node

    def challenge(self, client: str | None = None) -> tuple[bytes, int]:
        return self.vault.challenge(client)

    def release(
        self,
        handle: str,
        *,
        ear: bytes,
        nonce: bytes,
        recipient: WrappingKey,
        gate: Callable[[], Callable[[], None] | None] | None = None,
    ) -> HsmRelease:
        quarantine(self.fleet, self.node, "drift found by a scan", now=NOW)
        return self.vault.release(handle, ear=ear, nonce=nonce, recipient=recipient, gate=gate)

    def key_type(self, handle: str) -> KeyType:
        return self.vault.key_type(handle)


def test_a_quarantine_committed_while_the_hsm_decides_refuses_the_release(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """The gate's read is confirmed inside the HSM's decision: a key is never handed out (nor
    its statement kept) to a VM whose node was quarantined before the answer. The confirmation
    reads no table, only the registry's generation, which the quarantine moved."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    harness = build_harness()
    gate = FleetReleaseGate(fleet, [harness.verifier_key.public_key], clock=lambda: NOW)
    ueid = _ueid(gate, "node-0001")
    statements = ReleaseStatements(":memory:")
    service = KeyReleaseService(
        keys=harness.service.keys.values(),
        vault=_QuarantinedWhileTheHsmDecides(
            HsmVault(harness.hsm, harness.user), fleet, "node-0001"
        ),
        gate=gate,
        statements=statements,
    )
    nonce = service.challenge()[0]
    claims = evidence(harness.tee.report_data(nonce), identity__ueid=ueid)
    ear = make_ear(harness.verifier_key, harness.tee.report_data(nonce), evidence_claims=claims)
    with pytest.raises(ReleaseDenied) as denied:
        service.release("cel-key", ReleaseRequest(ear, harness.tee.public, nonce))
    assert denied.value.code == "node-not-admitted"
    assert statements.statements() == ()


def _release_records(harness: Harness) -> list[tuple[str, str, bool]]:
    """``(key, result, binds a statement)`` of every ``release`` record in the HSM's log."""
    if "auditor" not in {name for name, _, _ in harness.hsm.identities(harness.officer)}:
        harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    auditor = harness.hsm.login("auditor", b"auditor-credential")
    return [
        (r.key or "", r.result, r.release is not None and r.release.statement is not None)
        for r in harness.hsm.audit_records(auditor)
        if r.operation == "release"
    ]


def test_the_hsm_audit_never_records_as_granted_a_release_the_gate_withheld(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """The gap: the HSM recorded the release as granted (``ok``, its statement bound), then
    the gate's second check refused it and the key never left; an auditor reading the chain
    believed it released. The gate's second check is now made inside the HSM's decision: the
    one record of the release is the refusal, with the gate's code, and binds no statement."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    harness = build_harness()
    gate = FleetReleaseGate(fleet, [harness.verifier_key.public_key], clock=lambda: NOW)
    ueid = _ueid(gate, "node-0001")
    service = KeyReleaseService(
        keys=harness.service.keys.values(),
        vault=_QuarantinedWhileTheHsmDecides(
            HsmVault(harness.hsm, harness.user), fleet, "node-0001"
        ),
        gate=gate,
    )
    nonce = service.challenge()[0]
    claims = evidence(harness.tee.report_data(nonce), identity__ueid=ueid)
    ear = make_ear(harness.verifier_key, harness.tee.report_data(nonce), evidence_claims=claims)
    with pytest.raises(ReleaseDenied) as denied:
        service.release("cel-key", ReleaseRequest(ear, harness.tee.public, nonce))
    assert denied.value.code == "node-not-admitted"
    handle = harness.handles["cel-key"]
    assert _release_records(harness) == [(handle, "node-not-admitted", False)]


def test_a_release_the_gate_lets_go_is_recorded_once_as_granted(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    harness = build_harness()
    gate = FleetReleaseGate(fleet, [harness.verifier_key.public_key], clock=lambda: NOW)
    ueid = _ueid(gate, "node-0001")
    service = KeyReleaseService(
        keys=harness.service.keys.values(), vault=HsmVault(harness.hsm, harness.user), gate=gate
    )
    nonce = service.challenge()[0]
    claims = evidence(harness.tee.report_data(nonce), identity__ueid=ueid)
    ear = make_ear(harness.verifier_key, harness.tee.report_data(nonce), evidence_claims=claims)
    service.release("cel-key", ReleaseRequest(ear, harness.tee.public, nonce))
    assert _release_records(harness) == [(harness.handles["cel-key"], "ok", True)]


class _Between:
    """The fleet's gate, with ``between`` run after its read and before the HSM decides (on
    another thread: another connection to the registry, as a scanner or an operator is)."""

    def __init__(self, gate: FleetReleaseGate, between: Callable[[], None]) -> None:
        self.gate, self.between = gate, between

    def __call__(self, name: str, request: ReleaseRequest) -> Callable[[], None] | None:
        confirm = self.gate(name, request)
        worker = threading.Thread(target=self.between)
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive()
        return confirm


def _service_request(harness: Harness, service: KeyReleaseService, ueid: str) -> ReleaseRequest:
    nonce = service.challenge()[0]
    claims = evidence(harness.tee.report_data(nonce), identity__ueid=ueid)
    ear = make_ear(harness.verifier_key, harness.tee.report_data(nonce), evidence_claims=claims)
    return ReleaseRequest(ear, harness.tee.public, nonce)


def test_a_node_quarantined_by_another_connection_after_the_read_is_refused_and_audited(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """The gate read the node admitted, outside the HSM's lock; a scan on another connection
    quarantined it before the HSM decided. The HSM's confirmation sees the registry's
    generation moved and reads the node again: refused, the one audit record is the refusal,
    no statement kept."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    harness = build_harness()
    real = FleetReleaseGate(fleet, [harness.verifier_key.public_key], clock=lambda: NOW)
    ueid = _ueid(real, "node-0001")
    statements = ReleaseStatements(":memory:")
    gate = _Between(real, lambda: quarantine(fleet, "node-0001", "drift found", now=NOW))
    service = KeyReleaseService(
        keys=harness.service.keys.values(),
        vault=HsmVault(harness.hsm, harness.user),
        gate=gate,
        statements=statements,
    )
    with pytest.raises(ReleaseDenied) as denied:
        service.release("cel-key", _service_request(harness, service, ueid))
    assert denied.value.code == "node-not-admitted"
    assert _release_records(harness) == [(harness.handles["cel-key"], "node-not-admitted", False)]
    assert statements.statements() == ()
    # and the next request reads the quarantine itself
    with pytest.raises(ReleaseDenied) as again:
        service.release("cel-key", _service_request(harness, service, ueid))
    assert again.value.code == "node-not-admitted"


def test_an_unrelated_commit_after_the_read_still_releases(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """Another node's admission commits between the gate's read and the HSM's decision: the
    generation moved, so the confirmation reads this node again under the HSM's lock — still
    admitted, the key is released (a busy fleet does not refuse releases)."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    harness = build_harness()
    real = FleetReleaseGate(fleet, [harness.verifier_key.public_key], clock=lambda: NOW)
    ueid = _ueid(real, "node-0001")
    before = fleet.registry_generation()
    gate = _Between(real, lambda: attest_node(fleet, "node-0002", now=NOW, authority=authority))
    service = KeyReleaseService(
        keys=harness.service.keys.values(), vault=HsmVault(harness.hsm, harness.user), gate=gate
    )
    service.release("cel-key", _service_request(harness, service, ueid))
    assert fleet.registry_generation() != before
    assert _release_records(harness) == [(harness.handles["cel-key"], "ok", True)]


def test_an_attestation_that_expires_between_the_read_and_the_decision_is_refused(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    harness = build_harness()
    clock = {"now": NOW}
    real = FleetReleaseGate(fleet, [harness.verifier_key.public_key], clock=lambda: clock["now"])
    ueid = _ueid(real, "node-0001")
    until = fleet.record_of("node-0001").credential_not_after
    assert until is not None
    expires = dt.datetime.fromisoformat(until.replace("Z", "+00:00"))
    service = KeyReleaseService(
        keys=harness.service.keys.values(),
        vault=HsmVault(harness.hsm, harness.user),
        gate=_Between(real, lambda: clock.update(now=expires)),
    )
    with pytest.raises(ReleaseDenied) as denied:
        service.release("cel-key", _service_request(harness, service, ueid))
    assert denied.value.code == "attestation-expired"
    assert _release_records(harness) == [(harness.handles["cel-key"], "attestation-expired", False)]


def test_a_release_whose_gate_waits_on_the_registry_does_not_hold_the_hsm(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """The gap: the key service's gate was asked again under the HSM's global lock, so a gate
    waiting on the fleet's registry (another transaction holding it, a slow disk) stalled
    every HSM operation. Here every read of the gate waits until the test lets it go, and
    while each waits another client's challenge, which takes the HSM's lock, must be answered;
    then the release completes, confirmed under the lock, and is recorded granted once."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    harness = build_harness()
    real = FleetReleaseGate(fleet, [harness.verifier_key.public_key], clock=lambda: NOW)
    ueid = _ueid(real, "node-0001")
    reading: queue.Queue[threading.Event | None] = queue.Queue()

    def waiting_gate(name: str, request: ReleaseRequest) -> Callable[[], None] | None:
        go = threading.Event()
        reading.put(go)
        if not go.wait(timeout=60):
            raise ReleaseDenied("the test never let the read go", code="test-timeout")
        return real(name, request)

    service = KeyReleaseService(
        keys=harness.service.keys.values(),
        vault=HsmVault(harness.hsm, harness.user),
        gate=waiting_gate,
    )
    request = _service_request(harness, service, ueid)
    outcome: dict[str, object] = {}

    def release() -> None:
        try:
            outcome["released"] = service.release("cel-key", request)
        except BaseException as exc:  # reported below
            outcome["error"] = exc
        finally:
            reading.put(None)

    releasing = threading.Thread(target=release)
    releasing.start()
    reads = 0
    try:
        while (go := reading.get(timeout=60)) is not None:
            reads += 1
            answered = threading.Event()

            def challenge(done: threading.Event = answered) -> None:
                service.challenge("other-client")
                done.set()

            threading.Thread(target=challenge, daemon=True).start()
            # bounded: fails (rather than hangs) when the read holds the HSM's lock
            free = answered.wait(timeout=30)
            go.set()
            assert free, f"an unrelated HSM operation waited on the gate's read {reads}"
    finally:
        releasing.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert reads == 1  # read once, outside the lock; confirmed under it
    assert _release_records(harness) == [(harness.handles["cel-key"], "ok", True)]
