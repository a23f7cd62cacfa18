"""Attacks on keys and evidence: an HSM export, key release without attestation, with a stolen
EAR or to a quarantined node, and a tampered audit bundle."""

from __future__ import annotations

from ironroot.demo._act_audit import audit_trust, export_audit
from ironroot.demo._act_keys import release_to_vm, vm_ear
from ironroot.demo._attempt import Attempt, NotRefused, node_at
from ironroot.demo._world import (
    Story,
)


def hsm_export(story: Story, attempt: Attempt) -> None:
    from ironroot.keyrelease import TeeKeyPair

    hsm = story.need(story.hsm, "HSM")
    user = story.need(story.hsm_user, "HSM session")
    thief = TeeKeyPair.generate("ML-KEM-768")
    attempt.note(
        "an insider with the key service's crypto-user session wraps db-key to their own key"
    )
    hsm.wrap(user, story.db_key, recipient=thief.public_spki)


def unattested_vm(story: Story, attempt: Attempt) -> None:
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.ear import Appraisal, AttestationResult, VerifierId, sign_ear_jwt
    from ironroot.keyrelease import TeeKeyPair

    client = story.need(story.keys, "key service")
    node = node_at(story, 0)
    tee = TeeKeyPair.generate("ML-KEM-768")
    nonce = client.challenge()
    now = int(story.now().timestamp())
    appraisal = Appraisal.from_vector(
        {"instance-identity": 2, "configuration": 2, "hardware": 2},
        policy_id="urn:example:anything",
        evidence={
            "report_data": tee.report_data(nonce).hex(),
            "debug": False,
            "svns": {"firmware": 9},
        },
    )
    result = AttestationResult(
        iat=now, exp=now + 600, verifier_id=VerifierId("me", "1"), submods={"vm": appraisal}
    )
    ear = sign_ear_jwt(result, PrivateKey.generate(Algorithm.ES384))
    attempt.note("a VM that never attested presents an affirming EAR it signed itself")
    client.release("db-key", ear=ear, wrapping_key=tee.public_spki, nonce=nonce)
    del node


def stolen_ear(story: Story, attempt: Attempt) -> None:
    from ironroot.keyrelease import TeeKeyPair

    client = story.need(story.keys, "key service")
    node = story.facts["keyrelease"]["node"]
    honest = TeeKeyPair.generate("ML-KEM-768")
    nonce = client.challenge()
    ear = vm_ear(story, node, honest.report_data(nonce))
    thief = TeeKeyPair.generate("ML-KEM-768")
    attempt.note("the genuine VM's fresh EAR, intercepted, sent with the attacker's wrapping key")
    client.release("db-key", ear=ear, wrapping_key=thief.public_spki, nonce=nonce)


def quarantined_vm(story: Story, attempt: Attempt) -> None:
    fleet = story.need(story.fleet, "fleet")
    quarantined = [r.id for r in fleet.records() if r.status == "quarantined"]
    if not quarantined:
        raise NotRefused("no quarantined node to try (the drift attack did not quarantine)")
    node = quarantined[0]
    attempt.note(f"a VM on {node} ({fleet.record_of(node).status}) asks for db-key")
    release_to_vm(story, "payments-db-2", node)


def tampered_audit(story: Story, attempt: Attempt) -> None:
    import cbor2

    from ironroot.audit import verify_bundle

    node = node_at(story, 1)
    data = export_audit(story, node)
    doc = cbor2.loads(data)
    member = "firmware/host/bundle.bin"
    blob = bytearray(doc["members"][member])
    blob[len(blob) // 2] ^= 0x01
    doc["members"][member] = bytes(blob)
    forged = cbor2.dumps(doc, canonical=True)
    attempt.note(f"{node}'s sealed audit bundle: one bit of {member} flipped")
    verify_bundle(forged, audit_trust(story))
