"""Attacks on the HSM boundary that hold: each is tried as an attacker would, against the real
code, and asserts the exact refusal, so a change that opens the hole fails here.

Races run real threads released together by a barrier; they assert outcomes (how many won,
what the audit log holds), never timings.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable

import pytest
from _hsm_helpers import (
    AUDITOR,
    AUDITOR_PASS,
    FAST,
    NOW_TS,
    OFFICER,
    OFFICER_PASS,
    SECRET,
    USER,
    USER_PASS,
    DeviceChain,
    new_hsm,
    sessions,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, rsa
from test_hsm_release import VERIFIER, World, ear

from ironroot.crypto import Algorithm, PrivateKey, b64url_encode
from ironroot.errors import (
    IronrootError,
    MalformedInput,
    PolicyRejected,
    ReleaseDenied,
    SealedStoreError,
    Unauthorized,
    UnknownIssuer,
    UnsupportedAlgorithm,
)
from ironroot.hsm import (
    BuiltinBackend,
    Hsm,
    HsmSigner,
    KeyAttributes,
    KeyType,
    MemoryStorage,
    Session,
    wrap_key_kem,
)

_THREADS = 8


@pytest.fixture
def world(hsm: Hsm, roles: tuple[Session, Session, Session]) -> World:
    return World(hsm, roles)


def _race(attempt: Callable[[], object]) -> list[str]:
    """Run ``attempt`` in threads released together; each outcome is ``ok`` or an error code."""
    barrier = threading.Barrier(_THREADS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            attempt()
            outcome = "ok"
        except IronrootError as exc:
            outcome = exc.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


# --- release ------------------------------------------------------------------------------


def test_one_nonce_released_concurrently_wins_once(world: World) -> None:
    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee)
    outcomes = _race(lambda: world.release(token, nonce))
    assert outcomes == ["nonce-reused"] * (_THREADS - 1) + ["ok"]
    results = [r.result for r in world.hsm.audit_records(world.auditor) if r.operation == "release"]
    assert sorted(results) == outcomes


def test_an_ear_of_a_verifier_removed_after_it_was_issued_releases_nothing(
    world: World,
) -> None:
    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee)  # issued while the verifier was trusted
    world.hsm.remove_release_verifier(world.officer, "https://verifier.example")
    world.hsm.add_release_verifier(  # another verifier is trusted now
        world.officer,
        "https://next.example",
        PrivateKey.generate(Algorithm.ES384).public_key.to_pem(),
    )
    with pytest.raises(UnknownIssuer) as info:
        world.release(token, nonce)
    assert info.value.code == "unknown-issuer"


def test_an_affirming_ear_with_a_contraindicated_trust_claim_is_refused(world: World) -> None:
    """Signed by the trusted verifier, status ``affirming``, but one trust-vector claim is
    contraindicated (96): the status claims more trust than the vector shows."""
    nonce, _ = world.hsm.release_challenge(world.user)
    header, payload, _signature = ear(world.verifier, nonce, world.tee).split(b".")
    claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    claims["submods"]["rot"]["ear.trustworthiness-vector"]["executables"] = 96
    assert claims["submods"]["rot"]["ear.status"] == "affirming"
    signing_input = header + b"." + b64url_encode(json.dumps(claims).encode()).encode()
    signed = signing_input + b"." + b64url_encode(world.verifier.sign(signing_input)).encode()
    with pytest.raises(MalformedInput) as info:
        world.release(signed, nonce)
    assert "claims more trust than its trust vector" in info.value.detail
    assert world.last_release_record() == ("service", "malformed")


def _rsa(bits: int, *, exponent: int = 65537) -> rsa.RSAPublicKey:
    return rsa.generate_private_key(exponent, bits).public_key()


def _spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    "recipient",
    [
        pytest.param(lambda: _rsa(1024), id="RSA-1024"),
        pytest.param(lambda: _rsa(2048), id="RSA-2048"),
        pytest.param(lambda: _rsa(3072, exponent=3), id="RSA-3072-e3"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()).public_key(), id="P-256"),
    ],
)
def test_a_release_to_a_weak_or_foreign_wrapping_key_is_refused(
    world: World, recipient: Callable[[], rsa.RSAPublicKey | ec.EllipticCurvePublicKey]
) -> None:
    nonce, _ = world.hsm.release_challenge(world.user)
    with pytest.raises(UnsupportedAlgorithm) as info:
        world.hsm.release(
            world.user,
            world.key,
            ear=ear(world.verifier, nonce, world.tee),
            nonce=nonce,
            recipient=_spki(recipient()),
        )
    assert info.value.code == "unsupported-algorithm"


# --- identities -----------------------------------------------------------------------------


def test_concurrent_wrong_credentials_lock_exactly_and_are_each_audited(
    hsm: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    _officer, user, auditor = roles
    outcomes = _race(lambda: hsm.login(USER, b"a wrong credential"))
    assert outcomes == ["unauthorized"] * _THREADS  # locked or not, the same answer
    with pytest.raises(Unauthorized):  # locked out: even the right credential
        hsm.login(USER, USER_PASS)
    with pytest.raises(Unauthorized):  # the lockout ended the session it had
        hsm.keys(user)
    logins = [
        r.result
        for r in hsm.audit_records(auditor)
        if r.operation == "login" and r.identity == USER
    ]
    assert logins == ["ok"] + ["unauthorized"] * _THREADS + ["identity-locked"]


def test_an_unlocked_identitys_old_sessions_stay_dead(
    hsm: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    officer, user, _auditor = roles
    hsm.lock_identity(officer, USER)
    hsm.unlock_identity(officer, USER)
    with pytest.raises(Unauthorized):
        hsm.keys(user)
    assert hsm.keys(hsm.login(USER, USER_PASS)) == ()


def test_a_lockout_survives_a_restart(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    sessions(hsm)
    for _ in range(FAST.max_failed_logins):
        with pytest.raises(Unauthorized):
            hsm.login(USER, b"a wrong credential")
    hsm.close()
    reopened = Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS)
    with pytest.raises(Unauthorized, match=r"^unknown identity or wrong credential$"):
        reopened.login(USER, USER_PASS)
    assert reopened.login(AUDITOR, AUDITOR_PASS).identity == AUDITOR


# --- the sealed store on disk ---------------------------------------------------------------


def _stored(device: DeviceChain) -> tuple[MemoryStorage, bytes, bytes]:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    sessions(hsm)
    hsm.close()
    return storage, storage.read_store() or b"", storage.read_anchor() or b""


def _flipped(data: bytes, index: int) -> bytes:
    edited = bytearray(data)
    edited[index] ^= 0x01
    return bytes(edited)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda s, a: (s[:-1], a), id="store-truncated"),
        pytest.param(lambda s, a: (s[:60], a), id="store-cut-to-its-header"),
        pytest.param(lambda s, a: (s, a[:-1]), id="anchor-truncated"),
        pytest.param(lambda s, a: (a, s), id="store-and-anchor-swapped"),
        pytest.param(lambda s, a: (s, s), id="store-as-anchor"),
        pytest.param(lambda s, a: (_flipped(s, 8), a), id="store-salt-flipped"),
        pytest.param(lambda s, a: (_flipped(s, 44), a), id="store-nonce-flipped"),
        pytest.param(lambda s, a: (_flipped(s, len(s) // 2), a), id="store-body-flipped"),
        pytest.param(lambda s, a: (_flipped(s, len(s) - 1), a), id="store-tag-flipped"),
        pytest.param(lambda s, a: (s, _flipped(a, len(a) // 2)), id="anchor-body-flipped"),
    ],
)
def test_an_edited_store_or_anchor_does_not_open(
    device: DeviceChain, edit: Callable[[bytes, bytes], tuple[bytes, bytes]]
) -> None:
    storage, store, anchor = _stored(device)
    edited_store, edited_anchor = edit(store, anchor)
    storage.write_store(edited_store)
    storage.write_anchor(edited_anchor)
    with pytest.raises(SealedStoreError) as info:
        Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS)
    assert info.value.code == "sealed-store"
    storage.write_store(store)
    storage.write_anchor(anchor)
    assert Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS).login(OFFICER, OFFICER_PASS)


# --- an EAR key kept in the HSM that releases ---------------------------------------------


def test_a_verifier_key_held_in_this_hsm_is_not_installed(world: World) -> None:
    """The verifier's EAR key may live in an HSM (``[keys] backend = "hsm"``); in this one,
    every crypto user signs with it (roles, not identities, grant ``sign``), so the key
    service's own identity, or whoever holds its session, would sign "affirming" itself."""
    inside = world.hsm.generate(world.officer, KeyType.EC_P384, KeyAttributes.of(["sign"]))
    public = world.hsm.key_info(world.officer, inside).public_key
    assert public is not None
    with pytest.raises(PolicyRejected) as refused:
        world.hsm.add_release_verifier(world.officer, "https://inside.example", public.to_pem())
    assert type(refused.value) is PolicyRejected
    assert refused.value.code == "verifier-key-in-hsm"
    assert inside in refused.value.detail
    assert [name for name, _kid in world.hsm.release_verifiers(world.officer)] == [VERIFIER]


