"""Wrap and release: an exportable key leaves wrapped (``wrap``), a key with a release policy
only to an attested TEE (``release``, against the EAR verifiers an officer installed); an
imported key comes in by ``unwrap``. The wrap formats are ``_wrap``'s, the release checks
``_release``'s and ``_release_policy``'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import mlkem, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ironroot.crypto import PrivateKey, PublicKey, load_verifier
from ironroot.ear import TrustTier
from ironroot.errors import (
    Conflict,
    HsmErrorState,
    IronrootError,
    KeyNotExportable,
    KeyUsageNotPermitted,
    MalformedInput,
    NotFound,
    PolicyRejected,
    UnsupportedAlgorithm,
)
from ironroot.hsm._audit_buffer import named_subject
from ironroot.hsm._binding import WrappingKey
from ironroot.hsm._document import KeyRecord, zero
from ironroot.hsm._key_operations import KeyOperations
from ironroot.hsm._material import (
    KemPublic,
    load_material,
    material_from_wrapped,
    wrapped_form,
)
from ironroot.hsm._model import KeyAttributes, KeyType, Session, Usage
from ironroot.hsm._release import TrustedVerifier, authorize_release
from ironroot.hsm._release_policy import looks_like_key_id
from ironroot.hsm._release_statement import HsmRelease, sign_release_statement
from ironroot.hsm._wrap import (
    aes_kwp_unwrap,
    aes_kwp_wrap,
    load_recipient,
    unwrap_key_kem,
    unwrap_key_rsa_aes,
    wrap_key_kem,
    wrap_key_rsa_aes,
)

__all__ = ["WrapAndRelease"]


class WrapAndRelease(KeyOperations):
    """Keys in and out of the boundary, and the verifiers that release them."""

    def _wrap_to(
        self,
        target: KeyRecord,
        wrapping: KeyRecord | None,
        recipient: KemPublic | rsa.RSAPublicKey | None,
    ) -> bytes:
        form = wrapped_form(target.key_type, target.stored, target.obj)
        try:
            if wrapping is not None:
                if wrapping is target:
                    raise MalformedInput("a key cannot wrap itself")
                obj = wrapping.obj
                if isinstance(obj, mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey):
                    return wrap_key_kem(obj.public_key(), target.key_type, form)
                if isinstance(obj, rsa.RSAPrivateKey):
                    return wrap_key_rsa_aes(obj.public_key(), form)
                if wrapping.key_type is KeyType.AES_256:
                    return aes_kwp_wrap(wrapping.stored, form)
                raise KeyUsageNotPermitted(f"key {wrapping.handle} cannot wrap")
            if recipient is None:
                raise MalformedInput("wrap needs a wrapping key handle or a recipient key")
            if isinstance(recipient, rsa.RSAPublicKey):
                return wrap_key_rsa_aes(recipient, form)
            return wrap_key_kem(recipient, target.key_type, form)
        finally:
            zero(form)

    def wrap(
        self,
        session: Session,
        target: str,
        *,
        wrapping_key: str | None = None,
        recipient: bytes | None = None,
    ) -> bytes:
        """Wrap an exportable key, under a wrapping key inside the HSM (``wrapping_key``: an
        ML-KEM, RSA-3072 or AES-256 key with usage ``wrap``, generated inside) or to an
        outside public key a crypto officer approved (``recipient``: ML-KEM or RSA
        SubjectPublicKeyInfo, :meth:`add_wrap_recipient`). The format follows the wrapping key
        (``_wrap``). ``KeyNotExportable`` for a non-exportable key or one with a release
        policy, a wrapping key that was imported, is exportable, or was derived from such a
        key (``wrapping-key-not-trusted``: its value may be known outside) or a recipient no
        officer approved (``recipient-not-approved``)."""
        with self._lock, self._operation(session, "wrap", target) as op:  # not while a delete
            # wipes
            if (wrapping_key is None) == (recipient is None):
                raise MalformedInput("give exactly one of wrapping_key and recipient")
            key = self._key(target, user=op.identity)
            self._exportable(key, release=False)
            wrapper = (
                None
                if wrapping_key is None
                else self._key(wrapping_key, Usage.WRAP, user=op.identity)
            )
            if wrapper is key:
                raise MalformedInput("a key cannot wrap itself")
            if wrapper is not None and not wrapper.local:
                raise KeyNotExportable(
                    f"key {wrapper.handle} was imported (or derived from an imported key), so "
                    f"its value may be known outside the HSM: it wraps no exportable key (key "
                    f"{key.handle} stays inside)",
                    code="wrapping-key-not-trusted",
                )
            if wrapper is not None and wrapper.attributes.exportable:
                raise KeyNotExportable(
                    f"key {wrapper.handle} is exportable, so its value may leave the HSM: it "
                    f"wraps no exportable key (key {key.handle} stays inside)",
                    code="wrapping-key-not-trusted",
                )
            outside = None if recipient is None else load_recipient(recipient)
            if outside is not None:
                self._approved(key, outside)
            return self._wrap_to(key, wrapper, outside)

    def _approved(self, target: KeyRecord, recipient: KemPublic | rsa.RSAPublicKey) -> None:
        """``KeyNotExportable`` unless a crypto officer approved ``recipient``: a crypto user
        who could wrap a key to a key of their own would read it in plaintext."""
        der = recipient.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if not any(hmac.compare_digest(der, known) for known in self._recipients.values()):
            raise KeyNotExportable(
                f"the recipient key is not one a crypto officer approved for wrapped keys "
                f"(`ironroot hsm recipient add`): key {target.handle} stays inside",
                code="recipient-not-approved",
            )

    def add_wrap_recipient(self, session: Session, name: str, public_key: bytes) -> str:
        """Approve an outside key (ML-KEM or RSA SubjectPublicKeyInfo, PEM or DER) as a
        recipient of wrapped exportable keys (crypto officer); returns the SHA-256 of its
        canonical DER (hex). ``Conflict`` when the name or the key is approved already."""
        with self._lock:
            with self._operation(
                session, "recipient-add", named_subject(name), (name, public_key)
            ) as op:
                if not isinstance(name, str) or not name.strip() or len(name) > 256:
                    raise MalformedInput("a recipient name is 1..256 characters of text")
                key = load_recipient(self._check_data(public_key, "public key"))
                der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
                op.key = named_subject(name, hashlib.sha256(der).hexdigest())
                if name in self._recipients:
                    raise Conflict(f"a recipient named {name!r} is approved already")
                for other, known in self._recipients.items():
                    if known == der:
                        raise Conflict(f"that key is approved already as {other!r}")
                self._recipients[name] = der
            self._persist()
            return hashlib.sha256(der).hexdigest()

    def remove_wrap_recipient(self, session: Session, name: str) -> None:
        """Withdraw an approval (crypto officer): nothing is wrapped to that key from now on."""
        with self._lock:
            with self._operation(session, "recipient-remove", named_subject(name), (name,)) as op:
                if not isinstance(name, str) or name not in self._recipients:
                    raise NotFound(f"no recipient {name!r} is approved")
                op.key = named_subject(name, hashlib.sha256(self._recipients[name]).hexdigest())
                del self._recipients[name]
            self._persist()

    def wrap_recipients(self, session: Session) -> tuple[tuple[str, str], ...]:
        """``(name, SHA-256 of the SPKI, hex)`` of every approved recipient, by name."""
        with self._lock, self._operation(session, "recipient-list"):
            return tuple(
                (name, hashlib.sha256(der).hexdigest())
                for name, der in sorted(self._recipients.items())
            )

    def unwrap(
        self,
        session: Session,
        wrapped: bytes,
        *,
        unwrapping_key: str,
        attributes: KeyAttributes,
        key_type: KeyType | None = None,
    ) -> str:
        """Import a wrapped key as a new, never exportable key; return its handle.

        The ML-KEM format names its key type (``key_type``, if given, must agree);
        RSA-AES-KEY-WRAP and AES-KWP need ``key_type``. ``KeyNotExportable`` if
        ``attributes`` ask for an exportable key; ``VerificationFailed`` if it does not unwrap.
        """
        with self._lock:
            with self._operation(session, "unwrap", unwrapping_key) as op:
                wrapper = self._key(unwrapping_key, Usage.UNWRAP, user=op.identity)
                if attributes.exportable:
                    raise KeyNotExportable("an unwrapped (imported) key is never exportable")
                self._check_users(attributes.users)
                attributes = self._derived_users(wrapper, attributes)
                data = self._check_data(wrapped, "wrapped key")
                obj = wrapper.obj
                if isinstance(obj, mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey):
                    found, plaintext = unwrap_key_kem(obj, data)
                    if key_type is not None and key_type is not found:
                        raise MalformedInput(
                            f"the wrapped key is {found.value}, not {key_type.value}"
                        )
                    key_type = found
                elif key_type is None:
                    raise MalformedInput("name the key type of an RSA-AES or AES-KWP wrapped key")
                elif isinstance(obj, rsa.RSAPrivateKey):
                    plaintext = unwrap_key_rsa_aes(obj, data)
                elif wrapper.key_type is KeyType.AES_256:
                    plaintext = aes_kwp_unwrap(wrapper.stored, data)
                else:
                    raise KeyUsageNotPermitted(f"key {unwrapping_key} cannot unwrap")
                try:
                    attributes.check_for(key_type)
                    stored = material_from_wrapped(key_type, bytes(plaintext))
                finally:
                    zero(plaintext)
                new_obj = load_material(key_type, stored)
                if not key_type.is_secret:
                    self._check_pair(new_obj)
                handle = self._add_key(key_type, attributes, stored, new_obj, local=False)
                op.key = f"{unwrapping_key}->{handle}"
            self._persist()
            return handle

    def release_challenge(self, session: Session, client: str | None = None) -> tuple[bytes, int]:
        """A single-use release nonce (32 bytes) and when it expires (POSIX seconds), issued
        and remembered inside the HSM: :meth:`release` redeems it (crypto user). ``client``
        names who asked, for the per-client limits of ``HsmConfig.release_challenges``."""
        # a refusal (``challenge-rate``, anyone's to provoke) is group-committed with those
        # arriving with it (``_group_commit``); under the lock, as every audited operation
        with self._group_commit(), self._lock, self._operation(session, "release-challenge"):
            now = self._datetime()  # kept with the nonce: no EAR for it is older than this
            return self._nonces.issue(now, client, bound=now.timestamp())

    def release(
        self,
        session: Session,
        handle: str,
        *,
        ear: bytes,
        nonce: bytes,
        recipient: bytes | WrappingKey,
        gate: Callable[[], Callable[[], None] | None] | None = None,
    ) -> HsmRelease:
        """Release a key that has a release policy, wrapped to a TEE's key ``recipient``
        (ML-KEM or RSA SubjectPublicKeyInfo, or a :class:`~ironroot.hsm.WrappingKey`, which
        was checked when it was made and is not checked again: ``MalformedInput`` code
        ``degenerate-wrapping-key`` for a degenerate key either way, the bytes' refusal in
        the turn documented below), when the HSM itself has verified the EAR; with
        the wrapped key, the release statement the HSM signs with its attestation key
        (``ironroot.hsm._release_statement``: what it released, to whom, for which nonce and
        EAR), which the TEE verifies before it takes the key.

        In order: the key exists and leaves only by release (``NotFound``,
        ``KeyNotExportable``); ``nonce`` is one :meth:`release_challenge` issued, unexpired
        and not used before (``StaleNonce``: redeemed now, whatever follows); the EAR is signed
        by a verifier a crypto officer installed (:meth:`add_release_verifier`), unexpired,
        issued no earlier than ``nonce`` was (``ResultExpired`` ``result-predates-nonce``),
        binds ``nonce`` and ``recipient`` and is affirming (or warning, where the key allows:
        ``ironroot.hsm._release``); the key's own release policy holds on its claims
        (``InvalidReleasePolicy``, ``ReleaseDenied``); last, ``gate``, when given: the
        deployment's own condition on the release (the key service's ``ReleaseGate``), which
        can only refuse. ``gate()`` is called *before* the HSM's lock, so that its read of
        the deployment's registry (slow, or waiting on another transaction) never stalls
        another operation of this HSM; it returns the *confirmation* of what it read, which
        is called under the lock, last, and must be cheap and never wait on another thread
        (the fleet's: the registry's generation is still the one read, else the registry is
        read again there). A gate that returns ``None`` has no cheap confirmation: it is
        called again under the lock, last, as its own confirmation (its read then holds the
        lock). What the gate or its confirmation raises is the refusal, recorded in its turn
        (after every check of the HSM: an EAR the HSM refuses is recorded as the HSM's
        refusal, whatever the gate said) with its code (``internal-error`` for an exception
        that is not an ``IronrootError``), so that no record says granted of a release the
        deployment withheld. Every refusal is audited with its code and is durable before
        this returns, as is the release.

        The audit record binds the release (``ironroot.hsm._audit``, ``ReleaseBinding``): the
        SHA-256 of the statement returned, of the wrapping key and of the EAR; a refusal's
        record binds the wrapping key's and the EAR's digests when they are known (never the
        nonce, never a key). It is written, synced and anchored before this returns.
        """
        # the gate's read, outside the lock (it may wait on the deployment's registry): its
        # refusal, or the confirmation to make under the lock, is kept for its turn, last
        confirm: Callable[[], None] | None = None
        gate_refused: Exception | None = None
        if gate is not None:
            try:
                confirm = gate()
            except Exception as exc:  # recorded in its turn, below, under the lock
                gate_refused = exc
        # not while a delete wipes (the lock); the record, granted or refused, is durable
        # and anchored before this returns, group-committed with those arriving with it
        with self._group_commit(), self._lock, self._operation(session, "release", handle) as op:
            # The digests are taken first, so that a refusal's record names
            # them too; each input is still checked where it always was.
            with contextlib.suppress(IronrootError):  # refused below, in its turn
                # any bytes-like EAR, as it is checked below: a bytearray is bound too
                op.ear = hashlib.sha256(self._check_data(ear, "ear")).digest()
            # the recipient is parsed (and checked) once, here; a refusal is raised in its
            # turn, below
            parsed = self._wrapping_key(recipient)
            if isinstance(parsed, WrappingKey):
                op.recipient = parsed.digest
            key = self._key(handle, user=op.identity)
            self._exportable(key, release=True)
            policy = key.attributes.release_policy
            if policy is None:
                raise KeyNotExportable(f"key {handle} has no release policy: use wrap")
            now = self._datetime()
            issued = self._nonces.redeem(nonce, now)
            if not isinstance(issued, float):  # every release nonce carries its issue time
                raise HsmErrorState("the release nonce carries no issue time")
            if not isinstance(parsed, WrappingKey):
                raise parsed
            wrapping_key = parsed
            token = self._check_data(ear, "ear")
            context = authorize_release(
                token,
                nonce=nonce,
                nonce_issued=issued,
                wrapping_key=wrapping_key,
                verifiers=tuple(v for v, _der in self._verifiers.values()),
                now=now,
                minimum_status=(
                    TrustTier.WARNING if key.attributes.release_on_warning else TrustTier.AFFIRMING
                ),
                held=self._held_kids(),
            )
            self._policies.get(policy).evaluate(context)
            if gate is not None:  # the deployment's say, last: its refusal is the record
                if gate_refused is not None:
                    raise gate_refused
                if confirm is None:
                    gate()  # no cheap confirmation: read again, under the lock
                else:
                    confirm()
            if self._attestation is None or not isinstance(self._attestation.obj, PrivateKey):
                raise HsmErrorState("the HSM has no attestation key to sign the release with")
            wrapped = self._wrap_to(key, None, wrapping_key.key)
            statement = sign_release_statement(
                self._attestation.obj,
                self._chain,
                hsm_id=self._hsm_id,
                handle=key.handle,
                key_type=key.key_type,
                recipient=wrapping_key.digest,
                nonce=nonce,
                ear=token,
                wrapped=wrapped,
                now=self._now(),
            )
            op.statement = hashlib.sha256(statement).digest()
            return HsmRelease(wrapped, statement, key.key_type)

    def _wrapping_key(self, recipient: object) -> WrappingKey | IronrootError:
        """``recipient`` as a checked wrapping key, or why it is none (to raise in turn)."""
        if isinstance(recipient, WrappingKey):  # checked when it was made
            return recipient
        try:
            return WrappingKey.parse(self._check_data(recipient, "recipient"))
        except IronrootError as exc:
            return exc

    def _held_kids(self) -> frozenset[bytes]:
        """The key ids of the signing keys this HSM holds (any crypto user signs with them)."""
        return frozenset(k.public_key.kid for k in self._keys.values() if k.public_key is not None)

    def add_release_verifier(self, session: Session, name: str, public_key: bytes) -> str:
        """Install the public key of a verifier whose EARs may release keys (crypto officer):
        ``name`` is what an Azure-grammar policy's ``authority`` names (never shaped like a key
        id, which a policy may name instead: ``MalformedInput``), ``public_key`` a PEM
        or DER SubjectPublicKeyInfo. Returns its key id (base64url). ``Conflict`` when the
        name or the key is installed already; ``PolicyRejected`` code ``verifier-key-in-hsm``
        for the public key of a key this HSM holds (any crypto user signs with it)."""
        with self._lock:
            with self._operation(
                session, "verifier-add", named_subject(name), (name, public_key)
            ) as op:
                if not isinstance(name, str) or not name.strip() or len(name) > 256:
                    raise MalformedInput("a verifier name is 1..256 characters of text")
                if looks_like_key_id(name):
                    raise MalformedInput(
                        "a verifier name must not have the shape of a key id (43 base64url "
                        "characters): a policy's authority names a verifier by either"
                    )
                loaded = load_verifier(self._check_data(public_key, "public key"))
                if not isinstance(loaded, PublicKey):
                    raise UnsupportedAlgorithm("an EAR verifier key is an EC, EdDSA or ML-DSA key")
                verifier = TrustedVerifier(name, loaded)
                op.key = named_subject(name, verifier.kid)
                if name in self._verifiers:
                    raise Conflict(f"a verifier named {name!r} is installed already")
                for other, _der in self._verifiers.values():
                    if other.key.kid == loaded.kid:
                        raise Conflict(f"that key is installed already as {other.name!r}")
                for held in self._keys.values():
                    if held.public_key is not None and held.public_key.kid == loaded.kid:
                        raise PolicyRejected(
                            f"the verifier key is key {held.handle} of this HSM, with which "
                            "every crypto user may sign: an EAR it signed proves nothing",
                            code="verifier-key-in-hsm",
                        )
                self._verifiers[name] = (verifier, loaded.to_der())
            self._persist()
            return verifier.kid

    def remove_release_verifier(self, session: Session, name: str) -> None:
        """Uninstall a verifier (crypto officer): its EARs release nothing from now on."""
        with self._lock:
            with self._operation(session, "verifier-remove", named_subject(name), (name,)) as op:
                if not isinstance(name, str) or name not in self._verifiers:
                    raise NotFound(f"no verifier {name!r} is installed")
                op.key = named_subject(name, self._verifiers[name][0].kid)
                del self._verifiers[name]
            self._persist()

    def release_verifiers(self, session: Session) -> tuple[tuple[str, str], ...]:
        """``(name, key id)`` of every installed verifier, by name (crypto officer or user)."""
        with self._lock, self._operation(session, "verifier-list"):
            return tuple(
                (v.name, v.kid)
                for v, _der in sorted(self._verifiers.values(), key=lambda e: e[0].name)
            )
