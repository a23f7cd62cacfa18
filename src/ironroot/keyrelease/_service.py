"""The key release decision, and the service that holds the keys, the verifiers and the nonces.

:func:`authorize_release` is the pure core. Given the EAR, the TEE's wrapping key and the
release nonce it checks, in this order:

1. the EAR is signed by a trusted verifier key (``UnknownIssuer``, ``BadSignature``,
   ``AlgorithmNotAccepted``), parses (``MalformedInput``), has an ``exp`` and is used before it
   and not before its ``iat`` (``ResultExpired``);
2. some submodule's evidence carries report data ``nonce ‖ SHA-256(wrapping key SPKI)``
   (``StaleNonce`` code ``nonce-mismatch`` for another nonce, ``KeyBindingMismatch`` for
   another key), and the EAR's ``eat_nonce``, when present, is that same report data;
3. the EAR's status (the worst of its submodules) is ``affirming``, or ``warning`` where the
   key allows it (``ReleaseDenied`` code ``not-affirming``).

It returns the :class:`ReleaseContext` the key's release policy is then evaluated on.

:class:`KeyReleaseService` adds the state: the single-use challenges (``StaleNonce`` codes
``nonce-unknown`` / ``nonce-expired`` / ``nonce-reused``, redeemed before anything else), the
names of releasable keys (``NotFound``), the compiled policies, and the vault. The vault
(:class:`KeyVault`: the HSM, or :class:`MemoryVault` in tests) calls the service's check with
the policy text it stores with the key, so the policy that decides is the one bound to the key
(``InvalidReleasePolicy`` for an empty or malformed one, ``ReleaseDenied`` code
``policy-claims`` when the claims do not satisfy it, ``KeyNotExportable`` for a key without a
release policy), and only then wraps the key to the TEE.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa

from ironroot.attestation import AttestationResult, NonceStore, TrustTier, verify_ear
from ironroot.cose import KID, Limits, Sign1
from ironroot.crypto import Verifier
from ironroot.errors import (
    ConfigError,
    IronrootError,
    KeyBindingMismatch,
    KeyNotExportable,
    MalformedInput,
    NotFound,
    ReleaseDenied,
    ResultExpired,
    StaleNonce,
    UnknownIssuer,
)
from ironroot.hsm import Hsm, KeyType, Session, wrap_key_kem, wrap_key_rsa_aes
from ironroot.keyrelease._binding import WrappingKey, b64url, check_binding
from ironroot.keyrelease._format import ReleasedKey, wrap_algorithm
from ironroot.keyrelease._policy import PolicyCache, ReleaseContext, release_claims

__all__ = [
    "HsmVault",
    "KeyReleaseService",
    "KeyVault",
    "MemoryVault",
    "ReleasableKey",
    "ReleaseRequest",
    "TrustedVerifier",
    "authorize_release",
]

_ALLOWED_MINIMUM: Final = (TrustTier.AFFIRMING, TrustTier.WARNING)
_TOKEN_LIMITS: Final = Limits(max_bytes=256 * 1024, max_depth=12, max_items=4096)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TrustedVerifier:
    """A verifier whose EARs the key service accepts: a name (what an Azure-grammar policy's
    ``authority`` names) and its public key."""

    name: str
    key: Verifier

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("a trusted verifier needs a name")

    @property
    def kid(self) -> str:
        """The key id (RFC 9679 thumbprint) as unpadded base64url."""
        return b64url(self.key.kid)


@dataclass(frozen=True, slots=True)
class ReleasableKey:
    """A key the service offers: its name, its handle in the vault, and the least trusting
    EAR status it may be released on (``affirming``, or ``warning``)."""

    name: str
    handle: str
    minimum_status: TrustTier = TrustTier.AFFIRMING

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or len(self.name) > 128:
            raise ConfigError("a key name is 1..128 characters")
        if any(c in self.name for c in "/?#%") or not self.name.isprintable():
            raise ConfigError(f"key name {self.name!r} cannot be used in a URL path")
        if self.minimum_status not in _ALLOWED_MINIMUM:
            raise ConfigError("a key's minimum status is affirming or warning")


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """One release request: the EAR (JWT or CWT bytes), the TEE's wrapping key and the key
    service's nonce the evidence answers."""

    ear: bytes = field(repr=False)
    wrapping_key: WrappingKey
    nonce: bytes


