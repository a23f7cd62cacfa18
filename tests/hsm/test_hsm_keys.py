"""Keys generated inside: every type, its usages, sign/verify, AES-256-GCM, HMAC, lifecycle."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import Algorithm
from ironroot.errors import (
    BadSignature,
    KeyUsageNotPermitted,
    LimitExceeded,
    MalformedInput,
    NotFound,
    UnsupportedAlgorithm,
    VerificationFailed,
)
from ironroot.hsm import Hsm, KeyAttributes, KeyType, Session, Usage, unwrap_key_rsa_aes

SIGNING = [
    KeyType.EC_P256,
    KeyType.EC_P384,
    KeyType.ED25519,
    KeyType.ML_DSA_44,
    KeyType.ML_DSA_65,
    KeyType.ML_DSA_87,
]


@pytest.mark.parametrize("key_type", SIGNING)
def test_signing_keys_sign_and_verify(
    hsm: Hsm, roles: tuple[Session, ...], key_type: KeyType
) -> None:
    officer, user, _ = roles
    handle = hsm.generate(officer, key_type)
    info = hsm.key_info(user, handle)
    assert info.public_key is not None
    assert info.public_key.algorithm is key_type.signature_algorithm
    signature = hsm.sign(user, handle, b"message")
    hsm.verify(user, handle, signature, b"message")
    info.public_key.verify(signature, b"message")  # an outside verifier agrees
    with pytest.raises(BadSignature):
        hsm.verify(user, handle, signature, b"other message")


def test_ecdsa_signatures_use_the_cose_encoding(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    handle = hsm.generate(officer, KeyType.EC_P384)
    assert len(hsm.sign(user, handle, b"m")) == 96  # r ‖ s, 48 bytes each


@pytest.mark.parametrize("key_type", [KeyType.ML_KEM_768, KeyType.ML_KEM_1024, KeyType.RSA_3072])
def test_wrapping_key_pairs_expose_their_public_key(
    hsm: Hsm, roles: tuple[Session, ...], key_type: KeyType
) -> None:
    officer, user, _ = roles
    info = hsm.key_info(user, hsm.generate(officer, key_type))
    assert info.public_key is None
    assert info.public_der is not None
    public = serialization.load_der_public_key(info.public_der)
    expected = rsa.RSAPublicKey if key_type is KeyType.RSA_3072 else mlkem.MLKEM768PublicKey
    if key_type is KeyType.ML_KEM_1024:
        expected = mlkem.MLKEM1024PublicKey
    assert isinstance(public, expected)
    assert info.attributes.usages == frozenset({Usage.WRAP, Usage.UNWRAP})


def test_hmac_sha384(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    handle = hsm.generate(officer, KeyType.HMAC_SHA384)
    tag = hsm.sign(user, handle, b"data")
    assert len(tag) == 48
    hsm.verify(user, handle, tag, b"data")
    with pytest.raises(BadSignature):
        hsm.verify(user, handle, tag[:-1] + bytes([tag[-1] ^ 1]), b"data")
    assert hsm.key_info(user, handle).public_der is None


def test_aes_gcm_round_trip_with_aad(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    handle = hsm.generate(officer, KeyType.AES_256)
    sealed = hsm.encrypt(user, handle, b"secret", aad=b"context")
    assert len(sealed) == 12 + len(b"secret") + 16
    assert hsm.decrypt(user, handle, sealed, aad=b"context") == b"secret"
    assert hsm.encrypt(user, handle, b"secret", aad=b"context") != sealed  # fresh nonce
    with pytest.raises(VerificationFailed):
        hsm.decrypt(user, handle, sealed, aad=b"other context")
    flipped = sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:]
    with pytest.raises(VerificationFailed):
        hsm.decrypt(user, handle, flipped, aad=b"context")
    with pytest.raises(MalformedInput):
        hsm.decrypt(user, handle, sealed[:27], aad=b"context")


def test_aes_gcm_layout_is_nonce_then_standard_gcm(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    # An exportable key wrapped to an outside RSA key lets a plain AESGCM check the layout.
    officer, user, _ = roles
    known = hsm.generate(
        officer, KeyType.AES_256, KeyAttributes.of(["encrypt", "decrypt"], exportable=True)
    )
    outside = rsa.generate_private_key(65537, 3072)
    spki = outside.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hsm.add_wrap_recipient(officer, "escrow", spki)
    raw_key = bytes(unwrap_key_rsa_aes(outside, hsm.wrap(user, known, recipient=spki)))
    sealed = hsm.encrypt(user, known, b"plain", aad=b"aad")
    assert AESGCM(raw_key).decrypt(sealed[:12], sealed[12:], b"aad") == b"plain"


@settings(max_examples=examples(25), deadline=None)
@given(plaintext=st.binary(max_size=512), aad=st.binary(max_size=64))
def test_aes_gcm_round_trips(device: object, plaintext: bytes, aad: bytes) -> None:
    from _hsm_helpers import new_hsm, sessions

    hsm = _SHARED.setdefault("hsm", new_hsm(device.identity))  # type: ignore[attr-defined]
    if "roles" not in _SHARED:
        _SHARED["roles"] = sessions(hsm)
        _SHARED["key"] = hsm.generate(_SHARED["roles"][0], KeyType.AES_256)
    user = _SHARED["roles"][1]
    sealed = hsm.encrypt(user, _SHARED["key"], plaintext, aad=aad)
    assert hsm.decrypt(user, _SHARED["key"], sealed, aad=aad) == plaintext


_SHARED: dict[str, object] = {}


def test_usage_is_enforced(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    verify_only = hsm.generate(officer, KeyType.EC_P384, KeyAttributes.of(["verify"]))
    with pytest.raises(KeyUsageNotPermitted):
        hsm.sign(user, verify_only, b"m")
    encrypt_only = hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["encrypt"]))
    sealed = hsm.encrypt(user, encrypt_only, b"m")
    with pytest.raises(KeyUsageNotPermitted):
        hsm.decrypt(user, encrypt_only, sealed)
    with pytest.raises(KeyUsageNotPermitted):
        hsm.derive(user, encrypt_only, info=b"x")
    exportable = hsm.generate(officer, KeyType.EC_P256, KeyAttributes.of(["sign"], exportable=True))
    with pytest.raises(KeyUsageNotPermitted):
        hsm.wrap(user, exportable, wrapping_key=encrypt_only)
    sign_key = hsm.generate(officer, KeyType.EC_P256)
    with pytest.raises(KeyUsageNotPermitted):
        hsm.encrypt(user, sign_key, b"m")


def test_usages_must_fit_the_key_type(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer = roles[0]
    with pytest.raises(MalformedInput):
        hsm.generate(officer, KeyType.EC_P256, KeyAttributes.of(["encrypt"]))
    with pytest.raises(MalformedInput):
        hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["sign"]))
    with pytest.raises(MalformedInput):
        KeyAttributes(frozenset())
    with pytest.raises(MalformedInput):
        KeyAttributes.of(["sign"], release_policy="   ")
    with pytest.raises(MalformedInput):
        KeyAttributes.of(["fly"])
    with pytest.raises(UnsupportedAlgorithm):
        KeyType.parse("RSA-1024")


def test_attributes_are_kept(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    attrs = KeyAttributes.of(
        ["sign", "verify"],
        exportable=True,
        label="receipts",
        release_policy='status == "affirming"',
        release_on_warning=True,
    )
    handle = hsm.generate(officer, KeyType.ML_DSA_87, attrs)
    info = hsm.key_info(user, handle)
    assert info.attributes == attrs
    assert info.generated_inside
    assert [k.handle for k in hsm.keys(officer)] == [handle]
    assert KeyAttributes.from_map(attrs.to_map()) == attrs


def test_handles_are_opaque_and_unknown_ones_not_found(
    hsm: Hsm, roles: tuple[Session, ...]
) -> None:
    officer, user, _ = roles
    a = hsm.generate(officer, KeyType.EC_P256)
    b = hsm.generate(officer, KeyType.EC_P256)
    assert a != b
    assert len(a) == 32
    with pytest.raises(NotFound):
        hsm.sign(user, "0" * 32, b"m")


def test_an_oversized_handle_is_refused_before_any_lookup_and_never_echoed(
    hsm: Hsm, roles: tuple[Session, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handle longer than any the HSM makes (32 hex digits; at most 128 characters, as the
    PKCS#11 backend caps its own) is ``NotFound`` before the key table is searched, and the
    error repeats only its first 16 characters; a handle that is not text is not repeated at
    all. Before, ``NotFound`` echoed the whole handle, a megabyte of it too."""
    officer, user, _ = roles
    handle = hsm.generate(officer, KeyType.EC_P384)
    looked_up: list[object] = []
    keys = hsm._keys

    class Watched(dict[str, object]):
        def get(self, key: object, default: object = None) -> object:
            looked_up.append(key)
            return keys.get(key, default)  # type: ignore[call-overload]

    monkeypatch.setattr(hsm, "_keys", Watched(keys))
    for long in ("ab" * 65, handle * 100_000):
        for use in (
            lambda h: hsm.sign(user, h, b"m"),
            lambda h: hsm.key_info(user, h),
            lambda h: hsm.delete(officer, h),
        ):
            with pytest.raises(NotFound) as caught:
                use(long)
            assert caught.value.detail == (
                f"no key {long[:16]}…: a key handle is at most 128 hex characters"
            )
    for other in (b"x" * 1_000_000, 7):
        with pytest.raises(NotFound) as not_text:
            hsm.sign(user, other, b"m")  # type: ignore[arg-type]
        assert not_text.value.detail == "no key: a key handle is a string"
    assert looked_up == []
    with pytest.raises(NotFound) as at_the_cap:  # 128 characters: looked up, and unknown
        hsm.sign(user, "ab" * 64, b"m")
    assert at_the_cap.value.detail == f"no key {'ab' * 64!r}"
    assert looked_up == ["ab" * 64]


