"""Release is decided inside the HSM: a crypto user cannot release a key on a result it made up.

Each refusal asserts the exact error, and that the audit log records it as a refusal (the
operation ``release`` with the error's code), durable before the call returned.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable

import pytest
from _hsm_helpers import FAST, NOW, SECRET, DeviceChain, new_hsm, sessions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.ear import (
    Appraisal,
    AttestationResult,
    TrustTier,
    VerifierId,
    sign_ear_jwt,
    verify_ear,
)
from ironroot.errors import (
    BadSignature,
    Conflict,
    IronrootError,
    KeyBindingMismatch,
    KeyNotExportable,
    MalformedInput,
    NotFound,
    ReleaseDenied,
    ResultExpired,
    RoleNotPermitted,
    StaleNonce,
    UnknownIssuer,
)
from ironroot.hsm import (
    Hsm,
    HsmRelease,
    KeyAttributes,
    KeyType,
    MemoryStorage,
    Session,
    WrappingKey,
    bind_report_data,
    unwrap_key_kem,
    verify_release_statement,
)
from ironroot.hsm._release_policy import parse_release_policy, release_claims

VERIFIER = "https://verifier.example"
POLICY = 'status == "affirming" && evidence.svns.firmware >= 3'
VECTORS = {
    TrustTier.AFFIRMING: {"instance-identity": 2, "configuration": 2},
    TrustTier.WARNING: {"instance-identity": 2, "configuration": 32},
}


class Tee:
    """A TEE's ML-KEM-768 wrapping key pair."""

    def __init__(self) -> None:
        self.private = mlkem.MLKEM768PrivateKey.generate()
        self.spki = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key = WrappingKey.parse(self.spki)


def ear(
    signer: PrivateKey,
    nonce: bytes,
    tee: Tee,
    *,
    status: TrustTier = TrustTier.AFFIRMING,
    firmware_svn: int = 5,
    lifetime: int | None = 600,
) -> bytes:
    report_data = bind_report_data(nonce, tee.key)
    appraisal = Appraisal(
        status,
        VECTORS[status],
        policy_id="test",
        evidence={"report_data": report_data.hex(), "svns": {"firmware": firmware_svn}},
    )
    iat = int(NOW.timestamp()) - 60
    result = AttestationResult(
        iat=iat,
        exp=None if lifetime is None else iat + lifetime,
        verifier_id=VerifierId("Ironroot", "test"),
        submods={"rot": appraisal},
        nonce=report_data,
    )
    return sign_ear_jwt(result, signer)


class World:
    def __init__(self, hsm: Hsm, roles: tuple[Session, Session, Session]) -> None:
        self.hsm = hsm
        self.officer, self.user, self.auditor = roles
        self.verifier = PrivateKey.generate(Algorithm.ES384)
        self.kid = hsm.add_release_verifier(
            self.officer, VERIFIER, self.verifier.public_key.to_pem()
        )
        self.key = hsm.generate(
            self.officer,
            KeyType.AES_256,
            KeyAttributes.of(["encrypt", "decrypt"], exportable=True, release_policy=POLICY),
        )
        self.tee = Tee()

    def release(self, token: bytes, nonce: bytes, handle: str | None = None) -> bytes:
        return self.released(token, nonce, handle).wrapped

    def released(self, token: bytes, nonce: bytes, handle: str | None = None) -> HsmRelease:
        return self.hsm.release(
            self.user, handle or self.key, ear=token, nonce=nonce, recipient=self.tee.spki
        )

    def last_release_record(self) -> tuple[str, str]:
        record = [r for r in self.hsm.audit_records(self.auditor) if r.operation == "release"][-1]
        return record.identity, record.result


@pytest.fixture
def world(hsm: Hsm, roles: tuple[Session, Session, Session]) -> World:
    return World(hsm, roles)


def _refused(world: World, token: bytes, nonce: bytes, cls: type[IronrootError], code: str) -> None:
    with pytest.raises(cls) as info:
        world.release(token, nonce)
    assert info.type is cls
    assert info.value.code == code
    assert world.last_release_record() == ("service", code)


