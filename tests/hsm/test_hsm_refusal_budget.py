"""A refusal flood from many clients costs a bounded number of counter increments a second.

Every refusal of ``release`` and ``release_challenge`` is durable and anchored before it is
answered, and each anchor increments the root of trust's monotonic counter. Group commit
(``test_hsm_refusal_group_commit.py``) shares one commit among the refusals that arrive
together, and the key service holds each client address to 32 refusals a minute; but many
addresses refused one after another still drove one commit after another, as fast as the
storage committed (about 300 a second on a disk, more on a fast one): the counter's wear was
bounded by the disk, not by the HSM. The HSM now holds the commits that carry refusals only to
a global budget (``HsmConfig.refusal_commit_rate`` a second after a burst of
``refusal_commit_burst``): a refusal past it waits, still unanswered, for the next commit,
which carries every refusal queued meanwhile. A commit that carries a grant (a release, an
issued challenge's full group) is never held: it goes at once and carries the waiting
refusals with it.
"""

from __future__ import annotations

import secrets
import threading
import time

import pytest
from _hsm_helpers import SECRET, USER, USER_PASS, DeviceChain, new_hsm, sessions
from test_hsm_release import World, ear

from ironroot.ear import ChallengeLimits
from ironroot.errors import ConfigError, Overloaded, StaleNonce
from ironroot.hsm import HsmConfig, MemoryStorage, parse_audit_log
from ironroot.hsm._anchor import open_anchor

FLOOD = 1.5
"""Seconds the flood lasts."""
CLIENTS = 16
"""Threads, each a client address of its own, each sending a refused request after another."""
DEADLINE = 60.0


def _world(device: DeviceChain, storage: MemoryStorage, **budget: float) -> World:
    config = HsmConfig(
        scrypt_n=2**10,
        release_challenges=ChallengeLimits(burst=1, per_client=64, rate=0.001),
        **budget,  # type: ignore[arg-type]
    )
    hsm = new_hsm(device.identity, storage, config=config)
    return World(hsm, sessions(hsm))


def _flood(world: World, seconds: float, refused: list[BaseException]) -> list[threading.Thread]:
    """``CLIENTS`` threads refused over and over for ``seconds``: even ones release on made-up
    nonces, odd ones ask for challenges past their burst (a client address each)."""
    end = time.monotonic() + seconds

    def client(index: int) -> None:
        address = f"198.51.100.{index}"
        if index % 2:
            world.hsm.release_challenge(world.user, address)  # the burst of 1
        while time.monotonic() < end:
            try:
                if index % 2:
                    world.hsm.release_challenge(world.user, address)
                else:
                    world.release(b"not an EAR", secrets.token_bytes(32))
            except (StaleNonce, Overloaded) as exc:
                refused.append(exc)
            else:
                raise AssertionError("a flood request was not refused")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    return threads


def test_a_flood_from_many_clients_costs_at_most_the_budget_of_counter_increments(
    device: DeviceChain,
) -> None:
    storage = MemoryStorage()
    world = _world(device, storage, refusal_commit_rate=4.0, refusal_commit_burst=2)
    refused: list[BaseException] = []
    before = storage.counter.value()
    started = time.monotonic()
    threads = _flood(world, FLOOD, refused)
    for thread in threads:
        thread.join(DEADLINE)
        assert not thread.is_alive()
    elapsed = time.monotonic() - started
    increments = storage.counter.value() - before
    # the odd clients' first challenges (granted, not durable at once) cost nothing more;
    # the budget: the burst, then 4 a second
    assert len(refused) > increments
    assert increments <= 2 + 4.0 * elapsed + 1
    # every refusal is in the log, under the anchor, and the chain holds
    anchor = open_anchor(SECRET, storage.read_anchor() or b"")
    records = parse_audit_log(storage.read_audit())
    assert anchor.audit_size == records[-1].seq + 1
    refusals = [r for r in records if r.result in ("nonce-unknown", "challenge-rate")]
    assert len(refusals) == len(refused)


def test_a_release_during_a_flood_is_not_held_by_the_budget(device: DeviceChain) -> None:
    """With a budget of one refusal commit every 5 seconds, a release granted during the
    flood is answered at once (its commit is not held) and is durable when answered; the
    refusals waiting then are answered with it."""
    storage = MemoryStorage()
    world = _world(device, storage, refusal_commit_rate=0.2, refusal_commit_burst=1)
    refused: list[BaseException] = []
    threads = _flood(world, 0.5, refused)
    time.sleep(0.2)  # the burst spent: refusals are waiting for the next commit
    nonce, _ = world.hsm.release_challenge(world.user)
    started = time.monotonic()
    world.release(ear(world.verifier, nonce, world.tee), nonce)
    took = time.monotonic() - started
    assert took < 2.0  # not the 5 s a refusal commit waits
    anchor = open_anchor(SECRET, storage.read_anchor() or b"")
    records = parse_audit_log(storage.read_audit())
    granted = [r for r in records if r.operation == "release" and r.result == "ok"]
    assert len(granted) == 1
    assert granted[0].seq < anchor.audit_size
    for thread in threads:
        thread.join(DEADLINE)
        assert not thread.is_alive()


