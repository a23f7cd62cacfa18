"""Release requests refused together over HTTP share the HSM's commits.

Each refusal the HSM makes is durable and anchored before the service answers it, and each
anchor increments the root of trust's counter; any client that reaches the service can send
refused requests (a made-up nonce). The HSM group-commits them (docs/hsm.md, "Group commit"):
``N`` sent at once cost two commits, not ``N``. The HSM's storage holds the first commit until
every request has been audited, so the grouping does not depend on timing.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
import types

import httpx
import pytest
from _kr_helpers import NOW, assert_problem

from hsm_devices import self_signed_device
from ironroot.cose import encode_cbor
from ironroot.ear import ChallengeLimits
from ironroot.errors import Overloaded, StaleNonce, TooManyAttempts
from ironroot.hsm import (
    Hsm,
    HsmConfig,
    KeyAttributes,
    KeyType,
    MemoryStorage,
    Role,
    parse_audit_log,
)
from ironroot.http import LoginThrottle
from ironroot.keyrelease import (
    HsmVault,
    KeyReleaseServerThread,
    KeyReleaseService,
    ReleasableKey,
    create_keyrelease_app,
)
from ironroot.keyrelease._http import REFUSAL_WINDOW, REFUSALS_PER_CLIENT
from ironroot.keyrelease.tee import TeeKeyPair

N = 24  # within Starlette's thread pool (40), so all reach the HSM at once
DEADLINE = 120.0


class HeldStorage(MemoryStorage):
    """Holds the next audit append, once armed, until ``go`` is set."""

    __slots__ = ("go", "held", "hold")

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.held = threading.Event()
        self.go = threading.Event()

    def append_audit(self, data: bytes) -> None:
        if self.hold:
            self.hold = False
            self.held.set()
            assert self.go.wait(DEADLINE)
        super().append_audit(data)


@pytest.mark.parametrize("route", ["release", "challenge"])
def test_requests_refused_together_cost_two_commits_not_one_each(route: str) -> None:
    """Releases on made-up nonces, or challenges past the client's burst (``503``
    ``challenge-rate``, which the key service asks of the HSM from its thread pool, not from
    the event loop, so that they too arrive together)."""
    storage = HeldStorage()
    hsm, service = _service(storage)
    audited = threading.Semaphore(0)
    hsm.add_listener(lambda operation, result: audited.release() if result != "ok" else None)
    spki = TeeKeyPair.generate("ML-KEM-768").public_spki
    answers: list[httpx.Response] = []
    with KeyReleaseServerThread(create_keyrelease_app(service)) as server:

        def post() -> None:
            with httpx.Client(timeout=DEADLINE) as http:
                if route == "release":
                    answer = http.post(
                        f"{server.url}/keys/k/release",
                        content=_release_body(spki),
                        headers={"Content-Type": "application/cbor"},
                    )
                else:
                    answer = http.post(f"{server.url}/keys/challenge")
                answers.append(answer)

        if route == "challenge":
            for _ in range(2):  # the burst
                with httpx.Client(timeout=DEADLINE) as http:
                    assert http.post(f"{server.url}/keys/challenge").status_code == 201
        before = storage.counter.value()
        storage.hold = True
        first = threading.Thread(target=post)
        first.start()
        assert storage.held.wait(DEADLINE)
        others = [threading.Thread(target=post) for _ in range(N - 1)]
        for thread in others:
            thread.start()
        for _ in range(N):  # every request audited (the first one's commit still held)
            if not audited.acquire(timeout=10):
                break
        storage.go.set()
        for thread in [first, *others]:
            thread.join(DEADLINE)
    assert len(answers) == N
    for response in answers:
        if route == "release":
            assert_problem(response, StaleNonce, "nonce-unknown")
        else:
            assert_problem(response, Overloaded, "challenge-rate")
    assert storage.counter.value() - before <= 2
    hsm.close()


def _service(
    storage: MemoryStorage, config: HsmConfig | None = None
) -> tuple[Hsm, KeyReleaseService]:
    hsm = Hsm.initialize(
        storage,
        bytes(range(48)),
        officer="officer",
        credential=b"officer-credential",
        device=self_signed_device(NOW),
        # the clock stands still: the challenge bucket (burst 2) never refills
        config=config or HsmConfig(scrypt_n=2**10, release_challenges=ChallengeLimits(burst=2)),
        clock=lambda: NOW.timestamp(),
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "keyrelease", Role.USER, b"user-credential")
    handle = hsm.generate(
        officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt"], exportable=True, release_policy='status == "affirming"'),
    )
    service = KeyReleaseService(
        keys=[ReleasableKey("k", handle)],
        vault=HsmVault(hsm, hsm.login("keyrelease", b"user-credential")),
    )
    return hsm, service


def _refusals() -> LoginThrottle:
    """The service's own limit, on a clock that stands still (nothing leaves the window)."""
    return LoginThrottle(
        REFUSALS_PER_CLIENT, REFUSAL_WINDOW, clock=lambda: 0.0, attempts="refused requests"
    )


