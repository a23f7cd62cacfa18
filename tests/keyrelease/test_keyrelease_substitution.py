"""A party between the TEE and the key service swaps one releasable key for another.

The TEE asks for one key; a proxy sends its request (EAR, nonce, wrapping key) to the release
of another key whose policy the same EAR satisfies, and relabels the answer's ``kid``. The HSM
really released that other key, to this TEE, for this nonce, so its statement verifies: only
what the HSM signed about *which* key it released (the handle) tells the two apart. The
response's ``kid`` is the key service's label, which nothing signs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from _kr_helpers import CEL_POLICY, NOW, VERIFIER, Harness, make_ear
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import KeyBindingMismatch
from ironroot.hsm import (
    DeviceIdentity,
    Hsm,
    HsmConfig,
    KeyAttributes,
    KeyType,
    MemoryStorage,
    Role,
    Session,
)
from ironroot.keyrelease import ReleasedKey
from ironroot.keyrelease.tee import TeeKeyPair


def _swapped(harness: Harness) -> tuple[bytes, object]:
    """A release of ``azure-key`` relabelled as ``cel-key``, and its nonce."""
    nonce = harness.nonce()
    released = harness.service.release("azure-key", harness.request(harness.ear(nonce), nonce))
    return nonce, dataclasses.replace(released, kid="cel-key")


def test_a_release_of_another_key_relabelled_is_refused_by_its_handle(harness: Harness) -> None:
    nonce, swapped = _swapped(harness)
    with pytest.raises(KeyBindingMismatch) as caught:
        harness.tee.unwrap(
            swapped,  # type: ignore[arg-type]
            nonce=nonce,
            hsm_roots=harness.hsm_roots,
            now=harness.clock.now,
            kid="cel-key",
            handle=harness.handles["cel-key"],
        )
    assert caught.value.code == "other-key"
    assert str(caught.value) == (
        f"the HSM released key {harness.handles['azure-key']}, not {harness.handles['cel-key']}"
    )


def test_the_pinned_handle_of_the_key_released_unwraps(harness: Harness) -> None:
    nonce = harness.nonce()
    released = harness.service.release("cel-key", harness.request(harness.ear(nonce), nonce))
    key = harness.tee.unwrap(
        released,
        nonce=nonce,
        hsm_roots=harness.hsm_roots,
        now=harness.clock.now,
        kid="cel-key",
        handle=harness.handles["cel-key"],
    )
    assert harness.holds("cel-key", key.material)


# --- another HSM under the same vendor root -----------------------------------------------------


def _devices_under_one_root(count: int) -> tuple[x509.Certificate, list[DeviceIdentity]]:
    """A vendor root and ``count`` device identities it certifies (genuine HSMs, each)."""
    root_key = PrivateKey.generate(Algorithm.ES384)
    start, end = NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=3650)
    vendor = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HSM vendor root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(vendor)
        .issuer_name(vendor)
        .public_key(root_key.public_key.raw)  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key.raw),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(root_key.raw, hashes.SHA384())  # type: ignore[arg-type]
    )
    devices = []
    for index in range(count):
        key = PrivateKey.generate(Algorithm.ES384)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"HSM {index}")])
        device = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(vendor)
            .public_key(key.public_key.raw)  # type: ignore[arg-type]
            .serial_number(2 + index)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key.raw),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(root_key.raw, hashes.SHA384())  # type: ignore[arg-type]
        )
        chain = (device.public_bytes(Encoding.DER), root.public_bytes(Encoding.DER))
        devices.append(DeviceIdentity(key, chain))
    return root, devices


def _hsm(device: DeviceIdentity, verifier: PrivateKey) -> tuple[Hsm, Session, Session]:
    """An HSM on ``device`` that trusts ``verifier``'s EARs: (HSM, officer, crypto user)."""
    hsm = Hsm.initialize(
        MemoryStorage(),
        bytes(range(48)),
        officer="officer",
        credential=b"officer-credential",
        device=device,
        config=HsmConfig(scrypt_n=2**10),
        clock=lambda: NOW.timestamp(),
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "user", Role.USER, b"user-credential")
    hsm.add_release_verifier(officer, VERIFIER, verifier.public_key.to_pem())
    return hsm, officer, hsm.login("user", b"user-credential")


def test_a_key_released_by_another_hsm_of_the_same_vendor_is_refused_by_its_handle() -> None:
    """The attacker owns a genuine HSM of the victim's HSM vendor. As its officer they trust
    the victim's verifier (its key is public) and make a key of their own that any affirming
    EAR releases (which they can read: they release it to themselves first). Answering the
    TEE's challenge with their HSM's nonce, they have it release their key to the TEE on the
    TEE's genuine EAR: the statement chains to the vendor root, names this wrapping key and
    this nonce. The name asked for proves nothing; the handle the TEE pinned does."""
    root, (victim_device, attacker_device) = _devices_under_one_root(2)
    verifier = PrivateKey.generate(Algorithm.ES384)
    victim, victim_officer, _ = _hsm(victim_device, verifier)
    db_key = victim.generate(
        victim_officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt", "decrypt"], exportable=True, release_policy=CEL_POLICY),
    )
    attacker, attacker_officer, attacker_user = _hsm(attacker_device, verifier)
    known = attacker.generate(
        attacker_officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt"], exportable=True, release_policy='status == "affirming"'),
    )
    tee = TeeKeyPair.generate()
    nonce, _expires = attacker.release_challenge(attacker_user)  # the TEE's "challenge"
    ear = make_ear(verifier, tee.report_data(nonce))  # what the real verifier signs
    release = attacker.release(
        attacker_user, known, ear=ear, nonce=nonce, recipient=tee.public_spki
    )
    answer = ReleasedKey(
        kid="db-key",
        key_type=KeyType.AES_256,
        alg="ML-KEM-768+A256KWP",
        recipient=tee.public.digest,
        nonce=nonce,
        wrapped=release.wrapped,
        statement=release.statement,
    )
    with pytest.raises(KeyBindingMismatch) as caught:
        tee.unwrap(answer, nonce=nonce, hsm_roots=[root], kid="db-key", handle=db_key, now=NOW)
    assert caught.value.code == "other-key"
    assert str(caught.value) == f"the HSM released key {known}, not {db_key}"
