"""Refusals of ``release`` and ``release_challenge`` that arrive together share one commit.

Every refusal is written, synced and anchored before the HSM answers it, and each anchor
increments the root of trust's monotonic counter. Before group commit each refused request
cost one fsync and one counter increment of its own: any client that reaches the key release
service could wear the counter out (1,000 refused requests, 1,000 increments). Now a refusal
that finds a commit under way waits for it, and the next commit carries every refusal that
queued meanwhile (``AuditBuffer._make_durable``): at most one commit in flight, so ``N``
refusals sent together cost two commits, not ``N``.

The storage here holds the first commit's audit append until every other request has been
audited (the HSM's listener saw it), so the grouping does not depend on timing. The counter
is the root of trust's own (``MemoryCounter``): its value is the number of commits.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from _hsm_helpers import NOW_TS, SECRET, DeviceChain, new_hsm, sessions
from test_hsm_release import World

from ironroot.ear import ChallengeLimits
from ironroot.errors import HsmErrorState, Overloaded, StaleNonce, StorageError
from ironroot.hsm import Hsm, HsmConfig, MemoryStorage, parse_audit_log, verify_audit_segments
from ironroot.hsm._anchor import open_anchor

N = 32
"""Refused requests sent together."""
DEADLINE = 120.0
"""How long a test waits for its threads at most (a hang is a failure, not a pass)."""
GATHER = 30.0
"""How long the first commit is held, at most, for the others to be audited (they are at
once; an HSM that audits none of them while a commit is under way costs this wait)."""


class HeldStorage(MemoryStorage):
    """Holds the next audit append (once ``hold`` is armed) until ``go`` is set; ``held`` is
    set while one waits. ``fail`` makes the next held append raise, as a disk that failed."""

    __slots__ = ("fail", "go", "held", "hold")

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.fail = False
        self.held = threading.Event()
        self.go = threading.Event()

    def append_audit(self, data: bytes) -> None:
        if self.hold:
            self.hold = False
            self.held.set()
            assert self.go.wait(DEADLINE), "the held append was never let go"
            if self.fail:
                raise StorageError("the disk failed")
        super().append_audit(data)


@dataclass
class Seen:
    """What each refused request found on the storage when its refusal reached it."""

    audited: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    everyone: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    on_answer: list[tuple[bytes, bytes, int]] = field(default_factory=list)

    def listener(self, operation: str, result: str) -> None:
        if result != "ok" and operation in ("release", "release-challenge"):
            with self.lock:
                self.audited += 1
                if self.audited >= N:
                    self.everyone.set()


@pytest.fixture
def held(device: DeviceChain) -> tuple[World, HeldStorage]:
    storage = HeldStorage()
    config = HsmConfig(
        scrypt_n=2**10, release_challenges=ChallengeLimits(rate=0.001, burst=1, per_client=64)
    )
    hsm = new_hsm(device.identity, storage, config=config)
    return World(hsm, sessions(hsm)), storage


def _together(
    storage: HeldStorage, world: World, request: Callable[[int], None], seen: Seen
) -> int:
    """Send ``N`` requests on ``N`` threads, the first one's commit held until every one of
    them was audited; return how many commits (counter increments) they cost."""
    world.hsm.add_listener(seen.listener)
    before = storage.counter.value()

    def run(index: int) -> None:
        try:
            request(index)
        except BaseException as exc:  # collected: asserted by the test
            seen.errors.append(exc)
        else:
            seen.errors.append(AssertionError(f"request {index} was not refused"))
        on_disk = storage.read_audit(), storage.read_anchor() or b""
        with seen.lock:
            seen.on_answer.append((*on_disk, index))

    storage.hold = True
    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert storage.held.wait(DEADLINE)
    others = [threading.Thread(target=run, args=(i,)) for i in range(1, N)]
    for thread in others:
        thread.start()
    seen.everyone.wait(GATHER)  # the grouping: every request audited, none answered
    storage.go.set()
    for thread in [first, *others]:
        thread.join(DEADLINE)
        assert not thread.is_alive()
    return storage.counter.value() - before


def _durable_when_answered(seen: Seen, records_of: Callable[[int], int]) -> None:
    """Each request's refusal was in the audit log, and under the anchor, when it was
    answered: ``records_of(index)`` is how many of its records the log must hold by then."""
    for log, sealed, index in seen.on_answer:
        anchor = open_anchor(SECRET, sealed)
        records = parse_audit_log(log)
        mine = [r for r in records if r.seq < anchor.audit_size and _is(r, index)]
        assert len(mine) == records_of(index), index


def _is(record: object, index: int) -> bool:
    release = getattr(record, "release", None)
    return release is not None and release.ear == _ears[index][1]


_ears: dict[int, tuple[bytes, bytes]] = {}


def _ear(index: int) -> bytes:
    token = b"not an EAR " + secrets.token_bytes(16)
    _ears[index] = (token, hashlib.sha256(token).digest())
    return token


def test_releases_refused_together_share_one_commit_and_each_is_durable_when_answered(
    held: tuple[World, HeldStorage],
) -> None:
    """The attack: ``POST /keys/{name}/release`` with random nonces, ``N`` at once."""
    world, storage = held
    seen = Seen()
    tokens = {i: _ear(i) for i in range(N)}

    def release(index: int) -> None:
        world.release(tokens[index], secrets.token_bytes(32))

    commits = _together(storage, world, release, seen)
    assert len(seen.errors) == N
    for exc in seen.errors:
        assert type(exc) is StaleNonce
        assert getattr(exc, "code", None) == "nonce-unknown"
    assert commits <= 2  # the held commit, then one for the N - 1 that queued behind it
    _durable_when_answered(seen, lambda index: 1)
    records = [r for r in world.hsm.audit_records(world.auditor) if r.operation == "release"]
    assert [r.result for r in records] == ["nonce-unknown"] * N


def test_challenges_refused_together_share_one_commit_and_each_is_durable_when_answered(
    held: tuple[World, HeldStorage],
) -> None:
    """The attack: ``POST /keys/challenge`` past the client's burst, ``N`` at once."""
    world, storage = held
    world.hsm.release_challenge(world.user, "203.0.113.9")  # the burst of 1, spent
    seen = Seen()
    answers: list[str] = []

    def challenge(index: int) -> None:
        try:
            world.hsm.release_challenge(world.user, "203.0.113.9")
        except Overloaded as exc:
            answers.append(exc.code)
            raise

    commits = _together(storage, world, challenge, seen)
    assert len(seen.errors) == N
    assert answers == ["challenge-rate"] * N
    assert commits <= 2
    # every answer found every refusal before it in the log, under the anchor
    for log, sealed, _index in seen.on_answer:
        anchor = open_anchor(SECRET, sealed)
        refused = [
            r
            for r in parse_audit_log(log)
            if r.seq < anchor.audit_size and r.result == "challenge-rate"
        ]
        assert refused  # its own among them: counted below over all answers
    last_log, last_anchor, _ = max(seen.on_answer, key=lambda e: len(e[0]))
    sealed_size = open_anchor(SECRET, last_anchor).audit_size
    refused = [
        r for r in parse_audit_log(last_log) if r.seq < sealed_size and r.result == "challenge-rate"
    ]
    assert len(refused) == N


