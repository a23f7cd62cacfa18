"""A PKCS#11 token behind :class:`~ironroot.hsm.KeyBackend` (``python-pkcs11``).

Tested against SoftHSM2 2.6, which offers EC (P-256, P-384), EdDSA (Ed25519), AES and HMAC but
neither ML-DSA nor ML-KEM, and no CKM_ECDSA_SHA384: ECDSA keys sign with raw CKM_ECDSA over a
digest computed here (SHA-256 for P-256, SHA-384 for P-384), which is the same signature; the
token returns ``r ‖ s`` as fixed-width octets, which is already the COSE encoding.

Every private and secret key is created on the token (``CKA_TOKEN``) with ``CKA_SENSITIVE``
true and ``CKA_EXTRACTABLE`` false unless its attributes say exportable (then extractable, but
still sensitive and ``CKA_WRAP_WITH_TRUSTED``: it can leave only wrapped under a trusted key).
A key found under a handle is used only if it was made so (``_check_made_on_token``), and a
key pair's public object is checked against its private key before it is first returned.
A use that fails on the token forgets what was kept of the key, so a key replaced on the
token meanwhile is looked up and checked again at its next use. What is kept is keyed by the
canonical handle (the lower-case hex of the ``CKA_ID``, ``_canonical``), whatever spelling a
caller gave (upper-case digits name the same key), so forgetting or deleting a key under one
spelling forgets it under all.
Usages map to ``CKA_SIGN``, ``CKA_VERIFY``,
``CKA_ENCRYPT``, ``CKA_DECRYPT``, ``CKA_WRAP``, ``CKA_UNWRAP``, ``CKA_DERIVE``. A handle is the
hex of the key's random 16-byte ``CKA_ID``, hex digits only (:func:`ironroot._text.strict_hex`:
a handle with whitespace among its digits is ``NotFound``, or ``MalformedInput`` as a new
key's). Reading a sensitive attribute (``CKA_VALUE``) is
refused by the token and reported as ``KeyNotExportable``.

One PKCS#11 session is used under a lock (python-pkcs11 sessions are not thread-safe).

**Caps**, checked before the token is asked (``docs/hsm.md#backends``): data to sign or verify
and a signature are at most ``max_data`` bytes (``LimitExceeded``, the built-in HSM's
``HsmConfig.max_data`` refusal, same default: a token past its own limit answers
CKR_DATA_LEN_RANGE); a handle at most :data:`_MAX_HANDLE` hex characters (``NotFound``, as a
handle that is not hex); the PIN at most :data:`_MAX_PIN` bytes of UTF-8 (``ConfigError``, as
CKR_PIN_LEN_RANGE is); a token label at most 32 bytes and a serial at most 16 characters, the
sizes of CK_TOKEN_INFO's fields (``NotFound``, ``ConfigError``). A key's label (CKA_LABEL) is
bounded by ``KeyAttributes`` (``MAX_LABEL``); the backend builds every template itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from typing import Any, Final

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import KeyType as P11KeyType
from pkcs11.util.ec import encode_named_curve_parameters

from ironroot._text import strict_hex
from ironroot.crypto import Algorithm, PublicKey
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
from ironroot.hsm._model import MAX_DATA, KeyAttributes, KeyType, Usage

__all__ = ["Pkcs11Backend"]

_CURVES: Final = {
    KeyType.EC_P256: ("secp256r1", ec.SECP256R1(), hashlib.sha256, Algorithm.ES256),
    KeyType.EC_P384: ("secp384r1", ec.SECP384R1(), hashlib.sha384, Algorithm.ES384),
}
_ED25519_OID_DER: Final = bytes.fromhex("06032b6570")  # OID 1.3.101.112 (RFC 8410)
# CKA_EC_PARAMS of an Ed25519 key: the OID, or the curve name as a PrintableString (PKCS#11
# 3.0; what SoftHSM2 stores whichever it was given).
_ED25519_PARAMS: Final = frozenset({_ED25519_OID_DER, b"\x13\x0cedwards25519"})
_EC_KEY_TYPES: Final = frozenset({P11KeyType.EC, P11KeyType.EC_EDWARDS})
_USAGE_ATTRIBUTES: Final = {
    Usage.SIGN: Attribute.SIGN,
    Usage.VERIFY: Attribute.VERIFY,
    Usage.ENCRYPT: Attribute.ENCRYPT,
    Usage.DECRYPT: Attribute.DECRYPT,
    Usage.WRAP: Attribute.WRAP,
    Usage.UNWRAP: Attribute.UNWRAP,
    Usage.DERIVE: Attribute.DERIVE,
}
_PUBLIC_USAGES: Final = frozenset({Usage.VERIFY, Usage.ENCRYPT, Usage.WRAP})
_SUPPORTED: Final = frozenset(
    {KeyType.EC_P256, KeyType.EC_P384, KeyType.ED25519, KeyType.AES_256, KeyType.HMAC_SHA384}
)
_SECRET_SIZES: Final = {  # a secret key's type on the token: ours, and its size in bytes
    P11KeyType.AES: (KeyType.AES_256, 32),
    # the 384 bits generate makes: a shorter generic secret is found from its tags
    P11KeyType.GENERIC_SECRET: (KeyType.HMAC_SHA384, 48),
}
_ID_SIZE: Final = 16  # bytes of a CKA_ID the backend makes (a handle: its hex)
_MAX_HANDLE: Final = 128  # hex characters: a CKA_ID of up to 64 bytes (the backend's are 16)
_MAX_PIN: Final = 255  # bytes of UTF-8: SoftHSM2's ulMaxPinLen, and most tokens'
_MAX_TOKEN_LABEL: Final = 32  # bytes: CK_TOKEN_INFO.label
_MAX_TOKEN_SERIAL: Final = 16  # characters: CK_TOKEN_INFO.serialNumber


def _octet_string(data: bytes) -> bytes:
    """The content of a DER OCTET STRING (CKA_EC_POINT holds the point wrapped in one)."""
    if len(data) < 2 or data[0] != 0x04:
        raise MalformedInput("CKA_EC_POINT is not a DER OCTET STRING")
    first = data[1]
    head = 2 + (first & 0x7F if first & 0x80 else 0)
    size = int.from_bytes(data[2:head], "big") if first & 0x80 else first
    if head + size != len(data):
        raise MalformedInput("CKA_EC_POINT has the wrong length")
    return data[head:]


# The PIN of each token login made in this process, as a keyed digest (never the PIN): a
# second login to a token returns CKR_USER_ALREADY_LOGGED_IN without checking its PIN.
_PIN_KEY: Final = secrets.token_bytes(32)
_LOGINS: dict[tuple[str, str], bytes] = {}


class _SharedLogin:
    """The one login to a token that the open backends of this process share: the session
    that logged in (``holder``: python-pkcs11 logs out when it closes, which ends the login
    for every session of the process) and how many open backends use the login. The holder
    is closed by the last of them to close, whichever backend opened it."""

    __slots__ = ("holder", "users")

    def __init__(self, holder: Any) -> None:
        self.holder = holder
        self.users = 1


_SHARED: dict[tuple[str, str], _SharedLogin] = {}
_SHARED_LOCK = threading.Lock()


def _bytes(value: object, what: str, limit: int) -> bytes:
    """``value`` as bytes, as the built-in HSM takes it (``_check_data``): a ``str`` is not
    UTF-8 encoded and signed, as python-pkcs11 would; over ``limit`` bytes, ``LimitExceeded``
    (the built-in HSM's refusal, word for word)."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise MalformedInput(f"{what} must be bytes")
    if len(value) > limit:
        raise LimitExceeded(f"{what} is over {limit} bytes")
    return bytes(value)


def _check_pin(pin: object) -> None:
    """``ConfigError`` unless ``pin`` is text of at most :data:`_MAX_PIN` bytes of UTF-8."""
    try:
        fits = isinstance(pin, str) and len(pin.encode("utf-8")) <= _MAX_PIN
    except UnicodeEncodeError:  # a lone surrogate: python-pkcs11 let this out
        fits = False
    if not fits:
        raise ConfigError(f"a PKCS#11 PIN is Unicode text of at most {_MAX_PIN} bytes (UTF-8)")


def _pin_digest(pin: str) -> bytes:
    return hmac.new(_PIN_KEY, str(pin).encode(), hashlib.sha256).digest()


def _check_serial(token: Any, label: str, expected: str) -> None:
    """``PolicyRejected`` unless ``token``'s serial number (CK_TOKEN_INFO.serialNumber,
    blank-padded) is ``expected``."""
    raw = token.serial
    found = (raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)).strip()
    if not hmac.compare_digest(found.encode(), expected.encode()):
        raise PolicyRejected(
            f"the PKCS#11 token labelled {label!r} has serial {found[:32]!r}, not the "
            f"{expected[:32]!r} configured: it is another token",
            code="token-serial-mismatch",
        )


