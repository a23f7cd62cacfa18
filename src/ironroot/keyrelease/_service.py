"""The key release service: releasable keys by name, in front of the HSM that decides.

The decision is the HSM's own (:meth:`ironroot.hsm.Hsm.release`, documented in
``ironroot.hsm._release``): it issues the single-use challenge nonces
(:meth:`~ironroot.hsm.Hsm.release_challenge`), verifies the EAR against the verifier keys a
crypto officer installed in it, checks the nonce and key binding and the EAR's status, and
evaluates the release policy stored with the key, before it wraps the key to the TEE. This
layer adds only what is not a trust decision: the names under which keys are offered
(``NotFound``), the HTTP formats, and the :class:`~ironroot.keyrelease.ReleasedKey` envelope,
which carries the HSM's signed release statement for the TEE to check.
A crypto user of the HSM has no way around the decision: there is no caller-supplied check.

A :class:`ReleaseGate` given to the service may refuse a request before the HSM sees it — the
deployment's own conditions, which the HSM cannot know: a fleet refuses keys to the VMs of a
node it quarantined (:class:`ironroot.fleet.FleetReleaseGate`). A gate can only refuse; the
HSM still makes every check of the release. The gate reads its condition before the HSM is
asked, outside the HSM's lock (a slow registry stalls this release only, never the HSM), and
returns a *confirmation* of what it read, which the HSM calls inside its decision
(:meth:`~ironroot.hsm.Hsm.release`'s ``gate``), under its lock, once every check of the HSM
passed and before the release is recorded: a condition that changed since the read (a
quarantine committed meanwhile: the fleet's registry generation moved) refuses the release
too, no key is wrapped, and the HSM's audit record of the release is that refusal, with the
gate's code — never a grant of a key that did not leave. A gate that returns no confirmation
is asked again in full at that point, under the HSM's lock.

Given a :class:`~ironroot.keyrelease.ReleaseStatements` store, the service keeps each release
statement it hands out, durably, before it returns the key (``StorageError`` and no key when
it cannot): the audit bundle carries them, matched to the HSM's audit records (ADR 0015).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Protocol

from ironroot.errors import ConfigError, Conflict, MalformedInput, NotFound
from ironroot.hsm import Hsm, HsmRelease, KeyType, Session, WrappingKey
from ironroot.keyrelease._format import ReleasedKey, wrap_algorithm
from ironroot.keyrelease._statements import ReleaseStatements

__all__ = [
    "HsmVault",
    "KeyReleaseService",
    "KeyVault",
    "ReleasableKey",
    "ReleaseGate",
    "ReleaseRequest",
]

_MAX_NAME: Final = 128


@dataclass(frozen=True, slots=True)
class ReleasableKey:
    """A key the service offers: its name, and its handle in the HSM. Which EAR statuses
    release it is the key's own attribute (``release_on_warning``), set when it was made."""

    name: str
    handle: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or len(self.name) > _MAX_NAME:
            raise ConfigError(f"a key name is 1..{_MAX_NAME} characters")
        if any(c in self.name for c in "/?#%") or not self.name.isprintable():
            raise ConfigError(f"key name {self.name!r} cannot be used in a URL path")


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """One release request: the EAR (JWT or CWT bytes), the TEE's wrapping key and the nonce
    the evidence answers."""

    ear: bytes = field(repr=False)
    wrapping_key: WrappingKey
    nonce: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.wrapping_key, WrappingKey):  # the checked key, not its bytes
            raise MalformedInput("a release request's wrapping key is a WrappingKey")


class ReleaseGate(Protocol):
    """A condition of the deployment on every release (module docs): checked before the
    HSM's decision, outside its lock, raising (``ReleaseDenied``, or the EAR's own error) to
    refuse the request; else it returns the confirmation the HSM calls under its lock, last,
    before the key is released — cheap, never waiting on another thread, raising when what
    was read no longer holds — or ``None``, and it is then called again in full there."""

    def __call__(self, name: str, request: ReleaseRequest) -> Callable[[], None] | None: ...


class KeyVault(Protocol):
    """Where releasable keys live and the release is decided (the HSM)."""

    def challenge(self, client: str | None = None) -> tuple[bytes, int]: ...

    def release(
        self,
        handle: str,
        *,
        ear: bytes,
        nonce: bytes,
        recipient: WrappingKey,
        gate: Callable[[], Callable[[], None] | None] | None = None,
    ) -> HsmRelease:
        """Release ``handle`` wrapped to ``recipient``, the TEE's wrapping key (checked when
        it was made: the vault need not check it again), or raise why not. ``gate``, when
        given (the service passes it only when it has a :class:`ReleaseGate`), is called before
        the vault's lock and returns the confirmation asked last, under it, once the vault
        decided to release and before its decision is recorded (``None``: ``gate`` is asked
        again there): what either raises refuses the release and is what the vault's audit
        records (:meth:`ironroot.hsm.Hsm.release`)."""
        ...

    def key_type(self, handle: str) -> KeyType: ...


