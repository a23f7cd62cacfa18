"""The PKCS#11 backend against SoftHSM2: keys sensitive and not extractable, ES384 signing, and
a Signer over either backend producing COSE signatures that verify."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from _hsm_helpers import new_hsm, sessions
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11 import Attribute, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from ironroot.cose import SignedStatement, create_statement
from ironroot.crypto import Algorithm, PrivateKey, Signer
from ironroot.errors import (
    BadSignature,
    ConfigError,
    Conflict,
    KeyNotExportable,
    KeyUsageNotPermitted,
    LimitExceeded,
    MalformedInput,
    NotFound,
    PolicyRejected,
    StorageError,
    Unauthorized,
    UnsupportedAlgorithm,
)
from ironroot.hsm import (
    BuiltinBackend,
    HsmConfig,
    HsmSigner,
    KeyAttributes,
    KeyBackend,
    KeyType,
    Pkcs11Backend,
    ServiceKeys,
    ServiceKeysConfig,
)
from ironroot_softhsm import LABEL, PIN, shared_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def token() -> str:
    """The process's SoftHSM2 token (see tests/ironroot_softhsm.py); yields the library path."""
    return shared_token()


@pytest.fixture
def backend(token: str) -> Iterator[Pkcs11Backend]:
    with Pkcs11Backend(token, token_label=LABEL, pin=PIN) as opened:
        yield opened


def test_it_is_a_key_backend(backend: Pkcs11Backend) -> None:
    assert isinstance(backend, KeyBackend)


@pytest.mark.parametrize("key_type", [KeyType.EC_P384, KeyType.EC_P256, KeyType.ED25519])
def test_sign_and_verify(backend: Pkcs11Backend, key_type: KeyType) -> None:
    handle = backend.generate(key_type, KeyAttributes.of(["sign", "verify"], label="svc"))
    signature = backend.sign(handle, b"message")
    public = backend.public_key(handle)
    assert public.algorithm is key_type.signature_algorithm
    public.verify(signature, b"message")
    backend.verify(handle, signature, b"message")
    with pytest.raises(BadSignature):
        backend.verify(handle, signature, b"other")


def test_hmac_on_the_token(backend: Pkcs11Backend) -> None:
    handle = backend.generate(KeyType.HMAC_SHA384, KeyAttributes.of(["sign", "verify"]))
    tag = backend.sign(handle, b"data")
    assert len(tag) == 48
    backend.verify(handle, tag, b"data")
    with pytest.raises(BadSignature):
        backend.verify(handle, bytes(48), b"data")
    with pytest.raises(UnsupportedAlgorithm):
        backend.public_key(handle)


def test_keys_are_sensitive_and_not_extractable(token: str, backend: Pkcs11Backend) -> None:
    ec_handle = backend.generate(KeyType.EC_P384, KeyAttributes.of(["sign"]))
    aes_handle = backend.generate(KeyType.AES_256, KeyAttributes.of(["encrypt", "decrypt"]))
    for handle in (ec_handle, aes_handle):
        assert backend.attribute(handle, Attribute.SENSITIVE) is True
        assert backend.attribute(handle, Attribute.EXTRACTABLE) is False
        with pytest.raises(KeyNotExportable):
            backend.attribute(handle, Attribute.VALUE)
        # an empty CKA_START_DATE, and a template python-pkcs11 cannot decode: typed
        for undecodable in (Attribute.START_DATE, Attribute.ALLOWED_MECHANISMS):
            with pytest.raises(MalformedInput, match="does not decode"):
                backend.attribute(handle, undecodable)
    # the token itself refuses, whatever library asks
    # the backend's login is the application's: this session shares it
    session = pkcs11.lib(token).get_token(token_label=LABEL).open(rw=True)
    try:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=bytes.fromhex(ec_handle))
        with pytest.raises(pkcs11.AttributeSensitive):
            private[Attribute.VALUE]
        secret = session.get_key(object_class=ObjectClass.SECRET_KEY, id=bytes.fromhex(aes_handle))
        wrapper = session.generate_key(
            pkcs11.KeyType.AES, 256, template={Attribute.WRAP: True, Attribute.TOKEN: False}
        )
        with pytest.raises(pkcs11.KeyUnextractable):
            wrapper.wrap_key(secret)
    finally:
        session.close()


def test_usage_and_unknown_keys(backend: Pkcs11Backend) -> None:
    verify_only = backend.generate(KeyType.EC_P384, KeyAttributes.of(["verify"]))
    with pytest.raises(KeyUsageNotPermitted):
        backend.sign(verify_only, b"m")
    with pytest.raises(NotFound):
        backend.sign("00" * 16, b"m")
    with pytest.raises(NotFound):
        backend.sign("not hex", b"m")
    with pytest.raises(UnsupportedAlgorithm):
        backend.generate(KeyType.ML_DSA_87, KeyAttributes.of(["sign"]))
    backend.delete(verify_only)
    with pytest.raises(NotFound):
        backend.public_key(verify_only)


