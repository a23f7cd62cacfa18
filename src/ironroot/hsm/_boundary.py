"""The built-in HSM boundary: one object that holds keys and refuses everything it must.

Modelled on an integrated FIPS 140-3 Level 3 module (Azure Integrated HSM):

* **Identity-based authentication.** :meth:`Hsm.login` checks a named identity's credential
  (scrypt, RFC 7914, compared in constant time by ``cryptography``) and returns a
  :class:`Session`; every operation takes one, checks the identity's role, and writes an audit
  record whatever the outcome. ``max_failed_logins`` wrong credentials in a row lock the
  identity; only a crypto officer unlocks it. An unknown identity costs the same scrypt work as
  a wrong credential.
* **Keys generated inside**, reached only through handles. Private and secret material never
  leaves in plaintext: an exportable key leaves wrapped (:meth:`wrap`, or :meth:`release` for a
  key with a release policy), a non-exportable one never; a key derived from a non-exportable
  key cannot be exportable; an unwrapped (imported) key is never exportable.
* **Self-tests.** The KAT table (a constructor argument) runs at power-up and on
  :meth:`self_test`; every new key pair gets a pairwise-consistency test. A failure puts the
  object into its error state: every call raises ``HsmErrorState``; only a new object (a
  restart) can leave it.
* **Tamper response.** :meth:`tamper` (and an officer's :meth:`zeroize`) overwrites every secret
  this object holds in ``bytearray`` form (key material, credential hashes, the sealing secret),
  drops every library key object, ends all sessions, and destroys the sealed store through its
  storage medium (overwrite, then unlink); afterwards every call raises ``HsmZeroized``.
* **Sealed persistence** (``_storage``): the key store opens only with this device's sealing
  secret; :meth:`migrate` re-seals it to another secret.
* **Audit** (``_audit``): hash-chained records. Durability: records of logins, identity and key
  management, migration and zeroization are written and fsynced before the call returns (they
  change the sealed store, which also records the audit head). Records of key *use* (sign,
  verify, encrypt, decrypt, wrap, unwrap, derive, attest, release) wait in memory and are
  written in groups of ``audit_group_commit`` (default 256), on any management operation, on
  :meth:`flush` and :meth:`close`; a crash loses at most the unwritten tail of use records, and
  the chain on disk stays valid. ``audit_group_commit=1`` makes every record durable first.

Limits of zeroization in Python (documented, not hidden): ``bytearray`` buffers are overwritten
in place, but ``cryptography`` key objects keep their own copies inside OpenSSL (freed with
``OPENSSL_clear_free`` when the object is released, which this object does, but not
overwritten on demand), and transient ``bytes`` copies made while (un)sealing or wrapping
cannot be overwritten at all: they are unreachable and left to the allocator. Overwriting a
file on a journaling file system or an SSD does not guarantee the old blocks are gone; that is
why the store is *sealed*: without the device's sealing secret the bytes are useless, and a
real device keeps that secret in its root of trust.

The core takes its clock as an argument (``clock``, POSIX seconds) and its storage as an object
(``HsmStorage``), so tests run it in memory with a fixed time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Final

from cryptography.exceptions import InvalidKey, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import mlkem, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ironroot.crypto import PrivateKey, PublicKey, load_verifier
from ironroot.ear import NonceStore, TrustTier
from ironroot.errors import (
    BadSignature,
    Conflict,
    HsmErrorState,
    HsmZeroized,
    IdentityLocked,
    IronrootError,
    KeyNotExportable,
    KeyUsageNotPermitted,
    LimitExceeded,
    MalformedInput,
    NotFound,
    RoleNotPermitted,
    SealedStoreError,
    StoreRolledBack,
    Unauthorized,
    UnsupportedAlgorithm,
    VerificationFailed,
)
from ironroot.hsm._anchor import Anchor, check_anchor, open_anchor, seal_anchor
from ironroot.hsm._attest import sign_key_attestation
from ironroot.hsm._audit import (
    ZERO_HASH,
    AuditCheckpoint,
    AuditRecord,
    audit_mac,
    checkpoint_statement,
    format_audit_log,
    parse_audit_log,
    verify_audit,
)
from ironroot.hsm._audit_check import verify_to_sealed_head
from ironroot.hsm._binding import WrappingKey
from ironroot.hsm._certs import issue_attestation_certificate
from ironroot.hsm._document import (
    IdentityRecord,
    KeyRecord,
    StoreDocument,
    decode_store,
    encode_store,
    zero,
)
from ironroot.hsm._material import (
    KeyObject,
    generate_material,
    load_material,
    material_from_wrapped,
    wrapped_form,
)
from ironroot.hsm._model import (
    KEY_TYPE_FOR_ALGORITHM,
    DeviceIdentity,
    HsmConfig,
    KeyAttributes,
    KeyInfo,
    KeyType,
    Role,
    Session,
    Usage,
    check_name,
)
from ironroot.hsm._release import TrustedVerifier, authorize_release
from ironroot.hsm._release_policy import PolicyCache
from ironroot.hsm._selftest import (
    DEFAULT_KATS,
    Kat,
    SelfTestFailure,
    pairwise_consistency,
    run_kats,
)
from ironroot.hsm._storage import HsmStorage, check_secret, seal, unseal
from ironroot.hsm._wrap import (
    aes_kwp_unwrap,
    aes_kwp_wrap,
    load_recipient,
    unwrap_key_kem,
    unwrap_key_rsa_aes,
    wrap_key_kem,
    wrap_key_rsa_aes,
)

__all__ = ["Hsm"]

MIN_CREDENTIAL: Final = 8
MAX_CREDENTIAL: Final = 1024
_NONE: Final = "-"  # the identity of records that no session authenticated
_DUMMY_SALT: Final = bytes(16)
_GCM_NONCE: Final = 12
_DERIVED_SIZES: Final = {KeyType.AES_256: 32, KeyType.HMAC_SHA384: 48}

_ANY: Final = frozenset(Role)
_OFFICER: Final = frozenset({Role.OFFICER})
_USER: Final = frozenset({Role.USER})
_AUDITOR: Final = frozenset({Role.AUDITOR})
_KEY_READERS: Final = frozenset({Role.OFFICER, Role.USER})
_PERMISSIONS: Final[dict[str, frozenset[Role]]] = {
    "identity-add": _OFFICER,
    "identity-lock": _OFFICER,
    "identity-unlock": _OFFICER,
    "identity-remove": _OFFICER,
    "identity-list": _OFFICER,
    "generate": _OFFICER,
    "delete": _OFFICER,
    "migrate": _OFFICER,
    "backup": _OFFICER,
    "restore": _OFFICER,
    "zeroize": _OFFICER,
    "key-list": _KEY_READERS,
    "key-info": _KEY_READERS,
    "attest": _KEY_READERS,
    "sign": _USER,
    "verify": _USER,
    "encrypt": _USER,
    "decrypt": _USER,
    "wrap": _USER,
    "unwrap": _USER,
    "derive": _USER,
    "release": _USER,
    "release-challenge": _USER,
    "verifier-add": _OFFICER,
    "verifier-remove": _OFFICER,
    "verifier-list": _KEY_READERS,
    "audit-read": _AUDITOR,
    "audit-checkpoint": _AUDITOR,
    "self-test": _ANY,
    "logout": _ANY,
}


_SECURITY_EVENTS: Final = frozenset(
    {"login", "release", "self-test", "pairwise-test", "power-up", "initialize", "tamper"}
)
"""Operations whose every record is durable and anchored before the call returns (any
refusal is too)."""


class _Op:
    """The audit facts of one operation in progress."""

    __slots__ = ("identity", "key")

    def __init__(self, identity: str, key: str | None) -> None:
        self.identity = identity
        self.key = key


@dataclass(frozen=True, slots=True)
class _Pending:
    time: int
    identity: str
    operation: str
    key: str | None
    result: str


class Hsm:
    """The built-in HSM. Create one with :meth:`initialize` or :meth:`open`."""

    def __init__(
        self,
        storage: HsmStorage,
        sealing_secret: bytes,
        *,
        config: HsmConfig = HsmConfig(),  # noqa: B008  (frozen, immutable default)
        kats: tuple[Kat, ...] = DEFAULT_KATS,
        pairwise: Callable[[KeyObject], None] = pairwise_consistency,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Power up: run the KATs. Use :meth:`initialize` or :meth:`open`, which call this."""
        self._storage = storage
        self._secret = bytearray(check_secret(sealing_secret))
        self._config = config
        self._kats = tuple(kats)
        self._pairwise = pairwise
        self._clock = clock
        self._lock = threading.RLock()
        self._state = "operational"
        self._error = ""
        self._hsm_id = b""
        self._identities: dict[str, IdentityRecord] = {}
        self._keys: dict[str, KeyRecord] = {}
        self._sessions: dict[bytes, tuple[str, Role]] = {}
        self._attestation: KeyRecord | None = None
        self._chain: tuple[bytes, ...] = ()
        self._pending: list[_Pending] = []
        self._audit_size = 0
        self._audit_head = ZERO_HASH
        self._audit_key = bytearray()
        self._audit_from = 0
        self._generation = 0  # the root-of-trust counter value of the last commit
        self._store_generation = 0
        self._verifiers: dict[str, tuple[TrustedVerifier, bytes]] = {}  # name -> (it, SPKI)
        self._nonces = NonceStore(
            lifetime=config.release_nonce_lifetime,
            limits=config.release_challenges,
            service="HSM release",
        )
        self._policies = PolicyCache()
        self._listeners: list[Callable[[str, str], None]] = []
        try:
            run_kats(self._kats)
        except SelfTestFailure as exc:
            self._fail(str(exc))

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def initialize(
        cls,
        storage: HsmStorage,
        sealing_secret: bytes,
        *,
        officer: str,
        credential: bytes,
        device: DeviceIdentity,
        config: HsmConfig = HsmConfig(),  # noqa: B008
        kats: tuple[Kat, ...] = DEFAULT_KATS,
        pairwise: Callable[[KeyObject], None] = pairwise_consistency,
        clock: Callable[[], float] = time.time,
    ) -> Hsm:
        """A new HSM in ``storage``: its id, its attestation key (certified by ``device``) and
        its first crypto officer. ``Conflict`` if ``storage`` already holds a key store."""
        hsm = cls(storage, sealing_secret, config=config, kats=kats, pairwise=pairwise, clock=clock)
        if hsm._state != "operational":
            return hsm
        if storage.read_store() is not None:
            raise Conflict("this storage already holds an HSM key store")
        check_name(officer)
        # A log left by a zeroized predecessor is continued (its chain verified): this HSM's
        # records are keyed from the next index on.
        records = parse_audit_log(storage.read_audit())
        verify_audit(records)
        with hsm._lock:
            hsm._audit_size = hsm._audit_from = len(records)
            hsm._audit_head = records[-1].digest() if records else ZERO_HASH
            hsm._audit_key = bytearray(secrets.token_bytes(32))
            hsm._generation = storage.counter.value()
            hsm._hsm_id = secrets.token_bytes(16)
            key_type = KEY_TYPE_FOR_ALGORITHM[config.attestation_algorithm]
            stored, obj = generate_material(key_type)
            hsm._check_pair(obj)
            now = hsm._now()
            attestation = KeyRecord(
                "attestation",
                key_type,
                KeyAttributes(frozenset({Usage.SIGN})),
                local=True,
                created=now,
                stored=stored,
                obj=obj,
            )
            if attestation.public_key is None:  # unreachable: signing key types only
                raise UnsupportedAlgorithm("the attestation key must be a signing key")
            certificate = issue_attestation_certificate(
                subject_key=attestation.public_key,
                hsm_id=hsm._hsm_id,
                issuer=device.signer,
                issuer_chain=device.chain,
                now=dt.datetime.fromtimestamp(now, dt.UTC),
            )
            hsm._attestation = attestation
            hsm._chain = (certificate, *device.chain)
            hsm._identities[officer] = hsm._new_identity(officer, Role.OFFICER, credential)
            hsm._pending.append(_Pending(now, officer, "initialize", None, "ok"))
            hsm._persist()  # the first commit: store, anchor and the record together
        return hsm

    @classmethod
    def open(
        cls,
        storage: HsmStorage,
        sealing_secret: bytes,
        *,
        config: HsmConfig = HsmConfig(),  # noqa: B008
        kats: tuple[Kat, ...] = DEFAULT_KATS,
        pairwise: Callable[[KeyObject], None] = pairwise_consistency,
        clock: Callable[[], float] = time.time,
    ) -> Hsm:
        """Power up an existing HSM from ``storage``.

        ``NotFound`` if there is no key store, ``SealedStoreError`` if it does not open with
        ``sealing_secret``, ``StoreRolledBack`` if it is not the latest store the root of
        trust's counter vouches for (``_anchor``; the refusal is audited), ``HsmZeroized`` if
        the HSM was zeroized, ``AuditChainBroken`` if the audit log does not verify (chain and
        MACs) or does not reach the head sealed in the anchor. When a KAT fails, the returned
        object is in its error state (and the store was not opened).
        """
        hsm = cls(storage, sealing_secret, config=config, kats=kats, pairwise=pairwise, clock=clock)
        if hsm._state != "operational":
            return hsm
        secret = bytes(hsm._secret)
        counter = storage.counter.value()
        sealed_anchor = storage.read_anchor()
        anchor = None if sealed_anchor is None else open_anchor(secret, sealed_anchor)
        sealed = storage.read_store()
        if sealed is None:
            if anchor is not None and anchor.zeroized:
                raise HsmZeroized("the HSM was zeroized: no key material is left")
            raise NotFound("this storage holds no HSM key store")
        plaintext = unseal(secret, sealed)
        try:
            doc = decode_store(plaintext)
        except (MalformedInput, KeyError, TypeError, ValueError) as exc:
            raise SealedStoreError("the sealed key store opened but does not parse") from exc
        try:
            pending = check_anchor(anchor, counter=counter, store=doc.generation, hsm=doc.hsm_id)
        except StoreRolledBack as exc:
            hsm._audit_refused_power_up(doc, exc.code)
            raise
        hsm._load_document(doc)
        hsm._resume_audit(anchor, doc)
        with hsm._lock:
            hsm._generation = counter
            if pending and anchor is not None and anchor.counter == counter + 1:
                hsm._advance_counter()  # the last commit wrote its anchor, not its increment
            hsm._record(_NONE, "power-up", None, "ok")
        return hsm

    # --- state, sessions, audit --------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"operational"``, ``"error"`` (a self-test failed) or ``"zeroized"``."""
        return self._state

    @property
    def error(self) -> str:
        """Why the HSM is in its error state (empty when it is not)."""
        return self._error

    @property
    def hsm_id(self) -> bytes:
        self._check_state()
        return self._hsm_id

    @property
    def attestation_chain(self) -> tuple[bytes, ...]:
        """The attestation certificate (DER) followed by the device chain."""
        self._check_state()
        return self._chain

    @property
    def attestation_public_key(self) -> PublicKey:
        self._check_state()
        if self._attestation is None or self._attestation.public_key is None:
            raise HsmErrorState("the HSM has no attestation key")
        return self._attestation.public_key

    def _now(self) -> int:
        return int(self._clock())

    def _datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    def _fail(self, reason: str, *, record: tuple[str, str] | None = None) -> None:
        """Enter the error state: nothing more is done until a restart. ``record`` is
        ``(identity, operation)`` of the failure, audited durably first when the HSM was
        operational (a power-up KAT failure has no store open, so nothing to key a record
        with: the object's state reports it)."""
        if record is not None and self._state == "operational" and self._audit_key:
            with contextlib.suppress(IronrootError):  # failing anyway: that is the news
                self._record(*record, None, HsmErrorState.code)
        self._state = "error"
        self._error = reason
        self._sessions.clear()

    def _check_state(self) -> None:
        if self._state == "zeroized":
            raise HsmZeroized("the HSM was zeroized: no key material is left")
        if self._state != "operational":
            raise HsmErrorState(f"the HSM is in its error state ({self._error}); restart it")

    def _check_pair(self, obj: KeyObject, identity: str = _NONE) -> None:
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

    def add_listener(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(operation, result)`` after every audited operation (for metrics:
        it sees what the audit log sees, never a key or a credential). A listener that raises
        is ignored."""
        self._listeners.append(listener)

    def _record(self, identity: str, operation: str, key: str | None, result: str) -> None:
        """Audit one outcome. A security event — any refusal, and every login, release,
        self-test and power-up — is written, synced and anchored (bound to the counter) before
        this returns; other records wait for a group of ``audit_group_commit``."""
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener(operation, result)
        with self._lock:
            self._pending.append(_Pending(self._now(), identity, operation, key, result))
            if (
                result != "ok"
                or operation in _SECURITY_EVENTS
                or len(self._pending) >= self._config.audit_group_commit
            ):
                self._sync()

    def _flush_audit(self) -> None:
        """Append the waiting records (keyed, chained) and fsync; no anchor."""
        if not self._pending:
            return
        records: list[AuditRecord] = []
        size, head = self._audit_size, self._audit_head
        for p in self._pending:
            unkeyed = AuditRecord(size, p.time, p.identity, p.operation, p.key, p.result, head)
            head = unkeyed.digest()
            records.append(replace(unkeyed, mac=audit_mac(self._audit_key, head)))
            size += 1
        self._written(lambda: self._storage.append_audit(format_audit_log(records)))
        self._pending.clear()
        self._audit_size, self._audit_head = size, head

    def _sync(self) -> None:
        """Flush the audit records and commit an anchor naming the new head."""
        if self._state != "operational":
            return
        self._flush_audit()
        self._commit(store=False)

    def _advance_counter(self) -> None:
        expected = self._generation + 1
        try:
            value = self._storage.counter.increment()
        except BaseException as exc:  # as a failed write (``_written``): power-up finishes it
            self._fail(f"the root of trust's counter did not increment: {exc}")
            raise
        if value != expected:
            self._fail("the root of trust's counter moved under the HSM")
            raise StoreRolledBack(
                f"the root of trust's counter reads {value}, the HSM expected {expected}: "
                "another process commits to this counter"
            )
        self._generation = value

    def _commit(self, *, store: bool, zeroized: bool = False) -> None:
        """One commit (``_anchor``): the store (when ``store``) takes generation ``c + 1``,
        then the anchor with counter ``c + 1``, then the counter is incremented."""
        secret = bytes(self._secret)
        following = self._generation + 1
        if store:
            sealed = seal(secret, encode_store(self._document(following)))
            self._written(lambda: self._storage.write_store(sealed))
            self._store_generation = following
        anchor = Anchor(
            following,
            self._store_generation,
            self._audit_size,
            self._audit_head,
            zeroized,
            self._hsm_id,
        )
        self._written(lambda: self._storage.write_anchor(seal_anchor(secret, anchor)))
        self._advance_counter()

    def _written(self, write: Callable[[], None]) -> None:
        """Run one write of a commit; if it fails, the HSM enters its error state. A commit
        cut short is a power cut: only power-up may finish it (``check_anchor``). Going on
        would write another store of the same generation as the one already on disk, and
        that copy, put back later, would open (a deleted key back, a lockout cleared)."""
        try:
            write()
        except BaseException as exc:
            self._fail(f"a write to the HSM's storage failed: {exc}")
            raise

    def _resume_audit(self, anchor: Anchor | None, doc: StoreDocument) -> None:
        """Verify the log to the head sealed in the anchor or the store (``_audit_check``)."""
        records = parse_audit_log(self._storage.read_audit())
        verify_to_sealed_head(records, doc, anchor)
        self._audit_size = len(records)
        self._audit_head = records[-1].digest() if records else ZERO_HASH

    def _audit_refused_power_up(self, doc: StoreDocument, code: str) -> None:
        """Append a keyed record of a refused power-up to the log, when the log verifies with
        the audit key of the store that was refused (best effort: the refusal is raised
        whatever happens here)."""
        try:
            records = parse_audit_log(self._storage.read_audit())
            verify_audit(records, key=doc.audit_key, mac_from=doc.audit_from)
            head = records[-1].digest() if records else ZERO_HASH
            unkeyed = AuditRecord(len(records), self._now(), _NONE, "power-up", None, code, head)
            keyed = replace(unkeyed, mac=audit_mac(doc.audit_key, unkeyed.digest()))
            self._storage.append_audit(format_audit_log([keyed]))
        except IronrootError:
            pass

    def flush(self) -> None:
        """Write, sync and anchor the audit records waiting in memory."""
        with self._lock:
            if self._pending:
                self._sync()

    def close(self) -> None:
        """Flush the audit log and end every session (the HSM object stays usable)."""
        with self._lock:
            if self._pending:
                self._sync()
            self._sessions.clear()

    @contextmanager
    def _operation(self, session: Session, operation: str, key: str | None = None) -> Iterator[_Op]:
        """Authenticate and authorize ``session`` for ``operation``; audit the outcome (an
        operation that creates a key sets ``op.key`` so its record names the new handle)."""
        self._check_state()
        op = _Op(self._authorize(session, operation, key), key)
        try:
            yield op
        except IronrootError as exc:
            if self._state == "operational":
                self._record(op.identity, operation, op.key, exc.code)
            raise
        self._record(op.identity, operation, op.key, "ok")

    def _authorize(self, session: Session, operation: str, key: str | None) -> str:
        entry = (
            self._sessions.get(session.token)
            if isinstance(session, Session) and isinstance(session.token, bytes)
            else None
        )
        if entry is None or entry != (session.identity, session.role):
            with self._lock:
                self._record(_NONE, operation, key, Unauthorized.code)
            raise Unauthorized("no valid session: log in first")
        identity, role = entry
        if role not in _PERMISSIONS[operation]:
            with self._lock:
                self._record(identity, operation, key, RoleNotPermitted.code)
            raise RoleNotPermitted(f"the {role.value} role may not {operation}")
        return identity

    # --- identities --------------------------------------------------------------------------

    def _hash_credential(self, credential: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(credential)

    def _new_identity(self, name: str, role: Role, credential: bytes) -> IdentityRecord:
        if not isinstance(credential, bytes | bytearray) or not (
            MIN_CREDENTIAL <= len(credential) <= MAX_CREDENTIAL
        ):
            raise MalformedInput(f"a credential is {MIN_CREDENTIAL} to {MAX_CREDENTIAL} bytes")
        c = self._config
        salt = secrets.token_bytes(16)
        digest = self._hash_credential(bytes(credential), salt, c.scrypt_n, c.scrypt_r, c.scrypt_p)
        return IdentityRecord(
            name, role, salt, bytearray(digest), c.scrypt_n, c.scrypt_r, c.scrypt_p
        )

    def login(self, identity: str, credential: bytes) -> Session:
        """Authenticate ``identity``; ``Unauthorized`` for a wrong credential or an unknown
        identity — locked or not, so the answer says nothing about an identity to someone who
        does not hold its credential — and ``IdentityLocked`` for a locked identity presented
        with its right credential. Every attempt is audited durably."""
        self._check_state()
        if not isinstance(credential, bytes | bytearray) or len(credential) > MAX_CREDENTIAL:
            raise MalformedInput(f"a credential is at most {MAX_CREDENTIAL} bytes")
        with self._lock:
            ident = self._identities.get(identity) if isinstance(identity, str) else None
            if ident is None:
                c = self._config
                self._hash_credential(bytes(credential), _DUMMY_SALT, c.scrypt_n, c.scrypt_r, 1)
                self._record(_NONE, "login", None, Unauthorized.code)
                raise Unauthorized("unknown identity or wrong credential")
            try:
                Scrypt(salt=ident.salt, length=32, n=ident.n, r=ident.r, p=ident.p).verify(
                    bytes(credential), bytes(ident.hash)
                )
            except InvalidKey:
                if ident.locked:
                    self._record(ident.name, "login", None, Unauthorized.code)
                    raise Unauthorized("unknown identity or wrong credential") from None
                ident.failures += 1
                if ident.failures >= self._config.max_failed_logins:
                    ident.locked = True
                    self._end_sessions(ident.name)
                self._pending.append(
                    _Pending(self._now(), ident.name, "login", None, Unauthorized.code)
                )
                self._persist()
                raise Unauthorized("unknown identity or wrong credential") from None
            if ident.locked:
                self._record(ident.name, "login", None, IdentityLocked.code)
                raise IdentityLocked(
                    f"identity {ident.name!r} is locked: a crypto officer must unlock it"
                )
            if ident.failures:
                ident.failures = 0
                self._pending.append(_Pending(self._now(), ident.name, "login", None, "ok"))
                self._persist()
            else:
                self._record(ident.name, "login", None, "ok")
            token = secrets.token_bytes(32)
            self._sessions[token] = (ident.name, ident.role)
            return Session(ident.name, ident.role, token)

    def logout(self, session: Session) -> None:
        with self._lock, self._operation(session, "logout"):
            self._sessions.pop(session.token, None)

    def _end_sessions(self, name: str) -> None:
        for token, (who, _role) in list(self._sessions.items()):
            if who == name:
                del self._sessions[token]

    def _identity(self, name: str) -> IdentityRecord:
        ident = self._identities.get(name)
        if ident is None:
            raise NotFound(f"no identity {name!r}")
        return ident

    def add_identity(self, session: Session, name: str, role: Role, credential: bytes) -> None:
        """Add an identity (crypto officer); ``Conflict`` if the name is taken."""
        with self._lock, self._operation(session, "identity-add"):
            check_name(name)
            if not isinstance(role, Role):
                raise MalformedInput("role must be a Role")
            if name in self._identities:
                raise Conflict(f"identity {name!r} already exists")
            self._identities[name] = self._new_identity(name, role, credential)
        self._persist_locked()

    def lock_identity(self, session: Session, name: str) -> None:
        """Lock an identity and end its sessions (crypto officer)."""
        with self._lock, self._operation(session, "identity-lock"):
            ident = self._identity(name)
            if ident.name == session.identity:
                raise Conflict("an officer cannot lock itself")
            ident.locked = True
            self._end_sessions(name)
        self._persist_locked()

    def unlock_identity(self, session: Session, name: str) -> None:
        """Unlock an identity and reset its failure count (crypto officer)."""
        with self._lock, self._operation(session, "identity-unlock"):
            ident = self._identity(name)
            ident.locked = False
            ident.failures = 0
        self._persist_locked()

    def remove_identity(self, session: Session, name: str) -> None:
        """Remove an identity (crypto officer); the last unlocked officer cannot go."""
        with self._lock, self._operation(session, "identity-remove"):
            ident = self._identity(name)
            officers = [
                i for i in self._identities.values() if i.role is Role.OFFICER and not i.locked
            ]
            if ident.role is Role.OFFICER and officers == [ident]:
                raise Conflict("the last unlocked crypto officer cannot be removed")
            zero(ident.hash)
            del self._identities[name]
            self._end_sessions(name)
        self._persist_locked()

    def identities(self, session: Session) -> tuple[tuple[str, Role, bool], ...]:
        """``(name, role, locked)`` of every identity (crypto officer)."""
        with self._lock, self._operation(session, "identity-list"):
            return tuple(
                (i.name, i.role, i.locked)
                for i in sorted(self._identities.values(), key=lambda i: i.name)
            )

    # --- key lifecycle -----------------------------------------------------------------------

    def _key(self, handle: str, usage: Usage | None = None) -> KeyRecord:
        key = self._keys.get(handle) if isinstance(handle, str) else None
        if key is None:
            raise NotFound(f"no key {handle!r}")
        if usage is not None and usage not in key.attributes.usages:
            raise KeyUsageNotPermitted(f"key {handle} does not have usage {usage.value}")
        return key

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
            with self._operation(session, "delete", handle):
                key = self._key(handle)
                key.wipe()
                del self._keys[handle]
            self._persist()

    def keys(self, session: Session) -> tuple[KeyInfo, ...]:
        """Every key's public information, by creation time then handle."""
        with self._lock, self._operation(session, "key-list"):
            return tuple(
                k.info() for k in sorted(self._keys.values(), key=lambda k: (k.created, k.handle))
            )

    def key_info(self, session: Session, handle: str) -> KeyInfo:
        with self._lock, self._operation(session, "key-info", handle):
            return self._key(handle).info()

    # --- using keys --------------------------------------------------------------------------

    def _check_data(self, data: object, what: str = "data") -> bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedInput(f"{what} must be bytes")
        if len(data) > self._config.max_data:
            raise LimitExceeded(f"{what} is over {self._config.max_data} bytes")
        return bytes(data)

    def sign(self, session: Session, handle: str, data: bytes) -> bytes:
        """Sign ``data`` (COSE signature encoding) or MAC it (HMAC-SHA-384)."""
        with self._operation(session, "sign", handle):
            key = self._key(handle, Usage.SIGN)
            obj = key.obj
            if isinstance(obj, PrivateKey):
                return obj.sign(self._check_data(data))
            return hmac.new(bytes(key.stored), self._check_data(data), hashlib.sha384).digest()

    def verify(self, session: Session, handle: str, signature: bytes, data: bytes) -> None:
        """Return ``None`` if ``signature`` is valid over ``data``; raise ``BadSignature``."""
        with self._operation(session, "verify", handle):
            key = self._key(handle, Usage.VERIFY)
            signature = self._check_data(signature, "signature")
            if key.public_key is not None:
                key.public_key.verify(signature, self._check_data(data))
                return
            mac = hmac.new(bytes(key.stored), self._check_data(data), hashlib.sha384).digest()
            if not hmac.compare_digest(mac, signature):
                raise BadSignature("HMAC-SHA-384 tag does not verify")

    def _aead(self, key: KeyRecord) -> AESGCM:
        if not isinstance(key.obj, AESGCM):
            raise KeyUsageNotPermitted(f"key {key.handle} is not an AES-256 key")
        return key.obj

    def encrypt(
        self, session: Session, handle: str, plaintext: bytes, *, aad: bytes = b""
    ) -> bytes:
        """AES-256-GCM: ``nonce (12) ‖ ciphertext ‖ tag (16)``, with a random nonce."""
        with self._operation(session, "encrypt", handle):
            aead = self._aead(self._key(handle, Usage.ENCRYPT))
            nonce = secrets.token_bytes(_GCM_NONCE)
            return nonce + aead.encrypt(
                nonce, self._check_data(plaintext), self._check_data(aad, "aad")
            )

    def decrypt(self, session: Session, handle: str, sealed: bytes, *, aad: bytes = b"") -> bytes:
        """Undo :meth:`encrypt`; ``VerificationFailed`` if the tag does not verify."""
        with self._operation(session, "decrypt", handle):
            aead = self._aead(self._key(handle, Usage.DECRYPT))
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

    def _wrap_to(
        self, target: KeyRecord, wrapping: KeyRecord | None, recipient_der: bytes | None
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
            if recipient_der is None:
                raise MalformedInput("wrap needs a wrapping key handle or a recipient key")
            recipient = load_recipient(recipient_der)
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
        ML-KEM, RSA-3072 or AES-256 key with usage ``wrap``) or to an outside public key
        (``recipient``: ML-KEM or RSA SubjectPublicKeyInfo). The format follows the wrapping
        key (``_wrap``). ``KeyNotExportable`` for a non-exportable key or one with a release
        policy."""
        with self._operation(session, "wrap", target):
            if (wrapping_key is None) == (recipient is None):
                raise MalformedInput("give exactly one of wrapping_key and recipient")
            key = self._key(target)
            self._exportable(key, release=False)
            wrapper = None if wrapping_key is None else self._key(wrapping_key, Usage.WRAP)
            return self._wrap_to(key, wrapper, recipient)

    def release_challenge(self, session: Session, client: str | None = None) -> tuple[bytes, int]:
        """A single-use release nonce (32 bytes) and when it expires (POSIX seconds), issued
        and remembered inside the HSM: :meth:`release` redeems it (crypto user). ``client``
        names who asked, for the per-client limits of ``HsmConfig.release_challenges``."""
        with self._operation(session, "release-challenge"):
            return self._nonces.issue(self._datetime(), client)

    def release(
        self, session: Session, handle: str, *, ear: bytes, nonce: bytes, recipient: bytes
    ) -> bytes:
        """Release a key that has a release policy, wrapped to a TEE's key ``recipient``
        (ML-KEM or RSA SubjectPublicKeyInfo), when the HSM itself has verified the EAR.

        In order: the key exists and leaves only by release (``NotFound``,
        ``KeyNotExportable``); ``nonce`` is one :meth:`release_challenge` issued, unexpired
        and not used before (``StaleNonce``: redeemed now, whatever follows); the EAR is signed
        by a verifier a crypto officer installed (:meth:`add_release_verifier`), unexpired,
        binds ``nonce`` and ``recipient`` and is affirming (or warning, where the key allows:
        ``ironroot.hsm._release``); the key's own release policy holds on its claims
        (``InvalidReleasePolicy``, ``ReleaseDenied``). Every refusal is audited with its code
        and is durable before this returns, as is the release.
        """
        with self._lock, self._operation(session, "release", handle):  # not while a delete wipes
            key = self._key(handle)
            self._exportable(key, release=True)
            policy = key.attributes.release_policy
            if policy is None:
                raise KeyNotExportable(f"key {handle} has no release policy: use wrap")
            now = self._datetime()
            self._nonces.redeem(nonce, now)
            wrapping_key = WrappingKey.parse(self._check_data(recipient, "recipient"))
            context = authorize_release(
                self._check_data(ear, "ear"),
                nonce=nonce,
                wrapping_key=wrapping_key,
                verifiers=tuple(v for v, _der in self._verifiers.values()),
                now=now,
                minimum_status=(
                    TrustTier.WARNING if key.attributes.release_on_warning else TrustTier.AFFIRMING
                ),
            )
            self._policies.get(policy).evaluate(context)
            return self._wrap_to(key, None, wrapping_key.spki)

    # --- EAR verifiers the HSM trusts for release --------------------------------------------

    def add_release_verifier(self, session: Session, name: str, public_key: bytes) -> str:
        """Install the public key of a verifier whose EARs may release keys (crypto officer):
        ``name`` is what an Azure-grammar policy's ``authority`` names, ``public_key`` a PEM
        or DER SubjectPublicKeyInfo. Returns its key id (base64url). ``Conflict`` when the
        name or the key is installed already."""
        with self._lock:
            with self._operation(session, "verifier-add"):
                if not isinstance(name, str) or not name.strip() or len(name) > 256:
                    raise MalformedInput("a verifier name is 1..256 characters of text")
                loaded = load_verifier(self._check_data(public_key, "public key"))
                if not isinstance(loaded, PublicKey):
                    raise UnsupportedAlgorithm("an EAR verifier key is an EC, EdDSA or ML-DSA key")
                if name in self._verifiers:
                    raise Conflict(f"a verifier named {name!r} is installed already")
                for other, _der in self._verifiers.values():
                    if other.key.kid == loaded.kid:
                        raise Conflict(f"that key is installed already as {other.name!r}")
                verifier = TrustedVerifier(name, loaded)
                self._verifiers[name] = (verifier, loaded.to_der())
            self._persist()
            return verifier.kid

    def remove_release_verifier(self, session: Session, name: str) -> None:
        """Uninstall a verifier (crypto officer): its EARs release nothing from now on."""
        with self._lock:
            with self._operation(session, "verifier-remove"):
                if not isinstance(name, str) or name not in self._verifiers:
                    raise NotFound(f"no verifier {name!r} is installed")
                del self._verifiers[name]
            self._persist()

    def release_verifiers(self, session: Session) -> tuple[tuple[str, str], ...]:
        """``(name, key id)`` of every installed verifier, by name (crypto officer or user)."""
        with self._lock, self._operation(session, "verifier-list"):
            return tuple(
                (v.name, v.kid)
                for v, _der in sorted(self._verifiers.values(), key=lambda e: e[0].name)
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
                wrapper = self._key(unwrapping_key, Usage.UNWRAP)
                if attributes.exportable:
                    raise KeyNotExportable("an unwrapped (imported) key is never exportable")
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
        parent is (and carries the parent's release policy, if any): ``KeyNotExportable``."""
        with self._lock:
            with self._operation(session, "derive", handle) as op:
                parent = self._key(handle, Usage.DERIVE)
                if key_type not in _DERIVED_SIZES:
                    raise UnsupportedAlgorithm("a derived key is AES-256 or HMAC-SHA-384")
                attrs = attributes or KeyAttributes(key_type.default_usages)
                attrs.check_for(key_type)
                if attrs.exportable:
                    self._exportable(parent, release=True)
                    if attrs.release_policy != parent.attributes.release_policy:
                        raise KeyNotExportable(
                            "a key derived from a key with a release policy keeps that policy"
                        )
                okm = HKDF(
                    hashes.SHA384(),
                    _DERIVED_SIZES[key_type],
                    self._check_data(salt, "salt") or None,
                    self._check_data(info, "info"),
                ).derive(bytes(parent.stored))
                stored = bytearray(okm)
                new = self._add_key(
                    key_type, attrs, stored, load_material(key_type, stored), local=True
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

    # --- self-test, audit --------------------------------------------------------------------

    def self_test(self, session: Session) -> None:
        """Run the KATs again; a failure puts the HSM into its error state."""
        with self._lock, self._operation(session, "self-test") as op:
            try:
                run_kats(self._kats)
            except SelfTestFailure as exc:
                self._fail(str(exc), record=(op.identity, "self-test"))
                raise HsmErrorState(
                    "a known-answer test failed: the HSM is in its error state"
                ) from exc

    def audit_records(self, session: Session) -> tuple[AuditRecord, ...]:
        """Every audit record, after writing those waiting in memory (auditor)."""
        with self._lock, self._operation(session, "audit-read"):
            self._sync()
            return parse_audit_log(self._storage.read_audit())

    def audit_checkpoint(self, session: Session) -> bytes:
        """A Signed Statement of the audit log's ``(size, head)`` (auditor), signed by the
        attestation key: register it on the transparency service to pin the log."""
        with self._lock:
            with self._operation(session, "audit-checkpoint"):
                pass
            self._sync()
            if self._attestation is None or not isinstance(self._attestation.obj, PrivateKey):
                raise HsmErrorState("the HSM has no attestation key")
            checkpoint = AuditCheckpoint(
                self._hsm_id, self._audit_size, self._audit_head, self._now()
            )
            return checkpoint_statement(self._attestation.obj, checkpoint)

    # --- migration, backup, zeroization ------------------------------------------------------

    def migrate(self, session: Session, new_sealing_secret: bytes) -> None:
        """Re-seal the key store to ``new_sealing_secret`` (crypto officer): after this only
        that secret (another device, or new firmware) opens it."""
        with self._lock:
            with self._operation(session, "migrate"):
                new = bytearray(check_secret(new_sealing_secret))
            old, self._secret = self._secret, new
            zero(old)
            self._persist()

    def backup(self, session: Session) -> bytes:
        """The sealed key store (crypto officer): it opens only where this device's sealing
        secret is known, so no key leaves the boundary by this path. Putting the file back
        in place later is a rollback and is refused at power-up (``StoreRolledBack``): a
        backup comes back only through :meth:`restore`."""
        with self._lock:
            with self._operation(session, "backup"):
                pass
            self._persist()
            sealed = self._storage.read_store()
            if sealed is None:
                raise SealedStoreError("the key store is gone")
            return sealed

    def restore(self, session: Session, backup: bytes) -> None:
        """Restore a :meth:`backup` of this HSM (crypto officer), saying so: its identities,
        keys and installed verifiers replace the current ones, as a new store generation; the
        audit log, its key and the root of trust's counter go on (``restore`` is audited, and
        nothing of the log is rolled back). ``SealedStoreError`` for a backup that does not
        open with this device's sealing secret, ``Conflict`` for another HSM's. Every session
        ends, the caller's included."""
        with self._lock:
            with self._operation(session, "restore"):
                data = self._check_data(backup, "backup")
                try:
                    doc = decode_store(unseal(bytes(self._secret), data))
                except MalformedInput as exc:
                    raise SealedStoreError(
                        "the backup opened but is not a key store of this version"
                    ) from exc
                if not hmac.compare_digest(doc.hsm_id, self._hsm_id):
                    raise Conflict("the backup belongs to another HSM")
                for key in self._keys.values():
                    key.wipe()
                for ident in self._identities.values():
                    zero(ident.hash)
                zero(doc.audit_key)
                self._identities = {i.name: i for i in doc.identities}
                self._keys = {k.handle: k for k in doc.keys}
                self._verifiers = {
                    name: (TrustedVerifier(name, PublicKey.from_der(der)), der)
                    for name, der in doc.verifiers
                }
            self._sessions.clear()
            self._persist()

    def zeroize(self, session: Session) -> None:
        """Zeroize on an officer's command (same effect as :meth:`tamper`)."""
        with self._lock:
            with self._operation(session, "zeroize"):
                pass
            self._zeroize(None)

    def tamper(self) -> None:
        """A tamper event: zeroize everything, irrecoverably. No session is needed."""
        with self._lock:
            if self._state == "zeroized":
                return
            self._zeroize("tamper")

    def _zeroize(self, event: str | None) -> None:
        """Wipe everything; ``event`` is recorded first (an officer's zeroize already was).
        A zeroized anchor is committed before the store is destroyed, so a copy of the store
        put back afterwards does not open."""
        try:
            if self._state == "operational":
                if event is not None:
                    self._pending.append(_Pending(self._now(), _NONE, event, None, "ok"))
                self._flush_audit()
                self._commit(store=False, zeroized=True)
        finally:
            for key in self._keys.values():
                key.wipe()
            if self._attestation is not None:
                self._attestation.wipe()
            for ident in self._identities.values():
                zero(ident.hash)
            zero(self._secret)
            zero(self._audit_key)
            self._keys.clear()
            self._identities.clear()
            self._sessions.clear()
            self._attestation = None
            self._pending.clear()
            self._state = "zeroized"
            gc.collect()
            self._storage.destroy_store()

    # --- the sealed document (format in ._document) -------------------------------------------

    def _persist_locked(self) -> None:
        with self._lock:
            self._persist()

    def _persist(self) -> None:
        """Flush the audit log, then commit the store and its anchor (``_anchor``)."""
        if self._state != "operational":
            return
        self._flush_audit()
        self._commit(store=True)

    def _document(self, generation: int) -> StoreDocument:
        attestation = self._attestation
        if attestation is None:  # unreachable once initialized
            raise HsmErrorState("the HSM has no attestation key")
        return StoreDocument(
            hsm_id=self._hsm_id,
            identities=tuple(self._identities.values()),
            keys=tuple(self._keys.values()),
            attestation=attestation,
            chain=self._chain,
            audit_size=self._audit_size,
            audit_head=self._audit_head,
            audit_key=self._audit_key,
            audit_from=self._audit_from,
            generation=generation,
            verifiers=tuple((name, der) for name, (_v, der) in sorted(self._verifiers.items())),
        )

    def _load_document(self, doc: StoreDocument) -> None:
        self._hsm_id = doc.hsm_id
        self._identities = {i.name: i for i in doc.identities}
        self._keys = {k.handle: k for k in doc.keys}
        self._attestation = doc.attestation
        self._chain = doc.chain
        self._audit_key = doc.audit_key
        self._audit_from = doc.audit_from
        self._store_generation = doc.generation
        self._verifiers = {
            name: (TrustedVerifier(name, PublicKey.from_der(der)), der)
            for name, der in doc.verifiers
        }

    def __repr__(self) -> str:
        ident = self._hsm_id.hex()[:16] if self._hsm_id else "-"
        return f"Hsm(id={ident}, state={self._state}, keys={len(self._keys)})"
