"""``[challenges] rate`` is a finite number per second: with ``nan`` (valid TOML) the token
bucket's refill ``min(burst, tokens + elapsed * nan)`` is ``burst`` every time, so one client
could take challenges as fast as it asks — the per-client rate limit off without a word. ``nan``
and ``inf`` are ``ConfigError`` (exit 2) in the verifier's and the key service's files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ironroot.attestation import ChallengeLimits, NonceStore
from ironroot.errors import ConfigError, Overloaded
from ironroot.keyrelease import load_keyrelease_config

_HSM = (
    '[keyrelease.hsm]\ndir = "hsm"\nrot_device = "rot"\nsealing_secret_file = "s"\n'
    'identity = "kr"\ncredential_file = "c"\n'
)


@pytest.mark.parametrize("rate", [float("nan"), float("inf")])
def test_a_rate_that_is_not_finite_is_refused(rate: float) -> None:
    with pytest.raises(ConfigError) as caught:
        ChallengeLimits.from_table({"rate": rate})
    assert caught.value.detail == "challenges.rate must be a positive number per second"
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"rate": 10**400}, "challenges.rate must be a positive number per second"),
        ({"burst": 10**400}, "challenges.burst must be a positive integer of at most 2**53"),
    ],
    ids=["rate", "burst"],
)
def test_a_rate_or_burst_past_a_double_is_refused(table: dict[str, object], message: str) -> None:
    """An integer past a double's range passed ``0 < rate < inf``, and the first challenge
    asked for then failed with ``OverflowError`` (the bucket's float arithmetic), every one
    after it too: the challenge endpoint down, from a valid-looking file."""
    with pytest.raises(ConfigError) as caught:
        ChallengeLimits.from_table(table)
    assert type(caught.value) is ConfigError
    assert caught.value.detail == message


def test_the_key_service_refuses_a_nan_rate_in_its_file(tmp_path: Path) -> None:
    (tmp_path / "keyrelease.toml").write_text(f"[keyrelease]\n{_HSM}[challenges]\nrate = nan\n")
    with pytest.raises(ConfigError) as caught:
        load_keyrelease_config(tmp_path)
    path = tmp_path / "keyrelease.toml"
    assert caught.value.detail == f"{path}: challenges.rate must be a positive number per second"


def test_a_finite_rate_still_limits() -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    store = NonceStore(limits=ChallengeLimits.from_table({"rate": 0.5, "burst": 1}))
    store.issue(now, "c")
    with pytest.raises(Overloaded) as caught:
        store.issue(now + dt.timedelta(seconds=1), "c")
    assert caught.value.code == "challenge-rate"