def test_keys_the_backend_did_not_make_are_refused(token: str, backend: Pkcs11Backend) -> None:
    """An RSA key, a P-521 key or an AES-128 key put on the token under a handle is not taken
    for one of the backend's types (a P-521 key once signed as if it were P-384)."""
    session = pkcs11.lib(token).get_token(token_label=LABEL).open(rw=True)
    try:
        rsa_id, p521_id, aes_id = os.urandom(16), os.urandom(16), os.urandom(16)
        session.generate_keypair(pkcs11.KeyType.RSA, 2048, id=rsa_id, store=True)
        session.create_domain_parameters(
            pkcs11.KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters("secp521r1")},
            local=True,
        ).generate_keypair(id=p521_id, store=True, mechanism=pkcs11.Mechanism.EC_KEY_PAIR_GEN)
        session.generate_key(pkcs11.KeyType.AES, 128, id=aes_id, store=True)
    finally:
        session.close()
    for key_id in (rsa_id, p521_id, aes_id):
        with pytest.raises(UnsupportedAlgorithm, match="a type this backend does not use"):
            backend.sign(key_id.hex(), b"m")
        with pytest.raises(UnsupportedAlgorithm, match="a type this backend does not use"):
            backend.public_key(key_id.hex())


@pytest.mark.parametrize("size", [1, 32])
def test_a_generic_secret_not_of_hmac_sha384s_size_is_refused(
    token: str, backend: Pkcs11Backend, size: int
) -> None:
    """A generic secret of another size than the 48 bytes the backend makes for HMAC-SHA-384,
    generated on the token and kept sensitive (so ``key-not-local`` passes it), was taken for
    an HMAC-SHA-384 key, as an AES-128 key is not: SoftHSM2 then refused to use a short one
    (``CKR_KEY_SIZE_RANGE``, a ``StorageError``), while a token whose HMAC mechanism takes
    short keys signs with a 1-byte one, found from one of its tags in 256 tries. It is
    refused as the other keys the backend does not make are."""
    session = pkcs11.lib(token).get_token(token_label=LABEL).open(rw=True)  # the backend's login
    key_id = os.urandom(16)
    try:
        session.generate_key(
            pkcs11.KeyType.GENERIC_SECRET,
            size * 8,
            id=key_id,
            store=True,
            template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.WRAP_WITH_TRUSTED: True,
                Attribute.SIGN: True,
                Attribute.VERIFY: True,
            },
        )
    finally:
        session.close()
    for call in (
        lambda: backend.sign(key_id.hex(), b"m"),
        lambda: backend.verify(key_id.hex(), bytes(48), b"m"),
    ):
        with pytest.raises(UnsupportedAlgorithm) as info:
            call()
        assert info.value.detail == f"key {key_id.hex()} is of a type this backend does not use"


def test_a_public_key_of_another_type_under_the_handle(token: str, backend: Pkcs11Backend) -> None:
    """A P-384 private key whose public object under the same CKA_ID is an RSA key: typed."""
    session = pkcs11.lib(token).get_token(token_label=LABEL).open(rw=True)
    try:
        key_id = os.urandom(16)
        session.create_domain_parameters(
            pkcs11.KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters("secp384r1")},
            local=True,
        ).generate_keypair(
            id=key_id,
            store=True,
            mechanism=pkcs11.Mechanism.EC_KEY_PAIR_GEN,
            public_template={Attribute.TOKEN: False},
        )
        _, rsa_private = session.generate_keypair(pkcs11.KeyType.RSA, 2048, id=key_id, store=True)
        rsa_private.destroy()
    finally:
        session.close()
    with pytest.raises(UnsupportedAlgorithm, match="the public key is not an EC key"):
        backend.public_key(key_id.hex())
    with pytest.raises(UnsupportedAlgorithm, match="the public key is not an EC key"):
        backend.verify(key_id.hex(), bytes(96), b"m")


@pytest.mark.parametrize("key_type", [KeyType.EC_P384, KeyType.EC_P256, KeyType.ED25519])
def test_keys_persist_on_the_token(token: str, backend: Pkcs11Backend, key_type: KeyType) -> None:
    handle = backend.generate(key_type, KeyAttributes.of(["sign", "verify"]))
    public = backend.public_key(handle)
    with Pkcs11Backend(token, token_label=LABEL, pin=PIN) as again:
        public.verify(again.sign(handle, b"m"), b"m")


def test_close_twice_and_use_after_close(token: str) -> None:
    backend = Pkcs11Backend(token, token_label=LABEL, pin=PIN)
    handle = backend.generate(KeyType.EC_P384, KeyAttributes.of(["sign"]))
    with backend:
        pass
    backend.close()  # once more: nothing happens (it raised pkcs11.SessionHandleInvalid)
    with pytest.raises(StorageError, match="session is closed"):
        backend.sign(handle, b"m")