def _token_kid(token: bytes) -> bytes | None:
    """The ``kid`` of an EAR whose signature already verified (JWT header or COSE protected)."""
    try:
        if token[:1] == b"\xd2":
            kid = Sign1.decode(token, _TOKEN_LIMITS).protected.get(KID)
            return kid if isinstance(kid, bytes) else None
        header = token.strip().split(b".", 1)[0].decode("ascii")
        value = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        kid_text = value.get("kid") if isinstance(value, dict) else None
        if not isinstance(kid_text, str):
            return None
        return base64.urlsafe_b64decode(kid_text + "=" * (-len(kid_text) % 4))
    except (IronrootError, ValueError, UnicodeDecodeError, binascii.Error):
        return None


def _report_data(evidence: Mapping[str, Any] | None) -> bytes | None:
    if evidence is None:
        return None
    value = evidence.get("report_data")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise MalformedInput("the EAR's evidence report_data must be hex text")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise MalformedInput("the EAR's evidence report_data is not hex") from exc


def _binding_submod(
    result: AttestationResult, *, nonce: bytes, wrapping_key: WrappingKey
) -> tuple[str, bytes]:
    """The submodule whose evidence binds ``nonce`` and ``wrapping_key``, and its report data."""
    failure: IronrootError | None = None
    for label, appraisal in result.submods.items():
        report_data = _report_data(appraisal.evidence)
        if report_data is None:
            continue
        try:
            check_binding(report_data, nonce=nonce, key=wrapping_key)
        except (StaleNonce, KeyBindingMismatch) as exc:
            if failure is None or isinstance(exc, KeyBindingMismatch):
                failure = exc
            continue
        return label, report_data
    if failure is not None:
        raise failure
    raise KeyBindingMismatch(
        "the EAR carries no evidence report data: nothing binds the wrapping key"
    )


def authorize_release(
    ear: bytes | str,
    *,
    nonce: bytes,
    wrapping_key: WrappingKey,
    verifiers: Sequence[TrustedVerifier],
    now: datetime,
    minimum_status: TrustTier = TrustTier.AFFIRMING,
) -> ReleaseContext:
    """Steps 1–3 of the module documentation; the claims for the key's policy, or raise."""
    if not verifiers:
        raise UnknownIssuer(
            "no trusted verifier is configured: an empty trust store trusts nothing"
        )
    if minimum_status not in _ALLOWED_MINIMUM:
        raise ConfigError("a key's minimum status is affirming or warning")
    token = ear.encode("ascii", "replace") if isinstance(ear, str) else bytes(ear)
    by_kid: dict[bytes, TrustedVerifier] = {}
    for verifier in verifiers:
        by_kid.setdefault(verifier.key.kid, verifier)
    result = verify_ear(token, {kid: v.key for kid, v in by_kid.items()}, now=now)
    if result.exp is None:
        raise ResultExpired(
            "the EAR has no exp: keys are released only on results that expire",
            code="result-no-expiry",
        )
    kid = _token_kid(token)
    signer = by_kid.get(kid) if kid is not None else None
    if signer is None:  # unreachable after a successful verify_ear; fail closed regardless
        raise UnknownIssuer("the EAR's signing key is not a trusted verifier's")
    label, report_data = _binding_submod(result, nonce=nonce, wrapping_key=wrapping_key)
    if result.nonce is not None and result.nonce != report_data:
        raise StaleNonce(
            "the EAR's eat_nonce is not the evidence's report data", code="nonce-mismatch"
        )
    status = result.status
    allowed = _ALLOWED_MINIMUM[: _ALLOWED_MINIMUM.index(minimum_status) + 1]
    if status not in allowed:
        raise ReleaseDenied(
            f"the attestation result is {status.value}; this key needs "
            + " or ".join(t.value for t in allowed),
            code="not-affirming",
        )
    return release_claims(result, label, authority=signer.name, kid=signer.kid)


# --- vaults ---------------------------------------------------------------------------------


class KeyVault(Protocol):
    """Where releasable keys live. ``release`` calls ``authorize(policy_text)`` with the policy
    stored with the key and wraps the key to ``recipient`` (SPKI DER) only if it returns."""

    def release(
        self, handle: str, recipient: bytes, *, authorize: Callable[[str], None]
    ) -> bytes: ...

    def key_type(self, handle: str) -> KeyType: ...