def test_a_passing_ear_releases_the_key_wrapped_to_the_tee(
    world: World, device: DeviceChain
) -> None:
    nonce, expires = world.hsm.release_challenge(world.user)
    assert len(nonce) == 32
    assert expires == int(NOW.timestamp()) + 300
    token = ear(world.verifier, nonce, world.tee)
    released = world.released(token, nonce)
    wrapped = released.wrapped
    # The HSM's signed statement of this release: its key, the TEE's key, nonce, EAR, bytes.
    statement = verify_release_statement(
        released.statement,
        roots=[device.root],
        now=NOW,
        wrapped=wrapped,
        recipient=WrappingKey.parse(world.tee.spki).digest,
        nonce=nonce,
        key_type=KeyType.AES_256,
    )
    assert (statement.hsm_id, statement.handle) == (world.hsm.hsm_id, world.key)
    assert statement.ear_digest == hashlib.sha256(token).digest()
    assert statement.issued_at == int(NOW.timestamp())
    assert statement.attestation_key == world.hsm.attestation_public_key
    key_type, material = unwrap_key_kem(world.tee.private, wrapped)
    assert key_type is KeyType.AES_256
    sealed = world.hsm.encrypt(world.user, world.key, b"probe")
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    assert AESGCM(material).decrypt(sealed[:12], sealed[12:], b"") == b"probe"
    assert world.last_release_record() == ("service", "ok")


def test_a_user_cannot_release_on_an_ear_it_signed_itself(world: World) -> None:
    """The break: a crypto user with a session signs its own 'affirming' result."""
    nonce, _ = world.hsm.release_challenge(world.user)
    forged = ear(PrivateKey.generate(Algorithm.ES384), nonce, world.tee)
    _refused(world, forged, nonce, UnknownIssuer, "unknown-issuer")


def test_an_altered_ear_is_refused(world: World) -> None:
    nonce, _ = world.hsm.release_challenge(world.user)
    head, payload, signature = ear(world.verifier, nonce, world.tee).split(b".")
    flipped = signature[:-2] + (b"A" if signature[-2:-1] != b"A" else b"B") + signature[-1:]
    _refused(world, b".".join((head, payload, flipped)), nonce, BadSignature, "bad-signature")


def test_without_an_installed_verifier_nothing_is_released(world: World) -> None:
    world.hsm.remove_release_verifier(world.officer, VERIFIER)
    assert world.hsm.release_verifiers(world.officer) == ()
    nonce, _ = world.hsm.release_challenge(world.user)
    _refused(world, ear(world.verifier, nonce, world.tee), nonce, UnknownIssuer, "unknown-issuer")


def test_the_nonce_is_the_hsms_own_and_single_use(world: World) -> None:
    made_up = bytes(32)
    _refused(world, ear(world.verifier, made_up, world.tee), made_up, StaleNonce, "nonce-unknown")
    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee)
    world.release(token, nonce)
    _refused(world, token, nonce, StaleNonce, "nonce-reused")


def test_an_ear_for_another_wrapping_key_is_refused(world: World) -> None:
    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, Tee())
    _refused(world, token, nonce, KeyBindingMismatch, "key-binding-mismatch")


def test_an_expired_ear_and_one_without_expiry_are_refused(world: World) -> None:
    nonce, _ = world.hsm.release_challenge(world.user)
    _refused(
        world,
        ear(world.verifier, nonce, world.tee, lifetime=30),
        nonce,
        ResultExpired,
        "result-expired",
    )
    nonce, _ = world.hsm.release_challenge(world.user)
    _refused(
        world,
        ear(world.verifier, nonce, world.tee, lifetime=None),
        nonce,
        ResultExpired,
        "result-no-expiry",
    )


def test_the_keys_own_policy_decides(world: World) -> None:
    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee, firmware_svn=2)
    _refused(world, token, nonce, ReleaseDenied, "policy-claims")


def test_warning_releases_only_a_key_that_allows_it(world: World) -> None:
    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee, status=TrustTier.WARNING)
    _refused(world, token, nonce, ReleaseDenied, "not-affirming")
    lenient = world.hsm.generate(
        world.officer,
        KeyType.AES_256,
        KeyAttributes.of(
            ["encrypt"], exportable=True, release_policy="true", release_on_warning=True
        ),
    )
    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee, status=TrustTier.WARNING)
    assert world.release(token, nonce, lenient)