def test_a_key_type_look_up_waits_for_the_session(token: str, backend: Pkcs11Backend) -> None:
    """The first use of a handle reads its type from the token: through the one session, so
    under the backend's lock like every other use (it ran outside it, beside a sign or a
    delete on another thread)."""
    handle = backend.generate(KeyType.EC_P384, KeyAttributes.of(["sign"]))
    with Pkcs11Backend(token, token_label=LABEL, pin=PIN) as other:  # no type cached there
        done = threading.Event()
        found: list[object] = []

        def look() -> None:
            found.append(other.public_key(handle))
            done.set()

        with other._lock:  # another thread holds the session
            reader = threading.Thread(target=look)
            reader.start()
            assert not done.wait(0.3)
            assert found == []
            assert handle not in other._types  # nothing read from the token meanwhile
        reader.join(10)
        assert done.is_set()
        assert found[0] == backend.public_key(handle)
        other.delete(handle)
        with pytest.raises(NotFound):
            other.public_key(handle)


def test_wrong_pin_and_token(token: str, backend: Pkcs11Backend) -> None:
    # ``backend`` is logged in: the token answers a second login "already logged in" without
    # checking its PIN, and that used to open a session sharing the login
    with pytest.raises(Unauthorized):
        Pkcs11Backend(token, token_label=LABEL, pin="0000")
    with Pkcs11Backend(token, token_label=LABEL, pin=PIN):
        pass
    with pytest.raises(NotFound):
        Pkcs11Backend(token, token_label="no-such-token", pin=PIN)


def test_a_token_with_the_label_but_another_serial_is_refused(
    token: str, backend: Pkcs11Backend
) -> None:
    # A label is a name anyone who can create a token may give theirs: a token pinned by
    # serial is refused, before the PIN is sent to it, when the one labelled so has another.
    serial = pkcs11.lib(token).get_token(token_label=LABEL).serial.decode().strip()
    with pytest.raises(PolicyRejected, match="has serial") as caught:
        Pkcs11Backend(token, token_label=LABEL, pin=PIN, token_serial="0000000000000000")
    assert caught.value.code == "token-serial-mismatch"
    assert serial in str(caught.value)
    with Pkcs11Backend(token, token_label=LABEL, pin=PIN, token_serial=serial) as pinned:
        handle = pinned.generate(KeyType.EC_P256, KeyAttributes.of(["sign"]))
        assert pinned.sign(handle, b"m")
    with pytest.raises(ConfigError, match="token serial"):
        Pkcs11Backend(token, token_label=LABEL, pin=PIN, token_serial="")


def test_the_keys_table_pins_the_token_serial(token: str, tmp_path: Path) -> None:
    (tmp_path / "token.pin").write_text(PIN)
    (tmp_path / "token.pin").chmod(0o600)
    table = {
        "backend": "pkcs11",
        "pkcs11_library": token,
        "pkcs11_token": LABEL,
        "pkcs11_token_serial": "0000000000000000",
        "pkcs11_pin_file": "token.pin",
    }
    config = ServiceKeysConfig.parse(table, tmp_path)
    with pytest.raises(PolicyRejected) as caught:
        ServiceKeys(config)
    assert caught.value.code == "token-serial-mismatch"
    with pytest.raises(ConfigError, match=r"needs keys\.backend"):
        ServiceKeysConfig.parse({**table, "backend": "hsm"}, tmp_path)


def _statement(signer: Signer) -> bytes:
    return create_statement(signer, b"payload", iss="urn:test", sub="hsm-signer")


def test_hsm_signer_over_both_backends(backend: Pkcs11Backend, device: object) -> None:
    pkcs11_signer = HsmSigner(
        backend, backend.generate(KeyType.EC_P384, KeyAttributes.of(["sign", "verify"]))
    )
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    handle = BuiltinBackend(hsm, officer).generate(KeyType.EC_P384, KeyAttributes.of(["sign"]))
    builtin_signer = HsmSigner(BuiltinBackend(hsm, user), handle)
    for signer in (pkcs11_signer, builtin_signer):
        assert isinstance(signer, Signer)
        assert signer.algorithm is Algorithm.ES384
        parsed = SignedStatement.parse(_statement(signer))
        assert parsed.kid == signer.kid
        parsed.sign1.verify(signer.verifier())


def _session(token: str) -> pkcs11.Session:
    """A second session on the shared token: what anyone holding the user PIN can do."""
    return pkcs11.lib(token).get_token(token_label=LABEL).open(rw=True)


def test_an_exportable_key_is_wrapped_only_under_a_trusted_key(
    token: str, backend: Pkcs11Backend
) -> None:
    """Was: an exportable key was extractable under *any* wrapping key, so anyone with the
    PIN made an AES key of a value they chose (C_CreateObject) and wrapped the key under it:
    the key in plaintext. Now it is CKA_WRAP_WITH_TRUSTED, and the token refuses to wrap it
    under a key the security officer did not mark CKA_TRUSTED."""
    handle = backend.generate(
        KeyType.AES_256, KeyAttributes.of(["encrypt", "decrypt"], exportable=True)
    )
    assert backend.attribute(handle, Attribute.EXTRACTABLE) is True
    assert backend.attribute(handle, Attribute.WRAP_WITH_TRUSTED) is True
    session = _session(token)
    try:
        known = session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: pkcs11.KeyType.AES,
                Attribute.VALUE: bytes(32),
                Attribute.WRAP: True,
                Attribute.TOKEN: False,
            }
        )
        target = session.get_key(object_class=ObjectClass.SECRET_KEY, id=bytes.fromhex(handle))
        with pytest.raises(pkcs11.KeyNotWrappable):
            known.wrap_key(target, mechanism=pkcs11.Mechanism.AES_KEY_WRAP)
        with pytest.raises(pkcs11.AttributeReadOnly):  # and it stays so
            target[Attribute.WRAP_WITH_TRUSTED] = False
    finally:
        session.close()


