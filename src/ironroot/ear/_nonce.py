"""Challenges: random, single-use nonces that expire, held in bounded memory, shared fairly.

:meth:`NonceStore.issue` makes a 32-byte nonce from the operating system's CSPRNG and
remembers when it expires, and what the caller bound it to (``bound``: e.g. the node a
challenge was asked for); :meth:`NonceStore.redeem` accepts it once and returns that value,
for the caller to check against what the answer claims. A nonce that was never
issued, one that expired and one already redeemed each raise ``StaleNonce`` with its own code
(``nonce-unknown``, ``nonce-expired``, ``nonce-reused``): a 400 problem over HTTP.

The challenge endpoints are unauthenticated, so the store must not let one client spend what
another needs. It refuses to issue, with ``Overloaded`` (503 over HTTP, ``Retry-After`` the
seconds until the refusal would lift) naming the service:

* ``challenge-rate``: the client asks faster than its token bucket refills (``burst`` at once,
  then ``rate`` per second);
* ``challenge-client-limit``: the client already holds ``per_client`` unexpired nonces;
* ``challenges-full``: ``max_outstanding`` nonces are unexpired in all **and** the client holds
  at least as many of them as any other client: it holds its fair share already.

When ``max_outstanding`` nonces are unexpired and a client holding fewer than some other
client asks, that other client — the one holding the most (of those holding the most, the one
that has held that many longest) — loses its oldest unused nonce to it. So many addresses,
each within ``per_client``, cannot lock the others out: a client holding nothing gets a nonce
whenever the store is full, and the table never holds more than ``max_outstanding``. An
evicted nonce is forgotten, as after a restart: redeemed, it is ``nonce-unknown``.

A client is whatever the caller names (the HTTP layer passes the peer address), counted
under :func:`ironroot._netaddr.client_key`: an IPv6 address as its /64, which one host holds
whole and could otherwise rotate through for a fresh quota per address; an IPv4-mapped one as
its IPv4 address. Redeemed and
expired nonces are remembered (bounded) until they would have expired, so that a replay is
named as such; forgetting one early only changes the error code to ``nonce-unknown``.

The store lives in memory only: a process that restarts (or is killed) forgets every nonce,
and refuses each one issued before, redeemed or not, as ``nonce-unknown`` — never accepts it.

The store holds no clock: callers pass ``now`` (the HTTP layer reads the clock). It is safe to
share between threads.
"""

from __future__ import annotations

import math
import secrets
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ironroot._netaddr import client_key
from ironroot.errors import ConfigError, MalformedInput, Overloaded, StaleNonce

__all__ = ["NONCE_SIZE", "ChallengeLimits", "NonceStore"]

NONCE_SIZE: Final = 32
_MAX_BURST: Final = 2**53  # exactly a double
_ANONYMOUS: Final = "-"


def _seconds(now: datetime) -> float:
    if now.tzinfo is None:
        raise MalformedInput("now must be timezone-aware")
    return now.timestamp()


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer")
    return value


@dataclass(frozen=True, slots=True)
class ChallengeLimits:
    """How many challenges a service holds, and how fast one client may ask for them."""

    max_outstanding: int = 100_000
    per_client: int = 64
    rate: float = 10.0
    burst: int = 32

    def __post_init__(self) -> None:
        _positive_int(self.max_outstanding, "challenges.max_outstanding")
        _positive_int(self.per_client, "challenges.per_client")
        # The token bucket counts in floats: an integer past a double would pass here and
        # then fail every challenge asked for with OverflowError.
        if _positive_int(self.burst, "challenges.burst") > _MAX_BURST:
            raise ConfigError("challenges.burst must be a positive integer of at most 2**53")
        rate = self.rate  # not nan (no comparison holds: the bucket would stay full) nor inf
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf:
            raise ConfigError("challenges.rate must be a positive number per second")
        if isinstance(rate, int) and rate > sys.float_info.max:
            raise ConfigError("challenges.rate must be a positive number per second")

    @classmethod
    def from_table(cls, table: object, where: str = "[challenges]") -> ChallengeLimits:
        """Limits from a configuration table; absent keys keep their defaults."""
        if table is None:
            return cls()
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = sorted(set(table) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}")
        return cls(**table)