def test_only_an_officer_installs_or_removes_verifiers(world: World) -> None:
    key = PrivateKey.generate(Algorithm.ES384).public_key.to_pem()
    for session in (world.user, world.auditor):
        with pytest.raises(RoleNotPermitted):
            world.hsm.add_release_verifier(session, "https://mine.example", key)
        with pytest.raises(RoleNotPermitted):
            world.hsm.remove_release_verifier(session, VERIFIER)
    assert world.hsm.release_verifiers(world.user) == ((VERIFIER, world.kid),)


def test_verifier_installation_is_checked(world: World) -> None:
    with pytest.raises(Conflict):
        world.hsm.add_release_verifier(
            world.officer, VERIFIER, PrivateKey.generate(Algorithm.ES384).public_key.to_pem()
        )
    with pytest.raises(Conflict):  # the same key under another name
        world.hsm.add_release_verifier(
            world.officer, "https://again.example", world.verifier.public_key.to_pem()
        )
    with pytest.raises(MalformedInput):
        world.hsm.add_release_verifier(world.officer, "https://x.example", b"not a key")
    with pytest.raises(MalformedInput):
        world.hsm.add_release_verifier(world.officer, " ", world.verifier.public_key.to_der())
    with pytest.raises(NotFound):
        world.hsm.remove_release_verifier(world.officer, "https://never.example")


def test_installed_verifiers_are_sealed_with_the_store(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    verifier = PrivateKey.generate(Algorithm.ES384)
    kid = hsm.add_release_verifier(officer, VERIFIER, verifier.public_key.to_der())
    hsm.close()
    reopened = Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW.timestamp())
    officer = reopened.login("officer", b"officer-credential")
    assert reopened.release_verifiers(officer) == ((VERIFIER, kid),)


def test_a_policy_that_does_not_compile_makes_no_key(world: World) -> None:
    from ironroot.errors import InvalidReleasePolicy

    with pytest.raises(InvalidReleasePolicy):
        world.hsm.generate(
            world.officer,
            KeyType.AES_256,
            KeyAttributes.of(["encrypt"], exportable=True, release_policy="status =="),
        )


def test_challenges_need_a_user_session(world: World) -> None:
    with pytest.raises(RoleNotPermitted):
        world.hsm.release_challenge(world.officer)


def test_a_derived_key_cannot_be_released_on_a_weaker_status_than_its_parent(
    world: World,
) -> None:
    """The break: a crypto user derives an exportable child that keeps the parent's policy
    but turns ``release_on_warning`` on, so what derives from a key released only on an
    affirming result leaves on a ``warning`` one."""
    parent = world.hsm.generate(
        world.officer,
        KeyType.AES_256,
        KeyAttributes.of(["derive"], exportable=True, release_policy=POLICY),
    )
    looser = KeyAttributes.of(
        ["encrypt"], exportable=True, release_policy=POLICY, release_on_warning=True
    )
    with pytest.raises(KeyNotExportable) as info:
        world.hsm.derive(world.user, parent, info=b"child", attributes=looser)
    assert info.value.code == "key-not-exportable"
    record = [r for r in world.hsm.audit_records(world.auditor) if r.operation == "derive"][-1]
    assert (record.identity, record.result) == ("service", "key-not-exportable")
    # the same policy and status rule is still derivable, and a parent that allows warning
    # may have a child that does or does not
    assert world.hsm.derive(
        world.user,
        parent,
        info=b"child",
        attributes=KeyAttributes.of(["encrypt"], exportable=True, release_policy=POLICY),
    )
    lenient = world.hsm.generate(
        world.officer,
        KeyType.AES_256,
        KeyAttributes.of(
            ["derive"], exportable=True, release_policy=POLICY, release_on_warning=True
        ),
    )
    for on_warning in (True, False):
        assert world.hsm.derive(
            world.user,
            lenient,
            info=b"child",
            attributes=KeyAttributes.of(
                ["encrypt"], exportable=True, release_policy=POLICY, release_on_warning=on_warning
            ),
        )


