"""The login throttle every login anyone may send sits behind (the dashboard's, Redfish's):
bounded in memory however many addresses or account names an attacker rotates through."""

from __future__ import annotations

import pytest

from ironroot.errors import TooManyAttempts
from ironroot.http import LoginThrottle


def _refused(throttle: LoginThrottle, client: str) -> TooManyAttempts:
    with pytest.raises(TooManyAttempts) as refused:
        throttle.begin(client)
    assert type(refused.value) is TooManyAttempts
    assert refused.value.code == "too-many-attempts"
    assert refused.value.http_status == 429
    return refused.value


def _fail(throttle: LoginThrottle, client: str, account: str | None = None) -> None:
    attempt = throttle.begin(client)
    if account is not None:
        throttle.begin_account(attempt, account)
    attempt.failed = True
    throttle.end(attempt)


def test_rotating_addresses_or_names_cannot_grow_the_throttle() -> None:
    throttle = LoginThrottle(3, 60, clock=lambda: 0.0, max_clients=16)
    for n in range(1000):
        _fail(throttle, f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", account=f"name{n}")
        assert throttle.tracked <= 32  # 16 addresses and 16 names
    assert throttle.tracked == 32
    for _ in range(3):
        _fail(throttle, "192.0.2.1")
    assert _refused(throttle, "192.0.2.1").retry_after == 61


def test_one_address_holds_at_most_max_failures_times() -> None:
    """A caller that reports failures without ``begin`` (the dashboard's refused forms) grew
    one address's list without end; the newest ``max_failures`` decide the answer alone."""
    now = [0.0]
    throttle = LoginThrottle(3, 60, clock=lambda: now[0])
    for _ in range(10_000):
        throttle.failed("192.0.2.1")
        now[0] += 0.001
    # the oldest of the newest three failed 3 ms ago: it leaves the window in 59.997 s
    assert _refused(throttle, "192.0.2.1").retry_after == 60
    now[0] += 60
    throttle.begin("192.0.2.1")


def test_a_limit_of_zero_throttles_nothing_and_a_new_limit_applies_at_once() -> None:
    throttle = LoginThrottle(0, 60, clock=lambda: 0.0)
    for _ in range(50):
        _fail(throttle, "192.0.2.1")
    assert throttle.tracked == 0
    throttle.reconfigure(2, 30)
    _fail(throttle, "192.0.2.1")
    _fail(throttle, "192.0.2.1")
    assert _refused(throttle, "192.0.2.1").retry_after == 31
    throttle.begin("192.0.2.2")  # another address is not held back