def _release_body(spki: bytes) -> bytes:
    return encode_cbor(
        {"ear": b"not an EAR", "wrapping_key": spki, "nonce": secrets.token_bytes(32)}
    )


def test_past_its_refusals_a_client_is_answered_429_before_the_hsm_is_asked() -> None:
    """One client that waits for each answer costs one commit a refusal (nothing arrives
    with it to share one): ``REFUSALS_PER_CLIENT`` refused releases, then ``429``
    ``too-many-attempts`` with ``Retry-After``, which costs the HSM no commit and no record."""
    storage = MemoryStorage()
    hsm, service = _service(storage)
    spki = TeeKeyPair.generate("ML-KEM-768").public_spki
    cbor = {"Content-Type": "application/cbor"}
    app = create_keyrelease_app(service, refusals=_refusals())
    with KeyReleaseServerThread(app) as server, httpx.Client(timeout=DEADLINE) as http:
        url = f"{server.url}/keys/k/release"
        before = storage.counter.value()
        for _ in range(REFUSALS_PER_CLIENT):
            answer = http.post(url, content=_release_body(spki), headers=cbor)
            assert_problem(answer, StaleNonce, "nonce-unknown")
        assert storage.counter.value() - before == REFUSALS_PER_CLIENT
        records = len(storage.read_audit())
        for _ in range(3):
            answer = http.post(url, content=_release_body(spki), headers=cbor)
            assert_problem(answer, TooManyAttempts)
            assert answer.status_code == 429
            assert answer.headers["Retry-After"] == str(REFUSAL_WINDOW + 1)
        assert storage.counter.value() - before == REFUSALS_PER_CLIENT
        assert len(storage.read_audit()) == records  # the HSM was not asked
        # challenges too: the HSM is not asked for this client any more
        refused = http.post(f"{server.url}/keys/challenge")
        assert_problem(refused, TooManyAttempts)
        assert storage.counter.value() - before == REFUSALS_PER_CLIENT
    hsm.close()


def test_refused_challenges_count_toward_the_limit() -> None:
    """A client past its challenge burst (``503`` ``challenge-rate``, each the HSM's refusal,
    durable) is held to the same limit: then ``429`` before the HSM."""
    storage = MemoryStorage()
    hsm, service = _service(storage)
    app = create_keyrelease_app(service, refusals=_refusals())
    with KeyReleaseServerThread(app) as server, httpx.Client(timeout=DEADLINE) as http:
        url = f"{server.url}/keys/challenge"
        for _ in range(2):  # the burst
            assert http.post(url).status_code == 201
        before = storage.counter.value()
        for _ in range(REFUSALS_PER_CLIENT):
            assert_problem(http.post(url), Overloaded, "challenge-rate")
        assert storage.counter.value() - before == REFUSALS_PER_CLIENT
        answer = http.post(url)
        assert_problem(answer, TooManyAttempts)
        assert "Retry-After" in answer.headers
        assert storage.counter.value() - before == REFUSALS_PER_CLIENT
    hsm.close()


def test_the_service_limits_refusals_by_default() -> None:
    assert REFUSALS_PER_CLIENT == 32
    assert REFUSAL_WINDOW == 60
    storage = MemoryStorage()
    hsm, service = _service(storage)
    spki = TeeKeyPair.generate("ML-KEM-768").public_spki
    app = create_keyrelease_app(service)
    with KeyReleaseServerThread(app) as server, httpx.Client(timeout=DEADLINE) as http:
        answers = [
            http.post(
                f"{server.url}/keys/k/release",
                content=_release_body(spki),
                headers={"Content-Type": "application/cbor"},
            ).status_code
            for _ in range(REFUSALS_PER_CLIENT + 1)
        ]
    # within one window (60 s) unless this machine took a minute for 33 requests
    assert answers.count(400) == REFUSALS_PER_CLIENT
    assert answers[-1] == 429
    hsm.close()


ADDRESSES = 16
"""Client addresses of the distributed flood (127.0.0.2 …: all loopback on Linux)."""
EACH = 12
"""Refused releases each address sends, one after another: under its limit of 32."""