def test_a_verifier_named_as_another_verifiers_key_id_does_not_pass_its_policy(
    world: World,
) -> None:
    """The break: an Azure policy that pins its authority by the verifier's key id (not by
    a name an officer can give any key) was passed by another key installed under a *name*
    equal to that key id."""
    pinned = json.dumps(
        {
            "version": "1.0.0",
            "anyOf": [
                {"authority": world.kid, "allOf": [{"claim": "ear.status", "equals": "affirming"}]}
            ],
        }
    )
    key = world.hsm.generate(
        world.officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt"], exportable=True, release_policy=pinned),
    )
    rogue = PrivateKey.generate(Algorithm.ES384)
    with pytest.raises(MalformedInput) as info:
        world.hsm.add_release_verifier(world.officer, world.kid, rogue.public_key.to_pem())
    assert info.value.code == "malformed"
    assert "key id" in info.value.detail
    assert world.hsm.release_verifiers(world.officer) == ((VERIFIER, world.kid),)
    # a store sealed before this check may hold such a name: it matches no policy as a name
    rogue_kid = world.hsm.add_release_verifier(
        world.officer, "https://rogue.example", rogue.public_key.to_pem()
    )
    nonce, _ = world.hsm.release_challenge(world.user)
    result = verify_ear(ear(rogue, nonce, world.tee), [rogue.public_key], now=NOW)
    context = release_claims(result, "rot", authority=world.kid, kid=rogue_kid)
    with pytest.raises(ReleaseDenied) as denied:
        parse_release_policy(pinned).evaluate(context)
    assert denied.value.code == "policy-claims"
    # the real verifier's EAR passes the pinned policy
    assert world.release(ear(world.verifier, nonce, world.tee), nonce, key)


class _StrongTee(Tee):
    """A TEE with an ML-KEM-1024 wrapping key."""

    def __init__(self) -> None:
        strong = mlkem.MLKEM1024PrivateKey.generate()
        self.private = strong  # type: ignore[assignment]
        self.spki = strong.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key = WrappingKey.parse(self.spki)


@pytest.mark.parametrize(
    "policy",
    [
        'status == "affirming" && wrapping_key == "ML-KEM-1024"',
        json.dumps(
            {
                "version": "1.0.0",
                "anyOf": [
                    {
                        "authority": VERIFIER,
                        "allOf": [{"claim": "wrapping_key", "equals": "ML-KEM-1024"}],
                    }
                ],
            }
        ),
    ],
)
def test_a_policy_may_require_the_kind_of_wrapping_key(world: World, policy: str) -> None:
    """The TEE picks its wrapping key: an AES-256 key released to ML-KEM-768 (category 3)
    or RSA-3072 (128-bit) travels under less than its own strength, and only the key's
    policy can say no. It sees the kind of the key it is wrapped to as ``wrapping_key``."""
    key = world.hsm.generate(
        world.officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt"], exportable=True, release_policy=policy),
    )
    nonce, _ = world.hsm.release_challenge(world.user)
    with pytest.raises(ReleaseDenied) as refused:
        world.hsm.release(
            world.user,
            key,
            ear=ear(world.verifier, nonce, world.tee),
            nonce=nonce,
            recipient=world.tee.spki,
        )
    assert refused.value.code == "policy-claims"
    strong = _StrongTee()
    nonce, _ = world.hsm.release_challenge(world.user)
    released = world.hsm.release(
        world.user, key, ear=ear(world.verifier, nonce, strong), nonce=nonce, recipient=strong.spki
    )
    assert unwrap_key_kem(strong.private, released.wrapped)[0] is KeyType.AES_256  # type: ignore[arg-type]