class HsmVault:
    """The HSM as a vault, through one logged-in crypto-user session."""

    __slots__ = ("_hsm", "_session", "_types")

    def __init__(self, hsm: Hsm, session: Session) -> None:
        self._hsm = hsm
        self._session = session
        self._types: dict[str, KeyType] = {}

    def release(self, handle: str, recipient: bytes, *, authorize: Callable[[str], None]) -> bytes:
        return self._hsm.release(self._session, handle, recipient, authorize=authorize)

    def key_type(self, handle: str) -> KeyType:
        found = self._types.get(handle)
        if found is None:
            found = self._hsm.key_info(self._session, handle).key_type
            self._types[handle] = found
        return found

    def policy(self, handle: str) -> str | None:
        """The release policy stored with the key (``None`` when it has none)."""
        return self._hsm.key_info(self._session, handle).attributes.release_policy


@dataclass(frozen=True, slots=True)
class _MemoryKey:
    key_type: KeyType
    material: bytes = field(repr=False)
    policy: str | None


class MemoryVault:
    """Secret keys (AES-256, HMAC-SHA-384) in memory, wrapped with the HSM's formats: the
    in-memory vault for tests and examples. Not a key boundary."""

    __slots__ = ("_keys", "_lock")

    def __init__(self) -> None:
        self._keys: dict[str, _MemoryKey] = {}
        self._lock = threading.Lock()

    def add(self, handle: str, key_type: KeyType, material: bytes, policy: str | None) -> None:
        sizes = {KeyType.AES_256: 32, KeyType.HMAC_SHA384: 48}
        if key_type not in sizes or len(material) != sizes[key_type]:
            raise ConfigError("a memory vault holds AES-256 (32 bytes) or HMAC-SHA-384 (48) keys")
        with self._lock:
            self._keys[handle] = _MemoryKey(key_type, bytes(material), policy)

    def _get(self, handle: str) -> _MemoryKey:
        with self._lock:
            key = self._keys.get(handle)
        if key is None:
            raise NotFound(f"no key {handle}")
        return key

    def release(self, handle: str, recipient: bytes, *, authorize: Callable[[str], None]) -> bytes:
        key = self._get(handle)
        if key.policy is None:
            raise KeyNotExportable(f"key {handle} has no release policy: it is never released")
        authorize(key.policy)
        target = WrappingKey.parse(recipient).key
        if isinstance(target, rsa.RSAPublicKey):
            return wrap_key_rsa_aes(target, key.material)
        return wrap_key_kem(target, key.key_type, key.material)

    def key_type(self, handle: str) -> KeyType:
        return self._get(handle).key_type


# --- the service ----------------------------------------------------------------------------


class KeyReleaseService:
    """Secure key release: challenges, and releases decided by :func:`authorize_release` and
    the key's own policy (see the module documentation)."""

    def __init__(
        self,
        *,
        verifiers: Iterable[TrustedVerifier],
        keys: Iterable[ReleasableKey],
        vault: KeyVault,
        nonces: NonceStore | None = None,
        clock: Callable[[], datetime] = _utcnow,
        policies: PolicyCache | None = None,
    ) -> None:
        self.verifiers = tuple(verifiers)
        self.keys: Mapping[str, ReleasableKey] = {k.name: k for k in keys}
        self.vault = vault
        self.nonces = nonces if nonces is not None else NonceStore(service="key release service")
        self.clock = clock
        self.policies = policies if policies is not None else PolicyCache()

    def challenge(self, client: str | None = None) -> tuple[bytes, int]:
        """A new single-use release nonce for ``client`` and when it expires (epoch seconds)."""
        return self.nonces.issue(self.clock(), client)

    def key(self, name: str) -> ReleasableKey:
        found = self.keys.get(name)
        if found is None:
            raise NotFound(f"no releasable key is named {name!r}")
        return found

    def release(self, name: str, request: ReleaseRequest) -> ReleasedKey:
        """Release key ``name`` to the TEE of ``request``, or raise why not."""
        entry = self.key(name)
        now = self.clock()
        self.nonces.redeem(request.nonce, now)
        context = authorize_release(
            request.ear,
            nonce=request.nonce,
            wrapping_key=request.wrapping_key,
            verifiers=self.verifiers,
            now=now,
            minimum_status=entry.minimum_status,
        )

        def check(policy_text: str) -> None:
            self.policies.get(policy_text).evaluate(context)

        wrapped = self.vault.release(entry.handle, request.wrapping_key.spki, authorize=check)
        return ReleasedKey(
            kid=entry.name,
            key_type=self.vault.key_type(entry.handle),
            alg=wrap_algorithm(request.wrapping_key.kind),
            recipient=request.wrapping_key.digest,
            nonce=request.nonce,
            wrapped=wrapped,
        )
