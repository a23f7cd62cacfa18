"""Challenges shared fairly: a full challenge table locks out only the clients that hold the
most of it.

The table of unused challenges is bounded (``max_outstanding``). It used to refuse everyone
``challenges-full`` once full: clients from enough addresses (each within ``per_client``) — or
one client allowed a large ``per_client`` — locked every honest TEE out of key release (and
every node out of fleet admission, which uses the same store) until their nonces expired.
Now a client holding fewer than another takes that other client's oldest unused nonce; the
refusal is only for a client holding as many as any other. Keyed by the mTLS identity when the
client presents a certificate, else by its address (an IPv6 one as its /64).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _kr_helpers import NOW, Harness, assert_problem, build_harness, problem_of
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.tls_pki import Pki, make_pki

from hypothesis_budget import examples
from ironroot.cose import encode_cbor
from ironroot.ear import ChallengeLimits, NonceStore
from ironroot.errors import Overloaded, StaleNonce
from ironroot.http import LoginThrottle, ServerThread, ServerTls, client_context
from ironroot.keyrelease import KeyReleaseServerThread, create_keyrelease_app

ROOMY = ChallengeLimits(max_outstanding=8, per_client=100, rate=1000, burst=1000)


def _after(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def _store(limits: ChallengeLimits = ROOMY) -> NonceStore:
    return NonceStore(lifetime=60, limits=limits, service="key release service")


def _flood(store: NonceStore, client: str, n: int) -> tuple[list[bytes], set[str]]:
    issued: list[bytes] = []
    codes: set[str] = set()
    for _ in range(n):
        try:
            issued.append(store.issue(_after(1), client)[0])
        except Overloaded as exc:
            codes.add(exc.code)
        assert len(store) <= store.limits.max_outstanding
    return issued, codes


# --- the store --------------------------------------------------------------------------------


def test_a_flood_from_one_client_leaves_a_challenge_for_another() -> None:
    # was: the flooder filled the table and 10.0.0.2 was refused challenges-full
    store = _store()
    flooded, codes = _flood(store, "10.0.0.66", 1000)
    assert (len(flooded), codes) == (8, {"challenges-full"})
    nonce, _ = store.issue(_after(2), "10.0.0.2")
    assert len(store) == 8
    assert store.redeem(nonce, _after(3)) is None


def test_the_greedy_client_is_refused_with_the_exact_problem() -> None:
    store = _store()
    _flood(store, "10.0.0.66", 8)
    store.issue(_after(2), "10.0.0.2")
    with pytest.raises(Overloaded) as refused:
        store.issue(_after(2), "10.0.0.66")  # still holds 7: the most of anyone
    assert refused.value.code == "challenges-full"
    assert refused.value.http_status == 503
    assert refused.value.retry_after == 59  # its first nonce expires at 61 s
    assert str(refused.value) == (
        "the key release service holds 8 unused challenges, as many of them for this client "
        "as for any other; retry in 59 s"
    )


def test_an_evicted_challenge_is_refused_as_unknown_and_the_others_still_redeem() -> None:
    store = _store()
    flooded, _ = _flood(store, "10.0.0.66", 8)
    store.issue(_after(2), "10.0.0.2")  # takes the flooder's oldest
    with pytest.raises(StaleNonce) as unknown:
        store.redeem(flooded[0], _after(3))
    assert unknown.value.code == "nonce-unknown"
    assert str(unknown.value) == "this key release service did not issue that nonce"
    for nonce in flooded[1:]:  # single use, as ever
        store.redeem(nonce, _after(3))
    with pytest.raises(StaleNonce) as reused:
        store.redeem(flooded[1], _after(3))
    assert reused.value.code == "nonce-reused"


def test_many_addresses_cannot_lock_out_a_client_with_none() -> None:
    # the gap per_client left: 1000 /64s of one /48, each within its quota, fill the table
    store = _store(ChallengeLimits(max_outstanding=100, per_client=5, rate=1000, burst=1000))
    codes: set[str] = set()
    for n in range(1000):
        codes |= _flood(store, f"2001:db8:7:{n:x}::1", 5)[1]
    assert codes == {"challenges-full"}
    assert len(store) == 100
    mine, _ = store.issue(_after(2), "192.0.2.1")
    store.redeem(mine, _after(3))


def test_an_honest_client_keeps_its_challenge_while_the_flooder_holds_more() -> None:
    store = _store()
    mine, _ = store.issue(NOW, "10.0.0.2")
    _, codes = _flood(store, "10.0.0.66", 1000)  # 7 of its own, then refused
    assert codes == {"challenges-full"}
    assert store.redeem(mine, _after(2)) is None


def test_eviction_takes_from_the_client_holding_the_most() -> None:
    store = _store()
    small, _ = _flood(store, "10.0.0.3", 2)
    big, _ = _flood(store, "10.0.0.4", 6)
    for _ in range(2):  # 10.0.0.4 holds 6, then 5: more than 10.0.0.5 each time
        store.issue(_after(2), "10.0.0.5")
    for nonce in small + big[2:]:
        store.redeem(nonce, _after(3))
    for nonce in big[:2]:
        with pytest.raises(StaleNonce) as unknown:
            store.redeem(nonce, _after(3))
        assert unknown.value.code == "nonce-unknown"


def test_expiry_is_kept_exactly() -> None:
    store = _store()
    flooded, _ = _flood(store, "10.0.0.66", 8)
    with pytest.raises(StaleNonce) as expired:
        store.redeem(flooded[0], _after(61))
    assert expired.value.code == "nonce-expired"
    assert len(store) == 0
    store.issue(_after(61), "10.0.0.66")  # expired slots are free again


# --- over HTTP, real clients from two addresses -----------------------------------------------


@pytest.fixture
def small() -> Iterator[Harness]:
    built = build_harness(challenges=ChallengeLimits(max_outstanding=4, per_client=100))
    app = create_keyrelease_app(built.service, refusals=LoginThrottle(0, 1))
    with KeyReleaseServerThread(app) as server:
        built.url = server.url
        try:
            yield built
        finally:
            built.http.close()


def _from(address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any 127/8 address is loopback)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address))


def _challenge(client: httpx.Client, url: str) -> httpx.Response:
    return client.post(f"{url}/keys/challenge", headers={"accept": "application/json"})


def _nonce(response: httpx.Response) -> bytes:
    import base64

    text = response.json()["nonce"]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_over_http_a_flooding_address_does_not_lock_out_another(small: Harness) -> None:
    with _from("127.0.0.1") as flooder, _from("127.0.0.2") as honest:
        answers = [_challenge(flooder, small.url) for _ in range(5)]
        assert [a.status_code for a in answers] == [201, 201, 201, 201, 503]
        assert_problem(answers[4], Overloaded, "challenges-full")
        assert int(answers[4].headers["retry-after"]) >= 1
        assert "HSM release" in (problem_of(answers[4]).detail or "")
        mine = _challenge(honest, small.url)
        assert mine.status_code == 201, mine.content
        again = _challenge(flooder, small.url)  # it holds 3, honest 1: still the greediest
        assert_problem(again, Overloaded, "challenges-full")
    evicted = _nonce(answers[0])
    assert_problem(small.post("cel-key", small.ear(evicted), evicted), StaleNonce, "nonce-unknown")
    nonce = _nonce(mine)
    assert small.post("cel-key", small.ear(nonce), nonce).status_code == 200


# --- over mutual TLS, two identities from one address -------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _as(pki: Pki, cert: Path, key: Path) -> httpx.Client:
    return httpx.Client(verify=client_context(pki.ca, cert, key))


def test_over_mtls_each_client_certificate_is_its_own_client(pki: Pki) -> None:
    # was: both keyed by 127.0.0.1, so the second identity held "as many as any other"
    built = build_harness(challenges=ChallengeLimits(max_outstanding=4, per_client=100))
    app = create_keyrelease_app(built.service, refusals=LoginThrottle(0, 1))
    tls = ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    with (
        ServerThread(app, tls=tls) as server,
        _as(pki, pki.client_cert, pki.client_key) as first,
        _as(pki, pki.second_client_cert, pki.second_client_key) as second,
    ):
        answers = [_challenge(first, server.url) for _ in range(5)]
        assert [a.status_code for a in answers] == [201, 201, 201, 201, 503]
        assert_problem(answers[4], Overloaded, "challenges-full")
        other = _challenge(second, server.url)
        assert other.status_code == 201, other.content
        assert_problem(_challenge(first, server.url), Overloaded, "challenges-full")
        built.http.close()


def test_over_mtls_the_refusal_limit_counts_each_certificate_too(pki: Pki) -> None:
    # was: counted by address, so one TEE's refused requests got another's answered 429
    built = build_harness()
    refusals = LoginThrottle(2, 60, clock=lambda: 0.0, attempts="refused requests")
    app = create_keyrelease_app(built.service, refusals=refusals)
    tls = ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    made_up = encode_cbor(  # refused by the HSM: counted
        {"ear": b"not an EAR", "wrapping_key": built.tee.public_spki, "nonce": bytes(32)}
    )
    cbor = {"content-type": "application/cbor"}
    with (
        ServerThread(app, tls=tls) as server,
        _as(pki, pki.client_cert, pki.client_key) as first,
        _as(pki, pki.second_client_cert, pki.second_client_key) as second,
    ):
        url = f"{server.url}/keys/cel-key/release"
        answers = [first.post(url, content=made_up, headers=cbor).status_code for _ in range(3)]
        assert answers == [400, 400, 429]
        assert second.post(url, content=made_up, headers=cbor).status_code == 400
        assert _challenge(second, server.url).status_code == 201
        assert _challenge(first, server.url).status_code == 429
    built.http.close()


# --- against a model ----------------------------------------------------------------------------

# the address -> the client it is (two addresses of one IPv6 /64 are one client)
_CLIENTS = {
    "10.0.0.1": "10.0.0.1",
    "10.0.0.2": "10.0.0.2",
    "10.0.0.3": "10.0.0.3",
    "2001:db8::1": "2001:db8::/64",
    "2001:db8::2": "2001:db8::/64",
}
_ADDRESSES = list(_CLIENTS)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("issue"), st.integers(0, len(_ADDRESSES) - 1)),
        st.tuples(st.just("redeem"), st.integers(0, 40)),
        st.tuples(st.just("wait"), st.integers(1, 30)),
    ),
    max_size=80,
)


@settings(max_examples=examples(200), deadline=None)
@given(ops=_OPS, bound=st.integers(1, 6))
def test_the_store_shares_a_full_table_as_the_model_says(
    ops: list[tuple[str, int]], bound: int
) -> None:
    """A full store refuses exactly the clients holding as many as any other, evicts the
    oldest nonce of the client that has held the most longest, never holds more than
    ``max_outstanding``; redeemed, an evicted nonce is ``nonce-unknown`` and every other live
    one is accepted once."""
    store = NonceStore(
        lifetime=60, limits=ChallengeLimits(max_outstanding=bound, per_client=100, burst=10**6)
    )
    t = 0.0
    live: dict[str, list[tuple[bytes, float]]] = {}  # client key -> its nonces, oldest first
    since: dict[str, int] = {}  # client key -> when it came to hold what it holds
    moves = 0
    issued: list[bytes] = []
    evicted: set[bytes] = set()
    spent: set[bytes] = set()

    def moved(who: str) -> None:
        nonlocal moves
        moves += 1
        since[who] = moves

    def expire() -> None:
        for nonce, who in sorted(
            ((n, w) for w, held in live.items() for n, e in held if e <= t),
            key=lambda item: issued.index(item[0]),
        ):
            live[who] = [(n, e) for n, e in live[who] if n != nonce]
            moved(who)
            spent.add(nonce)

    for op, arg in ops:
        if op == "wait":
            t += arg
            continue
        expire()
        if op == "issue":
            address = _ADDRESSES[arg]
            who = _CLIENTS[address]
            mine = len(live.get(who, []))
            most = max((len(h) for h in live.values()), default=0)
            full = sum(len(h) for h in live.values()) >= bound
            if full and most <= mine:
                with pytest.raises(Overloaded) as refused:
                    store.issue(_after(t), address)
                assert refused.value.code == "challenges-full"
                continue
            if full:
                greedy = min((w for w, h in live.items() if len(h) == most), key=since.get)
                evicted.add(live[greedy].pop(0)[0])
                moved(greedy)
            nonce, expires = store.issue(_after(t), address)
            issued.append(nonce)
            live.setdefault(who, []).append((nonce, float(expires) - NOW.timestamp()))
            moved(who)
        elif issued:
            nonce = issued[arg % len(issued)]
            held = [w for w, h in live.items() if any(n == nonce for n, _ in h)]
            if held:
                assert store.redeem(nonce, _after(t)) is None
                live[held[0]] = [(n, e) for n, e in live[held[0]] if n != nonce]
                moved(held[0])
                spent.add(nonce)
            else:
                with pytest.raises(StaleNonce) as stale:
                    store.redeem(nonce, _after(t))
                expected = "nonce-unknown" if nonce in evicted and nonce not in spent else None
                assert expected is None or stale.value.code == expected
        assert len(store) == sum(len(h) for h in live.values()) <= bound
