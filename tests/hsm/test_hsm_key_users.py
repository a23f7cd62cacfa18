"""Per-key users: a key that names its crypto users is used by them only.

Without it every crypto user could use every key: the service that signs receipts could sign
with the verifier's EAR key, release another service's keys, or wrap them out. Each refusal is
``RoleNotPermitted`` with code ``key-access-denied``, audited under the identity that tried.
"""

from __future__ import annotations

import cbor2
import pytest
from _hsm_helpers import FAST, NOW, NOW_TS, OFFICER, OFFICER_PASS, SECRET, USER, USER_PASS, new_hsm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem
from test_hsm_release import World, ear

from ironroot.errors import Conflict, MalformedInput, NotFound, RoleNotPermitted
from ironroot.hsm import Hsm, KeyAttributes, KeyType, MemoryStorage, Role, Session
from ironroot.hsm._attest import verify_key_attestation

OTHER, OTHER_PASS = "other-service", b"other-credential"


@pytest.fixture
def other(hsm: Hsm, roles: tuple[Session, Session, Session]) -> Session:
    hsm.add_identity(roles[0], OTHER, Role.USER, OTHER_PASS)
    return hsm.login(OTHER, OTHER_PASS)


def _denied(call: object, *args: object, **kwargs: object) -> RoleNotPermitted:
    with pytest.raises(RoleNotPermitted) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    assert info.value.code == "key-access-denied"
    return info.value


def _last(hsm: Hsm, auditor: Session, operation: str) -> tuple[str, str]:
    record = [r for r in hsm.audit_records(auditor) if r.operation == operation][-1]
    return record.identity, record.result


def test_a_key_that_names_its_users_is_refused_to_any_other_crypto_user(
    hsm: Hsm, roles: tuple[Session, Session, Session], other: Session
) -> None:
    officer, user, auditor = roles
    mine = hsm.generate(
        officer, KeyType.EC_P384, KeyAttributes.of(["sign", "verify"], users=[USER])
    )
    signature = hsm.sign(user, mine, b"statement")
    hsm.verify(user, mine, signature, b"statement")
    error = _denied(hsm.sign, other, mine, b"statement")
    assert error.detail == f"identity {OTHER!r} is not a user of key {mine}"
    assert _last(hsm, auditor, "sign") == (OTHER, "key-access-denied")
    _denied(hsm.verify, other, mine, signature, b"statement")
    # a key that names no users is every crypto user's, as before
    shared = hsm.generate(officer, KeyType.EC_P384)
    hsm.sign(other, shared, b"statement")
    assert hsm.key_info(other, mine).attributes.users == frozenset({USER})
    assert hsm.key_info(other, shared).attributes.users is None


def test_encrypt_and_decrypt_follow_the_key_users(
    hsm: Hsm, roles: tuple[Session, Session, Session], other: Session
) -> None:
    officer, user, _ = roles
    aes = hsm.generate(
        officer, KeyType.AES_256, KeyAttributes.of(["encrypt", "decrypt"], users=[USER])
    )
    sealed = hsm.encrypt(user, aes, b"secret")
    assert hsm.decrypt(user, aes, sealed) == b"secret"
    _denied(hsm.encrypt, other, aes, b"secret")
    _denied(hsm.decrypt, other, aes, sealed)


def test_a_key_is_given_only_to_crypto_users_that_exist(
    hsm: Hsm, roles: tuple[Session, Session, Session]
) -> None:
    officer, _, _ = roles
    with pytest.raises(NotFound) as typo:
        hsm.generate(officer, KeyType.EC_P384, KeyAttributes.of(["sign"], users=["servcie"]))
    assert typo.value.detail == "no identity 'servcie' to name as a key user"
    with pytest.raises(MalformedInput) as not_a_user:
        hsm.generate(officer, KeyType.EC_P384, KeyAttributes.of(["sign"], users=[OFFICER]))
    assert not_a_user.value.detail == f"identity {OFFICER!r} is not a crypto user"
    with pytest.raises(MalformedInput):
        KeyAttributes.of(["sign"], users=USER)  # one string is not a list of its letters
    with pytest.raises(MalformedInput):
        KeyAttributes.of(["sign"], users=[])
    with pytest.raises(MalformedInput):
        KeyAttributes.of(["sign"], users=["a b"])
    assert hsm.keys(officer) == ()


def test_derived_and_unwrapped_keys_are_shared_no_wider_than_their_parent(
    hsm: Hsm, roles: tuple[Session, Session, Session], other: Session
) -> None:
    officer, user, _ = roles
    parent = hsm.generate(officer, KeyType.HMAC_SHA384, KeyAttributes.of(["derive"], users=[USER]))
    child = hsm.derive(user, parent, info=b"ctx", key_type=KeyType.AES_256)
    assert hsm.key_info(user, child).attributes.users == frozenset({USER})  # inherited
    _denied(hsm.encrypt, other, child, b"m")
    _denied(
        hsm.derive,
        user,
        parent,
        info=b"ctx",
        key_type=KeyType.AES_256,
        attributes=KeyAttributes.of(["encrypt", "decrypt"], users=[USER, OTHER]),
    )
    _denied(hsm.derive, other, parent, info=b"ctx", key_type=KeyType.AES_256)

    kek = hsm.generate(
        officer, KeyType.ML_KEM_768, KeyAttributes.of(["wrap", "unwrap"], users=[USER])
    )
    target = hsm.generate(
        officer, KeyType.AES_256, KeyAttributes.of(["encrypt", "decrypt"], exportable=True)
    )
    wrapped = hsm.wrap(user, target, wrapping_key=kek)
    _denied(hsm.wrap, other, target, wrapping_key=kek)  # another's wrapping key
    imported = hsm.unwrap(
        user, wrapped, unwrapping_key=kek, attributes=KeyAttributes.of(["encrypt", "decrypt"])
    )
    assert hsm.key_info(user, imported).attributes.users == frozenset({USER})
    _denied(
        hsm.unwrap,
        other,
        wrapped,
        unwrapping_key=kek,
        attributes=KeyAttributes.of(["encrypt", "decrypt"]),
    )