def test_a_flood_from_many_addresses_each_under_its_limit_costs_the_hsm_s_budget() -> None:
    """The gap the per-client limit leaves: ``ADDRESSES`` clients, none ever answered
    ``429``, drove one commit after another. The HSM's refusal budget (here 5 commits a
    second after a burst of 2) bounds them all together; every refusal is still the HSM's,
    durable when answered."""
    storage = MemoryStorage()
    hsm, service = _service(
        storage, HsmConfig(scrypt_n=2**10, refusal_commit_rate=5.0, refusal_commit_burst=2)
    )
    spki = TeeKeyPair.generate("ML-KEM-768").public_spki
    answers: list[httpx.Response] = []
    with KeyReleaseServerThread(create_keyrelease_app(service)) as server:

        def client(address: str) -> None:
            transport = httpx.HTTPTransport(local_address=address)
            with httpx.Client(transport=transport, timeout=DEADLINE) as http:
                for _ in range(EACH):
                    answers.append(
                        http.post(
                            f"{server.url}/keys/k/release",
                            content=_release_body(spki),
                            headers={"Content-Type": "application/cbor"},
                        )
                    )

        before = storage.counter.value()
        started = time.monotonic()
        threads = [
            threading.Thread(target=client, args=(f"127.0.0.{2 + i}",)) for i in range(ADDRESSES)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
        elapsed = time.monotonic() - started
    assert len(answers) == ADDRESSES * EACH
    for response in answers:
        assert_problem(response, StaleNonce, "nonce-unknown")  # the HSM's, never a 429
    increments = storage.counter.value() - before
    assert increments <= 2 + 5.0 * elapsed + 1
    records = [r for r in parse_audit_log(storage.read_audit()) if r.operation == "release"]
    assert len(records) == ADDRESSES * EACH
    hsm.close()


HELD = 48
"""Refused requests held by the HSM's refusal budget at once: more than Starlette's thread
pool (40), so that the refusals would hold every worker if each waited in one."""


def _busy_workers() -> int:
    """The thread pool's workers running Ironroot's code now (an idle one waits for work in
    AnyIO's own loop)."""
    frames = sys._current_frames()
    busy = 0
    for thread in threading.enumerate():
        if thread.name != "AnyIO worker thread" or thread.ident not in frames:
            continue
        frame: types.FrameType | None = frames[thread.ident]
        while frame is not None:
            if f"{os.sep}ironroot{os.sep}" in frame.f_code.co_filename:
                busy += 1
                break
            frame = frame.f_back
    return busy


@pytest.mark.parametrize("route", ["release", "challenge"])
def test_refusals_held_by_the_budget_wait_without_holding_worker_threads(route: str) -> None:
    """Past the HSM's refusal budget (here a burst of one, then one commit in 1,000 s) each
    refusal waits, unanswered, for the commit that carries it; it waits on the event loop,
    not in a thread of the pool: ``HELD`` of them waiting at once leave no worker thread
    busy, and a challenge from another client is issued meanwhile. The next commit (an
    officer's login, a security event committed at once) carries them all, and each is then
    answered as the HSM's refusal, durable."""
    storage = MemoryStorage()
    config = HsmConfig(
        scrypt_n=2**10,
        release_challenges=ChallengeLimits(burst=2),
        refusal_commit_rate=0.001,
        refusal_commit_burst=1,
    )
    hsm, service = _service(storage, config)
    refused = threading.Semaphore(0)
    hsm.add_listener(lambda operation, result: refused.release() if result != "ok" else None)
    spki = TeeKeyPair.generate("ML-KEM-768").public_spki
    answers: list[httpx.Response] = []
    app = create_keyrelease_app(service, refusals=LoginThrottle(0, 1))
    with KeyReleaseServerThread(app) as server:

        def post() -> httpx.Response:
            with httpx.Client(timeout=DEADLINE) as http:
                if route == "release":
                    return http.post(
                        f"{server.url}/keys/k/release",
                        content=_release_body(spki),
                        headers={"Content-Type": "application/cbor"},
                    )
                return http.post(f"{server.url}/keys/challenge")

        if route == "challenge":
            for _ in range(2):  # this client's burst
                assert post().status_code == 201
        first = post()  # the budget's burst: committed and answered at once
        assert refused.acquire(timeout=0)
        threads = [threading.Thread(target=lambda: answers.append(post())) for _ in range(HELD)]
        for thread in threads:
            thread.start()
        for _ in range(HELD):  # each audited: with a worker each, 40 would be the most
            assert refused.acquire(timeout=DEADLINE)
        end = time.monotonic() + DEADLINE
        while _busy_workers() and time.monotonic() < end:
            time.sleep(0.01)
        assert _busy_workers() == 0
        assert answers == []  # all of them still waiting for their commit
        other = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=other, timeout=DEADLINE) as http:
            assert http.post(f"{server.url}/keys/challenge").status_code == 201
        before = storage.counter.value()
        hsm.login("officer", b"officer-credential")  # commits at once, carrying the refusals
        for thread in threads:
            thread.join(DEADLINE)
        assert storage.counter.value() - before == 1
    assert len(answers) == HELD
    for response in [first, *answers]:
        if route == "release":
            assert_problem(response, StaleNonce, "nonce-unknown")
        else:
            assert_problem(response, Overloaded, "challenge-rate")
    operation = "release" if route == "release" else "release-challenge"
    records = parse_audit_log(storage.read_audit())
    assert len([r for r in records if r.operation == operation and r.result != "ok"]) == HELD + 1
    hsm.close()