def test_a_refusal_alone_within_the_burst_is_not_held(device: DeviceChain) -> None:
    storage = MemoryStorage()
    world = _world(device, storage, refusal_commit_rate=0.01, refusal_commit_burst=3)
    before = storage.counter.value()
    started = time.monotonic()
    for _ in range(3):
        with pytest.raises(StaleNonce):
            world.release(b"not an EAR", secrets.token_bytes(32))
    assert time.monotonic() - started < 5.0
    assert storage.counter.value() - before == 3


@pytest.mark.parametrize(
    "budget",
    [
        {"refusal_commit_rate": 0},
        {"refusal_commit_rate": float("nan")},
        {"refusal_commit_rate": float("inf")},
        {"refusal_commit_rate": True},
        {"refusal_commit_burst": 0},
        {"refusal_commit_burst": 1.5},
    ],
)
def test_the_budget_is_checked(budget: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        HsmConfig(**budget)  # type: ignore[arg-type]


def test_a_refusal_waiting_for_the_budget_is_answered_by_any_commit_that_carries_it(
    device: DeviceChain,
) -> None:
    """A login (a security event, committed at once under the lock) carries the refusal
    that waits for the budget, and that refusal is answered then, not when the budget
    would have let its own commit go (5 s)."""
    storage = MemoryStorage()
    world = _world(device, storage, refusal_commit_rate=0.2, refusal_commit_burst=1)
    with pytest.raises(StaleNonce):  # the burst
        world.release(b"not an EAR", secrets.token_bytes(32))
    answered: list[float] = []

    def refused() -> None:
        with pytest.raises(StaleNonce):
            world.release(b"not an EAR", secrets.token_bytes(32))
        answered.append(time.monotonic())

    waiting = threading.Thread(target=refused)
    waiting.start()
    time.sleep(0.3)
    assert not answered  # waiting for the budget
    world.hsm.login(USER, USER_PASS)
    logged_in = time.monotonic()
    waiting.join(DEADLINE)
    assert answered
    assert answered[0] - logged_in < 2.0


def test_a_refusal_owed_to_a_caller_that_waits_elsewhere(device: DeviceChain) -> None:
    """Inside ``owing_refusals`` a refusal past the budget is raised at once, its record not
    yet durable but owed; ``settle_owed`` says how long the budget holds it and commits
    nothing meanwhile; a commit that carries it (a login) wakes the caller, and
    ``settle_owed`` then says 0. Outside it, nothing is owed."""
    storage = MemoryStorage()
    world = _world(device, storage, refusal_commit_rate=0.001, refusal_commit_burst=1)
    with world.hsm.owing_refusals() as owed, pytest.raises(StaleNonce):  # the burst
        world.release(b"not an EAR", secrets.token_bytes(32))
    assert owed.ticket == 0  # committed at once: nothing owed
    assert world.hsm.settle_owed(owed) == 0.0
    woken = threading.Event()
    durable = len(parse_audit_log(storage.read_audit()))
    before = storage.counter.value()
    with world.hsm.owing_refusals(woken.set) as owed, pytest.raises(StaleNonce):
        world.release(b"not an EAR", secrets.token_bytes(32))
    assert owed.ticket == durable + 1
    assert len(parse_audit_log(storage.read_audit())) == durable  # owed, not yet durable
    assert 0.0 < world.hsm.settle_owed(owed) <= 1000.0
    assert storage.counter.value() == before
    assert not woken.is_set()
    world.hsm.login(USER, USER_PASS)
    assert woken.is_set()
    assert world.hsm.settle_owed(owed) == 0.0
    records = parse_audit_log(storage.read_audit())
    assert [r.result for r in records[durable : durable + 1]] == ["nonce-unknown"]
    assert storage.counter.value() == before + 1


def test_owing_refusals_nested_owes_to_the_outer_caller(device: DeviceChain) -> None:
    world = _world(device, MemoryStorage())
    with world.hsm.owing_refusals() as outer, world.hsm.owing_refusals() as inner:
        assert inner is outer
    with world.hsm.owing_refusals() as owed:  # the outer one left: a new one
        assert owed is not outer
        assert owed.ticket == 0
