"""Wrap, unwrap, derive and release: formats byte for byte, and no path exports a
non-exportable key."""

from __future__ import annotations

import hashlib

import cbor2
import pytest
from _hsm_helpers import FAST, NOW, SECRET, DeviceChain, new_hsm, sessions
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, padding, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import PrivateKey
from ironroot.errors import (
    Conflict,
    KeyNotExportable,
    MalformedInput,
    NotFound,
    RoleNotPermitted,
    UnknownIssuer,
    UnsupportedAlgorithm,
    VerificationFailed,
)
from ironroot.hsm import (
    Hsm,
    KeyAttributes,
    KeyType,
    MemoryStorage,
    Session,
    unwrap_key_kem,
    unwrap_key_rsa_aes,
    wrap_key_kem,
    wrap_key_rsa_aes,
)
from ironroot.hsm._document import decode_store, encode_store


def _spki(public: object) -> bytes:
    return public.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _exportable(hsm: Hsm, officer: Session, key_type: KeyType = KeyType.EC_P384) -> str:
    usages = sorted(u.value for u in key_type.default_usages)
    return hsm.generate(officer, key_type, KeyAttributes.of(usages, exportable=True))


# --- the ML-KEM format, checked independently ----------------------------------------------


def test_kem_format_layout_and_kek_derivation() -> None:
    recipient = mlkem.MLKEM768PrivateKey.generate()
    target = bytes(range(32))
    wrapped = wrap_key_kem(recipient.public_key(), KeyType.AES_256, target)
    header, ciphertext, body = wrapped[:8], wrapped[8 : 8 + 1088], wrapped[8 + 1088 :]
    assert header == b"IRKW\x01\x01\x0a\x00"
    shared = recipient.decapsulate(ciphertext)
    ek = recipient.public_key().public_bytes_raw()
    info = b"ironroot/hsm/kem-wrap/v1" + header + hashlib.sha384(ek).digest()
    kek = HKDF(hashes.SHA384(), 32, None, info).derive(shared)
    assert keywrap.aes_key_unwrap_with_padding(kek, body) == target
    key_type, plain = unwrap_key_kem(recipient, wrapped)
    assert key_type is KeyType.AES_256
    assert bytes(plain) == target


def test_kem_format_1024_and_rejections() -> None:
    recipient = mlkem.MLKEM1024PrivateKey.generate()
    wrapped = wrap_key_kem(recipient.public_key(), KeyType.HMAC_SHA384, bytes(48))
    assert wrapped[5] == 2
    assert len(wrapped) == 8 + 1568 + 56
    with pytest.raises(VerificationFailed):
        unwrap_key_kem(mlkem.MLKEM1024PrivateKey.generate(), wrapped)  # another recipient
    with pytest.raises(MalformedInput):
        unwrap_key_kem(mlkem.MLKEM768PrivateKey.generate(), wrapped)  # another KEM
    swapped = wrapped[:6] + b"\x0a" + wrapped[7:]  # the header is bound into the KEK
    with pytest.raises(VerificationFailed):
        unwrap_key_kem(recipient, swapped)
    for bad in (b"", b"IRKX" + wrapped[4:], wrapped[:4] + b"\x02" + wrapped[5:], wrapped[:-8]):
        with pytest.raises((MalformedInput, VerificationFailed)):
            unwrap_key_kem(recipient, bad)
    with pytest.raises(MalformedInput):
        unwrap_key_kem(recipient, wrapped[:7] + b"\x01" + wrapped[8:])


@settings(max_examples=examples(30), deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=2000))
def test_kem_unwrap_of_mangled_bytes_raises_typed_errors(junk: bytes, where: int) -> None:
    recipient = _KEM_RECIPIENT
    wrapped = bytearray(_KEM_WRAPPED)
    where %= len(wrapped)
    wrapped[where : where + len(junk)] = junk
    if bytes(wrapped) == _KEM_WRAPPED:
        return
    with pytest.raises((MalformedInput, VerificationFailed)):
        unwrap_key_kem(recipient, bytes(wrapped))