def test_an_ear_signed_with_a_key_imported_into_this_hsm_releases_nothing(world: World) -> None:
    """The installed verifier's private key brought into the HSM afterwards (unwrap, a crypto
    user's operation: "move the EAR key into the HSM"): any crypto user could now sign EARs
    with it, so the HSM trusts no EAR it could have signed itself."""
    kem = world.hsm.generate(world.officer, KeyType.ML_KEM_768, KeyAttributes.of(["unwrap"]))
    der = world.hsm.key_info(world.user, kem).public_der
    public = serialization.load_der_public_key(der or b"")
    assert isinstance(public, mlkem.MLKEM768PublicKey)
    pkcs8 = world.verifier.raw.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    imported = world.hsm.unwrap(
        world.user,
        wrap_key_kem(public, KeyType.EC_P384, pkcs8),
        unwrapping_key=kem,
        attributes=KeyAttributes.of(["sign"]),
    )
    signer = HsmSigner(BuiltinBackend(world.hsm, world.user), imported)
    nonce, _ = world.hsm.release_challenge(world.user)
    with pytest.raises(ReleaseDenied) as refused:
        world.release(ear(signer, nonce, world.tee), nonce)  # type: ignore[arg-type]
    assert refused.value.code == "verifier-key-in-hsm"
    assert world.last_release_record() == ("service", "verifier-key-in-hsm")
