"""The challenge store under a flood: one client cannot evict another's nonce, nor many
clients lock out one holding fewer; refusals are 503s that say when to come back and which
service refused (a full store's fair share: tests/keyrelease/test_keyrelease_challenge_quota.py)."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from ironroot.attestation import ChallengeLimits, NonceStore
from ironroot.errors import ConfigError, Overloaded, StaleNonce
from ironroot.http import ServerThread

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _after(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def test_a_flooding_client_cannot_evict_another_clients_nonce() -> None:
    store = NonceStore(lifetime=60, limits=ChallengeLimits(max_outstanding=1000, per_client=50))
    mine, _ = store.issue(NOW, "10.0.0.1")
    issued = 0
    codes: set[str] = set()
    for i in range(100_000):  # the attack from the issue, from one address
        try:
            store.issue(_after(i / 100_000), "10.0.0.66")
            issued += 1
        except Overloaded as exc:
            codes.add(exc.code)
    assert issued <= 50
    assert codes == {"challenge-rate"}
    store.redeem(mine, _after(2))  # still there, still redeemable


def test_many_addresses_fill_the_store_then_get_503_with_retry_after() -> None:
    store = NonceStore(
        lifetime=60,
        limits=ChallengeLimits(max_outstanding=100, per_client=5),
        service="key release service",
    )
    first, _ = store.issue(NOW, "10.0.0.1")
    for n in range(99):
        store.issue(_after(1), f"10.1.{n}.1")
    with pytest.raises(Overloaded) as full:
        store.issue(_after(10), "10.1.0.1")  # holds as many as any other client: one
    assert full.value.code == "challenges-full"
    assert full.value.http_status == 503
    assert full.value.retry_after == 50  # the first nonce expires at 60 s
    assert full.value.detail.startswith("the key release service holds 100 unused challenges")
    # was: refused challenges-full too, every client locked out until a nonce expired; now
    # a client holding none takes the oldest nonce of one that has held one longest
    store.issue(_after(10), "10.9.9.9")
    assert len(store) == 100
    with pytest.raises(StaleNonce) as evicted:
        store.redeem(first, _after(10))
    assert evicted.value.code == "nonce-unknown"


def test_per_client_limit_and_rate() -> None:
    store = NonceStore(lifetime=60, limits=ChallengeLimits(per_client=2, rate=1, burst=10))
    store.issue(NOW, "c")
    store.issue(NOW, "c")
    with pytest.raises(Overloaded) as held:
        store.issue(NOW, "c")
    assert held.value.code == "challenge-client-limit"
    assert held.value.retry_after == 60
    assert "attestation verifier" in held.value.detail
    fast = NonceStore(lifetime=60, limits=ChallengeLimits(rate=2, burst=3))
    for _ in range(3):
        fast.issue(NOW, "c")
    with pytest.raises(Overloaded) as rate:
        fast.issue(NOW, "c")
    assert rate.value.code == "challenge-rate"
    assert rate.value.retry_after == 1
    fast.issue(_after(0.5), "c")  # one token back after 1/rate seconds


def test_expired_and_reused_nonces_are_refused() -> None:
    store = NonceStore(lifetime=60)
    nonce, _ = store.issue(NOW, "c")
    with pytest.raises(StaleNonce) as expired:
        store.redeem(nonce, _after(60))
    assert expired.value.code == "nonce-expired"
    again, _ = store.issue(_after(61), "c")
    store.redeem(again, _after(62))
    with pytest.raises(StaleNonce) as reused:
        store.redeem(again, _after(63))
    assert reused.value.code == "nonce-reused"


def test_a_nonce_issued_after_the_clock_stepped_back_still_expires() -> None:
    # The wall clock steps back 200 s between two challenges: the later one expires first,
    # behind the earlier one in the store. Before, redeem only pruned up to the first
    # unexpired entry, so the later nonce was accepted long after it had expired.
    store = NonceStore(lifetime=60)
    store.issue(NOW, "a")
    stepped_back, expires = store.issue(_after(-200), "b")
    assert expires == int(_after(-140).timestamp())
    with pytest.raises(StaleNonce) as expired:
        store.redeem(stepped_back, _after(-100))
    assert expired.value.code == "nonce-expired"
    with pytest.raises(StaleNonce) as again:  # and stays refused
        store.redeem(stepped_back, _after(-99))
    assert again.value.code == "nonce-expired"


def test_a_clock_that_steps_back_does_not_refuse_challenges() -> None:
    # Before, the token bucket refilled by (now - last request) * rate, negative once the wall
    # clock stepped back: every client that had asked before was refused (challenge-rate)
    # for as long as the clock had stepped back, an hour here.
    store = NonceStore(lifetime=60, limits=ChallengeLimits(rate=10, burst=32))
    store.issue(NOW, "c")
    nonce, _ = store.issue(_after(-3600), "c")
    store.redeem(nonce, _after(-3599))
    burst = NonceStore(lifetime=60, limits=ChallengeLimits(rate=1, burst=2))
    for _ in range(2):
        burst.issue(NOW, "d")
    with pytest.raises(Overloaded) as refused:  # a step back refills nothing either
        burst.issue(_after(-3600), "d")
    assert (refused.value.code, refused.value.retry_after) == ("challenge-rate", 1)


def test_a_redeemed_nonce_returns_what_it_was_issued_bound_to() -> None:
    store = NonceStore(lifetime=60)
    bound, _ = store.issue(NOW, "c", bound=("node-0001", 7))
    unbound, _ = store.issue(NOW, "c")
    assert store.redeem(bound, _after(1)) == ("node-0001", 7)
    assert store.redeem(unbound, _after(1)) is None
    with pytest.raises(StaleNonce) as reused:
        store.redeem(bound, _after(2))
    assert reused.value.code == "nonce-reused"


def test_expired_nonces_free_their_slots() -> None:
    store = NonceStore(lifetime=10, limits=ChallengeLimits(max_outstanding=2, per_client=2))
    store.issue(NOW, "a")
    store.issue(NOW, "b")
    with pytest.raises(Overloaded) as full:
        store.issue(_after(1), "b")  # holds as many as "a"
    assert full.value.code == "challenges-full"
    store.issue(_after(10), "b")
    assert len(store) == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"per_client": 0}, "challenges.per_client must be a positive integer"),
        ({"rate": 0}, "challenges.rate must be a positive number per second"),
        ({"burst": 1.5}, "challenges.burst must be a positive integer"),
        ({"flood": 1}, "[challenges]: unknown setting(s) flood"),
    ],
)
def test_bad_challenge_limits(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ChallengeLimits.from_table(table)
    assert str(caught.value) == message


@pytest.mark.integration
def test_http_refusal_is_503_with_retry_after_and_the_service_name() -> None:
    from ironroot.attestation import AttestationService, Endorsements, create_attestation_app
    from ironroot.crypto import Algorithm, PrivateKey

    service = AttestationService(
        endorsements=Endorsements(),
        signing_key=PrivateKey.generate(Algorithm.ES384),
        nonces=NonceStore(lifetime=60, limits=ChallengeLimits(per_client=2)),
    )
    with ServerThread(create_attestation_app(service)) as server, httpx.Client() as client:
        url = f"{server.url}/attestation/challenge"
        accept = {"accept": "application/json"}
        assert [client.post(url, headers=accept).status_code for _ in range(2)] == [201, 201]
        refused = client.post(url, headers=accept)
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    problem = refused.json()
    assert problem["code"] == "challenge-client-limit"
    assert "attestation verifier" in problem["detail"]


# --- IPv6: one host holds a /64 ----------------------------------------------------------------


def test_addresses_of_one_ipv6_64_share_one_quota_and_other_64s_do_not() -> None:
    # was: keyed by the address, so a host rotating through its /64 had a quota per address
    store = NonceStore(lifetime=60, limits=ChallengeLimits(per_client=3, rate=100, burst=100))
    for n in range(1, 4):
        store.issue(NOW, f"2001:db8:0:7::{n}")
    with pytest.raises(Overloaded) as caught:
        store.issue(NOW, "2001:db8:0:7:ffff::1")  # another address of the same /64
    assert caught.value.code == "challenge-client-limit"
    store.issue(NOW, "2001:db8:0:8::1")  # another /64: a quota of its own
    for n in range(1, 4):
        store.issue(NOW, f"::{n}")  # ::1-style addresses: one /64 too
    with pytest.raises(Overloaded) as loopback:
        store.issue(NOW, "::ffff")
    assert loopback.value.code == "challenge-client-limit"


def test_a_rotating_ipv6_client_is_held_to_one_rate() -> None:
    store = NonceStore(lifetime=60, limits=ChallengeLimits(per_client=1000, rate=1, burst=5))
    issued = 0
    codes: set[str] = set()
    for n in range(1, 1001):
        try:
            store.issue(NOW, f"2001:db8:0:7:{n:x}::{n:x}")
            issued += 1
        except Overloaded as exc:
            codes.add(exc.code)
    assert issued == 5
    assert codes == {"challenge-rate"}
    store.issue(NOW, "2001:db8:0:9::1")  # another /64's bucket is full


def test_an_ipv4_client_through_a_dual_stack_socket_is_that_ipv4_client() -> None:
    store = NonceStore(lifetime=60, limits=ChallengeLimits(per_client=2, rate=100, burst=100))
    store.issue(NOW, "192.0.2.7")
    store.issue(NOW, "::ffff:192.0.2.7")
    with pytest.raises(Overloaded) as caught:
        store.issue(NOW, "192.0.2.7")
    assert caught.value.code == "challenge-client-limit"
    store.issue(NOW, "192.0.2.8")


def test_the_verifier_s_challenge_endpoint_counts_an_ipv6_64_as_one_client() -> None:
    from ironroot.attestation import AttestationService, Endorsements, create_attestation_app
    from ironroot.crypto import Algorithm, PrivateKey

    service = AttestationService(
        endorsements=Endorsements(),
        signing_key=PrivateKey.generate(Algorithm.ES384),
        nonces=NonceStore(lifetime=60, limits=ChallengeLimits(per_client=2)),
    )
    app = create_attestation_app(service)
    accept = {"accept": "application/json"}

    def ask(address: str) -> httpx.Response:
        async def post() -> httpx.Response:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                return await client.post("/attestation/challenge", headers=accept)

        return asyncio.run(post())

    assert [ask(f"2001:db8:0:7::{n}").status_code for n in (1, 2)] == [201, 201]
    refused = ask("2001:db8:0:7::3")
    assert refused.status_code == 503
    assert refused.json()["code"] == "challenge-client-limit"
    assert ask("2001:db8:0:8::1").status_code == 201
