"""The state every room of the HSM boundary shares, and the checks every room makes.

``HsmState`` is power-up: it sets up storage, sealing secret, configuration, clock, the one
re-entrant lock, identities, keys, sessions, the audit buffer's counters and the installed
verifiers, then runs the KATs. The rooms (``_persistence``, ``_audit_buffer``, ``_permissions``,
``_identities``, ``_key_operations``, ``_wrap_release``, ``_backup``, ``_zeroization``) are
mixins over it that :class:`~ironroot.hsm.Hsm` composes; each names its job.

One storage object, one open ``Hsm`` in a process: two objects committing to one storage race
the root of trust's counter, and the first to see it move enters its error state for good
(the directory lock only stops a second *process*). :meth:`HsmState._claim_storage` records
which object holds a storage object; another operational object holding it is ``Conflict``,
and so is a write by an object that :meth:`~ironroot.hsm.Hsm.close` released while another
object opened the storage since (that object enters its error state, before writing).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from ironroot.crypto import PublicKey
from ironroot.ear import NonceStore
from ironroot.errors import Conflict, HsmErrorState, HsmZeroized, LimitExceeded, MalformedInput
from ironroot.hsm._approvals import Grant
from ironroot.hsm._audit import ZERO_HASH, ReleaseBinding
from ironroot.hsm._document import IdentityRecord, KeyRecord
from ironroot.hsm._material import KeyObject
from ironroot.hsm._model import DEFAULT_AUDIT_SEGMENT, HsmConfig, Role
from ironroot.hsm._release import TrustedVerifier
from ironroot.hsm._release_policy import PolicyCache
from ironroot.hsm._selftest import (
    DEFAULT_KATS,
    Kat,
    SelfTestFailure,
    pairwise_consistency,
    run_kats,
)
from ironroot.hsm._storage import HsmStorage, check_secret

__all__ = ["CommitBudget", "HsmState", "OwedRefusals", "PendingRecord"]

# id(storage) -> the HSM object that holds it (a holder keeps its storage alive, so the id is
# not reused while the holder lives).
_HOLDERS: dict[int, weakref.ref[HsmState]] = {}
_HOLDERS_LOCK = threading.Lock()


class CommitBudget:
    """A token bucket of commits (``HsmConfig.refusal_commit_rate`` a second, up to
    ``refusal_commit_burst``), on the monotonic clock of this process: the HSM's own clock
    may stand still or jump, and the budget is real time waited. Used under the HSM's lock."""

    __slots__ = ("_burst", "_clock", "_rate", "_tokens", "_when")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = float(rate)
        self._burst = float(burst)
        self._clock = clock
        self._tokens = self._burst
        self._when = clock()

    def take(self) -> float:
        """Spend one commit and return 0, or return the seconds until one is there (nothing
        is spent)."""
        now = self._clock()
        if now > self._when:
            self._tokens = min(self._burst, self._tokens + (now - self._when) * self._rate)
        self._when = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


class OwedRefusals:
    """Records of refusals a thread's operations left waiting for the refusal budget
    (``AuditBuffer.owing_refusals``): durable once the log is durable up to ``ticket``
    (0: none owed); ``wake`` is called when a commit made them so."""

    __slots__ = ("ticket", "wake")

    def __init__(self, wake: Callable[[], None] | None) -> None:
        self.ticket = 0
        self.wake = wake


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """An audit record waiting in memory for its group commit (``_audit_buffer``)."""

    time: int
    identity: str
    operation: str
    key: str | None
    result: str
    release: ReleaseBinding | None = None