_KEM_RECIPIENT = mlkem.MLKEM768PrivateKey.generate()
_KEM_WRAPPED = wrap_key_kem(_KEM_RECIPIENT.public_key(), KeyType.AES_256, bytes(32))


# --- RSA-AES-KEY-WRAP, checked against the PKCS#11 definition -----------------------------


def test_rsa_aes_key_wrap_is_ckm_rsa_aes_key_wrap() -> None:
    recipient = rsa.generate_private_key(65537, 3072)
    target = b"\x42" * 48
    wrapped = wrap_key_rsa_aes(recipient.public_key(), target)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    ephemeral = recipient.decrypt(wrapped[:384], oaep)
    assert len(ephemeral) == 32
    assert keywrap.aes_key_unwrap_with_padding(ephemeral, wrapped[384:]) == target
    # and the other way: a blob made with plain primitives unwraps
    kek = bytes(range(32))
    made = recipient.public_key().encrypt(kek, oaep) + keywrap.aes_key_wrap_with_padding(
        kek, target
    )
    assert bytes(unwrap_key_rsa_aes(recipient, made)) == target
    with pytest.raises(VerificationFailed):
        unwrap_key_rsa_aes(rsa.generate_private_key(65537, 3072), wrapped)
    with pytest.raises(MalformedInput):
        unwrap_key_rsa_aes(recipient, wrapped[:390])
    weak = rsa.generate_private_key(65537, 1024)  # noqa: S505  (must be refused)
    with pytest.raises(UnsupportedAlgorithm):
        wrap_key_rsa_aes(weak.public_key(), target)


# --- through the HSM -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target_type",
    [KeyType.EC_P384, KeyType.ED25519, KeyType.ML_DSA_65, KeyType.AES_256, KeyType.HMAC_SHA384],
)
@pytest.mark.parametrize("wrapper_type", [KeyType.ML_KEM_768, KeyType.RSA_3072, KeyType.AES_256])
def test_wrap_then_unwrap_gives_the_same_key(
    hsm: Hsm, roles: tuple[Session, ...], target_type: KeyType, wrapper_type: KeyType
) -> None:
    officer, user, _ = roles
    target = _exportable(hsm, officer, target_type)
    wrapper = hsm.generate(
        officer,
        wrapper_type,
        KeyAttributes.of(["wrap", "unwrap"]),
    )
    wrapped = hsm.wrap(user, target, wrapping_key=wrapper)
    attrs = KeyAttributes.of(sorted(u.value for u in target_type.default_usages))
    imported = hsm.unwrap(
        user, wrapped, unwrapping_key=wrapper, attributes=attrs, key_type=target_type
    )
    info = hsm.key_info(user, imported)
    assert not info.generated_inside
    assert not info.attributes.exportable
    if target_type.signature_algorithm is not None:
        assert info.public_key == hsm.key_info(user, target).public_key
    elif target_type is KeyType.AES_256:
        sealed = hsm.encrypt(user, target, b"m")
        assert hsm.decrypt(user, imported, sealed) == b"m"
    else:
        assert hsm.sign(user, imported, b"m") == hsm.sign(user, target, b"m")