def test_a_key_named_for_another_user_is_not_wrapped_out_by_anyone_else(
    hsm: Hsm, roles: tuple[Session, Session, Session], other: Session
) -> None:
    officer, user, _ = roles
    target = hsm.generate(
        officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt", "decrypt"], exportable=True, users=[USER]),
    )
    escrow = mlkem.MLKEM768PrivateKey.generate().public_key()
    spki = escrow.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hsm.add_wrap_recipient(officer, "escrow", spki)
    _denied(hsm.wrap, other, target, recipient=spki)
    assert hsm.wrap(user, target, recipient=spki)


def test_a_release_of_another_users_key_is_refused_before_its_nonce_is_spent(
    hsm: Hsm, roles: tuple[Session, Session, Session], other: Session
) -> None:
    world = World(hsm, roles)
    officer, _, auditor = roles
    hsm.set_key_users(officer, world.key, [USER])
    nonce, _ = hsm.release_challenge(other)
    token = ear(world.verifier, nonce, world.tee)
    _denied(hsm.release, other, world.key, ear=token, nonce=nonce, recipient=world.tee.spki)
    assert _last(hsm, auditor, "release") == (OTHER, "key-access-denied")
    assert world.release(token, nonce)  # the service, on the same nonce: still unspent


def test_only_an_officer_changes_a_keys_users_and_each_change_is_audited(
    hsm: Hsm, roles: tuple[Session, Session, Session], other: Session
) -> None:
    officer, user, auditor = roles
    key = hsm.generate(officer, KeyType.EC_P256, KeyAttributes.of(["sign"], users=[USER]))
    with pytest.raises(RoleNotPermitted) as info:
        hsm.set_key_users(user, key, [USER, OTHER])
    assert info.value.code == "role-not-permitted"
    _denied(hsm.sign, other, key, b"m")
    info_after = hsm.set_key_users(officer, key, [USER, OTHER])
    assert info_after.attributes.users == frozenset({USER, OTHER})
    hsm.sign(other, key, b"m")
    assert _last(hsm, auditor, "key-users") == (OFFICER, "ok")
    with pytest.raises(NotFound):
        hsm.set_key_users(officer, key, ["nobody"])
    assert hsm.key_info(officer, key).attributes.users == frozenset({USER, OTHER})
    hsm.set_key_users(officer, key, None)  # every crypto user again
    assert hsm.key_info(officer, key).attributes.users is None


def test_an_identity_a_key_names_is_not_removed_so_its_name_cannot_be_taken_over(
    hsm: Hsm, roles: tuple[Session, Session, Session], other: Session
) -> None:
    officer, _, _ = roles
    key = hsm.generate(officer, KeyType.EC_P256, KeyAttributes.of(["sign"], users=[OTHER]))
    with pytest.raises(Conflict) as info:
        hsm.remove_identity(officer, OTHER)
    assert info.value.detail == (
        f"identity {OTHER!r} is a user of key(s) {key}: take it off them first (`set_key_users`)"
    )
    hsm.set_key_users(officer, key, [USER])
    hsm.remove_identity(officer, OTHER)
    hsm.add_identity(officer, OTHER, Role.USER, b"a new holder of the name")
    _denied(hsm.sign, hsm.login(OTHER, b"a new holder of the name"), key, b"m")


def test_key_users_survive_a_restart_and_are_in_the_key_attestation(
    roles: tuple[Session, Session, Session], device: object
) -> None:
    del roles
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    officer = hsm.login(OFFICER, OFFICER_PASS)
    hsm.add_identity(officer, USER, Role.USER, USER_PASS)
    hsm.add_identity(officer, OTHER, Role.USER, OTHER_PASS)
    key = hsm.generate(officer, KeyType.EC_P384, KeyAttributes.of(["sign"], users=[USER]))
    hsm.close()
    reopened = Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS)
    _denied(reopened.sign, reopened.login(OTHER, OTHER_PASS), key, b"m")
    reopened.sign(reopened.login(USER, USER_PASS), key, b"m")
    statement = reopened.attest(reopened.login(USER, USER_PASS), key)
    attested = verify_key_attestation(statement, roots=[device.root], now=NOW)  # type: ignore[attr-defined]
    assert attested.attributes.users == frozenset({USER})


@pytest.mark.parametrize(
    "users",
    [None, "service", ["service", "service"], [1], []],
    ids=["null", "text", "repeated", "not-text", "empty"],
)
def test_stored_key_users_of_the_wrong_form_are_refused(users: object) -> None:
    form = KeyAttributes.of(["sign"], users=[USER]).to_map()
    form["users"] = users
    with pytest.raises(MalformedInput):
        KeyAttributes.from_map(cbor2.loads(cbor2.dumps(form)))
    assert KeyAttributes.from_map(KeyAttributes.of(["sign"]).to_map()).users is None
