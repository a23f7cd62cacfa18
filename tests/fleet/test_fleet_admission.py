"""Admission in process: a node is admitted only on an affirming EAR for fresh evidence that
binds its credential keys; every must-reject of issue 12 that concerns a node's evidence, each
asserting the exact error and the EAR's trust-vector claim; quarantine and its effects,
readmission, the key-release check and the scanner hook."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tests.fleet.admission_world import (
    AdmissionWorld,
    admission_world,
    debug_unlocked_quote,
    device_evidence,
    prepare,
)
from tests.platform.node_world import NOW, World, make_world

from ironroot.attestation import AR4SI, TrustTier, verify_ear
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.ear import ChallengeLimits
from ironroot.errors import (
    AdmissionDenied,
    ChainNotTrusted,
    ConfigError,
    Conflict,
    DeviceStateTampered,
    KeyBindingMismatch,
    MalformedEvidence,
    MalformedStatement,
    NotFound,
    PolicyRejected,
    ReleaseDenied,
    StaleNonce,
    StorageError,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.fleet import (
    FLEET_CREDENTIAL_OID,
    PLANES,
    AdmissionAuthority,
    AdmissionRequest,
    Fleet,
    Scanner,
    admission_app,
    attest_node,
    collect_evidence,
    make_csr,
    node_may_receive_keys,
    parse_credential,
    quarantine,
    readmit,
    report_data,
    scan_attest,
)
from ironroot.fleet._credentials import CredentialStore
from ironroot.rot import Device, _nvstate

LATER = NOW + dt.timedelta(minutes=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("admission-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


@pytest.fixture(scope="module")
def fleet3(
    aw: AdmissionWorld, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Fleet, AdmissionAuthority]:
    """Three nodes of the default class (no SAFE requirement); tests leave them admitted."""
    return aw.fleet(tmp_path_factory.mktemp("admission") / "fleet", 3)


def _denied(
    authority: AdmissionAuthority, request: object, submod: str, category: str, code: int
) -> None:
    """The admission is denied, the node quarantined, and the EAR says why."""
    with pytest.raises(AdmissionDenied) as caught:
        authority.admit(request, now=NOW)  # type: ignore[arg-type]
    assert caught.value.code == "admission-denied"
    node = request.node  # type: ignore[attr-defined]
    record = authority.fleet.record_of(node)
    assert record.status == "quarantined"
    result = verify_ear(authority.ear(node), [authority.verifier_key], now=NOW)
    assert result.submods[submod].status is not TrustTier.AFFIRMING
    assert result.submods[submod].trust_vector[category] == code
    assert record.ear_id is not None
    assert record.ear_id in caught.value.detail


# --- the good path ---------------------------------------------------------------------------


def test_an_attested_node_gets_short_lived_credentials_naming_it_and_its_ear(
    fleet3: tuple[Fleet, AdmissionAuthority],
) -> None:
    fleet, authority = fleet3
    result = attest_node(fleet, "node-0001", now=NOW, authority=authority)
    assert result.status == "admitted"
    assert result.appraisal.status is TrustTier.AFFIRMING
    ear = verify_ear(result.appraisal.token, [authority.verifier_key], now=NOW)
    assert set(ear.submods) == {"rot", "nic", "gpu", "nvme"}
    assert ear.exp == ear.iat + 3600
    control = parse_credential(result.credentials["control"].pem)
    data = parse_credential(result.credentials["data"].der)
    assert (control.node, control.node_class, control.plane) == ("node-0001", "node-7", "control")
    assert data.plane == "data"
    assert control.ear_id == data.ear_id == result.ear_id
    assert control.not_after - control.not_before == dt.timedelta(hours=1)
    record = fleet.record_of("node-0001")
    assert (record.status, record.reason) == ("admitted", "attested")
    assert record.credential_serial == control.serial
    assert record.credential_not_after == "2026-06-01T13:00:00Z"
    assert record.ear_id == result.ear_id
    keys = fleet.directory / "nodes" / "node-0001" / "credentials"
    assert oct(os.stat(keys / "control.key.sealed").st_mode & 0o777) == "0o600"
    assert oct(os.stat(authority.directory / "ca.key.pem").st_mode & 0o777) == "0o600"
    assert oct(os.stat(authority.directory / "verifier.key.pem").st_mode & 0o777) == "0o600"


def test_one_open_rot_serves_an_attestation_and_still_checks_its_state(
    fleet3: tuple[Fleet, AdmissionAuthority],
) -> None:
    """attest_node keeps the node's RoT device open for the whole attestation; that device
    still reads and verifies its state at every use: a fuse file changed under it is refused,
    put back it serves again, and a device of another node is refused by the platform."""
    fleet, authority = fleet3
    rot = fleet.rot("node-0003")
    nonce, _ = authority.challenge(NOW, client="node-0003", node="node-0003")
    spkis = {"control": PrivateKey.generate(Algorithm.ES384).public_key.to_der()}
    first = collect_evidence(fleet, "node-0003", nonce=nonce, keys=spkis, now=NOW, rot=rot)
    fuses = rot.directory / "fuses.json"
    original = fuses.read_bytes()
    changed = bytearray(original)
    changed[original.index(b'"mac": "') + 8] ^= 0x01
    fuses.write_bytes(bytes(changed))
    try:
        with pytest.raises(DeviceStateTampered):
            collect_evidence(fleet, "node-0003", nonce=nonce, keys=spkis, now=NOW, rot=rot)
        with pytest.raises(DeviceStateTampered):
            rot.sealing_secret("fleet-test")
    finally:
        fuses.write_bytes(original)
    again = collect_evidence(fleet, "node-0003", nonce=nonce, keys=spkis, now=NOW, rot=rot)
    assert again.devices.keys() == first.devices.keys()
    with pytest.raises(ConfigError):
        fleet.node("node-0003").measure(now=NOW, nonce=nonce, device=fleet.rot("node-0001"))
    result = attest_node(fleet, "node-0003", now=NOW, authority=authority)
    assert result.status == "admitted"


def test_an_attestation_verifies_the_nodes_rot_state_once(
    fleet3: tuple[Fleet, AdmissionAuthority], monkeypatch: pytest.MonkeyPatch
) -> None:
    """attest_node holds the node's RoT (Device.held): the quote, the platform journal's
    counter and the sealing secret read one verified state; the verifier reads the node's
    IDevID certificate without opening its RoT."""
    fleet, authority = fleet3
    loads: list[Path] = []
    opened: list[Path] = []
    load, init = _nvstate.NvStore.load, Device.__init__

    def counted_load(self: _nvstate.NvStore) -> _nvstate.NvSnapshot:
        loads.append(self.directory)
        return load(self)

    def counted_init(self: Device, directory: Path | str, **kw: Any) -> None:
        opened.append(Path(directory))
        init(self, directory, **kw)

    monkeypatch.setattr(_nvstate.NvStore, "load", counted_load)
    monkeypatch.setattr(Device, "__init__", counted_init)
    result = attest_node(fleet, "node-0002", now=NOW, authority=authority)
    assert result.status == "admitted"
    rot = fleet.directory / "nodes" / "node-0002" / "rot"
    assert loads == [rot]
    assert opened == [rot]
    assert fleet.idevid_certificate("node-0002", Algorithm.ES384) == fleet.rot(
        "node-0002"
    ).idevid_certificate(Algorithm.ES384)
    with pytest.raises(NotFound):
        fleet.idevid_certificate("node-0099", Algorithm.ES384)


def test_the_endorsement_token_names_what_the_endorsements_are_read_from(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """The token that decides whether a class's endorsements are read again names exactly the
    files ``endorsements()`` reads (``*.ts``, hidden ones too), not temp files beside them."""
    _, authority = aw.fleet(tmp_path / "fleet", 1)
    folder = authority.directory / "endorsements"
    assert authority._endorsement_token() == ()
    for name in ("b.ts", ".hidden.ts", "a.ts.1234.tmp", "c.TS", "d.ts"):
        (folder / name).write_bytes(b"x")
    (folder / "e.ts").mkdir()
    listed = tuple(sorted(p.name for p in folder.glob("*.ts")))  # what endorsements() reads
    assert authority._endorsement_token() == listed == (".hidden.ts", "b.ts", "d.ts", "e.ts")


def test_the_credential_profile(fleet3: tuple[Fleet, AdmissionAuthority]) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    fleet, authority = fleet3
    result = attest_node(fleet, "node-0002", now=NOW, authority=authority)
    cert = x509.load_der_x509_certificate(result.credentials["control"].der)
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(FLEET_CREDENTIAL_OID))
    assert ext.critical is False
    assert cert.subject.rfc4514_string() == "O=node-7,OU=control-plane,CN=node-0002"
    assert cert.issuer == authority.ca.certificate.subject
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert authority.ca.issued(cert)


def test_the_credential_lifetime_is_configurable(
    fleet3: tuple[Fleet, AdmissionAuthority],
) -> None:
    fleet, _ = fleet3
    short = AdmissionAuthority.open(fleet, credential_lifetime=120)
    result = attest_node(fleet, "node-0003", now=NOW, authority=short)
    credential = result.credentials["control"]
    assert credential.not_after - credential.not_before == dt.timedelta(seconds=120)
    ear = verify_ear(result.appraisal.token, [short.verifier_key], now=NOW)
    assert ear.exp == ear.iat + 120


def test_a_lifetime_of_0_or_a_damaged_configuration_is_a_typed_refusal(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """``--lifetime 0`` is refused, not taken for "the configured one"; a ``config.json``
    without its lifetime is a ``StorageError``, not a ``KeyError``."""
    fleet, _ = aw.fleet(tmp_path / "fleet", 1)
    with pytest.raises(ConfigError):
        AdmissionAuthority.open(fleet, credential_lifetime=0)
    config = fleet.directory / "admission" / "config.json"
    document = json.loads(config.read_bytes())
    for lifetime in (None, "3600", [3600], True):
        if lifetime is None:
            document.pop("credential_lifetime", None)
        else:
            document["credential_lifetime"] = lifetime
        config.write_text(json.dumps(document))
        with pytest.raises(StorageError, match="credential_lifetime"):
            AdmissionAuthority.open(fleet)
    config.write_text("[" * 30_000 + "]" * 30_000)  # nested past what json reads
    with pytest.raises(StorageError, match=r"config\.json is not JSON"):
        AdmissionAuthority.open(fleet)
    document["credential_lifetime"] = 3600
    config.write_text(json.dumps(document))
    assert AdmissionAuthority.open(fleet).credential_lifetime == 3600
    assert AdmissionAuthority.open(fleet, credential_lifetime=120).credential_lifetime == 120


def test_admission_set_up_once_and_endorsements_from_a_trusted_log_only(
    aw: AdmissionWorld, fleet3: tuple[Fleet, AdmissionAuthority], tmp_path: Path
) -> None:
    fleet, authority = fleet3
    with pytest.raises(Conflict):
        AdmissionAuthority.init(fleet, vendor_roots=list(aw.vendor_ca.trust_anchors), now=NOW)
    empty = Fleet.create(tmp_path / "empty", node_class=fleet.node_class("node-7"))
    with pytest.raises(NotFound):
        AdmissionAuthority.open(empty)
    with pytest.raises(MalformedStatement):
        authority.add_endorsement(b"not a statement", now=NOW)
    world = aw.world
    rogue = world.publish("nic", world.release("nic", "2.0").bundle, client=world.untrusted)
    with pytest.raises(UnknownIssuer) as untrusted:
        authority.add_endorsement(rogue[-1], now=NOW)
    assert type(untrusted.value) is UnknownIssuer
    assert untrusted.value.code == "untrusted-service"  # no longer unknown-issuer
    assert untrusted.value.detail == (
        "the statement's receipts verify under no node class's transparency services (the "
        "receipt's kid is not a trusted service key)"
    )
    name = authority.add_endorsement(aw.bmc_rim("1.0"), now=NOW)
    assert authority.add_endorsement(aw.bmc_rim("1.0"), now=NOW) == name  # idempotent


# --- must reject: the freshness and the binding ----------------------------------------------


def test_a_replayed_nonce_is_refused(fleet3: tuple[Fleet, AdmissionAuthority]) -> None:
    fleet, authority = fleet3
    prepared = prepare(fleet, authority, "node-0001")
    authority.admit(prepared.request(), now=NOW)
    before = fleet.record_of("node-0001")
    with pytest.raises(StaleNonce) as caught:
        authority.admit(prepared.request(), now=NOW)
    assert caught.value.code == "nonce-reused"
    assert fleet.record_of("node-0001") == before  # a replay changes nothing
    never = prepared.request(nonce=os.urandom(32))
    with pytest.raises(StaleNonce) as unknown:
        authority.admit(never, now=NOW)
    assert unknown.value.code == "nonce-unknown"
    late = prepare(fleet, authority, "node-0001")
    with pytest.raises(StaleNonce) as expired:
        authority.admit(late.request(), now=NOW + dt.timedelta(seconds=121))
    assert expired.value.code == "nonce-expired"


def test_a_csr_key_not_bound_in_the_evidence_is_refused(
    fleet3: tuple[Fleet, AdmissionAuthority],
) -> None:
    fleet, authority = fleet3
    prepared = prepare(fleet, authority, "node-0002")
    other = prepare(fleet, authority, "node-0002")
    before = fleet.record_of("node-0002")
    # the evidence binds this request's keys; the CSRs are for other keys
    with pytest.raises(KeyBindingMismatch) as caught:
        authority.admit(prepared.request(csrs=other.csrs), now=NOW)
    assert caught.value.code == "key-binding-mismatch"
    assert fleet.record_of("node-0002") == before
    assert fleet.events(node="node-0002")[-1].kind == "admission-refused"
    # a quote answering another challenge
    stale = prepare(fleet, authority, "node-0002")
    with pytest.raises(StaleNonce) as answered:
        authority.admit(stale.request(evidence=other.evidence.encode()), now=NOW)
    assert answered.value.code == "nonce-mismatch"


def _event_rows(fleet: Fleet) -> int:
    with contextlib.closing(sqlite3.connect(fleet.database)) as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def test_refusals_anyone_can_cause_leave_one_event_with_their_count(
    fleet3: tuple[Fleet, AdmissionAuthority],
) -> None:
    """Evidence answering another challenge, sent again and again (anyone can): each is
    refused (nonce-mismatch), and the node's event log grows by one event that counts them
    and keeps the latest refusal's EAR; a node name the fleet does not hold adds nothing."""
    fleet, authority = fleet3
    node = "node-0002"
    start = NOW + dt.timedelta(hours=2)  # after the other tests' refusals of this node
    answer = prepare(fleet, authority, node, start)  # the evidence a hostile client replays
    before = {e.seq for e in fleet.events(node=node)}
    for i in range(20):
        at = start + dt.timedelta(seconds=i)
        nonce, _ = authority.challenge(at, client=f"192.0.2.{i}", node=node)
        with pytest.raises(StaleNonce) as caught:
            authority.admit(answer.request(nonce=nonce), now=at)
        assert caught.value.code == "nonce-mismatch"
    added = [e for e in fleet.events(node=node) if e.seq not in before]
    assert [e.kind for e in added] == ["admission-refused"]
    assert added[0].detail["count"] == 20
    assert added[0].detail["error"] == "nonce-mismatch"
    # the latest refusal's detail: the EAR it names is the node's latest
    assert authority.ear_by_id(added[0].detail["ear_id"]) == authority.ear(node)
    assert added[0].detail["first_at"] == "2026-06-01T14:00:00Z"
    assert added[0].at == "2026-06-01T14:00:19Z"
    # names of nodes the fleet does not hold: challenged as any node is (no node-id
    # oracle), refused at admission as evidence that is not the node's RoT's, and nothing
    # recorded (the server's log names them)
    rows = _event_rows(fleet)
    for i in range(50):
        unknown_node = f"node-x{i}"
        nonce, _ = authority.challenge(NOW, client=f"198.51.100.{i}", node=unknown_node)
        with pytest.raises(StaleNonce) as unknown:
            authority.admit(answer.request(node=unknown_node, nonce=os.urandom(32)), now=NOW)
        assert unknown.value.code == "nonce-unknown"
        relabelled = dataclasses.replace(answer.evidence, node=unknown_node).encode()
        with pytest.raises(StaleNonce) as stale:  # the hostile client's replayed quote
            authority.admit(
                answer.request(node=unknown_node, nonce=nonce, evidence=relabelled), now=NOW
            )
        assert stale.value.code == "nonce-mismatch"
    assert _event_rows(fleet) == rows


