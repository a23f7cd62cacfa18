"""A stateful property test of the fleet's trust decisions: a small real fleet (two nodes,
real attestations, real credentials, the real key-release gate) driven through random
sequences of admissions, quarantines, readmissions, revocations, new SVN minimums, firmware
updates good and bad, drift and recovery, time passing and scan rounds. After every step the
fleet must agree with a model of what it should trust:

* a quarantined node's current credential is refused by the planes' own check
  (:func:`ironroot.fleet.check_caller`: revoked) and key release to its VMs is refused
  (:class:`ironroot.fleet.FleetReleaseGate`: ``node-not-admitted``);
* an admitted node's current credential is accepted until it expires, and refused after
  (``credential-expired``; key release ``attestation-expired``);
* a node is admitted only on a fresh affirming attestation of firmware that is logged and
  not below the logged minimum SVN, and whose RoT's DeviceID no CRL revokes; an operator's
  hold keeps it out until a readmission;
* a scan after a CRL or an endorsement was added re-attests every node;
* every quarantine has an event with its reason, and the status counts are the registry's.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from tests.fleet.admission_world import AdmissionWorld, Prepared, admission_world, prepare
from tests.fleet.desired_world import ALICE, BOB, Ops, make_ops
from tests.platform.node_world import NOW, World, make_world

from hypothesis_budget import examples
from ironroot.attestation import TrustTier, verify_ear
from ironroot.crypto import Algorithm, PrivateKey, load_certificate
from ironroot.ear import Appraisal, AttestationResult, VerifierId, sign_ear_jwt
from ironroot.errors import (
    AdmissionDenied,
    CredentialRejected,
    IronrootError,
    ReleaseDenied,
    StaleNonce,
)
from ironroot.fleet import (
    PLANES,
    STATUSES,
    AdmissionResult,
    DesiredState,
    DesiredStore,
    Fleet,
    FleetReleaseGate,
    ReleaseSet,
    RevocationWatch,
    Scanner,
    add_crl,
    attest_node,
    check_caller,
    check_credential,
    crl_revocations,
    quarantine,
    readmit,
    rollout,
    scan_attest,
    store_node_credentials,
)
from ironroot.keyrelease import ReleaseRequest, TeeKeyPair
from ironroot.platform import Faults
from ironroot.rot import parse_certificate

NODES = ("node-0001", "node-0002")
LIFETIME = 600  # seconds a credential is valid
NONCE_LIFETIME = 120  # seconds an admission challenge may be answered
PERIOD = 300  # the scanner's period (no jitter)
VM_VERIFIER = PrivateKey.generate(Algorithm.ES384)  # signs the VMs' EARs for key release
TEE = TeeKeyPair.generate()
SVN = {"1.0": 3, "2.0": 4}  # the BMC releases' SVNs


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("trust-model-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    made = admission_world(world)
    made.bmc_rim("2.0")  # registered once: endorsing it is the new SVN minimum
    return made


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("trust-model-ops")) as o:
        yield o


@pytest.fixture(scope="module")
def drift(world: World) -> dict[str, bytes]:
    """Vendor-signed BMC firmware that was never logged (what a compromised BMC boots), of
    the SVN of each release (the RoT's anti-rollback lets it boot on either)."""
    return {v: world.bundle("bmc", svn=s, tag=f"never logged {s}") for v, s in SVN.items()}


def _ueid(fleet: Fleet, node: str) -> str:
    ueid = parse_certificate(fleet.idevid_certificate(node, Algorithm.ES384)).dice.ueid
    assert ueid
    return ueid.hex()


def _release_request(ueid: str, at: dt.datetime) -> ReleaseRequest:
    """A key release request whose VM's EAR (by the VM verifier) names the node's RoT."""
    iat = int(at.timestamp())
    vector = {"instance-identity": 2, "configuration": 2, "hardware": 2}
    appraisal = Appraisal.from_vector(vector, evidence={"identity": {"ueid": ueid}, "debug": False})
    result = AttestationResult(
        iat=iat,
        exp=iat + 600,
        verifier_id=VerifierId("vm-verifier", "1"),
        submods={"vm": appraisal},
    )
    return ReleaseRequest(sign_ear_jwt(result, VM_VERIFIER), TEE.public, bytes(32))


def _vendor_crl(aw: AdmissionWorld, serial: int) -> bytes:
    """The vendor CA's own CRL listing ``serial``."""
    ca = aw.vendor_ca
    issuer = load_certificate(ca.ecc_certificate, der_only=True).subject
    revoked = (
        x509.RevokedCertificateBuilder()
        .serial_number(serial)
        .revocation_date(NOW - dt.timedelta(minutes=30))
        .build()
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(NOW + dt.timedelta(days=7))
        .add_revoked_certificate(revoked)
        .sign(ca.ecc_key.raw, hashes.SHA384())  # type: ignore[arg-type]
    )
    return crl.public_bytes(Encoding.DER)


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Node:
    """What the model knows of one node."""

    def __init__(self) -> None:
        self.status = "pending"
        self.platform = "1.0"  # the BMC release committed on its flash
        self.running = "1.0"  # what its RoT booted: a release, or "drift"
        self.held = False
        self.revoked = False
        self.quarantined_at: dt.datetime | None = None
        self.quarantines = 0  # how many times it was quarantined (each has its event)


class TrustModel(RuleBasedStateMachine):
    aw: AdmissionWorld
    ops: Ops
    drift: dict[str, bytes]
    base: Path

    def __init__(self) -> None:
        super().__init__()
        directory = self.base / f"fleet-{id(self):x}-{len(list(self.base.iterdir()))}"
        self.fleet, self.authority = self.aw.fleet(directory, len(NODES), lifetime=LIFETIME)
        self.now = NOW
        self.gate = FleetReleaseGate(self.fleet, [VM_VERIFIER.public_key], clock=lambda: self.now)
        self.watch = RevocationWatch(self.fleet, self.authority.endorsements)
        self.scanner = Scanner(
            self.fleet, scan_attest(self.fleet, self.authority), period=PERIOD, jitter=0
        )
        self.nodes = {n: _Node() for n in NODES}
        self.ueids = {n: _ueid(self.fleet, n) for n in NODES}
        self.minimum = SVN["1.0"]  # the logged minimum SVN of the BMC
        self.logged = {"1.0"}  # the BMC releases whose reference values are endorsed
        self.added = False  # a CRL or an endorsement added since the last scan
        self.rolled: set[str] = set()  # nodes a rollout updated since the last scan
        self.desired = 0  # the version of the class's desired state in force (0: none)
        # a node's answer to a challenge, kept: (answer, when, what it ran, its quarantines)
        self.kept: dict[str, tuple[Prepared, dt.datetime, str, int]] = {}
        # every credential the nodes were ever issued: (node, plane) -> serial -> (DER, seen)
        self.issued: dict[str, dict[str, tuple[bytes, dt.datetime]]] = {}

    # --- the model's verdict ---------------------------------------------------------------

    def accepted(self, node: str) -> bool:
        """Whether a fresh attestation of ``node`` is affirming."""
        n = self.nodes[node]
        return not n.revoked and n.running in self.logged and SVN[n.running] >= self.minimum

    def attested(self, node: str, outcome: str) -> None:
        """The model after an attestation of ``node`` that came out ``outcome``."""
        n = self.nodes[node]
        if not self.accepted(node):
            assert outcome == "quarantined", f"{node} was admitted on firmware not accepted"
            if n.status != "quarantined":
                n.quarantined_at = self.now
            n.status = "quarantined"
            n.quarantines += 1
        elif n.held:
            assert outcome == "quarantined", f"{node} was admitted through an operator's hold"
        else:
            assert outcome == "admitted", f"{node} was refused on accepted firmware"
            n.status = "admitted"

    def tick(self, seconds: int = 1) -> None:
        self.now += dt.timedelta(seconds=seconds)

    # --- rules -----------------------------------------------------------------------------

    @rule(node=st.sampled_from(NODES))
    def attest(self, node: str) -> None:
        self.tick()
        self._admission(attest_node, node)

    def _admission(self, admit: Callable[..., AdmissionResult], node: str) -> None:
        """``admit`` (attest_node, readmit) of ``node``: refused exactly as the model says."""
        refusal = None
        if not self.accepted(node):
            refusal = "admission-denied"
        elif self.nodes[node].held:
            refusal = "node-held"
        if refusal is None:
            outcome = admit(self.fleet, node, now=self.now, authority=self.authority).status
        else:
            with pytest.raises(AdmissionDenied) as refused:
                admit(self.fleet, node, now=self.now, authority=self.authority)
            assert refused.value.code == refusal, refused.value.detail
            outcome = self.fleet.record_of(node).status
        self.attested(node, outcome)

    @rule(node=st.sampled_from(NODES), hold=st.booleans())
    def operator_quarantine(self, node: str, hold: bool) -> None:
        self.tick()
        quarantine(self.fleet, node, "suspected tampering", now=self.now, hold=hold)
        n = self.nodes[node]
        n.status = "quarantined"
        n.quarantined_at = self.now
        n.quarantines += 1
        n.held = n.held or hold

    @rule(node=st.sampled_from(NODES))
    def answer_a_challenge(self, node: str) -> None:
        """The node answers a fresh challenge; the answer is kept, not sent yet."""
        self.tick()
        n = self.nodes[node]
        answer = prepare(self.fleet, self.authority, node, now=self.now)
        self.kept[node] = (answer, self.now, n.running, n.quarantines)

    @precondition(lambda self: bool(self.kept))
    @rule(data=st.data())
    def send_a_kept_answer(self, data: st.DataObject) -> None:
        """A kept answer sent later: refused once its nonce expired or the node was
        quarantined since it was collected; else appraised for what the node ran then."""
        node = data.draw(st.sampled_from(sorted(self.kept)))
        answer, asked, ran, quarantines = self.kept.pop(node)
        self.tick()
        n = self.nodes[node]
        stale = None
        if (self.now - asked).total_seconds() >= NONCE_LIFETIME:
            stale = ("nonce-expired", "nonce-unknown")
        elif n.quarantines > quarantines:
            stale = ("nonce-superseded",)
        if stale is not None:
            with pytest.raises(StaleNonce) as refused:
                self.authority.admit(answer.request(), now=self.now)
            assert refused.value.code in stale, refused.value.detail
            return
        running, n.running = n.running, ran  # the model judges what the answer says
        try:
            refusal = None
            if not self.accepted(node):
                refusal = "admission-denied"
            elif n.held:
                refusal = "node-held"
            if refusal is None:
                result = self.authority.admit(answer.request(), now=self.now)
                store_node_credentials(
                    self.fleet, node, answer.keys, result.credentials, result.ca, durable=False
                )
                outcome = result.status
            else:
                with pytest.raises(AdmissionDenied) as denied:
                    self.authority.admit(answer.request(), now=self.now)
                assert denied.value.code == refusal, denied.value.detail
                outcome = self.fleet.record_of(node).status
            self.attested(node, outcome)
        finally:
            n.running = running

    @rule(node=st.sampled_from(NODES))
    def readmit(self, node: str) -> None:
        self.tick()
        self.nodes[node].held = False
        self._admission(readmit, node)

    @rule(node=st.sampled_from(NODES))
    def revoke_device_id(self, node: str) -> None:
        """The vendor CA's CRL revokes the node's DeviceID (IDevID)."""
        self.tick()
        der = self.fleet.idevid_certificate(node, Algorithm.ES384)
        serial = load_certificate(der, der_only=True).serial_number
        add_crl(self.fleet, _vendor_crl(self.aw, serial), now=self.now)
        self.nodes[node].revoked = True
        self.added = True

    @precondition(lambda self: "2.0" not in self.logged)
    @rule()
    def log_new_minimum(self) -> None:
        """The vendor's BMC 2.0 (SVN 4) reference values are endorsed: SVN 3 is refused."""
        self.tick()
        self.authority.add_endorsement(self.aw.bmc_rim("2.0"), now=self.now)
        self.logged.add("2.0")
        self.minimum = SVN["2.0"]
        self.added = True

    @precondition(lambda self: any(n.platform == "1.0" for n in self.nodes.values()))
    @rule(data=st.data(), healthy=st.booleans())
    def update_bmc(self, data: st.DataObject, healthy: bool) -> None:
        """The BMC updated to 2.0 through the receipt-gated update: committed, or failing its
        health check and rolled back."""
        node = data.draw(st.sampled_from([k for k, n in self.nodes.items() if n.platform == "1.0"]))
        self.tick()
        release = self.aw.world.release("bmc", "2.0")
        faults = None if healthy else Faults("fail-health")
        result = self.fleet.node(node).update(
            "bmc", release.bundle, release.statements, now=self.now, faults=faults
        )
        n = self.nodes[node]
        if healthy:
            assert result.outcome == "committed", result
            n.platform = "2.0"
        else:
            assert result.outcome == "rolled-back", result
        n.running = n.platform  # the update's reboot and health check ran it

    @rule(node=st.sampled_from(NODES))
    def update_to_never_logged_firmware(self, node: str) -> None:
        """An update to vendor-signed firmware that is on no log: refused before install."""
        self.tick()
        n = self.nodes[node]
        with pytest.raises(IronrootError):
            self.fleet.node(node).update("bmc", self.drift[n.platform], (), now=self.now)
        image = self.fleet.node(node).state().component("bmc").image
        assert image is not None
        assert image.version == n.platform

    @precondition(lambda self: self.desired < 3)
    @rule(version=st.sampled_from(sorted(SVN)), wave_size=st.sampled_from([1, 2]))
    def desired_bmc_rolled_out(self, version: str, wave_size: int) -> None:
        """Two approvers put a BMC release in force for the class (2.0, or back to 1.0: the
        rollout may refuse the downgrade), and it is rolled out."""
        self.tick()
        store = DesiredStore(self.fleet)
        if self.desired == 0:
            store.init(self.ops.governance())
        self.desired += 1
        klass = self.fleet.node_class("node-7")
        release = self.aw.world.release("bmc", version)
        state = DesiredState.build(
            klass, self.desired, bundles={"bmc": release.bundle}, fleet=self.fleet.identity()
        )
        store.publish(
            "node-7", self.ops.sign(state, ALICE, BOB), now=self.now, registrar=self.ops.log
        )
        releases = ReleaseSet.of_class(klass)
        releases.add_bundle(release.bundle, release.statements)
        report = rollout(self.fleet, releases, now=self.now, wave_size=wave_size)
        for node, n in self.nodes.items():
            outcome = report.node(node).outcome
            if n.platform == version:
                assert outcome == "skipped", report.to_json()
            elif outcome == "updated":
                self.rolled.add(node)
                n.platform = n.running = version
            else:  # refused before install (a downgrade), or not reached after that
                assert not report.ok, report.to_json()
            image = self.fleet.node(node).state().component("bmc").image
            assert image is not None
            assert image.version == n.platform

    @rule(node=st.sampled_from(NODES))
    def boot_never_logged_firmware(self, node: str) -> None:
        self.tick()
        self.fleet.rot(node).boot(self.drift[self.nodes[node].platform], now=self.now)
        self.nodes[node].running = "drift"

    @rule(node=st.sampled_from(NODES))
    def boot_from_flash(self, node: str) -> None:
        self.tick()
        self.fleet.node(node).boot(now=self.now)
        self.nodes[node].running = self.nodes[node].platform

    @rule(seconds=st.sampled_from([30, PERIOD + 1, LIFETIME + 1]))
    def time_passes(self, seconds: int) -> None:
        self.tick(seconds)

    @rule()
    def scan(self) -> None:
        self.tick()
        report = self.scanner.scan(self.now, self.watch.poll())
        assert report.failures == {}
        if self.added:  # a new CRL or endorsement re-attests every node at once
            assert set(report.reasons) == set(NODES), report.reasons
        assert self.rolled <= set(report.reasons), report.reasons  # as does a rollout
        self.added = False
        self.rolled = set()
        for node, outcome in report.statuses.items():
            self.attested(node, outcome)

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def registry_is_the_model(self) -> None:
        records = {r.id: r for r in self.fleet.records()}
        assert {k: r.status for k, r in records.items()} == {
            k: n.status for k, n in self.nodes.items()
        }
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(collections.Counter(r.status for r in records.values()))
        assert self.fleet.status_counts() == counts

    @invariant()
    def every_quarantine_says_why(self) -> None:
        for event in self.fleet.events():
            if event.kind == "quarantined":
                assert str(event.detail.get("reason", "")).strip(), event

    @invariant()
    def credentials_and_key_release_follow_the_status(self) -> None:
        for node, n in self.nodes.items():
            record = self.fleet.record_of(node)
            pem = self.fleet.directory / "nodes" / node / "credentials" / "control.cert.pem"
            if n.status == "pending":
                assert not pem.exists()
                self._release_refused(node, "node-not-admitted")
                continue
            if not pem.exists():  # quarantined by an operator before any admission
                assert n.status == "quarantined"
                self._release_refused(node, "node-not-admitted")
                continue
            certificate = load_certificate(pem.read_bytes())
            presented = certificate.public_bytes(Encoding.DER)
            expired = self.now >= certificate.not_valid_after_utc
            if n.status == "quarantined":
                code = "credential-expired" if expired else "credential-revoked"
                self._control_refused(presented, code)
                self._release_refused(node, "node-not-admitted")
                continue
            # admitted: on a fresh affirming EAR, the credential on disk is the registry's
            assert record.credential_serial == format(certificate.serial_number, "x")
            assert record.last_attested is not None
            at = _when(record.last_attested)  # the EAR is checked as of its issue
            ear = verify_ear(self.authority.ear(node), [self.authority.verifier_key], now=at)
            assert ear.status is TrustTier.AFFIRMING
            if n.quarantined_at is not None:
                assert ear.iat >= int(n.quarantined_at.timestamp())
            if expired:
                self._control_refused(presented, "credential-expired")
                self._release_refused(node, "attestation-expired")
            else:
                caller = self._control(presented)
                assert caller.node == node  # type: ignore[union-attr]
                self.gate("db-key", _release_request(self.ueids[node], self.now))()

    @invariant()
    def every_credential_ever_issued_follows_the_status(self) -> None:
        """A credential issued before the node's latest quarantine stays revoked after a
        readmission; one issued since is accepted while its node is admitted."""
        for node in NODES:
            for plane in PLANES:
                pem = self.fleet.directory / f"nodes/{node}/credentials/{plane}.cert.pem"
                if pem.exists():
                    der = load_certificate(pem.read_bytes()).public_bytes(Encoding.DER)
                    self.issued.setdefault(f"{node} {plane}", {}).setdefault(
                        der.hex()[-64:], (der, self.now)
                    )
        # what an offline relying party reads: the fleet CA's CRL
        listed = crl_revocations(
            self.authority.crl(now=self.now), self.authority.ca.der, at=self.now
        )
        for key, credentials in self.issued.items():
            node, plane = key.split()
            n = self.nodes[node]
            check = check_caller if plane == "control" else check_credential
            for der, seen in credentials.values():
                certificate = load_certificate(der)
                expected: str | None = None
                if self.now >= certificate.not_valid_after_utc:
                    expected = "credential-expired"
                elif n.status != "admitted" or (
                    n.quarantined_at is not None and seen < n.quarantined_at
                ):
                    expected = "credential-revoked"
                args = {
                    "plane": plane,
                    "ca": self.authority.ca,
                    "store": self.authority.credentials,
                    "fleet": self.fleet,
                    "now": self.now,
                }
                serial = format(certificate.serial_number, "x")
                assert (serial in listed) == (expected == "credential-revoked"), (node, plane)
                if expected is None:
                    assert check(der, **args).node == node  # type: ignore[union-attr]
                    continue
                with pytest.raises(CredentialRejected) as refused:
                    check(der, **args)
                assert refused.value.code == expected, (node, plane, refused.value.detail)

    def _control(self, presented: bytes) -> object:
        return check_caller(
            presented,
            plane="control",
            ca=self.authority.ca,
            store=self.authority.credentials,
            fleet=self.fleet,
            now=self.now,
        )

    def _control_refused(self, presented: bytes, code: str) -> None:
        with pytest.raises(CredentialRejected) as refused:
            self._control(presented)
        assert refused.value.code == code

    def _release_refused(self, node: str, code: str) -> None:
        with pytest.raises(ReleaseDenied) as refused:
            self.gate("db-key", _release_request(self.ueids[node], self.now))()
        assert refused.value.code == code


def test_the_fleets_trust_decisions_follow_the_model(
    aw: AdmissionWorld, ops: Ops, drift: dict[str, bytes], tmp_path: Path
) -> None:
    TrustModel.aw = aw
    TrustModel.ops = ops
    TrustModel.drift = drift
    TrustModel.base = tmp_path
    run_state_machine_as_test(
        TrustModel,
        settings=settings(
            max_examples=examples(10),
            stateful_step_count=12,
            deadline=None,
            derandomize=True,
            database=None,
            # each step is real attestations: shrinking a failure took minutes; the failing
            # sequence is printed as it ran
            phases=[Phase.explicit, Phase.generate],
        ),
    )