class HsmState:
    """What every room of the boundary reads and writes (one object: ``Hsm``)."""

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
        """Power up: run the KATs (a failure is the error state). Use :meth:`Hsm.initialize`
        or :meth:`Hsm.open`, which call this."""
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
        # token -> (identity, role, approvers): the approving officers of a dual-control login
        self._sessions: dict[bytes, tuple[str, Role, tuple[str, ...]]] = {}
        # token -> the approvals of one operation each that session holds, unused (_approvals)
        self._grants: dict[bytes, list[Grant]] = {}
        # token -> what its approvals ran (operation, target, digest): a reuse is named so
        self._consumed: dict[bytes, list[tuple[str, str | None, bytes]]] = {}
        self._spent_logins: set[bytes] = set()  # sessions whose login's approval ran its one
        self._quorum = 1  # crypto officers a dual-control operation needs (sealed in the store)
        self._prior_quorum = 1  # a zeroized predecessor's quorum: its records are not pruned
        self._attestation: KeyRecord | None = None
        self._chain: tuple[bytes, ...] = ()
        self._pending: list[PendingRecord] = []
        # group commit (``_audit_buffer``): a commit whose writes run outside the lock, how
        # many records are durable and anchored, and the records a thread's operation owes
        self._durable = threading.Condition(threading.Lock())
        self._in_flight = False
        self._durable_to = 0
        self._owed = threading.local()
        self._owing: set[OwedRefusals] = set()  # owed records' callers to wake (_audit_buffer)
        # the log size a record that must not wait for the refusal budget needs durable (a
        # grant), and the budget of commits that carry only refusals (``_audit_buffer``)
        self._urgent_to = 0
        self._refusal_budget = CommitBudget(config.refusal_commit_rate, config.refusal_commit_burst)
        self._audit_size = 0
        self._audit_head = ZERO_HASH
        self._audit_key = bytearray()
        self._audit_from = 0
        self._audit_base = 0  # the seq of the live log's first record (rotation)
        self._audit_base_head = ZERO_HASH  # its prev: the hash of the last archived record
        # records per archived segment: the configuration's, else the one the store seals
        self._audit_segment = config.audit_segment_records or DEFAULT_AUDIT_SEGMENT
        self._generation = 0  # the root-of-trust counter value of the last commit
        self._store_generation = 0
        self._verifiers: dict[str, tuple[TrustedVerifier, bytes]] = {}  # name -> (it, SPKI)
        self._recipients: dict[str, bytes] = {}  # approved wrap recipients: name -> SPKI DER
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
            self._enter_error(str(exc))

    def _claim_storage(self) -> None:
        """Hold this object's storage; ``Conflict`` if another operational HSM object of this
        process holds it (an HSM object in its error state or zeroized commits nothing more,
        so a restart or a new HSM may take its storage)."""
        key = id(self._storage)
        with _HOLDERS_LOCK:
            held = _HOLDERS.get(key)
            holder = held() if held is not None else None
            if holder is self:
                return
            if (
                holder is not None
                and holder._storage is self._storage
                and holder._state == "operational"
            ):
                raise Conflict(
                    "this storage is open in another HSM object of this process: two would "
                    "race the root of trust's counter; close the other one first (Hsm.close)"
                )
            _HOLDERS[key] = weakref.ref(self)

    def _release_storage(self) -> None:
        """Let another HSM object of this process open this storage."""
        key = id(self._storage)
        with _HOLDERS_LOCK:
            held = _HOLDERS.get(key)
            if held is not None and held() is self:
                del _HOLDERS[key]

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
    def store_generation(self) -> int:
        """The generation of the sealed key store last written (not secret): it changes
        whenever keys, identities or installed verifiers change, and only then — what a
        reader outside the boundary may key a cache of such facts by."""
        return self._store_generation

    @property
    def officer_quorum(self) -> int:
        """The crypto officers a dual-control operation needs, sealed in the store (1: each
        acts alone; ``Hsm.set_officer_quorum``)."""
        self._check_state()
        return self._quorum

    @property
    def audit_segment_records(self) -> int:
        """How many records the live audit log holds before it is archived as a segment: the
        HSM's own setting, sealed in its store (``HsmConfig.audit_segment_records``)."""
        self._check_state()
        return self._audit_segment

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

    def _check_state(self) -> None:
        if self._state == "zeroized":
            raise HsmZeroized("the HSM was zeroized: no key material is left")
        if self._state != "operational":
            raise HsmErrorState(f"the HSM is in its error state ({self._error}); restart it")

    def _check_data(self, data: object, what: str = "data") -> bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedInput(f"{what} must be bytes")
        if len(data) > self._config.max_data:
            raise LimitExceeded(f"{what} is over {self._config.max_data} bytes")
        return bytes(data)

    def _enter_error(self, reason: str) -> None:
        """Enter the error state: nothing more is done until a restart."""
        self._state = "error"
        self._error = reason
        self._sessions.clear()

    def __repr__(self) -> str:
        ident = self._hsm_id.hex()[:16] if self._hsm_id else "-"
        return f"Hsm(id={ident}, state={self._state}, keys={len(self._keys)})"