def test_admission_challenges_count_an_ipv6_64_as_one_client(
    fleet3: tuple[Fleet, AdmissionAuthority],
) -> None:
    """A client rotating through the addresses of its /64 has one quota of challenges (the
    default burst of 32), not one per address; another /64, or an IPv4 client, its own."""
    _, authority = fleet3
    at = NOW + dt.timedelta(hours=3)
    app = admission_app(authority, clock=lambda: at)

    async def ask(addresses: list[str]) -> list[httpx.Response]:
        answers = []
        for address in addresses:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="https://fleet") as c:
                answers.append(
                    await c.post(
                        "/fleet/admission/challenge",
                        json={"node": "node-0001"},
                        headers={"accept": "application/json"},
                    )
                )
        return answers

    burst = ChallengeLimits().burst
    rotating = [f"2001:db8:7:7:{n:x}::1" for n in range(burst + 1)]
    answers = asyncio.run(ask([*rotating, "2001:db8:7:8::1", "::ffff:198.51.100.9"]))
    assert [a.status_code for a in answers[:burst]] == [200] * burst
    assert answers[burst].status_code == 503
    assert answers[burst].json()["code"] == "challenge-rate"
    assert [a.status_code for a in answers[burst + 1 :]] == [200, 200]


def test_one_key_for_both_planes_is_refused(fleet3: tuple[Fleet, AdmissionAuthority]) -> None:
    fleet, authority = fleet3
    nonce, _ = authority.challenge(NOW, node="node-0003")
    key = PrivateKey.generate(Algorithm.ES384)
    spkis = dict.fromkeys(PLANES, key.public_key.to_der())
    evidence = collect_evidence(fleet, "node-0003", nonce=nonce, keys=spkis, now=NOW)
    csrs = {p: make_csr(key, node="node-0003", plane=p) for p in PLANES}
    before = fleet.record_of("node-0003")
    with pytest.raises(PolicyRejected) as caught:
        authority.admit(AdmissionRequest("node-0003", nonce, evidence.encode(), csrs), now=NOW)
    assert caught.value.code == "plane-key-shared"
    assert fleet.record_of("node-0003") == before