def test_a_gate_that_refuses_last_is_the_record_and_nothing_is_released(world: World) -> None:
    """``Hsm.release(..., gate=)``: the deployment's condition, asked once every check of the
    HSM passed. Its refusal is the one record of the release (its code, no statement bound),
    the nonce is spent, and an exception not of ours is recorded ``internal-error``."""
    asked: list[str] = []

    def quarantined() -> None:
        asked.append("gate")
        raise ReleaseDenied("the node was quarantined", code="node-not-admitted")

    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee)
    with pytest.raises(ReleaseDenied) as denied:
        world.hsm.release(
            world.user,
            world.key,
            ear=token,
            nonce=nonce,
            recipient=world.tee.spki,
            gate=quarantined,
        )
    assert denied.value.code == "node-not-admitted"
    assert asked == ["gate"]
    records = [r for r in world.hsm.audit_records(world.auditor) if r.operation == "release"]
    assert [r.result for r in records] == ["node-not-admitted"]
    assert records[0].release is not None
    assert records[0].release.statement is None
    with pytest.raises(StaleNonce):  # spent by the refusal
        world.release(token, nonce)

    def broken() -> None:
        raise RuntimeError("the registry could not be read")

    nonce, _ = world.hsm.release_challenge(world.user)
    with pytest.raises(RuntimeError):
        world.hsm.release(
            world.user,
            world.key,
            ear=ear(world.verifier, nonce, world.tee),
            nonce=nonce,
            recipient=world.tee.spki,
            gate=broken,
        )
    assert world.last_release_record() == ("service", "internal-error")
    # a refused EAR: the gate is read (before the HSM's lock, for every release), but the
    # HSM's own refusal is the record, in its turn before the gate's
    nonce, _ = world.hsm.release_challenge(world.user)
    with pytest.raises(StaleNonce):
        world.hsm.release(
            world.user,
            world.key,
            ear=token,
            nonce=nonce,
            recipient=world.tee.spki,
            gate=quarantined,
        )
    assert asked == ["gate", "gate"]
    assert world.last_release_record() == ("service", "nonce-mismatch")


def test_a_gates_confirmation_is_asked_last_and_its_refusal_is_the_record(world: World) -> None:
    """The gate reads before the HSM's lock and returns its confirmation, which the HSM asks
    last, under its lock: what it raises is the one record of the release, and no key leaves."""
    asked: list[str] = []

    def changed() -> None:
        asked.append("confirm")
        raise ReleaseDenied("the registry changed", code="fleet-changed")

    def gate() -> Callable[[], None]:
        asked.append("read")
        return changed

    nonce, _ = world.hsm.release_challenge(world.user)
    with pytest.raises(ReleaseDenied) as denied:
        world.hsm.release(
            world.user,
            world.key,
            ear=ear(world.verifier, nonce, world.tee),
            nonce=nonce,
            recipient=world.tee.spki,
            gate=gate,
        )
    assert denied.value.code == "fleet-changed"
    assert asked == ["read", "confirm"]
    records = [r for r in world.hsm.audit_records(world.auditor) if r.operation == "release"]
    assert [r.result for r in records] == ["fleet-changed"]
    assert records[0].release is not None
    assert records[0].release.statement is None


def test_a_gate_that_waits_on_its_registry_does_not_hold_the_hsm(world: World) -> None:
    """The gap: the gate ran under the HSM's global lock, so a gate waiting on its registry
    (another transaction holding it, a slow disk) stalled every operation of the HSM. Its read
    now runs before the lock: while one release's gate waits, another session's challenge is
    answered; the release then completes with its confirmation asked under the lock."""
    reading, go = threading.Event(), threading.Event()
    confirmed: list[bool] = []

    def slow_gate() -> Callable[[], None]:
        reading.set()
        if not go.wait(timeout=60):
            raise ReleaseDenied("the test never let the gate go", code="test-timeout")
        return lambda: confirmed.append(True)

    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee)
    outcome: dict[str, object] = {}

    def release() -> None:
        try:
            outcome["released"] = world.hsm.release(
                world.user,
                world.key,
                ear=token,
                nonce=nonce,
                recipient=world.tee.spki,
                gate=slow_gate,
            )
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    releasing = threading.Thread(target=release)
    releasing.start()
    try:
        assert reading.wait(timeout=60), "the release never reached its gate"
        answered = threading.Event()

        def challenge() -> None:
            world.hsm.release_challenge(world.user)
            answered.set()

        threading.Thread(target=challenge, daemon=True).start()
        # bounded: fails (rather than hangs) when the HSM's lock is held by the waiting gate
        assert answered.wait(timeout=30), "an unrelated HSM operation waited on the gate"
    finally:
        go.set()
        releasing.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert isinstance(outcome["released"], HsmRelease)
    assert confirmed == [True]
    assert world.last_release_record() == ("service", "ok")