def _known_p384(
    session: pkcs11.Session, key_id: bytes, **private: object
) -> ec.EllipticCurvePrivateKey:
    known = ec.generate_private_key(ec.SECP384R1())
    point = known.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    params = encode_named_curve_parameters("secp384r1")
    template = {
        Attribute.CLASS: ObjectClass.PRIVATE_KEY,
        Attribute.KEY_TYPE: pkcs11.KeyType.EC,
        Attribute.EC_PARAMS: params,
        Attribute.VALUE: known.private_numbers().private_value.to_bytes(48, "big"),
        Attribute.SIGN: True,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.ID: key_id,
    }
    template.update(private)  # type: ignore[arg-type]
    session.create_object(template)
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: pkcs11.KeyType.EC,
            Attribute.EC_PARAMS: params,
            Attribute.EC_POINT: bytes([0x04, len(point)]) + point,
            Attribute.VERIFY: True,
            Attribute.TOKEN: True,
            Attribute.ID: key_id,
        }
    )
    return known


def test_a_key_not_generated_on_the_token_is_refused(token: str, backend: Pkcs11Backend) -> None:
    """Was: any key of a supported type under a handle was used, so a key whose value someone
    knew (put there with C_CreateObject, or generated readable) signed as the service's.
    Now a key is used only if it was generated on the token (CKA_LOCAL), sensitive ever
    since (CKA_ALWAYS_SENSITIVE) and, if extractable, only under a trusted key."""
    imported_ec, imported_aes, readable, open_wrap = (os.urandom(16) for _ in range(4))
    session = _session(token)
    try:
        _known_p384(session, imported_ec)
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: pkcs11.KeyType.AES,
                Attribute.VALUE: bytes(32),
                Attribute.ENCRYPT: True,
                Attribute.TOKEN: True,
                Attribute.SENSITIVE: True,
                Attribute.ID: imported_aes,
            }
        )
        session.create_domain_parameters(
            pkcs11.KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters("secp384r1")},
            local=True,
        ).generate_keypair(
            id=readable,
            store=True,
            mechanism=pkcs11.Mechanism.EC_KEY_PAIR_GEN,
            private_template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
        )
        session.generate_key(
            pkcs11.KeyType.AES,
            256,
            id=open_wrap,
            store=True,
            template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True},
        )
    finally:
        session.close()
    for key_id, why in (
        (imported_ec, "was not generated on the token"),
        (imported_aes, "was not generated on the token"),
        (readable, "was not generated on the token"),
        (open_wrap, "is extractable under any wrapping key"),
    ):
        with pytest.raises(PolicyRejected, match=why) as info:
            backend.sign(key_id.hex(), b"m")
        assert info.value.code == "key-not-local"
    with pytest.raises(PolicyRejected, match="was not generated on the token"):
        backend.public_key(imported_ec.hex())
    backend.delete(imported_ec.hex())  # a key refused for use can still be removed
    with pytest.raises(NotFound):
        backend.sign(imported_ec.hex(), b"m")


def test_a_key_replaced_on_the_token_while_in_use_is_checked_again(
    token: str, backend: Pkcs11Backend
) -> None:
    """Someone with the PIN destroys a key the backend has used and creates one of their
    own under its handle (C_CreateObject, a value they know). The backend had kept the
    token's object and the key's checks: it went on failing on the stale object until a
    restart (and on a token that hands the freed object handle to the new object, would
    have used the new key unchecked). Now a failed use forgets what it kept, and the next
    use looks the key up again and refuses it."""
    handle = backend.generate(KeyType.HMAC_SHA384, KeyAttributes.of(["sign", "verify"]))
    backend.sign(handle, b"m")
    session = _session(token)
    try:
        session.get_key(object_class=ObjectClass.SECRET_KEY, id=bytes.fromhex(handle)).destroy()
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: pkcs11.KeyType.GENERIC_SECRET,
                Attribute.VALUE: bytes(48),
                Attribute.SIGN: True,
                Attribute.TOKEN: True,
                Attribute.SENSITIVE: True,
                Attribute.ID: bytes.fromhex(handle),
            }
        )
    finally:
        session.close()
    with pytest.raises(StorageError, match="could not sign"):
        backend.sign(handle, b"m")  # the object it held is gone
    with pytest.raises(PolicyRejected, match="was not generated on the token") as info:
        backend.sign(handle, b"m")
    assert info.value.code == "key-not-local"