def test_a_key_certified_for_one_plane_is_refused_for_the_other_in_a_later_admission(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """One key for both planes is refused across admissions as within one: the data-plane key
    of an earlier credential (valid, not revoked) asked for as the control-plane key would put
    a control-plane credential in the hands of whoever holds the data-plane key."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    first = prepare(fleet, authority, "node-0001")
    issued = authority.admit(first.request(), now=NOW).credentials
    fresh = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
    for plane, other in (("control", "data"), ("data", "control")):
        keys = dict(fresh, **{plane: first.keys[other]})  # the other plane's key, reused
        nonce, _ = authority.challenge(NOW, node="node-0001")
        spkis = {p: k.public_key.to_der() for p, k in keys.items()}
        evidence = collect_evidence(fleet, "node-0001", nonce=nonce, keys=spkis, now=NOW)
        csrs = {p: make_csr(k, node="node-0001", plane=p) for p, k in keys.items()}
        before = fleet.record_of("node-0001")
        with pytest.raises(PolicyRejected) as caught:
            authority.admit(AdmissionRequest("node-0001", nonce, evidence.encode(), csrs), now=NOW)
        assert caught.value.code == "plane-key-shared"
        assert caught.value.detail == (
            f"a key requested was certified for another plane by credential "
            f"{issued[other].serial}: each plane needs its own key, in every admission; "
            "make new keys"
        )
        assert fleet.record_of("node-0001") == before
        assert len(authority.credentials.of_node("node-0001")) == 2
    # the same key for the same plane again is a renewal, not a crossing
    again = prepare(fleet, authority, "node-0001")
    same = dict(again.keys, control=first.keys["control"])
    nonce, _ = authority.challenge(NOW, node="node-0001")
    spkis = {p: k.public_key.to_der() for p, k in same.items()}
    evidence = collect_evidence(fleet, "node-0001", nonce=nonce, keys=spkis, now=NOW)
    csrs = {p: make_csr(k, node="node-0001", plane=p) for p, k in same.items()}
    renewed = authority.admit(
        AdmissionRequest("node-0001", nonce, evidence.encode(), csrs), now=NOW
    )
    assert renewed.status == "admitted"


def test_the_store_records_the_key_each_admitted_credential_certifies(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """Admission records the key it parsed from each request, not read again from the
    certificate: what it records is what the certificate certifies, plane by plane."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    prepared = prepare(fleet, authority, "node-0001")
    admitted = authority.admit(prepared.request(), now=NOW)
    with contextlib.closing(sqlite3.connect(authority.credentials.path)) as db:
        recorded = dict(db.execute("SELECT serial, key_sha256 FROM credential_keys"))
    assert len(recorded) == len(PLANES)
    for plane, credential in admitted.credentials.items():
        certified = x509.load_der_x509_certificate(credential.der).public_key()
        spki = certified.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        assert spki == prepared.spkis[plane]
        assert recorded[credential.serial] == hashlib.sha256(spki).hexdigest()


def test_a_key_of_a_revoked_credential_is_never_certified_again(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    first = prepare(fleet, authority, "node-0001")
    admitted = authority.admit(first.request(), now=NOW)
    quarantine(fleet, "node-0001", "key suspected stolen", now=NOW, hold=False)
    revoked = sorted(c.serial for c in admitted.credentials.values())
    # the node answers a fresh challenge with the keys of its revoked credentials
    again = prepare(fleet, authority, "node-0001")
    nonce, _ = authority.challenge(NOW, node="node-0001")
    spkis = {p: k.public_key.to_der() for p, k in first.keys.items()}
    evidence = collect_evidence(fleet, "node-0001", nonce=nonce, keys=spkis, now=NOW)
    before = fleet.record_of("node-0001")
    with pytest.raises(PolicyRejected) as caught:
        authority.admit(
            AdmissionRequest("node-0001", nonce, evidence.encode(), first.csrs), now=NOW
        )
    assert caught.value.code == "key-revoked"
    named = caught.value.detail.split("credential ", 1)[1].split(",", 1)[0]
    assert named in revoked  # either plane's: the one whose key is found first
    assert caught.value.detail == (
        f"a key requested was certified by credential {named}, which was revoked: "
        "a revoked credential's key is never certified again; make new keys"
    )
    assert fleet.record_of("node-0001") == before
    # one old key beside a new one is refused too; new keys for both planes readmit it
    mixed = dict(again.csrs, data=first.csrs["data"])
    nonce, _ = authority.challenge(NOW, node="node-0001")
    spkis = {p: again.spkis[p] for p in PLANES} | {"data": spkis["data"]}
    evidence = collect_evidence(fleet, "node-0001", nonce=nonce, keys=spkis, now=NOW)
    with pytest.raises(PolicyRejected) as mixed_caught:
        authority.admit(AdmissionRequest("node-0001", nonce, evidence.encode(), mixed), now=NOW)
    assert mixed_caught.value.code == "key-revoked"
    assert authority.admit(again.request(), now=NOW).status == "admitted"


def test_a_key_revoked_while_an_admission_certifies_it_is_refused_at_the_commit(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """node-0002 asks for credentials on keys a credential of node-0001 certified (its
    operator holds them: stolen, or one owner's two nodes); node-0001 is quarantined for it,
    its credentials revoked, while node-0002's admission is under way, after the admission
    checked the keys. A revoked credential's key is never certified again: the commit checks
    the keys once more and refuses (``key-revoked``), node-0002 unchanged."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    first = prepare(fleet, authority, "node-0001")
    authority.admit(first.request(), now=NOW)
    nonce, _ = authority.challenge(NOW, node="node-0002")
    spkis = {p: k.public_key.to_der() for p, k in first.keys.items()}
    evidence = collect_evidence(fleet, "node-0002", nonce=nonce, keys=spkis, now=NOW)
    csrs = {p: make_csr(k, node="node-0002", plane=p) for p, k in first.keys.items()}
    issue = authority.ca._issue_key
    raced: list[bool] = []

    def issue_after_a_quarantine(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(True)
            quarantine(fleet, "node-0001", "its keys are held elsewhere", now=NOW, hold=False)
        return issue(*args, **kwargs)

    monkeypatch.setattr(authority.ca, "_issue_key", issue_after_a_quarantine)
    before = fleet.record_of("node-0002")
    with pytest.raises(PolicyRejected) as caught:
        authority.admit(AdmissionRequest("node-0002", nonce, evidence.encode(), csrs), now=NOW)
    assert raced
    assert caught.value.code == "key-revoked"
    assert fleet.record_of("node-0002") == before
    assert authority.credentials.of_node("node-0002") == []


def test_another_nodes_evidence_is_refused(fleet3: tuple[Fleet, AdmissionAuthority]) -> None:
    fleet, authority = fleet3
    before = fleet.record_of("node-0001").status  # the module's fleet: what earlier tests left
    mine = prepare(fleet, authority, "node-0001")
    theirs = prepare(fleet, authority, "node-0002")
    with pytest.raises(MalformedEvidence) as named:
        authority.admit(theirs.request(node="node-0001", nonce=mine.nonce), now=NOW)
    assert named.value.code == "evidence-node"
    # node-0002's genuine answer to a challenge issued to node-0001, relabelled as its
    borrowed = prepare(fleet, authority, "node-0002")
    nonce, _ = authority.challenge(NOW, node="node-0001")
    evidence = collect_evidence(fleet, "node-0002", nonce=nonce, keys=borrowed.spkis, now=NOW)
    forged = dataclasses.replace(evidence, node="node-0001")
    with pytest.raises(ChainNotTrusted) as caught:
        authority.admit(
            borrowed.request(node="node-0001", nonce=nonce, evidence=forged.encode()), now=NOW
        )
    assert caught.value.code == "node-identity"
    # ... and node-0002's own answer to its own challenge, sent as node-0001's
    relabelled = dataclasses.replace(borrowed.evidence, node="node-0001")
    with pytest.raises(StaleNonce) as issued:
        authority.admit(borrowed.request(node="node-0001", evidence=relabelled.encode()), now=NOW)
    assert issued.value.code == "nonce-node"
    assert fleet.record_of("node-0001").status == before  # no refusal changed the node


def test_an_answer_from_before_a_quarantine_is_refused(
    fleet3: tuple[Fleet, AdmissionAuthority],
) -> None:
    fleet, authority = fleet3
    kept = prepare(fleet, authority, "node-0002")
    quarantine(fleet, "node-0002", "suspected drift", now=NOW, hold=False)
    before = fleet.record_of("node-0002")
    with pytest.raises(StaleNonce) as caught:
        authority.admit(kept.request(), now=NOW)
    assert caught.value.code == "nonce-superseded"
    assert fleet.record_of("node-0002") == before
    # a challenge issued after the quarantine readmits the node
    assert attest_node(fleet, "node-0002", now=NOW, authority=authority).status == "admitted"


# --- must reject: what the evidence says -----------------------------------------------------


def test_never_logged_firmware_quarantines_until_recovered(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    # vendor-signed BMC firmware that was never published: the RoT boots it (it verifies)
    secret = aw.world.bundle("bmc", svn=3, tag="never logged")
    fleet.rot("node-0001").boot(secret, now=NOW)
    prepared = prepare(fleet, authority, "node-0001")
    _denied(authority, prepared.request(), "rot", "executables", AR4SI.UNRECOGNIZED_RUNTIME)
    reasons = fleet.record_of("node-0001").reason
    assert "rot: reference-values: no logged reference value for runtime" in reasons
    # recovery: the node boots its logged firmware again, and a fresh attestation readmits it
    fleet.node("node-0001").boot(now=LATER)
    result = attest_node(fleet, "node-0001", now=LATER, authority=authority)
    assert result.status == "admitted"
    assert fleet.record_of("node-0001").reason == "readmitted"


def test_a_rolled_back_svn_is_refused(aw: AdmissionWorld, tmp_path: Path) -> None:
    world = aw.world
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    # the vendor's newer release (SVN 4) is logged: the minimum SVN of the BMC is 4 now
    authority.add_endorsement(aw.bmc_rim("2.0"), now=NOW)
    release = world.release("bmc", "2.0")
    node = fleet.node("node-0002")
    node.update("bmc", release.bundle, release.statements, now=NOW)
    node.boot(now=NOW)
    assert attest_node(fleet, "node-0002", now=NOW, authority=authority).status == "admitted"
    prepared = prepare(fleet, authority, "node-0001")  # still on SVN 3
    _denied(authority, prepared.request(), "rot", "executables", AR4SI.CONTRAINDICATED_RUNTIME)
    assert "svn: SVN 3 is below the logged minimum 4" in fleet.record_of("node-0001").reason


def test_a_debug_unlocked_claim_the_certificates_deny_is_refused(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    prepared = prepare(fleet, authority, "node-0001")
    report = report_data(prepared.nonce, prepared.spkis)
    quote = debug_unlocked_quote(fleet, "node-0001", report)
    evidence = dataclasses.replace(prepared.evidence, quote=quote)
    request = prepared.request(evidence=evidence.encode())
    # The node's ROM certified "debug locked" in its FMC alias certificate: a quote by the
    # runtime's RT alias key saying otherwise does not verify, before any policy runs.
    with pytest.raises(VerificationFailed, match="DEVICE_INFO flags"):
        authority.admit(request, now=NOW)


def test_unreviewed_firmware_is_refused_when_reviews_are_required(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    klass = aw.node_class(safe="medium")  # 1.0 is reviewed, no open finding
    fleet, authority = aw.fleet(tmp_path / "fleet", 2, klass=klass)
    assert attest_node(fleet, "node-0001", now=NOW, authority=authority).status == "admitted"
    # 2.0 is logged with its reference values, but nobody reviewed it
    authority.add_endorsement(aw.bmc_rim("2.0"), now=NOW)
    fleet.rot("node-0002").boot(aw.world.release("bmc", "2.0").bundle, now=NOW)
    prepared = prepare(fleet, authority, "node-0002")
    _denied(authority, prepared.request(), "rot", "executables", AR4SI.UNRECOGNIZED_RUNTIME)
    assert "safe-review: no logged OCP SAFE review" in fleet.record_of("node-0002").reason
    # a clean review of 2.0 admits it; a later one with an open finding above the class's
    # severity (CVSS 8.1, "medium" allows below 7.0) refuses it again
    authority.add_endorsement(aw.review("2.0"), now=NOW)
    assert attest_node(fleet, "node-0002", now=NOW, authority=authority).status == "admitted"
    authority.add_endorsement(aw.review("2.0", (8.1,)), now=NOW)
    again = prepare(fleet, authority, "node-0002")
    _denied(authority, again.request(), "rot", "executables", AR4SI.UNSAFE_RUNTIME)
    assert "lists an open issue with CVSS 8.1" in fleet.record_of("node-0002").reason


def test_a_device_with_bad_spdm_measurements_is_refused(aw: AdmissionWorld, tmp_path: Path) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    prepared = prepare(fleet, authority, "node-0001")
    # the NIC holds vendor-signed firmware nobody published: its signed measurements are
    # not the logged reference values
    firmware = aw.world.bundle("nic", svn=3, tag="side-loaded")
    nic = device_evidence(fleet, "node-0001", "nic", firmware, prepared.nonce)
    devices = {**prepared.evidence.devices, "nic": nic}
    request = prepared.request(
        evidence=dataclasses.replace(prepared.evidence, devices=devices).encode()
    )
    _denied(authority, request, "nic", "executables", AR4SI.UNRECOGNIZED_RUNTIME)
    # a device that does not answer, and another node's device in its place
    missing = prepare(fleet, authority, "node-0002")
    gone = {k: v for k, v in missing.evidence.devices.items() if k != "gpu"}
    request = missing.request(evidence=dataclasses.replace(missing.evidence, devices=gone).encode())
    _denied(authority, request, "gpu", "instance-identity", AR4SI.UNEXPECTED_EVIDENCE)
    swapped = prepare(fleet, authority, "node-0002")
    foreign = device_evidence(
        fleet, "node-0001", "gpu", aw.world.release("gpu", "1.0").bundle, swapped.nonce
    )
    devices = {**swapped.evidence.devices, "gpu": foreign}
    request = swapped.request(
        evidence=dataclasses.replace(swapped.evidence, devices=devices).encode()
    )
    _denied(authority, request, "gpu", "instance-identity", AR4SI.UNRECOGNIZED_INSTANCE)


# --- quarantine, readmission, key release, scanning -----------------------------------------


def test_quarantine_revokes_stops_placement_refuses_keys_until_readmitted(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    first = attest_node(fleet, "node-0001", now=NOW, authority=authority)
    attest_node(fleet, "node-0002", now=NOW, authority=authority)
    node_may_receive_keys(fleet, "node-0001", now=NOW)
    assert authority.place("vm-1", now=NOW, node="node-0001").state == "running"
    quarantine(fleet, "node-0001", "suspected tampering", evidence={"ticket": 7}, now=NOW)
    store = CredentialStore(fleet.database)
    for credential in first.credentials.values():
        status = store.status(credential.serial)
        assert status is not None
        assert status.reason == "suspected tampering"
    assert [p.state for p in authority.placements("node-0001")] == ["stopped"]
    with pytest.raises(ReleaseDenied) as denied:
        node_may_receive_keys(fleet, "node-0001", now=NOW)
    assert denied.value.code == "node-not-admitted"
    placed = authority.place("vm-2", now=NOW)  # placement goes around the quarantined node
    assert placed.node == "node-0002"
    event = fleet.events(node="node-0001")[-1]
    assert event.kind == "quarantine-effects"
    assert sorted(event.detail["revoked"]) == sorted(c.serial for c in first.credentials.values())
    assert authority.crl(now=NOW)  # the revoked serials are listed (checked in the API tests)
    # an operator's hold outlasts a good attestation; readmit lifts it, with a fresh one
    with pytest.raises(AdmissionDenied) as held:
        attest_node(fleet, "node-0001", now=LATER, authority=authority)
    assert held.value.code == "node-held"
    assert readmit(fleet, "node-0001", now=LATER, authority=authority).status == "admitted"
    node_may_receive_keys(fleet, "node-0001", now=LATER)
    with pytest.raises(ReleaseDenied) as stale:
        node_may_receive_keys(fleet, "node-0001", now=LATER + dt.timedelta(hours=2))
    assert stale.value.code == "attestation-expired"


def test_the_scanner_quarantines_on_drift_and_readmits_on_recovery(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    scanner = Scanner(fleet, scan_attest(fleet, authority), period=300, concurrency=2)
    report = scanner.scan(NOW)
    assert report.statuses == {"node-0001": "admitted", "node-0002": "admitted"}
    fleet.rot("node-0002").boot(aw.world.bundle("bmc", svn=3, tag="drift"), now=NOW)
    drifted = scanner.scan(NOW + dt.timedelta(seconds=400))
    assert drifted.quarantined == ["node-0002"]
    assert drifted.failures == {}
    fleet.node("node-0002").boot(now=NOW + dt.timedelta(seconds=500))
    recovered = scanner.scan(NOW + dt.timedelta(seconds=800))
    assert recovered.statuses["node-0002"] == "admitted"
    kinds = [e.kind for e in fleet.events(node="node-0002")]
    assert kinds.count("quarantined") == 1
    assert kinds[-1] == "admitted"


def test_a_node_whose_device_reference_values_expired_sends_its_evidence_and_is_refused_for_it(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """Under ``expired_manifest = "report"`` (the default) a node's devices are measured
    against logged reference values that have expired, as its boot runs them: the evidence
    carries their signed measurements (it used to carry none: ``Platform.measure`` refused
    ``rim-expired`` first, and the verifier saw only ``device-evidence-missing``). The
    verifier judges the dates itself, from the logged values, and refuses each device for
    that reason."""
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    expired = NOW + dt.timedelta(days=400)  # every 1.0 CoRIM ended at NOW + 365 days
    nonce, _ = authority.challenge(NOW, client="node-0001", node="node-0001")
    spkis = {p: PrivateKey.generate(Algorithm.ES384).public_key.to_der() for p in PLANES}
    evidence = collect_evidence(fleet, "node-0001", nonce=nonce, keys=spkis, now=expired)
    assert sorted(evidence.devices) == ["gpu", "nic", "nvme"]
    for m in fleet.node("node-0001").measure(now=expired):
        assert m.ok
        assert m.validity is not None
        assert m.validity.endswith("expired at 2027-06-01T12:00:00+00:00")
    appraisal = authority.verifier.appraise(
        "node-0001", evidence, nonce=nonce, keys=spkis, now=expired
    )
    assert not appraisal.affirming
    for device in ("gpu", "nic", "nvme"):
        assert appraisal.result.submods[device].status is not TrustTier.AFFIRMING
        executables = appraisal.result.submods[device].trust_vector["executables"]
        assert executables == AR4SI.UNRECOGNIZED_RUNTIME
        reasons = [r for r in appraisal.reasons if r.startswith(f"{device}: ")]
        assert any("(its logged values have expired)" in r for r in reasons), reasons
    # within the dates the same node's devices affirm
    nonce, _ = authority.challenge(NOW, client="node-0001", node="node-0001")
    fresh = collect_evidence(fleet, "node-0001", nonce=nonce, keys=spkis, now=NOW)
    ok = authority.verifier.appraise("node-0001", fresh, nonce=nonce, keys=spkis, now=NOW)
    for device in ("gpu", "nic", "nvme"):
        assert ok.result.submods[device].status is TrustTier.AFFIRMING


def test_an_endorsement_whose_receipt_is_from_the_future_is_refused(
    aw: AdmissionWorld, fleet3: tuple[Fleet, AdmissionAuthority]
) -> None:
    # logged at NOW: to a fleet whose clock reads a day earlier its receipt is from the future
    _fleet, authority = fleet3
    with pytest.raises(UnknownIssuer) as caught:
        authority.add_endorsement(aw.bmc_rim("1.0"), now=NOW - dt.timedelta(days=1))
    assert type(caught.value) is UnknownIssuer
    assert caught.value.code == "untrusted-service"
    assert caught.value.detail.startswith(
        "the statement's receipts verify under no node class's transparency services (the "
        "receipt is issued at "
    )
    assert "(CWT iat), 86400 s after now" in caught.value.detail