def test_a_refusal_whose_commit_failed_is_not_answered_as_a_refusal(
    held: tuple[World, HeldStorage],
) -> None:
    """A refusal not durable is never answered as one: the request whose commit failed gets
    the storage's error, every one that queued behind it ``HsmErrorState`` (the HSM is in
    its error state), and none of them a ``StaleNonce``."""
    world, storage = held
    storage.fail = True
    seen = Seen()
    tokens = {i: _ear(i) for i in range(N)}

    def release(index: int) -> None:
        world.release(tokens[index], secrets.token_bytes(32))

    commits = _together(storage, world, release, seen)
    assert commits == 0
    kinds = sorted(type(exc).__name__ for exc in seen.errors)
    assert kinds == sorted(["StorageError"] + ["HsmErrorState"] * (N - 1))
    assert world.hsm.state == "error"
    with pytest.raises(HsmErrorState):
        world.hsm.release_challenge(world.user)


def test_a_refusal_alone_is_durable_when_answered(
    held: tuple[World, HeldStorage],
) -> None:
    """Without company a refusal is its own commit, durable and anchored before it is
    answered, as before."""
    world, storage = held
    before = storage.counter.value()
    token = _ear(0)
    with pytest.raises(StaleNonce):
        world.release(token, secrets.token_bytes(32))
    assert storage.counter.value() == before + 1
    anchor = open_anchor(SECRET, storage.read_anchor() or b"")
    records = parse_audit_log(storage.read_audit())
    assert anchor.audit_size == records[-1].seq + 1
    assert records[-1].result == "nonce-unknown"
    assert _is(records[-1], 0)


def test_a_group_that_fills_the_live_log_rotates_it_and_the_chain_holds(
    device: DeviceChain,
) -> None:
    """Refusals queued behind a commit that take the live log past its segment size are
    committed by a rotation (under the lock, as every rotation): the archived segment and
    the live log verify as one chain holding every refusal, and the HSM powers up again."""
    storage = HeldStorage()
    config = HsmConfig(scrypt_n=2**10, audit_segment_records=16)
    hsm = new_hsm(device.identity, storage, config=config)
    world = World(hsm, sessions(hsm))
    tokens = {i: _ear(i) for i in range(N)}

    def release(index: int) -> None:
        world.release(tokens[index], secrets.token_bytes(32))

    seen = Seen()
    _together(storage, world, release, seen)
    assert all(type(exc) is StaleNonce for exc in seen.errors)
    assert storage.audit_segments()
    span = verify_audit_segments(
        storage.audit_segments(),
        storage.read_audit_segment,
        storage.read_audit(),
        keep_archived=True,
    )
    records = [r for r in (*span.archived, *span.live) if r.operation == "release"]
    assert [r.result for r in records] == ["nonce-unknown"] * N
    hsm.close()
    reopened = Hsm.open(storage, SECRET, config=config, clock=lambda: NOW_TS)
    assert reopened.state == "operational"