class HsmVault:
    """The HSM as a vault, through one logged-in crypto-user session."""

    __slots__ = ("_hsm", "_session", "_types", "_verifiers")

    def __init__(self, hsm: Hsm, session: Session) -> None:
        self._hsm = hsm
        self._session = session
        self._types: dict[str, KeyType] = {}
        self._verifiers: tuple[int, tuple[tuple[str, str], ...]] | None = None

    @property
    def hsm(self) -> Hsm:
        return self._hsm

    @property
    def identity(self) -> str:
        """The HSM identity the service runs as (its session's)."""
        return self._session.identity

    def challenge(self, client: str | None = None) -> tuple[bytes, int]:
        return self._hsm.release_challenge(self._session, client)

    def release(
        self,
        handle: str,
        *,
        ear: bytes,
        nonce: bytes,
        recipient: WrappingKey,
        gate: Callable[[], Callable[[], None] | None] | None = None,
    ) -> HsmRelease:
        return self._hsm.release(
            self._session, handle, ear=ear, nonce=nonce, recipient=recipient, gate=gate
        )

    def key_type(self, handle: str) -> KeyType:
        found = self._types.get(handle)
        if found is None:
            found = self._hsm.key_info(self._session, handle).key_type
            self._types[handle] = found
        return found

    def policy(self, handle: str) -> str | None:
        """The release policy stored with the key (``None`` when it has none)."""
        return self._hsm.key_info(self._session, handle).attributes.release_policy

    def verifiers(self) -> tuple[tuple[str, str], ...]:
        """``(name, key id)`` of the EAR verifiers installed in the HSM: asked of the HSM (an
        audited operation) only when its store changed since last asked, so that readiness
        probes, which anyone may send, do not each add a record to the HSM's audit log."""
        generation = self._hsm.store_generation
        known = self._verifiers
        if known is not None and known[0] == generation:
            return known[1]
        found = self._hsm.release_verifiers(self._session)
        self._verifiers = (generation, found)
        return found


class KeyReleaseService:
    """Secure key release: challenges and releases, decided by the HSM (module docs)."""

    def __init__(
        self,
        *,
        keys: Iterable[ReleasableKey],
        vault: KeyVault,
        gate: ReleaseGate | None = None,
        statements: ReleaseStatements | None = None,
    ) -> None:
        self._keys: dict[str, ReleasableKey] = {k.name: k for k in keys}
        self._adding = threading.Lock()
        self.vault = vault
        self.gate = gate
        self.statements = statements

    @property
    def keys(self) -> Mapping[str, ReleasableKey]:
        """The keys offered for release, by name: a view that does not change under its
        reader (a key offered meanwhile is in the next one)."""
        return MappingProxyType(self._keys)

    def add_key(self, key: ReleasableKey) -> None:
        """Offer one more key (the admin API's ``offer_as``); ``Conflict`` for a taken name.

        Copy on write, one writer at a time: a reader iterating the keys (``/ready``,
        ``GET /keys``, from other threads) never sees the mapping change size under it, and
        two offers of one name at once are one offer and one ``Conflict``."""
        with self._adding:
            if key.name in self._keys:
                raise Conflict(f"a key is offered as {key.name!r} already")
            self._keys = {**self._keys, key.name: key}

    def add_new_key(self, name: str, make: Callable[[], str]) -> ReleasableKey:
        """Offer a key made now under ``name`` (the admin API's ``offer_as``): ``make`` makes
        it and returns its handle. ``Conflict`` for a taken name, before ``make`` runs, under
        :meth:`add_key`'s one writer, so no key is made for a name another offer holds (a key
        made and then refused would have to be deleted, which under the HSM's dual control one
        officer may not do)."""
        ReleasableKey(name, "pending")  # the name is checked before anything is made
        with self._adding:
            if name in self._keys:
                raise Conflict(f"a key is offered as {name!r} already")
            key = ReleasableKey(name, make())
            self._keys = {**self._keys, name: key}
        return key

    def challenge(self, client: str | None = None) -> tuple[bytes, int]:
        """A new single-use release nonce for ``client`` and when it expires (epoch seconds)."""
        return self.vault.challenge(client)

    def key(self, name: str) -> ReleasableKey:
        found = self.keys.get(name)
        if found is None:
            raise NotFound(f"no releasable key is named {name!r}")
        return found

    def release(self, name: str, request: ReleaseRequest) -> ReleasedKey:
        """Release key ``name`` to the TEE of ``request``, or raise why not; the HSM's
        statement is kept first, when the service keeps them (module docs)."""
        entry = self.key(name)
        # checked when it was made (WrappingKey.__post_init__), before the HSM redeems the
        # nonce; the HSM takes it as it is, without checking it again
        wrapping_key = request.wrapping_key
        gate = self.gate
        if gate is None:
            released = self.vault.release(
                entry.handle, ear=request.ear, nonce=request.nonce, recipient=wrapping_key
            )
        else:
            # read here, outside the HSM's lock; confirmed inside the vault's decision, last:
            # a condition that changed while the HSM decided refuses the release, and the
            # HSM's audit records that refusal, never a grant of a key that did not leave
            # (module docs)
            confirm = gate(name, request)
            released = self.vault.release(
                entry.handle,
                ear=request.ear,
                nonce=request.nonce,
                recipient=wrapping_key,
                gate=_confirmation(gate, name, request, confirm),
            )
        # the type the HSM released, not asked of it again: once it granted, nothing asked of
        # it may fail before the key is handed out (a key deleted meanwhile would leave a
        # granted record and no key handed out)
        key_type = released.key_type
        if key_type is None:  # a vault that does not say
            key_type = self.vault.key_type(entry.handle)
        if self.statements is not None:
            self.statements.keep(entry.name, released.statement)
        return ReleasedKey(
            kid=entry.name,
            key_type=key_type,
            alg=wrap_algorithm(wrapping_key.kind),
            recipient=wrapping_key.digest,
            nonce=request.nonce,
            wrapped=released.wrapped,
            statement=released.statement,
        )


def _confirmation(
    gate: ReleaseGate, name: str, request: ReleaseRequest, confirm: Callable[[], None] | None
) -> Callable[[], Callable[[], None] | None]:
    """The vault's ``gate``: what the service's read of ``gate`` returned, or, for a gate
    that returns no confirmation, the gate asked again in full."""
    if confirm is not None:
        return lambda: confirm

    def again() -> None:
        gate(name, request)

    return lambda: again
