"""Secure key release end to end, in one process, with the real pieces (for ``make demo``).

:func:`demo_release` builds, under ``workdir``:

* a vendor CA and a vendor-signed firmware bundle (SVN 3), booted on two hosts' RoTs;
* on host A a confidential VM measured as the approved image, on host B one measured as
  another image: each is a DPE child of its host's RoT, its measurement extended into PCR2;
* a verifier (ES384 EAR signing key; appraisal: the quote chains to the vendor CA, answers the
  expected report data, debug locked);
* an HSM whose device identity is a DPE child of a third host, holding an exportable AES-256
  key whose release policy (Azure grammar) requires the verifier as authority, an affirming
  EAR, debug off, firmware SVN ≥ 3 and PCR2 = the approved VM image;
* the key service over HTTP on a loopback port.

Each VM then makes an ML-KEM-768 wrapping key, asks the key service for a nonce, has its host's
RoT quote ``nonce ‖ SHA-256(wrapping key)``, gets an EAR from the verifier and asks for the
key. The verifier here appraises the quote against that report data as the relying party's
nonce (the background-check model; the verifier's HTTP API redeems only nonces it issued
itself, so this step calls the verifier's public appraisal function in process). VM A gets the
key and proves it by decrypting what the HSM encrypted with it; VM B is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ironroot.attestation import (
    AR4SI,
    DEFAULT_POLICY,
    AppraisalPolicy,
    AttestationService,
    Endorsements,
    PolicyRule,
    appraise_evidence,
)
from ironroot.crypto import Algorithm, PrivateKey, load_certificate
from ironroot.errors import ReleaseDenied
from ironroot.firmware import Component, build_bundle, key_descriptor_hash, sign_bundle
from ironroot.hsm import (
    DeviceIdentity,
    DirectoryStorage,
    Hsm,
    KeyAttributes,
    KeyType,
    Role,
)
from ironroot.keyrelease._client import KeyReleaseClient
from ironroot.keyrelease._http import KeyReleaseServerThread, create_keyrelease_app
from ironroot.keyrelease._service import (
    HsmVault,
    KeyReleaseService,
    ReleasableKey,
)
from ironroot.keyrelease.tee import TeeKeyPair
from ironroot.rot import Device, VendorCA

__all__ = ["DEMO_APPRAISAL_POLICY", "VERIFIER_NAME", "demo_release", "rot_verifier", "vm_pcr2"]

VERIFIER_NAME: Final = "https://verifier.example"
_KEY_NAME: Final = "db-key"

_CHAIN_RULE: Final = next(r for r in DEFAULT_POLICY.rules if r.name == "chain")
"""The default policy's ``chain`` gate: the quote chains to a trusted vendor root."""

DEMO_APPRAISAL_POLICY: Final = AppraisalPolicy(
    name="keyrelease-demo",
    rules=(
        _CHAIN_RULE,
        PolicyRule(
            "fresh",
            "nonce_ok",
            "instance-identity",
            AR4SI.UNTRUSTWORTHY_INSTANCE,
            "the evidence does not answer the expected report data",
            gate=True,
        ),
        PolicyRule(
            "debug",
            "!debug",
            "configuration",
            AR4SI.UNSUPPORTABLE_CONFIG,
            "debug is enabled (unlocked)",
        ),
    ),
    affirm={
        "instance-identity": AR4SI.TRUSTWORTHY_INSTANCE,
        "configuration": AR4SI.APPROVED_CONFIG,
        "hardware": AR4SI.GENUINE_HARDWARE,
    },
)
"""A small appraisal policy for the demo: trusted chain, expected report data, debug off."""


def vm_pcr2(image_measurement: bytes) -> bytes:
    """PCR2 of a host whose only DPE child is the VM measured ``image_measurement``."""
    return hashlib.sha384(bytes(48) + image_measurement).digest()


def rot_verifier(service: AttestationService) -> Callable[[bytes, bytes], bytes]:
    """``attest(quote, report_data) -> EAR JWT``: the verifier appraising a RoT quote against
    the relying party's report data (in process; see the module documentation)."""

    def attest(quote: bytes, report_data: bytes) -> bytes:
        result = appraise_evidence(
            quote,
            service.endorsements,
            service.policy,
            nonce=report_data,
            now=service.clock(),
            lifetime=service.lifetime,
            caches=service.caches,
        )
        return service.sign(result)

    return attest


def _host(path: Path, ca: VendorCA, bundle: bytes, key_hash: bytes, now: dt.datetime) -> Device:
    device = Device.create(path)
    device.provision(ca, vendor_key_hash=key_hash, now=now - dt.timedelta(days=1))
    device.boot(bundle, now=now)
    return device


