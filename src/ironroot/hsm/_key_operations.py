"""Key operations: generate (with its pairwise-consistency test), delete, list; sign, verify,
encrypt, decrypt, derive and attest with a key that never leaves in plaintext.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Iterator
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ironroot.crypto import PrivateKey
from ironroot.errors import (
    BadSignature,
    HsmErrorState,
    KeyNotExportable,
    KeyUsageNotPermitted,
    MalformedInput,
    NotFound,
    RoleNotPermitted,
    UnsupportedAlgorithm,
    VerificationFailed,
)
from ironroot.hsm._attest import sign_key_attestation
from ironroot.hsm._audit_buffer import MAX_AUDITED_KEY, NO_IDENTITY
from ironroot.hsm._document import KeyRecord
from ironroot.hsm._material import KeyObject, generate_material, load_material
from ironroot.hsm._model import (
    KeyAttributes,
    KeyInfo,
    KeyType,
    Role,
    Session,
    Usage,
    key_users,
)
from ironroot.hsm._permissions import Permissions
from ironroot.hsm._selftest import SelfTestFailure

__all__ = ["KeyOperations"]

_GCM_NONCE: Final = 12
MAX_HANDLE: Final = MAX_AUDITED_KEY
"""The longest handle looked up (the HSM makes 32 hex digits; the PKCS#11 backend caps its
own at 128 too): a longer one is ``NotFound`` unsearched."""
_DERIVED_SIZES: Final = {KeyType.AES_256: 32, KeyType.HMAC_SHA384: 48}


class KeyOperations(Permissions):
    """The key lifecycle and every use of a key inside the boundary."""

    def _check_pair(self, obj: KeyObject, identity: str = NO_IDENTITY) -> None:
        try:
            self._pairwise(obj)
        except SelfTestFailure as exc:
            self._fail(
                f"pairwise-consistency test failed: {exc}",
                record=(identity, "pairwise-test"),
            )
            raise HsmErrorState(
                "a pairwise-consistency test failed: the HSM is in its error state"
            ) from exc

    def _key(
        self, handle: str, usage: Usage | None = None, *, user: str | None = None
    ) -> KeyRecord:
        """The key ``handle``; with ``usage``, one that has it; with ``user``, one that crypto
        user may use (``RoleNotPermitted`` code ``key-access-denied``: the key names its
        users and this identity is not one of them). A handle that is not text, or longer than
        :data:`MAX_HANDLE`, is ``NotFound`` before any lookup, repeated at most in part."""
        if not isinstance(handle, str):
            raise NotFound("no key: a key handle is a string")
        if len(handle) > MAX_HANDLE:  # refused unsearched, and repeated only in part
            raise NotFound(
                f"no key {handle[:16]}…: a key handle is at most {MAX_HANDLE} hex characters"
            )
        key = self._keys.get(handle)
        if key is None:
            raise NotFound(f"no key {handle!r}")
        if user is not None and not key.attributes.permits(user):
            raise RoleNotPermitted(
                f"identity {user!r} is not a user of key {handle}", code="key-access-denied"
            )
        if usage is not None and usage not in key.attributes.usages:
            raise KeyUsageNotPermitted(f"key {handle} does not have usage {usage.value}")
        return key

    def _check_users(self, users: frozenset[str] | None) -> None:
        """Every name a key is given as a user is a crypto user now (``NotFound``,
        ``MalformedInput``): a typo would otherwise leave the key to whoever takes the name."""
        for name in sorted(users or ()):
            ident = self._identities.get(name)
            if ident is None:
                raise NotFound(f"no identity {name!r} to name as a key user")
            if ident.role is not Role.USER:
                raise MalformedInput(f"identity {name!r} is not a crypto user")

    def _derived_users(self, parent: KeyRecord, attrs: KeyAttributes) -> KeyAttributes:
        """The attributes of a key made from ``parent`` (derived from it, unwrapped with it):
        the parent's users when none are named; named ones only among the parent's
        (``RoleNotPermitted`` ``key-access-denied``), so no key made from a shared key is
        shared wider than it."""
        limit = parent.attributes.users
        if attrs.users is None:
            return attrs if limit is None else dataclasses.replace(attrs, users=limit)
        if limit is not None and not attrs.users <= limit:
            wider = ", ".join(sorted(attrs.users - limit))
            raise RoleNotPermitted(
                f"a key made from key {parent.handle} may name only its users, not {wider}",
                code="key-access-denied",
            )
        return attrs

    def _in_use(
        self, handle: str, usage: Usage, user: str
    ) -> tuple[KeyRecord, KeyObject | None, bytes]:
        """The key, its object and a copy of its stored material, read under the lock.

        Sign, verify, encrypt and decrypt run outside the lock (they are the hot path), but a
        delete wipes a record in place under it (its material zeroed, its object dropped): an
        operation that read the record after that would MAC with zeros, or treat a deleted
        EC key as an HMAC key and return a tag of the zeroed bytes as its "signature". Read
        here, the operation sees the key whole or not at all (``NotFound``), as if it ran
        before the delete."""
        with self._lock:
            key = self._key(handle, usage, user=user)
            return key, key.obj, bytes(key.stored)

    def _new_handle(self) -> str:
        return secrets.token_hex(16)

    def _add_key(
        self,
        key_type: KeyType,
        attributes: KeyAttributes,
        stored: bytearray,
        obj: KeyObject,
        *,
        local: bool,
    ) -> str:
        handle = self._new_handle()
        self._keys[handle] = KeyRecord(
            handle, key_type, attributes, local=local, created=self._now(), stored=stored, obj=obj
        )
        return handle

    def generate(
        self, session: Session, key_type: KeyType, attributes: KeyAttributes | None = None
    ) -> str:
        """Generate a key inside (crypto officer); return its handle.

        ``attributes`` defaults to the key type's usual usages, non-exportable, no label. A
        release policy must compile (``InvalidReleasePolicy``): a key is never created with a
        policy that could only refuse.
        """
        with self._lock:
            with self._operation(session, "generate") as op:
                if not isinstance(key_type, KeyType):
                    raise MalformedInput("key_type must be a KeyType")
                attrs = attributes or KeyAttributes(key_type.default_usages)
                attrs.check_for(key_type)
                self._check_users(attrs.users)
                if attrs.release_policy is not None:
                    self._policies.get(attrs.release_policy)  # InvalidReleasePolicy
                stored, obj = generate_material(key_type)
                if not key_type.is_secret:
                    self._check_pair(obj)
                handle = self._add_key(key_type, attrs, stored, obj, local=True)
                op.key = handle
            self._persist()
            return handle

    def delete(self, session: Session, handle: str) -> None:
        """Destroy a key (crypto officer): its material is overwritten."""
        with self._lock:
            with self._operation(session, "delete", handle, (handle,)):
                key = self._key(handle)
                key.wipe()
                del self._keys[handle]
            self._persist()

    def set_key_users(self, session: Session, handle: str, users: Iterable[str] | None) -> KeyInfo:
        """Name the crypto users that may use a key, or ``None`` for every crypto user (crypto
        officer); return the key's information. Every name must be a crypto user's now
        (``NotFound``, ``MalformedInput``). Audited as ``key-users``."""
        if isinstance(users, Iterator):  # read once: for the approval's digest, then here
            users = tuple(users)
        with self._lock:
            with self._operation(session, "key-users", handle, (handle, users)):
                key = self._key(handle)
                attrs = dataclasses.replace(key.attributes, users=key_users(users))
                self._check_users(attrs.users)
                key.attributes = attrs
            self._persist()
            return key.info()

    def keys(self, session: Session) -> tuple[KeyInfo, ...]:
        """Every key's public information, by creation time then handle."""
        with self._lock, self._operation(session, "key-list"):
            return tuple(
                k.info() for k in sorted(self._keys.values(), key=lambda k: (k.created, k.handle))
            )

    def key_info(self, session: Session, handle: str) -> KeyInfo:
        with self._lock, self._operation(session, "key-info", handle):
            return self._key(handle).info()

    def sign(self, session: Session, handle: str, data: bytes) -> bytes:
        """Sign ``data`` (COSE signature encoding) or MAC it (HMAC-SHA-384)."""
        with self._operation(session, "sign", handle) as op:
            _key, obj, material = self._in_use(handle, Usage.SIGN, op.identity)
            if isinstance(obj, PrivateKey):
                return obj.sign(self._check_data(data))
            return hmac.new(material, self._check_data(data), hashlib.sha384).digest()

    def verify(self, session: Session, handle: str, signature: bytes, data: bytes) -> None:
        """Return ``None`` if ``signature`` is valid over ``data``; raise ``BadSignature``."""
        with self._operation(session, "verify", handle) as op:
            key, _obj, material = self._in_use(handle, Usage.VERIFY, op.identity)
            signature = self._check_data(signature, "signature")
            if key.public_key is not None:
                key.public_key.verify(signature, self._check_data(data))
                return
            mac = hmac.new(material, self._check_data(data), hashlib.sha384).digest()
            if not hmac.compare_digest(mac, signature):
                raise BadSignature("HMAC-SHA-384 tag does not verify")

    def _aead(self, handle: str, usage: Usage, user: str) -> AESGCM:
        _key, obj, _material = self._in_use(handle, usage, user)
        if not isinstance(obj, AESGCM):
            raise KeyUsageNotPermitted(f"key {handle} is not an AES-256 key")
        return obj

    def encrypt(
        self, session: Session, handle: str, plaintext: bytes, *, aad: bytes = b""
    ) -> bytes:
        """AES-256-GCM: ``nonce (12) ‖ ciphertext ‖ tag (16)``, with a random nonce."""
        with self._operation(session, "encrypt", handle) as op:
            aead = self._aead(handle, Usage.ENCRYPT, op.identity)
            nonce = secrets.token_bytes(_GCM_NONCE)
            return nonce + aead.encrypt(
                nonce, self._check_data(plaintext), self._check_data(aad, "aad")
            )

    def decrypt(self, session: Session, handle: str, sealed: bytes, *, aad: bytes = b"") -> bytes:
        """Undo :meth:`encrypt`; ``VerificationFailed`` if the tag does not verify."""
        with self._operation(session, "decrypt", handle) as op:
            aead = self._aead(handle, Usage.DECRYPT, op.identity)
            data = self._check_data(sealed)
            if len(data) < _GCM_NONCE + 16:
                raise MalformedInput("AES-GCM ciphertext is shorter than nonce and tag")
            try:
                return aead.decrypt(data[:_GCM_NONCE], data[_GCM_NONCE:], self._check_data(aad))
            except InvalidTag as exc:
                raise VerificationFailed("AES-GCM tag does not verify") from exc

    def _exportable(self, key: KeyRecord, *, release: bool) -> None:
        if not key.attributes.exportable:
            raise KeyNotExportable(f"key {key.handle} is not exportable")
        if key.attributes.release_policy is not None and not release:
            raise KeyNotExportable(
                f"key {key.handle} has a release policy: it leaves only through release"
            )

    def derive(
        self,
        session: Session,
        handle: str,
        *,
        info: bytes,
        salt: bytes = b"",
        key_type: KeyType = KeyType.AES_256,
        attributes: KeyAttributes | None = None,
    ) -> str:
        """HKDF-SHA-384 a new AES-256 or HMAC-SHA-384 key from a key with usage ``derive``;
        the new key stays inside with its own attributes. It may be exportable only if its
        parent is, and then carries the parent's release policy, if any, and releases on a
        ``warning`` result only if the parent does: ``KeyNotExportable``. It counts as generated
        inside only if its parent does and its parent is not exportable: a key derived from
        an imported one is computed by whoever knows the imported value (the salt and info
        are the caller's), one derived from an exportable key by whoever that key is wrapped
        or released to, so it is no more trusted to wrap an exportable key than its parent
        (``wrapping-key-not-trusted``) and its attestation says ``local`` false."""
        with self._lock:
            with self._operation(session, "derive", handle) as op:
                parent = self._key(handle, Usage.DERIVE, user=op.identity)
                if key_type not in _DERIVED_SIZES:
                    raise UnsupportedAlgorithm("a derived key is AES-256 or HMAC-SHA-384")
                attrs = attributes or KeyAttributes(key_type.default_usages)
                attrs.check_for(key_type)
                self._check_users(attrs.users)
                attrs = self._derived_users(parent, attrs)
                if attrs.exportable:
                    self._exportable(parent, release=True)
                    if attrs.release_policy != parent.attributes.release_policy:
                        raise KeyNotExportable(
                            "a key derived from a key with a release policy keeps that policy"
                        )
                    if attrs.release_on_warning and not parent.attributes.release_on_warning:
                        raise KeyNotExportable(
                            "a key derived from a key released only on an affirming result "
                            "cannot be released on a warning one"
                        )
                okm = HKDF(
                    hashes.SHA384(),
                    _DERIVED_SIZES[key_type],
                    self._check_data(salt, "salt") or None,
                    self._check_data(info, "info"),
                ).derive(bytes(parent.stored))
                stored = bytearray(okm)
                # HKDF of a parent that may leave (exportable) is computed by whoever it
                # leaves to, as of an imported one by whoever knew it: not generated inside.
                inside = parent.local and not parent.attributes.exportable
                new = self._add_key(
                    key_type, attrs, stored, load_material(key_type, stored), local=inside
                )
                op.key = f"{handle}->{new}"
            self._persist()
            return new

    def attest(self, session: Session, handle: str, *, nonce: bytes | None = None) -> bytes:
        """A key attestation statement for ``handle`` (see ``_attest``)."""
        with self._operation(session, "attest", handle):
            key = self._key(handle)
            if self._attestation is None or not isinstance(self._attestation.obj, PrivateKey):
                raise HsmErrorState("the HSM has no attestation key")
            return sign_key_attestation(
                self._attestation.obj,
                self._chain,
                hsm_id=self._hsm_id,
                info=key.info(),
                now=self._now(),
                nonce=nonce,
            )