def test_wrap_to_an_outside_kem_key_is_the_documented_format(
    hsm: Hsm, roles: tuple[Session, ...]
) -> None:
    officer, user, _ = roles
    target = _exportable(hsm, officer, KeyType.EC_P256)
    outside = mlkem.MLKEM768PrivateKey.generate()
    hsm.add_wrap_recipient(officer, "escrow", _spki(outside.public_key()))
    wrapped = hsm.wrap(user, target, recipient=_spki(outside.public_key()))
    key_type, pkcs8 = unwrap_key_kem(outside, wrapped)
    assert key_type is KeyType.EC_P256
    private = serialization.load_der_private_key(bytes(pkcs8), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert PrivateKey(private).public_key == hsm.key_info(user, target).public_key


def test_unwrap_of_an_outside_blob(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    kek = hsm.generate(officer, KeyType.RSA_3072)
    public = serialization.load_der_public_key(hsm.key_info(user, kek).public_der or b"")
    assert isinstance(public, rsa.RSAPublicKey)
    outside_key = ec.generate_private_key(ec.SECP384R1())
    pkcs8 = outside_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    handle = hsm.unwrap(
        user,
        wrap_key_rsa_aes(public, pkcs8),
        unwrapping_key=kek,
        key_type=KeyType.EC_P384,
        attributes=KeyAttributes.of(["sign"]),
    )
    signature = hsm.sign(user, handle, b"byok")
    PrivateKey(outside_key).public_key.verify(signature, b"byok")
    with pytest.raises(MalformedInput):  # the blob holds a P-384 key, not an Ed25519 one
        hsm.unwrap(
            user,
            wrap_key_rsa_aes(public, pkcs8),
            unwrapping_key=kek,
            key_type=KeyType.ED25519,
            attributes=KeyAttributes.of(["sign"]),
        )
    with pytest.raises(MalformedInput):
        hsm.unwrap(user, bytes(400), unwrapping_key=kek, attributes=KeyAttributes.of(["sign"]))


# --- no export of a non-exportable key, by any path ----------------------------------------


def test_non_exportable_key_cannot_be_wrapped(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    target = hsm.generate(officer, KeyType.EC_P384)  # exportable defaults to False
    kem = hsm.generate(officer, KeyType.ML_KEM_1024)
    outside = mlkem.MLKEM768PrivateKey.generate()
    with pytest.raises(KeyNotExportable):
        hsm.wrap(user, target, wrapping_key=kem)
    with pytest.raises(KeyNotExportable):
        hsm.wrap(user, target, recipient=_spki(outside.public_key()))


def test_unwrapped_keys_are_never_exportable(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    target = _exportable(hsm, officer, KeyType.AES_256)
    kem = hsm.generate(officer, KeyType.ML_KEM_768)
    wrapped = hsm.wrap(user, target, wrapping_key=kem)
    with pytest.raises(KeyNotExportable):
        hsm.unwrap(
            user,
            wrapped,
            unwrapping_key=kem,
            attributes=KeyAttributes.of(["encrypt"], exportable=True),
        )
    imported = hsm.unwrap(
        user, wrapped, unwrapping_key=kem, attributes=KeyAttributes.of(["encrypt"])
    )
    with pytest.raises(KeyNotExportable):
        hsm.wrap(user, imported, wrapping_key=kem)


def test_derive_from_non_exportable_cannot_export(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    parent = hsm.generate(officer, KeyType.HMAC_SHA384, KeyAttributes.of(["derive"]))
    with pytest.raises(KeyNotExportable):
        hsm.derive(
            user, parent, info=b"x", attributes=KeyAttributes.of(["encrypt"], exportable=True)
        )
    child = hsm.derive(user, parent, info=b"x", attributes=KeyAttributes.of(["encrypt"]))
    kem = hsm.generate(officer, KeyType.ML_KEM_768)
    with pytest.raises(KeyNotExportable):
        hsm.wrap(user, child, wrapping_key=kem)


def test_derive_is_hkdf_sha384(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    parent = hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["derive"], exportable=True))
    child = hsm.derive(
        user,
        parent,
        info=b"context",
        salt=b"salt",
        key_type=KeyType.AES_256,
        attributes=KeyAttributes.of(["encrypt", "decrypt"], exportable=True),
    )
    outside = rsa.generate_private_key(65537, 2048)
    spki = _spki(outside.public_key())
    hsm.add_wrap_recipient(officer, "escrow", spki)
    parent_raw = bytes(unwrap_key_rsa_aes(outside, hsm.wrap(user, parent, recipient=spki)))
    child_raw = bytes(unwrap_key_rsa_aes(outside, hsm.wrap(user, child, recipient=spki)))
    assert child_raw == HKDF(hashes.SHA384(), 32, b"salt", b"context").derive(parent_raw)
    again = hsm.derive(user, parent, info=b"context", salt=b"salt")
    sealed = hsm.encrypt(user, child, b"m")
    assert hsm.decrypt(user, again, sealed) == b"m"  # deterministic
    with pytest.raises(UnsupportedAlgorithm):
        hsm.derive(user, parent, info=b"x", key_type=KeyType.EC_P256)


def test_keys_with_a_release_policy_leave_only_through_release(
    hsm: Hsm, roles: tuple[Session, ...]
) -> None:
    officer, user, _ = roles
    policy = 'status == "affirming"'
    handle = hsm.generate(
        officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt", "decrypt"], exportable=True, release_policy=policy),
    )
    tee = mlkem.MLKEM768PrivateKey.generate()
    spki = _spki(tee.public_key())
    with pytest.raises(KeyNotExportable):
        hsm.wrap(user, handle, recipient=spki)
    nonce, _ = hsm.release_challenge(user)
    with pytest.raises(UnknownIssuer):  # release itself decides: no verifier is installed
        hsm.release(user, handle, ear=b"a.b.c", nonce=nonce, recipient=spki)
    plain = hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["encrypt"], exportable=True))
    with pytest.raises(KeyNotExportable):  # no policy: release is not the path
        hsm.release(user, plain, ear=b"a.b.c", nonce=nonce, recipient=spki)
    locked = hsm.generate(
        officer, KeyType.AES_256, KeyAttributes.of(["encrypt"], release_policy=policy)
    )
    with pytest.raises(KeyNotExportable):  # a policy does not make a key exportable
        hsm.release(user, locked, ear=b"a.b.c", nonce=nonce, recipient=spki)


def test_backup_is_sealed_to_the_device(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    from _hsm_helpers import FAST, OTHER_SECRET

    from ironroot.errors import SealedStoreError
    from ironroot.hsm import MemoryStorage

    officer, _, _ = roles
    secret_key = hsm.generate(officer, KeyType.AES_256)
    blob = hsm.backup(officer)
    assert secret_key.encode() not in blob  # not even the handle is in clear
    other = MemoryStorage()
    other.write_store(blob)
    with pytest.raises(SealedStoreError):
        Hsm.open(other, OTHER_SECRET, config=FAST)


def test_wrap_arguments(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    target = _exportable(hsm, officer, KeyType.AES_256)
    aes = hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["wrap"], exportable=True))
    with pytest.raises(MalformedInput):
        hsm.wrap(user, target)
    with pytest.raises(MalformedInput):
        hsm.wrap(user, aes, wrapping_key=aes)
    spki = _spki(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(UnsupportedAlgorithm):
        hsm.wrap(user, target, recipient=spki)
    with pytest.raises(MalformedInput):
        hsm.wrap(user, target, recipient=b"not a key")


# --- who an exportable key may be wrapped to ------------------------------------------------


def test_an_exportable_key_is_wrapped_only_to_a_recipient_an_officer_approved(
    hsm: Hsm, roles: tuple[Session, ...]
) -> None:
    """A crypto user who wraps an exportable key to a key pair of their own reads it in
    plaintext: an outside recipient must be one a crypto officer approved."""
    officer, user, auditor = roles
    target = _exportable(hsm, officer, KeyType.AES_256)
    mine = mlkem.MLKEM768PrivateKey.generate()
    with pytest.raises(KeyNotExportable) as refused:
        hsm.wrap(user, target, recipient=_spki(mine.public_key()))
    assert refused.value.code == "recipient-not-approved"
    assert refused.value.detail == (
        "the recipient key is not one a crypto officer approved for wrapped keys "
        f"(`ironroot hsm recipient add`): key {target} stays inside"
    )
    for session in (user, auditor):  # only an officer approves
        with pytest.raises(RoleNotPermitted):
            hsm.add_wrap_recipient(session, "mine", _spki(mine.public_key()))
    digest = hsm.add_wrap_recipient(officer, "escrow", _spki(mine.public_key()))
    assert digest == hashlib.sha256(_spki(mine.public_key())).hexdigest()
    assert hsm.wrap_recipients(user) == (("escrow", digest),)
    assert unwrap_key_kem(mine, hsm.wrap(user, target, recipient=_spki(mine.public_key())))
    # PEM of the same key is the same recipient; withdrawn, it is refused again
    pem = mine.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert hsm.wrap(user, target, recipient=pem)
    hsm.remove_wrap_recipient(officer, "escrow")
    with pytest.raises(KeyNotExportable, match="not one a crypto officer approved"):
        hsm.wrap(user, target, recipient=pem)


def test_wrap_recipient_approvals_are_checked(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, _user, _ = roles
    key = _spki(mlkem.MLKEM768PrivateKey.generate().public_key())
    hsm.add_wrap_recipient(officer, "escrow", key)
    with pytest.raises(Conflict, match="approved already"):
        hsm.add_wrap_recipient(officer, "escrow", _spki(rsa.generate_private_key(65537, 2048)
                                                        .public_key()))  # fmt: skip
    with pytest.raises(Conflict, match="approved already as 'escrow'"):
        hsm.add_wrap_recipient(officer, "again", key)
    with pytest.raises(UnsupportedAlgorithm):  # a signature key wraps nothing
        hsm.add_wrap_recipient(officer, "ec", _spki(ec.generate_private_key(ec.SECP384R1())
                                                    .public_key()))  # fmt: skip
    with pytest.raises(MalformedInput):
        hsm.add_wrap_recipient(officer, " ", key)
    with pytest.raises(NotFound):
        hsm.remove_wrap_recipient(officer, "never")


def test_approved_recipients_are_sealed_with_the_store(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    key = _spki(mlkem.MLKEM768PrivateKey.generate().public_key())
    digest = hsm.add_wrap_recipient(officer, "escrow", key)
    hsm.close()
    reopened = Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW.timestamp())
    officer = reopened.login("officer", b"officer-credential")
    assert reopened.wrap_recipients(officer) == (("escrow", digest),)


def test_a_store_written_before_wrap_recipients_opens_with_none(
    hsm: Hsm, roles: tuple[Session, ...]
) -> None:
    officer, _user, _ = roles
    hsm.add_wrap_recipient(officer, "escrow", _spki(mlkem.MLKEM768PrivateKey.generate()
                                                    .public_key()))  # fmt: skip
    plaintext = encode_store(hsm._document(1))
    assert [name for name, _ in decode_store(plaintext).recipients] == ["escrow"]
    older = cbor2.loads(plaintext)
    del older["recipients"]  # a version 2 store of before
    assert decode_store(cbor2.dumps(older)).recipients == ()


def test_an_imported_key_wraps_no_exportable_key(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    """A wrapping key whose value came from outside (unwrap) may be known to whoever wrapped
    it in: an exportable key wrapped under it would be theirs."""
    officer, user, _ = roles
    target = _exportable(hsm, officer, KeyType.EC_P384)
    inside = hsm.generate(officer, KeyType.ML_KEM_768, KeyAttributes.of(["unwrap"]))
    known = bytes(32)  # an AES key its importer knows
    public = serialization.load_der_public_key(hsm.key_info(user, inside).public_der or b"")
    assert isinstance(public, mlkem.MLKEM768PublicKey)
    wrapped = wrap_key_kem(public, KeyType.AES_256, known)
    imported = hsm.unwrap(
        user, wrapped, unwrapping_key=inside, attributes=KeyAttributes.of(["wrap", "unwrap"])
    )
    with pytest.raises(KeyNotExportable) as refused:
        hsm.wrap(user, target, wrapping_key=imported)
    assert refused.value.code == "wrapping-key-not-trusted"
    assert refused.value.detail == (
        f"key {imported} was imported (or derived from an imported key), so its value may be "
        f"known outside the HSM: it wraps no exportable key (key {target} stays inside)"
    )
    made_inside = hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["wrap", "unwrap"]))
    assert hsm.wrap(user, target, wrapping_key=made_inside)


def test_a_key_derived_from_an_imported_key_wraps_no_exportable_key(
    hsm: Hsm, roles: tuple[Session, ...]
) -> None:
    """A crypto user imports an AES key it knows, derives a wrapping key from it (HKDF of a
    value it knows, with its own salt and info) and would wrap an exportable key under that:
    it would compute the wrapping key itself and read the exportable key in plaintext. The
    derived key is no more generated inside than its parent."""
    officer, user, _ = roles
    target = _exportable(hsm, officer, KeyType.AES_256)
    inside = hsm.generate(officer, KeyType.ML_KEM_768, KeyAttributes.of(["unwrap"]))
    known = bytes(range(32))
    public = serialization.load_der_public_key(hsm.key_info(user, inside).public_der or b"")
    assert isinstance(public, mlkem.MLKEM768PublicKey)
    imported = hsm.unwrap(
        user,
        wrap_key_kem(public, KeyType.AES_256, known),
        unwrapping_key=inside,
        attributes=KeyAttributes.of(["derive"]),
    )
    child = hsm.derive(
        user, imported, info=b"wrapping", attributes=KeyAttributes.of(["wrap", "unwrap"])
    )
    assert hsm.key_info(user, child).generated_inside is False
    grandchild = hsm.derive(
        user,
        hsm.derive(user, imported, info=b"again", attributes=KeyAttributes.of(["derive"])),
        info=b"wrapping",
        attributes=KeyAttributes.of(["wrap"]),
    )
    for wrapper in (child, grandchild):
        with pytest.raises(KeyNotExportable) as refused:
            hsm.wrap(user, target, wrapping_key=wrapper)
        assert refused.value.code == "wrapping-key-not-trusted"
    # a key derived from one generated inside is generated inside, and wraps as before
    parent = hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["derive"]))
    made_inside = hsm.derive(user, parent, info=b"wrapping", attributes=KeyAttributes.of(["wrap"]))
    assert hsm.key_info(user, made_inside).generated_inside is True
    assert hsm.wrap(user, target, wrapping_key=made_inside)


def test_an_exportable_key_wraps_no_exportable_key(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    """A wrapping key that may itself leave the HSM (exportable: wrapped to an approved
    recipient, or released to any TEE its policy admits) would take every key wrapped under
    it along: a crypto user wraps a key meant for approved recipients only under it, and
    whoever receives the wrapping key reads that key too."""
    officer, user, _ = roles
    target = _exportable(hsm, officer, KeyType.EC_P384)
    for attributes in (
        KeyAttributes.of(["wrap"], exportable=True),
        KeyAttributes.of(["wrap"], exportable=True, release_policy='status == "affirming"'),
    ):
        leaves = hsm.generate(officer, KeyType.AES_256, attributes)
        with pytest.raises(KeyNotExportable) as refused:
            hsm.wrap(user, target, wrapping_key=leaves)
        assert refused.value.code == "wrapping-key-not-trusted"
        assert refused.value.detail == (
            f"key {leaves} is exportable, so its value may leave the HSM: it wraps no "
            f"exportable key (key {target} stays inside)"
        )


def test_a_key_derived_from_an_exportable_key_wraps_no_exportable_key(
    hsm: Hsm, roles: tuple[Session, ...]
) -> None:
    """HKDF of an exportable parent (the salt and info are the caller's) is computed by
    whoever the parent is exported or released to: the child is no more inside than it."""
    officer, user, _ = roles
    target = _exportable(hsm, officer, KeyType.AES_256)
    parent = hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["derive"], exportable=True))
    child = hsm.derive(user, parent, info=b"wrapping", attributes=KeyAttributes.of(["wrap"]))
    assert hsm.key_info(user, child).generated_inside is False
    with pytest.raises(KeyNotExportable) as refused:
        hsm.wrap(user, target, wrapping_key=child)
    assert refused.value.code == "wrapping-key-not-trusted"
