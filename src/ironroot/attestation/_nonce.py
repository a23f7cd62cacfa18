"""Challenges: random, single-use nonces that expire, held in bounded memory.

:meth:`NonceStore.issue` makes a 32-byte nonce from the operating system's CSPRNG and
remembers when it expires; :meth:`NonceStore.redeem` accepts it once. A nonce that was never
issued (or was pushed out), one that expired and one already redeemed each raise
``StaleNonce`` with its own code (``nonce-unknown``, ``nonce-expired``, ``nonce-reused``): a
400 problem over HTTP. At most ``max_outstanding`` nonces wait at once; issuing one more
forgets the oldest, so memory stays bounded under any load. Redeemed nonces are remembered
(bounded likewise) until they would have expired, so that a replay is named as such.

The store holds no clock: callers pass ``now`` (the HTTP layer reads the clock). It is safe to
share between threads.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any, Final

from ironroot.errors import ConfigError, MalformedInput, StaleNonce

__all__ = ["NONCE_SIZE", "NonceStore"]

NONCE_SIZE: Final = 32


def _seconds(now: datetime) -> float:
    if now.tzinfo is None:
        raise MalformedInput("now must be timezone-aware")
    return now.timestamp()


class NonceStore:
    """Outstanding challenges (see the module documentation)."""

    __slots__ = ("_lifetime", "_lock", "_max", "_outstanding", "_spent")

    def __init__(self, *, lifetime: int = 300, max_outstanding: int = 100_000) -> None:
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
            raise ConfigError("a nonce lifetime is a positive number of seconds")
        if isinstance(max_outstanding, bool) or not isinstance(max_outstanding, int):
            raise ConfigError("max_outstanding must be an integer")
        if max_outstanding < 1:
            raise ConfigError("max_outstanding must be positive")
        self._lifetime = lifetime
        self._max = max_outstanding
        self._outstanding: OrderedDict[bytes, float] = OrderedDict()
        self._spent: OrderedDict[bytes, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def lifetime(self) -> int:
        return self._lifetime

    def __len__(self) -> int:
        return len(self._outstanding)

    def _prune(self, t: float) -> None:
        while self._outstanding:
            nonce, expires = next(iter(self._outstanding.items()))
            if expires > t:
                break
            self._outstanding.popitem(last=False)
            self._spent[nonce] = ("expired", expires + self._lifetime)
        self._trim(self._spent)
        while self._spent:
            _, (_, forget_at) = next(iter(self._spent.items()))
            if forget_at > t:
                break
            self._spent.popitem(last=False)

    def _trim(self, table: OrderedDict[bytes, Any]) -> None:
        while len(table) > self._max:
            table.popitem(last=False)

    def issue(self, now: datetime) -> tuple[bytes, int]:
        """A new nonce and the time (epoch seconds) it expires."""
        t = _seconds(now)
        nonce = secrets.token_bytes(NONCE_SIZE)
        expires = t + self._lifetime
        with self._lock:
            self._prune(t)
            self._outstanding[nonce] = expires
            self._trim(self._outstanding)
        return nonce, int(expires)

    def redeem(self, nonce: bytes, now: datetime) -> None:
        """Accept ``nonce`` once, before it expires; raise ``StaleNonce`` otherwise."""
        t = _seconds(now)
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
            raise StaleNonce(
                f"a challenge nonce is {NONCE_SIZE} bytes from /attestation/challenge",
                code="nonce-unknown",
            )
        with self._lock:
            self._prune(t)
            expires = self._outstanding.pop(nonce, None)
            if expires is not None:
                self._spent[nonce] = ("reused", expires + self._lifetime)
                self._trim(self._spent)
                return
            state = self._spent.get(nonce)
        if state is None:
            raise StaleNonce("this verifier did not issue that nonce", code="nonce-unknown")
        if state[0] == "expired":
            raise StaleNonce("the nonce has expired: ask for a new challenge", code="nonce-expired")
        raise StaleNonce("the nonce was already used: ask for a new challenge", code="nonce-reused")
