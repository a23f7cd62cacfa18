"""Act 6: a confidential VM on an admitted node gets its key from the HSM."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from rich.markup import escape

from ironroot.demo._act_fleet import class_trust
from ironroot.demo._world import Story

if TYPE_CHECKING:
    from cryptography import x509

    from ironroot.attestation import AppraisalPolicy
    from ironroot.keyrelease import ReleasedKey, TeeKeyPair

VERIFIER: Final = "https://verifier.ironroot.example"
"""The attestation verifier the key's release policy names as its authority."""


DB_KEY: Final = "db-key"
"""The key the confidential VM asks for (AES-256, in the HSM, released only by policy)."""


CVM_IMAGE: Final = hashlib.sha384(b"confidential VM image: payments-db 2026.11").digest()


def vm_appraisal_policy() -> AppraisalPolicy:
    """How the verifier appraises the RoT quote a confidential VM's node gives: the quote
    must chain to the vendor CA and answer the expected report data (both gates), and debug
    must be locked."""
    from ironroot.attestation import AR4SI, AppraisalPolicy, PolicyRule

    return AppraisalPolicy(
        name="confidential-vm",
        rules=(
            PolicyRule(
                "chain",
                "root_trusted",
                "instance-identity",
                AR4SI.UNRECOGNIZED_INSTANCE,
                "the quote does not chain to the vendor CA ({root})",
                gate=True,
            ),
            PolicyRule(
                "fresh",
                "nonce_ok",
                "instance-identity",
                AR4SI.UNTRUSTWORTHY_INSTANCE,
                "the quote does not answer the key service's nonce and the VM's key",
                gate=True,
            ),
            PolicyRule(
                "debug", "!debug", "configuration", AR4SI.UNSUPPORTABLE_CONFIG, "debug is unlocked"
            ),
        ),
        affirm={
            "instance-identity": AR4SI.TRUSTWORTHY_INSTANCE,
            "configuration": AR4SI.APPROVED_CONFIG,
            "hardware": AR4SI.GENUINE_HARDWARE,
        },
    )


def release_conditions(svn: int, manifest: str) -> list[dict[str, object]]:
    """What the database key's release requires of the EAR: affirming, debug locked, firmware
    at SVN ``svn`` or above, and the node's RoT running the BMC firmware whose manifest
    digest is ``manifest`` (hex)."""
    return [
        {"claim": "ear.status", "equals": "affirming"},
        {"claim": "evidence.debug", "equals": False},
        {"claim": "evidence.svns.firmware", "greaterOrEquals": svn},
        {"claim": "evidence.measurements.manifest", "equals": manifest},
    ]


def release_policy(conditions: list[dict[str, object]]) -> dict[str, object]:
    """The key's release policy in the Azure Key Vault grammar: ``conditions``, all of them,
    on an EAR signed by :data:`VERIFIER`."""
    return {"version": "1.0.0", "anyOf": [{"authority": VERIFIER, "allOf": conditions}]}


def vm_ear(story: Story, node: str, report_data: bytes) -> bytes:
    """The verifier's EAR for the quote ``node``'s RoT gives over ``report_data`` (the VM's
    binding of the key service's nonce and its wrapping key)."""
    from ironroot.attestation import appraise_evidence

    fleet = story.need(story.fleet, "fleet")
    verifier = story.need(story.verifier, "verifier")
    quote = fleet.rot(node).quote(report_data)
    result = appraise_evidence(
        quote,
        verifier.endorsements,
        verifier.policy,
        nonce=report_data,
        now=story.now(),
        lifetime=verifier.lifetime,
        caches=verifier.caches,
    )
    return bytes(verifier.sign(result))


def hsm_roots(story: Story) -> list[x509.Certificate]:
    """What a VM trusts the key service's HSM by: the HSM's device identity (a DPE child of
    its machine's RoT), not the vendor CA's root, to which every machine's DICE layers and
    each DPE child of any of them chain: any one could sign a release statement."""
    from ironroot.crypto import load_certificate

    chain = story.need(story.hsm, "HSM").attestation_chain
    return [load_certificate(chain[1], what="the HSM's device certificate", der_only=True)]


def release_to_vm(
    story: Story, node: str, ear_for: Callable[[bytes, bytes], bytes] | None = None
) -> tuple[TeeKeyPair, ReleasedKey, bytes]:
    """The fleet's key release path for a VM on ``node``: the VM makes an ML-KEM-768
    wrapping key and asks the key service (HTTP) for a nonce; the node's RoT quotes the
    binding and the verifier appraises it — or ``ear_for(nonce, report_data)`` gives the EAR
    the VM presents instead —; the key service's fleet gate refuses a node that is not
    admitted (:class:`ironroot.fleet.FleetReleaseGate`), and the HSM decides. Returns
    ``(tee, released key, nonce)``."""
    from ironroot.keyrelease import TeeKeyPair

    client = story.need(story.keys, "key service")
    tee = TeeKeyPair.generate("ML-KEM-768")
    nonce = client.challenge()
    report_data = tee.report_data(nonce)
    ear = vm_ear(story, node, report_data) if ear_for is None else ear_for(nonce, report_data)
    response = client.release(DB_KEY, ear=ear, wrapping_key=tee.public_spki, nonce=nonce)
    return tee, response, nonce