class Pkcs11Backend:
    """Keys on a PKCS#11 token (SoftHSM2 in tests, a hardware HSM in production)."""

    DEFAULT_MAX_DATA: Final = MAX_DATA
    """The default ``max_data``: the built-in HSM's (``HsmConfig.max_data``)."""

    def __init__(
        self,
        library: str,
        *,
        token_label: str,
        pin: str,
        token_serial: str | None = None,
        max_data: int = MAX_DATA,
    ) -> None:
        """Open the token labelled ``token_label``; with ``token_serial``, only if it is the
        token of that serial number (``PolicyRejected`` code ``token-serial-mismatch``,
        before the PIN is sent to it): a label is a name anyone able to create a token
        may give theirs, and that token's keys would pass every check made here.
        ``max_data`` bounds data to sign or verify and a signature (module docs: caps)."""
        if isinstance(max_data, bool) or not isinstance(max_data, int) or max_data < 1:
            raise ConfigError("a PKCS#11 backend's max_data is a positive integer")
        if token_serial is not None and (
            not isinstance(token_serial, str) or not token_serial.strip()
        ):
            raise ConfigError("a PKCS#11 token serial is a non-empty string")
        if token_serial is not None and len(token_serial.strip()) > _MAX_TOKEN_SERIAL:
            raise ConfigError(f"a PKCS#11 token serial is 1 to {_MAX_TOKEN_SERIAL} characters")
        _check_pin(pin)
        if isinstance(token_label, str) and (
            len(token_label) > _MAX_TOKEN_LABEL
            or len(token_label.encode("utf-8", "surrogatepass")) > _MAX_TOKEN_LABEL
        ):
            raise NotFound(
                f"no PKCS#11 token labelled {token_label[:_MAX_TOKEN_LABEL]!r}…: a token label "
                f"is at most {_MAX_TOKEN_LABEL} bytes (UTF-8)"
            )
        self._max_data = max_data
        login = (library, token_label)
        try:
            self._lib = pkcs11.lib(library)
            token = self._lib.get_token(token_label=token_label)
            if token_serial is not None:
                _check_serial(token, token_label, token_serial.strip())
            with _SHARED_LOCK:
                self._session = self._open_session(token, login, pin)
        except pkcs11.PinIncorrect as exc:
            raise Unauthorized("the token refused the PIN") from exc
        except pkcs11.NoSuchToken as exc:
            raise NotFound(f"no PKCS#11 token labelled {token_label!r}") from exc
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise ConfigError(f"cannot open the PKCS#11 token: {exc!r}") from exc
        self._login = login
        self._lock = threading.Lock()
        self._closed = False
        self._objects: dict[tuple[str, ObjectClass], Any] = {}
        self._types: dict[str, KeyType] = {}
        self._publics: dict[str, PublicKey] = {}

    @staticmethod
    def _open_session(token: Any, login: tuple[str, str], pin: str) -> Any:
        """A session of ``token`` logged in with ``pin``: logging in, or sharing the login of
        the backends of this process open on it (under ``_SHARED_LOCK``).

        PKCS#11 login state belongs to the application, not the session: once logged in, a
        second login answers "already logged in" without checking its PIN, so the PIN is
        checked here against that login's. The session that logged in is the login's holder
        (``_SharedLogin``)."""
        shared = _SHARED.get(login)
        if shared is not None:
            known = _LOGINS.get(login)
            if known is None or not hmac.compare_digest(known, _pin_digest(pin)):
                raise Unauthorized("the token refused the PIN")
            session = token.open(rw=True)
            shared.users += 1
            return session
        try:
            session = token.open(rw=True, user_pin=pin)
        except pkcs11.UserAlreadyLoggedIn:
            # logged in by another user of the library in this process, not by an open
            # backend: its PIN is known only if a backend made that login
            known = _LOGINS.get(login)
            if known is None or not hmac.compare_digest(known, _pin_digest(pin)):
                raise Unauthorized("the token refused the PIN") from None
            session = token.open(rw=True)
            _SHARED[login] = _SharedLogin(None)  # whoever logged in logs out
            return session
        _LOGINS[login] = _pin_digest(pin)
        _SHARED[login] = _SharedLogin(session)
        return session

    def close(self) -> None:
        """Close the session; a second close does nothing. The session that logged in stays
        open, idle, while another backend of this process shares its login (closing it logs
        every session of the process out); the last of them to close closes it."""
        with self._lock:
            self._objects.clear()
            self._publics.clear()
            if self._closed:
                return
            self._closed = True
            to_close: list[Any] = []
            with _SHARED_LOCK:
                shared = _SHARED.get(self._login)
                if shared is None:  # never so: every open backend is counted
                    to_close.append(self._session)
                else:
                    shared.users -= 1
                    if self._session is not shared.holder:
                        to_close.append(self._session)
                    if shared.users == 0:
                        del _SHARED[self._login]
                        if shared.holder is not None:
                            to_close.append(shared.holder)  # last: it logs out
                try:
                    for session in to_close:
                        session.close()
                except pkcs11.PKCS11Error as exc:
                    raise StorageError(f"the token failed: {exc!r}") from exc

    def __enter__(self) -> Pkcs11Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- lookups -----------------------------------------------------------------------------

    def _canonical(self, handle: str) -> str:
        """The one spelling of ``handle`` that what is kept of a key is keyed by: the
        lower-case hex of its ``CKA_ID`` (``StorageError`` after :meth:`close`, ``NotFound``
        for a handle over :data:`_MAX_HANDLE` characters or not hex digits only). Upper-case
        digits are a spelling of the same ``CKA_ID``: kept by the spelling given, a key
        deleted, purged or forgotten under one stayed known, unchecked, under another."""
        if self._closed:
            raise StorageError("the PKCS#11 session is closed")
        if isinstance(handle, str) and len(handle) > _MAX_HANDLE:
            raise NotFound(
                f"no key {handle[:16]}…: a key handle is at most {_MAX_HANDLE} hex characters"
            )
        # hex digits only: bytes.fromhex skips whitespace, a second spelling of one CKA_ID
        key_id = strict_hex(handle) if isinstance(handle, str) else None
        if key_id is None:
            raise NotFound(f"no key {handle!r}")
        return key_id.hex()

    def _object(self, handle: str, object_class: ObjectClass) -> Any:
        """The token's object of ``object_class`` under ``handle``, a canonical handle
        (:meth:`_canonical`), kept after its first look-up."""
        handle = self._canonical(handle)
        cached = self._objects.get((handle, object_class))
        if cached is not None:
            return cached
        key_id = bytes.fromhex(handle)
        try:
            obj = self._session.get_key(object_class=object_class, id=key_id)
        except pkcs11.NoSuchKey as exc:
            raise NotFound(f"no key {handle!r} ({object_class.name})") from exc
        except pkcs11.PKCS11Error as exc:
            raise StorageError(f"the token failed: {exc!r}") from exc
        self._objects[(handle, object_class)] = obj
        return obj

    def _forget(self, handle: str) -> None:
        """Drop what was kept of ``handle`` (its objects, type and public key), under the
        lock, after a use of it failed on the token: the key may have been replaced there,
        and the next use looks it up and checks it again (``_check_made_on_token``).
        ``handle`` is canonical (:meth:`_canonical`): every spelling of it is forgotten."""
        for object_class in (
            ObjectClass.PRIVATE_KEY,
            ObjectClass.PUBLIC_KEY,
            ObjectClass.SECRET_KEY,
        ):
            self._objects.pop((handle, object_class), None)
        self._types.pop(handle, None)
        self._publics.pop(handle, None)

    def _key_type(self, handle: str, *, to_use: bool = True) -> KeyType:
        """The type of the key under ``handle``, read from the token once. Under the lock, as
        every use of the session: PKCS#11 sessions are not for two threads at once, and a
        look-up racing a :meth:`delete` must not cache the type of a key that is gone.
        ``to_use``: the key must also have been made on the token (``_check_made_on_token``);
        :meth:`delete` looks up without it, so a key refused for use can still be removed.
        ``handle`` is canonical (:meth:`_canonical`)."""
        with self._lock:
            known = self._types.get(handle)
            if known is not None:
                return known
            try:
                obj = self._object(handle, ObjectClass.PRIVATE_KEY)
            except NotFound:
                obj = self._object(handle, ObjectClass.SECRET_KEY)
                found = self._secret_type(handle, obj)
            else:
                found = self._private_type(handle, obj)
            if not to_use:
                return found
            self._check_made_on_token(handle, obj)
            self._types[handle] = found
            return found

    @staticmethod
    def _check_made_on_token(handle: str, key: Any) -> None:
        """Refuse a key under ``handle`` that was not made on the token the way
        :meth:`generate` makes keys: generated there (``CKA_LOCAL``), sensitive since
        (``CKA_SENSITIVE``, ``CKA_ALWAYS_SENSITIVE``), and, if extractable, only under a
        trusted wrapping key (``CKA_WRAP_WITH_TRUSTED``). Anyone holding the user PIN can put
        a key whose value they know on the token under a handle (``C_CreateObject``); a
        service would then sign with a key that was never inside any boundary."""
        try:
            local = key[Attribute.LOCAL]
            sensitive = key[Attribute.SENSITIVE] and key[Attribute.ALWAYS_SENSITIVE]
            extractable = key[Attribute.EXTRACTABLE]
            trusted_only = key[Attribute.WRAP_WITH_TRUSTED]
        except pkcs11.PKCS11Error as exc:
            raise StorageError(f"the token failed: {exc!r}") from exc
        if local is not True or sensitive is not True:
            raise PolicyRejected(
                f"key {handle} was not generated on the token and kept sensitive since "
                "(CKA_LOCAL, CKA_ALWAYS_SENSITIVE): its value may be known outside it",
                code="key-not-local",
            )
        if extractable is not False and trusted_only is not True:
            raise PolicyRejected(
                f"key {handle} is extractable under any wrapping key (CKA_WRAP_WITH_TRUSTED "
                "is false): anyone with the PIN can wrap it under a key they know",
                code="key-not-local",
            )

    @staticmethod
    def _private_type(handle: str, key: Any) -> KeyType:
        """The type of a private key found on the token, which this backend may not have
        made: an RSA key or another curve under the handle is refused, never taken for one
        of ours."""
        try:
            p11_type = key.key_type
            params = key[Attribute.EC_PARAMS] if p11_type in _EC_KEY_TYPES else None
        except pkcs11.PKCS11Error as exc:
            raise StorageError(f"the token failed: {exc!r}") from exc
        if p11_type == P11KeyType.EC_EDWARDS and params in _ED25519_PARAMS:
            return KeyType.ED25519
        if p11_type == P11KeyType.EC:
            for key_type, curve in _CURVES.items():
                if params == encode_named_curve_parameters(curve[0]):
                    return key_type
        raise UnsupportedAlgorithm(f"key {handle} is of a type this backend does not use")

    @staticmethod
    def _secret_type(handle: str, secret: Any) -> KeyType:
        """The type of a secret key found on the token (see :meth:`_private_type`)."""
        try:
            p11_type = secret.key_type
            size = secret[Attribute.VALUE_LEN] if p11_type in _SECRET_SIZES else None
        except pkcs11.PKCS11Error as exc:
            raise StorageError(f"the token failed: {exc!r}") from exc
        found = _SECRET_SIZES.get(p11_type)
        if found is not None and size == found[1]:
            return found[0]
        raise UnsupportedAlgorithm(f"key {handle} is of a type this backend does not use")

    # --- KeyBackend --------------------------------------------------------------------------

    @staticmethod
    def new_handle() -> str:
        """A fresh handle for :meth:`generate` (the hex of a random 16-byte ``CKA_ID``): a
        caller that records a key's handle records it as pending *before* the key is made,
        so a crash in between leaves a record of what to :meth:`purge`, never an orphan."""
        return secrets.token_bytes(_ID_SIZE).hex()

    def _key_id(self, handle: str) -> bytes:
        """The ``CKA_ID`` of a handle :meth:`new_handle` made (``MalformedInput`` else): hex
        digits only (:func:`~ironroot._text.strict_hex`; ``bytes.fromhex`` read ``" ab cd …"``
        as the same ``CKA_ID``, and that spelling was the key's handle)."""
        key_id = strict_hex(handle) if isinstance(handle, str) else None
        if key_id is None or len(key_id) != _ID_SIZE:
            raise MalformedInput(f"a new key's handle is {2 * _ID_SIZE} hex digits")
        return key_id

    def generate(
        self, key_type: KeyType, attributes: KeyAttributes, *, handle: str | None = None
    ) -> str:
        """Generate a key on the token; ``UnsupportedAlgorithm`` for types SoftHSM2 lacks,
        ``PolicyRejected`` code ``attribute-not-enforced`` for key users or a release policy,
        which the built-in HSM enforces and a token does not know (it would make the key
        without them). ``handle``: the key's handle, from :meth:`new_handle` (else a new
        one); ``Conflict`` when the token holds an object under it already."""
        if key_type not in _SUPPORTED:
            raise UnsupportedAlgorithm(f"this PKCS#11 backend does not generate {key_type.value}")
        attributes.check_for(key_type)
        for what, given in (
            ("key users", attributes.users is not None),
            ("a release policy", attributes.release_policy is not None),
        ):
            if given:
                raise PolicyRejected(
                    f"the PKCS#11 backend cannot enforce {what}: the token would make the key "
                    "without that restriction; use the built-in HSM for such a key",
                    code="attribute-not-enforced",
                )
        key_id = secrets.token_bytes(_ID_SIZE) if handle is None else self._key_id(handle)
        if handle is not None and self._objects_under(key_id):
            raise Conflict(f"the token holds an object under handle {handle} already")
        private: dict[Attribute, Any] = {
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: attributes.exportable,
            # Only a wrapping key the security officer marked CKA_TRUSTED may wrap it: without
            # this, an exportable key left under any key someone with the PIN made, whose
            # value they chose (C_CreateObject), so in plaintext to them.
            Attribute.WRAP_WITH_TRUSTED: True,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
        }
        public: dict[Attribute, Any] = {Attribute.TOKEN: True}
        for usage, attribute in _USAGE_ATTRIBUTES.items():
            wanted = usage in attributes.usages
            if key_type.is_secret:
                private[attribute] = wanted
            elif usage in _PUBLIC_USAGES:
                public[attribute] = wanted
            else:
                private[attribute] = wanted
        label = attributes.label or None
        try:
            with self._lock:
                if key_type.is_secret:
                    if key_type is KeyType.AES_256:
                        self._session.generate_key(
                            P11KeyType.AES,
                            256,
                            id=key_id,
                            label=label,
                            store=True,
                            template=private,
                        )
                    else:
                        self._session.generate_key(
                            P11KeyType.GENERIC_SECRET,
                            384,
                            id=key_id,
                            label=label,
                            store=True,
                            template=private,
                        )
                else:
                    if key_type is KeyType.ED25519:
                        params = self._session.create_domain_parameters(
                            P11KeyType.EC_EDWARDS,
                            {Attribute.EC_PARAMS: _ED25519_OID_DER},
                            local=True,
                        )
                        mechanism = Mechanism.EC_EDWARDS_KEY_PAIR_GEN
                    else:
                        params = self._session.create_domain_parameters(
                            P11KeyType.EC,
                            {
                                Attribute.EC_PARAMS: encode_named_curve_parameters(
                                    _CURVES[key_type][0]
                                )
                            },
                            local=True,
                        )
                        mechanism = Mechanism.EC_KEY_PAIR_GEN
                    params.generate_keypair(
                        id=key_id,
                        label=label,
                        store=True,
                        mechanism=mechanism,
                        public_template=public,
                        private_template=private,
                    )
        except pkcs11.PKCS11Error as exc:
            raise StorageError(f"the token could not generate the key: {exc!r}") from exc
        handle = key_id.hex()
        with self._lock:
            self._types[handle] = key_type
        return handle

    def public_key(self, handle: str) -> PublicKey:
        """The public key under ``handle``, checked once to belong to the private key under
        it (a pairwise-consistency test, when the private key may sign): the public object
        is a separate object on the token, and one put there in place of the key pair's
        (``C_CreateObject``, or a pair generated with a private key left readable) would be
        published as the service's key while the service signs with its own; signatures made
        with the other private key would then verify as the service's."""
        handle = self._canonical(handle)
        key_type = self._key_type(handle)
        if key_type.is_secret:
            raise UnsupportedAlgorithm(f"key {handle} is a secret key")
        with self._lock:
            known = self._publics.get(handle)
        if known is not None:
            return known
        public = self._public_object(handle, key_type)
        with self._lock:
            private = self._object(handle, ObjectClass.PRIVATE_KEY)
            can_sign = isinstance(private, pkcs11.SignMixin)
        if can_sign:
            challenge = b"ironroot/pkcs11/pairwise\0" + secrets.token_bytes(32)
            try:
                public.verify(self.sign(handle, challenge), challenge)
            except BadSignature:
                raise PolicyRejected(
                    f"key {handle}: the public key on the token is not the private key's "
                    "(its pairwise-consistency test failed): another public key was put "
                    "under the handle",
                    code="key-pair-mismatch",
                ) from None
        with self._lock:
            self._publics[handle] = public
        return public

    def _public_object(self, handle: str, key_type: KeyType) -> PublicKey:
        with self._lock:
            public = self._object(handle, ObjectClass.PUBLIC_KEY)
            try:
                encoded = public[Attribute.EC_POINT]
            except pkcs11.AttributeTypeInvalid as exc:  # an RSA public key under the handle
                raise UnsupportedAlgorithm(
                    f"key {handle}: the public key is not an EC key"
                ) from exc
            except pkcs11.PKCS11Error as exc:
                self._forget(handle)
                raise StorageError(f"the token failed: {exc!r}") from exc
        point = _octet_string(encoded)
        try:
            if key_type is KeyType.ED25519:
                return PublicKey(ed25519.Ed25519PublicKey.from_public_bytes(point), Algorithm.EDDSA)
            _name, curve, _hash, alg = _CURVES[key_type]
            return PublicKey(ec.EllipticCurvePublicKey.from_encoded_point(curve, point), alg)
        except ValueError as exc:
            raise MalformedInput("the token's public key does not parse") from exc

    def sign(self, handle: str, data: bytes) -> bytes:
        data = _bytes(data, "data", self._max_data)
        handle = self._canonical(handle)
        key_type = self._key_type(handle)
        with self._lock:
            if key_type.is_secret:
                key = self._object(handle, ObjectClass.SECRET_KEY)
                mechanism, message = Mechanism.SHA384_HMAC, data
            else:
                key = self._object(handle, ObjectClass.PRIVATE_KEY)
                if key_type is KeyType.ED25519:
                    mechanism, message = Mechanism.EDDSA, data
                else:
                    mechanism, message = Mechanism.ECDSA, _CURVES[key_type][2](data).digest()
            if not isinstance(key, pkcs11.SignMixin):  # python-pkcs11 omits it without CKA_SIGN
                raise KeyUsageNotPermitted(f"key {handle} does not have usage sign")
            try:
                return bytes(key.sign(message, mechanism=mechanism))
            except pkcs11.PKCS11Error as exc:
                self._forget(handle)
                raise StorageError(f"the token could not sign: {exc!r}") from exc

    def verify(self, handle: str, signature: bytes, data: bytes) -> None:
        """As the built-in HSM's ``verify``: ``KeyUsageNotPermitted`` for a key without
        usage ``verify`` (an EC or Ed25519 key's public object without ``CKA_VERIFY``, though
        the backend verifies with the public key it read), ``MalformedInput`` for a
        signature or data that is not bytes, else ``None`` or ``BadSignature``."""
        signature = _bytes(signature, "signature", self._max_data)
        data = _bytes(data, "data", self._max_data)
        handle = self._canonical(handle)
        key_type = self._key_type(handle)
        if not key_type.is_secret:
            with self._lock:
                public = self._object(handle, ObjectClass.PUBLIC_KEY)
            if not isinstance(public, pkcs11.VerifyMixin):  # omitted without CKA_VERIFY
                raise KeyUsageNotPermitted(f"key {handle} does not have usage verify")
            self.public_key(handle).verify(signature, data)
            return
        with self._lock:
            key = self._object(handle, ObjectClass.SECRET_KEY)
            if not isinstance(key, pkcs11.VerifyMixin):
                raise KeyUsageNotPermitted(f"key {handle} does not have usage verify")
            try:
                valid = key.verify(data, signature, mechanism=Mechanism.SHA384_HMAC)
            except (pkcs11.SignatureInvalid, pkcs11.SignatureLenRange):
                valid = False
            except pkcs11.PKCS11Error as exc:
                self._forget(handle)
                raise StorageError(f"the token could not verify: {exc!r}") from exc
        if not valid:
            raise BadSignature("HMAC-SHA-384 tag does not verify")

    # --- beyond the protocol -----------------------------------------------------------------

    def attribute(self, handle: str, attribute: Attribute) -> Any:
        """Read one attribute of the key's private or secret object. The token refuses
        sensitive ones (``CKA_VALUE``, ...): ``KeyNotExportable``."""
        handle = self._canonical(handle)
        key_type = self._key_type(handle)
        object_class = ObjectClass.SECRET_KEY if key_type.is_secret else ObjectClass.PRIVATE_KEY
        with self._lock:
            obj = self._object(handle, object_class)
            try:
                return obj[attribute]
            except (pkcs11.AttributeSensitive, pkcs11.KeyUnextractable) as exc:
                raise KeyNotExportable(f"the token refuses to reveal {attribute.name}") from exc
            except pkcs11.AttributeTypeInvalid as exc:
                raise NotFound(f"key {handle} has no {attribute.name}") from exc
            except pkcs11.PKCS11Error as exc:
                self._forget(handle)
                raise StorageError(f"the token failed: {exc!r}") from exc
            except (ValueError, NotImplementedError) as exc:  # python-pkcs11 cannot decode it
                raise MalformedInput(f"the token's {attribute.name} does not decode") from exc

    def _objects_under(self, key_id: bytes) -> list[Any]:
        """Every object on the token whose ``CKA_ID`` is ``key_id``, of any class."""
        with self._lock:
            if self._closed:
                raise StorageError("the PKCS#11 session is closed")
            try:
                return list(self._session.get_objects({Attribute.ID: key_id}))
            except pkcs11.PKCS11Error as exc:
                raise StorageError(f"the token failed: {exc!r}") from exc

    def purge(self, handle: str) -> int:
        """Destroy every object under a handle :meth:`new_handle` made, whatever its class
        and however far its making got (a key pair's public object alone, say): what a caller
        does with a key whose making it never recorded as done. Returns how many objects
        were destroyed (0: none was made)."""
        key_id = self._key_id(handle)
        found = self._objects_under(key_id)
        with self._lock:
            for obj in found:
                try:
                    obj.destroy()
                except pkcs11.PKCS11Error as exc:
                    raise StorageError(f"the token could not delete the key: {exc!r}") from exc
            self._forget(key_id.hex())
        return len(found)

    def delete(self, handle: str) -> None:
        """Destroy every object of the key on the token (one refused for use too)."""
        handle = self._canonical(handle)
        key_type = self._key_type(handle, to_use=False)
        classes = (
            (ObjectClass.SECRET_KEY,)
            if key_type.is_secret
            else (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY)
        )
        with self._lock:
            for object_class in classes:
                obj = self._object(handle, object_class)
                try:
                    obj.destroy()
                except pkcs11.PKCS11Error as exc:
                    raise StorageError(f"the token could not delete the key: {exc!r}") from exc
                self._objects.pop((handle, object_class), None)
            self._types.pop(handle, None)
            self._publics.pop(handle, None)
