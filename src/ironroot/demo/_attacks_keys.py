"""Attacks on keys and evidence: an HSM export, another crypto user or a lone officer of the
HSM, key release without attestation, with a stolen
EAR or to a quarantined node, a released key swapped on its way to the VM, and a tampered audit
bundle."""

from __future__ import annotations

from ironroot.demo._act_audit import audit_trust, export_audit
from ironroot.demo._act_keys import hsm_roots, release_to_vm, vm_ear
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


def other_hsm_user(story: Story, attempt: Attempt, *, as_key_user: bool = False) -> None:
    """``as_key_user``: the key service itself decrypts instead, which db-key allows (what
    ``tests/demo/test_demo_honesty.py`` runs to show the refusal is the HSM's user check)."""
    hsm = story.need(story.hsm, "HSM")
    if as_key_user:
        session = story.need(story.hsm_user, "HSM session")
        attempt.note("the key service, db-key's user, decrypts the payments ledger")
    else:
        session = story.need(story.hsm_other_user, "HSM session")
        attempt.note(
            "the HSM's backup agent, a crypto user too, decrypts the payments ledger with db-key"
        )
    hsm.decrypt(session, story.db_key, story.sealed_ledger)


def lone_hsm_officer(story: Story, attempt: Attempt) -> None:
    from ironroot.crypto import Algorithm, PrivateKey

    hsm = story.need(story.hsm, "HSM")
    officer = story.need(story.hsm_officer, "HSM officer session")
    rogue = PrivateKey.generate(Algorithm.ES384)
    attempt.note(
        "an insider with one crypto officer's credential installs a verifier key of their own, "
        "to release db-key on EARs they sign"
    )
    hsm.add_release_verifier(officer, "https://rogue-verifier.example", rogue.public_key.to_pem())


def unattested_vm(story: Story, attempt: Attempt) -> None:
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.ear import Appraisal, AttestationResult, VerifierId, sign_ear_jwt

    def self_made(nonce: bytes, report_data: bytes) -> bytes:
        now = int(story.now().timestamp())
        appraisal = Appraisal.from_vector(
            {"instance-identity": 2, "configuration": 2, "hardware": 2},
            policy_id="urn:example:anything",
            evidence={"report_data": report_data.hex(), "debug": False, "svns": {"firmware": 9}},
        )
        result = AttestationResult(
            iat=now, exp=now + 600, verifier_id=VerifierId("me", "1"), submods={"vm": appraisal}
        )
        return sign_ear_jwt(result, PrivateKey.generate(Algorithm.ES384))

    node = node_at(story, 0)
    attempt.note(
        f"a VM on {node} (admitted) that never attested presents an affirming EAR it signed "
        "itself, bound to the nonce and its key"
    )
    release_to_vm(story, node, self_made)


def stolen_ear(story: Story, attempt: Attempt, *, same_key: bool = False) -> None:
    """``same_key``: the EAR is made for the wrapping key sent with it (no theft: the honest
    release, for the honesty test)."""
    from ironroot.keyrelease import TeeKeyPair

    node = story.need(story.cvm_node, "confidential VM")
    honest = TeeKeyPair.generate("ML-KEM-768")

    def stolen(nonce: bytes, report_data: bytes) -> bytes:
        return vm_ear(story, node, report_data if same_key else honest.report_data(nonce))

    attempt.note(
        f"payments-db's fresh EAR from {node}, intercepted, sent with the attacker's wrapping key"
    )
    release_to_vm(story, node, stolen)


def swapped_release(story: Story, attempt: Attempt, *, swap: bool = True) -> None:
    """``swap=False``: the released key reaches the VM as the HSM wrapped it."""
    import dataclasses
    import os

    from ironroot.hsm import KeyType, wrap_key_kem

    node = story.need(story.cvm_node, "confidential VM")
    tee, released, nonce = release_to_vm(story, node)
    own = wrap_key_kem(tee.public.key, KeyType.AES_256, os.urandom(32))  # type: ignore[arg-type]
    attempt.note(
        f"a real release of db-key to a VM on {node}; a party on the way swaps the wrapped key "
        "for one of its own (wrapped to the VM's public key), keeping the HSM's statement"
    )
    forged = dataclasses.replace(released, wrapped=own) if swap else released
    tee.unwrap(forged, nonce=nonce, hsm_roots=hsm_roots(story), now=story.now())


def quarantined_vm(story: Story, attempt: Attempt) -> None:
    fleet = story.need(story.fleet, "fleet")
    quarantined = [r.id for r in fleet.records() if r.status == "quarantined"]
    if not quarantined:
        raise NotRefused("no node is quarantined: nothing to try (the drift attack runs first)")
    node = quarantined[0]
    attempt.note(f"a VM on {node} ({fleet.record_of(node).status}) asks for db-key")
    release_to_vm(story, node)


def tampered_audit(story: Story, attempt: Attempt, *, flip: bool = True) -> None:
    """``flip=False``: the sealed bundle is decoded and encoded again, unchanged."""
    from ironroot.audit import verify_bundle
    from ironroot.cose import Limits, decode_cbor, encode_cbor

    node = node_at(story, 1)
    data = export_audit(story, node)
    doc = decode_cbor(data, Limits(max_bytes=len(data)))
    member = "firmware/host/bundle.bin"
    if not isinstance(doc, dict) or member not in doc.get("members", {}):
        raise NotRefused(f"the bundle has no {member} to alter")
    blob = bytearray(doc["members"][member])
    blob[len(blob) // 2] ^= 0x01 if flip else 0x00
    doc["members"][member] = bytes(blob)
    forged = encode_cbor(doc)
    attempt.note(
        f"{node}'s sealed audit bundle: one bit of {member} {'flipped' if flip else 'kept'}"
    )
    verify_bundle(forged, audit_trust(story))