class NonceStore:
    """Outstanding challenges (see the module documentation)."""

    __slots__ = (
        "_buckets",
        "_by_client",
        "_lifetime",
        "_limits",
        "_lock",
        "_outstanding",
        "_service",
        "_spent",
        "_tiers",
        "_top",
    )

    def __init__(
        self,
        *,
        lifetime: int = 300,
        max_outstanding: int | None = None,
        limits: ChallengeLimits | None = None,
        service: str = "attestation verifier",
    ) -> None:
        _positive_int(lifetime, "a nonce lifetime (seconds)")
        limits = limits or ChallengeLimits()
        if max_outstanding is not None:
            limits = ChallengeLimits(
                max_outstanding=_positive_int(max_outstanding, "max_outstanding"),
                per_client=min(limits.per_client, max_outstanding),
                rate=limits.rate,
                burst=limits.burst,
            )
        self._lifetime = lifetime
        self._limits = limits
        self._service = service
        # nonce -> (expiry, client, bound); insertion order is expiry order (one lifetime)
        self._outstanding: OrderedDict[bytes, tuple[float, str, object]] = OrderedDict()
        self._by_client: dict[str, OrderedDict[bytes, float]] = {}
        # how many nonces -> the clients holding that many, in the order they came to; _top
        # is the most any client holds (0: none), so the greediest client is found in O(1)
        self._tiers: dict[int, dict[str, None]] = {}
        self._top = 0
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._spent: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def lifetime(self) -> int:
        return self._lifetime

    @property
    def limits(self) -> ChallengeLimits:
        return self._limits

    def __len__(self) -> int:
        return len(self._outstanding)

    # --- bookkeeping ---------------------------------------------------------------------

    def _move(self, client: str, count: int, to: int) -> None:
        """Move ``client`` from the tier of ``count`` nonces to that of ``to`` (one more or
        one fewer)."""
        if count:
            tier = self._tiers[count]
            del tier[client]
            if not tier:
                del self._tiers[count]
                if self._top == count and to < count:
                    self._top = to  # it moved to ``to``, which is not empty now (or 0)
        if to:
            self._tiers.setdefault(to, {})[client] = None
            self._top = max(self._top, to)

    def _hold(self, nonce: bytes, client: str, expires: float) -> None:
        held = self._by_client.setdefault(client, OrderedDict())
        held[nonce] = expires
        self._move(client, len(held) - 1, len(held))

    def _forget(self, nonce: bytes, client: str) -> None:
        held = self._by_client.get(client)
        if held is not None and held.pop(nonce, None) is not None:
            self._move(client, len(held) + 1, len(held))
            if not held:
                del self._by_client[client]

    def _evict_for(self, client: str) -> bool:
        """Free a slot for ``client`` in a full store: drop the oldest unused nonce of the
        client holding the most, when that is more than ``client`` holds; ``False`` when no
        client holds more (``client`` holds its fair share)."""
        held = self._by_client.get(client)
        if self._top <= (len(held) if held is not None else 0):
            return False
        greedy = next(iter(self._tiers[self._top]))
        nonce = next(iter(self._by_client[greedy]))
        del self._outstanding[nonce]
        self._forget(nonce, greedy)
        return True

    def _prune(self, t: float) -> None:
        while self._outstanding:
            nonce, (expires, client, _) = next(iter(self._outstanding.items()))
            if expires > t:
                break
            self._outstanding.popitem(last=False)
            self._forget(nonce, client)
            self._remember(nonce, "expired", expires + self._lifetime)
        while self._spent:
            _, (_, forget_at) = next(iter(self._spent.items()))
            if forget_at > t:
                break
            self._spent.popitem(last=False)
        if len(self._buckets) > self._limits.max_outstanding:
            # a full bucket carries no information: drop those, keep the ones still refilling
            full = [c for c, _ in self._buckets.items() if self._tokens(c, t) >= self._limits.burst]
            for client in full:
                del self._buckets[client]

    def _remember(self, nonce: bytes, state: str, forget_at: float) -> None:
        self._spent[nonce] = (state, forget_at)
        while len(self._spent) > self._limits.max_outstanding:
            self._spent.popitem(last=False)

    def _tokens(self, client: str, t: float) -> float:
        tokens, at = self._buckets.get(client, (float(self._limits.burst), t))
        # a wall clock that stepped back refills nothing, and takes nothing either
        return min(float(self._limits.burst), tokens + max(0.0, t - at) * self._limits.rate)

    def _refuse(self, code: str, why: str, wait: float) -> Overloaded:
        seconds = max(1, math.ceil(wait))
        return Overloaded(
            f"the {self._service} {why}; retry in {seconds} s", code=code, retry_after=seconds
        )

    # --- the API -------------------------------------------------------------------------

    def issue(
        self, now: datetime, client: str | None = None, *, bound: object = None
    ) -> tuple[bytes, int]:
        """A new nonce for ``client`` and the time (epoch seconds) it expires; ``bound`` is
        kept with it and returned by :meth:`redeem`.

        ``Overloaded`` (codes ``challenge-rate``, ``challenge-client-limit``,
        ``challenges-full``) when issuing would exceed a limit. In a full store, the oldest
        nonce of the client holding the most is evicted for a client holding fewer
        (module docs).
        """
        t = _seconds(now)
        who = client_key(client) if client else _ANONYMOUS
        limits = self._limits
        with self._lock:
            self._prune(t)
            tokens = self._tokens(who, t)
            if tokens < 1.0:
                raise self._refuse(
                    "challenge-rate",
                    f"issues at most {limits.rate:g} challenges per second to one client",
                    (1.0 - tokens) / limits.rate,
                )
            held = self._by_client.get(who)
            if held is not None and len(held) >= limits.per_client:
                raise self._refuse(
                    "challenge-client-limit",
                    f"holds {limits.per_client} unused challenges for this client already",
                    next(iter(held.values())) - t,
                )
            if len(self._outstanding) >= limits.max_outstanding and not self._evict_for(who):
                first_expiry = next(iter(self._outstanding.values()))[0]
                raise self._refuse(
                    "challenges-full",
                    f"holds {limits.max_outstanding} unused challenges, as many of them for "
                    "this client as for any other",
                    first_expiry - t,
                )
            nonce = secrets.token_bytes(NONCE_SIZE)
            expires = t + self._lifetime
            self._buckets[who] = (tokens - 1.0, t)
            self._outstanding[nonce] = (expires, who, bound)
            self._hold(nonce, who, expires)
        return nonce, int(expires)

    def redeem(self, nonce: bytes, now: datetime) -> object:
        """Accept ``nonce`` once, before it expires, returning what it was issued bound to
        (:meth:`issue`); raise ``StaleNonce`` otherwise. The expiry is checked on the nonce
        itself, not only by pruning: after the wall clock stepped back, a later nonce can
        expire before an earlier one."""
        t = _seconds(now)
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
            raise StaleNonce(
                f"a challenge nonce is {NONCE_SIZE} bytes, as the {self._service} issues them",
                code="nonce-unknown",
            )
        with self._lock:
            self._prune(t)
            entry = self._outstanding.pop(nonce, None)
            if entry is not None:
                expires, client, bound = entry
                self._forget(nonce, client)
                # pruning stops at the first unexpired nonce: one issued after the wall clock
                # stepped back sits behind it, expired, and is refused here
                expired = expires <= t
                self._remember(nonce, "expired" if expired else "reused", expires + self._lifetime)
                if not expired:
                    return bound
            state = self._spent.get(nonce)
        if state is None:
            raise StaleNonce(f"this {self._service} did not issue that nonce", code="nonce-unknown")
        if state[0] == "expired":
            raise StaleNonce("the nonce has expired: ask for a new challenge", code="nonce-expired")
        raise StaleNonce("the nonce was already used: ask for a new challenge", code="nonce-reused")