def demo_release(
    workdir: Path | str, *, say: Callable[[str], None] = lambda _: None
) -> tuple[bool, bool]:
    """Run the demo in ``workdir``; ``(released, refused)``: VM A got the key and VM B was
    refused. ``say`` receives one line per step."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    say("vendor: a CA for device identities, and firmware signed with ECDSA P-384 + ML-DSA-87")
    ca = VendorCA.generate(now=now - dt.timedelta(days=30))
    ecc, pqc = PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ML_DSA_87)
    unsigned = build_bundle(
        [Component(1, os.urandom(4096), version=1), Component(2, os.urandom(16384), version=2)],
        svn=3,
        not_before=now - dt.timedelta(days=30),
        not_after=now + dt.timedelta(days=365),
        vendor_ecc_keys=[ecc.public_key],
        vendor_pqc_keys=[pqc.public_key],
        pqc_type="mldsa",
    )
    bundle = sign_bundle(unsigned, ecc, pqc)
    key_hash = key_descriptor_hash([ecc.public_key], [pqc.public_key], "mldsa")

    say("hosts: three RoTs provisioned by the vendor CA and booted (measured boot)")
    host_a = _host(work / "host-a", ca, bundle, key_hash, now)
    host_b = _host(work / "host-b", ca, bundle, key_hash, now)
    host_k = _host(work / "host-k", ca, bundle, key_hash, now)

    approved = hashlib.sha384(b"confidential VM image 2026.11 (approved)").digest()
    other = hashlib.sha384(b"confidential VM image 2026.11 (modified)").digest()
    host_a.derive_child(approved, label="cvm")
    host_b.derive_child(other, label="cvm")
    say(f"VMs: A runs the approved image {approved.hex()[:16]}…, B another {other.hex()[:16]}…")

    say("verifier: an ES384 EAR key; appraisal = trusted chain, fresh report data, debug off")
    verifier = AttestationService(
        endorsements=Endorsements.build(service_keys={}, vendor_roots=ca.trust_anchors),
        signing_key=PrivateKey.generate(Algorithm.ES384),
        policy=DEMO_APPRAISAL_POLICY,
    )
    attest = rot_verifier(verifier)

    say("HSM: initialized on host K (its device identity is a DPE child of host K's RoT)")
    hsm_child = host_k.derive_child(hashlib.sha384(b"hsm firmware").digest(), label="hsm")
    storage = DirectoryStorage(work / "hsm", counter=host_k.counter("hsm"))
    sealing = host_k.sealing_secret("hsm")  # the store opens only on host K, this firmware
    officer_pass, user_pass = os.urandom(16).hex().encode(), os.urandom(16).hex().encode()
    device = DeviceIdentity(
        hsm_child.ecc_key, (hsm_child.ecc_certificate, *reversed(host_k.chain(Algorithm.ES384)))
    )
    hsm = Hsm.initialize(
        storage, sealing, officer="officer", credential=officer_pass, device=device
    )
    try:
        officer = hsm.login("officer", officer_pass)
        hsm.add_identity(officer, "keyrelease", Role.USER, user_pass)
        kid = hsm.add_release_verifier(officer, VERIFIER_NAME, verifier.public_keys[0].to_pem())
        say(f"HSM: the officer installs the verifier's EAR key {kid[:16]}… as {VERIFIER_NAME}")
        policy = {
            "version": "1.0.0",
            "anyOf": [
                {
                    "authority": VERIFIER_NAME,
                    "allOf": [
                        {"claim": "ear.status", "equals": "affirming"},
                        {"claim": "evidence.debug", "equals": False},
                        {"claim": "evidence.svns.firmware", "greaterOrEquals": 3},
                        {"claim": "evidence.measurements.pcr2", "equals": vm_pcr2(approved).hex()},
                    ],
                }
            ],
        }
        handle = hsm.generate(
            officer,
            KeyType.AES_256,
            KeyAttributes.of(
                ["encrypt", "decrypt"],
                exportable=True,
                label=_KEY_NAME,
                release_policy=json.dumps(policy, indent=2),
            ),
        )
        say(f"key: {_KEY_NAME} (AES-256, exportable only by release) with policy:")
        for line in json.dumps(policy, indent=2).splitlines():
            say("  " + line)
        user = hsm.login("keyrelease", user_pass)
        sealed_secret = hsm.encrypt(user, handle, b"the database's secret")
        service = KeyReleaseService(
            keys=[ReleasableKey(_KEY_NAME, handle)],
            vault=HsmVault(hsm, user),
        )
        with KeyReleaseServerThread(create_keyrelease_app(service)) as server:
            say(f"key service: {server.url}")
            with KeyReleaseClient(server.url) as client:
                # The HSM's device certificate: not the vendor's root, under which every
                # machine's DPE children (a VM's identity too) could sign a statement.
                roots = [load_certificate(device.chain[0])]
                released = _vm(
                    "A",
                    host_a,
                    client,
                    attest,
                    say,
                    sealed=sealed_secret,
                    roots=roots,
                    handle=handle,
                )
                refused = not _vm(
                    "B",
                    host_b,
                    client,
                    attest,
                    say,
                    sealed=sealed_secret,
                    roots=roots,
                    handle=handle,
                )
    finally:
        hsm.close()
        storage.close()
    return released, refused


def _vm(
    name: str,
    host: Device,
    client: KeyReleaseClient,
    attest: Callable[[bytes, bytes], bytes],
    say: Callable[[str], None],
    *,
    sealed: bytes,
    roots: list[x509.Certificate],
    handle: str,
) -> bool:
    tee = TeeKeyPair.generate("ML-KEM-768")
    nonce = client.challenge()
    report_data = tee.report_data(nonce)
    say(f"VM {name}: ML-KEM-768 wrapping key; nonce {nonce.hex()[:16]}…; report data bound")
    ear = attest(host.quote(report_data), report_data)
    try:
        response = client.release(_KEY_NAME, ear=ear, wrapping_key=tee.public_spki, nonce=nonce)
    except ReleaseDenied as exc:
        say(f"VM {name}: refused ({exc.code}): {exc.detail}")
        return False
    key = tee.unwrap(response, nonce=nonce, hsm_roots=roots, kid=_KEY_NAME, handle=handle)
    say(f"VM {name}: the HSM's release statement verifies to the HSM's device certificate")
    plaintext = AESGCM(key.material).decrypt(sealed[:12], sealed[12:], b"")
    say(f"VM {name}: released {key.kid} ({key.key_type.value}); decrypts {plaintext.decode()!r}")
    return True