def key_release(story: Story) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ironroot.attestation import AttestationService, Endorsements
    from ironroot.crypto import Algorithm, PrivateKey
    from ironroot.firmware import FirmwareBundle
    from ironroot.fleet import FleetReleaseGate
    from ironroot.hsm import DeviceIdentity, DirectoryStorage, Hsm, KeyAttributes, KeyType, Role
    from ironroot.keyrelease import (
        HsmVault,
        KeyReleaseClient,
        KeyReleaseServerThread,
        KeyReleaseService,
        ReleasableKey,
        create_keyrelease_app,
    )
    from ironroot.rot import Device

    ui = story.ui
    fleet = story.need(story.fleet, "fleet")
    authority = story.need(story.authority, "admission")
    ca = story.need(story.vendor_ca, "vendor CA")
    now = story.now()

    # The key service's HSM runs on a machine of its own whose RoT seals its key store.
    kms = Device.create(story.path("kms-rot"))
    kms.provision(ca, vendor_key_hash=class_trust(story).vendor_key_hash, now=now)
    kms.boot(story.release("bmc", "2.0").bundle, now=now)
    child = kms.derive_child(hashlib.sha384(b"ironroot hsm firmware").digest(), label="hsm")
    storage = DirectoryStorage(story.path("hsm"), counter=kms.counter("hsm"))
    story.stack.callback(storage.close)
    officer_pass, user_pass = os.urandom(16).hex().encode(), os.urandom(16).hex().encode()
    backup_pass, second_pass = os.urandom(16).hex().encode(), os.urandom(16).hex().encode()
    hsm = Hsm.initialize(
        storage,
        kms.sealing_secret("hsm"),
        officer="officer",
        credential=officer_pass,
        device=DeviceIdentity(
            child.ecc_key, (child.ecc_certificate, *reversed(kms.chain(Algorithm.ES384)))
        ),
    )
    story.stack.callback(hsm.close)
    story.hsm = hsm
    officer = story.hsm_officer = hsm.login("officer", officer_pass)
    hsm.add_identity(officer, "keyrelease", Role.USER, user_pass)
    hsm.add_identity(officer, "backup-agent", Role.USER, backup_pass)  # another crypto user
    # dual control: from here on, who may do what and whom the HSM trusts take two officers
    hsm.add_identity(officer, "officer-2", Role.OFFICER, second_pass)
    hsm.set_officer_quorum(officer, 2)
    story.verifier = AttestationService(
        endorsements=Endorsements.build(service_keys={}, vendor_roots=ca.trust_anchors),
        signing_key=PrivateKey.generate(Algorithm.ES384),
        policy=vm_appraisal_policy(),
    )
    # the second officer approves this one install: this verifier, this key
    ear_key = story.verifier.public_keys[0].to_pem()
    hsm.approve(officer, "verifier-add", VERIFIER, ear_key, approvers=[("officer-2", second_pass)])
    hsm.add_release_verifier(officer, VERIFIER, ear_key)
    bmc2 = FirmwareBundle.parse(story.release("bmc", "2.0").bundle).manifest_digest().hex()
    conditions = release_conditions(4, bmc2)
    policy = json.dumps(release_policy(conditions), indent=2)
    story.db_key = hsm.generate(
        officer,
        KeyType.AES_256,
        KeyAttributes.of(
            ["encrypt", "decrypt"],
            exportable=True,
            label=DB_KEY,
            release_policy=policy,
            users=["keyrelease"],  # the HSM's other crypto users may not use it
        ),
    )
    user = story.hsm_user = hsm.login("keyrelease", user_pass)
    story.hsm_other_user = hsm.login("backup-agent", backup_pass)
    sealed = hsm.encrypt(user, story.db_key, b"payments ledger, encrypted at rest")
    story.sealed_ledger = sealed
    # The fleet's condition on every release, checked by the key service before the HSM
    # decides: no key to a VM whose node is not admitted (quarantine refuses at once).
    gate = FleetReleaseGate(fleet, story.verifier.public_keys, clock=story.now)
    service = story.key_service = KeyReleaseService(
        keys=[ReleasableKey(DB_KEY, story.db_key)], vault=HsmVault(hsm, user), gate=gate
    )
    server = story.stack.enter_context(KeyReleaseServerThread(create_keyrelease_app(service)))
    story.keyservice_url = server.url
    story.keys = story.stack.enter_context(KeyReleaseClient(server.url))
    ui.say(
        "The key service's HSM is sealed to its own RoT, under dual control (two crypto "
        "officers installed the verifier it trusts); it holds the payments database key "
        "(AES-256), releasable only under this policy (Azure Key Vault grammar):"
    )
    for condition in conditions:
        ui.fact("requires", escape(json.dumps(condition)))
    placement = authority.place("payments-db", now=story.now())
    node = story.cvm_node = placement.node
    ui.say(
        f"The control plane places confidential VM [bold]payments-db[/bold] on {node} (an "
        "admitted node); the VM's measurement is certified by the node's RoT (a DPE child)."
    )
    fleet.rot(node).derive_child(CVM_IMAGE, label="cvm")
    tee, released, nonce = release_to_vm(story, node)
    key = tee.unwrap(
        released,
        nonce=nonce,
        hsm_roots=hsm_roots(story),
        kid=DB_KEY,
        handle=story.db_key,  # the key itself: the name is the key service's label
        now=story.now(),
    )
    plaintext = AESGCM(key.material).decrypt(sealed[:12], sealed[12:], b"")
    ui.ok(
        f"the HSM released {DB_KEY} to payments-db, wrapped to its ML-KEM-768 key, with its "
        "signed release statement (verified by the VM to the vendor root); the VM "
        f"decrypts: {escape(plaintext.decode())!r}"
    )
    story.facts["key-release"] = {
        "key_service": server.url,
        "vm": "payments-db",
        "node": node,
        "released": DB_KEY,
    }