def test_a_public_key_put_in_place_of_the_pairs_is_refused(
    token: str, backend: Pkcs11Backend
) -> None:
    """Was: ``public_key`` returned whatever public object sat under the handle, so one put in
    place of the pair's was published as the service's key, and signatures made with its
    private key (which whoever put it there holds) verified as the service's. Now the first
    use checks the pair (sign and verify a fresh challenge)."""
    handle = backend.generate(KeyType.EC_P384, KeyAttributes.of(["sign", "verify"]))
    real = backend.public_key(handle)
    session = _session(token)
    try:
        session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=bytes.fromhex(handle)).destroy()
        known = _known_p384(session, os.urandom(16))
        point = known.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                Attribute.KEY_TYPE: pkcs11.KeyType.EC,
                Attribute.EC_PARAMS: encode_named_curve_parameters("secp384r1"),
                Attribute.EC_POINT: bytes([0x04, len(point)]) + point,
                Attribute.VERIFY: True,
                Attribute.TOKEN: True,
                Attribute.ID: bytes.fromhex(handle),
            }
        )
    finally:
        session.close()
    with Pkcs11Backend(token, token_label=LABEL, pin=PIN) as fresh:
        with pytest.raises(PolicyRejected, match="is not the private key's") as info:
            fresh.public_key(handle)
        assert info.value.code == "key-pair-mismatch"
        forged = PrivateKey(known, Algorithm.ES384).sign(b"receipt")
        with pytest.raises(PolicyRejected, match="is not the private key's"):
            fresh.verify(handle, forged, b"receipt")
        with pytest.raises(BadSignature):  # what the published key would have accepted
            real.verify(forged, b"receipt")


def test_what_the_builtin_backend_refuses_the_token_refuses_too(
    backend: Pkcs11Backend, device: object
) -> None:
    """Parity of the two backends' "must reject": a key without usage ``verify`` does not
    verify (the builtin's ``KeyUsageNotPermitted``: the public object's ``CKA_VERIFY`` is
    false, yet the backend verified with the public key it read), and data that is not bytes
    is ``MalformedInput`` (a ``str`` was UTF-8 encoded and signed by python-pkcs11, or a
    ``TypeError`` escaped from hashing it)."""
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    officer, user, _auditor = sessions(hsm)
    builtin = hsm.generate(officer, KeyType.EC_P384, KeyAttributes.of(["sign"]))
    signature = hsm.sign(user, builtin, b"m")
    with pytest.raises(KeyUsageNotPermitted) as refused:
        hsm.verify(user, builtin, signature, b"m")
    with pytest.raises(MalformedInput) as not_bytes:
        hsm.sign(user, builtin, "m")  # type: ignore[arg-type]
    for key_type in (KeyType.EC_P384, KeyType.ED25519):
        handle = backend.generate(key_type, KeyAttributes.of(["sign"]))
        signature = backend.sign(handle, b"m")
        with pytest.raises(KeyUsageNotPermitted) as info:
            backend.verify(handle, signature, b"m")
        assert info.value.detail == f"key {handle} does not have usage verify"
        assert type(info.value) is type(refused.value)
        for bad in ("m", None, 7):
            with pytest.raises(MalformedInput) as data:
                backend.sign(handle, bad)  # type: ignore[arg-type]
            assert data.value.detail == not_bytes.value.detail == "data must be bytes"
            with pytest.raises(MalformedInput):
                backend.verify(handle, signature, bad)  # type: ignore[arg-type]
            with pytest.raises(MalformedInput) as sig:
                backend.verify(handle, bad, b"m")  # type: ignore[arg-type]
            assert sig.value.detail == "signature must be bytes"
    hmac_key = backend.generate(KeyType.HMAC_SHA384, KeyAttributes.of(["sign", "verify"]))
    with pytest.raises(MalformedInput):
        backend.sign(hmac_key, "m")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attributes", "what"),
    [
        (KeyAttributes.of(["sign"], users=["svc"]), "key users"),
        (
            KeyAttributes.of(["encrypt"], exportable=True, release_policy="true"),
            "a release policy",
        ),
    ],
)
def test_attributes_the_token_cannot_enforce_are_refused(
    backend: Pkcs11Backend, attributes: KeyAttributes, what: str
) -> None:
    """The built-in HSM enforces a key's users and its release policy (a key with one leaves
    only through a release); the token knows neither, and kept the key without them: a key
    meant for one service usable by every PIN holder, a key meant to leave only to an
    attested TEE extractable under any trusted wrapping key. Refused, and no key is made."""
    key_type = KeyType.EC_P384 if "sign" in {u.value for u in attributes.usages} else None
    with pytest.raises(PolicyRejected) as info:
        backend.generate(key_type or KeyType.AES_256, attributes)
    assert info.value.code == "attribute-not-enforced"
    assert info.value.detail == (
        f"the PKCS#11 backend cannot enforce {what}: the token would make the key without "
        "that restriction; use the built-in HSM for such a key"
    )


# --- caps on what the backend takes (docs/hsm.md#backends) -----------------------------------


