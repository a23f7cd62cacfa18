"""Failed logins per client address (and per account name) in a sliding window, bounded.

:class:`LoginThrottle` is what every Ironroot login that anyone may send puts in front of its
password check: the dashboard's login form and the platform's Redfish service (session logins
and HTTP Basic requests). ``max_failures`` failed logins from one client address within
``window`` seconds answer :class:`~ironroot.errors.TooManyAttempts` (HTTP ``429`` with
``Retry-After``: the seconds until the oldest of them leaves the window) to every login from
that address, before any password is hashed: no CPU or memory is spent on a guesser, and the
answer does not depend on the password. An address counts as every per-client limit counts it
(:func:`ironroot._netaddr.client_key`: an IPv6 one as its /64). A login still being checked
counts as a failure until it is over, so logins sent at once cannot make more guesses than
``max_failures``. Optionally (:meth:`LoginThrottle.begin_account`, the dashboard) an account
name is refused from every address while ``4 * max_failures`` failures for it fall within
the window.

Memory is bounded whatever an attacker sends: at most ``max_clients`` addresses (and as many
account names) are remembered, the least recently failing forgotten first, and each holds at
most ``max_failures`` times. An attacker who rotates addresses or names therefore makes the
throttle forget the oldest of them (each forgotten one may guess again), never grow; but a
key refused now is never forgotten (names typed by the thousand do not give an account held
back its guesses again), and those kept past the bound leave with the window.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ironroot._netaddr import client_key
from ironroot.errors import TooManyAttempts

__all__ = ["MAX_CLIENTS", "LoginAttempt", "LoginThrottle"]

MAX_CLIENTS: Final = 10_000
"""The most client addresses (and, separately, account names) a throttle remembers."""


@dataclass(slots=True)
class LoginAttempt:
    """One login in flight (:meth:`LoginThrottle.begin`): mark it ``failed`` when it was."""

    client: str
    failed: bool = False
    account: str | None = None


class _Window:
    """Failures per key (a client address, or an account name) in a sliding window, and the
    logins in flight for each, refused at ``limit`` (``what``: whose, for the refusal)."""

    def __init__(
        self, limit: int, window: int, what: str, max_keys: int, attempts: str = "failed logins"
    ) -> None:
        self.limit = limit
        self.window = window
        self._what = what
        self._attempts = attempts
        self._max_keys = max_keys
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )
        self._in_flight: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self._failures)

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        times = self._failures.get(key)
        if times is None:
            return collections.deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def refuse_if_full(self, key: str, now: float) -> None:
        if self.limit <= 0:  # no limit
            return
        times = self._recent(key, now)
        if len(times) + self._in_flight[key] >= self.limit:
            # with only logins in flight, the next answer is a moment away
            wait = int(self.window - (now - times[0])) + 1 if times else 1
            raise TooManyAttempts(
                f"too many {self._attempts} {self._what}: try again in {wait} s",
                retry_after=wait,
            )

    def begin(self, key: str) -> None:
        self._in_flight[key] += 1

    def end(self, key: str) -> None:
        self._in_flight[key] -= 1
        if self._in_flight[key] <= 0:
            del self._in_flight[key]

    def failed(self, key: str, now: float) -> None:
        if self.limit <= 0:  # nothing is refused, so nothing need be remembered
            return
        times = self._recent(key, now)
        times.append(now)
        while len(times) > self.limit:  # the newest ``limit`` say as much as all of them
            times.popleft()
        self._failures[key] = times
        self._failures.move_to_end(key)
        if len(self._failures) > self._max_keys:
            self._forget(now)

    def _forget(self, now: float) -> None:
        """Past ``max_keys`` keys, forget those whose latest failure is oldest, but never one
        refused now: failures typed for other names (as many as an attacker has addresses)
        must not give an account held back its guesses again. The keys kept past the bound
        each hold ``limit`` failures within the window, so they are bounded by the failures
        the addresses' limit lets through, and leave with the window."""
        for key in list(self._failures):
            if len(self._failures) <= self._max_keys:
                return
            if len(self._recent(key, now)) < self.limit:  # gone already if none is recent
                self._failures.pop(key, None)


class LoginThrottle:
    """Failed logins per client address and per account name in a sliding window (module
    docs). ``max_failures`` of ``0`` throttles nothing.

    A login counts against its address from :meth:`begin` to :meth:`end`, as if it had
    failed: a burst of logins sent at once, each waiting for its scrypt check, cannot all
    pass the check before the first failure is counted."""

    def __init__(
        self,
        max_failures: int,
        window: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
        attempts: str = "failed logins",
    ) -> None:
        """``attempts`` names what is counted in the refusal's detail (the key release
        service counts refused requests with this class)."""
        self._clock = clock
        self._lock = threading.Lock()
        self._addresses = _Window(max_failures, window, "from this address", max_clients, attempts)
        self._accounts = _Window(
            4 * max_failures, window, "for this account", max_clients, attempts
        )

    @property
    def max_failures(self) -> int:
        return self._addresses.limit

    @property
    def max_account_failures(self) -> int:
        return self._accounts.limit

    @property
    def window(self) -> int:
        return self._addresses.window

    def reconfigure(self, max_failures: int, window: int) -> None:
        """Hold logins to ``max_failures`` in ``window`` seconds from now on (the failures
        already counted stay)."""
        with self._lock:
            self._addresses.limit, self._addresses.window = max_failures, window
            self._accounts.limit, self._accounts.window = 4 * max_failures, window

    @property
    def tracked(self) -> int:
        """How many addresses and account names the throttle remembers (at most
        ``max_clients`` of each)."""
        with self._lock:
            return len(self._addresses) + len(self._accounts)

    def check(self, client: str) -> None:
        """``TooManyAttempts`` while ``client`` has ``max_failures`` recent failures (logins
        in flight counted as failures)."""
        client = client_key(client)
        with self._lock:
            self._addresses.refuse_if_full(client, self._clock())

    def begin(self, client: str) -> LoginAttempt:
        """A login from ``client``, counted until :meth:`end`; ``TooManyAttempts`` as
        :meth:`check`."""
        client = client_key(client)
        with self._lock:
            self._addresses.refuse_if_full(client, self._clock())
            self._addresses.begin(client)
        return LoginAttempt(client)

    def begin_account(self, attempt: LoginAttempt, account: str) -> None:
        """``attempt`` is for ``account``, counted against it until :meth:`end` too;
        ``TooManyAttempts`` while the account has ``max_account_failures`` recent failures
        (from any address) and logins in flight."""
        with self._lock:
            self._accounts.refuse_if_full(account, self._clock())
            self._accounts.begin(account)
            attempt.account = account

    def end(self, attempt: LoginAttempt) -> None:
        """The login is over: a failure when ``attempt.failed``, nothing otherwise."""
        with self._lock:
            now = self._clock()
            self._addresses.end(attempt.client)
            if attempt.failed:
                self._addresses.failed(attempt.client, now)
            if attempt.account is not None:
                self._accounts.end(attempt.account)
                if attempt.failed:
                    self._accounts.failed(attempt.account, now)

    def failed(self, client: str) -> None:
        client = client_key(client)
        with self._lock:
            self._addresses.failed(client, self._clock())