def test_delete_destroys_the_key(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    handle = hsm.generate(officer, KeyType.EC_P256)
    hsm.delete(officer, handle)
    with pytest.raises(NotFound):
        hsm.sign(user, handle, b"m")
    with pytest.raises(NotFound):
        hsm.delete(officer, handle)


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.HMAC_SHA384, KeyType.AES_256])
def test_a_delete_during_an_operation_never_lets_it_use_wiped_material(
    hsm: Hsm, roles: tuple[Session, ...], key_type: KeyType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sign and encrypt run outside the HSM's lock; a delete that wipes the key between the
    operation's look-up and its use must not make it sign, MAC or encrypt with zeros (the
    old code returned an HMAC of the zeroed EC key as the "signature")."""
    import threading

    officer, user, _ = roles
    usages = ["encrypt", "decrypt"] if key_type is KeyType.AES_256 else ["sign", "verify"]
    handle = hsm.generate(officer, key_type, KeyAttributes.of(usages))
    if key_type is KeyType.EC_P256:
        public = hsm.key_info(user, handle).public_key
    elif key_type is KeyType.HMAC_SHA384:
        expected = hsm.sign(user, handle, b"m")
    look_up = hsm._key
    deleting = threading.Thread(target=hsm.delete, args=(officer, handle))

    def then_delete(*args: object, **kwargs: object) -> object:
        found = look_up(*args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(hsm, "_key", look_up)
        deleting.start()  # the old code held no lock here: the delete wiped the key at once
        deleting.join(0.3)  # the new one holds it: the delete waits for the look-up's end
        return found

    monkeypatch.setattr(hsm, "_key", then_delete)
    if key_type is KeyType.AES_256:
        assert len(hsm.encrypt(user, handle, b"m")) == 12 + 1 + 16  # the old code: refused
    else:
        signature = hsm.sign(user, handle, b"m")
        if key_type is KeyType.EC_P256:
            assert public is not None
            public.verify(signature, b"m")  # the old code: an HMAC of zeros, BadSignature
        else:
            assert signature == expected
    deleting.join(10)
    with pytest.raises(NotFound):
        hsm.key_info(user, handle)


def test_nothing_secret_in_reprs(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    handle = hsm.generate(officer, KeyType.AES_256)
    text = repr(hsm) + repr(hsm.key_info(user, handle)) + repr(user)
    assert user.token.hex() not in text
    assert "stored" not in text


def test_input_size_is_limited(device: object) -> None:
    import dataclasses

    from _hsm_helpers import FAST, new_hsm, sessions

    hsm = new_hsm(device.identity, config=dataclasses.replace(FAST, max_data=16))  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    with pytest.raises(LimitExceeded):
        hsm.sign(user, handle, bytes(17))
    with pytest.raises(MalformedInput):
        hsm.sign(user, handle, "text")  # type: ignore[arg-type]


def test_ecdsa_keys_are_on_the_right_curve(hsm: Hsm, roles: tuple[Session, ...]) -> None:
    officer, user, _ = roles
    info = hsm.key_info(user, hsm.generate(officer, KeyType.EC_P384))
    assert info.public_key is not None
    assert info.public_key.algorithm is Algorithm.ES384
    assert isinstance(info.public_key.raw, ec.EllipticCurvePublicKey)
    assert info.public_key.raw.curve.name == "secp384r1"


@pytest.mark.parametrize("field", ["label", "release_policy"])
def test_a_lone_surrogate_is_refused_and_does_not_poison_the_store(
    hsm: Hsm, roles: tuple[Session, Session, Session], field: str
) -> None:
    """A label or policy that cannot be encoded once left the key in memory and every later
    commit failing (the store could never be written again)."""
    officer, _, _ = roles
    text = {"label": "\ud800", "release_policy": 'status == "\ud800"'}[field]
    with pytest.raises(MalformedInput, match="valid Unicode"):
        KeyAttributes.of(["encrypt", "decrypt"], **{field: text})  # type: ignore[arg-type]
    before = len(hsm.keys(officer))
    handle = hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["encrypt"], label="ok"))
    assert len(hsm.keys(officer)) == before + 1
    assert hsm.key_info(officer, handle).attributes.label == "ok"