@pytest.mark.parametrize("key_type", [KeyType.EC_P384, KeyType.ED25519, KeyType.HMAC_SHA384])
def test_data_and_signatures_over_the_cap_are_refused_as_the_builtin_refuses_them(
    token: str, device: object, key_type: KeyType
) -> None:
    """``max_data`` bounds data to sign or verify and a signature, as ``HsmConfig.max_data``
    bounds the built-in HSM's (same default, same ``LimitExceeded`` and message), before the
    token is asked: python-pkcs11 hands EdDSA and HMAC data to ``C_Sign`` whole (a real token
    answers CKR_DATA_LEN_RANGE past its own limit, which was a ``StorageError`` that dropped
    the key's checks)."""
    assert HsmConfig().max_data == Pkcs11Backend.DEFAULT_MAX_DATA
    identity = device.identity  # type: ignore[attr-defined]
    hsm = new_hsm(identity, config=HsmConfig(scrypt_n=2**10, max_data=128))
    officer, user, _auditor = sessions(hsm)
    builtin = hsm.generate(officer, key_type, KeyAttributes.of(["sign", "verify"]))
    with pytest.raises(LimitExceeded) as refused:
        hsm.sign(user, builtin, bytes(129))
    with Pkcs11Backend(token, token_label=LABEL, pin=PIN, max_data=128) as capped:
        handle = capped.generate(key_type, KeyAttributes.of(["sign", "verify"]))
        signature = capped.sign(handle, bytes(128))  # at the cap: taken
        capped.verify(handle, signature, bytes(128))
        with pytest.raises(LimitExceeded) as data:
            capped.sign(handle, bytes(129))
        assert type(data.value) is type(refused.value)
        assert data.value.detail == refused.value.detail == "data is over 128 bytes"
        with pytest.raises(LimitExceeded) as verified:
            capped.verify(handle, signature, bytearray(129))
        assert verified.value.detail == "data is over 128 bytes"
        with pytest.raises(LimitExceeded) as sig:
            capped.verify(handle, signature + bytes(129), bytes(128))
        assert sig.value.detail == "signature is over 128 bytes"
        capped.verify(handle, signature, bytes(128))  # the key's checks were kept
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigError) as config:
            Pkcs11Backend(token, token_label=LABEL, pin=PIN, max_data=bad)  # type: ignore[arg-type]
        assert config.value.detail == "a PKCS#11 backend's max_data is a positive integer"


@pytest.mark.parametrize("pin", ["1" * 256, "é" * 128, "1" * 100_000, "12\ud80034"])
def test_a_pin_over_255_bytes_or_not_unicode_is_refused_before_it_is_sent(
    token: str, backend: Pkcs11Backend, pin: str
) -> None:
    """A PIN is at most 255 bytes of UTF-8 (SoftHSM2's and most tokens' ulMaxPinLen; a
    longer one is CKR_PIN_LEN_RANGE from a token that checks): ``ConfigError``, as that
    answer was, before the library is loaded. A lone surrogate let a ``UnicodeEncodeError``
    out of python-pkcs11."""
    with pytest.raises(ConfigError) as caught:
        Pkcs11Backend(token, token_label=LABEL, pin=pin)
    assert caught.value.detail == "a PKCS#11 PIN is Unicode text of at most 255 bytes (UTF-8)"
    with pytest.raises(Unauthorized):  # 255 bytes: the token's to judge
        Pkcs11Backend(token, token_label=LABEL, pin="1" * 255)


def test_a_token_label_over_32_bytes_or_a_serial_over_16_names_no_token(token: str) -> None:
    """CK_TOKEN_INFO's label is 32 bytes and its serial number 16 characters: a longer one
    names no token. The label is ``NotFound`` (as a label no token has; its message no longer
    repeats it whole), the serial ``ConfigError`` (as an empty one; it was
    ``PolicyRejected`` token-serial-mismatch once the token was opened)."""
    with pytest.raises(NotFound) as label:
        Pkcs11Backend(token, token_label="x" * 33 + "y" * 100_000, pin=PIN)
    assert label.value.detail == (
        f"no PKCS#11 token labelled {'x' * 32!r}…: a token label is at most 32 bytes (UTF-8)"
    )
    with pytest.raises(ConfigError) as serial:
        Pkcs11Backend(token, token_label=LABEL, pin=PIN, token_serial="0" * 17)
    assert serial.value.detail == "a PKCS#11 token serial is 1 to 16 characters"


def test_a_handle_over_128_hex_characters_is_not_found_and_not_repeated(
    backend: Pkcs11Backend,
) -> None:
    """A handle is the hex of a CKA_ID, at most 64 bytes here (the backend's are 16): a longer
    one is ``NotFound`` (as a handle that is not hex), without its bytes searched for on the
    token or repeated whole in the error, for every use by handle."""
    handle = backend.generate(KeyType.EC_P384, KeyAttributes.of(["sign", "verify"]))
    signature = backend.sign(handle, b"m")
    for long in ("ab" * 65, handle * 1_000_000):
        uses = (
            lambda h: backend.sign(h, b"m"),
            lambda h: backend.verify(h, signature, b"m"),
            backend.public_key,
            lambda h: backend.attribute(h, Attribute.SENSITIVE),
            backend.delete,
        )
        for use in uses:
            with pytest.raises(NotFound) as caught:
                use(long)
            assert caught.value.detail == (
                f"no key {long[:16]}…: a key handle is at most 128 hex characters"
            )
    backend.verify(handle, signature, b"m")


def test_a_key_made_under_a_chosen_handle_and_purged_whatever_is_left_of_it(
    backend: Pkcs11Backend,
) -> None:
    """A caller that records a new key's handle as pending before the key is made
    (``ServiceKeys``) picks it with ``new_handle``, makes the key under it, and after a crash
    purges whatever the token holds under it: a whole pair, or a public object alone. A handle
    already on the token is ``Conflict`` (the key is not made twice under one handle); one
    ``new_handle`` would not make is ``MalformedInput``."""
    attributes = KeyAttributes.of(["sign", "verify"])
    handle = Pkcs11Backend.new_handle()
    assert backend.generate(KeyType.EC_P256, attributes, handle=handle) == handle
    with pytest.raises(Conflict) as taken:
        backend.generate(KeyType.EC_P256, attributes, handle=handle)
    assert taken.value.detail == f"the token holds an object under handle {handle} already"
    for bad in ("ab" * 15, "zz" * 16, "ab" * 17):
        with pytest.raises(MalformedInput) as caught:
            backend.generate(KeyType.EC_P256, attributes, handle=bad)
        assert caught.value.detail == "a new key's handle is 32 hex digits"
    backend.sign(handle, b"m")
    assert backend.purge(handle) == 2
    with pytest.raises(NotFound):
        backend.sign(handle, b"m")
    assert backend.purge(handle) == 0
    half = Pkcs11Backend.new_handle()
    backend.generate(KeyType.EC_P256, attributes, handle=half)
    private = backend._session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=bytes.fromhex(half))
    private.destroy()  # a pair's making cut short: its public object alone
    with pytest.raises(NotFound):
        backend.delete(half)  # delete finds no key there …
    assert backend.purge(half) == 1  # … purge destroys what is
    with pytest.raises(NotFound):
        backend.public_key(half)


def _spaced(handle: str) -> str:
    """``handle`` with a space before each byte's two digits: ``bytes.fromhex`` reads it as the
    same ``CKA_ID``."""
    return "".join(f" {handle[i : i + 2]}" for i in range(0, len(handle), 2))


def test_a_new_handle_with_whitespace_or_an_odd_digit_is_refused(backend: Pkcs11Backend) -> None:
    """A handle is hex digits only (``ironroot._text.strict_hex``): ``bytes.fromhex`` skipped
    whitespace, so ``" ab cd …"`` (or a tab, a line break among the digits) made the key of
    the 32 digits under another spelling than the handle ``generate`` returns, and purged it
    by that spelling too. Upper-case digits are hex, as ``strict_hex`` reads them (the handle
    returned is the lower-case one of ``new_handle``)."""
    attributes = KeyAttributes.of(["sign", "verify"])
    handle = Pkcs11Backend.new_handle()
    for bad in (_spaced(handle), f"{handle}\n", f"{handle[:16]}\t{handle[16:]}", handle[:31]):
        with pytest.raises(MalformedInput) as caught:
            backend.generate(KeyType.EC_P256, attributes, handle=bad)
        assert type(caught.value) is MalformedInput
        assert caught.value.detail == "a new key's handle is 32 hex digits"
        with pytest.raises(MalformedInput) as purged:
            backend.purge(bad)
        assert purged.value.detail == "a new key's handle is 32 hex digits"
    assert backend._objects_under(bytes.fromhex(handle)) == []  # nothing was made
    upper = Pkcs11Backend.new_handle().upper()
    assert backend.generate(KeyType.EC_P256, attributes, handle=upper) == upper.lower()
    assert backend.purge(upper) == 2


def test_a_handle_spelled_with_whitespace_names_no_key(backend: Pkcs11Backend) -> None:
    """A key's handle spelled with spaces among its digits is no handle of it: every use by
    handle is ``NotFound`` (as a handle that is not hex), and purging it is refused; the key
    itself stays, under its own handle."""
    handle = backend.generate(KeyType.EC_P256, KeyAttributes.of(["sign", "verify"]))
    signature = backend.sign(handle, b"m")
    spaced = _spaced(handle)
    uses = (
        lambda h: backend.sign(h, b"m"),
        lambda h: backend.verify(h, signature, b"m"),
        backend.public_key,
        lambda h: backend.attribute(h, Attribute.SENSITIVE),
        backend.delete,
    )
    for use in uses:
        with pytest.raises(NotFound) as caught:
            use(spaced)
        assert type(caught.value) is NotFound
        assert caught.value.detail == f"no key {spaced!r}"
    with pytest.raises(MalformedInput):
        backend.purge(spaced)
    backend.verify(handle, signature, b"m")
    backend.delete(handle)


def _spellings(handle: str) -> tuple[str, str]:
    """Two spellings of one handle, both hex digits only (``strict_hex`` reads either as the
    same ``CKA_ID``): upper case, and lower case with upper-case letters in every other byte."""
    mixed = "".join(
        handle[i : i + 2].upper() if i % 4 else handle[i : i + 2] for i in range(0, len(handle), 2)
    )
    return handle.upper(), mixed


def test_a_key_deleted_under_another_spelling_of_its_handle_is_gone_under_every_spelling(
    backend: Pkcs11Backend,
) -> None:
    """The backend kept a key's objects, type and checked public key by the handle's
    spelling. Upper-case hex is a spelling of the same ``CKA_ID``: a key deleted (or purged)
    under one spelling stayed known under another, so ``public_key`` still published it and
    ``verify`` still accepted its signatures, the token holding no key at all. Now every
    spelling is kept under the one handle (the lower-case hex of the ``CKA_ID``)."""
    handle = backend.generate(KeyType.EC_P256, KeyAttributes.of(["sign", "verify"]))
    upper, mixed = _spellings(handle)
    signature = backend.sign(handle, b"m")
    for spelling in (handle, upper, mixed):
        backend.verify(spelling, signature, b"m")
        assert backend.public_key(spelling) == backend.public_key(handle)
    assert set(backend._types) == {handle}  # one entry, whatever the spelling
    assert set(backend._publics) == {handle}
    backend.delete(upper)
    for spelling in (handle, upper, mixed):
        with pytest.raises(NotFound):
            backend.public_key(spelling)
        with pytest.raises(NotFound):
            backend.verify(spelling, signature, b"m")
    other = backend.generate(KeyType.EC_P256, KeyAttributes.of(["sign", "verify"]))
    other_signature = backend.sign(other, b"m")
    backend.public_key(other)
    assert backend.purge(_spellings(other)[1]) == 2
    with pytest.raises(NotFound):
        backend.verify(other, other_signature, b"m")


def test_a_key_replaced_on_the_token_is_checked_again_under_every_spelling(
    token: str, backend: Pkcs11Backend
) -> None:
    """A key used under two spellings of its handle, then replaced on the token by one of
    someone's own (C_CreateObject): a failed use forgot what was kept under its spelling
    only, and the other went on with the stale object and the key's old checks. Now the
    first failed use forgets the key under every spelling; the next use, by either, looks
    it up again and refuses it."""
    handle = backend.generate(KeyType.HMAC_SHA384, KeyAttributes.of(["sign", "verify"]))
    upper, _mixed = _spellings(handle)
    backend.sign(handle, b"m")
    backend.sign(upper, b"m")
    session = _session(token)
    try:
        session.get_key(object_class=ObjectClass.SECRET_KEY, id=bytes.fromhex(handle)).destroy()
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: pkcs11.KeyType.GENERIC_SECRET,
                Attribute.VALUE: bytes(48),
                Attribute.SIGN: True,
                Attribute.TOKEN: True,
                Attribute.SENSITIVE: True,
                Attribute.ID: bytes.fromhex(handle),
            }
        )
    finally:
        session.close()
    with pytest.raises(StorageError, match="could not sign"):
        backend.sign(handle, b"m")  # the object it held is gone
    with pytest.raises(PolicyRejected, match="was not generated on the token") as info:
        backend.sign(upper, b"m")
    assert info.value.code == "key-not-local"


def test_a_backend_closed_does_not_log_out_another_that_shares_its_login(token: str) -> None:
    """PKCS#11 login is the application's, not a session's: a second backend on the token
    shares the first one's login, and python-pkcs11 logs out when the session that logged in
    closes. Closing the first backend used to log the second out: its keys were then
    ``NotFound`` (private objects are invisible without a login) though still on the token.
    The session that logged in now stays open, idle, until the last backend sharing its
    login closes; that one logs out."""
    first = Pkcs11Backend(token, token_label=LABEL, pin=PIN)
    handle = first.generate(KeyType.EC_P256, KeyAttributes.of(["sign", "verify"]))
    second = Pkcs11Backend(token, token_label=LABEL, pin=PIN)
    first.close()
    signature = second.sign(handle, b"still logged in")
    second.public_key(handle).verify(signature, b"still logged in")
    with pytest.raises(Unauthorized):  # the login is shared only with its PIN, as before
        Pkcs11Backend(token, token_label=LABEL, pin="0000")
    third = Pkcs11Backend(token, token_label=LABEL, pin=PIN)
    second.close()
    assert third.sign(handle, b"and the third")
    third.delete(handle)
    third.close()
    # the last one logged out: a new backend logs in again, and a wrong PIN is the token's
    # refusal
    with pytest.raises(Unauthorized):
        Pkcs11Backend(token, token_label=LABEL, pin="0000")
    with Pkcs11Backend(token, token_label=LABEL, pin=PIN) as again:
        assert again.generate(KeyType.AES_256, KeyAttributes.of(["encrypt"]))
